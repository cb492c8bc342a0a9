//! BS509: row level security the table's owner is not held to, where the
//! owner is the role the application connects as.

use pg_query::protobuf::AlterTableType;

use crate::context::{Alter, Cx, Hit};
use crate::model::{Impact, Probability, Subject};
use crate::rules::{Code, Family, Meta, Phase};
use backstop_sql::stmt::{display_table, same_table};

/// **What it finds:** `ALTER TABLE t ENABLE ROW LEVEL SECURITY` with no
/// `FORCE ROW LEVEL SECURITY` on `t` in the run, where the database says
/// that `t`'s owner (the role the migrations run as, for a table the run
/// creates) is one of the roles the application connects as (`[check]
/// application_roles`) and is neither a superuser nor `BYPASSRLS`.
/// Without a database URL, or with no `application_roles` set, nothing
/// can tell whose sessions the policies must hold, and it is not
/// reported.
///
/// **Why it hurts:** PostgreSQL applies a table's policies to everyone
/// but its owner, unless the table says `FORCE ROW LEVEL SECURITY`. Where
/// the application connects as the owner, the policies are never applied
/// to it: every request reads every user's rows, while the policies look
/// right in review and in the catalog.
///
/// **Instead:** `ALTER TABLE t FORCE ROW LEVEL SECURITY;` in the same
/// migration, or let another role own the table and grant the
/// application's role only what it needs.
pub const META: Meta = Meta {
    name: "rls-not-forced",
    family: Family::Security,
    probability: Probability::High,
    impact: Impact::High,
    risk: "policies never applied to the application's own role",
    mitigation: "FORCE ROW LEVEL SECURITY, or let another role own the table",
    phase: Phase::Statements,
};

pub fn check(cx: &Cx<'_>, out: &mut Vec<Hit>) {
    for Alter { stmt, rv, table, k, kind, .. } in cx.table_alters() {
        if kind != AlterTableType::AtEnableRowSecurity {
            continue;
        }
        let forced = cx.run.rls_changes.iter().any(|c| {
            c.kind == AlterTableType::AtForceRowSecurity && same_table(&c.table, &table)
        });
        if forced || cx.run.dropped_later((cx.file, stmt.index), &table, cx.opts.sequential) {
            continue;
        }
        let name = display_table(&table);
        // Who owns the table and whom the application connects as, only the
        // database and the project's settings say: a probe.
        out.push(
            Hit::new(
                Code::BS509,
                stmt,
                cx.alter_cmd(stmt, Some(rv), k),
                format!(
                    "{name} gets row level security without FORCE, and its owner is a role the \
                     application connects as: the policies never apply to the application's \
                     sessions"
                ),
                format!("add ALTER TABLE {name} FORCE ROW LEVEL SECURITY; in this migration"),
            )
            .subject(Subject::RowPolicies { table })
            .latent(),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::{check, Code, Input, Options};

    fn bs509(sql: &str) -> (usize, usize) {
        let report = check(&[Input::file("1.sql", sql)], &Options::default());
        let of = |all: &[crate::Finding]| all.iter().filter(|f| f.code == Code::BS509).count();
        (of(&report.findings), of(&report.probes))
    }

    #[test]
    fn only_the_database_can_confirm_it_and_force_clears_it() {
        let on = "ALTER TABLE notes ENABLE ROW LEVEL SECURITY;";
        assert_eq!(bs509(on), (0, 1));
        assert_eq!(bs509(&format!("{on}\nALTER TABLE notes FORCE ROW LEVEL SECURITY;")), (0, 0));
    }
}
