//! `backstop.flags` and the changes to it: each in one transaction with its
//! audit event and the `NOTIFY` that carries the new ETag.

use std::time::Duration;

use postgres::{Client, GenericClient, Transaction};
use serde::Serialize;
use serde_json::{json, Value};

use super::{etag, rollout, Flag, FlagDecl, FlagsError, State, CHANNEL};
use crate::audit;
use crate::migrate::history;
use crate::pg::lock::MigrationLock;

const TABLE_SQL: &str = "CREATE TABLE IF NOT EXISTS backstop.flags (
    key             text PRIMARY KEY,
    state           text NOT NULL CHECK (state IN ('ENABLED', 'DISABLED')),
    variants        jsonb NOT NULL,
    default_variant text NOT NULL,
    targeting       jsonb,
    description     text NOT NULL DEFAULT '',
    owner           text,
    release         text NOT NULL,
    code_default    jsonb,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    updated_by      text NOT NULL
);
CREATE INDEX IF NOT EXISTS flags_release_idx ON backstop.flags (release)";

fn db(context: &'static str) -> impl FnOnce(postgres::Error) -> FlagsError {
    move |source| FlagsError::Db { context, source }
}

/// Creates the `backstop` schema (under the migration lock) and the flags
/// table if they are missing.
fn ensure(client: &mut Client, lock_wait: Duration) -> Result<(), FlagsError> {
    let exists: bool = client
        .query_one("select to_regclass('backstop.flags') is not null", &[])
        .map_err(db("looking for backstop.flags"))?
        .get(0);
    if exists {
        return Ok(());
    }
    let mut lock = MigrationLock::acquire(client, lock_wait, |_| {})?;
    history::ensure_schema(&mut lock).map_err(db("creating the backstop schema"))?;
    lock.batch_execute(TABLE_SQL).map_err(db("creating backstop.flags"))
}

/// Makes `to`'s flags what `from`'s are: a restore puts back the data, and
/// the flags stay as they are now (a kill before the restore stays a kill).
/// Both sessions must have the backstop schema.
pub fn carry_over(from: &mut Client, to: &mut Client) -> Result<u64, postgres::Error> {
    let exists: bool =
        from.query_one("select to_regclass('backstop.flags') is not null", &[])?.get(0);
    if !exists {
        return Ok(0);
    }
    let rows: Value = from
        .query_one("select coalesce(jsonb_agg(to_jsonb(f)), '[]') from backstop.flags f", &[])?
        .get(0);
    let mut tx = to.transaction()?;
    tx.batch_execute(TABLE_SQL)?;
    tx.execute("delete from backstop.flags", &[])?;
    let n = tx.execute(
        "insert into backstop.flags select * from jsonb_populate_recordset(null::backstop.flags, $1)",
        &[&rows],
    )?;
    tx.commit()?;
    Ok(n)
}

/// Every flag, by key; none when the table does not exist yet.
pub fn list(client: &mut impl GenericClient) -> Result<Vec<Flag>, FlagsError> {
    let exists: bool = client
        .query_one("select to_regclass('backstop.flags') is not null", &[])
        .map_err(db("looking for backstop.flags"))?
        .get(0);
    if !exists {
        return Ok(Vec::new());
    }
    let rows = client
        .query(
            "select key, state, variants, default_variant, targeting, description, owner,
                    release, code_default, updated_at, updated_by
               from backstop.flags order by key",
            &[],
        )
        .map_err(db("reading backstop.flags"))?;
    Ok(rows
        .iter()
        .map(|r| Flag {
            key: r.get(0),
            state: State::parse(r.get(1)),
            variants: match r.get::<_, Value>(2) {
                Value::Object(m) => m,
                _ => Default::default(),
            },
            default_variant: r.get(3),
            targeting: r.get(4),
            description: r.get(5),
            owner: r.get(6),
            release: r.get(7),
            code_default: r.get(8),
            updated_at: r.get(9),
            updated_by: r.get(10),
        })
        .collect())
}

