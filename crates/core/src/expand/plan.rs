//! The plan of an expand: the pending migrations' statements read through
//! `lint::expand`, checked against the tables as the catalog has them, and
//! turned into what the expand runs (added columns, new tables, new
//! indexes, as written), what the new shape shows (each table's columns
//! under their new names, less the dropped ones) and what contract runs
//! (the renames and drops, as written). A statement with no expand form
//! is a [`Refusal`] naming its file and line.

use std::collections::BTreeMap;

use backstop_lint::expand::{forms, Form};
use backstop_lint::rewrite::ident;
use backstop_lint::using;
use serde::{Deserialize, Serialize};

use crate::pg::{quote_ident, quote_qualified};
use crate::source::Migration;

/// A table of the expanded schema as the catalog has it (`views::tables`).
#[derive(Debug, Clone)]
pub struct Table {
    pub columns: Vec<String>,
    pub rls: bool,
    /// Columns an insert cannot leave out: NOT NULL with no default, not
    /// identity or generated.
    pub required: Vec<String>,
    /// What the catalog says of each column, by name.
    pub facts: BTreeMap<String, ColumnFacts>,
    /// The primary key's columns and their types, in key order.
    pub key: Vec<(String, String)>,
}

/// One column as the catalog has it.
#[derive(Debug, Clone, Default)]
pub struct ColumnFacts {
    /// `format_type` of the column.
    pub type_sql: String,
    pub not_null: bool,
    /// The default, as `pg_get_expr` prints it.
    pub default: Option<String>,
    /// What depends on the column (indexes, constraints, views, policies,
    /// owned sequences), described.
    pub used_by: Vec<String>,
}

/// A table of the expanded schema: its columns as the table has them
/// (`real`) and as the new shape shows them (`shown`), in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableShape {
    pub name: String,
    pub columns: Vec<ColumnShape>,
    /// Made by the expand (`CREATE TABLE`): rollback drops it.
    #[serde(default)]
    pub made: bool,
    /// The name the new shape shows it under, when the migrations rename it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shown_name: Option<String>,
}

impl TableShape {
    /// The name of its view in the new shape.
    pub fn view_name(&self) -> &str {
        self.shown_name.as_deref().unwrap_or(&self.name)
    }
}

/// One column of a [`TableShape`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnShape {
    pub real: String,
    pub shown: String,
    /// Added by the expand: rollback drops it.
    pub added: bool,
    /// Dropped by the migrations: the new shape does not show it, contract
    /// drops it.
    #[serde(default)]
    pub hidden: bool,
    /// Retyped by the migrations: the new shape shows this twin column of
    /// the new type instead (see [`Retyped`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
}

impl ColumnShape {
    /// A column shown under its own name; `added` when the expand adds it.
    fn named(name: &str, added: bool) -> ColumnShape {
        ColumnShape { real: name.into(), shown: name.into(), added, hidden: false, via: None }
    }
}

/// A migration the expand serves, as it will be recorded at contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Served {
    pub version: String,
    pub name: String,
    pub checksum: String,
}

/// Everything contract and rollback need, kept in `backstop.expands`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub migrations: Vec<Served>,
    pub tables: Vec<TableShape>,
    /// Statements run at expand (ADD COLUMN), as written.
    pub at_expand: Vec<String>,
    /// Statements run at contract (RENAME COLUMN, DROP COLUMN), as written.
    pub at_contract: Vec<String>,
    /// Indexes the expand built, in the expanded schema: rollback drops them.
    #[serde(default)]
    pub indexes: Vec<String>,
    /// Columns whose type the migrations change, each served by a twin.
    #[serde(default)]
    pub retyped: Vec<Retyped>,
}

/// A column whose type the migrations change: the expand adds a twin of
/// the new type, triggers keep both in step (`up` from the old shape's
/// writes, `down` from the new shape's), existing rows are backfilled in
/// batches by key, and contract drops the column and names the twin after
/// it; rollback drops the twin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retyped {
    /// The table, as named before the expand.
    pub table: String,
    /// The column, as named before the expand.
    pub column: String,
    /// The twin column of the new type.
    pub twin: String,
    /// The column's name where the statement names it (a rename before it
    /// in the same expand changes it): what `up` and `down` read.
    pub named: String,
    pub old_type: String,
    pub new_type: String,
    /// The new value from the old one, an expression of `named`.
    pub up: String,
    /// The old value from the new one, an expression of `named`.
    pub down: String,
    /// What `down` cannot give back, when anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loses: Option<String>,
    /// The primary key's columns and types, which the backfill walks.
    pub key: Vec<(String, String)>,
    /// The column's default, carried to the twin at contract.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// The column is NOT NULL: the twin is made so at contract.
    #[serde(default)]
    pub not_null: bool,
}

