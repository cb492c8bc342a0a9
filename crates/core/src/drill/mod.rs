//! Rollback drills: the runbook played through on a copy, timed against
//! its promises, and kept, so that "Last tested: never" becomes a date.
//!
//! A drill restores what production would fall back on (the latest
//! verified backup, or the one named) into a throwaway cluster of the
//! target's major, checked against its manifest; brings the release onto
//! the copy (its migrations applied again when the backup predates them,
//! behind the copy's own verified backup, its flags on); then carries out
//! method A, method C and method B there with the one [`crate::respond::Responder`]
//! production uses, each followed by the `[verify]` suite (cross-user RLS
//! isolation included), each step `passed`, `slow` (over its `[drill]`
//! target) or `failed`. After C the copy's schema must be the one the
//! release started from, or C failed and what the downs left is named.
//! C runs before B so that B restores the copy's own backup over what C
//! left, and neither depends on the other.
//!
//! The target is only read, but for its record in `backstop.drills`
//! (`record`), written under the drill lock (two drills take turns). A
//! drill killed anywhere leaves no cluster (its watcher stops it), no
//! workspace (`workspace`), no process, and a record the next drill marks
//! interrupted and reports with what it cleaned. The report (text, JSON,
//! Markdown for the runbook's "Last tested") goes to the team only: the
//! copy's methods run with a notifier that tells no one.

pub mod config;
mod copy;
mod methods;
mod record;
mod report;
mod run;
mod workspace;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use config::DrillSection;
pub use record::{due, history, Due};
pub use run::run;

use crate::backup::{BackupError, Store};
use crate::flags::FlagDecl;
use crate::freeze::FreezeSection;
use crate::incident::Notifier;
use crate::migrate::Settings;
use crate::respond::HooksSection;
use crate::source::Migration;
use crate::verify::AfterPlan;

/// What a drill needs, taken from the configuration once.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The target: only read, but for the drill's record.
    pub url: String,
    pub section: DrillSection,
    /// Production's backups, only read.
    pub store: Store,
    /// Parallel jobs of pg_dump and pg_restore.
    pub jobs: usize,
    pub migrations: Vec<Migration>,
    pub settings: Settings,
    /// `[[flags]]`: the release's flags, made on the copy when its backup
    /// predates them.
    pub flags: Vec<FlagDecl>,
    /// `[hooks]`; a drill runs `after_kill` only when `[drill] hooks` names it.
    pub hooks: HooksSection,
    /// The `[verify]` suite, when it has checks.
    pub verify: Option<AfterPlan>,
    pub freeze: FreezeSection,
    /// `[backup] restore` and `restore_schemas`: method B on the copy puts
    /// the backup back as production's would.
    pub restore: (crate::backup::config::RestoreMode, Vec<String>),
    /// `[check] owner_columns`, for method C's exposure counts.
    pub owner_columns: Vec<String>,
    /// `[rollback] export_dropped`.
    pub keep_dropped: bool,
    /// The team's Slack and e-mail, for the report.
    pub notifier: Notifier,
    /// How long a flag change waits for a lock.
    pub lock_wait: Duration,
}

/// How this drill runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// A backup id, or `latest`: the newest verified one of this database.
    pub from_backup: String,
    /// The release whose flags method A turns off (default: the one with
    /// flags on, else the one declared last).
    pub release: Option<String>,
}

/// How a step went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepOutcome {
    Passed,
    /// Done, but over its target.
    Slow,
    Failed,
    /// A step before it failed, so it could not be played.
    NotRun,
    /// A method the project's runbook does not use (no `[[flags]]` for
    /// A, or left out of `[drill] methods`): said, not held against it.
    NotUsed,
}

impl StepOutcome {
    pub fn word(self) -> &'static str {
        match self {
            StepOutcome::Passed => "passed",
            StepOutcome::Slow => "slow",
            StepOutcome::Failed => "failed",
            StepOutcome::NotRun => "not run",
            StepOutcome::NotUsed => "not used",
        }
    }

    pub fn mark(self) -> &'static str {
        match self {
            StepOutcome::Passed => "✓",
            StepOutcome::Slow => "⚠",
            StepOutcome::Failed => "✗",
            StepOutcome::NotRun => "·",
            StepOutcome::NotUsed => "–",
        }
    }
}

/// One step of the drill, timed.
#[derive(Debug, Clone, Serialize)]
pub struct StepResult {
    /// `restore`, `release`, `method A`, `method C`, `method B`.
    pub name: String,
    pub outcome: StepOutcome,
    pub took_ms: u64,
    /// The runbook's promise, from `[drill]`.
    pub target_ms: Option<u64>,
    /// What it did, or why it failed.
    pub detail: String,
    /// The method's own steps, as production's rollback shows them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<crate::respond::Step>,
}

/// Something the drill found, with what to do about it.
#[derive(Debug, Clone, Serialize)]
pub struct Issue {
    pub step: String,
    pub problem: String,
    pub fix: String,
    /// Whether it fails the drill (a step failed or was slow), or is a
    /// warning about what the drill could not prove.
    pub fails: bool,
}

/// A table whose rows changed between the backup and now.
#[derive(Debug, Clone, Serialize)]
pub struct TableRows {
    pub table: String,
    pub in_backup: i64,
    pub now: i64,
    /// A table the release created: method C's downs drop it (exported first).
    pub dropped_by_c: bool,
}

