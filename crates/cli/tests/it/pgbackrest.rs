//! `[backup] engine = "pgbackrest"`: the gate against pgBackRest's real
//! binary, a throwaway cluster archiving its WAL into a local repository:
//! a healthy stanza gives an archived restore point recorded with the
//! migration; a backup too old, broken archiving and a stanza that does not
//! exist refuse before anything runs, each saying why and what to do.

use std::path::{Path, PathBuf};
use std::process::Command;

use backstop_core::pg::cluster::Cluster;

use crate::common::{program, run_program, Project};

/// A cluster archiving into a pgBackRest repository with one full backup.
struct Archived {
    cluster: Cluster,
    /// Holds pgBackRest's config, repository, logs and locks.
    home: tempfile::TempDir,
}

impl Archived {
    fn config(&self) -> PathBuf {
        self.home.path().join("pgbackrest.conf")
    }

    /// pgBackRest as the cluster's owner (`postgres` when the tests run
    /// as root), as its archive_command runs.
    fn pgbackrest(&self, args: &[&str]) -> Command {
        let mut cmd = if nix::unistd::Uid::effective().is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", "pgbackrest"]);
            c
        } else {
            Command::new("pgbackrest")
        };
        cmd.arg(format!("--config={}", self.config().display())).arg("--stanza=main").args(args);
        cmd
    }

    fn start() -> Option<Archived> {
        program("pgbackrest", ".ci/tools/pgbackrest.sh")?;
        let mut cluster = Cluster::start().expect("throwaway cluster");
        let home = tempfile::Builder::new().prefix("backstop-pgbackrest-").tempdir().unwrap();
        for sub in ["repo", "log", "lock"] {
            std::fs::create_dir(home.path().join(sub)).unwrap();
        }
        let data = cluster.dir().join("data");
        let p = |s: &str| home.path().join(s).display().to_string();
        std::fs::write(
            home.path().join("pgbackrest.conf"),
            format!(
                "[global]\nrepo1-path={}\nrepo1-retention-full=2\nlog-path={}\nlock-path={}\n\
                 log-level-console=warn\nlog-level-file=off\nstart-fast=y\narchive-timeout=20\n\
                 compress-type=none\n\n[main]\npg1-path={}\npg1-port={}\npg1-socket-path={}\npg1-user=postgres\n",
                p("repo"),
                p("log"),
                p("lock"),
                data.display(),
                cluster.port(),
                cluster.dir().display()
            ),
        )
        .unwrap();
        if nix::unistd::Uid::effective().is_root() {
            run_program(Command::new("chown").args(["-R", "postgres"]).arg(home.path()));
        }
        cluster.stop_immediate().unwrap();
        let conf = data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).unwrap();
        text.push_str(&format!(
            "archive_mode = on\nwal_level = replica\n\
             archive_command = 'pgbackrest --config={} --stanza=main archive-push %p'\n",
            home.path().join("pgbackrest.conf").display()
        ));
        std::fs::write(&conf, text).unwrap();
        cluster.restart().unwrap();
        let archived = Archived { cluster, home };
        run_program(&mut archived.pgbackrest(&["stanza-create"]));
        run_program(&mut archived.pgbackrest(&["--type=full", "backup"]));
        Some(archived)
    }
}

fn engine_config(config: &Path, stanza: &str, max_age: &str) -> String {
    format!(
        "[migrations]\ndir = \"migrations\"\n\n[backup]\nengine = \"pgbackrest\"\nstanza = \"{stanza}\"\n\
         config = \"{}\"\nmax_age = \"{max_age}\"\narchive_wait = \"20s\"\n",
        config.display()
    )
}

