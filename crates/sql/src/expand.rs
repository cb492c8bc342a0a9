//! Which statements of an up have an expand form: a way to serve the new
//! shape beside the old one without changing what the running application
//! reads and writes. Pure reading of the parse tree; what the database
//! says (does the table exist, is the column there) is the engine's part.
//!
//! The forms so far: `ADD COLUMN` that is nullable or gets a constant
//! default (added to the table for real: the old shape never names it),
//! `RENAME COLUMN` (served by the new shape's view under the new name; the
//! table keeps the old name until contract), `RENAME TO` of a table (the
//! view under the new name), `DROP COLUMN` (hidden from
//! the new shape, dropped at contract), `CREATE TABLE` (made for real: the
//! old shape never names it), a named `CREATE INDEX` (built at expand) and
//! `ALTER COLUMN … TYPE` (a twin column of the new type, kept in step with
//! the old one both ways, swapped in at contract).
//! Anything else is refused with the reason, so the caller can name the
//! statement.

use pg_query::protobuf::{self, AlterTableType, ConstrType, ObjectType};
use pg_query::NodeEnum;

use crate::facts::RelationName;
use crate::requires::expression;
use crate::stmt::{alter_cmds, type_spec};

/// What one statement does in an expand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Form {
    /// `ALTER TABLE t ADD COLUMN c …`: the statement runs as written at
    /// expand; rollback drops the column.
    AddColumn { table: RelationName, column: String },
    /// `ALTER TABLE t RENAME COLUMN a TO b`: the new shape's view shows
    /// `a` as `b`; the statement runs as written at contract.
    RenameColumn { table: RelationName, from: String, to: String },
    /// `ALTER TABLE t DROP COLUMN c`: hidden from the new shape; the
    /// statement runs as written at contract.
    DropColumn { table: RelationName, column: String },
    /// `CREATE TABLE t (…)`: runs as written at expand; rollback drops it.
    CreateTable { table: RelationName, columns: Vec<String> },
    /// `CREATE INDEX [CONCURRENTLY] i ON t …`: runs as written at expand
    /// (a concurrent build after the expand's transaction, outside any);
    /// rollback drops it.
    CreateIndex { table: RelationName, index: String, concurrent: bool },
    /// `ALTER TABLE t RENAME TO n`: the new shape's view is named `n`; the
    /// statement runs as written at contract.
    RenameTable { table: RelationName, to: String },
    /// `ALTER TABLE t ALTER COLUMN c TYPE n [USING e]`: a twin column of
    /// type `n` is added at expand and filled with `e` (a cast without
    /// `USING`); contract drops `c` and gives the twin its name.
    RetypeColumn { table: RelationName, column: String, new_type: String, using: Option<String> },
    /// `ALTER TABLE t ADD COLUMN c n [NOT NULL] DEFAULT e`, `e` not a
    /// constant: added bare with `e` as its default for new rows, the
    /// existing rows filled with `e` in batches, NOT NULL set at contract.
    FillColumn {
        table: RelationName,
        column: String,
        new_type: String,
        default: String,
        not_null: bool,
    },
    /// `UPDATE t SET c = e [WHERE w]`, `e` and `w` reading only columns of
    /// the row: fills a column the same expand adds, for the rows there (in
    /// batches) and for the rows the old shape writes (a trigger), where
    /// `c` is NULL.
    FillRows { table: RelationName, column: String, value: String, filter: Option<String> },
    /// `ALTER TABLE t ALTER COLUMN c SET NOT NULL`: set at contract after a
    /// CHECK proved it without blocking writes.
    SetNotNull { table: RelationName, column: String },
    /// `ALTER TABLE t ADD CONSTRAINT n CHECK (…)` or `FOREIGN KEY …`: added
    /// `NOT VALID` at expand (`sql`), validated after, unless the statement
    /// says `NOT VALID` itself; rollback drops it.
    AddConstraint { table: RelationName, name: String, sql: String, validate: bool },
}

