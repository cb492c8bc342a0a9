//! The swap, where the role may create databases and owns the target:
//! restore into a new database (or take a pre-restore snapshot's database
//! as it is), check it, keep the current database as the pre-restore
//! snapshot, carry the audit log over, then rename both in one
//! transaction. Atomic, and the old database, kept read-only under a new
//! name, is listed as a backup of kind `database` once the renames
//! committed (never before: an entry names a database that exists). A run
//! stopped anywhere, between the swap's statements or by a server
//! restart, is looked at from the maintenance database ([`reopen`]):
//! every database it involves takes sessions again, and whether the
//! renames committed says whether only the finish is left.

use std::time::{Duration, Instant};

use chrono::Utc;
use postgres::Client;

use super::databases::{
    self, connect_to, copy_database_settings, database_exists, derived_name, literal, maintenance,
};
use super::journal::{crash_point, Journal, Step};
use super::{copy_events, point_in_time, Failure, Run};
use crate::backup::create::{facts, source_of};
use crate::backup::manifest::{Kind, Manifest, Verification};
use crate::backup::store::{new_id, PARTIAL};
use crate::backup::tools::{self, run_verbose, tail};
use crate::backup::verify::compare;
use crate::backup::{BackupError, Note, Store};
use crate::freeze::{self, FreezeSection};
use crate::kit::duration::Backoff;
use crate::pg::lock::MigrationLock;
use crate::pg::quote_ident;

/// Where the unfinished swap `j` stands, seen from the maintenance
/// database (the target refuses sessions when the run stopped after
/// closing it, also across a server restart), with the databases it
/// involves taking sessions again. Returns whether the renames committed:
/// the snapshot database exists, and only the finish is left. If not, the
/// target is the database as it was, and an entry an older Backstop
/// recorded for the snapshot before the swap is removed: its database
/// never existed.
pub(super) fn reopen(url: &str, store: &Store, j: &Journal) -> Result<bool, BackupError> {
    let mut admin = maintenance(url)?;
    let snapshot = match &j.snapshot_database {
        Some(snap) if database_exists(&mut admin, snap)? => Some(snap),
        _ => None,
    };
    allow_connections(&mut admin, &j.database)?;
    if let Some(snap) = snapshot {
        // Stopped between the renames and opening the snapshot again.
        allow_connections(&mut admin, snap)?;
        return Ok(true);
    }
    if let (Some(id), Some(snap)) = (&j.snapshot_id, &j.snapshot_database) {
        if store.load(id).is_ok_and(|m| m.snapshot_database.as_ref() == Some(snap)) {
            store.remove(id)?;
        }
    }
    Ok(false)
}

/// A process that lets sessions into `names` again once this one is
/// gone without saying it is done: the swap closes the target to new
/// sessions, and a kill there must not leave it closed to its users. It
/// waits on a pipe only this process holds (the kernel closes it however
/// the process ends), then runs `psql` against a maintenance database.
struct Reopener {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
}

impl Reopener {
    fn start(
        url: &str,
        tools: &crate::backup::Tools,
        names: &[&str],
    ) -> Result<Reopener, BackupError> {
        use std::os::unix::process::CommandExt as _;
        let maintenance = if names.contains(&"postgres") { "template1" } else { "postgres" };
        let target = crate::backup::tools::target(url, Some(maintenance))?;
        let cmd = tools.command("psql", &target);
        // The psql the watcher runs gets this command's environment
        // (the password); the watcher itself must outlive this process.
        let statements: Vec<String> = names
            .iter()
            .map(|n| format!("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true", quote_ident(n)))
            .collect();
        let script = r#"read line; [ "$line" = done ] && exit 0; exec "$0" -X -q "$@""#;
        let mut watcher = std::process::Command::new("sh");
        watcher.arg("-c").arg(script).arg(cmd.get_program());
        for s in &statements {
            watcher.arg("-c").arg(s);
        }
        watcher.arg(format!("--dbname={}", target.conninfo));
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => watcher.env(k, v),
                None => watcher.env_remove(k),
            };
        }
        let mut child = watcher
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|source| BackupError::Spawn { tool: "sh".into(), source })?;
        let stdin = child.stdin.take().expect("stdin is piped");
        Ok(Reopener { child, stdin })
    }

    /// The swap ended here, one way or the other: the watcher goes.
    fn done(mut self) {
        use std::io::Write as _;
        let _ = self.stdin.write_all(b"done\n");
        drop(self.stdin);
        let _ = self.child.wait();
    }
}

