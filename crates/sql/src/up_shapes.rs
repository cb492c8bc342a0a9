//! What each statement of an up does, in the shapes whose down needs no
//! definition taken before the up: it makes something new (a table, a
//! column, an index, a view, a function, a type, …) or fills what the
//! migration made; it renames (the down renames back); it changes a column
//! of a table that was there (its type, default or NOT NULL: the down
//! puts back what the catalog said before); it changes rows that were
//! there in a way no SQL puts back (the down says so); it drops what the
//! migration itself made. Any other statement is not read here, and the
//! caller works the down out the full way. What a statement in these
//! shapes may still change by surprise (`CREATE OR REPLACE` of something
//! that was there, a `GRANT` on an old table) the caller sees in the
//! schema picture, and the proof decides.

use pg_query::protobuf::{self, AlterTableType, ObjectType};
use pg_query::NodeEnum;

use crate::facts::{made_table, RelationName};
use crate::rewrite::{ident, qualified};
use crate::rows::RowChange;
use crate::stmt::{alter_cmds, object_name, same_table, string_value};

/// What the statements of one migration made so far, so that an `INSERT`
/// into one of them, or its `DROP`, still needs nothing from before.
#[derive(Debug, Default)]
pub struct Made {
    tables: Vec<RelationName>,
    /// Columns added to tables that were there: (table, column).
    columns: Vec<(RelationName, String)>,
    /// Types it made.
    types: Vec<RelationName>,
}

impl Made {
    fn has(&self, t: &RelationName) -> bool {
        self.tables.iter().any(|m| same_table(m, t))
    }

    fn has_type(&self, t: &RelationName) -> bool {
        self.types.iter().any(|m| same_table(m, t))
    }

    fn has_column(&self, t: &RelationName, column: &str) -> bool {
        self.columns.iter().any(|(m, c)| c == column && same_table(m, t))
    }

    /// Whether an `UPDATE` sets only columns made by the migration: it
    /// changes nothing that was there.
    fn fills_only_new(&self, u: &protobuf::UpdateStmt) -> bool {
        let Some(t) = u.relation.as_ref().map(RelationName::from_range_var) else { return false };
        let set: Vec<&str> = u
            .target_list
            .iter()
            .filter_map(|n| match n.node.as_ref() {
                Some(NodeEnum::ResTarget(r)) => Some(r.name.as_str()),
                _ => None,
            })
            .collect();
        !set.is_empty() && set.iter().all(|c| self.has_column(&t, c))
    }
}

/// How a column of a table that was there changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnChange {
    Type,
    Default,
    NotNull,
}

/// What one statement does, as far as its down is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    /// It makes something new, fills or drops what the migration made, or
    /// changes what the schema picture holds whole of something that was
    /// there (its privileges, its row security, a publication's tables):
    /// the down reads that back from the picture before the up.
    Adds,
    /// It inserts rows its text names into a table that was there: the
    /// down deletes exactly those (by a key among its constants), the
    /// table named as the up leaves it.
    Inserted(crate::rows::Inserted),
    /// It renames; the statement that renames back.
    Rename(String),
    /// It changes a column of a table that was there.
    Column { table: RelationName, column: String, change: ColumnChange },
    /// It changes rows that were there in a way no SQL puts back (`UPDATE
    /// t`, `DELETE FROM t`, `INSERT … SELECT`).
    Data(String),
    /// It sets or resets storage parameters of a table that was there:
    /// the down puts back what the catalog said of these keys before.
    Options { table: RelationName, keys: Vec<String> },
    /// It drops a column of a table that was there: the down adds it back
    /// as the catalog defined it before, with the indexes and constraints
    /// that went with it; its values are lost.
    DropColumn { table: RelationName, column: String },
    /// It changes the labels of an enum type that was there (`ADD VALUE`,
    /// `RENAME VALUE`, or the swap for a type of the same name with other
    /// labels that Prisma writes): the down makes the type again with the
    /// labels the catalog had before and moves its columns to it.
    Labels(RelationName),
}

