//! `backstop flags serve`: the release flags served to applications (flagd's
//! JSON, OFREP and its event stream), a status page and metrics. The server
//! itself is `backstop-server`; this builds its options from the config.

use std::io::IsTerminal as _;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;

use crate::Connection;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on (default: [serve] listen, else 127.0.0.1:8750).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    #[command(flatten)]
    conn: Connection,
}

pub fn run(args: Args, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let (config, url) = super::target(config, &args.conn)?;
    // Its LISTEN hears other instances' flag changes only on a session of
    // its own. A database not reachable yet is waited for, as before.
    if let Ok(mut client) = backstop_core::pg::connect(&url, "backstop serve") {
        backstop_core::pg::pooler::refuse_pooled(&mut client, &url, "backstop serve")?;
    }
    let tokens = config.serve_tokens()?;
    if config.serve.private && tokens.is_empty() {
        return Err(super::UsageError(
            "[serve] private = true needs [serve] token: without one nobody could read".into(),
        )
        .into());
    }
    // The page lists pending migrations; a folder that cannot be read only
    // leaves that list empty.
    let migrations = match config.migrations.load() {
        Ok(folder) => folder.migrations,
        Err(e) => {
            eprintln!("warning: the status page will show no pending migrations: {e}");
            Vec::new()
        }
    };
    // The page shows the current rollout when one is configured.
    let rollout_control = match config.rollout.control() {
        None => None,
        Some(_) => match backstop_core::rollout::plan::control_url(&config.rollout) {
            Ok(control) => Some(control),
            Err(e) => {
                eprintln!("warning: the status page will show no rollout: {e}");
                None
            }
        },
    };
    let database = url
        .parse::<postgres::Config>()
        .ok()
        .and_then(|c| c.get_dbname().map(str::to_string))
        .unwrap_or_else(|| "database".into());
    let options = backstop_server::Options {
        listen: args.listen.unwrap_or_else(|| config.serve.listen.clone()),
        database,
        url,
        tokens,
        private: config.serve.private,
        max_evaluations_per_second: config.serve.max_evaluations_per_second,
        max_connections: config.serve.max_connections,
        header_timeout: config.serve.header_timeout,
        lock_wait: config.migrations.lock_wait,
        backup_dir: config.backup.dir.clone(),
        migrations,
        drill_every: config.drill.every,
        rollout_control,
    };
    // Request logs on stderr; RUST_LOG narrows or widens them. Colour only
    // on a terminal: stderr sent to a log file gets plain text.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .try_init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the server's runtime")?;
    runtime.block_on(backstop_server::serve(options))?;
    Ok(ExitCode::SUCCESS)
}