impl Form {
    /// The table the form is about.
    pub fn table(&self) -> &RelationName {
        match self {
            Form::AddColumn { table, .. }
            | Form::RenameColumn { table, .. }
            | Form::DropColumn { table, .. }
            | Form::CreateTable { table, .. }
            | Form::CreateIndex { table, .. }
            | Form::RenameTable { table, .. }
            | Form::RetypeColumn { table, .. }
            | Form::FillColumn { table, .. }
            | Form::SetNotNull { table, .. }
            | Form::AddConstraint { table, .. }
            | Form::FillRows { table, .. } => table,
        }
    }
}

/// The expand forms of `sql` (one statement), or why it has none.
pub fn forms(sql: &str) -> Result<Vec<Form>, String> {
    let tree = pg_query::parse(sql, 0).map_err(|e| format!("it does not parse: {e}"))?;
    let mut out = Vec::new();
    for raw in &tree.protobuf.stmts {
        let Some(node) = raw.stmt.as_ref().and_then(|s| s.node.as_ref()) else { continue };
        out.extend(one(node)?);
    }
    Ok(out)
}

fn one(node: &NodeEnum) -> Result<Vec<Form>, String> {
    match node {
        NodeEnum::AlterTableStmt(a) if a.objtype() == ObjectType::ObjectTable => alter_table(a),
        NodeEnum::RenameStmt(r)
            if r.rename_type() == ObjectType::ObjectColumn
                && r.relation_type() == ObjectType::ObjectTable =>
        {
            let rv = r.relation.as_ref().ok_or("the statement names no table")?;
            if r.missing_ok {
                return Err("`IF EXISTS` leaves open which table the new shape shows; \
                            name a table that is there"
                    .into());
            }
            Ok(vec![Form::RenameColumn {
                table: relation(rv),
                from: r.subname.clone(),
                to: r.newname.clone(),
            }])
        }
        NodeEnum::RenameStmt(r) if r.rename_type() == ObjectType::ObjectTable => {
            let rv = r.relation.as_ref().ok_or("the statement names no table")?;
            if r.missing_ok {
                return Err("`IF EXISTS` leaves open which table the new shape shows; \
                            name a table that is there"
                    .into());
            }
            Ok(vec![Form::RenameTable { table: relation(rv), to: r.newname.clone() }])
        }
        NodeEnum::CreateStmt(c) => create_table(c),
        NodeEnum::UpdateStmt(u) => fill_rows(u),
        NodeEnum::IndexStmt(i) => {
            let rv = i.relation.as_ref().ok_or("the statement names no table")?;
            if i.idxname.is_empty() || i.if_not_exists {
                return Err("an index without a name of its own (or IF NOT EXISTS) leaves a \
                            rollback unsure what to drop; name it and drop IF NOT EXISTS"
                    .into());
            }
            Ok(vec![Form::CreateIndex {
                table: relation(rv),
                index: i.idxname.clone(),
                concurrent: i.concurrent,
            }])
        }
        other => Err(format!("{} has no expand form yet", kind(other))),
    }
}

/// `UPDATE t SET c = e [WHERE w]` as a fill of one column by an
/// expression of the row.
fn fill_rows(u: &protobuf::UpdateStmt) -> Result<Vec<Form>, String> {
    let rv = u.relation.as_ref().ok_or("the statement names no table")?;
    let no = |why: &str| Err(format!("this UPDATE has no expand form: {why}"));
    if !u.from_clause.is_empty() || u.with_clause.is_some() || u.returning_clause.is_some() {
        return no("FROM, WITH and RETURNING read or return more than the row");
    }
    let [target] = u.target_list.as_slice() else {
        return no("it sets more than one column; set one a statement");
    };
    let Some(NodeEnum::ResTarget(t)) = target.node.as_ref() else { return no("no column set") };
    if !t.indirection.is_empty() {
        return no("it sets a part of a column");
    }
    let value = t.val.as_deref().ok_or("no value set")?;
    let row_only = |n: &protobuf::Node| !columns_read(n, "").iter().any(|c| c == "(subquery)");
    if !row_only(value) || u.where_clause.as_deref().is_some_and(|w| !row_only(w)) {
        return no("a subquery reads more than the row");
    }
    let value = expression(value).ok_or("the value does not deparse")?;
    let filter = match u.where_clause.as_deref() {
        Some(w) => Some(expression(w).ok_or("the WHERE does not deparse")?),
        None => None,
    };
    Ok(vec![Form::FillRows { table: relation(rv), column: t.name.clone(), value, filter }])
}