/// The shapes of `sql` (one statement), or why it is none of them.
/// `made` gathers the tables the migration's statements make, in order.
pub fn shapes(sql: &str, made: &mut Made) -> Result<Vec<Shape>, String> {
    let tree = pg_query::parse(sql, 0).map_err(|e| format!("it does not parse: {e}"))?;
    let mut out = Vec::new();
    for raw in &tree.protobuf.stmts {
        let Some(node) = raw.stmt.as_ref().and_then(|s| s.node.as_ref()) else { continue };
        out.extend(one(node, sql, made)?);
    }
    Ok(out)
}

/// The columns of tables that were there which `statements` (one
/// migration's, in order) drop: each statement's index, the table and the
/// column. A statement in no shape of this reader is passed over, and a
/// column it drops goes unnamed.
pub fn dropped_columns<'a>(
    statements: impl IntoIterator<Item = &'a str>,
) -> Vec<(usize, RelationName, String)> {
    let mut made = Made::default();
    let mut out = Vec::new();
    for (i, sql) in statements.into_iter().enumerate() {
        for shape in shapes(sql, &mut made).unwrap_or_default() {
            if let Shape::DropColumn { table, column } = shape {
                out.push((i, table, column));
            }
        }
    }
    out
}

fn one(node: &NodeEnum, sql: &str, made: &mut Made) -> Result<Vec<Shape>, String> {
    let adds = Ok(vec![Shape::Adds]);
    match node {
        NodeEnum::CreateStmt(_) => {
            made.tables.extend(made_table(node));
            adds
        }
        NodeEnum::CreateTableAsStmt(s) if s.objtype() == ObjectType::ObjectTable => {
            no_calls(node)?;
            made.tables.extend(made_table(node));
            adds
        }
        NodeEnum::SelectStmt(_) if made_table(node).is_some() => {
            no_calls(node)?;
            made.tables.extend(made_table(node));
            adds
        }
        NodeEnum::IndexStmt(_) => adds,
        NodeEnum::ViewStmt(_)
        | NodeEnum::CreateFunctionStmt(_)
        | NodeEnum::CompositeTypeStmt(_)
        | NodeEnum::CreateDomainStmt(_)
        | NodeEnum::CreateRangeStmt(_)
        | NodeEnum::CreateSeqStmt(_)
        | NodeEnum::CreateTrigStmt(_)
        | NodeEnum::CreatePolicyStmt(_)
        | NodeEnum::CreateExtensionStmt(_)
        | NodeEnum::CreateFdwStmt(_)
        | NodeEnum::CreateForeignServerStmt(_)
        | NodeEnum::CreateUserMappingStmt(_)
        | NodeEnum::CommentStmt(_)
        | NodeEnum::GrantStmt(_)
        | NodeEnum::VariableSetStmt(_)
        // The author's BEGIN … COMMIT around the file: the caller takes
        // only an up that runs in one transaction.
        | NodeEnum::TransactionStmt(_) => adds,
        NodeEnum::CreateSchemaStmt(s) if s.schema_elts.is_empty() => adds,
        NodeEnum::CreateEnumStmt(e) => {
            made.types.extend(type_name(&e.type_name));
            adds
        }
        NodeEnum::AlterEnumStmt(e) => match type_name(&e.type_name) {
            Some(t) if made.has_type(&t) => adds,
            Some(t) => Ok(vec![Shape::Labels(t)]),
            None => Err("an enum without a name".into()),
        },
        NodeEnum::AlterTableStmt(a) => alter_table(a, made).inspect(|_| made.columns.extend(added_columns(a))),
        NodeEnum::RenameStmt(r) => rename_back(r).map(|back| vec![Shape::Rename(back)]),
        // The statements a DO block EXECUTEs as constants, under conditions
        // that only read: where a condition is false they did not run, and
        // the down's proof (which then fails) says so.
        NodeEnum::DoStmt(d) => {
            let executes = crate::plpgsql::guarded_executes(d)
                .ok_or("a DO block that does more than EXECUTE constant statements")?;
            let mut out = Vec::new();
            for sql in executes {
                out.extend(shapes(&sql, made)?);
            }
            Ok(out)
        }
        NodeEnum::DropStmt(d) if d.remove_type() == ObjectType::ObjectTable => {
            let all_made = d.objects.iter().all(|o| object_name(o).is_some_and(|t| made.has(&t)));
            if all_made && !d.objects.is_empty() {
                adds
            } else {
                Err("it drops a table made before it".into())
            }
        }
        NodeEnum::InsertStmt(s) => {
            let into = s.relation.as_ref().map(RelationName::from_range_var);
            match into {
                Some(t) if made.has(&t) => adds,
                _ if s.select_stmt.as_deref().is_some_and(is_values) => inserted(sql),
                _ => data(sql, made),
            }
        }
        NodeEnum::AlterPublicationStmt(p) if p.options.is_empty() => adds,
        NodeEnum::UpdateStmt(u) if made.fills_only_new(u) => adds,
        NodeEnum::UpdateStmt(_) | NodeEnum::DeleteStmt(_) => data(sql, made),
        other => Err(format!("{} may change what was there", kind_of(other))),
    }
}

