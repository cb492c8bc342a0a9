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
//!   snapshot, listed as a backup of kind `database`.
//! - **clean** (it may not): dump the current state first (a backup
//!   labelled `pre-restore`), drop the user schemas and restore into them.
//!
//! `backstop.events` survives either way and gains the restore event;
//! `backstop.applied` afterwards is the backup's, matching the restored
//! schema. Progress is journalled in `<backup dir>/restore.json`, so a
//! crash leaves a state `status` shows and `--resume` finishes.

use std::io::Write;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use postgres::Client;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::create::{create, facts, source_of, CreateOptions};
use super::manifest::{Kind, Manifest, Verification};
use super::store::new_id;
use super::tools::{self, run_verbose, tail};
use super::verify::{compare, verify_checksums};
use super::{BackupError, Note, Progress, Store, Tools};
use crate::freeze::FreezeSection;
use crate::freeze::{self, FreezeGuard};
use crate::pg::conn::connect_db;
use crate::pg::lock::MigrationLock;
use crate::pg::quote_ident;
use crate::schema::events;

/// The journal's file name in the backup dir.
pub const JOURNAL: &str = "restore.json";

/// Options of a restore.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// pg_restore's `--jobs`.
    pub jobs: usize,
    /// Finish an interrupted restore instead of starting one.
    pub resume: bool,
    /// How long to wait for the migration lock.
    pub lock_wait: Duration,
}

/// How the backup is put in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Restore into a new database and swap names.
    Swap,
    /// Dump the current state, drop the user schemas, restore into them.
    Clean,
}

/// How far a restore got, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Started,
    Frozen,
    Restoring,
    Restored,
    Swapped,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Step::Started => "started",
            Step::Frozen => "writes frozen",
            Step::Restoring => "restoring",
            Step::Restored => "restored and checked, not yet in place",
            Step::Swapped => "in place, finishing",
        })
    }
}

/// The journal of a restore in progress.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Journal {
    pub restore_id: String,
    pub backup_id: String,
    pub database: String,
    pub strategy: Strategy,
    pub step: Step,
    /// Swap: the database the backup is restored into.
    pub temp_database: Option<String>,
    /// The pre-restore snapshot's backup id.
    pub snapshot_id: Option<String>,
    /// Swap: the name the current database is kept under.
    pub snapshot_database: Option<String>,
    pub started_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Journal {
    fn save(&mut self, store: &Store) -> Result<(), BackupError> {
        self.updated_at = Utc::now();
        let path = store.dir().join(JOURNAL);
        let tmp = store.dir().join(format!("{JOURNAL}.tmp"));
        let text = serde_json::to_string_pretty(self).expect("a journal serializes");
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .and_then(|()| super::manifest::sync_dir(store.dir()))
            .map_err(BackupError::io(&path))
    }

    fn remove(store: &Store) -> Result<(), BackupError> {
        let path = store.dir().join(JOURNAL);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(BackupError::io(path)(e)),
            _ => Ok(()),
        }
    }
}

/// The unfinished restore in `store`, if any (for `status`).
pub fn journal(store: &Store) -> Result<Option<Journal>, BackupError> {
    let path = store.dir().join(JOURNAL);
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| BackupError::BadManifest { path, reason: e.to_string() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(BackupError::io(path)(e)),
    }
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
    pub tables: usize,
    pub rows: i64,
    pub duration_ms: u64,
    pub resumed: bool,
    pub warnings: Vec<String>,
}

