//! Long histories as their tools leave them, tried as a new user would:
//! from the project's root with no `backstop.toml`. A Prisma history of
//! 810 migrations (folders sharing a timestamp, the author's `BEGIN` …
//! `COMMIT`, `COMMIT` after `ADD VALUE`, one-statement `CONCURRENTLY`
//! scripts, enum swaps, work tables by `SELECT … INTO`, a type change with
//! `USING`, foreign servers) in the folder `prisma.config.ts` names, and a
//! drizzle history of 300 (the author's `COMMIT` before `CONCURRENTLY`
//! indexes, labels added to enums that partial indexes compare, storage
//! parameters). Each is found, checked with no critical finding the test
//! does not name as true, applied with no `--accept-risk`, rehearsed,
//! adopted from the tool's own table as the tool fills it, given proved
//! downs (all but the data changes the test names), and rolled back to
//! before its first migration: the schema is then an empty database's.

#[path = "../../../../bench/drizzle_history.rs"]
mod drizzle_history;
#[path = "../../../../bench/prisma_history.rs"]
mod prisma_history;

use std::process::Command;

use serde_json::Value;

use crate::common::{program, run_program, DbExt, Project, CLUSTER};

const PRISMA_BLOCKS: usize = 81;
const DRIZZLE_BLOCKS: usize = 30;

/// `pg_dump -s` of a database, without Backstop's schema, the tool's
/// history table, comments and pg_dump's random `\restrict` key.
pub fn schema_dump(db: &str, skip: &[&str]) -> String {
    let mut cmd = Command::new(CLUSTER.bin().tool("pg_dump"));
    cmd.args(["-s", "--no-owner", "--exclude-schema=backstop"]).arg(CLUSTER.url(db));
    for table in skip {
        cmd.arg(format!("--exclude-table={table}"));
    }
    let out = run_program(&mut cmd);
    out.lines()
        .filter(|l| {
            !l.starts_with("--") && !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict")
        })
        .filter(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The critical findings of `check --format json`.
fn critical(p: &Project) -> Vec<String> {
    let json: Value = p.run_long(&["check", "--format", "json"]).json();
    json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "critical")
        .map(|f| format!("{} {} {}", f["code"], f["file"], f["message"]))
        .take(8)
        .collect()
}

/// A backstop.toml that names nothing but that `migrate` keeps no downs
/// (the test works them out once, with `downs --write`): the folder is
/// still found from the project's root.
const KEEP_NO_DOWNS: &str = "[migrations]\nkeep_downs = false\n";

/// Each down of `downs --write --format json` by version: its status.
fn downs(p: &Project) -> Vec<(String, String, Value)> {
    let json: Value = p.run_long(&["downs", "--write", "--format", "json"]).json();
    json.as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let version = d["version"].as_str().unwrap().to_string();
            (version, d["status"].as_str().unwrap().to_string(), d.clone())
        })
        .collect()
}

/// Applies Prisma's folders `names` to `p`'s database one file at a time
/// with psql, and records each in `_prisma_migrations` as Prisma does.
fn prisma_by_hand(p: &Project, dir: &std::path::Path, names: &[String]) {
    let mut db = p.client();
    db.batch_execute(crate::up_only_adopt::PRISMA_TABLE).unwrap();
    for name in names {
        let file = dir.join(name).join("migration.sql");
        run_program(
            Command::new(CLUSTER.bin().tool("psql"))
                .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-f"])
                .arg(&file)
                .arg(&p.url),
        );
        let bytes = std::fs::read(&file).unwrap();
        db.execute(
            "insert into _prisma_migrations (id, checksum, finished_at, migration_name,
                 started_at, applied_steps_count)
             values (gen_random_uuid()::text, encode(sha256($1), 'hex'), clock_timestamp(), $2,
                     clock_timestamp(), 1)",
            &[&bytes, name],
        )
        .unwrap();
    }
}

