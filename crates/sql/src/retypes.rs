//! The inverse of a column type change's `USING` expression, where one is
//! known: `convert_to`/`convert_from`, `to_timestamp`/`extract(epoch …)`,
//! a cast to `jsonb` or `json` from text and back. A down that changes the
//! column back computes the old values with it instead of a plain cast
//! (which does not exist between `timestamptz` and `bigint`, and turns
//! `bytea` into its hex text), and says what it cannot restore.

use pg_query::protobuf::{self, Node};
use pg_query::NodeEnum;

use crate::facts::RelationName;
use crate::requires::expression;
use crate::rewrite::ident;

/// A column type change of an `ALTER TABLE` and its `USING` expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retype {
    pub table: RelationName,
    pub column: String,
    /// The expression as SQL; `None` without `USING`.
    pub using: Option<String>,
}

/// The column type changes of `sql` (one statement).
pub fn retypes(sql: &str) -> Vec<Retype> {
    let Ok(tree) = pg_query::parse(sql, 0) else { return Vec::new() };
    let mut out = Vec::new();
    for raw in &tree.protobuf.stmts {
        let Some(NodeEnum::AlterTableStmt(a)) = raw.stmt.as_ref().and_then(|s| s.node.as_ref())
        else {
            continue;
        };
        let Some(rv) = a.relation.as_ref() else { continue };
        let table = RelationName::from_range_var(rv);
        for (_, cmd, kind) in crate::stmt::alter_cmds(a) {
            if kind != protobuf::AlterTableType::AtAlterColumnType {
                continue;
            }
            let Some(NodeEnum::ColumnDef(def)) = cmd.def.as_ref().and_then(|d| d.node.as_ref())
            else {
                continue;
            };
            let using = def.raw_default.as_deref().and_then(expression);
            out.push(Retype { table: table.clone(), column: cmd.name.clone(), using });
        }
    }
    out
}

/// The expression `sql` parsed.
fn parse_expression(sql: &str) -> Option<Node> {
    let tree = pg_query::parse(&format!("SELECT {sql}"), 0).ok()?;
    let stmt = tree.protobuf.stmts.into_iter().next()?.stmt?.node?;
    let NodeEnum::SelectStmt(s) = stmt else { return None };
    let target = s.target_list.into_iter().next()?;
    let NodeEnum::ResTarget(t) = target.node? else { return None };
    t.val.map(|v| *v)
}

/// Whether `n` is the column `column` itself.
fn is_column(n: &Node, column: &str) -> bool {
    match n.node.as_ref() {
        Some(NodeEnum::ColumnRef(c)) => {
            c.fields.last().and_then(crate::stmt::string_value) == Some(column)
        }
        _ => false,
    }
}

/// The last part of a function's name, lower case.
fn function_name(f: &protobuf::FuncCall) -> String {
    f.funcname.last().and_then(crate::stmt::string_value).unwrap_or("").to_ascii_lowercase()
}

/// A cast's type name, last part, lower case.
fn cast_type(c: &protobuf::TypeCast) -> String {
    let names = c.type_name.as_ref().map(|t| t.names.as_slice()).unwrap_or_default();
    names.last().and_then(crate::stmt::string_value).unwrap_or("").to_ascii_lowercase()
}

/// The inverse of a known `USING` expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inverse {
    /// The expression that computes the old value from the new one, of
    /// the column named as the down names it; the down casts it to the
    /// old type.
    pub expression: String,
    /// What the inverse cannot restore, when anything.
    pub loses: Option<String>,
}

