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
    if conn.starts_with("postgres://") || conn.starts_with("postgresql://") {
        return match url::Url::parse(conn) {
            Ok(mut url) => {
                if url.password().is_some() {
                    let _ = url.set_password(Some("****"));
                }
                let mut shown = url.to_string();
                if let Some(q) = url.query() {
                    let masked = redact_query(q);
                    shown = shown.replace(q, &masked);
                }
                shown
            }
            Err(_) => "<unparsable database URL>".to_string(),
        };
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

/// Opens a session for Backstop's own work. The session checks every second
/// whether its client is still there, so a killed `backstop` releases its
/// locks within seconds rather than at the end of a long statement.
pub fn connect(conn: &str, application: &str) -> Result<Client, ConnectError> {
    let mut config = parse_url(conn)?;
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

fn error_chain(e: &postgres::Error) -> String {
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
        assert_eq!(redact("postgres://a:s3cret@[bad"), "<unparsable database URL>");
    }

    #[test]
    fn bad_url_is_a_usage_error_without_the_password() {
        let err = parse_url("postgres://app:s3cret@host:notaport/db").unwrap_err();
        assert!(matches!(err, ConnectError::BadUrl { .. }));
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }
}
