//! BS208: VACUUM FULL and CLUSTER.

use pg_query::NodeEnum;

use crate::context::{Cx, Hit};
use backstop_sql::stmt::{display_table};
use crate::model::{Impact, Probability, Subject};
use crate::rules::{Code, Family, Meta, Phase};

/// **What it finds:** `VACUUM FULL` and `CLUSTER` in a migration.
///
/// **Why it hurts:** both rewrite the whole table into new files under an
/// ACCESS EXCLUSIVE lock: the application can neither read nor write the
/// table until the copy is done, and the disk must hold both copies. With
/// no table named they do it to every table in the database.
///
/// **Instead:** run plain `VACUUM` (no blocking lock), or reclaim space with
/// `pg_repack`/`pg_squeeze` online, outside the migration and outside peak
/// hours.
pub const META: Meta = Meta {
    name: "vacuum-full-or-cluster",
    family: Family::Locks,
    probability: Probability::High,
    impact: Impact::High,
    risk: "table rewritten by VACUUM FULL or CLUSTER",
    mitigation: "Use plain VACUUM or an online repack tool outside the migration",
    phase: Phase::Statements,
};

const HELP: &str = "use plain VACUUM, or pg_repack outside the migration and outside peak hours";

pub fn check(cx: &Cx<'_>, out: &mut Vec<Hit>) {
    for stmt in &cx.stmts {
        let (what, tables) = match stmt.node {
            NodeEnum::VacuumStmt(v) if v.is_vacuumcmd => {
                let full = v.options.iter().any(|o| {
                    matches!(o.node.as_ref(), Some(NodeEnum::DefElem(d)) if d.defname == "full")
                });
                if !full {
                    continue;
                }
                let tables: Vec<_> = v
                    .rels
                    .iter()
                    .filter_map(|r| match r.node.as_ref() {
                        Some(NodeEnum::VacuumRelation(vr)) => vr.relation.as_ref().map(Cx::rel),
                        _ => None,
                    })
                    .collect();
                ("VACUUM FULL", tables)
            }
            NodeEnum::ClusterStmt(c) => ("CLUSTER", c.relation.iter().map(Cx::rel).collect()),
            _ => continue,
        };
        if tables.is_empty() {
            out.push(Hit::new(
                Code::BS208,
                stmt,
                cx.head(stmt, 2),
                format!("{what} without a table rewrites every table in the database under ACCESS EXCLUSIVE locks"),
                HELP,
            ));
        }
        for table in tables {
            if cx.is_new(stmt.index, &table) {
                continue;
            }
            out.push(
                Hit::new(
                    Code::BS208,
                    stmt,
                    cx.head(stmt, 2),
                    format!("{what} rewrites {} under an ACCESS EXCLUSIVE lock: no reads or writes until it ends", display_table(&table)),
                    HELP,
                )
                .subject(Subject::Table { table, missing_ok: false }),
            );
        }
    }
}