/// The inverse of `using`, an expression of column `column` that the up
/// changed the column with, back to a column of type `old_type`.
pub fn inverse(using: &str, column: &str, old_type: &str) -> Option<Inverse> {
    let node = parse_expression(using)?;
    let col = ident(column);
    let exact = |expression: String| Some(Inverse { expression, loses: None });
    match node.node.as_ref()? {
        NodeEnum::FuncCall(f) => {
            let args = &f.args;
            match (function_name(f).as_str(), args.as_slice()) {
                ("convert_to", [arg, encoding]) if is_column(arg, column) => {
                    exact(format!("convert_from({col}, {})", expression(encoding)?))
                }
                ("convert_from", [arg, encoding]) if is_column(arg, column) => {
                    exact(format!("convert_to({col}, {})", expression(encoding)?))
                }
                ("to_timestamp", [arg]) if is_column(arg, column) => Some(Inverse {
                    expression: format!("extract(epoch FROM {col})"),
                    loses: (!old_type.starts_with("double") && !old_type.starts_with("numeric"))
                        .then(|| {
                            "a time set since to a fraction of a second comes back rounded to \
                             whole seconds"
                                .to_string()
                        }),
                }),
                ("extract" | "date_part", [field, arg])
                    if is_column(arg, column)
                        && expression(field).is_some_and(|e| e.trim_matches('\'') == "epoch") =>
                {
                    let back = if old_type.starts_with("timestamp without") {
                        format!("to_timestamp({col}) AT TIME ZONE 'UTC'")
                    } else {
                        format!("to_timestamp({col})")
                    };
                    exact(back)
                }
                _ => None,
            }
        }
        NodeEnum::TypeCast(c) if !matches!(cast_type(c).as_str(), "jsonb" | "json") => {
            // `extract(epoch from at)::bigint`: the cast is the down's own.
            inverse(&expression(c.arg.as_deref()?)?, column, old_type)
        }
        NodeEnum::TypeCast(c) => {
            let target = cast_type(c);
            // `c::jsonb` or `c::text::jsonb`: the column's text, parsed.
            let inner = c.arg.as_deref()?;
            let of_column = is_column(inner, column)
                || matches!(inner.node.as_ref(), Some(NodeEnum::TypeCast(i))
                    if i.arg.as_deref().is_some_and(|a| is_column(a, column)) && cast_type(i) == "text");
            if !of_column || !matches!(target.as_str(), "jsonb" | "json") {
                return None;
            }
            Some(Inverse {
                expression: format!("{col}::text"),
                loses: (target == "jsonb").then(|| {
                    "jsonb keeps no whitespace, key order or duplicate keys: the text comes back \
                     as jsonb writes it"
                        .to_string()
                }),
            })
        }
        _ => None,
    }
}

/// Whether `using` is column `column` cast, at most through `text`, to
/// its new type (`c::t`, `c::text::t`, `c::text[]::t[]`): the values keep
/// their text, so a cast back through text gives each its old value
/// (what Prisma writes to move a column from one enum type to another).
pub fn through_text(using: &str, column: &str) -> bool {
    let Some(node) = parse_expression(using) else { return false };
    let Some(NodeEnum::TypeCast(c)) = node.node.as_ref() else { return is_column(&node, column) };
    let Some(inner) = c.arg.as_deref() else { return false };
    match inner.node.as_ref() {
        Some(NodeEnum::TypeCast(i)) => {
            cast_type(i) == "text" && i.arg.as_deref().is_some_and(|a| is_column(a, column))
        }
        _ => is_column(inner, column),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_using_expressions_have_their_inverse() {
        let r = retypes(
            "ALTER TABLE public.files ALTER COLUMN body TYPE bytea USING convert_to(body, 'UTF8'), \
             ALTER COLUMN n TYPE bigint",
        );
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].using.as_deref(), Some("convert_to(body, 'UTF8')"));
        assert_eq!(r[1].using, None);
        let inv = inverse("convert_to(body, 'UTF8')", "body", "text").unwrap();
        assert_eq!(inv, Inverse { expression: "convert_from(body, 'UTF8')".into(), loses: None });
        let at = inverse("to_timestamp(created)", "created", "bigint").unwrap();
        assert_eq!(at.expression, "extract(epoch FROM created)");
        assert!(at.loses.is_some());
        let epoch =
            inverse("extract(epoch from at)::bigint", "at", "timestamp with time zone").unwrap();
        assert_eq!(epoch.expression, "to_timestamp(at)");
        let local = inverse("EXTRACT(EPOCH FROM at)", "at", "timestamp without time zone").unwrap();
        assert_eq!(local.expression, "to_timestamp(at) AT TIME ZONE 'UTC'");
        let json = inverse("payload::text::jsonb", "payload", "text").unwrap();
        assert_eq!(json.expression, "payload::text");
        assert!(json.loses.is_some());
        assert_eq!(inverse("payload::json", "payload", "text").unwrap().loses, None);
        assert_eq!(inverse("upper(name)", "name", "text"), None);
    }

    #[test]
    fn a_cast_through_text_is_told_from_a_conversion() {
        assert!(through_text("(status::text::state)", "status"));
        assert!(through_text("status::\"State\"", "status"));
        assert!(through_text("kinds::text[]::public.kind[]", "kinds"));
        assert!(through_text("status", "status"));
        assert!(!through_text("upper(status::text)::state", "status"));
        assert!(!through_text("status::int::state", "status"));
        assert!(!through_text("other::text::state", "status"));
    }
}
