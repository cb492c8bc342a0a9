//! `restore ID`: Method B's database half. The backup's checksums are
//! verified before the target is touched; writes are frozen; the current
//! state is kept as a pre-restore snapshot (never lost, only set aside);
//! the backup is restored and its row counts and schema compared with the
//! manifest; then writes resume and the restore is audited.
//!
//! Two ways, by what the role may do:
//! - **swap** (the role may create databases and owns the target): restore
//!   into a new database, check it, then rename both in one transaction.
//!   The old database, kept read-only under a new name, is the pre-restore
//!   snapshot, listed as a backup of kind `database` (`swap.rs`).
//! - **clean** (it may not): dump the current state first (a backup
//!   labelled `pre-restore`), drop the user schemas and restore into them
//!   (`clean.rs`).
//!
//! `backstop.events` survives either way and gains the restore event;
//! `backstop.applied` afterwards is the backup's, matching the restored
//! schema. Progress is journalled in `<backup dir>/restore.json`
//! (`journal.rs`), so a crash leaves a state `status` shows and `--resume`
//! finishes: [`restore`] drives the steps the journal names ([`Step`]),
//! each strategy going on after the last one recorded.

mod abandon;
mod databases;
mod in_place;
mod journal;
mod on_platform;
mod physical;
mod platform_rows;
pub(crate) use platform_rows::decides as decides_platform_rows;
mod postmaster;
mod server;
mod swap;
mod toc;

use std::time::{Duration, Instant};

use postgres::Client;
use serde::Serialize;
use serde_json::json;

pub use super::config::ServerControl;
pub use abandon::{abandon, abandonable, Abandoned};
pub use databases::{connect_to, drop_leftovers, drop_snapshot};
pub use journal::{journal, Journal, Step, Strategy, JOURNAL};

use super::create::source_of;
use super::manifest::{Kind, Manifest};
use super::verify::verify_checksums;
use super::{BackupError, Note, Progress, Store, Tools};
use crate::freeze::{self, FreezeGuard, FreezeSection};
use crate::pg::lock::MigrationLock;
use crate::schema::events;

/// Options of a restore.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// pg_restore's `--jobs`.
    pub jobs: usize,
    /// Finish an interrupted restore instead of starting one.
    pub resume: bool,
    /// How long to wait for the migration lock.
    pub lock_wait: Duration,
    /// A physical restore: go on when other databases of the cluster
    /// changed since the point (their writes are undone).
    pub whole_cluster: bool,
    /// A physical restore: how the server is stopped and started.
    pub server: ServerControl,
    /// How a dump is put back (`[backup] restore`).
    pub mode: super::config::RestoreMode,
    /// The schemas a restore in place puts back (`[backup]
    /// restore_schemas`; empty: the project's, found by itself).
    pub schemas: Vec<String>,
}

/// What a restore did.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    pub backup_id: String,
    pub database: String,
    pub strategy: Strategy,
    /// The pre-restore snapshot: the state just before the restore.
    pub snapshot_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_database: Option<String>,
    /// A physical restore: the replaced data directory, kept whole.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept_data_dir: Option<std::path::PathBuf>,
    pub tables: usize,
    pub rows: i64,
    pub duration_ms: u64,
    pub resumed: bool,
    pub warnings: Vec<String>,
    /// A restore in place: the schemas it put back. The rest of the
    /// database (the platform's schemas, extensions and other objects of
    /// no restored schema) stayed as it was, by design. Empty when the
    /// whole database was restored.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub schemas: Vec<String>,
    /// A restore in place: what it did with the project's triggers and
    /// policies on the platform's tables (put back, made again, removed),
    /// each compared after (`on_platform`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub on_platform: Vec<String>,
    /// Why it was put back this way rather than by a swap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

/// The lock whose holder may restore from `store`'s dir in this process.
fn store_turn(store: &Store) -> std::sync::Arc<std::sync::Mutex<()>> {
    static TURNS: std::sync::Mutex<
        std::collections::BTreeMap<std::path::PathBuf, std::sync::Arc<std::sync::Mutex<()>>>,
    > = std::sync::Mutex::new(std::collections::BTreeMap::new());
    let mut turns = TURNS.lock().unwrap_or_else(|e| e.into_inner());
    turns.entry(store.dir().to_path_buf()).or_default().clone()
}

