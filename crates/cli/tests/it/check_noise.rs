//! `backstop check` without noise: the verdict first, `--statistics`,
//! row level security judged for the project (from the SQL, and with a
//! database from its catalog), foreign keys judged on the schema the
//! checked migrations leave behind, and `IF NOT EXISTS` asked only of
//! no-transaction migrations.

use crate::common::Project;
use serde_json::Value;

/// Findings of `code` in a JSON report.
fn of<'a>(json: &'a Value, code: &str) -> Vec<&'a Value> {
    json["findings"].as_array().unwrap().iter().filter(|f| f["code"] == code).collect()
}

/// A project of three migrations with owner columns and no row level
/// security anywhere; the foreign key of the first is indexed by the third.
fn no_rls(label: &str) -> Project {
    let p = Project::new(label);
    p.migration(
        "1_notes",
        "CREATE TABLE notes (id int PRIMARY KEY, user_id int NOT NULL, folder_id int REFERENCES notes (id));\n",
        Some("DROP TABLE notes;\n"),
    );
    p.migration(
        "2_files",
        "CREATE TABLE files (id int PRIMARY KEY, owner_id int NOT NULL);\n",
        Some("DROP TABLE files;\n"),
    );
    p.migration(
        "3_notes_folder_idx",
        "CREATE INDEX notes_folder_id_idx ON notes (folder_id);\n",
        Some("DROP INDEX notes_folder_id_idx;\n"),
    );
    p
}

#[test]
fn a_project_without_rls_gets_one_low_note_and_no_if_not_exists_noise() {
    let p = no_rls("noise_offline");
    let json = p.run(&["check", "--offline", "--format", "json"]).expect_code(0).json();
    let rls = of(&json, "BS501");
    assert_eq!(rls.len(), 1, "{json:#}");
    assert_eq!(rls[0]["severity"], "low");
    assert!(rls[0]["message"]
        .as_str()
        .unwrap()
        .starts_with("2 new table(s) have an owner column (notes, files)"));
    // Transactional migrations: a partial failure leaves nothing to re-run into.
    assert_eq!(of(&json, "BS401"), Vec::<&Value>::new());
    // The index of migration 3 serves the foreign key of migration 1.
    assert_eq!(of(&json, "BS601"), Vec::<&Value>::new());
    let conditions = json["conditions"].to_string();
    assert!(!conditions.contains("row level security"), "the note is no condition: {conditions}");

    // A no-transaction migration is still told.
    p.migration(
        "4_concurrent",
        "-- backstop:no-transaction\nCREATE INDEX CONCURRENTLY files_owner_idx ON files (owner_id);\n",
        Some("-- backstop:no-transaction\nDROP INDEX CONCURRENTLY IF EXISTS files_owner_idx;\n"),
    );
    let json = p.run(&["check", "--offline", "--format", "json"]).json();
    let bs401 = of(&json, "BS401");
    assert_eq!(bs401.len(), 1, "{json:#}");
    assert_eq!(bs401[0]["severity"], "medium");
    assert!(bs401[0]["file"].as_str().unwrap().contains("4_concurrent"));
}

#[test]
fn with_a_database_rls_anywhere_makes_each_table_without_it_high() {
    let p = no_rls("noise_live");
    // The database enables RLS on no table: the note stays, and says so.
    let json = p.run(&["check", "--format", "json"]).expect_code(0).json();
    let rls = of(&json, "BS501");
    assert_eq!(rls.len(), 1, "{json:#}");
    assert_eq!(rls[0]["severity"], "low");
    assert_eq!(rls[0]["facts"][0], "the database has row level security on no table either");

    // It has RLS on a table: the project relies on it, each table is high.
    let mut db = p.client();
    db.batch_execute("CREATE TABLE accounts (id int, user_id int); ALTER TABLE accounts ENABLE ROW LEVEL SECURITY;")
        .unwrap();
    let run = p.run(&["check"]);
    run.expect_code(0)
        .expect_output("high[BS501]: notes has an owner column (user_id)")
        .expect_output("high[BS501]: files has an owner column (owner_id)")
        .expect_output("live: the database has row level security on 1 table(s): public.accounts: this project relies on it");
    assert!(!run.stdout.contains("new table(s) have an owner column"), "{}", run.stdout);
}

