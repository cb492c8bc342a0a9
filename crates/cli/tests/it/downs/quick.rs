//! The quick way of downs (issue 41): an up that only adds, sets storage
//! parameters, drops a column or changes an enum's labels gets its down
//! from the catalog before it,
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
             note text COLLATE \"C\" NOT NULL DEFAULT 'n/a' CONSTRAINT note_short CHECK (length(note) < 100),
             tail int
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
    // The column comes back last: said as cosmetic, as the full way says it.
    let notes = dropped["notes"].to_string();
    assert!(notes.contains("read from its statements"), "{notes}");
    assert!(notes.contains("cosmetic: column order public.accounts"), "{notes}");
    let loses = dropped["loses"].to_string();
    assert!(loses.contains("values of column accounts.note"), "{loses}");
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

/// Prisma's two ways to change an enum: a label added (outside a
/// transaction, with an index that names it, beside an older one that
/// names another label) and a label dropped by
/// swapping the type for one of the same name. Both downs are read from
/// the catalog, proved, and put the labels back; a row holding the added
/// label stops the down with nothing changed. A type a view uses is left
/// to the full way.
#[test]
fn enum_labels_added_or_swapped_away_get_proved_downs_from_the_catalog() {
    let p = Project::new("downs_labels");
    p.migration(
        "2024-08-02-000001_base",
        "CREATE TYPE mood AS ENUM ('ok', 'meh');
         CREATE TYPE \"Priority\" AS ENUM ('LOW', 'HIGH', 'URGENT');
         CREATE TYPE shown AS ENUM ('a', 'b');
         CREATE TABLE tasks (id int PRIMARY KEY, m mood NOT NULL DEFAULT 'ok', p \"Priority\" DEFAULT 'LOW', s shown);
         CREATE INDEX tasks_m ON tasks (m);
         CREATE INDEX tasks_meh ON tasks (id) WHERE m = 'meh';
         CREATE VIEW shown_tasks AS SELECT id, s FROM tasks;
         INSERT INTO tasks VALUES (1, 'meh', 'HIGH', 'a'), (2, DEFAULT, DEFAULT, 'b');",
        None,
    );
    p.migration(
        "2024-08-02-000002_sad",
        "-- backstop:no-transaction\nALTER TYPE mood ADD VALUE 'sad' BEFORE 'meh';\n\
         CREATE INDEX tasks_sad ON tasks (id) WHERE m = 'sad';\n",
        None,
    );
    p.migration(
        "2024-08-02-000003_no_urgent",
        "CREATE TYPE \"Priority_new\" AS ENUM ('LOW', 'HIGH');
         ALTER TABLE tasks ALTER COLUMN p DROP DEFAULT;
         ALTER TABLE tasks ALTER COLUMN p TYPE \"Priority_new\" USING (p::text::\"Priority_new\");
         ALTER TYPE \"Priority\" RENAME TO \"Priority_old\";
         ALTER TYPE \"Priority_new\" RENAME TO \"Priority\";
         DROP TYPE \"Priority_old\";
         ALTER TABLE tasks ALTER COLUMN p SET DEFAULT 'LOW';",
        None,
    );
    p.migration("2024-08-02-000004_c", "ALTER TYPE shown ADD VALUE 'c';", None);

    let downs: Value = p.run(&["downs", "--format", "json"]).expect_code(0).json();
    let quick =
        |v: &str| down_of(&downs, v)["notes"].to_string().contains("read from its statements");
    for v in ["2024-08-02-000002", "2024-08-02-000003"] {
        let d = down_of(&downs, v);
        assert_eq!((d["status"].as_str(), d["proved"].as_bool()), (Some("computed"), Some(true)));
        assert!(quick(v), "{d:#}");
    }
    let sql = down_of(&downs, "2024-08-02-000002")["sql"].as_str().unwrap().to_string();
    assert!(sql.contains("DROP INDEX tasks_meh"), "an index naming a label is made again:\n{sql}");
    let sql = down_of(&downs, "2024-08-02-000003")["sql"].as_str().unwrap().to_string();
    assert!(sql.contains("AS ENUM ('LOW', 'HIGH', 'URGENT')"), "{sql}");
    assert!(!quick("2024-08-02-000004"), "a type under a view is read the full way");
    p.run(&["downs", "--write"]).expect_code(0);

    p.run(&["migrate", "--to", "2024-08-02-000001"]).expect_code(0);
    let base = Schema::read(&mut p.client()).unwrap();
    let rows = || p.client().texts("select format('%s %s %s', id, m, p) from tasks order by id");
    let before = rows();
    p.run(&["migrate", "--to", "2024-08-02-000003"]).expect_code(0);
    p.run(&["rollback", "--to", "2024-08-02-000001"]).expect_code(0);
    let back = Schema::read(&mut p.client()).unwrap();
    assert!(base.differences(&back).is_empty(), "{:#?}", base.differences(&back));
    assert_eq!(rows(), before);

    // A row holding the label the up added: the down stops, nothing changes.
    p.run(&["migrate", "--to", "2024-08-02-000002"]).expect_code(0);
    p.client().batch_execute("INSERT INTO tasks VALUES (3, 'sad')").unwrap();
    let out = p.run(&["rollback", "--to", "2024-08-02-000001"]);
    assert_ne!(out.code, Some(0), "{}", out.all());
    let labels = p.client().texts("select enumlabel::text from pg_enum e join pg_type t on t.oid = e.enumtypid where typname = 'mood' order by enumsortorder");
    assert_eq!(labels, ["ok", "sad", "meh"]);
}

/// What the Supabase runbooks' migrations do to tables that were there:
/// seed rows named in the text (one `ON CONFLICT DO NOTHING` beside a row
/// that was there, one into a table the same migration renamed), row
/// security turned on, privileges granted, a table added to a
/// publication. Each down is read from the picture before the up,
/// proved, and gives back the schema and the rows that were there.
#[test]
fn named_rows_privileges_row_security_and_publications_get_proved_downs() {
    let p = Project::new("downs_quick_settings");
    p.migration(
        "2024-08-03-000001_base",
        "CREATE TABLE plans (id text PRIMARY KEY, name text NOT NULL);
         CREATE TABLE items (id int PRIMARY KEY, title text);
         CREATE PUBLICATION live;
         INSERT INTO plans VALUES ('free', 'Free');",
        None,
    );
    p.migration(
        "2024-08-03-000002_archive",
        "ALTER TABLE items RENAME TO archive;
         CREATE INDEX archive_title ON archive (title);
         INSERT INTO archive (id, title) VALUES (1, 'first');
         INSERT INTO plans VALUES ('free', 'Free'), ('pro', 'Pro') ON CONFLICT DO NOTHING;",
        None,
    );
    p.migration(
        "2024-08-03-000003_rls",
        "ALTER TABLE plans ENABLE ROW LEVEL SECURITY;
         GRANT SELECT, INSERT ON plans TO PUBLIC;
         ALTER PUBLICATION live ADD TABLE archive;",
        None,
    );

    let downs: Value = p.run(&["downs", "--format", "json"]).expect_code(0).json();
    for v in ["2024-08-03-000002", "2024-08-03-000003"] {
        let d = down_of(&downs, v);
        assert_eq!((d["status"].as_str(), d["proved"].as_bool()), (Some("computed"), Some(true)));
        assert!(d["notes"].to_string().contains("read from its statements"), "{d:#}");
    }
    let sql = |v: &str| down_of(&downs, v)["sql"].as_str().unwrap().to_string();
    let archive = sql("2024-08-03-000002");
    for part in
        ["DELETE FROM archive WHERE (id = 1)", "DELETE FROM plans", "xmin", "RENAME TO items"]
    {
        assert!(archive.contains(part), "{part} missing from the down:\n{archive}");
    }
    let rls = sql("2024-08-03-000003");
    for part in [
        "ALTER PUBLICATION live DROP TABLE public.archive",
        "ALTER TABLE public.plans DISABLE ROW LEVEL SECURITY",
        "REVOKE ALL ON TABLE public.plans FROM PUBLIC",
    ] {
        assert!(rls.contains(part), "{part} missing from the down:\n{rls}");
    }
    p.run(&["downs", "--write"]).expect_code(0);

    p.run(&["migrate", "--to", "2024-08-03-000001"]).expect_code(0);
    let base = Schema::read(&mut p.client()).unwrap();
    p.run(&["migrate"]).expect_code(0);
    assert_eq!(p.client().texts("select id from plans order by id"), ["free", "pro"]);
    p.run(&["rollback", "--to", "2024-08-03-000001"]).expect_code(0);
    let back = Schema::read(&mut p.client()).unwrap();
    assert!(base.differences(&back).is_empty(), "{:#?}", base.differences(&back));
    // The row that was there before the seed stays; the seed's goes.
    assert_eq!(p.client().texts("select id from plans order by id"), ["free"]);
    assert!(p.client().texts("select title from items").is_empty());
}
