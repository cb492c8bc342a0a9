//! One module per subcommand, and what they share: loading config and
//! migrations, connecting, exit codes.

pub mod adopt;
pub mod backup;
pub mod check;
pub mod clear;
pub mod compare;
pub mod decide;
pub mod demo;
pub mod explain;
pub mod flags;
pub mod freeze;
pub mod incident;
pub mod init;
pub mod migrate;
pub mod new;
pub mod rehearse;
pub mod repair;
pub mod restore;
pub mod rollback;
pub mod serve;
pub mod status;
pub mod sync;
pub mod unfreeze;
pub mod verify;
pub mod watch;

use std::io::Write;
use std::path::Path;

use anyhow::Context as _;
use backstop_core::config::{Config, ConfigError};
use backstop_core::migrate::{ApplyError, Settings};
use backstop_core::pg::cluster::ClusterError;
use backstop_core::pg::{self, ConnectError};
use backstop_core::source::{self, Migration, SourceError};

use crate::Connection;

/// A mistake in how the command was called (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Everything a database command needs, loaded and checked before any
/// connection is made.
pub struct Context {
    pub config: Config,
    /// The folder's migrations, in the order they apply.
    pub migrations: Vec<Migration>,
    /// The layout the folder was read as.
    pub layout: source::Layout,
    /// Files of the folder that are not migrations.
    pub ignored: Vec<source::Ignored>,
    pub settings: Settings,
    pub url: String,
}

impl Context {
    /// Loads config and migrations (syntax errors stop here) and resolves the URL.
    pub fn load(config: Option<&Path>, conn: &Connection) -> anyhow::Result<Context> {
        let config = Config::load(config)?;
        for warning in config.warnings() {
            eprintln!("warning: {warning}");
        }
        let folder = source::load(&config.migrations.dir, config.migrations.layout)?;
        let url = config.database_url(conn.database_url.as_deref())?;
        pg::conn::parse_url(&url)?;
        let settings = Settings::from(&config.migrations);
        Ok(Context {
            config,
            migrations: folder.migrations,
            layout: folder.layout,
            ignored: folder.ignored,
            settings,
            url,
        })
    }

    pub fn connect(&self) -> anyhow::Result<postgres::Client> {
        Ok(pg::connect(&self.url, "backstop")?)
    }
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
    print(&text)
}

/// The exit code for an error: 2 usage or config, 3 environment, 1 otherwise.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if cause.is::<UsageError>() || cause.is::<ConfigError>() || cause.is::<SourceError>() {
            return 2;
        }
        if let Some(e) = cause.downcast_ref::<backstop_core::compare::CompareError>() {
            return match e {
                backstop_core::compare::CompareError::Connect(ConnectError::BadUrl { .. }) => 2,
                _ => 3,
            };
        }
        if let Some(e) = cause.downcast_ref::<ConnectError>() {
            return match e {
                ConnectError::BadUrl { .. } => 2,
                ConnectError::Unreachable { .. } => 3,
            };
        }
        if let Some(e) = cause.downcast_ref::<ApplyError>() {
            return e.exit_code();
        }
        if let Some(e) = cause.downcast_ref::<backstop_core::flags::FlagsError>() {
            return e.exit_code();
        }
        if let Some(e) = cause.downcast_ref::<backstop_core::incident::IncidentError>() {
            return e.exit_code();
        }
        if let Some(e) = cause.downcast_ref::<backstop_core::respond::RespondError>() {
            return e.exit_code();
        }
        if let Some(e) = cause.downcast_ref::<backstop_core::watch::WatchError>() {
            return e.exit_code();
        }
        if let Some(e) = cause.downcast_ref::<backstop_core::incident::NotifyError>() {
            return e.exit_code();
        }
        if let Some(e) = cause.downcast_ref::<backstop_server::ServeError>() {
            return e.exit_code();
        }
        if let Some(e) = cause.downcast_ref::<backstop_core::adopt::AdoptError>() {
            return e.exit_code();
        }
        if let Some(e) = cause.downcast_ref::<backstop_core::backup::BackupError>() {
            return e.exit_code();
        }
        if let Some(e) = cause.downcast_ref::<backstop_core::sync::SyncError>() {
            return e.exit_code();
        }
        if let Some(e) = cause.downcast_ref::<backstop_core::clear::ClearError>() {
            return match e {
                backstop_core::clear::ClearError::Db { .. } => 3,
                backstop_core::clear::ClearError::NoSuchTable(_) => 2,
                backstop_core::clear::ClearError::ReferredFromOutside(_) => 1,
            };
        }
        if let Some(e) = cause.downcast_ref::<backstop_core::freeze::FreezeError>() {
            return e.exit_code();
        }
        if let Some(e) = cause.downcast_ref::<backstop_core::rehearse::RehearseError>() {
            return e.exit_code();
        }
        if let Some(e) = cause.downcast_ref::<backstop_core::check::CheckError>() {
            return e.exit_code();
        }
        if let Some(e) = cause.downcast_ref::<backstop_core::verify::VerifyError>() {
            return e.exit_code();
        }
        if cause.is::<ClusterError>() || cause.is::<postgres::Error>() {
            return 3;
        }
    }
    1
}