impl Plan {
    /// The columns the expand added to tables it did not make: (table, column).
    pub fn added(&self) -> impl Iterator<Item = (&str, &str)> {
        self.tables.iter().filter(|t| !t.made).flat_map(|t| {
            t.columns.iter().filter(|c| c.added).map(move |c| (t.name.as_str(), c.real.as_str()))
        })
    }

    /// The tables the expand made.
    pub fn made(&self) -> impl Iterator<Item = &str> {
        self.tables.iter().filter(|t| t.made).map(|t| t.name.as_str())
    }

    /// The renames the new shape serves: (table, old name, new name).
    pub fn renamed(&self) -> impl Iterator<Item = (&str, &str, &str)> {
        self.tables.iter().flat_map(|t| {
            t.columns
                .iter()
                .filter(|c| !c.added && !c.hidden && c.real != c.shown)
                .map(move |c| (t.name.as_str(), c.real.as_str(), c.shown.as_str()))
        })
    }
}

/// A statement the expand cannot serve, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusal {
    /// `path:line`.
    pub place: String,
    /// The statement's first line.
    pub statement: String,
    pub reason: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: `{}`: {}", self.place, self.statement, self.reason)
    }
}

/// The plan of expanding `pending` in `schema`, whose tables (by name)
/// are as given; or every statement that stops it.
pub fn build(
    pending: &[&Migration],
    schema: &str,
    tables: &BTreeMap<String, Table>,
) -> Result<Plan, Vec<Refusal>> {
    let mut shapes: BTreeMap<String, TableShape> = tables
        .iter()
        .map(|(t, known)| {
            let columns = known.columns.iter().map(|c| ColumnShape::named(c, false)).collect();
            (t.clone(), TableShape { name: t.clone(), columns, made: false, shown_name: None })
        })
        .collect();
    let mut plan = Plan {
        migrations: pending
            .iter()
            .map(|m| Served {
                version: m.version.clone(),
                name: m.name.clone(),
                checksum: m.checksum.clone(),
            })
            .collect(),
        tables: Vec::new(),
        at_expand: Vec::new(),
        at_contract: Vec::new(),
        indexes: Vec::new(),
        retyped: Vec::new(),
    };
    let mut refusals = Vec::new();
    for m in pending {
        let file = m.up.path.display();
        if m.no_transaction {
            refusals.push(Refusal {
                place: format!("{file}:1"),
                statement: m.label(),
                reason: "it runs outside a transaction, and an expand is one transaction; \
                         apply it with `backstop migrate`"
                    .into(),
            });
            continue;
        }
        for st in &m.up.statements {
            let refuse = |reason: String| Refusal {
                place: format!("{file}:{}", st.position.line),
                statement: st.sql.lines().next().unwrap_or_default().trim().to_string(),
                reason,
            };
            let found = match forms(&st.sql) {
                Ok(f) => f,
                Err(reason) => {
                    refusals.push(refuse(reason));
                    continue;
                }
            };
            let retypes = found.iter().filter(|f| matches!(f, Form::RetypeColumn { .. })).count();
            if retypes > 0 && retypes < found.len() {
                refusals.push(refuse(
                    "a column type change shares the statement with other changes; give the \
                     type change a statement of its own"
                        .into(),
                ));
                continue;
            }
            let mut now = false;
            for form in found {
                match one(&form, schema, &mut shapes, tables) {
                    Ok(When::Expand) => now = true,
                    Ok(When::Contract) => {}
                    Ok(When::Twin(r)) => {
                        plan.at_expand.push(r.added(schema));
                        plan.at_contract.extend(r.swapped(schema));
                        plan.retyped.push(*r);
                    }
                    Err(reason) => refusals.push(refuse(reason)),
                }
                if let Form::CreateIndex { index, .. } = &form {
                    plan.indexes.push(index.clone());
                }
            }
            if retypes > 0 {
                continue;
            }
            if now {
                plan.at_expand.push(st.sql.clone());
            } else {
                plan.at_contract.push(st.sql.clone());
            }
        }
    }
    if !refusals.is_empty() {
        return Err(refusals);
    }
    plan.tables = shapes.into_values().collect();
    Ok(plan)
}

/// When a form's statement runs: at expand (it adds what the old shape
/// never names) or at contract (it changes what the old shape reads); a
/// type change runs neither: a twin stands in for it.
enum When {
    Expand,
    Contract,
    Twin(Box<Retyped>),
}