/// Restores backup `id` over the database at `url`: checks before the
/// target is touched, then the journal's steps (`started`, `frozen`, then
/// the strategy's), then the finish. With `options.resume` it finishes the
/// unfinished restore of `id` from its last recorded step. Every run that
/// got as far as a journal ends in an event: `ok`, or `failed` with the
/// error (best effort: the server may be gone).
#[allow(clippy::too_many_arguments)]
pub fn restore(
    url: &str,
    store: &Store,
    tools: &Tools,
    id: &str,
    options: &RestoreOptions,
    freeze_options: &FreezeSection,
    progress: &mut dyn Progress,
) -> Result<RestoreReport, BackupError> {
    let started = Instant::now();
    // A backup dir keeps the journal of one restore at a time: restores
    // into one dir from this process (a rollout's wave) take turns.
    let turn = store_turn(store);
    let _turn = turn.lock().unwrap_or_else(|e| e.into_inner());
    let unfinished = Journal::unfinished(store, id, options.resume)?;
    let m = store.load(id)?;
    if matches!(m.kind, Kind::RestorePoint | Kind::DataDirectory) {
        return physical::restore(url, store, &m, unfinished, options, freeze_options, progress);
    }
    // pg_restore of the archive's major (or newer) restores it.
    let fitted = if m.kind == Kind::Dump { tools.fit(m.written_by_num())? } else { tools.clone() };
    let mut run = Run {
        url,
        store,
        tools: &fitted,
        options,
        progress,
        warnings: Vec::new(),
        restored: Vec::new(),
        on_platform: Vec::new(),
        journalled: unfinished.is_some(),
        audited: false,
    };
    let result = run.logical(m, unfinished, freeze_options, started);
    if let Err(e) = &result {
        if run.journalled && !run.audited {
            record_failure(url, id, e);
        }
    }
    result
}

impl Run<'_> {
    /// The restore of a dump or of a database snapshot, from the journal's
    /// last step (`unfinished`) or from the start.
    fn logical(
        &mut self,
        mut m: Manifest,
        unfinished: Option<Journal>,
        freeze_options: &FreezeSection,
        started: Instant,
    ) -> Result<RestoreReport, BackupError> {
        let (url, store, id) = (self.url, self.store, m.id.clone());
        let resumed = unfinished.is_some();
        // An unfinished swap may have stopped with the target closed to
        // sessions; one whose renames committed has only the finish left.
        if let Some(j) = unfinished.as_ref().filter(|j| j.strategy == Strategy::Swap) {
            if swap::reopen(url, store, j)? {
                return self.finish(j, &m, started, true);
            }
        }
        // What earlier restores left behind goes first.
        for name in drop_leftovers(url, store)? {
            self.note_warning(format!("dropped {name}, left by an earlier restore"));
        }
        // 1. The backup must be intact before anything touches the target.
        if m.kind == Kind::Dump {
            let files = m.files.len();
            self.progress.note(Note::Step(format!("verifying backup {id} ({files} file(s))")));
            verify_checksums(store, self.tools, &mut m)?;
        }
        let mut client = crate::pg::connect(url, "backstop")?;
        freeze::exempt(&mut client).map_err(BackupError::db("exempting the session"))?;
        let source = source_of(&mut client)?;
        if !m.same_database(source.system_identifier.as_deref(), &source.database) {
            return Err(BackupError::wrong_database(&id, &m, &source));
        }
        let mut lock = migration_lock(&mut client, self.options.lock_wait, self.progress)?;

        // Step `started`.
        let mut j = match unfinished {
            Some(j) => j,
            None => {
                let (strategy, why) =
                    strategy_for(&mut lock, url, &m, &source.database, self.options.mode)?;
                if let Some(why) = &why {
                    self.progress.note(Note::Info(why.clone()));
                }
                Journal { why, ..Journal::begin(&id, &source.database, strategy) }
            }
        };
        j.save(store)?;
        self.journalled = true;
        journal::crash_point(Step::Started.name());
        // 2. Freeze writes (idempotent on resume).
        let guard = self.freeze_writes(&mut lock, &mut j, &source.database, freeze_options)?;
        // 3.-5. The strategy's steps, after the last one the journal recorded.
        let result = match j.strategy {
            Strategy::Swap => self.swap(&mut j, &m, lock),
            Strategy::InPlace => self.in_place(&mut j, &m, &mut lock),
            Strategy::Physical => Err(Failure::Abandoned(point_in_time(&m))),
        };
        if let Err(failure) = result {
            return Err(self.failed(failure, guard, &source.database));
        }
        match j.strategy {
            // The frozen database is the one set aside as the snapshot.
            Strategy::Swap => guard.keep(),
            Strategy::InPlace | Strategy::Physical => {
                guard.lift()?;
            }
        }
        self.finish(&j, &m, started, resumed)
    }

    /// A warning, said now and kept for the report.
    fn note_warning(&mut self, w: String) {
        self.progress.note(Note::Warning(w.clone()));
        self.warnings.push(w);
    }
}

