//! Each file runs as its own tool runs it, with Backstop's guards around
//! it: Prisma's `BEGIN` … `COMMIT` run inside Backstop's transaction, a
//! `COMMIT` after `ADD VALUE` is where the run commits before the value is
//! used, drizzle's `COMMIT` leaves the `CREATE INDEX CONCURRENTLY` after it
//! outside a transaction, and `check`, `migrate --dry-run`, `migrate` and
//! `rehearse` give the same answer for each file, none asking to edit it.

use serde_json::Value;

use crate::common::{DbExt, Project};

fn prisma(p: &Project, folder: &str, sql: &str) {
    p.write(&format!("prisma/migrations/{folder}/migration.sql"), sql);
}

/// Findings of `check --format json` at or above high.
fn serious(p: &Project) -> Vec<String> {
    let json: Value = p.run(&["check", "--format", "json"]).json();
    json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| matches!(f["severity"].as_str(), Some("critical" | "high")))
        .map(|f| format!("{} {}", f["code"], f["message"]))
        .collect()
}

#[test]
fn prismas_own_transactions_run_as_prisma_runs_them_with_no_edit_asked() {
    let p = Project::bare("authors_prisma");
    p.write("prisma/schema.prisma", "datasource db { provider = \"postgresql\" }\n");
    p.write("prisma/migrations/migration_lock.toml", "provider = \"postgresql\"\n");
    prisma(
        &p,
        "20240101000000_init",
        "CREATE TYPE kind AS ENUM ('a');\nCREATE TABLE t (id int PRIMARY KEY, k kind NOT NULL DEFAULT 'a');\nINSERT INTO t VALUES (1), (2);\n",
    );
    prisma(
        &p,
        "20240101000000_tags",
        "BEGIN;\nCREATE TABLE tags (id int PRIMARY KEY, name text);\nINSERT INTO tags VALUES (1, 'x');\nCOMMIT;\n",
    );
    prisma(
        &p,
        "20240102000000_kind_b",
        "ALTER TYPE kind ADD VALUE 'b';\nCOMMIT;\nUPDATE t SET k = 'b' WHERE id = 2;\nCREATE INDEX t_b ON t (id) WHERE k = 'b';\n",
    );
    prisma(&p, "20240103000000_idx", "-- CreateIndex\nCREATE INDEX CONCURRENTLY t_k ON t (k);\n");
    assert_eq!(serious(&p), Vec::<String>::new());
    let dry = p.run(&["migrate", "--dry-run"]);
    dry.expect_code(0);
    dry.expect_output("commits at its author's COMMIT");
    dry.expect_output("20240102000000_kind_b/migration.sql:2");
    dry.expect_output("ADD VALUE of 'b' to kind");
    p.run(&["rehearse"]).expect_code(0);
    p.run(&["migrate"]).expect_code(0);
    let mut db = p.client();
    assert_eq!(
        db.applied(),
        ["20240101000000_init", "20240101000000_tags", "20240102000000", "20240103000000"]
    );
    assert_eq!(db.texts("select k::text from t order by id"), ["a", "b"]);
    assert_eq!(
        db.texts("select indexrelid::regclass::text from pg_index where indisvalid and indrelid = 't'::regclass order by 1"),
        ["t_b", "t_k", "t_pkey"]
    );
    assert_eq!(db.count("tags"), 1);
    // Prisma's own table holds each folder by its whole name.
    assert_eq!(
        db.texts("select migration_name from _prisma_migrations where finished_at is not null order by 1"),
        ["20240101000000_init", "20240101000000_tags", "20240102000000_kind_b", "20240103000000_idx"]
    );
}

#[test]
fn a_failure_after_the_authors_commit_leaves_the_migration_half_applied_and_says_so() {
    let p = Project::bare("authors_half");
    p.write("prisma/migrations/migration_lock.toml", "provider = \"postgresql\"\n");
    prisma(
        &p,
        "20240101000000_init",
        "CREATE TYPE kind AS ENUM ('a');\nCREATE TABLE t (id int, k kind);\n",
    );
    prisma(
        &p,
        "20240102000000_kind_c",
        "ALTER TYPE kind ADD VALUE 'c';\nCOMMIT;\nUPDATE t SET nope = 'c';\n",
    );
    let run = p.run(&["migrate", "--accept-risk", "BS405"]);
    run.expect_code(1).expect_output("column \"nope\" of relation \"t\" does not exist");
    run.expect_output("NOT rolled back: 1 statement(s)");
    let mut db = p.client();
    assert_eq!(db.applied(), ["20240101000000"]);
    assert_eq!(db.texts("select unnest(enum_range(null::kind))::text"), ["a", "c"]);
    p.run(&["status"]).expect_output("half-applied (1)").expect_output("20240102000000");
}

