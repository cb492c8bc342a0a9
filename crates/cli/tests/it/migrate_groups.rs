//! The transaction groups of `migrate` on a real cluster: the plan says
//! each group and why it is apart, an added enum value splits nothing
//! unless a later statement uses it, a failure after committed groups says
//! what stays and how to go back, a value the plan cannot see fails its
//! group with a fix that names `--each`, and `all_or_nothing` refuses a
//! batch that cannot be one unit before anything runs.

use crate::common::{DbExt, Project};
use serde_json::Value;

/// A project whose database has the enum `mood` and the table `people`
/// (migration 1, applied).
fn with_mood(label: &str) -> Project {
    let p = Project::new(label);
    p.migration(
        "1_mood",
        "CREATE TYPE mood AS ENUM ('ok');\nCREATE TABLE people (id int, mood mood);\n\
         INSERT INTO people VALUES (1, 'ok'), (2, NULL);\n",
        Some("DROP TABLE people;\nDROP TYPE mood;\n"),
    );
    p.run(&["migrate"]).expect_code(0);
    p
}

fn labels(db: &mut postgres::Client) -> Vec<String> {
    db.texts(
        "select enumlabel::text from pg_enum where enumtypid = 'mood'::regtype order by enumsortorder",
    )
}

#[test]
fn an_enum_value_no_later_statement_uses_stays_in_the_one_transaction() {
    let p = with_mood("enum_unused");
    p.migration("2_add_meh", "ALTER TYPE mood ADD VALUE 'meh';\n", None);
    // A 'meh' that is not a constant of the statement is no use of it.
    p.migration(
        "3_notes",
        "CREATE TABLE notes (id int, body text DEFAULT 'meh and more');\n\
         COMMENT ON TABLE notes IS 'meh';\n",
        None,
    );
    p.migration("4_broken", "INSERT INTO notes VALUES (1 / 0);\n", None);

    let dry = p.run(&["migrate", "--accept-risk", "BS405", "--dry-run"]);
    dry.expect_code(0)
        .expect_output("group 1 (transaction, 4 statement(s)): 2, 3, 4\n")
        .expect_output("'meh' added to mood at migrations/2_add_meh/up.sql:1: no later statement of its transaction uses it, so ADD VALUE stays in the transaction");
    assert!(!dry.stdout.contains("group 2"), "{}", dry.stdout);

    // One transaction: the failure of 4 takes the value and the table with it.
    p.run(&["migrate", "--accept-risk", "BS405"])
        .expect_code(1)
        .expect_output("error 22012")
        .expect_output("rolled back: nothing of 2, 3, 4 was committed; the database is as it was");
    let mut db = p.client();
    assert_eq!(labels(&mut db), ["ok"], "the added value was rolled back with the rest");
    assert!(!db.exists("notes"));
    assert_eq!(db.applied(), ["1"]);
}

#[test]
fn a_failure_after_committed_groups_says_what_stays_and_the_way_back() {
    let p = with_mood("groups_fail");
    p.migration("2_items", "CREATE TABLE items (id int, sku text);\n", Some("DROP TABLE items;\n"));
    p.migration("3_add_meh", "ALTER TYPE mood ADD VALUE 'meh';\n", None);
    p.migration(
        "4_use_meh",
        "CREATE TABLE moods_seen (id int);\nUPDATE people SET mood = 'meh' WHERE mood IS NULL;\n",
        Some("UPDATE people SET mood = NULL WHERE mood = 'meh';\nDROP TABLE moods_seen;\n"),
    );
    p.migration(
        "5_items_sku_idx",
        "-- backstop:no-transaction\nCREATE INDEX CONCURRENTLY items_sku_idx ON items (sku);\n",
        Some("-- backstop:no-transaction\nDROP INDEX CONCURRENTLY items_sku_idx;\n"),
    );
    p.migration("6_tags", "CREATE TABLE tags (id int);\n", Some("DROP TABLE tags;\n"));
    p.migration("7_broken", "INSERT INTO tags SELECT id FROM no_such_table;\n", None);

    // Its check gate runs the ups on a copy first: 7 cannot run, NO-GO.
    p.run(&["migrate", "--dry-run"])
        .expect_code(1)
        .expect_output("BS405 migrations/7_broken/up.sql:1");
    // Past that gate, the run shows where a failure leaves the groups.
    let plan = p
        .run(&["migrate", "--dry-run", "--accept-risk", "BS405", "--format", "json"])
        .expect_code(0)
        .json();
    let groups: Vec<(Vec<String>, Value)> = plan["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            let versions = g["versions"].as_array().unwrap();
            let versions = versions.iter().map(|v| v.as_str().unwrap().to_string()).collect();
            (versions, g["split"]["kind"].clone())
        })
        .collect();
    let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(
        groups,
        vec![
            (v(&["2", "3"]), Value::Null),
            (v(&["4"]), "enum_value_used".into()),
            (v(&["5"]), "no_transaction".into()),
            (v(&["6", "7"]), "after_no_transaction".into()),
        ]
    );
    assert_eq!(plan["enum_values"][0]["rule"], "committed_before_use");
    assert_eq!(plan["enum_values"][0]["used_in"], "4_use_meh");

    let run = p.run(&["migrate", "--accept-risk", "BS405"]);
    run.expect_code(1)
        // The plan, before anything runs.
        .expect_output("plan: 4 groups, not one transaction")
        .expect_output("apart: 4_use_meh uses the enum value 'meh' (the string constant 'meh' at migrations/4_use_meh/up.sql:2)")
        .expect_output("apart: 5_items_sku_idx runs outside a transaction: CREATE INDEX CONCURRENTLY at migrations/5_items_sku_idx/up.sql:2")
        // Where the failure leaves the database.
        .expect_output("error 42P01")
        .expect_output("rolled back: group 4 (6, 7); nothing of it was committed")
        .expect_output("still committed: groups 1–3 of this run applied 4 migration(s), which stay applied: 2, 3, 4, 5")
        .expect_output("to undo what stays applied: backstop rollback --to 1");
    assert!(!run.all().contains("the database is as it was"), "{}", run.all());

    let mut db = p.client();
    assert_eq!(db.applied(), ["1", "2", "3", "4", "5"]);
    assert!(db.exists("items") && db.exists("items_sku_idx") && db.exists("moods_seen"));
    assert!(!db.exists("tags"), "group 4 was rolled back");
    assert_eq!(labels(&mut db), ["ok", "meh"]);
    let details: Value = db
        .query_one(
            "select details from backstop.events where kind = 'migrate' and outcome = 'rolled_back'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(details["standing"]["committed"], serde_json::json!(["2", "3", "4", "5"]));
    assert_eq!(details["standing"]["not_run"], serde_json::json!([]));
    assert_eq!(details["standing"]["undo"], "backstop rollback --to 1");

    // The command it names takes the database back to where the run began.
    p.run(&["rollback", "--to", "1"]).expect_code(0);
    assert_eq!(db.applied(), ["1"]);
    assert!(!db.exists("items") && !db.exists("moods_seen"));
    let nulls: i64 =
        db.query_one("select count(*) from people where mood is null", &[]).unwrap().get(0);
    assert_eq!(nulls, 1);
}

