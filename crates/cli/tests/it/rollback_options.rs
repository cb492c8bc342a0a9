//! `rollback`'s options with the default method (the down migrations, no
//! `--method`): `--reason` goes into the audit log, `--yes` is taken, and
//! `--steps` and `--to` say in their usage and in their error which
//! methods they belong to.

use crate::common::{DbExt, Project};

fn two_applied(label: &str) -> (Project, postgres::Client) {
    let p = Project::new(label);
    p.migration("1_a", "CREATE TABLE a (id int PRIMARY KEY);", Some("DROP TABLE a;"));
    p.migration("2_b", "CREATE TABLE b (id int PRIMARY KEY);", Some("DROP TABLE b;"));
    p.run(&["migrate"]).expect_code(0);
    let db = p.client();
    (p, db)
}

/// The `reason` of each `rollback` event, oldest first.
fn reasons(db: &mut postgres::Client) -> Vec<(String, Option<String>)> {
    db.query(
        "select outcome, details->>'reason' from backstop.events where kind = 'rollback' order by id",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

#[test]
fn rollback_reason_and_yes_work_without_a_method_and_the_reason_is_audited() {
    let (p, mut db) = two_applied("rollback_reason");
    p.run(&["rollback", "--steps", "1", "--reason", "checkout errors after 2", "--yes"])
        .expect_code(0)
        .expect_output("reverted 2_b");
    assert_eq!(db.applied(), ["1"]);
    let said = Some("checkout errors after 2".to_string());
    assert_eq!(reasons(&mut db), [("started".into(), said.clone()), ("ok".into(), said)]);
    // Without a reason the events say none.
    p.run(&["rollback", "--yes"]).expect_code(0);
    assert_eq!(reasons(&mut db)[2..], [("started".into(), None), ("ok".into(), None)]);
    // --yes carries out; --dry-run changes nothing: both at once is a usage error.
    p.run(&["migrate"]).expect_code(0);
    p.run(&["rollback", "--yes", "--dry-run"]).expect_code(2);
    assert_eq!(db.applied(), ["1", "2"]);
}

#[test]
fn steps_with_a_method_that_reverts_no_migration_says_which_methods_take_it() {
    let (p, mut db) = two_applied("rollback_steps_usage");
    let help = p.run(&["rollback", "--help"]);
    help.expect_code(0);
    let text = help.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        text.contains("The default rollback and method C; methods A and B revert no migration"),
        "{text}"
    );
    for (method, does) in [("A", "turns flags off"), ("B", "restores a backup")] {
        p.run(&["rollback", "--method", method, "--steps", "1", "--yes"])
            .expect_code(2)
            .expect_output("the default rollback (no --method) or method C reverts")
            .expect_output(&format!("method {method} {does} and reverts no migration"));
    }
    assert_eq!(db.applied(), ["1", "2"]);
}
