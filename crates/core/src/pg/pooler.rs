//! Poolers that hand a session's statements to whichever server process
//! is free (PgBouncer's `pool_mode = transaction` or `statement`,
//! Supavisor's transaction mode on Supabase's port 6543). What works
//! through them: one statement or one transaction at a time (`status`,
//! `check`, reads). What does not: a session-level advisory lock (the
//! migration lock would be taken on one server process and freed on
//! another, or never), `LISTEN`, and `pg_dump`/`pg_restore`, which send
//! startup options the pooler refuses and set their session up before
//! their transaction. They are told by their answers, never by a port:
//! two sessions Backstop holds open at once that run on one server
//! process, or one session whose server process changes between two
//! statements, are pooled by transaction.

use postgres::Client;

/// A connection found pooled by transaction, and the command it stops.
#[derive(Debug, thiserror::Error)]
#[error(
    "{address} pools by transaction (a PgBouncer or Supavisor in transaction mode, by its \
     answers: {evidence}); `{command}` needs one session from start to end (a session lock, \
     LISTEN, pg_dump and pg_restore), so it ran nothing and changed nothing; {fix}"
)]
pub struct Pooled {
    /// `host:port`, without user or password.
    pub address: String,
    pub command: String,
    /// What the pooler answered.
    pub evidence: String,
    /// Which URL to use instead.
    pub fix: String,
}

impl Pooled {
    /// The database URL is the thing to change: 2.
    pub fn exit_code(&self) -> u8 {
        2
    }
}

/// Refuses `command` where `client`, connected with `url`, goes through a
/// pooler that pools by transaction (see the module's comment). A probe
/// that cannot be made (the pooler allows one client) tells nothing and
/// refuses nothing.
pub fn refuse_pooled(client: &mut Client, url: &str, command: &str) -> Result<(), Pooled> {
    let Some(evidence) = pooled_by_transaction(client, url) else { return Ok(()) };
    let (address, fix) = match super::conn::parse_url(url) {
        Ok(config) => {
            let host = config.get_hosts().first().map(host_text).unwrap_or_default();
            let port = config.get_ports().first().copied().unwrap_or(5432);
            let user = config.get_user().unwrap_or_default().to_string();
            (format!("{host}:{port}"), fix_for(&host, port, &user))
        }
        Err(_) => ("the database URL".to_string(), fix_for("", 0, "")),
    };
    Err(Pooled { address, command: command.to_string(), evidence, fix })
}

/// What shows `client`'s connection pooled by transaction, if anything.
fn pooled_by_transaction(client: &mut Client, url: &str) -> Option<String> {
    let pid = |c: &mut Client| -> Option<i32> {
        c.query_one("select pg_backend_pid()", &[]).ok().map(|r| r.get(0))
    };
    let first = pid(client)?;
    if let Ok(mut other) = super::connect(url, "backstop pooler probe") {
        let second = pid(&mut other);
        if second == Some(first) {
            return Some(format!(
                "two sessions open at once ran on one server process, pid {first}"
            ));
        }
    }
    let again = pid(client)?;
    (again != first).then(|| {
        format!("one session's statements ran on two server processes, pids {first} and {again}")
    })
}

fn host_text(host: &postgres::config::Host) -> String {
    match host {
        postgres::config::Host::Tcp(h) => h.clone(),
        postgres::config::Host::Unix(p) => p.display().to_string(),
    }
}

/// Which URL to use instead of a pooled one at `host`:`port`.
fn fix_for(host: &str, port: u16, user: &str) -> String {
    if host.ends_with(".pooler.supabase.com") {
        let project = user.split_once('.').map(|(_, r)| r).filter(|r| !r.is_empty());
        let direct = match project {
            Some(r) => format!("db.{r}.supabase.co:5432 (the direct connection)"),
            None => "the project's direct connection (db.<project>.supabase.co:5432)".into(),
        };
        let session = if port == 6543 { "the same URL with port 5432" } else { "port 5432" };
        return format!("use {session} (Supavisor's session mode) or {direct} as the database URL");
    }
    "use the server's own address as the database URL (its host and port, often 5432), or a \
     pooler database in session mode (PgBouncer: `pool_mode=session` on its [databases] line)"
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::fix_for;

    #[test]
    fn supabases_pooler_gets_its_session_port_and_the_direct_host() {
        let fix = fix_for("aws-0-eu-central-1.pooler.supabase.com", 6543, "postgres.abcdefgh");
        assert!(fix.contains("the same URL with port 5432"), "{fix}");
        assert!(fix.contains("db.abcdefgh.supabase.co:5432"), "{fix}");
        let fix = fix_for("10.0.0.5", 6432, "app");
        assert!(fix.contains("pool_mode=session"), "{fix}");
    }
}
