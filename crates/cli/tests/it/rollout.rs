//! `backstop rollout`: the migrations carried to hundreds of tenant
//! databases on one cluster in waves, each with its gates; a planted
//! failure halts its wave with every other database done or untouched; a
//! run killed mid-wave resumes without applying a migration twice; the
//! undo takes every tenant back; a trigger breached during a bake halts
//! before the next wave; bad input is refused before anything is written.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::common::{poll_until, DbExt, Project, CLUSTER};

pub const BASE: &str = "20260101000000_base";
pub const LEDGER: &str = "20260201000000_ledger";
pub const CHECKED: &str = "20260202000000_nonnegative";

/// The waves of issue 36: a canary of two, then twenty, then the rest.
pub const WAVES: &str = r#"
[[waves]]
name = "canary"
targets = ["tenant-*"]
count = 2

[[waves]]
name = "early"
targets = ["tenant-*"]
count = 20
parallel = 8

[[waves]]
name = "rest"
targets = ["tenant-*"]
parallel = 8
halt_after = 1
"#;

/// A control database (the project's) listing `n` tenant databases, each
/// a copy of one at `BASE`, and the two migrations of the release in the
/// folder. `gates`: the config lines that choose the gates.
pub struct Fleet {
    pub p: Project,
    /// Tenant name ("001") → its database.
    pub tenants: BTreeMap<String, String>,
}

impl Fleet {
    pub fn new(label: &str, n: usize, gates: &str, waves: &str) -> Fleet {
        let p = Project::new(label);
        p.migration(
            BASE,
            "create table accounts (id int primary key, balance int not null);\n\
             create table app_errors (at timestamptz not null default now());\n",
            Some("drop table app_errors;\ndrop table accounts;\n"),
        );
        p.config(&format!(
            "[database]\nurl = \"${{DATABASE_URL}}\"\n\n[migrations]\ndir = \"migrations\"\n{gates}\n"
        ));
        // The template: the base applied by Backstop, a row in each table.
        let template = format!("{}_tpl", p.db);
        CLUSTER.create_database(&template, None).unwrap();
        p.run_with_url(&CLUSTER.url(&template), &["migrate", "--no-backup", "fresh template"])
            .expect_code(0);
        CLUSTER
            .connect(&template)
            .unwrap()
            .batch_execute("insert into accounts values (1, 10)")
            .unwrap();
        let mut control = p.client();
        control.batch_execute("create table tenants (name text, url text)").unwrap();
        let mut tenants = BTreeMap::new();
        let started = Instant::now();
        for i in 1..=n {
            let name = format!("{i:03}");
            let db = format!("{}_t{name}", p.db);
            CLUSTER.create_database(&db, Some(&template)).unwrap();
            control
                .execute("insert into tenants values ($1, $2)", &[&name, &CLUSTER.url(&db)])
                .unwrap();
            tenants.insert(name, db);
        }
        eprintln!("{n} tenant databases created in {:.1} s", started.elapsed().as_secs_f64());
        p.migration(
            LEDGER,
            "create table ledger (id bigserial primary key, account int not null references accounts (id), amount int not null);\n",
            Some("drop table ledger;\n"),
        );
        p.migration(
            CHECKED,
            "alter table accounts add constraint balance_nonnegative check (balance >= 0);\n",
            Some("alter table accounts drop constraint balance_nonnegative;\n"),
        );
        p.config(&format!(
            "[rollout]\ncontrol = \"${{DATABASE_URL}}\"\n\n[migrations]\ndir = \"migrations\"\n{gates}\n\n\
             [[targets]]\nname = \"tenant-{{name}}\"\nquery = \"select name, url from tenants order by name\"\n{waves}"
        ));
        Fleet { p, tenants }
    }

    pub fn tenant(&self, name: &str) -> postgres::Client {
        CLUSTER.connect(&self.tenants[name]).unwrap()
    }

    /// Each tenant's applied versions.
    pub fn versions(&self) -> BTreeMap<String, Vec<String>> {
        self.tenants.keys().map(|t| (t.clone(), self.tenant(t).applied())).collect()
    }

    /// Each target's state in the control database, by name.
    pub fn states(&self) -> BTreeMap<String, String> {
        let json = self.p.run(&["rollout", "status", "--format", "json"]).expect_code(0).json();
        json["targets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (t["name"].as_str().unwrap().to_string(), t["state"].as_str().unwrap().to_string())
            })
            .collect()
    }
}

