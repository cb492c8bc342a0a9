//! The plan of an expand, as kept in `backstop.expands`: what the expand
//! runs (added columns, new tables, new indexes, twins), what the new
//! shape shows (each table's columns under their new names, less the
//! dropped ones), what runs after the expand's transaction (backfills,
//! validations, concurrent index builds) and what contract runs; and the
//! catalog's facts it is built from (`apply::build` builds it).

use std::collections::BTreeMap;

use backstop_sql::expand::forms;
use serde::{Deserialize, Serialize};

use crate::pg::quote_ident;
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
    /// The definitions of the indexes on it no constraint owns.
    pub indexes: Vec<String>,
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

/// A new column filled where it is NULL: one whose default each row
/// computes (`now()`, a new UUID: added bare with that default for the
/// rows written from then on), or one an `UPDATE … SET c = e` of the
/// migrations fills (`by_rows`: a trigger fills the rows the old shape
/// writes, which never name it); the rows already there filled in batches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fill {
    pub table: String,
    pub column: String,
    /// The value, an expression of the row's columns, as the statement
    /// writes it.
    #[serde(alias = "default")]
    pub value: String,
    /// Only the rows this holds for (the UPDATE's WHERE).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// The primary key's columns and types, which the backfill walks.
    pub key: Vec<(String, String)>,
    /// Filled by a trigger for the old shape's writes too.
    #[serde(default)]
    pub by_rows: bool,
    /// The row as the statement names it, where the new shape names the
    /// table's columns otherwise (renamed, or a twin): (the table's
    /// column, the name the value and filter read); empty when the names
    /// are the table's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub row: Vec<(String, String)>,
}

impl Fill {
    /// `e` read on the row `of` (`t` in a batch, `NEW` in a trigger), the
    /// columns under the names the statement gives them.
    pub fn on_row(&self, e: &str, of: &str) -> String {
        if self.row.is_empty() && of == "t" {
            return format!("({e})");
        }
        let columns: Vec<String> = match self.row.is_empty() {
            true => vec![format!("{of}.*")],
            false => self
                .row
                .iter()
                .map(|(real, shown)| {
                    format!("{of}.{} AS {}", quote_ident(real), quote_ident(shown))
                })
                .collect(),
        };
        format!("(SELECT ({e}) FROM (SELECT {}) AS backstop_row)", columns.join(", "))
    }
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
    /// The column's indexes, each made again on the twin (built
    /// concurrently after the backfill) and given the old one's name at
    /// contract.
    #[serde(default)]
    pub indexes: Vec<TwinIndex>,
}

/// An index of a retyped column made again on its twin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TwinIndex {
    /// The index on the column, whose name the twin's takes at contract.
    pub name: String,
    /// The same index on the twin, built `CONCURRENTLY`.
    pub on_twin: Concurrent,
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

/// The schema the pending migrations' statements name their tables in,
/// when they all name the same one (`app.users`, `app.notes`); `None`
/// where any names a table unqualified or another schema.
pub fn schema_named(pending: &[&Migration]) -> Option<String> {
    let mut named: Option<String> = None;
    for st in pending.iter().flat_map(|m| &m.up.statements) {
        for form in forms(&st.sql).unwrap_or_default() {
            let table = form.table();
            match (&named, &table.schema) {
                (_, None) => return None,
                (None, Some(s)) => named = Some(s.clone()),
                (Some(n), Some(s)) if n != s => return None,
                _ => {}
            }
        }
    }
    named
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(sql: &[&str]) -> (tempfile::TempDir, Vec<Migration>) {
        let dir = tempfile::tempdir().unwrap();
        for (i, s) in sql.iter().enumerate() {
            let m = dir.path().join(format!("{}_m", i + 1));
            std::fs::create_dir_all(&m).unwrap();
            std::fs::write(m.join("up.sql"), s).unwrap();
        }
        let ms = crate::source::load(dir.path(), None).unwrap().migrations;
        (dir, ms)
    }

    #[test]
    fn the_schema_the_statements_name_is_read_only_when_they_all_name_one() {
        let (_d, ms) = pending(&[
            "ALTER TABLE app.users ADD COLUMN nick text;",
            "CREATE INDEX users_nick_idx ON app.users (nick);",
        ]);
        assert_eq!(schema_named(&ms.iter().collect::<Vec<_>>()).as_deref(), Some("app"));
        let (_d, ms) = pending(&[
            "ALTER TABLE app.users ADD COLUMN nick text;",
            "ALTER TABLE users ADD b int;",
        ]);
        assert_eq!(schema_named(&ms.iter().collect::<Vec<_>>()), None);
        let (_d, ms) =
            pending(&["ALTER TABLE app.users ADD a int;", "ALTER TABLE web.users ADD b int;"]);
        assert_eq!(schema_named(&ms.iter().collect::<Vec<_>>()), None);
    }
}
