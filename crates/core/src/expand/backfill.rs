//! The backfill of an expand's twin columns and filled columns: every
//! existing row gets its twin computed from the column (a type change) or
//! the new column's default computed for it (`now()`, a new UUID), in
//! batches walked along the primary key,
//! each batch its own short transaction under the expand's
//! `lock_timeout` (a batch that cannot get its row locks in time is tried
//! again, never waited on). Only rows whose twin is empty and whose column
//! is not are written, so a backfill stopped anywhere (a crash, a kill)
//! resumes where it stopped by running again: `migrate --expand` on the
//! same migrations, or `migrate --contract`, which finishes it first.
//!
//! A value the new type cannot take fails its batch; that batch is then
//! written row by row and the rows that fail are named, by key, with the
//! error. They keep an empty twin, and contract refuses while any remain.

use std::time::{Duration, Instant};

use postgres::Client;

use super::plan::{Fill, Retyped};
use super::trace::{self, LockTrace};
use super::twins;
use crate::pg::{db, quote_ident, quote_qualified, DbError};

/// One column to backfill: `set` on every row `pending` holds for.
pub struct Job {
    /// `table.column`, as the new shape names it.
    pub label: String,
    pub table: String,
    pub key: Vec<(String, String)>,
    /// The assignment, of columns of the table as `t`.
    pub set: String,
    /// The rows still to fill, of columns of the table as `t`.
    pub pending: String,
}

impl Job {
    /// The twin of retyped column `i`, computed from the column.
    pub fn twin(new_schema: &str, i: usize, r: &Retyped) -> Job {
        let (c, w) = (quote_ident(&r.column), quote_ident(&r.twin));
        Job {
            label: format!("{}.{}", r.table, r.named),
            table: r.table.clone(),
            key: r.key.clone(),
            set: format!("{w} = {}(t.{c})", twins::up(new_schema, i)),
            pending: format!("t.{w} IS NULL AND t.{c} IS NOT NULL"),
        }
    }

    /// A new column, filled with its value where it is NULL (and the
    /// filter holds).
    pub fn fill(f: &Fill) -> Job {
        let c = quote_ident(&f.column);
        let pending = match &f.filter {
            Some(w) => format!("t.{c} IS NULL AND {} IS TRUE", f.on_row(w, "t")),
            None => format!("t.{c} IS NULL"),
        };
        Job {
            label: format!("{}.{}", f.table, f.column),
            table: f.table.clone(),
            key: f.key.clone(),
            set: format!("{c} = {}", f.on_row(&f.value, "t")),
            pending,
        }
    }
}

/// Rows a batch writes at most.
const BATCH: i64 = 1000;
/// How often a batch that could not get its locks is tried again.
const RETRIES: u32 = 20;
/// Failed rows named, at most, per column.
const NAMED: usize = 20;

/// What the backfill of one column did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Filled {
    /// `table.column`, as the new shape names the column.
    pub column: String,
    /// Rows whose twin it wrote.
    pub rows: u64,
    /// Rows whose value the new type cannot take: `key: error`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<String>,
    /// How many rows failed (more than are named, possibly).
    pub failures: u64,
    pub seconds: f64,
}

/// The statements of one column's batches: write a batch, read its keys
/// (each from the start, or after a key; up to the last key there was
/// when the backfill began: a row written since got its value from the
/// trigger or the default) and write one row.
struct Batches {
    write: [String; 2],
    keys: [String; 2],
    one: String,
    /// The last key in key order, as text.
    end: String,
}

