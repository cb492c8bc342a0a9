//! Runs that meet other runs, die, or lose their server: the database is
//! left as if the interrupted migration never started, and the next run
//! works.

use std::process::{Child, Stdio};
use std::time::Duration;

use crate::common::{event, DbExt, Project, Run, DEFAULT_CONFIG};
use backstop_core::pg::cluster::Cluster;
use backstop_core::pg::lock::MIGRATION_LOCK_KEY;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Polls `check` every 100ms, for about `limit` at most.
fn wait_for(limit: Duration, what: &str, check: impl FnMut() -> bool) {
    let every = Duration::from_millis(100);
    crate::common::poll_until(what, (limit.as_millis() / every.as_millis()) as u32, every, check);
}

/// Whether a session runs `pg_sleep` in the database right now.
fn sleeping(db: &mut postgres::Client) -> bool {
    db.query_one(
        "select exists (select from pg_stat_activity
                         where datname = current_database() and pid <> pg_backend_pid()
                           and state = 'active' and query like '%pg_sleep%')",
        &[],
    )
    .unwrap()
    .get(0)
}

fn advisory_locks(db: &mut postgres::Client) -> i64 {
    db.query_one(
        "select count(*) from pg_locks
          where locktype = 'advisory'
            and database = (select oid from pg_database where datname = current_database())",
        &[],
    )
    .unwrap()
    .get(0)
}

fn spawn(p: &Project, args: &[&str]) -> Child {
    p.std_cmd(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("backstop starts")
}

#[test]
fn four_concurrent_migrates_apply_exactly_once() {
    let p = Project::new("concurrent");
    p.migration("1_slow", "CREATE TABLE slow (id int);\nSELECT pg_sleep(1);\n", None);

    let children: Vec<Child> = (0..4).map(|_| spawn(&p, &["migrate"])).collect();
    let runs: Vec<Run> =
        children.into_iter().map(|c| Run::from_output(c.wait_with_output().unwrap())).collect();
    for run in &runs {
        run.expect_code(0);
    }
    let applied = runs.iter().filter(|r| r.stdout.contains("applied 1_slow")).count();
    assert_eq!(applied, 1, "{runs:#?}");
    let waited =
        runs.iter().filter(|r| r.stderr.contains("waiting for the migration lock")).count();
    assert!(waited >= 1, "no run said it waits for the lock: {runs:#?}");
    assert_eq!(runs.iter().filter(|r| r.stdout.contains("nothing to migrate")).count(), 3);

    let mut db = p.client();
    assert_eq!(db.events(), [event("migrate", "ok", &["1"])]);
    assert_eq!(db.applied(), ["1"]);
    let tables: i64 = db
        .query_one("select count(*) from pg_class where relname = 'slow' and relkind = 'r'", &[])
        .unwrap()
        .get(0);
    assert_eq!(tables, 1);
    assert_eq!(advisory_locks(&mut db), 0);
}

#[test]
fn sigkill_during_a_migration_leaves_nothing_applied_and_releases_the_lock() {
    let p = Project::new("sigkill");
    // No down is proved first: the copy would sleep its 30 s before the target.
    p.config(&format!("{DEFAULT_CONFIG}keep_downs = false\n"));
    p.migration("1_t", "CREATE TABLE t (id int);\nSELECT pg_sleep(30);\n", None);
    let mut db = p.client();

    let mut child = spawn(&p, &["migrate"]);
    wait_for(Duration::from_secs(20), "the migration to reach pg_sleep", || sleeping(&mut db));
    assert_eq!(advisory_locks(&mut db), 1, "the running migration holds the lock");
    kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), None, "backstop was not killed: {status:?}");

    // The server notices the dead client (client_connection_check_interval)
    // long before the 30s sleep ends.
    wait_for(Duration::from_secs(10), "the killed run's session to end", || {
        !sleeping(&mut db) && advisory_locks(&mut db) == 0
    });
    assert!(!db.exists("t"), "table t of the killed migration exists");
    assert!(db.applied().is_empty());
    // The run's start is on record, without an outcome: status says so.
    assert_eq!(db.all_events(), [event("migrate", "started", &["1"])]);
    p.run(&["status"])
        .expect_code(0)
        .expect_output("interrupted: a migrate of 1 started")
        .expect_output("recorded no outcome")
        .expect_output("next: run `backstop migrate` again");

    p.migration("1_t", "CREATE TABLE t (id int);\n", None);
    p.run(&["migrate"]).expect_code(0).expect_output("applied 1_t");
    assert!(!p.run(&["status"]).all().contains("interrupted"), "the next run is no interruption");
    assert!(db.exists("t"));
    assert_eq!(db.applied(), ["1"]);
    assert_eq!(advisory_locks(&mut db), 0);
}

