//! BS405: a statement certain to fail where it runs.

use pg_query::protobuf::{AlterTableType, ConstrType, Constraint, ObjectType};
use pg_query::NodeEnum;

use crate::context::{runs_after, Cx, Hit};
use crate::model::{Impact, Probability};
use crate::rules::{Code, Family, Meta, Phase};
use backstop_sql::stmt::{alter_cmds, display_table, string_value, Stmt};

/// **What it finds:** a statement that cannot succeed. From the SQL alone:
/// `CREATE TABLE t` (without `IF NOT EXISTS`) where an earlier statement
/// of the run already created `t` and did not drop it; an `UPDATE` that
/// sets one column twice, or an `INSERT` that lists one column twice
/// (squawk's `ban-duplicate-column-assignments`); a column named that a
/// table the run made does not have at that point (a foreign key to it,
/// an index on it, an `ALTER COLUMN`, a rename or a drop of it), or one
/// added twice. With a database
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
    columns_as_made(cx, out);
}

/// Columns named against the history's own picture of a table the run
/// made: one that is not there (a key, an index, an `ALTER COLUMN`, a
/// rename, a drop without `IF EXISTS`), or one added twice. Only for
/// tables whose every column the run wrote itself (see
/// [`crate::batch_names::Batch::columns`]).
fn columns_as_made(cx: &Cx<'_>, out: &mut Vec<Hit>) {
    for stmt in &cx.stmts {
        let mut found = Vec::new();
        match stmt.node {
            NodeEnum::AlterTableStmt(a) => {
                let Some(rv) = &a.relation else { continue };
                let table = Cx::rel(rv);
                let Some(mut columns) = cx.batch.columns(cx.file, stmt.index, &table) else {
                    // Keys it adds may still point at a table the run made.
                    for (_, cmd, _) in alter_cmds(a) {
                        let ks: Vec<&Constraint> = match cmd.def.as_ref().and_then(|d| d.node.as_ref()) {
                            Some(NodeEnum::Constraint(k)) => vec![&**k],
                            Some(NodeEnum::ColumnDef(col)) => col.constraints.iter().filter_map(constraint).collect(),
                            _ => Vec::new(),
                        };
                        for k in ks {
                            found.extend(referenced_missing(cx, stmt, k, None));
                        }
                    }
                    push_all(cx, stmt, found, out);
                    continue;
                };
                let name = display_table(&table);
                for (_, cmd, kind) in alter_cmds(a) {
                    let has = |c: &str, columns: &[&str]| columns.contains(&c);
                    match kind {
                        AlterTableType::AtAddColumn => {
                            let Some(NodeEnum::ColumnDef(col)) = cmd.def.as_ref().and_then(|d| d.node.as_ref()) else { continue };
                            if has(&col.colname, &columns) && !cmd.missing_ok {
                                found.push((col.location, format!("column \"{}\" of relation \"{}\" already exists", col.colname, table.name)));
                            }
                            columns.push(&col.colname);
                            for k in col.constraints.iter().filter_map(constraint) {
                                found.extend(referenced_missing(cx, stmt, k, Some((&table, &columns))));
                            }
                        }
                        AlterTableType::AtDropColumn => {
                            if !has(&cmd.name, &columns) && !cmd.missing_ok {
                                found.push((-1, format!("column \"{}\" of relation \"{}\" does not exist", cmd.name, table.name)));
                            }
                            columns.retain(|c| *c != cmd.name);
                        }
                        AlterTableType::AtAlterColumnType
                        | AlterTableType::AtSetNotNull
                        | AlterTableType::AtDropNotNull
                        | AlterTableType::AtColumnDefault
                            if !has(&cmd.name, &columns) =>
                        {
                            found.push((-1, format!("column \"{}\" of relation \"{}\" does not exist", cmd.name, table.name)));
                        }
                        AlterTableType::AtAddConstraint => {
                            let Some(NodeEnum::Constraint(k)) = cmd.def.as_ref().and_then(|d| d.node.as_ref()) else { continue };
                            for c in names(&k.fk_attrs).into_iter().chain(names(&k.keys)) {
                                if !has(c, &columns) {
                                    found.push((k.location, format!("column \"{c}\" named in constraint does not exist in {name}")));
                                }
                            }
                            found.extend(referenced_missing(cx, stmt, k, Some((&table, &columns))));
                        }
                        _ => {}
                    }
                }
            }
            NodeEnum::RenameStmt(r) if r.rename_type() == ObjectType::ObjectColumn => {
                let Some(rv) = &r.relation else { continue };
                let table = Cx::rel(rv);
                let Some(columns) = cx.batch.columns(cx.file, stmt.index, &table) else { continue };
                if !columns.contains(&r.subname.as_str()) && !r.missing_ok {
                    found.push((-1, format!("column \"{}\" does not exist", r.subname)));
                } else if columns.contains(&r.newname.as_str()) {
                    found.push((-1, format!("column \"{}\" of relation \"{}\" already exists", r.newname, table.name)));
                }
            }
            NodeEnum::IndexStmt(i) => {
                let Some(rv) = &i.relation else { continue };
                let table = Cx::rel(rv);
                let Some(columns) = cx.batch.columns(cx.file, stmt.index, &table) else { continue };
                for p in &i.index_params {
                    if let Some(NodeEnum::IndexElem(e)) = p.node.as_ref() {
                        if !e.name.is_empty() && !columns.contains(&e.name.as_str()) {
                            found.push((-1, format!("column \"{}\" does not exist", e.name)));
                        }
                    }
                }
            }
            NodeEnum::CreateStmt(c) => {
                let Some(rv) = &c.relation else { continue };
                let table = Cx::rel(rv);
                let own: Vec<&str> = c
                    .table_elts
                    .iter()
                    .filter_map(|e| match e.node.as_ref() {
                        Some(NodeEnum::ColumnDef(col)) => Some(col.colname.as_str()),
                        _ => None,
                    })
                    .collect();
                for e in &c.table_elts {
                    let ks: Vec<&Constraint> = match e.node.as_ref() {
                        Some(NodeEnum::ColumnDef(col)) => col.constraints.iter().filter_map(constraint).collect(),
                        Some(NodeEnum::Constraint(k)) => vec![&**k],
                        _ => Vec::new(),
                    };
                    for k in ks {
                        found.extend(referenced_missing(cx, stmt, k, Some((&table, &own))));
                    }
                }
            }
            _ => continue,
        }
        push_all(cx, stmt, found, out);
    }
}

