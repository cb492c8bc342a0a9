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

use super::apply::{one, When};
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
    /// Identity or generated: no statement sets it to a value of its own.
    pub computed: bool,
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
    pub(super) fn named(name: &str, added: bool) -> ColumnShape {
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
    /// New columns whose default each row computes, filled after the
    /// expand's transaction.
    #[serde(default)]
    pub fills: Vec<Fill>,
    /// Constraints the expand adds `NOT VALID`: rollback drops them.
    #[serde(default)]
    pub constraints: Vec<Constraint>,
    /// Columns made NOT NULL at contract.
    #[serde(default)]
    pub not_null: Vec<NotNull>,
    /// `CREATE INDEX CONCURRENTLY` statements, run after the expand's
    /// transaction (their indexes are in `indexes` too).
    #[serde(default)]
    pub concurrent: Vec<Concurrent>,
}

/// An index built `CONCURRENTLY` after the expand's transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Concurrent {
    pub index: String,
    /// The statement as written.
    pub sql: String,
}

/// A new column whose default each row computes (`now()`, a new UUID):
/// added bare with that default for the rows written from then on, the
/// rows already there filled with it in batches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fill {
    pub table: String,
    pub column: String,
    /// The default, as the statement writes it.
    pub default: String,
    /// The primary key's columns and types, which the backfill walks.
    pub key: Vec<(String, String)>,
}

/// A constraint the expand adds `NOT VALID`; `validate`: checked after the
/// expand's transaction, without blocking writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Constraint {
    pub table: String,
    pub name: String,
    pub validate: bool,
}

/// A column made NOT NULL at contract, after a CHECK named `check` proved
/// it (validated without blocking writes), so that `SET NOT NULL` skips
/// its scan under the contract's lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotNull {
    /// The table and column as named before the expand.
    pub table: String,
    pub column: String,
    pub check: String,
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

    /// Whether anything runs after the expand's transaction (an index
    /// built concurrently, a backfill, a validation), which running the
    /// expand again resumes.
    pub fn settles(&self) -> bool {
        !self.retyped.is_empty()
            || !self.fills.is_empty()
            || !self.concurrent.is_empty()
            || self.constraints.iter().any(|c| c.validate)
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
        fills: Vec::new(),
        constraints: Vec::new(),
        not_null: Vec::new(),
        concurrent: Vec::new(),
    };
    let mut refusals = Vec::new();
    for m in pending {
        let file = m.up.path.display();
        // A migration outside a transaction is served only when it builds
        // indexes concurrently, which the expand does after its own.
        let concurrent_only = m.up.statements.iter().all(|st| {
            forms(&st.sql).is_ok_and(|f| {
                f.iter().all(|f| matches!(f, Form::CreateIndex { concurrent: true, .. }))
            })
        });
        if m.no_transaction && !concurrent_only {
            refusals.push(Refusal {
                place: format!("{file}:1"),
                statement: m.label(),
                reason: "it runs outside a transaction, and an expand is one transaction \
                         (only CREATE INDEX CONCURRENTLY runs after it); apply it with \
                         `backstop migrate`"
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
            let generated = found.iter().filter(|f| generated(f)).count();
            if generated > 0 && generated < found.len() {
                refusals.push(refuse(
                    "a type change, a computed default, SET NOT NULL or ADD CONSTRAINT shares \
                     the statement with other changes; give it a statement of its own"
                        .into(),
                ));
                continue;
            }
            let (mut now, mut placed) = (false, false);
            for form in found {
                match one(&form, schema, &mut shapes, tables, &mut plan) {
                    Ok(When::Expand) => now = true,
                    Ok(When::Contract) => {}
                    Ok(When::Generated { expand, contract }) => {
                        plan.at_expand.extend(expand);
                        plan.at_contract.extend(contract);
                        placed = true;
                    }
                    Ok(When::After) => placed = true,
                    Err(reason) => refusals.push(refuse(reason)),
                }
                if let Form::CreateIndex { index, concurrent, .. } = &form {
                    plan.indexes.push(index.clone());
                    if *concurrent {
                        plan.concurrent
                            .push(Concurrent { index: index.clone(), sql: st.sql.clone() });
                    }
                }
            }
            if placed {
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

/// A form whose statement the expand does not run as written, but through
/// statements of its own.
fn generated(form: &Form) -> bool {
    matches!(
        form,
        Form::RetypeColumn { .. }
            | Form::FillColumn { .. }
            | Form::SetNotNull { .. }
            | Form::AddConstraint { .. }
    )
}