/// A type's name as the parser gives it (a list of names).
fn type_name(names: &[protobuf::Node]) -> Option<RelationName> {
    let parts: Vec<&str> = names.iter().filter_map(string_value).collect();
    let (name, rest) = parts.split_last()?;
    Some(RelationName { schema: rest.last().map(|s| s.to_string()), name: name.to_string() })
}

/// The enum types a migration swaps for types of the same name with other
/// labels, when that is all it does (Prisma's way to drop a label): it
/// makes new enums, moves columns to them (with their defaults dropped and
/// set again), renames each old type away, gives a new one its name and
/// drops the old. `None` for anything else.
pub fn enum_swap(statements: &[&str]) -> Option<Vec<RelationName>> {
    let mut made: Vec<RelationName> = Vec::new();
    // Old types renamed away: (name now, name before).
    let mut renamed: Vec<(RelationName, RelationName)> = Vec::new();
    let mut swapped: Vec<RelationName> = Vec::new();
    let find = |list: &[RelationName], t: &RelationName| list.iter().position(|m| same_table(m, t));
    for sql in statements {
        let tree = pg_query::parse(sql, 0).ok()?;
        for raw in &tree.protobuf.stmts {
            match raw.stmt.as_ref()?.node.as_ref()? {
                NodeEnum::TransactionStmt(_) => {}
                NodeEnum::CreateEnumStmt(e) => made.push(type_name(&e.type_name)?),
                NodeEnum::AlterTableStmt(a) if a.objtype() == ObjectType::ObjectTable => {
                    for (_, cmd, kind) in alter_cmds(a) {
                        match kind {
                            AlterTableType::AtColumnDefault => {}
                            AlterTableType::AtAlterColumnType => {
                                let Some(NodeEnum::ColumnDef(c)) =
                                    cmd.def.as_ref().and_then(|d| d.node.as_ref())
                                else {
                                    return None;
                                };
                                let to = type_name(&c.type_name.as_ref()?.names)?;
                                find(&made, &to)?;
                            }
                            _ => return None,
                        }
                    }
                }
                NodeEnum::RenameStmt(r) if r.rename_type() == ObjectType::ObjectType => {
                    let from = r.object.as_deref().and_then(object_name)?;
                    let to = RelationName { schema: from.schema.clone(), name: r.newname.clone() };
                    match find(&made, &from) {
                        Some(i) => made[i] = to,
                        None => renamed.push((to, from)),
                    }
                }
                NodeEnum::DropStmt(d)
                    if d.remove_type() == ObjectType::ObjectType
                        && d.behavior() != protobuf::DropBehavior::DropCascade =>
                {
                    for o in &d.objects {
                        let Some(NodeEnum::TypeName(t)) = o.node.as_ref() else { return None };
                        let gone = type_name(&t.names)?;
                        let i = renamed.iter().position(|(now, _)| same_table(now, &gone))?;
                        swapped.push(renamed.remove(i).1);
                    }
                }
                _ => return None,
            }
        }
    }
    // Every old type renamed away is dropped, and every new one took the
    // name of one of them.
    let named = made.iter().all(|m| find(&swapped, m).is_some());
    (renamed.is_empty() && named && !swapped.is_empty()).then_some(swapped)
}

/// An `INSERT`'s source is a `VALUES` list.
fn is_values(n: &protobuf::Node) -> bool {
    matches!(n.node.as_ref(), Some(NodeEnum::SelectStmt(s)) if !s.values_lists.is_empty())
}

