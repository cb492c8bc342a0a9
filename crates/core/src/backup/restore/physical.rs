//! The restore of a pgBackRest restore point: a point-in-time recovery of
//! the whole cluster, swapped in for the server's data directory. Checks
//! first (this host and this server, the directory's owner, no user
//! tablespaces, no other database changed since the point unless
//! `--whole-cluster`), then the journal's steps, each resumable after a
//! crash:
//!
//! - `recovering` → `recovered`: `pgbackrest restore --type=name` into
//!   `<data_dir>.restoring-<id>`, started on a spare port with no archive
//!   command (its WAL kept for the server's) until it promotes at the
//!   point;
//! - `verified`: the protected tables' row counts and checksums, the schema
//!   and `backstop.applied` as recorded at the point, else the copy is
//!   removed and nothing else changed;
//! - `frozen`: the database's writes frozen, the audit log and the flags
//!   carried over to the copy;
//! - `swapping` → `swapped`: the server stopped, `<data_dir>` renamed to
//!   `<data_dir>.pre-restore-<id>` (kept: nothing written since the point is
//!   lost), the copy renamed into its place and the server started as it
//!   ran before;
//! - the finish: the replaced directory recorded as an entry of kind
//!   `data_directory`, the restore audited, the journal forgotten.
//!
//! Such an entry is restored the same way without the recovery: the kept
//! directory is the copy, started, frozen for, and swapped back in.

use std::path::PathBuf;
use std::time::Instant;

use postgres::Client;

use super::journal::{crash_point, Journal, Physical, PhysicalStep, Strategy};
use super::server;
use super::{
    copy_events, lift_and_forget, migration_lock, record_failure, record_success, RestoreOptions,
    RestoreReport,
};
use crate::backup::create::source_of;
use crate::backup::manifest::{DatabaseWrites, KeptDataDir, Kind, Manifest, RestorePoint};
use crate::backup::pgbackrest::restore_to;
use crate::backup::point;
use crate::backup::store::new_id;
use crate::backup::{BackupError, Note, Progress, Store};
use crate::freeze::{self, FreezeGuard, FreezeSection};

/// What one physical restore works with.
struct Pitr<'a> {
    url: &'a str,
    store: &'a Store,
    m: &'a Manifest,
    /// What comes back: a restore point (recovered), or a kept data
    /// directory (swapped back as it is).
    point: Option<&'a RestorePoint>,
    kept: Option<&'a KeptDataDir>,
    /// It, in words.
    what: String,
    progress: &'a mut dyn Progress,
    warnings: Vec<String>,
}

/// Restores the restore point `m` over the server of `url`, or finishes
/// the unfinished restore `unfinished` of it.
pub(super) fn restore(
    url: &str,
    store: &Store,
    m: &Manifest,
    unfinished: Option<Journal>,
    options: &RestoreOptions,
    freeze_options: &FreezeSection,
    progress: &mut dyn Progress,
) -> Result<RestoreReport, BackupError> {
    let started = Instant::now();
    let (point, kept) = (m.restore_point.as_ref(), m.kept_data_dir.as_ref());
    let what = match (point, kept) {
        (Some(p), _) => format!("restore point {}", p.name),
        (None, Some(k)) => format!("the data directory kept in {}", k.path.display()),
        (None, None) => {
            return Err(BackupError::Refused(format!(
                "backup {} records no restore point and no data directory",
                m.id
            )))
        }
    };
    let resumed = unfinished.is_some();
    let mut run = Pitr { url, store, m, point, kept, what, progress, warnings: Vec::new() };
    // A swap under way may have left the server down: it goes on without
    // a session first.
    if let Some(mut j) = unfinished.clone().filter(past_no_return) {
        run.swap_in(&mut j)?;
        return run.finish(&j, started, true);
    }
    let mut client = crate::pg::connect(url, "backstop")?;
    freeze::exempt(&mut client).map_err(BackupError::db("exempting the session"))?;
    let source = source_of(&mut client)?;
    if !m.same_database(source.system_identifier.as_deref(), &source.database) {
        return Err(BackupError::wrong_database(&m.id, m, &source));
    }
    let mut lock = migration_lock(&mut client, options.lock_wait, run.progress)?;
    let mut j = match unfinished {
        Some(j) => j,
        None => {
            let physical = run.check(&mut lock, &source.database, options)?;
            let mut j = Journal::begin(&m.id, &source.database, Strategy::Physical);
            j.physical = Some(physical);
            j.record_physical(PhysicalStep::Checked, store)?;
            j
        }
    };
    let guard = match run.prepare(&mut j, &mut lock, freeze_options) {
        Ok(guard) => guard,
        Err((e, freeze)) => return Err(run.abandon(&j, e, freeze)),
    };
    // Past here the server stops: only --resume finishes the restore. The
    // replaced directory's entry id is fixed now, for a resumed finish.
    j.snapshot_id.get_or_insert_with(|| new_id(chrono::Utc::now()));
    j.record_physical(PhysicalStep::Swapping, store)?;
    let _ = lock.batch_execute("select pg_advisory_unlock_all()");
    drop(lock);
    drop(client);
    guard.keep();
    if let Err(e) = run.swap_in(&mut j) {
        record_failure(url, &m.id, &e);
        return Err(BackupError::PgBackRest {
            what: crate::kit::error::chain(&e),
            fix: format!(
                "the restore stopped while swapping the data directories: fix that, then finish \
                 it with `backstop backup restore {} --resume`",
                m.id
            ),
        });
    }
    run.finish(&j, started, resumed)
}

