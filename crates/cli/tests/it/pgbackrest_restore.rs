//! `restore` and `rollback --method B` of a pgBackRest restore point,
//! against pgBackRest's real binary and a throwaway cluster archiving into
//! a local repository: the whole cluster comes back to the point, the
//! replaced data directory is kept with everything written since, a run
//! killed in the middle of the swap is finished by `--resume`, and what a
//! physical restore cannot do safely is refused before anything changes.

use std::path::{Path, PathBuf};
use std::process::Command;

use backstop_core::pg::cluster::Cluster;

use super::pgbackrest::archived::Archived;
use crate::common::{kill_restore_at, program, DbExt, Project};

const ACCOUNTS: &str = "CREATE TABLE accounts (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO accounts SELECT i, 'name ' || i FROM generate_series(1, 100) i;";

/// A cluster archiving into pgBackRest, with `accounts` (100 rows) in the
/// project's database and a `bystander` database beside it; the project
/// guards migrations with restore points and protects `accounts`.
fn setup(label: &str) -> Option<(Archived, Project)> {
    program("pgbackrest", ".ci/tools/pgbackrest.sh")?;
    let archived = Archived::start(|c| {
        c.create_database("bystander", None)?;
        c.connect("bystander")?
            .batch_execute("CREATE TABLE t (id int); INSERT INTO t VALUES (1)")?;
        Ok(())
    })
    .expect("a cluster archiving into pgBackRest");
    let p = Project::on(&archived.cluster, label);
    p.config(&format!(
        "[migrations]\ndir = \"migrations\"\nprotected_tables = [\"accounts\"]\n\n[backup]\n\
         engine = \"pgbackrest\"\nstanza = \"main\"\nconfig = \"{}\"\nmax_age = \"1h\"\n\
         archive_wait = \"30s\"\n",
        archived.config().display()
    ));
    archived.cluster.connect(&p.db).unwrap().batch_execute(ACCOUNTS).unwrap();
    Some((archived, p))
}

/// The id of the newest entry that guards migration `version`.
fn guard_of(p: &Project, version: &str) -> String {
    let list = p.run(&["backup", "list", "--format", "json"]).expect_code(0).json();
    list.as_array()
        .unwrap()
        .iter()
        .filter(|e| e["guards"].as_array().unwrap().iter().any(|g| g == version))
        .map(|e| e["id"].as_str().unwrap().to_string())
        .max()
        .unwrap_or_else(|| panic!("no entry guards {version}: {list}"))
}

fn count(cluster: &Cluster, db: &str, table: &str) -> i64 {
    cluster.connect(db).unwrap().count(table)
}

/// The data directories a restore left beside the server's.
fn kept_dirs(cluster: &Cluster) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(cluster.dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("data.pre-restore-"))
        .collect();
    dirs.sort();
    dirs
}

/// A server on the kept data directory `dir` (private socket, no
/// archiving), to read what it holds; stopped when dropped.
struct Kept {
    dir: PathBuf,
    socket: tempfile::TempDir,
    pg_ctl: PathBuf,
    port: u16,
}

impl Kept {
    fn start(cluster: &Cluster, dir: &Path) -> Kept {
        let socket = tempfile::Builder::new().prefix("backstop-kept-").tempdir().unwrap();
        Command::new("chown").arg("postgres").arg(socket.path()).status().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let pg_ctl = cluster.bin().tool("pg_ctl");
        let kept = Kept { dir: dir.to_path_buf(), socket, pg_ctl, port };
        let options = format!(
            "-p {port} -c listen_addresses='' -c unix_socket_directories='{}' -c archive_mode=off",
            kept.socket.path().display()
        );
        let log = kept.socket.path().join("log");
        let out = kept.as_owner(&["start", "-w", "-l", &log.display().to_string(), "-o", &options]);
        assert!(
            out.status.success(),
            "{out:?} {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        kept
    }

    fn as_owner(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = if nix::unistd::Uid::effective().is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&self.pg_ctl);
            c
        } else {
            Command::new(&self.pg_ctl)
        };
        cmd.args(args).arg("-D").arg(&self.dir).output().unwrap()
    }

    fn connect(&self, db: &str) -> postgres::Client {
        postgres::Config::new()
            .host_path(self.socket.path())
            .port(self.port)
            .user("postgres")
            .dbname(db)
            .connect(postgres::NoTls)
            .unwrap()
    }
}

