//! What a statement does to rows, read from its text: the rows an
//! `INSERT … VALUES` puts in when its constants say which (so a down can
//! delete exactly those), and every other change of rows (`UPDATE`,
//! `DELETE`, `INSERT … SELECT`, `MERGE`, `TRUNCATE`, `COPY`, and those
//! inside a `DO` block's plpgsql), which no SQL can put back. A `DO` block
//! that builds its SQL at run time (`EXECUTE`) cannot be read.

use pg_query::protobuf::{self, Node};
use pg_query::NodeEnum;
use serde_json::Value;

use crate::facts::RelationName;

/// The rows an `INSERT … VALUES` statement writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inserted {
    pub table: RelationName,
    /// The columns as listed; `None`: every column, in the table's order.
    pub columns: Option<Vec<String>>,
    /// Each row's values as SQL constants (`'avatars'`, `42`,
    /// `'…'::uuid`, `NULL`); `None` where the value is not a constant
    /// (`now()`, `DEFAULT`, an expression).
    pub rows: Vec<Vec<Option<String>>>,
    /// `ON CONFLICT DO NOTHING`: rows already there were left as they were.
    pub skips_conflicts: bool,
}

/// What one statement does to rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowChange {
    /// Rows known from the text.
    Inserted(Inserted),
    /// A change of rows that SQL cannot put back: what, and the table when
    /// the statement names one (`UPDATE public.orders`).
    Irreversible { what: String, table: Option<RelationName> },
    /// A `DO` block whose SQL is built at run time: its effect on rows
    /// cannot be read.
    Unreadable { what: String },
}

/// What `sql` (one statement) does to rows; `None` when it changes none.
/// A `DO` block is read statement by statement: each data change inside
/// is named as if it stood alone.
pub fn row_changes(sql: &str) -> Vec<RowChange> {
    let Ok(tree) = pg_query::parse(sql, 0) else { return Vec::new() };
    let mut out = Vec::new();
    for raw in &tree.protobuf.stmts {
        let Some(node) = raw.stmt.as_ref().and_then(|s| s.node.as_ref()) else { continue };
        match node {
            NodeEnum::DoStmt(d) => out.extend(do_block(d)),
            other => out.extend(one(other)),
        }
    }
    out
}

/// Whether `sql` may write PostgreSQL's catalogs directly: a change of
/// rows of a table in `pg_catalog` (or named `pg_…` with no schema), or a
/// `DO` block whose SQL is built at run time and may do so. Such a write
/// runs no DDL command, so no event trigger sees it.
pub fn writes_catalogs(sql: &str) -> bool {
    // Only a catalog's name (`pg_…`, `pg_catalog.…`) or a `DO` block can
    // say so: most statements need no parse (a rehearsal asks of every
    // statement of every migration, more than once).
    let lower = sql.to_ascii_lowercase();
    let is_do = lower.split(|c: char| !c.is_ascii_alphanumeric() && c != '_').any(|w| w == "do");
    if !lower.contains("pg_") && !is_do {
        return false;
    }
    let catalog = |t: &Option<RelationName>| {
        t.as_ref().is_some_and(|t| match &t.schema {
            Some(schema) => schema == "pg_catalog",
            None => t.name.starts_with("pg_"),
        })
    };
    row_changes(sql).iter().any(|c| match c {
        RowChange::Unreadable { .. } => true,
        RowChange::Inserted(i) => catalog(&Some(i.table.clone())),
        RowChange::Irreversible { table, .. } => catalog(table),
    })
}

fn rel(r: &Option<protobuf::RangeVar>) -> Option<RelationName> {
    r.as_ref().map(|r| RelationName {
        schema: (!r.schemaname.is_empty()).then(|| r.schemaname.clone()),
        name: r.relname.clone(),
    })
}

fn shown(t: &Option<RelationName>) -> String {
    t.as_ref().map(crate::stmt::display_table).unwrap_or_default()
}

