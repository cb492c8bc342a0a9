//! BS100: a statement that drops, empties or deletes from a protected table.

use pg_query::protobuf::{DropBehavior, ObjectType};
use pg_query::NodeEnum;

use crate::context::{Cx, Hit};
use backstop_sql::stmt::{object_name, split_configured, string_value};
use crate::model::{Impact, Probability, Subject};
use crate::rules::{Code, Family, Meta, Phase};

/// **What it finds:** `DROP TABLE`, `TRUNCATE` or `DELETE` on a table listed
/// in `[migrations] protected_tables`, and `DROP SCHEMA ... CASCADE` of the
/// schema that holds one.
///
/// **Why it hurts:** protected tables hold what users paid for (accounts,
/// billing, usage). Losing them means a full restore from backup and
/// downtime. Backstop's guard rolls such a migration back at run time, so
/// the release fails at deploy; the check says so before anyone tries.
/// Always NO-GO.
///
/// **Instead:** leave protected tables alone: drop only the tables the
/// release replaces, and list them explicitly. If a protected table truly
/// must go, take it out of `protected_tables` in the same reviewed change,
/// or accept the risk for one run with `backstop migrate --accept-risk BS100`
/// (recorded in the audit log).
pub const META: Meta = Meta {
    name: "protected-table",
    family: Family::DataLoss,
    probability: Probability::Certain,
    impact: Impact::Critical,
    risk: "protected table dropped or emptied",
    mitigation: "Remove the statement: protected tables are never dropped, truncated or deleted from",
    phase: Phase::Statements,
};

const HELP: &str = "protected tables may never be dropped, truncated or lose rows; remove the \
    statement, or take the table out of [migrations] protected_tables if it is truly meant to go";

pub fn check(cx: &Cx<'_>, out: &mut Vec<Hit>) {
    for stmt in &cx.stmts {
        let mut hit = |table: crate::RelationName, what: &str, span| {
            if cx.is_new(stmt.index, &table) {
                return;
            }
            if let Some(configured) = cx.protected(&table) {
                out.push(
                    Hit::new(Code::BS100, stmt, span, format!("{what} protected table {configured}"), HELP)
                        .subject(Subject::Table { table, missing_ok: false }),
                );
            }
        };
        match stmt.node {
            NodeEnum::DropStmt(d) if d.remove_type() == ObjectType::ObjectTable => {
                for table in d.objects.iter().filter_map(object_name) {
                    let span = cx.name_token(stmt, &table.name, stmt.start).unwrap_or(stmt.span());
                    hit(table, "DROP TABLE removes", span);
                }
            }
            NodeEnum::TruncateStmt(t) => {
                for rv in t.relations.iter().filter_map(|n| match n.node.as_ref() {
                    Some(NodeEnum::RangeVar(rv)) => Some(rv),
                    _ => None,
                }) {
                    hit(Cx::rel(rv), "TRUNCATE empties", cx.token_at(stmt, rv.location));
                }
            }
            NodeEnum::DeleteStmt(d) => {
                if let Some(rv) = &d.relation {
                    hit(Cx::rel(rv), "DELETE removes rows from", cx.head(stmt, 2));
                }
            }
            NodeEnum::DropStmt(d)
                if d.remove_type() == ObjectType::ObjectSchema
                    && d.behavior() == DropBehavior::DropCascade =>
            {
                for schema in d.objects.iter().filter_map(string_value) {
                    for configured in &cx.opts.protected_tables {
                        let (s, name) = split_configured(configured);
                        if s.unwrap_or("public") == schema {
                            let table = crate::RelationName {
                                schema: Some(schema.to_string()),
                                name: name.to_string(),
                            };
                            let span = cx.name_token(stmt, schema, stmt.start).unwrap_or(stmt.span());
                            let what = format!("DROP SCHEMA {schema} CASCADE removes");
                            hit(table, &what, span);
                        }
                    }
                }
            }
            _ => {}
        }
    }
}
