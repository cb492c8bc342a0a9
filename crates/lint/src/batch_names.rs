//! What the pending batch does to names, statement by statement: tables,
//! views and columns it creates, renames, moves to another schema and
//! drops. A statement late in the batch meets the state every earlier
//! statement left, so a name it uses may be a table the batch created (no
//! rows to lose, no one blocked), a table the batch renamed (the live
//! database knows it by its old name), or one the batch already dropped
//! (the statement fails). The live check asks the database only about what
//! existed before the batch, under the name it had then.

use pg_query::protobuf::{AlterTableType, ObjectType};
use pg_query::NodeEnum;

use crate::model::Origin;
use backstop_sql::facts::RelationName;
use backstop_sql::stmt::{alter_cmds, same_table, string_value, Stmt};

#[derive(Debug, Clone)]
enum Change {
    Create(RelationName),
    Drop(RelationName),
    /// A rename, or a move to another schema.
    Rename {
        from: RelationName,
        to: RelationName,
    },
    /// Rows put in the table: `CREATE TABLE … AS` or `SELECT … INTO`
    /// (with data), `INSERT`, `COPY … FROM`.
    Fill(RelationName),
    /// A column added; `valued` when it gets a value in every row (a
    /// default, identity, serial or generated).
    AddColumn(RelationName, String, bool),
    /// An `UPDATE` of the table: it may give a column added earlier its
    /// values.
    Update(RelationName),
    DropColumn(RelationName, String),
    RenameColumn {
        table: RelationName,
        from: String,
        to: String,
    },
    /// A statement that may change any table in ways the parse tree does
    /// not show: a `DO` block, a `CALL`, a `SELECT` of a function.
    Opaque,
}

#[derive(Debug, Clone)]
struct Event {
    file: usize,
    stmt: usize,
    at: String,
    change: Change,
}

/// The batch's changes to names, in run order.
#[derive(Debug, Default)]
pub struct Batch {
    events: Vec<Event>,
    /// The columns of the tables the batch made whole, by the statement
    /// (file, statement) that made them: see [`whole_columns`].
    made_columns: std::collections::HashMap<(usize, usize), Vec<String>>,
    /// The names such a table can go by (made with them, or renamed to):
    /// [`Batch::columns`] asks only these.
    whole_names: std::collections::HashSet<String>,
    /// Whether the files run as one sequence (a later file meets what an
    /// earlier one did) or are judged one by one.
    sequential: bool,
}

fn relation_of(items: &[pg_query::protobuf::Node]) -> Option<RelationName> {
    let parts: Vec<&str> = items.iter().filter_map(string_value).collect();
    match parts.as_slice() {
        [name] => Some(RelationName { schema: None, name: name.to_string() }),
        [.., schema, name] => {
            Some(RelationName { schema: Some(schema.to_string()), name: name.to_string() })
        }
        [] => None,
    }
}

fn is_relation(kind: ObjectType) -> bool {
    matches!(
        kind,
        ObjectType::ObjectTable
            | ObjectType::ObjectView
            | ObjectType::ObjectMatview
            | ObjectType::ObjectForeignTable
    )
}

/// The whole column list of the table a `CREATE TABLE` makes, where the
/// statement names every column itself (no `LIKE`, `INHERITS`, `PARTITION
/// OF` or `OF type`).
fn whole_columns(node: &NodeEnum) -> Option<Vec<String>> {
    let NodeEnum::CreateStmt(c) = node else { return None };
    let whole = c.inh_relations.is_empty()
        && c.partbound.is_none()
        && c.of_typename.is_none()
        && c.table_elts.iter().all(|e| {
            matches!(e.node.as_ref(), Some(NodeEnum::ColumnDef(_) | NodeEnum::Constraint(_)))
        });
    let columns = c.table_elts.iter().filter_map(|e| match e.node.as_ref() {
        Some(NodeEnum::ColumnDef(col)) => Some(col.colname.clone()),
        _ => None,
    });
    whole.then(|| columns.collect())
}