/// Restores backup `id` over the database at `url`.
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
    let unfinished = journal(store)?;
    match (&unfinished, options.resume) {
        (Some(j), false) => {
            return Err(BackupError::Refused(format!(
                "a restore of backup {} into {} is unfinished ({}); finish it with \
                 `backstop restore {} --resume`",
                j.backup_id, j.database, j.step, j.backup_id
            )))
        }
        (Some(j), true) if j.backup_id != id => {
            return Err(BackupError::Refused(format!(
            "the unfinished restore is of backup {}, not {id}; run `backstop restore {} --resume`",
            j.backup_id, j.backup_id
        )))
        }
        (None, true) => {
            return Err(BackupError::Refused(format!(
                "no unfinished restore in {}; run `backstop restore {id}` without --resume",
                store.dir().display()
            )))
        }
        _ => {}
    }

    // What earlier restores left behind goes first.
    for name in drop_leftovers(url, store)? {
        progress.note(Note::Warning(format!("dropped {name}, left by an earlier restore")));
    }

    // 1. The backup must be intact before anything touches the target.
    let mut m = store.load(id)?;
    if m.kind == Kind::Dump {
        progress.note(Note::Step(format!("verifying backup {id} ({} file(s))", m.files.len())));
        verify_checksums(store, tools, &mut m)?;
    }

    let mut run = Run { url, store, tools, options, progress, warnings: Vec::new() };
    // A swap that committed before a crash: the target is already the
    // restored database; only the finish is left.
    if let Some(j) = unfinished.clone().filter(|j| j.strategy == Strategy::Swap) {
        let mut admin = maintenance(url)?;
        if let Some(snap) = &j.snapshot_database {
            if database_exists(&mut admin, snap)? {
                drop(admin);
                return run.finish_swap(j, &m, started, true);
            }
        }
        // Killed between closing the target to new sessions and the swap.
        admin
            .batch_execute(&format!(
                "ALTER DATABASE {} WITH ALLOW_CONNECTIONS true",
                quote_ident(&j.database)
            ))
            .map_err(BackupError::db(format!("opening {} to sessions again", j.database)))?;
    }

    let mut client = crate::pg::connect(url, "backstop")?;
    freeze::exempt(&mut client).map_err(BackupError::db("exempting the session"))?;
    let source = source_of(&mut client)?;
    if !m.same_database(source.system_identifier.as_deref(), &source.database) {
        return Err(BackupError::WrongDatabase {
            id: id.to_string(),
            backup_database: m.database.clone(),
            target_database: source.database,
        });
    }
    let mut lock = MigrationLock::acquire(&mut client, options.lock_wait, |holder| {
        let who = holder.map_or("another session".to_string(), |h| h.to_string());
        run.progress.note(Note::Step(format!("waiting for the migration lock held by {who}")));
    })
    .map_err(|e| BackupError::Refused(crate::kit::error::chain(&e)))?;

    let strategy = match &unfinished {
        Some(j) => j.strategy,
        None if can_swap(&mut lock, url)? => Strategy::Swap,
        None if m.kind == Kind::Database => {
            return Err(BackupError::Refused(format!(
                "backup {id} is a database snapshot; putting it back renames databases, which \
                 needs a role that owns {} and may create databases",
                source.database
            )))
        }
        None => Strategy::Clean,
    };
    let now = Utc::now();
    let mut j = unfinished.clone().unwrap_or_else(|| Journal {
        restore_id: new_id(now),
        backup_id: id.to_string(),
        database: source.database.clone(),
        strategy,
        step: Step::Started,
        temp_database: None,
        snapshot_id: None,
        snapshot_database: None,
        started_at: now,
        updated_at: now,
    });
    j.save(store)?;

    // 2. Freeze writes (idempotent on resume).
    run.progress.note(Note::Step(format!("freezing writes to {}", source.database)));
    let frozen = freeze::freeze(&mut lock, &format!("restore of backup {id}"), freeze_options)?;
    let guard = FreezeGuard::new(url);
    for w in &frozen.warnings {
        run.progress.note(Note::Warning(w.clone()));
    }
    run.warnings.extend(frozen.warnings);
    if j.step < Step::Frozen {
        j.step = Step::Frozen;
        j.save(store)?;
    }

    let result = match strategy {
        Strategy::Swap => run.swap(&mut j, &m, lock),
        Strategy::Clean => run.clean(&mut j, &m, &mut lock),
    };
    match result {
        Ok(()) => {}
        Err(Failure::Abandoned(e)) => {
            // Nothing of the target changed: lift the freeze, and forget the
            // run only once that is done (a server that crashed cannot be
            // unfrozen yet; the record then stays for --resume or unfreeze).
            record_failure(url, id, &e);
            if let Err(lift) = guard.lift() {
                return Err(BackupError::CleanupFailed {
                    cause: Box::new(e),
                    cleanup: format!("lifting the freeze: {}", crate::kit::error::chain(&lift)),
                });
            }
            Journal::remove(store)?;
            let mut e = e;
            if let BackupError::Interrupted { then, .. } = &mut e {
                *then = format!(
                    "; the restore was abandoned: {} is as it was and takes writes again",
                    source.database
                );
            }
            return Err(e);
        }
        Err(Failure::Stuck(e)) => {
            // The target is half-way: it stays frozen and the journal stays.
            guard.keep();
            record_failure(url, id, &e);
            return Err(e);
        }
    }
    match strategy {
        Strategy::Swap => {
            guard.keep();
            run.finish_swap(j, &m, started, unfinished.is_some())
        }
        Strategy::Clean => {
            guard.lift()?;
            let report = run.finish_clean(&j, &m, started, unfinished.is_some())?;
            Journal::remove(store)?;
            Ok(report)
        }
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

struct Run<'a> {
    url: &'a str,
    store: &'a Store,
    tools: &'a Tools,
    options: &'a RestoreOptions,
    progress: &'a mut dyn Progress,
    warnings: Vec<String>,
}

