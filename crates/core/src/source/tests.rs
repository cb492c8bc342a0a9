//! Reading folders of every layout, and the real-folder failures each as a
//! regression test named after what broke.

use super::*;
use std::fs;

fn write(dir: &Path, rel: &str, text: &[u8]) {
    let path = dir.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

fn folder(files: &[(&str, &str)]) -> (tempfile::TempDir, Folder) {
    let tmp = tempfile::tempdir().unwrap();
    for (rel, text) in files {
        write(tmp.path(), rel, text.as_bytes());
    }
    let f = load(tmp.path(), None).unwrap();
    (tmp, f)
}

fn versions(f: &Folder) -> Vec<&str> {
    f.migrations.iter().map(|m| m.version.as_str()).collect()
}

#[test]
fn reads_diesel_folders_in_version_order() {
    let (_tmp, f) = folder(&[
        ("2_third/up.sql", "CREATE TABLE c (id int);"),
        ("2_third/down.sql", "DROP TABLE c;"),
        ("2_third/verify.sql", "SELECT 1/count(*) FROM c WHERE false;"),
        ("1_first/up.sql", "CREATE TABLE a (id int);"),
    ]);
    assert_eq!(f.layout, Layout::Diesel);
    assert_eq!(versions(&f), ["1", "2"]);
    assert_eq!(f.migrations[0].name, "first");
    assert!(f.migrations[0].down.is_none());
    assert!(f.migrations[1].down.is_some() && f.migrations[1].verify.is_some());
}

#[test]
fn short_numeric_versions_order_as_numbers() {
    let (_tmp, f) = folder(&[
        ("10_c/up.sql", "SELECT 3;"),
        ("9_b/up.sql", "SELECT 2;"),
        ("1_a/up.sql", "SELECT 1;"),
    ]);
    assert_eq!(versions(&f), ["1", "9", "10"]);
}

#[test]
fn readme_and_data_file_beside_diesel_folders_are_ignored_and_listed() {
    let (_tmp, f) = folder(&[
        ("README.md", "# our migrations"),
        ("seed_data.sql", "INSERT INTO t VALUES (1);"),
        ("notes/todo.txt", "later"),
        ("2020-01-01-000000_create/up.sql", "CREATE TABLE t (id int);"),
    ]);
    assert_eq!(f.layout, Layout::Diesel);
    assert_eq!(versions(&f), ["2020-01-01-000000"]);
    let ignored: Vec<_> = f.ignored.iter().map(|i| file_name(&i.path)).collect();
    assert_eq!(ignored, ["README.md", "notes", "seed_data.sql"]);
}

#[test]
fn a_down_with_a_missing_semicolon_is_a_problem_of_that_down_only() {
    let (_tmp, f) = folder(&[
        ("1_a/up.sql", "CREATE TABLE a (id int);\nCREATE TABLE b (id int);"),
        ("1_a/down.sql", "DROP TABLE b\nDROP TABLE a;\n"),
        ("2_b/up.sql", "CREATE TABLE c (id int);"),
    ]);
    let m = &f.migrations[0];
    assert!(m.runnable(Part::Up) && !m.runnable(Part::Down));
    let p = m.problems_in(Part::Down).next().unwrap();
    assert_eq!((p.kind, p.line, p.column), (ProblemKind::Syntax, 2, 1));
    assert!(p.to_string().contains("down.sql:2:1: syntax error at or near \"DROP\""), "{p}");
    assert!(f.migrations[1].problems.is_empty());
}

#[test]
fn diesel_metadata_run_in_transaction_false_is_honoured() {
    let (_tmp, f) = folder(&[
        ("1_idx/up.sql", "CREATE INDEX CONCURRENTLY i ON t (id);"),
        ("1_idx/down.sql", "DROP INDEX CONCURRENTLY i;"),
        ("1_idx/metadata.toml", "run_in_transaction = false\n"),
        ("2_other/up.sql", "CREATE TABLE u (id int);"),
        ("2_other/metadata.toml", "run_in_transaction = true\n"),
    ]);
    let m = &f.migrations[0];
    assert!(m.no_transaction && m.down.as_ref().unwrap().no_transaction);
    assert!(m.problems.is_empty(), "{:?}", m.problems);
    assert!(!f.migrations[1].no_transaction);
}

#[test]
fn concurrently_in_a_transactional_down_is_a_problem_of_that_down() {
    let (_tmp, f) = folder(&[
        ("1_idx/up.sql", "CREATE INDEX i ON t (id);"),
        ("1_idx/down.sql", "\nDROP INDEX CONCURRENTLY i;"),
    ]);
    let m = &f.migrations[0];
    assert!(m.runnable(Part::Up));
    let p = m.problems_in(Part::Down).next().unwrap();
    assert_eq!((p.kind, p.line), (ProblemKind::NeedsNoTransaction, 2));
    assert!(p.message.contains("run_in_transaction = false"), "{}", p.message);
}

#[test]
fn diesel_versions_order_with_dashes_removed() {
    let (_tmp, f) = folder(&[
        ("2026-07-30-140000-0000_late/up.sql", "SELECT 3;"),
        ("2017-08-31-230457_middle/up.sql", "SELECT 2;"),
        ("20170318181441_early/up.sql", "SELECT 1;"),
    ]);
    assert_eq!(versions(&f), ["20170318181441", "2017-08-31-230457", "2026-07-30-140000-0000"]);
    assert_eq!(f.migrations[1].tool_version, "20170831230457");
}

#[test]
fn sqlx_pairs_plain_files_and_no_transaction() {
    let (_tmp, f) = folder(&[
        ("10_third.sql", "-- no-transaction\nCREATE INDEX CONCURRENTLY i ON t (id);"),
        ("9_second.up.sql", "CREATE TABLE b (id int);"),
        ("9_second.down.sql", "DROP TABLE b;"),
        ("1_first.sql", "CREATE TABLE a (id int);"),
        ("9_orphan.down.sql", "DROP TABLE z;"),
    ]);
    assert_eq!(f.layout, Layout::Sqlx);
    assert_eq!(versions(&f), ["1", "9", "10"]);
    assert!(f.migrations[2].no_transaction && f.migrations[2].problems.is_empty());
    assert!(f.migrations[1].down.is_some());
    assert_eq!(f.ignored.len(), 1);
}

#[test]
fn golang_migrate_files_keep_their_authors_transaction() {
    let (_tmp, f) = folder(&[
        ("000001_init.up.sql", "BEGIN;\nCREATE TABLE a (id int);\nCOMMIT;\n"),
        ("000001_init.down.sql", "DROP TABLE a;"),
        ("000002_idx.up.sql", "CREATE INDEX CONCURRENTLY i ON a (id);"),
        ("000002_idx.down.sql", "DROP INDEX i;"),
    ]);
    assert_eq!(f.layout, Layout::GolangMigrate);
    let m = &f.migrations[0];
    assert_eq!(m.up.statements.len(), 1, "BEGIN and COMMIT are the author's, not run");
    assert!(m.problems.is_empty() && !m.no_transaction);
    assert_eq!(m.tool_version, "1");
    assert!(f.migrations[1].no_transaction, "golang-migrate never wraps; CONCURRENTLY runs alone");
}

#[test]
fn dbmate_sections_keep_file_lines_and_options() {
    let (_tmp, f) = folder(&[
        ("20200101000000_a.sql", "-- migrate:up\nCREATE TABLE a (id int);\n\n-- migrate:down\nDROP TABLE a;\n"),
        (
            "20200102000000_idx.sql",
            "-- migrate:up transaction:false\nCREATE INDEX CONCURRENTLY i ON a (id);\n-- migrate:down transaction:false\nDROP INDEX CONCURRENTLY i;\n",
        ),
    ]);
    assert_eq!(f.layout, Layout::Dbmate);
    let m = &f.migrations[0];
    assert_eq!(m.up.statements.len(), 1);
    assert_eq!(m.down.as_ref().unwrap().statements[0].position.line, 5);
    let idx = &f.migrations[1];
    assert!(idx.no_transaction && idx.down.as_ref().unwrap().no_transaction);
    assert!(idx.problems.is_empty(), "{:?}", idx.problems);
}

#[test]
fn goose_annotations_and_go_migrations() {
    let (_tmp, f) = folder(&[
        (
            "00001_create.sql",
            "-- +goose Up\n-- +goose StatementBegin\nCREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql;\n-- +goose StatementEnd\n\n-- +goose Down\nDROP FUNCTION f();\n",
        ),
        ("00002_idx.sql", "-- +goose NO TRANSACTION\n-- +goose Up\nCREATE INDEX CONCURRENTLY i ON t (id);\n"),
        ("00003_backfill.go", "package migrations\n"),
    ]);
    assert_eq!(f.layout, Layout::Goose);
    assert_eq!(
        f.migrations.iter().map(|m| m.tool_version.as_str()).collect::<Vec<_>>(),
        ["1", "2", "3"]
    );
    assert_eq!(f.migrations[0].up.statements.len(), 1);
    assert!(f.migrations[1].no_transaction && f.migrations[1].down.is_none());
    assert_eq!(f.migrations[2].problems[0].kind, ProblemKind::Unsupported);
}

/// Regression: dbmate reads a marker only at the start of a line, and
/// refuses a file whose down marker is indented; Backstop took it.
#[test]
fn an_indented_dbmate_marker_is_refused_as_dbmate_refuses_it() {
    let (_tmp, f) = folder(&[(
        "20240101000000_users.sql",
        "-- migrate:up\nCREATE TABLE users (id int);\n\n  -- migrate:down\nDROP TABLE users;\n",
    )]);
    assert_eq!(f.layout, Layout::Dbmate);
    let m = &f.migrations[0];
    assert_eq!(m.problems.len(), 1, "{:?}", m.problems);
    assert_eq!((m.problems[0].kind, m.problems[0].line), (ProblemKind::Unsupported, 4));
    assert!(
        m.problems[0].message.contains("indented `-- migrate:down`"),
        "{}",
        m.problems[0].message
    );
}

/// node-pg-migrate's sections, as node-pg-migrate reads them: any case,
/// dashes after `--`; a file without markers is its up whole; a file with
/// a down marker but no up marker is refused (node-pg-migrate would run
/// its down's statements as the up); `.js` migrations are named as ones
/// Backstop cannot run.
#[test]
fn node_pg_migrate_sections_are_read_as_it_reads_them() {
    let (_tmp, f) = folder(&[
        (
            "1700000000000_users.sql",
            "-- Up Migration\nCREATE TABLE users (id int);\n-- Down Migration\nDROP TABLE users;\n",
        ),
        ("1700000000100_posts.sql", "--- up migration\nCREATE TABLE posts (id int);\n"),
        ("1700000000200_plain.sql", "CREATE TABLE plain (id int);\n"),
        ("1700000000300_wrong.sql", "CREATE TABLE w (id int);\n-- Down Migration\nDROP TABLE w;\n"),
        ("1700000000400_seed.js", "exports.up = (pgm) => {};\n"),
    ]);
    assert_eq!(f.layout, Layout::NodePgMigrate);
    let by = |v: &str| f.migrations.iter().find(|m| m.tool_version == v).unwrap();
    let users = by("1700000000000_users");
    assert_eq!(users.up.statements.len(), 1);
    assert_eq!(users.down.as_ref().unwrap().statements[0].position.line, 4);
    assert!(by("1700000000100_posts").down.is_none());
    assert_eq!(by("1700000000200_plain").up.statements.len(), 1);
    let wrong = by("1700000000300_wrong");
    assert_eq!((wrong.problems.len(), wrong.problems[0].line), (1, 2), "{:?}", wrong.problems);
    assert_eq!(by("1700000000400_seed").problems[0].kind, ProblemKind::Unsupported);
}

#[test]
fn flyway_versions_undo_repeatables_and_conf() {
    let (_tmp, f) = folder(&[
        ("V1__init.sql", "CREATE TABLE a (id int);"),
        ("U1__init.sql", "DROP TABLE a;"),
        ("sub/V1_10__later.sql", "CREATE TABLE c (id int);"),
        ("V1.9__idx.sql", "CREATE INDEX CONCURRENTLY i ON a (id);"),
        ("V1.9__idx.sql.conf", "executeInTransaction=false\n"),
        ("R__views.sql", "CREATE OR REPLACE VIEW v AS SELECT 1 AS one;"),
    ]);
    assert_eq!(f.layout, Layout::Flyway);
    assert_eq!(versions(&f), ["1", "1.9", "1.10", "R__views"]);
    assert!(f.migrations[0].down.is_some());
    assert!(f.migrations[1].no_transaction && f.migrations[1].problems.is_empty());
    assert!(f.migrations[3].repeatable);
}

#[test]
fn sqitch_plan_order_requires_and_missing_scripts() {
    let (_tmp, f) = folder(&[
        (
            "sqitch.plan",
            "%project=app\n\nschema 2020-01-01T00:00:00Z M <m@x>\nusers [schema] 2020-01-01T00:00:01Z M <m@x>\nposts [users] 2020-01-01T00:00:02Z M <m@x>\n",
        ),
        ("deploy/schema.sql", "BEGIN;\nCREATE SCHEMA app;\nCOMMIT;\n"),
        ("revert/schema.sql", "BEGIN;\nDROP SCHEMA app;\nCOMMIT;\n"),
        ("verify/schema.sql", "BEGIN;\nSELECT 1/count(*) FROM pg_namespace WHERE nspname = 'app';\nROLLBACK;\n"),
        ("deploy/users.sql", "CREATE TABLE app.users (id int);"),
    ]);
    assert_eq!(f.layout, Layout::Sqitch);
    assert_eq!(versions(&f), ["schema", "users", "posts"]);
    let schema = &f.migrations[0];
    assert!(schema.problems.is_empty(), "{:?}", schema.problems);
    assert_eq!(schema.verify.as_ref().unwrap().statements.len(), 1);
    assert_eq!(f.migrations[1].requires, ["schema"]);
    let missing = &f.migrations[2].problems[0];
    assert_eq!((missing.kind, missing.line), (ProblemKind::MissingFile, 5));
    assert!(missing.path.ends_with("sqitch.plan"));
}

#[test]
fn a_folder_mixing_two_layouts_names_a_file_of_each() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "1_a/up.sql", b"SELECT 1;");
    write(tmp.path(), "2_b.up.sql", b"SELECT 2;");
    let err = load(tmp.path(), None).unwrap_err();
    assert!(matches!(err, SourceError::MixedLayouts { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("1_a") && text.contains("2_b.up.sql") && text.contains("layout"),
        "{text}"
    );
    // Naming the layout reads the folder as that one.
    let f = load(tmp.path(), Some(Layout::Sqlx)).unwrap();
    assert_eq!(versions(&f), ["2"]);
}

#[test]
fn duplicate_versions_are_an_error_naming_both() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "0001_a.up.sql", b"SELECT 1;");
    write(tmp.path(), "1_b.up.sql", b"SELECT 2;");
    let err = load(tmp.path(), None).unwrap_err();
    assert!(matches!(err, SourceError::Duplicate { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("0001_a") && text.contains("1_b.up.sql"), "{text}");
}

#[test]
fn non_utf8_empty_and_syntax_errors_are_problems() {
    let (_tmp, f) = folder(&[
        ("1_a/up.sql", "SELECT 1;"),
        ("2_b/up.sql", "-- nothing yet\n\n"),
        ("3_c/up.sql", "SELECT 1;\nCREATE TABEL x ();\n"),
    ]);
    assert_eq!(f.migrations[1].problems[0].kind, ProblemKind::Empty);
    let p = &f.migrations[2].problems[0];
    assert!(p.to_string().ends_with("up.sql:2:8: syntax error at or near \"TABEL\""), "{p}");

    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "1_a/up.sql", b"SELECT '\xff';");
    let f = load(tmp.path(), None).unwrap();
    let p = &f.migrations[0].problems[0];
    assert_eq!(p.kind, ProblemKind::Unreadable);
    assert!(p.message.contains("offset 8"), "{}", p.message);
}