/// Applies one form to the shapes, checked against the tables as they are.
fn one(
    form: &Form,
    schema: &str,
    shapes: &mut BTreeMap<String, TableShape>,
    known: &BTreeMap<String, Table>,
) -> Result<When, String> {
    let table = match form {
        Form::AddColumn { table, .. }
        | Form::RenameColumn { table, .. }
        | Form::DropColumn { table, .. }
        | Form::CreateTable { table, .. }
        | Form::CreateIndex { table, .. }
        | Form::RenameTable { table, .. }
        | Form::RetypeColumn { table, .. } => table,
    };
    if let Some(s) = table.schema.as_deref().filter(|s| *s != schema) {
        return Err(format!(
            "it names schema {s}, and this expand serves schema {schema}; expand one schema at a time"
        ));
    }
    let t = &table.name;
    if let Form::CreateTable { columns, .. } = form {
        if taken(shapes, t) {
            return Err(format!("there is already a table {schema}.{t}"));
        }
        let columns = columns.iter().map(|c| ColumnShape::named(c, false)).collect();
        shapes.insert(
            t.clone(),
            TableShape { name: t.clone(), columns, made: true, shown_name: None },
        );
        return Ok(When::Expand);
    }
    if let Form::RenameTable { to, .. } = form {
        if taken(shapes, to) {
            return Err(format!("there is already a table {schema}.{to}"));
        }
    }
    // A table is named as the new shape shows it: renamed, by its new name.
    let Some(shape) = shapes.values_mut().find(|s| s.view_name() == t) else {
        return Err(format!("there is no table {schema}.{t}"));
    };
    let at_expand = matches!(
        form,
        Form::AddColumn { .. } | Form::CreateIndex { .. } | Form::RetypeColumn { .. }
    );
    if at_expand && shape.shown_name.is_some() {
        return Err(format!(
            "table {t} is renamed by this expand and has that name only after contract, while \
             this statement runs at expand; make the change in a migration after the contract"
        ));
    }
    if let Form::RenameTable { to, .. } = form {
        if shape.made {
            return Err(format!(
                "table {t} is made by this expand; make it under its final name {to}"
            ));
        }
        shape.shown_name = Some(to.clone());
        return Ok(When::Contract);
    }
    columns_of(form, t, shape, known)
}

/// Whether a table has the name `name`, now or in the new shape.
fn taken(shapes: &BTreeMap<String, TableShape>, name: &str) -> bool {
    shapes.contains_key(name) || shapes.values().any(|s| s.view_name() == name)
}

/// Applies a form on the columns of an existing table's shape.
fn columns_of(
    form: &Form,
    t: &str,
    shape: &mut TableShape,
    known: &BTreeMap<String, Table>,
) -> Result<When, String> {
    let columns = &mut shape.columns;
    match form {
        Form::AddColumn { column, .. } => {
            if columns.iter().any(|c| &c.shown == column && !c.hidden) {
                return Err(format!("table {t} already has a column {column}"));
            }
            if columns.iter().any(|c| &c.real == column) {
                return Err(format!(
                    "table {t} keeps column {column} under that name until contract (the new \
                     shape renames or drops it); add the new column in a migration after the \
                     contract"
                ));
            }
            columns.push(ColumnShape::named(column, true));
            Ok(When::Expand)
        }
        Form::RenameColumn { from, to, .. } => {
            if columns.iter().any(|c| &c.shown == to && !c.hidden) {
                return Err(format!("table {t} already has a column {to}"));
            }
            let Some(col) = columns.iter_mut().find(|c| &c.shown == from && !c.hidden) else {
                return Err(format!("table {t} has no column {from}"));
            };
            if col.added || shape.made {
                return Err(format!(
                    "column {from} is made by this expand; make it under its final name {to}"
                ));
            }
            col.shown = to.clone();
            Ok(When::Contract)
        }
        Form::DropColumn { column, .. } => {
            let Some(col) = columns.iter_mut().find(|c| &c.shown == column && !c.hidden) else {
                return Err(format!("table {t} has no column {column}"));
            };
            if col.added || shape.made {
                return Err(format!(
                    "column {column} is made by this expand; leave it out of the migrations"
                ));
            }
            let required = known.get(&shape.name).is_some_and(|k| k.required.contains(&col.real));
            if required {
                return Err(format!(
                    "column {t}.{} is NOT NULL without a default, so inserts through the new \
                     shape, which no longer show it, would fail; drop NOT NULL or give it a \
                     default in a migration before this one",
                    col.real
                ));
            }
            col.hidden = true;
            Ok(When::Contract)
        }
        Form::RetypeColumn { column, new_type, using, .. } => {
            let known = known.get(&shape.name);
            let retype = Retype { table: t, column, new_type, using: using.as_deref() };
            retyped(retype, shape.made, columns, known).map(|r| When::Twin(Box::new(r)))
        }
        // A new table and a renamed one returned above.
        Form::CreateIndex { .. } | Form::CreateTable { .. } => Ok(When::Expand),
        Form::RenameTable { .. } => Ok(When::Contract),
    }
}

