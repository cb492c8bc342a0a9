//! A restore of a dump killed (SIGKILL) at each of its steps, between the
//! statements of its swap and across a server restart, then given up with
//! `--abandon` or finished with `--resume`: either way every database
//! takes connections again and holds what it should, the journal and
//! `backup list` say only what is true, and the outcome is an event.

use backstop_core::pg::cluster::Cluster;

use crate::common::{kill_restore_at, DbExt, Project, CLUSTER, DEFAULT_CONFIG};

/// The rows of the backup; the database holds one more, written since.
const BACKED_UP: i64 = 100;

/// A project on `cluster` with a backup of 100 items, and an item written
/// after it. Returns the backup's id.
fn project(cluster: &Cluster, label: &str) -> (Project, String) {
    let p = Project::on(cluster, label);
    p.config(&format!("{DEFAULT_CONFIG}\n[backup]\nrequired = false\n"));
    p.migration(
        "1_items",
        "CREATE TABLE items (id int PRIMARY KEY, body text NOT NULL);\n\
         INSERT INTO items SELECT i, md5(i::text) FROM generate_series(1, 100) i;\n",
        None,
    );
    p.run(&["migrate"]).expect_code(0);
    let created = p.run(&["backup", "create", "--format", "json"]).expect_code(0).json();
    let id = created["id"].as_str().unwrap().to_string();
    cluster
        .connect(&p.db)
        .unwrap()
        .batch_execute("INSERT INTO items VALUES (0, 'written after the backup')")
        .unwrap();
    (p, id)
}

