//! A migration certain to fail is NO-GO before anything runs: `check`
//! and `migrate`'s gate run the pending migrations on a copy of the
//! database's schema first, and a statement that fails there is a
//! critical BS405 with the server's own error, file and line.

use crate::common::{DbExt, Project};
use serde_json::Value;

fn bs405(json: &Value) -> Vec<&Value> {
    json["findings"].as_array().unwrap().iter().filter(|f| f["code"] == "BS405").collect()
}

#[test]
fn a_statement_that_fails_on_the_copy_is_no_go_before_the_backup() {
    let p = Project::new("certain_fk");
    p.migration(
        "1_users",
        "CREATE TABLE users (id bigint PRIMARY KEY);\n",
        Some("DROP TABLE users;\n"),
    );
    p.run(&["migrate"]).expect_code(0);
    p.migration(
        "2_posts",
        "CREATE TABLE posts (id bigint PRIMARY KEY);\n\
         ALTER TABLE posts ADD COLUMN author_uuid uuid REFERENCES users (uuid);\n",
        Some("DROP TABLE posts;\n"),
    );
    let run = p.run(&["check", "--format", "json"]);
    run.expect_code(1);
    let json = run.json();
    assert_eq!(json["verdict"], "NO-GO", "{json:#}");
    let found = bs405(&json);
    assert_eq!(found.len(), 1, "{json:#}");
    assert_eq!(found[0]["severity"], "critical");
    assert!(found[0]["file"].as_str().unwrap().ends_with("2_posts/up.sql"), "{json:#}");
    assert_eq!(found[0]["line"], 2, "{json:#}");
    let message = found[0]["message"].as_str().unwrap();
    assert!(
        message.contains("2_posts fails on a copy of the database, at statement 2 of 2:"),
        "{message}"
    );
    assert!(message.contains("\"uuid\""), "the server's own words: {message}");
    // Nothing ran on the database itself.
    assert!(!p.client().exists("public.posts"));
    // migrate refuses at its check gate, before any backup is taken.
    let refused = p.run(&["migrate"]);
    refused.expect_code(1).expect_output("BS405");
    assert!(!refused.all().contains("backup "), "no backup before the refusal: {}", refused.all());
    assert!(!p.client().exists("public.posts"));
    // Fixed, it runs on the copy, and the deploy reuses what the copy proved.
    p.migration(
        "2_posts",
        "CREATE TABLE posts (id bigint PRIMARY KEY, author_id bigint REFERENCES users (id));\n",
        Some("DROP TABLE posts;\n"),
    );
    let check = p.run(&["check"]);
    check
        .expect_code(0)
        .expect_output("ran the 1 pending migration(s) on a copy of the database's schema in ");
    check.expect_output(": every statement runs");
    // The check proves no down: that is the deploy's work.
    p.run(&["migrate"]).expect_code(0).expect_output("proved 1 down(s) now");
}

const USERS_UP: &str = "CREATE TABLE users (id bigint PRIMARY KEY);\n";
const MISSING: &str = "ALTER TABLE missing ADD COLUMN x int;\n";

/// A layout, its project's files (path, text), and how the name of the
/// file that cannot run ends.
type UpOnly = (&'static str, Vec<(String, String)>, &'static str);

/// A project of each layout whose migrations have no down of their own
/// (or a down of comments only): a table, then an up that cannot run.
fn up_only_projects() -> Vec<UpOnly> {
    // Chained by headers, their hashes allowed to be other than the body's.
    let graphile = |n: usize, body: &str| {
        let previous = if n == 1 { "-".to_string() } else { format!("sha1:{:040}", n - 1) };
        format!("--! Previous: {previous}\n--! Hash: sha1:{n:040}\n--! AllowInvalidHash\n\n{body}")
    };
    let atlas = |files: &[(&str, &str)]| {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        backstop_core::source::atlas::sum_file(dir.path()).unwrap()
    };
    let f = |path: &str, text: &str| (path.to_string(), text.to_string());
    vec![
        (
            "supabase",
            vec![
                f("supabase/config.toml", "project_id = \"certain\"\n"),
                f("supabase/migrations/20240101000000_users.sql", USERS_UP),
                f("supabase/migrations/20240102000000_broken.sql", MISSING),
            ],
            "20240102000000_broken.sql",
        ),
        (
            "prisma",
            vec![
                f("prisma/migrations/migration_lock.toml", "provider = \"postgresql\"\n"),
                f("prisma/migrations/20240101000000_users/migration.sql", USERS_UP),
                f("prisma/migrations/20240102000000_broken/migration.sql", MISSING),
            ],
            "20240102000000_broken/migration.sql",
        ),
        (
            "drizzle",
            vec![
                f("drizzle.config.ts", "export default { dialect: 'postgresql', out: './drizzle' };\n"),
                f(
                    "drizzle/meta/_journal.json",
                    r#"{"version": "7", "dialect": "postgresql", "entries": [
  {"idx": 0, "version": "7", "when": 1704067200000, "tag": "0000_users", "breakpoints": true},
  {"idx": 1, "version": "7", "when": 1704153600000, "tag": "0001_broken", "breakpoints": true}
]}"#,
                ),
                f("drizzle/0000_users.sql", USERS_UP),
                f("drizzle/0001_broken.sql", MISSING),
            ],
            "0001_broken.sql",
        ),
        (
            "graphile",
            vec![
                f(".gmrc", "{}\n"),
                f("migrations/committed/000001.sql", &graphile(1, USERS_UP)),
                f("migrations/committed/000002.sql", &graphile(2, MISSING)),
            ],
            "committed/000002.sql",
        ),
        (
            "atlas",
            vec![
                f("atlas.hcl", "env \"local\" {\n  url = getenv(\"DATABASE_URL\")\n  migration {\n    dir = \"file://migrations\"\n  }\n}\n"),
                f("migrations/20240101000000_users.sql", USERS_UP),
                f("migrations/20240102000000_broken.sql", MISSING),
                f(
                    "migrations/atlas.sum",
                    &atlas(&[
                        ("20240101000000_users.sql", USERS_UP),
                        ("20240102000000_broken.sql", MISSING),
                    ]),
                ),
            ],
            "20240102000000_broken.sql",
        ),
        (
            "a down of comments only",
            vec![
                f("migrations/20240101000000_users.up.sql", USERS_UP),
                f("migrations/20240101000000_users.down.sql", "DROP TABLE users;\n"),
                f("migrations/20240102000000_broken.up.sql", MISSING),
                f("migrations/20240102000000_broken.down.sql", "-- nothing to undo\n"),
            ],
            "20240102000000_broken.up.sql",
        ),
    ]
}

