//! BS204: SET NOT NULL on a column of an existing table.

use pg_query::protobuf::{AlterTableType, ConstrType};
use pg_query::NodeEnum;

use crate::context::{runs_after, Alter, Cx, Hit, RunCheck, RunFacts};
use backstop_sql::stmt::{display_table};
use crate::model::{Impact, Probability, Subject};
use crate::rules::{Code, Family, Meta, Phase};

/// **What it finds:** `ALTER TABLE ... ALTER COLUMN ... SET NOT NULL` on a
/// table the migration did not create.
///
/// **Why it hurts:** PostgreSQL scans the whole table to prove there is no
/// NULL, holding an ACCESS EXCLUSIVE lock: every read and write of the
/// table waits for the scan. If a NULL is found the migration fails at
/// the end of that scan.
///
/// **Instead:** in one migration `ADD CONSTRAINT c CHECK (col IS NOT NULL)
/// NOT VALID`; in the next `VALIDATE CONSTRAINT c` (no blocking lock); then
/// `SET NOT NULL`, which on PostgreSQL 12+ uses the validated constraint
/// and skips the scan, and `DROP CONSTRAINT c`. Such a constraint made
/// valid earlier in the run (added without `NOT VALID`, or validated)
/// clears the finding; with a database URL, `backstop check` sees one
/// the table already has.
///
/// `ADD CONSTRAINT … PRIMARY KEY USING INDEX` sets NOT NULL the same way
/// on each column of the index that is nullable: only the database knows
/// which are, so with a database URL `backstop check` reports it where
/// one is (and no validated CHECK proves it), and says which.
pub const META: Meta = Meta {
    name: "set-not-null",
    family: Family::Locks,
    probability: Probability::Medium,
    impact: Impact::High,
    risk: "table scanned under ACCESS EXCLUSIVE to set NOT NULL",
    mitigation: "Validate a CHECK (col IS NOT NULL) constraint first, then SET NOT NULL",
    phase: Phase::Statements,
};

/// Takes in the CHECK constraints one file adds and validates, for the run.
pub(crate) fn collect(cx: &Cx<'_>, run: &mut RunFacts) {
    for a in cx.table_alters() {
        let at = |name: &str, expr, valid| RunCheck {
            file: cx.file,
            stmt: a.stmt.index,
            table: a.table.clone(),
            name: name.to_string(),
            expr,
            valid,
        };
        match (a.kind, a.cmd.def.as_ref().and_then(|d| d.node.as_ref())) {
            (AlterTableType::AtAddConstraint, Some(NodeEnum::Constraint(c)))
                if c.contype() == ConstrType::ConstrCheck =>
            {
                run.checks.push(at(&c.conname, c.raw_expr.as_deref().cloned(), !c.skip_validation));
            }
            (AlterTableType::AtValidateConstraint, _) => run.checks.push(at(&a.cmd.name, None, true)),
            _ => {}
        }
    }
}

/// Whether a valid `CHECK (column IS NOT NULL)` on `table` comes before
/// statement `at` in the run: added valid, or added `NOT VALID` and
/// validated, both before it.
fn proved_before(cx: &Cx<'_>, at: (usize, usize), table: &crate::RelationName, column: &str) -> bool {
    let sequential = cx.opts.sequential;
    let before = |c: &RunCheck| runs_after(at, (c.file, c.stmt), sequential);
    let on = |c: &RunCheck| backstop_sql::stmt::same_table(&c.table, table);
    cx.run.checks.iter().filter(|c| on(c) && before(c)).any(|c| {
        let Some(expr) = &c.expr else { return false };
        if !backstop_sql::stmt::proves_not_null(Some(expr), column) {
            return false;
        }
        c.valid
            || cx.run.checks.iter().any(|v| {
                v.expr.is_none()
                    && v.name == c.name
                    && on(v)
                    && before(v)
                    && runs_after((v.file, v.stmt), (c.file, c.stmt), sequential)
            })
    })
}

/// The `PRIMARY KEY USING INDEX` of `cmd`, where it is one: the index's
/// name.
fn key_index(kind: AlterTableType, cmd: &pg_query::protobuf::AlterTableCmd) -> Option<&str> {
    match (kind, cmd.def.as_ref().and_then(|d| d.node.as_ref())) {
        (AlterTableType::AtAddConstraint, Some(NodeEnum::Constraint(c)))
            if c.contype() == ConstrType::ConstrPrimary && !c.indexname.is_empty() =>
        {
            Some(c.indexname.as_str())
        }
        _ => None,
    }
}

