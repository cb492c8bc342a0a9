//! BS504: SECURITY DEFINER function without a fixed search_path.

use pg_query::NodeEnum;

use crate::context::{Cx, Hit};
use backstop_sql::stmt::{string_value};
use crate::model::{Impact, Probability};
use crate::rules::{Code, Family, Meta, Phase};

/// **What it finds:** `CREATE FUNCTION ... SECURITY DEFINER` without `SET
/// search_path = ...`.
///
/// **Why it hurts:** the function runs with its owner's privileges but
/// resolves unqualified names through the caller's `search_path`. A caller
/// who can create objects in any schema on that path (often `public`) can
/// plant a table or function with a name the body uses and have it run as
/// the owner: a privilege escalation PostgreSQL's own docs warn about.
///
/// **Instead:** pin the path: `SECURITY DEFINER SET search_path = pg_catalog,
/// public` (trusted schemas only, `pg_temp` last or absent), and
/// schema-qualify names in the body.
pub const META: Meta = Meta {
    name: "security-definer-search-path",
    family: Family::Security,
    probability: Probability::Medium,
    impact: Impact::High,
    risk: "SECURITY DEFINER function hijackable through search_path",
    mitigation: "SET search_path on every SECURITY DEFINER function",
    phase: Phase::Statements,
};

pub fn check(cx: &Cx<'_>, out: &mut Vec<Hit>) {
    for stmt in &cx.stmts {
        let NodeEnum::CreateFunctionStmt(f) = stmt.node else { continue };
        let mut definer = None;
        let mut pinned = false;
        for opt in &f.options {
            let Some(NodeEnum::DefElem(d)) = opt.node.as_ref() else { continue };
            match (d.defname.as_str(), d.arg.as_ref().and_then(|a| a.node.as_ref())) {
                ("security", Some(NodeEnum::Boolean(b))) if b.boolval => definer = Some(d.location),
                ("set", Some(NodeEnum::VariableSetStmt(v))) if v.name == "search_path" => {
                    pinned = true
                }
                _ => {}
            }
        }
        let Some(location) = definer else { continue };
        if pinned {
            continue;
        }
        let name: Vec<&str> = f.funcname.iter().filter_map(string_value).collect();
        let span = cx.tokens_from(stmt, location, 2);
        out.push(Hit::new(
            Code::BS504,
            stmt,
            span,
            format!(
                "{} is SECURITY DEFINER without SET search_path: callers can make it run their objects with its owner's rights",
                name.join(".")
            ),
            "add SET search_path = pg_catalog, public (trusted schemas only) and schema-qualify names in the body",
        ));
    }
}