pub fn at(versions: &[&str]) -> Vec<String> {
    versions.iter().map(|v| v.split('_').next().unwrap().to_string()).collect()
}

#[test]
fn two_hundred_tenants_in_waves_halt_on_a_planted_failure_resume_after_a_kill_and_undo() {
    // Backups are the bulk of a tenant's gates (a pg_dump each: 18 s
    // against 2 s for the first run here); every gate, backups included,
    // is on in `every_gate_runs_on_every_tenant`.
    let fleet = Fleet::new("rollout200", 200, "[backup]\nrequired = false\n", WAVES);
    let p = &fleet.p;
    // The planted failure: tenant 057 holds a row the new constraint refuses.
    fleet.tenant("057").batch_execute("insert into accounts values (2, -5)").unwrap();

    let run = p.run_long(&["rollout"]);
    run.expect_code(1).expect_output("halted").expect_output("tenant-057");
    let states = fleet.states();
    assert_eq!(states["tenant-057"], "failed");
    let before = at(&[BASE]);
    let after = at(&[BASE, LEDGER, CHECKED]);
    for (tenant, versions) in fleet.versions() {
        let state = &states[&format!("tenant-{tenant}")];
        match state.as_str() {
            "done" => assert_eq!(versions, after, "tenant {tenant} is done"),
            "pending" | "failed" => {
                assert_eq!(versions, before, "tenant {tenant} ({state}) is untouched");
                assert!(!fleet.tenant(&tenant).exists("ledger"), "tenant {tenant}: half applied");
            }
            other => panic!("tenant {tenant} is {other} after the run ended"),
        }
        if tenant.as_str() <= "022" {
            assert_eq!(state, "done", "the first two waves went through: {tenant}");
        }
    }
    let pending = states.values().filter(|s| *s == "pending").count();
    assert!(pending > 0, "the halt left the rest of the wave untouched");

    // Fixed, then resumed and killed mid-wave, then resumed to the end.
    fleet.tenant("057").batch_execute("update accounts set balance = 0").unwrap();
    let done_now = states.values().filter(|s| *s == "done").count();
    let mut child = p
        .std_cmd(&["rollout", "--resume"])
        .stderr(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut control = p.client();
    poll_until("the resumed run migrates a dozen more", 600, Duration::from_millis(100), || {
        let done: i64 = control
            .query_one("select count(*) from backstop.rollout_targets where state = 'done'", &[])
            .unwrap()
            .get(0);
        done as usize >= done_now + 12
    });
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), None, "killed mid-wave, not finished: {status:?}");
    let json = p.run(&["rollout", "status", "--format", "json"]).expect_code(0).json();
    assert_eq!(json["state"], "running", "{json}");
    assert!(json["next"].as_str().unwrap().contains("--resume"), "{json}");

    p.run_long(&["rollout", "--resume"]).expect_code(0).expect_output("every wave ran");
    let states = fleet.states();
    assert!(states.values().all(|s| s == "done"), "{states:?}");
    for (tenant, versions) in fleet.versions() {
        assert_eq!(versions, after, "tenant {tenant}");
        // Each migration went in exactly once: one successful migrate of
        // the release, whatever the kill interrupted.
        let mut c = fleet.tenant(&tenant);
        let ok: i64 = c
            .query_one(
                "select count(*) from backstop.events where kind = 'migrate' and outcome = 'ok' and $1 = any(versions)",
                &[&after[1]],
            )
            .unwrap()
            .get(0);
        assert!(ok <= 1, "tenant {tenant}: the release was applied {ok} times");
        let applied: i64 = c
            .query_one("select count(*) from backstop.applied where version = any($1)", &[&after])
            .unwrap()
            .get(0);
        assert_eq!(applied, 3, "tenant {tenant}");
    }

    // The undo: every tenant back to the version before, newest wave first.
    p.run_long(&["rollout", "--undo"]).expect_code(0);
    for (tenant, versions) in fleet.versions() {
        assert_eq!(versions, before, "tenant {tenant} is back");
        assert!(!fleet.tenant(&tenant).exists("ledger"), "tenant {tenant}");
    }
    let json = p.run(&["rollout", "status", "--format", "json"]).expect_code(0).json();
    assert_eq!(json["state"], "undone", "{json}");
}