#[test]
fn transaction_control_and_concurrent_index_need_the_marker() {
    let (_tmp, f) = folder(&[
        ("1_a/up.sql", "BEGIN;\nCREATE TABLE t (id int);\nCOMMIT;\n"),
        ("2_b/up.sql", "CREATE INDEX CONCURRENTLY i ON t (id);"),
        ("3_c/up.sql", "-- backstop:no-transaction\nCREATE INDEX CONCURRENTLY i ON t (id);"),
    ]);
    let kinds = |i: usize| f.migrations[i].problems.iter().map(|p| p.kind).collect::<Vec<_>>();
    assert_eq!(kinds(0), [ProblemKind::TransactionControl, ProblemKind::TransactionControl]);
    assert_eq!(kinds(1), [ProblemKind::NeedsNoTransaction]);
    assert!(f.migrations[2].no_transaction && kinds(2).is_empty());
}

#[test]
fn comment_only_edits_keep_the_checksum_and_real_edits_change_it() {
    let tmp = tempfile::tempdir().unwrap();
    let sum = |text: &[u8]| {
        write(tmp.path(), "1_a/up.sql", text);
        load(tmp.path(), None).unwrap().migrations[0].checksum.clone()
    };
    let before = sum(b"CREATE TABLE t (id int);");
    assert_eq!(sum(b"-- explained\nCREATE TABLE t (\n  id int  -- key\n);\n"), before);
    assert_ne!(sum(b"CREATE TABLE t (id bigint);"), before);
}

