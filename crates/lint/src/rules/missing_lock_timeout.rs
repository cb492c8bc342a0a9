//! BS209: a blocking lock requested without a lock_timeout.

use pg_query::protobuf::{ObjectType, VariableSetKind};
use pg_query::NodeEnum;

use crate::context::{Cx, Hit};
use backstop_sql::stmt::{display_table, object_name};
use crate::model::{Impact, Probability};
use crate::rules::{Code, Family, Meta, Phase};

/// **What it finds:** the first statement of a file that needs a strong lock
/// on an existing table (`ALTER TABLE`, `CREATE INDEX`, `DROP TABLE`,
/// `TRUNCATE`, `CREATE TRIGGER`, `CREATE POLICY`, renames) when no `SET
/// lock_timeout` comes before it. Silent when the runner sets the timeout
/// itself: `backstop migrate` does, from `[migrations] lock_timeout`.
///
/// **Why it hurts:** the statement queues behind any long-running query on
/// the table, and every query that arrives after it queues behind the
/// statement. A two-second `ALTER TABLE` waiting on a ten-minute report
/// takes the application down for ten minutes.
///
/// **Instead:** start the migration with `SET lock_timeout = '5s';` so it
/// gives up quickly and can be retried, or run it with `backstop migrate`,
/// which sets `lock_timeout` and retries with backoff.
pub const META: Meta = Meta {
    name: "missing-lock-timeout",
    family: Family::Locks,
    probability: Probability::Low,
    impact: Impact::High,
    risk: "lock queue without a timeout",
    mitigation: "SET lock_timeout before taking strong locks (backstop migrate does)",
    phase: Phase::Statements,
};

pub fn check(cx: &Cx<'_>, out: &mut Vec<Hit>) {
    if cx.opts.runner_sets_lock_timeout {
        return;
    }
    for stmt in &cx.stmts {
        if let NodeEnum::VariableSetStmt(v) = stmt.node {
            if v.name == "lock_timeout" && v.kind() == VariableSetKind::VarSetValue {
                return;
            }
        }
        let table = match stmt.node {
            NodeEnum::AlterTableStmt(a) => a.relation.as_ref().map(Cx::rel),
            NodeEnum::IndexStmt(i) if !i.concurrent => i.relation.as_ref().map(Cx::rel),
            NodeEnum::DropStmt(d) if d.remove_type() == ObjectType::ObjectTable => {
                d.objects.first().and_then(object_name)
            }
            NodeEnum::TruncateStmt(t) => t.relations.first().and_then(|n| match n.node.as_ref() {
                Some(NodeEnum::RangeVar(rv)) => Some(Cx::rel(rv)),
                _ => None,
            }),
            NodeEnum::CreateTrigStmt(t) => t.relation.as_ref().map(Cx::rel),
            NodeEnum::CreatePolicyStmt(p) => p.table.as_ref().map(Cx::rel),
            NodeEnum::RenameStmt(r) => r.relation.as_ref().map(Cx::rel),
            _ => None,
        };
        let Some(table) = table else { continue };
        if cx.is_new(stmt.index, &table) {
            continue;
        }
        out.push(Hit::new(
            Code::BS209,
            stmt,
            cx.head(stmt, 2),
            format!(
                "this statement waits for a strong lock on {} with no lock_timeout: meanwhile every query on the table queues behind it",
                display_table(&table)
            ),
            "put SET lock_timeout = '5s'; at the top of the migration (backstop migrate sets it from [migrations] lock_timeout)",
        ));
        return;
    }
}