/// Whether a `SELECT` calls a function that may run DDL: any but the few
/// pg_dump's preamble and the like call, which set settings or sequences,
/// lock, or count.
fn calls_unseen(node: &NodeEnum) -> bool {
    const HARMLESS: &[&str] = &[
        "set_config",
        "setval",
        "nextval",
        "current_setting",
        "pg_advisory_lock",
        "pg_advisory_xact_lock",
        "pg_advisory_unlock",
        "count",
    ];
    node.nodes().into_iter().any(|(n, ..)| match n {
        pg_query::NodeRef::FuncCall(f) => f
            .funcname
            .iter()
            .rev()
            .find_map(string_value)
            .is_none_or(|name| !HARMLESS.contains(&name)),
        _ => false,
    })
}

/// Whether a statement may run DDL that no reading of the files sees: a
/// `CALL`, an `EXECUTE` of a prepared statement, a `SELECT` that calls a
/// function (see [`calls_unseen`]), and a `DO` block that runs SQL built
/// at run time or makes such a call. Its own statements as written are
/// read where they are (a `DROP POLICY` in a `DO` block).
pub(crate) fn runs_unseen(node: &NodeEnum) -> bool {
    match node {
        NodeEnum::CallStmt(_) | NodeEnum::ExecuteStmt(_) => true,
        NodeEnum::SelectStmt(_) => calls_unseen(node),
        NodeEnum::DoStmt(d) => {
            let Ok(Some(tree)) = backstop_sql::plpgsql::do_tree(d) else { return true };
            let mut unseen = false;
            backstop_sql::plpgsql::walk(&tree, &mut |key, v| {
                unseen |= match key {
                    "PLpgSQL_stmt_dynexecute" => {
                        backstop_sql::plpgsql::constant_execute(v).is_none()
                    }
                    "PLpgSQL_stmt_call" => true,
                    "query" => v.as_str().is_some_and(|q| {
                        pg_query::parse(&sql_of_expr(q), 0).is_ok_and(|t| {
                            t.protobuf.stmts.iter().any(|s| {
                                s.stmt.as_ref().and_then(|s| s.node.as_ref()).is_some_and(|n| {
                                    matches!(n, NodeEnum::SelectStmt(_)) && calls_unseen(n)
                                })
                            })
                        })
                    }),
                    _ => false,
                };
            });
            unseen
        }
        _ => false,
    }
}

/// A plpgsql expression's text as a statement: a query as it is, an
/// expression (`PERFORM f()`, a condition) as the `SELECT` of it.
fn sql_of_expr(q: &str) -> String {
    let head = q.trim_start().get(..6).unwrap_or_default().to_ascii_lowercase();
    if ["select", "insert", "update", "delete", "with"].iter().any(|k| head.starts_with(k)) {
        q.to_string()
    } else {
        format!("SELECT {q}")
    }
}