/// The check's run on a copy runs the ups of every layout, up-only ones
/// too: an up that cannot run is NO-GO, and `migrate` refuses it before
/// any backup. Before, such an up of an up-only layout got GO and
/// "every statement runs", and migrate failed on 42P01 after its backup.
#[test]
fn an_up_that_cannot_run_is_no_go_before_the_backup_on_every_layout() {
    for (i, (layout, files, broken)) in up_only_projects().into_iter().enumerate() {
        let p = Project::bare(&format!("certain_up_only_{i}"));
        for (path, text) in &files {
            p.write(path, text);
        }
        let run = p.run(&["check"]);
        run.expect_code(1).expect_output("NO-GO");
        assert!(!run.all().contains("every statement runs"), "{layout}: {}", run.all());
        let json = p.run(&["check", "--format", "json"]).json();
        let found = bs405(&json);
        assert_eq!(found.len(), 1, "{layout}: {json:#}");
        assert!(found[0]["file"].as_str().unwrap().ends_with(broken), "{layout}: {json:#}");
        assert!(found[0]["message"].as_str().unwrap().contains("42P01"), "{layout}: {json:#}");
        let refused = p.run(&["migrate"]);
        refused.expect_code(1).expect_output("BS405");
        assert!(
            !refused.all().contains("backup "),
            "{layout}: no backup before the refusal: {}",
            refused.all()
        );
        assert!(!p.client().exists("public.users"), "{layout}: nothing ran");
    }
}

#[test]
fn a_table_the_database_has_or_the_run_made_is_not_created_again() {
    let p = Project::new("certain_twice");
    p.client().execute("CREATE TABLE users (id int)", &[]).unwrap();
    p.migration(
        "1_users",
        "CREATE TABLE users (id bigint PRIMARY KEY);\n",
        Some("DROP TABLE users;\n"),
    );
    let json = p.run(&["check", "--format", "json"]).json();
    let found = bs405(&json);
    assert_eq!(found.len(), 1, "{json:#}");
    assert!(found[0]["message"].as_str().unwrap().contains("already exists"), "{json:#}");
    // Offline, the history's own model finds a table its run creates twice.
    p.migration("2_users_again", "CREATE TABLE users (id bigint, name text);\n", None);
    let json = p.run(&["check", "--offline", "--format", "json"]).json();
    let found = bs405(&json);
    assert_eq!(found.len(), 1, "{json:#}");
    assert!(found[0]["file"].as_str().unwrap().ends_with("2_users_again/up.sql"), "{json:#}");
}

/// Nothing that reaches outside the database runs on a copy: a program
/// (`COPY … TO PROGRAM`), a file on the server's host (`COPY … TO
/// '/path'`, `lo_export`), up or down. The copy's server runs on the
/// machine Backstop runs on, as a superuser where the target's session is
/// one. Before, the program ran during `check`, twice, with GO and no word.
#[test]
fn a_program_or_a_server_file_in_a_migration_never_runs_on_a_copy() {
    let p = Project::new("certain_outside");
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o777))
        .unwrap();
    let touched = dir.path().join("touched");
    let written = dir.path().join("written.csv");
    p.migration(
        "1_items",
        &format!(
            "CREATE TABLE items (id int PRIMARY KEY);\n\
             COPY (SELECT 1) TO PROGRAM 'touch {}';\n\
             COPY items TO '{}';\n",
            touched.display(),
            written.display()
        ),
        Some(&format!(
            "COPY (SELECT 2) TO PROGRAM 'touch {}';\nDROP TABLE items;\n",
            touched.display()
        )),
    );
    let check = p.run(&["check"]);
    check.expect_output("2 statement(s) reaching outside the database (COPY … TO PROGRAM");
    // Each one is named with its place, not only the first.
    check.expect_output("COPY … TO a server file (");
    check.expect_output("were not run there");
    p.run(&["rehearse", "--schema-only"]);
    p.run(&["downs"]);
    assert!(!touched.exists(), "a program ran on a copy: {}", check.all());
    assert!(!written.exists(), "a server file was written from a copy");
}
