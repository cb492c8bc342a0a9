//! BS601: a foreign key whose referencing columns have no index.

use pg_query::protobuf::{self, AlterTableType, ConstrType, ObjectType};
use pg_query::NodeEnum;

use crate::batch_names::Batch;
use crate::context::{Cx, Hit, IndexDef, RunFacts};
use crate::model::{Impact, Probability, Subject};
use crate::rules::{Code, Family, Meta, Phase};
use backstop_sql::stmt::{alter_cmds, display_table, same_table, string_value, Stmt};
use crate::RelationName;

/// **What it finds:** a `FOREIGN KEY` (or `REFERENCES`) whose referencing
/// columns are not the leading columns of an index, judged on the schema
/// the checked migrations leave behind: an index created later in the
/// batch serves it, and a foreign key whose table, column or constraint a
/// later migration drops is no finding. A partial index does not count. For a table that already
/// exists, a database URL lets the check look at its existing indexes.
///
/// **Why it hurts:** PostgreSQL indexes the referenced key, not the
/// referencing columns. Every `DELETE` (or key `UPDATE`) on the referenced
/// table must find the referencing rows: without an index that is a
/// sequential scan of the referencing table for each row deleted, and `ON
/// DELETE CASCADE` holds locks on it meanwhile. Joins on the key are slow
/// too. It grows with the table, so it shows up months later.
///
/// **Instead:** `CREATE INDEX ... ON child (parent_id)` in the same
/// migration (for a new table), or `CONCURRENTLY` in a no-transaction
/// migration for an existing one.
pub const META: Meta = Meta {
    name: "fk-without-index",
    family: Family::Performance,
    probability: Probability::Low,
    impact: Impact::Medium,
    risk: "foreign key without an index on its columns",
    mitigation: "Index the referencing columns of every foreign key",
    phase: Phase::Statements,
};

struct ForeignKey<'s> {
    table: RelationName,
    /// The constraint's name, written or as PostgreSQL makes it.
    name: String,
    columns: Vec<String>,
    referenced: String,
    stmt: &'s Stmt<'s>,
    location: i32,
}

fn names(nodes: &[protobuf::Node]) -> Vec<String> {
    nodes.iter().filter_map(string_value).map(str::to_string).collect()
}

fn constraints(nodes: &[protobuf::Node]) -> impl Iterator<Item = &protobuf::Constraint> {
    nodes.iter().filter_map(|n| match n.node.as_ref() {
        Some(NodeEnum::Constraint(c)) => Some(c.as_ref()),
        _ => None,
    })
}

fn referenced(c: &protobuf::Constraint) -> String {
    c.pktable.as_ref().map(|p| display_table(&Cx::rel(p))).unwrap_or_default()
}

/// Every constraint a statement adds, with its table and, for a column
/// constraint, its column.
fn each_constraint<'n>(
    node: &'n NodeEnum,
    mut f: impl FnMut(&'n protobuf::Constraint, RelationName, Option<&'n str>),
) {
    match node {
        NodeEnum::CreateStmt(c) => {
            let Some(rv) = &c.relation else { return };
            let table = Cx::rel(rv);
            for elt in &c.table_elts {
                match elt.node.as_ref() {
                    Some(NodeEnum::ColumnDef(col)) => {
                        for k in constraints(&col.constraints) {
                            f(k, table.clone(), Some(&col.colname));
                        }
                    }
                    Some(NodeEnum::Constraint(k)) => f(k, table.clone(), None),
                    _ => {}
                }
            }
        }
        NodeEnum::AlterTableStmt(a) => {
            let Some(rv) = &a.relation else { return };
            let table = Cx::rel(rv);
            for (_, cmd, kind) in alter_cmds(a) {
                match (kind, cmd.def.as_ref().and_then(|d| d.node.as_ref())) {
                    (AlterTableType::AtAddConstraint, Some(NodeEnum::Constraint(k))) => {
                        f(k, table.clone(), None)
                    }
                    (AlterTableType::AtAddColumn, Some(NodeEnum::ColumnDef(col))) => {
                        for k in constraints(&col.constraints) {
                            f(k, table.clone(), Some(&col.colname));
                        }
                    }
                    _ => {}
                }
            }
        }
        _ => {}
    }
}