impl Drop for Kept {
    fn drop(&mut self) {
        let _ = self.as_owner(&["stop", "-m", "immediate"]);
    }
}

#[test]
fn a_restore_point_brings_the_cluster_back_and_keeps_what_was_written_since() {
    let Some((archived, p)) = setup("pitr") else { return };
    let cluster = &archived.cluster;
    p.migration("001_items", "CREATE TABLE items (id int);", Some("DROP TABLE items;"));
    p.run(&["migrate"])
        .expect_code(0)
        .expect_output("restore point backstop-")
        .expect_output("protected table(s) waited");
    let id = guard_of(&p, "001");
    // The state at the point: the protected table, exactly.
    let list = p.run(&["backup", "list", "--format", "json"]).expect_code(0).json();
    let state = &list[0]["restore_point"]["state"];
    assert_eq!(state["protected"][0]["table"], "public.accounts", "{state}");
    assert_eq!(state["protected"][0]["rows"], 100, "{state}");
    assert!(state["databases"].as_array().unwrap().iter().any(|d| d["name"] == "bystander"));
    assert_eq!(count(cluster, "bystander", "t"), 1);
    // Written after the point.
    let mut app = cluster.connect(&p.db).unwrap();
    app.batch_execute("INSERT INTO accounts VALUES (101, 'late'); INSERT INTO items VALUES (7)")
        .unwrap();
    drop(app);

    // Bad input changes nothing.
    p.run(&["restore", &id, "--resume", "--yes"]).expect_code(2).expect_output("no unfinished");

    let out = p.run(&["restore", &id, "--yes"]);
    out.expect_code(0)
        .expect_output("whole cluster")
        .expect_output("kept whole in")
        .expect_output("new pgBackRest backup");
    let mut db = cluster.connect(&p.db).unwrap();
    assert_eq!(db.count("accounts"), 100);
    assert!(!db.exists("items"), "the schema is back at the point");
    assert!(db.applied().is_empty());
    assert_eq!(count(cluster, "bystander", "t"), 1, "the other database is as it was");
    let events = db.events();
    assert!(
        events.iter().any(|e| e.0 == "migrate"),
        "the log since the point is carried over: {events:?}"
    );
    assert_eq!(events.last().map(|e| (e.0.as_str(), e.1.as_str())), Some(("restore", "ok")));
    drop(db);
    // The replaced cluster is kept whole, with what was written since.
    let kept = kept_dirs(cluster);
    assert_eq!(kept.len(), 1, "{kept:?}");
    {
        let old = Kept::start(cluster, &kept[0]);
        let mut c = old.connect(&p.db);
        assert_eq!(c.count("accounts"), 101);
        assert_eq!(c.count("items"), 1);
    }

    // A second point, on the timeline the restore began: another database
    // written since is refused without --whole-cluster, and nothing changes.
    p.run(&["migrate"]).expect_code(0).expect_output("restore point backstop-");
    let second = guard_of(&p, "001");
    assert_ne!(second, id);
    cluster.connect("bystander").unwrap().batch_execute("INSERT INTO t VALUES (2)").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    p.run(&["restore", &second, "--yes"])
        .expect_code(2)
        .expect_output("bystander took")
        .expect_output("--whole-cluster");
    assert!(cluster.connect(&p.db).unwrap().exists("items"));
    assert_eq!(count(cluster, "bystander", "t"), 2);
    assert_eq!(kept_dirs(cluster).len(), 1);
    p.run(&["restore", &second, "--yes", "--whole-cluster"])
        .expect_code(0)
        .expect_output("writes since the point to other databases are undone");
    assert!(!cluster.connect(&p.db).unwrap().exists("items"));
    assert_eq!(count(cluster, "bystander", "t"), 1);
    assert_eq!(kept_dirs(cluster).len(), 2);

    // The replaced data directory is an entry of its own: restoring it
    // swaps it back as it was (items, and bystander's second row).
    let list = p.run(&["backup", "list", "--format", "json"]).expect_code(0).json();
    let kept: Vec<&serde_json::Value> =
        list.as_array().unwrap().iter().filter(|e| e["kind"] == "data_directory").collect();
    assert_eq!(kept.len(), 2, "{list}");
    let back = kept.iter().map(|e| e["id"].as_str().unwrap()).max().unwrap().to_string();
    p.run(&["backup", "list"]).expect_code(0).expect_output("data directory");
    p.run(&["restore", &back, "--yes"]).expect_code(0).expect_output("kept whole in");
    assert!(cluster.connect(&p.db).unwrap().exists("items"));
    assert_eq!(count(cluster, "bystander", "t"), 2);
    let list = p.run(&["backup", "list", "--format", "json"]).expect_code(0).json();
    assert!(!list.as_array().unwrap().iter().any(|e| e["id"] == back.as_str()), "{list}");
    assert_eq!(kept_dirs(cluster).len(), 2);

    // A point made after that, on a timeline that is no longer the newest
    // in the archive, is recovered on its own timeline.
    p.migration("002_more", "CREATE TABLE more (id int);", Some("DROP TABLE more;"));
    p.run(&["migrate"]).expect_code(0).expect_output("restore point backstop-");
    let third = guard_of(&p, "002");
    p.run(&["restore", &third, "--yes"]).expect_code(0);
    let mut db = cluster.connect(&p.db).unwrap();
    assert!(db.exists("items") && !db.exists("more"));
    assert_eq!(db.applied(), ["001"]);
    drop(db);

    // Retention removes kept directories with their entries, never the
    // server's own.
    assert_eq!(kept_dirs(cluster).len(), 3);
    let config = std::fs::read_to_string(p.path().join("backstop.toml")).unwrap();
    p.config(
        &config.replace("max_age = \"1h\"", "max_age = \"1h\"\nretention = \"1ms\"\nkeep_min = 0"),
    );
    p.run(&["backup", "prune", "--yes"]).expect_code(0).expect_output("kept data directory");
    assert!(kept_dirs(cluster).is_empty());
    assert_eq!(cluster.connect(&p.db).unwrap().applied(), ["001"]);
}

