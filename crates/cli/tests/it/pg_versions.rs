//! PostgreSQL versions: the programs found for a server of another major
//! than the local one (`[postgres] bin_dirs`, `status --verbose`), and SQL
//! judged against the server's version (`check` live and offline, a down a
//! rollback cannot run), and a comparison of databases on two majors.

use std::path::PathBuf;

use backstop_core::pg::bins::{Kit, Origin, Search};
use backstop_core::pg::cluster::{Cluster, PgBin};

use crate::common::{missing_tool, tools_dir, Project, CLUSTER, DEFAULT_CONFIG};

/// PostgreSQL `major`'s programs as `.ci/tools/postgresql.sh` installs
/// them; `None` (skipped, or failed where every tool is required) when
/// they are not there.
fn installed(major: u32) -> Option<PathBuf> {
    let dir = tools_dir().join(format!("pg/{major}/bin"));
    if dir.join("pg_ctl").is_file() {
        return Some(dir);
    }
    missing_tool(&format!("PostgreSQL {major}"), ".ci/tools/postgresql.sh");
    None
}

/// A major other than the shared cluster's, and its programs.
fn other_major() -> Option<(u32, PathBuf)> {
    let other = if CLUSTER.bin().major == 17 { 18 } else { 17 };
    installed(other).map(|dir| (other, dir))
}

#[test]
fn a_server_of_another_major_gets_its_own_tools_from_bin_dirs() {
    let Some((major, dir)) = other_major() else { return };
    let bin = Search::of(vec![(dir.clone(), Origin::Env)]).first(Kit::Server).unwrap();
    let cluster = Cluster::start_with(PgBin::from(bin)).unwrap();
    let p = Project::on(&cluster, "pgv_bin_dirs");
    p.migration("1_t", "CREATE TABLE t (id int PRIMARY KEY);", Some("DROP TABLE t;"));
    // What a user has: the machine's own PostgreSQL, found by itself.
    let local = || {
        let mut cmd = p.cmd();
        cmd.env_remove("BACKSTOP_PG_BIN");
        cmd
    };
    let run = crate::common::Run::from_output(local().args(["backup", "create"]).output().unwrap());
    let local_major = PgBin::find().map(|b| b.major).unwrap_or(0);
    if local_major < major {
        run.expect_code(3).expect_output(&format!("cannot back up PostgreSQL {major}."));
    }

    // Named in backstop.toml: its pg_dump backs the server up and its
    // initdb starts the throwaway copies.
    p.config(&format!(
        "{}\n[postgres]\nbin_dirs = [\"{}\"]\n",
        crate::common::DEFAULT_CONFIG,
        dir.display()
    ));
    let verbose =
        crate::common::Run::from_output(local().args(["status", "--verbose"]).output().unwrap());
    verbose.expect_code(0);
    let real = std::fs::canonicalize(&dir).unwrap();
    for kit in ["pg_dump, pg_restore", "initdb"] {
        let line = verbose.stdout.lines().find(|l| l.contains(kit)).unwrap_or_default();
        assert!(
            line.contains(&real.display().to_string()) && line.contains("[postgres] bin_dirs"),
            "{kit}: {}",
            verbose.stdout
        );
    }
    let created = crate::common::Run::from_output(
        local().args(["backup", "create", "--format", "json"]).output().unwrap(),
    );
    created.expect_code(0);
    let version = created.json()["pg_dump_version"].as_str().unwrap().to_string();
    assert!(version.starts_with(&format!("{major}.")), "{version}");
    let rehearsed = crate::common::Run::from_output(
        local().args(["rehearse", "--schema-only", "--format", "json"]).output().unwrap(),
    );
    rehearsed.expect_code(0);
}

#[test]
fn a_copy_of_a_server_never_runs_on_an_older_major() {
    let Some((major, dir)) = other_major() else { return };
    let bin = Search::of(vec![(dir, Origin::Env)]).first(Kit::Server).unwrap();
    let cluster = Cluster::start_with(PgBin::from(bin)).unwrap();
    let p = Project::on(&cluster, "pgv_no_older");
    p.migration("1_t", "CREATE TABLE t (id int PRIMARY KEY);", Some("DROP TABLE t;"));
    // Only the shared cluster's major to hand: a dumped copy must refuse.
    let run = crate::common::Run::from_output(
        p.cmd()
            .env("BACKSTOP_PG_BIN", &CLUSTER.bin().dir)
            .args(["rehearse", "--schema-only"])
            .output()
            .unwrap(),
    );
    if CLUSTER.bin().major != major {
        run.expect_code(3).expect_output(&format!(
            "a throwaway copy of a PostgreSQL {major} database needs PostgreSQL {major}'s server binaries"
        ));
    }
}

