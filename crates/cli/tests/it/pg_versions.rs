//! PostgreSQL versions: the programs found for a server of another major
//! than the local one (`[postgres] bin_dirs`, `status --verbose`).

use std::path::PathBuf;

use backstop_core::pg::bins::{Kit, Origin, Search};
use backstop_core::pg::cluster::{Cluster, PgBin};

use crate::common::{missing_tool, tools_dir, Project, CLUSTER};

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