/// Whether the unfinished restore `j` has begun to stop the server.
pub(super) fn past_no_return(j: &Journal) -> bool {
    j.physical.as_ref().is_some_and(|p| p.step >= PhysicalStep::Swapping)
}

impl Pitr<'_> {
    /// The checks before anything is touched; what the restore works on.
    fn check(
        &mut self,
        client: &mut Client,
        database: &str,
        options: &RestoreOptions,
    ) -> Result<Physical, BackupError> {
        let row = client
            .query_one(
                "select current_setting('data_directory'),
                        current_setting('server_version_num')::int,
                        current_setting('port')::int,
                        coalesce((select string_agg(spcname::text, ', ' order by spcname)
                                    from pg_tablespace
                                   where spcname not in ('pg_default', 'pg_global')), '')",
                &[],
            )
            .map_err(BackupError::db("reading the server's data directory (a superuser, or a role with pg_read_all_settings)"))?;
        let (data_dir, version, port, tablespaces): (String, i32, i32, String) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        let major = crate::pg::bins::major_of_num(version);
        if major != crate::pg::bins::major_of_num(self.m.server_version_num) {
            return Err(BackupError::Refused(format!(
                "{} is of PostgreSQL {}, the server runs {major}; a data directory starts only \
                 under its own major",
                self.what,
                crate::pg::bins::major_of_num(self.m.server_version_num)
            )));
        }
        let data_dir = PathBuf::from(data_dir);
        let incoming = self.incoming(&data_dir)?;
        let owner = server::owner_of(&data_dir)?;
        if !tablespaces.is_empty() {
            return Err(BackupError::PgBackRest {
                what: format!(
                    "the cluster has tablespace(s) {tablespaces} outside its data directory; \
                     pgBackRest would restore them over the live ones, which the server still \
                     uses while the copy is checked"
                ),
                fix: "restore with pgBackRest yourself (server stopped, --delta), or move the \
                      tablespaces' contents into pg_default"
                    .into(),
            });
        }
        let bin = crate::pg::cluster::PgBin::for_major(major, crate::pg::bins::Match::Exact)?;
        let mut physical = Physical {
            step: PhysicalStep::Checked,
            server_options: String::new(),
            data_dir,
            bin_dir: bin.dir,
            major,
            owner,
            port: server::spare_port()?,
            server_stop: options.server.stop.clone(),
            server_start: options.server.start.clone(),
            incoming,
        };
        server::same_server(&physical, self.m.system_identifier.as_deref(), port as u16)?;
        physical.server_options = server::server_options(&physical.data_dir)?;
        self.whole_cluster(client, database, options.whole_cluster)?;
        Ok(physical)
    }

    /// A physical restore brings back every database of the cluster: one
    /// that changed since the point is refused unless `whole_cluster`.
    fn whole_cluster(
        &mut self,
        client: &mut Client,
        database: &str,
        whole_cluster: bool,
    ) -> Result<(), BackupError> {
        let recorded: Option<&Vec<DatabaseWrites>> = match (self.point, self.kept) {
            (Some(p), _) => p.state.as_ref().map(|s| &s.databases),
            (None, Some(k)) => Some(&k.databases),
            (None, None) => None,
        };
        let changed = match recorded {
            Some(databases) => {
                let now = point::database_writes(client)?;
                point::changed_since(databases, &now, database)
            }
            None => vec!["the point recorded no write counters to compare".to_string()],
        };
        self.progress.note(Note::Step(format!(
            "a physical restore is of the whole cluster: every database on the server goes back \
             to {}",
            self.what
        )));
        if changed.is_empty() {
            return Ok(());
        }
        if !whole_cluster {
            return Err(BackupError::Refused(format!(
                "a physical restore brings back the whole cluster, and other databases changed \
                 since {}: {}; their writes since would be undone (kept only in the pre-restore \
                 data directory). Pass --whole-cluster to restore all of it anyway",
                self.what,
                changed.join(", ")
            )));
        }
        let w = format!(
            "--whole-cluster: writes since the point to other databases are undone ({}); the \
             pre-restore data directory keeps them",
            changed.join(", ")
        );
        self.progress.note(Note::Warning(w.clone()));
        self.warnings.push(w);
        Ok(())
    }

    /// The steps up to `frozen`, after the journal's last one. A failure
    /// returns the freeze's guard when the writes were frozen, for the
    /// abandon to lift.
    fn prepare(
        &mut self,
        j: &mut Journal,
        lock: &mut Client,
        freeze_options: &FreezeSection,
    ) -> Result<FreezeGuard, (BackupError, Option<FreezeGuard>)> {
        let p = j.physical.clone().expect("a physical restore's journal");
        let restoring = p.restoring(&j.restore_id);
        let run_dir = p.run_dir(&j.restore_id);
        // A resumed run may find the writes frozen by the run before.
        let url = self.url;
        let fail =
            |e: BackupError| (e, (p.step >= PhysicalStep::Frozen).then(|| FreezeGuard::new(url)));
        if let Some(point) = self.point {
            if p.step < PhysicalStep::Recovered || !restoring.exists() {
                j.record_physical(PhysicalStep::Recovering, self.store).map_err(fail)?;
                self.recover(&p, point, &restoring).map_err(fail)?;
            }
        }
        self.progress
            .note(Note::Step(format!("starting {} on port {} as a copy", self.what, p.port)));
        server::start_copy(&p, &restoring, &run_dir).map_err(fail)?;
        if p.step < PhysicalStep::Recovered {
            j.record_physical(PhysicalStep::Recovered, self.store).map_err(fail)?;
        }
        let mut copy =
            server::copy_client(&p, &restoring, &run_dir, self.url, &j.database).map_err(fail)?;
        // Checked again on a resumed run: the copy was left unattended.
        self.verify(&mut copy).map_err(fail)?;
        if p.step < PhysicalStep::Verified {
            j.record_physical(PhysicalStep::Verified, self.store).map_err(fail)?;
        }
        self.progress.note(Note::Step(format!("freezing writes to {}", j.database)));
        let reason = format!("restore of backup {}", j.backup_id);
        let frozen = freeze::freeze(lock, &reason, freeze_options).map_err(|e| fail(e.into()))?;
        let guard = FreezeGuard::new(self.url);
        for w in frozen.warnings {
            self.progress.note(Note::Warning(w.clone()));
            self.warnings.push(w);
        }
        // Everything the log and the flags say now goes with the copy.
        let carried = copy_events(lock, &mut copy).and_then(|_| {
            crate::schema::flags::carry_over(lock, &mut copy)
                .map_err(BackupError::db("carrying backstop.flags over"))?;
            crate::schema::ramps::carry_over(lock, &mut copy)
                .map(|_| ())
                .map_err(BackupError::db("carrying backstop.ramps over"))
        });
        if let Err(e) = carried {
            return Err((e, Some(guard)));
        }
        if let Err(e) = j.record_physical(PhysicalStep::Frozen, self.store) {
            return Err((e, Some(guard)));
        }
        Ok(guard)
    }

    /// Step `recovering`: pgBackRest restores into a new directory beside
    /// the data directory (a resumed run starts it over).
    fn recover(
        &mut self,
        p: &Physical,
        point: &RestorePoint,
        restoring: &std::path::Path,
    ) -> Result<(), BackupError> {
        server::stop(p, restoring)?;
        server::fresh_dir(restoring, p.owner)?;
        self.progress.note(Note::Step(format!(
            "restoring pgBackRest backup {} and the WAL up to {} into {}",
            point.backup_label,
            point.name,
            restoring.display()
        )));
        restore_to(point, restoring)?;
        crate::pg::cluster::chown_tree(restoring, p.owner).map_err(BackupError::io(restoring))
    }

    /// Step `verified`: the copy holds what the point recorded (a kept
    /// data directory is as it ran: only its recovery is checked).
    fn verify(&mut self, copy: &mut Client) -> Result<(), BackupError> {
        self.progress.note(Note::Step(format!("checking the copy of {}", self.what)));
        let in_recovery: bool = copy
            .query_one("select pg_is_in_recovery()", &[])
            .map_err(BackupError::db("reading the copy's state"))?
            .get(0);
        let mut differences = Vec::new();
        if in_recovery {
            differences.push("the copy did not end its recovery at the point".to_string());
        }
        let Some(at_point) = self.point else {
            return match differences.is_empty() {
                true => Ok(()),
                false => Err(BackupError::Mismatch { id: self.m.id.clone(), differences }),
            };
        };
        if let Some(state) = &at_point.state {
            differences.extend(point::differences(copy, state)?);
        }
        let fingerprint = crate::pg::fingerprint::Schema::read(copy)
            .map_err(BackupError::db("reading the copy's schema"))?
            .fingerprint();
        if fingerprint != self.m.schema_fingerprint {
            differences.push(format!(
                "schema fingerprint {fingerprint}, {} at the point",
                self.m.schema_fingerprint
            ));
        }
        if differences.is_empty() {
            Ok(())
        } else {
            Err(BackupError::Mismatch { id: self.m.id.clone(), differences })
        }
    }

    /// The end of a run that failed before the server was touched: the
    /// copy goes, the freeze is lifted, the journal forgotten. Returns the
    /// error to report.
    fn abandon(&mut self, j: &Journal, e: BackupError, freeze: Option<FreezeGuard>) -> BackupError {
        record_failure(self.url, &self.m.id, &e);
        if let Err(cleanup) = remove_copy(j) {
            return BackupError::CleanupFailed { cause: Box::new(e), cleanup };
        }
        lift_and_forget(freeze, self.store, e).unwrap_or_else(|cleanup| cleanup)
    }

    /// Steps `swapping` and `swapped`, each move only if it is still to
    /// do: the server stopped, the copy stopped, the directories renamed,
    /// the server started on the restored one and taking connections.
    fn swap_in(&mut self, j: &mut Journal) -> Result<(), BackupError> {
        let p = j.physical.clone().expect("a physical restore's journal");
        let (restoring, kept) = (p.restoring(&j.restore_id), p.kept(&j.restore_id));
        if !kept.exists() {
            self.progress
                .note(Note::Step(format!("stopping the server on {}", p.data_dir.display())));
            server::stop_server(&p)?;
        }
        crash_point("stopped");
        if restoring.exists() {
            server::stop(&p, &restoring)?;
        }
        if !kept.exists() {
            server::rename(&p.data_dir, &kept)?;
        }
        if restoring.exists() && !p.data_dir.exists() {
            server::rename(&restoring, &p.data_dir)?;
        }
        crash_point("moved");
        if !p.data_dir.exists() {
            return Err(BackupError::PgBackRest {
                what: format!(
                    "neither the restored copy {} nor a data directory {} exists",
                    restoring.display(),
                    p.data_dir.display()
                ),
                fix: format!(
                    "the replaced data directory is {}; rename it back to start the server as it was",
                    kept.display()
                ),
            });
        }
        self.progress.note(Note::Step(format!(
            "starting the server on the restored {}",
            p.data_dir.display()
        )));
        server::start_server(&p, &p.server_log(&j.restore_id), self.url)?;
        j.record_physical(PhysicalStep::Swapped, self.store)
    }

    /// The finish: the restore audited in the restored database, the
    /// copy's run directory removed, the journal forgotten.
    fn finish(
        &mut self,
        j: &Journal,
        started: Instant,
        resumed: bool,
    ) -> Result<RestoreReport, BackupError> {
        let p = j.physical.as_ref().expect("a physical restore's journal");
        let mut client = crate::pg::connect(self.url, "backstop")?;
        freeze::exempt(&mut client).map_err(BackupError::db("exempting the session"))?;
        // The point was before the freeze; make sure of it all the same.
        freeze::unfreeze(&mut client)?;
        let kept = p.kept(&j.restore_id);
        if let Some(point) = self.point {
            let note = format!(
                "take a new pgBackRest backup: the server runs on a new timeline from {}",
                point.name
            );
            self.progress.note(Note::Warning(note.clone()));
            self.warnings.push(note);
        }
        let snapshot_id = self.keep_replaced(j, &mut client)?;
        let state = self.point.and_then(|p| p.state.as_ref());
        let report = RestoreReport {
            backup_id: self.m.id.clone(),
            database: j.database.clone(),
            strategy: Strategy::Physical,
            snapshot_id,
            snapshot_database: None,
            kept_data_dir: Some(kept),
            tables: state.map_or(0, |s| s.protected.len()),
            rows: state.map_or(0, |s| s.protected.iter().map(|t| t.rows).sum()),
            duration_ms: started.elapsed().as_millis() as u64,
            resumed,
            warnings: std::mem::take(&mut self.warnings),
            schemas: Vec::new(),
            on_platform: Vec::new(),
            why: None,
        };
        record_success(&mut client, j, &report)?;
        let _ = std::fs::remove_dir_all(p.run_dir(&j.restore_id));
        if self.m.kind == Kind::DataDirectory {
            // Swapped back in, it is the server's again, no longer a backup.
            self.store.remove(&self.m.id)?;
        }
        Journal::remove(self.store)?;
        Ok(report)
    }

    /// The data directory the restore replaced, as an entry of the store
    /// (kind `data_directory`, by the id the journal fixed before the
    /// swap, written once); its id.
    fn keep_replaced(&mut self, j: &Journal, client: &mut Client) -> Result<String, BackupError> {
        let p = j.physical.as_ref().expect("a physical restore's journal");
        let id = j.snapshot_id.clone().unwrap_or_else(|| new_id(chrono::Utc::now()));
        if self.store.load(&id).is_ok() {
            return Ok(id);
        }
        let mut k = self.m.clone();
        k.id = id.clone();
        k.kind = Kind::DataDirectory;
        k.label = Some(format!("pre-restore, before restore {}", j.restore_id));
        k.created_at = chrono::Utc::now();
        (k.files, k.size_bytes, k.duration_ms) = (Vec::new(), 0, 0);
        (k.guards, k.row_counts, k.schema_fingerprint) =
            (Vec::new(), Default::default(), String::new());
        (k.state, k.snapshot_database, k.restore_point) = (None, None, None);
        k.verification = Default::default();
        k.kept_data_dir = Some(KeptDataDir {
            path: p.kept(&j.restore_id),
            data_dir: p.data_dir.clone(),
            restore_id: j.restore_id.clone(),
            databases: point::database_writes(client)?,
        });
        let partial = self.store.begin(&id)?;
        k.write(&partial)?;
        self.store.commit(&id, &partial)?;
        Ok(id)
    }

    /// For a kept data directory: it must still be there, and be a copy
    /// of this server's (the same data directory); its path.
    fn incoming(&self, data_dir: &std::path::Path) -> Result<Option<PathBuf>, BackupError> {
        let Some(kept) = self.kept else { return Ok(None) };
        if kept.data_dir != data_dir {
            return Err(BackupError::Refused(format!(
                "backup {} is the data directory {} kept for {}; the server runs on {}",
                self.m.id,
                kept.path.display(),
                kept.data_dir.display(),
                data_dir.display()
            )));
        }
        if !kept.path.join("PG_VERSION").exists() {
            return Err(BackupError::Refused(format!(
                "the data directory {} of backup {} is gone; remove the entry with `backstop \
                 backup prune`",
                kept.path.display(),
                self.m.id
            )));
        }
        Ok(Some(kept.path.clone()))
    }
}

/// Stops and removes the copy of an unfinished restore that never
/// stopped the server (`--abandon`, or a failed check); what failed.
pub(super) fn remove_copy(j: &Journal) -> Result<(), String> {
    let Some(p) = &j.physical else { return Ok(()) };
    let restoring = p.restoring(&j.restore_id);
    if restoring.exists() {
        server::stop(p, &restoring).map_err(|e| crate::kit::error::chain(&e))?;
    }
    // A kept data directory is only stopped: it is the backup.
    if restoring.exists() && p.incoming.is_none() {
        std::fs::remove_dir_all(&restoring)
            .map_err(|e| format!("removing {}: {e}", restoring.display()))?;
    }
    let _ = std::fs::remove_dir_all(p.run_dir(&j.restore_id));
    Ok(())
}
