//! `backstop.applied`: which migrations are applied, with their checksum,
//! who applied them and when, and the backup and rehearsal that guarded
//! them.

use chrono::{DateTime, Utc};
use postgres::GenericClient;

use super::Error;

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

/// Every applied migration (in no particular order; callers sort); none
/// when the schema does not exist.
pub fn all(client: &mut impl GenericClient) -> Result<Vec<AppliedRow>, Error> {
    if !super::exists(client)? {
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

/// The applied versions, sorted; none without the schema.
pub fn versions(client: &mut impl GenericClient) -> Result<Vec<String>, Error> {
    if !super::has(client, "backstop.applied")? {
        return Ok(Vec::new());
    }
    Ok(client
        .query("select version from backstop.applied order by version", &[])?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// A migration about to be recorded as applied.
#[derive(Debug, Clone)]
pub struct NewApplied<'a> {
    pub version: &'a str,
    pub name: &'a str,
    pub checksum: &'a str,
    pub no_transaction: bool,
    /// A repeatable migration's row is brought up to date when it applies again.
    pub repeatable: bool,
    pub duration_ms: i64,
    pub backup_id: Option<&'a str>,
    pub rehearsal_id: Option<&'a str>,
    /// The down Backstop computed and proved for it, when its layout has none.
    pub kept_down: Option<&'a str>,
    /// What a rollback of it must bring back, as JSON (`migrate::expect`).
    pub undo_to: Option<&'a str>,
}

/// Records a migration as applied; runs in the migration's own transaction.
pub fn insert(client: &mut impl GenericClient, m: &NewApplied<'_>) -> Result<(), Error> {
    // A repeatable migration applies again when its file changes: its row
    // is brought up to date. Any other version is inserted once (the
    // migration lock keeps two runs from racing).
    let upsert = if m.repeatable {
        " on conflict (version) do update set name = excluded.name, checksum = excluded.checksum,
           applied_at = now(), duration_ms = excluded.duration_ms, applied_by = excluded.applied_by,
           no_transaction = excluded.no_transaction, backup_id = excluded.backup_id,
           rehearsal_id = excluded.rehearsal_id, kept_down = excluded.kept_down,
           undo_to = excluded.undo_to"
    } else {
        ""
    };
    // Typed: sent with its parameters in one round trip, not prepared
    // first (a rehearsal writes a row for every migration, twice).
    use postgres::types::Type;
    client.execute_typed(
        &format!(
            "insert into backstop.applied
               (version, name, checksum, duration_ms, applied_by, no_transaction, backup_id,
                rehearsal_id, kept_down, undo_to)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10){upsert}"
        ),
        &[
            (&m.version, Type::TEXT),
            (&m.name, Type::TEXT),
            (&m.checksum, Type::TEXT),
            (&m.duration_ms, Type::INT8),
            (&super::actor(), Type::TEXT),
            (&m.no_transaction, Type::BOOL),
            (&m.backup_id, Type::TEXT),
            (&m.rehearsal_id, Type::TEXT),
            (&m.kept_down, Type::TEXT),
            (&m.undo_to, Type::TEXT),
        ],
    )?;
    Ok(())
}

/// Records `rows` (read from another database's history) as applied, in
/// one statement: a copy that starts from a target's schema holds the
/// target's history, hundreds of rows on a long one.
pub fn insert_copied(client: &mut impl GenericClient, rows: &[AppliedRow]) -> Result<(), Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let column = |f: fn(&AppliedRow) -> &str| rows.iter().map(f).collect::<Vec<&str>>();
    let durations: Vec<i64> = rows.iter().map(|r| r.duration_ms).collect();
    let no_transaction: Vec<bool> = rows.iter().map(|r| r.no_transaction).collect();
    client.execute(
        "insert into backstop.applied
           (version, name, checksum, duration_ms, applied_by, no_transaction)
         select v, n, c, d, $5, t
           from unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $6::bool[]) as r(v, n, c, d, t)",
        &[
            &column(|r| &r.version),
            &column(|r| &r.name),
            &column(|r| &r.checksum),
            &durations,
            &super::actor(),
            &no_transaction,
        ],
    )?;
    Ok(())
}

