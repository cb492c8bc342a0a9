//! The flag changes: each in one transaction with its audit event and
//! the `NOTIFY` that carries the new ETag. Rows are read and written
//! through [`crate::schema::flags`].

use crate::pg::db;
use std::time::Duration;

use postgres::{Client, GenericClient, Transaction};
use serde::Serialize;
use serde_json::{json, Value};

use super::{etag, rollout, Flag, FlagDecl, FlagsError, State};
use crate::schema::{self, events, flags as table};

/// Creates the `backstop` schema with its flags table if it is missing.
fn ensure(client: &mut Client, _lock_wait: Duration) -> Result<(), FlagsError> {
    Ok(schema::ensure(client).map_err(db("creating the backstop schema"))?)
}

/// Every flag, by key; none when the table does not exist yet.
pub fn list(client: &mut impl GenericClient) -> Result<Vec<Flag>, FlagsError> {
    Ok(table::list(client).map_err(db("reading backstop.flags"))?)
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
    /// The ramp whose step this change is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ramp: Option<i64>,
}

/// Writes the changes' events and the notification, then commits.
pub(super) fn commit(
    mut tx: Transaction<'_>,
    changes: &mut [FlagChange],
    actor: &str,
    reason: &str,
) -> Result<(), FlagsError> {
    record(&mut tx, changes, actor, reason)?;
    Ok(tx.commit().map_err(db("committing the flag change"))?)
}

/// The changes' events and the `NOTIFY`, in `tx`, which the caller
/// commits with whatever else it changed.
pub(super) fn record(
    tx: &mut Transaction<'_>,
    changes: &mut [FlagChange],
    actor: &str,
    reason: &str,
) -> Result<(), FlagsError> {
    let flags = list(tx)?;
    let tag = etag(&flags);
    for c in changes.iter_mut() {
        c.etag = tag.clone();
        let mut details = json!({
            "key": c.key, "release": c.release, "from": c.from, "to": c.to,
            "percent": c.percent, "reason": reason, "by": actor, "etag": tag,
        });
        if let Some(ramp) = c.ramp {
            details["ramp"] = json!(ramp);
        }
        let event = events::Event { kind: "flag", outcome: "ok", versions: Vec::new(), details };
        // Who made the change: a person at a terminal, or a server's named token.
        events::record_as(tx, &event, actor).map_err(db("writing the flag event"))?;
    }
    table::notify(tx, &tag).map_err(db("notifying the flag change"))?;
    Ok(())
}

pub(super) fn require_reason(reason: &str) -> Result<(), FlagsError> {
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
    table::set_state(&mut tx, key, State::Enabled, targeting.as_ref(), actor)
        .map_err(db("enabling the flag"))?;
    let mut changes = [FlagChange {
        key: key.to_string(),
        release: flag.release,
        from: flag.state,
        to: State::Enabled,
        percent,
        etag: String::new(),
        ramp: None,
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
    table::set_state(&mut tx, key, State::Disabled, None, actor)
        .map_err(db("disabling the flag"))?;
    let mut changes = [FlagChange {
        key: key.to_string(),
        release: flag.release,
        from: flag.state,
        to: State::Disabled,
        percent: None,
        etag: String::new(),
        ramp: None,
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
    let rows = table::disable_release(&mut tx, release, actor)
        .map_err(db("disabling the release's flags"))?;
    if rows.is_empty() {
        return Err(FlagsError::UnknownRelease { release: release.to_string() });
    }
    let mut changes: Vec<FlagChange> = rows
        .into_iter()
        .map(|(key, from)| FlagChange {
            key,
            release: release.to_string(),
            from,
            to: State::Disabled,
            percent: None,
            etag: String::new(),
            ramp: None,
        })
        .collect();
    commit(tx, &mut changes, actor, reason)?;
    Ok(changes)
}

/// Turns every flag of `release` on, in one transaction (for everyone or
/// for `percent` % of targeting keys): the launch, the undo of a kill.
pub fn enable_release(
    client: &mut Client,
    release: &str,
    percent: Option<u32>,
    actor: &str,
    reason: &str,
    lock_wait: Duration,
) -> Result<Vec<FlagChange>, FlagsError> {
    require_reason(reason)?;
    ensure(client, lock_wait)?;
    let mut tx = client.transaction().map_err(db("starting the release's launch"))?;
    let mut changes = share_release(&mut tx, release, percent, actor)?;
    commit(tx, &mut changes, actor, reason)?;
    Ok(changes)
}

/// Turns every flag of `release` on for `percent` % of targeting keys
/// (everyone without a share or at 100) in `tx`; the changes, to commit.
pub(super) fn share_release(
    tx: &mut Transaction<'_>,
    release: &str,
    percent: Option<u32>,
    actor: &str,
) -> Result<Vec<FlagChange>, FlagsError> {
    let keys: Vec<String> =
        list(tx)?.into_iter().filter(|f| f.release == release).map(|f| f.key).collect();
    if keys.is_empty() {
        return Err(FlagsError::UnknownRelease { release: release.to_string() });
    }
    let mut changes = Vec::with_capacity(keys.len());
    for key in keys {
        let flag = locked(tx, &key)?;
        let targeting = match percent {
            Some(p) => rollout(&flag, p)?,
            None => None,
        };
        table::set_state(tx, &key, State::Enabled, targeting.as_ref(), actor)
            .map_err(db("enabling the flag"))?;
        changes.push(FlagChange {
            key,
            release: release.to_string(),
            from: flag.state,
            to: State::Enabled,
            percent,
            etag: String::new(),
            ramp: None,
        });
    }
    Ok(changes)
}

/// The flag `key`, locked for the change.
fn locked(tx: &mut Transaction<'_>, key: &str) -> Result<Flag, FlagsError> {
    if !table::lock(tx, key).map_err(db("locking the flag"))? {
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
        let default_variant = d.default_variant();
        let row = table::NewFlag {
            key: &d.key,
            variants: Value::Object(d.variants()),
            default_variant: &default_variant,
            description: &d.description,
            owner: d.owner.as_deref(),
            release: &d.release,
            code_default: d.default.as_ref(),
        };
        table::insert(&mut tx, &row, actor).map_err(db("creating a flag"))?;
        report.created.push(d.key.clone());
        created.push(FlagChange {
            key: d.key.clone(),
            release: d.release.clone(),
            from: State::Disabled,
            to: State::Disabled,
            percent: None,
            etag: String::new(),
            ramp: None,
        });
    }
    // An expand's shape flag is Backstop's own, never declared.
    let own = |f: &Flag| {
        f.key == super::shape_key(f.code_default.as_ref().and_then(|v| v.as_str()).unwrap_or(""))
    };
    report.undeclared = existing
        .iter()
        .filter(|f| !decls.iter().any(|d| d.key == f.key) && !own(f))
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
    let rows = events::with_detail(client, "flag", "key", key)
        .map_err(db("reading the flag's history"))?;
    Ok(rows
        .into_iter()
        .map(|e| FlagEvent { at: e.at, actor: e.actor, details: e.details })
        .collect())
}
