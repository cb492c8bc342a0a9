//! `backstop data compare` between two throwaway clusters: equal databases
//! match; in a 1,000,000-row table one changed cell, one missing and one
//! extra row are each found and named by key; each type compares exactly;
//! a table that cannot be read makes the verdict an error, never a match.

use std::sync::LazyLock;

use crate::common::{unique_name, Project};
use backstop_core::pg::cluster::Cluster;
use serde_json::{json, Value};

static OTHER: LazyLock<Cluster> =
    LazyLock::new(|| Cluster::start().expect("a second cluster starts"));

/// The same database on both clusters, set up by `sql`; the project runs on the first.
fn pair(label: &str, sql: &str) -> (Project, String, String) {
    let p = Project::new(label);
    let db = unique_name(label);
    OTHER.create_database(&db, None).unwrap();
    p.client().batch_execute(sql).unwrap();
    OTHER.connect(&db).unwrap().batch_execute(sql).unwrap();
    let (source, target) = (p.url.clone(), OTHER.url(&db));
    (p, source, target)
}

fn compare(p: &Project, source: &str, target: &str, code: i32) -> Value {
    let run = p.run(&[
        "compare", "--source", source, "--target", target, "--format", "json", "--jobs", "3",
    ]);
    run.expect_code(code);
    run.json()
}