/// The rows an `INSERT … VALUES` into a table made before it names.
fn inserted(sql: &str) -> Result<Vec<Shape>, String> {
    match crate::rows::row_changes(sql).as_slice() {
        [RowChange::Inserted(i)] => Ok(vec![Shape::Inserted(i.clone())]),
        _ => {
            Err("it inserts rows into a table made before it in a way read only the full way"
                .into())
        }
    }
}

/// The rows a data statement changes: no loss where it is a table the
/// migration made.
fn data(sql: &str, made: &Made) -> Result<Vec<Shape>, String> {
    let mut out = Vec::new();
    for change in crate::rows::row_changes(sql) {
        match change {
            RowChange::Irreversible { table: Some(t), .. } if made.has(&t) => {}
            RowChange::Irreversible { what, .. } => out.push(Shape::Data(what)),
            RowChange::Inserted(i) if made.has(&i.table) => {}
            _ => return Err("it changes rows in a way read only the full way".into()),
        }
    }
    Ok(out)
}

/// The columns `ALTER TABLE … ADD COLUMN` adds: (table, column).
fn added_columns(a: &protobuf::AlterTableStmt) -> Vec<(RelationName, String)> {
    let Some(table) = a.relation.as_ref().map(RelationName::from_range_var) else {
        return Vec::new();
    };
    alter_cmds(a)
        .filter(|(_, _, kind)| *kind == AlterTableType::AtAddColumn)
        .filter_map(|(_, cmd, _)| match cmd.def.as_ref().and_then(|d| d.node.as_ref()) {
            Some(NodeEnum::ColumnDef(c)) => Some((table.clone(), c.colname.clone())),
            _ => None,
        })
        .collect()
}

fn alter_table(a: &protobuf::AlterTableStmt, made: &Made) -> Result<Vec<Shape>, String> {
    let table = a.relation.as_ref().map(RelationName::from_range_var).ok_or("no table")?;
    let mut out = Vec::new();
    for (_, cmd, kind) in alter_cmds(a) {
        let change = match kind {
            AlterTableType::AtAddColumn | AlterTableType::AtAddConstraint => {
                out.push(Shape::Adds);
                continue;
            }
            _ if made.has(&table) || made.has_column(&table, &cmd.name) => {
                out.push(Shape::Adds);
                continue;
            }
            AlterTableType::AtSetRelOptions | AlterTableType::AtResetRelOptions => {
                out.push(Shape::Options { table: table.clone(), keys: option_keys(cmd)? });
                continue;
            }
            // Row security is in the picture whole: read back from it.
            AlterTableType::AtEnableRowSecurity
            | AlterTableType::AtDisableRowSecurity
            | AlterTableType::AtForceRowSecurity
            | AlterTableType::AtNoForceRowSecurity => {
                out.push(Shape::Adds);
                continue;
            }
            AlterTableType::AtDropColumn => {
                out.push(Shape::DropColumn { table: table.clone(), column: cmd.name.clone() });
                continue;
            }
            AlterTableType::AtAlterColumnType => ColumnChange::Type,
            AlterTableType::AtColumnDefault => ColumnChange::Default,
            AlterTableType::AtSetNotNull | AlterTableType::AtDropNotNull => ColumnChange::NotNull,
            _ => return Err(format!("ALTER TABLE {:?} changes what was there", cmd.subtype())),
        };
        let column = cmd.name.clone();
        out.push(Shape::Column { table: table.clone(), column, change });
    }
    Ok(out)
}

/// The keys an `ALTER TABLE … SET (…)` or `RESET (…)` names; a key of
/// the TOAST table is read only the full way.
fn option_keys(cmd: &protobuf::AlterTableCmd) -> Result<Vec<String>, String> {
    let Some(NodeEnum::List(list)) = cmd.def.as_ref().and_then(|d| d.node.as_ref()) else {
        return Err("storage parameters without a list".into());
    };
    let mut keys = Vec::new();
    for item in &list.items {
        match item.node.as_ref() {
            Some(NodeEnum::DefElem(d)) if d.defnamespace.is_empty() => keys.push(d.defname.clone()),
            _ => return Err("a TOAST storage parameter is read only the full way".into()),
        }
    }
    Ok(keys)
}

