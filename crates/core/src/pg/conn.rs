//! Opening connections from a URL, with errors that say what to fix and
//! never show the password. TLS follows libpq's `sslmode`, `sslrootcert`,
//! `sslcert` and `sslkey`, for our sessions and for the libpq tools alike.

use std::path::PathBuf;
use std::time::Duration;

use postgres::config::{Host, SslMode as DriverSslMode};
use postgres::{Client, Config, NoTls};

use super::tls::{self, Check, Roots};

mod overrides;

/// Why a connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL itself is wrong: a usage error (exit 2).
    #[error("invalid database URL {url}: {reason}")]
    BadUrl { url: String, reason: String },
    /// The server is unreachable or refused us: an environment error (exit 3).
    #[error("could not connect to {url}: {reason}")]
    Unreachable { url: String, reason: String },
}

impl ConnectError {
    /// Exit code: a wrong URL is a usage error, an unreachable server an
    /// environment error.
    pub fn exit_code(&self) -> u8 {
        match self {
            ConnectError::BadUrl { .. } => 2,
            ConnectError::Unreachable { .. } => 3,
        }
    }
}

/// What is shown in place of a connection string that does not parse:
/// nothing of it, since its password cannot be told from the rest.
pub const HIDDEN_URL: &str = "(connection string hidden: it does not parse)";

/// Shows a connection string with its password masked. It is read by the
/// same parser the connection uses and shown from what that parser found,
/// so no way of writing the password (a `/`, `?` or `@` in it, spaces in a
/// quoted `password='…'`, `password = x`) can carry it through. A string
/// that does not parse is never shown.
pub fn redact(conn: &str) -> String {
    if unencoded_at(conn) {
        return HIDDEN_URL.to_string();
    }
    match take_tls_params(conn).0.parse::<Config>() {
        Ok(config) => display(&config, conn),
        Err(_) => HIDDEN_URL.to_string(),
    }
}

/// `postgres://user:****@host:port/db?…` from a parsed configuration.
fn display(config: &Config, conn: &str) -> String {
    let mut out = String::from("postgres://");
    let password = if config.get_password().is_some() { ":****" } else { "" };
    if let Some(user) = config.get_user() {
        out.push_str(&format!("{user}{password}@"));
    } else if !password.is_empty() {
        out.push_str(&format!("{password}@"));
    }
    let ports = config.get_ports();
    let port_of = |i: usize| ports.get(i).or(ports.first()).copied();
    let mut tcp = Vec::new();
    let mut sockets = Vec::new();
    for (i, host) in config.get_hosts().iter().enumerate() {
        match host {
            Host::Tcp(name) if name.contains(':') => tcp.push(format!("[{name}]")),
            Host::Tcp(name) => tcp.push(name.clone()),
            Host::Unix(path) => sockets.push(path.display().to_string()),
        }
        if let (Some(port), false) = (port_of(i), matches!(host, Host::Unix(_))) {
            if let Some(last) = tcp.last_mut() {
                last.push_str(&format!(":{port}"));
            }
        }
    }
    out.push_str(&tcp.join(","));
    out.push('/');
    out.push_str(config.get_dbname().unwrap_or_default());
    let mut params: Vec<String> = sockets.iter().map(|s| format!("host={s}")).collect();
    if !sockets.is_empty() && tcp.is_empty() {
        if let Some(port) = ports.first() {
            params.push(format!("port={port}"));
        }
    }
    for (key, value) in take_tls_params(conn).1 {
        params.push(format!("{key}={value}"));
    }
    if !params.is_empty() {
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

/// Parses a URL without connecting, so bad input is caught before anything runs.
pub fn parse_url(conn: &str) -> Result<Config, ConnectError> {
    Ok(parse(conn)?.config)
}

/// libpq's `sslmode` values. `allow` (plain first, TLS if the server insists)
/// is taken as `prefer` for Backstop's own sessions: TLS whenever the server
/// offers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    const ALL: [SslMode; 6] = [
        SslMode::Disable,
        SslMode::Allow,
        SslMode::Prefer,
        SslMode::Require,
        SslMode::VerifyCa,
        SslMode::VerifyFull,
    ];

    /// The name as written in a connection string.
    pub fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    fn parse(value: &str) -> Option<SslMode> {
        SslMode::ALL.into_iter().find(|m| m.name() == value)
    }

    /// What the driver is told: it only negotiates, the checks are ours.
    fn driver(self) -> DriverSslMode {
        match self {
            SslMode::Disable => DriverSslMode::Disable,
            SslMode::Allow | SslMode::Prefer => DriverSslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => DriverSslMode::Require,
        }
    }
}