fn keys(table: &Value, kind: &str) -> Vec<i64> {
    table["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == kind)
        .map(|r| r["key"]["id"].as_i64().unwrap())
        .collect()
}

#[test]
fn a_changed_cell_a_missing_and_an_extra_row_among_a_million_are_named_by_key() {
    let (p, source, target) = pair(
        "compare_million",
        "CREATE TABLE items (id bigint PRIMARY KEY, name text, price numeric(12,2), at timestamptz, doc jsonb);
         INSERT INTO items SELECT i, 'item ' || i, i / 100.0, '2026-01-01'::timestamptz + i * interval '1 second',
                                  jsonb_build_object('n', i, 'tags', jsonb_build_array('a', i % 7))
           FROM generate_series(1, 1000000) i;
         CREATE TABLE notes (body text);
         INSERT INTO notes VALUES ('no key here');",
    );
    let same = compare(&p, &source, &target, 0);
    assert_eq!(same["verdict"], "match", "{same}");

    on_target(
        &target,
        "UPDATE items SET name = 'renamed' WHERE id = 777777;
             DELETE FROM items WHERE id = 123456;
             INSERT INTO items VALUES (2000001, 'new', 1, now(), '{}');
             INSERT INTO notes VALUES ('another');",
    );
    let c = compare(&p, &source, &target, 1);
    assert_eq!(c["verdict"], "differ");
    let items =
        c["tables"].as_array().unwrap().iter().find(|t| t["table"] == "public.items").unwrap();
    assert_eq!(keys(items, "missing"), [123456]);
    assert_eq!(keys(items, "extra"), [2000001]);
    assert_eq!(keys(items, "different"), [777777]);
    let changed =
        items["rows"].as_array().unwrap().iter().find(|r| r["kind"] == "different").unwrap();
    assert_eq!(changed["columns"], json!({ "name": ["item 777777", "renamed"] }));
    let notes =
        c["tables"].as_array().unwrap().iter().find(|t| t["table"] == "public.notes").unwrap();
    assert_eq!(notes["status"], "differ");
    assert!(notes["note"].as_str().unwrap().contains("no primary key"), "{notes}");
    // With no key the rows are matched whole: the one added is counted.
    assert_eq!((notes["missing"].as_u64(), notes["extra"].as_u64()), (Some(0), Some(1)), "{notes}");

    let text = p.run(&["compare", "--source", &source, "--target", &target]);
    text.expect_code(1)
        .expect_output("DIFFER")
        .expect_output("missing in the target: {\"id\":123456}")
        .expect_output("different {\"id\":777777}: name \"item 777777\" → \"renamed\"");
    assert!(
        !text.all().contains(&OTHER.url("x").split('@').next().unwrap().to_string()),
        "no password shown"
    );
}

/// Runs `sql` on the target's database only.
fn on_target(target: &str, sql: &str) {
    let db = target.rsplit('/').next().unwrap();
    OTHER.connect(db).unwrap().batch_execute(sql).unwrap();
}

/// The differing keys of `table` by kind, as JSON text.
fn named(c: &Value, table: &str) -> Vec<(String, String)> {
    let t = c["tables"].as_array().unwrap().iter().find(|t| t["table"] == table).unwrap();
    let mut out: Vec<(String, String)> = t["rows"]
        .as_array()
        .unwrap_or_else(|| panic!("{t}"))
        .iter()
        .map(|r| (r["kind"].as_str().unwrap().to_string(), r["key"].to_string()))
        .collect();
    out.sort();
    out
}

#[test]
fn every_row_is_found_whatever_the_key_ranges_or_hashes() {
    // Integer keys are split in ranges and found through the index; keys
    // whose span does not fit in 64 bits, uuid, text and composite keys by
    // hash.
    let (p, source, target) = pair(
        "compare_keys",
        "CREATE TABLE wide (id bigint PRIMARY KEY, v text);
         INSERT INTO wide SELECT i * 1000000000000000, 'w' || i FROM generate_series(-9000, 9000, 7) i;
         INSERT INTO wide VALUES (-9223372036854775808, 'min'), (9223372036854775807, 'max');
         CREATE TABLE sparse (id int PRIMARY KEY, v text);
         INSERT INTO sparse SELECT i * 100000 - 1000000000, 's' || i FROM generate_series(0, 20000) i;
         INSERT INTO sparse SELECT i, 'd' || i FROM generate_series(1, 5000) i ON CONFLICT DO NOTHING;
         CREATE TABLE small (id smallint PRIMARY KEY, v text);
         INSERT INTO small SELECT i, 'x' FROM generate_series(-50, 49) i;
         CREATE TABLE gone (id int PRIMARY KEY);
         INSERT INTO gone SELECT generate_series(1, 5000);
         CREATE TABLE grown (id int PRIMARY KEY);
         CREATE TABLE coded (code text PRIMARY KEY, v int);
         INSERT INTO coded SELECT 'K' || i, i FROM generate_series(1, 5000) i;
         CREATE TABLE ids (id uuid PRIMARY KEY, v text);
         INSERT INTO ids SELECT md5(i::text)::uuid, 'u' || i FROM generate_series(1, 20000) i;
         INSERT INTO ids VALUES ('00000000-0000-0000-0000-000000000000', 'min'),
           ('ffffffff-ffff-ffff-ffff-ffffffffffff', 'max'),
           ('12345678-9abc-def0-0000-000000000001', 'same 60 bits'),
           ('12345678-9abc-def0-0000-000000000002', 'same 60 bits');
         CREATE TABLE pairs (a int, b text, v int, PRIMARY KEY (a, b));
         INSERT INTO pairs SELECT i % 50, 'b' || i, i FROM generate_series(1, 3000) i;
         ANALYZE;",
    );
    on_target(
        &target,
        "UPDATE wide SET v = 'changed' WHERE id = 9223372036854775807;
             DELETE FROM wide WHERE id = -9223372036854775808;
             INSERT INTO wide VALUES (12345, 'extra');
             UPDATE sparse SET v = 'changed' WHERE id = 4321;
             DELETE FROM sparse WHERE id = -999900000;
             INSERT INTO sparse VALUES (2000000000, 'extra');
             DELETE FROM small;
             DELETE FROM gone;
             INSERT INTO grown SELECT generate_series(1, 3000);
             ALTER TABLE coded ALTER COLUMN code TYPE text COLLATE \"POSIX\";
             UPDATE coded SET v = -1 WHERE code = 'K4999';
             DELETE FROM coded WHERE code = 'K17';
             INSERT INTO coded VALUES ('k17', 17);
             UPDATE pairs SET v = 0 WHERE a = 7 AND b = 'b7';
             UPDATE ids SET v = 'changed' WHERE id = 'ffffffff-ffff-ffff-ffff-ffffffffffff';
             UPDATE ids SET v = 'changed' WHERE id = '12345678-9abc-def0-0000-000000000002';
             DELETE FROM ids WHERE id = '00000000-0000-0000-0000-000000000000';
             INSERT INTO ids VALUES ('ffffffff-ffff-ffff-ffff-fffffffffffe', 'extra');
             ANALYZE;",
    );
    let c = compare(&p, &source, &target, 1);
    let kinds = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        let mut v: Vec<_> = pairs.iter().map(|(k, j)| (k.to_string(), j.to_string())).collect();
        v.sort();
        v
    };
    let expected: [(&str, &[(&str, &str)]); 3] = [
        (
            "public.wide",
            &[
                ("different", r#"{"id":9223372036854775807}"#),
                ("missing", r#"{"id":-9223372036854775808}"#),
                ("extra", r#"{"id":12345}"#),
            ],
        ),
        (
            "public.sparse",
            &[
                ("different", r#"{"id":4321}"#),
                ("missing", r#"{"id":-999900000}"#),
                ("extra", r#"{"id":2000000000}"#),
            ],
        ),
        (
            "public.coded",
            &[
                ("different", r#"{"code":"K4999"}"#),
                ("missing", r#"{"code":"K17"}"#),
                ("extra", r#"{"code":"k17"}"#),
            ],
        ),
    ];
    for (table, rows) in expected {
        assert_eq!(named(&c, table), kinds(rows), "{table}");
    }
    // A table emptied on one side, or filled: every row counted, the
    // first hundred listed in key order.
    let table = |name: &str| {
        c["tables"].as_array().unwrap().iter().find(|t| t["table"] == name).unwrap().clone()
    };
    let (gone, grown) = (table("public.gone"), table("public.grown"));
    assert_eq!((gone["missing"].as_u64(), gone["extra"].as_u64()), (Some(5000), Some(0)));
    assert_eq!((grown["missing"].as_u64(), grown["extra"].as_u64()), (Some(0), Some(3000)));
    for t in [&gone, &grown] {
        let listed: Vec<i64> = t["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["key"]["id"].as_i64().unwrap())
            .collect();
        assert_eq!(listed.len(), 100, "{t}");
        assert!(listed.windows(2).all(|w| w[0] < w[1]), "{listed:?}");
    }
    let small = c["tables"].as_array().unwrap().iter().find(|t| t["table"] == "public.small");
    assert_eq!(
        (small.unwrap()["missing"].as_u64(), small.unwrap()["target_rows"].as_i64()),
        (Some(100), Some(0))
    );
    assert_eq!(named(&c, "public.pairs"), kinds(&[("different", r#"{"a":7,"b":"b7"}"#)]));
    assert_eq!(
        named(&c, "public.ids"),
        kinds(&[
            ("different", r#"{"id":"ffffffff-ffff-ffff-ffff-ffffffffffff"}"#),
            ("different", r#"{"id":"12345678-9abc-def0-0000-000000000002"}"#),
            ("missing", r#"{"id":"00000000-0000-0000-0000-000000000000"}"#),
            ("extra", r#"{"id":"ffffffff-ffff-ffff-ffff-fffffffffffe"}"#)
        ])
    );
    let sparse = c["tables"].as_array().unwrap().iter().find(|t| t["table"] == "public.sparse");
    assert_eq!(
        (sparse.unwrap()["source_rows"].as_i64(), sparse.unwrap()["target_rows"].as_i64()),
        (Some(25001), Some(25001))
    );
}

#[test]
fn every_type_compares_exactly() {
    let (p, source, target) = pair(
        "compare_types",
        "CREATE TABLE t (id int PRIMARY KEY, ts timestamptz, n numeric, j jsonb, label text, note text);",
    );
    p.client()
        .batch_execute(
            "INSERT INTO t VALUES
               (1, '2026-01-01 00:00:00.000001+00', 1, '{}', 'x', 'a'),
               (2, '2026-01-01', 1.23456789012345678901, '{}', 'x', 'a'),
               (3, '2026-01-01', 1, '{\"a\": 1, \"b\": 2}', 'x', 'a'),
               (4, '2026-01-01', 1, '{\"a\": 1}', 'x', 'a'),
               (5, '2026-01-01', 1, '{}', 'Straße', 'a'),
               (6, '2026-01-01', 1, '{}', 'x', NULL),
               (7, '2026-01-01 02:00:00+02', 1, '{}', 'x', 'a')",
        )
        .unwrap();
    on_target(
        &target,
        "ALTER TABLE t ALTER COLUMN label TYPE text COLLATE \"POSIX\";
             INSERT INTO t VALUES
               (1, '2026-01-01 00:00:00.000002+00', 1, '{}', 'x', 'a'),
               (2, '2026-01-01', 1.23456789012345678902, '{}', 'x', 'a'),
               (3, '2026-01-01', 1, '{\"b\": 2, \"a\": 1}', 'x', 'a'),
               (4, '2026-01-01', 1, '{\"a\": 2}', 'x', 'a'),
               (5, '2026-01-01', 1, '{}', 'Straße', 'a'),
               (6, '2026-01-01', 1, '{}', 'x', ''),
               (7, '2026-01-01 00:00:00+00', 1, '{}', 'x', 'a')",
    );
    let c = compare(&p, &source, &target, 1);
    let t = &c["tables"][0];
    // 1 µs, the last digit of a numeric, a jsonb value, NULL against ''.
    // Equal: jsonb key order, text under another collation, one instant
    // written in two time zones.
    assert_eq!(keys(t, "different"), [1, 2, 4, 6], "{t}");
    assert_eq!((t["missing"].as_u64(), t["extra"].as_u64()), (Some(0), Some(0)));
    // Both values shown to the last digit, as numbers.
    let n = t["rows"].as_array().unwrap().iter().find(|r| r["key"]["id"] == 2).unwrap();
    assert_eq!(
        serde_json::to_string(&n["columns"]).unwrap(),
        r#"{"n":[1.23456789012345678901,1.23456789012345678902]}"#
    );
    // The other collation is a schema difference of its own.
    let schema: Vec<&str> =
        c["schema"].as_array().unwrap().iter().map(|d| d.as_str().unwrap()).collect();
    assert!(
        schema.iter().any(|d| d.contains("label") && d.to_lowercase().contains("collat")),
        "{schema:?}"
    );
    let md = p
        .run(&["compare", "--source", &source, "--target", &target, "--format", "markdown"])
        .expect_code(1)
        .all();
    assert!(md.starts_with("## Compare: DIFFER"), "{md}");
    assert!(md.contains("| public.t | differ | 7 | 7 | 0 | 0 | 4 |"), "{md}");
    assert!(md.contains("### Schema"), "{md}");
}

#[test]
fn a_table_that_cannot_be_read_makes_the_verdict_an_error_never_a_match() {
    let (p, source, target) = pair(
        "compare_error",
        "CREATE TABLE open (id int PRIMARY KEY); INSERT INTO open VALUES (1);
         CREATE TABLE secret (id int PRIMARY KEY); INSERT INTO secret VALUES (1);
         CREATE TABLE guarded (id int PRIMARY KEY); INSERT INTO guarded VALUES (1);",
    );
    let role = unique_name("reader");
    // `guarded` is readable, but row level security (no policy: no row)
    // shows the role none of its rows, which it may write.
    on_target(
        &target,
        &format!(
            "CREATE ROLE {role} LOGIN PASSWORD 'pw'; GRANT SELECT ON open TO {role};
             ALTER TABLE guarded ENABLE ROW LEVEL SECURITY;
             GRANT SELECT, INSERT ON guarded TO {role};"
        ),
    );
    let reader = target.replacen(&target[11..target.find('@').unwrap()], &format!("{role}:pw"), 1);
    let c = compare(&p, &source, &reader, 1);
    assert_eq!(c["verdict"], "error", "{c}");
    let secret =
        c["tables"].as_array().unwrap().iter().find(|t| t["table"] == "public.secret").unwrap();
    assert_eq!(secret["status"], "error");
    let note = secret["note"].as_str().unwrap();
    assert!(note.contains("the role may not read it in the target"), "{secret}");
    let guarded =
        c["tables"].as_array().unwrap().iter().find(|t| t["table"] == "public.guarded").unwrap();
    assert_eq!(guarded["status"], "error");
    let note = guarded["note"].as_str().unwrap();
    assert!(note.contains("row level security shows the role only some of its rows"), "{note}");
    let open =
        c["tables"].as_array().unwrap().iter().find(|t| t["table"] == "public.open").unwrap();
    assert_eq!(open["status"], "match");
}

#[test]
fn a_table_dropped_while_it_is_compared_makes_the_verdict_an_error() {
    let (p, source, target) = pair(
        "compare_dropped",
        "CREATE TABLE kept (id int PRIMARY KEY); INSERT INTO kept VALUES (1);
         CREATE TABLE doomed (id int PRIMARY KEY, v text);
         INSERT INTO doomed SELECT i, 'v' || i FROM generate_series(1, 1000) i;",
    );
    let db = target.rsplit('/').next().unwrap().to_string();
    // The table is locked on the target: compare lists it, then waits on it.
    let mut holder = OTHER.connect(&db).unwrap();
    holder.batch_execute("BEGIN; LOCK TABLE doomed IN ACCESS EXCLUSIVE MODE").unwrap();
    let run = p
        .std_cmd(&[
            "compare", "--source", &source, "--target", &target, "--format", "json", "--jobs", "1",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut watcher = OTHER.connect(&db).unwrap();
    crate::common::poll_until(
        "compare waits for the lock",
        300,
        std::time::Duration::from_millis(100),
        || {
            let n: i64 = watcher
                .query_one(
                    "select count(*) from pg_stat_activity
                  where datname = current_database() and wait_event_type = 'Lock'
                    and application_name = 'backstop compare'",
                    &[],
                )
                .unwrap()
                .get(0);
            n > 0
        },
    );
    // Dropped in the middle of its comparison.
    holder.batch_execute("DROP TABLE doomed; COMMIT").unwrap();
    let out = run.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let c: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(c["verdict"], "error", "{c}");
    let doomed =
        c["tables"].as_array().unwrap().iter().find(|t| t["table"] == "public.doomed").unwrap();
    assert_eq!(doomed["status"], "error", "{c}");
    assert!(doomed["note"].as_str().is_some_and(|n| !n.is_empty()), "{doomed}");
    assert_eq!(c["judgement"]["verdict"], "error", "{c}");
}

#[test]
fn orphans_of_the_targets_foreign_keys_are_counted_not_valid_ones_too() {
    let (p, source, target) = pair(
        "compare_fk",
        "CREATE TABLE parent (id int PRIMARY KEY); INSERT INTO parent VALUES (1), (2);
         CREATE TABLE child (id int PRIMARY KEY, parent_id int); INSERT INTO child VALUES (1, 1), (2, NULL), (3, 42);",
    );
    on_target(&target, "ALTER TABLE child ADD CONSTRAINT child_parent FOREIGN KEY (parent_id) REFERENCES parent NOT VALID;");
    let c = compare(&p, &source, &target, 1);
    assert_eq!(c["verdict"], "differ", "{c}");
    assert!(c["tables"].as_array().unwrap().iter().all(|t| t["status"] == "match"), "{c}");
    assert_eq!(
        c["foreign_keys"],
        json!([{ "table": "public.child", "constraint": "child_parent", "not_valid": true, "orphans": 1 }])
    );
    p.run(&["compare", "--source", &source, "--target", &target])
        .expect_code(1)
        .expect_output("foreign key child_parent (NOT VALID): 1 orphaned row(s) in the target");
}

/// Chains, a cycle of deferrable keys, a self-reference and a hostile name.
const CUTOVER_SCHEMA: &str = r#"
CREATE TABLE accounts (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE orders (id int PRIMARY KEY, account_id int NOT NULL REFERENCES accounts, total numeric(12,2));
CREATE TABLE lines (id int PRIMARY KEY, order_id int NOT NULL REFERENCES orders, sku text);
CREATE TABLE teams (id int PRIMARY KEY, lead_id int);
CREATE TABLE people (id int PRIMARY KEY, team_id int REFERENCES teams DEFERRABLE INITIALLY DEFERRED, manager_id int REFERENCES people);
ALTER TABLE teams ADD FOREIGN KEY (lead_id) REFERENCES people DEFERRABLE INITIALLY DEFERRED;
CREATE TABLE "we;ird ""name" (id int PRIMARY KEY, "sel;ect" text);
INSERT INTO accounts SELECT i, 'account ' || i FROM generate_series(1, 50) i;
INSERT INTO orders SELECT i, 1 + i % 50, i * 1.5 FROM generate_series(1, 200) i;
INSERT INTO lines SELECT i, 1 + i % 200, 'sku-' || i FROM generate_series(1, 600) i;
BEGIN;
INSERT INTO teams VALUES (1, 1), (2, 3);
INSERT INTO people VALUES (1, 1, NULL), (2, 1, 1), (3, 2, 1), (4, 2, 3);
COMMIT;
INSERT INTO "we;ird ""name" VALUES (1, 'x');
"#;

#[test]
fn clear_empties_chains_cycles_and_hostile_names_after_a_verified_backup() {
    let (p, _, target) = pair("clear", CUTOVER_SCHEMA);
    let db = target.rsplit('/').next().unwrap().to_string();
    let count = |table: &str| -> i64 {
        OTHER
            .connect(&db)
            .unwrap()
            .query_one(&format!("select count(*) from {table}"), &[])
            .unwrap()
            .get(0)
    };
    // The cutover target's migrations were applied by Prisma: its history
    // stays with the schema it describes.
    OTHER
        .connect(&db)
        .unwrap()
        .batch_execute(
            "CREATE TABLE _prisma_migrations (id varchar(36) PRIMARY KEY, checksum varchar(64) NOT NULL,
               finished_at timestamptz, migration_name varchar(255) NOT NULL, logs text,
               rolled_back_at timestamptz, started_at timestamptz NOT NULL DEFAULT now(),
               applied_steps_count integer NOT NULL DEFAULT 0);
             INSERT INTO _prisma_migrations (id, checksum, migration_name) VALUES ('1', 'c', '0_init');",
        )
        .unwrap();
    let plan = p
        .run(&["clear", "--target", &target])
        .expect_code(0)
        .expect_output("nothing changed")
        .expect_output("kept: public._prisma_migrations (a migration tool's history")
        .all();
    let at = |t: &str| plan.find(t).unwrap_or_else(|| panic!("{t} missing in {plan}"));
    assert!(
        at("public.lines (600") < at("public.orders (200")
            && at("public.orders") < at("public.accounts (50"),
        "{plan}"
    );
    assert!(plan.contains("on a foreign-key cycle (emptied together in one TRUNCATE): public.people, public.teams"), "{plan}");
    assert_eq!(count("lines"), 600, "a dry run changes nothing");

    // Only part of a chain: the rows referring to it stop the clear before anything is touched.
    p.run(&["clear", "--target", &target, "--tables", "accounts", "--yes"])
        .expect_code(1)
        .expect_output("public.orders → public.accounts");
    assert_eq!(count("accounts"), 50);
    p.run(&["clear", "--target", &target, "--tables", "nosuch", "--yes"])
        .expect_code(2)
        .expect_output("no table matches nosuch");

    let run = p
        .run(&["clear", "--target", &target, "--yes"])
        .expect_code(0)
        .expect_output("verified")
        .all();
    assert!(run.contains("emptied 6 table(s), 857 row(s) removed in one transaction"), "{run}");
    // Regression: where the backup went was never said.
    let backups_dir = std::fs::canonicalize(p.path().join(".backstop/backups")).unwrap();
    assert!(run.contains(&format!("in {}/", backups_dir.display())), "{run}");
    for t in ["accounts", "orders", "lines", "teams", "people", "\"we;ird \"\"name\""] {
        assert_eq!(count(t), 0, "{t}");
    }
    assert_eq!(count("_prisma_migrations"), 1, "the tool's history is kept");
    let backups = p.run(&["backup", "list", "--format", "json"]).expect_code(0).json();
    assert_eq!(backups.as_array().unwrap().len(), 1, "{backups}");

    // A wrong password: exit 3, the password never shown, nothing touched.
    let wrong = format!("postgres://postgres:Sekr1tPw@{}", target.split_once('@').unwrap().1);
    let refused = p.run(&["clear", "--target", &wrong, "--yes"]);
    refused.expect_code(3);
    assert!(!refused.all().contains("Sekr1tPw"), "{}", refused.all());
}

#[test]
fn sync_brings_the_rows_written_since_over_by_key_and_compare_then_passes() {
    let events = "CREATE TABLE events (id int PRIMARY KEY, body text, updated_at timestamptz NOT NULL);
         INSERT INTO events SELECT i, 'event ' || i, '2026-01-01'::timestamptz + i * interval '1 day' FROM generate_series(1, 10) i;
         CREATE SCHEMA \"app.v2\"; CREATE TABLE \"app.v2\".\"line.items\" (id int PRIMARY KEY, note text);
         INSERT INTO \"app.v2\".\"line.items\" VALUES (1, 'dots are part of names');";
    let (p, source, target) = pair("sync", &format!("{CUTOVER_SCHEMA}{events}"));
    let db = target.rsplit('/').next().unwrap().to_string();
    // Written on the new side since the switch: a new chain of rows, changes
    // in a cycle, a hostile name, and two edits of different ages.
    p.client()
        .batch_execute(
            r#"INSERT INTO accounts VALUES (51, 'new account');
               INSERT INTO orders VALUES (201, 51, 99.99);
               INSERT INTO lines VALUES (601, 201, 'sku-new');
               UPDATE accounts SET name = 'renamed' WHERE id = 1;
               UPDATE people SET manager_id = 2 WHERE id = 4;
               UPDATE "we;ird ""name" SET "sel;ect" = 'changed' WHERE id = 1;
               UPDATE events SET body = 'edited', updated_at = '2026-06-01' WHERE id = 1;
               UPDATE events SET body = 'old edit', updated_at = '2025-12-01' WHERE id = 2;
               INSERT INTO "app.v2"."line.items" VALUES (2, 'new');"#,
        )
        .unwrap();
    // Only on the old side.
    on_target(&target, "INSERT INTO accounts VALUES (99, 'only here')");

    let dry = p
        .run(&["sync", "--from", &source, "--to", &target, "--since", "2026-01-01 00:00"])
        .expect_code(0)
        .expect_output("(dry run)")
        .expect_output("public.accounts: 1 to insert, 1 to update, 0 to delete, 1 only on the receiving side kept")
        .expect_output("public.events: 0 to insert, 1 to update, 0 to delete, 1 older than --since left out")
        .expect_output("public.lines: 1 to insert")
        .expect_output("app.v2.line.items: 1 to insert")
        .expect_output("nothing changed")
        .all();
    assert!(!dry.contains("Sekr1t") && !dry.contains(&source), "URLs are shown masked: {dry}");
    compare(&p, &source, &target, 1);
    // One confirmation rule: --dry-run shows, --yes does; both at once is a usage error.
    p.run(&["sync", "--from", &source, "--to", &target, "--dry-run", "--yes"])
        .expect_code(2)
        .expect_output("--dry-run");
    compare(&p, &source, &target, 1);

    p.run(&["data", "sync", "--from", &source, "--to", &target, "--yes", "--with-deletes"])
        .expect_code(0)
        .expect_output("✓ applied in one transaction; compared again: match, 0 missing, 0 different, 0 only on the receiving side");
    let after = compare(&p, &source, &target, 0);
    assert_eq!(after["verdict"], "match", "{after}");
    let mut old = OTHER.connect(&db).unwrap();
    let name: String = old
        .query_one("select \"sel;ect\" from \"we;ird \"\"name\" where id = 1", &[])
        .unwrap()
        .get(0);
    assert_eq!(name, "changed");
    let logged: i64 =
        old.query_one("select count(*) from accounts where id = 99", &[]).unwrap().get(0);
    assert_eq!(logged, 0, "--with-deletes removed the row only the old side had");

    // A table on one side only: refused before anything is written.
    OTHER.connect(&db).unwrap().batch_execute("CREATE TABLE stray (id int PRIMARY KEY)").unwrap();
    p.client().batch_execute("UPDATE accounts SET name = 'again' WHERE id = 2").unwrap();
    // `--apply`, the old name of `--yes`, still answers.
    p.run(&["sync", "--from", &source, "--to", &target, "--apply"])
        .expect_code(1)
        .expect_output("public.stray exists only on the receiving side");
    let n: String = old.query_one("select name from accounts where id = 2", &[]).unwrap().get(0);
    assert_eq!(n, "account 2", "nothing was written");
    p.run(&["sync", "--from", &source, "--to", &target, "--since", "yesterday"])
        .expect_code(2)
        .expect_output("--since \"yesterday\"");
}

#[test]
fn a_database_freeze_makes_it_read_only_until_unfreeze() {
    let p = Project::new("database_freeze");
    p.client().batch_execute("CREATE TABLE t (id int PRIMARY KEY)").unwrap();
    p.run(&["freeze", "--database", "--role", "x", "--reason", "cutover"]).expect_code(2);
    p.run(&["freeze", "--database", "--reason", "cutover to V2"])
        .expect_code(0)
        .expect_output("froze writes to database");
    let refused = p.client().batch_execute("INSERT INTO t VALUES (1)").unwrap_err();
    let message = refused.as_db_error().map(|e| e.message().to_string()).unwrap_or_default();
    assert!(message.contains("read-only transaction"), "{refused:?}");
    p.run(&["status"]).expect_code(1).expect_output("frozen");
    p.run(&["unfreeze"]).expect_code(0).expect_output("lifted the write freeze");
    p.client().batch_execute("INSERT INTO t VALUES (1)").unwrap();
}

#[test]
fn the_verdict_follows_compare_policy_and_its_presets() {
    let (p, source, target) = pair(
        "compare_policy",
        "CREATE TABLE items (id int PRIMARY KEY, qty int);
         INSERT INTO items SELECT i, i FROM generate_series(1, 1000) i;",
    );
    // 5 rows of 1000 (0.5 %) missing in the target, one changed.
    on_target(&target, "DELETE FROM items WHERE id > 995; UPDATE items SET qty = 0 WHERE id = 1;");
    let judged = |config: &str, code: i32| -> Value {
        p.config(&format!("{}\n{config}", crate::common::DEFAULT_CONFIG));
        compare(&p, &source, &target, code)["judgement"].clone()
    };
    let exact = judged("", 1);
    assert_eq!(exact["verdict"], "fail", "{exact}");
    assert_eq!(exact["criteria"][0]["ok"], false, "0.5 % is over the exact tolerance: {exact}");

    let runbook = judged("[compare]\npreset = \"runbook\"\n", 1);
    assert_eq!(runbook["row_count_tolerance"], 1.0);
    assert_eq!(runbook["criteria"][0]["ok"], true, "within 1 %: {runbook}");
    assert_eq!(runbook["criteria"][1]["ok"], false, "the checksums still differ: {runbook}");

    // A live cutover may only ask for counts within 1 % and sound keys.
    let counts =
        judged("[compare]\npreset = \"runbook\"\nfail_on = [\"rows\", \"foreign_keys\"]\n", 0);
    assert_eq!(counts["verdict"], "pass", "{counts}");
    assert_eq!(counts["criteria"][1]["counts"], false);
    p.run(&["compare", "--source", &source, "--target", &target])
        .expect_code(0)
        .expect_output("verdict: PASS ([compare] preset runbook, row counts within 1%)")
        .expect_output(
            "! content (reported, not counted): public.items: 5 missing, 0 extra, 1 different",
        );

    p.config(&format!(
        "{}\n[compare]\nrow_count_tolerance = \"ten\"\n",
        crate::common::DEFAULT_CONFIG
    ));
    p.run(&["compare", "--source", &source, "--target", &target])
        .expect_code(2)
        .expect_output("e.g. \"1%\"");
}

#[test]
fn tolerances_apply_only_when_asked_and_are_printed_with_the_verdict() {
    // Seven equal rows, then one difference in each.
    let (p, source, target) = pair(
        "compare_tolerances",
        "CREATE TABLE m (id int PRIMARY KEY, price numeric(12,4), ratio float8, at timestamptz, local timestamp, note text);
         INSERT INTO m SELECT i, 10, 0.5, '2026-01-01 00:00:00.1+00', '2026-01-01 12:00:00', 'a'
           FROM generate_series(1, 7) i;",
    );
    p.client()
        .batch_execute(
            "UPDATE m SET price = 10.0040 WHERE id = 2;
             UPDATE m SET at = '2026-01-01 00:00:00.123456+00' WHERE id = 4;
             UPDATE m SET at = '2026-01-01 00:00:00.1234+00' WHERE id = 5;
             UPDATE m SET ratio = 0.1 WHERE id = 6;
             UPDATE m SET local = '2026-01-01 12:00:00.5004' WHERE id = 7;",
        )
        .unwrap();
    let db = target.rsplit('/').next().unwrap().to_string();
    on_target(
        &target,
        "UPDATE m SET price = 10.0040 WHERE id = 1;
             UPDATE m SET price = 10.0060 WHERE id = 2;
             UPDATE m SET price = 10.0200 WHERE id = 3;
             UPDATE m SET at = '2026-01-01 00:00:00.123+00' WHERE id = 4;
             UPDATE m SET at = '2026-01-01 00:00:00.1244+00' WHERE id = 5;
             UPDATE m SET ratio = 0.105, note = 'b' WHERE id = 6;
             UPDATE m SET local = '2026-01-01 12:00:00.5' WHERE id = 7;",
    );
    // Exactly by default: every row differs.
    let exact = compare(&p, &source, &target, 1);
    assert_eq!(keys(&exact["tables"][0], "different"), [1, 2, 3, 4, 5, 6, 7], "{exact}");
    assert!(exact.get("tolerances").is_none(), "{exact}");

    p.config(&format!(
        "{}\n[compare]\nnumeric_tolerance = 0.01\ntimestamp_precision = \"1ms\"\n",
        crate::common::DEFAULT_CONFIG
    ));
    let c = compare(&p, &source, &target, 1);
    let t = &c["tables"][0];
    // 1: 0.004 apart; 2: 0.002 apart though they round apart (10.00,
    // 10.01); 4: the same millisecond; 7: the same, without a time zone.
    // 3: 0.02 apart; 5: .123 against .124; 6: its note (its ratio is
    // within the tolerance and not listed).
    assert_eq!(keys(t, "different"), [3, 5, 6], "{c}");
    let six = t["rows"].as_array().unwrap().iter().find(|r| r["key"]["id"] == 6).unwrap();
    assert_eq!(six["columns"], json!({ "note": ["a", "b"] }));
    assert_eq!(c["tolerances"], json!({ "numeric": "0.01", "timestamp_precision": "1ms" }));
    p.run(&["compare", "--source", &source, "--target", &target]).expect_code(1).expect_output(
        "equal within the tolerances of [compare]: numeric values within 0.01, timestamps to 1ms",
    );

    // Rows within the tolerances only: a match, said to be one within them.
    OTHER.connect(&db).unwrap().batch_execute("DELETE FROM m WHERE id IN (3, 5, 6)").unwrap();
    p.client().batch_execute("DELETE FROM m WHERE id IN (3, 5, 6)").unwrap();
    let c = compare(&p, &source, &target, 0);
    assert_eq!(c["tables"][0]["status"], "match", "{c}");
    assert_eq!(
        c["judgement"]["criteria"][1]["detail"],
        "equal within the tolerances: numeric values within 0.01, timestamps to 1ms"
    );

    for (bad, hint) in [
        ("numeric_tolerance = \"-1\"", "a positive decimal such as \"0.01\""),
        ("numeric_tolerance = \"1e-3\"", "a positive decimal such as \"0.01\""),
        ("timestamp_precision = \"1 minute\"", "write one of \"1s\", \"100ms\""),
    ] {
        p.config(&format!("{}\n[compare]\n{bad}\n", crate::common::DEFAULT_CONFIG));
        p.run(&["compare", "--source", &source, "--target", &target])
            .expect_code(2)
            .expect_output(hint);
    }
}

#[test]
fn a_column_on_one_side_only_is_listed_apart_and_rows_compare_on_the_rest() {
    // Regression: a column only the target had made every row "different".
    let (p, source, target) = pair(
        "compare_one_sided",
        "CREATE TABLE items (id int PRIMARY KEY, name text, price numeric);
         INSERT INTO items SELECT i, 'item ' || i, i * 1.5 FROM generate_series(1, 500) i;",
    );
    on_target(&target, "ALTER TABLE items ADD COLUMN note text DEFAULT 'new'; UPDATE items SET name = 'renamed' WHERE id = 7;");
    let c = compare(&p, &source, &target, 1);
    let t = c["tables"].as_array().unwrap().iter().find(|t| t["table"] == "public.items").unwrap();
    assert_eq!(t["columns_only_in_target"], serde_json::json!(["note"]), "{t}");
    assert_eq!(t["different"], 1, "only the row whose shared columns differ: {t}");
    assert_eq!(t["rows"][0]["key"]["id"], 7);
    assert!(t["rows"][0]["columns"].get("note").is_none(), "{t}");
    let text = p
        .run(&["compare", "--source", &source, "--target", &target])
        .expect_code(1)
        .expect_output("column(s) only in the target: note")
        .all();
    assert!(text.contains("1 different"), "{text}");
}

#[test]
fn the_grants_a_freeze_revoked_are_no_difference_and_ignore_acl_leaves_all_out() {
    // Regression: after `freeze --role`, compare failed on the grants the
    // freeze itself had revoked.
    let role = unique_name("cut_role");
    let (p, source, target) = pair(
        "compare_acl",
        &format!(
            "DO $$ BEGIN CREATE ROLE {role} NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
             CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 10);
             GRANT INSERT, UPDATE ON t TO {role};"
        ),
    );
    compare(&p, &source, &target, 0);
    p.run(&["freeze", "--role", &role, "--reason", "cutover"]).expect_code(0);
    let c = compare(&p, &source, &target, 0);
    assert_eq!(c["verdict"], "match", "{c}");
    assert!(c["acl_left_out"][0].as_str().unwrap().contains(&role), "{c}");
    p.run(&["unfreeze", "--role", &role]).expect_code(0);
    on_target(&target, &format!("REVOKE UPDATE ON t FROM {role}"));
    let c = compare(&p, &source, &target, 1);
    assert!(c["schema"].to_string().contains("acl="), "{c}");
    let run = p.run(&[
        "compare", "--source", &source, "--target", &target, "--ignore", "acl", "--format", "json",
    ]);
    run.expect_code(0);
    assert_eq!(run.json()["verdict"], "match");
}
