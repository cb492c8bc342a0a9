//! One parsed statement with its place in the file, and the small readers
//! of parse trees that rules, the batch and the runner share: names of
//! dropped objects, string nodes, `ALTER TABLE` subcommands, types as
//! written.

use std::ops::Range;

use pg_query::protobuf::{self, AlterTableType, ConstrType, ScanToken, Token};
use pg_query::NodeEnum;

use crate::facts::{Facts, RelationName};
use crate::types::TypeSpec;

/// One statement, parsed, with its place in the file.
pub struct Stmt<'a> {
    /// 0-based position among the file's statements.
    pub index: usize,
    pub node: &'a NodeEnum,
    /// Byte range in the file, from the first keyword to the last token.
    pub start: usize,
    pub end: usize,
    pub facts: Facts,
    /// Indexes of the statement's tokens in the file's token list.
    pub toks: Range<usize>,
    /// Byte offset in the file of the text the statement was parsed from:
    /// locations in its tree count from there.
    pub base: usize,
}

impl Stmt<'_> {
    pub fn span(&self) -> Range<usize> {
        self.start..self.end
    }
}

/// Same table, allowing either side to leave the schema out.
pub fn same_table(a: &RelationName, b: &RelationName) -> bool {
    a.name == b.name && (a.schema.is_none() || b.schema.is_none() || a.schema == b.schema)
}

/// `schema.table` or `table`, as people write it.
pub fn display_table(t: &RelationName) -> String {
    match &t.schema {
        Some(s) => format!("{s}.{}", t.name),
        None => t.name.clone(),
    }
}

/// `schema.table` from config, split.
pub fn split_configured(configured: &str) -> (Option<&str>, &str) {
    match configured.split_once('.') {
        Some((schema, table)) if !schema.is_empty() && !table.contains('.') => {
            (Some(schema), table)
        }
        _ => (None, configured),
    }
}

/// The name in a `DROP` object list entry: a list of strings, the last
/// one the name, the one before it the schema.
pub fn object_name(node: &protobuf::Node) -> Option<RelationName> {
    let parts: Vec<&str> = match node.node.as_ref()? {
        NodeEnum::List(l) => l.items.iter().filter_map(string_value).collect(),
        NodeEnum::String(s) => vec![s.sval.as_str()],
        _ => return None,
    };
    let (name, rest) = parts.split_last()?;
    Some(RelationName { schema: rest.last().map(|s| s.to_string()), name: name.to_string() })
}

/// The text of a `String` node.
pub fn string_value(node: &protobuf::Node) -> Option<&str> {
    match node.node.as_ref()? {
        NodeEnum::String(s) => Some(s.sval.as_str()),
        _ => None,
    }
}

/// The `AlterTableCmd`s of an `ALTER TABLE`, with their position.
pub fn alter_cmds(
    stmt: &protobuf::AlterTableStmt,
) -> impl Iterator<Item = (usize, &protobuf::AlterTableCmd, AlterTableType)> {
    stmt.cmds.iter().enumerate().filter_map(|(k, c)| match c.node.as_ref()? {
        NodeEnum::AlterTableCmd(cmd) => Some((k, cmd.as_ref(), cmd.subtype())),
        _ => None,
    })
}

/// A type as written: `pg_catalog.varchar` with modifiers `[50]`.
const SERIAL: &[&str] = &["serial", "serial2", "serial4", "serial8", "smallserial", "bigserial"];

/// Whether a column as defined gets a value in every existing row when it
/// is added: a default, identity, serial or generated.
pub fn column_gets_value(def: &protobuf::ColumnDef) -> bool {
    def.raw_default.is_some()
        || def.constraints.iter().any(|c| {
            matches!(c.node.as_ref(), Some(NodeEnum::Constraint(c)) if matches!(
                c.contype(),
                ConstrType::ConstrDefault | ConstrType::ConstrIdentity | ConstrType::ConstrGenerated
            ))
        })
        || def.type_name.as_ref().is_some_and(|t| SERIAL.contains(&type_spec(t, false).base()))
}

