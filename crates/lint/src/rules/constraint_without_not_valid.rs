//! BS203: CHECK or FOREIGN KEY added to an existing table without NOT VALID
//! (also inline, with the column that carries it), or validated in the
//! same transaction that added it.

use pg_query::protobuf::{AlterTableType, ConstrType};
use pg_query::NodeEnum;

use crate::context::{Cx, Hit};
use backstop_sql::stmt::{alter_cmds, display_table};
use crate::model::{Impact, Probability, Subject};
use crate::rules::{Code, Family, Meta, Phase};

/// **What it finds:** `ALTER TABLE ... ADD CONSTRAINT ... CHECK` or `FOREIGN
/// KEY` without `NOT VALID` on a table the migration did not create; `ADD
/// COLUMN ... REFERENCES` or `... CHECK` on such a table (the constraint
/// comes with the column and cannot be `NOT VALID`); and `VALIDATE
/// CONSTRAINT` in the same transaction as the `ADD ... NOT VALID`.
///
/// **Why it hurts:** adding a CHECK scans the whole table under an ACCESS
/// EXCLUSIVE lock: no reads, no writes until it ends. A FOREIGN KEY scans
/// the table while holding SHARE ROW EXCLUSIVE locks on it and on the
/// referenced table: writes to both wait. A constraint added with its
/// column is checked under the ACCESS EXCLUSIVE lock of `ADD COLUMN`,
/// and a foreign key also holds SHARE ROW EXCLUSIVE on the referenced
/// table meanwhile. Validating in the same
/// transaction keeps the ACCESS EXCLUSIVE lock of the `ADD` for the scan,
/// so `NOT VALID` buys nothing.
///
/// **Instead:** `ADD CONSTRAINT ... NOT VALID` (instant: only new rows are
/// checked), then `ALTER TABLE ... VALIDATE CONSTRAINT ...` in a later
/// migration: validation takes only a SHARE UPDATE EXCLUSIVE lock, which
/// lets reads and writes go on. For a new column: add it bare, then its
/// constraint that way.
pub const META: Meta = Meta {
    name: "constraint-without-not-valid",
    family: Family::Locks,
    probability: Probability::Medium,
    impact: Impact::High,
    risk: "table scanned under a blocking lock to validate a constraint",
    mitigation: "Add constraints NOT VALID; VALIDATE CONSTRAINT in a later migration",
    phase: Phase::Statements,
};

pub fn check(cx: &Cx<'_>, out: &mut Vec<Hit>) {
    // Constraints added NOT VALID so far in this file: (table, name).
    let mut not_valid: Vec<(crate::RelationName, String)> = Vec::new();
    for stmt in &cx.stmts {
        let NodeEnum::AlterTableStmt(a) = stmt.node else { continue };
        let Some(rv) = &a.relation else { continue };
        let table = Cx::rel(rv);
        let new = cx.is_new(stmt.index, &table);
        let name = display_table(&table);
        // Every finding here is about subcommand `k`'s lock on the table.
        let hit = |k: usize, message: String, help: String| {
            Hit::new(Code::BS203, stmt, cx.alter_cmd(stmt, Some(rv), k), message, help)
                .subject(Subject::Table { table: table.clone(), missing_ok: a.missing_ok })
        };
        for (k, cmd, kind) in alter_cmds(a) {
            match kind {
                AlterTableType::AtAddConstraint => {
                    let Some(NodeEnum::Constraint(c)) =
                        cmd.def.as_ref().and_then(|d| d.node.as_ref())
                    else {
                        continue;
                    };
                    let contype = c.contype();
                    if !matches!(contype, ConstrType::ConstrCheck | ConstrType::ConstrForeign) {
                        continue;
                    }
                    if c.skip_validation {
                        not_valid.push((table.clone(), c.conname.clone()));
                        continue;
                    }
                    if new {
                        continue;
                    }
                    let message = if contype == ConstrType::ConstrCheck {
                        format!("adding a CHECK constraint scans all of {name} under an ACCESS EXCLUSIVE lock: reads and writes wait")
                    } else {
                        let referenced = c.pktable.as_ref().map(|p| display_table(&Cx::rel(p))).unwrap_or_default();
                        format!("adding a FOREIGN KEY scans all of {name} under SHARE ROW EXCLUSIVE locks on {name} and {referenced}: writes to both wait")
                    };
                    out.push(hit(
                        k,
                        message,
                        "add it NOT VALID, then VALIDATE CONSTRAINT in a later migration (SHARE UPDATE EXCLUSIVE: reads and writes go on)".into(),
                    ));
                }
                AlterTableType::AtAddColumn if !new => {
                    let Some(NodeEnum::ColumnDef(col)) =
                        cmd.def.as_ref().and_then(|d| d.node.as_ref())
                    else {
                        continue;
                    };
                    let Some(message) = inline_constraint(col, &name) else { continue };
                    out.push(hit(
                        k,
                        message,
                        format!(
                            "add {} without it, then ADD CONSTRAINT ... NOT VALID and VALIDATE CONSTRAINT in a later migration",
                            col.colname
                        ),
                    ));
                }
                AlterTableType::AtValidateConstraint if cx.in_transaction(stmt) => {
                    let same_tx = not_valid
                        .iter()
                        .any(|(t, n)| n == &cmd.name && backstop_sql::stmt::same_table(t, &table));
                    if same_tx {
                        out.push(hit(
                            k,
                            format!("{} is validated in the same transaction that added it NOT VALID: the scan runs under the ADD's ACCESS EXCLUSIVE lock", cmd.name),
                            "move VALIDATE CONSTRAINT to a later migration".into(),
                        ));
                    }
                }
                _ => {}
            }
        }
    }
}

