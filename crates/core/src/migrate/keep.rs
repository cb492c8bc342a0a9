//! Nothing an undo removes is lost without a copy. Before the down
//! statements of a group run, they are tried in a savepoint of the same
//! transaction and rolled back, and the catalogs say what they would
//! remove: a table, a column of a table that stays, rows, an enum value in
//! use. Those tables are then locked against writes, their values
//! exported (the table's key with each removed column, whole tables and
//! tables that lose rows with every column, the rows holding a removed
//! enum value), and only then do the downs run for real, in the same
//! transaction: no write can land between the copy and the removal.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use postgres::Transaction;
use serde::Serialize;

use crate::pg::export::{self, ExportError};
use crate::pg::{quote_ident, quote_qualified};

/// One thing an undo removed, and where its values are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Kept {
    /// `schema.table`.
    pub table: String,
    /// The column removed (`None`: the table, or rows of it).
    pub column: Option<String>,
    /// What was removed: `table`, `column`, `rows`, `enum value <label>`.
    pub what: String,
    /// Rows (or values) exported.
    pub rows: i64,
    /// The CSV file in the folder, its BLAKE3.
    pub file: String,
    pub blake3: String,
}

impl std::fmt::Display for Kept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.column, self.what.as_str()) {
            (Some(c), "column") => write!(f, "{} values of {}.{c}", self.rows, self.table),
            (Some(c), what) => write!(f, "{} rows of {}.{c} ({what})", self.rows, self.table),
            (None, "table") => write!(f, "{} rows of table {}", self.rows, self.table),
            (None, what) => write!(f, "{} rows of {} ({what})", self.rows, self.table),
        }
    }
}

/// A table as the catalogs see it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Table {
    oid: u32,
    schema: String,
    name: String,
    filenode: u32,
    columns: BTreeSet<String>,
}

impl Table {
    fn qualified(&self) -> String {
        quote_qualified(Some(&self.schema), &self.name)
    }

    fn label(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }
}

/// The tables, enum labels and deleted-row counters of the user schemas.
#[derive(Debug, Default)]
struct Picture {
    tables: BTreeMap<u32, Table>,
    /// (schema, type) → labels.
    enums: BTreeMap<(String, String), BTreeSet<String>>,
    /// table oid → rows deleted by this transaction so far.
    deleted: BTreeMap<u32, i64>,
}

const USER_TABLES: &str = "
    select c.oid, n.nspname::text, c.relname::text, c.relfilenode,
           coalesce(array_agg(a.attname::text order by a.attnum) filter (where a.attnum > 0 and not a.attisdropped), '{}')
      from pg_class c join pg_namespace n on n.oid = c.relnamespace
      left join pg_attribute a on a.attrelid = c.oid
     where c.relkind in ('r', 'p') and not c.relispartition
       and n.nspname not in ('pg_catalog', 'information_schema', 'backstop')
       and n.nspname not like 'pg_toast%' and n.nspname not like 'pg_temp%'
     group by c.oid, n.nspname, c.relname, c.relfilenode";

const ENUMS: &str = "
    select n.nspname::text, t.typname::text, e.enumlabel::text
      from pg_enum e join pg_type t on t.oid = e.enumtypid join pg_namespace n on n.oid = t.typnamespace
     where n.nspname not in ('pg_catalog', 'information_schema', 'backstop')";

const DELETED: &str = "select relid, n_tup_del from pg_stat_xact_user_tables";

fn picture(tx: &mut Transaction<'_>) -> Result<Picture, postgres::Error> {
    let mut p = Picture::default();
    for r in tx.query(USER_TABLES, &[])? {
        let oid: u32 = r.get(0);
        let columns: Vec<String> = r.get(4);
        let t = Table {
            oid,
            schema: r.get(1),
            name: r.get(2),
            filenode: r.get(3),
            columns: columns.into_iter().collect(),
        };
        p.tables.insert(oid, t);
    }
    for r in tx.query(ENUMS, &[])? {
        p.enums.entry((r.get(0), r.get(1))).or_default().insert(r.get(2));
    }
    for r in tx.query(DELETED, &[])? {
        p.deleted.insert(r.get(0), r.get(1));
    }
    Ok(p)
}

/// Something the downs would remove.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Removal {
    Table(Table),
    Column(Table, String),
    Rows(Table),
    EnumValue { table: Table, column: String, label: String },
}

