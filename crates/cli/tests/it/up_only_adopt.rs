//! Taking over the history of the up-only tools. drizzle-kit (npm, with
//! drizzle-orm and node-postgres) and the Supabase CLI (npm, whose
//! platform package carries the binary) migrate a fresh database here;
//! `backstop history adopt` then records the same versions without running
//! anything, checking what each tool keeps: drizzle's SHA-256 of the file,
//! the statements the Supabase CLI ran. Prisma's CLI fetches its schema
//! engine from Prisma's own download host when it is installed, which no
//! registry this project reaches provides; where it is missing,
//! `_prisma_migrations` is written the way Prisma's docs describe it.

use std::process::Command;

use crate::common::{find_program, program, run_program, DbExt, Project};
use crate::up_only::{pending, project_from, supabase_platform};

/// Adopts `tool`'s history: a dry run that writes nothing, then `count`
/// migrations recorded, nothing pending or drifted, the tool's table left
/// as it was, and a second adoption that changes nothing.
fn adopt(p: &Project, tool: &str, table: &str, count: usize) {
    let before = p.client().count(table);
    p.run(&["adopt", "--from", tool])
        .expect_code(0)
        .expect_output(&format!("would adopt {count} migration(s)"));
    assert!(!p.client().history_schema_exists(), "a dry run writes nothing");
    p.run(&["adopt", "--from", tool, "--yes"]).expect_code(0).expect_output("✓ adopted");
    let mut db = p.client();
    assert_eq!(db.applied().len(), count);
    assert_eq!(db.count(table), before, "the tool's table is left as it was");
    let status = p.run(&["status", "--format", "json"]);
    let json = status.expect_code(0).json();
    assert!(json["pending"].as_array().unwrap().is_empty(), "{}", status.stdout);
    assert!(json["drifted"].as_array().unwrap().is_empty(), "{}", status.stdout);
    p.run(&["adopt", "--from", tool, "--yes"])
        .expect_code(0)
        .expect_output("adopted 0 migration(s)");
}

/// A migration added after the adoption is applied by Backstop.
fn new_migration_applies(p: &Project, sql: &str) {
    p.run(&["new", "after_adopt"]).expect_code(0);
    let made = pending(p);
    assert_eq!(made.len(), 1, "{made:?}");
    let path = crate::common::find_file(&p.path().join("migrations"), "after_adopt")
        .expect("new wrote a file");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(sql);
    std::fs::write(&path, text).unwrap();
    p.run(&["migrate"]).expect_code(0);
    assert!(pending(p).is_empty());
}

/// drizzle-kit's config for the project's copy of the fixture.
pub fn drizzle_config(p: &Project) {
    p.write(
        "drizzle.config.js",
        "module.exports = {\n  dialect: \"postgresql\",\n  out: \"./migrations/drizzle\",\n  \
         dbCredentials: { url: process.env.DATABASE_URL },\n};\n",
    );
}

pub fn drizzle_kit_migrate(p: &Project, kit: &std::path::Path) {
    run_program(
        Command::new(kit)
            .args(["migrate", "--config", "drizzle.config.js"])
            .current_dir(p.path())
            .env("DATABASE_URL", &p.url),
    );
}

#[test]
fn drizzle_history_is_adopted_after_drizzle_kit_migrated() {
    let Some(kit) = program("drizzle-kit", ".ci/tools/drizzle-kit.sh") else { return };
    let p = project_from("drizzle", "adopt_drizzle");
    drizzle_config(&p);
    drizzle_kit_migrate(&p, &kit);
    let table = "drizzle.__drizzle_migrations";
    assert_eq!(p.client().count(table), 3, "drizzle-kit recorded its three migrations");

    // drizzle hashes the file as it is: a comment added since is a change.
    let file = p.path().join("migrations/drizzle/0002_posts.sql");
    let original = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, format!("-- reviewed\n{original}")).unwrap();
    p.run(&["adopt", "--from", "drizzle", "--yes"])
        .expect_code(1)
        .expect_output("1704240000000 (checksum)")
        .expect_output("0002_posts.sql")
        .expect_output("nothing was adopted");
    assert!(p.client().applied().is_empty());
    std::fs::write(&file, original).unwrap();

    adopt(&p, "drizzle", table, 3);
    new_migration_applies(&p, "CREATE TABLE after_adopt (id int);\n");
    assert!(p.client().exists("after_adopt"));
}