#[test]
fn server_stopped_during_a_migration_exits_3_and_nothing_is_applied_after_restart() {
    // Its own cluster: stopping the shared one would break the other tests.
    let mut cluster = Cluster::start().expect("throwaway cluster starts");
    let p = Project::on(&cluster, "server_stop");
    p.config(&format!("{DEFAULT_CONFIG}keep_downs = false\n"));
    p.migration("1_t", "CREATE TABLE t (id int);\nSELECT pg_sleep(30);\n", None);
    let mut db = cluster.connect(&p.db).unwrap();

    let child = spawn(&p, &["migrate"]);
    wait_for(Duration::from_secs(20), "the migration to reach pg_sleep", || sleeping(&mut db));
    drop(db);
    cluster.stop_immediate().expect("pg_ctl stop -m immediate");
    let run = Run::from_output(child.wait_with_output().unwrap());
    run.expect_code(3).expect_output("lost the database session");
    assert!(!run.stdout.contains("applied 1_t"), "{run:#?}");

    cluster.restart().expect("cluster restarts");
    let mut db = cluster.connect(&p.db).unwrap();
    assert!(!db.exists("t"), "table t survived the crash");
    assert!(db.applied().is_empty());

    p.migration("1_t", "CREATE TABLE t (id int);\n", None);
    p.run(&["migrate"]).expect_code(0);
    assert!(db.exists("t"));
    assert_eq!(db.applied(), ["1"]);
}

#[test]
fn waiting_for_the_migration_lock_ends_after_lock_wait_naming_the_holder() {
    let p = Project::new("lock_wait");
    p.config(
        r#"[database]
url = "${DATABASE_URL}"

[migrations]
dir = "migrations"
lock_wait = "1s"
"#,
    );
    p.migration("1_a", "CREATE TABLE a (id int);\n", None);
    let mut holder = p.client();
    holder.batch_execute("SET application_name = 'deploy_elsewhere'").unwrap();
    holder.execute("select pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY]).unwrap();

    p.run(&["migrate"])
        .expect_code(3)
        .expect_output("waiting for the migration lock held by pid")
        .expect_output("gave up waiting for the migration lock")
        .expect_output("deploy_elsewhere");
    let mut db = p.client();
    assert!(!db.exists("a"));
    assert!(!db.history_schema_exists(), "the backstop schema was created without the lock");

    holder.execute("select pg_advisory_unlock($1)", &[&MIGRATION_LOCK_KEY]).unwrap();
    p.run(&["migrate"]).expect_code(0);
    assert_eq!(db.applied(), ["1"]);
}

/// Regression: a role that may not see the holder's session (no
/// superuser, not pg_read_all_stats, as on managed PostgreSQL) got
/// "pid 12 ( as app from local socket, since )": the hidden parts shown
/// blank.
#[test]
fn the_lock_holder_is_named_without_blanks_when_its_session_is_hidden() {
    let p = Project::new("lock_hidden");
    let role = crate::common::unique_name("waiter");
    let mut admin = p.client();
    admin
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN PASSWORD 'waiter-pw' NOSUPERUSER; \
             GRANT ALL ON DATABASE \"{db}\" TO {role}; GRANT ALL ON SCHEMA public TO {role}",
            db = p.db
        ))
        .unwrap();
    p.config(
        r#"[database]
url = "${DATABASE_URL}"

[migrations]
dir = "migrations"
lock_wait = "1s"
"#,
    );
    p.migration("1_a", "CREATE TABLE a (id int);\n", None);
    let mut holder = p.client();
    holder.execute("select pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY]).unwrap();
    let url =
        format!("postgres://{role}:waiter-pw@127.0.0.1:{}/{}", crate::common::CLUSTER.port(), p.db);
    let run = p.run_with_url(&url, &["migrate"]);
    run.expect_code(3).expect_output("gave up waiting for the migration lock");
    let all = run.all();
    for blank in ["since )", "( as", "from local socket"] {
        assert!(!all.contains(blank), "{blank:?} in {all}");
    }
    run.expect_output("pid ");
    holder.execute("select pg_advisory_unlock($1)", &[&MIGRATION_LOCK_KEY]).unwrap();
}

