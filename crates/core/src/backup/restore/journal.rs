//! The journal of a restore: `<backup dir>/restore.json`, rewritten whole
//! (to a temporary name, then renamed) at each step, so a crash leaves a
//! record that `status` shows and `restore --resume` continues from. Its
//! fields and step names are a file format: a journal written by an older
//! Backstop must still be finished by this one.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::backup::store::new_id;
use crate::backup::{BackupError, Store};

/// The journal's file name in the backup dir.
pub const JOURNAL: &str = "restore.json";

/// How the backup is put in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Restore into a new database and swap names.
    Swap,
    /// Dump the current state, then drop the project's schemas and
    /// restore them in one transaction, the platform's left as they are
    /// (`in_place.rs`). Older journals call it `clean`.
    #[serde(rename = "in_place", alias = "clean")]
    InPlace,
    /// A point-in-time recovery of the whole cluster into a new data
    /// directory beside the server's, swapped in for it (`physical.rs`).
    Physical,
}

/// How far a restore got, in order: the last step the journal recorded.
/// A resumed run starts from here (see `swap.rs` and `clean.rs` for what
/// each strategy does after each step).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// The journal exists; nothing of the target changed yet.
    Started,
    /// Writes to the target are frozen.
    Frozen,
    /// Swap: the restore into the new database began. In place: the
    /// pre-restore backup is taken and the restore in place began.
    Restoring,
    /// The backup is restored and matches its manifest (swap: in the new
    /// database, not yet in place; in place: in place).
    Restored,
    /// Swap: the names are swapped; only the audit and the cleanup are left.
    Swapped,
}

impl Step {
    /// The step's name in the journal.
    pub fn name(self) -> &'static str {
        match self {
            Step::Started => "started",
            Step::Frozen => "frozen",
            Step::Restoring => "restoring",
            Step::Restored => "restored",
            Step::Swapped => "swapped",
        }
    }
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
    /// Physical: the server's data directory and how far the swap got.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub physical: Option<Physical>,
    /// Why the backup is put back this way, where it was chosen over a
    /// swap (or by `[backup] restore`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

/// How far a physical restore got, in order. A resumed run goes on after
/// the last one recorded; within `swapping`, by which directories exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PhysicalStep {
    /// The checks passed; nothing exists yet.
    Checked,
    /// pgBackRest restores into the new directory (a resumed run starts
    /// it over).
    Recovering,
    /// The copy runs on a spare port, recovered to the point and promoted.
    Recovered,
    /// The copy matches the state recorded at the point.
    Verified,
    /// Writes to the database are frozen; the audit log and flags are
    /// carried over to the copy.
    Frozen,
    /// The server is being stopped and the directories swapped: past the
    /// point of no return (only `--resume` finishes it).
    Swapping,
    /// The copy runs as the server; only the audit is left.
    Swapped,
}

/// What a physical restore works on, kept so that a resumed run (maybe
/// with the server down) finds it all again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Physical {
    pub step: PhysicalStep,
    /// The server's data directory (`SHOW data_directory`).
    pub data_dir: PathBuf,
    /// The directory of the server's major's `pg_ctl`.
    pub bin_dir: PathBuf,
    /// The server's major version.
    pub major: u32,
    /// The server's arguments as `postmaster.opts` records them (after
    /// the program), to start it again the same way.
    pub server_options: String,
    /// The data directory's owner (uid, gid): the account pg_ctl runs as
    /// when Backstop runs as root.
    pub owner: (u32, u32),
    /// The copy's spare port.
    pub port: u16,
    /// `[backup] server_stop` and `server_start`, when set.
    pub server_stop: Vec<String>,
    pub server_start: Vec<String>,
    /// A data directory kept by an earlier restore, swapped back in as it
    /// is (no recovery); `None`: a recovery into `restoring`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incoming: Option<PathBuf>,
}