#[test]
fn supabase_history_is_adopted_after_the_supabase_cli_migrated() {
    let Some(cli) = program("supabase", ".ci/tools/supabase.sh") else { return };
    let p = project_from("supabase", "adopt_supabase");
    supabase_platform(&mut p.client());
    let url = format!("{}?sslmode=disable", p.url);
    let workdir = p.path().join("migrations");
    run_program(
        Command::new(&cli)
            .args(["migration", "up", "--db-url", &url, "--workdir"])
            .arg(&workdir)
            .current_dir(p.path()),
    );
    let table = "supabase_migrations.schema_migrations";
    assert_eq!(p.client().count(table), 3, "the CLI recorded its three migrations");
    // Newer CLIs add columns; they are read when there, never required.
    p.client()
        .batch_execute(&format!(
            "alter table {table} add column if not exists created_by text,
                 add column if not exists idempotency_key text;
             update {table} set created_by = 'ci@example.com'"
        ))
        .unwrap();

    // The CLI keeps the statements it ran: a comment added since does not
    // count, a changed statement does.
    let file = workdir.join("supabase/migrations/20240102000000_users_email_idx.sql");
    let original = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, format!("-- for the login lookup\n{original}")).unwrap();
    p.run(&["adopt", "--from", "supabase"]).expect_code(0).expect_output("would adopt 3");
    std::fs::write(&file, original.replace("(email)", "(lower(email))")).unwrap();
    p.run(&["adopt", "--from", "supabase", "--yes"])
        .expect_code(1)
        .expect_output("20240102000000 (checksum)")
        .expect_output("recorded other statements");
    std::fs::write(&file, &original).unwrap();

    adopt(&p, "supabase", table, 3);
    let by: String = p
        .client()
        .query_one("select applied_by from backstop.applied order by version limit 1", &[])
        .unwrap()
        .get(0);
    assert!(by.starts_with("ci@example.com (adopted from supabase"), "{by}");
    new_migration_applies(&p, "create table public.after_adopt (id int);\n");
}

/// `_prisma_migrations` as `prisma migrate deploy` creates it.
pub const PRISMA_TABLE: &str = r#"CREATE TABLE "_prisma_migrations" (
    "id" VARCHAR(36) NOT NULL PRIMARY KEY,
    "checksum" VARCHAR(64) NOT NULL,
    "finished_at" TIMESTAMPTZ,
    "migration_name" VARCHAR(255) NOT NULL,
    "logs" TEXT,
    "rolled_back_at" TIMESTAMPTZ,
    "started_at" TIMESTAMPTZ NOT NULL DEFAULT now(),
    "applied_steps_count" INTEGER NOT NULL DEFAULT 0
)"#;

/// Writes Prisma's history for the fixture's three migrations the way
/// Prisma's docs describe it (SHA-256 of each migration.sql), with a
/// failed attempt at the third that `prisma migrate resolve
/// --rolled-back` marked, before the attempt that finished.
fn prisma_history_by_hand(p: &Project) {
    let mut db = p.client();
    db.batch_execute(PRISMA_TABLE).unwrap();
    for (name, outcome) in [
        ("20240101000000_init", "finished"),
        ("20240102000000_users_email_idx", "finished"),
        ("20240103000000_posts", "rolled_back"),
        ("20240103000000_posts", "finished"),
    ] {
        let path = p.path().join("migrations/prisma/migrations").join(name).join("migration.sql");
        let bytes = std::fs::read(path).unwrap();
        db.execute(
            "insert into _prisma_migrations (id, checksum, finished_at, migration_name, logs,
                 rolled_back_at, started_at, applied_steps_count)
             values (gen_random_uuid()::text, encode(sha256($1), 'hex'),
                     case when $3 = 'finished' then clock_timestamp() end, $2,
                     case when $3 = 'rolled_back' then 'relation \"users\" does not exist' end,
                     case when $3 = 'rolled_back' then clock_timestamp() end,
                     clock_timestamp(), case when $3 = 'finished' then 1 else 0 end)",
            &[&bytes, &name, &outcome],
        )
        .unwrap();
    }
}

#[test]
fn prisma_history_is_adopted_failed_attempts_refused() {
    let p = project_from("prisma", "adopt_prisma");
    let prisma = find_program("prisma").filter(|bin| {
        Command::new(bin).arg("--version").output().is_ok_and(|o| o.status.success())
    });
    match &prisma {
        Some(bin) => {
            run_program(
                Command::new(bin)
                    .args(["migrate", "deploy", "--schema", "migrations/prisma/schema.prisma"])
                    .current_dir(p.path())
                    .env("DATABASE_URL", &p.url),
            );
        }
        None => {
            // Never required: no registry this project reaches has Prisma's engines.
            eprintln!(
                "  (prisma cannot run here: its schema engine is downloaded from Prisma's own \
                 host at install time; _prisma_migrations is written as Prisma's docs describe)"
            );
            // Backstop writes Prisma's table too: both histories go.
            p.run(&["migrate"]).expect_code(0);
            p.client()
                .batch_execute("drop schema backstop cascade; drop table _prisma_migrations")
                .unwrap();
            prisma_history_by_hand(&p);
        }
    }
    adopt(&p, "prisma", "_prisma_migrations", 3);

    // A migration Prisma started and never finished is a failed one:
    // refused by name, with Prisma's own log line.
    p.write(
        "migrations/prisma/migrations/20240104000000_tags/migration.sql",
        "CREATE TABLE tags (id int);\n",
    );
    p.client()
        .execute(
            "insert into _prisma_migrations (id, checksum, migration_name, logs, started_at)
             values (gen_random_uuid()::text, 'x', '20240104000000_tags',
                     'Database error: relation \"tags\" already exists', now())",
            &[],
        )
        .unwrap();
    p.run(&["adopt", "--from", "prisma", "--yes"])
        .expect_code(1)
        .expect_output("20240104000000_tags (failed)")
        .expect_output("never finished (Database error: relation \"tags\" already exists)");
}
