//! BS301: renaming an existing table.

use pg_query::protobuf::ObjectType;
use pg_query::NodeEnum;

use crate::context::{Cx, Hit};
use crate::stmt::{display_table};
use crate::model::{Impact, Probability, Subject};
use crate::rules::{Code, Family, Meta, Phase};

/// **What it finds:** `ALTER TABLE ... RENAME TO` of a table (or view) the
/// migration did not create, unless the same migration creates a view
/// under the old name.
///
/// **Why it hurts:** the application that is running while the migration
/// commits still names the old table: every one of its queries fails with
/// `relation does not exist` until the new code is deployed everywhere,
/// and a rollback of the code alone does not bring the name back.
///
/// **Instead:** expand and contract: rename, then create a view with the
/// old name (`CREATE VIEW old AS SELECT * FROM new`, simple views are
/// updatable) in the same migration; drop the view once no deployed code
/// uses the old name.
pub const META: Meta = Meta {
    name: "rename-table",
    family: Family::Compatibility,
    probability: Probability::Medium,
    impact: Impact::High,
    risk: "running code breaks on a renamed table",
    mitigation: "Keep the old name as a view until no deployed code uses it",
    phase: Phase::Statements,
};

pub fn check(cx: &Cx<'_>, out: &mut Vec<Hit>) {
    for stmt in &cx.stmts {
        let NodeEnum::RenameStmt(r) = stmt.node else { continue };
        if !matches!(r.rename_type(), ObjectType::ObjectTable | ObjectType::ObjectView) {
            continue;
        }
        let Some(rv) = &r.relation else { continue };
        let table = Cx::rel(rv);
        if cx.is_new(stmt.index, &table) {
            continue;
        }
        // Expand and contract: a view keeps the old name working.
        let kept = cx.stmts[stmt.index + 1..].iter().any(|s| match s.node {
            NodeEnum::ViewStmt(v) => {
                v.view.as_ref().is_some_and(|v| crate::stmt::same_table(&Cx::rel(v), &table))
            }
            _ => false,
        });
        if kept {
            continue;
        }
        let old = display_table(&table);
        out.push(
            Hit::new(
                Code::BS301,
                stmt,
                stmt.span(),
                format!("renaming {old} to {} breaks every query of the running application that names {old}", r.newname),
                format!("in the same migration CREATE VIEW {old} AS SELECT * FROM {}; drop the view once no deployed code uses the old name", r.newname),
            )
            .subject(Subject::Table { table, missing_ok: r.missing_ok }),
        );
    }
}
