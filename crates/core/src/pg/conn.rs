//! Opening connections from a URL, with errors that say what to fix and
//! never show the password.

use std::time::Duration;

use postgres::{Client, Config, NoTls};

/// Why a connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL itself is wrong: a usage error (exit 2).
    #[error("invalid database URL {url}: {reason}; expected postgres://user:password@host:port/database")]
    BadUrl { url: String, reason: String },
    /// The server is unreachable or refused us: an environment error (exit 3).
    #[error("could not connect to {url}: {reason}")]
    Unreachable { url: String, reason: String },
}

/// Shows a connection string with its password masked. Works for URLs and
/// for `key=value` strings; an unparsable string is hidden entirely.
pub fn redact(conn: &str) -> String {
    if let Some((scheme, rest)) = conn.split_once("://") {
        // By hand rather than with a URL parser: libpq accepts URLs (an
        // empty host with a socket in `?host=`) that URL parsers reject, and
        // those must be masked too.
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        let authority = match authority.rsplit_once('@') {
            Some((userinfo, hosts)) => match userinfo.split_once(':') {
                Some((user, _)) => format!("{user}:****@{hosts}"),
                None => format!("{userinfo}@{hosts}"),
            },
            None => authority.to_string(),
        };
        let tail = match tail.split_once('?') {
            Some((path, query)) => format!("{path}?{}", redact_query(query)),
            None => tail.to_string(),
        };
        return format!("{scheme}://{authority}{tail}");
    }
    conn.split_whitespace()
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=****"),
            _ => kv.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn redact_query(query: &str) -> String {
    query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=****"),
            _ => kv.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Parses a URL without connecting, so bad input is caught before anything runs.
pub fn parse_url(conn: &str) -> Result<Config, ConnectError> {
    conn.parse::<Config>().map_err(|e| ConnectError::BadUrl {
        url: redact(conn),
        reason: scrub(&e.to_string(), conn),
    })
}

/// How to point a libpq tool (`pg_dump`, `pg_restore`, `psql`) at a
/// database without putting the password on its command line, where `ps`
/// would show it: a `key=value` conninfo without password, and the password
/// for the tool's `PGPASSWORD`.
#[derive(Debug, Clone)]
pub struct LibpqTarget {
    pub conninfo: String,
    pub password: Option<String>,
}

impl LibpqTarget {
    /// The target for `conn`, optionally with another database name.
    pub fn from_url(conn: &str, dbname: Option<&str>) -> Result<LibpqTarget, ConnectError> {
        use postgres::config::Host;
        let config = parse_url(conn)?;
        let quote = |v: &str| format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"));
        let mut parts = Vec::new();
        let hosts: Vec<String> = config
            .get_hosts()
            .iter()
            .map(|h| match h {
                Host::Tcp(name) => name.clone(),
                Host::Unix(path) => path.display().to_string(),
            })
            .collect();
        if !hosts.is_empty() {
            parts.push(format!("host={}", quote(&hosts.join(","))));
        }
        let ports: Vec<String> = config.get_ports().iter().map(|p| p.to_string()).collect();
        if !ports.is_empty() {
            parts.push(format!("port={}", quote(&ports.join(","))));
        }
        if let Some(user) = config.get_user() {
            parts.push(format!("user={}", quote(user)));
        }
        if let Some(db) = dbname.or(config.get_dbname()) {
            parts.push(format!("dbname={}", quote(db)));
        }
        let password = config.get_password().map(|p| String::from_utf8_lossy(p).to_string());
        Ok(LibpqTarget { conninfo: parts.join(" "), password })
    }

    /// Applies the password to a tool's environment and clears the PG*
    /// variables that could point it elsewhere.
    pub fn apply(&self, cmd: &mut std::process::Command) {
        for var in ["PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGSERVICE", "PGPASSFILE"] {
            cmd.env_remove(var);
        }
        match &self.password {
            Some(p) => cmd.env("PGPASSWORD", p),
            None => cmd.env_remove("PGPASSWORD"),
        };
    }
}

/// Opens a session for Backstop's own work. The session checks every second
/// whether its client is still there, so a killed `backstop` releases its
/// locks within seconds rather than at the end of a long statement.
pub fn connect(conn: &str, application: &str) -> Result<Client, ConnectError> {
    connect_db(conn, None, application)
}

/// [`connect`] to another database of the same server, same credentials.
pub fn connect_db(
    conn: &str,
    dbname: Option<&str>,
    application: &str,
) -> Result<Client, ConnectError> {
    let mut config = parse_url(conn)?;
    if let Some(db) = dbname {
        config.dbname(db);
    }
    config.application_name(application);
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    let mut client = config.connect(NoTls).map_err(|e| ConnectError::Unreachable {
        url: redact(conn),
        reason: scrub(&error_chain(&e), conn),
    })?;
    let version: i32 = client
        .query_one("select current_setting('server_version_num')::int", &[])
        .map(|r| r.get(0))
        .map_err(|e| ConnectError::Unreachable { url: redact(conn), reason: e.to_string() })?;
    if version >= 140000 {
        client
            .batch_execute("SET client_connection_check_interval = '1s'")
            .map_err(|e| ConnectError::Unreachable { url: redact(conn), reason: e.to_string() })?;
    }
    Ok(client)
}

pub fn error_chain(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return db.message().to_string();
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Removes the password from a driver message, in case it quotes the input.
fn scrub(message: &str, conn: &str) -> String {
    let password = conn
        .parse::<Config>()
        .ok()
        .and_then(|c| c.get_password().map(|p| String::from_utf8_lossy(p).to_string()))
        .filter(|p| !p.is_empty());
    match password {
        Some(p) => message.replace(&p, "****"),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_masks_passwords_in_urls_and_keyword_strings() {
        assert_eq!(
            redact("postgres://app:s3cret@db.example:5432/prod"),
            "postgres://app:****@db.example:5432/prod"
        );
        assert_eq!(
            redact("postgres://app@h/db?password=s3cret&sslmode=require"),
            "postgres://app@h/db?password=****&sslmode=require"
        );
        assert_eq!(redact("host=h password=s3cret dbname=x"), "host=h password=**** dbname=x");
        assert_eq!(
            redact("postgres://app:s3cret@/db?host=/tmp/sock&port=5"),
            "postgres://app:****@/db?host=/tmp/sock&port=5"
        );
        assert_eq!(redact("postgres://a:s3:c@[bad"), "postgres://a:****@[bad");
        assert_eq!(redact("postgresql://h/db"), "postgresql://h/db");
    }

    #[test]
    fn libpq_target_keeps_the_password_off_the_command_line() {
        let t = LibpqTarget::from_url("postgres://app:s3cret@db.example:6543/prod", Some("other"))
            .unwrap();
        assert_eq!(t.conninfo, "host='db.example' port='6543' user='app' dbname='other'");
        assert_eq!(t.password.as_deref(), Some("s3cret"));
        let sock = LibpqTarget::from_url("postgres://u@/d?host=/tmp/x&port=5", None).unwrap();
        assert_eq!(sock.conninfo, "host='/tmp/x' port='5' user='u' dbname='d'");
    }

    #[test]
    fn bad_url_is_a_usage_error_without_the_password() {
        let err = parse_url("postgres://app:s3cret@host:notaport/db").unwrap_err();
        assert!(matches!(err, ConnectError::BadUrl { .. }));
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }
}
