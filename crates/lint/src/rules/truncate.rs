//! BS104: TRUNCATE of an existing table.

use pg_query::protobuf::DropBehavior;
use pg_query::NodeEnum;

use crate::context::{Cx, Hit};
use backstop_sql::stmt::{display_table};
use crate::model::{Impact, Probability, Subject};
use crate::rules::{Code, Family, Meta, Phase};

/// **What it finds:** `TRUNCATE` of a table the migration did not create.
///
/// **Why it hurts:** every row is gone at COMMIT, and no down migration
/// brings them back. `TRUNCATE` also takes an ACCESS EXCLUSIVE lock, so
/// every query on the table waits. `CASCADE` empties every table with a
/// foreign key to it as well, without naming them.
///
/// **Instead:** export the rows first if anyone may need them; delete in
/// batches with a `WHERE` if only some rows must go; never `CASCADE`
/// without listing the tables it reaches.
pub const META: Meta = Meta {
    name: "truncate",
    family: Family::DataLoss,
    probability: Probability::High,
    impact: Impact::High,
    risk: "table emptied",
    mitigation: "Export the rows first, or delete only what must go with a WHERE",
    phase: Phase::Statements,
};

pub fn check(cx: &Cx<'_>, out: &mut Vec<Hit>) {
    for stmt in &cx.stmts {
        let NodeEnum::TruncateStmt(t) = stmt.node else { continue };
        let cascade = t.behavior() == DropBehavior::DropCascade;
        for node in &t.relations {
            let Some(NodeEnum::RangeVar(rv)) = node.node.as_ref() else { continue };
            let table = Cx::rel(rv);
            if cx.is_new(stmt.index, &table) || cx.protected(&table).is_some() {
                continue;
            }
            let name = display_table(&table);
            let mut message = format!("TRUNCATE deletes every row of {name}");
            if cascade {
                message.push_str(", and CASCADE empties every table with a foreign key to it too");
            }
            out.push(
                Hit::new(
                    Code::BS104,
                    stmt,
                    cx.token_at(stmt, rv.location),
                    message,
                    format!("export the rows first (\\copy {name} TO '{}.csv' CSV HEADER), or DELETE only what must go", table.name),
                )
                .subject(Subject::Table { table, missing_ok: false }),
            );
        }
    }
}
