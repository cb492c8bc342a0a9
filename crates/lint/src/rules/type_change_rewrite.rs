//! BS206: ALTER COLUMN TYPE that rewrites an existing table.

use pg_query::protobuf::AlterTableType;
use pg_query::NodeEnum;

use crate::context::{Alter, Cx, Hit};
use backstop_sql::stmt::{display_table, type_spec};
use crate::model::{Impact, Probability, Subject};
use crate::rules::{Code, Family, Meta, Phase};

/// **What it finds:** `ALTER TABLE ... ALTER COLUMN ... TYPE` on a table the
/// migration did not create. With a database URL, changes that PostgreSQL
/// makes without a rewrite (binary-coercible ones such as `varchar(n)` →
/// `text` or a longer `varchar`) are recognised from the catalog and
/// dropped.
///
/// **Why it hurts:** most type changes rewrite the whole table and rebuild
/// every index on it under an ACCESS EXCLUSIVE lock: nothing reads or
/// writes the table until it is done, and it needs twice the disk space
/// meanwhile. Application code that sends the old type may also break.
///
/// **Instead:** add a new column of the new type, write both from the
/// application, backfill in batches, switch reads, then drop the old
/// column. For text lengths, widen (`varchar(n)` → `text` or a larger
/// `varchar`), which needs no rewrite.
pub const META: Meta = Meta {
    name: "type-change-rewrite",
    family: Family::Locks,
    probability: Probability::Medium,
    impact: Impact::High,
    risk: "table rewritten by a column type change",
    mitigation: "Add a new column and backfill it instead of changing the type in place",
    phase: Phase::Statements,
};

pub fn check(cx: &Cx<'_>, out: &mut Vec<Hit>) {
    for Alter { stmt, rv, table, k, cmd, kind, .. } in cx.existing_table_alters() {
        if kind != AlterTableType::AtAlterColumnType {
            continue;
        }
        let Some(NodeEnum::ColumnDef(def)) = cmd.def.as_ref().and_then(|d| d.node.as_ref())
        else {
            continue;
        };
        let Some(tn) = &def.type_name else { continue };
        let spec = type_spec(tn, def.raw_default.is_some());
        out.push(
            Hit::new(
                Code::BS206,
                stmt,
                cx.alter_cmd(stmt, Some(rv), k),
                format!(
                    "changing {}.{} to {} rewrites the table and its indexes under an ACCESS EXCLUSIVE lock, unless the change is binary-coercible",
                    display_table(&table),
                    cmd.name,
                    spec.display()
                ),
                "add a new column of the new type, backfill it in batches, switch reads, then drop the old one",
            )
            .subject(Subject::ColumnType {
                table: table.clone(),
                column: cmd.name.clone(),
                new_type: spec,
            }),
        );
    }
}
