//! BS806 (opt-in): a table named without its schema.

use pg_query::protobuf::{ObjectType, RangeVar};
use pg_query::NodeEnum;

use crate::context::{Cx, Hit};
use crate::model::{Impact, Probability};
use crate::rules::{Code, Family, Meta, Phase};
use backstop_sql::stmt::object_name;

/// **What it finds:** `CREATE TABLE`, `ALTER TABLE` or `DROP TABLE` of a
/// table named without its schema (`users`, not `public.users`);
/// temporary tables are left alone. Off unless `[check] enable` names it,
/// for projects that ask every name to say its schema (squawk's
/// `require-table-schema`).
///
/// **Why it hurts:** an unqualified name goes to the first schema of the
/// session's `search_path`: a migration run by another role, through a
/// pooler or by a tool that sets its own path creates the table
/// elsewhere, or alters or drops another schema's table of the same name.
///
/// **Instead:** write the schema: `CREATE TABLE public.users (...)`.
pub const META: Meta = Meta {
    name: "table-without-schema",
    family: Family::Style,
    probability: Probability::Low,
    impact: Impact::Low,
    risk: "the table's schema depends on the session's search_path",
    mitigation: "Name every table with its schema",
    phase: Phase::Statements,
};

pub fn check(cx: &Cx<'_>, out: &mut Vec<Hit>) {
    for stmt in &cx.stmts {
        // (the verb, the name, where it is written)
        let named: Vec<(&str, String, i32)> = match stmt.node {
            NodeEnum::CreateStmt(c) => unqualified("CREATE", c.relation.as_ref()).into_iter().collect(),
            NodeEnum::AlterTableStmt(a) if a.objtype() == ObjectType::ObjectTable => {
                unqualified("ALTER", a.relation.as_ref()).into_iter().collect()
            }
            NodeEnum::DropStmt(d) if d.remove_type() == ObjectType::ObjectTable => d
                .objects
                .iter()
                .filter_map(object_name)
                .filter(|t| t.schema.is_none())
                .map(|t| ("DROP", t.name, -1))
                .collect(),
            _ => continue,
        };
        for (verb, name, location) in named {
            let span = if location < 0 {
                cx.name_token(stmt, &name, stmt.start).unwrap_or_else(|| cx.head(stmt, 2))
            } else {
                cx.token_at(stmt, location)
            };
            out.push(Hit::new(
                Code::BS806,
                stmt,
                span,
                format!("{verb} TABLE {name} does not name its schema: search_path decides which it is"),
                format!("write the schema: {verb} TABLE public.{name} (or the schema it belongs in)"),
            ));
        }
    }
}

/// The name of a table written without schema, unless it is temporary.
fn unqualified<'v>(verb: &'v str, rv: Option<&RangeVar>) -> Option<(&'v str, String, i32)> {
    let rv = rv?;
    (rv.schemaname.is_empty() && rv.relpersistence != "t")
        .then(|| (verb, rv.relname.clone(), rv.location))
}
