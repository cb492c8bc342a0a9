//! BS508: row level security turned off on a table that had it.

use pg_query::protobuf::AlterTableType;

use crate::context::{Alter, Cx, Hit};
use crate::model::{Impact, Probability, Subject};
use crate::rules::{Code, Family, Meta, Phase};
use backstop_sql::stmt::display_table;

/// **What it finds:** `ALTER TABLE t DISABLE ROW LEVEL SECURITY` on a table
/// the run did not create, unless the run enables it again later. With a
/// database URL, a table whose row level security is already off is no
/// finding.
///
/// **Why it hurts:** the table's policies stop applying at once: every
/// role with `SELECT` on it reads every row, every user's. It is often a
/// leftover of a data fix ("disable, backfill, enable") whose last step
/// was lost, and nothing fails to tell anyone.
///
/// **Instead:** keep row level security on and run the data fix as a role
/// that bypasses it (the table's owner, or one with `BYPASSRLS`); where it
/// must be off for a step, enable it again in the same migration.
pub const META: Meta = Meta {
    name: "rls-disabled",
    family: Family::Security,
    probability: Probability::High,
    impact: Impact::High,
    risk: "every user's rows readable by every role",
    mitigation: "Keep row level security on; run data fixes as a role that bypasses it",
    phase: Phase::Statements,
};

pub fn check(cx: &Cx<'_>, out: &mut Vec<Hit>) {
    for Alter { stmt, rv, table, k, kind, .. } in cx.existing_table_alters() {
        if kind != AlterTableType::AtDisableRowSecurity {
            continue;
        }
        let again = AlterTableType::AtEnableRowSecurity;
        if cx.run.rls_later((cx.file, stmt.index), &table, again, cx.opts.sequential) {
            continue;
        }
        let name = display_table(&table);
        out.push(
            Hit::new(
                Code::BS508,
                stmt,
                cx.alter_cmd(stmt, Some(rv), k),
                format!(
                    "row level security is turned off on {name}: its policies stop applying, and \
                     every role that can read it reads every user's rows"
                ),
                format!(
                    "keep it on and run the data change as a role that bypasses it; if it must \
                     be off for a step, end this migration with ALTER TABLE {name} ENABLE ROW \
                     LEVEL SECURITY"
                ),
            )
            .subject(Subject::RowPolicies { table }),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::{check, Code, Input, Options};

    fn bs508(files: &[(&str, &str)]) -> usize {
        let inputs: Vec<Input<'_>> = files.iter().map(|(p, t)| Input::file(p, t)).collect();
        check(&inputs, &Options::default()).findings.iter().filter(|f| f.code == Code::BS508).count()
    }

    #[test]
    fn turned_off_is_named_unless_the_run_turns_it_on_again() {
        let off = "ALTER TABLE notes DISABLE ROW LEVEL SECURITY;";
        assert_eq!(bs508(&[("1.sql", off)]), 1);
        let on = "ALTER TABLE notes ENABLE ROW LEVEL SECURITY;";
        assert_eq!(bs508(&[("1.sql", &format!("{off}\nUPDATE notes SET body = '';\n{on}"))]), 0);
        assert_eq!(bs508(&[("1.sql", off), ("2.sql", on)]), 0);
        // Turned on before it is turned off: off it stays.
        assert_eq!(bs508(&[("1.sql", &format!("{on}\n{off}"))]), 1);
        // A table the run makes had no rows to protect.
        assert_eq!(bs508(&[("1.sql", &format!("CREATE TABLE notes (id int);\n{off}"))]), 0);
    }
}