impl Physical {
    /// Where the copy is restored: beside the data directory, so that the
    /// swap is two renames on one file system.
    pub fn restoring(&self, restore_id: &str) -> PathBuf {
        match &self.incoming {
            Some(kept) => kept.clone(),
            None => sibling(&self.data_dir, &format!("restoring-{restore_id}")),
        }
    }

    /// Where the replaced data directory is kept.
    pub fn kept(&self, restore_id: &str) -> PathBuf {
        sibling(&self.data_dir, &format!("pre-restore-{restore_id}"))
    }

    /// The copy's socket, its access rules and its log.
    pub fn run_dir(&self, restore_id: &str) -> PathBuf {
        sibling(&self.data_dir, &format!("backstop-{restore_id}"))
    }

    /// Where the server started on the restored directory logs what it
    /// says before its own logging takes over.
    pub fn server_log(&self, restore_id: &str) -> PathBuf {
        sibling(&self.data_dir, &format!("backstop-{restore_id}.log"))
    }
}

/// `<dir>.<suffix>`.
fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{suffix}"));
    dir.with_file_name(name)
}

impl Journal {
    /// The journal of a new restore of backup `id` into `database`, at
    /// [`Step::Started`] (not yet saved).
    pub(super) fn begin(id: &str, database: &str, strategy: Strategy) -> Journal {
        let now = Utc::now();
        Journal {
            restore_id: new_id(now),
            backup_id: id.to_string(),
            database: database.to_string(),
            strategy,
            step: Step::Started,
            temp_database: None,
            snapshot_id: None,
            snapshot_database: None,
            started_at: now,
            updated_at: now,
            physical: None,
            why: None,
        }
    }

    /// The unfinished restore a run of backup `id` continues, if `resume`;
    /// a refusal when the two disagree, since one backup's restore must not
    /// start over another's half-way state, nor `--resume` start afresh.
    pub(super) fn unfinished(
        store: &Store,
        id: &str,
        resume: bool,
    ) -> Result<Option<Journal>, BackupError> {
        let unfinished = journal(store)?;
        match (&unfinished, resume) {
            (Some(j), false) => Err(BackupError::Refused(format!(
                "a restore of backup {} into {} is unfinished ({}); finish it with \
                 `backstop backup restore {} --resume`",
                j.backup_id, j.database, j.step, j.backup_id
            ))),
            (Some(j), true) if j.backup_id != id => Err(BackupError::Refused(format!(
                "the unfinished restore is of backup {}, not {id}; run `backstop backup restore {} --resume`",
                j.backup_id, j.backup_id
            ))),
            (None, true) => Err(BackupError::Refused(format!(
                "no unfinished restore in {}; run `backstop backup restore {id}` without --resume",
                store.dir().display()
            ))),
            _ => Ok(unfinished),
        }
    }

    /// Records that the restore reached `step`, before the run goes on, so
    /// that a crash from here on resumes after it.
    pub(super) fn record(&mut self, step: Step, store: &Store) -> Result<(), BackupError> {
        self.step = step;
        self.save(store)?;
        crash_point(step.name());
        Ok(())
    }

    /// Records that a physical restore reached `step` (and the step
    /// `status` shows for it).
    pub(super) fn record_physical(
        &mut self,
        step: PhysicalStep,
        store: &Store,
    ) -> Result<(), BackupError> {
        self.step = match step {
            PhysicalStep::Checked => Step::Started,
            PhysicalStep::Recovering | PhysicalStep::Recovered => Step::Restoring,
            PhysicalStep::Verified => Step::Restored,
            PhysicalStep::Frozen | PhysicalStep::Swapping => Step::Frozen,
            PhysicalStep::Swapped => Step::Swapped,
        };
        if let Some(p) = self.physical.as_mut() {
            p.step = step;
        }
        self.save(store)?;
        crash_point(&format!("{step:?}").to_lowercase());
        Ok(())
    }

