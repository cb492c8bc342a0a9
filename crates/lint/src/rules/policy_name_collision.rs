//! BS502: a policy whose name is already taken on its table.

use crate::context::{Cx, Hit};
use backstop_sql::stmt::{display_table, same_table};
use crate::model::{Impact, Probability, Subject};
use crate::rules::{Code, Family, Meta, Phase};

/// **What it finds:** `CREATE POLICY name ON t` when the run already creates
/// a policy of that name on `t`, and, with a database URL, when `t` already
/// has a policy of that name on the server (`pg_policies`). A policy of the
/// same name on another table is only a note: PostgreSQL names policies
/// per table. Across a statement that may drop policies where no reading
/// of the files sees it (a function called, a `DO` block's SQL built at
/// run time) the name is not judged taken: the run on a copy says what
/// the server does.
///
/// **Why it hurts:** `CREATE POLICY` fails with `policy "..." for table
/// "..." already exists`, so the migration is certain to fail. NO-GO. A
/// copied policy that kept its old name is also a sign the copy was not
/// adapted to the new table.
///
/// **Instead:** name policies `{table}_{operation}_{rule}` (e.g.
/// `clients_select_own`). To replace a policy, `DROP POLICY IF EXISTS name
/// ON t;` first, or `ALTER POLICY`.
pub const META: Meta = Meta {
    name: "policy-name-collision",
    family: Family::Security,
    probability: Probability::Certain,
    impact: Impact::High,
    risk: "policy name already taken",
    mitigation: "Give each policy a unique name per table (table_operation_rule), or DROP POLICY IF EXISTS first",
    phase: Phase::Statements,
};

pub fn check(cx: &Cx<'_>, out: &mut Vec<Hit>) {
    let policies = &cx.run.policies;
    // A statement that may run DDL no reading sees (a function that drops
    // every policy of a table, SQL built at run time) may free the name:
    // no policy is judged taken across one (the copy's run still says
    // what the server does).
    let unseen_between = |from: Option<(usize, usize)>, to: (usize, usize)| {
        cx.run.unseen.iter().any(|u| {
            *u < to
                && from.is_none_or(|f| *u > f)
                && (u.0 == to.0 || cx.opts.sequential)
        })
    };
    for (i, p) in policies.iter().enumerate().filter(|(_, p)| p.file == cx.file) {
        let Some(stmt) = cx.stmts.get(p.stmt) else { continue };
        let table = display_table(&p.table);
        let at = (p.file, p.stmt);
        let earlier = policies[..i].iter().find(|q| {
            q.name == p.name
                && same_table(&q.table, &p.table)
                && !p.dropped_before
                && (q.file == p.file || cx.opts.sequential)
                && !unseen_between(Some((q.file, q.stmt)), at)
        });
        if let Some(q) = earlier {
            let place = if q.file == p.file { "earlier in this migration" } else { "by an earlier migration of this run" };
            out.push(Hit::new(
                Code::BS502,
                stmt,
                p.span.clone(),
                format!("policy {} on {table} is already created {place}: CREATE POLICY fails", p.name),
                format!("rename it ({}_<operation>_<rule>), or DROP POLICY IF EXISTS {} ON {table} first", p.table.name, p.name),
            ));
            continue;
        }
        if p.table_is_new || p.dropped_before || unseen_between(None, at) {
            continue;
        }
        // Only the server knows which policies exist: a probe for the live check.
        out.push(
            Hit::new(
                Code::BS502,
                stmt,
                p.span.clone(),
                format!("policy {} already exists on {table}: CREATE POLICY fails", p.name),
                format!("rename it ({}_<operation>_<rule>), or DROP POLICY IF EXISTS {} ON {table} first", p.table.name, p.name),
            )
            .subject(Subject::Policy { table: p.table.clone(), name: p.name.clone() })
            .latent(),
        );
    }
}
