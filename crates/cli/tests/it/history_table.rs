//! A tool's history table under another name than the tool's default:
//! drizzle's `migrations: { table, schema }` in `drizzle.config`, read as
//! data with no configuration of Backstop's, and `adopt --table` for any
//! tool. The real drizzle-kit migrator writes the rows (and dbmate its
//! own under `--migrations-table`); the table that holds them is the one
//! adopted and kept in step, and two that hold rows are an error naming
//! both.

use std::process::Command;

use crate::common::{program, run_program, DbExt, Project};
use crate::up_only::project_from;

/// A drizzle project whose only drizzle config is at its root, naming
/// `ops.app_history` when `named` (drizzle-kit's own config file).
fn drizzle_project(label: &str, named: bool) -> Project {
    let p = project_from("drizzle", label);
    std::fs::remove_file(p.path().join("migrations/drizzle.config.ts")).unwrap();
    let migrations = if named {
        "  migrations: {\n    schema: \"ops\",\n    table: \"app_history\",\n  },\n"
    } else {
        ""
    };
    p.write(
        "drizzle.config.js",
        &format!(
            "module.exports = {{\n  dialect: \"postgresql\",\n  out: \"./migrations/drizzle\",\n  \
             dbCredentials: {{ url: process.env.DATABASE_URL }},\n{migrations}}};\n"
        ),
    );
    // The down of the third, for the rollbacks below.
    p.write(
        "migrations/backstop/downs/0002.down.sql",
        "DROP FUNCTION post_count(integer);\nDROP TABLE \"posts\";\n",
    );
    p
}

/// drizzle-kit's migrator with `config`, as the project's scripts run it.
fn drizzle_kit(p: &Project, kit: &std::path::Path, config: &str) {
    run_program(
        Command::new(kit)
            .args(["migrate", "--config", config])
            .current_dir(p.path())
            .env("DATABASE_URL", &p.url),
    );
}

#[test]
fn the_table_drizzle_config_names_is_adopted_and_kept_in_step() {
    let Some(kit) = program("drizzle-kit", ".ci/tools/drizzle-kit.sh") else { return };
    let p = drizzle_project("history_named", true);
    drizzle_kit(&p, &kit, "drizzle.config.js");
    let mut db = p.client();
    assert_eq!(db.count("ops.app_history"), 3, "drizzle-kit wrote the table its config names");
    assert!(!db.exists("drizzle.__drizzle_migrations"));

    p.run(&["status"])
        .expect_code(1)
        .expect_output("not adopted: ops.app_history (drizzle's history)");
    p.run(&["adopt", "--from", "drizzle", "--yes"])
        .expect_code(0)
        .expect_output("drizzle history in ops.app_history")
        .expect_output("adopted 3 migration(s)");
    p.run(&["status"]).expect_code(0);

    // Backstop's rollback and migrate keep that table in step, and make no other.
    p.run(&["rollback"]).expect_code(0);
    assert_eq!(db.count("ops.app_history"), 2);
    p.run(&["migrate"]).expect_code(0);
    assert_eq!(db.count("ops.app_history"), 3);
    assert!(!db.exists("drizzle.__drizzle_migrations"), "the default table was made");
    // drizzle's migrator agrees: nothing is left for it to run.
    drizzle_kit(&p, &kit, "drizzle.config.js");
    assert_eq!(db.count("ops.app_history"), 3);

    // On a fresh database Backstop makes the table the config names.
    let q = drizzle_project("history_named_fresh", true);
    q.run(&["migrate"]).expect_code(0);
    assert_eq!(q.client().count("ops.app_history"), 3);
    assert!(!q.client().exists("drizzle.__drizzle_migrations"));
    drizzle_kit(&q, &kit, "drizzle.config.js");
    assert_eq!(q.client().count("ops.app_history"), 3, "drizzle-kit ran nothing again");
}

