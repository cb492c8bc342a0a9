//! Taking over another tool's history: the real tools (sqlx-cli and
//! diesel_cli from crates.io, dbmate from npm, sqitch from Debian; CI
//! installs them with .ci/tools) migrate a fresh database, then `backstop
//! adopt` records the same versions without running anything. Tools that no
//! registry this project reaches provides (goose, golang-migrate, Flyway)
//! are skipped with the reason printed; their tables are then written in
//! the shape the tool creates, to test the readers.

use std::process::Command;

use crate::common::{copy_dir, fixture_path, DbExt, Project, CLUSTER};
use crate::common::{event, find_program as find, program as tool, run_program as run_tool};

pub(crate) fn project_from(layout: &str, label: &str) -> Project {
    let p = Project::new(label);
    let dir = p.path().join("migrations");
    std::fs::remove_dir_all(&dir).unwrap();
    copy_dir(&fixture_path(&format!("layouts/{layout}")), &dir);
    p
}

/// What every adoption must come to: a dry run that writes nothing, then
/// the history taken over, nothing pending, and a working rollback that
/// the tool's own table follows: `after_rollback` rows in it once the
/// last migration is reverted (the tool's own undo would leave as many),
/// and one more once it is applied again.
fn adopt_and_roll_back(
    p: &Project,
    tool: &str,
    tool_table: &str,
    count: usize,
    after_rollback: i64,
) {
    let before: i64 = p.client().count(tool_table);
    let dry = p.run(&["adopt", "--from", tool]);
    dry.expect_code(0).expect_output(&format!("would adopt {count} migration(s)"));
    assert!(!p.client().history_schema_exists(), "a dry run writes nothing");

    p.run(&["adopt", "--from", tool, "--yes"]).expect_code(0).expect_output("✓ adopted");
    let mut db = p.client();
    assert_eq!(db.applied().len(), count);
    let (kind, outcome, _) = db.events().pop().unwrap();
    assert_eq!((kind.as_str(), outcome.as_str()), ("adopt", "ok"));
    assert_eq!(db.count(tool_table), before, "the other tool's table is left as it was");

    let status = p.run(&["status", "--format", "json"]);
    let json = status.expect_code(0).json();
    assert_eq!(json["pending"].as_array().unwrap().len(), 0, "{}", status.stdout);
    assert_eq!(json["drifted"].as_array().unwrap().len(), 0, "{}", status.stdout);

    // Adopting again changes nothing.
    p.run(&["adopt", "--from", tool, "--yes"])
        .expect_code(0)
        .expect_output("adopted 0 migration(s)");

    p.run(&["rollback", "--steps", "1"]).expect_code(0);
    assert!(!db.exists("posts") && db.exists("users"));
    // The tool's history follows the revert, as its own undo would.
    assert_eq!(db.count(tool_table), after_rollback, "{tool_table} after the rollback");
    p.run(&["status"]).expect_code(0);
    p.run(&["migrate"]).expect_code(0);
    assert!(db.exists("posts"));
    let kept_in_step = after_rollback != before;
    let again =
        if kept_in_step && tool != "golang-migrate" { after_rollback + 1 } else { after_rollback };
    assert_eq!(db.count(tool_table), again, "{tool_table} after the migration applied again");
}

