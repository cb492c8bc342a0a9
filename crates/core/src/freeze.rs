//! The one write freeze that restore (and later cutover and rollback) use:
//! `ALTER DATABASE … SET default_transaction_read_only = on`, other
//! sessions terminated so none keeps writing in an open transaction, the
//! freeze recorded in `backstop.freeze` (shown by `status`, lifted by
//! `backstop unfreeze`) and audited. Backstop's own sessions are exempt: they
//! set `default_transaction_read_only = off` for themselves.
//!
//! Without the right to alter the database or terminate sessions (managed
//! PostgreSQL without superuser) the freeze says what it could not do and
//! goes on with what it could.

use chrono::Utc;
use postgres::{Client, GenericClient};
use serde_json::json;

use crate::config::FreezeSection;
use crate::pg::quote_ident;
use crate::schema::events;

/// Why a freeze could not be set or lifted.
#[derive(Debug, thiserror::Error)]
pub enum FreezeError {
    #[error("database error while {context}")]
    Db {
        context: &'static str,
        #[source]
        source: postgres::Error,
    },
    #[error("there is no role {role}; `\\du` in psql lists them")]
    NoRole { role: String },
}

impl FreezeError {
    /// Exit code: a database failure is an environment error.
    pub fn exit_code(&self) -> u8 {
        match self {
            FreezeError::NoRole { .. } => 2,
            FreezeError::Db { .. } => 3,
        }
    }
}

fn db(context: &'static str) -> impl FnOnce(postgres::Error) -> FreezeError {
    move |source| FreezeError::Db { context, source }
}

pub use crate::schema::freeze::{FreezeState, FrozenRole};

/// What freezing did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Frozen {
    pub state: FreezeState,
    /// Sessions terminated.
    pub terminated: usize,
    /// What could not be done, said plainly.
    pub warnings: Vec<String>,
}

/// Makes this session exempt from a write freeze.
pub use crate::schema::exempt;

/// The current freeze of the connected database, if any.
pub fn current(client: &mut impl GenericClient) -> Result<Option<FreezeState>, postgres::Error> {
    crate::schema::freeze::current(client)
}

/// Freezes writes to the connected database. Idempotent: an existing
/// freeze is kept as it is (its `previous_setting` is the true one), and
/// sessions are terminated again.
pub fn freeze(
    client: &mut Client,
    reason: &str,
    options: &FreezeSection,
) -> Result<Frozen, FreezeError> {
    exempt(client).map_err(db("exempting Backstop's session from the freeze"))?;
    crate::schema::ensure(client).map_err(db("creating the backstop schema"))?;
    let mut warnings = Vec::new();
    let state = match current(client).map_err(db("reading backstop.freeze"))? {
        Some(state) => state,
        None => {
            let mut tx = client.transaction().map_err(db("starting the freeze"))?;
            let database: String = tx
                .query_one("select current_database()::text", &[])
                .map_err(db("reading the database name"))?
                .get(0);
            let previous = previous_setting(&mut tx).map_err(db("reading database settings"))?;
            tx.batch_execute("SAVEPOINT alter_database").map_err(db("starting the freeze"))?;
            let read_only_set = match tx.batch_execute(&format!(
                "ALTER DATABASE {} SET default_transaction_read_only = on",
                quote_ident(&database)
            )) {
                Ok(()) => true,
                Err(e) if e.code() == Some(&postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) => {
                    tx.batch_execute("ROLLBACK TO SAVEPOINT alter_database")
                        .map_err(db("starting the freeze"))?;
                    warnings.push(format!(
                        "could not make {database} read-only (only its owner or a superuser may \
                         ALTER DATABASE): writes are not blocked; stop the application's writes yourself"
                    ));
                    false
                }
                Err(e) => {
                    return Err(FreezeError::Db { context: "freezing the database", source: e })
                }
            };
            let state = FreezeState {
                database,
                since: Utc::now(),
                actor: crate::schema::actor(),
                reason: reason.to_string(),
                read_only_set,
                previous_setting: previous,
            };
            crate::schema::freeze::insert(&mut tx, &state).map_err(db("recording the freeze"))?;
            tx.commit().map_err(db("committing the freeze"))?;
            state
        }
    };
    let terminated = if options.terminate_sessions {
        terminate_others(client, &options.roles, &mut warnings)?
    } else {
        0
    };
    let event = events::Event {
        kind: "freeze",
        outcome: "ok",
        versions: Vec::new(),
        details: json!({
            "reason": reason,
            "read_only_set": state.read_only_set,
            "terminated": terminated,
            "warnings": warnings,
        }),
    };
    events::record(client, &event).map_err(db("writing the freeze event"))?;
    Ok(Frozen { state, terminated, warnings })
}

/// The database's own `default_transaction_read_only` setting, if any.
fn previous_setting(client: &mut impl GenericClient) -> Result<Option<String>, postgres::Error> {
    let row = client.query_opt(
        "select s.setting from pg_db_role_setting r
           cross join lateral unnest(r.setconfig) as s(setting)
          where r.setdatabase = (select oid from pg_database where datname = current_database())
            and r.setrole = 0 and s.setting like 'default_transaction_read_only=%'",
        &[],
    )?;
    Ok(row.map(|r| {
        let s: String = r.get(0);
        s.split_once('=').map(|(_, v)| v.to_string()).unwrap_or_default()
    }))
}

