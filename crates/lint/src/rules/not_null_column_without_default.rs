//! BS404: ADD COLUMN ... NOT NULL without a DEFAULT on an existing table.

use pg_query::protobuf::{AlterTableType, ConstrType};
use pg_query::NodeEnum;

use crate::context::{Alter, Cx, Hit};
use crate::stmt::{display_table, type_spec};
use crate::model::{Impact, Probability, Subject};
use crate::rules::{Code, Family, Meta, Phase};

/// **What it finds:** `ALTER TABLE ... ADD COLUMN ... NOT NULL` without a
/// `DEFAULT` (nor identity, serial or generated) on a table the migration
/// did not create, or on one it created and then filled (`CREATE TABLE
/// ... AS`, `SELECT ... INTO`, `INSERT`, `COPY`).
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

const SERIAL: &[&str] = &["serial", "serial2", "serial4", "serial8", "smallserial", "bigserial"];

pub fn check(cx: &Cx<'_>, out: &mut Vec<Hit>) {
    for Alter { stmt, alter: a, rv, table, k, cmd, kind } in cx.table_alters() {
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
        let kinds: Vec<ConstrType> = def
            .constraints
            .iter()
            .filter_map(|c| match c.node.as_ref() {
                Some(NodeEnum::Constraint(c)) => Some(c.contype()),
                _ => None,
            })
            .collect();
        let not_null = def.is_not_null
            || kinds.iter().any(|k| matches!(k, ConstrType::ConstrNotnull | ConstrType::ConstrPrimary));
        let valued = def.raw_default.is_some()
            || kinds.iter().any(|k| {
                matches!(
                    k,
                    ConstrType::ConstrDefault | ConstrType::ConstrIdentity | ConstrType::ConstrGenerated
                )
            })
            || def.type_name.as_ref().is_some_and(|t| SERIAL.contains(&type_spec(t, false).base()));
        if !not_null || valued {
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
