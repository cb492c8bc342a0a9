//! The exact state a restore point marks, and comparing a recovery with
//! it. A restore point is a position in the WAL, not a snapshot: what the
//! gate records "at the point" must be what a recovery to it shows. So the
//! protected tables are locked against writes (SHARE: readers go on) before
//! the transaction's snapshot is taken, the point is created and the
//! snapshot exported in one statement, and a second session adopts that
//! snapshot and reads the tables' row counts and checksums after the locks
//! are gone: no write to a protected table falls between the snapshot and
//! the point. The writers wait only for the milliseconds between the LOCK
//! and the COMMIT, which the record says.
//!
//! The point also records each database's write counters
//! (`pg_stat_database`), read just before it: a physical restore brings
//! back the whole cluster, and a later restore compares them to tell
//! whether another database changed since.

use std::collections::BTreeMap;
use std::time::Instant;

use postgres::{Client, GenericClient, IsolationLevel};

use super::manifest::{DatabaseWrites, PointState};
use super::BackupError;
use crate::pg::checksum::{table_checksums_of, TableChecksum};
use crate::pg::{quote_qualified, Prepared};

/// Where the point is in the WAL, and the state it marks.
pub struct Marked {
    pub lsn: String,
    pub wal_file: String,
    pub state: PointState,
}

/// Creates the restore point `name` with the protected tables (names as
/// configured; those that do not exist are left out) locked against
/// writes, and reads their state at the point on a second session of
/// `url`. A lock that takes longer than `lock_wait` fails the gate.
pub fn mark(
    client: &mut Client,
    url: &str,
    name: &str,
    protected: &[String],
    lock_wait: std::time::Duration,
) -> Result<Marked, BackupError> {
    let tables = resolve(client, protected)?;
    let started = Instant::now();
    let mut tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .start()
        .map_err(BackupError::db("starting the restore point's transaction"))?;
    tx.batch_execute(&format!("SET LOCAL lock_timeout = {}", lock_wait.as_millis().max(1)))
        .map_err(BackupError::db("setting lock_timeout"))?;
    if !tables.is_empty() {
        // LOCK takes no snapshot: the transaction's is taken by the next
        // statement, after every writer to these tables has committed.
        let list: Vec<&str> = tables.values().map(String::as_str).collect();
        tx.batch_execute(&format!("LOCK TABLE {} IN SHARE MODE", list.join(", "))).map_err(
            |e| BackupError::PgBackRest {
                what: format!(
                    "could not lock the protected tables against writes for the restore point: {}",
                    crate::pg::conn::error_chain(&e)
                ),
                fix: "a long transaction writes to one of them; let it finish, or raise [backup] \
                      lock_wait"
                    .into(),
            },
        )?;
    }
    // Read before the point: a write in another database between the two
    // reads as a change since the point, never the other way round.
    let databases = database_writes(&mut tx)?;
    let row = tx
        .query_one(
            "select lsn::text, pg_walfile_name(lsn), pg_export_snapshot()
               from pg_create_restore_point($1) lsn",
            &[&name],
        )
        .map_err(|e| BackupError::PgBackRest {
            what: format!(
                "could not create restore point {name}: {}",
                e.as_db_error().map_or_else(|| e.to_string(), |d| d.message().to_string())
            ),
            fix: "the gate's role needs pg_create_restore_point and pg_switch_wal (a superuser, \
                  or GRANT EXECUTE on both)"
                .into(),
        })?;
    let (lsn, wal_file, snapshot): (String, String, String) = (row.get(0), row.get(1), row.get(2));
    let mut reader = crate::pg::connect(url, "backstop")?;
    let mut at_point = reader
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .map_err(BackupError::db("opening a second session at the restore point"))?;
    at_point
        .batch_execute(&format!("SET TRANSACTION SNAPSHOT '{}'", snapshot.replace('\'', "''")))
        .map_err(BackupError::db("adopting the restore point's snapshot"))?;
    tx.commit().map_err(BackupError::db("committing the restore point"))?;
    let locked_ms = if tables.is_empty() { 0 } else { started.elapsed().as_millis() as u64 };
    let oids: Vec<u32> = tables.keys().copied().collect();
    let protected = table_checksums_of(&mut at_point, &mut Prepared::default(), &oids)
        .map_err(BackupError::db("checksumming the protected tables at the restore point"))?
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    let applied = crate::schema::applied::versions(&mut at_point)
        .map_err(BackupError::db("reading backstop.applied at the restore point"))?;
    at_point.commit().map_err(BackupError::db("ending the session at the restore point"))?;
    Ok(Marked { lsn, wal_file, state: PointState { protected, applied, databases, locked_ms } })
}

