//! Computed downs, proved before they are trusted (`backstop downs`).
//!
//! For a migration without a down, or whose down does not put the schema
//! back, Backstop replays the history on a throwaway database, takes the
//! schema before and after the up (`pg_dump`'s definitions and the
//! catalog's columns), and writes the inverse: drop what the up created,
//! put back what it dropped or changed from the definitions taken before.
//! Then it proves it: up, the computed down, and the schema must equal the
//! one before, with the same classes of cosmetic difference a rehearsal
//! accepts. Data is never invented: what an up destroyed is listed under
//! `loses`, never pretended back.
//!
//! Where to look: `toc` reads pg_dump's entries, `catalog` the columns
//! and sequences, `plan` works a down out from two pictures, `ddl` writes
//! its statements, `run` replays the history and proves each down,
//! `write` saves them where the layout keeps downs.

mod catalog;
mod columns;
mod data;
mod ddl;
mod picture;
mod plan;
mod run;
mod toc;
pub mod write;

use serde::Serialize;

pub use run::compute;
pub use toc::DumpError;

use crate::migrate::ApplyError;
use crate::pg::conn::ConnectError;
use crate::rehearse::RehearseError;

/// What `backstop downs` found for one migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// It had no down: this one was computed.
    Computed,
    /// Its down does not put the schema back: the statements to add.
    Fixed,
    /// Its own down puts the schema back: nothing to do.
    Ok,
    /// No down could be proved; `notes` say why.
    Unprovable,
    /// The down puts the schema back (proved), but the up changed rows
    /// that were there in a way no SQL puts back (`UPDATE`, `DELETE`,
    /// `INSERT … SELECT`, a `DO` block's): `loses` names them, and only
    /// the backup taken before the migration holds them.
    Irreversible,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Computed => "computed",
            Status::Fixed => "fixed",
            Status::Ok => "ok",
            Status::Unprovable => "unprovable",
            Status::Irreversible => "irreversible",
        }
    }
}

/// One migration's down, as `backstop downs` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct Down {
    pub version: String,
    #[serde(skip)]
    pub name: String,
    pub status: Status,
    /// Computed: the down. Fixed: the statements to add after the
    /// hand-written down's (or, when it fails, to use instead).
    pub sql: Option<String>,
    pub proved: bool,
    /// Fixed: the hand-written down fails, and `sql` replaces it whole.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub replaces: bool,
    /// What the down cannot bring back, each object named.
    pub loses: Vec<String>,
    pub notes: Vec<String>,
    /// Fixed: the whole down to use (the hand-written one with the fix
    /// added, or the computed one where the hand-written one fails).
    #[serde(skip)]
    pub replacement: Option<String>,
}

/// What to compute, and on what.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Only these versions (default: every migration without a down and
    /// every one whose down does not put the schema back).
    pub versions: Vec<String>,
    /// A database on the target's server the history starts from (the
    /// platform's schemas and roles, as Prisma's shadow database); an empty
    /// one when `None`.
    pub start: Option<String>,
}

/// Why downs could not be computed at all (one migration that cannot be
/// proved is a [`Down`] with status `unprovable` instead).
#[derive(Debug, thiserror::Error)]
pub enum DownsError {
    #[error(transparent)]
    Connect(ConnectError),
    #[error(transparent)]
    Workspace(Box<RehearseError>),
    #[error(transparent)]
    Dump(#[from] DumpError),
    #[error(transparent)]
    Db(#[from] crate::pg::DbError),
    #[error(transparent)]
    Apply(Box<ApplyError>),
    #[error("{tool} is needed to read the schema: {why}")]
    Tool { tool: &'static str, why: String },
    #[error(
        "{version}: no migration of the folder has this version; `backstop status` lists them"
    )]
    UnknownVersion { version: String },
}

impl From<RehearseError> for DownsError {
    fn from(e: RehearseError) -> Self {
        DownsError::Workspace(Box::new(e))
    }
}

impl From<ApplyError> for DownsError {
    fn from(e: ApplyError) -> Self {
        DownsError::Apply(Box::new(e))
    }
}

impl DownsError {
    pub fn exit_code(&self) -> u8 {
        match self {
            DownsError::Connect(ConnectError::BadUrl { .. })
            | DownsError::UnknownVersion { .. } => 2,
            DownsError::Workspace(e) => e.exit_code(),
            DownsError::Apply(e) => e.exit_code(),
            _ => 3,
        }
    }
}
