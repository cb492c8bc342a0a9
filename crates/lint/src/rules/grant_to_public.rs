//! BS503: GRANT ... TO PUBLIC.

use pg_query::protobuf::{ObjectType, RoleSpecType};
use pg_query::NodeEnum;

use crate::context::{Cx, Hit};
use crate::model::{Impact, Probability};
use crate::rules::{Code, Family, Meta, Phase};

/// **What it finds:** `GRANT ... TO PUBLIC`, and `ALTER DEFAULT PRIVILEGES
/// ... GRANT ... TO PUBLIC`.
///
/// **Why it hurts:** `PUBLIC` is every role, today's and every role created
/// later: application roles, reporting users, the API role of a
/// Supabase-style setup. Table privileges granted to it bypass whatever
/// role design the project has, and default privileges extend that to
/// every future table.
///
/// **Instead:** grant to the specific role that needs it (`GRANT SELECT ON t
/// TO app_reader`), and keep per-user data behind row level security.
pub const META: Meta = Meta {
    name: "grant-to-public",
    family: Family::Security,
    probability: Probability::Medium,
    impact: Impact::High,
    risk: "privileges granted to every role",
    mitigation: "Grant to named roles only, never to PUBLIC",
    phase: Phase::Statements,
};

fn object_words(t: ObjectType) -> &'static str {
    match t {
        ObjectType::ObjectTable => "tables",
        ObjectType::ObjectSequence => "sequences",
        ObjectType::ObjectSchema => "schemas",
        ObjectType::ObjectFunction | ObjectType::ObjectRoutine | ObjectType::ObjectProcedure => {
            "functions"
        }
        ObjectType::ObjectDatabase => "the database",
        _ => "objects",
    }
}

pub fn check(cx: &Cx<'_>, out: &mut Vec<Hit>) {
    for stmt in &cx.stmts {
        let (grant, default) = match stmt.node {
            NodeEnum::GrantStmt(g) => (g, false),
            NodeEnum::AlterDefaultPrivilegesStmt(a) => match &a.action {
                Some(g) => (g, true),
                None => continue,
            },
            _ => continue,
        };
        if !grant.is_grant {
            continue;
        }
        let public = grant.grantees.iter().find_map(|g| match g.node.as_ref() {
            Some(NodeEnum::RoleSpec(r)) if r.roletype() == RoleSpecType::RolespecPublic => Some(r),
            _ => None,
        });
        let Some(public) = public else { continue };
        let what = object_words(grant.objtype());
        let message = if default {
            format!("default privileges grant every future one of these {what} to PUBLIC, that is to every role")
        } else {
            format!("GRANT on {what} to PUBLIC gives every role, present and future, these privileges")
        };
        out.push(Hit::new(
            Code::BS503,
            stmt,
            cx.token_at(stmt, public.location),
            message,
            "grant to the role that needs it (e.g. GRANT SELECT ON t TO app_reader)",
        ));
    }
}
