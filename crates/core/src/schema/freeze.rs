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
    /// Its name now (as recorded when it cannot be found by identity).
    pub role: String,
    /// Its name when it was frozen.
    pub frozen_as: String,
    pub since: DateTime<Utc>,
    pub actor: String,
    pub reason: String,
}

/// This cluster's system identifier, where the role may read it: what
/// makes a recorded role OID mean the same role.
const CLUSTER: &str = "(select case when has_function_privilege('pg_control_system()', 'execute')
                                then (select system_identifier::text from pg_control_system()) end)";

/// Whether a record's `role_oid` names its role here: recorded in this
/// cluster (or where either side cannot tell).
fn trusted(record: &str) -> String {
    format!(
        "({record}.role_oid is not null and ({record}.cluster is null or {CLUSTER} is null \
          or {record}.cluster = {CLUSTER}))"
    )
}

/// The name a record's role has now: by OID where that is trusted, by
/// the recorded name otherwise; null when the role is gone.
fn name_now(record: &str) -> String {
    format!(
        "case when {t} then (select r.rolname::text from pg_roles r where r.oid = {record}.role_oid)
              else (select r.rolname::text from pg_roles r where r.rolname = {record}.role) end",
        t = trusted(record)
    )
}

/// The roles frozen now, with when and why.
pub fn frozen_roles(client: &mut impl GenericClient) -> Result<Vec<FrozenRole>, Error> {
    if !super::has(client, "backstop.role_freeze")? {
        return Ok(Vec::new());
    }
    let sql = format!(
        "select coalesce({now}, f.role), f.role, f.since, f.actor, f.reason
           from backstop.role_freeze f order by 1",
        now = name_now("f")
    );
    Ok(client
        .query(&sql, &[])?
        .iter()
        .map(|r| FrozenRole {
            role: r.get(0),
            frozen_as: r.get(1),
            since: r.get(2),
            actor: r.get(3),
            reason: r.get(4),
        })
        .collect())
}

/// How a name given by a person finds a role's freeze.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// Only the freeze of the role of that name now (freezing: another
    /// role that once had the name is not this one).
    Role,
    /// That, or else the freeze recorded under that name, the role
    /// renamed since (unfreezing under the name it was frozen by).
    RoleOrFrozenAs,
}

/// A role's freeze as recorded.
#[derive(Debug, Clone)]
pub struct RoleRecord {
    /// The role's name when it was frozen.
    pub frozen_as: String,
    /// Its name now; `None` when it was dropped during the freeze.
    pub now: Option<String>,
    pub role_oid: Option<u32>,
    /// The grants the freeze revoked.
    pub grants: Value,
}

/// The freeze `name` finds (locked for the change when `for_update`), if any.
pub fn find_role(
    client: &mut impl GenericClient,
    name: &str,
    lookup: Lookup,
    for_update: bool,
) -> Result<Option<RoleRecord>, Error> {
    if !super::has(client, "backstop.role_freeze")? {
        return Ok(None);
    }
    let by_identity = format!(
        "({t} and f.role_oid = (select oid from pg_roles where rolname::text = $1))
         or (not {t} and f.role = $1)",
        t = trusted("f")
    );
    let by_name = if lookup == Lookup::RoleOrFrozenAs { " or f.role = $1" } else { "" };
    let sql = format!(
        "select f.role, {now}, f.role_oid, f.grants from backstop.role_freeze f
          where {by_identity}{by_name}
          order by ({by_identity}) desc limit 1{lock}",
        now = name_now("f"),
        lock = if for_update { " for update" } else { "" }
    );
    Ok(client.query_opt(&sql, &[&name])?.map(|row| RoleRecord {
        frozen_as: row.get(0),
        now: row.get(1),
        role_oid: row.get(2),
        grants: row.get(3),
    }))
}

/// Records the freeze of the role named `role` now, with the grants it
/// revoked, by its OID in this cluster.
pub fn insert_role(
    client: &mut impl GenericClient,
    role: &str,
    reason: &str,
    grants: &Value,
) -> Result<(), Error> {
    let sql = format!(
        "insert into backstop.role_freeze (role, role_oid, cluster, actor, reason, grants)
         select r.rolname::text, r.oid, {CLUSTER}, $2, $3, $4 from pg_roles r where r.rolname::text = $1"
    );
    client.execute(&sql, &[&role, &super::actor(), &reason, grants])?;
    Ok(())
}

/// Forgets a role's freeze.
pub fn remove_role(client: &mut impl GenericClient, record: &RoleRecord) -> Result<(), Error> {
    client.execute(
        "delete from backstop.role_freeze where role = $1 and role_oid is not distinct from $2",
        &[&record.frozen_as, &record.role_oid],
    )?;
    Ok(())
}
