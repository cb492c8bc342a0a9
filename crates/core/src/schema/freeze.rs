//! `backstop.freeze` and `backstop.role_freeze`: the write freezes in
//! force, with who set them, when, why, and what to give back when they
//! are lifted (the database's own `default_transaction_read_only`; a
//! role's exact grants).

use chrono::{DateTime, Utc};
use postgres::GenericClient;
use serde_json::Value;

use super::Error;

/// A database freeze as recorded.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FreezeState {
    pub database: String,
    pub since: DateTime<Utc>,
    pub actor: String,
    pub reason: String,
    /// Whether `default_transaction_read_only` was set on the database
    /// (false when the role may not alter it: writes were not blocked).
    pub read_only_set: bool,
    /// The database's own `default_transaction_read_only` before the
    /// freeze, put back on unfreeze.
    pub previous_setting: Option<String>,
}

/// The freeze of the connected database, if any.
pub fn current(client: &mut impl GenericClient) -> Result<Option<FreezeState>, Error> {
    if !super::has(client, "backstop.freeze")? {
        return Ok(None);
    }
    // One row at most. Not matched by name: a frozen database set aside
    // under another name (a pre-restore snapshot) is still frozen.
    let row = client.query_opt(
        "select database, since, actor, reason, read_only_set, previous_setting
           from backstop.freeze order by since limit 1",
        &[],
    )?;
    Ok(row.map(|r| FreezeState {
        database: r.get(0),
        since: r.get(1),
        actor: r.get(2),
        reason: r.get(3),
        read_only_set: r.get(4),
        previous_setting: r.get(5),
    }))
}

/// Records a freeze; call in the transaction that sets it, schema ensured.
pub fn insert(client: &mut impl GenericClient, s: &FreezeState) -> Result<(), Error> {
    client.execute(
        "insert into backstop.freeze (database, since, actor, reason, read_only_set, previous_setting)
         values ($1, $2, $3, $4, $5, $6)",
        &[&s.database, &s.since, &s.actor, &s.reason, &s.read_only_set, &s.previous_setting],
    )?;
    Ok(())
}

/// Forgets the freeze record (lifting it, or a restored database that
/// must not bring back a freeze its backup was taken under).
pub fn clear(client: &mut impl GenericClient) -> Result<(), Error> {
    if super::has(client, "backstop.freeze")? {
        client.execute("delete from backstop.freeze", &[])?;
    }
    Ok(())
}

/// A role whose writes are frozen.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FrozenRole {
    pub role: String,
    pub since: DateTime<Utc>,
    pub actor: String,
    pub reason: String,
}

/// The roles frozen now, with when and why.
pub fn frozen_roles(client: &mut impl GenericClient) -> Result<Vec<FrozenRole>, Error> {
    if !super::has(client, "backstop.role_freeze")? {
        return Ok(Vec::new());
    }
    Ok(client
        .query("select role, since, actor, reason from backstop.role_freeze order by role", &[])?
        .iter()
        .map(|r| FrozenRole { role: r.get(0), since: r.get(1), actor: r.get(2), reason: r.get(3) })
        .collect())
}

/// The grants recorded for `role`'s freeze (locked for the change when
/// `for_update`), if it is frozen.
pub fn role_grants(
    client: &mut impl GenericClient,
    role: &str,
    for_update: bool,
) -> Result<Option<Value>, Error> {
    if !super::has(client, "backstop.role_freeze")? {
        return Ok(None);
    }
    let lock = if for_update { " for update" } else { "" };
    Ok(client
        .query_opt(
            &format!("select grants from backstop.role_freeze where role = $1{lock}"),
            &[&role],
        )?
        .map(|r| r.get(0)))
}

/// Records `role`'s freeze with the grants it revoked.
pub fn insert_role(
    client: &mut impl GenericClient,
    role: &str,
    reason: &str,
    grants: &Value,
) -> Result<(), Error> {
    client.execute(
        "insert into backstop.role_freeze (role, actor, reason, grants) values ($1, $2, $3, $4)",
        &[&role, &super::actor(), &reason, grants],
    )?;
    Ok(())
}

/// Forgets `role`'s freeze.
pub fn remove_role(client: &mut impl GenericClient, role: &str) -> Result<(), Error> {
    client.execute("delete from backstop.role_freeze where role = $1", &[&role])?;
    Ok(())
}
