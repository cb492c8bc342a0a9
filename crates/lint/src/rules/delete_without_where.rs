//! BS105: DELETE without WHERE.

use pg_query::NodeEnum;

use crate::context::{Cx, Hit};
use backstop_sql::stmt::{display_table};
use crate::model::{Impact, Probability, Subject};
use crate::rules::{Code, Family, Meta, Phase};

/// **What it finds:** `DELETE FROM t` without a `WHERE` clause on a table the
/// migration did not create.
///
/// **Why it hurts:** it deletes every row, and often that was not the
/// intent: a `WHERE` lost in an edit, or a statement copied from a test
/// script. It also locks every row until COMMIT and bloats the table.
///
/// **Instead:** say which rows go (`DELETE FROM t WHERE ...`); if all of
/// them truly must go, export them first and say so with a
/// `-- backstop:ignore BS105 reason` comment.
pub const META: Meta = Meta {
    name: "delete-without-where",
    family: Family::DataLoss,
    probability: Probability::High,
    impact: Impact::High,
    risk: "every row deleted",
    mitigation: "Add the WHERE clause that says which rows go; export them first",
    phase: Phase::Statements,
};

pub fn check(cx: &Cx<'_>, out: &mut Vec<Hit>) {
    for stmt in &cx.stmts {
        let NodeEnum::DeleteStmt(d) = stmt.node else { continue };
        let Some(rv) = &d.relation else { continue };
        if d.where_clause.is_some() {
            continue;
        }
        let table = Cx::rel(rv);
        if cx.is_new(stmt.index, &table) || cx.protected(&table).is_some() {
            continue;
        }
        out.push(
            Hit::new(
                Code::BS105,
                stmt,
                stmt.span(),
                format!("DELETE without WHERE deletes every row of {}", display_table(&table)),
                "add the WHERE clause that says which rows go",
            )
            .subject(Subject::Table { table, missing_ok: false }),
        );
    }
}