#[test]
fn sqlx_history_is_adopted_after_sqlx_cli_migrated() {
    let Some(sqlx) = tool("sqlx", ".ci/tools/sqlx-cli.sh") else { return };
    let p = project_from("sqlx", "adopt_sqlx");
    run_tool(
        Command::new(&sqlx)
            .args(["migrate", "run", "--source", "migrations", "--database-url", &p.url])
            .current_dir(p.path()),
    );
    adopt_and_roll_back(&p, "sqlx", "_sqlx_migrations", 3, 2);
    // sqlx-cli itself agrees, checksums included: all installed after
    // Backstop applied the last one again, that one pending once reverted.
    let info = || {
        let out = Command::new(&sqlx)
            .args(["migrate", "info", "--source", "migrations", "--database-url", &p.url])
            .current_dir(p.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let text = info();
    assert_eq!(text.matches("/installed").count(), 3, "{text}");
    assert!(!text.contains("checksum") && !text.contains("pending"), "{text}");
    p.run(&["rollback", "--steps", "1"]).expect_code(0);
    let text = info();
    assert_eq!(text.matches("/installed").count(), 2, "{text}");
    assert!(text.contains("20200103000000/pending"), "{text}");
}

#[test]
fn a_failed_sqlx_row_a_changed_file_and_a_lost_file_are_refused_by_name() {
    let Some(sqlx) = tool("sqlx", ".ci/tools/sqlx-cli.sh") else { return };
    let p = project_from("sqlx", "adopt_sqlx_findings");
    run_tool(
        Command::new(&sqlx)
            .args(["migrate", "run", "--source", "migrations", "--database-url", &p.url])
            .current_dir(p.path()),
    );
    let mut db = p.client();
    db.execute("update _sqlx_migrations set success = false where version = 20200102000000", &[])
        .unwrap();
    p.write("migrations/20200103000000_posts.up.sql", "CREATE TABLE posts (id int);\n");
    let run = p.run(&["adopt", "--from", "sqlx", "--yes"]);
    run.expect_code(1)
        .expect_output("20200102000000 (failed)")
        .expect_output("success = false")
        .expect_output("20200103000000 (checksum)")
        .expect_output("nothing was adopted");
    assert!(db.applied().is_empty());

    std::fs::remove_file(p.path().join("migrations/20200101000000_users.up.sql")).unwrap();
    std::fs::remove_file(p.path().join("migrations/20200101000000_users.down.sql")).unwrap();
    p.run(&["adopt", "--from", "sqlx"])
        .expect_code(1)
        .expect_output("20200101000000 (missing_file)");
}

#[test]
fn diesel_history_is_adopted_after_diesel_cli_migrated() {
    let Some(diesel) = tool("diesel", ".ci/tools/diesel-cli.sh") else { return };
    let p = project_from("diesel", "adopt_diesel");
    run_tool(
        Command::new(&diesel)
            .args(["migration", "run", "--migration-dir", "migrations", "--database-url", &p.url])
            .current_dir(p.path()),
    );
    adopt_and_roll_back(&p, "diesel", "__diesel_schema_migrations", 3, 2);
    // diesel_cli itself agrees: all run after Backstop applied the last
    // one again, that one not run once Backstop reverted it.
    let list = || {
        let out = Command::new(&diesel)
            .args(["migration", "list", "--migration-dir", "migrations", "--database-url", &p.url])
            .current_dir(p.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let text = list();
    assert_eq!(text.matches("[X]").count(), 3, "{text}");
    assert!(!text.contains("[ ]"), "{text}");
    p.run(&["rollback", "--steps", "1"]).expect_code(0);
    let text = list();
    assert!(text.contains("[ ] 2020-01-03-000000-0000_posts"), "{text}");
    assert_eq!(text.matches("[X]").count(), 2, "{text}");
}

#[test]
fn dbmate_history_is_adopted_after_dbmate_migrated() {
    let Some(dbmate) = tool("dbmate", ".ci/tools/dbmate.sh") else { return };
    let p = project_from("dbmate", "adopt_dbmate");
    let url = format!("{}?sslmode=disable", p.url);
    run_tool(
        Command::new(&dbmate)
            .args(["--url", &url, "--migrations-dir", "migrations", "--no-dump-schema", "up"])
            .current_dir(p.path()),
    );
    adopt_and_roll_back(&p, "dbmate", "schema_migrations", 3, 2);
    // dbmate itself agrees: nothing pending after Backstop applied it
    // again, one pending after Backstop reverted it.
    let status = |p: &Project| {
        Command::new(&dbmate)
            .args(["--url", &url, "--migrations-dir", "migrations", "status", "--exit-code"])
            .current_dir(p.path())
            .output()
            .unwrap()
    };
    assert!(status(&p).status.success(), "{}", String::from_utf8_lossy(&status(&p).stdout));
    p.run(&["rollback", "--steps", "1"]).expect_code(0);
    let pending = status(&p);
    assert_eq!(pending.status.code(), Some(1), "{}", String::from_utf8_lossy(&pending.stdout));
    assert!(String::from_utf8_lossy(&pending.stdout).contains("Pending: 1"));
}

#[test]
fn sqitch_history_is_adopted_after_sqitch_deployed() {
    let Some(sqitch) = tool("sqitch", ".ci/tools/sqitch.sh") else { return };
    let p = project_from("sqitch", "adopt_sqitch");
    let target = format!("db:{}", p.url.replacen("postgres://", "pg://", 1));
    run_tool(
        Command::new(&sqitch)
            .args(["deploy", &target])
            .current_dir(p.path().join("migrations"))
            .env("SQITCH_FULLNAME", "Backstop Test")
            .env("SQITCH_EMAIL", "test@example.com"),
    );
    adopt_and_roll_back(&p, "sqitch", "sqitch.changes", 3, 2);
}

/// A plan with what sqitch hashes into a change's id beyond the fixture's:
/// a URI, a tag, a note of two lines, a tagged require and a conflict.
const SQITCH_PLAN: &str = "%syntax-version=1.0.0
%project=fixture
%uri=https://example.com/fixture/

users 2020-01-01T00:00:00Z Fixture <fixture@example.com> # The users table.
users_email_idx [users] 2020-01-02T00:00:00Z Fixture <fixture@example.com> # Look users\\nup by email.
@v1 2020-01-02T12:00:00Z Tagger <tag@example.com> # First release.
posts [users@v1 !other:old] 2020-01-03T00:00:00Z Fixture <fixture@example.com>
";

/// sqitch's registry without the times and committers of a run: what
/// sqitch writes for a plan, whoever deploys it.
fn sqitch_registry(p: &Project) -> Vec<String> {
    let mut db = p.client();
    let sql =
        "select format('change %s %s %s %s %L %s %s %s', change_id, script_hash, change, project,
                             note, planned_at at time zone 'UTC', planner_name, planner_email)
                 from sqitch.changes
               union all
               select format('dependency %s %s %s %s', change_id, type, dependency, dependency_id)
                 from sqitch.dependencies
               union all
               select format('tag %s %s %s %L %s %s %s', tag_id, tag, change_id, note,
                             planned_at at time zone 'UTC', planner_name, planner_email)
                 from sqitch.tags
               order by 1";
    db.query(sql, &[]).unwrap().iter().map(|r| r.get(0)).collect()
}

/// Runs `sqitch <args>` against `p`'s database from its plan's folder:
/// the exit code and everything it printed.
fn sqitch_on(sqitch: &std::path::Path, p: &Project, args: &[&str]) -> (Option<i32>, String) {
    let target = format!("db:{}", p.url.replacen("postgres://", "pg://", 1));
    let out = Command::new(sqitch)
        .args(args)
        .arg(&target)
        .current_dir(p.path().join("migrations"))
        .env("SQITCH_FULLNAME", "Backstop Test")
        .env("SQITCH_EMAIL", "test@example.com")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), text)
}

/// The registry's tables as the catalog describes them: columns with
/// their types, nullability and defaults, and every constraint.
fn registry_shape(p: &Project) -> Vec<String> {
    let sql = "select format('%s.%s %s %s %s', table_name, column_name, data_type, is_nullable,
                             column_default)
                 from information_schema.columns where table_schema = 'sqitch'
               union all
               select format('%s %s %s', conrelid::regclass, conname, pg_get_constraintdef(oid))
                 from pg_constraint where connamespace = 'sqitch'::regnamespace
               order by 1";
    p.client().query(sql, &[]).unwrap().iter().map(|r| r.get(0)).collect()
}

