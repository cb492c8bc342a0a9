//! BS405: a statement certain to fail where it runs.

use pg_query::NodeEnum;

use crate::context::{runs_after, Cx, Hit};
use crate::model::{Impact, Probability};
use crate::rules::{Code, Family, Meta, Phase};
use crate::stmt::display_table;

/// **What it finds:** a statement that cannot succeed. From the SQL alone:
/// `CREATE TABLE t` (without `IF NOT EXISTS`) where an earlier statement
/// of the run already created `t` and did not drop it; an `UPDATE` that
/// sets one column twice, or an `INSERT` that lists one column twice
/// (squawk's `ban-duplicate-column-assignments`). With a database
/// URL, every statement of the pending migrations that fails when they
/// run, as `migrate` runs them, on a copy of the database's schema (the
/// copy a deploy keeps, never the database itself): the server's own
/// error, with the statement and its place (a foreign key to a column
/// that does not exist, a table that already exists, a migration another
/// tool already ran, an object a later statement needs that is gone).
///
/// **Why it hurts:** the migration fails on that statement every time.
/// Inside a transaction nothing is lost, but the deploy is stopped after
/// its backup and gates, at the moment it was meant to ship; a
/// no-transaction migration is left half applied. NO-GO.
///
/// **Instead:** fix the statement so that it runs on the database as it
/// is: the error says what is missing or already there. Where the copy
/// cannot stand for the database (an object only production has), say
/// why and accept the risk for one run: `backstop migrate --accept-risk
/// BS405`.
pub const META: Meta = Meta {
    name: "fails-on-database",
    family: Family::Robustness,
    probability: Probability::Certain,
    impact: Impact::Critical,
    risk: "the migration fails on this statement",
    mitigation: "Fix the statement so that it runs on the database as it is",
    phase: Phase::Statements,
};

pub fn check(cx: &Cx<'_>, out: &mut Vec<Hit>) {
    created_twice(cx, out);
    assigned_twice(cx, out);
}

/// `UPDATE ... SET a = 1, a = 2` and `INSERT INTO t (a, a)`: PostgreSQL
/// refuses both before running anything. Assignments to parts of one
/// column (`SET arr[1] = 1, arr[2] = 2`, `SET c.x = 1, c.y = 2`) are
/// merged by the server and are no finding.
fn assigned_twice(cx: &Cx<'_>, out: &mut Vec<Hit>) {
    for stmt in &cx.stmts {
        let (targets, error) = match stmt.node {
            NodeEnum::UpdateStmt(u) => (&u.target_list, "multiple assignments to same column"),
            NodeEnum::InsertStmt(i) => (&i.cols, "specified more than once"),
            _ => continue,
        };
        let targets: Vec<&pg_query::protobuf::ResTarget> = targets
            .iter()
            .filter_map(|t| match t.node.as_ref() {
                Some(NodeEnum::ResTarget(r)) => Some(&**r),
                _ => None,
            })
            .collect();
        for (k, t) in targets.iter().enumerate() {
            let twice = targets[..k]
                .iter()
                .any(|e| e.name == t.name && (e.indirection.is_empty() || t.indirection.is_empty()));
            if !twice {
                continue;
            }
            let column = &t.name;
            let message = if matches!(stmt.node, NodeEnum::UpdateStmt(_)) {
                format!("{column} is set twice in this UPDATE: PostgreSQL refuses it with \"{error} \\\"{column}\\\"\"")
            } else {
                format!("{column} is listed twice in this INSERT: PostgreSQL refuses it with \"column \\\"{column}\\\" {error}\"")
            };
            out.push(Hit::new(
                Code::BS405,
                stmt,
                cx.token_at(stmt, t.location),
                message,
                format!("keep one assignment to {column}"),
            ));
        }
    }
}

/// `CREATE TABLE t` where an earlier statement of the run made `t`.
fn created_twice(cx: &Cx<'_>, out: &mut Vec<Hit>) {
    for stmt in &cx.stmts {
        let NodeEnum::CreateStmt(c) = stmt.node else { continue };
        let Some(rv) = c.relation.as_ref().filter(|_| !c.if_not_exists) else { continue };
        let table = Cx::rel(rv);
        // Written alike (an unqualified name is public's), created before,
        // and still there by the batch's account (not dropped or renamed).
        let schema = |t: &crate::RelationName| t.schema.clone().unwrap_or_else(|| "public".into());
        let before = cx.run.created_tables.iter().any(|(file, at, t)| {
            let earlier = runs_after((cx.file, stmt.index), (*file, *at), cx.opts.sequential);
            earlier && t.name == table.name && schema(t) == schema(&table)
        });
        if !before || !cx.is_new(stmt.index, &table) {
            continue;
        }
        let name = display_table(&table);
        out.push(Hit::new(
            Code::BS405,
            stmt,
            cx.token_at(stmt, rv.location),
            format!("{name} is created again: an earlier statement of this run created it, so CREATE TABLE fails with \"relation already exists\""),
            format!("drop the second CREATE TABLE {name}, or change it to ALTER TABLE for the columns it adds"),
        ));
    }
}

#[cfg(test)]
mod tests {
    use crate::{check, Code, Input, Options};

    fn bs405(files: &[(&str, &str)]) -> Vec<(String, usize)> {
        let inputs: Vec<Input<'_>> = files.iter().map(|(p, t)| Input::file(p, t)).collect();
        let report = check(&inputs, &Options::default());
        report.findings.iter().filter(|f| f.code == Code::BS405).map(|f| (f.file.clone(), f.line)).collect()
    }

    #[test]
    fn a_table_created_twice_in_the_run_fails_and_a_drop_between_clears_it() {
        let t = "CREATE TABLE users (id int);";
        assert_eq!(bs405(&[("1.sql", t), ("2.sql", t)]), [("2.sql".to_string(), 1)]);
        assert!(bs405(&[("1.sql", t), ("2.sql", &format!("DROP TABLE users;\n{t}"))]).is_empty());
        assert!(bs405(&[("1.sql", t), ("2.sql", "CREATE TABLE IF NOT EXISTS users (id int);")]).is_empty());
        // Another schema's table of the same name is another table.
        assert!(bs405(&[("1.sql", t), ("2.sql", "CREATE TABLE audit.users (id int);")]).is_empty());
    }

    #[test]
    fn a_column_assigned_twice_fails_and_parts_of_one_column_do_not() {
        let twice = "UPDATE users\nSET name = 'a',\n    name = 'b';";
        assert_eq!(bs405(&[("1.sql", twice)]), [("1.sql".to_string(), 3)]);
        assert_eq!(bs405(&[("1.sql", "INSERT INTO users (id, id) VALUES (1, 2);")]).len(), 1);
        assert_eq!(bs405(&[("1.sql", "UPDATE t SET (a, b) = (1, 2), a = 3;")]).len(), 1);
        assert!(bs405(&[("1.sql", "UPDATE t SET a = 1, b = 2;")]).is_empty());
        assert!(bs405(&[("1.sql", "UPDATE t SET arr[1] = 1, arr[2] = 2;")]).is_empty());
        assert!(bs405(&[("1.sql", "INSERT INTO t (a, b) VALUES (1, 2);")]).is_empty());
    }
}
