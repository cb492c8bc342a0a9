//! BS804 (opt-in): a `serial` column where an identity column serves.

use crate::coltypes::column_types;
use crate::context::{Cx, Hit};
use crate::model::{Impact, Probability};
use crate::rules::{Code, Family, Meta, Phase};

/// **What it finds:** a column of type `serial`, `bigserial` or
/// `smallserial`. Off unless `[check] enable` names it (squawk's
/// `prefer-identity`).
///
/// **Why it hurts:** `serial` makes a sequence owned apart from the
/// column: its grants, its ownership and its value are kept on their
/// own, so a copy of the table, a dump of one table or a change of owner
/// can leave the sequence behind or out of step, and an explicit value
/// inserted into the column does not move it (the next default collides).
///
/// **Instead:** `bigint GENERATED ALWAYS AS IDENTITY` (or `BY DEFAULT`
/// where rows are loaded with their keys): the sequence belongs to the
/// column, and `ALWAYS` refuses a hand-written key.
pub const META: Meta = Meta {
    name: "serial-column",
    family: Family::Style,
    probability: Probability::Low,
    impact: Impact::Low,
    risk: "the column's sequence is kept apart and falls out of step",
    mitigation: "Use an identity column",
    phase: Phase::Statements,
};

const SERIALS: &[&str] = &["serial", "serial4", "bigserial", "serial8", "smallserial", "serial2"];

pub fn check(cx: &Cx<'_>, out: &mut Vec<Hit>) {
    for c in column_types(cx).into_iter().filter(|c| SERIALS.contains(&c.name.as_str())) {
        let base = match c.name.as_str() {
            "bigserial" | "serial8" => "bigint",
            "smallserial" | "serial2" => "smallint",
            _ => "integer",
        };
        out.push(Hit::new(
            Code::BS804,
            c.stmt,
            cx.token_at(c.stmt, c.location),
            format!("{} is {}: its sequence is kept apart from the column", c.column, c.name),
            format!("make {} {base} GENERATED ALWAYS AS IDENTITY", c.column),
        ));
    }
}
