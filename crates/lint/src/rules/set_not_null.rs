//! BS204: SET NOT NULL on a column of an existing table.

use pg_query::protobuf::AlterTableType;

use crate::context::{Alter, Cx, Hit};
use crate::stmt::{display_table};
use crate::model::{Impact, Probability, Subject};
use crate::rules::{Code, Family, Meta, Phase};

/// **What it finds:** `ALTER TABLE ... ALTER COLUMN ... SET NOT NULL` on a
/// table the migration did not create.
///
/// **Why it hurts:** PostgreSQL scans the whole table to prove there is no
/// NULL, holding an ACCESS EXCLUSIVE lock: every read and write of the
/// table waits for the scan. If a NULL is found the migration fails at
/// the end of that scan.
///
/// **Instead:** in one migration `ADD CONSTRAINT c CHECK (col IS NOT NULL)
/// NOT VALID`; in the next `VALIDATE CONSTRAINT c` (no blocking lock); then
/// `SET NOT NULL`, which on PostgreSQL 12+ uses the validated constraint
/// and skips the scan, and `DROP CONSTRAINT c`. With a database URL,
/// `backstop check` sees such a constraint and drops this finding.
pub const META: Meta = Meta {
    name: "set-not-null",
    family: Family::Locks,
    probability: Probability::Medium,
    impact: Impact::High,
    risk: "table scanned under ACCESS EXCLUSIVE to set NOT NULL",
    mitigation: "Validate a CHECK (col IS NOT NULL) constraint first, then SET NOT NULL",
    phase: Phase::Statements,
};

pub fn check(cx: &Cx<'_>, out: &mut Vec<Hit>) {
    for Alter { stmt, rv, table, k, cmd, kind, .. } in cx.existing_table_alters() {
        if kind != AlterTableType::AtSetNotNull {
            continue;
        }
        out.push(
            Hit::new(
                Code::BS204,
                stmt,
                cx.alter_cmd(stmt, Some(rv), k),
                format!(
                    "SET NOT NULL on {}.{} scans the whole table under an ACCESS EXCLUSIVE lock",
                    display_table(&table),
                    cmd.name
                ),
                format!(
                    "first ADD CONSTRAINT {0}_not_null CHECK ({0} IS NOT NULL) NOT VALID, VALIDATE it in a later migration, then SET NOT NULL",
                    cmd.name
                ),
            )
            .subject(Subject::NotNull { table: table.clone(), column: cmd.name.clone() }),
        );
    }
}
