//! `rollback`'s options with the default method (the down migrations, no
//! `--method`): `--reason` goes into the audit log, `--yes` is taken, and
//! `--steps` and `--to` say in their usage and in their error which
//! methods they belong to; `--to start` goes as far as the downs reach, and
//! a rollback names what its downs do not put back.

use crate::common::{DbExt, Project, DEFAULT_CONFIG};

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
    let help = p.run(&["respond", "method", "--help"]);
    help.expect_code(0);
    let text = help.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(text.contains("Method C: revert everything applied after VERSION"), "{text}");
    // The rollback's own help no longer speaks of methods.
    let help = p.run(&["rollback", "--help"]).expect_code(0).stdout.clone();
    assert!(!help.contains("--method") && !help.contains("--release"), "{help}");
    for (method, does) in [("A", "turns flags off"), ("B", "restores a backup")] {
        for words in [&["rollback", "--method", method][..], &["respond", "method", method]] {
            let mut args = words.to_vec();
            args.extend(["--steps", "1", "--yes"]);
            p.run(&args)
                .expect_code(2)
                .expect_output("--to and --steps choose the migrations that method C reverts")
                .expect_output(&format!("method {method} {does} and reverts no migration"));
        }
    }
    assert_eq!(db.applied(), ["1", "2"]);
}

/// Issue 43: `--to start` undoes everything the downs reach and stops
/// before the first migration that has none; the dry run and the run name
/// each up whose changed rows no down puts back, and the backup that
/// holds them. Filling a column the same up added is no such change.
#[test]
fn rollback_to_start_goes_as_far_as_the_downs_reach_and_names_what_they_cannot_put_back() {
    let p = Project::new("rb_start");
    // No down proved and kept at the deploy: 1 keeps having none.
    p.config(&format!("{DEFAULT_CONFIG}keep_downs = false\n"));
    let mut db = p.client();
    db.batch_execute("CREATE TABLE legacy (id int); INSERT INTO legacy VALUES (1), (2);").unwrap();
    p.migration("1_drop_legacy", "DROP TABLE legacy;", None);
    p.migration(
        "2_items",
        "CREATE TABLE items (id int PRIMARY KEY, price int);\nINSERT INTO items VALUES (1, 10), (2, 20);",
        Some("DROP TABLE items;"),
    );
    p.migration(
        "3_prices",
        "UPDATE items SET price = price * 2;\nALTER TABLE items ADD COLUMN note text;\nUPDATE items SET note = 'x';",
        Some("ALTER TABLE items DROP COLUMN note;"),
    );
    p.run(&["migrate"]).expect_code(0);
    assert_eq!(db.applied(), ["1", "2", "3"]);

    let dry = p.run(&["rollback", "--to", "start", "--dry-run"]);
    dry.expect_code(0)
        .expect_output("stopped before 1_drop_legacy: it has no down")
        .expect_output("3_prices: UPDATE of items (")
        .expect_output("up.sql:1)");
    assert!(
        !dry.stdout.contains("up.sql:3)"),
        "filling the added column is no loss:\n{}",
        dry.stdout
    );
    assert!(!dry.stdout.contains("2_items:"), "{}", dry.stdout);
    assert_eq!(db.applied(), ["1", "2", "3"]);

    p.run(&["rollback", "--to", "start"])
        .expect_code(0)
        .expect_output("stopped before 1_drop_legacy")
        // Nothing recorded what the downs must bring back: no ✓ for them.
        .expect_output("↩ ran the down of 3_prices")
        .expect_output("not compared: no picture of the schema before 2, 3 was kept")
        .expect_output("3_prices: UPDATE of items");
    assert_eq!(db.applied(), ["1"]);
    assert!(!db.exists("items"));
}
