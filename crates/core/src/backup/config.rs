//! `[backup]`: the pre-migration backup, what counts as one, and how it
//! must have been verified.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// How much verification a backup needs before it may guard a migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VerifyLevel {
    /// Every file matches its BLAKE3 checksum and `pg_restore --list` reads the archive.
    Checksums,
    /// As `checksums`, and a test restore into a throwaway cluster matched
    /// the manifest's row counts and schema fingerprint.
    Restore,
}

/// What takes the pre-migration backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, Default)]
pub enum Engine {
    /// A verified logical dump (`pg_dump`), restored with `pg_restore`.
    #[default]
    #[serde(rename = "pg_dump")]
    PgDump,
    /// The team's pgBackRest: a healthy stanza with a recent backup, and a
    /// named restore point whose WAL is archived.
    #[serde(rename = "pgbackrest")]
    PgBackRest,
}

/// How a logical backup is put back (`[backup] restore`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum RestoreMode {
    /// A swap where it can work, in place where it cannot (saying why).
    #[default]
    Auto,
    /// The project's schemas restored inside the database, the platform's
    /// left as they are.
    InPlace,
    /// Restore into a new database and swap the names.
    Swap,
}

/// `[backup]`: the pre-migration backup and what counts as one.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackupSection {
    /// Where backups are written, relative to the config file.
    pub dir: PathBuf,
    /// `migrate` reuses a verified backup of the same database younger than this.
    #[serde(deserialize_with = "crate::kit::duration::de")]
    pub max_age: Duration,
    /// `backup prune` removes backups older than this...
    #[serde(deserialize_with = "crate::kit::duration::de")]
    pub retention: Duration,
    /// ...but always keeps this many of the newest.
    pub keep_min: usize,
    /// Parallel jobs of pg_dump and pg_restore, at most (default: the number
    /// of cores). A dump uses one job per 16 MB of table data, up to this.
    pub jobs: Option<usize>,
    /// A backup smaller than this does not satisfy the gate (bytes, or "1MB", "512KiB").
    #[serde(deserialize_with = "crate::kit::size::de")]
    pub min_size: u64,
    /// How a backup must have been verified to guard a migration.
    pub verified: VerifyLevel,
    /// Whether `migrate` requires a backup (the backup gate).
    pub required: bool,
    /// How long pg_dump waits for a table lock another session holds
    /// (an ACCESS EXCLUSIVE lock blocks the dump) before giving up.
    #[serde(deserialize_with = "crate::kit::duration::de")]
    pub lock_wait: Duration,
    /// `pg_dump` (default) or `pgbackrest`.
    pub engine: Engine,
    /// pgBackRest's stanza of this cluster (needed with `engine = "pgbackrest"`).
    pub stanza: Option<String>,
    /// pgBackRest's own config file, relative to this one (default: pgBackRest's).
    pub config: Option<PathBuf>,
    /// How pgBackRest is run, as a program and its first arguments
    /// (`["sudo", "-u", "postgres", "pgbackrest"]`); default `["pgbackrest"]`.
    pub pgbackrest_command: Vec<String>,
    /// How long the gate waits for the WAL holding its restore point to be
    /// archived.
    #[serde(deserialize_with = "crate::kit::duration::de")]
    pub archive_wait: Duration,
    /// How a physical restore stops the server, as a program and its
    /// arguments (`["systemctl", "stop", "postgresql@16-main"]`); default
    /// `pg_ctl stop -m fast` of the server's major.
    pub server_stop: Vec<String>,
    /// How it starts the server again; default `pg_ctl start` with the
    /// arguments the server ran with (`postmaster.opts`).
    pub server_start: Vec<String>,
    /// How a dump is put back: `auto`, `in-place` or `swap`.
    pub restore: RestoreMode,
    /// The schemas a restore in place puts back (default: every schema of
    /// the backup that is not the platform's; see `restore/in_place.rs`).
    pub restore_schemas: Vec<String>,
}

/// `[backup] server_stop` and `server_start`: how a physical restore
/// stops and starts the server (empty: `pg_ctl` of the server's major,
/// with the arguments it ran with).
#[derive(Debug, Clone, Default)]
pub struct ServerControl {
    pub stop: Vec<String>,
    pub start: Vec<String>,
}

impl BackupSection {
    /// How a physical restore stops and starts the server.
    pub fn server_control(&self) -> ServerControl {
        ServerControl { stop: self.server_stop.clone(), start: self.server_start.clone() }
    }
}

impl Default for BackupSection {
    fn default() -> Self {
        BackupSection {
            dir: PathBuf::from(".backstop/backups"),
            max_age: Duration::from_secs(3600),
            retention: Duration::from_secs(30 * 24 * 3600),
            keep_min: 3,
            jobs: None,
            min_size: 0,
            verified: VerifyLevel::Checksums,
            required: true,
            lock_wait: Duration::from_secs(60),
            engine: Engine::PgDump,
            stanza: None,
            config: None,
            pgbackrest_command: vec!["pgbackrest".into()],
            archive_wait: Duration::from_secs(60),
            server_stop: Vec::new(),
            server_start: Vec::new(),
            restore: RestoreMode::Auto,
            restore_schemas: Vec::new(),
        }
    }
}
