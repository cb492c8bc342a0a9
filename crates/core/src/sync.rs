//! Bringing one database's rows into another: the runbook's "sync rows
//! written in V2 back to V1". The rows that differ are found exactly as
//! `compare` finds them (every column, by primary key); the receiving side
//! then gets them inserted or updated by key, parents before the tables
//! that refer to them, and (only when asked) loses the rows it alone has,
//! referring tables first, all in one transaction. The rows travel as
//! `to_jsonb` and are read back with `jsonb_populate_recordset`, so every
//! value keeps its type's own text form; a comparison afterwards proves it.

use crate::pg::db;
use chrono::{DateTime, NaiveDateTime, Utc};
use postgres::Client;
use serde::Serialize;
use serde_json::Value;

use crate::compare::{self, RowDiff};
use crate::pg::{quote_ident, quote_qualified};

/// What to bring over.
#[derive(Debug, Clone, Default)]
pub struct SyncOptions {
    /// Only these tables (`schema.table` or `table`).
    pub tables: Vec<String>,
    /// Only rows of the sending side whose `updated_at` (or else
    /// `created_at`) is at or after this.
    pub since: Option<DateTime<Utc>>,
    /// Delete the rows only the receiving side has.
    pub with_deletes: bool,
    /// Change the receiving side (otherwise: say what would change).
    pub apply: bool,
}

/// One table's share.
#[derive(Debug, Clone, Serialize)]
pub struct TableSync {
    pub table: String,
    pub insert: usize,
    pub update: usize,
    /// Rows only the receiving side has, deleted with `with_deletes`.
    pub delete: usize,
    /// Rows only the receiving side has, left as they are.
    pub kept: usize,
    /// Differing rows older than `since`, left out.
    pub older: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(skip)]
    rows: Vec<RowDiff>,
    #[serde(skip)]
    key: Vec<String>,
    /// The table, quoted.
    #[serde(skip)]
    relation: String,
}

/// What a sync found and did.
#[derive(Debug, Clone, Serialize)]
pub struct SyncReport {
    pub tables: Vec<TableSync>,
    pub applied: bool,
    /// Tables that cannot be synced (no key, on one side only, unreadable).
    pub refused: Vec<String>,
    /// After applying: the synced tables compared again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<Remaining>,
}

/// What still differs after a sync (rows left out on purpose included).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Remaining {
    /// `match`, `differ` or `error`, as `compare` says.
    pub verdict: &'static str,
    pub missing: usize,
    pub different: usize,
    pub extra: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Db(#[from] crate::pg::DbError),
    #[error("nothing was changed: {}", .0.join("; "))]
    Refused(Vec<String>),
}

impl SyncError {
    /// 1 when the data or the tables stop it, 3 when a database could not be talked to.
    pub fn exit_code(&self) -> u8 {
        match self {
            SyncError::Db(e) if e.source.as_db_error().is_none() => 3,
            _ => 1,
        }
    }
}

/// The time a row was written, from its `updated_at` or else `created_at`.
fn written_at(row: &Value) -> Option<Option<DateTime<Utc>>> {
    // The column is there (`Some`); a NULL or unreadable time is `Some(None)`.
    let v = ["updated_at", "created_at"].iter().find_map(|c| row.get(*c))?;
    Some(v.as_str().and_then(|text| {
        DateTime::parse_from_rfc3339(text)
            .map(|t| t.with_timezone(&Utc))
            .or_else(|_| {
                NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").map(|t| t.and_utc())
            })
            .ok()
    }))
}

/// Finds what differs from `from` to `to` and, with `apply`, brings it over.
pub fn sync(
    from: &mut Client,
    to: &mut Client,
    opts: &SyncOptions,
) -> Result<SyncReport, SyncError> {
    // Every differing row, with its source row, in one comparison.
    let plan = compare::compare_keeping(
        from,
        to,
        &opts.tables,
        usize::MAX,
        &compare::Tolerances::default(),
    )
    .map_err(db("comparing"))?;
    let mut refused = Vec::new();
    let mut tables = Vec::new();
    for t in plan.tables {
        match t.status {
            // Neither side lets the role read it, nor change it.
            "match" | "not_readable" => continue,
            "differ" if t.note.is_none() => {}
            "only_in_source" => {
                refused.push(format!("{} exists only on the sending side", t.table));
                continue;
            }
            "only_in_target" => {
                refused.push(format!("{} exists only on the receiving side", t.table));
                continue;
            }
            _ => {
                let why = t.note.clone().unwrap_or_else(|| t.status.to_string());
                refused.push(format!("{}: {why}", t.table));
                continue;
            }
        }
        let key = compare::primary_key(from, &t.schema, &t.name)
            .map_err(db(format!("reading the key of {}", t.table)))?;
        let mut s = TableSync {
            table: t.table.clone(),
            insert: 0,
            update: 0,
            delete: 0,
            kept: 0,
            older: 0,
            note: None,
            rows: Vec::new(),
            key,
            relation: quote_qualified(Some(&t.schema), &t.name),
        };
        for r in t.rows {
            if r.kind == "extra" {
                if opts.with_deletes {
                    s.delete += 1;
                    s.rows.push(r);
                } else {
                    s.kept += 1;
                }
                continue;
            }
            if let (Some(since), Some(row)) = (opts.since, &r.source_row) {
                match written_at(row) {
                    Some(Some(at)) if at < since => {
                        s.older += 1;
                        continue;
                    }
                    Some(_) => {}
                    None => {
                        s.note = Some("no updated_at or created_at column: --since does not apply, every differing row is taken".into());
                    }
                }
            }
            if r.kind == "missing" {
                s.insert += 1;
            } else {
                s.update += 1;
            }
            s.rows.push(r);
        }
        tables.push(s);
    }
    let mut report = SyncReport { tables, applied: false, refused, after: None };
    if !opts.apply {
        return Ok(report);
    }
    if !report.refused.is_empty() {
        return Err(SyncError::Refused(report.refused));
    }
    apply(to, &report.tables)?;
    report.applied = true;
    let names: Vec<String> = report.tables.iter().map(|t| t.table.clone()).collect();
    if !names.is_empty() {
        let after = compare::compare(from, to, &names).map_err(db("comparing again"))?;
        report.after = Some(Remaining {
            verdict: after.verdict,
            missing: after.tables.iter().map(|t| t.missing).sum(),
            different: after.tables.iter().map(|t| t.different).sum(),
            extra: after.tables.iter().map(|t| t.extra).sum(),
        });
    }
    Ok(report)
}