#[test]
fn a_prisma_history_of_810_migrations_runs_as_prisma_left_it() {
    let p = Project::bare("real_prisma");
    p.write(
        "prisma.config.ts",
        "import { defineConfig } from 'prisma/config';\n\nexport default defineConfig({\n  \
         schema: 'db/schema.prisma',\n  migrations: {\n    path: 'db/migrations',\n  },\n});\n",
    );
    p.write("db/schema.prisma", "datasource db {\n  provider = \"postgresql\"\n}\n");
    let dir = p.path().join("db/migrations");
    let names = prisma_history::write(&dir, PRISMA_BLOCKS);
    assert!(names.len() >= 800);

    let status = p.run_long(&["status", "--format", "json"]).json();
    assert_eq!(status["layout"], "prisma");
    assert!(status["problems"].as_array().unwrap().is_empty(), "{status:#}");
    assert_eq!(status["pending"].as_array().unwrap().len(), names.len());
    assert_eq!(critical(&p), Vec::<String>::new());

    // The first half as Prisma leaves it, adopted from Prisma's table.
    let half = names.len() / 2;
    prisma_by_hand(&p, &dir, &names[..half]);
    p.run_long(&["adopt", "--from", "prisma", "--yes"])
        .expect_code(0)
        .expect_output(&format!("adopted {half} migration(s)"));
    assert_eq!(critical(&p), Vec::<String>::new());
    p.run_long(&["rehearse"]).expect_code(0);
    // The downs are worked out once, below, not also by migrate.
    p.write("backstop.toml", KEEP_NO_DOWNS);
    p.run_long(&["migrate"]).expect_code(0);
    assert_eq!(p.client().applied().len(), names.len());

    let downs = downs(&p);
    let unproved: Vec<_> = downs
        .iter()
        .filter(|(v, status, _)| {
            let name = names.iter().find(|n| n.starts_with(v.as_str())).unwrap();
            let want =
                if prisma_history::is_data_change(name) { "irreversible" } else { "computed" };
            status != want
        })
        .map(|(v, s, d)| format!("{v} {s}: {}", d["notes"]))
        .collect();
    assert_eq!(unproved, Vec::<String>::new());
    p.run_long(&["rollback", "--steps", &names.len().to_string()]).expect_code(0);
    assert!(p.client().applied().is_empty());
    let empty = crate::common::unique_name("real_prisma_empty");
    CLUSTER.create_database(&empty, None).unwrap();
    assert_eq!(schema_dump(&p.db, &["_prisma_migrations"]), schema_dump(&empty, &[]));
}

#[test]
fn a_drizzle_history_of_300_migrations_runs_as_drizzle_left_it() {
    let p = Project::bare("real_drizzle");
    p.write(
        "drizzle.config.js",
        "module.exports = {\n  dialect: \"postgresql\",\n  schema: \"./src/schema.ts\",\n  \
         out: \"./db/drizzle\",\n  dbCredentials: { url: process.env.DATABASE_URL },\n  \
         migrations: { table: \"app_migrations\", schema: \"public\" },\n};\n",
    );
    let dir = p.path().join("db/drizzle");
    let half = DRIZZLE_BLOCKS * drizzle_history::PER_BLOCK / 2;
    let kit = program("drizzle-kit", ".ci/tools/drizzle-kit.sh");
    // The first half applied by drizzle's own migrator, where it runs here.
    let tags = drizzle_history::write(&dir, DRIZZLE_BLOCKS, kit.as_ref().map(|_| half));
    if let Some(kit) = &kit {
        run_program(
            Command::new(kit)
                .args(["migrate", "--config", "drizzle.config.js"])
                .current_dir(p.path())
                .env("DATABASE_URL", &p.url),
        );
        assert_eq!(p.client().count("public.app_migrations"), half as i64);
        drizzle_history::write(&dir, DRIZZLE_BLOCKS, None);
        p.run_long(&["adopt", "--from", "drizzle", "--yes"])
            .expect_code(0)
            .expect_output(&format!("adopted {half} migration(s)"));
    }
    let status = p.run_long(&["status", "--format", "json"]).json();
    assert_eq!(status["layout"], "drizzle");
    assert!(status["problems"].as_array().unwrap().is_empty(), "{status:#}");
    assert_eq!(critical(&p), Vec::<String>::new());
    p.run_long(&["rehearse"]).expect_code(0);
    p.write("backstop.toml", KEEP_NO_DOWNS);
    p.run_long(&["migrate"]).expect_code(0);
    assert_eq!(p.client().applied().len(), tags.len());
    let invalid: i64 = p
        .client()
        .query_one("select count(*) from pg_index where not indisvalid", &[])
        .unwrap()
        .get(0);
    assert_eq!(invalid, 0, "every concurrent index was built");

    let unproved: Vec<_> = downs(&p)
        .into_iter()
        .filter(|(_, status, _)| status != "computed")
        .map(|(v, s, d)| format!("{v} {s}: {}", d["notes"]))
        .collect();
    assert_eq!(unproved, Vec::<String>::new());
    p.run_long(&["rollback", "--steps", &tags.len().to_string()]).expect_code(0);
    assert!(p.client().applied().is_empty());
    let empty = crate::common::unique_name("real_drizzle_empty");
    CLUSTER.create_database(&empty, None).unwrap();
    assert_eq!(schema_dump(&p.db, &["public.app_migrations*"]), schema_dump(&empty, &[]));
}
