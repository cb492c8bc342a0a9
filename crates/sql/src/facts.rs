//! What a statement does, read from its parse tree: the facts the engine
//! needs before it runs the statement (does it need to run outside a
//! transaction, which tables does it create, drop, rewrite or write).

use pg_query::protobuf::{self, AlterTableType, DropBehavior};
use pg_query::NodeEnum;

/// A relation named in a statement, as written (schema may be empty).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RelationName {
    pub schema: Option<String>,
    pub name: String,
}

impl RelationName {
    pub fn from_range_var(rv: &protobuf::RangeVar) -> Self {
        RelationName {
            schema: (!rv.schemaname.is_empty()).then(|| rv.schemaname.clone()),
            name: rv.relname.clone(),
        }
    }
}

/// What the engine must know about a statement before running it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// `BEGIN`, `COMMIT`, `ROLLBACK`, `SAVEPOINT`...: Backstop owns the transaction.
    pub transaction_control: bool,
    /// PostgreSQL refuses to run it inside a transaction block (e.g.
    /// `CREATE INDEX CONCURRENTLY`); names the construct.
    pub outside_transaction_only: Option<&'static str>,
    /// Relations whose storage the statement replaces (TRUNCATE, a rewriting
    /// ALTER TABLE, CLUSTER, VACUUM FULL): their rows must be counted around it.
    pub rewrites: Vec<RelationName>,
    /// The table a `CREATE TABLE` (`CREATE TABLE AS`, `SELECT … INTO`,
    /// `CREATE MATERIALIZED VIEW`) makes.
    pub creates_table: Option<RelationName>,
    /// Tables a `DROP TABLE` removes.
    pub drops_tables: Vec<RelationName>,
    /// Columns `ALTER TABLE ... ADD COLUMN` adds: (table, column).
    pub adds_columns: Vec<(RelationName, String)>,
    /// Columns `ALTER TABLE ... DROP COLUMN` removes: (table, column).
    pub drops_columns: Vec<(RelationName, String)>,
    /// A `TRUNCATE ... CASCADE`, which also empties tables it does not name.
    pub truncate_cascade: bool,
    /// Tables a `TRUNCATE` empties.
    pub truncates: Vec<RelationName>,
    /// The table a `DELETE` removes rows from.
    pub deletes_from: Option<RelationName>,
    /// The value an `ALTER TYPE ... ADD VALUE` adds, and to which type.
    pub adds_enum_value: Option<EnumValue>,
    /// The enum type a `CREATE TYPE ... AS ENUM` makes, as written.
    pub creates_enum_type: Option<String>,
    /// A function or procedure whose body PostgreSQL reads only when it
    /// runs (any language but SQL), by name.
    pub defines_routine: Option<Routine>,
    /// `CREATE TRIGGER`: the table and the function it runs.
    pub trigger: Option<(RelationName, String)>,
    /// The table an `INSERT`, `UPDATE`, `DELETE`, `MERGE` or `COPY ... FROM` writes.
    pub writes_table: Option<RelationName>,
    /// The table an `UPDATE` changes rows of, and the columns it sets.
    pub updates: Option<RelationName>,
    pub updated_columns: Vec<String>,
    /// `ALTER TABLE ... ENABLE ROW LEVEL SECURITY`.
    pub enables_rls: bool,
    /// A table (or view) or one of its columns that `ALTER ... RENAME` gives
    /// a new name: later statements know it by that name.
    pub renames: Option<Rename>,
}

/// `ALTER TABLE t RENAME TO n` (no column) or `ALTER TABLE t RENAME
/// COLUMN c TO n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rename {
    pub table: RelationName,
    /// The column renamed; `None` when the table itself is.
    pub column: Option<String>,
    pub to: String,
}

/// A label an `ALTER TYPE ... ADD VALUE` adds to an enum type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnumValue {
    /// The type as written: `mood` or `app.mood`.
    pub type_name: String,
    pub label: String,
}