fn create_table(c: &protobuf::CreateStmt) -> Result<Vec<Form>, String> {
    let rv = c.relation.as_ref().ok_or("the statement names no table")?;
    if c.if_not_exists {
        return Err("CREATE TABLE IF NOT EXISTS leaves a rollback unsure whether the expand \
                    made the table; drop IF NOT EXISTS"
            .into());
    }
    if rv.relpersistence == "t" {
        return Err("a temporary table is gone with the session; it has no expand form".into());
    }
    if !c.inh_relations.is_empty() || c.partbound.is_some() || c.of_typename.is_some() {
        return Err("a table that inherits, is a partition or is of a type takes its columns \
                    from elsewhere; it has no expand form yet"
            .into());
    }
    let mut columns = Vec::new();
    for e in &c.table_elts {
        match e.node.as_ref() {
            Some(NodeEnum::ColumnDef(d)) => columns.push(d.colname.clone()),
            Some(NodeEnum::Constraint(_)) => {}
            _ => {
                return Err("CREATE TABLE … (LIKE …) takes its columns from another table; \
                            list them"
                    .into())
            }
        }
    }
    Ok(vec![Form::CreateTable { table: relation(rv), columns }])
}

fn alter_table(a: &protobuf::AlterTableStmt) -> Result<Vec<Form>, String> {
    let rv = a.relation.as_ref().ok_or("the statement names no table")?;
    if a.missing_ok {
        return Err("`IF EXISTS` leaves open which table the new shape shows; \
                    name a table that is there"
            .into());
    }
    let mut out = Vec::new();
    let cmds: Vec<_> = alter_cmds(a).collect();
    for &(_, cmd, kind) in &cmds {
        if kind == AlterTableType::AtSetNotNull {
            out.push(Form::SetNotNull { table: relation(rv), column: cmd.name.clone() });
            continue;
        }
        if kind == AlterTableType::AtAddConstraint {
            if cmds.len() > 1 {
                return Err("ADD CONSTRAINT shares the statement with other changes; give it a \
                            statement of its own"
                    .into());
            }
            out.push(add_constraint(a, cmd)?);
            continue;
        }
        if kind == AlterTableType::AtDropColumn {
            if cmd.missing_ok {
                return Err("DROP COLUMN IF EXISTS leaves open what the new shape hides; name a \
                            column that is there"
                    .into());
            }
            out.push(Form::DropColumn { table: relation(rv), column: cmd.name.clone() });
            continue;
        }
        if kind == AlterTableType::AtAlterColumnType {
            out.push(retype(relation(rv), cmd)?);
            continue;
        }
        if kind != AlterTableType::AtAddColumn {
            return Err(format!(
                "ALTER TABLE {} has no expand form yet; ADD COLUMN, DROP COLUMN and ALTER COLUMN \
                 TYPE do",
                subcommand(kind)
            ));
        }
        if cmd.missing_ok {
            return Err("ADD COLUMN IF NOT EXISTS: a rollback could not tell whether the expand \
                        added the column; drop IF NOT EXISTS"
                .into());
        }
        let Some(NodeEnum::ColumnDef(def)) = cmd.def.as_ref().and_then(|d| d.node.as_ref()) else {
            return Err("ADD COLUMN without a column definition".into());
        };
        let def = def.as_ref();
        out.push(match column_expands(def)? {
            None => Form::AddColumn { table: relation(rv), column: def.colname.clone() },
            Some((default, not_null)) => Form::FillColumn {
                table: relation(rv),
                column: def.colname.clone(),
                new_type: type_text(def)?,
                default,
                not_null,
            },
        });
    }
    Ok(out)
}

