//! `backstop.expands`: each expand of pending migrations, the plan that
//! contract and rollback carry out, and whether it is still open. The
//! unique index on open rows makes a second expand fail even if two runs
//! race past the check.

use postgres::GenericClient;

use super::Error;

/// An expand as recorded.
#[derive(Debug, Clone)]
pub struct ExpandRow {
    pub id: i64,
    /// The schema whose tables keep the old shape (`public`).
    pub schema: String,
    /// The last migration the expand serves.
    pub version: String,
    /// The schema of views serving the new shape (`public_<version>`).
    pub new_schema: String,
    /// What contract and rollback need (the engine's own JSON).
    pub plan: serde_json::Value,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub started_by: String,
}

/// The expand in progress, if any; none without the schema.
pub fn open(client: &mut impl GenericClient) -> Result<Option<ExpandRow>, Error> {
    if !super::has(client, "backstop.expands")? {
        return Ok(None);
    }
    Ok(client
        .query_opt(
            "select id, schema, version, new_schema, plan, started_at, started_by
               from backstop.expands where state = 'expanded'",
            &[],
        )?
        .map(|r| ExpandRow {
            id: r.get(0),
            schema: r.get(1),
            version: r.get(2),
            new_schema: r.get(3),
            plan: r.get(4),
            started_at: r.get(5),
            started_by: r.get(6),
        }))
}

/// Records an expand as open; runs in the expand's own transaction.
pub fn insert(
    client: &mut impl GenericClient,
    schema: &str,
    version: &str,
    new_schema: &str,
    plan: &serde_json::Value,
) -> Result<i64, Error> {
    Ok(client
        .query_one(
            "insert into backstop.expands (schema, version, new_schema, plan, state, started_by)
             values ($1, $2, $3, $4, 'expanded', $5) returning id",
            &[&schema, &version, &new_schema, plan, &super::actor()],
        )?
        .get(0))
}

/// Closes an open expand as `contracted` or `rolled_back`; in the
/// transaction that contracts or rolls it back.
pub fn close(client: &mut impl GenericClient, id: i64, state: &str) -> Result<(), Error> {
    client.execute(
        "update backstop.expands set state = $2, ended_at = clock_timestamp(), ended_by = $3
          where id = $1 and state = 'expanded'",
        &[&id, &state, &super::actor()],
    )?;
    Ok(())
}
