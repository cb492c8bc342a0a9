//! BS207: UNIQUE or PRIMARY KEY added to an existing table without a
//! prebuilt index.

use pg_query::protobuf::{AlterTableType, ConstrType};
use pg_query::NodeEnum;

use crate::context::{Alter, Cx, Hit};
use backstop_sql::stmt::{display_table};
use crate::model::{Impact, Probability, Subject};
use crate::rules::{Code, Family, Meta, Phase};

/// **What it finds:** `ALTER TABLE ... ADD CONSTRAINT ... UNIQUE` or `PRIMARY
/// KEY` (or `ADD COLUMN ... UNIQUE`) on a table the migration did not
/// create, without `USING INDEX`.
///
/// **Why it hurts:** PostgreSQL builds the constraint's index inside the
/// `ALTER TABLE`, holding an ACCESS EXCLUSIVE lock: no reads and no writes
/// until the index is built, which takes minutes on a large table.
///
/// **Instead:** `CREATE UNIQUE INDEX CONCURRENTLY t_col_key ON t (col)` in a
/// `-- backstop:no-transaction` migration, then `ALTER TABLE t ADD
/// CONSTRAINT t_col_key UNIQUE USING INDEX t_col_key`, which is instant.
pub const META: Meta = Meta {
    name: "unique-without-index",
    family: Family::Locks,
    probability: Probability::Medium,
    impact: Impact::High,
    risk: "unique index built under ACCESS EXCLUSIVE",
    mitigation: "Build the unique index CONCURRENTLY first, then ADD CONSTRAINT ... USING INDEX",
    phase: Phase::Statements,
};

pub fn check(cx: &Cx<'_>, out: &mut Vec<Hit>) {
    for Alter { stmt, alter: a, rv, table, k, cmd, kind } in cx.existing_table_alters() {
        let def = cmd.def.as_ref().and_then(|d| d.node.as_ref());
        let constraints: Vec<&pg_query::protobuf::Constraint> = match (kind, def) {
            (AlterTableType::AtAddConstraint, Some(NodeEnum::Constraint(c))) => vec![c.as_ref()],
            (AlterTableType::AtAddColumn, Some(NodeEnum::ColumnDef(col))) => col
                .constraints
                .iter()
                .filter_map(|c| match c.node.as_ref() {
                    Some(NodeEnum::Constraint(c)) => Some(c.as_ref()),
                    _ => None,
                })
                .collect(),
            _ => continue,
        };
        for c in constraints {
            let what = match c.contype() {
                ConstrType::ConstrUnique => "UNIQUE",
                ConstrType::ConstrPrimary => "PRIMARY KEY",
                _ => continue,
            };
            if !c.indexname.is_empty() {
                continue;
            }
            let name = display_table(&table);
            out.push(
                Hit::new(
                    Code::BS207,
                    stmt,
                    cx.alter_cmd(stmt, Some(rv), k),
                    format!("adding a {what} constraint builds its index under an ACCESS EXCLUSIVE lock on {name}: reads and writes wait"),
                    format!("CREATE UNIQUE INDEX CONCURRENTLY first (in a no-transaction migration), then ADD CONSTRAINT ... {what} USING INDEX"),
                )
                .subject(Subject::Table { table: table.clone(), missing_ok: a.missing_ok }),
            );
        }
    }
}