/// Regression: a method killed half-way showed in `status` as
/// "interrupted: a method of  started": a method names no versions.
#[test]
fn an_interrupted_method_is_named_by_its_method_and_release() {
    let p = Project::new("method_killed");
    p.config(&format!(
        "{}\n[hooks]\nafter_kill = \"touch hook.started; sleep 60\"\n\n[[flags]]\nkey = \"cards\"\nrelease = \"v2\"\n",
        crate::common::DEFAULT_CONFIG
    ));
    p.migration("1_a", "CREATE TABLE a (id int);\n", Some("DROP TABLE a;\n"));
    p.run(&["migrate", "--no-backup", "test"]).expect_code(0);
    p.run(&["flags", "sync"]).expect_code(0);
    p.run(&["flags", "enable", "cards", "--reason", "launch"]).expect_code(0);
    let mut child = p
        .std_cmd(&["rollback", "--method", "A", "--yes"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = p.path().join("hook.started");
    wait_for(Duration::from_secs(30), "the after_kill hook to start", || started.exists());
    child.kill().unwrap();
    child.wait().unwrap();
    let run = p.run(&["status"]);
    let all = run.all();
    assert!(!all.contains("of  started"), "{all}");
    run.expect_output("interrupted: method A of release v2 started");
}

/// The databases a restore restores into, on `cluster`.
fn restoring_databases(cluster: &Cluster) -> Vec<String> {
    let mut admin = cluster.connect("postgres").unwrap();
    admin
        .query("select datname::text from pg_database where datname like '%\\_restoring\\_%' order by 1", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// A project on its own cluster with a backup big enough that its
/// restore takes a moment, and a restore of it crashed by the server
/// stopping while pg_restore writes.
fn crashed_restore(label: &str) -> (Cluster, Project, String) {
    let mut cluster = Cluster::start().expect("throwaway cluster starts");
    let p = Project::on(&cluster, label);
    p.migration(
        "1_items",
        "CREATE TABLE items (id int PRIMARY KEY, body text NOT NULL);\n\
         INSERT INTO items SELECT i, repeat(md5(i::text), 8) FROM generate_series(1, 400000) i;\n",
        None,
    );
    p.config(&format!("{}\n[backup]\nrequired = false\n", crate::common::DEFAULT_CONFIG));
    p.run(&["migrate"]).expect_code(0);
    let created = p.run(&["backup", "create", "--format", "json"]).expect_code(0).json();
    let id = created["id"].as_str().unwrap().to_string();
    let child = spawn(&p, &["restore", &id, "--yes"]);
    wait_for(Duration::from_secs(60), "the restore to start writing", || {
        !restoring_databases(&cluster).is_empty()
    });
    cluster.stop_immediate().expect("pg_ctl stop -m immediate");
    let run = Run::from_output(child.wait_with_output().unwrap());
    assert_ne!(run.code, Some(0), "{run:#?}");
    cluster.restart().expect("cluster restarts");
    (cluster, p, id)
}

#[test]
fn a_server_crash_mid_restore_keeps_its_record_and_resume_finishes_it() {
    let (cluster, p, id) = crashed_restore("restore_crash_resume");
    // The record outlived the crash: status shows it and the freeze.
    p.run(&["status"]).expect_code(1).expect_output("restore unfinished").expect_output("frozen:");
    assert_eq!(restoring_databases(&cluster).len(), 1, "the half-restored copy is still there");
    p.run(&["restore", &id, "--resume", "--yes"]).expect_code(0);
    p.run(&["status"]).expect_code(0);
    let mut db = cluster.connect(&p.db).unwrap();
    assert_eq!(db.count("items"), 400000);
    assert!(restoring_databases(&cluster).is_empty(), "{:?}", restoring_databases(&cluster));
}

#[test]
fn a_crashed_restore_can_be_abandoned_and_leaves_nothing_behind() {
    // Regression: after a crash mid-restore, unfreeze said it dropped what
    // the restore left but kept the `*_restoring_*` copy and the journal,
    // and status stayed "unfinished"; there was no way to give it up.
    let (cluster, p, _) = crashed_restore("restore_crash_abandon");
    p.run(&["unfreeze"])
        .expect_code(0)
        .expect_output("is kept for it")
        .expect_output("restore --abandon");
    assert_eq!(restoring_databases(&cluster).len(), 1);
    p.run(&["restore", "--abandon"])
        .expect_code(0)
        .expect_output("abandoned the restore of backup")
        .expect_output("the database is as it was");
    assert!(restoring_databases(&cluster).is_empty(), "{:?}", restoring_databases(&cluster));
    p.run(&["status"]).expect_code(0);
    p.run(&["restore", "--abandon"]).expect_code(0).expect_output("nothing to abandon");
    let mut db = cluster.connect(&p.db).unwrap();
    assert_eq!(db.count("items"), 400000, "the database as it was");
}

#[test]
fn what_a_crashed_restore_left_and_no_record_needs_is_dropped_by_the_next_run() {
    let (cluster, p, _) = crashed_restore("restore_crash_leftover");
    // unfreeze lifts the freeze, keeps what the unfinished restore needs.
    p.run(&["unfreeze"])
        .expect_code(0)
        .expect_output("lifted the write freeze")
        .expect_output("--resume");
    assert_eq!(restoring_databases(&cluster).len(), 1);
    // With its record gone (as an older Backstop lost it), the copy is a
    // leftover: the next prune, unfreeze or restore drops it.
    std::fs::remove_file(p.path().join(".backstop/backups/restore.json")).unwrap();
    p.run(&["backup", "prune", "--yes"]).expect_code(0).expect_output("left by an earlier restore");
    assert!(restoring_databases(&cluster).is_empty(), "{:?}", restoring_databases(&cluster));
    p.run(&["status"]).expect_code(0);
    let mut db = cluster.connect(&p.db).unwrap();
    db.batch_execute("INSERT INTO items VALUES (0, 'writable again')").unwrap();
}

#[test]
fn ctrl_c_during_a_restore_is_reported_as_interrupted_and_leaves_the_database_as_it_was() {
    use std::os::unix::process::CommandExt as _;
    let p = Project::new("restore_ctrl_c");
    p.migration(
        "1_items",
        "CREATE TABLE items (id int PRIMARY KEY, body text NOT NULL);\n\
         INSERT INTO items SELECT i, repeat(md5(i::text), 8) FROM generate_series(1, 400000) i;\n",
        None,
    );
    p.config(&format!("{}\n[backup]\nrequired = false\n", crate::common::DEFAULT_CONFIG));
    p.run(&["migrate"]).expect_code(0);
    let created = p.run(&["backup", "create", "--format", "json"]).expect_code(0).json();
    let id = created["id"].as_str().unwrap().to_string();
    p.client().batch_execute("INSERT INTO items VALUES (0, 'written after the backup')").unwrap();

    // A terminal's Ctrl-C goes to the whole process group.
    let child = p
        .std_cmd(&["restore", &id, "--yes"])
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Not on the project's database: the freeze ends other sessions there.
    let mut admin = crate::common::CLUSTER.connect("postgres").unwrap();
    wait_for(Duration::from_secs(60), "pg_restore to start writing", || {
        admin
            .query_one(
                "select exists (select from pg_database where datname like '%\\_restoring\\_%')",
                &[],
            )
            .unwrap()
            .get(0)
    });
    kill(Pid::from_raw(-(child.id() as i32)), Signal::SIGINT).unwrap();
    let run = Run::from_output(child.wait_with_output().unwrap());
    run.expect_code(130)
        .expect_output("interrupted (SIGINT) while pg_restore ran")
        .expect_output("the restore was abandoned");
    assert!(!run.all().contains("pg_restore failed"), "{run:#?}");
    let mut db = p.client();
    assert_eq!(db.count("items"), 400001, "the database is as it was");
    db.batch_execute("INSERT INTO items VALUES (-1, 'writes open again')").unwrap();
    p.run(&["status"]).expect_code(0);
}

#[test]
fn sigkill_in_the_middle_of_method_b_and_resume_finish_it_with_nothing_lost() {
    use std::os::unix::process::CommandExt as _;
    let p = Project::new("method_b_sigkill");
    p.config(&format!(
        "{}\n[backup]\nmax_age = \"1ms\"\n\n[[flags]]\nkey = \"client_cards\"\nrelease = \"v2\"\n",
        crate::common::DEFAULT_CONFIG
    ));
    p.migration(
        "1_items",
        "CREATE TABLE items (id int PRIMARY KEY, body text NOT NULL);\n\
         INSERT INTO items SELECT i, repeat(md5(i::text), 8) FROM generate_series(1, 400000) i;\n",
        None,
    );
    p.run(&["migrate"]).expect_code(0);
    p.migration("2_v2", "CREATE TABLE clients (id int PRIMARY KEY, name text);", None);
    p.run(&["migrate"]).expect_code(0);
    p.run(&["flags", "sync"]).expect_code(0);
    p.run(&["flags", "enable", "client_cards", "--reason", "launch"]).expect_code(0);
    p.client().batch_execute("INSERT INTO clients VALUES (1, 'written after v2')").unwrap();

    // The whole process group dies, pg_restore with it, as in an OOM kill
    // of the container.
    let child = p
        .std_cmd(&["rollback", "--method", "B", "--yes"])
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(Duration::from_secs(60), "the restore to start writing", || {
        restoring_databases(&crate::common::CLUSTER).iter().any(|d| d.starts_with(&p.db))
    });
    kill(Pid::from_raw(-(child.id() as i32)), Signal::SIGKILL).unwrap();
    let run = Run::from_output(child.wait_with_output().unwrap());
    assert_eq!(run.code, None, "{run:#?}");
    assert!(run.stderr.contains("✓ flags off"), "A was done before the restore: {run:#?}");

    p.run(&["status"]).expect_code(1).expect_output("restore unfinished");
    p.run(&["rollback", "--method", "B", "--yes", "--resume"])
        .expect_code(0)
        .expect_output("no flag was on")
        .expect_output("(resumed)")
        .expect_output("✓ method B carried out");
    p.run(&["status"]).expect_code(0);

    let mut db = p.client();
    assert_eq!(db.count("items"), 400000);
    assert!(!db.exists("clients"), "the database is as it was before v2");
    assert!(
        restoring_databases(&crate::common::CLUSTER).iter().all(|d| !d.starts_with(&p.db)),
        "nothing of the killed restore is left"
    );
    let flags = p.run(&["flags", "list", "--format", "json"]).expect_code(0).json();
    assert_eq!(flags[0]["enabled"], false, "the kill outlived the crash and the restore");
    let methods: Vec<String> = db
        .query("select outcome from backstop.events where kind = 'method' order by id", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(methods, ["started", "started", "ok"], "the killed run shows as interrupted");
    // The late write is in the pre-restore snapshot.
    let snapshot: String = db
        .query_one(
            "select details->>'snapshot_database' from backstop.events where kind = 'restore' and outcome = 'ok' order by id desc limit 1",
            &[],
        )
        .unwrap()
        .get(0);
    let mut kept = crate::common::CLUSTER.connect(&snapshot).unwrap();
    assert_eq!(kept.count("clients"), 1);
}
