//! Histories shaped like real ones, a few hundred migrations per up-only
//! layout: tables created, columns added, renamed and dropped, enums and
//! their new values, views on views, plpgsql trigger functions, RLS
//! policies (Supabase's on `auth.uid()`, with grants to `anon` and
//! `authenticated`), tables renamed and rows written. Each is generated in
//! its tool's layout, read and applied with `backstop migrate` on a
//! throwaway cluster; where the tool runs here, it applies the same folder
//! to a second database and Backstop adopts its history.

use std::fmt::Write as _;
use std::process::Command;

use crate::common::{program, run_program, DbExt, Project};
use crate::up_only::{pending, supabase_platform};

/// Migrations in a history: ten kinds of change per block, one block per table.
const MIGRATIONS: usize = 300;

/// Who a policy lets through, in the layout's world.
#[derive(Clone, Copy, PartialEq)]
enum Flavor {
    /// Supabase: `auth.uid()`, the platform's roles.
    Supabase,
    /// Elsewhere: the app sets `app.user_id`.
    Plain,
}

/// Migration `i` of the history: its name and its statements.
fn migration(i: usize, flavor: Flavor) -> (String, Vec<String>) {
    let b = i / 10;
    let t = format!("items_{b}");
    let stmts: Vec<String> = match i % 10 {
        0 => {
            let mut s = vec![format!(
                "CREATE TABLE {t} (\n  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n  \
                 owner_id uuid,\n  name text NOT NULL,\n  note text,\n  \
                 created_at timestamptz NOT NULL DEFAULT now(),\n  updated_at timestamptz\n)"
            )];
            if b > 0 {
                s.push(format!(
                    "ALTER TABLE {t} ADD COLUMN parent_id bigint REFERENCES archive_{} (id)",
                    b - 1
                ));
            }
            return (format!("create_{t}"), s);
        }
        1 => {
            let mut s = vec![format!("ALTER TABLE {t} ADD COLUMN flagged boolean NOT NULL DEFAULT false")];
            if b > 0 {
                // Fires the trigger of the block before.
                s.push(format!("UPDATE archive_{} SET flagged = true", b - 1));
            }
            s
        }
        2 => vec![
            format!("CREATE TYPE state_{b} AS ENUM ('open', 'closed')"),
            format!("ALTER TABLE {t} ADD COLUMN state state_{b} NOT NULL DEFAULT 'open'"),
        ],
        3 => vec![format!("ALTER TYPE state_{b} ADD VALUE 'archived'")],
        4 => vec![
            format!("CREATE VIEW open_{t} AS SELECT id, name, state FROM {t} WHERE state = 'open'"),
            format!("CREATE VIEW open_{t}_names AS SELECT name FROM open_{t}"),
        ],
        5 => vec![
            format!(
                "CREATE FUNCTION touch_{b}() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n  \
                 NEW.updated_at := now();\n  RETURN NEW;\nEND;\n$$"
            ),
            format!(
                "CREATE TRIGGER {t}_touch BEFORE UPDATE ON {t} FOR EACH ROW EXECUTE FUNCTION touch_{b}()"
            ),
        ],
        6 => vec![format!("ALTER TABLE {t} RENAME COLUMN name TO title")],
        7 => vec![format!("ALTER TABLE {t} DROP COLUMN note")],
        8 => {
            let mut s = vec![format!("ALTER TABLE {t} ENABLE ROW LEVEL SECURITY")];
            match flavor {
                Flavor::Supabase => s.extend([
                    format!(
                        "CREATE POLICY \"{t} owners\" ON {t} FOR ALL TO authenticated\n  \
                         USING (owner_id = auth.uid())\n  WITH CHECK (owner_id = auth.uid())"
                    ),
                    format!("GRANT SELECT, INSERT, UPDATE ON {t} TO authenticated"),
                    format!("GRANT SELECT ON open_{t} TO anon"),
                ]),
                Flavor::Plain => s.push(format!(
                    "CREATE POLICY {t}_owners ON {t}\n  \
                     USING (owner_id = current_setting('app.user_id', true)::uuid)"
                )),
            }
            s
        }
        _ => vec![
            format!("ALTER TABLE {t} RENAME TO archive_{b}"),
            format!("CREATE INDEX archive_{b}_created_at_idx ON archive_{b} (created_at)"),
            format!("INSERT INTO archive_{b} (title) VALUES ('first of block {b}')"),
        ],
    };
    let kind = [
        "",
        "flag",
        "state",
        "archived_state",
        "views",
        "touch",
        "rename",
        "drop_note",
        "rls",
        "archive",
    ];
    (format!("{}_{b}", kind[i % 10]), stmts)
}

/// A 14-digit version for migration `i`, one minute apart.
fn stamp(i: usize) -> String {
    let t = chrono::NaiveDate::from_ymd_opt(2023, 1, 1).unwrap().and_hms_opt(0, 0, 0).unwrap()
        + chrono::Duration::minutes(i as i64);
    t.format("%Y%m%d%H%M%S").to_string()
}