/// A routine whose body is text until it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routine {
    pub name: String,
    /// `CREATE OR REPLACE`: an existing routine (and the triggers that run
    /// it) may get the new body.
    pub replace: bool,
}

/// The table (or materialized view) a statement makes: `CREATE TABLE`,
/// `CREATE TABLE … AS`, `CREATE MATERIALIZED VIEW` and `SELECT … INTO`,
/// which PostgreSQL's parser leaves as a SELECT with its INTO clause
/// (in a set operation, on the leftmost SELECT).
pub fn made_table(node: &NodeEnum) -> Option<RelationName> {
    let into = match node {
        NodeEnum::CreateStmt(s) => return s.relation.as_ref().map(RelationName::from_range_var),
        NodeEnum::CreateTableAsStmt(s) => s.into.as_deref(),
        NodeEnum::SelectStmt(s) => {
            let mut select = s;
            while select.into_clause.is_none() {
                let Some(left) = select.larg.as_ref() else { break };
                select = left;
            }
            select.into_clause.as_deref()
        }
        _ => None,
    };
    into.and_then(|i| i.rel.as_ref()).map(RelationName::from_range_var)
}

pub fn facts_of(node: &NodeEnum) -> Facts {
    let mut facts = Facts::default();
    match node {
        NodeEnum::TransactionStmt(_) => facts.transaction_control = true,
        NodeEnum::IndexStmt(s) if s.concurrent => {
            facts.outside_transaction_only = Some("CREATE INDEX CONCURRENTLY")
        }
        NodeEnum::DropStmt(s) if s.concurrent => {
            facts.outside_transaction_only = Some("DROP INDEX CONCURRENTLY")
        }
        NodeEnum::ReindexStmt(s) if has_option(&s.params, "concurrently") => {
            facts.outside_transaction_only = Some("REINDEX CONCURRENTLY");
        }
        NodeEnum::VacuumStmt(s) if s.is_vacuumcmd => {
            facts.outside_transaction_only = Some("VACUUM");
            if has_option(&s.options, "full") {
                facts.rewrites.extend(s.rels.iter().filter_map(|r| match &r.node {
                    Some(NodeEnum::VacuumRelation(v)) => {
                        v.relation.as_ref().map(RelationName::from_range_var)
                    }
                    _ => None,
                }));
            }
        }
        NodeEnum::CreateStmt(_) | NodeEnum::CreateTableAsStmt(_) | NodeEnum::SelectStmt(_) => {
            facts.creates_table = made_table(node);
        }
        NodeEnum::CreatedbStmt(_) => facts.outside_transaction_only = Some("CREATE DATABASE"),
        NodeEnum::DropdbStmt(_) => facts.outside_transaction_only = Some("DROP DATABASE"),
        NodeEnum::AlterSystemStmt(_) => facts.outside_transaction_only = Some("ALTER SYSTEM"),
        NodeEnum::CreateTableSpaceStmt(_) => {
            facts.outside_transaction_only = Some("CREATE TABLESPACE")
        }
        NodeEnum::DropTableSpaceStmt(_) => facts.outside_transaction_only = Some("DROP TABLESPACE"),
        NodeEnum::TruncateStmt(s) => {
            facts.truncate_cascade = s.behavior == DropBehavior::DropCascade as i32;
            facts.truncates.extend(s.relations.iter().filter_map(|r| match &r.node {
                Some(NodeEnum::RangeVar(rv)) => Some(RelationName::from_range_var(rv)),
                _ => None,
            }));
            facts.rewrites.extend(facts.truncates.iter().cloned());
        }
        NodeEnum::DeleteStmt(s) => {
            facts.deletes_from = written(&s.relation);
            facts.writes_table = facts.deletes_from.clone();
        }
        NodeEnum::ClusterStmt(s) => {
            facts.rewrites.extend(s.relation.as_ref().map(RelationName::from_range_var));
        }
        NodeEnum::DropStmt(s) if s.remove_type == protobuf::ObjectType::ObjectTable as i32 => {
            facts.drops_tables.extend(s.objects.iter().filter_map(dropped_name));
        }
        NodeEnum::AlterTableStmt(s) => {
            if let Some(rel) = s.relation.as_ref().map(RelationName::from_range_var) {
                for cmd in s.cmds.iter().filter_map(|c| match &c.node {
                    Some(NodeEnum::AlterTableCmd(cmd)) => Some(cmd),
                    _ => None,
                }) {
                    match AlterTableType::try_from(cmd.subtype) {
                        Ok(AlterTableType::AtAddColumn) => {
                            if let Some(NodeEnum::ColumnDef(col)) =
                                cmd.def.as_ref().and_then(|d| d.node.as_ref())
                            {
                                facts.adds_columns.push((rel.clone(), col.colname.clone()));
                            }
                        }
                        Ok(AlterTableType::AtDropColumn) => {
                            facts.drops_columns.push((rel.clone(), cmd.name.clone()));
                        }
                        Ok(AlterTableType::AtEnableRowSecurity) => facts.enables_rls = true,
                        _ => {}
                    }
                }
            }
            let rewriting = s.cmds.iter().any(|c| match &c.node {
                Some(NodeEnum::AlterTableCmd(cmd)) => rewrites_table(cmd.subtype),
                _ => false,
            });
            if rewriting {
                facts.rewrites.extend(s.relation.as_ref().map(RelationName::from_range_var));
            }
        }
        NodeEnum::AlterEnumStmt(s) if !s.new_val.is_empty() => {
            let type_name = dotted(&s.type_name);
            facts.adds_enum_value = Some(EnumValue { type_name, label: s.new_val.clone() });
        }
        NodeEnum::RenameStmt(s) => facts.renames = rename_of(s),
        NodeEnum::CreateEnumStmt(s) => facts.creates_enum_type = Some(dotted(&s.type_name)),
        NodeEnum::CreateFunctionStmt(f) if f.sql_body.is_none() && routine_language(f) != "sql" => {
            let name = f.funcname.last().map(|n| dotted(std::slice::from_ref(n)));
            facts.defines_routine = name.map(|name| Routine { name, replace: f.replace });
        }
        NodeEnum::CreateTrigStmt(t) => {
            let table = t.relation.as_ref().map(RelationName::from_range_var);
            let function = t.funcname.last().map(|n| dotted(std::slice::from_ref(n)));
            facts.trigger = table.zip(function);
        }
        NodeEnum::InsertStmt(s) => facts.writes_table = written(&s.relation),
        NodeEnum::UpdateStmt(s) => {
            facts.writes_table = written(&s.relation);
            facts.updates = facts.writes_table.clone();
            facts.updated_columns = set_columns(s);
        }
        NodeEnum::MergeStmt(s) => facts.writes_table = written(&s.relation),
        NodeEnum::CopyStmt(s) if s.is_from => facts.writes_table = written(&s.relation),
        // PostgreSQL refuses a DO block's COMMIT or ROLLBACK inside a
        // transaction block ("invalid transaction termination").
        NodeEnum::DoStmt(d) if crate::plpgsql::do_block_ends_transactions(d) => {
            facts.outside_transaction_only = Some("a DO block that commits")
        }
        // `IF NOT EXISTS (…) THEN ALTER TYPE … ADD VALUE …`: the value is
        // added as by a plain ADD VALUE, and used later under the same rule.
        NodeEnum::DoStmt(d) => facts.adds_enum_value = enum_value_added_in(d),
        _ => {}
    }
    facts
}