/// The TLS parameters of a connection string, which the driver's parser
/// rejects (verify modes, files) and so are taken out before it sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub mode: SslMode,
    /// `sslrootcert` as given: a PEM file or `system`.
    pub root_cert: Option<String>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

const TLS_KEYS: [&str; 4] = ["sslmode", "sslrootcert", "sslcert", "sslkey"];

impl TlsSettings {
    /// Which certificate checks run, as libpq decides: the chain is checked
    /// whenever a root certificate file exists (also with `require`), the
    /// host name only with `verify-full`.
    pub fn check(&self) -> Result<Check, String> {
        let roots = match self.root_cert.as_deref() {
            Some("system") => Roots::System,
            Some(path) => Roots::File(PathBuf::from(path)),
            None => match std::env::var_os("HOME") {
                Some(home) => Roots::File(PathBuf::from(home).join(".postgresql/root.crt")),
                None => Roots::File(PathBuf::from("~/.postgresql/root.crt")),
            },
        };
        let verify = matches!(self.mode, SslMode::VerifyCa | SslMode::VerifyFull);
        match &roots {
            Roots::System if self.mode != SslMode::VerifyFull => {
                return Err(format!(
                    "sslrootcert=system needs sslmode=verify-full, not {}",
                    self.mode.name()
                ))
            }
            Roots::File(path) if !path.exists() => {
                if verify {
                    return Err(format!(
                        "sslmode={} needs the CA certificate, but the root certificate file {} does not exist; \
                         give the CA's PEM file with sslrootcert=/path/to/ca.pem, use sslrootcert=system for \
                         public CAs, or sslmode=require to encrypt without verifying the server",
                        self.mode.name(),
                        path.display()
                    ));
                }
                return Ok(Check::Nothing);
            }
            _ => {}
        }
        Ok(match self.mode {
            SslMode::VerifyFull => Check::ChainAndName(roots),
            _ => Check::Chain(roots),
        })
    }

    /// The same settings for a libpq tool's conninfo, so `pg_dump` and
    /// `pg_restore` connect the way Backstop does.
    pub fn libpq_params(&self) -> Vec<(&'static str, String)> {
        let mut params = vec![("sslmode", self.mode.name().to_string())];
        if let Some(root) = &self.root_cert {
            params.push(("sslrootcert", root.clone()));
        }
        if let Some(cert) = &self.cert {
            params.push(("sslcert", cert.display().to_string()));
        }
        if let Some(key) = &self.key {
            params.push(("sslkey", key.display().to_string()));
        }
        params
    }
}

/// A connection string taken apart: what the driver reads and what we do.
#[derive(Debug, Clone)]
pub struct ConnSpec {
    pub config: Config,
    pub tls: TlsSettings,
}