/// One flag's change, as audited and notified.
#[derive(Debug, Clone, Serialize)]
pub struct FlagChange {
    pub key: String,
    pub release: String,
    pub from: State,
    pub to: State,
    /// The rollout share, when enabled for part of the targeting keys.
    pub percent: Option<u32>,
    /// The ETag of all flags after the change.
    pub etag: String,
}

/// Writes the changes' events and the notification, then commits.
fn commit(
    mut tx: Transaction<'_>,
    changes: &mut [FlagChange],
    actor: &str,
    reason: &str,
) -> Result<(), FlagsError> {
    let flags = list(&mut tx)?;
    let tag = etag(&flags);
    for c in changes.iter_mut() {
        c.etag = tag.clone();
        let event = audit::Event {
            kind: "flag",
            outcome: "ok",
            versions: Vec::new(),
            details: json!({
                "key": c.key, "release": c.release, "from": c.from, "to": c.to,
                "percent": c.percent, "reason": reason, "by": actor, "etag": tag,
            }),
        };
        audit::record(&mut tx, &event).map_err(db("writing the flag event"))?;
    }
    tx.execute("select pg_notify($1, $2)", &[&CHANNEL, &tag])
        .map_err(db("notifying the flag change"))?;
    tx.commit().map_err(db("committing the flag change"))
}

fn require_reason(reason: &str) -> Result<(), FlagsError> {
    if reason.trim().is_empty() {
        return Err(FlagsError::NoReason);
    }
    Ok(())
}

/// Turns `key` on, for everyone or for `percent` % of targeting keys.
pub fn enable(
    client: &mut Client,
    key: &str,
    percent: Option<u32>,
    actor: &str,
    reason: &str,
    lock_wait: Duration,
) -> Result<FlagChange, FlagsError> {
    require_reason(reason)?;
    ensure(client, lock_wait)?;
    let mut tx = client.transaction().map_err(db("starting the flag change"))?;
    let flag = locked(&mut tx, key)?;
    let targeting = match percent {
        Some(p) => rollout(&flag, p)?,
        None => None,
    };
    tx.execute(
        "update backstop.flags set state = 'ENABLED', targeting = $2, updated_at = now(), updated_by = $3
          where key = $1",
        &[&key, &targeting, &actor],
    )
    .map_err(db("enabling the flag"))?;
    let mut changes = [FlagChange {
        key: key.to_string(),
        release: flag.release,
        from: flag.state,
        to: State::Enabled,
        percent,
        etag: String::new(),
    }];
    commit(tx, &mut changes, actor, reason)?;
    let [change] = changes;
    Ok(change)
}

/// Turns `key` off: clients get no value and fall back to their code's default.
pub fn disable(
    client: &mut Client,
    key: &str,
    actor: &str,
    reason: &str,
    lock_wait: Duration,
) -> Result<FlagChange, FlagsError> {
    require_reason(reason)?;
    ensure(client, lock_wait)?;
    let mut tx = client.transaction().map_err(db("starting the flag change"))?;
    let flag = locked(&mut tx, key)?;
    tx.execute(
        "update backstop.flags set state = 'DISABLED', updated_at = now(), updated_by = $2 where key = $1",
        &[&key, &actor],
    )
    .map_err(db("disabling the flag"))?;
    let mut changes = [FlagChange {
        key: key.to_string(),
        release: flag.release,
        from: flag.state,
        to: State::Disabled,
        percent: None,
        etag: String::new(),
    }];
    commit(tx, &mut changes, actor, reason)?;
    let [change] = changes;
    Ok(change)
}