#[test]
fn method_b_restores_the_point_and_a_swap_killed_half_way_is_finished_by_resume() {
    let Some((archived, p)) = setup("pitr_b") else { return };
    let cluster = &archived.cluster;
    p.migration("001_items", "CREATE TABLE items (id int);", Some("DROP TABLE items;"));
    p.run(&["migrate"]).expect_code(0);
    // A bad migration: it rewrites every name.
    p.migration("002_bad", "UPDATE accounts SET name = 'oops';", None);
    p.run(&["migrate"]).expect_code(0);
    let names = |cluster: &Cluster| -> i64 {
        cluster
            .connect(&p.db)
            .unwrap()
            .query_one("select count(*) from accounts where name = 'oops'", &[])
            .unwrap()
            .get(0)
    };
    assert_eq!(names(cluster), 100);
    p.run(&["rollback", "--method", "B", "--yes"]).expect_code(0).expect_output("method B");
    assert_eq!(names(cluster), 0);
    let mut db = cluster.connect(&p.db).unwrap();
    assert_eq!(db.applied(), ["001"]);
    let events = db.events();
    assert!(
        events.iter().any(|e| e.0 == "method" && e.1 == "ok"),
        "method B's outcome is audited: {events:?}"
    );
    drop(db);

    // Killed with writes frozen and the copy running: --abandon removes
    // the copy and lifts the freeze, nothing else changed.
    p.run(&["migrate"]).expect_code(0);
    let id = guard_of(&p, "002");
    kill_restore_at(&p, &id, "frozen");
    let frozen = cluster.connect(&p.db).unwrap().batch_execute("INSERT INTO items VALUES (1)");
    assert!(format!("{frozen:?}").contains("read-only"), "{frozen:?}");
    let copies = || {
        std::fs::read_dir(cluster.dir())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().contains(".restoring-"))
            .count()
    };
    assert_eq!(copies(), 1);
    p.run(&["restore", "--abandon"]).expect_code(0).expect_output("abandoned");
    assert_eq!(copies(), 0);
    cluster.connect(&p.db).unwrap().batch_execute("INSERT INTO items VALUES (1)").unwrap();
    assert_eq!(names(cluster), 100);

    // Killed again with writes frozen, and the copy changed meanwhile: the
    // resumed run checks it again, finds the difference and abandons,
    // leaving the database as it was and writable.
    kill_restore_at(&p, &id, "frozen");
    let journal = p.path().join(".backstop/backups/restore.json");
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&journal).unwrap()).unwrap();
    let run_dir =
        cluster.dir().join(format!("data.backstop-{}", j["restore_id"].as_str().unwrap()));
    let mut copy = postgres::Config::new()
        .host_path(&run_dir)
        .port(j["physical"]["port"].as_u64().unwrap() as u16)
        .user("postgres")
        .dbname(&p.db)
        .connect(postgres::NoTls)
        .unwrap();
    copy.batch_execute("UPDATE accounts SET name = 'tampered' WHERE id = 1").unwrap();
    drop(copy);
    p.run(&["restore", &id, "--resume", "--yes"])
        .expect_code(1)
        .expect_output("public.accounts's checksum");
    assert_eq!(copies(), 0);
    assert!(!journal.exists());
    cluster.connect(&p.db).unwrap().batch_execute("INSERT INTO items VALUES (2)").unwrap();
    assert_eq!(names(cluster), 100);

    // Again, killed after the directories were swapped and before the
    // server started: the server is down until --resume.
    kill_restore_at(&p, &id, "moved");
    assert!(cluster.connect(&p.db).is_err(), "the server is down after the kill");
    let text = std::fs::read_to_string(&journal).unwrap();
    assert!(text.contains("\"swapping\""), "{text}");
    // Abandoning is refused past the point of no return.
    p.run(&["restore", "--abandon"]).expect_code(2).expect_output("--resume");
    p.run(&["restore", &id, "--resume", "--yes"]).expect_code(0).expect_output("resumed");
    assert_eq!(names(cluster), 0);
    assert_eq!(cluster.connect(&p.db).unwrap().applied(), ["001"]);
    assert!(!journal.exists());
    assert_eq!(kept_dirs(cluster).len(), 2);
    p.run(&["status"]).expect_code(0);
}