fn constraint(n: &pg_query::protobuf::Node) -> Option<&Constraint> {
    match n.node.as_ref() {
        Some(NodeEnum::Constraint(k)) => Some(&**k),
        _ => None,
    }
}

fn names(nodes: &[pg_query::protobuf::Node]) -> Vec<&str> {
    nodes.iter().filter_map(string_value).collect()
}

/// A foreign key's referenced columns that its table, made by the run,
/// does not have. `this` is the table the statement makes or changes,
/// with its columns, for a key that points at its own table.
fn referenced_missing(
    cx: &Cx<'_>,
    stmt: &Stmt<'_>,
    k: &Constraint,
    this: Option<(&crate::RelationName, &[&str])>,
) -> Vec<(i32, String)> {
    if k.contype() != ConstrType::ConstrForeign {
        return Vec::new();
    }
    let Some(pk) = &k.pktable else { return Vec::new() };
    let referenced = Cx::rel(pk);
    let columns = match this {
        Some((t, columns)) if backstop_sql::stmt::same_table(t, &referenced) => Some(columns.to_vec()),
        _ => cx.batch.columns(cx.file, stmt.index, &referenced),
    };
    let Some(columns) = columns else { return Vec::new() };
    names(&k.pk_attrs)
        .into_iter()
        .filter(|c| !columns.contains(c))
        .map(|c| (k.location, format!("column \"{c}\" referenced in foreign key constraint does not exist")))
        .collect()
}

