//! The commands end to end: the real `backstop` binary against a real
//! throwaway PostgreSQL, checking what the database holds afterwards.

use crate::common::{event, DbExt, Project};
use serde_json::Value;

fn versions(items: &Value) -> Vec<String> {
    items
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {items}"))
        .iter()
        .map(|i| i["version"].as_str().expect("item has a version").to_string())
        .collect()
}

#[test]
fn init_writes_config_and_refuses_to_overwrite_and_new_creates_a_timestamped_folder() {
    let p = Project::new("init");
    std::fs::remove_file(p.path().join("backstop.toml")).unwrap();
    std::fs::remove_dir(p.path().join("migrations")).unwrap();

    p.run(&["init"]).expect_code(0);
    let config = p.path().join("backstop.toml");
    assert!(config.is_file(), "init wrote no backstop.toml");
    assert!(p.path().join("migrations").is_dir(), "init made no migrations/");

    // A second init must not touch the user's (edited) file.
    let edited = format!("{}# my own edit\n", std::fs::read_to_string(&config).unwrap());
    std::fs::write(&config, &edited).unwrap();
    p.run(&["init"]).expect_code(2).expect_output("already exists");
    assert_eq!(std::fs::read_to_string(&config).unwrap(), edited);

    p.run(&["new", "add_clients"]).expect_code(0);
    let folders: Vec<String> = std::fs::read_dir(p.path().join("migrations"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(folders.len(), 1, "{folders:?}");
    let (version, name) = folders[0].split_once('_').unwrap();
    assert_eq!(name, "add_clients");
    assert!(
        version.len() == 14 && version.chars().all(|c| c.is_ascii_digit()),
        "version {version:?} is not a 14-digit timestamp"
    );
    let stamp = chrono::NaiveDateTime::parse_from_str(version, "%Y%m%d%H%M%S")
        .unwrap_or_else(|e| panic!("version {version} is not a timestamp: {e}"))
        .and_utc();
    let age = chrono::Utc::now() - stamp;
    assert!(age.num_seconds().abs() < 300, "version {version} is not the current UTC time");
    for file in ["up.sql", "down.sql", "verify.sql"] {
        assert!(p.path().join("migrations").join(&folders[0]).join(file).is_file(), "{file}");
    }

    p.run(&["new", "Bad-Name"]).expect_code(2).expect_output("lower_snake_case");
    assert_eq!(std::fs::read_dir(p.path().join("migrations")).unwrap().count(), 1);

    // The written config and folder work as they are: fill in the new
    // migration and apply it.
    let up = p.path().join("migrations").join(&folders[0]).join("up.sql");
    std::fs::write(&up, "CREATE TABLE clients (id int PRIMARY KEY);\n").unwrap();
    p.run(&["migrate"]).expect_code(0);
    assert!(p.client().exists("clients"));
    assert_eq!(p.client().applied(), [version]);
}

#[test]
fn migrate_applies_records_history_and_then_has_nothing_to_do() {
    let p = Project::new("migrate");
    p.migration(
        "1_create_a",
        "CREATE TABLE a (id int PRIMARY KEY);\nINSERT INTO a VALUES (1), (2);\n",
        Some("DROP TABLE a;"),
    );
    p.migration("2_create_b", "CREATE TABLE b (id int REFERENCES a);\n", Some("DROP TABLE b;\n"));

    let run = p.run(&["migrate"]);
    run.expect_code(0).expect_output("1_create_a").expect_output("2_create_b");

    let mut db = p.client();
    assert!(db.exists("a") && db.exists("b"));
    assert_eq!(db.count("a"), 2);
    let rows = db
        .query(
            "select version, name, checksum, applied_by, duration_ms
               from backstop.applied order by version",
            &[],
        )
        .unwrap();
    assert_eq!(rows.len(), 2);
    for (row, (version, name)) in rows.iter().zip([("1", "create_a"), ("2", "create_b")]) {
        assert_eq!(row.get::<_, String>(0), version);
        assert_eq!(row.get::<_, String>(1), name);
        assert_eq!(row.get::<_, String>(2).len(), 64, "checksum is a BLAKE3 hex digest");
        assert!(row.get::<_, String>(3).contains('@'), "applied_by is user@host");
        assert!(row.get::<_, i64>(4) >= 0);
    }
    assert_eq!(db.events(), [event("migrate", "ok", &["1", "2"])]);

    let again = p.run(&["migrate"]);
    again.expect_code(0).expect_output("nothing to migrate");
    assert_eq!(db.applied(), ["1", "2"]);
    assert_eq!(db.events().len(), 1, "a run with nothing to do logs no migration");
}

#[test]
fn status_json_lists_applied_pending_and_drifted_and_exits_1_on_drift() {
    let p = Project::new("status");
    p.migration("1_a", "CREATE TABLE a (id int);", None);
    p.migration("2_b", "CREATE TABLE b (id int);", None);

    // Before anything ran: all pending, and status creates nothing.
    let s = p.run(&["status", "--format", "json"]);
    let json = s.expect_code(0).json();
    assert_eq!(versions(&json["applied"]), Vec::<String>::new());
    assert_eq!(versions(&json["pending"]), ["1", "2"]);
    assert_eq!(json["pending"][0]["name"], "a");
    assert_eq!(versions(&json["drifted"]), Vec::<String>::new());
    assert!(!p.client().history_schema_exists(), "status created the backstop schema");

    p.run(&["migrate", "--to", "1"]).expect_code(0);
    let json = p.run(&["status", "--format", "json"]).expect_code(0).json();
    assert_eq!(versions(&json["applied"]), ["1"]);
    assert_eq!(json["applied"][0]["name"], "a");
    assert_eq!(versions(&json["pending"]), ["2"]);

    p.migration("1_a", "CREATE TABLE a (id bigint);", None);
    let s = p.run(&["status", "--format", "json"]);
    let json = s.expect_code(1).json();
    assert_eq!(versions(&json["drifted"]), ["1"]);
    assert_eq!(json["drifted"][0]["name"], "a");
    p.run(&["status"]).expect_code(1).expect_output("1_a was applied but its file has changed");
}

const FAILING_UP: &str = "-- clients and their projects
CREATE TABLE clients (id int PRIMARY KEY);
CREATE TABLE projects (id int PRIMARY KEY, client_id int REFERENCES clients);
INSERT INTO missing_table (id) VALUES (1);
CREATE TABLE never_reached (id int);
";

#[test]
fn failed_statement_is_reported_with_place_and_sqlstate_and_rolled_back() {
    let p = Project::new("failure");
    p.migration("20260107120000_add_clients", FAILING_UP, None);

    let run = p.run(&["migrate", "--accept-risk", "BS405"]);
    run.expect_code(1);
    insta::assert_snapshot!("failure_report", run.stdout);
    // The same facts, independently of the snapshot's layout.
    for needle in [
        "20260107120000",
        "statement 3/4",
        "20260107120000_add_clients/up.sql:4:13",
        "42P01",
        "relation \"missing_table\" does not exist",
    ] {
        run.expect_output(needle);
    }

    let mut db = p.client();
    for table in ["clients", "projects", "never_reached"] {
        assert!(!db.exists(table), "{table} exists after the rollback");
    }
    assert!(db.applied().is_empty());
    assert_eq!(db.events(), [event("migrate", "rolled_back", &["20260107120000"])]);

    let run = p.run(&["migrate", "--accept-risk", "BS405", "--format", "json"]);
    let json = run.expect_code(1).json();
    let f = &json["failure"];
    assert_eq!(f["version"], "20260107120000");
    assert_eq!(f["sqlstate"], "42P01");
    assert_eq!(f["statement"], 3);
    assert_eq!(f["statements"], 4);
    assert_eq!(f["line"], 4);
    assert_eq!(f["rolled_back"], true);
    assert!(f["message"].as_str().unwrap().contains("missing_table"), "{f}");
    assert!(json["done"].as_array().unwrap().is_empty());
    assert!(!db.exists("clients"));
    assert!(db.applied().is_empty());
    assert_eq!(db.events().len(), 2);
}

#[test]
fn failing_verify_sql_rolls_the_migration_back() {
    let p = Project::new("verify");
    p.migration("1_add_plans", "CREATE TABLE plans (id int);\n", None);
    p.write(
        "migrations/1_add_plans/verify.sql",
        "SELECT 1;\nDO $$ BEGIN\n  IF (SELECT count(*) FROM plans) = 0 THEN\n    \
         RAISE EXCEPTION 'plans must not be empty';\n  END IF;\nEND $$;\n",
    );

    // The check gate runs it on a copy first, verify.sql too: NO-GO, nothing ran.
    p.run(&["migrate"]).expect_code(1).expect_output(
        "BS405 migrations/1_add_plans/verify.sql:2: 1_add_plans fails on a copy of the database",
    );
    assert!(!p.client().exists("plans"));
    // Past the gate, the run itself rolls back at its verify.sql.
    let run = p.run(&["migrate", "--accept-risk", "BS405"]);
    run.expect_code(1)
        .expect_output("verify.sql statement 2/2 failed")
        .expect_output("plans must not be empty")
        .expect_output("P0001");
    let mut db = p.client();
    assert!(!db.exists("plans"));
    assert!(db.applied().is_empty());
    assert_eq!(
        db.events(),
        [event("migrate", "refused", &[]), event("migrate", "rolled_back", &["1"])]
    );

    // With the assertion satisfied the same migration goes through.
    p.migration(
        "1_add_plans",
        "CREATE TABLE plans (id int);\nINSERT INTO plans VALUES (1);\n",
        None,
    );
    p.run(&["migrate"]).expect_code(0).expect_output("1 verify.sql: 2 assertion(s) passed");
    assert_eq!(db.applied(), ["1"]);
}

const PROTECTED_USERS: &str = r#"[database]
url = "${DATABASE_URL}"

[migrations]
dir = "migrations"
protected_tables = ["users"]
"#;

fn users_fixture(p: &Project) -> postgres::Client {
    p.config(PROTECTED_USERS);
    let mut db = p.client();
    db.batch_execute(
        "CREATE TABLE users (id int PRIMARY KEY, email text NOT NULL);
         INSERT INTO users SELECT g, 'u' || g || '@example.com' FROM generate_series(1, 5) g;",
    )
    .unwrap();
    db
}

/// Writes `up` as the only migration, runs migrate, and expects a refusal.
fn expect_refused(p: &Project, db: &mut postgres::Client, up: &str, problems: &[&str]) {
    for entry in std::fs::read_dir(p.path().join("migrations")).unwrap() {
        std::fs::remove_dir_all(entry.unwrap().path()).unwrap();
    }
    p.migration("1_damage", up, None);
    // The check gate calls this NO-GO; accepting the risk lets the run reach
    // the transaction guard, which is what this test is about.
    let run = p.run(&["migrate", "--accept-risk", "BS100"]);
    run.expect_code(1).expect_output("rolled back");
    for problem in problems {
        run.expect_output(problem);
    }
    assert!(db.exists("users"), "users is gone after: {up}");
    assert_eq!(db.count("users"), 5, "users lost rows after: {up}");
    assert!(!db.exists("side_effect"), "the refused migration left side_effect behind");
    assert!(db.applied().is_empty());
}

#[test]
fn protected_table_drop_delete_and_truncate_are_refused_and_the_rows_stay() {
    let p = Project::new("protected");
    let mut db = users_fixture(&p);
    expect_refused(
        &p,
        &mut db,
        "CREATE TABLE side_effect (id int);\nDROP TABLE users;\n",
        &["protected table users was dropped"],
    );
    expect_refused(
        &p,
        &mut db,
        "CREATE TABLE side_effect (id int);\nDELETE FROM users WHERE id < 3;\n",
        &["statement 2/2 damaged a protected table", "protected table users had 2 row(s) deleted"],
    );
    expect_refused(
        &p,
        &mut db,
        "CREATE TABLE side_effect (id int);\nTRUNCATE users;\n",
        &["protected table users lost 5 of 5 row(s)"],
    );
    expect_refused(
        &p,
        &mut db,
        "CREATE TABLE side_effect (id int);\nDROP TABLE users;\n\
         CREATE TABLE users (id int PRIMARY KEY, email text NOT NULL);\n\
         INSERT INTO users SELECT g, 'x' FROM generate_series(1, 5) g;\n",
        &["protected table users was dropped"],
    );
    let events = db.events();
    assert_eq!(events.len(), 4);
    assert!(events.iter().all(|(k, o, _)| k == "migrate" && o == "rolled_back"), "{events:?}");

    // A migration that only adds a column to the protected table is fine.
    expect_applied_column(&p, &mut db);
}

fn expect_applied_column(p: &Project, db: &mut postgres::Client) {
    for entry in std::fs::read_dir(p.path().join("migrations")).unwrap() {
        std::fs::remove_dir_all(entry.unwrap().path()).unwrap();
    }
    p.migration("2_add_nickname", "ALTER TABLE users ADD COLUMN nickname text;\n", None);
    p.run(&["migrate"]).expect_code(0).expect_output("2_add_nickname");
    assert!(db
        .query_opt(
            "select 1 from information_schema.columns
              where table_name = 'users' and column_name = 'nickname'",
            &[],
        )
        .unwrap()
        .is_some());
    assert_eq!(db.count("users"), 5);
    assert_eq!(db.applied(), ["2"]);
}

#[test]
fn no_transaction_migration_cannot_delete_from_a_protected_table_after_a_stats_flush() {
    // Regression: statements of a no-transaction migration commit one by
    // one, and the server flushes the per-transaction delete counts the
    // check relies on about once a second; a DELETE followed by anything
    // slower than that went unnoticed.
    let p = Project::new("notx_protected");
    let mut db = users_fixture(&p);
    p.migration(
        "1_purge",
        "-- backstop:no-transaction\nDELETE FROM users WHERE id < 3;\nSELECT pg_sleep(1.2);\n",
        None,
    );
    p.run(&["migrate", "--accept-risk", "BS100"])
        .expect_code(1)
        .expect_output("statement 1/2 damaged a protected table")
        .expect_output("protected table users had 2 row(s) deleted")
        .expect_output("NOT rolled back: 0 statement(s)");
    assert_eq!(db.count("users"), 5, "the DELETE of a no-transaction migration stayed");
    assert!(db.applied().is_empty());

    // Regression: VACUUM FULL rewrites the table but keeps every row; it was
    // reported as an unforeseen rewrite and left committed but unrecorded.
    p.migration("1_purge", "-- backstop:no-transaction\nVACUUM FULL users;\n", None);
    p.run(&["migrate"]).expect_code(0);
    assert_eq!(db.count("users"), 5);
    assert_eq!(db.applied(), ["1"]);

    // Statements that leave the protected rows alone are committed as usual.
    p.migration(
        "2_email_idx",
        "-- backstop:no-transaction\nINSERT INTO users VALUES (6, 'u6@example.com');\n\
         CREATE INDEX CONCURRENTLY users_email_idx ON users (email);\n",
        None,
    );
    p.run(&["migrate"]).expect_code(0);
    assert_eq!(db.count("users"), 6);
    assert!(db.exists("users_email_idx"));
    assert_eq!(db.applied(), ["1", "2"]);
}

#[test]
fn missing_protected_table_fails_pre_flight_and_nothing_runs() {
    let p = Project::new("preflight");
    p.config(PROTECTED_USERS);
    p.migration("1_a", "CREATE TABLE a (id int);", None);
    // The check gate sees the missing table first ...
    p.run(&["migrate"]).expect_code(1).expect_output("NO-GO, 1 critical finding(s):\n  BS100 ");
    // ... and past it, pre-flight still refuses.
    p.run(&["migrate", "--accept-risk", "BS100"])
        .expect_code(1)
        .expect_output("pre-flight check failed")
        .expect_output("protected table users does not exist");
    let mut db = p.client();
    assert!(!db.exists("a"));
    assert!(db.applied().is_empty());
}

#[test]
fn protected_table_named_like_an_injection_stays_a_name() {
    let p = Project::new("hostile");
    p.config(
        r#"[database]
url = "${DATABASE_URL}"

[migrations]
dir = "migrations"
protected_tables = ['x"; DROP TABLE users; --']
"#,
    );
    let mut db = p.client();
    db.batch_execute(
        r#"CREATE TABLE users (id int);
           INSERT INTO users VALUES (1), (2);
           CREATE TABLE "x""; DROP TABLE users; --" (id int);
           INSERT INTO "x""; DROP TABLE users; --" VALUES (1);
           CREATE TABLE other (id int);"#,
    )
    .unwrap();

    p.migration("1_add_note", "ALTER TABLE other ADD COLUMN note text;\n", None);
    p.run(&["migrate"]).expect_code(0);
    assert!(db.exists("users"), "the protected table's name was run as SQL");
    assert_eq!(db.count("users"), 2);
    assert_eq!(db.applied(), ["1"]);

    p.migration("2_drop_it", "DROP TABLE \"x\"\"; DROP TABLE users; --\";\n", None);
    p.run(&["migrate", "--accept-risk", "BS100"])
        .expect_code(1)
        .expect_output(r#"protected table x"; DROP TABLE users; -- was dropped"#);
    assert!(db.exists(r#""x""; DROP TABLE users; --""#));
    assert!(db.exists("users"));
    assert_eq!(db.applied(), ["1"]);
}

/// Three migrations whose downs write to `trail`, which no migration touches,
/// so the order the downs ran in can be read afterwards.
fn rollback_fixture(p: &Project) -> postgres::Client {
    let mut db = p.client();
    db.batch_execute("CREATE TABLE trail (id serial PRIMARY KEY, version text)").unwrap();
    for (v, table, refs) in
        [("1", "a", ""), ("2", "b", " REFERENCES a"), ("3", "c", " REFERENCES b")]
    {
        p.migration(
            &format!("{v}_create_{table}"),
            &format!("CREATE TABLE {table} (id int PRIMARY KEY, up int{refs});"),
            Some(&format!("DROP TABLE {table};\nINSERT INTO trail (version) VALUES ('{v}');")),
        );
    }
    p.run(&["migrate"]).expect_code(0);
    assert_eq!(db.applied(), ["1", "2", "3"]);
    db
}

fn trail(db: &mut postgres::Client) -> Vec<String> {
    db.texts("select version from trail order by id")
}

#[test]
fn rollback_steps_to_and_dry_run_revert_exactly_what_they_say_newest_first() {
    let p = Project::new("rollback");
    let mut db = rollback_fixture(&p);

    let dry = p.run(&["rollback", "--steps", "2", "--dry-run"]);
    dry.expect_code(0).expect_output("3, 2").expect_output("dry run: nothing was changed");
    let json =
        p.run(&["rollback", "--to", "1", "--dry-run", "--format", "json"]).expect_code(0).json();
    assert_eq!(json["dry_run"], true);
    assert_eq!(json["groups"][0]["versions"], serde_json::json!(["3", "2"]));
    assert!(json["done"].as_array().unwrap().is_empty());
    assert_eq!(db.applied(), ["1", "2", "3"]);
    assert!(db.exists("c") && db.exists("b"));
    assert!(trail(&mut db).is_empty());

    p.run(&["rollback", "--steps", "1"]).expect_code(0).expect_output("reverted 3_create_c");
    assert_eq!(db.applied(), ["1", "2"]);
    assert!(!db.exists("c") && db.exists("b"));
    assert_eq!(trail(&mut db), ["3"]);

    p.run(&["migrate"]).expect_code(0);
    p.run(&["rollback", "--to", "1"]).expect_code(0);
    assert_eq!(db.applied(), ["1"], "--to 1 must leave 1 applied");
    assert!(db.exists("a") && !db.exists("b") && !db.exists("c"));
    // c references b references a: the downs only succeed newest first.
    assert_eq!(trail(&mut db), ["3", "3", "2"]);

    let kinds: Vec<_> = db.events().into_iter().map(|(k, o, v)| (k, o, v.join(","))).collect();
    assert_eq!(
        kinds,
        [
            ("migrate".into(), "ok".into(), "1,2,3".into()),
            ("rollback".into(), "ok".into(), "3".into()),
            ("migrate".into(), "ok".into(), "3".into()),
            ("rollback".into(), "ok".into(), "3,2".into()),
        ]
    );
}

#[test]
fn rollback_refuses_when_a_down_is_missing_and_names_it() {
    let p = Project::new("nodown");
    let mut db = rollback_fixture(&p);
    std::fs::remove_file(p.path().join("migrations/2_create_b/down.sql")).unwrap();

    p.run(&["rollback", "--to", "1"])
        .expect_code(1)
        .expect_output("no down migration for 2_create_b");
    assert_eq!(db.applied(), ["1", "2", "3"]);
    assert!(db.exists("c"), "the down of 3 ran although the down of 2 is missing");
    assert!(trail(&mut db).is_empty());
    assert_eq!(db.events().last().unwrap(), &event("rollback", "refused", &["2"]));

    // Only the newest step has its down: that rollback works.
    p.run(&["rollback", "--steps", "1"]).expect_code(0);
    assert_eq!(db.applied(), ["1", "2"]);

    // Rolling back to a version that is not applied is a usage error.
    p.run(&["rollback", "--to", "999"]).expect_code(2).expect_output("999");
    assert_eq!(db.applied(), ["1", "2"]);
}

#[test]
fn a_migration_older_than_the_latest_applied_is_refused_until_allowed() {
    let p = Project::new("outoforder");
    p.migration("1_a", "CREATE TABLE a (id int);", None);
    p.migration("3_c", "CREATE TABLE c (id int);", None);
    p.run(&["migrate", "--no-backup", "test"]).expect_code(0);
    // Merged late from a branch: older than 3, which is applied.
    p.migration("2_b", "CREATE TABLE b (id int);", None);
    p.migration("4_d", "CREATE TABLE d (id int);", None);
    let mut db = p.client();
    p.run(&["migrate", "--no-backup", "test"])
        .expect_code(1)
        .expect_output("pending migration 2 is older than 3")
        .expect_output("--allow-out-of-order");
    assert_eq!(db.applied(), ["1", "3"], "nothing is applied, not even 4");
    assert_eq!(db.events().last().unwrap(), &event("migrate", "refused", &["2"]));

    p.run(&["migrate", "--no-backup", "test", "--allow-out-of-order"]).expect_code(0);
    assert_eq!(db.applied(), ["1", "2", "3", "4"]);
}

#[test]
fn comment_only_edits_are_not_drift_changed_statements_are_until_repaired() {
    let p = Project::new("drift");
    p.migration("1_a", "CREATE TABLE a (id int);\n", None);
    p.run(&["migrate"]).expect_code(0);
    let mut db = p.client();

    p.migration("1_a", "-- why a exists\ncreate table a (\n    id int -- the key\n);\n", None);
    p.run(&["status"]).expect_code(0);
    p.run(&["migrate"]).expect_code(0).expect_output("nothing to migrate");

    p.migration("1_a", "CREATE TABLE a (id bigint);\n", None);
    p.migration("2_b", "CREATE TABLE b (id int);\n", None);
    let json = p.run(&["status", "--format", "json"]).expect_code(1).json();
    assert_eq!(versions(&json["drifted"]), ["1"]);
    assert_eq!(versions(&json["pending"]), ["2"]);
    p.run(&["migrate"])
        .expect_code(1)
        .expect_output("1_a was applied but its file has changed")
        .expect_output("backstop history repair");
    assert!(!db.exists("b"), "migrate applied a pending migration despite drift");
    assert_eq!(db.applied(), ["1"]);
    assert_eq!(db.events().last().unwrap(), &event("migrate", "refused", &["1"]));

    let status = p.run(&["status"]);
    status.expect_code(1);
    insta::with_settings!({filters => vec![
        (r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC", "[time]"),
        (r"by \S+", "by [actor]"),
        (r"\d{8}T\d{6}Z-[0-9a-f]{4}", "[backup id]"),
    ]}, {
        insta::assert_snapshot!("status_with_drift", status.stdout);
    });

    p.run(&["repair", "1"]).expect_code(0).expect_output("repaired 1");
    assert_eq!(db.events().last().unwrap(), &event("repair", "ok", &["1"]));
    let json = p.run(&["status", "--format", "json"]).expect_code(0).json();
    assert_eq!(versions(&json["drifted"]), Vec::<String>::new());
    p.run(&["migrate"]).expect_code(0);
    assert!(db.exists("b"));
    assert_eq!(db.applied(), ["1", "2"]);

    // An applied migration whose file is gone is drift too.
    std::fs::remove_dir_all(p.path().join("migrations/2_b")).unwrap();
    let json = p.run(&["status", "--format", "json"]).expect_code(1).json();
    assert_eq!(versions(&json["drifted"]), ["2"]);
    assert_eq!(json["drifted"][0]["kind"], "missing");
    p.run(&["migrate"]).expect_code(1).expect_output("2_b was applied but its file is gone");
    assert_eq!(db.applied(), ["1", "2"]);
}

#[test]
fn no_transaction_migration_runs_alone_and_needs_its_marker() {
    let p = Project::new("notx");
    p.migration("1_items", "CREATE TABLE items (id int, sku text);\n", None);
    p.migration(
        "2_items_sku_idx",
        "-- backstop:no-transaction\nCREATE INDEX CONCURRENTLY items_sku_idx ON items (sku);\n",
        None,
    );
    p.migration("3_tags", "CREATE TABLE tags (id int);\n", None);

    let dry = p.run(&["migrate", "--dry-run"]);
    dry.expect_code(0);
    insta::assert_snapshot!("no_transaction_dry_run", dry.stdout);
    let mut db = p.client();
    assert!(db.user_relations().is_empty(), "dry run changed the database");

    p.run(&["migrate"]).expect_code(0);
    let valid: bool = db
        .query_one(
            "select i.indisvalid from pg_index i where i.indexrelid = 'items_sku_idx'::regclass",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(valid, "the concurrent index is not valid");
    assert!(db.exists("tags"));
    assert_eq!(db.applied(), ["1", "2", "3"]);
    let flags: Vec<bool> = db
        .query("select no_transaction from backstop.applied order by version", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(flags, [false, true, false]);

    // Without the marker PostgreSQL would refuse it; Backstop says so first.
    p.migration("4_tags_idx", "CREATE INDEX CONCURRENTLY tags_idx ON tags (id);\n", None);
    p.run(&["migrate"])
        .expect_code(2)
        .expect_output("CREATE INDEX CONCURRENTLY cannot run inside a transaction")
        .expect_output("-- backstop:no-transaction");
    assert!(!db.exists("tags_idx"));
}

#[test]
fn each_keeps_earlier_migrations_when_a_later_one_fails_and_one_transaction_keeps_none() {
    let p = Project::new("each");
    p.migration("1_a", "CREATE TABLE a (id int);\n", None);
    p.migration("2_bad", "CREATE TABLE b (id int);\nSELECT * FROM nope;\n", None);
    let mut db = p.client();

    p.run(&["migrate", "--accept-risk", "BS405"]).expect_code(1).expect_output("2_bad");
    assert!(!db.exists("a") && !db.exists("b"), "one transaction must keep nothing");
    assert!(db.applied().is_empty());

    p.run(&["migrate", "--accept-risk", "BS405", "--each"])
        .expect_code(1)
        .expect_output("applied 1_a");
    assert!(db.exists("a") && !db.exists("b"));
    assert_eq!(db.applied(), ["1"]);
    assert_eq!(
        db.events(),
        [
            event("migrate", "rolled_back", &["1", "2"]),
            event("migrate", "ok", &["1"]),
            event("migrate", "rolled_back", &["2"]),
        ]
    );
}

#[test]
fn lock_and_statement_timeouts_from_config_stop_the_migration_and_roll_it_back() {
    let p = Project::new("timeouts");
    p.config(
        r#"[database]
url = "${DATABASE_URL}"

[migrations]
dir = "migrations"
lock_timeout = "100ms"
statement_timeout = "300ms"
lock_retries = 1

[backup]
required = false
"#,
    );
    let mut db = p.client();
    db.batch_execute("CREATE TABLE busy (id int)").unwrap();

    // Another session holds a lock the migration needs: lock_timeout, one
    // retry after a pause, then a report with PostgreSQL's code and advice.
    let mut other = p.client();
    let holder_pid: i32 = other.query_one("select pg_backend_pid()", &[]).unwrap().get(0);
    let mut holder = other.transaction().unwrap();
    holder.batch_execute("LOCK TABLE busy IN ACCESS EXCLUSIVE MODE").unwrap();
    p.migration(
        "1_alter",
        "CREATE TABLE side (id int);\nALTER TABLE busy ADD COLUMN x int;\n",
        None,
    );
    p.run(&["migrate", "--accept-risk", "BS405"])
        .expect_code(1)
        .expect_output("lock_timeout hit; retry 1/1")
        .expect_output("statement 2/2 failed")
        .expect_output("55P03")
        .expect_output(&format!("blocked by: pid {holder_pid} ("))
        .expect_output("holds AccessExclusiveLock on busy")
        .expect_output("raise lock_timeout in backstop.toml");
    holder.rollback().unwrap();
    assert!(!db.exists("side"));
    assert!(db.applied().is_empty());

    p.migration("1_alter", "CREATE TABLE side (id int);\nSELECT pg_sleep(5);\n", None);
    p.run(&["migrate", "--accept-risk", "BS405"])
        .expect_code(1)
        .expect_output("57014")
        .expect_output("statement_timeout");
    assert!(!db.exists("side"));
    assert!(db.applied().is_empty());
}

#[test]
fn two_new_migrations_in_the_same_second_get_different_versions() {
    let p = Project::new("new_same_second");
    for name in ["a", "b", "c"] {
        p.run(&["new", name]).expect_code(0);
    }
    let mut folders: Vec<String> = std::fs::read_dir(p.path().join("migrations"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    folders.sort();
    let versions: Vec<&str> = folders.iter().map(|f| f.split_once('_').unwrap().0).collect();
    assert_eq!(folders.len(), 3, "{folders:?}");
    assert!(versions[0] < versions[1] && versions[1] < versions[2], "{versions:?}");
    let names: Vec<&str> = folders.iter().map(|f| f.split_once('_').unwrap().1).collect();
    assert_eq!(names, ["a", "b", "c"], "created in order");
}

#[test]
fn six_new_migrations_at_once_get_six_versions() {
    // Regression: six `new` in parallel gave duplicate versions.
    let p = Project::new("new_parallel");
    let children: Vec<std::process::Child> =
        (0..6).map(|i| p.std_cmd(&["new", &format!("change_{i}")]).spawn().unwrap()).collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let folders: Vec<String> = std::fs::read_dir(p.path().join("migrations"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let mut versions: Vec<&str> = folders.iter().map(|f| f.split_once('_').unwrap().0).collect();
    versions.sort();
    versions.dedup();
    assert_eq!(versions.len(), 6, "{folders:?}");
}

#[test]
fn status_exits_1_and_says_so_when_a_no_transaction_migration_stopped_half_way() {
    let p = Project::new("half_applied");
    p.migration("1_t", "CREATE TABLE t (id int);", None);
    p.migration(
        "2_idx",
        "-- backstop:no-transaction\nCREATE INDEX CONCURRENTLY t_a ON t (id);\nCREATE INDEX CONCURRENTLY t_b ON nope (id);\n",
        None,
    );
    p.run(&["migrate", "--accept-risk", "BS405"]).expect_code(1);
    assert!(p.client().exists("t_a"), "the first statement stays committed");
    let run = p.run(&["status"]);
    run.expect_code(1)
        .expect_output("half-applied (1):")
        .expect_output("2 stopped at statement 2/2")
        .expect_output("statements 1-1 stay committed");
    let json = p.run(&["status", "--format", "json"]).json();
    assert_eq!(json["half_applied"][0]["version"], "2");
    // Fixed and applied: no longer half-applied.
    p.client().batch_execute("DROP INDEX t_a").unwrap();
    p.write(
        "migrations/2_idx/up.sql",
        "-- backstop:no-transaction\nCREATE INDEX CONCURRENTLY t_a ON t (id);\n",
    );
    p.run(&["repair", "2"]).expect_code(2);
    p.run(&["migrate", "--accept-risk", "BS405"]).expect_code(0);
    p.run(&["status"]).expect_code(0);
}

#[test]
fn a_folder_name_with_a_newline_and_escapes_cannot_forge_an_output_line() {
    let p = Project::new("forged_line");
    let evil = "1_evil\n\u{1b}[32m✓ applied 2_everything_is_fine\u{1b}[0m";
    p.migration(evil, "CREATE TABLE t (id int);", None);
    for args in [&["status"][..], &["migrate"], &["status", "--verbose"]] {
        let run = p.run(args);
        for line in run.all().lines() {
            assert!(!line.contains('\u{1b}'), "{args:?}: raw escape in {line:?}");
            assert!(!line.starts_with("✓ applied 2_"), "{args:?}: forged line {line:?}");
        }
        assert!(run.all().contains("1_evil\\n\\x1b[32m"), "{args:?}: {}", run.all());
    }
}