fn one(node: &NodeEnum) -> Option<RowChange> {
    let irreversible = |verb: &str, table: Option<RelationName>| RowChange::Irreversible {
        what: format!("{verb} {}", shown(&table)),
        table,
    };
    match node {
        NodeEnum::InsertStmt(i) => match inserted(i) {
            Some(rows) => Some(RowChange::Inserted(rows)),
            None => Some(irreversible("INSERT INTO", rel(&i.relation))),
        },
        NodeEnum::UpdateStmt(u) => Some(irreversible("UPDATE", rel(&u.relation))),
        NodeEnum::DeleteStmt(d) => Some(irreversible("DELETE FROM", rel(&d.relation))),
        NodeEnum::MergeStmt(m) => Some(irreversible("MERGE INTO", rel(&m.relation))),
        NodeEnum::CopyStmt(c) if c.is_from => Some(irreversible("COPY", rel(&c.relation))),
        NodeEnum::TruncateStmt(t) => {
            let tables: Vec<RelationName> = t
                .relations
                .iter()
                .filter_map(|n| match &n.node {
                    Some(NodeEnum::RangeVar(r)) => rel(&Some(r.clone())),
                    _ => None,
                })
                .collect();
            let names: Vec<String> = tables.iter().map(crate::stmt::display_table).collect();
            Some(RowChange::Irreversible {
                what: format!("TRUNCATE {}", names.join(", ")),
                table: tables.into_iter().next(),
            })
        }
        _ => None,
    }
}

/// The rows of an `INSERT … VALUES` without `ON CONFLICT DO UPDATE` (which
/// changes rows that were there); `None` for any other insert.
fn inserted(i: &protobuf::InsertStmt) -> Option<Inserted> {
    let table = rel(&i.relation)?;
    let skips_conflicts = match &i.on_conflict_clause {
        None => false,
        Some(c) if c.action() == protobuf::OnConflictAction::OnconflictNothing => true,
        Some(_) => return None,
    };
    if i.with_clause.is_some() {
        return None;
    }
    let select = match i.select_stmt.as_deref().and_then(|s| s.node.as_ref()) {
        Some(NodeEnum::SelectStmt(s)) if !s.values_lists.is_empty() => s,
        _ => return None,
    };
    let columns = if i.cols.is_empty() {
        None
    } else {
        let names = i.cols.iter().filter_map(|c| match c.node.as_ref() {
            Some(NodeEnum::ResTarget(t)) if t.indirection.is_empty() => Some(t.name.clone()),
            _ => None,
        });
        let names: Vec<String> = names.collect();
        (names.len() == i.cols.len()).then_some(names)?.into()
    };
    let mut rows = Vec::with_capacity(select.values_lists.len());
    for list in &select.values_lists {
        let Some(NodeEnum::List(l)) = list.node.as_ref() else { return None };
        rows.push(l.items.iter().map(constant).collect());
    }
    Some(Inserted { table, columns, rows, skips_conflicts })
}

/// A value that is a constant, as SQL: a literal, a typed literal, an
/// array of them.
fn constant(n: &Node) -> Option<String> {
    fn is_constant(n: &Node) -> bool {
        match n.node.as_ref() {
            Some(NodeEnum::AConst(_)) => true,
            Some(NodeEnum::TypeCast(c)) => c.arg.as_deref().is_some_and(is_constant),
            Some(NodeEnum::AArrayExpr(a)) => a.elements.iter().all(is_constant),
            _ => false,
        }
    }
    if !is_constant(n) {
        return None;
    }
    crate::requires::expression(n)
}

