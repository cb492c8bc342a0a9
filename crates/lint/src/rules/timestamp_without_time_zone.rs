//! BS805 (opt-in): a `timestamp` column without time zone.

use crate::coltypes::column_types;
use crate::context::{Cx, Hit};
use crate::model::{Impact, Probability};
use crate::rules::{Code, Family, Meta, Phase};

/// **What it finds:** a column of type `timestamp` (`timestamp without
/// time zone`), created, added or changed to. Off unless `[check] enable`
/// names it (squawk's `prefer-timestamptz`).
///
/// **Why it hurts:** the value carries no zone: the same moment is stored
/// differently by sessions with different `TimeZone` settings, and
/// reading it back as a moment means guessing the zone it was written
/// in. Changing the column to `timestamptz` later rewrites the table
/// (unless the session's `TimeZone` is UTC) under an ACCESS EXCLUSIVE lock.
///
/// **Instead:** `timestamptz` (`timestamp with time zone`): it stores the
/// moment, and shows it in the reader's zone.
pub const META: Meta = Meta {
    name: "timestamp-without-time-zone",
    family: Family::Style,
    probability: Probability::Low,
    impact: Impact::Low,
    risk: "moments stored without their zone",
    mitigation: "Use timestamptz",
    phase: Phase::Statements,
};

pub fn check(cx: &Cx<'_>, out: &mut Vec<Hit>) {
    for c in column_types(cx).into_iter().filter(|c| c.name == "timestamp") {
        out.push(Hit::new(
            Code::BS805,
            c.stmt,
            cx.token_at(c.stmt, c.location),
            format!("{} is timestamp without time zone: the moment it holds depends on the writer's zone", c.column),
            format!("make {} timestamptz", c.column),
        ));
    }
}