#[test]
fn error_positions_map_into_the_file() {
    let (_tmp, mut f) = folder(&[("1_a/up.sql", "-- é\nSELECT 1;\n\nSELECT\n  nope;\n")]);
    let m = f.migrations.remove(0);
    // PostgreSQL reports 1-based character positions inside the statement.
    assert_eq!(m.up.position_in(1, Some(10)), Position { line: 5, column: 3 });
    assert_eq!(m.up.position_in(1, None), Position { line: 4, column: 1 });
}

// The up-only layouts: Supabase CLI, Prisma, Drizzle.

const JOURNAL: &str = r#"{
  "version": "7",
  "dialect": "postgresql",
  "entries": [
    {
      "idx": 0,
      "version": "7",
      "when": 1700000000000,
      "tag": "0000_users",
      "breakpoints": true
    },
    {
      "idx": 1,
      "version": "7",
      "when": 1700000100000,
      "tag": "0001_posts",
      "breakpoints": true
    }
  ]
}
"#;

#[test]
fn supabase_is_found_from_the_project_root_and_from_its_migrations_folder() {
    let (tmp, f) = folder(&[
        ("supabase/config.toml", "project_id = \"app\"\n"),
        ("supabase/seed.sql", "INSERT INTO users VALUES (1);\n"),
        ("supabase/migrations/20240102000000_posts.sql", "CREATE TABLE posts (id int);"),
        ("supabase/migrations/20240101000000_users.sql", "CREATE TABLE users (id int);"),
        ("supabase/migrations/README.md", "# how we migrate"),
    ]);
    assert_eq!(f.layout, Layout::Supabase);
    assert_eq!(versions(&f), ["20240101000000", "20240102000000"]);
    assert!(f.dir.ends_with("supabase/migrations"));
    assert!(f.migrations.iter().all(|m| m.down.is_none() && m.problems.is_empty()));
    let ignored: Vec<_> = f.ignored.iter().map(|i| file_name(&i.path)).collect();
    assert_eq!(ignored, ["README.md", "config.toml", "seed.sql"]);
    assert!(f.strays.is_empty());
    let inner = load(&tmp.path().join("supabase/migrations"), None).unwrap();
    assert_eq!(inner.layout, Layout::Supabase);
    assert_eq!(versions(&inner), versions(&f));
    let named = load(tmp.path(), Some(Layout::Supabase)).unwrap();
    assert_eq!(versions(&named), versions(&f));
}

