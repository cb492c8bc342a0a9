//! BS507: a policy dropped with nothing in its place.

use crate::context::{runs_after, Cx, Hit};
use crate::model::{Impact, Probability, Subject};
use crate::rules::{Code, Family, Meta, Phase};
use backstop_sql::stmt::{display_table, same_table};

/// **What it finds:** `DROP POLICY p ON t` where no migration of the run
/// creates a policy on `t` after it (nor drops `t`), on a table the run
/// did not create. With a database URL, the policies `t` keeps and
/// whether its row level security is on are said, and a drop of a policy
/// the server does not have (`IF EXISTS`) is no finding.
///
/// **Why it hurts:** a permissive policy dropped takes away the rows it
/// admitted: the roles it served read less, or nothing at all where it
/// was the table's last policy. A restrictive one dropped lets rows
/// through that it held back. Either way the access rules change with no
/// replacement to review beside it.
///
/// **Instead:** drop and create the replacement in the same migration
/// (`DROP POLICY p ON t; CREATE POLICY p ON t ...`), or use `ALTER
/// POLICY`. A policy that is meant to go says so: `-- backstop:ignore
/// BS507 <why>`.
pub const META: Meta = Meta {
    name: "policy-dropped",
    family: Family::Security,
    probability: Probability::Medium,
    impact: Impact::Medium,
    risk: "access rules change with no replacement",
    mitigation: "Create the replacement policy in the same migration, or ALTER POLICY",
    phase: Phase::Statements,
};

pub fn check(cx: &Cx<'_>, out: &mut Vec<Hit>) {
    let run = cx.run;
    for (_, at, table, policy) in run.dropped_policies.iter().filter(|d| d.0 == cx.file) {
        let Some(stmt) = cx.stmts.get(*at) else { continue };
        let replaced = run.policies.iter().any(|p| {
            same_table(&p.table, table)
                && runs_after((p.file, p.stmt), (cx.file, *at), cx.opts.sequential)
        });
        if replaced
            || run.dropped_later((cx.file, *at), table, cx.opts.sequential)
            || cx.is_new(*at, table)
        {
            continue;
        }
        let name = display_table(table);
        out.push(
            Hit::new(
                Code::BS507,
                stmt,
                cx.head(stmt, 3),
                format!(
                    "policy {policy} on {name} is dropped and no policy takes its place: the rows \
                     it admitted are hidden from the roles it served (or, were it restrictive, \
                     the rows it held back come through)"
                ),
                format!(
                    "create its replacement in this migration (CREATE POLICY ... ON {name}), or \
                     change it with ALTER POLICY {policy} ON {name}; if it is meant to go, say \
                     so: -- backstop:ignore BS507 <why>"
                ),
            )
            .subject(Subject::Policy { table: table.clone(), name: policy.clone() }),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::{check, Code, Input, Options};

    fn bs507(files: &[(&str, &str)]) -> usize {
        let inputs: Vec<Input<'_>> = files.iter().map(|(p, t)| Input::file(p, t)).collect();
        check(&inputs, &Options::default()).findings.iter().filter(|f| f.code == Code::BS507).count()
    }

    #[test]
    fn a_drop_with_no_replacement_is_named_and_one_with_a_replacement_is_not() {
        let drop = "DROP POLICY notes_own ON notes;";
        assert_eq!(bs507(&[("1.sql", drop)]), 1);
        let again = "CREATE POLICY notes_own ON notes USING (user_id = 2);";
        assert_eq!(bs507(&[("1.sql", drop), ("2.sql", again)]), 0);
        assert_eq!(bs507(&[("1.sql", &format!("{drop}\n{again}"))]), 0);
        // A replacement before the drop does not replace it.
        assert_eq!(bs507(&[("1.sql", &format!("{again}\n{drop}"))]), 1);
        // Nor does a policy on another table.
        assert_eq!(bs507(&[("1.sql", drop), ("2.sql", "CREATE POLICY f ON files USING (true);")]), 1);
        assert_eq!(bs507(&[("1.sql", drop), ("2.sql", "DROP TABLE notes;")]), 0);
    }
}