impl Run<'_> {
    /// Swap: restore into a new database (or take the snapshot database),
    /// check it, record the current database as the pre-restore snapshot,
    /// carry the audit log over, then rename both in one transaction.
    fn swap(
        &mut self,
        j: &mut Journal,
        m: &Manifest,
        mut lock: MigrationLock<'_>,
    ) -> Result<(), Failure> {
        let mut admin = maintenance(self.url)?;
        let target = j.database.clone();
        let (source_db, temporary) = match m.kind {
            Kind::Dump => {
                let name = j
                    .temp_database
                    .get_or_insert_with(|| derived_name(&target, "restoring", &j.restore_id))
                    .clone();
                (name, true)
            }
            Kind::Database => {
                let name = m.snapshot_database.clone().ok_or_else(|| {
                    BackupError::Refused(format!("backup {} names no snapshot database", m.id))
                })?;
                if !database_exists(&mut admin, &name)? {
                    return Err(BackupError::Refused(format!(
                        "the snapshot database {name} of backup {} is gone; remove the entry with \
                         `backstop backup prune`",
                        m.id
                    ))
                    .into());
                }
                (name, false)
            }
        };
        // Abandoning leaves the target as it was, but only once the
        // database restored into is gone: otherwise the run stays on record
        // (stuck) so that --resume or unfreeze finds and drops it.
        let abandon = |admin: &mut Client, e: BackupError| {
            if temporary {
                let dropped = admin
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {}", quote_ident(&source_db)));
                if let Err(drop) = dropped {
                    return Failure::Stuck(BackupError::CleanupFailed {
                        cause: Box::new(e),
                        cleanup: format!(
                            "dropping {source_db}: {}",
                            crate::pg::conn::error_chain(&drop)
                        ),
                    });
                }
            }
            Failure::Abandoned(e)
        };

        // 3. The backup, restored and checked, under a name nobody uses.
        if temporary && j.step < Step::Restored {
            j.step = Step::Restoring;
            j.save(self.store)?;
            if let Err(e) = self.restore_into_new(&mut admin, &target, &source_db, m) {
                return Err(abandon(&mut admin, e));
            }
        }
        if !temporary {
            admin
                .batch_execute(&format!(
                    "ALTER DATABASE {} WITH ALLOW_CONNECTIONS true",
                    quote_ident(&source_db)
                ))
                .map_err(BackupError::db("opening the snapshot database"))?;
        }
        let mut restored = match connect_to(self.url, &source_db) {
            Ok(c) => c,
            Err(e) => return Err(abandon(&mut admin, e)),
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
            return Err(abandon(&mut admin, e));
        }
        if j.step < Step::Restored {
            j.step = Step::Restored;
            j.save(self.store)?;
        }

        // 4. The current database becomes the pre-restore snapshot.
        let snap_name = j
            .snapshot_database
            .get_or_insert_with(|| derived_name(&target, "pre_restore", &j.restore_id))
            .clone();
        let snap_id = j.snapshot_id.get_or_insert_with(|| new_id(Utc::now())).clone();
        j.save(self.store)?;
        self.progress.note(Note::Step(format!(
            "keeping the current {target} as {snap_name} (backup {snap_id}, kind database)"
        )));
        let snapshot = match snapshot_manifest(&mut lock, &snap_id, &snap_name) {
            Ok(s) => s,
            Err(e) => {
                drop(restored);
                return Err(abandon(&mut admin, e));
            }
        };
        let carried = copy_events(&mut lock, &mut restored).and_then(|n| {
            // The flags are as they are now, not as they were then.
            crate::schema::flags::carry_over(&mut lock, &mut restored)
                .map_err(BackupError::db("carrying backstop.flags over"))?;
            if !temporary {
                // The snapshot was frozen when it was set aside.
                freeze::unfreeze(&mut restored)?;
            }
            Ok(n)
        });
        if let Err(e) = carried {
            drop(restored);
            return Err(abandon(&mut admin, e));
        }
        drop(restored);
        let snap_dir = self.store.path(&snap_id);
        let saved = std::fs::create_dir_all(&snap_dir)
            .map_err(|source| BackupError::Dir { path: self.store.dir().to_path_buf(), source })
            .and_then(|()| snapshot.write(&snap_dir));
        if let Err(e) = saved {
            return Err(abandon(&mut admin, e));
        }

        // 5. The swap: nobody may be connected to either database. Our own
        // session on the target goes too (the swap ends it with the rest);
        // the target stays closed to new sessions until the swap commits.
        self.progress.note(Note::Step(format!("swapping {source_db} in as {target}")));
        let _ = lock.batch_execute("select pg_advisory_unlock_all()");
        drop(lock);
        let swapped = swap_names(&mut admin, &target, &source_db, &snap_name);
        if let Err(e) = swapped {
            let _ = admin.batch_execute(&format!(
                "ALTER DATABASE {} WITH ALLOW_CONNECTIONS true",
                quote_ident(&target)
            ));
            let _ = std::fs::remove_dir_all(&snap_dir);
            if !temporary {
                // Put the snapshot's freeze back as it was.
                if let Ok(mut c) = connect_to(self.url, &source_db) {
                    let _ = freeze::freeze(
                        &mut c,
                        "pre-restore snapshot",
                        &FreezeSection { terminate_sessions: false, roles: vec![] },
                    );
                }
            }
            return Err(abandon(&mut admin, e));
        }
        j.step = Step::Swapped;
        j.save(self.store)?;
        if !temporary {
            // The snapshot that came back is live again, no longer a backup.
            let _ = self.store.remove(&m.id);
        }
        Ok(())
    }

    /// Creates `name` like `target` and pg_restores the backup into it.
    fn restore_into_new(
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

    /// After the swap: audit the restore in the (new) target.
    fn finish_swap(
        &mut self,
        mut j: Journal,
        m: &Manifest,
        started: Instant,
        resumed: bool,
    ) -> Result<RestoreReport, BackupError> {
        let mut client = crate::pg::connect(self.url, "backstop")?;
        freeze::exempt(&mut client).map_err(BackupError::db("exempting the session"))?;
        // Whatever a restored backup says about a freeze, the new target is not frozen.
        freeze::unfreeze(&mut client)?;
        let report = RestoreReport {
            backup_id: m.id.clone(),
            database: j.database.clone(),
            strategy: Strategy::Swap,
            snapshot_id: j.snapshot_id.clone().unwrap_or_default(),
            snapshot_database: j.snapshot_database.clone(),
            tables: m.row_counts.len(),
            rows: m.row_counts.values().sum(),
            duration_ms: started.elapsed().as_millis() as u64,
            resumed,
            warnings: std::mem::take(&mut self.warnings),
        };
        record_success(&mut client, &j, &report)?;
        j.step = Step::Swapped;
        Journal::remove(self.store)?;
        Ok(report)
    }

    /// Clean: dump the current state, then drop the user schemas and
    /// restore into them. `backstop` itself stays (its events and freeze);
    /// only `backstop.applied` is replaced by the backup's.
    fn clean(&mut self, j: &mut Journal, m: &Manifest, client: &mut Client) -> Result<(), Failure> {
        if j.step < Step::Restoring {
            self.progress.note(Note::Step(format!(
                "taking a pre-restore backup of the current {}",
                j.database
            )));
            let options = CreateOptions {
                label: Some("pre-restore".into()),
                jobs: self.options.jobs,
                lock_wait: self.options.lock_wait,
            };
            let snapshot = create(self.url, self.store, self.tools, &options, self.progress)?;
            self.progress.note(Note::Info(format!(
                "pre-restore backup {} taken ({} table(s), {} row(s))",
                snapshot.id,
                snapshot.row_counts.len(),
                snapshot.row_counts.values().sum::<i64>()
            )));
            j.snapshot_id = Some(snapshot.id);
            j.step = Step::Restoring;
            j.save(self.store)?;
        }
        let stuck = Failure::Stuck;
        self.progress.note(Note::Step(format!("dropping the user schemas of {}", j.database)));
        drop_user_schemas(client, &mut self.warnings).map_err(stuck)?;
        self.progress.note(Note::Step(format!(
            "restoring backup {} into {} with {} job(s)",
            m.id, j.database, self.options.jobs
        )));
        let target = tools::target(self.url, None)?;
        let list = self.without_backstop_schema(m).map_err(stuck)?;
        let mut cmd = self.tools.command("pg_restore", &target);
        cmd.args(["--verbose", "--exit-on-error", "--exclude-schema=backstop"])
            .arg(format!("--use-list={}", list.path().display()))
            .arg(format!("--jobs={}", self.options.jobs.max(1)))
            .arg(format!("--dbname={}", target.conninfo))
            .arg(self.store.dump_dir(&m.id));
        let (ok, stderr) = run_verbose(cmd, "pg_restore", m.row_counts.len() as u64, self.progress)
            .map_err(stuck)?;
        self.progress.note(Note::Finished);
        if !ok {
            return Err(Failure::Stuck(BackupError::RestoreFailed {
                id: m.id.clone(),
                output: tail(&stderr),
            }));
        }
        // backstop.applied as the backup has it: it matches the restored schema.
        if crate::schema::exists(client)
            .map_err(BackupError::db("reading the backstop schema"))
            .map_err(stuck)?
        {
            crate::schema::applied::clear(client)
                .map_err(BackupError::db("replacing backstop.applied"))
                .map_err(stuck)?;
            let list = self.applied_list(m).map_err(stuck)?;
            if let Some(list) = list {
                let mut cmd = self.tools.command("pg_restore", &target);
                cmd.arg("--data-only")
                    .arg(format!("--use-list={}", list.path().display()))
                    .arg(format!("--dbname={}", target.conninfo))
                    .arg(self.store.dump_dir(&m.id));
                let (ok, stderr) =
                    run_verbose(cmd, "pg_restore", 1, self.progress).map_err(stuck)?;
                if !ok {
                    return Err(Failure::Stuck(BackupError::RestoreFailed {
                        id: m.id.clone(),
                        output: tail(&stderr),
                    }));
                }
            }
        }
        self.progress.note(Note::Step(format!("checking {} against backup {}", j.database, m.id)));
        let differences = compare(client, m).map_err(stuck)?;
        if !differences.is_empty() {
            return Err(Failure::Stuck(BackupError::Mismatch { id: m.id.clone(), differences }));
        }
        j.step = Step::Restored;
        j.save(self.store)?;
        Ok(())
    }

    /// The archive's table of contents without the `backstop` schema's
    /// own entries (`--exclude-schema` leaves out what is in it, not the
    /// schema itself, which the clean restore keeps).
    fn without_backstop_schema(
        &self,
        m: &Manifest,
    ) -> Result<tempfile::NamedTempFile, BackupError> {
        let toc = match super::verify::toc(self.tools, &self.store.dump_dir(&m.id))? {
            Ok(toc) => toc,
            Err(output) => return Err(BackupError::RestoreFailed { id: m.id.clone(), output }),
        };
        let mut file =
            tempfile::NamedTempFile::new().map_err(BackupError::io(std::env::temp_dir()))?;
        for line in toc.lines() {
            let own = line.contains(" SCHEMA - backstop ") || line.contains(" - SCHEMA backstop ");
            if !own {
                writeln!(file, "{line}").map_err(BackupError::io(file.path()))?;
            }
        }
        Ok(file)
    }

    /// A `pg_restore --use-list` file with only `backstop.applied`'s data,
    /// or `None` when the backup has no such table.
    fn applied_list(&self, m: &Manifest) -> Result<Option<tempfile::NamedTempFile>, BackupError> {
        let toc = match super::verify::toc(self.tools, &self.store.dump_dir(&m.id))? {
            Ok(toc) => toc,
            Err(output) => return Err(BackupError::RestoreFailed { id: m.id.clone(), output }),
        };
        let Some(line) = toc.lines().find(|l| l.contains(" TABLE DATA backstop applied ")) else {
            return Ok(None);
        };
        let mut file =
            tempfile::NamedTempFile::new().map_err(BackupError::io(std::env::temp_dir()))?;
        writeln!(file, "{line}").map_err(BackupError::io(file.path()))?;
        Ok(Some(file))
    }

    fn finish_clean(
        &mut self,
        j: &Journal,
        m: &Manifest,
        started: Instant,
        resumed: bool,
    ) -> Result<RestoreReport, BackupError> {
        let mut client = crate::pg::connect(self.url, "backstop")?;
        freeze::exempt(&mut client).map_err(BackupError::db("exempting the session"))?;
        let report = RestoreReport {
            backup_id: m.id.clone(),
            database: j.database.clone(),
            strategy: Strategy::Clean,
            snapshot_id: j.snapshot_id.clone().unwrap_or_default(),
            snapshot_database: None,
            tables: m.row_counts.len(),
            rows: m.row_counts.values().sum(),
            duration_ms: started.elapsed().as_millis() as u64,
            resumed,
            warnings: std::mem::take(&mut self.warnings),
        };
        record_success(&mut client, j, &report)?;
        Ok(report)
    }
}

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