/// Parses a URL or `key=value` string, TLS parameters included. Over Unix
/// sockets TLS is off whatever `sslmode` says, as in libpq.
pub fn parse(conn: &str) -> Result<ConnSpec, ConnectError> {
    if let Some(scheme) = foreign_scheme(conn) {
        return Err(ConnectError::BadUrl {
            url: format!("{scheme}://…"),
            reason: format!(
                "{scheme}:// is not the scheme of a PostgreSQL URL; write \
                 postgres://user:password@host:port/database (or postgresql://, or libpq's \
                 host=… dbname=… pairs)"
            ),
        });
    }
    if unencoded_at(conn) {
        // Where the password ends cannot be known: no part of it is shown.
        return Err(ConnectError::BadUrl {
            url: HIDDEN_URL.to_string(),
            reason: "the user or password holds an @ that is not percent-encoded, so where the \
                     password ends cannot be told; write each @ in them as %40 \
                     (postgres://user:pa%40ss@host/db)"
                .to_string(),
        });
    }
    let bad = |reason: String| ConnectError::BadUrl {
        url: redact(conn),
        reason: if redact(conn) == HIDDEN_URL { reason } else { scrub(&reason, conn) },
    };
    let (rest, taken) = take_tls_params(conn);
    let mut tls = TlsSettings { mode: SslMode::Prefer, root_cert: None, cert: None, key: None };
    for (key, value) in taken {
        match key {
            "sslmode" => {
                tls.mode = SslMode::parse(&value).ok_or_else(|| {
                    let names: Vec<&str> = SslMode::ALL.iter().map(|m| m.name()).collect();
                    bad(format!("sslmode={value} is not one of {}", names.join(", ")))
                })?
            }
            "sslrootcert" => tls.root_cert = Some(value),
            "sslcert" => tls.cert = Some(PathBuf::from(value)),
            _ => tls.key = Some(PathBuf::from(value)),
        }
    }
    if tls.cert.is_some() != tls.key.is_some() {
        return Err(bad("sslcert and sslkey go together; give both or neither".into()));
    }
    let mut config = rest.parse::<Config>().map_err(|e| {
        // The driver's cause names the parameter (never its value).
        let cause = std::error::Error::source(&e).map(|c| c.to_string()).unwrap_or_default();
        match cause.strip_prefix("unknown option ") {
            Some(name) => bad(format!(
                "unknown parameter {name}; write libpq's names (host, port, dbname, user, \
                 password, sslmode, sslrootcert, sslcert, sslkey, connect_timeout, options, \
                 application_name)"
            )),
            None if !cause.is_empty() => {
                bad(format!("{cause}; expected postgres://user:password@host:port/database"))
            }
            None => bad(format!("{e}; expected postgres://user:password@host:port/database")),
        }
    })?;
    let hosts = config.get_hosts();
    let sockets_only = !hosts.is_empty() && hosts.iter().all(|h| matches!(h, Host::Unix(_)));
    config.ssl_mode(if sockets_only { DriverSslMode::Disable } else { tls.mode.driver() });
    Ok(ConnSpec { config, tls })
}

/// Splits the TLS parameters (decoded) from the rest of a connection
/// string, which keeps its form for the driver (with one host and port
/// list, as libpq reads it: see [`overrides`]).
fn take_tls_params(conn: &str) -> (String, Vec<(&'static str, String)>) {
    let read = overrides::as_libpq_reads(conn);
    let conn = read.as_ref();
    let known = |key: &str| TLS_KEYS.into_iter().find(|k| *k == key);
    let mut taken = Vec::new();
    if conn.contains("://") {
        let Some((base, query)) = conn.split_once('?') else {
            return (conn.to_string(), taken);
        };
        let mut kept = Vec::new();
        for pair in query.split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match known(key) {
                Some(key) => taken.push((
                    key,
                    percent_encoding::percent_decode_str(value).decode_utf8_lossy().into_owned(),
                )),
                None => kept.push(pair),
            }
        }
        let rest =
            if kept.is_empty() { base.to_string() } else { format!("{base}?{}", kept.join("&")) };
        return (rest, taken);
    }
    // A malformed keyword string goes to the driver as it is, to say why.
    let Some(pairs) = conninfo_pairs(conn) else {
        return (conn.to_string(), taken);
    };
    let mut kept = Vec::new();
    for (key, text, value) in pairs {
        match known(key) {
            Some(key) => taken.push((key, value)),
            None => kept.push(text),
        }
    }
    (kept.join(" "), taken)
}

