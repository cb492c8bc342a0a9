//! Verified backups end to end: the real `backstop` binary, the real
//! pg_dump/pg_restore and a real cluster. What a backup holds, what the
//! migrate gate does with it, and restore's promise that nothing is lost.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::{DbExt, Project, CLUSTER};
use serde_json::Value;

/// A project whose database holds `users` (with `n` rows) as migration 1.
fn with_users(label: &str, n: i64) -> Project {
    let p = Project::new(label);
    p.migration(
        "1_users",
        &format!(
            "CREATE TABLE users (id int PRIMARY KEY, email text NOT NULL);\n\
             INSERT INTO users SELECT i, 'u' || i || '@example.com' FROM generate_series(1, {n}) i;\n"
        ),
        Some("DROP TABLE users;"),
    );
    p
}

fn backups_dir(p: &Project) -> PathBuf {
    p.path().join(".backstop/backups")
}

/// `backup list --format json`.
fn listed(p: &Project) -> Vec<Value> {
    p.run(&["backup", "list", "--format", "json"]).expect_code(0).json().as_array().unwrap().clone()
}

fn applied_backup(db: &mut postgres::Client, version: &str) -> Option<String> {
    db.query_one("select backup_id from backstop.applied where version = $1", &[&version])
        .unwrap()
        .get(0)
}

/// Every file under `dir` and its mode.
fn modes(dir: &Path, out: &mut Vec<(PathBuf, u32)>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let mode = e.metadata().unwrap().permissions().mode() & 0o777;
        out.push((e.path(), mode));
        if e.file_type().unwrap().is_dir() {
            modes(&e.path(), out);
        }
    }
}

