//! The verification suite: checks declared in `[verify]` (connection,
//! schema objects, RLS and cross-user isolation, row counts and checksums
//! against a snapshot, orphan rows, recent rows, SQL assertions, HTTP
//! endpoints, query plans), run concurrently, each with its own session,
//! severity and timeout. `backstop verify` runs it, and so do `migrate`
//! and `rollback` afterwards when `after_migrate = true`.

pub mod after;
pub mod checks;
pub mod config;
pub mod report;
pub mod snapshot;
mod suite;

use chrono::{DateTime, Utc};

pub use after::{AfterPlan, AfterRun};
pub use config::{CheckSpec, Kind, Phase, ResolvedHeaders, Severity, VerifySection};
pub use report::{CheckResult, Status, SuiteReport};
pub use snapshot::{ChecksumScope, Snapshot};
pub use suite::{Selection, Suite};

/// Why the suite, a check or a snapshot could not be run as asked (as
/// opposed to a check that ran and failed, which is a result).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Connect(#[from] crate::pg::ConnectError),
    #[error(transparent)]
    Db(#[from] crate::pg::DbError),
    #[error("no check is named {name:?}; the configured checks are: {}", known.join(", "))]
    UnknownCheck { name: String, known: Vec<String> },
    #[error(
        "check {check:?} (backstop.toml:{line}) compares with a snapshot, but none was named; \
         take one with `backstop verify --snapshot save NAME` before the change and pass \
         `--snapshot NAME`, or set snapshot = \"NAME\" on the check"
    )]
    NoSnapshot { check: String, line: usize },
    #[error("{}", not_found(.name, .known))]
    SnapshotNotFound { name: String, known: Vec<String> },
    #[error(
        "a snapshot named {name:?} exists already (taken {taken_at}); snapshots are never \
         overwritten, choose another name"
    )]
    SnapshotExists { name: String, taken_at: DateTime<Utc> },
    #[error("snapshot {name:?} in backstop.snapshots cannot be read ({reason}); take a new one")]
    SnapshotCorrupt { name: String, reason: String },
    #[error("cannot make a test row in {table}: {reason}")]
    TestRow { table: String, reason: String },
    #[error("{0}")]
    Http(String),
    #[error("{0}")]
    Backup(String),
}

fn not_found(name: &str, known: &[String]) -> String {
    let listed = if known.is_empty() {
        "there are none yet".to_string()
    } else {
        format!("there are: {}", known.join(", "))
    };
    format!(
        "no snapshot named {name:?} ({listed}); take one with `backstop verify --snapshot save {name}`"
    )
}

impl VerifyError {
    /// The exit code this error calls for: 2 for what the operator asked
    /// wrongly, 3 for an unreachable database, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            VerifyError::Connect(crate::pg::ConnectError::BadUrl { .. })
            | VerifyError::UnknownCheck { .. }
            | VerifyError::NoSnapshot { .. }
            | VerifyError::SnapshotNotFound { .. }
            | VerifyError::SnapshotExists { .. }
            | VerifyError::Backup(_) => 2,
            VerifyError::Connect(_) | VerifyError::Db(_) => 3,
            VerifyError::SnapshotCorrupt { .. }
            | VerifyError::TestRow { .. }
            | VerifyError::Http(_) => 1,
        }
    }
}