/// `ADD CONSTRAINT` of a CHECK or FOREIGN KEY, named; the statement to run
/// at expand says `NOT VALID`.
fn add_constraint(
    a: &protobuf::AlterTableStmt,
    cmd: &protobuf::AlterTableCmd,
) -> Result<Form, String> {
    let rv = a.relation.as_ref().ok_or("the statement names no table")?;
    let Some(NodeEnum::Constraint(con)) = cmd.def.as_ref().and_then(|d| d.node.as_ref()) else {
        return Err("ADD CONSTRAINT without a constraint".into());
    };
    if !matches!(con.contype(), ConstrType::ConstrCheck | ConstrType::ConstrForeign) {
        return Err(format!(
            "ADD CONSTRAINT … {} cannot be added NOT VALID and checked later; build a unique \
             index CONCURRENTLY in a migration before, then add the constraint USING INDEX",
            constraint(con.contype())
        ));
    }
    if con.conname.is_empty() {
        return Err("a constraint without a name of its own leaves a rollback unsure what to \
                    drop; name it"
            .into());
    }
    let validate = !con.skip_validation;
    let mut changed = a.clone();
    for c in &mut changed.cmds {
        let Some(NodeEnum::AlterTableCmd(cmd)) = c.node.as_mut() else { continue };
        if let Some(NodeEnum::Constraint(con)) = cmd.def.as_mut().and_then(|d| d.node.as_mut()) {
            con.skip_validation = true;
            con.initially_valid = false;
        }
    }
    let sql = NodeEnum::AlterTableStmt(changed)
        .deparse(pg_query::DeparseOptions::default())
        .map_err(|e| format!("the constraint does not deparse: {e}"))?;
    Ok(Form::AddConstraint { table: relation(rv), name: con.conname.clone(), sql, validate })
}

/// The type of a column definition, as SQL.
fn type_text(def: &protobuf::ColumnDef) -> Result<String, String> {
    let c = &def.colname;
    let type_name = def.type_name.as_ref().ok_or_else(|| format!("column {c} has no type"))?;
    let cast = protobuf::Node {
        node: Some(NodeEnum::TypeCast(Box::new(protobuf::TypeCast {
            arg: Some(Box::new(protobuf::Node {
                node: Some(NodeEnum::AConst(protobuf::AConst {
                    isnull: true,
                    ..Default::default()
                })),
            })),
            type_name: Some(type_name.clone()),
            location: -1,
        }))),
    };
    expression(&cast)
        .and_then(|t| t.strip_prefix("NULL::").map(str::to_string))
        .ok_or_else(|| format!("the type of column {c} does not deparse"))
}

/// The form of `ALTER COLUMN c TYPE n [USING e]`, where `e` reads no
/// column but `c` (the twin is filled row by row from `c` alone).
fn retype(table: RelationName, cmd: &protobuf::AlterTableCmd) -> Result<Form, String> {
    let c = &cmd.name;
    let Some(NodeEnum::ColumnDef(def)) = cmd.def.as_ref().and_then(|d| d.node.as_ref()) else {
        return Err("ALTER COLUMN TYPE without a type".into());
    };
    if def.coll_clause.is_some() {
        return Err(format!(
            "column {c} changes its collation too, which has no expand form yet; change the \
             type alone"
        ));
    }
    let new_type = type_text(def)?;
    let using = match def.raw_default.as_deref() {
        None => None,
        Some(e) => {
            let others = columns_read(e, c);
            if let Some(other) = others.first() {
                return Err(format!(
                    "the USING expression of column {c} reads column {other}: the twin column \
                     is kept in step from {c} alone; compute it from {c} only"
                ));
            }
            let text = expression(e);
            Some(text.ok_or_else(|| format!("the USING expression of {c} does not deparse"))?)
        }
    };
    Ok(Form::RetypeColumn { table, column: c.clone(), new_type, using })
}