#[test]
fn all_or_nothing_refuses_a_batch_that_cannot_be_one_transaction_before_anything_runs() {
    let p = Project::new("all_or_nothing");
    p.config(&format!("{}all_or_nothing = true\n", crate::common::DEFAULT_CONFIG));
    p.migration("1_items", "CREATE TABLE items (id int, sku text);\n", None);
    p.migration(
        "2_items_sku_idx",
        "-- backstop:no-transaction\nCREATE INDEX CONCURRENTLY items_sku_idx ON items (sku);\n",
        None,
    );
    p.migration("3_tags", "CREATE TABLE tags (id int);\n", None);

    for args in [&["migrate"][..], &["migrate", "--dry-run"]] {
        p.run(args)
            .expect_code(2)
            .expect_output("all_or_nothing = true, and the pending migrations cannot run in one transaction; nothing was applied")
            .expect_output("2_items_sku_idx runs outside a transaction: CREATE INDEX CONCURRENTLY at migrations/2_items_sku_idx/up.sql:2")
            .expect_output("`backstop migrate --to 1`");
    }
    p.run(&["migrate", "--each"])
        .expect_code(2)
        .expect_output("--each asks for one transaction per migration");
    let mut db = p.client();
    assert!(
        db.user_relations().iter().all(|r| r.starts_with("backstop.")),
        "{:?}",
        db.user_relations()
    );
    assert_eq!(db.applied(), Vec::<String>::new());

    // Group by group, each run is one unit, and the last is one transaction.
    p.run(&["migrate", "--to", "1"]).expect_code(0);
    p.run(&["migrate", "--to", "2"]).expect_code(0);
    p.run(&["migrate"]).expect_code(0);
    assert_eq!(db.applied(), ["1", "2", "3"]);
    assert!(db.exists("items_sku_idx") && db.exists("tags"));
}

/// Regression (issue 43): a value added inside a DO block's IF and used by
/// a later migration joined its user's group, which failed with 55P04.
#[test]
fn an_enum_value_added_in_a_do_block_commits_before_the_migration_that_uses_it() {
    let p = with_mood("enum_do_block");
    p.migration(
        "2_add_meh",
        "DO $$ BEGIN\n  IF NOT EXISTS (SELECT 1 FROM pg_enum WHERE enumlabel = 'meh') THEN\n    \
         ALTER TYPE mood ADD VALUE 'meh';\n  END IF;\nEND $$;\n",
        None,
    );
    p.migration("3_use_meh", "UPDATE people SET mood = 'meh' WHERE id = 2;\n", None);
    let dry = p.run(&["migrate", "--dry-run"]);
    dry.expect_code(0).expect_output("group 2");
    p.run(&["migrate"]).expect_code(0);
    let mut db = p.client();
    assert_eq!(labels(&mut db), ["ok", "meh"]);
    assert_eq!(db.applied(), ["1", "2", "3"]);
}

#[test]
fn an_enum_value_the_plan_cannot_see_fails_its_group_with_a_fix_that_names_each() {
    let p = with_mood("enum_unseen");
    // The value is added by a string the planner cannot read as SQL.
    p.migration(
        "2_add_meh",
        "DO $$ BEGIN EXECUTE 'ALTER TYPE mood ADD VALUE ' || quote_literal('meh'); END $$;\n",
        None,
    );
    p.migration("3_use_meh", "UPDATE people SET mood = 'meh' WHERE id = 2;\n", None);
    let run = p.run(&["migrate"]);
    assert_ne!(run.code, Some(0), "{}", run.stderr);
    run.expect_output("backstop migrate --each");
    let mut db = p.client();
    assert_eq!(db.applied(), ["1"], "the failed group changed nothing");
    assert_eq!(labels(&mut db), ["ok"]);
    p.run(&["migrate", "--each"]).expect_code(0);
    assert_eq!(labels(&mut p.client()), ["ok", "meh"]);
    assert_eq!(p.client().applied(), ["1", "2", "3"]);
}
