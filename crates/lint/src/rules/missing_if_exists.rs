//! BS401: CREATE without IF NOT EXISTS, DROP without IF EXISTS.

use pg_query::protobuf::ObjectType;
use pg_query::NodeEnum;

use crate::context::{Cx, Hit};
use crate::model::{Impact, Probability};
use crate::rules::{Code, Family, Meta, Phase};

/// **What it finds:** `CREATE TABLE`, `CREATE INDEX`, `CREATE SCHEMA`, `CREATE
/// SEQUENCE`, `CREATE EXTENSION` without `IF NOT EXISTS`, and `DROP ...`
/// without `IF EXISTS`.
///
/// **Why it hurts:** a migration that is run again after a partial failure
/// stops at the first object that already exists (or is already gone).
/// Backstop runs ordinary migrations all-or-nothing, so this mostly bites
/// no-transaction migrations (where it is rated higher) and files that are
/// also run by hand or by other tools.
///
/// **Instead:** write `CREATE ... IF NOT EXISTS` and `DROP ... IF EXISTS`,
/// and keep no-transaction migrations to one statement each.
pub const META: Meta = Meta {
    name: "missing-if-exists",
    family: Family::Robustness,
    probability: Probability::Low,
    impact: Impact::Low,
    risk: "migration cannot be re-run after a partial failure",
    mitigation: "Use IF [NOT] EXISTS so a re-run after a partial failure succeeds",
    phase: Phase::Statements,
};

fn object_word(t: ObjectType) -> Option<&'static str> {
    Some(match t {
        ObjectType::ObjectTable => "TABLE",
        ObjectType::ObjectIndex => "INDEX",
        ObjectType::ObjectView => "VIEW",
        ObjectType::ObjectMatview => "MATERIALIZED VIEW",
        ObjectType::ObjectSequence => "SEQUENCE",
        ObjectType::ObjectSchema => "SCHEMA",
        ObjectType::ObjectType => "TYPE",
        ObjectType::ObjectExtension => "EXTENSION",
        ObjectType::ObjectFunction => "FUNCTION",
        ObjectType::ObjectTrigger => "TRIGGER",
        ObjectType::ObjectPolicy => "POLICY",
        _ => return None,
    })
}

pub fn check(cx: &Cx<'_>, out: &mut Vec<Hit>) {
    let rating = if cx.input.no_transaction {
        (Probability::Medium, Impact::Medium)
    } else {
        (META.probability, META.impact)
    };
    for stmt in &cx.stmts {
        let missing = match stmt.node {
            NodeEnum::CreateStmt(s) if !s.if_not_exists => Some(("CREATE TABLE", "IF NOT EXISTS")),
            NodeEnum::CreateTableAsStmt(s)
                if !s.if_not_exists && s.objtype() == ObjectType::ObjectTable =>
            {
                Some(("CREATE TABLE AS", "IF NOT EXISTS"))
            }
            // An unnamed index cannot say IF NOT EXISTS.
            NodeEnum::IndexStmt(s) if !s.if_not_exists && !s.idxname.is_empty() => {
                Some(("CREATE INDEX", "IF NOT EXISTS"))
            }
            NodeEnum::CreateSchemaStmt(s) if !s.if_not_exists => Some(("CREATE SCHEMA", "IF NOT EXISTS")),
            NodeEnum::CreateSeqStmt(s) if !s.if_not_exists => Some(("CREATE SEQUENCE", "IF NOT EXISTS")),
            NodeEnum::CreateExtensionStmt(s) if !s.if_not_exists => {
                Some(("CREATE EXTENSION", "IF NOT EXISTS"))
            }
            NodeEnum::DropStmt(s) if !s.missing_ok => {
                object_word(s.remove_type()).map(|w| (w, "IF EXISTS"))
            }
            _ => None,
        };
        let Some((what, clause)) = missing else { continue };
        let (verb, what) = match stmt.node {
            NodeEnum::DropStmt(_) => ("DROP", what),
            _ => ("", what),
        };
        let shown = if verb.is_empty() { what.to_string() } else { format!("{verb} {what}") };
        out.push(
            Hit::new(
                Code::BS401,
                stmt,
                cx.head(stmt, 2),
                format!("{shown} without {clause} fails when the migration is run again after a partial failure"),
                format!("write {shown} {clause}"),
            )
            .rated(rating.0, rating.1),
        );
    }
}
