//! BS303: DROP NOT NULL on a column of an existing table.

use pg_query::protobuf::AlterTableType;

use crate::context::{Alter, Cx, Hit};
use backstop_sql::stmt::{display_table};
use crate::model::{Impact, Probability};
use crate::rules::{Code, Family, Meta, Phase};

/// **What it finds:** `ALTER TABLE ... ALTER COLUMN ... DROP NOT NULL` on a
/// table the migration did not create.
///
/// **Why it hurts:** the statement itself is cheap, but code that was
/// written when the column could not be NULL (non-optional fields in
/// generated types, `NOT IN` subqueries, sums and joins on it) starts to
/// see NULLs and misbehaves quietly. A rollback that restores `NOT NULL`
/// fails once a NULL has been written.
///
/// **Instead:** deploy readers that handle NULL first; make the down
/// migration fill NULLs (`UPDATE ... SET col = default WHERE col IS NULL`)
/// before `SET NOT NULL`.
pub const META: Meta = Meta {
    name: "drop-not-null",
    family: Family::Compatibility,
    probability: Probability::Low,
    impact: Impact::Medium,
    risk: "readers meet NULLs they never expected",
    mitigation: "Deploy NULL-safe readers first; make the down migration fill NULLs",
    phase: Phase::Statements,
};

pub fn check(cx: &Cx<'_>, out: &mut Vec<Hit>) {
    for Alter { stmt, rv, table, k, cmd, kind, .. } in cx.existing_table_alters() {
        if kind != AlterTableType::AtDropNotNull {
            continue;
        }
        out.push(Hit::new(
            Code::BS303,
            stmt,
            cx.alter_cmd(stmt, Some(rv), k),
            format!(
                "{}.{} may be NULL from now on; code written for NOT NULL starts to see NULLs",
                display_table(&table),
                cmd.name
            ),
            "deploy readers that handle NULL first; let the down migration fill NULLs before SET NOT NULL",
        ));
    }
}