/// Databases that earlier restores of the connected database restored into
/// and left behind (a server crash, a kill), except the one an unfinished
/// restore still needs: found by their derived names and dropped. Returns
/// the names dropped. Best effort where the role may not drop them.
pub fn drop_leftovers(url: &str, store: &Store) -> Result<Vec<String>, BackupError> {
    let keep = journal(store)?.and_then(|j| j.temp_database);
    let mut client = crate::pg::connect(url, "backstop")?;
    let database: String = client
        .query_one("select current_database()::text", &[])
        .map_err(BackupError::db("reading the database's name"))?
        .get(0);
    drop(client);
    // `<db>_restoring_<18 characters of the restore id>`, the database's
    // name cut as derived_name cuts it.
    const ID_CHARS: usize = 18;
    let mut base = database;
    while base.len() + "_restoring_".len() + ID_CHARS > 63 {
        base.pop();
    }
    let prefix = format!("{base}_restoring_");
    let Ok(mut admin) = maintenance(url) else { return Ok(Vec::new()) };
    let names: Vec<String> = admin
        .query(
            "select datname::text from pg_database
              where starts_with(datname, $1) and length(datname) = length($1) + $2
                and substr(datname, length($1) + 1) ~ '^[0-9a-z]+$'",
            &[&prefix, &(ID_CHARS as i32)],
        )
        .map_err(BackupError::db("listing databases"))?
        .iter()
        .map(|r| r.get(0))
        .filter(|n: &String| Some(n) != keep.as_ref())
        .collect();
    let mut dropped = Vec::new();
    for name in names {
        if admin.batch_execute(&format!("DROP DATABASE IF EXISTS {}", quote_ident(&name))).is_ok() {
            dropped.push(name);
        }
    }
    Ok(dropped)
}