/// The table's columns that take values: not generated; and whether an
/// identity column is `GENERATED ALWAYS` (so values need OVERRIDING).
fn writable_columns(
    tx: &mut postgres::Transaction<'_>,
    relation: &str,
) -> Result<(Vec<String>, bool), postgres::Error> {
    let rows = tx.query(
        "select attname::text, attidentity = 'a' from pg_attribute
          where attrelid = $1::text::regclass and attnum > 0 and not attisdropped and attgenerated = ''
          order by attnum",
        &[&relation],
    )?;
    let always = rows.iter().any(|r| r.get::<_, bool>(1));
    Ok((rows.iter().map(|r| r.get(0)).collect(), always))
}

const BATCH: usize = 1000;

fn apply(to: &mut Client, tables: &[TableSync]) -> Result<(), SyncError> {
    let keys = crate::clear::foreign_keys(to).map_err(db("reading the foreign keys"))?;
    let names: Vec<String> = tables.iter().map(|t| t.table.clone()).collect();
    let (referring_first, _) = crate::clear::referring_first(&names, &keys);
    let by_name = |n: &str| tables.iter().find(|t| t.table == n).expect("ordered from the tables");
    let mut tx = to.transaction().map_err(db("starting the transaction"))?;
    tx.batch_execute("set constraints all deferred").map_err(db("deferring the constraints"))?;
    // Deletes first, referring tables first.
    for name in &referring_first {
        let t = by_name(name);
        let relation = &t.relation;
        let keys: Vec<&Value> =
            t.rows.iter().filter(|r| r.kind == "extra").map(|r| &r.key).collect();
        let on: Vec<String> =
            t.key.iter().map(|c| format!("t.{0} = k.{0}", quote_ident(c))).collect();
        for chunk in keys.chunks(BATCH) {
            let batch = Value::Array(chunk.iter().map(|v| (*v).clone()).collect());
            tx.execute(
                &format!(
                    "delete from {relation} t using jsonb_populate_recordset(null::{relation}, $1::jsonb) k where {}",
                    on.join(" and ")
                ),
                &[&batch],
            )
            .map_err(db(format!("deleting from {}", t.table)))?;
        }
    }
    // Then inserts and updates, tables referred to first.
    for name in referring_first.iter().rev() {
        let t = by_name(name);
        let relation = &t.relation;
        let (columns, always) = writable_columns(&mut tx, relation)
            .map_err(db(format!("reading the columns of {}", t.table)))?;
        let list: Vec<String> = columns.iter().map(|c| quote_ident(c)).collect();
        let set: Vec<String> = columns
            .iter()
            .filter(|c| !t.key.contains(c))
            .map(|c| format!("{0} = excluded.{0}", quote_ident(c)))
            .collect();
        let conflict = t.key.iter().map(|c| quote_ident(c)).collect::<Vec<_>>().join(", ");
        let action = if set.is_empty() {
            "nothing".to_string()
        } else {
            format!("update set {}", set.join(", "))
        };
        let sql = format!(
            "insert into {relation} ({cols}) {overriding}select {cols} from jsonb_populate_recordset(null::{relation}, $1::jsonb)
             on conflict ({conflict}) do {action}",
            cols = list.join(", "),
            overriding = if always { "overriding system value " } else { "" },
        );
        let rows: Vec<&Value> = t.rows.iter().filter_map(|r| r.source_row.as_ref()).collect();
        for chunk in rows.chunks(BATCH) {
            let batch = Value::Array(chunk.iter().map(|v| (*v).clone()).collect());
            tx.execute(&sql, &[&batch]).map_err(db(format!("writing the rows of {}", t.table)))?;
        }
    }
    let details = serde_json::json!({ "tables": tables });
    crate::schema::events::record_if_logged(
        &mut tx,
        &crate::schema::events::Event { kind: "sync", outcome: "ok", versions: vec![], details },
    )
    .map_err(db("recording the sync"))?;
    Ok(tx.commit().map_err(db("committing"))?)
}