/// On a fresh database, Backstop's first `migrate` of a sqitch project
/// makes the registry as `sqitch deploy` would (the same tables, keys and
/// checks, the release row, the rows of the plan's changes), so that
/// sqitch, run afterwards, finds everything deployed.
#[test]
fn sqitchs_registry_is_made_by_the_first_migrate_as_sqitch_makes_it() {
    let Some(sqitch) = tool("sqitch", ".ci/tools/sqitch.sh") else { return };
    let by_sqitch = project_from("sqitch", "sqitch_fresh_by_sqitch");
    by_sqitch.write("migrations/sqitch.plan", SQITCH_PLAN);
    let (code, text) = sqitch_on(&sqitch, &by_sqitch, &["deploy"]);
    assert_eq!(code, Some(0), "{text}");

    let p = project_from("sqitch", "sqitch_fresh_by_backstop");
    p.write("migrations/sqitch.plan", SQITCH_PLAN);
    p.run(&["migrate"]).expect_code(0);
    assert_eq!(registry_shape(&p), registry_shape(&by_sqitch));
    assert_eq!(sqitch_registry(&p), sqitch_registry(&by_sqitch));
    let release: f32 =
        p.client().query_one("select version from sqitch.releases", &[]).unwrap().get(0);
    assert_eq!(release, 1.1);
    let (code, status) = sqitch_on(&sqitch, &p, &["status"]);
    assert_eq!(code, Some(0), "{status}");
    assert!(status.contains("Nothing to deploy (up-to-date)"), "{status}");
    let (code, revert) = sqitch_on(&sqitch, &p, &["revert", "-y", "--to", "users"]);
    assert_eq!(code, Some(0), "{revert}");
    assert!(!p.client().exists("posts"));
}

