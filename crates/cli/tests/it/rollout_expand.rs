//! `backstop rollout --expand`: every tenant expanded wave by wave (nothing
//! applied before the contract), a tenant whose expand cannot settle
//! halts its wave, the resumed run settles it and contracts every tenant
//! once the last wave is through, and the undo takes them all back.

use crate::common::DbExt;
use crate::rollout::{at, Fleet, BASE, CHECKED, LEDGER};

const WAVES: &str = r#"
[[waves]]
name = "canary"
targets = ["tenant-*"]
count = 1

[[waves]]
name = "rest"
targets = ["tenant-*"]
parallel = 2
"#;

const NEW: &str = "public_20260202000000";

#[test]
fn an_expand_rollout_expands_every_tenant_then_contracts_them_and_its_undo_takes_them_back() {
    let fleet = Fleet::new("rollout_expand", 4, "[backup]\nrequired = false\n", WAVES);
    let p = &fleet.p;
    // Tenant 003 holds a row the release's constraint refuses: its
    // validation after the expand fails, so its expand does not settle.
    fleet.tenant("003").batch_execute("insert into accounts values (2, -5)").unwrap();
    p.run_long(&["rollout", "--expand"])
        .expect_code(1)
        .expect_output("tenant-003")
        .expect_output("not settled");
    for (tenant, versions) in fleet.versions() {
        assert_eq!(versions, at(&[BASE]), "tenant {tenant}: nothing applied before the contract");
    }
    assert!(fleet.tenant("001").exists(&format!("{NEW}.accounts")), "the canary is expanded");
    assert!(fleet.tenant("001").exists("ledger"), "the expand makes the new table");

    fleet.tenant("003").batch_execute("update accounts set balance = 0").unwrap();
    p.run_long(&["rollout", "--resume"]).expect_code(0).expect_output("expanded, then contracted");
    for (tenant, versions) in fleet.versions() {
        assert_eq!(versions, at(&[BASE, LEDGER, CHECKED]), "tenant {tenant} is contracted");
        assert!(!fleet.tenant(&tenant).exists(&format!("{NEW}.accounts")), "tenant {tenant}");
    }
    let valid: bool = fleet
        .tenant("003")
        .query_one(
            "select convalidated from pg_constraint where conname = 'balance_nonnegative'",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(valid, "the mended tenant's constraint is validated");

    p.run_long(&["rollout", "--undo"]).expect_code(0);
    for (tenant, versions) in fleet.versions() {
        assert_eq!(versions, at(&[BASE]), "tenant {tenant} is taken back");
        assert!(!fleet.tenant(&tenant).exists("ledger"), "tenant {tenant}");
    }
}