#[test]
fn a_supabase_file_with_a_name_the_cli_skips_is_a_stray_and_the_rest_is_read() {
    let (_tmp, f) = folder(&[
        ("supabase/migrations/20240101000000_users.sql", "CREATE TABLE users (id int);"),
        ("supabase/migrations/2024-01-02 add posts.sql", "CREATE TABLE posts (id int);"),
        ("supabase/migrations/20240103000000_broken.sql", "CREATE TABEL x ();"),
    ]);
    assert_eq!(versions(&f), ["20240101000000", "20240103000000"]);
    let stray = &f.strays[0];
    assert!(stray.path.ends_with("2024-01-02 add posts.sql"), "{stray}");
    assert!(stray.message.contains("20240101120000_add_posts.sql"), "{stray}");
    let p = &f.migrations[1].problems[0];
    assert_eq!((p.kind, p.line, p.column), (ProblemKind::Syntax, 1, 8));
}

#[test]
fn prisma_folders_in_name_order_with_the_lock_file_beside() {
    let (tmp, f) = folder(&[
        ("prisma/schema.prisma", "datasource db { provider = \"postgresql\" }\n"),
        ("prisma/migrations/migration_lock.toml", "provider = \"postgresql\"\n"),
        (
            "prisma/migrations/20240102000000_idx/migration.sql",
            "-- CreateIndex\nCREATE INDEX CONCURRENTLY i ON users (id);\n",
        ),
        (
            "prisma/migrations/20240101000000_init/migration.sql",
            "CREATE TABLE users (id int);\nCREATE TABLE posts (id int);\n",
        ),
        ("prisma/migrations/0_init/migration.sql", "CREATE SCHEMA app;"),
        (
            "prisma/migrations/20240103000000_two/migration.sql",
            "CREATE TABLE t (id int);\nCREATE INDEX CONCURRENTLY j ON t (id);\n",
        ),
    ]);
    assert_eq!(f.layout, Layout::Prisma);
    assert_eq!(versions(&f), ["0", "20240101000000", "20240102000000", "20240103000000"]);
    assert_eq!(f.migrations[1].tool_version, "20240101000000_init");
    assert!(f.migrations[2].no_transaction, "a lone statement runs outside a transaction");
    assert!(f.migrations[2].problems.is_empty(), "{:?}", f.migrations[2].problems);
    let p = &f.migrations[3].problems[0];
    assert_eq!((p.kind, p.line), (ProblemKind::NeedsNoTransaction, 2));
    assert!(p.message.contains("alone in its own migration.sql"), "{}", p.message);
    assert!(f.ignored.iter().any(|i| file_name(&i.path) == "migration_lock.toml"));
    // The migrations folder itself, named directly.
    let inner = load(&tmp.path().join("prisma/migrations"), None).unwrap();
    assert_eq!((inner.layout, inner.migrations.len()), (Layout::Prisma, 4));
}