/// Whether this role may swap databases: it owns the target (or is
/// superuser), may create databases, and can reach a maintenance database.
fn can_swap(client: &mut Client, url: &str) -> Result<bool, BackupError> {
    let may: bool = client
        .query_one(
            "select r.rolsuper or (r.rolcreatedb and d.datdba = r.oid)
               from pg_roles r, pg_database d
              where r.rolname = current_user and d.datname = current_database()",
            &[],
        )
        .map_err(BackupError::db("reading the role's rights"))?
        .get(0);
    Ok(may && maintenance(url).is_ok())
}

/// A session on another database of the same server, exempt from freezes.
pub fn connect_to(url: &str, dbname: &str) -> Result<Client, BackupError> {
    let mut client = connect_db(url, Some(dbname), "backstop")?;
    freeze::exempt(&mut client).map_err(BackupError::db("exempting the session"))?;
    Ok(client)
}

/// A session on the server's `postgres` (or `template1`) database, for
/// creating, renaming and dropping databases.
fn maintenance(url: &str) -> Result<Client, BackupError> {
    connect_to(url, "postgres").or_else(|_| connect_to(url, "template1"))
}

fn database_exists(admin: &mut Client, name: &str) -> Result<bool, BackupError> {
    Ok(admin
        .query_one("select exists (select from pg_database where datname = $1)", &[&name])
        .map_err(BackupError::db("listing databases"))?
        .get(0))
}