pub fn type_spec(tn: &protobuf::TypeName, using: bool) -> TypeSpec {
    let names: Vec<&str> = tn.names.iter().filter_map(string_value).collect();
    let modifiers = tn
        .typmods
        .iter()
        .filter_map(|m| match m.node.as_ref()? {
            NodeEnum::AConst(c) => match c.val.as_ref()? {
                protobuf::a_const::Val::Ival(i) => Some(i64::from(i.ival)),
                _ => None,
            },
            _ => None,
        })
        .collect();
    TypeSpec { name: names.join("."), modifiers, array: !tn.array_bounds.is_empty(), using }
}

/// A type as `format_type` writes it (`numeric(10,2)`, `character
/// varying(50)`, `integer`), read by the parser.
fn written_type(text: &str) -> Option<TypeSpec> {
    let sql = format!("ALTER TABLE t ALTER COLUMN c TYPE {text}");
    let parsed = pg_query::parse(&sql, 0).ok()?;
    let stmt = parsed.protobuf.stmts.first()?.stmt.as_ref()?.node.as_ref()?;
    let NodeEnum::AlterTableStmt(a) = stmt else { return None };
    let (_, cmd, _) = alter_cmds(a).next()?;
    match cmd.def.as_ref()?.node.as_ref()? {
        NodeEnum::ColumnDef(d) => d.type_name.as_ref().map(|t| type_spec(t, false)),
        _ => None,
    }
}

/// Whether every value of type `old` fits type `new` unchanged, both as
/// `format_type` writes them: a change from one to the other changes no
/// value (see [`TypeSpec::widens`]).
pub fn widens_written(old: &str, new: &str) -> bool {
    match (written_type(old), written_type(new)) {
        (Some(o), Some(n)) => !o.array && n.widens(o.base(), &o.modifiers),
        _ => false,
    }
}

/// Whether a CHECK constraint, as `pg_get_constraintdef` prints it (e.g.
/// `CHECK ((email IS NOT NULL))`), proves `column` is never NULL, so that
/// `SET NOT NULL` can skip its scan. Read with the parser, not by pattern.
pub fn check_proves_not_null(definition: &str, column: &str) -> bool {
    let sql = format!("ALTER TABLE t ADD {definition}");
    let Ok(parsed) = pg_query::parse(&sql, 0) else { return false };
    let Some(NodeEnum::AlterTableStmt(a)) =
        parsed.protobuf.stmts.first().and_then(|s| s.stmt.as_ref()).and_then(|n| n.node.as_ref())
    else {
        return false;
    };
    let proves = proves_not_null;
    let proven =
        alter_cmds(a).any(|(_, cmd, _)| match cmd.def.as_ref().and_then(|d| d.node.as_ref()) {
            Some(NodeEnum::Constraint(c)) => proves(c.raw_expr.as_deref(), column),
            _ => false,
        });
    proven
}

/// Whether a CHECK constraint's expression proves `column` is never
/// NULL: `column IS NOT NULL`, alone or among the terms of an AND.
pub fn proves_not_null(node: Option<&protobuf::Node>, column: &str) -> bool {
    match node.and_then(|n| n.node.as_ref()) {
        Some(NodeEnum::NullTest(t)) => {
            t.nulltesttype() == protobuf::NullTestType::IsNotNull
                && matches!(t.arg.as_deref().and_then(|a| a.node.as_ref()),
                    Some(NodeEnum::ColumnRef(c))
                        if c.fields.last().and_then(string_value) == Some(column))
        }
        Some(NodeEnum::BoolExpr(b)) if b.boolop() == protobuf::BoolExprType::AndExpr => {
            b.args.iter().any(|a| proves_not_null(Some(a), column))
        }
        _ => false,
    }
}

pub fn is_comment(t: &ScanToken) -> bool {
    t.token == Token::SqlComment as i32 || t.token == Token::CComment as i32
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_type_written_as_format_type_writes_it_is_read_for_widening() {
        assert!(super::widens_written("numeric(10,2)", "numeric(12,2)"));
        assert!(super::widens_written("character varying(50)", "character varying(100)"));
        assert!(super::widens_written("integer", "bigint"));
        assert!(super::widens_written("character varying(50)", "text"));
        assert!(!super::widens_written("numeric(12,2)", "numeric(10,2)"));
        assert!(!super::widens_written("bigint", "integer"));
        assert!(!super::widens_written("text", "integer"));
        assert!(!super::widens_written("integer[]", "bigint[]"));
    }
}