/// An index definition (as `pg_get_indexdef` prints it) moved from
/// `column` to `twin`: (its name, the same index named `name` on the twin,
/// built `CONCURRENTLY`). Refused where the column is in an expression or
/// the index's predicate.
pub fn retarget_index(
    def: &str,
    column: &str,
    twin: &str,
    name: &str,
) -> Result<(String, String), String> {
    let tree = pg_query::parse(def, 0).map_err(|e| format!("the index does not parse: {e}"))?;
    let Some(NodeEnum::IndexStmt(mut i)) =
        tree.protobuf.stmts.into_iter().next().and_then(|s| s.stmt).and_then(|s| s.node)
    else {
        return Err("not an index".into());
    };
    let original = i.idxname.clone();
    let reads = |n: &protobuf::Node| columns_read(n, "").iter().any(|c| c == column);
    if i.where_clause.as_deref().is_some_and(reads) {
        return Err(format!("index {original} reads column {column} in its predicate"));
    }
    for p in &mut i.index_params {
        let Some(NodeEnum::IndexElem(e)) = p.node.as_mut() else { continue };
        if e.expr.as_deref().is_some_and(reads) {
            return Err(format!("index {original} is on an expression of column {column}"));
        }
        if e.name == column {
            e.name = twin.to_string();
        }
    }
    i.idxname = name.to_string();
    i.concurrent = true;
    let sql = NodeEnum::IndexStmt(i)
        .deparse(pg_query::DeparseOptions::default())
        .map_err(|e| format!("the index does not deparse: {e}"))?;
    Ok((original, sql))
}

/// The columns an expression reads other than `column`, and `(subquery)`
/// for a subquery.
fn columns_read(e: &protobuf::Node, column: &str) -> Vec<String> {
    let mut out = Vec::new();
    let Some(e) = e.node.as_ref() else { return out };
    for (node, _, _, _) in e.nodes() {
        match node {
            pg_query::NodeRef::ColumnRef(r) => {
                let name = r.fields.last().and_then(crate::stmt::string_value).unwrap_or("*");
                if name != column {
                    out.push(name.to_string());
                }
            }
            pg_query::NodeRef::SubLink(_) => out.push("(subquery)".into()),
            _ => {}
        }
    }
    out
}

/// Whether a new column can be added under the running application, and
/// how: `None` as written (nullable, or a constant default), or filled
/// (`Some((default, not_null))`: a default each row computes, added bare
/// and backfilled). Refused: one the old shape cannot insert without (NOT
/// NULL with no default), one the table is rewritten for (identity,
/// generated, serial), or one with a constraint (checked against every row
/// under lock; add it in its own statement).
fn column_expands(def: &protobuf::ColumnDef) -> Result<Option<(String, bool)>, String> {
    let c = &def.colname;
    if let Some(t) = def.type_name.as_ref() {
        let base = type_spec(t, false);
        if matches!(
            base.base(),
            "serial" | "serial2" | "serial4" | "serial8" | "smallserial" | "bigserial"
        ) {
            return Err(format!(
                "column {c} is {}: every existing row gets a value from a sequence, \
                 which rewrites the table; add it as a plain nullable column",
                base.base()
            ));
        }
    }
    let mut default = def.raw_default.as_deref();
    let mut not_null = def.is_not_null;
    for con in &def.constraints {
        let Some(NodeEnum::Constraint(con)) = con.node.as_ref() else { continue };
        match con.contype() {
            ConstrType::ConstrNull => {}
            ConstrType::ConstrNotnull => not_null = true,
            ConstrType::ConstrDefault => default = con.raw_expr.as_deref().or(default),
            ConstrType::ConstrIdentity | ConstrType::ConstrGenerated => {
                return Err(format!(
                    "column {c} is identity or generated: every existing row is written; \
                     add it as a plain nullable column"
                ))
            }
            other => {
                return Err(format!(
                    "column {c} comes with a {} constraint, which has no expand form yet; \
                     add the column alone and the constraint in a later migration",
                    constraint(other)
                ))
            }
        }
    }
    match default {
        Some(_) if def.coll_clause.is_some() => Err(format!(
            "column {c} has a COLLATE clause and a default each row computes, which has no \
             expand form yet; add it with a constant default"
        )),
        Some(d) if !constant(d) => {
            let text =
                expression(d).ok_or_else(|| format!("the default of {c} does not deparse"))?;
            Ok(Some((text, not_null)))
        }
        None if not_null => Err(format!(
            "column {c} is NOT NULL without a default: the running application does not \
             write it, so its inserts would fail; give it a default"
        )),
        _ => Ok(None),
    }
}

