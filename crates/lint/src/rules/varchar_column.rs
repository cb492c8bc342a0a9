//! BS802 (opt-in): a `varchar(n)` column.

use crate::coltypes::column_types;
use crate::context::{Cx, Hit};
use crate::model::{Impact, Probability};
use crate::rules::{Code, Family, Meta, Phase};

/// **What it finds:** a column of type `varchar(n)` (`character
/// varying(n)`), created, added or changed to. `varchar` without a length
/// is `text` by another name and is no finding. Off unless `[check]
/// enable` names it (squawk's `prefer-text-field`).
///
/// **Why it hurts:** the limit is a rule of the data kept in the type:
/// raising it is quick but still takes an ACCESS EXCLUSIVE lock, and
/// lowering it rewrites the table under that lock. `varchar(n)` is no
/// faster or smaller than `text`.
///
/// **Instead:** `text`, with a `CHECK (char_length(col) <= n)` where the
/// limit matters: a new check can be added `NOT VALID` and validated
/// without blocking writes.
pub const META: Meta = Meta {
    name: "varchar-column",
    family: Family::Style,
    probability: Probability::Low,
    impact: Impact::Low,
    risk: "changing the limit later takes an ACCESS EXCLUSIVE lock",
    mitigation: "Use text, with a CHECK on its length where needed",
    phase: Phase::Statements,
};

pub fn check(cx: &Cx<'_>, out: &mut Vec<Hit>) {
    for c in column_types(cx).into_iter().filter(|c| c.name == "varchar" && c.modified) {
        out.push(Hit::new(
            Code::BS802,
            c.stmt,
            cx.token_at(c.stmt, c.location),
            format!(
                "{} is varchar(n): changing its limit later takes an ACCESS EXCLUSIVE lock on {}",
                c.column,
                backstop_sql::stmt::display_table(&c.table)
            ),
            format!("make {} text, with a CHECK (char_length({}) <= n)", c.column, c.column),
        ));
    }
}
