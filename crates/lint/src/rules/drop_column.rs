//! BS102: ALTER TABLE ... DROP COLUMN on an existing table.

use pg_query::protobuf::AlterTableType;

use crate::model::Origin;
use crate::context::{Alter, Cx, Hit};
use backstop_sql::stmt::{display_table};
use crate::model::{Impact, Probability, Subject};
use crate::rules::{Code, Family, Meta, Phase};

/// **What it finds:** `ALTER TABLE ... DROP COLUMN` on a table the migration
/// did not create.
///
/// **Why it hurts:** the column's values are lost at COMMIT; a down
/// migration can add the column back but only empty. Application code
/// still deployed that selects or inserts the column fails with `column
/// does not exist`, and `SELECT *` consumers see a different shape.
///
/// **Instead:** stop reading and writing the column in a release first,
/// copy the values somewhere if they may be needed, and drop the column in
/// a later migration.
pub const META: Meta = Meta {
    name: "drop-column",
    family: Family::DataLoss,
    probability: Probability::Medium,
    impact: Impact::High,
    risk: "column dropped with its values",
    mitigation: "Deploy code that no longer uses the column first; keep a copy of its values",
    phase: Phase::Statements,
};

pub fn check(cx: &Cx<'_>, out: &mut Vec<Hit>) {
    for Alter { stmt, alter: a, rv, table, k, cmd, kind } in cx.existing_table_alters() {
        if kind != AlterTableType::AtDropColumn {
            continue;
        }
        // A column an earlier statement of the batch added holds nothing
        // from before it.
        if matches!(cx.column_origin(stmt.index, &table, &cmd.name), Origin::Created { .. }) {
            continue;
        }
        let name = display_table(&table);
        out.push(
            Hit::new(
                Code::BS102,
                stmt,
                cx.alter_cmd(stmt, Some(rv), k),
                format!("DROP COLUMN {name}.{} deletes the column's values", cmd.name),
                "deploy code that no longer reads or writes the column first, keep a copy of its values, then drop it in a later migration",
            )
            .subject(Subject::Table { table: table.clone(), missing_ok: a.missing_ok }),
        );
    }
}
