//! BS501: a new table with an owner column but no row level security.

use pg_query::NodeEnum;

use crate::context::{Cx, Hit};
use crate::stmt::{display_table, same_table};
use crate::model::{Impact, Probability};
use crate::rules::{Code, Family, Meta, Phase};

/// **What it finds:** `CREATE TABLE` of a table with an owner column (by
/// default `user_id`, `tenant_id` or `owner_id`; set `[check]
/// owner_columns`) when no migration of the run enables row level security
/// on it (`ALTER TABLE ... ENABLE ROW LEVEL SECURITY`).
///
/// **Why it hurts:** an owner column says the rows belong to different
/// users. Without RLS, every role with `SELECT` on the table sees every
/// user's rows; on Supabase-style setups the API role has that by default,
/// so one crafted request lists everyone's data.
///
/// **Instead:** in the same migration `ALTER TABLE t ENABLE ROW LEVEL
/// SECURITY;` and `CREATE POLICY t_own ON t USING (user_id = ...)`, then
/// prove isolation with a cross-user test (`backstop verify`).
pub const META: Meta = Meta {
    name: "rls-missing",
    family: Family::Security,
    probability: Probability::Medium,
    impact: Impact::High,
    risk: "per-user rows readable by every user",
    mitigation: "Enable row level security and add policies in the same migration",
    phase: Phase::Statements,
};

pub fn check(cx: &Cx<'_>, out: &mut Vec<Hit>) {
    for stmt in &cx.stmts {
        let NodeEnum::CreateStmt(c) = stmt.node else { continue };
        let Some(rv) = &c.relation else { continue };
        if c.partbound.is_some() || rv.relpersistence == "t" {
            continue;
        }
        let table = Cx::rel(rv);
        let owner = c.table_elts.iter().find_map(|e| match e.node.as_ref() {
            Some(NodeEnum::ColumnDef(col)) if cx.opts.owner_columns.contains(&col.colname) => {
                Some(col)
            }
            _ => None,
        });
        let Some(owner) = owner else { continue };
        if cx.run.rls_enabled.iter().any(|t| same_table(t, &table)) {
            continue;
        }
        let name = display_table(&table);
        out.push(Hit::new(
            Code::BS501,
            stmt,
            cx.token_at(stmt, rv.location),
            format!(
                "{name} has an owner column ({}) but row level security is never enabled on it: every role that can read it sees every user's rows",
                owner.colname
            ),
            format!(
                "add ALTER TABLE {name} ENABLE ROW LEVEL SECURITY; and CREATE POLICY {0}_own ON {name} USING ({1} = ...);",
                table.name, owner.colname
            ),
        ));
    }
}