impl Batches {
    fn new(schema: &str, job: &Job) -> Batches {
        let table = quote_qualified(Some(schema), &job.table);
        let keys: Vec<String> = job.key.iter().map(|(k, _)| quote_ident(k)).collect();
        let list = keys.join(", ");
        // Key `$p` (text[]) cast back to the key's types.
        let bound = |p: usize| -> String {
            let parts: Vec<String> = job
                .key
                .iter()
                .enumerate()
                .map(|(n, (_, ty))| format!("(${p}::text[])[{}]::{ty}", n + 1))
                .collect();
            parts.join(", ")
        };
        let in_t: Vec<String> = keys.iter().map(|k| format!("t.{k}")).collect();
        // The batch's keys under names of their own, so that a value or a
        // filter naming a key column reads the row's, not the batch's.
        let aliased: Vec<String> =
            keys.iter().enumerate().map(|(n, k)| format!("{k} AS backstop_k{n}")).collect();
        let in_b: Vec<String> = (0..keys.len()).map(|n| format!("b.backstop_k{n}")).collect();
        let b_text: Vec<String> = in_b.iter().map(|k| format!("{k}::text")).collect();
        let b_desc: Vec<String> = in_b.iter().map(|k| format!("{k} DESC")).collect();
        let as_text: Vec<String> = keys.iter().map(|k| format!("{k}::text")).collect();
        let desc: Vec<String> = keys.iter().map(|k| format!("{k} DESC")).collect();
        let (set, pending) = (&job.set, &job.pending);
        let batch = |filter: &str| {
            format!(
                "WITH b AS MATERIALIZED (SELECT {} FROM {table} {filter} ORDER BY {list} \
                 LIMIT {BATCH}),
                 done AS (UPDATE {table} AS t SET {set} FROM b
                           WHERE ({}) = ({}) AND {pending}
                           RETURNING 1)
                 SELECT (SELECT count(*) FROM done),
                        (SELECT ARRAY[{}] FROM b ORDER BY {} LIMIT 1)",
                aliased.join(", "),
                in_t.join(", "),
                in_b.join(", "),
                b_text.join(", "),
                b_desc.join(", ")
            )
        };
        let keys_of = |filter: &str| {
            format!(
                "SELECT ARRAY[{}] FROM {table} {filter} ORDER BY {list} LIMIT {BATCH}",
                as_text.join(", ")
            )
        };
        let first = format!("WHERE ({list}) <= ({})", bound(1));
        let next = format!("WHERE ({list}) > ({}) AND ({list}) <= ({})", bound(1), bound(2));
        Batches {
            write: [batch(&first), batch(&next)],
            keys: [keys_of(&first), keys_of(&next)],
            one: format!(
                "UPDATE {table} AS t SET {set} WHERE ({}) = ({}) AND {pending}",
                in_t.join(", "),
                bound(1)
            ),
            end: format!(
                "SELECT ARRAY[{}] FROM {table} ORDER BY {} LIMIT 1",
                as_text.join(", "),
                desc.join(", ")
            ),
        }
    }

    /// The statement of `pair` for the batch after `last` (or the first),
    /// and its parameters.
    fn pick<'s>(
        pair: &'s [String; 2],
        last: Option<&'s Vec<String>>,
        end: &'s Vec<String>,
    ) -> (&'s str, Vec<&'s Vec<String>>) {
        match last {
            None => (&pair[0], vec![end]),
            Some(last) => (&pair[1], vec![last, end]),
        }
    }
}

/// Backfills one column of `schema`, saying its progress through `note`.
pub fn run(
    client: &mut Client,
    schema: &str,
    job: &Job,
    lock_timeout: Duration,
    locks: &mut LockTrace,
    note: &mut dyn FnMut(&str),
) -> Result<Filled, DbError> {
    let started = Instant::now();
    let label = job.label.clone();
    let mut filled = Filled { column: label.clone(), ..Filled::default() };
    let left: i64 = client
        .query_one(
            &format!(
                "select count(*) from {} AS t where {}",
                quote_qualified(Some(schema), &job.table),
                job.pending
            ),
            &[],
        )
        .map_err(db(format!("counting the rows of {label} to backfill")))?
        .get(0);
    if left == 0 {
        return Ok(filled);
    }
    let batches = Batches::new(schema, job);
    // Rows written from here on get their value from the trigger or the
    // default: the walk ends at the last key there is now.
    let upper: Option<Vec<String>> = client
        .query_opt(&batches.end, &[])
        .map_err(db(format!("reading the last key of {label}")))?
        .map(|r| r.get(0));
    let Some(upper) = upper else { return Ok(filled) };
    let mut last: Option<Vec<String>> = None;
    let mut said = Instant::now();
    loop {
        let (sql, params) = Batches::pick(&batches.write, last.as_ref(), &upper);
        let step = batch(client, sql, &params, lock_timeout, locks);
        let (rows, end) = match step {
            Ok(done) => done,
            Err(e) if e.code().is_some_and(|c| c.code().starts_with("22")) => {
                let (sql, params) = Batches::pick(&batches.keys, last.as_ref(), &upper);
                let keys = keys_of(client, sql, &params)?;
                by_row(client, &batches, &keys, lock_timeout, locks, &mut filled)?;
                (0, keys.last().cloned())
            }
            Err(e) => return Err(db(format!("backfilling {label}"))(e)),
        };
        filled.rows += rows as u64;
        let Some(end) = end else { break };
        last = Some(end);
        if said.elapsed() >= Duration::from_secs(1) {
            note(&format!("backfilling {label}: {} of {left} rows", filled.rows));
            said = Instant::now();
        }
    }
    filled.seconds = started.elapsed().as_secs_f64();
    note(&format!(
        "backfilled {label}: {} rows in {:.1} s{}",
        filled.rows,
        filled.seconds,
        match filled.failures {
            0 => String::new(),
            n => format!(", {n} whose value the new type cannot take"),
        }
    ));
    Ok(filled)
}