/// A literal, possibly cast (`'x'::text`, `0`, `-1`, `NULL`, `true`).
fn constant(node: &protobuf::Node) -> bool {
    match node.node.as_ref() {
        Some(NodeEnum::AConst(_)) => true,
        Some(NodeEnum::TypeCast(t)) => t.arg.as_deref().is_some_and(constant),
        // `-1` is a unary minus over a constant in older parsers.
        Some(NodeEnum::AExpr(e)) => {
            e.lexpr.is_none()
                && e.name.len() == 1
                && e.rexpr.as_deref().is_some_and(|r| matches!(r.node, Some(NodeEnum::AConst(_))))
        }
        _ => false,
    }
}

fn relation(rv: &protobuf::RangeVar) -> RelationName {
    RelationName {
        schema: (!rv.schemaname.is_empty()).then(|| rv.schemaname.clone()),
        name: rv.relname.clone(),
    }
}

fn kind(node: &NodeEnum) -> &'static str {
    match node {
        NodeEnum::CreateStmt(_) => "CREATE TABLE",
        NodeEnum::IndexStmt(_) => "CREATE INDEX",
        NodeEnum::DropStmt(_) => "DROP",
        NodeEnum::RenameStmt(_) => "this RENAME (only a table's, or a column's of a table)",
        NodeEnum::AlterTableStmt(_) => "ALTER of anything but a table",
        NodeEnum::InsertStmt(_) | NodeEnum::UpdateStmt(_) | NodeEnum::DeleteStmt(_) => {
            "a change of rows"
        }
        NodeEnum::ViewStmt(_) => "CREATE VIEW",
        NodeEnum::CreateFunctionStmt(_) => "CREATE FUNCTION",
        NodeEnum::TransactionStmt(_) => "a transaction statement",
        _ => "this kind of statement",
    }
}

fn subcommand(kind: AlterTableType) -> String {
    let name = format!("{kind:?}");
    let name = name.strip_prefix("At").unwrap_or(&name);
    let mut out = String::new();
    for (i, ch) in name.chars().enumerate() {
        if ch.is_uppercase() && i > 0 {
            out.push(' ');
        }
        out.push(ch.to_ascii_uppercase());
    }
    out
}