/// A directory for `BACKSTOP_PG_BIN` with the real tools linked in, and
/// `overrides` written as executable scripts in their place.
fn fake_bin(overrides: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix("backstop-fake-bin-").tempdir().unwrap();
    for entry in std::fs::read_dir(&CLUSTER.bin().dir).unwrap() {
        let entry = entry.unwrap();
        std::os::unix::fs::symlink(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    for (name, script) in overrides {
        let path = dir.path().join(name);
        let _ = std::fs::remove_file(&path);
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    dir
}

fn real(tool: &str) -> String {
    CLUSTER.bin().tool(tool).display().to_string()
}

#[test]
fn create_writes_a_manifest_from_the_dumps_snapshot_and_list_verify_show_it() {
    let p = with_users("create_list", 500);
    p.run(&["migrate", "--no-backup", "fixture"]).expect_code(0);

    let created = p
        .run(&["backup", "create", "--label", "before v2", "--format", "json"])
        .expect_code(0)
        .json();
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["label"], "before v2");
    assert_eq!(created["row_counts"]["public.users"], 500);
    assert_eq!(created["database"].as_str(), Some(p.db.as_str()));
    assert!(created["system_identifier"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(created["schema_fingerprint"].as_str().is_some_and(|s| s.len() == 16));
    let files = created["files"].as_array().unwrap();
    assert!(files.iter().any(|f| f["path"] == "dump/toc.dat"), "{files:?}");
    assert!(files.iter().all(|f| f["blake3"].as_str().unwrap().len() == 64));
    // zstd where this pg_dump was built with it (16 on; a build may lack it).
    let configure = std::process::Command::new(CLUSTER.bin().tool("pg_config"))
        .arg("--configure")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let zstd = CLUSTER.bin().major >= 16 && configure.contains("--with-zstd");
    assert_eq!(created["compression"], if zstd { "zstd" } else { "gzip" }, "{configure}");

    // Files 0600, folders 0700: a dump holds every row of the database.
    let mut all = Vec::new();
    modes(&backups_dir(&p), &mut all);
    assert!(all.iter().any(|(p, _)| p.ends_with(".gitignore")), "backups are not git-ignored");
    for (path, mode) in &all {
        let want = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(*mode, want, "{} has mode {mode:o}", path.display());
    }

    let list = listed(&p);
    assert_eq!(list.len(), 1);
    for key in ["id", "created_at", "size_bytes", "verified"] {
        assert!(list[0].get(key).is_some(), "backup list JSON lacks {key}: {}", list[0]);
    }
    assert_eq!(list[0]["id"].as_str(), Some(id.as_str()));
    assert_eq!(list[0]["verified"], true);
    assert_eq!(list[0]["verified_by"], "checksums");
    p.run(&["backup", "list"]).expect_code(0).expect_output(&id).expect_output("before v2");

    p.run(&["backup", "verify", &id, "--restore"])
        .expect_code(0)
        .expect_output("✓ checksums")
        .expect_output("✓ test restore")
        .expect_output("1 table(s), 500 row(s)");
    assert_eq!(listed(&p)[0]["verified_by"], "restore");
    p.run(&["backup", "verify", "no-such-backup"])
        .expect_code(2)
        .expect_output("no backup no-such-backup");
}

#[test]
fn a_test_restore_creates_the_sources_roles_and_names_missing_extensions() {
    let p = with_users("roles_ext", 10);
    let role = crate::common::unique_name("app_owner");
    let mut admin = CLUSTER.connect("postgres").unwrap();
    admin.batch_execute(&format!("CREATE ROLE {role} NOLOGIN")).unwrap();
    p.migration("2_owned", &format!("CREATE TABLE owned (id int);\nALTER TABLE owned OWNER TO {role};\nGRANT SELECT ON users TO {role};"), None);
    p.run(&["migrate", "--no-backup", "fixture"]).expect_code(0);
    let id = p.run(&["backup", "create", "--format", "json"]).expect_code(0).json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    p.run(&["backup", "verify", &id, "--restore"]).expect_code(0);

    // An extension the local server lacks: the manifest names it, the
    // test restore refuses with exit 3 and says which.
    let manifest = backups_dir(&p).join(&id).join("manifest.json");
    let mut m: Value = serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    m["extensions"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"name": "no_such_ext", "version": "1.0"}));
    std::fs::write(&manifest, m.to_string()).unwrap();
    p.run(&["backup", "verify", &id, "--restore"]).expect_code(3).expect_output("no_such_ext");

    // A backup of a newer PostgreSQL than the local one: named, exit 3.
    m["extensions"] = serde_json::json!([]);
    m["server_version_num"] = serde_json::json!(990001);
    std::fs::write(&manifest, m.to_string()).unwrap();
    p.run(&["backup", "verify", &id, "--restore"])
        .expect_code(3)
        .expect_output("backup of PostgreSQL 99, newer than the local PostgreSQL");
    // Neither verdict is about the backup: its record is unchanged.
    assert_eq!(listed(&p)[0]["verified_by"], "restore");
}

/// Regression: a foreign server's options in another order than pg_dump
/// writes them (it sorts them) made every test restore of its database
/// "not match its manifest", and so failed scenario B of a rehearsal.
/// (A wrapper with no validator takes any option, and needs no contrib:
/// some majors under test are built without postgres_fdw.)
#[test]
fn options_in_another_order_than_pg_dumps_are_the_same_schema() {
    let p = with_users("options_order", 1);
    p.migration(
        "2_server",
        "CREATE FOREIGN DATA WRAPPER plain;\n\
         CREATE SERVER reports FOREIGN DATA WRAPPER plain OPTIONS (host 'localhost', dbname 'reports');\n\
         CREATE USER MAPPING FOR CURRENT_USER SERVER reports OPTIONS (user 'reporter', password_required 'false');\n\
         ALTER TABLE users SET (fillfactor = 90, autovacuum_enabled = false);",
        None,
    );
    p.run(&["migrate", "--no-backup", "fixture"]).expect_code(0);
    let id = p.run(&["backup", "create", "--format", "json"]).expect_code(0).json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    p.run(&["backup", "verify", &id, "--restore"]).expect_code(0);
}

#[test]
fn migrate_takes_a_backup_stamps_it_and_reuses_it_within_max_age() {
    let p = with_users("gate", 100);
    p.run(&["migrate"]).expect_code(0).expect_output("backup ");
    let list = listed(&p);
    assert_eq!(list.len(), 1, "{list:?}");
    let id = list[0]["id"].as_str().unwrap().to_string();
    assert_eq!(list[0]["guards"], serde_json::json!(["1"]));
    let mut db = p.client();
    assert_eq!(applied_backup(&mut db, "1").as_deref(), Some(id.as_str()));
    p.run(&["status"]).expect_code(0).expect_output(&format!("backup {id}"));

    // The backup holds the state before 1; after 1 it is not the next
    // migration's backup, however young.
    p.migration("2_clients", "CREATE TABLE clients (id int);", Some("DROP TABLE clients;"));
    p.run(&["migrate"]).expect_code(0).expect_output(&format!(
        "not reusing backup {id}: 1 migration(s) applied and 0 reverted since it was taken"
    ));
    let second = applied_backup(&mut db, "2").unwrap();
    assert_ne!(second, id);

    // A backup taken when nothing is pending guards the next migration,
    // as long as nothing happens in between.
    let created = p.run(&["backup", "create", "--format", "json"]).expect_code(0).json();
    let id = created["id"].as_str().unwrap().to_string();
    p.migration("3_more_clients", "CREATE TABLE more_clients (id int);", None);
    p.run(&["migrate"]).expect_code(0).expect_output(&format!("reusing backup {id}"));
    assert_eq!(applied_backup(&mut db, "3").as_deref(), Some(id.as_str()));
    let gate: Value = db
        .query_one(
            "select details->'gates'->'backup' from backstop.events where versions = '{3}' and outcome = 'ok'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(gate["id"].as_str(), Some(id.as_str()));
    assert_eq!(gate["reused"], true);

    // Past max_age a new one is taken.
    p.config(&format!("{}\n[backup]\nmax_age = \"1s\"\n", crate::common::DEFAULT_CONFIG));
    std::thread::sleep(Duration::from_millis(1100));
    p.migration("4_notes", "CREATE TABLE notes (id int);", None);
    p.run(&["migrate"]).expect_code(0);
    let newer = applied_backup(&mut db, "4").unwrap();
    assert_ne!(newer, id);
    assert_eq!(listed(&p).len(), 4);

    // --backup names one: too old is refused (exit 1), unknown is exit 2.
    p.migration("5_more", "CREATE TABLE more (id int);", None);
    std::thread::sleep(Duration::from_millis(1100));
    p.run(&["migrate", "--backup", &newer])
        .expect_code(1)
        .expect_output("older than [backup] max_age");
    p.run(&["migrate", "--backup", "20200101T000000Z-0000"])
        .expect_code(2)
        .expect_output("no backup");
    assert!(!db.exists("more"));

    // --no-backup is audited with its reason.
    p.run(&["migrate", "--no-backup", "hotfix, data already exported"]).expect_code(0);
    let gate: Value = db
        .query_one(
            "select details->'gates'->'backup' from backstop.events where versions = '{5}' and outcome = 'ok'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(gate["waived"], "hotfix, data already exported");
    assert_eq!(applied_backup(&mut db, "5"), None);
    p.run(&["migrate", "--no-backup", " "]).expect_code(2).expect_output("needs a reason");
    // The waiver's one shape: the flag, then --reason; without one,
    // nothing runs and the error says what to add.
    p.migration("6_more", "CREATE TABLE more6 (id int);", Some("DROP TABLE more6;"));
    p.run(&["migrate", "--no-backup"])
        .expect_code(2)
        .expect_output("--no-backup needs a reason for the audit log: add --reason TEXT");
    assert!(!db.exists("more6"));
    p.run(&["migrate", "--no-backup", "--reason", "rebuilt nightly"]).expect_code(0);
    let gate: Value = db
        .query_one(
            "select details->'gates'->'backup' from backstop.events where versions = '{6}' and outcome = 'ok'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(gate["waived"], "rebuilt nightly");
}

#[test]
fn a_reused_backup_must_hold_the_state_the_migration_changes() {
    let p = with_users("reuse_state", 20);
    p.run(&["migrate"]).expect_code(0);
    let mut db = p.client();
    let take = |p: &Project| {
        let m = p.run(&["backup", "create", "--format", "json"]).expect_code(0).json();
        m["id"].as_str().unwrap().to_string()
    };

    // Rows written after the backup: it no longer holds them.
    let taken = take(&p);
    {
        // The writer's statistics reach pg_stat_user_tables when it ends.
        let mut writer = p.client();
        writer.batch_execute("INSERT INTO users VALUES (1000, 'late@example.com')").unwrap();
    }
    crate::common::poll_until(
        "the write shows in the statistics",
        50,
        Duration::from_millis(100),
        || {
            let n: i64 = db
            .query_one("select pg_stat_clear_snapshot()::text is null or true, n_tup_ins from pg_stat_user_tables where relname = 'users'", &[])
            .map(|r| r.get(1))
            .unwrap_or(0);
            n >= 21
        },
    );
    p.migration("2_a", "CREATE TABLE a (id int);", None);
    p.run(&["migrate"]).expect_code(0).expect_output(&format!(
        "not reusing backup {taken}: the database was written since it was taken"
    ));
    assert_ne!(applied_backup(&mut db, "2").as_deref(), Some(taken.as_str()));

    // A TRUNCATE counts no deleted rows, but moves the table's storage.
    let taken = take(&p);
    db.batch_execute("TRUNCATE a").unwrap();
    p.migration("3_b", "CREATE TABLE b (id int);", None);
    p.run(&["migrate"]).expect_code(0).expect_output(&format!(
        "not reusing backup {taken}: a table was truncated or rewritten since"
    ));

    // A schema change made by hand.
    let taken = take(&p);
    db.batch_execute("CREATE INDEX users_email_idx ON users (email)").unwrap();
    p.migration("4_c", "CREATE TABLE c (id int); CREATE SEQUENCE c_ids;", None);
    p.run(&["migrate"]).expect_code(0).expect_output(&format!(
        "not reusing backup {taken}: the schema changed since it was taken"
    ));

    // Regression: nextval() writes no row, and the backup was reused, so
    // a restore would have handed the same ids out again.
    let taken = take(&p);
    db.query_one("select nextval('c_ids')", &[]).unwrap();
    p.migration("5_d", "CREATE TABLE d (id int);", None);
    p.run(&["migrate"]).expect_code(0).expect_output(&format!(
        "not reusing backup {taken}: a sequence advanced since it was taken"
    ));

    // Regression: a sequence set lower was said to have "advanced".
    db.query_one("select setval('c_ids', 100)", &[]).unwrap();
    let taken = take(&p);
    db.query_one("select setval('c_ids', 5)", &[]).unwrap();
    p.migration("6_d2", "CREATE TABLE d2 (id int);", None);
    p.run(&["migrate"]).expect_code(0).expect_output(&format!(
        "not reusing backup {taken}: a sequence was set back since it was taken (public.c_ids: 100 to 5"
    ));

    // Nothing since: reused.
    let taken = take(&p);
    p.migration("7_e", "CREATE TABLE e (id int);", None);
    p.run(&["migrate"]).expect_code(0).expect_output(&format!("reusing backup {taken}"));
    assert_eq!(applied_backup(&mut db, "7").as_deref(), Some(taken.as_str()));
}

/// Regression: a migration applied and reverted after the backup left the
/// history, the schema and the counters as they were, and the backup was
/// reused, though rows written meanwhile were in neither.
#[test]
fn a_backup_is_not_reused_after_a_migration_was_applied_and_reverted() {
    let p = with_users("reuse_reverted", 20);
    p.run(&["migrate"]).expect_code(0);
    let created = p.run(&["backup", "create", "--format", "json"]).expect_code(0).json();
    let taken = created["id"].as_str().unwrap().to_string();
    p.migration("2_notes", "CREATE TABLE notes (id int);", Some("DROP TABLE notes;"));
    p.run(&["migrate", "--no-backup", "applied and reverted at once"]).expect_code(0);
    p.run(&["rollback", "--to", "1"]).expect_code(0);
    let run = p.run(&["migrate"]);
    run.expect_code(0).expect_output(&format!(
        "not reusing backup {taken}: the database was changed since it was taken: \
         backstop.events records 1 migrate and 1 rollback after it"
    ));
    let mut db = p.client();
    assert_ne!(applied_backup(&mut db, "2").as_deref(), Some(taken.as_str()));
}

#[test]
fn required_false_turns_the_gate_off_and_min_size_guards_it() {
    let p = with_users("gate_off", 5);
    p.config(&format!("{}\n[backup]\nrequired = false\n", crate::common::DEFAULT_CONFIG));
    p.run(&["migrate"]).expect_code(0);
    assert!(!backups_dir(&p).exists(), "a backup was taken with required = false");
    assert_eq!(applied_backup(&mut p.client(), "1"), None);

    p.config(&format!("{}\n[backup]\nmin_size = \"1GB\"\n", crate::common::DEFAULT_CONFIG));
    p.migration("2_t", "CREATE TABLE t (id int);", None);
    p.run(&["migrate"]).expect_code(1).expect_output("smaller than [backup] min_size");
    assert!(!p.client().exists("t"));
}

#[test]
fn one_flipped_byte_fails_verify_and_restore_refuses_before_touching_the_target() {
    let p = with_users("flipped", 200);
    p.run(&["migrate", "--no-backup", "fixture"]).expect_code(0);
    let id = p.run(&["backup", "create", "--format", "json"]).expect_code(0).json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    // The biggest data file of the dump.
    let dump = backups_dir(&p).join(&id).join("dump");
    let victim = std::fs::read_dir(&dump)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "gz" || e == "zst" || e == "dat"))
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let mut bytes = std::fs::read(&victim).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&victim, bytes).unwrap();

    p.run(&["backup", "verify", &id])
        .expect_code(1)
        .expect_output("does not match its BLAKE3 checksum");
    assert_eq!(listed(&p)[0]["verified"], false);

    let mut db = p.client();
    db.batch_execute("INSERT INTO users VALUES (1000, 'new@example.com')").unwrap();
    let events_before = db.events().len();
    p.run(&["restore", &id, "--yes"])
        .expect_code(1)
        .expect_output("does not match its BLAKE3 checksum");
    assert_eq!(db.count("users"), 201, "the target was touched");
    assert_eq!(db.events().len(), events_before, "restore went further than the checksums");
    let read_only: String = db.query_one("show default_transaction_read_only", &[]).unwrap().get(0);
    assert_eq!(read_only, "off");
    assert!(!backups_dir(&p).join("restore.json").exists());
}

#[test]
fn restore_over_new_writes_keeps_them_in_the_pre_restore_snapshot() {
    let p = with_users("restore", 300);
    p.run(&["migrate"]).expect_code(0);
    p.migration(
        "2_clients",
        "CREATE TABLE clients (id int PRIMARY KEY, name text);\nINSERT INTO clients VALUES (1, 'acme');",
        Some("DROP TABLE clients;"),
    );
    p.config(&format!("{}\n[backup]\nmax_age = \"1ms\"\n", crate::common::DEFAULT_CONFIG));
    p.run(&["migrate"]).expect_code(0);
    let mut db = p.client();
    let guard = applied_backup(&mut db, "2").unwrap();
    // Writes after the migration: they must survive in the snapshot.
    db.batch_execute(
        "INSERT INTO users VALUES (9001, 'late@example.com'); INSERT INTO clients VALUES (2, 'late client');",
    )
    .unwrap();
    let events_before = db.events();
    drop(db);

    // Without --yes and off a terminal, restore refuses and changes nothing.
    p.run(&["restore", &guard]).expect_code(2).expect_output("--yes");

    let run = p.run(&["restore", &guard, "--yes"]);
    run.expect_code(0).expect_output("restored backup").expect_output("kept as database");
    let mut db = p.client();
    assert_eq!(db.count("users"), 300);
    assert!(!db.exists("clients"), "the backup predates clients");
    assert_eq!(db.applied(), ["1"], "backstop.applied matches the restored schema");
    let events = db.events();
    assert_eq!(&events[..events_before.len()], &events_before[..], "the audit log was rewound");
    let kinds: Vec<&str> = events[events_before.len()..].iter().map(|e| e.0.as_str()).collect();
    assert!(kinds.contains(&"freeze") && kinds.last() == Some(&"restore"), "{kinds:?}");
    db.batch_execute("INSERT INTO users VALUES (9002, 'after@example.com')").unwrap();
    assert!(p.run(&["status"]).expect_code(0).stdout.find("frozen").is_none());

    // The pre-restore snapshot is a backup of kind database holding the late writes.
    let snapshot = listed(&p).into_iter().find(|b| b["kind"] == "database").expect("a snapshot");
    let snap_db = snapshot["snapshot_database"].as_str().unwrap().to_string();
    let snap_id = snapshot["id"].as_str().unwrap().to_string();
    let mut kept = CLUSTER.connect(&snap_db).unwrap();
    assert_eq!(kept.count("users where id = 9001"), 1);
    assert_eq!(kept.count("clients"), 2);
    drop(kept);
    drop(db);

    // Putting it back brings the late writes back.
    p.run(&["restore", &snap_id, "--yes"]).expect_code(0);
    let mut db = p.client();
    assert_eq!(db.count("users where id = 9001"), 1);
    assert_eq!(db.count("clients where name = 'late client'"), 1);
    assert_eq!(db.applied(), ["1", "2"]);
    let restores = db.events().iter().filter(|e| e.0 == "restore" && e.1 == "ok").count();
    assert_eq!(restores, 2, "both restores are in the log");
    db.batch_execute("INSERT INTO clients VALUES (3, 'writable again')").unwrap();
    assert!(
        listed(&p).iter().all(|b| b["id"] != snap_id.as_str()),
        "a snapshot put back is no backup any more"
    );
}

#[test]
fn a_database_owner_without_createdb_restores_by_dump_and_clean() {
    let role = crate::common::unique_name("nocreatedb");
    let dbname = crate::common::unique_name("owned_clean");
    let mut admin = CLUSTER.connect("postgres").unwrap();
    admin
        .batch_execute(&format!("CREATE ROLE {role} LOGIN PASSWORD 'pw' NOSUPERUSER NOCREATEDB"))
        .unwrap();
    admin.batch_execute(&format!("CREATE DATABASE {dbname} OWNER {role}")).unwrap();
    let url = format!("postgres://{role}:pw@127.0.0.1:{}/{dbname}", CLUSTER.port());
    let p = with_users("clean_project", 50);
    p.run_with_url(&url, &["migrate", "--no-backup", "fixture"]).expect_code(0);
    p.migration(
        "2_clients",
        "CREATE TABLE clients (id int);\nINSERT INTO clients VALUES (1);",
        None,
    );
    p.run_with_url(&url, &["migrate"]).expect_code(0);
    let mut db = CLUSTER.connect(&dbname).unwrap();
    let guard = applied_backup(&mut db, "2").unwrap();
    db.batch_execute("INSERT INTO users VALUES (777, 'late')").unwrap();

    let run = p.run_with_url(&url, &["restore", &guard, "--yes", "--format", "json"]);
    run.expect_code(0);
    let report = run.json();
    assert_eq!(report["strategy"], "in_place");
    assert!(!run.all().contains("pw@"), "the password was printed");
    assert_eq!(db.count("users"), 50);
    assert!(!db.exists("clients"));
    assert_eq!(db.applied(), ["1"]);
    assert_eq!(db.events().last().unwrap().0, "restore");
    // The pre-restore backup is a dump holding the late write.
    let pre = report["snapshot_id"].as_str().unwrap();
    let pre_manifest = listed(&p).into_iter().find(|b| b["id"] == pre).unwrap();
    assert_eq!(pre_manifest["label"], "pre-restore");
    let counts: Value = serde_json::from_str(
        &std::fs::read_to_string(backups_dir(&p).join(pre).join("manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(counts["row_counts"]["public.users"], 51);
    assert_eq!(counts["row_counts"]["public.clients"], 1);
    db.batch_execute("INSERT INTO users VALUES (778, 'writable')").unwrap();
}

#[test]
fn pg_dump_missing_or_older_than_the_server_exits_3() {
    let p = with_users("tools", 5);
    let missing = fake_bin(&[]);
    std::fs::remove_file(missing.path().join("pg_dump")).unwrap();
    let run = Project::run_env(&p, &[("BACKSTOP_PG_BIN", missing.path())], &["backup", "create"]);
    run.expect_code(3).expect_output("pg_dump not found");
    let run = Project::run_env(&p, &[("BACKSTOP_PG_BIN", missing.path())], &["migrate"]);
    run.expect_code(3).expect_output("pg_dump not found");
    assert!(!p.client().exists("users"), "migrated without a backup");

    let old = fake_bin(&[("pg_dump", "#!/bin/sh\necho 'pg_dump (PostgreSQL) 9.6.24'\n")]);
    let run = Project::run_env(&p, &[("BACKSTOP_PG_BIN", old.path())], &["backup", "create"]);
    run.expect_code(3).expect_output("pg_dump 9.6.24 cannot back up PostgreSQL");
    assert!(listed(&p).is_empty());
}

#[test]
fn sigkill_during_backup_create_lists_nothing_and_the_next_run_cleans_up() {
    let p = with_users("sigkill_create", 20);
    p.run(&["migrate", "--no-backup", "fixture"]).expect_code(0);
    let slow = fake_bin(&[(
        "pg_dump",
        &format!(
            "#!/bin/sh\ncase \"$1\" in --version) exec {0} --version;; esac\nsleep 30\nexec {0} \"$@\"\n",
            real("pg_dump")
        ),
    )]);
    let mut child = p
        .std_cmd(&["backup", "create"])
        .env("BACKSTOP_PG_BIN", slow.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let dir = backups_dir(&p);
    let partial = || {
        std::fs::read_dir(&dir)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .any(|e| e.file_name().to_string_lossy().ends_with(".partial"))
            })
            .unwrap_or(false)
    };
    crate::common::poll_until("a .partial dir appears", 400, Duration::from_millis(50), partial);
    std::thread::sleep(Duration::from_millis(300));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    child.wait().unwrap();

    assert!(listed(&p).is_empty(), "a killed backup is listed");
    assert!(partial(), "the .partial dir is left for the next run to clean");
    p.run(&["backup", "prune", "--dry-run"]).expect_code(0).expect_output("would clean");
    p.run(&["backup", "create"]).expect_code(0);
    assert!(!partial(), "the next run did not clean the dead .partial dir");
    assert_eq!(listed(&p).len(), 1);
}

#[test]
fn an_unwritable_or_full_backup_dir_is_a_clear_error_and_lists_nothing() {
    let p = with_users("dir_full", 20);
    p.run(&["migrate", "--no-backup", "fixture"]).expect_code(0);
    // A file where the backup dir should be: no writing there, even as root.
    p.write("blocked", "not a directory");
    p.config(&format!("{}\n[backup]\ndir = \"blocked/backups\"\n", crate::common::DEFAULT_CONFIG));
    p.run(&["backup", "create"]).expect_code(3).expect_output("could not write to the backup dir");
    p.migration("2_t", "CREATE TABLE t (id int);", None);
    p.run(&["migrate"]).expect_code(3).expect_output("backup gate refused");
    assert!(!p.client().exists("t"));

    // A disk that fills up half-way: a 1 MB tmpfs and a database that
    // does not compress below that.
    let mount = p.path().join("tiny");
    std::fs::create_dir(&mount).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1M", "tmpfs"])
        .arg(&mount)
        .output();
    match mounted {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            eprintln!(
                "skipping the disk-full half: mount -t tmpfs is not permitted here ({})",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return;
        }
        Err(e) => {
            eprintln!("skipping the disk-full half: cannot run mount ({e})");
            return;
        }
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mount.clone());
    p.client()
        .batch_execute(
            "CREATE TABLE noise AS SELECT i, md5(random()::text) || md5(random()::text) AS a, \
             md5(random()::text) AS b FROM generate_series(1, 60000) i",
        )
        .unwrap();
    p.config(&format!("{}\n[backup]\ndir = \"tiny/backups\"\n", crate::common::DEFAULT_CONFIG));
    p.run(&["backup", "create"]).expect_code(3).expect_output("is full");
    assert!(listed(&p).is_empty());
    let left: Vec<_> = std::fs::read_dir(mount.join("backups"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != ".gitignore")
        .collect();
    assert!(left.is_empty(), "a failed backup left {left:?}");
}

#[test]
fn a_restore_killed_half_way_stays_frozen_shows_in_status_and_resume_finishes_it() {
    let p = with_users("resume", 100);
    p.run(&["migrate", "--no-backup", "fixture"]).expect_code(0);
    p.migration("2_extra", "CREATE TABLE extra (id int);\nINSERT INTO extra VALUES (1);", None);
    p.run(&["migrate"]).expect_code(0);
    let guard = applied_backup(&mut p.client(), "2").unwrap();

    let slow = fake_bin(&[(
        "pg_restore",
        &format!(
            "#!/bin/sh\nfor a in \"$@\"; do case \"$a\" in --jobs=*) touch \"$0.started\"; sleep 30;; esac; done\nexec {} \"$@\"\n",
            real("pg_restore")
        ),
    )]);
    let started_marker = slow.path().join("pg_restore.started");
    let mut child = p
        .std_cmd(&["restore", &guard, "--yes"])
        .env("BACKSTOP_PG_BIN", slow.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let journal = backups_dir(&p).join("restore.json");
    crate::common::poll_until(
        "the restore reaching pg_restore",
        600,
        Duration::from_millis(50),
        || {
            let text = std::fs::read_to_string(&journal).unwrap_or_default();
            text.contains("\"restoring\"") && started_marker.exists()
        },
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    child.wait().unwrap();

    // Frozen with an unfinished restore: status says so, and exits 1.
    let status = p.run(&["status"]);
    status
        .expect_code(1)
        .expect_output("restore unfinished")
        .expect_output("--resume")
        .expect_output("frozen:");
    let mut app = p.client();
    let err = app.batch_execute("INSERT INTO extra VALUES (2)").unwrap_err();
    assert!(
        err.to_string().contains("read-only") || format!("{err:?}").contains("read-only"),
        "{err:?}"
    );
    p.run(&["restore", &guard, "--yes"]).expect_code(2).expect_output("--resume");
    // A migration would race the unfinished restore: refused up front.
    p.migration("3_more", "CREATE TABLE more (id int);", None);
    p.run(&["migrate", "--no-backup", "test"])
        .expect_code(1)
        .expect_output("freeze gate refused")
        .expect_output("backstop backup unfreeze");
    std::fs::remove_dir_all(p.path().join("migrations/3_more")).unwrap();
    assert!(!p.client().exists("more"));
    let events = p.client().events();
    assert_eq!(
        events.last().map(|e| (e.0.as_str(), e.1.as_str())),
        Some(("migrate", "refused")),
        "{events:?}"
    );

    // unfreeze lifts the freeze (and reminds of the unfinished restore).
    p.run(&["unfreeze"])
        .expect_code(0)
        .expect_output("lifted the write freeze")
        .expect_output("--resume");
    let mut app = p.client();
    app.batch_execute("INSERT INTO extra VALUES (2)").unwrap();

    p.run(&["restore", &guard, "--resume", "--yes"]).expect_code(0).expect_output("resumed");
    let mut db = p.client();
    assert!(!db.exists("extra"));
    assert_eq!(db.applied(), ["1"]);
    assert!(!journal.exists());
    p.run(&["status"]).expect_code(0);
    assert!(!p.run(&["status"]).all().contains("frozen"));
    p.run(&["unfreeze"]).expect_code(0).expect_output("no write freeze");
}

#[test]
fn prune_applies_retention_and_keeps_the_newest_keep_min() {
    let p = with_users("prune", 5);
    p.run(&["migrate", "--no-backup", "fixture"]).expect_code(0);
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(
            p.run(&["backup", "create", "--format", "json"]).expect_code(0).json()["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    // Age the oldest four by 40 days.
    for id in &ids[..4] {
        let path = backups_dir(&p).join(id).join("manifest.json");
        let mut m: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let created: chrono::DateTime<chrono::Utc> =
            m["created_at"].as_str().unwrap().parse().unwrap();
        m["created_at"] = Value::String((created - chrono::Duration::days(40)).to_rfc3339());
        std::fs::write(&path, m.to_string()).unwrap();
    }
    p.config(&format!(
        "{}\n[backup]\nretention = \"30d\"\nkeep_min = 3\n",
        crate::common::DEFAULT_CONFIG
    ));
    p.run(&["backup", "prune", "--dry-run"])
        .expect_code(0)
        .expect_output(&format!("would remove {}", ids[0]))
        .expect_output(&format!("would remove {}", ids[1]));
    assert_eq!(listed(&p).len(), 5, "--dry-run removed something");
    // `--yes` does; a script that passes neither flag still removes, this
    // release, and is told to add it (a terminal only lists: below).
    p.run(&["backup", "prune", "--dry-run", "--yes"]).expect_code(2);
    let report = p.run(&["backup", "prune", "--yes", "--format", "json"]).expect_code(0).json();
    let removed: Vec<&str> =
        report["removed"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(removed, [ids[0].as_str(), ids[1].as_str()]);
    let left: Vec<String> =
        listed(&p).iter().map(|b| b["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(left, [ids[4].clone(), ids[3].clone(), ids[2].clone()]);
    // With keep_min 2, the oldest left (aged above) may go.
    let older = ids[2].clone();
    p.config(&format!(
        "{}\n[backup]\nretention = \"30d\"\nkeep_min = 2\n",
        crate::common::DEFAULT_CONFIG
    ));
    let Some(script) = crate::common::program("script", "Debian's util-linux (bsdutils)") else {
        return;
    };
    let line = format!("{} backup prune", crate::common::backstop_bin().display());
    let on_terminal = std::process::Command::new(script)
        .args(["-qec", &line, "/dev/null"])
        .current_dir(p.path())
        .env("DATABASE_URL", &p.url)
        .env_remove("BACKSTOP_CONFIG")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&on_terminal.stdout);
    assert!(said.contains(&format!("would remove {older}")), "on a terminal: {said}");
    assert!(said.contains("run again with --yes"), "on a terminal: {said}");
    assert_eq!(listed(&p).len(), 3, "a terminal's prune without --yes removed a backup");
    let by_script = p.run(&["backup", "prune"]);
    by_script.expect_code(0).expect_output(&format!("removed {older}")).expect_output("add --yes");
    assert_eq!(listed(&p).len(), 2);
}

#[test]
fn a_table_locked_by_another_session_stops_the_backup_after_lock_wait() {
    let p = with_users("locked", 5);
    p.run(&["migrate", "--no-backup", "fixture"]).expect_code(0);
    p.config(&format!("{}\n[backup]\nlock_wait = \"500ms\"\n", crate::common::DEFAULT_CONFIG));
    let mut other = p.client();
    let mut holder = other.transaction().unwrap();
    holder.batch_execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE").unwrap();
    p.migration("2_t", "CREATE TABLE t (id int);", None);
    p.run(&["migrate"]).expect_code(3).expect_output("for a table lock another session holds");
    holder.rollback().unwrap();
    assert!(!p.client().exists("t"));
    assert!(listed(&p).is_empty(), "a failed backup is listed");
    p.run(&["migrate"]).expect_code(0);
}
