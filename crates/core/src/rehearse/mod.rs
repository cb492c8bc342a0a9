//! Rehearsals: the whole migration path on throwaway copies of the target,
//! timed. Snapshot the copy; apply each pending migration with its locks
//! traced; prove each down restores schema and data (up → down → up); run
//! failure scenarios on fresh copies; flag downs that lose data; write a
//! report and record the pass keyed by the migrations' checksums, which the
//! rehearsal gate of `migrate` looks for.
//!
//! Where to look: `run` drives one rehearsal, `round_trip` judges one
//! migration's down, `scenarios` plays failures A, B and C, `outcome` holds
//! what a rehearsal found, `snapshot` compares copies and `locks` turns
//! lock traces into the report's rows.

mod chain;
mod computed_trip;
pub mod config;
mod expand_scenario;
mod explain;
pub mod gate;
mod halves_meet;
mod injected;
mod locks;
mod lossy;
mod outcome;
mod plays;
pub mod record;
pub mod report;
mod round_trip;
mod run;
mod scenario_backup;
mod scenarios;
mod second_half;
mod snapshot;
mod splits;
pub mod summary;
mod trips;
pub mod with_downs;

use std::path::PathBuf;
use std::time::Duration;

pub use config::RehearseSection;

use crate::migrate::ApplyError;

pub use crate::copies::{
    dump_into, globals, held_back, left_copies, server_state, CopyDb, CopyInfo, FromBackup,
    LeftCopy, Method, RunsAs, SampleInfo, Workspace,
};
pub use gate::key_of;
pub use lossy::{summary as lossy_summary, LossKind, Lossy};
pub use outcome::{
    trip_counts, DefinitionDiff, Difference, LockRow, MigrationTrip, Presence, Rehearsal,
    Rehearsed, RelationChange, RoundTrip, Scenario, Split, Step, TripClass,
};
pub use run::rehearse;

/// Why a rehearsal could not be carried out (as opposed to one that ran
/// and found problems, which is a report with `ok: false`).
#[derive(Debug, thiserror::Error)]
pub enum RehearseError {
    /// The copy could not be made or reached.
    #[error(transparent)]
    Copy(#[from] crate::copies::CopyError),
    #[error(
        "{place}: cannot be rehearsed: {why}; nothing ran. Run it by hand on the server, outside \
         the migrations Backstop rehearses"
    )]
    Unsafe { place: String, why: String },
    #[error(transparent)]
    Db(#[from] crate::pg::DbError),
    #[error("could not {action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error(transparent)]
    Lock(#[from] crate::pg::lock::LockError),
    #[error("could not render the rehearsal report")]
    Report(#[source] minijinja::Error),
    /// Working out a down on the copy failed (not: the down could not be
    /// proved, which is a trip's outcome).
    #[error("could not work out the down of {version} on the copy")]
    Down {
        version: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl Options {
    /// What the rehearsal's workspace copies.
    pub fn copying(&self) -> crate::copies::Copying<'_> {
        crate::copies::Copying {
            from_backup: self.from_backup.as_ref(),
            schema_only: self.schema_only,
            sample: self.sample,
        }
    }
}

impl RehearseError {
    /// The exit code: environment failures are 3, apply errors keep theirs.
    pub fn exit_code(&self) -> u8 {
        match self {
            RehearseError::Copy(e) => e.exit_code(),
            RehearseError::Apply(e) => e.exit_code(),
            RehearseError::Unsafe { .. } => 1,
            _ => 3,
        }
    }
}

/// The verification suite a rehearsal runs on the copy after migrating.
#[derive(Debug, Clone)]
pub struct VerifyPlan {
    pub section: crate::verify::VerifySection,
    pub headers: crate::verify::ResolvedHeaders,
    /// Where backups are, for checks comparing with `backup:...`.
    pub backups: PathBuf,
}

/// What to rehearse and how.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The `[verify]` suite, run on the migrated copy when it has checks.
    pub verify: Option<VerifyPlan>,
    /// Copy the schema only (quick; does not satisfy the gate unless
    /// `accept_schema_only`).
    pub schema_only: bool,
    /// Only pending migrations with versions in this inclusive range.
    pub range: Option<(String, String)>,
    /// Copy this percentage of the rows (0 < p <= 100), foreign keys kept.
    pub sample: Option<f64>,
    /// Rehearse on a backup instead of the live database.
    pub from_backup: Option<FromBackup>,
    /// A migration without a down fails the round trip (`[rehearse]
    /// require_down`); otherwise it is reported as `no down`.
    pub require_down: bool,
    /// Migrations whose data changes no SQL puts back, accepted for the
    /// rehearsal to pass, each with the reason recorded (`--accept-irreversible`).
    pub accept_irreversible: Vec<(String, String)>,
    /// Also play the expand scenario in this schema (`--expand`): expand,
    /// writes through both shapes, rollback, contract, on a fresh copy.
    pub expand: Option<String>,
}

impl Options {
    /// Whether a `[verify]` suite with checks runs on the migrated copy:
    /// an empty suite adds no stage and no baseline.
    fn verifies(&self) -> bool {
        self.verify.as_ref().is_some_and(|p| !p.section.checks.is_empty())
    }
}

/// Milliseconds for the report, saturating: a step never lasts 584
/// million years, and the report must not panic if a clock says so.
fn ms(d: Duration) -> u64 {
    d.as_millis().try_into().unwrap_or(u64::MAX)
}