/// `<db>_<what>_<stamp>`, cut to PostgreSQL's 63-byte names.
fn derived_name(db: &str, what: &str, restore_id: &str) -> String {
    let suffix = format!("_{what}_{}", restore_id.replace(['T', 'Z', '-'], "").to_lowercase());
    let mut base = db.to_string();
    while base.len() + suffix.len() > 63 {
        base.pop();
    }
    format!("{base}{suffix}")
}

fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Gives `to` the database-level settings, grants and connection limit of
/// `from` (a restore without `--create` does not carry them), except the
/// freeze's `default_transaction_read_only`.
fn copy_database_settings(admin: &mut Client, from: &str, to: &str) -> Result<(), BackupError> {
    let db = BackupError::db("copying the database's settings");
    let rows = admin
        .query(
            "select coalesce(pg_get_userbyid(nullif(s.setrole, 0))::text, ''), c.setting
               from pg_db_role_setting s cross join lateral unnest(s.setconfig) as c(setting)
              where s.setdatabase = (select oid from pg_database where datname = $1)",
            &[&from],
        )
        .map_err(db)?;
    let mut sql = String::new();
    for row in rows {
        let (role, setting): (String, String) = (row.get(0), row.get(1));
        let Some((name, value)) = setting.split_once('=') else { continue };
        if name == "default_transaction_read_only" && role.is_empty() {
            continue;
        }
        let value = guc_value(name, value);
        if role.is_empty() {
            sql.push_str(&format!(
                "ALTER DATABASE {} SET {} = {value};\n",
                quote_ident(to),
                quote_ident(name)
            ));
        } else {
            sql.push_str(&format!(
                "ALTER ROLE {} IN DATABASE {} SET {} = {value};\n",
                quote_ident(&role),
                quote_ident(to),
                quote_ident(name)
            ));
        }
    }
    let row = admin
        .query_one(
            "select datconnlimit, datacl is null,
                    coalesce((select array_agg(format('%s %s %s', coalesce(pg_get_userbyid(nullif(a.grantee, 0))::text, ''),
                                                      a.privilege_type, a.is_grantable))
                                from aclexplode(datacl) a), '{}')
               from pg_database where datname = $1",
            &[&from],
        )
        .map_err(BackupError::db("reading the database's grants"))?;
    let (limit, default_acl, grants): (i32, bool, Vec<String>) =
        (row.get(0), row.get(1), row.get(2));
    if limit != -1 {
        sql.push_str(&format!(
            "ALTER DATABASE {} WITH CONNECTION LIMIT {limit};\n",
            quote_ident(to)
        ));
    }
    if !default_acl {
        sql.push_str(&format!("REVOKE ALL ON DATABASE {} FROM PUBLIC;\n", quote_ident(to)));
        for g in grants {
            let parts: Vec<&str> = g.rsplitn(3, ' ').collect();
            let [grantable, privilege, grantee] = parts[..] else { continue };
            let grantee =
                if grantee.is_empty() { "PUBLIC".to_string() } else { quote_ident(grantee) };
            let with = if grantable == "true" { " WITH GRANT OPTION" } else { "" };
            sql.push_str(&format!(
                "GRANT {privilege} ON DATABASE {} TO {grantee}{with};\n",
                quote_ident(to)
            ));
        }
    }
    if !sql.is_empty() {
        admin.batch_execute(&sql).map_err(BackupError::db("copying the database's settings"))?;
    }
    Ok(())
}

