//! What a statement requires of the rows already in a table to succeed:
//! a column made NOT NULL needs no row holding NULL, a NOT NULL column
//! added without a default needs an empty table, a UNIQUE constraint or
//! index needs no duplicates, a CHECK no row it rejects, a FOREIGN KEY no
//! orphan. Read from the parse tree, so a check against the live rows can
//! name the rows that would make it fail before it runs (`rollback
//! --dry-run`). A constraint added `NOT VALID` requires nothing of old rows.

use pg_query::protobuf::{self, AlterTableType, ConstrType, Node};
use pg_query::NodeEnum;

use crate::facts::RelationName;
use crate::stmt::{alter_cmds, string_value};

/// One requirement of a statement on a table's rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// No row may hold NULL in `column` (`SET NOT NULL`).
    NotNull { table: RelationName, column: String },
    /// The table must be empty: a NOT NULL column without a default is added.
    Empty { table: RelationName, column: String },
    /// No two rows may share these values (NULLs never clash).
    Unique { table: RelationName, columns: Vec<String> },
    /// No row may make this expression false (SQL, as the parser read it).
    Check { table: RelationName, expr: String },
    /// Every row's non-NULL values must be in the referenced table.
    Reference {
        table: RelationName,
        columns: Vec<String>,
        to: RelationName,
        to_columns: Vec<String>,
    },
}

/// What `sql` (one statement) requires of existing rows.
pub fn requirements(sql: &str) -> Vec<Requirement> {
    let Ok(tree) = pg_query::parse(sql, 0) else { return Vec::new() };
    let mut out = Vec::new();
    for raw in &tree.protobuf.stmts {
        match raw.stmt.as_ref().and_then(|s| s.node.as_ref()) {
            Some(NodeEnum::AlterTableStmt(a)) => alter(a, &mut out),
            Some(NodeEnum::IndexStmt(i)) if i.unique && i.where_clause.is_none() => {
                let columns: Vec<String> = i
                    .index_params
                    .iter()
                    .filter_map(|p| match p.node.as_ref() {
                        Some(NodeEnum::IndexElem(e)) if !e.name.is_empty() => Some(e.name.clone()),
                        _ => None,
                    })
                    .collect();
                if let (Some(table), true) =
                    (rel(&i.relation), columns.len() == i.index_params.len())
                {
                    out.push(Requirement::Unique { table, columns });
                }
            }
            _ => {}
        }
    }
    out
}

fn rel(r: &Option<protobuf::RangeVar>) -> Option<RelationName> {
    r.as_ref().map(|r| RelationName {
        schema: (!r.schemaname.is_empty()).then(|| r.schemaname.clone()),
        name: r.relname.clone(),
    })
}

fn names(list: &[Node]) -> Vec<String> {
    list.iter().filter_map(string_value).map(str::to_string).collect()
}