/// Lets sessions into the databases an unfinished swap involves again,
/// through the maintenance database (the swap may have stopped with the
/// target closed to them); nothing without an unfinished swap. For
/// `unfreeze`, which must reach the target.
pub fn reopen(url: &str, store: &Store) -> Result<(), BackupError> {
    match journal(store)? {
        Some(j) if j.strategy == Strategy::Swap => swap::reopen(url, store, &j).map(|_| ()),
        _ => Ok(()),
    }
}

/// How a new restore puts the backup in place, and why when it is not a
/// swap: as `[backup] restore` says, or by itself a swap where one can
/// work and in place where it cannot. A database snapshot can only be
/// swapped back in.
fn strategy_for(
    client: &mut Client,
    url: &str,
    m: &Manifest,
    database: &str,
    mode: super::config::RestoreMode,
) -> Result<(Strategy, Option<String>), BackupError> {
    use super::config::RestoreMode;
    let swap_refusal = match databases::swap_refusal(client, url, database)? {
        Some(why) => Some(why),
        // The database a swap puts in place holds only what the dump does.
        None if !m.left_out.is_empty() => Some(format!(
            "backup {} leaves out {}, which the role that took it may not read, and a swap \
             would lose",
            m.id,
            m.left_out.join(", ")
        )),
        None => databases::bound_refusal(client, m, database)?,
    };
    if m.kind == Kind::Database {
        return match swap_refusal {
            None => Ok((Strategy::Swap, None)),
            Some(why) => Err(BackupError::Refused(format!(
                "backup {} is a database snapshot; putting it back renames databases, which \
                 cannot work here: {why}",
                m.id
            ))),
        };
    }
    match (mode, swap_refusal) {
        (RestoreMode::InPlace, _) => Ok((
            Strategy::InPlace,
            Some("restoring in place, as [backup] restore = \"in-place\" says".to_string()),
        )),
        (RestoreMode::Swap, Some(why)) => Err(BackupError::Refused(format!(
            "[backup] restore = \"swap\", but a swap cannot work here: {why}; set restore = \
             \"in-place\" (or leave it out) to restore the project's schemas inside {database}"
        ))),
        (_, None) => Ok((Strategy::Swap, None)),
        (RestoreMode::Auto, Some(why)) => Ok((
            Strategy::InPlace,
            Some(format!("restoring in place, since a swap cannot work here: {why}")),
        )),
    }
}

/// A failed restore: `Abandoned` left the target as it was, `Stuck` did
/// not (the database stays frozen for `--resume` or a look).
enum Failure {
    Abandoned(BackupError),
    Stuck(BackupError),
}

impl From<BackupError> for Failure {
    fn from(e: BackupError) -> Self {
        Failure::Abandoned(e)
    }
}

