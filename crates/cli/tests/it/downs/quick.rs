//! The quick way of downs (issue 41): an up that only adds, sets storage
//! parameters or drops a column gets its down from the catalog before it,
//! proved once with the up applied once, including ups that cannot run in
//! a transaction. Each down is proved, written and run, and the database
//! compared with the one before by the semantic picture.

use backstop_core::pg::fingerprint::Schema;
use serde_json::Value;

use crate::common::{DbExt, Project};

fn down_of<'d>(downs: &'d Value, version: &str) -> &'d Value {
    let d = downs.as_array().unwrap().iter().find(|d| d["version"] == version);
    d.unwrap_or_else(|| panic!("no down of {version}: {downs:#}"))
}

#[test]
fn concurrent_indexes_storage_parameters_and_dropped_columns_get_proved_downs() {
    let p = Project::new("downs_quick");
    p.migration(
        "2024-08-01-000001_base",
        "CREATE TABLE accounts (
             id int PRIMARY KEY,
             email text,
             note text COLLATE \"C\" NOT NULL DEFAULT 'n/a' CONSTRAINT note_short CHECK (length(note) < 100)
         ) WITH (fillfactor = 90);
         CREATE INDEX accounts_note ON accounts (note);
         COMMENT ON COLUMN accounts.note IS 'free text';
         INSERT INTO accounts VALUES (1, 'a@x', 'first'), (2, 'b@x', DEFAULT);",
        None,
    );
    p.migration(
        "2024-08-01-000002_email_idx",
        "-- backstop:no-transaction\nCREATE INDEX CONCURRENTLY accounts_email ON accounts (email);\n",
        None,
    );
    p.migration(
        "2024-08-01-000003_storage",
        "ALTER TABLE accounts SET (fillfactor = 70, autovacuum_enabled = false);",
        None,
    );
    p.migration("2024-08-01-000004_drop_note", "ALTER TABLE accounts DROP COLUMN note;", None);

    let downs: Value = p.run(&["downs", "--format", "json"]).expect_code(0).json();
    for v in ["2024-08-01-000002", "2024-08-01-000003", "2024-08-01-000004"] {
        let d = down_of(&downs, v);
        assert_eq!(
            (d["status"].as_str(), d["proved"].as_bool()),
            (Some("computed"), Some(true)),
            "{d:#}"
        );
    }
    let sql = |v: &str| down_of(&downs, v)["sql"].as_str().unwrap().to_string();
    assert!(
        sql("2024-08-01-000002").contains("DROP INDEX IF EXISTS public.accounts_email"),
        "{}",
        sql("2024-08-01-000002")
    );
    let storage = sql("2024-08-01-000003");
    assert!(
        storage.contains("RESET (autovacuum_enabled)") && storage.contains("fillfactor = '90'"),
        "{storage}"
    );
    let dropped = down_of(&downs, "2024-08-01-000004");
    let made = dropped["sql"].as_str().unwrap();
    for part in
        ["ADD COLUMN note text COLLATE", "NOT NULL", "note_short", "accounts_note", "'free text'"]
    {
        assert!(made.contains(part), "{part} missing from the down:\n{made}");
    }
    let loses = dropped["loses"].to_string();
    assert!(loses.contains("values of column public.accounts.note"), "{loses}");
    p.run(&["downs", "--write"]).expect_code(0);

    p.run(&["migrate", "--to", "2024-08-01-000001"]).expect_code(0);
    let base = Schema::read(&mut p.client()).unwrap();
    p.run(&["migrate"]).expect_code(0);
    p.run(&["rollback", "--to", "2024-08-01-000001"]).expect_code(0);
    let back = Schema::read(&mut p.client()).unwrap();
    assert!(base.differences(&back).is_empty(), "{:#?}", base.differences(&back));
    let options = p
        .client()
        .texts("select unnest(reloptions) from pg_class where oid = 'accounts'::regclass");
    assert_eq!(options, ["fillfactor=90"]);
    // The column is back with its default, its values are not.
    let notes = p.client().texts("select note from accounts order by id");
    assert_eq!(notes, ["n/a", "n/a"]);
}