#[test]
fn the_verdict_comes_first_and_statistics_count_findings_per_rule() {
    let p = no_rls("noise_statistics");
    // Tables the history never made (made by hand long ago): offline, the
    // history's own tables hold no rows yet, these may.
    p.migration("5_drop", "DROP TABLE legacy_notes;\nDROP TABLE legacy_files;\n", None);
    let text = p.run(&["check", "--offline"]);
    text.expect_code(0);
    let first = text.stdout.lines().next().unwrap();
    assert!(first.starts_with("verdict: CONDITIONAL GO ("), "{}", text.stdout);
    let conditions = text.stdout.find("proceed only when").unwrap();
    let findings = text.stdout.find("high[BS101]").unwrap();
    assert!(conditions < findings, "{}", text.stdout);

    let plain = p.run(&["check", "--offline", "--format", "json"]).json();
    let stats =
        p.run(&["check", "--offline", "--statistics", "--format", "json"]).expect_code(0).json();
    assert_eq!(stats["verdict"], plain["verdict"]);
    let rows = stats["statistics"].as_array().unwrap();
    let total: u64 = rows.iter().map(|r| r["count"].as_u64().unwrap()).sum();
    assert_eq!(total as usize, plain["findings"].as_array().unwrap().len());
    assert_eq!(rows[0]["code"], "BS101", "most first: {rows:?}");
    assert_eq!(rows[0]["count"], 2);
    assert_eq!(rows[0]["by_severity"]["high"], 2);

    let text = p.run(&["check", "--offline", "--statistics"]);
    text.expect_code(0).expect_output("     2  BS101  drop-table").expect_output("2 high");
    assert!(!text.stdout.contains("-->"), "statistics list no finding:\n{}", text.stdout);
    p.run(&["check", "--offline", "--statistics", "--fail-on", "high"]).expect_code(1);
    p.run(&["check", "--offline", "--statistics", "--format", "sarif"])
        .expect_code(2)
        .expect_output("--statistics counts findings per rule in text or json");
}

#[test]
fn widening_an_integer_to_prismas_decimal_is_not_called_lossy() {
    let p = Project::new("noise_widening");
    p.client()
        .batch_execute(
            "CREATE TABLE invoices (id int PRIMARY KEY, amount integer, rate numeric(10,2));
             INSERT INTO invoices VALUES (1, 2147483647, 12345678.99);",
        )
        .unwrap();
    p.migration(
        "1_decimal",
        "ALTER TABLE \"invoices\" ALTER COLUMN \"amount\" SET DATA TYPE DECIMAL(65,30);\n\
         ALTER TABLE \"invoices\" ALTER COLUMN \"rate\" SET DATA TYPE DECIMAL(65,30);\n",
        None,
    );
    // Offline the old types are unknown: two findings. The database says
    // both widen: no value is cut, and they are not reported.
    let offline = p.run(&["check", "--offline", "--format", "json"]).json();
    assert_eq!(of(&offline, "BS107").len(), 2, "{offline}");
    let json = p.run(&["check", "--format", "json"]).json();
    assert_eq!(of(&json, "BS107"), Vec::<&Value>::new(), "{json}");
    // A real narrowing stays what it was.
    p.migration("2_narrow", "ALTER TABLE invoices ALTER COLUMN rate TYPE numeric(6,2);\n", None);
    let json = p.run(&["check", "--format", "json"]).json();
    let narrow = of(&json, "BS107");
    assert!(narrow.iter().any(|f| f["severity"] != "low"), "{json}");
}

#[test]
fn an_up_only_history_without_downs_gets_one_line_with_the_count() {
    let p = Project::new("noise_up_only_downs");
    for i in 0..40 {
        p.write(
            &format!("migrations/supabase/migrations/202401010000{i:02}_t{i}.sql"),
            &format!("CREATE TABLE t{i} (id int PRIMARY KEY);\n"),
        );
    }
    let json = p.run(&["check", "--offline", "--format", "json"]).json();
    let missing = of(&json, "BS403");
    assert_eq!(missing.len(), 1, "{json}");
    let message = missing[0]["message"].as_str().unwrap();
    assert!(message.starts_with("40 migrations have no down"), "{message}");
    assert!(missing[0]["help"].as_str().unwrap().contains("backstop downs --write"));
    // migrate proves and keeps their downs (keep_downs, the default): the
    // finding says so, low, rather than that only a restore undoes them.
    assert!(message.contains("`migrate` works out and proves a down"), "{message}");
    assert_eq!(missing[0]["severity"], "low", "{json}");
    // The risk matrix beside it says nothing the finding denies.
    let markdown = p.run(&["check", "--offline", "--format", "markdown"]).stdout.clone();
    assert!(markdown.contains("No down migration written for it"), "{markdown}");
    assert!(!markdown.contains("refuses to revert"), "{markdown}");
    p.config(&format!("{}keep_downs = false\n", crate::common::DEFAULT_CONFIG));
    let json = p.run(&["check", "--offline", "--format", "json"]).json();
    let message = of(&json, "BS403")[0]["message"].as_str().unwrap().to_string();
    assert!(message.ends_with("only a restore can"), "{message}");
    // A layout with downs still names each migration that lacks one.
    let q = no_rls("noise_diesel_downs");
    q.migration("4_more", "CREATE TABLE more (id int);\n", None);
    q.migration("5_again", "CREATE TABLE again (id int);\n", None);
    let json = q.run(&["check", "--offline", "--format", "json"]).json();
    assert_eq!(of(&json, "BS403").len(), 2, "{json}");
}