/// One run of a restore: what every step needs, and the warnings it
/// gathers for the report.
struct Run<'a> {
    url: &'a str,
    store: &'a Store,
    tools: &'a Tools,
    options: &'a RestoreOptions,
    progress: &'a mut dyn Progress,
    warnings: Vec<String>,
    /// A restore in place: the schemas it put back, and what it did on
    /// the platform's tables.
    restored: Vec<String>,
    on_platform: Vec<String>,
    /// The run has a journal (resumed, or saved by this run): its failure
    /// is audited.
    journalled: bool,
    /// Its outcome is audited already.
    audited: bool,
}

impl Run<'_> {
    /// Step `frozen`: writes to the target stop for the rest of the run.
    /// Frozen again on every run, resumed or not (a crash or `unfreeze` may
    /// have lifted it, and freezing a frozen database changes nothing);
    /// recorded the first time.
    fn freeze_writes(
        &mut self,
        lock: &mut Client,
        j: &mut Journal,
        database: &str,
        options: &FreezeSection,
    ) -> Result<FreezeGuard, BackupError> {
        self.progress.note(Note::Step(format!("freezing writes to {database}")));
        let frozen = freeze::freeze(lock, &format!("restore of backup {}", j.backup_id), options)?;
        let guard = FreezeGuard::new(self.url);
        for w in &frozen.warnings {
            self.progress.note(Note::Warning(w.clone()));
        }
        self.warnings.extend(frozen.warnings);
        if j.step < Step::Frozen {
            j.record(Step::Frozen, self.store)?;
        }
        Ok(guard)
    }

    /// The end of a failed run, by what it left: an abandoned run lifts the
    /// freeze and forgets its journal, a stuck one keeps both. Either way
    /// the failure is audited (by [`restore`]). Returns the error to report.
    fn failed(&self, failure: Failure, guard: FreezeGuard, database: &str) -> BackupError {
        match failure {
            Failure::Abandoned(mut e) => {
                // Nothing of the target changed: lift the freeze, and forget the
                // run only once that is done (a server that crashed cannot be
                // unfrozen yet; the record then stays for --resume or unfreeze).
                e = match lift_and_forget(Some(guard), self.store, e) {
                    Ok(e) => e,
                    Err(cleanup) => return cleanup,
                };
                if let BackupError::Interrupted { then, .. } = &mut e {
                    *then = format!(
                        "; the restore was abandoned: {database} is as it was and takes writes again"
                    );
                }
                e
            }
            Failure::Stuck(e) => {
                // The target is half-way: it stays frozen and the journal stays.
                guard.keep();
                e
            }
        }
    }

    /// The finish, after `swapped` (swap) or `restored` (clean): a swap's
    /// snapshot recorded as a backup, the restore audited in the target,
    /// then its journal forgotten. A resumed run may do it again: the
    /// entry and the event are written once per restore.
    fn finish(
        &mut self,
        j: &Journal,
        m: &Manifest,
        started: Instant,
        resumed: bool,
    ) -> Result<RestoreReport, BackupError> {
        if j.strategy == Strategy::Swap {
            self.keep_snapshot(j)?;
        }
        let mut client = crate::pg::connect(self.url, "backstop")?;
        freeze::exempt(&mut client).map_err(BackupError::db("exempting the session"))?;
        if j.strategy == Strategy::Swap {
            // Whatever a restored backup says about a freeze, the new target is not frozen.
            freeze::unfreeze(&mut client)?;
        }
        let report = RestoreReport {
            backup_id: m.id.clone(),
            database: j.database.clone(),
            strategy: j.strategy,
            snapshot_id: j.snapshot_id.clone().unwrap_or_default(),
            // Only a swap keeps the old database under a new name.
            snapshot_database: j.snapshot_database.clone(),
            kept_data_dir: None,
            tables: m.row_counts.len(),
            rows: m.row_counts.values().sum(),
            duration_ms: started.elapsed().as_millis() as u64,
            resumed,
            why: j.why.clone(),
            warnings: std::mem::take(&mut self.warnings),
            schemas: std::mem::take(&mut self.restored),
            on_platform: std::mem::take(&mut self.on_platform),
        };
        record_success(&mut client, j, &report)?;
        self.audited = true;
        journal::crash_point("audited");
        Journal::remove(self.store)?;
        if j.strategy == Strategy::Swap && m.kind == Kind::Database {
            // The snapshot that came back is live again, no longer a backup
            // (last: a resumed finish still needs its entry).
            self.store.remove(&m.id)?;
        }
        Ok(report)
    }
}

