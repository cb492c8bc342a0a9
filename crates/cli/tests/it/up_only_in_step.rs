//! The up-only tools kept in step with Backstop: `backstop migrate` and
//! `rollback` in a Supabase, Prisma or Drizzle project write and take out
//! the tool's own history row, which the tools themselves then read (the
//! Supabase CLI's `migration list` and `migration up`, drizzle-kit's
//! migrator; Prisma's engines cannot be installed here, so its table is
//! held against the shape Prisma creates and read back through `backstop
//! adopt`'s reader). A database another tool migrated, whose history
//! Backstop has not adopted, is named by `status`, NO-GO in `check` and
//! refused by `migrate` until `backstop history adopt`.

use std::path::Path;
use std::process::Command;

use crate::common::{program, run_program, DbExt, Project};
use crate::up_only::{project_from, supabase_platform};
use crate::up_only_adopt::{drizzle_config, drizzle_kit_migrate, PRISMA_TABLE};

/// The versions `supabase migration list` shows as applied on the
/// database. The CLI draws its table to the terminal's width and drops
/// the rows when there is no terminal, so it runs in one (`script`, of
/// util-linux) 200 columns wide.
fn supabase_remote(p: &Project, cli: &Path) -> Vec<String> {
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let list = format!(
        "stty cols 200 rows 50; {} migration list --db-url {} --workdir {}",
        quote(&cli.display().to_string()),
        quote(&format!("{}?sslmode=disable", p.url)),
        quote(&p.path().join("migrations").display().to_string())
    );
    let out = run_program(Command::new("script").args(["-qec", &list, "/dev/null"]));
    out.lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(|c| c.trim().trim_matches('`')).collect();
            let remote = *cells.get(1)?;
            (!remote.is_empty() && remote.bytes().all(|b| b.is_ascii_digit()))
                .then(|| remote.to_string())
        })
        .collect()
}

fn supabase_up(p: &Project, cli: &Path) {
    run_program(
        Command::new(cli)
            .args(["migration", "up", "--db-url", &format!("{}?sslmode=disable", p.url)])
            .arg("--workdir")
            .arg(p.path().join("migrations"))
            .current_dir(p.path()),
    );
}

/// `backstop history adopt --from TOOL` (a dry run) over the database Backstop
/// migrated: the tool's rows read back as applied, with the checksums the
/// tool compares, and Backstop's history already holds them.
fn reads_back(p: &Project, tool: &str, applied: usize) {
    let run = p.run(&["adopt", "--from", tool, "--format", "json"]);
    let plan = &run.expect_code(0).json()["plan"];
    assert!(plan["findings"].as_array().unwrap().is_empty(), "{}", run.stdout);
    assert!(plan["adopt"].as_array().unwrap().is_empty(), "{}", run.stdout);
    assert_eq!(plan["already"].as_array().unwrap().len(), applied, "{}", run.stdout);
}

/// A down kept beside the migrations folder `dir` for `version`.
fn down(p: &Project, dir: &str, version: &str, sql: &str) {
    p.write(&format!("{dir}/backstop/downs/{version}.down.sql"), sql);
}

#[test]
fn supabase_migration_list_follows_backstop_migrate_and_rollback() {
    let Some(cli) = program("supabase", ".ci/tools/supabase.sh") else { return };
    let Some(_) = program("script", "util-linux, the system's package") else { return };
    let p = project_from("supabase", "in_step_supabase");
    supabase_platform(&mut p.client());
    p.run(&["migrate"]).expect_code(0);
    let all = ["20240101000000", "20240102000000", "20240103000000"];
    assert_eq!(supabase_remote(&p, &cli), all);
    reads_back(&p, "supabase", 3);
    let name: String = p
        .client()
        .query_one(
            "select name from supabase_migrations.schema_migrations where version = $1",
            &[&all[0]],
        )
        .unwrap()
        .get(0);
    assert_eq!(name, "users");

    down(
        &p,
        "migrations/supabase",
        all[2],
        "drop function public.post_count(bigint);\ndrop table public.posts;\n",
    );
    p.run(&["rollback"]).expect_code(0);
    assert_eq!(supabase_remote(&p, &cli), all[..2]);
    // The CLI applies the reverted migration again, and only that one.
    supabase_up(&p, &cli);
    assert!(p.client().exists("public.posts"));
    assert_eq!(supabase_remote(&p, &cli), all);
}