fn push_all(cx: &Cx<'_>, stmt: &Stmt<'_>, found: Vec<(i32, String)>, out: &mut Vec<Hit>) {
    for (location, error) in found {
        out.push(Hit::new(
            Code::BS405,
            stmt,
            if location < 0 { stmt.span() } else { cx.clause_at(stmt, location) },
            format!("this statement fails: {error}, by the history's own account of the table"),
            "name a column the table has at this point (the history before this statement made it without it)",
        ));
    }
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
        // Renamed away (a swap): the name is free.
        let swap = format!("ALTER TABLE users RENAME TO users_old;\n{t}");
        assert!(bs405(&[("1.sql", t), ("2.sql", &swap)]).is_empty());
        // Renamed away and back: taken again.
        let renamed_back = format!("ALTER TABLE users RENAME TO people;\nALTER TABLE people RENAME TO users;\n{t}");
        assert_eq!(bs405(&[("1.sql", t), ("2.sql", &renamed_back)]).len(), 1);
        assert!(bs405(&[("1.sql", t), ("2.sql", "CREATE TABLE IF NOT EXISTS users (id int);")]).is_empty());
        // Another schema's table of the same name is another table.
        assert!(bs405(&[("1.sql", t), ("2.sql", "CREATE TABLE audit.users (id int);")]).is_empty());
        // Moved to another schema: the name is free; moved back, taken.
        let moved = "CREATE SCHEMA archive;\nALTER TABLE users SET SCHEMA archive;\n";
        assert!(bs405(&[("1.sql", t), ("2.sql", &format!("{moved}{t}"))]).is_empty());
        let back = format!("{moved}ALTER TABLE archive.users SET SCHEMA public;\n{t}");
        assert_eq!(bs405(&[("1.sql", t), ("2.sql", &back)]), [("2.sql".to_string(), 4)]);
    }

    #[test]
    fn columns_a_table_the_run_made_lacks_fail_and_live_tables_are_not_judged() {
        let users = "CREATE TABLE users (id bigint PRIMARY KEY, email text);";
        let fails = |sql: &str| bs405(&[("1.sql", users), ("2.sql", sql)]).len();
        assert_eq!(fails("CREATE TABLE posts (id int, author uuid REFERENCES users (uuid));"), 1);
        assert_eq!(fails("CREATE TABLE posts (id int, author bigint REFERENCES users (id));"), 0);
        // From a table the database had to one the run made.
        assert_eq!(fails("ALTER TABLE orders ADD COLUMN buyer uuid REFERENCES users (uuid);"), 1);
        assert_eq!(fails("ALTER TABLE users ADD COLUMN email text;"), 1);
        assert_eq!(fails("ALTER TABLE users ADD COLUMN IF NOT EXISTS email text;"), 0);
        assert_eq!(fails("ALTER TABLE users DROP COLUMN name;"), 1);
        assert_eq!(fails("ALTER TABLE users DROP COLUMN IF EXISTS name;"), 0);
        assert_eq!(fails("CREATE INDEX ON users (name);"), 1);
        assert_eq!(fails("ALTER TABLE users RENAME COLUMN name TO full_name;"), 1);
        assert_eq!(fails("ALTER TABLE users ALTER COLUMN name SET NOT NULL;"), 1);
        // Changes the history makes are followed, in order.
        assert_eq!(fails("ALTER TABLE users ADD COLUMN name text;\nCREATE INDEX ON users (name);"), 0);
        assert_eq!(fails("ALTER TABLE users RENAME COLUMN email TO mail;\nCREATE INDEX ON users (email);"), 1);
        assert_eq!(fails("ALTER TABLE users RENAME TO people;\nCREATE INDEX ON people (email);"), 0);
        assert_eq!(fails("ALTER TABLE users ADD COLUMN a int, DROP COLUMN a, DROP COLUMN a;"), 1);
        // A table the database had, or one a DO block may have changed, is not judged.
        assert_eq!(bs405(&[("1.sql", "CREATE INDEX ON users (name);")]).len(), 0);
        let opaque = "DO $$ BEGIN EXECUTE 'ALTER TABLE users ADD COLUMN name text'; END $$;\nCREATE INDEX ON users (name);";
        assert_eq!(fails(opaque), 0);
        let like = "CREATE TABLE t (LIKE users);\nCREATE INDEX ON t (email);";
        assert_eq!(bs405(&[("1.sql", users), ("2.sql", like)]).len(), 0);
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