#[test]
fn sqitchs_registry_follows_backstops_migrate_and_rollback_as_sqitch_writes_it() {
    let Some(sqitch) = tool("sqitch", ".ci/tools/sqitch.sh") else { return };
    let p = project_from("sqitch", "sqitch_in_step");
    p.write("migrations/sqitch.plan", SQITCH_PLAN);
    let sqitch_run = |args: &[&str]| sqitch_on(&sqitch, &p, args);
    let (code, text) = sqitch_run(&["deploy"]);
    assert_eq!(code, Some(0), "{text}");
    let by_sqitch = sqitch_registry(&p);
    assert_eq!(by_sqitch.len(), 3 + 3 + 1, "{by_sqitch:#?}");
    p.run(&["adopt", "--from", "sqitch", "--yes"]).expect_code(0);

    p.run(&["rollback", "--to", "users"]).expect_code(0);
    let (code, status) = sqitch_run(&["status"]);
    assert_eq!(code, Some(0), "{status}");
    assert!(status.contains("# Name:     users\n"), "{status}");
    assert!(status.contains("Undeployed changes:\n  * users_email_idx @v1\n  * posts"), "{status}");
    let mut db = p.client();
    let reverts = db
        .query(
            "select change, tags::text, requires::text, conflicts::text from sqitch.events
              where event = 'revert' order by committed_at",
            &[],
        )
        .unwrap();
    let reverts: Vec<(String, String, String, String)> =
        reverts.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3))).collect();
    let row = |c: &str, t: &str, r: &str, n: &str| (c.into(), t.into(), r.into(), n.into());
    assert_eq!(
        reverts,
        [
            row("posts", "{}", "{users@v1}", "{other:old}"),
            row("users_email_idx", "{@v1}", "{users}", "{}")
        ]
    );

    p.run(&["migrate"]).expect_code(0);
    assert_eq!(sqitch_registry(&p), by_sqitch, "the rows sqitch itself wrote for the plan");
    let (code, status) = sqitch_run(&["status"]);
    assert_eq!(code, Some(0), "{status}");
    assert!(
        status.contains("# Name:     posts\n") && status.contains("Nothing to deploy (up-to-date)"),
        "{status}"
    );
    let (code, deploy) = sqitch_run(&["deploy"]);
    assert_eq!(code, Some(0), "{deploy}");
    assert!(deploy.contains("Nothing to deploy (up-to-date)"), "{deploy}");
    // sqitch reverts what Backstop deployed, by the rows Backstop wrote.
    let (code, revert) = sqitch_run(&["revert", "-y", "--to", "users"]);
    assert_eq!(code, Some(0), "{revert}");
    let reverted: Vec<&str> = revert.lines().filter(|l| l.ends_with(" ok")).collect();
    assert_eq!(reverted.len(), 2, "{revert}");
    assert!(reverted[0].contains("- posts ") && reverted[1].contains("- users_email_idx @v1 "));
    assert!(!db.exists("posts"));
}

/// A plan line without what sqitch hashes into the change's id gives no
/// faithful id: the migration is refused by the line, and neither sqitch's
/// registry nor Backstop's history gains the change.
#[test]
fn a_sqitch_change_without_its_planner_is_refused_rather_than_recorded_under_another_id() {
    let Some(sqitch) = tool("sqitch", ".ci/tools/sqitch.sh") else { return };
    let p = project_from("sqitch", "sqitch_no_planner");
    let target = format!("db:{}", p.url.replacen("postgres://", "pg://", 1));
    run_tool(
        Command::new(&sqitch)
            .args(["deploy", "--to", "users", &target])
            .current_dir(p.path().join("migrations"))
            .env("SQITCH_FULLNAME", "Backstop Test")
            .env("SQITCH_EMAIL", "test@example.com"),
    );
    p.run(&["adopt", "--from", "sqitch", "--yes"]).expect_code(0);
    let plan = p.path().join("migrations/sqitch.plan");
    let text = std::fs::read_to_string(&plan).unwrap();
    std::fs::write(&plan, text.replace("2020-01-03T00:00:00Z Fixture <fixture@example.com> ", ""))
        .unwrap();
    p.run(&["migrate"])
        .expect_code(2)
        .expect_output("sqitch.plan:6: posts lacks its time or planner");
    let mut db = p.client();
    assert!(!db.exists("posts"), "the change went back with its registry row");
    assert_eq!(db.count("sqitch.changes"), db.applied().len() as i64);
}