#[test]
fn prisma_folders_sharing_a_timestamp_are_two_migrations_in_name_order() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "migration_lock.toml", b"provider = \"postgresql\"\n");
    write(tmp.path(), "20240101000000_tags/migration.sql", b"CREATE TABLE tags (id int);");
    write(tmp.path(), "20240101000000_init/migration.sql", b"CREATE TABLE users (id int);");
    write(tmp.path(), "20240102000000_posts/migration.sql", b"CREATE TABLE posts (id int);");
    let f = load(tmp.path(), None).unwrap();
    assert_eq!(
        versions(&f),
        ["20240101000000_init", "20240101000000_tags", "20240102000000"],
        "keyed by the whole folder name where a timestamp is shared, as Prisma keys them"
    );
    assert_eq!(f.migrations[1].label(), "20240101000000_tags");
    assert_eq!(f.migrations[1].tool_version, "20240101000000_tags");
    assert_eq!(f.migrations[2].label(), "20240102000000_posts");
    // A folder name Prisma cannot read is listed and skipped.
    use std::os::unix::ffi::OsStrExt;
    let odd = tmp.path().join(std::ffi::OsStr::from_bytes(b"20240103000000_caf\xe9"));
    std::fs::create_dir(&odd).unwrap();
    let f = load(tmp.path(), None).unwrap();
    assert_eq!(f.migrations.len(), 3);
    assert!(
        f.ignored.iter().any(|i| i.path == odd && i.why.contains("not UTF-8")),
        "{:?}",
        f.ignored
    );
}

