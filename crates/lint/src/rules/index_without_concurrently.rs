//! BS201: CREATE INDEX (or REINDEX) on an existing table without CONCURRENTLY.

use pg_query::protobuf::ReindexObjectType;
use pg_query::NodeEnum;

use crate::context::{Cx, Hit};
use backstop_sql::stmt::{display_table};
use crate::model::{Impact, Probability, Subject};
use crate::rules::{Code, Family, Meta, Phase};

/// **What it finds:** `CREATE INDEX` without `CONCURRENTLY` on a table the
/// migration did not create, and `REINDEX` without `CONCURRENTLY`.
///
/// **Why it hurts:** a plain `CREATE INDEX` takes a SHARE lock on the table
/// for the whole build: every `INSERT`, `UPDATE` and `DELETE` waits until
/// the index is done, minutes on a large table. In a migration transaction
/// the lock is held until COMMIT. `REINDEX` blocks writes too, and reads
/// that would use the index.
///
/// **Instead:** `CREATE INDEX CONCURRENTLY` in its own migration whose first
/// line is `-- backstop:no-transaction` (CONCURRENTLY cannot run in a
/// transaction). It builds without blocking writes; if it fails, drop the
/// invalid index it leaves and retry. An index on a table created in the
/// same migration is fine as it is.
pub const META: Meta = Meta {
    name: "index-without-concurrently",
    family: Family::Locks,
    probability: Probability::Medium,
    impact: Impact::High,
    risk: "writes blocked while an index builds",
    mitigation: "Build the index CONCURRENTLY in a no-transaction migration",
    phase: Phase::Statements,
};

const HELP: &str = "use CREATE INDEX CONCURRENTLY in its own migration whose first line is `-- backstop:no-transaction`";

pub fn check(cx: &Cx<'_>, out: &mut Vec<Hit>) {
    for stmt in &cx.stmts {
        match stmt.node {
            NodeEnum::IndexStmt(i) if !i.concurrent => {
                let Some(rv) = &i.relation else { continue };
                let table = Cx::rel(rv);
                if cx.is_new(stmt.index, &table) {
                    continue;
                }
                let what = if i.unique { "CREATE UNIQUE INDEX" } else { "CREATE INDEX" };
                out.push(
                    Hit::new(
                        Code::BS201,
                        stmt,
                        cx.head(stmt, if i.unique { 3 } else { 2 }),
                        format!(
                            "{what} without CONCURRENTLY blocks writes to {} (SHARE lock) until the build ends",
                            display_table(&table)
                        ),
                        HELP,
                    )
                    .subject(Subject::Table { table, missing_ok: false }),
                );
            }
            NodeEnum::ReindexStmt(r) => {
                let concurrent = r.params.iter().any(|p| {
                    matches!(p.node.as_ref(), Some(NodeEnum::DefElem(d)) if d.defname == "concurrently")
                });
                if concurrent {
                    continue;
                }
                let (target, subject) = match (r.kind(), &r.relation) {
                    (ReindexObjectType::ReindexObjectTable, Some(rv)) => {
                        let table = Cx::rel(rv);
                        if cx.is_new(stmt.index, &table) {
                            continue;
                        }
                        (display_table(&table), Some(Subject::Table { table, missing_ok: false }))
                    }
                    (ReindexObjectType::ReindexObjectIndex, Some(rv)) => {
                        (format!("the table of index {}", display_table(&Cx::rel(rv))), None)
                    }
                    _ => ("every table it reaches".to_string(), None),
                };
                let mut hit = Hit::new(
                    Code::BS201,
                    stmt,
                    cx.head(stmt, 1),
                    format!("REINDEX without CONCURRENTLY blocks writes to {target} while it rebuilds"),
                    "use REINDEX ... CONCURRENTLY in a migration whose first line is `-- backstop:no-transaction`",
                );
                hit.subject = subject;
                out.push(hit);
            }
            _ => {}
        }
    }
}