/// The pairs of a libpq `key=value` string as (key, text as written, value
/// unquoted), read as the driver reads them; None if it is malformed.
fn conninfo_pairs(conn: &str) -> Option<Vec<(&str, &str, String)>> {
    let mut pairs = Vec::new();
    let mut chars = conn.char_indices().peekable();
    let skip_space = |chars: &mut std::iter::Peekable<std::str::CharIndices>| {
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
    };
    loop {
        skip_space(&mut chars);
        let Some(&(start, _)) = chars.peek() else {
            return Some(pairs);
        };
        while chars.next_if(|(_, c)| *c != '=' && !c.is_whitespace()).is_some() {}
        let key_end = chars.peek().map_or(conn.len(), |(i, _)| *i);
        skip_space(&mut chars);
        chars.next_if(|(_, c)| *c == '=')?;
        skip_space(&mut chars);
        let quoted = chars.next_if(|(_, c)| *c == '\'').is_some();
        let mut value = String::new();
        loop {
            match chars.peek().map(|(_, c)| *c) {
                None if quoted => return None,
                None => break,
                Some(c) if !quoted && c.is_whitespace() => break,
                Some('\'') if quoted => {
                    chars.next();
                    break;
                }
                Some(c) => {
                    chars.next();
                    value.push(if c == '\\' { chars.next()?.1 } else { c });
                }
            }
        }
        let end = chars.peek().map_or(conn.len(), |(i, _)| *i);
        pairs.push((&conn[start..key_end], &conn[start..end], value));
    }
}

/// The hosts of `config` as libpq names them (a socket by its folder).
fn host_names(config: &Config) -> Vec<String> {
    let name = |h: &Host| match h {
        Host::Tcp(name) => name.clone(),
        Host::Unix(path) => path.display().to_string(),
    };
    config.get_hosts().iter().map(name).collect()
}

/// How to point a libpq tool (`pg_dump`, `pg_restore`, `psql`) at a
/// database without putting the password on its command line, where `ps`
/// would show it: a `key=value` conninfo without password, and the password
/// for the tool's `PGPASSWORD`.
#[derive(Clone)]
pub struct LibpqTarget {
    pub conninfo: String,
    pub password: Option<String>,
}

impl std::fmt::Debug for LibpqTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LibpqTarget").field("conninfo", &self.conninfo).finish()
    }
}

impl LibpqTarget {
    /// The target for `conn`, optionally with another database name.
    pub fn from_url(conn: &str, dbname: Option<&str>) -> Result<LibpqTarget, ConnectError> {
        let ConnSpec { config, tls } = parse(conn)?;
        let quote = |v: &str| format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"));
        let mut parts = Vec::new();
        let hosts = host_names(&config);
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
        for (key, value) in tls.libpq_params() {
            parts.push(format!("{key}={}", quote(&value)));
        }
        if let Some(options) = config.get_options() {
            parts.push(format!("options={}", quote(options)));
        }
        if let Some(t) = config.get_connect_timeout() {
            parts.push(format!("connect_timeout={}", quote(&t.as_secs().max(1).to_string())));
        }
        let password = config
            .get_password()
            .map(|p| String::from_utf8_lossy(p).to_string())
            .filter(|p| !p.is_empty());
        Ok(LibpqTarget { conninfo: parts.join(" "), password })
    }