/// The rows the target gained or lost since the backup, as the runbook's
/// methods would lose or keep them.
#[derive(Debug, Clone, Serialize)]
pub struct RowsSince {
    pub backup_id: String,
    pub backup_at: DateTime<Utc>,
    pub tables: Vec<TableRows>,
}

/// The backup a drill ran on.
#[derive(Debug, Clone, Serialize)]
pub struct BackupUsed {
    pub id: String,
    pub kind: String,
    pub created_at: DateTime<Utc>,
    pub size_bytes: u64,
}

/// A drill as it ran.
#[derive(Debug, Clone, Serialize)]
pub struct Drill {
    /// Its id in `backstop.drills`.
    pub id: i64,
    pub database: String,
    pub server_major: u32,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub by: String,
    pub backup: BackupUsed,
    pub release: Option<String>,
    /// The release's migrations, those C reverts.
    pub migrations: Vec<String>,
    /// Whether they were applied again on the copy (the backup predates them).
    pub reapplied: bool,
    pub steps: Vec<StepResult>,
    pub rows_since: Option<RowsSince>,
    pub issues: Vec<Issue>,
    /// What the drill cleaned up of earlier ones that were killed.
    pub cleaned: Vec<String>,
    /// Where the report went (Slack, e-mail).
    pub notified: Vec<String>,
    pub duration_ms: u64,
    pub passed: bool,
}

impl Drill {
    /// The report for people (and for the team's Slack and e-mail).
    pub fn text(&self) -> String {
        report::text(self)
    }

    /// The report as the runbook's "Last tested" section.
    pub fn markdown(&self) -> String {
        report::markdown(self)
    }
}

/// Why a drill could not be played (as opposed to a step that failed,
/// which is a result, recorded).
#[derive(Debug, thiserror::Error)]
pub enum DrillError {
    #[error(transparent)]
    Connect(#[from] crate::pg::ConnectError),
    #[error(transparent)]
    Db(#[from] crate::pg::DbError),
    #[error(transparent)]
    Backup(#[from] BackupError),
    #[error(transparent)]
    Cluster(#[from] crate::pg::cluster::ClusterError),
    #[error(
        "backup {id} is {what}, not files a drill can restore into a throwaway cluster; drill \
         from a dump or a pgBackRest restore point (`backstop backup list` shows them)"
    )]
    NotRestorable { id: String, what: String },
    #[error(
        "gave up waiting for the drill lock after {}; another drill of this database runs ({}); \
         let it finish, or raise [drill] lock_wait",
        crate::kit::duration::human(*.waited),
        .holder
    )]
    LockWait { waited: Duration, holder: String },
    #[error("could not make the drill's workspace in {}", std::env::temp_dir().display())]
    Workspace(#[source] std::io::Error),
    #[error(transparent)]
    Flags(#[from] crate::flags::FlagsError),
    #[error(transparent)]
    Apply(#[from] crate::migrate::ApplyError),
}

impl DrillError {
    /// 2 for a backup that cannot be drilled or was not found, 3 for the
    /// environment (the database, PostgreSQL's programs, the disk).
    pub fn exit_code(&self) -> u8 {
        match self {
            DrillError::Connect(e) => e.exit_code(),
            DrillError::Backup(e) => e.exit_code(),
            DrillError::NotRestorable { .. } => 2,
            DrillError::Flags(e) => e.exit_code(),
            DrillError::Apply(e) => e.exit_code(),
            DrillError::Db(_)
            | DrillError::Cluster(_)
            | DrillError::LockWait { .. }
            | DrillError::Workspace(_) => 3,
        }
    }
}

/// What a drill tells its caller as it goes.
#[derive(Debug)]
pub enum Note<'a> {
    /// Another drill of this database runs; this one waits for it.
    Waiting(&'a str),
    /// Something left by an earlier, interrupted drill, dealt with.
    Cleaned(&'a str),
    /// A step begins.
    Starting(&'a str),
    /// A part of a method finished (as production's rollback shows it).
    Part(&'a crate::respond::Step),
    /// A step finished.
    Finished(&'a StepResult),
    /// Something worth saying that does not stop the drill.
    Warning(&'a str),
}

/// Receives [`Note`]s.
pub trait Observer {
    fn note(&mut self, note: Note<'_>);
}

/// An [`Observer`] that says nothing.
pub struct Quiet;

impl Observer for Quiet {
    fn note(&mut self, _: Note<'_>) {}
}

/// A step's outcome by its time and target.
fn judged(ok: bool, took_ms: u64, target_ms: Option<u64>) -> StepOutcome {
    match (ok, target_ms) {
        (false, _) => StepOutcome::Failed,
        (true, Some(t)) if took_ms > t => StepOutcome::Slow,
        (true, _) => StepOutcome::Passed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_over_its_target_is_slow_and_a_failure_stays_one() {
        assert_eq!(judged(true, 10, Some(5)), StepOutcome::Slow);
        assert_eq!(judged(true, 5, Some(5)), StepOutcome::Passed);
        assert_eq!(judged(true, 5_000, None), StepOutcome::Passed);
        assert_eq!(judged(false, 1, Some(5)), StepOutcome::Failed);
    }
}