/// One batch in its own transaction, tried again while its locks are
/// taken: the rows written and the batch's last key (`None`: no rows left).
fn batch(
    client: &mut Client,
    sql: &str,
    params: &[&Vec<String>],
    lock_timeout: Duration,
    locks: &mut LockTrace,
) -> Result<(i64, Option<Vec<String>>), postgres::Error> {
    let params: Vec<&(dyn postgres::types::ToSql + Sync)> =
        params.iter().map(|p| *p as &(dyn postgres::types::ToSql + Sync)).collect();
    let row = short(client, lock_timeout, (locks, "backfill"), |tx| tx.query_one(sql, &params))?;
    Ok((row.get(0), row.get(1)))
}

/// Runs `work` in a transaction of its own under `lock_timeout` with the
/// triggers of retyped columns standing aside, tried again (up to
/// `RETRIES` times, a little later each time) while a lock is not had in
/// time: a long lock of someone else's is never waited on. The locks it
/// held go into the trace under its step.
pub fn short<T>(
    client: &mut Client,
    lock_timeout: Duration,
    (locks, step): (&mut LockTrace, &str),
    mut work: impl FnMut(&mut postgres::Transaction<'_>) -> Result<T, postgres::Error>,
) -> Result<T, postgres::Error> {
    let mut tries = 0;
    loop {
        let mut tx = client.transaction()?;
        let started = Instant::now();
        tx.batch_execute(&format!(
            "SET LOCAL lock_timeout = {}; SET LOCAL backstop.backfill = 'on'",
            lock_timeout.as_millis()
        ))?;
        match work(&mut tx) {
            Ok(out) => {
                let held = trace::held(&mut tx)?;
                tx.commit()?;
                locks.note(step, held, started.elapsed());
                return Ok(out);
            }
            Err(e) if waited(&e) && tries < RETRIES => {
                drop(tx);
                tries += 1;
                std::thread::sleep(Duration::from_millis(50 * u64::from(tries)));
            }
            Err(e) => return Err(e),
        }
    }
}

/// A lock not had in time, a deadlock or a serialization failure.
fn waited(e: &postgres::Error) -> bool {
    e.code().is_some_and(|c| matches!(c.code(), "55P03" | "40P01" | "40001"))
}

/// The keys of a failed batch, read alone.
fn keys_of(
    client: &mut Client,
    sql: &str,
    params: &[&Vec<String>],
) -> Result<Vec<Vec<String>>, DbError> {
    let params: Vec<&(dyn postgres::types::ToSql + Sync)> =
        params.iter().map(|p| *p as &(dyn postgres::types::ToSql + Sync)).collect();
    let rows = client.query(sql, &params);
    let rows = rows.map_err(db("reading the keys of a failed backfill batch"))?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// Writes a batch row by row, naming the rows whose value fails.
fn by_row(
    client: &mut Client,
    batches: &Batches,
    keys: &[Vec<String>],
    lock_timeout: Duration,
    locks: &mut LockTrace,
    filled: &mut Filled,
) -> Result<(), DbError> {
    for key in keys {
        let step = (&mut *locks, "backfill");
        match short(client, lock_timeout, step, |tx| tx.execute(&batches.one, &[key])) {
            Ok(n) => filled.rows += n,
            Err(e) if e.code().is_some_and(|c| c.code().starts_with("22")) => {
                filled.failures += 1;
                if filled.failed.len() < NAMED {
                    let reason = e.as_db_error().map_or(e.to_string(), |d| d.message().to_string());
                    filled.failed.push(format!("({}): {reason}", key.join(", ")));
                }
            }
            Err(e) => return Err(db("backfilling a row")(e)),
        }
    }
    Ok(())
}