/// Takes in the indexes one file creates and drops, for the run.
pub(crate) fn collect(cx: &Cx<'_>, run: &mut RunFacts) {
    for stmt in &cx.stmts {
        let at = |table, name: &str, columns, partial| IndexDef {
            file: cx.file,
            stmt: stmt.index,
            table,
            name: (!name.is_empty()).then(|| name.to_string()),
            columns,
            partial,
            final_table: None,
        };
        let mut index_of = |k: &protobuf::Constraint, table, column: Option<&str>| {
            if matches!(k.contype(), ConstrType::ConstrPrimary | ConstrType::ConstrUnique) {
                let columns = match column {
                    Some(col) => vec![col.to_string()],
                    None => names(&k.keys),
                };
                run.indexes.push(at(table, &k.conname, columns, false));
            }
        };
        match stmt.node {
            NodeEnum::IndexStmt(i) => {
                let Some(rv) = &i.relation else { continue };
                let mut columns = Vec::new();
                for p in &i.index_params {
                    match p.node.as_ref() {
                        Some(NodeEnum::IndexElem(e)) if !e.name.is_empty() => {
                            columns.push(e.name.clone())
                        }
                        _ => break,
                    }
                }
                run.indexes.push(at(Cx::rel(rv), &i.idxname, columns, i.where_clause.is_some()));
            }
            NodeEnum::AlterTableStmt(a) => {
                let Some(rv) = &a.relation else { continue };
                for (_, cmd, kind) in alter_cmds(a) {
                    if kind == AlterTableType::AtDropConstraint {
                        let dropped = (cx.file, stmt.index, Cx::rel(rv), cmd.name.clone());
                        run.dropped_constraints.push(dropped);
                    }
                }
                each_constraint(stmt.node, &mut index_of);
            }
            NodeEnum::DropStmt(d) if d.remove_type() == ObjectType::ObjectIndex => {
                for o in &d.objects {
                    if let Some(NodeEnum::List(l)) = o.node.as_ref() {
                        if let Some(name) = l.items.iter().filter_map(string_value).next_back() {
                            run.dropped_indexes.push((cx.file, stmt.index, name.to_string()));
                        }
                    }
                }
            }
            node => each_constraint(node, index_of),
        }
    }
}

/// Works out what became of each index once the whole run is done.
pub(crate) fn finish(run: &mut RunFacts, batch: &Batch) {
    let dropped = &run.dropped_indexes;
    for ix in &mut run.indexes {
        let dropped_later = ix.name.as_ref().is_some_and(|name| {
            dropped.iter().any(|(f, s, d)| (*f, *s) > (ix.file, ix.stmt) && d == name)
        });
        ix.final_table =
            if dropped_later { None } else { batch.fate(ix.file, ix.stmt, &ix.table) };
    }
}

pub fn check(cx: &Cx<'_>, out: &mut Vec<Hit>) {
    let mut fks: Vec<ForeignKey<'_>> = Vec::new();
    for stmt in &cx.stmts {
        each_constraint(stmt.node, |k, table, column| {
            if k.contype() == ConstrType::ConstrForeign {
                let columns = column.map_or_else(|| names(&k.fk_attrs), |c| vec![c.to_string()]);
                let name = match k.conname.as_str() {
                    // PostgreSQL's own name for it (ChooseConstraintName).
                    "" => format!("{}_{}_fkey", table.name, columns.join("_")),
                    written => written.to_string(),
                };
                fks.push(ForeignKey {
                    table,
                    name,
                    columns,
                    referenced: referenced(k),
                    stmt,
                    location: k.location,
                });
            }
        });
    }
    for fk in fks {
        if fk.columns.is_empty() {
            continue;
        }
        // The schema the run leaves behind: a table dropped later needs no
        // index, and an index made later serves.
        let Some(last) = cx.batch.fate(cx.file, fk.stmt.index, &fk.table) else { continue };
        // A column of the key dropped later drops the key with it.
        let Some(final_columns) = fk
            .columns
            .iter()
            .map(|c| cx.batch.column_fate(cx.file, fk.stmt.index, &fk.table, c).map(|(_, c)| c))
            .collect::<Option<Vec<String>>>()
        else {
            continue;
        };
        let dropped = cx.run.dropped_constraints.iter().any(|(f, s, t, name)| {
            *name == fk.name
                && (*f, *s) > (cx.file, fk.stmt.index)
                && (same_table(t, &fk.table) || same_table(t, &last))
        });
        if dropped {
            continue;
        }
        // An index made before a rename names the columns as they were;
        // one made after, as they are at the end.
        let leading = |ix: &IndexDef| {
            let n = fk.columns.len();
            ix.columns.len() >= n
                && (fk.columns.iter().all(|c| ix.columns[..n].contains(c))
                    || final_columns.iter().all(|c| ix.columns[..n].contains(c)))
        };
        let on_table: Vec<&IndexDef> = cx
            .run
            .indexes
            .iter()
            .filter(|ix| ix.final_table.as_ref().is_some_and(|t| same_table(t, &last)) && leading(ix))
            .collect();
        if on_table.iter().any(|ix| !ix.partial) {
            continue;
        }
        let table = display_table(&fk.table);
        let cols = fk.columns.join(", ");
        let mut message = format!(
            "foreign key {table}({cols}) → {} has no index on {table}({cols}): each DELETE on {} scans {table}",
            fk.referenced, fk.referenced
        );
        if let Some(partial) = on_table.iter().find_map(|ix| ix.name.as_deref()) {
            message.push_str(&format!("; the partial index {partial} does not serve it"));
        }
        let new = cx.is_new(fk.stmt.index, &fk.table) || matches!(fk.stmt.node, NodeEnum::CreateStmt(_));
        let mut hit = Hit::new(
            Code::BS601,
            fk.stmt,
            cx.clause_at(fk.stmt, fk.location),
            message,
            format!("CREATE INDEX ON {table} ({cols})"),
        );
        if !new {
            hit = hit.subject(Subject::ForeignKey { table: fk.table.clone(), columns: fk.columns.clone() });
        }
        out.push(hit);
    }
}

