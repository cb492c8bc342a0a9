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
//! and sequences (`storage` the tables' settings), `plan` works a down out
//! from two pictures, `ddl` writes its statements, `objects` handles the
//! kinds outside tables and functions (and refuses, by name, a kind no down
//! handles), `around` says what to drop and make again around a change,
//! `data` and `calls` the rows and the function calls, `run` replays the
//! history and proves each down, `write` saves them where the layout keeps
//! downs.

mod aside;
mod authored;
mod calls;
mod catalog;
pub mod chain;
mod columns;
mod compute;
mod data;
mod ddl;
mod dropped_column;
mod found;
pub mod keep;
mod kept;
mod labels;
pub mod made;
pub mod maker;
mod objects;
mod picture;
mod plan;
pub mod proofs;
mod quick;
mod regain;
mod remade_around;
mod replay_quick;
mod replay_start;
mod run;
mod set_back;
mod storage;
mod toc;
pub mod ups;
pub mod verdict;
pub mod write;

use serde::Serialize;

pub use compute::compute;
pub use toc::DumpError;
pub use verdict::Verdict;

use crate::migrate::ApplyError;
use crate::pg::conn::ConnectError;
use crate::source::Migration;

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
    /// The semantic fingerprint of the schema the up started from on the
    /// copy, and of the schema after it (where it was read): what keys
    /// the proof ([`proofs`]).
    #[serde(skip)]
    pub start: Option<String>,
    #[serde(skip)]
    pub end: Option<String>,
    /// How the migration's own down fared on the copy, where it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub own: Option<proofs::Own>,
    /// What its up touched on the copy (where its end was read): what a
    /// rollback through it must find as it was before.
    #[serde(skip)]
    pub touched: Vec<crate::adopt::keyed::Touched>,
    /// How its up failed on the copy, where it did: the statement, its
    /// place and the server's own error.
    #[serde(skip)]
    pub up_failed: Option<crate::migrate::Failure>,
    /// Objects its own down left written otherwise than before the up but
    /// the same as read (see `Touched::also`): each key with the short
    /// hash of what the down left.
    #[serde(skip)]
    pub also: Vec<(String, String)>,
}

impl Down {
    /// A down of `m` that could not be proved, with why (`notes`).
    pub(crate) fn unprovable(m: &Migration, loses: Vec<String>, notes: Vec<String>) -> Down {
        Down {
            version: m.version.clone(),
            name: m.name.clone(),
            status: Status::Unprovable,
            sql: None,
            proved: false,
            replaces: false,
            loses,
            notes,
            replacement: None,
            start: None,
            end: None,
            own: None,
            touched: Vec::new(),
            up_failed: None,
            also: Vec::new(),
        }
    }

    /// The report of a migration whose own down puts the schema back,
    /// with the cosmetic differences it leaves and the values of the
    /// columns its up dropped, which no down brings back.
    pub(crate) fn holds(m: &Migration, cosmetic: &[String]) -> Down {
        let loses = m.dropped_values().into_iter().map(|(_, what)| what).collect();
        Down {
            status: Status::Ok,
            proved: true,
            notes: cosmetic.iter().map(|c| format!("cosmetic: {c}")).collect(),
            own: Some(proofs::Own::Holds),
            ..Down::unprovable(m, loses, Vec::new())
        }
    }

    /// Where its up ended (`end`, the picture's digest there `now`), the
    /// picture at its start being `before`.
    pub(crate) fn ended(
        &mut self,
        end: String,
        now: &crate::adopt::keyed::Digest,
        before: &crate::adopt::keyed::Digest,
    ) {
        self.end = Some(end);
        self.touched = now.touched_since(before);
        for t in &mut self.touched {
            t.also = self.also.iter().find(|(k, _)| *k == t.key).map(|(_, h)| h.clone());
        }
    }
}

/// What `backstop downs` worked out: each migration's down, and what
/// the replay started from.
#[derive(Debug, Clone)]
pub struct Computed {
    pub downs: Vec<Down>,
    /// What the start holds and what of the platform it left out.
    pub start: Vec<String>,
    /// The PostgreSQL major the downs were proved on.
    pub major: u32,
    /// How the downs fared together, where they were proved on the
    /// target's copy (`from_target`) and there were several.
    pub chain: Option<chain::Chain>,
    /// The role the downs were proved as, where no superuser.
    pub role: Option<String>,
    /// How long the replay's reads of the schema took (the whole read at
    /// its start, then after each up and each down: what every proof
    /// compares); of the slower half where it ran in two.
    pub reading: std::time::Duration,
}

/// What to compute, and on what.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Only these versions (default: every migration without a down and
    /// every one whose down does not put the schema back).
    pub versions: Vec<String>,
    /// What the history starts from instead of the target's platform: a
    /// database on the target's server (as Prisma's shadow database), or a
    /// schema dump file. `None`: the target's platform, found by itself.
    pub start: Option<String>,
    /// Start from the target as it is (its schema, no rows, and what it
    /// has applied), so only the pending migrations are replayed: for the
    /// downs `migrate` keeps.
    pub from_target: bool,
    /// The target's schema fingerprint, when the caller read it already
    /// (it keys the copy a previous run kept: `downs::kept`).
    pub target_fingerprint: Option<String>,
    /// How long the copy of the target's schema waits for a table's lock
    /// before giving up (`None`: as long as it takes): another session's
    /// lock must not hold a deploy forever.
    pub lock_wait: Option<std::time::Duration>,
}

/// Why downs could not be computed at all (one migration that cannot be
/// proved is a [`Down`] with status `unprovable` instead).
#[derive(Debug, thiserror::Error)]
pub enum DownsError {
    #[error(transparent)]
    Connect(ConnectError),
    #[error(transparent)]
    Copy(Box<crate::copies::CopyError>),
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
    #[error(
        "{place}: the {part} cannot be replayed: {why}; nothing ran. Move it out of the \
         migrations Backstop replays (run it by hand on the server), or mark the migration \
         applied with `backstop history adopt`"
    )]
    Unsafe { place: String, part: String, why: String },
    #[error(
        "the history uses {used}, of extension {name}, which the target has and this machine's \
         PostgreSQL {major} does not: install it for PostgreSQL {major} (Debian: \
         postgresql-{major}-{name} or postgresql-contrib), or pass --start with a database that \
         has it"
    )]
    MissingExtension { name: String, major: i32, used: String },
    #[error(
        "the start cannot copy the platform's schemas {schemas} from the target: {output}; grant \
         the role Backstop connects as USAGE on those schemas and SELECT on their tables (pg_dump \
         reads their definitions and locks each table, reading no rows), or pass --start with a \
         database or a schema dump (`supabase db dump`, `pg_dump -s`)"
    )]
    StartCopy { schemas: String, output: String },
    #[error(
        "{path} does not restore as the start of the replay: {output}; fix the file, or take it \
         again (`supabase db dump -f FILE`, `pg_dump -s -f FILE`)"
    )]
    StartFile { path: std::path::PathBuf, output: String },
}

/// A copy that could not be made or reached, said as the copies' room
/// says it (a rehearsal says it the same).
impl From<crate::copies::CopyError> for DownsError {
    fn from(e: crate::copies::CopyError) -> Self {
        DownsError::Copy(Box::new(e))
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
            | DownsError::UnknownVersion { .. }
            | DownsError::StartFile { .. } => 2,
            DownsError::Unsafe { .. } => 1,
            DownsError::Copy(e) => e.exit_code(),
            DownsError::Apply(e) => e.exit_code(),
            _ => 3,
        }
    }
}
