//! BS212: an exclusion constraint added to an existing table.

use pg_query::protobuf::{AlterTableType, ConstrType};
use pg_query::NodeEnum;

use crate::context::{Alter, Cx, Hit};
use crate::model::{Impact, Probability, Subject};
use crate::rules::{Code, Family, Meta, Phase};
use backstop_sql::stmt::display_table;

/// **What it finds:** `ALTER TABLE ... ADD CONSTRAINT ... EXCLUDE` on a
/// table the migration did not create.
///
/// **Why it hurts:** PostgreSQL builds the constraint's index inside the
/// `ALTER TABLE` and checks every row against every other, holding an
/// ACCESS EXCLUSIVE lock: no reads and no writes until it is done, which
/// takes minutes on a large table. Unlike `UNIQUE`, an exclusion
/// constraint cannot take an index built beforehand with `CREATE INDEX
/// CONCURRENTLY` (there is no `EXCLUDE ... USING INDEX`), nor be added
/// `NOT VALID`.
///
/// **Instead:** add it while the table is small (with the table, or
/// before it fills), or in a maintenance window with `lock_timeout` set;
/// for a large table, build a new table with the constraint, copy the rows
/// in batches and swap the names.
pub const META: Meta = Meta {
    name: "exclusion-constraint",
    family: Family::Locks,
    probability: Probability::Medium,
    impact: Impact::High,
    risk: "exclusion constraint's index built and checked under ACCESS EXCLUSIVE",
    mitigation: "Add it while the table is small, in a maintenance window, or on a new table swapped in",
    phase: Phase::Statements,
};

pub fn check(cx: &Cx<'_>, out: &mut Vec<Hit>) {
    for Alter { stmt, alter: a, rv, table, k, cmd, kind } in cx.existing_table_alters() {
        let def = cmd.def.as_ref().and_then(|d| d.node.as_ref());
        let (AlterTableType::AtAddConstraint, Some(NodeEnum::Constraint(c))) = (kind, def) else {
            continue;
        };
        if c.contype() != ConstrType::ConstrExclusion {
            continue;
        }
        let name = display_table(&table);
        out.push(
            Hit::new(
                Code::BS212,
                stmt,
                cx.alter_cmd(stmt, Some(rv), k),
                format!(
                    "adding an exclusion constraint builds its index and checks every row under \
                     an ACCESS EXCLUSIVE lock on {name}: reads and writes wait, and no index built \
                     CONCURRENTLY can stand in for it"
                ),
                "add it while the table is small or in a maintenance window (with lock_timeout), \
                 or build a new table with it and swap the names"
                    .to_string(),
            )
            .subject(Subject::Table { table: table.clone(), missing_ok: a.missing_ok }),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::{check, Code, Input, Options};

    fn found(sql: &str) -> usize {
        let report = check(&[Input::file("1.sql", sql)], &Options::default());
        report.findings.iter().filter(|f| f.code == Code::BS212).count()
    }

    /// Regression: squawk's peers name an exclusion constraint added to a
    /// table that is there; Backstop said nothing.
    #[test]
    fn an_exclusion_constraint_on_an_existing_table_is_named() {
        let add = "ALTER TABLE bookings ADD CONSTRAINT no_overlap \
                   EXCLUDE USING gist (room WITH =, during WITH &&);";
        assert_eq!(found(add), 1);
        // On a table the migration made: nothing to block.
        assert_eq!(found(&format!("CREATE TABLE bookings (room int, during tstzrange);\n{add}")), 0);
        // A UNIQUE constraint is BS207's, not this rule's.
        assert_eq!(found("ALTER TABLE bookings ADD CONSTRAINT u UNIQUE (room);"), 0);
    }
}
