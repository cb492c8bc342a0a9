//! BS801 (opt-in): a `char(n)` column.

use crate::coltypes::column_types;
use crate::context::{Cx, Hit};
use crate::model::{Impact, Probability};
use crate::rules::{Code, Family, Meta, Phase};

/// **What it finds:** a column of type `char(n)` (`character(n)`, also
/// `char` alone, which is `char(1)`), created, added or changed to. Off
/// unless `[check] enable` names it (squawk's `ban-char-field`).
///
/// **Why it hurts:** `char(n)` pads every value with spaces to `n`
/// characters, stores the padding, and compares in ways that surprise
/// (`'a'::char(3) = 'a  '`, trailing spaces dropped on cast to text). It is
/// no faster than `text`, and its length cannot grow without a rewrite of
/// the table under an ACCESS EXCLUSIVE lock.
///
/// **Instead:** `text`, with a `CHECK (char_length(col) = n)` where the
/// length is a rule of the data: the check can change later without a
/// rewrite.
pub const META: Meta = Meta {
    name: "char-column",
    family: Family::Style,
    probability: Probability::Low,
    impact: Impact::Low,
    risk: "values padded with spaces; the length cannot change without a rewrite",
    mitigation: "Use text, with a CHECK on its length where needed",
    phase: Phase::Statements,
};

pub fn check(cx: &Cx<'_>, out: &mut Vec<Hit>) {
    for c in column_types(cx).into_iter().filter(|c| c.name == "bpchar") {
        out.push(Hit::new(
            Code::BS801,
            c.stmt,
            cx.token_at(c.stmt, c.location),
            format!("{} is char(n): values are padded with spaces to the length", c.column),
            format!("make {} text, with a CHECK on char_length where the length matters", c.column),
        ));
    }
}
