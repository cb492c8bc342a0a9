//! What an expand does after its transaction commits, where one
//! transaction would hold a lock too long: the indexes built
//! `CONCURRENTLY`, the backfills (`backfill`), the `NOT VALID` constraints
//! validated (a scan that blocks no write). Each step finds what is left
//! to do, so running the expand again on the same migrations, or the
//! contract, resumes wherever a run stopped. Before a contract it also
//! proves the NOT NULLs the contract sets, with a CHECK validated the same
//! way, so that `SET NOT NULL` skips its scan under the contract's lock.
//!
//! What cannot settle (a value the new type cannot take or a fill cannot
//! compute, named by row with the server's error; a row that breaks a
//! constraint; an index that fails to build; a NULL where the contract
//! sets NOT NULL) is said, one line each, and stops a contract.

use postgres::Client;

use super::backfill::{self, short, Filled, Job};
use super::plan::Concurrent;
use super::trace::LockTrace;
use super::{ExpandError, Expanded};
use crate::migrate::Settings;
use crate::pg::{db, quote_ident, quote_qualified};

/// What a settle did and what it could not.
#[derive(Debug, Default)]
pub struct Settled {
    pub backfill: Vec<Filled>,
    /// What stops a contract, one line each.
    pub unsettled: Vec<String>,
}

/// Settles the open expand; with `for_contract`, the NOT NULLs too.
pub fn settle(
    client: &mut Client,
    open: &Expanded,
    settings: &Settings,
    for_contract: bool,
    locks: &mut LockTrace,
    note: &mut dyn FnMut(&str),
) -> Result<Settled, ExpandError> {
    let mut out = Settled::default();
    indexes(client, &open.schema, &open.plan.concurrent, note, &mut out)?;
    let plan = &open.plan;
    let twins = plan.retyped.iter().enumerate().map(|(i, r)| Job::twin(&open.new_schema, i, r));
    let jobs: Vec<Job> = twins.chain(plan.fills.iter().map(Job::fill)).collect();
    for job in &jobs {
        let filled = backfill::run(client, &open.schema, job, settings.lock_timeout, locks, note)?;
        out.unsettled.extend(filled.failed.iter().map(|r| format!("{}: row {r}", filled.column)));
        if filled.failures > filled.failed.len() as u64 {
            out.unsettled.push(format!(
                "{}: {} more such rows",
                filled.column,
                filled.failures - filled.failed.len() as u64
            ));
        }
        out.backfill.push(filled);
    }
    // A retyped column's indexes on its twin, once the twin is filled.
    let on_twins: Vec<Concurrent> =
        plan.retyped.iter().flat_map(|r| r.indexes.iter().map(|i| i.on_twin.clone())).collect();
    indexes(client, &open.schema, &on_twins, note, &mut out)?;
    for c in plan.constraints.iter().filter(|c| c.validate) {
        let table = quote_qualified(Some(&open.schema), &c.table);
        let sql = format!("ALTER TABLE {table} VALIDATE CONSTRAINT {}", quote_ident(&c.name));
        let step = (&mut *locks, "validate");
        if let Err(e) = short(client, settings.lock_timeout, step, |tx| tx.batch_execute(&sql)) {
            out.unsettled.push(format!("constraint {} of {}: {}", c.name, c.table, reason(&e)));
        }
    }
    if for_contract {
        not_nulls(client, open, settings, locks, &mut out)?;
    }
    Ok(out)
}

/// The indexes built `CONCURRENTLY`, each unless it is there and valid;
/// one a failed build left invalid is dropped and built again.
fn indexes(
    client: &mut Client,
    schema: &str,
    list: &[Concurrent],
    note: &mut dyn FnMut(&str),
    out: &mut Settled,
) -> Result<(), ExpandError> {
    for c in list {
        let index = quote_qualified(Some(schema), &c.index);
        let valid: Option<bool> = client
            .query_opt(
                "select i.indisvalid from pg_index i join pg_class c on c.oid = i.indexrelid
                  join pg_namespace n on n.oid = c.relnamespace
                 where n.nspname = $1 and c.relname = $2",
                &[&schema, &c.index],
            )
            .map_err(db("looking for an index built concurrently"))?
            .map(|r| r.get(0));
        if valid == Some(true) {
            continue;
        }
        let build = |client: &mut Client| -> Result<(), postgres::Error> {
            if valid == Some(false) {
                client.batch_execute(&format!("DROP INDEX CONCURRENTLY IF EXISTS {index}"))?;
            }
            client.batch_execute(&format!("SET search_path TO {}", quote_ident(schema)))?;
            let built = client.batch_execute(&c.sql);
            client.batch_execute("RESET search_path")?;
            built
        };
        note(&format!("building index {} concurrently", c.index));
        if let Err(e) = build(client) {
            // A failed concurrent build leaves an invalid index behind.
            let _ = client.batch_execute(&format!("DROP INDEX CONCURRENTLY IF EXISTS {index}"));
            out.unsettled.push(format!("index {}: {}", c.index, reason(&e)));
        }
    }
    Ok(())
}

/// Before a contract: each column it makes NOT NULL holds no NULL, proved
/// by a CHECK added `NOT VALID` and validated, which the contract drops
/// once `SET NOT NULL` has used it.
fn not_nulls(
    client: &mut Client,
    open: &Expanded,
    settings: &Settings,
    locks: &mut LockTrace,
    out: &mut Settled,
) -> Result<(), ExpandError> {
    let mut checks = Vec::new();
    for n in &open.plan.not_null {
        let table = quote_qualified(Some(&open.schema), &n.table);
        let column = quote_ident(&n.column);
        let nulls: i64 = client
            .query_one(&format!("select count(*) from {table} where {column} is null"), &[])
            .map_err(db("counting the NULLs of a column the contract makes NOT NULL"))?
            .get(0);
        if nulls > 0 {
            out.unsettled.push(format!(
                "{}.{}: {nulls} row(s) hold NULL, and the contract makes it NOT NULL; fill them \
                 through either shape",
                n.table, n.column
            ));
        }
        checks.push((n, table, column));
    }
    // No check is added while any column holds a NULL: a refused contract
    // leaves the tables as they were.
    if !out.unsettled.is_empty() {
        return Ok(());
    }
    for (n, table, column) in checks {
        let check = quote_ident(&n.check);
        let add = format!(
            "ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {check};
             ALTER TABLE {table} ADD CONSTRAINT {check} CHECK ({column} IS NOT NULL) NOT VALID"
        );
        let validate = format!("ALTER TABLE {table} VALIDATE CONSTRAINT {check}");
        for sql in [add, validate] {
            let step = (&mut *locks, "validate");
            if let Err(e) = short(client, settings.lock_timeout, step, |tx| tx.batch_execute(&sql))
            {
                out.unsettled.push(format!("{}.{}: {}", n.table, n.column, reason(&e)));
                break;
            }
        }
    }
    Ok(())
}

/// The server's message of an error, or the error.
fn reason(e: &postgres::Error) -> String {
    e.as_db_error().map_or_else(|| e.to_string(), |d| d.message().to_string())
}
