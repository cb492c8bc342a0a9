//! Rollouts: the pending migrations carried to many databases (staging
//! then production, a database per tenant, the coordinator of a sharded
//! cluster) in waves. Each database is migrated with every gate it has
//! alone, through an [`Apply`] that the floor above provides (the
//! guarded migrate of `crate::migrator`): this module plans, runs the
//! waves' databases in parallel from one process (threads, `parallel`),
//! bakes each wave under the `[[triggers]]`, and keeps the plan and every
//! database's state in the control database (`backstop.rollout_*`),
//! written before and after each step, so a killed run resumes and never
//! applies a migration twice (each database's own history sees to that).
//! `undo` takes every database that got the release back, newest wave
//! first. An expand rollout (`rollout --expand`) expands each database
//! instead, wave by wave with the bakes, then contracts them all once the
//! last wave baked; its undo drops the expands still open. No queue,
//! scheduler or shard router of its own.

pub mod bake;
pub mod citus;
pub mod config;
pub mod pattern;
pub mod plan;
mod run;
mod status;
mod undo;

use std::time::Duration;

pub use config::{Kind, RolloutConfig, Take, TargetDecl, WaveDecl};
pub use plan::{Plan, PlannedWave};
pub use run::{dry_run, resume, start, Setup};
pub use status::{current, status, Record, WaveRecord};
pub use undo::undo;

pub use crate::schema::rollouts::{RolloutState, TargetState, WaveState};

/// One database of a rollout, its URL filled in (never shown: see
/// [`Target::shown_url`]).
#[derive(Clone)]
pub struct Target {
    pub name: String,
    pub url: String,
    pub kind: Kind,
}

impl Target {
    /// The URL with its password masked.
    pub fn shown_url(&self) -> String {
        crate::pg::redact(&self.url)
    }
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("name", &self.name)
            .field("url", &self.shown_url())
            .field("kind", &self.kind)
            .finish()
    }
}

/// Where a database stood before its run, read before anything ran.
#[derive(Debug, Clone)]
pub struct Position {
    /// The latest migration applied.
    pub before: Option<String>,
}

/// What a database's run did when it went through.
#[derive(Debug, Clone, Default)]
pub struct Applied {
    /// The migrations it committed.
    pub versions: Vec<String>,
    /// The latest applied afterwards.
    pub after: Option<String>,
    /// What the gates said worth keeping (a waiver, a down kept).
    pub notes: Vec<String>,
}

/// Why a database's run did not go through.
#[derive(Debug, Clone)]
pub struct Failed {
    /// The whole cause, passwords masked.
    pub error: String,
    /// What stays committed (a no-transaction migration's groups before
    /// the one that failed); empty when the run was one transaction.
    pub versions: Vec<String>,
    /// The latest applied afterwards, when it could be read.
    pub after: Option<String>,
}

/// How a database was taken back.
#[derive(Debug, Clone)]
pub struct Undone {
    /// The migrations reverted, newest first.
    pub reverted: Vec<String>,
    /// `downs` (its down files and computed downs) or `restore`.
    pub how: &'static str,
}

/// One database's migrate and undo, each with every gate it has alone.
/// Implemented above this floor (`crate::migrator::FleetMigrator`), so
/// that a rollout's database gets exactly what `backstop migrate` gives.
pub trait Apply: Sync {
    /// Applies the migrations up to `to` to `target`. `positioned` is
    /// called once its position is read and before anything is applied;
    /// an error from it stops the run before it changes anything.
    fn migrate(
        &self,
        target: &Target,
        to: Option<&str>,
        positioned: &mut dyn FnMut(&Position) -> Result<(), String>,
    ) -> Result<Applied, Failed>;

    /// Expands the pending migrations on `target` in `schema` (`migrate
    /// --expand`, every gate), as [`Apply::migrate`] applies them.
    fn expand(
        &self,
        target: &Target,
        schema: &str,
        positioned: &mut dyn FnMut(&Position) -> Result<(), String>,
    ) -> Result<Applied, Failed>;

    /// Contracts the expand open on `target` (`migrate --contract`, every
    /// gate); nothing to do, and no error, where it is contracted already.
    fn contract(&self, target: &Target) -> Result<Applied, Failed>;