/// How many `-D` the server's command line holds: as `postmaster.opts`
/// recorded it, and as the running server's own (what `ps` shows).
fn data_dir_flags(cluster: &Cluster) -> (usize, usize) {
    let data = cluster.dir().join("data");
    let opts = std::fs::read_to_string(data.join("postmaster.opts")).unwrap();
    let recorded = opts.split_whitespace().filter(|a| *a == "\"-D\"").count();
    let pid = std::fs::read_to_string(data.join("postmaster.pid")).unwrap();
    let pid = pid.lines().next().unwrap().trim().to_string();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let running = cmdline.split(|b| *b == 0).filter(|a| *a == b"-D").count();
    (recorded, running)
}

/// Regression: a resumed physical restore started the server while the
/// start the killed run left was still going ("another server might be
/// running", exit 3), and each swap added a `-D` to the server's command
/// line.
#[test]
fn a_physical_restore_killed_while_the_server_starts_is_resumed_on_that_start() {
    let Some((archived, p)) = setup("pitr_starting") else { return };
    let cluster = &archived.cluster;
    assert_eq!(data_dir_flags(cluster), (1, 1));
    p.migration("001_items", "CREATE TABLE items (id int);", Some("DROP TABLE items;"));
    p.run(&["migrate"]).expect_code(0);
    let id = guard_of(&p, "001");

    // Killed once the server's start was launched: that start goes on.
    kill_restore_at(&p, &id, "starting");
    let resumed = p.run(&["restore", &id, "--resume", "--yes"]);
    resumed.expect_code(0).expect_output("resumed");
    assert!(!resumed.all().contains("another server"), "{resumed:?}");
    assert!(!cluster.connect(&p.db).unwrap().exists("items"), "the schema is back at the point");
    assert_eq!(data_dir_flags(cluster), (1, 1), "the server runs as it ran before");

    // The replaced directory swapped back: still one -D.
    let list = p.run(&["backup", "list", "--format", "json"]).expect_code(0).json();
    let back = list
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "data_directory")
        .map(|e| e["id"].as_str().unwrap().to_string())
        .expect("the replaced data directory's entry");
    p.run(&["restore", &back, "--yes"]).expect_code(0);
    assert!(cluster.connect(&p.db).unwrap().exists("items"));
    assert_eq!(data_dir_flags(cluster), (1, 1));
    p.run(&["status"]).expect_code(0);
}