#[test]
fn a_prisma_folder_without_migration_sql_is_a_problem_of_that_migration_only() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "migration_lock.toml", b"provider = \"postgresql\"\n");
    write(tmp.path(), "20240101000000_init/migration.sql", b"CREATE TABLE a (id int);");
    write(tmp.path(), "20240102000000_lost/notes.txt", b"forgot the file");
    let f = load(tmp.path(), None).unwrap();
    assert!(f.migrations[0].problems.is_empty());
    let p = &f.migrations[1].problems[0];
    assert_eq!(p.kind, ProblemKind::MissingFile);
    assert!(p.path.ends_with("20240102000000_lost"), "{p}");
    assert!(p.message.contains("has no migration.sql; restore it"), "{p}");
}

#[test]
fn drizzle_order_comes_from_the_journal_not_the_names() {
    let journal = JOURNAL.replace("0000_users", "0009_users");
    let (tmp, f) = folder(&[
        ("drizzle/meta/_journal.json", &journal),
        ("drizzle/meta/0000_snapshot.json", "{}"),
        ("drizzle/0009_users.sql", "CREATE TABLE users (id int);\n--> statement-breakpoint\nCREATE INDEX users_id ON users (id);"),
        ("drizzle/0001_posts.sql", "CREATE TABLE posts (id int);"),
        ("drizzle/0002_draft.sql", "CREATE TABLE draft (id int);"),
    ]);
    assert_eq!(f.layout, Layout::Drizzle);
    assert_eq!(versions(&f), ["0009", "0001"]);
    assert_eq!(f.migrations[0].tool_version, "1700000000000");
    assert_eq!(f.migrations[0].up.statements.len(), 2, "split at the breakpoint by the parser");
    assert_eq!(f.migrations[0].up.statements[1].position.line, 3);
    assert!(f.strays[0].message.contains("0002_draft.sql is not in meta/_journal.json"));
    assert!(f.ignored.iter().any(|i| file_name(&i.path) == "0000_snapshot.json"));
    let inner = load(&tmp.path().join("drizzle"), None).unwrap();
    assert_eq!(versions(&inner), ["0009", "0001"]);
}

