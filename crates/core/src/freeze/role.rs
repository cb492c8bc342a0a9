//! The role scope of the freeze: the role's write privileges on the tables
//! of some schemas revoked, with exactly which grants existed (table and
//! column grants, grant options, grantors) recorded in
//! `backstop.role_freeze`, so that lifting it grants exactly those back and
//! nothing more.

use postgres::{Client, GenericClient};
use serde_json::json;

use super::{db, FreezeError};
use crate::pg::quote_ident;
use crate::schema::events;
use crate::schema::freeze::FrozenRole;

/// One write grant the role held.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Grant {
    pub schema: String,
    pub table: String,
    /// `None` for a table grant.
    pub column: Option<String>,
    pub privilege: String,
    pub grantor: String,
    pub grantable: bool,
}

impl Grant {
    fn on(&self) -> String {
        crate::pg::quote_qualified(Some(&self.schema), &self.table)
    }

    fn what(&self) -> String {
        match &self.column {
            Some(c) => format!("{} ({})", self.privilege, quote_ident(c)),
            None => self.privilege.clone(),
        }
    }
}

/// What a role freeze did or found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RoleFreeze {
    pub role: String,
    pub grants: Vec<Grant>,
    /// Set earlier and still in force (freezing twice changes nothing).
    pub already: bool,
    /// Ways the role can still write that a revoke of its own grants does
    /// not close (PUBLIC, roles it belongs to, ownership).
    pub still_writes_through: Vec<String>,
}

/// The role's own write grants on the tables of `schemas`.
fn write_grants(
    client: &mut impl GenericClient,
    role: &str,
    schemas: &[String],
) -> Result<Vec<Grant>, postgres::Error> {
    let rows = client.query(
        "select n.nspname::text, c.relname::text, null::text, a.privilege_type, g.rolname::text, a.is_grantable
           from pg_class c join pg_namespace n on n.oid = c.relnamespace
           cross join lateral aclexplode(c.relacl) a
           join pg_roles r on r.oid = a.grantee join pg_roles g on g.oid = a.grantor
          where c.relkind in ('r', 'p') and n.nspname = any($2) and r.rolname = $1
            and a.privilege_type in ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE')
         union all
         select n.nspname::text, c.relname::text, att.attname::text, a.privilege_type, g.rolname::text, a.is_grantable
           from pg_attribute att join pg_class c on c.oid = att.attrelid
           join pg_namespace n on n.oid = c.relnamespace
           cross join lateral aclexplode(att.attacl) a
           join pg_roles r on r.oid = a.grantee join pg_roles g on g.oid = a.grantor
          where c.relkind in ('r', 'p') and n.nspname = any($2) and r.rolname = $1
            and a.privilege_type in ('INSERT', 'UPDATE') and not att.attisdropped
          order by 1, 2, 3 nulls first, 4",
        &[&role, &schemas],
    )?;
    Ok(rows
        .iter()
        .map(|r| Grant {
            schema: r.get(0),
            table: r.get(1),
            column: r.get(2),
            privilege: r.get(3),
            grantor: r.get(4),
            grantable: r.get(5),
        })
        .collect())
}