#[test]
fn goose_golang_migrate_and_flyway_tables_are_read_as_those_tools_write_them() {
    for (name, why) in [
        ("goose", "goose is published as Go source only"),
        ("migrate", "golang-migrate is published as Go source and GitHub releases only"),
        ("flyway", "Flyway is published on Maven and as a download only"),
    ] {
        // No registry this project installs from has these: never required.
        if find(name).is_none() {
            eprintln!("  ({why}; its history table is written here in the shape the tool creates)");
        }
    }
    // goose: the latest row of a version decides; version 0 is goose's own.
    // Each database is migrated by Backstop, then left as the tool alone
    // would have left it: no backstop schema, the tool's table its own.
    let p = project_from("goose", "adopt_goose");
    p.run(&["migrate"]).expect_code(0);
    let mut db = p.client();
    db.batch_execute(
        "drop schema backstop cascade; drop table goose_db_version;
         create table goose_db_version (id serial primary key, version_id bigint not null,
             is_applied boolean not null, tstamp timestamp default now());
         insert into goose_db_version (version_id, is_applied) values (0, true), (1, true), (2, true), (3, true), (3, false), (3, true);",
    )
    .unwrap();
    adopt_and_roll_back(&p, "goose", "goose_db_version", 3, 3);

    // golang-migrate: one row, the current version; dirty is refused.
    let p = project_from("golang-migrate", "adopt_golang");
    p.run(&["migrate"]).expect_code(0);
    let mut db = p.client();
    db.batch_execute(
        "drop schema backstop cascade; drop table schema_migrations;
         create table schema_migrations (version bigint not null primary key, dirty boolean not null);
         insert into schema_migrations values (3, true);",
    )
    .unwrap();
    p.run(&["adopt", "--from", "golang-migrate", "--yes"])
        .expect_code(1)
        .expect_output("3 (failed)")
        .expect_output("dirty");
    assert!(!db.history_schema_exists() || db.applied().is_empty());
    db.execute("update schema_migrations set dirty = false", &[]).unwrap();
    adopt_and_roll_back(&p, "golang-migrate", "schema_migrations", 3, 1);
    let current: i64 = db.query_one("select version from schema_migrations", &[]).unwrap().get(0);
    assert_eq!(current, 3, "golang-migrate's one row names the latest version again");

    // Flyway: versioned rows with their CRC-32 checksums, a repeatable one.
    let p = project_from("flyway", "adopt_flyway");
    p.run(&["migrate"]).expect_code(0);
    let crc = |file: &str| {
        backstop_core::adopt::flyway_crc32(
            &std::fs::read(p.path().join("migrations").join(file)).unwrap(),
        )
    };
    let mut db = p.client();
    db.batch_execute(
        "drop schema backstop cascade; drop table flyway_schema_history;
         create table flyway_schema_history (installed_rank int primary key, version varchar(50),
             description varchar(200) not null, type varchar(20) not null, script varchar(1000) not null,
             checksum int, installed_by varchar(100) not null, installed_on timestamp not null default now(),
             execution_time int not null, success boolean not null);",
    )
    .unwrap();
    for (rank, version, desc, script) in [
        (1, Some("1"), "users", "V1__users.sql"),
        (2, Some("1.1"), "users email idx", "V1.1__users_email_idx.sql"),
        (3, Some("2"), "posts", "V2__posts.sql"),
        (4, None, "recent users", "R__recent_users.sql"),
    ] {
        db.execute(
            "insert into flyway_schema_history values ($1, $2, $3, 'SQL', $4, $5, 'flyway', now(), 7, true)",
            &[&rank, &version, &desc, &script, &crc(script)],
        )
        .unwrap();
    }
    adopt_and_roll_back(&p, "flyway", "flyway_schema_history", 4, 3);
    // Flyway's row of the migration applied again: the next rank, its
    // checksum as Flyway computes it.
    let row = db
        .query_one(
            "select installed_rank, description, type, script, checksum, success
               from flyway_schema_history where version = '2'",
            &[],
        )
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 5);
    assert_eq!(row.get::<_, String>(1), "posts");
    assert_eq!(row.get::<_, String>(3), "V2__posts.sql");
    assert_eq!(row.get::<_, Option<i32>>(4), Some(crc("V2__posts.sql")));
    assert!(row.get::<_, bool>(5));
    assert!(db.events().contains(&event("rollback", "ok", &["2"])));
}

#[test]
fn adopting_from_a_database_without_that_tools_table_is_a_usage_error() {
    let p = project_from("sqlx", "adopt_nothing");
    p.run(&["adopt", "--from", "sqlx"])
        .expect_code(2)
        .expect_output("no _sqlx_migrations in this database");
    p.run(&["adopt", "--from", "rails"]).expect_code(2).expect_output("unknown tool \"rails\"");
    assert!(!p.client().history_schema_exists());
    let _ = &CLUSTER;
}
