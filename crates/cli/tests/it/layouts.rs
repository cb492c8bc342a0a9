//! Every layout read as its tool wrote it: `status`, `migrate` and
//! `rollback --steps 1` on a throwaway cluster, with a no-transaction
//! migration, downs, and the layout's repeatable or dependency case; and
//! the five ways a real diesel folder broke Backstop, each a fixture.

use std::path::Path;

use crate::common::{copy_dir, fixture_path, DbExt, Project};

/// A project whose migrations folder is a copy of fixture `rel`.
fn project_from(rel: &str, label: &str) -> Project {
    let p = Project::new(label);
    let dir = p.path().join("migrations");
    std::fs::remove_dir_all(&dir).unwrap();
    copy_dir(&fixture_path(rel), &dir);
    p
}

fn pending(p: &Project) -> Vec<String> {
    let json = p.run(&["status", "--format", "json"]).json();
    json["pending"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["version"].as_str().unwrap().to_string())
        .collect()
}

fn index_exists(p: &Project, name: &str) -> bool {
    p.client().exists(name)
}

/// The round every layout goes through: status, migrate, status, rollback
/// one step, migrate again.
fn round(layout: &str, versions: &[&str]) -> Project {
    let p = project_from(&format!("layouts/{layout}"), &format!("layout_{layout}"));
    let status = p.run(&["status", "--format", "json"]);
    let json = status.expect_code(0).json();
    assert_eq!(json["layout"], layout, "{}", status.stdout);
    assert_eq!(json["problems"].as_array().unwrap().len(), 0, "{}", status.stdout);
    assert_eq!(pending(&p), versions);

    p.run(&["migrate"]).expect_code(0);
    let mut db = p.client();
    assert!(db.exists("users") && db.exists("posts"), "{layout}: tables");
    assert!(index_exists(&p, "users_email_idx"), "{layout}: the no-transaction index");
    let valid: bool = db
        .query_one(
            "select indisvalid from pg_index where indexrelid = 'users_email_idx'::regclass",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(valid, "{layout}: the concurrent index build finished");
    assert_eq!(pending(&p), Vec::<String>::new());

    p.run(&["rollback", "--steps", "1"]).expect_code(0);
    assert!(!db.exists("posts") && db.exists("users"), "{layout}: the last migration reverted");
    let functions: i64 = db
        .query_one("select count(*) from pg_proc where proname = 'post_count'", &[])
        .unwrap()
        .get(0);
    assert_eq!(functions, 0, "{layout}: its function went with it");
    p.run(&["migrate"]).expect_code(0);
    assert!(db.exists("posts"));
    p
}

#[test]
fn diesel_layout_round_trip() {
    round("diesel", &["2020-01-01-000000", "20200102000000", "2020-01-03-000000-0000"]);
}

#[test]
fn sqlx_layout_round_trip() {
    round("sqlx", &["20200101000000", "20200102000000", "20200103000000"]);
}

#[test]
fn dbmate_layout_round_trip() {
    round("dbmate", &["20200101000000", "20200102000000", "20200103000000"]);
}

#[test]
fn golang_migrate_layout_round_trip() {
    round("golang-migrate", &["000001", "000002", "000003"]);
}

#[test]
fn goose_layout_round_trip() {
    round("goose", &["00001", "00002", "00003"]);
}

#[test]
fn flyway_layout_round_trip_and_repeatable_reapplied_when_changed() {
    let p = round("flyway", &["1", "1.1", "2", "R__recent_users"]);
    assert!(p.client().exists("recent_users"));
    // A repeatable migration applies again when its file changes; others stay applied.
    p.write(
        "migrations/R__recent_users.sql",
        "CREATE OR REPLACE VIEW recent_users AS\n    SELECT id, email FROM users WHERE created_at > now() - interval '30 days';\n",
    );
    assert_eq!(pending(&p), ["R__recent_users"]);
    p.run(&["status"]).expect_code(0);
    p.run(&["migrate"]).expect_code(0);
    let def: String = p
        .client()
        .query_one("select pg_get_viewdef('recent_users'::regclass)", &[])
        .unwrap()
        .get(0);
    assert!(def.contains("30 days"), "{def}");
    assert_eq!(pending(&p), Vec::<String>::new());
}

#[test]
fn sqitch_layout_round_trip_in_plan_order() {
    let p = round("sqitch", &["users", "users_email_idx", "posts"]);
    assert_eq!(p.client().applied(), ["posts", "users", "users_email_idx"]);
}

#[test]
fn sqitch_plan_naming_an_unknown_dependency_is_refused_with_its_line() {
    let p = project_from("layouts/sqitch", "sqitch_bad_plan");
    let plan = p.path().join("migrations/sqitch.plan");
    let text = std::fs::read_to_string(&plan).unwrap().replace("posts [users]", "posts [user]");
    std::fs::write(&plan, text).unwrap();
    p.run(&["status"]).expect_code(2).expect_output("sqitch.plan:6: change posts requires `user`");
    p.run(&["migrate"]).expect_code(2);
    assert!(!p.client().history_schema_exists());
}

#[test]
fn sqitch_plan_entry_without_its_deploy_script_blocks_only_that_change() {
    let p = project_from("layouts/sqitch", "sqitch_missing_deploy");
    std::fs::remove_file(p.path().join("migrations/deploy/posts.sql")).unwrap();
    p.run(&["status"])
        .expect_code(1)
        .expect_output("sqitch.plan:6:1: change posts has no deploy script deploy/posts.sql");
    p.run(&["migrate", "--to", "users_email_idx"]).expect_code(0);
    p.run(&["migrate"]).expect_code(2).expect_output("deploy/posts.sql");
    assert!(!p.client().exists("posts"));
}

#[test]
fn an_unknown_layout_in_config_names_the_line_and_the_choices() {
    let p = project_from("layouts/sqlx", "unknown_layout");
    p.config("[database]\nurl = \"${DATABASE_URL}\"\n\n[migrations]\nlayout = \"rails\"\n");
    p.run(&["status"])
        .expect_code(2)
        .expect_output("backstop.toml:5:")
        .expect_output("unknown layout \"rails\"")
        .expect_output("golang-migrate");
}

// The five ways a public project's diesel folder of 285 migrations broke
// Backstop, each a fixture of its own.

#[test]
fn readme_and_data_file_beside_the_migrations_are_ignored_and_listed() {
    let p = project_from("real_folders/readme_and_data_file", "real_readme");
    let run = p.run(&["status", "--verbose"]);
    run.expect_code(0)
        .expect_output("not migrations (2):")
        .expect_output("README.md")
        .expect_output("seed_data.sql");
    p.run(&["migrate"]).expect_code(0);
    assert!(p.client().exists("posts"));
    assert_eq!(p.client().count("users"), 0, "the data file is not run");
}

#[test]
fn a_down_with_a_missing_semicolon_blocks_only_the_rollback_through_it() {
    let p = project_from("real_folders/down_missing_semicolon", "real_semicolon");
    let run = p.run(&["status"]);
    run.expect_code(0)
        .expect_output(
            "2017-04-01-000000_create_posts/down.sql:2:1: syntax error at or near \"DROP\"",
        )
        .expect_output("blocks a rollback through it");
    p.run(&["migrate"]).expect_code(0);
    // The newest migration's down is fine.
    p.run(&["rollback", "--steps", "1"]).expect_code(0);
    p.run(&["migrate"]).expect_code(0);
    // Through the broken down: refused before anything is reverted.
    let run = p.run(&["rollback", "--steps", "2"]);
    run.expect_code(2).expect_output("create_posts/down.sql:2:1");
    let mut db = p.client();
    assert!(db.exists("posts"));
    let bio: i64 = db
        .query_one("select count(*) from information_schema.columns where table_name = 'users' and column_name = 'bio'", &[])
        .unwrap()
        .get(0);
    assert_eq!(bio, 1, "nothing of the rollback ran");
    // check names it, with its place, as a high finding of the down.
    p.run(&["check", "--offline", "--format", "json"]).json()["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "BS003" && f["severity"] == "high" && f["line"] == 2)
        .expect("BS003 for the down");
}

#[test]
fn diesel_metadata_run_in_transaction_false_runs_concurrently() {
    let p = project_from("real_folders/metadata_run_in_transaction_false", "real_metadata");
    p.run(&["migrate", "--dry-run"]).expect_code(0).expect_output("no transaction");
    p.run(&["migrate"]).expect_code(0);
    assert!(index_exists(&p, "users_email_idx"));
    p.run(&["rollback", "--steps", "1"]).expect_code(0);
    assert!(!index_exists(&p, "users_email_idx"));
}

#[test]
fn concurrently_in_a_down_without_the_flag_is_a_finding_of_that_down() {
    let p = project_from("real_folders/concurrently_in_down_without_flag", "real_concurrently");
    p.run(&["status"])
        .expect_code(0)
        .expect_output("DROP INDEX CONCURRENTLY cannot run inside a transaction");
    p.run(&["migrate"]).expect_code(0);
    p.run(&["rollback", "--steps", "1"])
        .expect_code(2)
        .expect_output("users_email_idx/down.sql:1:1");
    assert!(index_exists(&p, "users_email_idx"));
}

#[test]
fn diesel_versions_in_three_formats_apply_in_diesel_order() {
    let p = project_from("real_folders/mixed_version_formats", "real_versions");
    assert_eq!(pending(&p), ["20170318181441", "2017-08-31-230457", "2026-07-30-140000-0000"]);
    p.run(&["migrate"]).expect_code(0);
    assert!(index_exists(&p, "users_bio_idx"));
}

#[test]
fn new_writes_a_migration_in_the_folders_own_layout_after_the_latest() {
    let cases: [(&str, &[&str]); 5] = [
        ("sqlx", &["_add_x.up.sql", "_add_x.down.sql"]),
        ("golang-migrate", &["000004_add_x.up.sql", "000004_add_x.down.sql"]),
        ("goose", &["00004_add_x.sql"]),
        ("flyway", &["V3__add_x.sql", "U3__add_x.sql"]),
        ("sqitch", &["deploy/add_x.sql", "revert/add_x.sql", "verify/add_x.sql"]),
    ];
    for (layout, suffixes) in cases {
        let p = project_from(&format!("layouts/{layout}"), &format!("new_{layout}"));
        p.run(&["new", "add_x"]).expect_code(0);
        let created: Vec<String> = walk(&p.path().join("migrations"))
            .into_iter()
            .filter(|f| f.contains("add_x"))
            .collect();
        for suffix in suffixes {
            assert!(
                created.iter().any(|f| f.ends_with(suffix)),
                "{layout}: {suffix} not in {created:?}"
            );
        }
        // The new migration is the last versioned one (Flyway's repeatable
        // ones always come after those).
        let json = p.run(&["status", "--format", "json"]).json();
        let last = json["pending"]
            .as_array()
            .unwrap()
            .iter()
            .rfind(|e| !e["version"].as_str().unwrap().starts_with("R__"))
            .unwrap()["name"]
            .clone();
        assert_eq!(last, "add_x", "{layout}");
    }
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path.display().to_string());
        }
    }
    out
}
