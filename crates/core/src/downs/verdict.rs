//! What a down is after its proof, in the words every command prints and
//! every JSON names (`verdict`), as the glossary fixes them: `downs`
//! (from its [`Status`]) and `rehearse` (from its trip's class) each say
//! one of these for the same down, and the same one.

use serde::Serialize;

use super::{Down, Status};

/// What a down is after its proof.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// It brings the picture back, and the up changed no row that was
    /// there.
    Proved,
    /// It brings the picture back, but rows or values the up changed are
    /// held only by the backup taken before the migration (each named).
    ProvedLosing,
    /// The author's down does not bring the picture back: it fails, or
    /// leaves differences. Where a proved down was worked out, it is kept
    /// in its place.
    Defective,
    /// No down could be proved: a rollback through it needs a restore.
    Unprovable,
}

impl Verdict {
    /// As every command's text says it.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Proved => "proved",
            Verdict::ProvedLosing => "proved, losing named values",
            Verdict::Defective => "defective",
            Verdict::Unprovable => "unprovable",
        }
    }
}

/// A down as `backstop downs --format json` writes it: its fields and
/// its verdict.
#[derive(Serialize)]
pub struct Shown<'a> {
    #[serde(flatten)]
    down: &'a Down,
    verdict: Verdict,
}

impl Down {
    /// This down with its verdict, for JSON.
    pub fn shown(&self) -> Shown<'_> {
        Shown { down: self, verdict: self.verdict() }
    }

    /// What this down is: an author's down that needed a fix is
    /// defective (the fix is proved); one that holds but names what it
    /// cannot bring back is proved, losing named values.
    pub fn verdict(&self) -> Verdict {
        match self.status {
            Status::Unprovable => Verdict::Unprovable,
            Status::Fixed => Verdict::Defective,
            _ if !self.proved => Verdict::Unprovable,
            Status::Irreversible => Verdict::ProvedLosing,
            Status::Ok | Status::Computed if !self.loses.is_empty() => Verdict::ProvedLosing,
            Status::Ok | Status::Computed => Verdict::Proved,
        }
    }
}
