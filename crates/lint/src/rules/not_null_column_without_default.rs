//! BS404: ADD COLUMN ... NOT NULL without a DEFAULT on an existing table.

use pg_query::protobuf::{AlterTableType, ConstrType};
use pg_query::NodeEnum;

use crate::context::{Alter, Cx, Hit};
use backstop_sql::stmt::{column_gets_value, display_table};
use crate::model::{Impact, Probability, Subject};
use crate::rules::{Code, Family, Meta, Phase};

/// **What it finds:** `ALTER TABLE ... ADD COLUMN ... NOT NULL` without a
/// `DEFAULT` (nor identity, serial or generated) on a table the migration
/// did not create, or on one it created and then filled (`CREATE TABLE
/// ... AS`, `SELECT ... INTO`, `INSERT`, `COPY`); and `SET NOT NULL` on a
/// column the batch added that way, with no `UPDATE` of the table between.
///
/// **Why it hurts:** the existing rows get NULL in the new column, which
/// violates `NOT NULL`, so the statement fails as soon as the table has a
/// single row (`column ... contains null values`). It passes on an empty
/// development database and fails in production. With a database URL the
/// check counts the rows and calls it NO-GO when there are any.
///
/// **Instead:** add it with a constant `DEFAULT` (instant since PostgreSQL
/// 11), or add it nullable, backfill, then enforce NOT NULL with a
/// validated CHECK constraint.
pub const META: Meta = Meta {
    name: "not-null-column-without-default",
    family: Family::Robustness,
    probability: Probability::Medium,
    impact: Impact::Medium,
    risk: "NOT NULL column added without a default",
    mitigation: "Give the new NOT NULL column a DEFAULT, or add it nullable and backfill",
    phase: Phase::Statements,
};

pub fn check(cx: &Cx<'_>, out: &mut Vec<Hit>) {
    for Alter { stmt, alter: a, rv, table, k, cmd, kind } in cx.table_alters() {
        if kind == AlterTableType::AtSetNotNull {
            // The column was added earlier in the batch with no value, to
            // a table the batch did not make (that one has no rows of others).
            let added = cx.added_empty(stmt.index, &table, &cmd.name);
            if let Some(at) = added.filter(|_| !cx.is_new(stmt.index, &table)) {
                out.push(
                    Hit::new(
                        Code::BS404,
                        stmt,
                        cx.alter_cmd(stmt, Some(rv), k),
                        format!(
                            "SET NOT NULL on {0}.{1}, added at {at} without a DEFAULT, fails if {0} has any row",
                            display_table(&table),
                            cmd.name
                        ),
                        "give the column a DEFAULT when it is added, or UPDATE its rows before SET NOT NULL",
                    )
                    .subject(Subject::Table { table: table.clone(), missing_ok: a.missing_ok }),
                );
            }
            continue;
        }
        if kind != AlterTableType::AtAddColumn {
            continue;
        }
        // A table the batch made holds only the rows the batch put in it.
        let filled = cx.filled_new(stmt.index, &table);
        if cx.is_new(stmt.index, &table) && filled.is_none() {
            continue;
        }
        let Some(NodeEnum::ColumnDef(def)) = cmd.def.as_ref().and_then(|d| d.node.as_ref())
        else {
            continue;
        };
        let not_null = def.is_not_null
            || def.constraints.iter().any(|c| {
                matches!(c.node.as_ref(), Some(NodeEnum::Constraint(c))
                    if matches!(c.contype(), ConstrType::ConstrNotnull | ConstrType::ConstrPrimary))
            });
        if !not_null || column_gets_value(def) {
            continue;
        }
        let rows = match &filled {
            Some(at) => format!(" (the batch puts rows in it at {at})"),
            None => String::new(),
        };
        out.push(
            Hit::new(
                Code::BS404,
                stmt,
                cx.alter_cmd(stmt, Some(rv), k),
                format!(
                    "ADD COLUMN {} NOT NULL without a DEFAULT fails if {} has any row{rows}",
                    def.colname,
                    display_table(&table)
                ),
                "give it a constant DEFAULT (instant since PostgreSQL 11), or add it nullable, backfill, then enforce NOT NULL",
            )
            .subject(Subject::Table { table: table.clone(), missing_ok: a.missing_ok }),
        );
    }
}
