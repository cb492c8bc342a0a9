//! The column types a file writes: each column of a `CREATE TABLE`, each
//! `ADD COLUMN` and each `ALTER COLUMN ... TYPE`, with the type as the
//! parser reads it and whether the column is a key. The type-preference
//! rules (BS801–BS805) read them from here.

use pg_query::protobuf::{AlterTableType, ColumnDef, ConstrType, Constraint, TypeName};
use pg_query::NodeEnum;

use crate::context::Cx;
use backstop_sql::facts::RelationName;
use backstop_sql::stmt::{alter_cmds, string_value, Stmt};

/// One column type written in a statement.
pub(crate) struct ColumnType<'s, 'a> {
    pub stmt: &'s Stmt<'a>,
    pub table: RelationName,
    pub column: String,
    /// The type's name without its schema, as the parser spells it:
    /// `int4` for `integer`, `bpchar` for `char(n)` (`"char"` quoted, a
    /// one-byte type, stays `char`), `serial` as written.
    pub name: String,
    /// A length or precision is written: `varchar(40)`.
    pub modified: bool,
    /// A primary key, unique, identity or foreign key column.
    pub key: bool,
    /// Where the type is written, for the finding's span.
    pub location: i32,
}

/// Every column type the statements of `cx` write, in order.
pub(crate) fn column_types<'s, 'a>(cx: &'s Cx<'a>) -> Vec<ColumnType<'s, 'a>> {
    let mut out = Vec::new();
    for stmt in &cx.stmts {
        match stmt.node {
            NodeEnum::CreateStmt(c) => {
                let Some(rv) = c.relation.as_ref() else { continue };
                let table = Cx::rel(rv);
                let keys: Vec<&str> = c
                    .table_elts
                    .iter()
                    .filter_map(|e| match e.node.as_ref() {
                        Some(NodeEnum::Constraint(k)) => Some(&**k),
                        _ => None,
                    })
                    .flat_map(key_columns)
                    .collect();
                for e in &c.table_elts {
                    if let Some(NodeEnum::ColumnDef(col)) = e.node.as_ref() {
                        let key = keys.contains(&col.colname.as_str());
                        out.extend(of_column(stmt, &table, col, key));
                    }
                }
            }
            NodeEnum::AlterTableStmt(a) => {
                let Some(rv) = a.relation.as_ref() else { continue };
                let table = Cx::rel(rv);
                for (_, cmd, kind) in alter_cmds(a) {
                    let Some(NodeEnum::ColumnDef(col)) =
                        cmd.def.as_ref().and_then(|d| d.node.as_ref())
                    else {
                        continue;
                    };
                    match kind {
                        AlterTableType::AtAddColumn => {
                            out.extend(of_column(stmt, &table, col, false))
                        }
                        AlterTableType::AtAlterColumnType => {
                            let col = ColumnDef { colname: cmd.name.clone(), ..(**col).clone() };
                            out.extend(of_column(stmt, &table, &col, false));
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// The column's type, a key where `key` says so or one of its own
/// constraints makes it one.
fn of_column<'s, 'a>(
    stmt: &'s Stmt<'a>,
    table: &RelationName,
    col: &ColumnDef,
    key: bool,
) -> Option<ColumnType<'s, 'a>> {
    let tn: &TypeName = col.type_name.as_ref()?;
    let names: Vec<&str> = tn.names.iter().filter_map(string_value).collect();
    let name = names.last()?;
    let own_key = col.constraints.iter().any(|c| match c.node.as_ref() {
        Some(NodeEnum::Constraint(k)) => matches!(
            k.contype(),
            ConstrType::ConstrPrimary
                | ConstrType::ConstrUnique
                | ConstrType::ConstrIdentity
                | ConstrType::ConstrForeign
        ),
        _ => false,
    });
    Some(ColumnType {
        stmt,
        table: table.clone(),
        column: col.colname.clone(),
        name: name.to_string(),
        modified: !tn.typmods.is_empty(),
        key: key || own_key,
        location: tn.location,
    })
}

/// The columns a table constraint makes keys of.
fn key_columns(k: &Constraint) -> Vec<&str> {
    let cols = match k.contype() {
        ConstrType::ConstrPrimary | ConstrType::ConstrUnique => &k.keys,
        ConstrType::ConstrForeign => &k.fk_attrs,
        _ => return Vec::new(),
    };
    cols.iter().filter_map(string_value).collect()
}

#[cfg(test)]
mod tests {
    use crate::{check, Code, Input, Options};

    /// The codes of the opt-in rules `sql` gets with every one turned on.
    pub(crate) fn style(sql: &str) -> Vec<Code> {
        let opts = Options {
            enable: Code::ALL.iter().copied().filter(|c| c.opt_in()).collect(),
            ..Options::default()
        };
        let report = check(&[Input::file("1.sql", sql)], &opts);
        report.findings.iter().map(|f| f.code).filter(|c| c.opt_in()).collect()
    }

    #[test]
    fn each_preference_names_its_own_type_and_is_off_unless_turned_on() {
        let sql =
            "CREATE TABLE t (id serial PRIMARY KEY, code char(2), name varchar(40), at timestamp);";
        let off = check(&[Input::file("1.sql", sql)], &Options::default());
        assert!(off.findings.iter().all(|f| !f.code.opt_in()));
        let mut found = style(sql);
        found.sort();
        assert_eq!(
            found,
            [Code::BS801, Code::BS802, Code::BS803, Code::BS804, Code::BS805, Code::BS806]
        );
        let good = "CREATE TABLE app.t (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, \
                    code text, name text, at timestamptz, n int, \"char\" \"char\");";
        assert_eq!(style(good), []);
    }

    #[test]
    fn keys_are_read_from_table_constraints_and_added_columns() {
        assert_eq!(style("CREATE TABLE app.t (id int, PRIMARY KEY (id));"), [Code::BS803]);
        assert_eq!(style("CREATE TABLE app.t (a int, b int, UNIQUE (a));"), [Code::BS803]);
        assert_eq!(
            style("ALTER TABLE app.t ADD COLUMN u smallint REFERENCES app.u (id);"),
            [Code::BS803]
        );
        assert_eq!(style("ALTER TABLE app.t ALTER COLUMN at TYPE timestamp;"), [Code::BS805]);
        assert_eq!(style("ALTER TABLE app.t ADD COLUMN n int;"), []);
    }
}
