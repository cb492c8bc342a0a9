//! BS304: ALTER TYPE ... ADD VALUE without BEFORE or AFTER.

use pg_query::NodeEnum;

use crate::context::{Cx, Hit};
use backstop_sql::stmt::{string_value};
use crate::model::{Impact, Probability};
use crate::rules::{Code, Family, Meta, Phase};

/// **What it finds:** `ALTER TYPE ... ADD VALUE 'x'` without `BEFORE` or
/// `AFTER`.
///
/// **Why it hurts:** the value goes to the end of the enum's sort order, so
/// `ORDER BY status` and comparisons such as `status < 'shipped'` place it
/// after every existing value, which is rarely where a new state belongs.
/// Code with an exhaustive list of the enum's values (generated types,
/// `switch` statements) meets a value it does not know.
///
/// **Instead:** say where it goes: `ADD VALUE 'x' BEFORE 'y'` or `AFTER
/// 'y'`, and deploy code that knows the value before the migration.
/// (Backstop commits the group after an `ADD VALUE` that a later migration
/// uses, as PostgreSQL requires.)
pub const META: Meta = Meta {
    name: "enum-value-without-position",
    family: Family::Compatibility,
    probability: Probability::Low,
    impact: Impact::Low,
    risk: "enum value appended at the end of the sort order",
    mitigation: "Place new enum values with BEFORE/AFTER; deploy code that knows them first",
    phase: Phase::Statements,
};

pub fn check(cx: &Cx<'_>, out: &mut Vec<Hit>) {
    for stmt in &cx.stmts {
        let NodeEnum::AlterEnumStmt(e) = stmt.node else { continue };
        if e.new_val.is_empty() || !e.new_val_neighbor.is_empty() {
            continue;
        }
        let ty: Vec<&str> = e.type_name.iter().filter_map(string_value).collect();
        out.push(Hit::new(
            Code::BS304,
            stmt,
            stmt.span(),
            format!(
                "'{}' goes to the end of {}'s sort order: ORDER BY and < / > put it after every other value",
                e.new_val,
                ty.join(".")
            ),
            format!("say where it belongs: ADD VALUE '{}' BEFORE '...' (or AFTER '...')", e.new_val),
        ));
    }
}