pub fn check(cx: &Cx<'_>, out: &mut Vec<Hit>) {
    for Alter { stmt, rv, table, k, cmd, kind, .. } in cx.existing_table_alters() {
        if let Some(index) = key_index(kind, cmd) {
            // Its columns, where an index of the run by that name says.
            let made = cx.run.indexes.iter().rev().find(|i| i.name.as_deref() == Some(index));
            let columns = made.map(|i| i.columns.clone()).unwrap_or_default();
            let proved = |c: &String| proved_before(cx, (cx.file, stmt.index), &table, c);
            if !columns.is_empty() && columns.iter().all(proved) {
                continue;
            }
            let mut hit = Hit::new(
                Code::BS204,
                stmt,
                cx.alter_cmd(stmt, Some(rv), k),
                format!(
                    "PRIMARY KEY USING INDEX {index} sets NOT NULL on each nullable column of the index: {} is scanned under an ACCESS EXCLUSIVE lock",
                    display_table(&table)
                ),
                "make each key column NOT NULL first without a scan (ADD CONSTRAINT … CHECK (col IS NOT NULL) NOT VALID, VALIDATE it in a later migration, SET NOT NULL), then ADD PRIMARY KEY USING INDEX",
            )
            .subject(Subject::KeyIndex { table: table.clone(), index: index.to_string(), columns });
            // Only the database knows whether a column is nullable.
            hit.latent = true;
            out.push(hit);
            continue;
        }
        if kind != AlterTableType::AtSetNotNull {
            continue;
        }
        if proved_before(cx, (cx.file, stmt.index), &table, &cmd.name) {
            continue;
        }
        out.push(
            Hit::new(
                Code::BS204,
                stmt,
                cx.alter_cmd(stmt, Some(rv), k),
                format!(
                    "SET NOT NULL on {}.{} scans the whole table under an ACCESS EXCLUSIVE lock",
                    display_table(&table),
                    cmd.name
                ),
                format!(
                    "first ADD CONSTRAINT {0}_not_null CHECK ({0} IS NOT NULL) NOT VALID, VALIDATE it in a later migration, then SET NOT NULL",
                    cmd.name
                ),
            )
            .subject(Subject::NotNull { table: table.clone(), column: cmd.name.clone() }),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::{check, Code, Input, Options};

    fn found(files: &[&str]) -> usize {
        let names: Vec<String> = (1..=files.len()).map(|i| format!("{i}.sql")).collect();
        let inputs: Vec<Input<'_>> =
            files.iter().zip(&names).map(|(sql, name)| Input::file(name, sql)).collect();
        let report = check(&inputs, &Options::default());
        report.findings.iter().filter(|f| f.code == Code::BS204).count()
    }

    /// Regression: a SET NOT NULL after a validated `CHECK (col IS NOT
    /// NULL)` earlier in the run was called a full scan, though
    /// PostgreSQL uses the constraint and skips it.
    #[test]
    fn a_not_null_check_made_valid_earlier_in_the_run_clears_the_scan() {
        let set = "ALTER TABLE users ALTER COLUMN email SET NOT NULL;";
        assert_eq!(found(&[set]), 1);
        let not_valid = "ALTER TABLE users ADD CONSTRAINT e_nn CHECK (email IS NOT NULL) NOT VALID;";
        let validate = "ALTER TABLE users VALIDATE CONSTRAINT e_nn;";
        assert_eq!(found(&[not_valid, validate, set]), 0, "added, validated, then set");
        assert_eq!(found(&[&format!("{not_valid}\n{validate}\n{set}")]), 0, "in one file");
        assert_eq!(found(&[not_valid, set]), 1, "never validated: the scan stays");
        assert_eq!(found(&[set, not_valid, validate]), 1, "validated after: the scan stays");
        let valid = "ALTER TABLE users ADD CONSTRAINT e_nn CHECK (email IS NOT NULL AND email <> '');";
        assert_eq!(found(&[valid, set]), 0, "added valid");
        let other = "ALTER TABLE users ADD CONSTRAINT n_nn CHECK (name IS NOT NULL);";
        assert_eq!(found(&[other, set]), 1, "another column's check");
    }
}

#[cfg(test)]
mod key_index_tests {
    use crate::{check, Code, Input, Options};

    #[test]
    fn a_primary_key_using_an_index_is_only_a_probe_the_database_answers() {
        let sql = "ALTER TABLE t ADD CONSTRAINT t_pkey PRIMARY KEY USING INDEX t_id_key;";
        let report = check(&[Input::file("1.sql", sql)], &Options::default());
        assert!(report.findings.iter().all(|f| f.code != Code::BS204), "no finding without facts");
        assert_eq!(report.probes.iter().filter(|f| f.code == Code::BS204).count(), 1);
        // Its columns proved NOT NULL earlier in the run: not even a probe.
        let proved = [
            Input::file("1.sql", "CREATE UNIQUE INDEX CONCURRENTLY t_id_key ON t (id);"),
            Input::file("2.sql", "ALTER TABLE t ADD CONSTRAINT t_id_nn CHECK (id IS NOT NULL);"),
            Input::file("3.sql", sql),
        ];
        let report = check(&proved, &Options::default());
        assert!(report.probes.iter().all(|f| f.code != Code::BS204), "{:?}", report.probes);
    }
}