/// The project's database and those restores made of it, each with
/// whether it takes connections.
fn databases(cluster: &Cluster, p: &Project) -> Vec<(String, bool)> {
    let mut admin = cluster.connect("postgres").unwrap();
    admin
        .query(
            "select datname::text, datallowconn from pg_database
              where datname = $1 or starts_with(datname, $1 || '_') order by 1",
            &[&p.db],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// Asserts that every database of the project takes connections, and
/// returns their names.
#[track_caller]
fn all_open(cluster: &Cluster, p: &Project) -> Vec<String> {
    let dbs = databases(cluster, p);
    assert!(dbs.iter().all(|(_, open)| *open), "a database refuses connections: {dbs:?}");
    dbs.into_iter().map(|(name, _)| name).collect()
}

/// However the restore was killed, no database of the project refuses
/// its users for long: a watcher lets them in again once the restore is
/// gone (issue 42: a kill inside the swap left the target closed).
#[track_caller]
fn open_soon(cluster: &Cluster, p: &Project) {
    let every = std::time::Duration::from_millis(200);
    crate::common::poll_until("every database of the project takes connections", 50, every, || {
        databases(cluster, p).iter().all(|(_, open)| *open)
    });
}

/// The snapshot databases `backup list` names; each must exist.
#[track_caller]
fn listed_snapshots(cluster: &Cluster, p: &Project) -> Vec<String> {
    let list = p.run(&["backup", "list", "--format", "json"]).expect_code(0).json();
    let names: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "database")
        .map(|e| e["snapshot_database"].as_str().unwrap().to_string())
        .collect();
    let dbs = all_open(cluster, p);
    for name in &names {
        assert!(dbs.contains(name), "backup list names {name}, which does not exist: {dbs:?}");
    }
    names
}

/// `(outcome, resumed)` of each restore event in the project's database.
fn restore_events(db: &mut postgres::Client) -> Vec<(String, Option<bool>)> {
    db.query(
        "select outcome, (details->>'resumed')::bool from backstop.events
          where kind = 'restore' order by id",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

/// Asserts that the database takes writes.
#[track_caller]
fn writable(db: &mut postgres::Client) {
    db.batch_execute("BEGIN; INSERT INTO items VALUES (-1, 'writable'); ROLLBACK")
        .unwrap_or_else(|e| panic!("the database takes no writes: {e:?}"));
}

fn journal_gone(p: &Project) -> bool {
    !p.path().join(".backstop/backups/restore.json").exists()
}

/// After an abandoned restore: the database as it was (the item written
/// since the backup too), open and writable, nothing of the restore left,
/// and the abandonment (or the failure) audited.
#[track_caller]
fn as_it_was(cluster: &Cluster, p: &Project, outcome: &str) {
    assert_eq!(all_open(cluster, p), [p.db.as_str()], "the restore's databases are gone");
    assert!(listed_snapshots(cluster, p).is_empty());
    assert!(journal_gone(p));
    let mut db = cluster.connect(&p.db).unwrap();
    assert_eq!(db.count("items"), BACKED_UP + 1);
    writable(&mut db);
    let events = restore_events(&mut db);
    assert_eq!(events.last().map(|e| e.0.as_str()), Some(outcome), "{events:?}");
    p.run(&["status"]).expect_code(0);
}

/// After a finished restore: the backup's data, open and writable; the
/// state before kept as one snapshot database that `backup list` names
/// and that holds the item written since; one restore event, ok.
#[track_caller]
fn restored(cluster: &Cluster, p: &Project) {
    let snapshots = listed_snapshots(cluster, p);
    assert_eq!(snapshots.len(), 1, "{snapshots:?}");
    let mut dbs = all_open(cluster, p);
    dbs.sort();
    assert_eq!(dbs, [p.db.clone(), snapshots[0].clone()]);
    assert!(journal_gone(p));
    let mut db = cluster.connect(&p.db).unwrap();
    assert_eq!(db.count("items"), BACKED_UP);
    writable(&mut db);
    let oks = restore_events(&mut db).into_iter().filter(|e| e.0 == "ok").count();
    assert_eq!(oks, 1, "{:?}", restore_events(&mut db));
    assert_eq!(cluster.connect(&snapshots[0]).unwrap().count("items"), BACKED_UP + 1);
    p.run(&["status"]).expect_code(0);
}

/// Killed at `point` before the swap committed: `--abandon` leaves the
/// database as it was; killed there again, `--resume` finishes it.
fn abandoned_then_resumed(point: &str) {
    let (p, id) = project(&CLUSTER, &format!("restore_at_{point}"));
    kill_restore_at(&p, &id, point);
    open_soon(&CLUSTER, &p);
    // Regression: status named only `--resume`.
    p.run(&["status"]).expect_output(&format!(
        "finish it with `backstop backup restore {id} --resume`, or give it up with `backstop backup restore \
         --abandon` (the database stays as it was)"
    ));
    p.run(&["restore", "--abandon"])
        .expect_code(0)
        .expect_output("abandoned the restore of backup");
    as_it_was(&CLUSTER, &p, "abandoned");
    kill_restore_at(&p, &id, point);
    p.run(&["restore", &id, "--resume", "--yes"]).expect_code(0).expect_output("resumed");
    restored(&CLUSTER, &p);
}

/// Killed at `point`, after the swap committed: the database is the
/// restored one, so `--abandon` is refused (saying `--resume`) and
/// `--resume` finishes it.
fn refused_then_resumed(point: &str) {
    let (p, id) = project(&CLUSTER, &format!("restore_at_{point}"));
    kill_restore_at(&p, &id, point);
    open_soon(&CLUSTER, &p);
    let status = p.run(&["status"]);
    status.expect_output(&format!(
        "finish it with `backstop backup restore {id} --resume` (it has begun to change the database, \
         so `backstop backup restore --abandon` refuses it)"
    ));
    assert!(!status.all().contains("give it up"), "{}", status.all());
    p.run(&["restore", "--abandon"]).expect_code(2).expect_output("--resume");
    all_open(&CLUSTER, &p);
    p.run(&["restore", &id, "--resume", "--yes"]).expect_code(0).expect_output("resumed");
    restored(&CLUSTER, &p);
}

#[test]
fn a_restore_killed_once_its_journal_exists_is_abandoned_or_resumed() {
    abandoned_then_resumed("started");
}

#[test]
fn a_restore_killed_with_writes_frozen_is_abandoned_or_resumed() {
    abandoned_then_resumed("frozen");
}

#[test]
fn a_restore_killed_as_pg_restore_begins_is_abandoned_or_resumed() {
    abandoned_then_resumed("restoring");
}

#[test]
fn a_restore_killed_once_its_copy_is_checked_is_abandoned_or_resumed() {
    abandoned_then_resumed("restored");
}

/// Regression: the snapshot's entry was written before the swap, so a
/// kill here left `backup list` naming a database that never existed.
#[test]
fn a_restore_killed_with_the_log_carried_over_is_abandoned_or_resumed() {
    abandoned_then_resumed("set_aside");
}

/// Regression: killed with the target closed to new sessions, neither
/// `--resume` nor `--abandon` could connect, `--abandon` forgot the
/// journal anyway, and only a superuser's ALTER DATABASE got back in.
#[test]
fn a_restore_killed_with_the_target_closed_to_sessions_is_abandoned_or_resumed() {
    abandoned_then_resumed("closed");
}

/// Regression: killed after the renames committed, `--abandon` said the
/// database was as it was (it was the restored one), wrote no restore
/// event, and the snapshot refused connections.
#[test]
fn a_restore_killed_right_after_the_renames_is_refused_abandoning_and_resumed() {
    refused_then_resumed("renamed");
}

#[test]
fn a_restore_killed_with_the_snapshot_reopened_is_refused_abandoning_and_resumed() {
    refused_then_resumed("reopened");
}

#[test]
fn a_restore_killed_once_swapped_is_refused_abandoning_and_resumed() {
    refused_then_resumed("swapped");
}

/// Killed after its event was written: the resumed run writes none again.
#[test]
fn a_restore_killed_once_audited_is_refused_abandoning_and_resumed() {
    refused_then_resumed("audited");
}

#[test]
fn a_server_restart_during_the_swap_leaves_a_restore_that_is_abandoned_or_resumed() {
    // Its own cluster: restarting the shared one would break other tests.
    let mut cluster = Cluster::start().expect("throwaway cluster starts");
    let (p, id) = project(&cluster, "restore_restart");
    kill_restore_at(&p, &id, "closed");
    cluster.stop_immediate().expect("pg_ctl stop -m immediate");
    cluster.restart().expect("cluster restarts");
    p.run(&["restore", "--abandon"]).expect_code(0);
    as_it_was(&cluster, &p, "abandoned");

    kill_restore_at(&p, &id, "renamed");
    cluster.stop_immediate().expect("pg_ctl stop -m immediate");
    cluster.restart().expect("cluster restarts");
    p.run(&["restore", &id, "--resume", "--yes"]).expect_code(0).expect_output("resumed");
    restored(&cluster, &p);
}

/// A resumed run finds the restored copy changed while it was left
/// unattended: the restore fails, and the failure is audited with the
/// database as it was.
#[test]
fn a_resumed_restore_that_fails_its_check_is_audited_and_leaves_the_database_as_it_was() {
    let (p, id) = project(&CLUSTER, "restore_resume_fails");
    kill_restore_at(&p, &id, "closed");
    let copy = databases(&CLUSTER, &p)
        .into_iter()
        .map(|(name, _)| name)
        .find(|name| name.contains("_restoring_"))
        .expect("the restored copy");
    CLUSTER.connect(&copy).unwrap().batch_execute("DELETE FROM items WHERE id = 1").unwrap();
    p.run(&["restore", &id, "--resume", "--yes"]).expect_code(1).expect_output("public.items");
    as_it_was(&CLUSTER, &p, "failed");
}

/// Putting a pre-restore snapshot back, killed half-way: given up, the
/// snapshot stays a backup (listed, frozen as it was kept); finished, it
/// is the database again and no longer listed, and the database it
/// replaced is the new snapshot.
#[test]
fn putting_a_snapshot_back_killed_half_way_is_abandoned_or_resumed() {
    let (p, id) = project(&CLUSTER, "restore_snapshot_back");
    p.run(&["restore", &id, "--yes"]).expect_code(0);
    let list = p.run(&["backup", "list", "--format", "json"]).expect_code(0).json();
    let entry = list.as_array().unwrap().iter().find(|e| e["kind"] == "database").unwrap();
    let snap_id = entry["id"].as_str().unwrap().to_string();
    let snap_db = entry["snapshot_database"].as_str().unwrap().to_string();

    kill_restore_at(&p, &snap_id, "set_aside");
    p.run(&["restore", "--abandon"]).expect_code(0);
    assert_eq!(listed_snapshots(&CLUSTER, &p), [snap_db.as_str()]);
    let write = CLUSTER.connect(&snap_db).unwrap().batch_execute("DELETE FROM items");
    assert!(format!("{write:?}").contains("read-only"), "the snapshot is frozen: {write:?}");
    let mut db = CLUSTER.connect(&p.db).unwrap();
    assert_eq!(db.count("items"), BACKED_UP);
    writable(&mut db);
    assert!(journal_gone(&p));

    kill_restore_at(&p, &snap_id, "renamed");
    p.run(&["restore", &snap_id, "--resume", "--yes"]).expect_code(0).expect_output("resumed");
    let snapshots = listed_snapshots(&CLUSTER, &p);
    assert_eq!(snapshots.len(), 1, "{snapshots:?}");
    assert_ne!(snapshots[0], snap_db, "the snapshot put back is no longer a backup");
    assert_eq!(CLUSTER.connect(&snapshots[0]).unwrap().count("items"), BACKED_UP);
    let mut db = CLUSTER.connect(&p.db).unwrap();
    assert_eq!(db.count("items"), BACKED_UP + 1);
    writable(&mut db);
    assert!(journal_gone(&p));
    p.run(&["status"]).expect_code(0);
}
