//! BS211: a constraint added to a domain, checked on every column of it.

use pg_query::NodeEnum;

use crate::context::{Cx, Hit};
use crate::model::{Impact, Probability};
use crate::rules::{Code, Family, Meta, Phase};
use backstop_sql::stmt::string_value;

/// **What it finds:** `ALTER DOMAIN ... ADD CONSTRAINT` without `NOT
/// VALID`, and `ALTER DOMAIN ... SET NOT NULL`, on a domain the file did
/// not create (squawk's `ban-alter-domain-with-add-constraint`).
///
/// **Why it hurts:** PostgreSQL checks the new rule against every row of
/// every table with a column of the domain, holding a SHARE lock on each
/// of those tables meanwhile: writes to all of them wait for the whole
/// check. Which tables those are is not written in the migration, so the
/// reviewer cannot see the cost.
///
/// **Instead:** add the constraint `NOT VALID` (only new values are
/// checked) and `ALTER DOMAIN ... VALIDATE CONSTRAINT` in a later
/// migration, or put a `CHECK` on the table's column where only one
/// table needs it (added `NOT VALID`, then validated, as BS203 says).
pub const META: Meta = Meta {
    name: "domain-constraint-added",
    family: Family::Locks,
    probability: Probability::Medium,
    impact: Impact::Medium,
    risk: "every table using the domain is checked while writes to it wait",
    mitigation: "Add domain constraints NOT VALID; VALIDATE CONSTRAINT in a later migration",
    phase: Phase::Statements,
};

pub fn check(cx: &Cx<'_>, out: &mut Vec<Hit>) {
    // Domains created earlier in this file: no column uses them yet
    // that the file did not add itself.
    let mut made: Vec<String> = Vec::new();
    for stmt in &cx.stmts {
        match stmt.node {
            NodeEnum::CreateDomainStmt(c) => {
                made.extend(c.domainname.iter().rev().find_map(string_value).map(str::to_string));
            }
            NodeEnum::AlterDomainStmt(a) => {
                let Some(domain) = a.type_name.iter().rev().find_map(string_value) else {
                    continue;
                };
                if made.iter().any(|m| m == domain) {
                    continue;
                }
                let what = match a.subtype.as_str() {
                    "C" => match a.def.as_ref().and_then(|d| d.node.as_ref()) {
                        Some(NodeEnum::Constraint(c)) if !c.skip_validation => "ADD CONSTRAINT",
                        _ => continue,
                    },
                    "O" => "SET NOT NULL",
                    _ => continue,
                };
                let help = if what == "SET NOT NULL" {
                    format!("add CHECK (VALUE IS NOT NULL) NOT VALID to {domain}, then VALIDATE CONSTRAINT in a later migration")
                } else {
                    format!("add it NOT VALID, then ALTER DOMAIN {domain} VALIDATE CONSTRAINT in a later migration")
                };
                out.push(Hit::new(
                    Code::BS211,
                    stmt,
                    cx.head(stmt, 2),
                    format!(
                        "ALTER DOMAIN {domain} {what} checks every column of type {domain} in every table, \
                         holding SHARE locks on those tables: writes to them wait"
                    ),
                    help,
                ));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{check, Code, Input, Options};

    fn found(sql: &str) -> Vec<Code> {
        let report = check(&[Input::file("1.sql", sql)], &Options::default());
        report.findings.iter().map(|f| f.code).filter(|c| matches!(c, Code::BS211 | Code::BS407)).collect()
    }

    #[test]
    fn domain_constraints_are_named_where_they_scan_or_bind_later_changes() {
        assert_eq!(found("ALTER DOMAIN email ADD CONSTRAINT at CHECK (VALUE LIKE '%@%');"), [Code::BS211]);
        assert_eq!(found("ALTER DOMAIN email SET NOT NULL;"), [Code::BS211]);
        assert_eq!(found("ALTER DOMAIN email ADD CONSTRAINT at CHECK (VALUE LIKE '%@%') NOT VALID;"), []);
        assert_eq!(found("ALTER DOMAIN email VALIDATE CONSTRAINT at;"), []);
        // A domain this file made: BS407 for its constraint, no scan.
        assert_eq!(
            found("CREATE DOMAIN email AS text;\nALTER DOMAIN email ADD CONSTRAINT at CHECK (VALUE LIKE '%@%');"),
            []
        );
        assert_eq!(found("CREATE DOMAIN email AS text CHECK (VALUE LIKE '%@%');"), [Code::BS407]);
        assert_eq!(found("CREATE DOMAIN email AS text;"), []);
    }
}
