//! The migration lock: one session-level advisory lock per database, so two
//! `backstop migrate` runs never interleave. Released when the closure that
//! holds it returns, also on an early `?`, and by the server when the
//! session dies.

use std::time::{Duration, Instant};

use postgres::{Client, GenericClient};

/// The advisory lock key: "backstop" as eight bytes.
pub const MIGRATION_LOCK_KEY: i64 = i64::from_be_bytes(*b"backstop");

/// The drill lock's key: two drills of one database take turns, and a
/// drill never waits for (or holds up) a migration.
pub const DRILL_LOCK_KEY: i64 = i64::from_be_bytes(*b"bs-drill");

/// Who holds the migration lock, for "waiting for ..." messages.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LockHolder {
    pub pid: i32,
    pub application: String,
    pub user: String,
    /// `None` where this role may not see the session's details (another
    /// role's session, without superuser or `pg_read_all_stats`).
    pub client: Option<String>,
    pub since: Option<String>,
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {} ({})", self.pid, session_words(self))
    }
}

/// `app as user from host, since …`, leaving out what is blank or hidden,
/// and saying when it is hidden: never `( as x from local socket, since )`.
fn session_words(h: &LockHolder) -> String {
    let mut words = Vec::new();
    let application = h.application.trim();
    if !application.is_empty() {
        words.push(application.to_string());
    }
    if !h.user.trim().is_empty() {
        words.push(format!("as {}", h.user));
    }
    if let Some(client) = &h.client {
        words.push(format!("from {client}"));
    }
    let mut text = words.join(" ");
    match &h.since {
        Some(since) if text.is_empty() => text = format!("since {since}"),
        Some(since) => text.push_str(&format!(", since {since}")),
        None => {
            let hidden = "this role may not see more of it";
            text = if text.is_empty() { hidden.to_string() } else { format!("{text}; {hidden}") };
        }
    }
    text
}

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "gave up waiting for the migration lock after {}; it is held by {}; \
         wait for that run to finish or stop it, or raise `lock_wait` in backstop.toml",
        crate::kit::duration::human(*.waited),
        .holder.as_ref().map_or("an unknown session".to_string(), |h| h.to_string())
    )]
    Timeout { waited: Duration, holder: Option<LockHolder> },
    #[error("database error while taking the migration lock")]
    Db(#[from] postgres::Error),
}

/// Looks up the session holding the migration lock.
pub fn holder(client: &mut Client) -> Result<Option<LockHolder>, postgres::Error> {
    holder_of(client, MIGRATION_LOCK_KEY)
}

/// Looks up the session holding the session-level advisory lock `key` in
/// this database.
pub fn holder_of(client: &mut Client, key: i64) -> Result<Option<LockHolder>, postgres::Error> {
    // One bigint key: its high half is the lock's classid, its low half objid.
    holder_at(client, (key >> 32) & 0xffff_ffff, key & 0xffff_ffff, 1)
}

/// Looks up the session holding the session-level advisory lock of the two
/// integer keys `(class, key)` in this database (`pg_advisory_lock(int, int)`).
pub fn holder_of_pair(
    client: &mut impl GenericClient,
    class: i32,
    key: i32,
) -> Result<Option<LockHolder>, postgres::Error> {
    holder_at(client, i64::from(class as u32), i64::from(key as u32), 2)
}

/// The session holding the advisory lock that `pg_locks` shows as
/// `classid`, `objid`, `objsubid`.
fn holder_at(
    client: &mut impl GenericClient,
    classid: i64,
    objid: i64,
    objsubid: i16,
) -> Result<Option<LockHolder>, postgres::Error> {
    let row = client.query_opt(
        "select a.pid, coalesce(a.application_name, ''), coalesce(a.usename::text, ''),
                -- Hidden from a role that may not see the session: null, not a guess.
                case when a.backend_start is not null
                     then coalesce(host(a.client_addr), 'local socket') end,
                to_char(a.backend_start at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS \"UTC\"')
           from pg_locks l join pg_stat_activity a on a.pid = l.pid
          where l.locktype = 'advisory' and l.granted and l.database = (select oid from pg_database where datname = current_database())
            and l.classid::bigint = $1 and l.objid::bigint = $2 and l.objsubid = $3
          limit 1",
        &[&classid, &objid, &objsubid],
    )?;
    Ok(row.map(|r| LockHolder {
        pid: r.get(0),
        application: r.get(1),
        user: r.get(2),
        client: r.get(3),
        since: r.get(4),
    }))
}

/// The migration lock, held until dropped (also on an early `?`). If the
/// session is broken the server has already dropped the lock with it.
pub struct MigrationLock<'c> {
    client: &'c mut Client,
}

impl<'c> MigrationLock<'c> {
    /// Takes the lock, waiting up to `wait`; `on_wait` is told once who holds
    /// it when it is taken.
    pub fn acquire(
        client: &'c mut Client,
        wait: Duration,
        on_wait: impl FnOnce(Option<&LockHolder>),
    ) -> Result<Self, LockError> {
        acquire(client, wait, on_wait)?;
        Ok(MigrationLock { client })
    }
}

impl std::ops::Deref for MigrationLock<'_> {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.client
    }
}

impl std::ops::DerefMut for MigrationLock<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        self.client
    }
}

impl Drop for MigrationLock<'_> {
    fn drop(&mut self) {
        let _ = self.client.execute("select pg_advisory_unlock($1)", &[&MIGRATION_LOCK_KEY]);
    }
}

fn acquire(
    client: &mut Client,
    wait: Duration,
    on_wait: impl FnOnce(Option<&LockHolder>),
) -> Result<(), LockError> {
    let started = Instant::now();
    let mut on_wait = Some(on_wait);
    let mut last_holder = None;
    loop {
        let got: bool =
            client.query_one("select pg_try_advisory_lock($1)", &[&MIGRATION_LOCK_KEY])?.get(0);
        if got {
            return Ok(());
        }
        if let Some(h) = holder(client)? {
            last_holder = Some(h);
        }
        if let Some(cb) = on_wait.take() {
            cb(last_holder.as_ref());
        }
        if started.elapsed() >= wait {
            return Err(LockError::Timeout { waited: started.elapsed(), holder: last_holder });
        }
        std::thread::sleep(Duration::from_millis(200).min(wait.saturating_sub(started.elapsed())));
    }
}

#[cfg(test)]
mod tests {
    use super::LockHolder;

    /// Regression: "pid 12 ( as app from local socket, since )" when the
    /// waiting role may not see the holder's session.
    #[test]
    fn a_holder_is_named_without_blanks() {
        let seen = LockHolder {
            pid: 12,
            application: "deploy".into(),
            user: "app".into(),
            client: Some("10.0.0.5".into()),
            since: Some("2026-01-07 12:00:00 UTC".into()),
        };
        assert_eq!(
            seen.to_string(),
            "pid 12 (deploy as app from 10.0.0.5, since 2026-01-07 12:00:00 UTC)"
        );
        let hidden = LockHolder { application: String::new(), client: None, since: None, ..seen };
        assert_eq!(hidden.to_string(), "pid 12 (as app; this role may not see more of it)");
    }
}
