//! The room for throwaway copies: a target's database copied where no
//! migration run on it can reach the target (its own server's template,
//! or a throwaway cluster that holds the target's roles and settings), as
//! rehearsals, the downs' replays, drills and the check's run on a copy
//! take them. `clone` makes the copies (`Workspace`, one per run, and its
//! `CopyDb`s), `dump` moves a schema or a database with PostgreSQL's own
//! tools, `globals` and `server_state` carry and compare what a whole
//! server shares (roles, a database's own settings, `ALTER SYSTEM`),
//! `runs_as` makes a copy work as the target's own role, `held_back`
//! keeps from every copy a statement that reaches outside the database,
//! and `sample` copies a share of the rows. It needs nothing of the
//! commands that use it, and says its own errors ([`CopyError`]).

pub mod clone;
pub mod dump;
pub mod globals;
pub mod held_back;
pub mod runs_as;
pub mod sample;
pub mod server_state;

use std::path::PathBuf;

use crate::pg::cluster::ClusterError;
use crate::pg::conn::ConnectError;

pub use clone::{dump_into, left_copies, CopyDb, CopyInfo, LeftCopy, Method, Workspace};
pub use runs_as::RunsAs;
pub use sample::SampleInfo;

/// Why a copy could not be made or reached.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error(transparent)]
    Connect(ConnectError),
    #[error("could not start a throwaway cluster for the copy")]
    Cluster(#[source] ClusterError),
    #[error("could not copy the database: {reason}")]
    Clone { reason: String },
    #[error("{tool} failed while copying the database: {output}")]
    Tool { tool: String, output: String },
    #[error(transparent)]
    Db(#[from] crate::pg::DbError),
    #[error("could not {action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl CopyError {
    /// The exit code: a URL that does not parse is the user's (2); the
    /// rest are the environment's (3).
    pub fn exit_code(&self) -> u8 {
        match self {
            CopyError::Connect(ConnectError::BadUrl { .. }) => 2,
            _ => 3,
        }
    }
}

/// A backup to copy instead of the database: its id (or `latest`) in the
/// backup dir.
#[derive(Debug, Clone)]
pub struct FromBackup {
    pub dir: PathBuf,
    pub id: String,
}

/// What a workspace copies: the database whole (the default), its schema
/// only, a share of its rows, or a backup of it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Copying<'a> {
    pub from_backup: Option<&'a FromBackup>,
    pub schema_only: bool,
    /// The share of rows, in percent.
    pub sample: Option<f64>,
}
