//! The role scope of the freeze: the role's write privileges on the tables
//! of some schemas revoked, with exactly which grants existed (table and
//! column grants, grant options, grantors) recorded in
//! `backstop.role_freeze`, so that lifting it grants exactly those back and
//! nothing more. The role is kept by identity (its OID): renamed during
//! the freeze, it is unfrozen under either name.

use postgres::{Client, GenericClient};
use serde_json::json;

use super::{db, FreezeError};
use crate::pg::quote_ident;
use crate::schema::events;
use crate::schema::freeze::{FrozenRole, Lookup, RoleRecord};

/// One write grant the role held. The table and column are recorded by
/// identity too (OID, attribute number), so that a table or column renamed
/// during the freeze still gets its grant back.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Grant {
    pub schema: String,
    pub table: String,
    /// `None` for a table grant.
    pub column: Option<String>,
    pub privilege: String,
    pub grantor: String,
    pub grantable: bool,
    /// The table's OID (absent in records of older versions).
    #[serde(default)]
    pub table_oid: Option<u32>,
    /// The column's attribute number.
    #[serde(default)]
    pub attnum: Option<i16>,
}

/// What an unfreeze gave back, and what it could not: objects dropped
/// during the freeze.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RoleUnfreeze {
    /// The role's name now.
    pub role: String,
    /// Its name when it was frozen (another when it was renamed since).
    pub frozen_as: String,
    /// The role itself was dropped during the freeze: nothing could be
    /// given back, and the record is gone.
    pub dropped: bool,
    pub granted: Vec<Grant>,
    /// Grants whose table or column no longer exists, named as recorded.
    pub gone: Vec<Grant>,
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
    /// When it was already frozen: its name then.
    pub frozen_as: Option<String>,
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
        "select n.nspname::text, c.relname::text, null::text, a.privilege_type, g.rolname::text, a.is_grantable,
                c.oid, null::int2
           from pg_class c join pg_namespace n on n.oid = c.relnamespace
           cross join lateral aclexplode(c.relacl) a
           join pg_roles r on r.oid = a.grantee join pg_roles g on g.oid = a.grantor
          where c.relkind in ('r', 'p') and n.nspname = any($2) and r.rolname = $1
            and a.privilege_type in ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE')
         union all
         select n.nspname::text, c.relname::text, att.attname::text, a.privilege_type, g.rolname::text, a.is_grantable,
                c.oid, att.attnum
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
            table_oid: Some(r.get(6)),
            attnum: r.get(7),
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
    if let Some(recorded) = crate::schema::freeze::find_role(&mut tx, role, Lookup::Role, false)
        .map_err(db("reading backstop.role_freeze"))?
    {
        let grants: Vec<Grant> = serde_json::from_value(recorded.grants).unwrap_or_default();
        return Ok(RoleFreeze {
            role: role.into(),
            frozen_as: Some(recorded.frozen_as),
            grants,
            already: true,
            still_writes_through: still,
        });
    }
    let grants = write_grants(&mut tx, role, schemas).map_err(db("reading the role's grants"))?;
    let who = quote_ident(role);
    for g in &grants {
        // PostgreSQL takes GRANTED BY for the current user only: a grant
        // another role made is revoked as that role.
        let sql = format!("REVOKE {} ON {} FROM {who} CASCADE", g.what(), g.on());
        as_grantor(&mut tx, &g.grantor, &sql).map_err(db("revoking the role's write grants"))?;
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
    Ok(RoleFreeze {
        role: role.into(),
        frozen_as: None,
        grants,
        already: false,
        still_writes_through: still,
    })
}

/// Runs `sql` (a GRANT or REVOKE) as `grantor`, so that the grant is
/// given or taken in that role's name.
fn as_grantor(
    tx: &mut postgres::Transaction<'_>,
    grantor: &str,
    sql: &str,
) -> Result<(), postgres::Error> {
    let me: String = tx.query_one("select current_user::text", &[])?.get(0);
    if me == grantor {
        return tx.batch_execute(sql);
    }
    tx.batch_execute(&format!("SET LOCAL ROLE {}", quote_ident(grantor)))?;
    tx.batch_execute(sql)?;
    tx.batch_execute("RESET ROLE")
}