#[test]
fn drizzle_migrator_applies_only_what_backstop_did_not_and_again_what_it_reverted() {
    let Some(kit) = program("drizzle-kit", ".ci/tools/drizzle-kit.sh") else { return };
    let p = project_from("drizzle", "in_step_drizzle");
    drizzle_config(&p);
    let table = "drizzle.__drizzle_migrations";
    p.run(&["migrate", "--to", "0001"]).expect_code(0);
    let when: Vec<String> =
        p.client().texts(&format!("select created_at::text from {table} order by id"));
    assert_eq!(when, ["1704067200000", "1704153600000"], "each row carries its journal `when`");
    reads_back(&p, "drizzle", 2);

    // drizzle's migrator runs only the third (running the first again
    // would fail on "relation users already exists").
    drizzle_kit_migrate(&p, &kit);
    assert!(p.client().exists("posts"));
    assert_eq!(p.client().count(table), 3);
    p.run(&["status"])
        .expect_code(1)
        .expect_output("not adopted: drizzle.__drizzle_migrations (drizzle's history)")
        .expect_output("backstop history adopt --from drizzle");
    // Reverting what Backstop applied would run its down beneath the
    // migration drizzle applied on top: refused, nothing runs.
    let refused = p.run(&["rollback"]);
    refused.expect_code(1).expect_output(
        "drizzle.__drizzle_migrations (drizzle's history) records 0002 as applied after it",
    );
    refused.expect_output("backstop history adopt --from drizzle");
    assert!(p.client().exists("posts") && p.client().exists("users"), "nothing ran");
    assert_eq!(p.client().count(table), 3);
    p.run(&["adopt", "--from", "drizzle", "--yes"])
        .expect_code(0)
        .expect_output("adopted 1 migration(s)");
    p.run(&["status"]).expect_code(0);

    down(&p, "migrations", "0002", "DROP FUNCTION post_count(integer);\nDROP TABLE \"posts\";\n");
    p.run(&["rollback"]).expect_code(0);
    assert!(!p.client().exists("posts"));
    assert_eq!(p.client().count(table), 2);
    drizzle_kit_migrate(&p, &kit);
    assert!(p.client().exists("posts"), "drizzle applies the reverted migration again");
    assert_eq!(p.client().count(table), 3);
}

/// Each column of `table` in `schema`: name, type, length, nullability, default.
fn shape(db: &mut postgres::Client, schema: &str) -> Vec<String> {
    db.texts(&format!(
        "select concat_ws(' ', column_name, data_type, character_maximum_length, is_nullable,
                          column_default)
           from information_schema.columns
          where table_schema = '{schema}' and table_name = '_prisma_migrations'
          order by ordinal_position"
    ))
}

