//! The up-only layouts (the Supabase CLI's, Prisma's and Drizzle's) read
//! as their tools leave them in a project, found from the project's root
//! or the tool's own folder: `status`, `migrate` and `new` on a throwaway
//! cluster, and the bad input their users make (a file name the Supabase
//! CLI skips, a Prisma folder without its script, a broken or incomplete
//! drizzle journal), each a finding with its place and fix while the rest
//! of the folder is still read.

use crate::common::{copy_dir, fixture_path, DbExt, Project};

/// A project whose migrations folder is a copy of the project-shaped
/// fixture `layouts/<layout>` (so `[migrations] dir` names the root).
pub fn project_from(layout: &str, label: &str) -> Project {
    let p = Project::new(label);
    let dir = p.path().join("migrations");
    std::fs::remove_dir_all(&dir).unwrap();
    copy_dir(&fixture_path(&format!("layouts/{layout}")), &dir);
    p
}

/// What the Supabase platform has in a project's database before any
/// migration: its roles, `auth.uid()`, the `extensions` schema and the
/// realtime publication.
pub fn supabase_platform(db: &mut postgres::Client) {
    let sql = std::fs::read_to_string(fixture_path("platform/supabase.sql")).unwrap();
    db.batch_execute(&sql).expect("the platform's stand-ins are created");
}

pub fn pending(p: &Project) -> Vec<String> {
    let run = p.run(&["status", "--format", "json"]);
    run.json()["pending"]
        .as_array()
        .unwrap_or_else(|| panic!("no pending list\n{}\n{}", run.stdout, run.stderr))
        .iter()
        .map(|e| e["version"].as_str().unwrap().to_string())
        .collect()
}

fn files_under(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path.display().to_string());
        }
    }
    out.sort();
    out
}

/// The file `new add_x` created, relative to the project's migrations folder.
fn created_by_new(p: &Project) -> String {
    let run = p.run(&["new", "add_x"]);
    run.expect_code(0);
    let root = p.path().join("migrations").display().to_string();
    let made: Vec<String> = files_under(&p.path().join("migrations"))
        .into_iter()
        .filter(|f| f.contains("add_x"))
        .map(|f| f[root.len() + 1..].to_string())
        .collect();
    assert_eq!(made.len(), 1, "{made:?}\n{}", run.stdout);
    made.into_iter().next().unwrap()
}

fn is_timestamp(s: &str) -> bool {
    s.len() == 14 && s.bytes().all(|b| b.is_ascii_digit()) && s.starts_with("20")
}

#[test]
fn supabase_project_is_read_from_its_root_and_from_supabase_migrations() {
    let p = project_from("supabase", "up_supabase");
    supabase_platform(&mut p.client());
    let status = p.run(&["status", "--format", "json"]);
    let json = status.expect_code(0).json();
    assert_eq!(json["layout"], "supabase", "{}", status.stdout);
    assert_eq!(json["problems"].as_array().unwrap().len(), 0, "{}", status.stdout);
    assert_eq!(pending(&p), ["20240101000000", "20240102000000", "20240103000000"]);
    p.run(&["status", "--verbose"])
        .expect_code(0)
        .expect_output("supabase/seed.sql: Supabase's seed data")
        .expect_output("supabase/config.toml: the Supabase CLI's project settings");

    p.run(&["migrate"]).expect_code(0);
    let mut db = p.client();
    assert!(db.exists("public.users") && db.exists("public.posts") && db.exists("users_email_idx"));
    let policies: i64 = db
        .query_one("select count(*) from pg_policies where tablename = 'posts'", &[])
        .unwrap()
        .get(0);
    assert_eq!(policies, 1);
    assert_eq!(db.count("users"), 0, "seed.sql is not a migration");
    assert!(pending(&p).is_empty());

    // `[migrations] dir` naming supabase/migrations itself reads the same folder.
    p.config("[database]\nurl = \"${DATABASE_URL}\"\n\n[migrations]\ndir = \"migrations/supabase/migrations\"\n");
    let json = p.run(&["status", "--format", "json"]).expect_code(0).json();
    assert_eq!(json["layout"], "supabase");
    assert_eq!(json["applied"].as_array().unwrap().len(), 3);

    let made = created_by_new(&p);
    let name = made.strip_prefix("supabase/migrations/").expect("in supabase/migrations");
    let (version, rest) = name.split_once('_').unwrap();
    assert!(is_timestamp(version) && rest == "add_x.sql", "{made}");
    assert_eq!(pending(&p), [version]);
}