/// Tries `statements` in a savepoint and says what they would remove; the
/// savepoint is rolled back whatever happens. A statement that fails
/// stops the try: what it would remove is left to the real run, which
/// fails on it the same way and is rolled back.
fn removals(
    tx: &mut Transaction<'_>,
    statements: &[&str],
) -> Result<Vec<Removal>, postgres::Error> {
    let before = picture(tx)?;
    tx.batch_execute("SAVEPOINT backstop_keep")?;
    let mut ran = true;
    for sql in statements {
        if tx.batch_execute(sql).is_err() {
            ran = false;
            break;
        }
    }
    let after = if ran { Some(picture(tx)?) } else { None };
    // Rows left in tables whose storage changed (TRUNCATE, a rewrite),
    // counted while the savepoint still holds the downs' effect.
    let mut rows_after = BTreeMap::new();
    if let Some(after) = &after {
        for (oid, t) in &after.tables {
            if before.tables.get(oid).is_some_and(|b| b.filenode != t.filenode) {
                let n: i64 =
                    tx.query_one(&format!("select count(*) from {}", t.qualified()), &[])?.get(0);
                rows_after.insert(*oid, n);
            }
        }
    }
    tx.batch_execute("ROLLBACK TO SAVEPOINT backstop_keep; RELEASE SAVEPOINT backstop_keep")?;
    let Some(after) = after else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for (oid, t) in &before.tables {
        let Some(now) = after.tables.get(oid) else {
            out.push(Removal::Table(t.clone()));
            continue;
        };
        for c in t.columns.difference(&now.columns) {
            out.push(Removal::Column(t.clone(), c.clone()));
        }
        let deleted = after.deleted.get(oid).copied().unwrap_or(0)
            > before.deleted.get(oid).copied().unwrap_or(0);
        let emptied = match rows_after.get(oid) {
            Some(left) => {
                let had: i64 =
                    tx.query_one(&format!("select count(*) from {}", t.qualified()), &[])?.get(0);
                *left < had
            }
            None => false,
        };
        if deleted || emptied {
            out.push(Removal::Rows(t.clone()));
        }
    }
    for ((schema, name), labels) in &before.enums {
        let kept = after.enums.get(&(schema.clone(), name.clone()));
        for label in labels.iter().filter(|l| !kept.is_some_and(|k| k.contains(*l))) {
            for (table, column) in columns_of_type(tx, schema, name)? {
                if let Some(t) = before.tables.get(&table) {
                    out.push(Removal::EnumValue { table: t.clone(), column, label: label.clone() });
                }
            }
        }
    }
    Ok(out)
}