#[test]
fn every_gate_runs_on_every_tenant_and_the_undo_restores_where_no_down_exists() {
    let waves = "\n[[waves]]\nname = \"canary\"\ntargets = [\"tenant-*\"]\ncount = 1\n\n\
                 [[waves]]\nname = \"rest\"\ntargets = [\"tenant-*\"]\nparallel = 3\n";
    let fleet = Fleet::new("rollout_gates", 4, "", waves);
    let p = &fleet.p;
    p.run_long(&["rollout"]).expect_code(0).expect_output("every wave ran");
    let ledger = at(&[LEDGER])[0].clone();
    for tenant in fleet.tenants.keys() {
        let mut c = fleet.tenant(tenant);
        let gates: serde_json::Value = c
            .query_one(
                "select details->'gates' from backstop.events
                  where kind = 'migrate' and outcome = 'ok' and $1 = any(versions)",
                &[&ledger],
            )
            .unwrap()
            .get(0);
        for gate in ["freeze", "check", "backup"] {
            assert!(gates.get(gate).is_some(), "tenant {tenant}: no {gate} gate in {gates}");
        }
        let backup: Option<String> = c
            .query_one("select backup_id from backstop.applied where version = $1", &[&ledger])
            .unwrap()
            .get(0);
        assert!(backup.is_some(), "tenant {tenant} migrated without its backup");
    }
    // Without the ledger's down, each tenant goes back by its backup.
    std::fs::remove_file(p.path().join(format!("migrations/{LEDGER}/down.sql"))).unwrap();
    p.run_long(&["rollout", "--undo"]).expect_code(0).expect_output("(restore)");
    for (tenant, versions) in fleet.versions() {
        assert_eq!(versions, at(&[BASE]), "tenant {tenant} is back");
        assert!(!fleet.tenant(&tenant).exists("ledger"), "tenant {tenant}");
    }
}

#[test]
fn a_trigger_breached_during_the_canarys_bake_halts_before_the_next_wave() {
    let gates = "[backup]\nrequired = false\n\n[[triggers]]\nname = \"errors\"\nsource = \"sql\"\n\
                 sql = \"select count(*) from app_errors\"\nabove = 0\ninterval = \"1s\"\nmethod = \"A\"\n";
    let waves =
        "\n[[waves]]\nname = \"canary\"\ntargets = [\"tenant-*\"]\ncount = 1\nbake = \"2s\"\n\n\
                 [[waves]]\nname = \"rest\"\ntargets = [\"tenant-*\"]\nparallel = 2\n";
    let fleet = Fleet::new("rollout_bake", 3, gates, waves);
    let p = &fleet.p;
    fleet.tenant("001").batch_execute("insert into app_errors default values").unwrap();
    p.run_long(&["rollout"])
        .expect_code(1)
        .expect_output("a trigger breached during the bake of wave \"canary\"")
        .expect_output("on tenant-001");
    let states = fleet.states();
    assert_eq!(states["tenant-001"], "done");
    for t in ["002", "003"] {
        assert_eq!(states[&format!("tenant-{t}")], "pending");
        assert_eq!(fleet.tenant(t).applied(), at(&[BASE]), "tenant {t} is untouched");
    }
    let json = p.run(&["rollout", "status", "--format", "json"]).expect_code(0).json();
    assert_eq!(json["state"], "halted");
    assert_eq!(json["waves"][0]["state"], "halted");
    assert_eq!(json["waves"][0]["evidence"]["verdict"], "breach", "{json}");
    assert_eq!(json["waves"][1]["state"], "pending");
    // A halted rollout is resumed or undone, not started over.
    p.run(&["rollout"])
        .expect_code(2)
        .expect_output("rollout 1 is halted")
        .expect_output("--resume");

    // The status page shows where the rollout stands.
    let server = crate::common::server::Server::start(p);
    let (code, page, _) = server.get("/", None);
    assert_eq!(code, 200);
    assert!(page.contains("Rollout 1") && page.contains("halted"), "{page}");
    drop(server);

    // Once the errors are gone, the resumed run bakes the canary again and goes on.
    fleet.tenant("001").batch_execute("delete from app_errors").unwrap();
    p.run_long(&["rollout", "--resume"]).expect_code(0);
    let json = p.run(&["rollout", "status", "--format", "json"]).expect_code(0).json();
    assert_eq!(json["waves"][0]["evidence"]["verdict"], "held", "{json}");
    assert!(fleet.states().values().all(|s| s == "done"));
}