#[test]
fn what_a_physical_restore_cannot_do_safely_is_refused_before_anything_changes() {
    let Some((archived, p)) = setup("pitr_refused") else { return };
    let cluster = &archived.cluster;
    p.migration("001_items", "CREATE TABLE items (id int);", Some("DROP TABLE items;"));
    p.run(&["migrate"]).expect_code(0);
    let id = guard_of(&p, "001");

    // A user tablespace: pgBackRest would restore it over the live one.
    let space = tempfile::Builder::new().prefix("backstop-space-").tempdir().unwrap();
    Command::new("chown").arg("postgres").arg(space.path()).status().unwrap();
    let mut admin = cluster.connect("postgres").unwrap();
    admin
        .batch_execute(&format!("CREATE TABLESPACE extra LOCATION '{}'", space.path().display()))
        .unwrap();
    p.run(&["restore", &id, "--yes"])
        .expect_code(3)
        .expect_output("tablespace(s) extra")
        .expect_output("over the live ones");
    admin.batch_execute("DROP TABLESPACE extra").unwrap();

    // Not the data directory's owner (nor root): refused, saying whose it is.
    if nix::unistd::Uid::effective().is_root() {
        let bin = tempfile::Builder::new().prefix("backstop-bin-").tempdir().unwrap();
        let copy = bin.path().join("backstop");
        std::fs::copy(crate::common::backstop_bin(), &copy).unwrap();
        for dir in [bin.path(), p.path()] {
            Command::new("chmod").args(["-R", "a+rwX"]).arg(dir).status().unwrap();
        }
        let out = Command::new("runuser")
            .args(["-u", "nobody", "--"])
            .arg(&copy)
            .args(["restore", &id, "--yes"])
            .current_dir(p.path())
            .env("DATABASE_URL", &p.url)
            .env_remove("BACKSTOP_CONFIG")
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(3), "{said}");
        assert!(said.contains("data directory") && said.contains("owner"), "{said}");
    }
    // Nothing changed.
    assert!(cluster.connect(&p.db).unwrap().exists("items"));
    assert!(kept_dirs(cluster).is_empty());
    assert!(!p.path().join(".backstop/backups/restore.json").exists());
}

/// `pg_ctl ARGS -D <data>` of `cluster`, as the cluster's owner.
fn pg_ctl(cluster: &Cluster, args: &[&str]) -> std::process::Output {
    let tool = cluster.bin().tool("pg_ctl");
    let mut cmd = if nix::unistd::Uid::effective().is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(tool);
        c
    } else {
        Command::new(tool)
    };
    cmd.args(args).arg("-D").arg(cluster.dir().join("data")).output().unwrap()
}