/// The user tables' columns of enum type `schema.name`: (table oid, column).
fn columns_of_type(
    tx: &mut Transaction<'_>,
    schema: &str,
    name: &str,
) -> Result<Vec<(u32, String)>, postgres::Error> {
    let rows = tx.query(
        "select a.attrelid, a.attname::text from pg_attribute a
           join pg_type t on t.oid = a.atttypid join pg_namespace n on n.oid = t.typnamespace
          where n.nspname = $1 and t.typname = $2 and a.attnum > 0 and not a.attisdropped",
        &[&schema, &name],
    )?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// The table's primary key columns (empty when it has none).
fn key_of(tx: &mut Transaction<'_>, oid: u32) -> Result<Vec<String>, postgres::Error> {
    let rows = tx.query(
        "select a.attname::text from pg_index i
           join lateral unnest(i.indkey) with ordinality k(attnum, n) on true
           join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
          where i.indrelid = $1 and i.indisprimary order by k.n",
        &[&oid],
    )?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Why the values could not be kept: the undo does not run then.
#[derive(Debug, thiserror::Error)]
pub enum KeepError {
    #[error("database error while finding what the downs remove")]
    Db(#[from] postgres::Error),
    #[error(transparent)]
    Export(#[from] ExportError),
}

/// Before `statements` (the downs of one group) run in `tx`: finds what
/// they remove, locks those tables against writes, and exports the values
/// into `folder` (made when there is something to keep). Returns what was
/// kept; nothing when the downs remove no data.
pub fn before_downs(
    tx: &mut Transaction<'_>,
    statements: &[&str],
    folder: &Path,
) -> Result<Vec<Kept>, KeepError> {
    let found = removals(tx, statements)?;
    if found.is_empty() {
        return Ok(Vec::new());
    }
    let mut locked = BTreeSet::new();
    for r in &found {
        let t = match r {
            Removal::Table(t) | Removal::Column(t, _) | Removal::Rows(t) => t,
            Removal::EnumValue { table, .. } => table,
        };
        if locked.insert(t.oid) {
            // Reads go on; no write lands between the copy and the removal.
            tx.batch_execute(&format!("LOCK TABLE {} IN EXCLUSIVE MODE", t.qualified()))?;
        }
    }
    export::folder(folder)?;
    // Whatever the policies say, every row is copied.
    tx.batch_execute("SET LOCAL row_security = off")?;
    let mut kept = Vec::new();
    for r in relevant(found) {
        if let Some(k) = export_one(tx, &r, folder)? {
            kept.push(k);
        }
    }
    // A run of several groups adds to the manifest, which is written last.
    let mut files: Vec<serde_json::Value> = std::fs::read_to_string(folder.join("manifest.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|m| m["files"].as_array().cloned())
        .unwrap_or_default();
    files.extend(kept.iter().filter_map(|k| serde_json::to_value(k).ok()));
    let manifest = serde_json::json!({
        "taken_at": chrono::Utc::now(),
        "why": "values a rollback's down migrations removed, kept before they ran",
        "files": files,
    });
    let body = serde_json::to_string_pretty(&manifest).unwrap_or_default();
    export::text(folder, "manifest.json", &body)?;
    Ok(kept)
}

/// What is worth a file: a table's export holds its columns and rows, so a
/// column, rows or enum values of a table that goes whole are not
/// exported again.
fn relevant(found: Vec<Removal>) -> Vec<Removal> {
    let gone: BTreeSet<u32> = found
        .iter()
        .filter_map(|r| match r {
            Removal::Table(t) => Some(t.oid),
            _ => None,
        })
        .collect();
    let columns_gone: BTreeSet<(u32, String)> = found
        .iter()
        .filter_map(|r| match r {
            Removal::Column(t, c) => Some((t.oid, c.clone())),
            _ => None,
        })
        .collect();
    found
        .into_iter()
        .filter(|r| match r {
            Removal::Table(_) => true,
            Removal::Column(t, _) | Removal::Rows(t) => !gone.contains(&t.oid),
            Removal::EnumValue { table, column, .. } => {
                !gone.contains(&table.oid) && !columns_gone.contains(&(table.oid, column.clone()))
            }
        })
        .collect()
}

/// A file name in `folder` that no earlier export of this run took.
fn free_name(folder: &Path, parts: &[&str]) -> String {
    let first = export::file_name(parts, "csv");
    if !folder.join(&first).exists() {
        return first;
    }
    (2..)
        .map(|n| export::file_name(parts, &format!("{n}.csv")))
        .find(|name| !folder.join(name).exists())
        .unwrap_or(first)
}

/// Exports one removal; `None` for an enum value no row holds.
fn export_one(
    tx: &mut Transaction<'_>,
    r: &Removal,
    folder: &Path,
) -> Result<Option<Kept>, KeepError> {
    let (table, column, what, filter) = match r {
        Removal::Table(t) => (t, None, "table".to_string(), String::new()),
        Removal::Rows(t) => (t, None, "rows".to_string(), String::new()),
        // A NULL holds nothing to put back: the values are the others.
        Removal::Column(t, c) => (
            t,
            Some(c.clone()),
            "column".to_string(),
            format!(" where {} is not null", quote_ident(c)),
        ),
        Removal::EnumValue { table, column, label } => (
            table,
            Some(column.clone()),
            format!("enum value {label}"),
            format!(" where {}::text = '{}'", quote_ident(column), label.replace('\'', "''")),
        ),
    };
    let key = key_of(tx, table.oid)?;
    let columns = match &column {
        // The key, so a person can put the values back, then the column.
        Some(c) if !key.is_empty() => {
            let mut cols: Vec<String> = key.iter().map(|k| quote_ident(k)).collect();
            if !key.contains(c) {
                cols.push(quote_ident(c));
            }
            cols.join(", ")
        }
        _ => "*".to_string(),
    };
    let query = format!("select {columns} from {}{filter}", table.qualified());
    let rows: i64 = tx.query_one(&format!("select count(*) from ({query}) q"), &[])?.get(0);
    if rows == 0 && matches!(r, Removal::EnumValue { .. }) {
        return Ok(None);
    }
    let kind = match r {
        Removal::Table(_) => "table",
        Removal::Rows(_) => "rows",
        Removal::Column(..) => "column",
        Removal::EnumValue { .. } => "enum",
    };
    let mut parts = vec![kind, table.schema.as_str(), table.name.as_str()];
    if let Some(c) = &column {
        parts.push(c);
    }
    if let Removal::EnumValue { label, .. } = r {
        parts.push(label);
    }
    let file = free_name(folder, &parts);
    let written = export::csv(tx, &query, folder, &file)?;
    Ok(Some(Kept { table: table.label(), column, what, rows, file, blake3: written.blake3 }))
}

/// Where a run keeps what its downs remove: `<root>/<UTC time>/`.
pub fn run_folder(root: &Path) -> PathBuf {
    root.join(chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ").to_string())
}