#[test]
fn prisma_project_runs_a_lone_concurrent_index_outside_a_transaction() {
    let p = project_from("prisma", "up_prisma");
    let json = p.run(&["status", "--format", "json"]).expect_code(0).json();
    assert_eq!(json["layout"], "prisma");
    assert_eq!(pending(&p), ["20240101000000", "20240102000000", "20240103000000"]);
    p.run(&["migrate", "--dry-run"]).expect_code(0).expect_output("no transaction");
    p.run(&["migrate"]).expect_code(0);
    let mut db = p.client();
    let valid: bool = db
        .query_one(
            "select indisvalid from pg_index where indexrelid = 'users_email_idx'::regclass",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(valid, "the concurrent build finished");
    assert!(db.exists("posts"));
    p.run(&["status", "--verbose"]).expect_code(0).expect_output("migration_lock.toml");

    let made = created_by_new(&p);
    let rest = made.strip_prefix("prisma/migrations/").expect("in prisma/migrations");
    let (folder, file) = rest.split_once('/').unwrap();
    assert_eq!(file, "migration.sql");
    let (version, name) = folder.split_once('_').unwrap();
    assert!(is_timestamp(version) && name == "add_x", "{made}");
    assert_eq!(pending(&p), [version]);
    p.run(&["migrate"]).expect_code(0);
}

#[test]
fn drizzle_project_follows_its_journal_and_new_appends_to_it() {
    let p = project_from("drizzle", "up_drizzle");
    let json = p.run(&["status", "--format", "json"]).expect_code(0).json();
    assert_eq!(json["layout"], "drizzle");
    assert_eq!(pending(&p), ["0000", "0001", "0002"]);
    p.run(&["migrate"]).expect_code(0);
    let mut db = p.client();
    assert!(db.exists("posts") && db.exists("posts_user_id_idx"));
    p.run(&["status", "--verbose"]).expect_code(0).expect_output("0000_snapshot.json");

    assert_eq!(created_by_new(&p), "drizzle/0003_add_x.sql");
    let journal = p.path().join("migrations/drizzle/meta/_journal.json");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&journal).unwrap()).unwrap();
    let last = json["entries"].as_array().unwrap().last().unwrap().clone();
    assert_eq!((last["idx"].as_u64(), last["tag"].as_str()), (Some(3), Some("0003_add_x")));
    assert!(last["when"].as_i64().unwrap() > 1_704_240_000_000);
    assert_eq!(last["breakpoints"], true);
    assert_eq!(json["dialect"], "postgresql", "the rest of the journal is kept");
    assert_eq!(pending(&p), ["0003"]);
    p.run(&["migrate"]).expect_code(0);
    assert!(pending(&p).is_empty());
}

#[test]
fn a_supabase_file_the_cli_would_skip_is_named_with_its_fix_and_the_rest_runs() {
    let p = project_from("supabase", "up_supabase_bad_name");
    supabase_platform(&mut p.client());
    p.write(
        "migrations/supabase/migrations/2024-01-04 add comments.sql",
        "create table c (id int);\n",
    );
    p.run(&["status"])
        .expect_code(1)
        .expect_output("never run by supabase (1):")
        .expect_output("2024-01-04 add comments.sql:1: ")
        .expect_output("rename it (e.g. `20240101120000_add_comments.sql`");
    assert_eq!(pending(&p).len(), 3);
    let json = p.run(&["check", "--offline", "--format", "json"]).json();
    let finding = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "BS003" && f["file"].as_str().unwrap().ends_with("add comments.sql"))
        .expect("check names the stray file");
    assert_eq!(finding["line"], 1);
    p.run(&["migrate"]).expect_code(0);
    assert!(p.client().exists("posts") && !p.client().exists("c"));
}

#[test]
fn a_prisma_folder_without_its_migration_sql_blocks_only_that_migration() {
    let p = project_from("prisma", "up_prisma_no_script");
    let folder = "migrations/prisma/migrations/20240103000000_posts";
    std::fs::remove_file(p.path().join(folder).join("migration.sql")).unwrap();
    p.write(&format!("{folder}/README.md"), "the script was lost in a rebase\n");
    p.run(&["status"])
        .expect_code(1)
        .expect_output("20240103000000_posts:1:1: the Prisma migration folder 20240103000000_posts has no migration.sql; restore it");
    p.run(&["migrate", "--to", "20240102000000"]).expect_code(0);
    p.run(&["migrate"]).expect_code(2).expect_output("20240103000000_posts");
    let mut db = p.client();
    assert!(db.exists("users") && !db.exists("posts"));
}

#[test]
fn a_malformed_drizzle_journal_names_its_place_and_nothing_runs() {
    let p = project_from("drizzle", "up_drizzle_bad_journal");
    p.write(
        "migrations/drizzle/meta/_journal.json",
        "{\n  \"version\": \"7\",\n  \"entries\": [\n    { \"idx\": 0, \"tag\": \"0000_users\" \n  ]\n}\n",
    );
    let run = p.run(&["status"]);
    run.expect_code(1)
        .expect_output("meta/_journal.json:5:")
        .expect_output("restore it from version control");
    let json = p.run(&["status", "--format", "json"]).json();
    assert_eq!(json["pending"].as_array().unwrap().len(), 3, "every file is still read");
    assert_eq!(json["problems"].as_array().unwrap().len(), 3);
    p.run(&["migrate"]).expect_code(2).expect_output("_journal.json");
    assert!(!p.client().exists("users"));
}

#[test]
fn a_drizzle_file_missing_from_the_journal_is_a_stray_and_the_journal_runs() {
    let p = project_from("drizzle", "up_drizzle_stray");
    p.write("migrations/drizzle/0003_draft.sql", "CREATE TABLE draft (id int);\n");
    p.run(&["status"])
        .expect_code(1)
        .expect_output("never run by drizzle (1):")
        .expect_output("0003_draft.sql:1: 0003_draft.sql is not in meta/_journal.json");
    p.run(&["migrate"]).expect_code(0);
    let mut db = p.client();
    assert!(db.exists("posts") && !db.exists("draft"));
}