/// The columns an `UPDATE` sets.
fn set_columns(s: &protobuf::UpdateStmt) -> Vec<String> {
    s.target_list
        .iter()
        .filter_map(|t| match t.node.as_ref() {
            Some(NodeEnum::ResTarget(r)) => Some(r.name.clone()),
            _ => None,
        })
        .collect()
}

/// The enum value a `DO` block adds with `ALTER TYPE … ADD VALUE` as
/// written (the first, when it adds several).
fn enum_value_added_in(d: &protobuf::DoStmt) -> Option<EnumValue> {
    crate::plpgsql::sql_statements(d).iter().find_map(|sql| {
        let tree = pg_query::parse(sql, 0).ok()?;
        tree.protobuf.stmts.iter().find_map(|raw| match raw.stmt.as_ref()?.node.as_ref()? {
            NodeEnum::AlterEnumStmt(s) if !s.new_val.is_empty() => {
                Some(EnumValue { type_name: dotted(&s.type_name), label: s.new_val.clone() })
            }
            _ => None,
        })
    })
}

fn rename_of(s: &protobuf::RenameStmt) -> Option<Rename> {
    use protobuf::ObjectType as T;
    let table = s.relation.as_ref().map(RelationName::from_range_var)?;
    let column = match s.rename_type() {
        T::ObjectTable | T::ObjectView | T::ObjectMatview | T::ObjectForeignTable => None,
        T::ObjectColumn => Some(s.subname.clone()),
        _ => return None,
    };
    Some(Rename { table, column, to: s.newname.clone() })
}