/// The statement that renames back what `r` renames: a table, view,
/// column, index, constraint or type.
fn rename_back(r: &protobuf::RenameStmt) -> Result<String, String> {
    use ObjectType as T;
    let rel = r.relation.as_ref();
    let name = |rv: &protobuf::RangeVar, n: &str| match rv.schemaname.as_str() {
        "" => ident(n),
        s => qualified(s, n),
    };
    let keyword = |t: T| match t {
        T::ObjectTable => "TABLE",
        T::ObjectView => "VIEW",
        T::ObjectMatview => "MATERIALIZED VIEW",
        T::ObjectIndex => "INDEX",
        T::ObjectForeignTable => "FOREIGN TABLE",
        _ => "TABLE",
    };
    let (new, old) = (ident(&r.newname), &r.subname);
    Ok(match (r.rename_type(), rel) {
        (t @ (T::ObjectTable | T::ObjectView | T::ObjectMatview | T::ObjectIndex), Some(rv)) => {
            format!(
                "ALTER {} {} RENAME TO {}",
                keyword(t),
                name(rv, &r.newname),
                ident(&rv.relname)
            )
        }
        (T::ObjectColumn, Some(rv)) => {
            let on = keyword(r.relation_type());
            format!("ALTER {on} {} RENAME COLUMN {new} TO {}", name(rv, &rv.relname), ident(old))
        }
        (T::ObjectTabconstraint, Some(rv)) => format!(
            "ALTER TABLE {} RENAME CONSTRAINT {new} TO {}",
            name(rv, &rv.relname),
            ident(old)
        ),
        (T::ObjectType, None) => {
            let t = r.object.as_deref().and_then(object_name).ok_or("no type name")?;
            let renamed = match &t.schema {
                Some(s) => qualified(s, &r.newname),
                None => ident(&r.newname),
            };
            format!("ALTER TYPE {renamed} RENAME TO {}", ident(&t.name))
        }
        _ => return Err("a rename of this kind is read only the full way".into()),
    })
}

/// A `SELECT … INTO` or `CREATE TABLE … AS` whose query calls a function
/// may advance a sequence or write elsewhere.
fn no_calls(node: &NodeEnum) -> Result<(), String> {
    if format!("{node:?}").contains("FuncCall") {
        return Err("its query calls a function".into());
    }
    Ok(())
}