#[test]
fn check_judges_syntax_against_the_servers_version_live_and_offline() {
    let p = Project::new("pgv_check");
    p.migration(
        "1_counts",
        "CREATE TABLE audit (n bigint);\nINSERT INTO audit SELECT count(*) FROM (SELECT 1);",
        None,
    );
    let server = CLUSTER.bin().major;
    let live = p.run(&["check", "--format", "json"]);
    let json = live.json();
    let found = json["findings"].as_array().unwrap().iter().any(|f| f["code"] == "BS305");
    if server < 16 {
        live.expect_code(1);
        assert!(found, "{json:#}");
        live.expect_output("needs PostgreSQL 16");
    } else {
        assert!(!found, "{json:#}");
    }
    // Offline, the version comes from backstop.toml.
    p.config(&format!("{}\n[check]\nserver_version = \"15\"\n", crate::common::DEFAULT_CONFIG));
    let offline = p.run(&["check", "--offline", "migrations/1_counts/up.sql"]);
    offline.expect_code(1).expect_output("BS305").expect_output("needs PostgreSQL 16");
    p.config(&format!(
        "{}\n[check]\nserver_version = \"sixteen\"\n",
        crate::common::DEFAULT_CONFIG
    ));
    p.run(&["check", "--offline"]).expect_code(2).expect_output("server_version must be");
}

#[test]
fn a_down_that_needs_a_newer_server_blocks_the_rollback_through_it() {
    let server = CLUSTER.bin().major;
    if server >= 18 {
        return;
    }
    let p = Project::new("pgv_down");
    p.migration(
        "1_users",
        "CREATE TABLE users (id int, email text NOT NULL);",
        Some("DROP TABLE users;"),
    );
    p.migration(
        "2_optional",
        "ALTER TABLE users ALTER COLUMN email DROP NOT NULL;",
        Some("ALTER TABLE users ADD CONSTRAINT users_email_nn NOT NULL email;"),
    );
    // Before it is applied, check says so: the migration may go, its undo not.
    p.run(&["check"])
        .expect_code(0)
        .expect_output("the down of 2_optional cannot run")
        .expect_output("needs PostgreSQL 18");
    // The deploy proves the down and refuses (where the project refuses
    // defective downs on a bootstrap too): it cannot run here, and a
    // proved one exists. A project that deploys it anyway is told again
    // at the rollback.
    p.config(&format!("{DEFAULT_CONFIG}defective_downs = \"refuse\"\n"));
    p.run(&["migrate", "--no-backup", "fixture"])
        .expect_code(1)
        .expect_output("the down of 2_optional (")
        .expect_output("syntax error");
    p.config(&format!("{DEFAULT_CONFIG}defective_downs = \"deploy\"\n"));
    p.run(&["migrate", "--no-backup", "fixture"]).expect_code(0);
    let status = p.run(&["status"]);
    status
        .expect_output("2 down")
        .expect_output("needs PostgreSQL 18; the server is PostgreSQL")
        .expect_output("blocks a rollback through it");
    let rollback = p.run(&["rollback"]);
    assert_ne!(rollback.code, Some(0), "{}", rollback.all());
    rollback.expect_output("needs PostgreSQL 18");
    use crate::common::DbExt;
    assert_eq!(p.client().applied(), ["1", "2"], "the rollback ran");
}

#[test]
fn the_same_schema_on_two_majors_compares_equal_whatever_17_added_to_privileges() {
    // A cutover from 15 to 17 (or back): 17 gives a table's owner, and
    // GRANT ALL, the MAINTAIN privilege 15 has no letter for.
    let Some((major, dir)) = other_major() else { return };
    let bin = Search::of(vec![(dir, Origin::Env)]).first(Kit::Server).unwrap();
    let other = Cluster::start_with(PgBin::from(bin)).unwrap();
    let sql = "CREATE ROLE pgv_app NOLOGIN;
        CREATE TABLE t (id int PRIMARY KEY, v text);
        GRANT ALL ON t TO pgv_app;
        INSERT INTO t SELECT i, 'v' || i FROM generate_series(1, 20) i;";
    let p = Project::new("pgv_compare");
    p.client().batch_execute(&sql.replace("CREATE ROLE pgv_app NOLOGIN;", "DO $$ BEGIN CREATE ROLE pgv_app NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;")).unwrap();
    let target = crate::common::unique_name("pgv_compare");
    other.create_database(&target, None).unwrap();
    other.connect(&target).unwrap().batch_execute(sql).unwrap();
    let run = p.run(&[
        "compare",
        "--source",
        &p.url,
        "--target",
        &other.url(&target),
        "--format",
        "json",
    ]);
    let json = run.json();
    assert_eq!(json["verdict"], "match", "{json:#}");
    run.expect_code(0);
    if (major >= 17) != (CLUSTER.bin().major >= 17) {
        // Said, not hidden: the comparison left that privilege out.
        assert!(json.to_string().contains("the MAINTAIN privilege"), "{json:#}");
    }
}