    /// Writes the journal to a temporary name and renames it, so a crash
    /// leaves the old record or the new one, never half of one.
    pub(super) fn save(&mut self, store: &Store) -> Result<(), BackupError> {
        self.updated_at = Utc::now();
        let path = store.dir().join(JOURNAL);
        let tmp = store.dir().join(format!("{JOURNAL}.tmp"));
        let text = serde_json::to_string_pretty(self).expect("a journal serializes");
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .and_then(|()| crate::backup::manifest::sync_dir(store.dir()))
            .map_err(BackupError::io(&path))
    }

    /// Forgets the restore: it is finished, or abandoned with the target
    /// as it was.
    pub(crate) fn remove(store: &Store) -> Result<(), BackupError> {
        let path = store.dir().join(JOURNAL);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(BackupError::io(path)(e)),
            _ => Ok(()),
        }
    }
}

/// For the tests of resuming: `BACKSTOP_TEST_CRASH_AFTER=<point>` kills
/// this process (SIGKILL, as the kernel's OOM killer would) when a
/// restore passes that point: a step's name as the journal writes it
/// once the journal recorded it, or a point inside a step (a logical
/// swap's `set_aside`, `closed`, `renamed` and `reopened`, its finish's
/// `audited`; a physical swap's `stopped`, `moved` and `starting`, the
/// last once the server's start is launched and before it is up).
pub(super) fn crash_point(point: &str) {
    if std::env::var("BACKSTOP_TEST_CRASH_AFTER").is_ok_and(|p| p == point) {
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_physical_restore_works_beside_the_data_directory() {
        let p = Physical {
            step: PhysicalStep::Checked,
            data_dir: PathBuf::from("/var/lib/postgresql/16/main"),
            bin_dir: PathBuf::from("/usr/lib/postgresql/16/bin"),
            major: 16,
            server_options: String::new(),
            owner: (105, 110),
            port: 5999,
            server_stop: vec![],
            server_start: vec![],
            incoming: None,
        };
        let id = "20260107T120000Z-ab12";
        assert_eq!(
            p.restoring(id),
            Path::new("/var/lib/postgresql/16/main.restoring-20260107T120000Z-ab12")
        );
        assert_eq!(
            p.kept(id),
            Path::new("/var/lib/postgresql/16/main.pre-restore-20260107T120000Z-ab12")
        );
        assert!(PhysicalStep::Frozen < PhysicalStep::Swapping);
    }

    /// `--resume` must finish restores journalled by older Backstops: the
    /// step names and fields on disk do not change.
    #[test]
    fn a_journal_on_disk_keeps_its_step_names_and_fields() {
        let names: Vec<String> =
            [Step::Started, Step::Frozen, Step::Restoring, Step::Restored, Step::Swapped]
                .iter()
                .map(|s| serde_json::to_string(s).unwrap())
                .collect();
        assert_eq!(
            names,
            ["\"started\"", "\"frozen\"", "\"restoring\"", "\"restored\"", "\"swapped\""]
        );
        for step in [Step::Started, Step::Frozen, Step::Restoring, Step::Restored, Step::Swapped] {
            assert_eq!(serde_json::to_string(&step).unwrap(), format!("\"{}\"", step.name()));
        }
        let old = r#"{
          "restore_id": "20260107T120000Z-ab12",
          "backup_id": "20260107T110000Z-cd34",
          "database": "app",
          "strategy": "swap",
          "step": "restored",
          "temp_database": "app_restoring_20260107120000ab12",
          "snapshot_id": null,
          "snapshot_database": null,
          "started_at": "2026-01-07T12:00:00Z",
          "updated_at": "2026-01-07T12:01:00Z"
        }"#;
        let j: Journal = serde_json::from_str(old).unwrap();
        assert_eq!((j.strategy, j.step), (Strategy::Swap, Step::Restored));
        let again = serde_json::to_value(&j).unwrap();
        let keys: Vec<&str> = again.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys.len(),
            10,
            "a journal has exactly the fields older Backstops wrote: {keys:?}"
        );
    }
}
