//! BS402: BEGIN, COMMIT, ROLLBACK or SAVEPOINT written in a migration.

use crate::context::{Cx, Hit};
use crate::model::{Impact, Probability};
use crate::rules::{Code, Family, Meta, Phase};

/// **What it finds:** `BEGIN`, `START TRANSACTION`, `COMMIT`, `ROLLBACK`,
/// `SAVEPOINT` and friends in a migration that Backstop runs in a
/// transaction.
///
/// **Why it hurts:** Backstop wraps every migration in its own transaction,
/// together with the history row and the post-checks. A `COMMIT` in the
/// file would commit half a migration behind the guards' back, so
/// `backstop migrate` refuses the file outright: the migration cannot run
/// as written. NO-GO.
///
/// **Instead:** delete the transaction statements; Backstop's transaction
/// already makes the migration all-or-nothing. If the file really must
/// control its own transactions, make it a no-transaction migration
/// (`-- backstop:no-transaction` as its first line).
pub const META: Meta = Meta {
    name: "transaction-control",
    family: Family::Robustness,
    probability: Probability::Certain,
    impact: Impact::High,
    risk: "transaction control inside a migration",
    mitigation: "Remove BEGIN/COMMIT: Backstop runs each migration in its own transaction",
    phase: Phase::Statements,
};

pub fn check(cx: &Cx<'_>, out: &mut Vec<Hit>) {
    for stmt in cx.stmts.iter().filter(|s| cx.in_transaction(s)) {
        if !stmt.facts.transaction_control {
            continue;
        }
        let text = &cx.input.text[cx.head(stmt, 1)];
        out.push(Hit::new(
            Code::BS402,
            stmt,
            cx.head(stmt, 1),
            format!("{} inside a migration: Backstop runs each migration in its own transaction, and backstop migrate refuses this file", text.to_uppercase()),
            "remove it; the migration is already all-or-nothing",
        ));
    }
}