/// The protected tables that exist, by OID, each with its quoted name.
fn resolve(
    client: &mut Client,
    protected: &[String],
) -> Result<BTreeMap<u32, String>, BackupError> {
    let mut tables = BTreeMap::new();
    for configured in protected {
        let oid = crate::migrate::protect::resolve(client, configured)
            .map_err(BackupError::db("finding the protected tables"))?;
        let Some(oid) = oid else { continue };
        let row = client
            .query_one(
                "select n.nspname::text, c.relname::text from pg_class c
                   join pg_namespace n on n.oid = c.relnamespace where c.oid = $1",
                &[&oid],
            )
            .map_err(BackupError::db("finding the protected tables"))?;
        let (schema, table): (String, String) = (row.get(0), row.get(1));
        tables.insert(oid, quote_qualified(Some(&schema), &table));
    }
    Ok(tables)
}

/// Every database's rows written (inserted, updated, deleted) since its
/// statistics began, and when they began.
pub fn database_writes(
    client: &mut impl GenericClient,
) -> Result<Vec<DatabaseWrites>, BackupError> {
    let rows = client
        .query(
            "select datname::text, (tup_inserted + tup_updated + tup_deleted)::int8,
                    stats_reset::text
               from pg_stat_database where datname is not null order by 1",
            &[],
        )
        .map_err(BackupError::db("reading pg_stat_database"))?;
    Ok(rows
        .iter()
        .map(|r| DatabaseWrites { name: r.get(0), writes: r.get(1), stats_reset: r.get(2) })
        .collect())
}

/// The databases other than `own` whose writes differ from those at the
/// point, or that were added or dropped since, or whose statistics were
/// reset: each said in a phrase.
pub fn changed_since(point: &[DatabaseWrites], now: &[DatabaseWrites], own: &str) -> Vec<String> {
    let mut changed = Vec::new();
    for then in point.iter().filter(|d| d.name != own) {
        match now.iter().find(|d| d.name == then.name) {
            None => changed.push(format!("{} was dropped", then.name)),
            Some(d) if d.stats_reset != then.stats_reset => {
                changed.push(format!("{}'s statistics were reset (writes unknown)", d.name))
            }
            Some(d) if d.writes != then.writes => {
                changed.push(format!("{} took {} row write(s)", d.name, d.writes - then.writes))
            }
            Some(_) => {}
        }
    }
    for d in now.iter().filter(|d| d.name != own) {
        if !point.iter().any(|p| p.name == d.name) {
            changed.push(format!("{} was created", d.name));
        }
    }
    changed
}

/// How a recovery differs from the state recorded at the point: the
/// protected tables' rows and checksums, and `backstop.applied`.
pub fn differences(client: &mut Client, state: &PointState) -> Result<Vec<String>, BackupError> {
    let mut out = Vec::new();
    let mut oids = Vec::new();
    for t in &state.protected {
        let oid: Option<u32> = client
            .query_one("select to_regclass($1)::oid", &[&quoted(&t.table)])
            .map_err(BackupError::db("finding the protected tables"))?
            .get(0);
        match oid {
            Some(oid) => oids.push(oid),
            None => out.push(format!("protected table {} is missing", t.table)),
        }
    }
    let now: Vec<TableChecksum> = table_checksums_of(client, &mut Prepared::default(), &oids)
        .map_err(BackupError::db("checksumming the protected tables"))?
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    for t in &state.protected {
        let Some(n) = now.iter().find(|n| n.table == t.table) else { continue };
        if n.rows != t.rows {
            out.push(format!("{} has {} row(s), {} at the point", t.table, n.rows, t.rows));
        } else if n.checksum != t.checksum {
            out.push(format!(
                "{}'s checksum is {}, {} at the point",
                t.table, n.checksum, t.checksum
            ));
        }
    }
    let applied = crate::schema::applied::versions(client)
        .map_err(BackupError::db("reading backstop.applied"))?;
    if applied != state.applied {
        out.push(format!(
            "backstop.applied holds [{}], [{}] at the point",
            applied.join(", "),
            state.applied.join(", ")
        ));
    }
    Ok(out)
}

/// `schema.table` as a qualified name `to_regclass` reads back.
fn quoted(table: &str) -> String {
    match table.split_once('.') {
        Some((schema, name)) => quote_qualified(Some(schema), name),
        None => quote_qualified(None, table),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(name: &str, writes: i64) -> DatabaseWrites {
        DatabaseWrites { name: name.into(), writes, stats_reset: None }
    }

    #[test]
    fn other_databases_count_as_changed_by_writes_new_names_and_drops() {
        let then = [w("app", 10), w("billing", 5), w("gone", 1)];
        let now = [w("app", 99), w("billing", 7), w("new", 0)];
        assert_eq!(
            changed_since(&then, &now, "app"),
            ["billing took 2 row write(s)", "gone was dropped", "new was created"]
        );
        assert!(changed_since(&then[..2], &[w("app", 50), w("billing", 5)], "app").is_empty());
    }
}
