//! BS803 (opt-in): an `integer` or `smallint` key column.

use crate::coltypes::column_types;
use crate::context::{Cx, Hit};
use crate::model::{Impact, Probability};
use crate::rules::{Code, Family, Meta, Phase};

/// **What it finds:** a primary key, unique, identity or foreign key
/// column of type `integer` or `smallint` (also `serial` and
/// `smallserial`, which are those). Off unless `[check] enable` names it
/// (squawk's `prefer-bigint-over-int` and `prefer-bigint-over-smallint`,
/// asked of keys, where running out happens).
///
/// **Why it hurts:** an `integer` key runs out at 2,147,483,647 (a
/// `smallint` one at 32,767), and then every insert fails. Widening it
/// then rewrites the table and every table whose foreign keys point at
/// it, each under an ACCESS EXCLUSIVE lock, at the size where that hurts
/// most.
///
/// **Instead:** `bigint` (`bigint GENERATED ALWAYS AS IDENTITY` for a new
/// key): 8 bytes instead of 4 costs little, and it does not run out.
pub const META: Meta = Meta {
    name: "int-key",
    family: Family::Style,
    probability: Probability::Low,
    impact: Impact::Low,
    risk: "the key runs out and inserts fail; widening it rewrites the table",
    mitigation: "Use bigint for keys",
    phase: Phase::Statements,
};

const NARROW: &[&str] = &["int4", "int2", "serial", "serial4", "smallserial", "serial2"];

pub fn check(cx: &Cx<'_>, out: &mut Vec<Hit>) {
    for c in column_types(cx).into_iter().filter(|c| c.key && NARROW.contains(&c.name.as_str())) {
        let (kind, limit) = if c.name.contains('2') || c.name == "smallserial" {
            ("smallint", "32,767")
        } else {
            ("integer", "2,147,483,647")
        };
        out.push(Hit::new(
            Code::BS803,
            c.stmt,
            cx.token_at(c.stmt, c.location),
            format!("key column {} is {kind}: inserts fail once it reaches {limit}", c.column),
            format!("make {} bigint", c.column),
        ));
    }
}