/// Lets sessions into `name` again (see `databases::allow_connections`).
fn allow_connections(admin: &mut Client, name: &str) -> Result<(), BackupError> {
    databases::allow_connections(admin, name)
        .map_err(BackupError::db(format!("opening {name} to sessions again")))
}

/// A pre-restore snapshot's database stays a backup when putting it back
/// is given up: frozen again as it was kept (the swap lifts its freeze
/// before the renames). Nothing for a restore of a dump.
pub(super) fn keep_incoming_frozen(
    url: &str,
    store: &Store,
    j: &Journal,
) -> Result<(), BackupError> {
    let Ok(m) = store.load(&j.backup_id) else { return Ok(()) };
    match (m.kind, &m.snapshot_database) {
        (Kind::Database, Some(name)) => refreeze(url, name),
        _ => Ok(()),
    }
}

/// Freezes the snapshot database `name` again, unless it is frozen.
fn refreeze(url: &str, name: &str) -> Result<(), BackupError> {
    let mut c = connect_to(url, name)?;
    let frozen = freeze::current(&mut c).map_err(BackupError::db("reading backstop.freeze"))?;
    if frozen.is_none() {
        let quiet = FreezeSection { terminate_sessions: false, roles: vec![] };
        freeze::freeze(&mut c, "pre-restore snapshot", &quiet)?;
    }
    Ok(())
}

/// The database the backup comes in as: a new one it is restored into
/// (`temporary`: dropped again when the restore is abandoned), or the
/// database of a pre-restore snapshot, put back as it is.
struct Incoming {
    name: String,
    temporary: bool,
}

impl Incoming {
    /// The incoming database of `j`. A new database's name is derived once
    /// and kept in the journal, so that a resumed run finds it again.
    fn of(j: &mut Journal, m: &Manifest, admin: &mut Client) -> Result<Incoming, Failure> {
        match m.kind {
            Kind::RestorePoint | Kind::DataDirectory => Err(point_in_time(m).into()),
            Kind::Dump => {
                let name = j
                    .temp_database
                    .get_or_insert_with(|| derived_name(&j.database, "restoring", &j.restore_id))
                    .clone();
                Ok(Incoming { name, temporary: true })
            }
            Kind::Database => {
                let name = m.snapshot_database.clone().ok_or_else(|| {
                    BackupError::Refused(format!("backup {} names no snapshot database", m.id))
                })?;
                if !database_exists(admin, &name)? {
                    return Err(BackupError::Refused(format!(
                        "the snapshot database {name} of backup {} is gone; remove the entry with \
                         `backstop backup prune`",
                        m.id
                    ))
                    .into());
                }
                Ok(Incoming { name, temporary: false })
            }
        }
    }
}

/// The current database, set aside: the name it will be kept under.
struct SetAside {
    database: String,
}

/// Abandoning leaves the target as it was, but only once the database
/// restored into is gone: otherwise the run stays on record (stuck) so
/// that --resume or unfreeze finds and drops it.
fn abandon(admin: &mut Client, incoming: &Incoming, e: BackupError) -> Failure {
    if incoming.temporary {
        let dropped = admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {}", quote_ident(&incoming.name)));
        if let Err(drop) = dropped {
            return Failure::Stuck(BackupError::CleanupFailed {
                cause: Box::new(e),
                cleanup: format!(
                    "dropping {}: {}",
                    incoming.name,
                    crate::pg::conn::error_chain(&drop)
                ),
            });
        }
    }
    Failure::Abandoned(e)
}

