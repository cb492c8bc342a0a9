//! BS103: DROP SCHEMA.

use pg_query::protobuf::{DropBehavior, ObjectType};
use pg_query::NodeEnum;

use crate::context::{Cx, Hit};
use backstop_sql::stmt::{string_value};
use crate::model::{Impact, Probability};
use crate::rules::{Code, Family, Meta, Phase};

/// **What it finds:** `DROP SCHEMA`, especially with `CASCADE`.
///
/// **Why it hurts:** `DROP SCHEMA ... CASCADE` drops every table, view,
/// function and type in the schema, with all their rows, in one statement
/// that names none of them: the review shows one line, the database loses
/// everything under it. Without `CASCADE` it fails unless the schema is
/// empty.
///
/// **Instead:** drop the schema's objects one by one, by name, so the
/// review sees each of them (and each gets its own finding), then drop the
/// empty schema without `CASCADE`.
pub const META: Meta = Meta {
    name: "drop-schema",
    family: Family::DataLoss,
    probability: Probability::High,
    impact: Impact::High,
    risk: "schema dropped with everything in it",
    mitigation: "Drop the schema's objects by name first; drop the schema without CASCADE",
    phase: Phase::Statements,
};

pub fn check(cx: &Cx<'_>, out: &mut Vec<Hit>) {
    for stmt in &cx.stmts {
        let NodeEnum::DropStmt(d) = stmt.node else { continue };
        if d.remove_type() != ObjectType::ObjectSchema {
            continue;
        }
        let cascade = d.behavior() == DropBehavior::DropCascade;
        for schema in d.objects.iter().filter_map(string_value) {
            let span = cx.name_token(stmt, schema, stmt.start).unwrap_or(stmt.span());
            let hit = if cascade {
                Hit::new(
                    Code::BS103,
                    stmt,
                    span,
                    format!("DROP SCHEMA {schema} CASCADE drops every object in {schema} and all their rows"),
                    "drop the schema's tables by name first, then the empty schema without CASCADE",
                )
            } else {
                Hit::new(
                    Code::BS103,
                    stmt,
                    span,
                    format!("DROP SCHEMA {schema} fails unless the schema is already empty"),
                    "drop its objects by name first, in this or an earlier migration",
                )
                .rated(Probability::Low, Impact::Medium)
            };
            out.push(hit);
        }
    }
}
