//! The append-only audit log in `backstop.events`: every migrate, rollback
//! and repair, with who, when, outcome and details. Outcome events are
//! written in their own transaction after the work's COMMIT or ROLLBACK, so
//! a failure is never rolled back out of the log.

use postgres::GenericClient;
use serde_json::Value;

/// Who is running Backstop, as recorded in history and events.
pub fn actor() -> String {
    let uid = nix::unistd::Uid::current();
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .or_else(|| nix::unistd::User::from_uid(uid).ok().flatten().map(|u| u.name))
        .unwrap_or_else(|| format!("uid {uid}"));
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown-host".into());
    format!("{user}@{host}")
}

/// One entry of the audit log.
#[derive(Debug, Clone)]
pub struct Event<'a> {
    /// What happened: `migrate`, `rollback`, `repair`.
    pub kind: &'a str,
    /// `ok`, `failed`, `rolled_back`, `refused`.
    pub outcome: &'a str,
    /// The migration versions concerned.
    pub versions: Vec<String>,
    pub details: Value,
}

/// Appends `event` to the log. The details carry the writing session's
/// backend pid (`session`), which pairs a run's `started` event with its
/// outcome: a start without one is a run that was killed or lost its server.
pub fn record(client: &mut impl GenericClient, event: &Event<'_>) -> Result<(), postgres::Error> {
    client.execute(
        "insert into backstop.events (kind, actor, outcome, versions, details)
         values ($1, $2, $3, $4,
                 case when jsonb_typeof($5::jsonb) = 'object'
                      then $5::jsonb || jsonb_build_object('session', pg_backend_pid())
                      else $5::jsonb end)",
        &[&event.kind, &actor(), &event.outcome, &event.versions, &event.details],
    )?;
    Ok(())
}

/// Whether the database has Backstop's audit log (a database Backstop has
/// never migrated has none, and commands that only read or act on it do
/// not create one).
pub fn logged(client: &mut impl GenericClient) -> Result<bool, postgres::Error> {
    Ok(client.query_one("select to_regclass('backstop.events') is not null", &[])?.get(0))
}

/// [`record`] when the database has the audit log; whether it had.
pub fn record_if_logged(
    client: &mut impl GenericClient,
    event: &Event<'_>,
) -> Result<bool, postgres::Error> {
    let logged = logged(client)?;
    if logged {
        record(client, event)?;
    }
    Ok(logged)
}

/// A run that recorded its start but no outcome, and whose session is gone.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Interrupted {
    pub kind: String,
    pub at: chrono::DateTime<chrono::Utc>,
    pub actor: String,
    pub versions: Vec<String>,
}

/// The runs that started and never recorded an outcome (killed, or their
/// server went away) since the last run of their kind that did, newest
/// first; a run still going (its session alive) is not one of them.
pub fn interrupted(client: &mut impl GenericClient) -> Result<Vec<Interrupted>, postgres::Error> {
    let rows = client.query(
        "select s.kind, s.at, s.actor, s.versions
           from backstop.events s
          where s.outcome = 'started'
            and not exists (select from backstop.events o
                             where o.id > s.id and o.kind = s.kind and o.outcome <> 'started')
            and not exists (select from pg_stat_activity a
                             where a.pid::text = s.details ->> 'session' and a.backend_start <= s.at)
          order by s.id desc
          limit 5",
        &[],
    )?;
    Ok(rows
        .iter()
        .map(|r| Interrupted { kind: r.get(0), at: r.get(1), actor: r.get(2), versions: r.get(3) })
        .collect())
}