    /// Applies the password to a tool's environment and clears the PG*
    /// variables that could point it elsewhere.
    pub fn apply(&self, cmd: &mut std::process::Command) {
        for var in [
            "PGHOST",
            "PGPORT",
            "PGUSER",
            "PGDATABASE",
            "PGSERVICE",
            "PGPASSFILE",
            "PGSSLMODE",
            "PGSSLROOTCERT",
            "PGSSLCERT",
            "PGSSLKEY",
        ] {
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
    let mut client = open(conn, dbname, application)?;
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

/// Opens a session with the connector the URL's TLS settings call for.
/// Every session Backstop opens on a user's database comes through here.
fn open(conn: &str, dbname: Option<&str>, application: &str) -> Result<Client, ConnectError> {
    let ConnSpec { mut config, tls } = parse(conn)?;
    if let Some(db) = dbname {
        config.dbname(db);
    }
    config.application_name(application);
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    let url = match dbname {
        Some(db) => format!("{} (database {db})", redact(conn)),
        None => redact(conn),
    };
    let connected = if config.get_ssl_mode() == DriverSslMode::Disable {
        config.connect(NoTls)
    } else {
        let bad = |reason: String| ConnectError::BadUrl { url: redact(conn), reason };
        let check = tls.check().map_err(bad)?;
        let identity = tls.cert.as_deref().zip(tls.key.as_deref());
        config.connect(tls::connector(&check, identity).map_err(bad)?)
    };
    connected.map_err(|e| {
        let mut reason = scrub(&error_chain(&e), conn);
        if let Some(hint) = hint(&e, &config, &tls) {
            reason = format!("{reason}; {hint}");
        }
        ConnectError::Unreachable { url, reason }
    })
}

/// What to change when a connection failed over TLS settings.
fn hint(e: &postgres::Error, config: &Config, tls: &TlsSettings) -> Option<String> {
    use rustls::{CertificateError, Error as TlsError};
    let host = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            Host::Tcp(name) => name.clone(),
            Host::Unix(path) => path.display().to_string(),
        })
        .collect::<Vec<_>>()
        .join(",");
    let root = tls.root_cert.as_deref().unwrap_or("~/.postgresql/root.crt");
    if let Some(TlsError::InvalidCertificate(cert)) = tls::handshake_error(e) {
        return Some(match cert {
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                format!(
                    "the server's certificate is not issued for host {host}; connect with a host \
                     name the certificate lists, or use sslmode=verify-ca to check the CA but not the name"
                )
            }
            CertificateError::UnknownIssuer | CertificateError::BadSignature => format!(
                "the certificate of {host} is not signed by a CA in {root}; point sslrootcert= at \
                 the CA that signed it, or use sslmode=require to encrypt without verifying the server"
            ),
            _ => format!(
                "the certificate of {host} was rejected; check it (dates, usage) or point sslrootcert= \
                 at the right CA, or use sslmode=require to encrypt without verifying the server"
            ),
        });
    }
    let text = error_chain(e);
    if text.contains("server does not support TLS") {
        return Some(format!(
            "{host} does not accept TLS; turn ssl on at the server, or use sslmode=prefer or sslmode=disable"
        ));
    }
    // pg_hba.conf's `hostnossl ... reject` and managed services' "SSL required".
    if tls.mode == SslMode::Disable
        && (text.contains("no encryption") || text.to_lowercase().contains("ssl"))
    {
        return Some(format!(
            "{host} seems to accept TLS connections only; use sslmode=require (or verify-full)"
        ));
    }
    None
}

/// A driver error with its causes, or the server's message alone.
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

/// The scheme of a URL that is not `postgres://` or `postgresql://`, which
/// the driver would read as `key=value` pairs ("unexpected EOF"). Only the
/// scheme is shown: the rest may hold a password.
fn foreign_scheme(conn: &str) -> Option<&str> {
    let (scheme, _) = conn.trim_start().split_once("://")?;
    let is_scheme = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.' | ':'));
    (is_scheme && !matches!(scheme, "postgres" | "postgresql")).then_some(scheme)
}

/// Whether a URL's user-and-password part holds an `@` of its own (the
/// host follows the last one): the driver would take part of the password
/// for the host name.
fn unencoded_at(conn: &str) -> bool {
    let Some(rest) =
        conn.strip_prefix("postgres://").or_else(|| conn.strip_prefix("postgresql://"))
    else {
        return false;
    };
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    authority.matches('@').count() > 1
}

/// Removes the password from a driver message, in case it quotes the input.
fn scrub(message: &str, conn: &str) -> String {
    let password = take_tls_params(conn)
        .0
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
mod tests;