/// Terminates the other client sessions of the connected database (of
/// `roles` only, when given), sparing Backstop's own. Sessions this role
/// may not terminate are named in a warning.
pub fn terminate_others(
    client: &mut Client,
    roles: &[String],
    warnings: &mut Vec<String>,
) -> Result<usize, FreezeError> {
    let rows = client
        .query(
            "select pid, coalesce(usename::text, '?') from pg_stat_activity
              where datname = current_database() and pid <> pg_backend_pid()
                and backend_type = 'client backend'
                and coalesce(application_name, '') not like 'backstop%'
                and (cardinality($1::text[]) = 0 or usename = any($1::text[]))",
            &[&roles],
        )
        .map_err(db("listing other sessions"))?;
    let mut terminated = 0;
    let mut refused = Vec::new();
    for row in rows {
        let (pid, user): (i32, String) = (row.get(0), row.get(1));
        match client.query_one("select pg_terminate_backend($1)", &[&pid]) {
            Ok(r) if r.get::<_, bool>(0) => terminated += 1,
            Ok(_) => {}
            Err(e) if e.code() == Some(&postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) => {
                refused.push(format!("pid {pid} ({user})"))
            }
            Err(e) => return Err(FreezeError::Db { context: "terminating sessions", source: e }),
        }
    }
    if !refused.is_empty() {
        warnings.push(format!(
            "could not terminate {} (terminating other roles' sessions needs superuser or \
             pg_signal_backend); they may still write in transactions opened before the freeze",
            refused.join(", ")
        ));
    }
    Ok(terminated)
}

/// Lifts the freeze of the connected database: puts its own
/// `default_transaction_read_only` back, removes the record, audits it.
/// Returns the freeze lifted, `None` when there was none.
pub fn unfreeze(client: &mut Client) -> Result<Option<FreezeState>, FreezeError> {
    exempt(client).map_err(db("exempting Backstop's session from the freeze"))?;
    let Some(state) = current(client).map_err(db("reading backstop.freeze"))? else {
        return Ok(None);
    };
    let mut tx = client.transaction().map_err(db("starting the unfreeze"))?;
    if state.read_only_set {
        let name: String = tx
            .query_one("select current_database()::text", &[])
            .map_err(db("reading the database name"))?
            .get(0);
        let name = quote_ident(&name);
        let sql = match &state.previous_setting {
            Some(v) => format!(
                "ALTER DATABASE {name} SET default_transaction_read_only = '{}'",
                v.replace('\'', "''")
            ),
            None => format!("ALTER DATABASE {name} RESET default_transaction_read_only"),
        };
        tx.batch_execute(&sql).map_err(db("lifting the freeze"))?;
    }
    crate::schema::freeze::clear(&mut tx).map_err(db("removing the freeze record"))?;
    let event = events::Event {
        kind: "unfreeze",
        outcome: "ok",
        versions: Vec::new(),
        details: json!({ "reason": state.reason, "since": state.since }),
    };
    events::record(&mut tx, &event).map_err(db("writing the unfreeze event"))?;
    tx.commit().map_err(db("committing the unfreeze"))?;
    Ok(Some(state))
}

/// A freeze that is lifted when dropped (also on an early `?` or a panic)
/// unless [`FreezeGuard::keep`] says the database must stay frozen. It
/// reconnects to lift, since the freezing session may be gone by then.
pub struct FreezeGuard {
    url: String,
    armed: bool,
}

impl FreezeGuard {
    /// Guards the freeze of the database at `url`.
    pub fn new(url: &str) -> FreezeGuard {
        FreezeGuard { url: url.to_string(), armed: true }
    }

    /// Lifts the freeze now, reporting failure.
    pub fn lift(mut self) -> Result<Option<FreezeState>, crate::backup::BackupError> {
        self.armed = false;
        let mut client = crate::pg::connect(&self.url, "backstop")?;
        Ok(unfreeze(&mut client)?)
    }

    /// Leaves the database frozen (the operator must look first, or the
    /// frozen database is set aside as a snapshot).
    pub fn keep(mut self) {
        self.armed = false;
    }
}

impl Drop for FreezeGuard {
    fn drop(&mut self) {
        if self.armed {
            if let Ok(mut client) = crate::pg::connect(&self.url, "backstop") {
                let _ = unfreeze(&mut client);
            }
        }
    }
}

/// The `migrate` gate that refuses while writes are frozen: a restore or a
/// rollback is under way or was left unfinished, and a migration now would
/// race it (Backstop's own sessions are exempt from the freeze itself).
pub struct FreezeGate;

impl crate::migrate::Gate for FreezeGate {
    fn name(&self) -> &str {
        "freeze"
    }

    fn check(
        &mut self,
        client: &mut Client,
        _: &[&crate::source::Migration],
        _: bool,
    ) -> Result<crate::migrate::GatePass, crate::migrate::GateRefusal> {
        let refusal = |reason: String, exit_code: u8| crate::migrate::GateRefusal {
            gate: "freeze".into(),
            reason,
            exit_code,
        };
        match current(client) {
            Ok(None) => Ok(crate::migrate::GatePass {
                detail: json!({ "frozen": false }),
                ..Default::default()
            }),
            Ok(Some(f)) => Err(refusal(
                format!(
                    "writes to {} are frozen since {} by {} ({}); finish that first \
                     (`backstop status` shows it), or lift the freeze with `backstop unfreeze`",
                    f.database,
                    f.since.format("%Y-%m-%d %H:%M:%S UTC"),
                    f.actor,
                    f.reason
                ),
                1,
            )),
            Err(e) => Err(refusal(format!("could not read the write freeze: {e}"), 3)),
        }
    }
}

/// The freeze of one role (the second scope of the one freeze): the role's
/// write privileges on the tables of some schemas revoked, with exactly
/// which grants existed (table and column grants, grant options, grantors)
/// recorded in `backstop.role_freeze`, so that lifting it grants exactly
/// those back and nothing more.
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
