//! `backstop.watching`: the heartbeat of `backstop respond watch`, one row per
//! watching host and process, updated after every round of samples, so the
//! status page and `/metrics` can tell a decision that is current from one
//! left behind by a watch that stopped.

use chrono::{DateTime, Utc};
use postgres::GenericClient;

use super::Error;

/// The newest heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Beat {
    /// When the last round of samples was taken.
    pub at: DateTime<Utc>,
    /// Who watches: `user@host pid N`.
    pub by: String,
    pub triggers: i32,
}

/// Records that `by` sampled `triggers` triggers just now; nothing when
/// the schema does not exist (watch never creates it for a heartbeat).
pub fn beat(client: &mut impl GenericClient, by: &str, triggers: i32) -> Result<(), Error> {
    if !super::has(client, "backstop.watching")? {
        return Ok(());
    }
    client.execute(
        "insert into backstop.watching (by, at, triggers) values ($1, clock_timestamp(), $2)
         on conflict (by) do update set at = excluded.at, triggers = excluded.triggers",
        &[&by, &triggers],
    )?;
    Ok(())
}

/// The newest heartbeat, if any watch ever ran.
pub fn latest(client: &mut impl GenericClient) -> Result<Option<Beat>, Error> {
    if !super::has(client, "backstop.watching")? {
        return Ok(None);
    }
    let row = client.query_opt(
        "select at, by, triggers from backstop.watching order by at desc limit 1",
        &[],
    )?;
    Ok(row.map(|r| Beat { at: r.get(0), by: r.get(1), triggers: r.get(2) }))
}