/// A type change as the statement writes it.
struct Retype<'a> {
    table: &'a str,
    column: &'a str,
    new_type: &'a str,
    using: Option<&'a str>,
}

/// The twin of a retyped column, or why the column cannot have one.
fn retyped(
    r: Retype<'_>,
    made: bool,
    columns: &mut [ColumnShape],
    known: Option<&Table>,
) -> Result<Retyped, String> {
    let (t, c) = (r.table, r.column);
    let twin_taken = |name: &str| columns.iter().any(|x| x.real == name || x.shown == name);
    let Some(col) = columns.iter().find(|x| x.shown == c && !x.hidden) else {
        return Err(format!("table {t} has no column {c}"));
    };
    if col.added || made {
        return Err(format!("column {c} is made by this expand; make it with its final type"));
    }
    if col.via.is_some() {
        return Err(format!(
            "column {t}.{c} changes type twice in this expand; change it once, to the last type"
        ));
    }
    let real = col.real.clone();
    let facts = known.and_then(|k| k.facts.get(&real)).cloned().unwrap_or_default();
    if !facts.used_by.is_empty() {
        return Err(format!(
            "column {t}.{c} is used by {}, which contract would have to rebuild on the new \
             column; not an expand form yet: change the type with `backstop migrate`",
            facts.used_by.join(", ")
        ));
    }
    let key = known.map(|k| k.key.clone()).unwrap_or_default();
    if key.is_empty() {
        return Err(format!(
            "table {t} has no primary key, which the backfill of column {c} walks in batches; \
             add one in a migration before this one"
        ));
    }
    let twin = format!("_backstop_new_{real}");
    if twin.len() > 63 || twin_taken(&twin) {
        return Err(format!(
            "the twin column {twin} of {t}.{c} is taken or longer than 63 bytes; rename the \
             column first"
        ));
    }
    let named = ident(c);
    let up = match r.using {
        Some(e) => e.to_string(),
        None => format!("CAST({named} AS {})", r.new_type),
    };
    let old = &facts.type_sql;
    let (down, loses) = match r.using {
        None => (format!("CAST({named} AS {old})"), None),
        Some(e) if using::through_text(e, c) => {
            (format!("CAST(CAST({named} AS text) AS {old})"), None)
        }
        Some(e) => match using::inverse(e, c, old) {
            Some(inv) => (format!("CAST(({}) AS {old})", inv.expression), inv.loses),
            None => {
                return Err(format!(
                    "no inverse is known for USING {e}: a value written through the new shape \
                     could not reach column {c} of the old one; known are casts, \
                     convert_to/convert_from, to_timestamp/extract(epoch) and text to json"
                ))
            }
        },
    };
    let col = columns.iter_mut().find(|x| x.real == real).expect("found above");
    col.via = Some(twin.clone());
    Ok(Retyped {
        table: t.into(),
        column: real,
        twin,
        named: c.into(),
        old_type: old.clone(),
        new_type: r.new_type.into(),
        up,
        down,
        loses,
        key,
        default: facts.default.clone(),
        not_null: facts.not_null,
    })
}

impl Retyped {
    /// The statement that adds the twin at expand.
    fn added(&self, schema: &str) -> String {
        format!(
            "ALTER TABLE {} ADD COLUMN {} {}",
            quote_qualified(Some(schema), &self.table),
            quote_ident(&self.twin),
            self.new_type
        )
    }

    /// The statements that put the twin in the column's place at contract,
    /// where the column is called `named`: the column dropped, the twin
    /// renamed, the default and NOT NULL carried over.
    fn swapped(&self, schema: &str) -> Vec<String> {
        let table = quote_qualified(Some(schema), &self.table);
        let named = quote_ident(&self.named);
        let mut out = vec![
            format!("ALTER TABLE {table} DROP COLUMN {named}"),
            format!("ALTER TABLE {table} RENAME COLUMN {} TO {named}", quote_ident(&self.twin)),
        ];
        if let Some(d) = &self.default {
            out.push(format!(
                "ALTER TABLE {table} ALTER COLUMN {named} SET DEFAULT CAST(({d}) AS {})",
                self.new_type
            ));
        }
        if self.not_null {
            out.push(format!("ALTER TABLE {table} ALTER COLUMN {named} SET NOT NULL"));
        }
        out
    }
}
