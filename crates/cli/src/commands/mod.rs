//! One module per subcommand, and what they share: loading config and
//! migrations, connecting, exit codes.

pub mod adopt;
pub mod backup;
pub mod check;
pub mod clear;
pub mod compare;
pub mod completions;
pub mod decide;
pub mod demo;
pub mod downs;
pub mod drill;
pub mod explain;
pub mod flags;
pub mod freeze;
pub mod groups;
pub mod incident;
pub mod init;
pub mod man;
pub mod method;
pub mod migrate;
pub mod new;
pub mod ramp;
pub mod rehearse;
pub mod repair;
pub mod restore;
pub mod rollback;
pub mod rollout;
pub mod serve;
pub mod status;
pub mod sync;
pub mod unfreeze;
pub mod verify;
pub mod watch;

use std::io::Write;
use std::path::Path;

use anyhow::Context as _;
use backstop_core::config::Config;
use backstop_core::migrate::{RollbackTarget, Settings};
use backstop_core::pg;
use backstop_core::source::{self, Migration};

use crate::Connection;

/// The configuration, loaded once per run (the first command that needs
/// it loads it, and its warnings are said once): every command reads it
/// the same way.
pub fn config(path: Option<&Path>) -> anyhow::Result<Config> {
    static LOADED: std::sync::OnceLock<Config> = std::sync::OnceLock::new();
    if let Some(config) = LOADED.get() {
        return Ok(config.clone());
    }
    let config = Config::load(path)?;
    for warning in config.warnings() {
        eprintln!("warning: {warning}");
    }
    Ok(LOADED.get_or_init(|| config).clone())
}

/// `--role ROLE`: a role's name, never blank (a blank one names nobody,
/// and the hints that repeat it would name nobody either).
pub fn role_name(value: &str) -> Result<String, String> {
    named(value, "a role's name, e.g. --role app_writer; `backstop status` lists the frozen roles")
}

/// `--release RELEASE`: a release's name, never blank.
pub fn release_name(value: &str) -> Result<String, String> {
    named(value, "a release's name, e.g. --release v2; `backstop flags list` shows the releases")
}

/// `--flag KEY`: a flag's key, never blank.
pub fn flag_key(value: &str) -> Result<String, String> {
    named(value, "a flag's key, e.g. --flag new_checkout; `backstop flags list` shows them")
}

fn named(value: &str, wanted: &str) -> Result<String, String> {
    if value.trim().is_empty() {
        return Err(format!("it is blank; write {wanted}"));
    }
    Ok(value.to_string())
}

/// A mistake in how the command was called (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Everything a database command needs, loaded and checked before any
/// connection is made.
pub struct Context {
    pub config: Config,
    /// Where the migrations are (the tool's folder, when the project's
    /// root was given or found).
    pub dir: std::path::PathBuf,
    /// The folder's migrations, in the order they apply.
    pub migrations: Vec<Migration>,
    /// The layout the folder was read as.
    pub layout: source::Layout,
    /// Files of the folder that are not migrations.
    pub ignored: Vec<source::Ignored>,
    /// Files that look like migrations but that their tool would not run.
    pub strays: Vec<source::Stray>,
    pub settings: Settings,
    pub url: String,
}

/// The config and the database URL it names (or `--database-url`,
/// `DATABASE_URL`), checked: all a command needs that talks to a database
/// but never reads the migrations (a backup, a restore, the flags). The
/// one loader: [`Context::load`] is this and the migrations folder.
pub fn target(config: Option<&Path>, conn: &Connection) -> anyhow::Result<(Config, String)> {
    let config = self::config(config)?;
    let url = url_of(&config, conn)?;
    Ok((config, url))
}

/// The database URL for `conn` under `config`, parsed.
pub fn url_of(config: &Config, conn: &Connection) -> anyhow::Result<String> {
    let url = config.database_url(conn.database_url.as_deref())?;
    pg::conn::parse_url(&url)?;
    Ok(url)
}

impl Context {
    /// Loads config and migrations (syntax errors stop here) and resolves the URL.
    pub fn load(config: Option<&Path>, conn: &Connection) -> anyhow::Result<Context> {
        let config = self::config(config)?;
        let folder = config.migrations.load()?;
        let url = url_of(&config, conn)?;
        let settings = Settings::from(&config.migrations);
        Ok(Context {
            config,
            dir: folder.dir,
            migrations: folder.migrations,
            layout: folder.layout,
            ignored: folder.ignored,
            strays: folder.strays,
            settings,
            url,
        })
    }

    pub fn connect(&self) -> anyhow::Result<postgres::Client> {
        Ok(pg::connect(&self.url, "backstop")?)
    }

    /// A connection for `command`, which needs one session throughout:
    /// refused where the URL goes through a pooler that pools by
    /// transaction (see [`pg::pooler`]).
    pub fn connect_session(&self, command: &str) -> anyhow::Result<postgres::Client> {
        connect_session(&self.url, command)
    }
}

/// A connection to `url` for `command`, refused where it is pooled by
/// transaction (see [`Context::connect_session`]).
pub fn connect_session(url: &str, command: &str) -> anyhow::Result<postgres::Client> {
    let mut client = pg::connect(url, "backstop")?;
    pg::pooler::refuse_pooled(&mut client, url, command)?;
    Ok(client)
}

/// Writes `text` to stdout; a closed pipe surfaces as an error that exits 0.
pub fn print(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes()).context("writing to stdout")?;
    out.flush().context("writing to stdout")
}

/// Prints `value` as pretty JSON on stdout.
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut text = serde_json::to_string_pretty(value).context("rendering JSON")?;
    text.push('\n');
    PRINTED_JSON.store(true, std::sync::atomic::Ordering::Relaxed);
    print(&text)
}

/// Set once a command has printed its JSON document: an error after it
/// adds no second one.
static PRINTED_JSON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether a JSON document was printed already.
pub fn printed_json() -> bool {
    PRINTED_JSON.load(std::sync::atomic::Ordering::Relaxed)
}

/// The exit code for an error: 2 usage or config, 3 environment, 1
/// otherwise; core's errors each say theirs.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if cause.is::<UsageError>() {
            return 2;
        }
        if let Some(code) = backstop_core::exit::code(cause) {
            return code;
        }
        if let Some(e) = cause.downcast_ref::<backstop_server::ServeError>() {
            return e.exit_code();
        }
    }
    1
}

/// The migrations a rollback reverts: those after `--to`, or the last `--steps` (default 1).
pub fn revert_target(to: Option<String>, steps: Option<usize>) -> RollbackTarget {
    match (to, steps) {
        (Some(v), _) if v == "start" => RollbackTarget::Start,
        (Some(v), _) => RollbackTarget::To(v),
        (None, n) => RollbackTarget::Steps(n.unwrap_or(1)),
    }
}