/// The data changes a `DO` block's plpgsql makes, read from PostgreSQL's
/// own plpgsql parser: each SQL statement in it as if it stood alone; a
/// dynamic `EXECUTE` is unreadable.
fn do_block(d: &protobuf::DoStmt) -> Vec<RowChange> {
    let unreadable = |why: &str| vec![RowChange::Unreadable { what: format!("DO block ({why})") }];
    let tree = match crate::plpgsql::do_tree(d) {
        Ok(Some(tree)) => tree,
        Ok(None) => return Vec::new(),
        Err(why) => return unreadable(&why),
    };
    let mut out = Vec::new();
    crate::plpgsql::walk(&tree, &mut |key, v| match key {
        "PLpgSQL_stmt_execsql" => {
            if let Some(query) = v.pointer("/sqlstmt/PLpgSQL_expr/query").and_then(Value::as_str) {
                for change in row_changes(query) {
                    out.push(match change {
                        RowChange::Irreversible { what, table } => {
                            RowChange::Irreversible { what: format!("{what} in a DO block"), table }
                        }
                        // Rows a DO block inserts depend on its control flow.
                        RowChange::Inserted(i) => RowChange::Irreversible {
                            what: format!(
                                "INSERT INTO {} in a DO block",
                                crate::stmt::display_table(&i.table)
                            ),
                            table: Some(i.table),
                        },
                        other => other,
                    });
                }
            }
        }
        "PLpgSQL_stmt_dynexecute" | "PLpgSQL_stmt_dynfors" => out.push(RowChange::Unreadable {
            what: "DO block (EXECUTE of SQL built at run time)".into(),
        }),
        _ => {}
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first(sql: &str) -> RowChange {
        row_changes(sql).into_iter().next().expect("a row change")
    }

    #[test]
    fn inserted_rows_are_read_with_their_constants() {
        let RowChange::Inserted(i) = first(
            "insert into storage.buckets (id, name, public) values ('avatars', 'avatars', true), ('docs', 'Docs', false) on conflict do nothing",
        ) else {
            panic!("not read")
        };
        assert_eq!(i.table.schema.as_deref(), Some("storage"));
        assert_eq!(
            i.columns.as_deref(),
            Some(&["id".to_string(), "name".into(), "public".into()][..])
        );
        assert_eq!(
            i.rows[0],
            [Some("'avatars'".to_string()), Some("'avatars'".into()), Some("true".into())]
        );
        assert!(i.skips_conflicts);
        let RowChange::Inserted(plain) =
            first("INSERT INTO plans VALUES ('free', 0, now(), -1.5, '00000000-0000-0000-0000-000000000001'::uuid, NULL)")
        else {
            panic!("not read")
        };
        assert_eq!(plain.columns, None);
        let row = &plain.rows[0];
        assert_eq!(row[0].as_deref(), Some("'free'"));
        assert_eq!(row[2], None, "now() is no constant");
        assert_eq!(row[3].as_deref(), Some("-1.5"));
        assert!(row[4].as_deref().is_some_and(|v| v.contains("::uuid")), "{row:?}");
        assert_eq!(row[5].as_deref(), Some("NULL"));
    }

    #[test]
    fn writes_to_the_catalogs_are_told_from_writes_to_tables() {
        for sql in [
            "UPDATE pg_attribute SET atttypmod = 104 WHERE attrelid = 't'::regclass",
            "delete from pg_catalog.pg_enum where enumlabel = 'x'",
            "DO $$ BEGIN DELETE FROM pg_enum WHERE enumlabel = 'x'; END $$",
            "DO $$ BEGIN EXECUTE format('UPDATE %I SET a = 1', 't'); END $$",
            "/* dynamic */do 'begin execute ''update t set a = 1''; end'",
        ] {
            assert!(writes_catalogs(sql), "{sql}");
        }
        for sql in [
            "UPDATE accounts SET plan = 'pro'",
            "SELECT * FROM pg_attribute",
            "ALTER TABLE pg_things ADD COLUMN a int",
            "DO $$ BEGIN UPDATE accounts SET plan = 'pro'; END $$",
        ] {
            assert!(!writes_catalogs(sql), "{sql}");
        }
    }

    #[test]
    fn other_data_changes_cannot_be_put_back() {
        for (sql, what) in [
            ("update users set plan = 'team'", "UPDATE users"),
            ("delete from public.sessions where true", "DELETE FROM public.sessions"),
            ("insert into archive select * from users", "INSERT INTO archive"),
            ("insert into plans (id) values ('x') on conflict (id) do update set id = excluded.id", "INSERT INTO plans"),
            ("truncate a, b", "TRUNCATE a, b"),
        ] {
            assert!(
                matches!(first(sql), RowChange::Irreversible { what: w, .. } if w == what),
                "{sql}: {:?}",
                first(sql)
            );
        }
        assert_eq!(row_changes("create table t (id int)"), []);
    }

    #[test]
    fn a_do_blocks_statements_are_read_and_dynamic_sql_is_not() {
        let changes = row_changes(
            "do $$ begin if exists (select 1 from users) then update users set flagged = true; end if; end $$",
        );
        assert!(
            matches!(&changes[..], [RowChange::Irreversible { what, .. }] if what == "UPDATE users in a DO block"),
            "{changes:?}"
        );
        let ddl = row_changes("do $$ begin if not exists (select from pg_roles where rolname = 'x') then create role x; end if; end $$");
        assert_eq!(ddl, []);
        let dynamic = row_changes("do $$ begin execute format('delete from %I', 't'); end $$");
        assert!(matches!(&dynamic[..], [RowChange::Unreadable { .. }]), "{dynamic:?}");
    }
}
