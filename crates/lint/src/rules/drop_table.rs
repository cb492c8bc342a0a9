//! BS101: DROP TABLE of an existing table.

use pg_query::protobuf::{DropBehavior, ObjectType};
use pg_query::NodeEnum;

use crate::context::{Cx, Hit};
use backstop_sql::stmt::{display_table, object_name};
use crate::model::{Impact, Probability, Subject};
use crate::rules::{Code, Family, Meta, Phase};

/// **What it finds:** `DROP TABLE` of a table that the migration did not
/// create itself.
///
/// **Why it hurts:** the table's rows are gone at COMMIT. A down migration
/// can recreate the table but not its data; only a backup restore brings
/// it back, and that also rewinds every other table. Code still deployed
/// that reads the table fails at once. `CASCADE` also drops the views and
/// foreign keys that depend on it.
///
/// **Instead:** check whether it still holds rows (`backstop check` with a
/// database URL counts them), export or archive them first (`\copy t TO
/// 't.csv' CSV HEADER`, or `ALTER TABLE t SET SCHEMA archive`), and drop
/// it in a release after the code that used it is gone.
pub const META: Meta = Meta {
    name: "drop-table",
    family: Family::DataLoss,
    probability: Probability::Medium,
    impact: Impact::High,
    risk: "table dropped with its rows",
    mitigation: "Export or archive the rows first (or confirm the table is empty)",
    phase: Phase::Statements,
};

pub fn check(cx: &Cx<'_>, out: &mut Vec<Hit>) {
    for stmt in &cx.stmts {
        let NodeEnum::DropStmt(d) = stmt.node else { continue };
        if d.remove_type() != ObjectType::ObjectTable {
            continue;
        }
        let cascade = d.behavior() == DropBehavior::DropCascade;
        for table in d.objects.iter().filter_map(object_name) {
            if cx.is_new(stmt.index, &table) || cx.protected(&table).is_some() {
                continue;
            }
            let name = display_table(&table);
            let span = cx.name_token(stmt, &table.name, stmt.start).unwrap_or(stmt.span());
            let mut message = format!("DROP TABLE {name} deletes the table and every row in it");
            if cascade {
                message.push_str("; CASCADE also drops the views and foreign keys that depend on it");
            }
            out.push(
                Hit::new(
                    Code::BS101,
                    stmt,
                    span,
                    message,
                    format!(
                        "export or archive the rows first (\\copy {name} TO '{}.csv' CSV HEADER, or ALTER TABLE {name} SET SCHEMA archive)",
                        table.name
                    ),
                )
                .subject(Subject::Table { table, missing_ok: d.missing_ok }),
            );
        }
    }
}