impl Run<'_> {
    /// Swap: the steps after the journal's last finished one, up to and
    /// including the swap (the finish is the driver's). Each step records
    /// itself in the journal; the names it derives are kept there too, so
    /// that a resumed run redoes a step with the same databases.
    pub(super) fn swap(
        &mut self,
        j: &mut Journal,
        m: &Manifest,
        mut lock: MigrationLock<'_>,
    ) -> Result<(), Failure> {
        let mut admin = maintenance(self.url)?;
        let incoming = Incoming::of(j, m, &mut admin)?;
        let mut checked = None;
        loop {
            match j.step {
                // 3. The backup, restored and checked, under a name nobody uses.
                Step::Started | Step::Frozen | Step::Restoring => {
                    if incoming.temporary {
                        self.restore_into_new(j, m, &mut admin, &incoming)?;
                    }
                    checked = Some(self.check_incoming(j, m, &mut admin, &incoming)?);
                }
                // Restored and checked, by this run or an earlier one (then
                // checked again, as it was left unattended). A journal that
                // says `swapped` gets here only when the snapshot database is
                // gone (see `reopen`): the swap is not confirmed, so
                // the run goes on from the check.
                Step::Restored | Step::Swapped => {
                    let restored = match checked.take() {
                        Some(restored) => restored,
                        None => self.check_incoming(j, m, &mut admin, &incoming)?,
                    };
                    // 4. The current database becomes the pre-restore snapshot.
                    let aside =
                        self.set_aside_current(j, &mut lock, restored, &mut admin, &incoming)?;
                    crash_point("set_aside");
                    // 5. The swap.
                    return self.swap_in(j, lock, &mut admin, &incoming, &aside);
                }
            }
        }
    }

    /// Step `restoring`: recorded first, since a run stopped in pg_restore
    /// leaves a database to drop; then the backup goes into a new database.
    /// A resumed run starts it over (pg_restore cannot go on half-way).
    fn restore_into_new(
        &mut self,
        j: &mut Journal,
        m: &Manifest,
        admin: &mut Client,
        incoming: &Incoming,
    ) -> Result<(), Failure> {
        j.record(Step::Restoring, self.store)?;
        if let Err(e) = self.create_and_restore(admin, &j.database, &incoming.name, m) {
            return Err(abandon(admin, incoming, e));
        }
        Ok(())
    }

    /// Step `restored`: the incoming database is opened and compared with
    /// the manifest. A resumed run checks again, as the database was left
    /// unattended. Returns the session on it, which carries the audit log
    /// over next.
    fn check_incoming(
        &mut self,
        j: &mut Journal,
        m: &Manifest,
        admin: &mut Client,
        incoming: &Incoming,
    ) -> Result<Client, Failure> {
        let source_db = &incoming.name;
        if !incoming.temporary {
            databases::allow_connections(admin, source_db)
                .map_err(BackupError::db("opening the snapshot database"))?;
        }
        let mut restored = match connect_to(self.url, source_db) {
            Ok(c) => c,
            Err(e) => return Err(abandon(admin, incoming, e)),
        };
        self.progress.note(Note::Step(format!("checking {source_db} against backup {}", m.id)));
        let checked = compare(&mut restored, m).and_then(|differences| {
            if differences.is_empty() {
                Ok(())
            } else {
                Err(BackupError::Mismatch { id: m.id.clone(), differences })
            }
        });
        if let Err(e) = checked {
            drop(restored);
            return Err(abandon(admin, incoming, e));
        }
        if j.step < Step::Restored {
            j.record(Step::Restored, self.store)?;
        }
        Ok(restored)
    }

    /// Step 4, under the freeze: the name the current database will be
    /// kept under and the id of its entry are fixed in the journal, and
    /// the audit log and the flags are carried over to the restored
    /// database. Not a step of its own: a resumed run does it again. The
    /// entry itself is written once the snapshot database exists
    /// ([`Run::keep_snapshot`]).
    fn set_aside_current(
        &mut self,
        j: &mut Journal,
        lock: &mut Client,
        mut restored: Client,
        admin: &mut Client,
        incoming: &Incoming,
    ) -> Result<SetAside, Failure> {
        let target = j.database.clone();
        let snap_name = j
            .snapshot_database
            .get_or_insert_with(|| derived_name(&target, "pre_restore", &j.restore_id))
            .clone();
        j.snapshot_id.get_or_insert_with(|| new_id(Utc::now()));
        j.save(self.store)?;
        let carried = copy_events(lock, &mut restored).and_then(|n| {
            // The flags and their ramps are as they are now, not as they were then.
            crate::schema::flags::carry_over(lock, &mut restored)
                .map_err(BackupError::db("carrying backstop.flags over"))?;
            crate::schema::ramps::carry_over(lock, &mut restored)
                .map_err(BackupError::db("carrying backstop.ramps over"))?;
            if !incoming.temporary {
                // The snapshot was frozen when it was set aside.
                freeze::unfreeze(&mut restored)?;
            }
            Ok(n)
        });
        drop(restored);
        if let Err(e) = carried {
            return Err(abandon(admin, incoming, e));
        }
        Ok(SetAside { database: snap_name })
    }

    /// Step `swapped`: nobody may be connected to either database. Our own
    /// session on the target goes too (the swap ends it with the rest);
    /// the target stays closed to new sessions until the swap commits. A
    /// failed swap puts back what step 4 changed and abandons the run.
    fn swap_in(
        &mut self,
        j: &mut Journal,
        mut lock: MigrationLock<'_>,
        admin: &mut Client,
        incoming: &Incoming,
        aside: &SetAside,
    ) -> Result<(), Failure> {
        let (target, source_db) = (j.database.clone(), &incoming.name);
        self.progress.note(Note::Step(format!("swapping {source_db} in as {target}")));
        let _ = lock.batch_execute("select pg_advisory_unlock_all()");
        drop(lock);
        // Whatever ends this process from here on, both names take
        // sessions again (the watcher acts when the process is gone).
        let reopener = Reopener::start(self.url, self.tools, &[&target, &aside.database])?;
        let swapped = swap_names(admin, &target, source_db, &aside.database);
        reopener.done();
        if let Err(e) = swapped {
            let _ = allow_connections(admin, &target);
            if !incoming.temporary {
                // Put the snapshot's freeze back as it was.
                let _ = refreeze(self.url, source_db);
            }
            return Err(abandon(admin, incoming, e));
        }
        j.record(Step::Swapped, self.store)?;
        Ok(())
    }

    /// After the renames: the database as it was before the restore, now
    /// the snapshot database, recorded as a backup of kind `database`.
    /// Read from the snapshot itself (frozen since before the renames), so
    /// that a resumed finish records the same; written once.
    pub(super) fn keep_snapshot(&mut self, j: &Journal) -> Result<(), BackupError> {
        let (Some(id), Some(name)) = (&j.snapshot_id, &j.snapshot_database) else {
            return Ok(());
        };
        if self.store.load(id).is_ok() {
            return Ok(());
        }
        self.progress.note(Note::Step(format!(
            "keeping the {} as it was as {name} (backup {id}, kind database)",
            j.database
        )));
        let mut client = connect_to(self.url, name)?;
        let mut snapshot = snapshot_manifest(&mut client, id, name)?;
        snapshot.database = j.database.clone();
        // What a run killed while writing it left.
        let partial = self.store.dir().join(format!("{id}{PARTIAL}"));
        if partial.exists() {
            std::fs::remove_dir_all(&partial).map_err(BackupError::io(&partial))?;
        }
        let partial = self.store.begin(id)?;
        snapshot.write(&partial)?;
        self.store.commit(id, &partial)?;
        Ok(())
    }

    /// Creates `name` like `target` (owner, encoding, collation, then the
    /// settings and grants a restore without `--create` does not carry)
    /// and pg_restores the backup into it.
    fn create_and_restore(
        &mut self,
        admin: &mut Client,
        target: &str,
        name: &str,
        m: &Manifest,
    ) -> Result<(), BackupError> {
        let row = admin
            .query_one(
                "select pg_get_userbyid(datdba)::text, pg_encoding_to_char(encoding)::text,
                        datcollate::text, datctype::text
                   from pg_database where datname = $1",
                &[&target],
            )
            .map_err(BackupError::db("reading the target database's settings"))?;
        let (owner, encoding, collate, ctype): (String, String, String, String) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {}", quote_ident(name)))
            .map_err(BackupError::db(format!("dropping an earlier {name}")))?;
        admin
            .batch_execute(&format!(
                "CREATE DATABASE {name_q} TEMPLATE template0 \
                 ENCODING {} LC_COLLATE {} LC_CTYPE {} OWNER {}",
                literal(&encoding),
                literal(&collate),
                literal(&ctype),
                quote_ident(&owner),
                name_q = quote_ident(name),
            ))
            .map_err(BackupError::db(format!("creating {name} to restore into")))?;
        copy_database_settings(admin, target, name)?;
        self.progress.note(Note::Step(format!(
            "restoring backup {} into {name} with {} job(s)",
            m.id, self.options.jobs
        )));
        let target = tools::target(self.url, Some(name))?;
        let mut cmd = self.tools.command("pg_restore", &target);
        cmd.args(["--verbose", "--exit-on-error"])
            .arg(format!("--jobs={}", self.options.jobs.max(1)))
            .arg(format!("--dbname={}", target.conninfo))
            .arg(self.store.dump_dir(&m.id));
        let (ok, stderr) =
            run_verbose(cmd, "pg_restore", m.row_counts.len() as u64, self.progress)?;
        self.progress.note(Note::Finished);
        if !ok {
            return Err(BackupError::RestoreFailed { id: m.id.clone(), output: tail(&stderr) });
        }
        // A backup taken during a freeze must not bring the freeze back.
        let mut restored = connect_to(self.url, name)?;
        crate::schema::freeze::clear(&mut restored)
            .map_err(BackupError::db("clearing a restored freeze record"))?;
        Ok(())
    }
}