const JOURNAL: &str = r#"{"version": "7", "dialect": "postgresql", "entries": [
  {"idx": 0, "version": "7", "when": 1704067200000, "tag": "0000_items", "breakpoints": true},
  {"idx": 1, "version": "7", "when": 1704153600000, "tag": "0001_indexes", "breakpoints": true}
]}"#;

#[test]
fn drizzles_commit_leaves_the_concurrent_indexes_after_it_outside_a_transaction() {
    let p = Project::bare("authors_drizzle");
    p.write(
        "drizzle.config.ts",
        "export default { dialect: 'postgresql', schema: './src/schema.ts', out: './drizzle' };\n",
    );
    p.write("drizzle/meta/_journal.json", JOURNAL);
    p.write(
        "drizzle/0000_items.sql",
        "CREATE TABLE \"items\" (\"id\" integer PRIMARY KEY, \"owner\" integer, \"name\" text);\n",
    );
    p.write(
        "drizzle/0001_indexes.sql",
        "ALTER TABLE \"items\" ADD COLUMN \"tag\" text;--> statement-breakpoint\nCOMMIT;--> statement-breakpoint\nCREATE INDEX CONCURRENTLY \"items_owner_idx\" ON \"items\" (\"owner\");--> statement-breakpoint\nCREATE INDEX CONCURRENTLY \"items_tag_idx\" ON \"items\" (\"tag\");\n",
    );
    assert_eq!(serious(&p), Vec::<String>::new());
    let dry = p.run(&["migrate", "--dry-run"]);
    dry.expect_code(0).expect_output("what follows runs outside one, statement by statement");
    p.run(&["migrate"]).expect_code(0);
    let mut db = p.client();
    assert_eq!(db.applied(), ["0000", "0001"]);
    assert_eq!(
        db.texts("select indexrelid::regclass::text from pg_index where indisvalid and indrelid = 'items'::regclass order by 1"),
        ["items_owner_idx", "items_pkey", "items_tag_idx"]
    );
    // Without the author's COMMIT the same index is a true finding.
    let q = Project::bare("authors_drizzle_plain");
    q.write("drizzle/meta/_journal.json", JOURNAL);
    q.write("drizzle/0000_items.sql", "CREATE TABLE items (id int PRIMARY KEY, tag text);\n");
    q.write(
        "drizzle/0001_indexes.sql",
        "CREATE INDEX CONCURRENTLY \"items_tag_idx\" ON \"items\" (\"tag\");--> statement-breakpoint\nCREATE INDEX \"items_x\" ON \"items\" (\"id\");\n",
    );
    let found = serious(&q);
    assert!(found.iter().any(|f| f.contains("BS202")), "{found:?}");
}

#[test]
fn a_begin_never_committed_and_a_do_block_that_commits_are_named_with_their_place() {
    let p = Project::bare("authors_bad");
    p.write("prisma/migrations/migration_lock.toml", "provider = \"postgresql\"\n");
    prisma(&p, "20240101000000_a", "CREATE TABLE a (id int);\nBEGIN;\nCREATE TABLE b (id int);\n");
    prisma(
        &p,
        "20240102000000_b",
        "CREATE TABLE c (id int);\nDO $$ BEGIN INSERT INTO c VALUES (1); COMMIT; END $$;\n",
    );
    let status = p.run(&["status"]);
    status.expect_output("20240101000000_a/migration.sql:2");
    status.expect_output("is never committed");
    status.expect_output("20240102000000_b/migration.sql:2");
    status.expect_output("a DO block that commits cannot run inside a transaction");
    let run = p.run(&["migrate"]);
    run.expect_code(2).expect_output("is never committed");
    assert!(!p.client().exists("a"), "nothing ran");
}