/// What one statement does to names.
fn changes(node: &NodeEnum) -> Vec<Change> {
    let rel = RelationName::from_range_var;
    match node {
        NodeEnum::CreateStmt(_) => {
            backstop_sql::facts::made_table(node).map(Change::Create).into_iter().collect()
        }
        NodeEnum::DoStmt(_) | NodeEnum::CallStmt(_) | NodeEnum::ExecuteStmt(_) => {
            vec![Change::Opaque]
        }
        NodeEnum::SelectStmt(_) if backstop_sql::facts::made_table(node).is_none() => {
            if calls_unseen(node) {
                vec![Change::Opaque]
            } else {
                Vec::new()
            }
        }
        NodeEnum::CreateTableAsStmt(_) | NodeEnum::SelectStmt(_) => {
            let with_data = match node {
                NodeEnum::CreateTableAsStmt(s) => !s.into.as_ref().is_some_and(|i| i.skip_data),
                _ => true,
            };
            let Some(made) = backstop_sql::facts::made_table(node) else { return Vec::new() };
            let fill = with_data.then(|| Change::Fill(made.clone()));
            std::iter::once(Change::Create(made)).chain(fill).collect()
        }
        NodeEnum::UpdateStmt(u) => {
            u.relation.as_ref().map(rel).map(Change::Update).into_iter().collect()
        }
        NodeEnum::InsertStmt(i) => {
            i.relation.as_ref().map(rel).map(Change::Fill).into_iter().collect()
        }
        NodeEnum::CopyStmt(c) if c.is_from => {
            c.relation.as_ref().map(rel).map(Change::Fill).into_iter().collect()
        }
        NodeEnum::ViewStmt(s) => s.view.as_ref().map(rel).map(Change::Create).into_iter().collect(),
        NodeEnum::DropStmt(d) if is_relation(d.remove_type()) => d
            .objects
            .iter()
            .filter_map(|o| match o.node.as_ref() {
                Some(NodeEnum::List(l)) => relation_of(&l.items),
                _ => None,
            })
            .map(Change::Drop)
            .collect(),
        NodeEnum::RenameStmt(r) => {
            let Some(from) = r.relation.as_ref().map(rel) else { return Vec::new() };
            match r.rename_type() {
                kind if is_relation(kind) => {
                    let to = RelationName { schema: from.schema.clone(), name: r.newname.clone() };
                    vec![Change::Rename { from, to }]
                }
                ObjectType::ObjectColumn => vec![Change::RenameColumn {
                    table: from,
                    from: r.subname.clone(),
                    to: r.newname.clone(),
                }],
                _ => Vec::new(),
            }
        }
        NodeEnum::AlterObjectSchemaStmt(a) if is_relation(a.object_type()) => {
            let Some(from) = a.relation.as_ref().map(rel) else { return Vec::new() };
            let to = RelationName { schema: Some(a.newschema.clone()), name: from.name.clone() };
            vec![Change::Rename { from, to }]
        }
        NodeEnum::AlterTableStmt(a) => {
            let Some(table) = a.relation.as_ref().map(rel) else { return Vec::new() };
            alter_cmds(a)
                .filter_map(|(_, cmd, kind)| match kind {
                    AlterTableType::AtAddColumn => {
                        match cmd.def.as_ref().and_then(|d| d.node.as_ref()) {
                            Some(NodeEnum::ColumnDef(c)) => Some(Change::AddColumn(
                                table.clone(),
                                c.colname.clone(),
                                backstop_sql::stmt::column_gets_value(c),
                            )),
                            _ => None,
                        }
                    }
                    AlterTableType::AtDropColumn => {
                        Some(Change::DropColumn(table.clone(), cmd.name.clone()))
                    }
                    _ => None,
                })
                .collect()
        }
        _ => Vec::new(),
    }
}