#[test]
fn a_malformed_drizzle_journal_is_a_problem_of_every_migration_and_all_are_read() {
    let (_tmp, f) = folder(&[
        ("meta/_journal.json", "{\n  \"entries\": [\n    { \"idx\": 0, \"when\": }\n  ]\n}\n"),
        ("0000_users.sql", "CREATE TABLE users (id int);"),
        ("0001_posts.sql", "CREATE TABLE posts (id int);"),
    ]);
    assert_eq!(f.layout, Layout::Drizzle);
    assert_eq!(versions(&f), ["0000", "0001"]);
    for m in &f.migrations {
        let p = &m.problems[0];
        assert_eq!((p.kind, p.line), (ProblemKind::Journal, 3));
        assert!(p.to_string().contains("meta/_journal.json:3:"), "{p}");
        assert!(p.message.contains("restore it from version control"), "{p}");
    }
}

#[test]
fn a_drizzle_journal_entry_without_its_file_names_the_journal_line() {
    let (_tmp, f) = folder(&[
        ("meta/_journal.json", JOURNAL),
        ("0000_users.sql", "CREATE TABLE users (id int);"),
    ]);
    assert!(f.migrations[0].problems.is_empty());
    let p = &f.migrations[1].problems[0];
    assert_eq!((p.kind, p.line), (ProblemKind::MissingFile, 16));
}

#[test]
fn timestamped_plain_sql_files_stay_sqlx_outside_a_supabase_folder() {
    let (_tmp, f) = folder(&[("20240101000000_users.sql", "CREATE TABLE users (id int);")]);
    assert_eq!(f.layout, Layout::Sqlx);
    let (_tmp, f) = folder(&[("1_a/up.sql", "SELECT 1;"), ("2_b/up.sql", "SELECT 2;")]);
    assert_eq!(f.layout, Layout::Diesel);
}

#[test]
fn a_root_with_supabase_and_prisma_folders_names_both() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "supabase/migrations/20240101000000_a.sql", b"SELECT 1;");
    write(tmp.path(), "prisma/migrations/20240101000000_a/migration.sql", b"SELECT 1;");
    let err = load(tmp.path(), None).unwrap_err().to_string();
    assert!(err.contains("supabase/migrations") && err.contains("prisma/migrations"), "{err}");
    let f = load(tmp.path(), Some(Layout::Prisma)).unwrap();
    assert_eq!(f.layout, Layout::Prisma);
}