/// A setting's value as SQL: list settings (`search_path` and the like)
/// element by element, everything else as one literal.
fn guc_value(name: &str, value: &str) -> String {
    const LISTS: [&str; 5] = [
        "search_path",
        "temp_tablespaces",
        "session_preload_libraries",
        "local_preload_libraries",
        "shared_preload_libraries",
    ];
    if !LISTS.contains(&name.to_ascii_lowercase().as_str()) {
        return literal(value);
    }
    let mut items = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                current.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => items.push(std::mem::take(&mut current).trim().to_string()),
            _ => current.push(c),
        }
    }
    items.push(current.trim().to_string());
    items.iter().map(|i| literal(i)).collect::<Vec<_>>().join(", ")
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
        roles: f.roles,
        extensions: f.extensions,
        duration_ms: 0,
        guards: Vec::new(),
        state: None,
        snapshot_database: Some(snapshot_db.to_string()),
        verification: Verification::default(),
    })
}

/// Carries `backstop.events` over: every event of `from` that `to` lacks
/// (the log of a backup is a prefix of the live one, ids included).
fn copy_events(from: &mut Client, to: &mut Client) -> Result<u64, BackupError> {
    crate::schema::events::carry_over(from, to).map_err(|e| match e {
        crate::schema::events::CarryError::Db(source) => {
            BackupError::db("carrying backstop.events over")(source)
        }
        crate::schema::events::CarryError::Io(source) => BackupError::io("backstop.events")(source),
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
    let deadline = Instant::now() + Duration::from_secs(10);
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
        std::thread::sleep(Duration::from_millis(100));
    }
    admin
        .batch_execute(&format!(
            "BEGIN; ALTER DATABASE {t} RENAME TO {p}; ALTER DATABASE {s} RENAME TO {t}; COMMIT;"
        ))
        .map_err(|e| {
            let _ = admin.batch_execute("ROLLBACK");
            BackupError::db("swapping the databases")(e)
        })?;
    admin
        .batch_execute(&format!("ALTER DATABASE {p} WITH ALLOW_CONNECTIONS true"))
        .map_err(BackupError::db(format!("opening {snapshot} for reading")))?;
    Ok(())
}

/// Drops every user schema this role may drop, except `backstop`; `public`
/// is recreated with its owner, grants and comment. Schemas of other
/// owners are left, with a warning.
fn drop_user_schemas(client: &mut Client, warnings: &mut Vec<String>) -> Result<(), BackupError> {
    let rows = client
        .query(
            "select n.nspname::text, pg_has_role(n.nspowner, 'USAGE'),
                    pg_get_userbyid(n.nspowner)::text, obj_description(n.oid, 'pg_namespace'),
                    coalesce((select array_agg(format('%s %s %s', coalesce(pg_get_userbyid(nullif(a.grantee, 0))::text, ''),
                                                      a.privilege_type, a.is_grantable))
                                from aclexplode(n.nspacl) a), '{}')
               from pg_namespace n
              where n.nspname not in ('pg_catalog', 'information_schema', 'backstop', 'pg_toast')
                and n.nspname not like 'pg_temp%' and n.nspname not like 'pg_toast_temp%'
              order by 1",
            &[],
        )
        .map_err(BackupError::db("listing schemas"))?;
    let mut sql = String::new();
    for row in rows {
        let (name, mine, owner, comment, grants): (
            String,
            bool,
            String,
            Option<String>,
            Vec<String>,
        ) = (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
        if !mine {
            warnings.push(format!(
                "schema {name} belongs to {owner} and was not dropped; pg_restore restores into it"
            ));
            continue;
        }
        let q = quote_ident(&name);
        sql.push_str(&format!("DROP SCHEMA {q} CASCADE;\n"));
        if name == "public" {
            sql.push_str(&format!(
                "CREATE SCHEMA {q};\nALTER SCHEMA {q} OWNER TO {};\n",
                quote_ident(&owner)
            ));
            for g in grants {
                let parts: Vec<&str> = g.rsplitn(3, ' ').collect();
                let [grantable, privilege, grantee] = parts[..] else { continue };
                if grantee == owner {
                    continue;
                }
                let grantee =
                    if grantee.is_empty() { "PUBLIC".to_string() } else { quote_ident(grantee) };
                let with = if grantable == "true" { " WITH GRANT OPTION" } else { "" };
                sql.push_str(&format!("GRANT {privilege} ON SCHEMA {q} TO {grantee}{with};\n"));
            }
            if let Some(c) = comment {
                sql.push_str(&format!("COMMENT ON SCHEMA {q} IS {};\n", literal(&c)));
            }
        }
    }
    let mut tx = client.transaction().map_err(BackupError::db("dropping the user schemas"))?;
    tx.batch_execute(&sql).map_err(BackupError::db("dropping the user schemas"))?;
    tx.commit().map_err(BackupError::db("dropping the user schemas"))
}

/// Drops the database of a pre-restore snapshot (for `backup prune`).
pub fn drop_snapshot(url: &str, m: &Manifest) -> Result<(), BackupError> {
    let Some(name) = &m.snapshot_database else {
        return Ok(());
    };
    let mut admin = maintenance(url)?;
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {}", quote_ident(name)))
        .map_err(BackupError::db(format!("dropping the snapshot database {name}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_names_fit_in_63_bytes() {
        let n = derived_name("app", "pre_restore", "20260107T120000Z-ab12");
        assert_eq!(n, "app_pre_restore_20260107120000ab12");
        let long = "x".repeat(80);
        assert_eq!(derived_name(&long, "restoring", "20260107T120000Z-ab12").len(), 63);
    }

    #[test]
    fn list_settings_are_quoted_element_by_element() {
        assert_eq!(guc_value("search_path", "\"$user\", public"), "'$user', 'public'");
        assert_eq!(guc_value("work_mem", "64MB"), "'64MB'");
        assert_eq!(guc_value("search_path", "\"a,b\", c"), "'a,b', 'c'");
    }
}