/// Ways `role` writes that are not its own grants.
fn other_ways(
    client: &mut impl GenericClient,
    role: &str,
    schemas: &[String],
) -> Result<Vec<String>, postgres::Error> {
    let rows = client.query(
        "select distinct 'owns ' || n.nspname || '.' || c.relname
           from pg_class c join pg_namespace n on n.oid = c.relnamespace join pg_roles r on r.oid = c.relowner
          where c.relkind in ('r', 'p') and n.nspname = any($2) and r.rolname = $1
         union
         select distinct 'PUBLIC may ' || a.privilege_type || ' on ' || n.nspname || '.' || c.relname
           from pg_class c join pg_namespace n on n.oid = c.relnamespace cross join lateral aclexplode(c.relacl) a
          where c.relkind in ('r', 'p') and n.nspname = any($2) and a.grantee = 0
            and a.privilege_type in ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE')
         union
         select distinct 'member of ' || g.rolname
           from pg_auth_members m join pg_roles g on g.oid = m.roleid join pg_roles r on r.oid = m.member
          where r.rolname = $1
         order by 1",
        &[&role, &schemas],
    )?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Revokes `role`'s own write grants on the tables of `schemas`, after
/// recording them; idempotent. Other sessions keep their transactions.
pub fn freeze_role(
    client: &mut Client,
    role: &str,
    schemas: &[String],
    reason: &str,
) -> Result<RoleFreeze, FreezeError> {
    crate::schema::ensure(client).map_err(db("creating the backstop schema"))?;
    let mut tx = client.transaction().map_err(db("starting the role freeze"))?;
    let exists: bool = tx
        .query_one("select exists (select from pg_roles where rolname = $1)", &[&role])
        .map_err(db("looking the role up"))?
        .get(0);
    if !exists {
        return Err(FreezeError::NoRole { role: role.to_string() });
    }
    let still =
        other_ways(&mut tx, role, schemas).map_err(db("reading the role's other privileges"))?;
    if let Some(recorded) = crate::schema::freeze::role_grants(&mut tx, role, false)
        .map_err(db("reading backstop.role_freeze"))?
    {
        let grants: Vec<Grant> = serde_json::from_value(recorded).unwrap_or_default();
        return Ok(RoleFreeze {
            role: role.into(),
            grants,
            already: true,
            still_writes_through: still,
        });
    }
    let grants = write_grants(&mut tx, role, schemas).map_err(db("reading the role's grants"))?;
    let who = quote_ident(role);
    for g in &grants {
        let sql = format!(
            "REVOKE {} ON {} FROM {who} GRANTED BY {} CASCADE",
            g.what(),
            g.on(),
            quote_ident(&g.grantor)
        );
        tx.batch_execute(&sql).map_err(db("revoking the role's write grants"))?;
    }
    let recorded = serde_json::to_value(&grants).expect("grants serialize");
    crate::schema::freeze::insert_role(&mut tx, role, reason, &recorded)
        .map_err(db("recording the role freeze"))?;
    let event = events::Event {
        kind: "freeze",
        outcome: "ok",
        versions: Vec::new(),
        details: json!({ "role": role, "schemas": schemas, "reason": reason, "revoked": grants }),
    };
    events::record(&mut tx, &event).map_err(db("writing the freeze event"))?;
    tx.commit().map_err(db("committing the role freeze"))?;
    Ok(RoleFreeze { role: role.into(), grants, already: false, still_writes_through: still })
}

/// Grants `role` exactly what its freeze revoked, and nothing more.
/// `None` when the role is not frozen.
pub fn unfreeze_role(client: &mut Client, role: &str) -> Result<Option<Vec<Grant>>, FreezeError> {
    let mut tx = client.transaction().map_err(db("starting the role unfreeze"))?;
    let Some(recorded) = crate::schema::freeze::role_grants(&mut tx, role, true)
        .map_err(db("reading backstop.role_freeze"))?
    else {
        return Ok(None);
    };
    let grants: Vec<Grant> = serde_json::from_value(recorded).unwrap_or_default();
    let who = quote_ident(role);
    for g in &grants {
        let sql = format!(
            "GRANT {} ON {} TO {who}{} GRANTED BY {}",
            g.what(),
            g.on(),
            if g.grantable { " WITH GRANT OPTION" } else { "" },
            quote_ident(&g.grantor)
        );
        tx.batch_execute(&sql).map_err(db("granting the role's write grants back"))?;
    }
    crate::schema::freeze::remove_role(&mut tx, role)
        .map_err(db("removing the role freeze record"))?;
    let event = events::Event {
        kind: "unfreeze",
        outcome: "ok",
        versions: Vec::new(),
        details: json!({ "role": role, "granted": grants }),
    };
    events::record(&mut tx, &event).map_err(db("writing the unfreeze event"))?;
    tx.commit().map_err(db("committing the role unfreeze"))?;
    Ok(Some(grants))
}

/// The roles frozen now, with when and why.
pub fn frozen_roles(client: &mut impl GenericClient) -> Result<Vec<FrozenRole>, postgres::Error> {
    crate::schema::freeze::frozen_roles(client)
}
