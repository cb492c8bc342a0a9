//! BS203: CHECK or FOREIGN KEY added to an existing table without NOT VALID,
//! or validated in the same transaction that added it.

use pg_query::protobuf::{AlterTableType, ConstrType};
use pg_query::NodeEnum;

use crate::context::{Cx, Hit};
use crate::stmt::{alter_cmds, display_table};
use crate::model::{Impact, Probability, Subject};
use crate::rules::{Code, Family, Meta, Phase};

/// **What it finds:** `ALTER TABLE ... ADD CONSTRAINT ... CHECK` or `FOREIGN
/// KEY` without `NOT VALID` on a table the migration did not create, and
/// `VALIDATE CONSTRAINT` in the same transaction as the `ADD ... NOT VALID`.
///
/// **Why it hurts:** adding a CHECK scans the whole table under an ACCESS
/// EXCLUSIVE lock: no reads, no writes until it ends. A FOREIGN KEY scans
/// the table while holding SHARE ROW EXCLUSIVE locks on it and on the
/// referenced table: writes to both wait. Validating in the same
/// transaction keeps the ACCESS EXCLUSIVE lock of the `ADD` for the scan,
/// so `NOT VALID` buys nothing.
///
/// **Instead:** `ADD CONSTRAINT ... NOT VALID` (instant: only new rows are
/// checked), then `ALTER TABLE ... VALIDATE CONSTRAINT ...` in a later
/// migration: validation takes only a SHARE UPDATE EXCLUSIVE lock, which
/// lets reads and writes go on.
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
                        format!("adding a FOREIGN KEY scans all of {name} while writes to {name} and {referenced} wait")
                    };
                    out.push(
                        Hit::new(
                            Code::BS203,
                            stmt,
                            cx.alter_cmd(stmt, Some(rv), k),
                            message,
                            "add it NOT VALID, then VALIDATE CONSTRAINT in a later migration (SHARE UPDATE EXCLUSIVE: reads and writes go on)",
                        )
                        .subject(Subject::Table { table: table.clone(), missing_ok: a.missing_ok }),
                    );
                }
                AlterTableType::AtValidateConstraint if cx.in_transaction(stmt) => {
                    let same_tx = not_valid
                        .iter()
                        .any(|(t, n)| n == &cmd.name && crate::stmt::same_table(t, &table));
                    if same_tx {
                        out.push(
                            Hit::new(
                                Code::BS203,
                                stmt,
                                cx.alter_cmd(stmt, Some(rv), k),
                                format!("{} is validated in the same transaction that added it NOT VALID: the scan runs under the ADD's ACCESS EXCLUSIVE lock", cmd.name),
                                "move VALIDATE CONSTRAINT to a later migration",
                            )
                            .subject(Subject::Table { table: table.clone(), missing_ok: a.missing_ok }),
                        );
                    }
                }
                _ => {}
            }
        }
    }
}