/// The downs Backstop kept for applied migrations, by version.
pub fn kept_downs(
    client: &mut impl GenericClient,
) -> Result<std::collections::BTreeMap<String, String>, Error> {
    Ok(client
        .query("select version, kept_down from backstop.applied where kept_down is not null", &[])?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

/// The downs Backstop kept for `versions`, by version: what a rollback of
/// a few reads, however long the history.
pub fn kept_downs_of(
    client: &mut impl GenericClient,
    versions: &[String],
) -> Result<std::collections::BTreeMap<String, String>, Error> {
    recorded_for(client, "kept_down", versions)
}

/// What a rollback of each of `versions` must bring back, as recorded
/// when it was applied (JSON, `migrate::expect`), by version; a version
/// recorded without it is absent.
pub fn undo_to(
    client: &mut impl GenericClient,
    versions: &[String],
) -> Result<std::collections::BTreeMap<String, String>, Error> {
    recorded_for(client, "undo_to", versions)
}

/// One text column of `backstop.applied` (`column`, a name of this file's
/// own) for `versions`, by version; a version where it is null is absent.
fn recorded_for(
    client: &mut impl GenericClient,
    column: &str,
    versions: &[String],
) -> Result<std::collections::BTreeMap<String, String>, Error> {
    let sql = format!(
        "select version, {column} from backstop.applied where version = any($1) and {column} is not null"
    );
    Ok(client.query(&sql, &[&versions])?.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// A migration taken over from another tool's history, as that tool
/// recorded it (when, by whom, how long).
#[derive(Debug, Clone)]
pub struct Adopted<'a> {
    pub version: &'a str,
    pub name: &'a str,
    pub checksum: &'a str,
    pub applied_at: Option<DateTime<Utc>>,
    pub duration_ms: i64,
    pub applied_by: &'a str,
    pub no_transaction: bool,
}

/// Records an adopted migration.
pub fn adopt(client: &mut impl GenericClient, m: &Adopted<'_>) -> Result<u64, Error> {
    client.execute(
        "insert into backstop.applied (version, name, checksum, applied_at, duration_ms, applied_by, no_transaction)
         values ($1, $2, $3, coalesce($4, now()), $5, $6, $7)",
        &[
            &m.version,
            &m.name,
            &m.checksum,
            &m.applied_at,
            &m.duration_ms,
            &m.applied_by,
            &m.no_transaction,
        ],
    )
}

/// Forgets an applied migration; runs in the rollback's own transaction.
/// Sent with its parameter's type, so it is not prepared first: a
/// rehearsal runs it once for every down it tries.
pub fn remove(client: &mut impl GenericClient, version: &str) -> Result<(), Error> {
    use postgres::types::Type;
    client.execute_typed(
        "delete from backstop.applied where version = $1",
        &[(&version, Type::TEXT)],
    )?;
    Ok(())
}

/// Forgets every applied migration (a restore puts the backup's rows back).
pub fn clear(client: &mut impl GenericClient) -> Result<(), Error> {
    client.batch_execute("DELETE FROM backstop.applied")
}

/// Accepts a new checksum for an applied migration.
pub fn set_checksum(
    client: &mut impl GenericClient,
    version: &str,
    checksum: &str,
) -> Result<u64, Error> {
    client.execute(
        "update backstop.applied set checksum = $2 where version = $1",
        &[&version, &checksum],
    )
}

/// When `version` was applied, if it is.
pub fn applied_at(
    client: &mut impl GenericClient,
    version: &str,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, Error> {
    if !super::has(client, "backstop.applied")? {
        return Ok(None);
    }
    Ok(client
        .query_opt("select applied_at from backstop.applied where version = $1", &[&version])?
        .map(|r| r.get(0)))
}

/// The backup the latest guarded migration recorded, if any.
pub fn latest_backup_id(client: &mut impl GenericClient) -> Result<Option<String>, Error> {
    if !super::has(client, "backstop.applied")? {
        return Ok(None);
    }
    Ok(client
        .query_opt(
            "select backup_id from backstop.applied where backup_id is not null
              order by applied_at desc, version desc limit 1",
            &[],
        )?
        .map(|r| r.get(0)))
}