#[cfg(test)]
mod tests {
    use crate::{check, Code, Input, Options};

    /// Lines of BS601 findings per file, the files run as one batch (or,
    /// with `sequential` off, judged one by one).
    fn found(files: &[(&str, &str)], sequential: bool) -> Vec<(String, usize)> {
        let inputs: Vec<Input<'_>> = files.iter().map(|(p, t)| Input::file(p, t)).collect();
        let opts = Options { sequential, ..Options::default() };
        let report = check(&inputs, &opts);
        let all = report.findings.into_iter().chain(report.probes);
        all.filter(|f| f.code == Code::BS601).map(|f| (f.file, f.line)).collect()
    }

    const FK: &str = "CREATE TABLE orders (id int PRIMARY KEY, user_id int REFERENCES users (id));";

    #[test]
    fn a_key_whose_column_or_constraint_a_later_migration_drops_needs_no_index() {
        let add = "ALTER TABLE orders ADD CONSTRAINT orders_user_fk FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;";
        assert_eq!(found(&[("1.sql", add)], true), [("1.sql".to_string(), 1)]);
        for later in [
            "ALTER TABLE orders DROP COLUMN user_id;",
            "ALTER TABLE orders DROP CONSTRAINT orders_user_fk;",
            "ALTER TABLE orders RENAME TO purchases;\nALTER TABLE purchases DROP COLUMN user_id;",
        ] {
            assert_eq!(found(&[("1.sql", add), ("2.sql", later)], true), [], "{later}");
        }
        // PostgreSQL's own name for an unnamed key.
        let unnamed = [("1.sql", FK), ("2.sql", "ALTER TABLE orders DROP CONSTRAINT orders_user_id_fkey;")];
        assert_eq!(found(&unnamed, true), []);
        // Another constraint dropped, or a column renamed and then indexed
        // under its new name.
        let other = [("1.sql", add), ("2.sql", "ALTER TABLE orders DROP CONSTRAINT orders_other_fk;")];
        assert_eq!(found(&other, true).len(), 1);
        let renamed = [
            ("1.sql", add),
            ("2.sql", "ALTER TABLE orders RENAME COLUMN user_id TO buyer_id;\nCREATE INDEX ON orders (buyer_id);"),
        ];
        assert_eq!(found(&renamed, true), []);
    }

    #[test]
    fn an_index_a_later_migration_creates_serves_the_foreign_key() {
        for sequential in [true, false] {
            let later = [("1.sql", FK), ("2.sql", "CREATE INDEX orders_user_idx ON orders (user_id);")];
            assert_eq!(found(&later, sequential), [], "sequential: {sequential}");
        }
        // Under the name a rename gave the table later.
        let renamed = [
            ("1.sql", FK),
            ("2.sql", "ALTER TABLE orders RENAME TO purchases;"),
            ("3.sql", "CREATE INDEX ON purchases (user_id, id);"),
        ];
        assert_eq!(found(&renamed, true), []);
        // An index made before the foreign key serves it as well.
        let before = [
            ("1.sql", "CREATE TABLE orders (id int, user_id int);\nCREATE INDEX ON orders (user_id);"),
            ("2.sql", "ALTER TABLE orders ADD FOREIGN KEY (user_id) REFERENCES users (id);"),
        ];
        assert_eq!(found(&before, true), []);
    }

    #[test]
    fn a_table_a_later_migration_drops_needs_no_index() {
        let files = [("1.sql", FK), ("2.sql", "DROP TABLE orders;")];
        assert_eq!(found(&files, true), []);
    }

    #[test]
    fn an_index_dropped_later_partial_or_on_a_dropped_table_does_not_serve() {
        let dropped = [
            ("1.sql", FK),
            ("2.sql", "CREATE INDEX orders_user_idx ON orders (user_id);"),
            ("3.sql", "DROP INDEX orders_user_idx;"),
        ];
        assert_eq!(found(&dropped, true), [("1.sql".to_string(), 1)]);
        let partial = [("1.sql", FK), ("2.sql", "CREATE INDEX p ON orders (user_id) WHERE id > 0;")];
        assert_eq!(found(&partial, true), [("1.sql".to_string(), 1)]);
        let recreated = [
            ("1.sql", "CREATE TABLE orders (id int, user_id int);\nCREATE INDEX ON orders (user_id);"),
            ("2.sql", &format!("DROP TABLE orders;\n{FK}")),
        ];
        assert_eq!(found(&recreated, true), [("2.sql".to_string(), 2)]);
        // Another column, or the columns in a later place, do not serve.
        let other = [("1.sql", FK), ("2.sql", "CREATE INDEX ON orders (id, user_id);")];
        assert_eq!(found(&other, true), [("1.sql".to_string(), 1)]);
    }
}