#[test]
fn prisma_rows_are_written_as_prisma_writes_them_and_a_rollback_marks_them_rolled_back() {
    let p = project_from("prisma", "in_step_prisma");
    p.run(&["migrate"]).expect_code(0);
    let mut db = p.client();
    db.batch_execute(&format!("create schema prisma_shape; set search_path = prisma_shape; {PRISMA_TABLE}; reset search_path"))
        .unwrap();
    let (ours, prismas) = (shape(&mut db, "public"), shape(&mut db, "prisma_shape"));
    assert_eq!(ours, prismas, "the table Prisma creates");
    assert_eq!(ours.len(), 8);

    let folders = p.path().join("migrations/prisma/migrations");
    for name in ["20240101000000_init", "20240102000000_users_email_idx", "20240103000000_posts"] {
        let bytes = std::fs::read(folders.join(name).join("migration.sql")).unwrap();
        let row = db
            .query_one(
                "select checksum = encode(sha256($2), 'hex'), length(id), finished_at >= started_at,
                        logs is null and rolled_back_at is null, applied_steps_count
                   from _prisma_migrations where migration_name = $1",
                &[&name, &bytes],
            )
            .unwrap();
        let (sum, id, ordered): (bool, i32, bool) = (row.get(0), row.get(1), row.get(2));
        let (clean, steps): (bool, i32) = (row.get(3), row.get(4));
        assert!(sum && ordered && clean, "{name}");
        assert_eq!((id, steps), (36, 1), "{name}");
    }
    reads_back(&p, "prisma", 3);

    down(
        &p,
        "migrations/prisma",
        "20240103000000",
        "DROP FUNCTION post_count(integer);\nDROP TABLE \"posts\";\n",
    );
    p.run(&["rollback"]).expect_code(0);
    let rolled: Vec<String> =
        db.texts("select migration_name from _prisma_migrations where rolled_back_at is not null");
    assert_eq!(rolled, ["20240103000000_posts"]);
    // Prisma counts it as not applied: nothing here that Backstop lacks.
    p.run(&["status"]).expect_code(0);
    reads_back(&p, "prisma", 2);
    p.run(&["migrate"]).expect_code(0);
    assert_eq!(db.count("_prisma_migrations"), 4, "a new attempt, as Prisma records one");
    reads_back(&p, "prisma", 3);
}

#[test]
fn a_supabase_history_not_adopted_is_named_and_refused_until_adopted() {
    let Some(cli) = program("supabase", ".ci/tools/supabase.sh") else { return };
    let p = project_from("supabase", "in_step_not_adopted");
    supabase_platform(&mut p.client());
    supabase_up(&p, &cli);
    let table = "supabase_migrations.schema_migrations";
    let theirs = |db: &mut postgres::Client| -> Vec<String> {
        db.user_relations().into_iter().filter(|r| !r.starts_with("backstop.")).collect()
    };
    let relations = theirs(&mut p.client());

    p.run(&["status"])
        .expect_code(1)
        .expect_output(&format!("not adopted: {table} (supabase's history) records 3 pending"))
        .expect_output("`backstop history adopt --from supabase`");
    let json = p.run(&["status", "--format", "json"]).json();
    assert_eq!(json["unadopted"][0]["applied"].as_array().unwrap().len(), 3);
    p.run(&["check"])
        .expect_code(1)
        .expect_output("NO-GO")
        .expect_output("supabase already applied 3 pending migration(s)")
        .expect_output("backstop history adopt --from supabase");
    p.run(&["migrate"])
        .expect_code(1)
        .expect_output("NO-GO, 1 critical finding(s)")
        .expect_output("BS003")
        .expect_output("take the history over with `backstop history adopt --from supabase`");
    let mut db = p.client();
    assert!(db.applied().is_empty(), "migrate ran nothing");
    assert_eq!(db.count(table), 3);
    assert_eq!(theirs(&mut db), relations, "nothing of the project's changed");

    p.run(&["adopt", "--from", "supabase", "--yes"]).expect_code(0);
    let status = p.run(&["status"]);
    status.expect_code(0);
    assert!(!status.stdout.contains("not adopted"), "{}", status.stdout);
    p.run(&["check"]).expect_code(0);
    p.run(&["migrate"]).expect_code(0).expect_output("nothing to migrate");
}

/// A rehearsal's copy is thrown away: its round trips hold the project's
/// schema, not the rows its tool's history would get.
#[test]
fn a_rehearsal_round_trips_without_the_tools_history_getting_in_the_way() {
    let p = project_from("prisma", "in_step_rehearse");
    down(
        &p,
        "migrations/prisma",
        "20240103000000",
        "DROP FUNCTION post_count(integer);\nDROP TABLE \"posts\";\n",
    );
    p.run(&["migrate", "--to", "20240102000000"]).expect_code(0);
    p.run(&["rehearse"])
        .expect_code(0)
        .expect_output("round trips of 1 migration(s): 1 ok")
        .expect_output("rehearsal passed");
    assert_eq!(p.client().count("_prisma_migrations"), 2, "the source's history is as it was");
}