#[test]
fn a_server_whose_configuration_lives_outside_its_data_directory_is_restored_too() {
    let Some((archived, p)) = setup("pitr_etc") else { return };
    let cluster = &archived.cluster;
    // As Debian keeps it: postgresql.conf in a directory of its own, named
    // on the server's command line; the backup then holds none.
    let etc = cluster.dir().join("etc");
    std::fs::create_dir(&etc).unwrap();
    Command::new("chown").arg("postgres").arg(&etc).status().unwrap();
    let out = pg_ctl(cluster, &["stop", "-m", "fast", "-w"]);
    assert!(out.status.success(), "{out:?}");
    let conf = etc.join("postgresql.conf");
    std::fs::rename(cluster.dir().join("data").join("postgresql.conf"), &conf).unwrap();
    let log = cluster.dir().join("server.log").display().to_string();
    let options = format!("-p {} -c config_file='{}'", cluster.port(), conf.display());
    let out = pg_ctl(cluster, &["start", "-w", "-l", &log, "-o", &options]);
    assert!(out.status.success(), "{out:?}");
    archived.run(&["--type=full", "backup"]).unwrap();

    p.migration("001_items", "CREATE TABLE items (id int);", Some("DROP TABLE items;"));
    p.run(&["migrate"]).expect_code(0).expect_output("restore point backstop-");
    let id = guard_of(&p, "001");
    cluster
        .connect(&p.db)
        .unwrap()
        .batch_execute("INSERT INTO accounts VALUES (101, 'late')")
        .unwrap();

    p.run(&["restore", &id, "--yes"]).expect_code(0).expect_output("whole cluster");
    let mut db = cluster.connect(&p.db).unwrap();
    assert_eq!(db.count("accounts"), 100);
    assert!(!db.exists("items"), "the schema is back at the point");
    let file: String = db.query_one("SHOW config_file", &[]).unwrap().get(0);
    assert_eq!(file, conf.display().to_string(), "the server reads its own configuration again");
    assert!(!cluster.dir().join("data").join("postgresql.conf").exists());
}

#[test]
fn watch_auto_b_restores_the_point_over_changed_databases_only_with_whole_cluster() {
    let Some((archived, p)) = setup("pitr_watch") else { return };
    let cluster = &archived.cluster;
    p.migration("001_items", "CREATE TABLE items (id int);", Some("DROP TABLE items;"));
    p.run(&["migrate"]).expect_code(0).expect_output("restore point backstop-");
    let config = std::fs::read_to_string(p.path().join("backstop.toml")).unwrap();
    p.config(&format!(
        "{config}\n[[triggers]]\nname = \"bad items\"\nsource = \"sql\"\n\
         sql = \"select count(*)::float8 from items\"\nabove = 0\ninterval = \"1s\"\nmethod = \"B\"\n"
    ));
    cluster.connect(&p.db).unwrap().batch_execute("INSERT INTO items VALUES (1)").unwrap();
    cluster.connect("bystander").unwrap().batch_execute("INSERT INTO t VALUES (2)").unwrap();
    // The statistics reach pg_stat_database up to a second late.
    std::thread::sleep(std::time::Duration::from_millis(1500));

    // Another database wrote since the point: the watch's method B
    // refuses, and nothing changes.
    let refused = p.run(&["watch", "--once", "--auto", "B"]);
    assert_ne!(refused.code, Some(0), "{}", refused.all());
    refused.expect_output("bystander").expect_output("--whole-cluster");
    assert!(cluster.connect(&p.db).unwrap().exists("items"));
    assert_eq!(count(cluster, "bystander", "t"), 2);
    assert!(kept_dirs(cluster).is_empty());

    p.run(&["watch", "--once", "--auto", "B", "--whole-cluster"]).expect_code(0);
    assert!(!cluster.connect(&p.db).unwrap().exists("items"), "the schema is back at the point");
    assert_eq!(count(cluster, "bystander", "t"), 1, "the whole cluster is back at the point");
    assert_eq!(kept_dirs(cluster).len(), 1);
}
