//! The `backstop` schema in the target database: which migrations are
//! applied (`applied`) and what happened (`events`). Created on first use,
//! after the migration lock is taken.

use chrono::{DateTime, Utc};
use postgres::{Client, GenericClient};

const SCHEMA_SQL: &str = r#"
CREATE SCHEMA IF NOT EXISTS backstop;
CREATE TABLE IF NOT EXISTS backstop.applied (
    version        text PRIMARY KEY,
    name           text NOT NULL,
    checksum       text NOT NULL,
    applied_at     timestamptz NOT NULL DEFAULT now(),
    duration_ms    bigint NOT NULL,
    applied_by     text NOT NULL,
    no_transaction boolean NOT NULL DEFAULT false,
    backup_id      text,
    rehearsal_id   text
);
CREATE TABLE IF NOT EXISTS backstop.events (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    kind     text NOT NULL,
    actor    text NOT NULL,
    outcome  text NOT NULL,
    versions text[] NOT NULL DEFAULT '{}',
    details  jsonb NOT NULL DEFAULT '{}'
);
CREATE OR REPLACE FUNCTION backstop.events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'backstop.events is an append-only audit log';
END
$$;
DROP TRIGGER IF EXISTS events_append_only ON backstop.events;
CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON backstop.events
    FOR EACH ROW EXECUTE FUNCTION backstop.events_append_only();
CREATE TABLE IF NOT EXISTS backstop.rehearsals (
    id          text PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    key         text NOT NULL,
    ok          boolean NOT NULL,
    full_data   boolean NOT NULL,
    migrations  jsonb NOT NULL,
    duration_ms bigint NOT NULL,
    report      text,
    by          text NOT NULL
);
CREATE INDEX IF NOT EXISTS rehearsals_key_idx ON backstop.rehearsals (key, at DESC);
CREATE TABLE IF NOT EXISTS backstop.meta (
    schema_version integer NOT NULL
);
"#;

/// Bumped whenever SCHEMA_SQL gains something; databases with an older
/// version get the (idempotent) script again.
const SCHEMA_VERSION: i32 = 2;

/// Creates the `backstop` schema if it is not there yet. Call with the
/// migration lock held.
pub fn ensure_schema(client: &mut Client) -> Result<(), postgres::Error> {
    let has_meta: bool =
        client.query_one("select to_regclass('backstop.meta') is not null", &[])?.get(0);
    let current: i32 = if has_meta {
        client.query_one("select coalesce(max(schema_version), 0) from backstop.meta", &[])?.get(0)
    } else {
        0
    };
    if current >= SCHEMA_VERSION {
        return Ok(());
    }
    let mut tx = client.transaction()?;
    tx.batch_execute(SCHEMA_SQL)?;
    tx.execute("delete from backstop.meta", &[])?;
    tx.execute("insert into backstop.meta (schema_version) values ($1)", &[&SCHEMA_VERSION])?;
    tx.commit()
}

/// Whether the history tables exist (read-only commands do not create them).
pub fn schema_exists(client: &mut impl GenericClient) -> Result<bool, postgres::Error> {
    let row = client.query_one(
        "select to_regclass('backstop.applied') is not null and to_regclass('backstop.events') is not null",
        &[],
    )?;
    Ok(row.get(0))
}

/// One row of `backstop.applied`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AppliedRow {
    pub version: String,
    pub name: String,
    pub checksum: String,
    pub applied_at: DateTime<Utc>,
    pub duration_ms: i64,
    pub applied_by: String,
    pub no_transaction: bool,
    /// The backup that guarded this migration, if the backup gate ran.
    pub backup_id: Option<String>,
}

/// Every applied migration (in no particular order; callers sort).
pub fn applied(client: &mut impl GenericClient) -> Result<Vec<AppliedRow>, postgres::Error> {
    if !schema_exists(client)? {
        return Ok(Vec::new());
    }
    let rows = client.query(
        "select version, name, checksum, applied_at, duration_ms, applied_by, no_transaction,
                backup_id
           from backstop.applied",
        &[],
    )?;
    Ok(rows
        .iter()
        .map(|r| AppliedRow {
            version: r.get(0),
            name: r.get(1),
            checksum: r.get(2),
            applied_at: r.get(3),
            duration_ms: r.get(4),
            applied_by: r.get(5),
            no_transaction: r.get(6),
            backup_id: r.get(7),
        })
        .collect())
}

/// Records a migration as applied; runs in the migration's own transaction.
pub fn insert(
    client: &mut impl GenericClient,
    m: &crate::source::Migration,
    duration_ms: i64,
    stamp: &super::Stamp,
) -> Result<(), postgres::Error> {
    // A repeatable migration applies again when its file changes: its row
    // is brought up to date. Any other version is inserted once (the
    // migration lock keeps two runs from racing).
    let upsert = if m.repeatable {
        " on conflict (version) do update set name = excluded.name, checksum = excluded.checksum,
           applied_at = now(), duration_ms = excluded.duration_ms, applied_by = excluded.applied_by,
           no_transaction = excluded.no_transaction, backup_id = excluded.backup_id,
           rehearsal_id = excluded.rehearsal_id"
    } else {
        ""
    };
    client.execute(
        &format!(
            "insert into backstop.applied
               (version, name, checksum, duration_ms, applied_by, no_transaction, backup_id, rehearsal_id)
             values ($1, $2, $3, $4, $5, $6, $7, $8){upsert}"
        ),
        &[
            &m.version,
            &m.name,
            &m.checksum,
            &duration_ms,
            &crate::audit::actor(),
            &m.no_transaction,
            &stamp.backup_id,
            &stamp.rehearsal_id,
        ],
    )?;
    Ok(())
}

/// Forgets an applied migration; runs in the rollback's own transaction.
pub fn remove(client: &mut impl GenericClient, version: &str) -> Result<(), postgres::Error> {
    client.execute("delete from backstop.applied where version = $1", &[&version])?;
    Ok(())
}

/// Accepts a new checksum for an applied migration.
pub fn set_checksum(
    client: &mut impl GenericClient,
    version: &str,
    checksum: &str,
) -> Result<u64, postgres::Error> {
    client.execute(
        "update backstop.applied set checksum = $2 where version = $1",
        &[&version, &checksum],
    )
}