fn alter(a: &protobuf::AlterTableStmt, out: &mut Vec<Requirement>) {
    let Some(table) = rel(&a.relation) else { return };
    for (_, cmd, kind) in alter_cmds(a) {
        match kind {
            AlterTableType::AtSetNotNull => {
                out.push(Requirement::NotNull { table: table.clone(), column: cmd.name.clone() })
            }
            AlterTableType::AtAddColumn => {
                let Some(NodeEnum::ColumnDef(c)) = cmd.def.as_ref().and_then(|d| d.node.as_ref())
                else {
                    continue;
                };
                let constraints = || {
                    c.constraints.iter().filter_map(|n| match n.node.as_ref() {
                        Some(NodeEnum::Constraint(k)) => Some(k.as_ref()),
                        _ => None,
                    })
                };
                let not_null = c.is_not_null
                    || constraints().any(|k| k.contype() == ConstrType::ConstrNotnull);
                let default = c.raw_default.is_some()
                    || constraints().any(|k| {
                        matches!(
                            k.contype(),
                            ConstrType::ConstrDefault
                                | ConstrType::ConstrIdentity
                                | ConstrType::ConstrGenerated
                        )
                    });
                if not_null && !default {
                    out.push(Requirement::Empty {
                        table: table.clone(),
                        column: c.colname.clone(),
                    });
                }
            }
            AlterTableType::AtAddConstraint => {
                let Some(NodeEnum::Constraint(k)) = cmd.def.as_ref().and_then(|d| d.node.as_ref())
                else {
                    continue;
                };
                if k.skip_validation {
                    continue;
                }
                match k.contype() {
                    ConstrType::ConstrUnique | ConstrType::ConstrPrimary
                        if k.indexname.is_empty() =>
                    {
                        out.push(Requirement::Unique {
                            table: table.clone(),
                            columns: names(&k.keys),
                        });
                        if k.contype() == ConstrType::ConstrPrimary {
                            for column in names(&k.keys) {
                                out.push(Requirement::NotNull { table: table.clone(), column });
                            }
                        }
                    }
                    ConstrType::ConstrCheck => {
                        if let Some(expr) = k.raw_expr.as_deref().and_then(expression) {
                            out.push(Requirement::Check { table: table.clone(), expr });
                        }
                    }
                    ConstrType::ConstrForeign => {
                        if let Some(to) = rel(&k.pktable) {
                            out.push(Requirement::Reference {
                                table: table.clone(),
                                columns: names(&k.fk_attrs),
                                to,
                                to_columns: names(&k.pk_attrs),
                            });
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
}

/// An expression as SQL text, through the real deparser.
pub fn expression(n: &Node) -> Option<String> {
    let select = NodeEnum::SelectStmt(Box::new(protobuf::SelectStmt {
        target_list: vec![Node {
            node: Some(NodeEnum::ResTarget(Box::new(protobuf::ResTarget {
                val: Some(Box::new(n.clone())),
                ..Default::default()
            }))),
        }],
        limit_option: protobuf::LimitOption::Default as i32,
        op: protobuf::SetOperation::SetopNone as i32,
        ..Default::default()
    }));
    let text = select.deparse(pg_query::DeparseOptions::default()).ok()?;
    text.strip_prefix("SELECT ").map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str) -> RelationName {
        RelationName { schema: None, name: name.into() }
    }

    #[test]
    fn what_a_down_needs_of_the_rows_it_meets() {
        assert_eq!(
            requirements("ALTER TABLE users ADD COLUMN legacy text NOT NULL"),
            [Requirement::Empty { table: t("users"), column: "legacy".into() }]
        );
        assert_eq!(
            requirements("ALTER TABLE users ADD COLUMN legacy text NOT NULL DEFAULT ''"),
            []
        );
        assert_eq!(
            requirements("ALTER TABLE users ALTER COLUMN email SET NOT NULL"),
            [Requirement::NotNull { table: t("users"), column: "email".into() }]
        );
        assert_eq!(
            requirements("ALTER TABLE ONLY users ADD CONSTRAINT users_email_key UNIQUE (email)"),
            [Requirement::Unique { table: t("users"), columns: vec!["email".into()] }]
        );
        assert_eq!(
            requirements("CREATE UNIQUE INDEX users_email ON public.users (email)"),
            [Requirement::Unique {
                table: RelationName { schema: Some("public".into()), name: "users".into() },
                columns: vec!["email".into()]
            }]
        );
        let check =
            requirements("ALTER TABLE plans ADD CONSTRAINT price_positive CHECK (price > 0)");
        assert!(
            matches!(&check[..], [Requirement::Check { expr, .. }] if expr == "price > 0"),
            "{check:?}"
        );
        assert_eq!(
            requirements("ALTER TABLE plans ADD CONSTRAINT p CHECK (price > 0) NOT VALID"),
            []
        );
        assert!(matches!(
            &requirements("ALTER TABLE b ADD CONSTRAINT f FOREIGN KEY (a_id) REFERENCES a (id)")[..],
            [Requirement::Reference { columns, to_columns, .. }] if columns == &["a_id"] && to_columns == &["id"]
        ));
    }
}
