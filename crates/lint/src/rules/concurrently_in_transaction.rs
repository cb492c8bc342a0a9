//! BS202: a statement that cannot run inside a transaction, in a migration
//! that runs in one.

use crate::context::{Cx, Hit};
use crate::model::{Impact, Probability};
use crate::rules::{Code, Family, Meta, Phase};

/// **What it finds:** `CREATE INDEX CONCURRENTLY`, `DROP INDEX
/// CONCURRENTLY`, `REINDEX CONCURRENTLY`, `VACUUM`, `CREATE DATABASE` and the
/// like in a migration that runs inside a transaction (no
/// `-- backstop:no-transaction` first line).
///
/// **Why it hurts:** PostgreSQL refuses them inside a transaction block
/// (`cannot run inside a transaction block`), so the migration is certain
/// to fail, and `backstop migrate` refuses the file before it starts.
/// NO-GO.
///
/// **Instead:** put the statement in its own migration whose first line is
/// `-- backstop:no-transaction`. Backstop runs that migration alone,
/// statement by statement, under the migration lock.
pub const META: Meta = Meta {
    name: "concurrently-in-transaction",
    family: Family::Locks,
    probability: Probability::Certain,
    impact: Impact::High,
    risk: "statement that cannot run in a transaction",
    mitigation: "Move it to its own `-- backstop:no-transaction` migration",
    phase: Phase::Statements,
};

pub fn check(cx: &Cx<'_>, out: &mut Vec<Hit>) {
    for stmt in cx.stmts.iter().filter(|s| cx.in_transaction(s)) {
        let Some(what) = stmt.facts.outside_transaction_only else { continue };
        let words = what.split_whitespace().count();
        out.push(Hit::new(
            Code::BS202,
            stmt,
            cx.head(stmt, words),
            format!("{what} cannot run inside a transaction block, and this migration runs in one"),
            "move it to its own migration whose first line is `-- backstop:no-transaction`",
        ));
    }
}