    /// Takes `target` back to `before` (`None`: before any migration); an
    /// expand open on it is dropped instead.
    fn undo(&self, target: &Target, before: Option<&str>) -> Result<Undone, String>;
}

/// What happens, told as it happens (from several threads at once).
#[derive(Debug)]
pub enum Happening<'a> {
    /// The plan, before the first wave.
    Planned {
        rollout: i64,
        plan: &'a Plan,
    },
    /// Targets that no wave takes.
    Untaken {
        names: &'a [String],
    },
    WaveStarted {
        wave: &'a str,
        databases: usize,
        parallel: usize,
    },
    Done {
        wave: &'a str,
        target: &'a str,
        applied: &'a [String],
        took: Duration,
    },
    Failed {
        wave: &'a str,
        target: &'a str,
        error: &'a str,
    },
    /// The wave's databases ran; the triggers are watched for `bake`.
    Baking {
        wave: &'a str,
        bake: Duration,
        triggers: usize,
        databases: usize,
    },
    /// The bake's verdict on the wave.
    Baked {
        wave: &'a str,
        verdict: &'a str,
    },
    Halted {
        reason: &'a str,
    },
    UndoStarted {
        wave: &'a str,
        databases: usize,
    },
    Reverted {
        target: &'a str,
        undone: &'a Undone,
    },
    UndoFailed {
        target: &'a str,
        error: &'a str,
    },
    Note(&'a str),
}

/// Receives [`Happening`]s; called from the threads of a wave.
pub trait Observer: Sync {
    fn happening(&self, happening: Happening<'_>);
}

/// Why a rollout could not be started, resumed or undone (as opposed to
/// a database that failed, which is recorded and may halt it).
#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    #[error("{}:{line}: {message}", path.display())]
    Input { path: std::path::PathBuf, line: usize, message: String },
    #[error(
        "{} has no [[targets]]; declare the databases to roll out to (docs/rollout.md)",
        path.display()
    )]
    NoTargets { path: std::path::PathBuf },
    #[error(
        "{} has no [[waves]]; add one, e.g. [[waves]] name = \"all\" targets = [\"*\"] (docs/rollout.md)",
        path.display()
    )]
    NoWaves { path: std::path::PathBuf },
    #[error("cannot reach the control database {url}")]
    Control {
        url: String,
        #[source]
        source: crate::pg::ConnectError,
    },
    #[error(transparent)]
    Db(#[from] crate::pg::DbError),
    #[error("rollout {id} is {state}; {hint}")]
    Open { id: i64, state: RolloutState, hint: &'static str },
    #[error("{0}")]
    Nothing(String),
    #[error(
        "another `backstop rollout` holds this control database ({holder}); wait for it to end or stop it"
    )]
    Busy { holder: String },
    #[error(
        "the migrations changed since rollout {id} started ({what}); restore the files, or take the \
         rollout back with `backstop rollout --undo` and start a new one"
    )]
    ReleaseChanged { id: i64, what: String },
}

impl RolloutError {
    /// 2 for bad input, 1 when the files changed under a rollout, 3 for
    /// the control database.
    pub fn exit_code(&self) -> u8 {
        match self {
            RolloutError::Input { .. }
            | RolloutError::NoTargets { .. }
            | RolloutError::NoWaves { .. }
            | RolloutError::Open { .. }
            | RolloutError::Nothing(_) => 2,
            RolloutError::ReleaseChanged { .. } => 1,
            RolloutError::Control { source, .. } => source.exit_code(),
            RolloutError::Db(_) | RolloutError::Busy { .. } => 3,
        }
    }
}

/// Calls `f` on each of `items` from `parallel` threads, each taking the
/// next item not yet taken, until all are taken or `stop` is set (the
/// calls under way finish).
pub(crate) fn each_in_parallel<T: Sync>(
    items: &[T],
    parallel: usize,
    stop: &std::sync::atomic::AtomicBool,
    f: impl Fn(&T) + Sync,
) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..parallel.clamp(1, items.len().max(1)) {
            scope.spawn(|| loop {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Some(item) = items.get(next.fetch_add(1, Ordering::SeqCst)) else { break };
                f(item);
            });
        }
    });
}

/// A database error on the control database, said with what was being done.
pub(crate) fn db(context: &'static str) -> impl Fn(postgres::Error) -> RolloutError {
    move |source| RolloutError::Db(crate::pg::DbError::new(context, source))
}
