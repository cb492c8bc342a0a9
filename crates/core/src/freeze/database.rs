//! The database scope of the freeze: the database made read-only by
//! default, other sessions terminated so none keeps writing in an open
//! transaction, the freeze recorded in `backstop.freeze` and audited.

use chrono::Utc;
use postgres::{Client, GenericClient};
use serde_json::json;

use super::{db, FreezeError, FreezeSection};
use crate::pg::quote_ident;
use crate::schema::events;
pub use crate::schema::exempt;
use crate::schema::freeze::FreezeState;

/// What freezing did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Frozen {
    pub state: FreezeState,
    /// Sessions terminated.
    pub terminated: usize,
    /// What could not be done, said plainly.
    pub warnings: Vec<String>,
}

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
                    return Err(FreezeError::Db(crate::pg::DbError::new(
                        "freezing the database",
                        e,
                    )))
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
            Err(e) => {
                return Err(FreezeError::Db(crate::pg::DbError::new("terminating sessions", e)))
            }
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
    pub fn lift(mut self) -> Result<Option<FreezeState>, FreezeError> {
        self.armed = false;
        let mut client = crate::pg::connect(&self.url, "backstop")?;
        unfreeze(&mut client)
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
                     (`backstop status` shows it), or lift the freeze with `backstop backup unfreeze`",
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
