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

/// Appends `event` to the log.
pub fn record(client: &mut impl GenericClient, event: &Event<'_>) -> Result<(), postgres::Error> {
    client.execute(
        "insert into backstop.events (kind, actor, outcome, versions, details)
         values ($1, $2, $3, $4, $5)",
        &[&event.kind, &actor(), &event.outcome, &event.versions, &event.details],
    )?;
    Ok(())
}