fn written(relation: &Option<protobuf::RangeVar>) -> Option<RelationName> {
    relation.as_ref().map(RelationName::from_range_var)
}

/// `a.b` from a list of `String` nodes.
fn dotted(items: &[protobuf::Node]) -> String {
    let parts: Vec<&str> = items
        .iter()
        .filter_map(|i| match &i.node {
            Some(NodeEnum::String(s)) => Some(s.sval.as_str()),
            _ => None,
        })
        .collect();
    parts.join(".")
}

/// The `LANGUAGE` of a `CREATE FUNCTION`, lowercase (`sql` when unsaid).
pub fn routine_language(f: &protobuf::CreateFunctionStmt) -> String {
    f.options
        .iter()
        .find_map(|o| match &o.node {
            Some(NodeEnum::DefElem(d)) if d.defname == "language" => {
                match d.arg.as_ref().and_then(|a| a.node.as_ref()) {
                    Some(NodeEnum::String(s)) => Some(s.sval.to_lowercase()),
                    _ => None,
                }
            }
            _ => None,
        })
        .unwrap_or_else(|| "sql".to_string())
}

/// `DROP TABLE a.b` names its tables as lists of strings.
fn dropped_name(object: &protobuf::Node) -> Option<RelationName> {
    let Some(NodeEnum::List(list)) = &object.node else {
        return None;
    };
    let parts: Vec<String> = list
        .items
        .iter()
        .filter_map(|i| match &i.node {
            Some(NodeEnum::String(s)) => Some(s.sval.clone()),
            _ => None,
        })
        .collect();
    match parts.as_slice() {
        [name] => Some(RelationName { schema: None, name: name.clone() }),
        [.., schema, name] => {
            Some(RelationName { schema: Some(schema.clone()), name: name.clone() })
        }
        [] => None,
    }
}

/// ALTER TABLE subcommands that may give the table new storage.
fn rewrites_table(subtype: i32) -> bool {
    matches!(
        AlterTableType::try_from(subtype),
        Ok(AlterTableType::AtAddColumn
            | AlterTableType::AtAlterColumnType
            | AlterTableType::AtSetAccessMethod
            | AlterTableType::AtSetLogged
            | AlterTableType::AtSetUnLogged
            | AlterTableType::AtSetTableSpace
            | AlterTableType::AtDropExpression
            | AlterTableType::AtSetExpression)
    )
}

fn has_option(options: &[protobuf::Node], name: &str) -> bool {
    options.iter().any(|o| matches!(&o.node, Some(NodeEnum::DefElem(d)) if d.defname == name))
}
