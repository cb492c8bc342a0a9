//! Verified backups: the real `pg_dump`/`pg_restore` in directory format,
//! a manifest with per-file BLAKE3 checksums, row counts and a schema
//! fingerprint from the dump's own snapshot, verification (checksums, and a
//! test restore into a throwaway cluster), retention, restore (Method B's
//! database half) and the gate that makes `migrate` take a backup first.
//!
//! On disk a backup is `<dir>/<id>/manifest.json` plus `<dir>/<id>/dump/`
//! (pg_dump's directory). It is written as `<dir>/<id>.partial/` and renamed
//! only when complete, so a listed backup is always a whole one.

pub mod config;
pub mod create;
pub mod gate;
pub mod identity;
pub mod manifest;
pub mod pgbackrest;
pub mod point;
pub mod restore;
pub mod retention;
pub mod store;
pub mod tools;
pub mod verify;

use std::path::PathBuf;

pub use config::{BackupSection, VerifyLevel};
pub use create::{create, CreateOptions};
pub use gate::{BackupGate, GateMode};
pub use manifest::{Check, Kind, Manifest};
pub use restore::{restore, RestoreOptions, RestoreReport};
pub use retention::{prune, PruneReport};
pub use store::Store;
pub use tools::Tools;
pub use verify::{verify, VerifyReport};

use crate::pg::cluster::ClusterError;
use crate::pg::ConnectError;