impl Batch {
    /// The changes of every statement of `files` (each with its path and
    /// the text its positions are in).
    pub fn build(files: &[(&str, &str, &[Stmt<'_>])], sequential: bool) -> Batch {
        let mut events = Vec::new();
        let mut made_columns = std::collections::HashMap::new();
        let mut whole_names = std::collections::HashSet::new();
        for (file, (path, text, stmts)) in files.iter().enumerate() {
            let lines = backstop_sql::parse::Lines::new(text);
            for stmt in stmts.iter() {
                let line = lines.line(stmt.start);
                for change in changes(stmt.node) {
                    match &change {
                        Change::Create(t) => {
                            if let Some(columns) = whole_columns(stmt.node) {
                                made_columns.insert((file, stmt.index), columns);
                                whole_names.insert(t.name.clone());
                            }
                        }
                        Change::Rename { to, .. } => {
                            whole_names.insert(to.name.clone());
                        }
                        _ => {}
                    }
                    events.push(Event {
                        file,
                        stmt: stmt.index,
                        at: format!("{path}:{line}"),
                        change,
                    });
                }
            }
        }
        Batch { events, made_columns, whole_names, sequential }
    }

    /// The changes made before statement `stmt` of `file`, latest first.
    fn before(&self, file: usize, stmt: usize) -> impl Iterator<Item = &Event> {
        self.events
            .iter()
            .rev()
            .filter(move |e| (e.file, e.stmt) < (file, stmt) && (self.sequential || e.file == file))
    }

    /// Walks the changes before statement `stmt` of `file` back, latest
    /// first, following renames of `table` (and of `column`, if given) to
    /// the names they had then; `seen` decides at the first change it
    /// answers for, given those names. `Err` holds the names before the
    /// batch when no change decided.
    fn walk<R>(
        &self,
        file: usize,
        stmt: usize,
        table: &RelationName,
        column: Option<&str>,
        mut seen: impl FnMut(&Event, &RelationName, Option<&str>) -> Option<R>,
    ) -> Result<R, (RelationName, Option<String>)> {
        let mut name = table.clone();
        let mut col = column.map(str::to_string);
        for e in self.before(file, stmt) {
            match &e.change {
                Change::Rename { from, to } if rename_end(to, from, &name) => name = from.clone(),
                Change::RenameColumn { table, from, to }
                    if same_table(table, &name) && col.as_deref() == Some(to) =>
                {
                    col = Some(from.clone())
                }
                _ => {
                    if let Some(decided) = seen(e, &name, col.as_deref()) {
                        return Ok(decided);
                    }
                }
            }
        }
        Err((name, col))
    }

    /// Where an earlier statement of the batch gave `table` (or its
    /// `column`, if given), as statement `stmt` of `file` names it, the
    /// name it has there by a rename: no running code knows that name.
    pub fn renamed_to(
        &self,
        file: usize,
        stmt: usize,
        table: &RelationName,
        column: Option<&str>,
    ) -> Option<String> {
        let mut name = table.clone();
        for e in self.before(file, stmt) {
            match &e.change {
                Change::Rename { from, to } if column.is_none() && rename_end(to, from, &name) => {
                    return Some(e.at.clone())
                }
                Change::Rename { from, to } if rename_end(to, from, &name) => name = from.clone(),
                Change::RenameColumn { table, to, .. }
                    if same_table(table, &name) && Some(to.as_str()) == column =>
                {
                    return Some(e.at.clone())
                }
                _ => {}
            }
        }
        None
    }

    /// Where the relation `table`, as statement `stmt` of `file` names it,
    /// came from.
    pub fn table(&self, file: usize, stmt: usize, table: &RelationName) -> Origin {
        self.walk(file, stmt, table, None, |e, name, _| made_or_dropped(e, name))
            .unwrap_or_else(|(table, _)| Origin::Live { table, column: None })
    }

    /// Where the batch last put rows in `table`, as statement `stmt` of
    /// `file` names it, since an earlier statement of the batch made it;
    /// `None` when the batch did not make it or left it empty.
    pub fn filled(&self, file: usize, stmt: usize, table: &RelationName) -> Option<String> {
        let mut filled = None;
        self.walk(file, stmt, table, None, |e, name, _| match &e.change {
            Change::Fill(t) if same_table(t, name) => {
                filled.get_or_insert_with(|| e.at.clone());
                None
            }
            Change::Create(t) if same_table(t, name) => Some(filled.take()),
            Change::Drop(t) if same_table(t, name) => Some(None),
            _ => None,
        })
        .unwrap_or(None)
    }

    /// Where an earlier statement of the batch added `table`.`column`, as
    /// statement `stmt` of `file` names them, to a table that existed
    /// before the batch, with nothing to fill it: no default, and no
    /// `UPDATE` of the table since. Every row the table had holds NULL
    /// there.
    pub fn added_empty(
        &self,
        file: usize,
        stmt: usize,
        table: &RelationName,
        column: &str,
    ) -> Option<String> {
        self.walk(file, stmt, table, Some(column), |e, name, col| match &e.change {
            Change::AddColumn(t, c, valued) if same_table(t, name) && Some(c.as_str()) == col => {
                Some((!valued).then(|| e.at.clone()))
            }
            Change::Update(t) | Change::Create(t) | Change::Drop(t) if same_table(t, name) => {
                Some(None)
            }
            Change::DropColumn(t, c) if same_table(t, name) && Some(c.as_str()) == col => {
                Some(None)
            }
            _ => None,
        })
        .unwrap_or(None)
    }

    /// What the table that statement `stmt` of `file` names is called once
    /// every later statement of the checked files has run; `None` when one
    /// of them drops it. The final schema of the files checked, whether
    /// they run as one sequence or are judged one by one: an index a later
    /// migration adds serves a foreign key all the same.
    pub fn fate(&self, file: usize, stmt: usize, table: &RelationName) -> Option<RelationName> {
        let start = self.events.partition_point(|e| (e.file, e.stmt) <= (file, stmt));
        let mut name = table.clone();
        for e in &self.events[start..] {
            match &e.change {
                Change::Rename { from, to } if rename_end(from, to, &name) => name = to.clone(),
                Change::Drop(t) if same_table(t, &name) => return None,
                _ => {}
            }
        }
        Some(name)
    }

    /// What `table`.`column`, as statement `stmt` of `file` names it, is
    /// called once every later statement of the checked files has run
    /// (renames of both followed); `None` when one of them drops the
    /// column or its table.
    pub fn column_fate(
        &self,
        file: usize,
        stmt: usize,
        table: &RelationName,
        column: &str,
    ) -> Option<(RelationName, String)> {
        let start = self.events.partition_point(|e| (e.file, e.stmt) <= (file, stmt));
        let (mut name, mut col) = (table.clone(), column.to_string());
        for e in &self.events[start..] {
            match &e.change {
                Change::Rename { from, to } if rename_end(from, to, &name) => name = to.clone(),
                Change::RenameColumn { table, from, to }
                    if same_table(table, &name) && *from == col =>
                {
                    col = to.clone()
                }
                Change::Drop(t) if same_table(t, &name) => return None,
                Change::DropColumn(t, c) if same_table(t, &name) && *c == col => return None,
                _ => {}
            }
        }
        Some((name, col))
    }

    /// The columns `table` has, by name, when statement `stmt` of `file`
    /// runs, where the batch made it with a `CREATE TABLE` that names
    /// them all and every change since is one the batch can follow; `None`
    /// for a table the database had before, or after a statement that may
    /// change it unseen.
    pub fn columns(&self, file: usize, stmt: usize, table: &RelationName) -> Option<Vec<&str>> {
        if !self.whole_names.contains(&table.name) {
            return None;
        }
        let mut name = table;
        let mut since: Vec<&Change> = Vec::new();
        for e in self.before(file, stmt) {
            match &e.change {
                Change::Opaque => return None,
                Change::Rename { from, to } if rename_end(to, from, name) => name = from,
                Change::Create(t) if same_table(t, name) => {
                    let made = self.made_columns.get(&(e.file, e.stmt))?;
                    let mut columns: Vec<&str> = made.iter().map(String::as_str).collect();
                    for change in since.iter().rev() {
                        match change {
                            Change::AddColumn(_, c, _) => columns.push(c),
                            Change::DropColumn(_, c) => columns.retain(|x| x != c),
                            Change::RenameColumn { from, to, .. } => {
                                for c in columns.iter_mut().filter(|c| **c == from.as_str()) {
                                    *c = to;
                                }
                            }
                            _ => {}
                        }
                    }
                    return Some(columns);
                }
                Change::Drop(t) if same_table(t, name) => return None,
                Change::AddColumn(t, ..)
                | Change::DropColumn(t, _)
                | Change::RenameColumn { table: t, .. }
                    if same_table(t, name) =>
                {
                    since.push(&e.change)
                }
                _ => {}
            }
        }
        None
    }

    /// Where `table`.`column`, as statement `stmt` of `file` names it, came from.
    pub fn column(&self, file: usize, stmt: usize, table: &RelationName, column: &str) -> Origin {
        self.walk(file, stmt, table, Some(column), |e, name, col| match &e.change {
            Change::AddColumn(t, c, _) if same_table(t, name) && Some(c.as_str()) == col => {
                Some(Origin::Created { at: e.at.clone() })
            }
            Change::DropColumn(t, c) if same_table(t, name) && Some(c.as_str()) == col => {
                Some(Origin::Dropped { at: e.at.clone() })
            }
            _ => made_or_dropped(e, name),
        })
        .unwrap_or_else(|(table, column)| Origin::Live { table, column })
    }
}

/// Whether `end`, one end of a rename whose other end is `other`, is the
/// relation `name`. A move to another schema keeps the name, so there an
/// unqualified name is public's: else the name a move frees would read as
/// the table moved away.
fn rename_end(end: &RelationName, other: &RelationName, name: &RelationName) -> bool {
    if end.name != other.name {
        return same_table(end, name);
    }
    let schema = |t: &RelationName| t.schema.clone().unwrap_or_else(|| "public".into());
    end.name == name.name && schema(end) == schema(name)
}

/// The origin `e` gives the relation called `name` when it made or
/// dropped it.
fn made_or_dropped(e: &Event, name: &RelationName) -> Option<Origin> {
    match &e.change {
        Change::Create(t) if same_table(t, name) => Some(Origin::Created { at: e.at.clone() }),
        Change::Drop(t) if same_table(t, name) => Some(Origin::Dropped { at: e.at.clone() }),
        // Renamed (or moved) away: nothing goes by the name from then on,
        // as after a drop, until a later statement makes it again.
        Change::Rename { from, to }
            if rename_end(from, to, name) && !rename_end(to, from, name) =>
        {
            Some(Origin::Dropped { at: e.at.clone() })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use crate::analyze::check;
    use crate::context::{Input, Options};
    use crate::model::Origin;
    use crate::{Code, RelationName};

    type Found = (Code, String, usize, Option<Origin>);

    fn findings(files: &[(&str, &str)]) -> Vec<Found> {
        let inputs: Vec<Input<'_>> = files.iter().map(|(p, t)| Input::file(p, t)).collect();
        let report = check(&inputs, &Options::default());
        report
            .findings
            .into_iter()
            .chain(report.probes)
            .map(|f| (f.code, f.file, f.line, f.origin))
            .collect()
    }

    fn at<'f>(found: &'f [Found], code: Code, file: &str, line: usize) -> Option<&'f Found> {
        found.iter().find(|f| f.0 == code && f.1 == file && f.2 == line)
    }

    #[test]
    fn renames_moves_and_drops_are_followed_across_files() {
        let found = findings(&[
            ("1.sql", "CREATE TABLE user_ (id int, name text, flags text);"),
            ("2.sql", "ALTER TABLE user_ RENAME TO person;\nALTER TABLE person RENAME COLUMN name TO display_name;"),
            ("3.sql", "ALTER TABLE person DROP COLUMN flags;\nDROP TABLE person;\nDROP TABLE person;"),
            ("4.sql", "ALTER TABLE live_t RENAME TO moved;\nCREATE SCHEMA a;\nALTER TABLE moved SET SCHEMA a;\nALTER TABLE a.moved DROP COLUMN c;"),
        ]);
        // What the batch made, even under a new name, holds no one's rows.
        assert!(at(&found, Code::BS102, "3.sql", 1).is_none(), "{found:?}");
        assert!(at(&found, Code::BS101, "3.sql", 2).is_none(), "{found:?}");
        // Dropped once already: the second DROP fails.
        let again = at(&found, Code::BS101, "3.sql", 3).expect("the second DROP");
        assert_eq!(again.3, Some(Origin::Dropped { at: "3.sql:2".into() }));
        // A live table renamed and moved: the database knows it as live_t.
        let live = at(&found, Code::BS102, "4.sql", 4).expect("the DROP COLUMN of a live table");
        let table = RelationName { schema: None, name: "live_t".into() };
        assert_eq!(live.3, Some(Origin::Live { table, column: None }));
    }

    #[test]
    fn a_not_null_column_on_a_table_the_batch_filled_is_a_finding_and_on_one_it_left_empty_not() {
        let found = findings(&[
            ("1.sql", "CREATE TABLE work AS SELECT id FROM live_t;\nALTER TABLE work ADD COLUMN n int NOT NULL;"),
            ("2.sql", "SELECT id INTO w2 FROM live_t;\nALTER TABLE w2 RENAME TO w3;\nALTER TABLE w3 ADD COLUMN n int NOT NULL;"),
            ("3.sql", "CREATE TABLE t (id int);\nINSERT INTO t VALUES (1);\nALTER TABLE t ADD COLUMN n int NOT NULL;"),
            ("4.sql", "CREATE TABLE e (id int);\nALTER TABLE e ADD COLUMN n int NOT NULL;\n\
                       CREATE TABLE s AS SELECT id FROM live_t WITH NO DATA;\nALTER TABLE s ADD COLUMN n int NOT NULL;"),
        ]);
        let made = |at: &str| Some(Origin::Created { at: at.into() });
        assert_eq!(
            at(&found, Code::BS404, "1.sql", 2).expect("CTAS, then NOT NULL").3,
            made("1.sql:1")
        );
        assert_eq!(
            at(&found, Code::BS404, "2.sql", 3).expect("SELECT INTO, renamed").3,
            made("2.sql:1")
        );
        assert!(at(&found, Code::BS404, "3.sql", 3).is_some(), "INSERT, then NOT NULL: {found:?}");
        // Made empty, or WITH NO DATA: no row can be there.
        assert!(at(&found, Code::BS404, "4.sql", 2).is_none(), "{found:?}");
        assert!(at(&found, Code::BS404, "4.sql", 4).is_none(), "{found:?}");
    }

    #[test]
    fn set_not_null_on_a_column_added_with_nothing_to_fill_it_is_a_finding() {
        let found = findings(&[
            ("1.sql", "ALTER TABLE live_t ADD COLUMN a int;\nALTER TABLE live_t ALTER COLUMN a SET NOT NULL;"),
            ("2.sql", "ALTER TABLE live_t ADD COLUMN b int;\nALTER TABLE live_t RENAME COLUMN b TO c;\nALTER TABLE live_t ALTER COLUMN c SET NOT NULL;"),
            ("3.sql", "ALTER TABLE live_t ADD COLUMN d int;\nUPDATE live_t SET d = 1;\nALTER TABLE live_t ALTER COLUMN d SET NOT NULL;"),
            ("4.sql", "ALTER TABLE live_t ADD COLUMN e int DEFAULT 0;\nALTER TABLE live_t ALTER COLUMN e SET NOT NULL;\n\
                       ALTER TABLE live_t ALTER COLUMN old SET NOT NULL;"),
            ("5.sql", "CREATE TABLE n (id int);\nALTER TABLE n ADD COLUMN a int;\nALTER TABLE n ALTER COLUMN a SET NOT NULL;"),
        ]);
        let live = RelationName { schema: None, name: "live_t".into() };
        let at_1 = at(&found, Code::BS404, "1.sql", 2).expect("added, then SET NOT NULL");
        assert_eq!(
            at_1.3,
            Some(Origin::Live { table: live, column: None }),
            "the live table's rows are counted"
        );
        assert!(
            at(&found, Code::BS404, "2.sql", 3).is_some(),
            "followed through a rename: {found:?}"
        );
        // Filled by an UPDATE or a default, or a column that was there: no certainty.
        assert!(at(&found, Code::BS404, "3.sql", 3).is_none(), "{found:?}");
        assert!(at(&found, Code::BS404, "4.sql", 2).is_none(), "{found:?}");
        assert!(at(&found, Code::BS404, "4.sql", 3).is_none(), "{found:?}");
        // A table the batch made holds no one's rows.
        assert!(at(&found, Code::BS404, "5.sql", 3).is_none(), "{found:?}");
    }

    #[test]
    fn a_column_the_batch_added_loses_nothing_when_dropped() {
        let found = findings(&[
            ("1.sql", "ALTER TABLE live_t ADD COLUMN tmp text;"),
            ("2.sql", "ALTER TABLE live_t RENAME COLUMN tmp TO scratch;\nALTER TABLE live_t DROP COLUMN scratch;\nALTER TABLE live_t DROP COLUMN old;"),
        ]);
        assert!(at(&found, Code::BS102, "2.sql", 2).is_none(), "{found:?}");
        assert!(at(&found, Code::BS102, "2.sql", 3).is_some(), "{found:?}");
    }

    #[test]
    fn select_into_create_table_as_and_materialized_views_are_made_by_the_batch() {
        let found = findings(&[(
            "1.sql",
            "SELECT id INTO work_table FROM live_t;\nCREATE INDEX w_idx ON work_table (id);\nDROP TABLE work_table;\n\
             SELECT 1 AS id INTO TEMP u_table UNION SELECT 2;\nTRUNCATE u_table;\n\
             CREATE TABLE c AS SELECT 1 AS id;\nDELETE FROM c;\n\
             CREATE MATERIALIZED VIEW mv AS SELECT 1 AS id;\nCREATE INDEX mv_idx ON mv (id);\n\
             DROP TABLE IF EXISTS work_table;\nDROP TABLE live_t;",
        )]);
        let left: Vec<_> = found.iter().filter(|f| f.0 != Code::BS209).collect();
        // Only the drop of the live table is left.
        assert_eq!(left.len(), 1, "{left:?}");
        assert_eq!((left[0].0, left[0].2), (Code::BS101, 11), "{left:?}");
    }

    #[test]
    fn files_checked_apart_do_not_follow_each_other() {
        let inputs = [
            Input::file("1.sql", "CREATE TABLE t (id int, c text);"),
            Input::file("2.sql", "ALTER TABLE t DROP COLUMN c;"),
        ];
        let report = check(&inputs, &Options { sequential: false, ..Options::default() });
        let drop = report.findings.iter().find(|f| f.code == Code::BS102).expect("BS102");
        let table = RelationName { schema: None, name: "t".into() };
        assert_eq!(drop.origin, Some(Origin::Live { table, column: None }));
    }
}