fn applied(p: &Project, cluster: &Cluster) -> Vec<(String, Option<String>)> {
    let mut c = cluster.connect(&p.db).unwrap();
    let exists: bool =
        c.query_one("select to_regclass('backstop.applied') is not null", &[]).unwrap().get(0);
    if !exists {
        return Vec::new();
    }
    c.query("select version, backup_id from backstop.applied order by version", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[test]
fn the_gate_archives_a_restore_point_and_refuses_when_the_net_does_not_hold() {
    let Some(archived) = Archived::start() else { return };
    let cluster = &archived.cluster;
    let p = Project::on(cluster, "pgbackrest");
    p.config(&engine_config(&archived.config(), "main", "1h"));
    p.migration("001_items", "CREATE TABLE items (id int PRIMARY KEY);", Some("DROP TABLE items;"));

    // A healthy stanza: the restore point is archived and recorded.
    p.run(&["migrate"]).expect_code(0).expect_output("restore point backstop-");
    let rows = applied(&p, cluster);
    assert_eq!(rows.len(), 1, "{rows:?}");
    let id = rows[0].1.clone().expect("the migration names what guards it");
    let list = p.run(&["backup", "list", "--format", "json"]).expect_code(0).json();
    let entry = &list.as_array().unwrap()[0];
    assert_eq!(entry["id"], id.as_str());
    assert_eq!(entry["engine"], "pgbackrest");
    assert_eq!(entry["kind"], "restore_point");
    assert_eq!(entry["guards"], serde_json::json!(["001"]));
    let point = &entry["restore_point"];
    assert!(point["name"].as_str().unwrap().starts_with("backstop-"), "{point}");
    assert_eq!(point["stanza"], "main");
    // The segment holding the point is in the repository.
    let info: serde_json::Value =
        serde_json::from_str(&run_program(&mut archived.pgbackrest(&["--output=json", "info"])))
            .unwrap();
    let max = info[0]["archive"][0]["max"].as_str().unwrap().to_string();
    let wal = point["wal_file"].as_str().unwrap();
    assert!(max.as_str() >= wal, "archived up to {max}, the point is in {wal}");
    assert_eq!(point["backup_label"], info[0]["backup"][0]["label"]);
    // Text output says what it is.
    p.run(&["backup", "list"]).expect_code(0).expect_output("pgBackRest restore point backstop-");
    // `restore` says plainly what restores it rather than pretending.
    p.run(&["restore", &id, "--yes"])
        .expect_code(2)
        .expect_output("--type=name --target=backstop-");

    // The latest backup is older than max_age: refused, nothing applied.
    p.migration("002_more", "CREATE TABLE more (id int);", Some("DROP TABLE more;"));
    std::thread::sleep(std::time::Duration::from_millis(1100));
    p.config(&engine_config(&archived.config(), "main", "1s"));
    p.run(&["migrate"])
        .expect_code(3)
        .expect_output("longer ago than [backup] max_age")
        .expect_output("pgbackrest --stanza=main backup");
    assert_eq!(applied(&p, cluster).len(), 1);

    // A stanza that does not exist.
    p.config(&engine_config(&archived.config(), "nope", "1h"));
    p.run(&["migrate"])
        .expect_code(3)
        .expect_output("stanza nope is not usable")
        .expect_output("stanza-create");
    assert_eq!(applied(&p, cluster).len(), 1);

    // Archiving broken: the gate refuses before anything runs.
    let mut admin = cluster.connect("postgres").unwrap();
    admin.batch_execute("ALTER SYSTEM SET archive_command = 'false'").unwrap();
    admin.batch_execute("SELECT pg_reload_conf()").unwrap();
    p.config(&engine_config(&archived.config(), "main", "1h"));
    p.run(&["migrate"]).expect_code(3).expect_output("WAL archiving does not work");
    assert_eq!(applied(&p, cluster).len(), 1);
    admin.batch_execute("ALTER SYSTEM RESET archive_command").unwrap();
    admin.execute("SELECT pg_reload_conf()", &[]).unwrap();

    // No stanza in the config: a configuration error, with its line.
    p.config("[migrations]\ndir = \"migrations\"\n\n[backup]\nengine = \"pgbackrest\"\n");
    p.run(&["migrate"]).expect_code(2).expect_output("backstop.toml:5").expect_output("stanza");
    assert_eq!(applied(&p, cluster).len(), 1);
}