/// What went wrong with a backup, a verification or a restore.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("interrupted ({signal}) while {tool} ran{then}")]
    Interrupted {
        tool: String,
        signal: String,
        /// What was done about it, as `; …`.
        then: String,
    },
    #[error(
        "{cause}; and the cleanup did not finish ({cleanup}): the restore's record is kept, so \
         `backstop backup restore --resume` finishes the restore or `backstop backup unfreeze` lifts the freeze \
         and drops what the restore left"
    )]
    CleanupFailed { cause: Box<BackupError>, cleanup: String },
    #[error(
        "{tool} not found in {searched}; install the PostgreSQL client tools \
         (`apt-get install postgresql-client`) or name the directory that holds {tool} in \
         BACKSTOP_PG_BIN or [postgres] bin_dirs"
    )]
    ToolMissing { tool: &'static str, searched: String },
    #[error(
        "{tool} {tool_version} cannot back up PostgreSQL {server_version} (a dump needs a {tool} of the \
         server's major version or newer); install the PostgreSQL {server_major} client tools or name \
         their directory in BACKSTOP_PG_BIN or [postgres] bin_dirs"
    )]
    ToolTooOld {
        tool: &'static str,
        tool_version: String,
        server_version: String,
        server_major: u32,
    },
    #[error("could not run {tool}")]
    Spawn {
        tool: String,
        #[source]
        source: std::io::Error,
    },
    #[error("pg_dump failed: {output}")]
    DumpFailed { output: String },
    #[error(
        "pg_dump waited {waited} for a table lock another session holds (an ACCESS EXCLUSIVE \
         lock blocks a dump): {output}; let that session finish, or raise [backup] lock_wait"
    )]
    LockWait { waited: String, output: String },
    #[error(
        "the backup dir {path} is full; free space there or point [backup] dir in backstop.toml \
         at a larger disk (nothing was kept of the failed backup)"
    )]
    DiskFull { path: PathBuf },
    #[error("could not write to the backup dir {path}; check its permissions or set [backup] dir in backstop.toml")]
    Dir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("could not read or write {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no backup {id} in {dir}; `backstop backup list` shows the backups there")]
    NotFound { id: String, dir: PathBuf },
    #[error("no verified backup of database {database} in {dir}; take one with `backstop backup create`")]
    NoneVerified { database: String, dir: PathBuf },
    #[error(
        "{path}: unreadable manifest ({reason}); the backup cannot be trusted, take a new one"
    )]
    BadManifest { path: PathBuf, reason: String },
    #[error("backup {id} failed verification: {}", .problems.join("; "))]
    Corrupt { id: String, problems: Vec<String> },
    #[error("backup {id} restored, but does not match its manifest: {}", .differences.join("; "))]
    Mismatch { id: String, differences: Vec<String> },
    #[error("pg_restore of backup {id} failed: {output}")]
    RestoreFailed { id: String, output: String },
    #[error(
        "backup {id} needs extension(s) {} that the local PostgreSQL does not have; install them \
         (e.g. `apt-get install postgresql-{major}-<extension>`) to restore it here",
        .missing.join(", ")
    )]
    MissingExtension { id: String, missing: Vec<String>, major: u32 },
    #[error(
        "backup {id} is a backup of PostgreSQL {backup_major}, newer than the local PostgreSQL {local_major}; \
         install PostgreSQL {backup_major} or name its bin directory in BACKSTOP_PG_BIN or [postgres] bin_dirs"
    )]
    LocalTooOld { id: String, backup_major: u32, local_major: u32 },
    #[error(
        "backup {id} is of {backup_database}, not of {target_database}; restore it into \
         the database it was taken from (set --database-url)"
    )]
    WrongDatabase { id: String, backup_database: String, target_database: String },
    #[error("{0}")]
    Refused(String),
    #[error(
        "backup {id} is {age} old, older than [backup] max_age ({max_age}); take a new one with \
         `backstop backup create`, or run migrate without --backup to have one taken"
    )]
    Stale { id: String, age: String, max_age: String },
    #[error(
        "backup {id} is {size}, smaller than [backup] min_size ({min_size}); is this the right \
         database? lower min_size in backstop.toml if the size is expected"
    )]
    TooSmall { id: String, size: String, min_size: String },
    /// pgBackRest refused or failed: what, and what to do.
    #[error("{what}{}", if fix.is_empty() { String::new() } else { format!("; {fix}") })]
    PgBackRest { what: String, fix: String },
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error(transparent)]
    Freeze(#[from] crate::freeze::FreezeError),
    #[error(transparent)]
    Db(#[from] crate::pg::DbError),
}

impl BackupError {
    /// The refusal of backup `m` for the database `source` is: the names,
    /// and the clusters when the names are the same (a database `app` of
    /// another cluster is not this `app`).
    pub(crate) fn wrong_database(id: &str, m: &Manifest, source: &identity::Source) -> BackupError {
        let short = |s: &str| s.chars().take(12).collect::<String>();
        let (backup_database, target_database) = match (
            m.database == source.database,
            m.system_identifier.as_deref(),
            source.system_identifier.as_deref(),
        ) {
            (true, Some(a), Some(b)) => (
                format!("database {} of cluster {}", m.database, short(a)),
                format!("database {} of this cluster ({})", source.database, short(b)),
            ),
            _ => (format!("database {}", m.database), source.database.clone()),
        };
        BackupError::WrongDatabase { id: id.to_string(), backup_database, target_database }
    }

    /// The process exit code this error calls for: 1 when a backup failed a
    /// check, 2 for a usage mistake, 3 when the environment failed.
    pub fn exit_code(&self) -> u8 {
        match self {
            BackupError::Corrupt { .. }
            | BackupError::Mismatch { .. }
            | BackupError::RestoreFailed { .. }
            | BackupError::BadManifest { .. }
            | BackupError::Stale { .. }
            | BackupError::TooSmall { .. } => 1,
            BackupError::NotFound { .. }
            | BackupError::NoneVerified { .. }
            | BackupError::WrongDatabase { .. }
            | BackupError::Refused(_) => 2,
            BackupError::Connect(ConnectError::BadUrl { .. }) => 2,
            BackupError::Freeze(e) => e.exit_code(),
            // As a shell reports a process ended by Ctrl-C.
            BackupError::Interrupted { .. } => 130,
            BackupError::CleanupFailed { cause, .. } => cause.exit_code(),
            _ => 3,
        }
    }

    pub(crate) fn db(context: impl Into<String>) -> impl FnOnce(postgres::Error) -> BackupError {
        let context = context.into();
        move |source| BackupError::Db(crate::pg::DbError::new(context, source))
    }

    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> BackupError {
        let path = path.into();
        move |source| BackupError::Io { path, source }
    }
}

/// Whether an I/O error means the disk is full.
pub(crate) fn is_disk_full(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(nix::errno::Errno::ENOSPC as i32)
        || e.raw_os_error() == Some(nix::errno::Errno::EDQUOT as i32)
}

/// Things worth telling the operator while a backup, verification or
/// restore runs. The CLI draws a progress bar from them on a terminal.
#[derive(Debug, Clone)]
pub enum Note {
    /// A step begins ("dumping app with 2 jobs").
    Step(String),
    /// Tables dumped or restored so far, of how many.
    Tables { done: u64, total: u64 },
    /// Bytes written so far.
    Bytes(u64),
    /// The long part of a step is over (the bar can go).
    Finished,
    /// A result worth a line ("reusing backup X, 12min old").
    Info(String),
    /// Something the operator should know that does not stop the work.
    Warning(String),
}

/// Receives [`Note`]s.
pub trait Progress {
    fn note(&mut self, note: Note);
}

/// A [`Progress`] that says nothing.
pub struct Quiet;

impl Progress for Quiet {
    fn note(&mut self, _: Note) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_kind_of_failure() {
        let missing = BackupError::ToolMissing { tool: "pg_dump", searched: "PATH".into() };
        assert_eq!(missing.exit_code(), 3);
        let corrupt = BackupError::Corrupt { id: "x".into(), problems: vec!["y".into()] };
        assert_eq!(corrupt.exit_code(), 1);
        let unknown = BackupError::NotFound { id: "x".into(), dir: "d".into() };
        assert_eq!(unknown.exit_code(), 2);
    }

    #[test]
    fn a_database_of_the_same_name_on_another_cluster_is_named_as_such() {
        // Regression: "is of database app, not of app".
        let mut m = manifest::tests::manifest();
        m.database = "app".into();
        m.system_identifier = Some("7301234567890123456".into());
        let source = identity::Source {
            database: "app".into(),
            system_identifier: Some("7309999999999999999".into()),
            server_version: "15.8".into(),
            server_version_num: 150008,
            encoding: "UTF8".into(),
        };
        let text = BackupError::wrong_database("b1", &m, &source).to_string();
        assert!(text.contains("database app of cluster 730123456789"), "{text}");
        assert!(text.contains("database app of this cluster (730999999999)"), "{text}");
    }
}
