//! `backstop.incidents`: an incident is one record, opened by the first
//! rollback decision or method and closed when its triggers have been
//! clear for a while or a person closes it. At most one is open; every
//! event of the response written while it is open carries its id
//! (`backstop.events.incident`), so its texts are made from its own steps
//! only.

use chrono::{DateTime, Utc};
use postgres::GenericClient;

use super::Error;

/// The kinds of event that belong to the open incident.
pub const KINDS: [&str; 8] =
    ["decide", "method", "flag", "restore", "verify", "freeze", "sample", "incident"];

/// One incident as recorded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Record {
    pub id: i64,
    pub opened_at: DateTime<Utc>,
    /// What opened it: the decision or the method, in words.
    pub opened_by: String,
    pub closed_at: Option<DateTime<Utc>>,
    /// Who or what closed it: a person, or watch when the triggers cleared.
    pub closed_by: Option<String>,
    pub close_note: Option<String>,
}

const COLUMNS: &str = "id, opened_at, opened_by, closed_at, closed_by, close_note";

fn record(r: &postgres::Row) -> Record {
    Record {
        id: r.get(0),
        opened_at: r.get(1),
        opened_by: r.get(2),
        closed_at: r.get(3),
        closed_by: r.get(4),
        close_note: r.get(5),
    }
}

/// Whether this database records incidents (an older schema does not).
pub fn recorded(client: &mut impl GenericClient) -> Result<bool, Error> {
    super::has(client, "backstop.incidents")
}

/// The open incident, opened now for `why` when there is none; `None`
/// where incidents are not recorded.
pub fn open(client: &mut impl GenericClient, why: &str) -> Result<Option<Record>, Error> {
    if !recorded(client)? {
        return Ok(None);
    }
    // One open incident at most (a unique index on the open ones): two
    // methods starting together join the same one.
    client.execute(
        "insert into backstop.incidents (opened_by) values ($1) on conflict do nothing",
        &[&why],
    )?;
    current(client)
}

/// The open incident, if any.
pub fn current(client: &mut impl GenericClient) -> Result<Option<Record>, Error> {
    if !recorded(client)? {
        return Ok(None);
    }
    let row = client.query_opt(
        &format!("select {COLUMNS} from backstop.incidents where closed_at is null"),
        &[],
    )?;
    Ok(row.as_ref().map(record))
}

/// Incident `id`, or the latest one (open or not) when `id` is `None`.
pub fn get(client: &mut impl GenericClient, id: Option<i64>) -> Result<Option<Record>, Error> {
    if !recorded(client)? {
        return Ok(None);
    }
    let row = match id {
        Some(id) => client.query_opt(
            &format!("select {COLUMNS} from backstop.incidents where id = $1"),
            &[&id],
        )?,
        None => client.query_opt(
            &format!("select {COLUMNS} from backstop.incidents order by id desc limit 1"),
            &[],
        )?,
    };
    Ok(row.as_ref().map(record))
}

/// Every incident, newest first.
pub fn all(client: &mut impl GenericClient) -> Result<Vec<Record>, Error> {
    if !recorded(client)? {
        return Ok(Vec::new());
    }
    let rows =
        client.query(&format!("select {COLUMNS} from backstop.incidents order by id desc"), &[])?;
    Ok(rows.iter().map(record).collect())
}

/// Closes incident `id` if it is open; whether it was.
pub fn close(
    client: &mut impl GenericClient,
    id: i64,
    by: &str,
    note: &str,
) -> Result<bool, Error> {
    let n = client.execute(
        "update backstop.incidents set closed_at = clock_timestamp(), closed_by = $2, close_note = $3
          where id = $1 and closed_at is null",
        &[&id, &by, &note],
    )?;
    Ok(n == 1)
}
