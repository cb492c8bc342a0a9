//! BS003: a migration file that cannot run as written.

use crate::context::{Cx, Hit};
use crate::model::{Impact, Probability};
use crate::rules::{Family, Meta, Phase};

/// **What it finds:** a migration file that cannot run as it is written:
/// PostgreSQL's parser rejects it (a missing semicolon, a typo in a
/// keyword), it is missing, or it asks for something Backstop cannot
/// honour (a goose migration written in Go, a Flyway placeholder).
///
/// **Why it hurts:** the statement fails the moment it runs. In an up, the
/// migration cannot be applied at all; in a down, the rollback through
/// that migration fails at the very moment it is needed. Backstop reads the
/// rest of the folder as usual and refuses only the command that would run
/// this file.
///
/// **Instead:** fix the file at the line shown; run `backstop check` again
/// until it is clean. For an old migration whose down was never meant to
/// run, write a down that works, or delete the down so that the rollback
/// says plainly that there is none.
pub const META: Meta = Meta {
    name: "unrunnable-file",
    family: Family::Robustness,
    probability: Probability::Certain,
    impact: Impact::High,
    risk: "a migration file that cannot run as written",
    mitigation: "Fix the file at the line shown: it cannot run as written",
    phase: Phase::Statements,
};

/// Reported by the analysis itself when a file does not parse, and by the
/// engine for files it cannot run; there is nothing to look for in
/// statements that parsed.
pub fn check(_cx: &Cx<'_>, _out: &mut Vec<Hit>) {}
