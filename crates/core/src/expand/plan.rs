//! The plan of an expand: the pending migrations' statements read through
//! `lint::expand`, checked against the tables as the catalog has them, and
//! turned into what the expand runs (the added columns' statements), what
//! the new shape shows (each table's columns under their new names) and
//! what contract runs (the renames, as written). A statement with no
//! expand form is a [`Refusal`] naming its file and line.

use std::collections::BTreeMap;

use backstop_lint::expand::{forms, Form};
use serde::{Deserialize, Serialize};

use crate::source::Migration;

/// A table of the expanded schema: its columns as the table has them
/// (`real`) and as the new shape shows them (`shown`), in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableShape {
    pub name: String,
    pub columns: Vec<ColumnShape>,
}

/// One column of a [`TableShape`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnShape {
    pub real: String,
    pub shown: String,
    /// Added by the expand: rollback drops it.
    pub added: bool,
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
    /// Statements run at contract (RENAME COLUMN), as written.
    pub at_contract: Vec<String>,
}

impl Plan {
    /// The columns the expand added: (table, column).
    pub fn added(&self) -> impl Iterator<Item = (&str, &str)> {
        self.tables.iter().flat_map(|t| {
            t.columns.iter().filter(|c| c.added).map(move |c| (t.name.as_str(), c.real.as_str()))
        })
    }

    /// The renames the new shape serves: (table, old name, new name).
    pub fn renamed(&self) -> impl Iterator<Item = (&str, &str, &str)> {
        self.tables.iter().flat_map(|t| {
            t.columns
                .iter()
                .filter(|c| !c.added && c.real != c.shown)
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
/// have the columns given, in order; or every statement that stops it.
pub fn build(
    pending: &[&Migration],
    schema: &str,
    tables: &BTreeMap<String, Vec<String>>,
) -> Result<Plan, Vec<Refusal>> {
    let mut shapes: BTreeMap<&str, Vec<ColumnShape>> = tables
        .iter()
        .map(|(t, cols)| {
            let cols = cols
                .iter()
                .map(|c| ColumnShape { real: c.clone(), shown: c.clone(), added: false })
                .collect();
            (t.as_str(), cols)
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
            let mut adds = false;
            for form in found {
                match one(&form, schema, &mut shapes) {
                    Ok(added) => adds |= added,
                    Err(reason) => refusals.push(refuse(reason)),
                }
            }
            if adds {
                plan.at_expand.push(st.sql.clone());
            } else {
                plan.at_contract.push(st.sql.clone());
            }
        }
    }
    if !refusals.is_empty() {
        return Err(refusals);
    }
    plan.tables = shapes
        .into_iter()
        .map(|(name, columns)| TableShape { name: name.to_string(), columns })
        .collect();
    Ok(plan)
}

/// Applies one form to the shapes; whether it adds a column.
fn one(
    form: &Form,
    schema: &str,
    shapes: &mut BTreeMap<&str, Vec<ColumnShape>>,
) -> Result<bool, String> {
    let table = match form {
        Form::AddColumn { table, .. } | Form::RenameColumn { table, .. } => table,
    };
    if let Some(s) = table.schema.as_deref().filter(|s| *s != schema) {
        return Err(format!(
            "it names schema {s}, and this expand serves schema {schema}; expand one schema at a time"
        ));
    }
    let Some(columns) = shapes.get_mut(table.name.as_str()) else {
        return Err(format!(
            "there is no table {schema}.{} (a table this batch makes has no expand form yet)",
            table.name
        ));
    };
    let t = &table.name;
    match form {
        Form::AddColumn { column, .. } => {
            if columns.iter().any(|c| &c.shown == column) {
                return Err(format!("table {t} already has a column {column}"));
            }
            if columns.iter().any(|c| &c.real == column) {
                return Err(format!(
                    "table {t} keeps column {column} under that name until contract (the new \
                     shape renames it); add the new column in a migration after the contract"
                ));
            }
            columns.push(ColumnShape { real: column.clone(), shown: column.clone(), added: true });
            Ok(true)
        }
        Form::RenameColumn { from, to, .. } => {
            if columns.iter().any(|c| &c.shown == to) {
                return Err(format!("table {t} already has a column {to}"));
            }
            let Some(col) = columns.iter_mut().find(|c| &c.shown == from) else {
                return Err(format!("table {t} has no column {from}"));
            };
            if col.added {
                return Err(format!(
                    "column {from} is added by this expand; add it under its final name {to}"
                ));
            }
            col.shown = to.clone();
            Ok(false)
        }
    }
}