/// The kill switch: every flag of `release` off, in one transaction.
pub fn kill_release(
    client: &mut Client,
    release: &str,
    actor: &str,
    reason: &str,
    lock_wait: Duration,
) -> Result<Vec<FlagChange>, FlagsError> {
    require_reason(reason)?;
    ensure(client, lock_wait)?;
    let mut tx = client.transaction().map_err(db("starting the kill"))?;
    let rows = tx
        .query(
            "select key, state from backstop.flags where release = $1 order by key for update",
            &[&release],
        )
        .map_err(db("reading the release's flags"))?;
    if rows.is_empty() {
        return Err(FlagsError::UnknownRelease { release: release.to_string() });
    }
    tx.execute(
        "update backstop.flags set state = 'DISABLED', updated_at = now(), updated_by = $2
          where release = $1",
        &[&release, &actor],
    )
    .map_err(db("disabling the release's flags"))?;
    let mut changes: Vec<FlagChange> = rows
        .iter()
        .map(|r| FlagChange {
            key: r.get(0),
            release: release.to_string(),
            from: State::parse(r.get(1)),
            to: State::Disabled,
            percent: None,
            etag: String::new(),
        })
        .collect();
    commit(tx, &mut changes, actor, reason)?;
    Ok(changes)
}

/// The flag `key`, locked for the change.
fn locked(tx: &mut Transaction<'_>, key: &str) -> Result<Flag, FlagsError> {
    let exists: bool = tx
        .query_one("select exists (select from backstop.flags where key = $1 for update)", &[&key])
        .map_err(db("locking the flag"))?
        .get(0);
    if !exists {
        return Err(FlagsError::UnknownFlag { key: key.to_string() });
    }
    list(tx)?
        .into_iter()
        .find(|f| f.key == key)
        .ok_or_else(|| FlagsError::UnknownFlag { key: key.to_string() })
}

/// What `flags sync` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SyncReport {
    /// Declared and created (off).
    pub created: Vec<String>,
    /// Declared and already there: left as they are, on or off.
    pub kept: Vec<String>,
    /// In the database, but no longer declared.
    pub undeclared: Vec<String>,
}

/// Creates the declared flags that are missing, off; never flips one that
/// exists; reports the ones the config no longer declares.
pub fn sync(
    client: &mut Client,
    decls: &[FlagDecl],
    actor: &str,
    lock_wait: Duration,
) -> Result<SyncReport, FlagsError> {
    ensure(client, lock_wait)?;
    let existing = list(client)?;
    let mut report = SyncReport::default();
    let mut tx = client.transaction().map_err(db("starting the sync"))?;
    let mut created = Vec::new();
    for d in decls {
        if existing.iter().any(|f| f.key == d.key) {
            report.kept.push(d.key.clone());
            continue;
        }
        let variants = Value::Object(d.variants());
        tx.execute(
            "insert into backstop.flags
               (key, state, variants, default_variant, description, owner, release, code_default, updated_by)
             values ($1, 'DISABLED', $2, $3, $4, $5, $6, $7, $8)",
            &[&d.key, &variants, &d.default_variant(), &d.description, &d.owner, &d.release, &d.default, &actor],
        )
        .map_err(db("creating a flag"))?;
        report.created.push(d.key.clone());
        created.push(FlagChange {
            key: d.key.clone(),
            release: d.release.clone(),
            from: State::Disabled,
            to: State::Disabled,
            percent: None,
            etag: String::new(),
        });
    }
    report.undeclared = existing
        .iter()
        .filter(|f| !decls.iter().any(|d| d.key == f.key))
        .map(|f| f.key.clone())
        .collect();
    if created.is_empty() {
        return Ok(report);
    }
    commit(tx, &mut created, actor, "flags sync: declared in backstop.toml")?;
    Ok(report)
}

/// One entry of a flag's history.
#[derive(Debug, Clone, Serialize)]
pub struct FlagEvent {
    pub at: chrono::DateTime<chrono::Utc>,
    pub actor: String,
    pub details: Value,
}

/// Every recorded change of `key`, oldest first.
pub fn history(client: &mut impl GenericClient, key: &str) -> Result<Vec<FlagEvent>, FlagsError> {
    if !history::schema_exists(client).map_err(db("looking for backstop.events"))? {
        return Ok(Vec::new());
    }
    let rows = client
        .query(
            "select at, actor, details from backstop.events
              where kind = 'flag' and details ->> 'key' = $1 order by id",
            &[&key],
        )
        .map_err(db("reading the flag's history"))?;
    Ok(rows
        .iter()
        .map(|r| FlagEvent { at: r.get(0), actor: r.get(1), details: r.get(2) })
        .collect())
}