/// What a constraint written on a column added to `table` holds while
/// it is checked, or `None` for a column with no such constraint.
fn inline_constraint(col: &pg_query::protobuf::ColumnDef, table: &str) -> Option<String> {
    let kinds: Vec<&pg_query::protobuf::Constraint> = col
        .constraints
        .iter()
        .filter_map(|c| match c.node.as_ref() {
            Some(NodeEnum::Constraint(c)) => Some(&**c),
            _ => None,
        })
        .collect();
    let column = &col.colname;
    if let Some(fk) = kinds.iter().find(|c| c.contype() == ConstrType::ConstrForeign) {
        let referenced =
            fk.pktable.as_ref().map(|p| display_table(&Cx::rel(p))).unwrap_or_default();
        return Some(format!(
            "ADD COLUMN {column} ... REFERENCES {referenced} checks every row of {table} under the \
             ACCESS EXCLUSIVE lock of ADD COLUMN (no reads or writes) and holds SHARE ROW \
             EXCLUSIVE on {referenced} (no writes) meanwhile"
        ));
    }
    kinds.iter().any(|c| c.contype() == ConstrType::ConstrCheck).then(|| {
        format!(
            "ADD COLUMN {column} ... CHECK checks every row of {table} under the ACCESS \
             EXCLUSIVE lock of ADD COLUMN: reads and writes wait"
        )
    })
}

#[cfg(test)]
mod tests {
    use crate::{check, Code, Input, Options};

    fn bs203(sql: &str) -> Vec<String> {
        let report = check(&[Input::file("1.sql", sql)], &Options::default());
        report.findings.iter().filter(|f| f.code == Code::BS203).map(|f| f.message.clone()).collect()
    }

    #[test]
    fn a_key_added_with_its_column_is_named_with_both_locks() {
        let found = bs203("ALTER TABLE orders ADD COLUMN account_id bigint REFERENCES accounts (id);");
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("ACCESS EXCLUSIVE") && found[0].contains("SHARE ROW EXCLUSIVE on accounts"));
        let check = bs203("ALTER TABLE orders ADD COLUMN n int CHECK (n > 0);");
        assert_eq!(check.len(), 1, "{check:?}");
        // A bare column, or one on a table the run made, is no finding.
        assert!(bs203("ALTER TABLE orders ADD COLUMN account_id bigint;").is_empty());
        let made = "CREATE TABLE orders (id int);\nALTER TABLE orders ADD COLUMN a bigint REFERENCES accounts (id);";
        assert!(bs203(made).is_empty());
        // The key added on its own names the lock PostgreSQL takes.
        let fk = bs203("ALTER TABLE orders ADD CONSTRAINT o_fk FOREIGN KEY (a) REFERENCES accounts (id);");
        assert!(fk[0].contains("SHARE ROW EXCLUSIVE") && !fk[0].contains("ACCESS EXCLUSIVE"), "{fk:?}");
    }
}