#[test]
fn the_table_holding_the_rows_wins_and_two_holding_rows_are_named() {
    let Some(kit) = program("drizzle-kit", ".ci/tools/drizzle-kit.sh") else { return };
    // The config names ops.app_history; the application's migrator used
    // drizzle's default (a config without `migrations`).
    let p = drizzle_project("history_default_used", true);
    p.write(
        "app.config.js",
        "module.exports = {\n  dialect: \"postgresql\",\n  out: \"./migrations/drizzle\",\n  \
         dbCredentials: { url: process.env.DATABASE_URL },\n};\n",
    );
    drizzle_kit(&p, &kit, "app.config.js");
    let mut db = p.client();
    assert_eq!(db.count("drizzle.__drizzle_migrations"), 3);
    p.run(&["adopt", "--from", "drizzle"])
        .expect_code(0)
        .expect_output("drizzle history in drizzle.__drizzle_migrations")
        .expect_output("would adopt 3 migration(s)");

    // Now the named table holds a row too: which is the migrator's?
    db.batch_execute(
        "CREATE SCHEMA ops;
         CREATE TABLE ops.app_history (id serial PRIMARY KEY, hash text NOT NULL, created_at bigint);
         INSERT INTO ops.app_history (hash, created_at) VALUES ('x', 1704067200000);",
    )
    .unwrap();
    let run = p.run(&["adopt", "--from", "drizzle"]);
    run.expect_code(2)
        .expect_output("drizzle's history is in two tables of this database, both with rows")
        .expect_output("ops.app_history (named in drizzle.config.js:7 (migrations.table))")
        .expect_output("drizzle.__drizzle_migrations")
        .expect_output("--table SCHEMA.NAME");
    assert!(!db.history_schema_exists(), "nothing was written");

    // Named outright, it is adopted, and kept in step from then on.
    p.run(&["adopt", "--from", "drizzle", "--table", "drizzle.__drizzle_migrations", "--yes"])
        .expect_code(0)
        .expect_output("adopted 3 migration(s)");
    p.run(&["rollback"]).expect_code(0);
    assert_eq!(db.count("drizzle.__drizzle_migrations"), 2);
    assert_eq!(db.count("ops.app_history"), 1, "the other table is left alone");
    p.run(&["migrate"]).expect_code(0);
    assert_eq!(db.count("drizzle.__drizzle_migrations"), 3);
    drizzle_kit(&p, &kit, "app.config.js");
    assert_eq!(db.count("drizzle.__drizzle_migrations"), 3);
}

#[test]
fn adopt_table_names_any_tools_history_table() {
    let Some(dbmate) = program("dbmate", ".ci/tools/dbmate.sh") else { return };
    let p = project_from("dbmate", "history_dbmate_table");
    let url = format!("{}?sslmode=disable", p.url);
    run_program(
        Command::new(&dbmate)
            .args(["--url", &url, "--migrations-dir", "migrations", "--no-dump-schema"])
            .args(["--migrations-table", "ops.dbmate_history", "up"])
            .current_dir(p.path()),
    );
    let mut db = p.client();
    assert_eq!(db.count("ops.dbmate_history"), 3);
    // dbmate's default table is not there: adopting without --table says
    // where it looked and how to name another.
    p.run(&["adopt", "--from", "dbmate"])
        .expect_code(2)
        .expect_output("no schema_migrations in this database")
        .expect_output("--table SCHEMA.NAME");
    p.run(&["adopt", "--from", "dbmate", "--table", "ops.dbmate_history", "--yes"])
        .expect_code(0)
        .expect_output("dbmate history in ops.dbmate_history")
        .expect_output("adopted 3 migration(s)");
    assert_eq!(db.applied().len(), 3);
    // A table that is not there, and a name that is none.
    p.run(&["adopt", "--from", "dbmate", "--table", "ops.nothing_here"])
        .expect_code(2)
        .expect_output("no ops.nothing_here in this database");
    p.run(&["adopt", "--from", "dbmate", "--table", "ops."])
        .expect_code(2)
        .expect_output("write SCHEMA.NAME or NAME");
}

/// An extension a migration made with `IF NOT EXISTS` after the history
/// began is the history's, and its down drops it; the history began with
/// the table drizzle's config names, which drizzle made before anything
/// of Backstop's existed.
#[test]
fn an_extension_made_after_the_named_history_table_is_the_historys() {
    let Some(kit) = program("drizzle-kit", ".ci/tools/drizzle-kit.sh") else { return };
    let p = drizzle_project("history_named_extension", true);
    let journal = p.path().join("migrations/drizzle/meta/_journal.json");
    let text = std::fs::read_to_string(&journal).unwrap();
    let last = text.rfind('}').unwrap();
    let entries_end = text[..last].rfind(']').unwrap();
    let entry = ",\n    {\n      \"idx\": 3,\n      \"version\": \"7\",\n      \"when\": 1704326400000,\n      \
                 \"tag\": \"0003_trgm\",\n      \"breakpoints\": true\n    }\n  ";
    let closing = text[..entries_end].rfind('}').unwrap() + 1;
    std::fs::write(&journal, format!("{}{entry}{}", &text[..closing], &text[entries_end..]))
        .unwrap();
    p.write(
        "migrations/drizzle/0003_trgm.sql",
        "CREATE EXTENSION IF NOT EXISTS pg_trgm;--> statement-breakpoint\n\
         CREATE INDEX \"users_email_trgm\" ON \"users\" USING gin (\"email\" gin_trgm_ops);\n",
    );
    drizzle_kit(&p, &kit, "drizzle.config.js");
    let mut db = p.client();
    assert_eq!(db.count("ops.app_history"), 4, "drizzle-kit ran all four");
    p.run(&["adopt", "--from", "drizzle", "--yes"]).expect_code(0);
    p.run_long(&["downs", "--write"]).expect_code(0);
    let down = std::fs::read_to_string(p.path().join("migrations/backstop/downs/0003.down.sql"))
        .expect("the down of 0003 is written");
    assert!(down.to_lowercase().contains("drop extension"), "{down}");
    p.run(&["rollback"]).expect_code(0);
    let trgm = db.texts("select extname::text from pg_extension where extname = 'pg_trgm'");
    assert!(trgm.is_empty(), "the history's extension stayed after its rollback");
}
