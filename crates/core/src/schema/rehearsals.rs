//! `backstop.rehearsals`: each rehearsal run, keyed by the ordered
//! (version, checksum) pairs of the migrations it rehearsed, so the
//! rehearsal gate can ask for a recent pass of exactly these.

use chrono::{DateTime, Utc};
use postgres::GenericClient;
use serde_json::Value;

use super::Error;

/// A rehearsal as recorded.
#[derive(Debug, Clone)]
pub struct NewRehearsal<'a> {
    pub id: &'a str,
    pub key: &'a str,
    pub ok: bool,
    pub full_data: bool,
    pub migrations: Value,
    pub duration_ms: i64,
    pub report: Option<&'a str>,
}

/// Records a rehearsal; call with the schema ensured.
pub fn insert(client: &mut impl GenericClient, r: &NewRehearsal<'_>) -> Result<(), Error> {
    client.execute(
        "insert into backstop.rehearsals (id, key, ok, full_data, migrations, duration_ms, report, by)
         values ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            &r.id,
            &r.key,
            &r.ok,
            &r.full_data,
            &r.migrations,
            &r.duration_ms,
            &r.report,
            &super::actor(),
        ],
    )?;
    Ok(())
}

/// A pass found for the gate.
#[derive(Debug, Clone)]
pub struct Pass {
    pub id: String,
    pub at: DateTime<Utc>,
    pub full_data: bool,
}

/// The newest passing rehearsal of `key` younger than `max_age`
/// (schema-only ones too when `accept_schema_only`).
pub fn latest_pass(
    client: &mut impl GenericClient,
    key: &str,
    max_age: std::time::Duration,
    accept_schema_only: bool,
) -> Result<Option<Pass>, Error> {
    if !super::has(client, "backstop.rehearsals")? {
        return Ok(None);
    }
    Ok(client
        .query_opt(
            "select id, at, full_data from backstop.rehearsals
              where key = $1 and ok and at > now() - make_interval(secs => $2)
                and (full_data or $3)
              order by at desc limit 1",
            &[&key, &max_age.as_secs_f64(), &accept_schema_only],
        )?
        .map(|r| Pass { id: r.get(0), at: r.get(1), full_data: r.get(2) }))
}

/// A rehearsal as the status page shows it.
#[derive(Debug, Clone)]
pub struct Latest {
    pub at: DateTime<Utc>,
    pub ok: bool,
    /// The Markdown report's path.
    pub report: Option<String>,
}

/// The newest rehearsal, pass or not.
pub fn latest(client: &mut impl GenericClient) -> Result<Option<Latest>, Error> {
    if !super::has(client, "backstop.rehearsals")? {
        return Ok(None);
    }
    Ok(client
        .query_opt("select at, ok, report from backstop.rehearsals order by at desc limit 1", &[])?
        .map(|r| Latest { at: r.get(0), ok: r.get(1), report: r.get(2) }))
}