/// Writes the history into the project's migrations folder in `layout`.
fn write_history(p: &Project, layout: &str, flavor: Flavor) {
    let mut journal = String::new();
    for i in 0..MIGRATIONS {
        let (name, stmts) = migration(i, flavor);
        match layout {
            "supabase" => p.write(
                &format!("migrations/supabase/migrations/{}_{name}.sql", stamp(i)),
                &format!("-- {name}\n{};\n", stmts.join(";\n\n")),
            ),
            "prisma" => p.write(
                &format!("migrations/prisma/migrations/{}_{name}/migration.sql", stamp(i)),
                &stmts.iter().map(|s| format!("-- Step\n{s};\n")).collect::<Vec<_>>().join("\n"),
            ),
            _ => {
                p.write(
                    &format!("migrations/drizzle/{i:04}_{name}.sql"),
                    &format!("{};", stmts.join(";--> statement-breakpoint\n")),
                );
                let comma = if i == 0 { "" } else { "," };
                let when = 1_672_531_200_000u64 + i as u64 * 60_000;
                let _ = write!(
                    journal,
                    "{comma}\n    {{\n      \"idx\": {i},\n      \"version\": \"7\",\n      \
                     \"when\": {when},\n      \"tag\": \"{i:04}_{name}\",\n      \"breakpoints\": true\n    }}"
                );
            }
        }
    }
    match layout {
        "supabase" => p.write("migrations/supabase/config.toml", "project_id = \"history\"\n"),
        "prisma" => p.write("migrations/prisma/migrations/migration_lock.toml", "provider = \"postgresql\"\n"),
        _ => p.write(
            "migrations/drizzle/meta/_journal.json",
            &format!("{{\n  \"version\": \"7\",\n  \"dialect\": \"postgresql\",\n  \"entries\": [{journal}\n  ]\n}}\n"),
        ),
    }
}

/// Reads and applies the history, and checks what it built.
fn migrate_history(p: &Project, layout: &str) {
    let status = p.run(&["status", "--format", "json"]);
    let json = status.expect_code(0).json();
    assert_eq!(json["layout"], layout);
    assert!(json["problems"].as_array().unwrap().is_empty(), "{}", status.stdout);
    assert_eq!(json["pending"].as_array().unwrap().len(), MIGRATIONS);
    p.run(&["migrate"]).expect_code(0);
    assert!(pending(p).is_empty());
    let mut db = p.client();
    assert_eq!(db.applied().len(), MIGRATIONS);
    let blocks = (MIGRATIONS / 10) as i64;
    let one =
        |db: &mut postgres::Client, sql: &str| -> i64 { db.query_one(sql, &[]).unwrap().get(0) };
    assert_eq!(
        one(&mut db, "select count(*) from pg_tables where tablename like 'archive\\_%'"),
        blocks
    );
    assert_eq!(
        one(
            &mut db,
            "select count(*) from pg_views where viewname like 'open\\_items\\_%\\_names'"
        ),
        blocks
    );
    assert_eq!(
        one(&mut db, "select count(*) from pg_policies where tablename like 'archive\\_%'"),
        blocks
    );
    assert_eq!(
        one(&mut db, "select count(*) from pg_enum e join pg_type t on t.oid = e.enumtypid where t.typname like 'state\\_%' and e.enumlabel = 'archived'"),
        blocks
    );
    // Each block's trigger fired when the next block flagged its rows.
    assert_eq!(
        one(&mut db, "select count(*) from pg_trigger where tgname like 'items\\_%\\_touch'"),
        blocks
    );
    let touched =
        one(&mut db, "select count(*) from archive_0 where updated_at is not null and flagged");
    assert_eq!(touched, 1, "the plpgsql trigger ran");
    let columns = one(
        &mut db,
        "select count(*) from information_schema.columns where table_name = 'archive_7' and column_name in ('note', 'name')",
    );
    assert_eq!(columns, 0, "renamed and dropped columns are gone");
}

#[test]
fn a_supabase_history_of_300_migrations_applies_and_is_adopted_from_the_cli() {
    let p = Project::new("history_supabase");
    write_history(&p, "supabase", Flavor::Supabase);
    supabase_platform(&mut p.client());
    migrate_history(&p, "supabase");
    let grants: i64 = p
        .client()
        .query_one(
            "select count(*) from information_schema.role_table_grants
              where grantee = 'anon' and table_name like 'open\\_items\\_%'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(grants, (MIGRATIONS / 10) as i64);

    let Some(cli) = program("supabase", ".ci/tools/supabase.sh") else { return };
    let q = Project::new("history_supabase_cli");
    write_history(&q, "supabase", Flavor::Supabase);
    supabase_platform(&mut q.client());
    run_program(
        Command::new(&cli)
            .args([
                "migration",
                "up",
                "--db-url",
                &format!("{}?sslmode=disable", q.url),
                "--workdir",
            ])
            .arg(q.path().join("migrations")),
    );
    q.run(&["adopt", "--from", "supabase", "--yes"])
        .expect_code(0)
        .expect_output(&format!("adopted {MIGRATIONS} migration(s)"));
    assert!(pending(&q).is_empty());
}

#[test]
fn a_prisma_history_of_300_migrations_applies() {
    let p = Project::new("history_prisma");
    write_history(&p, "prisma", Flavor::Plain);
    migrate_history(&p, "prisma");
}

#[test]
fn a_drizzle_history_of_300_migrations_applies_and_is_adopted_from_drizzle_kit() {
    let p = Project::new("history_drizzle");
    write_history(&p, "drizzle", Flavor::Plain);
    migrate_history(&p, "drizzle");

    let Some(kit) = program("drizzle-kit", ".ci/tools/drizzle-kit.sh") else { return };
    let q = Project::new("history_drizzle_kit");
    write_history(&q, "drizzle", Flavor::Plain);
    q.write(
        "drizzle.config.js",
        "module.exports = { dialect: \"postgresql\", out: \"./migrations/drizzle\", \
         dbCredentials: { url: process.env.DATABASE_URL } };\n",
    );
    crate::up_only_adopt::drizzle_kit_migrate(&q, &kit);
    assert_eq!(q.client().count("drizzle.__drizzle_migrations"), MIGRATIONS as i64);
    q.run(&["adopt", "--from", "drizzle", "--yes"])
        .expect_code(0)
        .expect_output(&format!("adopted {MIGRATIONS} migration(s)"));
    assert!(pending(&q).is_empty());
}