/// The statement's kind as the parser names it.
fn kind_of(node: &NodeEnum) -> String {
    let debug = format!("{node:?}");
    debug.split(['(', ' ']).next().unwrap_or("a statement").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(statements: &[&str]) -> Result<Vec<Shape>, String> {
        let mut made = Made::default();
        let mut out = Vec::new();
        for s in statements {
            out.extend(shapes(s, &mut made)?);
        }
        Ok(out)
    }

    #[test]
    fn dropped_columns_are_those_of_tables_that_were_there() {
        let dropped = dropped_columns([
            "CREATE TABLE t (id int, a text)",
            "ALTER TABLE t DROP COLUMN a",
            "DO $$ BEGIN END $$",
            "ALTER TABLE app.old DROP COLUMN b, DROP COLUMN c",
        ]);
        let old = RelationName { schema: Some("app".into()), name: "old".into() };
        assert_eq!(dropped, [(3, old.clone(), "b".into()), (3, old, "c".into())]);
    }

    #[test]
    fn what_only_adds_is_told_from_what_changes_what_was_there() {
        let all = read(&[
            "CREATE TABLE t (id serial PRIMARY KEY, v text)",
            "CREATE INDEX t_v ON t (v)",
            "ALTER TABLE old ADD COLUMN c int DEFAULT 0, ADD CONSTRAINT c_pos CHECK (c >= 0)",
            "INSERT INTO t (v) VALUES ('a')",
            "UPDATE t SET v = 'b'",
            "CREATE VIEW tv AS SELECT * FROM t",
            "CREATE TYPE e AS ENUM ('a')",
            "COMMENT ON TABLE t IS 'x'",
            "GRANT SELECT ON t TO PUBLIC",
            "SELECT id INTO work FROM t",
            "DROP TABLE work",
        ])
        .unwrap();
        assert!(all.iter().all(|s| *s == Shape::Adds), "{all:?}");
        let inserted = read(&["INSERT INTO old VALUES (1)"]).unwrap();
        let [Shape::Inserted(rows)] = inserted.as_slice() else {
            panic!("an insert of named rows into a table that was there");
        };
        assert_eq!((rows.table.name.as_str(), rows.rows.len()), ("old", 1));
        assert!(read(&["INSERT INTO old VALUES (1) RETURNING id, now()"]).is_ok());
        assert_eq!(
            read(&[
                "ALTER TABLE old ENABLE ROW LEVEL SECURITY",
                "ALTER PUBLICATION p ADD TABLE old"
            ])
            .unwrap(),
            [Shape::Adds, Shape::Adds],
            "what the picture holds whole, read back from it"
        );
        assert!(read(&["DROP TABLE old"]).is_err());
        // Made outside a transaction, it still only adds: its caller proves
        // its drop after applying it.
        assert_eq!(read(&["CREATE INDEX CONCURRENTLY i ON t (v)"]).unwrap(), [Shape::Adds]);
        assert!(read(&["DO $$ BEGIN PERFORM 1; END $$"]).is_err());
        // A DO block that only EXECUTEs constants, under a condition.
        let guarded = "DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_class WHERE relname = 't') THEN \
                       EXECUTE 'ALTER TABLE t RENAME COLUMN a TO b'; END IF; END $$";
        assert_eq!(
            read(&[guarded]).unwrap(),
            [Shape::Rename("ALTER TABLE t RENAME COLUMN b TO a".into())]
        );
        assert!(read(&["DO $$ BEGIN EXECUTE 'UPDATE t SET a = 1'; DELETE FROM t; END $$"]).is_err());
        assert!(read(&["SELECT nextval('s') INTO work FROM t"]).unwrap_err().contains("calls"));
        assert!(read(&["SELECT setval('s', 10)"]).is_err());
        assert!(read(&["ALTER TABLE t ALTER COLUMN v SET STATISTICS 10"]).is_err());
    }

    #[test]
    fn renames_column_changes_and_lost_rows_are_read_with_their_way_back() {
        let shapes = read(&[
            "ALTER TABLE \"Tag\" RENAME COLUMN \"label\" TO \"title\"",
            "ALTER TABLE app.items RENAME TO goods",
            "ALTER INDEX items_name_idx RENAME TO goods_name_idx",
            "ALTER TABLE t2 RENAME CONSTRAINT a TO b",
            "ALTER TYPE app.\"Mood\" RENAME TO mood_old",
            "ALTER TABLE items ALTER COLUMN payload TYPE jsonb USING payload::jsonb, ALTER COLUMN n SET DEFAULT 1",
            "UPDATE items SET n = 2",
        ])
        .unwrap();
        let items = RelationName { schema: None, name: "items".into() };
        assert_eq!(
            shapes,
            [
                Shape::Rename("ALTER TABLE \"Tag\" RENAME COLUMN title TO label".into()),
                Shape::Rename("ALTER TABLE app.goods RENAME TO items".into()),
                Shape::Rename("ALTER INDEX goods_name_idx RENAME TO items_name_idx".into()),
                Shape::Rename("ALTER TABLE t2 RENAME CONSTRAINT b TO a".into()),
                Shape::Rename("ALTER TYPE app.mood_old RENAME TO \"Mood\"".into()),
                Shape::Column {
                    table: items.clone(),
                    column: "payload".into(),
                    change: ColumnChange::Type
                },
                Shape::Column { table: items, column: "n".into(), change: ColumnChange::Default },
                Shape::Data("UPDATE items".into()),
            ]
        );
    }

    #[test]
    fn storage_parameters_and_dropped_columns_are_read_with_what_they_name() {
        let events = RelationName { schema: None, name: "events".into() };
        assert_eq!(
            read(&[
                "ALTER TABLE events SET (autovacuum_vacuum_scale_factor = 0.01, fillfactor = 90)",
                "ALTER TABLE events RESET (fillfactor)",
                "ALTER TABLE events DROP COLUMN legacy",
            ])
            .unwrap(),
            [
                Shape::Options {
                    table: events.clone(),
                    keys: vec!["autovacuum_vacuum_scale_factor".into(), "fillfactor".into()]
                },
                Shape::Options { table: events.clone(), keys: vec!["fillfactor".into()] },
                Shape::DropColumn { table: events, column: "legacy".into() },
            ]
        );
        assert!(read(&["ALTER TABLE events SET (toast.autovacuum_enabled = false)"]).is_err());
        // What the migration made is only added, whatever it does to it.
        assert_eq!(
            read(&["ALTER TABLE events ADD COLUMN c int", "ALTER TABLE events DROP COLUMN c"])
                .unwrap(),
            [Shape::Adds, Shape::Adds]
        );
        let servers = read(&[
            "CREATE SERVER reports FOREIGN DATA WRAPPER postgres_fdw OPTIONS (dbname 'r')",
            "CREATE USER MAPPING FOR CURRENT_USER SERVER reports OPTIONS (user 'r')",
        ]);
        assert_eq!(servers.unwrap(), [Shape::Adds, Shape::Adds]);
    }

    #[test]
    fn an_enum_label_added_or_swapped_away_is_read_as_its_labels() {
        let mood = RelationName { schema: Some("app".into()), name: "Mood".into() };
        assert_eq!(
            read(&["ALTER TYPE app.\"Mood\" ADD VALUE 'sad' BEFORE 'ok'", "COMMIT"]).unwrap(),
            [Shape::Labels(mood.clone()), Shape::Adds]
        );
        assert_eq!(
            read(&["CREATE TYPE e AS ENUM ('a')", "ALTER TYPE e ADD VALUE 'b'"]).unwrap(),
            [Shape::Adds, Shape::Adds],
            "a label added to a type the migration made"
        );
        let swap = [
            "BEGIN",
            "CREATE TYPE \"Priority_new\" AS ENUM ('LOW', 'HIGH')",
            "ALTER TABLE \"Tag\" ALTER COLUMN \"priority\" DROP DEFAULT",
            "ALTER TABLE \"Tag\" ALTER COLUMN \"priority\" TYPE \"Priority_new\" USING (\"priority\"::text::\"Priority_new\")",
            "ALTER TYPE \"Priority\" RENAME TO \"Priority_old\"",
            "ALTER TYPE \"Priority_new\" RENAME TO \"Priority\"",
            "DROP TYPE \"Priority_old\"",
            "ALTER TABLE \"Tag\" ALTER COLUMN \"priority\" SET DEFAULT 'LOW'",
            "COMMIT",
        ];
        let priority = RelationName { schema: None, name: "Priority".into() };
        assert_eq!(enum_swap(&swap), Some(vec![priority]));
        // Anything more, or a swap left half-way, is not one.
        let more: Vec<&str> = swap.iter().copied().chain(["DROP TABLE x"]).collect();
        assert_eq!(enum_swap(&more), None);
        let kept_old: Vec<&str> = swap.iter().copied().filter(|s| !s.starts_with("DROP")).collect();
        assert_eq!(enum_swap(&kept_old), None, "the old type is kept: two types, not a swap");
        let cascade =
            swap.map(
                |s| if s.starts_with("DROP") { "DROP TYPE \"Priority_old\" CASCADE" } else { s },
            );
        assert_eq!(enum_swap(&cascade), None, "a cascade drops what uses the type");
        assert_eq!(enum_swap(&["ALTER TABLE t ALTER COLUMN c TYPE text"]), None);
    }

    /// Issue 43: a column the same migration adds and fills held nothing
    /// before it; an UPDATE that also sets an old column did change rows.
    #[test]
    fn filling_a_column_the_migration_added_loses_nothing() {
        let filled = read(&[
            "ALTER TABLE items ADD COLUMN slug text",
            "UPDATE items SET slug = lower(name)",
            "ALTER TABLE items ALTER COLUMN slug SET NOT NULL",
        ])
        .unwrap();
        assert!(filled.iter().all(|s| *s == Shape::Adds), "{filled:?}");
        let both = read(&[
            "ALTER TABLE items ADD COLUMN slug text",
            "UPDATE items SET slug = name, name = ''",
        ])
        .unwrap();
        assert!(both.iter().any(|s| matches!(s, Shape::Data(_))), "{both:?}");
    }
}
