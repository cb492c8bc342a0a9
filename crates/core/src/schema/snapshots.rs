//! `backstop.snapshots`: per-table row counts and checksums taken by
//! `verify --snapshot`, which later checks compare with. A name is never
//! overwritten: the older snapshot may be the only record of how things were.

use chrono::{DateTime, Utc};
use postgres::{Client, GenericClient};
use serde_json::Value;

use super::Error;

/// A snapshot as stored.
#[derive(Debug, Clone)]
pub struct Stored {
    pub name: String,
    pub taken_at: DateTime<Utc>,
    pub method: String,
    /// The per-table figures, as the verify domain serialised them.
    pub tables: Value,
}

/// Stores a snapshot; `Err(Some(taken_at))` is a name already taken then.
pub fn save(client: &mut Client, s: &Stored) -> Result<Result<(), DateTime<Utc>>, Error> {
    super::ensure(client)?;
    let mut tx = client.transaction()?;
    let inserted = tx.execute(
        "insert into backstop.snapshots (name, taken_at, taken_by, method, tables)
         values ($1, $2, $3, $4, $5) on conflict (name) do nothing",
        &[&s.name, &s.taken_at, &super::actor(), &s.method, &s.tables],
    )?;
    if inserted == 0 {
        let taken_at: DateTime<Utc> = tx
            .query_one("select taken_at from backstop.snapshots where name = $1", &[&s.name])?
            .get(0);
        return Ok(Err(taken_at));
    }
    tx.commit()?;
    Ok(Ok(()))
}

/// The snapshot called `name`, if there is one.
pub fn load(client: &mut impl GenericClient, name: &str) -> Result<Option<Stored>, Error> {
    if !super::has(client, "backstop.snapshots")? {
        return Ok(None);
    }
    Ok(client
        .query_opt(
            "select taken_at, method, tables from backstop.snapshots where name = $1",
            &[&name],
        )?
        .map(|r| Stored {
            name: name.to_string(),
            taken_at: r.get(0),
            method: r.get(1),
            tables: r.get(2),
        }))
}

/// The names of the newest `limit` snapshots, newest first.
pub fn names(client: &mut impl GenericClient, limit: i64) -> Result<Vec<String>, Error> {
    if !super::has(client, "backstop.snapshots")? {
        return Ok(Vec::new());
    }
    Ok(client
        .query("select name from backstop.snapshots order by taken_at desc limit $1", &[&limit])?
        .iter()
        .map(|r| r.get(0))
        .collect())
}