/// `g` with the table's and column's names as they are now (they may
/// have been renamed during the freeze); `None` when either was dropped.
fn as_now(tx: &mut postgres::Transaction<'_>, g: &Grant) -> Result<Option<Grant>, postgres::Error> {
    let Some(oid) = g.table_oid else { return Ok(Some(g.clone())) };
    let row = tx.query_opt(
        "select n.nspname::text, c.relname::text,
                (select a.attname::text from pg_attribute a
                  where a.attrelid = c.oid and a.attnum = $2 and not a.attisdropped)
           from pg_class c join pg_namespace n on n.oid = c.relnamespace where c.oid = $1",
        &[&oid, &g.attnum.unwrap_or(0)],
    )?;
    let Some(row) = row else { return Ok(None) };
    let column: Option<String> = row.get(2);
    if g.attnum.is_some() && column.is_none() {
        return Ok(None);
    }
    Ok(Some(Grant { schema: row.get(0), table: row.get(1), column, ..g.clone() }))
}

/// Grants the role `role` names exactly what its freeze revoked, and
/// nothing more, on the tables and columns as they are named now; what
/// was dropped meanwhile is reported, not granted. `role` is its name now
/// or the one it was frozen under. `None` when no such role is frozen.
pub fn unfreeze_role(client: &mut Client, role: &str) -> Result<Option<RoleUnfreeze>, FreezeError> {
    let mut tx = client.transaction().map_err(db("starting the role unfreeze"))?;
    let Some(record) =
        crate::schema::freeze::find_role(&mut tx, role, Lookup::RoleOrFrozenAs, true)
            .map_err(db("reading backstop.role_freeze"))?
    else {
        return Ok(None);
    };
    let grants: Vec<Grant> = serde_json::from_value(record.grants.clone()).unwrap_or_default();
    let mut done = RoleUnfreeze {
        role: record.now.clone().unwrap_or_else(|| record.frozen_as.clone()),
        frozen_as: record.frozen_as.clone(),
        dropped: record.now.is_none(),
        granted: Vec::new(),
        gone: Vec::new(),
    };
    match &record.now {
        Some(now) => grant_back(&mut tx, now, grants, &mut done)?,
        // Its grants went with it: there is no one to give them to.
        None => done.gone = grants,
    }
    finish(tx, &record, &done)?;
    Ok(Some(done))
}

/// Grants `role` each of `grants` as it is named now, noting the gone.
fn grant_back(
    tx: &mut postgres::Transaction<'_>,
    role: &str,
    grants: Vec<Grant>,
    done: &mut RoleUnfreeze,
) -> Result<(), FreezeError> {
    let who = quote_ident(role);
    for g in grants {
        let Some(now) = as_now(tx, &g).map_err(db("looking the frozen tables up"))? else {
            done.gone.push(g);
            continue;
        };
        let sql = format!(
            "GRANT {} ON {} TO {who}{}",
            now.what(),
            now.on(),
            if now.grantable { " WITH GRANT OPTION" } else { "" }
        );
        as_grantor(tx, &now.grantor, &sql).map_err(db("granting the role's write grants back"))?;
        done.granted.push(now);
    }
    Ok(())
}

/// Forgets the freeze and audits the unfreeze, in its transaction.
fn finish(
    mut tx: postgres::Transaction<'_>,
    record: &RoleRecord,
    done: &RoleUnfreeze,
) -> Result<(), FreezeError> {
    crate::schema::freeze::remove_role(&mut tx, record)
        .map_err(db("removing the role freeze record"))?;
    let event = events::Event {
        kind: "unfreeze",
        outcome: "ok",
        versions: Vec::new(),
        details: json!({
            "role": done.role,
            "frozen_as": done.frozen_as,
            "role_oid": record.role_oid,
            "dropped": done.dropped,
            "granted": done.granted,
            "gone": done.gone,
        }),
    };
    events::record(&mut tx, &event).map_err(db("writing the unfreeze event"))?;
    tx.commit().map_err(db("committing the role unfreeze"))?;
    Ok(())
}

/// The roles frozen now, with when and why.
pub fn frozen_roles(client: &mut impl GenericClient) -> Result<Vec<FrozenRole>, postgres::Error> {
    crate::schema::freeze::frozen_roles(client)
}
