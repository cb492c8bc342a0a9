//! The plan of an expand: the pending migrations' statements read through
//! `lint::expand`, checked against the tables as the catalog has them, and
//! turned into what the expand runs (added columns, new tables, new
//! indexes, as written), what the new shape shows (each table's columns
//! under their new names, less the dropped ones) and what contract runs
//! (the renames and drops, as written). A statement with no expand form
//! is a [`Refusal`] naming its file and line.

use std::collections::BTreeMap;

use backstop_lint::expand::{forms, Form};
use serde::{Deserialize, Serialize};

use crate::source::Migration;

/// A table of the expanded schema as the catalog has it (`views::tables`).
#[derive(Debug, Clone)]
pub struct Table {
    pub columns: Vec<String>,
    pub rls: bool,
    /// Columns an insert cannot leave out: NOT NULL with no default, not
    /// identity or generated.
    pub required: Vec<String>,
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
}

impl ColumnShape {
    /// A column shown under its own name; `added` when the expand adds it.
    fn named(name: &str, added: bool) -> ColumnShape {
        ColumnShape { real: name.into(), shown: name.into(), added, hidden: false }
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
            let mut now = false;
            for form in found {
                match one(&form, schema, &mut shapes, tables) {
                    Ok(When::Expand) => now = true,
                    Ok(When::Contract) => {}
                    Err(reason) => refusals.push(refuse(reason)),
                }
                if let Form::CreateIndex { index, .. } = &form {
                    plan.indexes.push(index.clone());
                }
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
/// never names) or at contract (it changes what the old shape reads).
enum When {
    Expand,
    Contract,
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
        | Form::RenameTable { table, .. } => table,
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
    let at_expand = matches!(form, Form::AddColumn { .. } | Form::CreateIndex { .. });
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
        // A new table and a renamed one returned above.
        Form::CreateIndex { .. } | Form::CreateTable { .. } => Ok(When::Expand),
        Form::RenameTable { .. } => Ok(When::Contract),
    }
}