/// The current database as a backup of kind `database`: its row counts and
/// schema fingerprint now, under the freeze.
fn snapshot_manifest(
    client: &mut Client,
    id: &str,
    snapshot_db: &str,
) -> Result<Manifest, BackupError> {
    let source = source_of(client)?;
    let f = facts(client).map_err(BackupError::db("counting rows of the pre-restore snapshot"))?;
    let size: i64 = client
        .query_one("select pg_database_size(current_database())", &[])
        .map_err(BackupError::db("measuring the database"))?
        .get(0);
    Ok(Manifest {
        format: 1,
        id: id.to_string(),
        kind: Kind::Database,
        label: Some("pre-restore".into()),
        created_at: Utc::now(),
        database: source.database,
        system_identifier: source.system_identifier,
        server_version: source.server_version,
        server_version_num: source.server_version_num,
        encoding: source.encoding,
        pg_dump_version: None,
        compression: None,
        jobs: None,
        size_bytes: size.max(0) as u64,
        files: Vec::new(),
        row_counts: f.row_counts,
        schema_fingerprint: f.fingerprint,
        schema_fingerprints: f.fingerprints,
        left_out: Vec::new(),
        roles: f.roles,
        extensions: f.extensions,
        database_settings: f.database_settings,
        duration_ms: 0,
        guards: Vec::new(),
        state: None,
        snapshot_database: Some(snapshot_db.to_string()),
        restore_point: None,
        kept_data_dir: None,
        verification: Verification::default(),
    })
}