/// The restore event in the target, once per restore id: a resumed run
/// that stopped after writing it does not write it twice.
fn record_success(
    client: &mut Client,
    j: &Journal,
    report: &RestoreReport,
) -> Result<(), BackupError> {
    crate::schema::ensure(client).map_err(BackupError::db("creating the backstop schema"))?;
    let already = events::with_detail(client, "restore", "restore_id", &j.restore_id)
        .map_err(BackupError::db("reading backstop.events"))?;
    if !already.is_empty() {
        return Ok(());
    }
    let mut details = serde_json::to_value(report).expect("a report serializes");
    details["restore_id"] = json!(j.restore_id);
    let event = events::Event { kind: "restore", outcome: "ok", versions: Vec::new(), details };
    events::record(client, &event).map_err(BackupError::db("writing the restore event"))
}

/// Best effort: a failed restore is audited in the target too.
/// The migration lock a restore holds, taken on `client` (waiting up to
/// `wait`, saying who holds it meanwhile).
fn migration_lock<'c>(
    client: &'c mut Client,
    wait: Duration,
    progress: &mut dyn Progress,
) -> Result<MigrationLock<'c>, BackupError> {
    MigrationLock::acquire(client, wait, |holder| {
        let who = holder.map_or("another session".to_string(), |h| h.to_string());
        progress.note(Note::Step(format!("waiting for the migration lock held by {who}")));
    })
    .map_err(|e| BackupError::Refused(crate::kit::error::chain(&e)))
}

/// After an abandoned run that changed nothing of the target: the freeze
/// lifted, then the run forgotten (not before: a server that crashed cannot
/// be unfrozen yet, and the record then stays for --resume or unfreeze).
/// `Ok(e)` when both were done; else the error that says what is left.
fn lift_and_forget(
    freeze: Option<FreezeGuard>,
    store: &Store,
    e: BackupError,
) -> Result<BackupError, BackupError> {
    if let Some(Err(lift)) = freeze.map(FreezeGuard::lift) {
        return Err(BackupError::CleanupFailed {
            cause: Box::new(e),
            cleanup: format!("lifting the freeze: {}", crate::kit::error::chain(&lift)),
        });
    }
    Journal::remove(store)?;
    Ok(e)
}

fn record_failure(url: &str, id: &str, e: &BackupError) {
    if let Ok(mut client) = crate::pg::connect(url, "backstop") {
        let _ = freeze::exempt(&mut client);
        if crate::schema::exists(&mut client).unwrap_or(false) {
            let event = events::Event {
                kind: "restore",
                outcome: "failed",
                versions: Vec::new(),
                details: json!({ "backup_id": id, "error": crate::kit::error::chain(e) }),
            };
            let _ = events::record(&mut client, &event);
        }
    }
}

/// Carries `backstop.events` (and the incidents) over from `from` to `to`.
fn copy_events(from: &mut Client, to: &mut Client) -> Result<u64, BackupError> {
    events::carry_over(from, to).map_err(|e| match e {
        events::CarryError::Db(source) => BackupError::db("carrying backstop.events over")(source),
        events::CarryError::Io(source) => BackupError::io("backstop.events")(source),
    })
}

/// A restore point or a kept data directory is not restored into a
/// database: the refusal of a path that would try.
pub(crate) fn point_in_time(m: &super::Manifest) -> BackupError {
    let what = match (&m.restore_point, &m.kept_data_dir) {
        (Some(p), _) => format!("pgBackRest restore point {}", p.name),
        (None, Some(k)) => format!("data directory {}", k.path.display()),
        (None, None) => "a whole cluster".into(),
    };
    BackupError::Refused(format!(
        "backup {} is {what}: it is restored as the whole cluster (`backstop backup restore {}`), not \
         into a database",
        m.id, m.id
    ))
}
