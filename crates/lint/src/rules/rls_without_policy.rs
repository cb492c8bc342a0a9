//! BS505: row level security turned on with no policy.

use pg_query::protobuf::AlterTableType;

use crate::context::{Alter, Cx, Hit};
use crate::model::{Impact, Probability, Subject};
use crate::rules::{Code, Family, Meta, Phase};
use backstop_sql::stmt::{display_table, same_table};

/// **What it finds:** `ALTER TABLE t ENABLE ROW LEVEL SECURITY` where no
/// migration of the run creates a policy on `t` and (with a database URL)
/// `t` has none on the server either.
///
/// **Why it hurts:** with row level security on and no policy, PostgreSQL
/// denies every row: every role that neither owns the table nor has
/// `BYPASSRLS` reads nothing from it and cannot write to it. The
/// application's role (Supabase's `anon` and `authenticated`) sees an
/// empty table and its inserts fail, with no error at deploy time.
///
/// **Instead:** create the policies in the same migration (`CREATE POLICY
/// t_select_own ON t FOR SELECT USING (user_id = ...)`). Where only the
/// owner or a role that bypasses row level security (Supabase's
/// `service_role`) may read the table, that is the intent: say so with
/// `-- backstop:ignore BS505 <why>`.
pub const META: Meta = Meta {
    name: "rls-without-policy",
    family: Family::Security,
    probability: Probability::Medium,
    impact: Impact::Medium,
    risk: "every row hidden from the application's roles",
    mitigation: "Create the table's policies in the same migration that enables row level security",
    phase: Phase::Statements,
};

pub fn check(cx: &Cx<'_>, out: &mut Vec<Hit>) {
    let run = cx.run;
    for Alter { stmt, rv, table, k, kind, .. } in cx.table_alters() {
        if kind != AlterTableType::AtEnableRowSecurity {
            continue;
        }
        // A policy anywhere in the run counts: files are often split into
        // "enable" and "policies".
        let has_policy = run
            .policies
            .iter()
            .any(|p| same_table(&p.table, &table) && (p.file == cx.file || cx.opts.sequential));
        if has_policy || run.dropped_later((cx.file, stmt.index), &table, cx.opts.sequential) {
            continue;
        }
        let name = display_table(&table);
        let hit = Hit::new(
            Code::BS505,
            stmt,
            cx.alter_cmd(stmt, Some(rv), k),
            format!(
                "{name} gets row level security and no policy: every role that neither owns it \
                 nor bypasses row level security reads no row of it and cannot write to it"
            ),
            format!(
                "add the policies in this migration (CREATE POLICY {0}_select_own ON {name} FOR \
                 SELECT USING (...)); if only the owner or a role with BYPASSRLS reads it, say so: \
                 -- backstop:ignore BS505 <why>",
                table.name
            ),
        )
        .subject(Subject::RowPolicies { table: table.clone() });
        out.push(hit);
    }
}

#[cfg(test)]
mod tests {
    use crate::{check, Code, Input, Options};

    fn bs505(files: &[(&str, &str)]) -> Vec<(String, usize)> {
        let inputs: Vec<Input<'_>> = files.iter().map(|(p, t)| Input::file(p, t)).collect();
        let report = check(&inputs, &Options::default());
        report.findings.iter().filter(|f| f.code == Code::BS505).map(|f| (f.file.clone(), f.line)).collect()
    }

    #[test]
    fn rls_with_no_policy_in_the_run_is_named_and_a_policy_anywhere_in_it_clears_it() {
        let enable = "CREATE TABLE notes (id int, user_id int);\nALTER TABLE notes ENABLE ROW LEVEL SECURITY;";
        assert_eq!(bs505(&[("1.sql", enable)]), [("1.sql".to_string(), 2)]);
        let policy = "CREATE POLICY notes_own ON notes USING (user_id = 1);";
        assert!(bs505(&[("1.sql", enable), ("2.sql", policy)]).is_empty());
        // A work table the run drops again holds no one's rows.
        assert!(bs505(&[("1.sql", enable), ("2.sql", "DROP TABLE notes;")]).is_empty());
        // Another table's policy is not this table's.
        let other = "CREATE POLICY files_own ON files USING (true);";
        assert_eq!(bs505(&[("1.sql", enable), ("2.sql", other)]).len(), 1);
    }
}