fn constraint(kind: ConstrType) -> &'static str {
    match kind {
        ConstrType::ConstrCheck => "CHECK",
        ConstrType::ConstrPrimary => "PRIMARY KEY",
        ConstrType::ConstrUnique => "UNIQUE",
        ConstrType::ConstrForeign => "REFERENCES",
        ConstrType::ConstrExclusion => "EXCLUDE",
        _ => "column",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(name: &str) -> RelationName {
        RelationName { schema: None, name: name.into() }
    }

    #[test]
    fn nullable_and_constant_default_columns_expand() {
        assert_eq!(
            forms("ALTER TABLE users ADD COLUMN nick text").unwrap(),
            [Form::AddColumn { table: table("users"), column: "nick".into() }]
        );
        assert_eq!(
            forms("ALTER TABLE users ADD COLUMN a int NOT NULL DEFAULT 0, ADD b text DEFAULT 'x'::text")
                .unwrap()
                .len(),
            2
        );
        assert!(forms("ALTER TABLE users ADD COLUMN a int DEFAULT -1").is_ok());
    }

    #[test]
    fn columns_the_old_shape_cannot_live_with_are_refused_with_the_fix() {
        let e = forms("ALTER TABLE users ADD COLUMN a int NOT NULL").unwrap_err();
        assert!(e.contains("NOT NULL without a default"), "{e}");
        assert_eq!(
            forms("ALTER TABLE users ADD COLUMN at timestamptz NOT NULL DEFAULT now()").unwrap(),
            [Form::FillColumn {
                table: table("users"),
                column: "at".into(),
                new_type: "timestamptz".into(),
                default: "now()".into(),
                not_null: true,
            }]
        );
        let e = forms("ALTER TABLE users ADD COLUMN a bigserial").unwrap_err();
        assert!(e.contains("bigserial"), "{e}");
        let e = forms("ALTER TABLE users ADD COLUMN a int REFERENCES t(id)").unwrap_err();
        assert!(e.contains("REFERENCES"), "{e}");
        let e = forms("ALTER TABLE users ADD COLUMN IF NOT EXISTS a int").unwrap_err();
        assert!(e.contains("IF NOT EXISTS"), "{e}");
    }

    #[test]
    fn a_column_rename_expands_and_other_statements_say_why_not() {
        assert_eq!(
            forms("ALTER TABLE app.users RENAME COLUMN name TO full_name").unwrap(),
            [Form::RenameColumn {
                table: RelationName { schema: Some("app".into()), name: "users".into() },
                from: "name".into(),
                to: "full_name".into(),
            }]
        );
        assert_eq!(
            forms("ALTER TABLE users ALTER COLUMN age TYPE bigint, ALTER COLUMN tags TYPE varchar(20)[]")
                .unwrap(),
            [
                Form::RetypeColumn {
                    table: table("users"),
                    column: "age".into(),
                    new_type: "bigint".into(),
                    using: None
                },
                Form::RetypeColumn {
                    table: table("users"),
                    column: "tags".into(),
                    new_type: "varchar(20)[]".into(),
                    using: None
                },
            ]
        );
        let [Form::RetypeColumn { using, new_type, .. }] =
            &forms("ALTER TABLE users ALTER COLUMN at TYPE timestamptz USING to_timestamp(at)")
                .unwrap()[..]
        else {
            panic!("one retype")
        };
        assert_eq!(
            (using.as_deref(), new_type.as_str()),
            (Some("to_timestamp(at)"), "timestamptz")
        );
        let e = forms("ALTER TABLE users ALTER COLUMN a TYPE int USING (b + a)").unwrap_err();
        assert!(e.contains("reads column b"), "{e}");
        let e = forms("ALTER TABLE users ALTER COLUMN name TYPE text COLLATE \"C\"").unwrap_err();
        assert!(e.contains("collation"), "{e}");
        let e = forms("ALTER TABLE users ALTER COLUMN name DROP DEFAULT").unwrap_err();
        assert!(e.contains("COLUMN DEFAULT has no expand form"), "{e}");
        assert_eq!(
            forms("ALTER TABLE users RENAME TO people").unwrap(),
            [Form::RenameTable { table: table("users"), to: "people".into() }]
        );
        let e = forms("ALTER SEQUENCE users_id_seq RENAME TO people_id_seq").unwrap_err();
        assert!(e.contains("RENAME"), "{e}");
    }

    #[test]
    fn an_update_of_one_column_by_an_expression_of_the_row_is_a_fill() {
        assert_eq!(
            forms("UPDATE users SET slug = lower(name) WHERE name IS NOT NULL").unwrap(),
            [Form::FillRows {
                table: table("users"),
                column: "slug".into(),
                value: "lower(name)".into(),
                filter: Some("name IS NOT NULL".into()),
            }]
        );
        for refused in [
            "UPDATE users SET slug = (SELECT max(x) FROM t)",
            "UPDATE users SET slug = lower(name), nick = name",
            "UPDATE users u SET slug = o.name FROM others o WHERE o.id = u.id",
            "UPDATE users SET slug = name RETURNING id",
        ] {
            assert!(forms(refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn an_index_of_a_retyped_column_is_made_again_on_its_twin() {
        let (name, sql) = retarget_index(
            "CREATE UNIQUE INDEX users_org_age_idx ON public.users USING btree (org, age) WHERE (org > 0)",
            "age",
            "_backstop_new_age",
            "_backstop_new_users_org_age_idx",
        )
        .unwrap();
        assert_eq!(name, "users_org_age_idx");
        assert!(
            sql.starts_with("CREATE UNIQUE INDEX CONCURRENTLY _backstop_new_users_org_age_idx"),
            "{sql}"
        );
        assert!(sql.contains("(org, _backstop_new_age)"), "{sql}");
        let e = retarget_index("CREATE INDEX i ON t USING btree (lower(age))", "age", "w", "n")
            .unwrap_err();
        assert!(e.contains("expression"), "{e}");
        let e = retarget_index(
            "CREATE INDEX i ON t USING btree (org) WHERE (age > 1)",
            "age",
            "w",
            "n",
        )
        .unwrap_err();
        assert!(e.contains("predicate"), "{e}");
    }

    #[test]
    fn drops_new_tables_and_named_indexes_expand_and_their_risky_kinds_do_not() {
        assert_eq!(
            forms("ALTER TABLE users DROP COLUMN legacy").unwrap(),
            [Form::DropColumn { table: table("users"), column: "legacy".into() }]
        );
        assert!(forms("ALTER TABLE users DROP COLUMN IF EXISTS legacy").is_err());
        assert_eq!(
            forms("CREATE TABLE notes (id bigint PRIMARY KEY, body text, CHECK (body <> ''))")
                .unwrap(),
            [Form::CreateTable {
                table: table("notes"),
                columns: vec!["id".into(), "body".into()]
            }]
        );
        for refused in [
            "CREATE TABLE IF NOT EXISTS notes (id int)",
            "CREATE TABLE notes (LIKE users)",
            "CREATE TABLE notes_1 PARTITION OF notes FOR VALUES IN (1)",
            "CREATE TEMP TABLE scratch (id int)",
        ] {
            assert!(forms(refused).is_err(), "{refused}");
        }
        assert_eq!(
            forms("CREATE INDEX CONCURRENTLY users_name_idx ON users (name)").unwrap(),
            [Form::CreateIndex {
                table: table("users"),
                index: "users_name_idx".into(),
                concurrent: true
            }]
        );
        let e = forms("CREATE INDEX ON users (name)").unwrap_err();
        assert!(e.contains("name it"), "{e}");
        assert_eq!(
            forms("ALTER TABLE users ALTER COLUMN email SET NOT NULL").unwrap(),
            [Form::SetNotNull { table: table("users"), column: "email".into() }]
        );
        let [Form::AddConstraint { name, sql, validate, .. }] =
            &forms("ALTER TABLE users ADD CONSTRAINT name_set CHECK (name <> '')").unwrap()[..]
        else {
            panic!("one constraint")
        };
        assert_eq!((name.as_str(), *validate), ("name_set", true));
        assert!(sql.ends_with("NOT VALID"), "{sql}");
        let [Form::AddConstraint { validate, .. }] = &forms(
            "ALTER TABLE notes ADD CONSTRAINT notes_user FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID",
        )
        .unwrap()[..] else {
            panic!("one constraint")
        };
        assert!(!validate, "the migration validates it itself, later");
        for refused in [
            "ALTER TABLE users ADD CONSTRAINT u UNIQUE (email)",
            "ALTER TABLE users ADD CHECK (name <> '')",
            "ALTER TABLE users ADD CONSTRAINT c CHECK (name <> ''), ADD COLUMN x int",
        ] {
            assert!(forms(refused).is_err(), "{refused}");
        }
    }
}
