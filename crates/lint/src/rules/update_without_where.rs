//! BS106: UPDATE without WHERE.

use pg_query::NodeEnum;

use crate::context::{Cx, Hit};
use backstop_sql::stmt::{display_table};
use crate::model::{Impact, Probability, Subject};
use crate::rules::{Code, Family, Meta, Phase};

/// **What it finds:** `UPDATE t SET ...` without a `WHERE` clause on a table
/// the migration did not create.
///
/// **Why it hurts:** it overwrites the column in every row, so the old
/// values are gone unless a backup has them. On a large table it writes a
/// new version of every row, holds each row lock until COMMIT (blocking
/// the application's writes to those rows), doubles the table's size until
/// vacuum, and may run into `statement_timeout`.
///
/// **Instead:** add the `WHERE` that selects the rows to change. Backfill
/// large tables in batches (`WHERE id BETWEEN ...`) from a no-transaction
/// migration or a job, so each batch commits on its own.
pub const META: Meta = Meta {
    name: "update-without-where",
    family: Family::DataLoss,
    probability: Probability::Medium,
    impact: Impact::Medium,
    risk: "every row overwritten",
    mitigation: "Restrict the UPDATE with a WHERE; backfill large tables in batches",
    phase: Phase::Statements,
};

pub fn check(cx: &Cx<'_>, out: &mut Vec<Hit>) {
    for stmt in &cx.stmts {
        let NodeEnum::UpdateStmt(u) = stmt.node else { continue };
        let Some(rv) = &u.relation else { continue };
        if u.where_clause.is_some() {
            continue;
        }
        let table = Cx::rel(rv);
        if cx.is_new(stmt.index, &table) {
            continue;
        }
        out.push(
            Hit::new(
                Code::BS106,
                stmt,
                stmt.span(),
                format!(
                    "UPDATE without WHERE rewrites every row of {} and holds every row lock until COMMIT",
                    display_table(&table)
                ),
                "add a WHERE; backfill large tables in batches (WHERE id BETWEEN ...) that commit one by one",
            )
            .subject(Subject::Table { table, missing_ok: false }),
        );
    }
}
