//! BS407: a domain created with a constraint.

use pg_query::protobuf::ConstrType;
use pg_query::NodeEnum;

use crate::context::{Cx, Hit};
use crate::model::{Impact, Probability};
use crate::rules::{Code, Family, Meta, Phase};
use backstop_sql::stmt::string_value;

/// **What it finds:** `CREATE DOMAIN` with a `CHECK` or `NOT NULL`
/// constraint (squawk's `ban-create-domain-with-constraint`).
///
/// **Why it hurts:** the rule is easy to make and hard to change: every
/// later change of it (`ALTER DOMAIN ... ADD CONSTRAINT`, BS211) checks
/// every column of the domain in every table under SHARE locks, and
/// dropping the rule loosens every table at once. A domain's `NOT NULL`
/// is not even kept everywhere: an outer join or a column added without
/// a value yields NULLs of the domain.
///
/// **Instead:** a domain without constraints (or a plain type), and the
/// rule as a `CHECK` on each table's column, where it can be added `NOT
/// VALID` and validated without blocking writes.
pub const META: Meta = Meta {
    name: "domain-with-constraint",
    family: Family::Robustness,
    probability: Probability::Low,
    impact: Impact::Low,
    risk: "the domain's rule can only change by checking every table that uses it",
    mitigation: "Put the rule on the table's column as a CHECK",
    phase: Phase::Statements,
};

pub fn check(cx: &Cx<'_>, out: &mut Vec<Hit>) {
    for stmt in &cx.stmts {
        let NodeEnum::CreateDomainStmt(c) = stmt.node else { continue };
        let ruled = c.constraints.iter().any(|k| match k.node.as_ref() {
            Some(NodeEnum::Constraint(k)) => {
                matches!(k.contype(), ConstrType::ConstrCheck | ConstrType::ConstrNotnull)
            }
            _ => false,
        });
        if !ruled {
            continue;
        }
        let domain = c.domainname.iter().rev().find_map(string_value).unwrap_or_default();
        out.push(Hit::new(
            Code::BS407,
            stmt,
            cx.head(stmt, 3),
            format!(
                "domain {domain} is created with a constraint: changing that rule later checks \
                 every column of {domain} in every table while writes to them wait"
            ),
            format!("create {domain} without the constraint and put it on each column as a CHECK"),
        ));
    }
}