/// Renames `target` to `snapshot` and `source` to `target` in one
/// transaction, after closing `target` to new sessions and ending the ones
/// still there. The snapshot is opened again (read-only, as frozen).
fn swap_names(
    admin: &mut Client,
    target: &str,
    source: &str,
    snapshot: &str,
) -> Result<(), BackupError> {
    let (t, s, p) = (quote_ident(target), quote_ident(source), quote_ident(snapshot));
    admin
        .batch_execute(&format!("ALTER DATABASE {t} WITH ALLOW_CONNECTIONS false"))
        .map_err(BackupError::db(format!("closing {target} to new sessions")))?;
    crash_point("closed");
    let deadline = Instant::now() + Duration::from_secs(10);
    // Ended sessions leave within a few milliseconds; a fixed pause of
    // 100 ms was most of a small swap's time.
    let mut backoff = Backoff::up_to(Duration::from_millis(100));
    loop {
        let left: Vec<String> = admin
            .query(
                "select pid::text || ' (' || coalesce(usename::text, '?') || ')' from pg_stat_activity
                  where datname in ($1, $2) and pid <> pg_backend_pid()",
                &[&target, &source],
            )
            .map_err(BackupError::db("listing sessions"))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if left.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            return Err(BackupError::Refused(format!(
                "cannot swap databases: session(s) {} are still connected to {target} and this role \
                 may not end them; end them (or run as a superuser) and retry",
                left.join(", ")
            )));
        }
        let _ = admin.execute(
            "select pg_terminate_backend(pid) from pg_stat_activity
              where datname in ($1, $2) and pid <> pg_backend_pid()",
            &[&target, &source],
        );
        backoff.pause();
    }
    admin
        .batch_execute(&format!(
            "BEGIN; ALTER DATABASE {t} RENAME TO {p}; ALTER DATABASE {s} RENAME TO {t}; COMMIT;"
        ))
        .map_err(|e| {
            let _ = admin.batch_execute("ROLLBACK");
            BackupError::db("swapping the databases")(e)
        })?;
    crash_point("renamed");
    databases::allow_connections(admin, snapshot)
        .map_err(BackupError::db(format!("opening {snapshot} for reading")))?;
    crash_point("reopened");
    Ok(())
}
