//! `backstop backup restore ID`: put a backup back over the database, with writes
//! frozen and the current state kept as a pre-restore snapshot.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

use backstop_core::backup::{self, RestoreOptions, Tools};
use backstop_core::pg::redact;
use chrono::Utc;

use super::{print, print_json, UsageError};
use crate::{Connection, Format, Output};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    conn: Connection,
    #[command(flatten)]
    output: Output,
    /// The backup to restore (from `backstop backup list`).
    #[arg(required_unless_present = "abandon")]
    id: Option<String>,
    /// Do not ask for confirmation.
    #[arg(long)]
    yes: bool,
    /// Finish a restore that was interrupted.
    #[arg(long, conflicts_with = "abandon")]
    resume: bool,
    /// Give up an interrupted restore that has not changed the database
    /// yet: its restored copy is dropped, its journal forgotten, writes
    /// unfrozen.
    #[arg(long, conflicts_with = "id")]
    abandon: bool,
    /// A pgBackRest restore point brings back the whole cluster: go on
    /// even though other databases in it changed since the point (their
    /// writes since are undone, kept in the pre-restore data directory).
    #[arg(long)]
    whole_cluster: bool,
}

/// Lets this process outlive SIGINT and SIGTERM, while the programs it
/// starts keep the default and stop (a handler, unlike an ignored signal,
/// is reset when a child executes its program).
pub fn outlive_interrupts() {
    extern "C" fn noted(signal: nix::libc::c_int) {
        backstop_core::backup::tools::INTERRUPTED_BY
            .store(signal, std::sync::atomic::Ordering::SeqCst);
    }
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let action = SigAction::new(SigHandler::Handler(noted), SaFlags::SA_RESTART, SigSet::empty());
    for signal in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is
        // async-signal-safe.
        let _ = unsafe { sigaction(signal, &action) };
    }
}

pub fn run(args: Args, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let (config, url) = super::target(config, &args.conn)?;
    let store = backstop_core::backup::Store::new(&config.backup.dir);
    if args.abandon {
        return abandon(&url, &store, args.output.format);
    }
    let id = args.id.clone().unwrap_or_default();
    let m = store.load(&id)?;
    // A server that cannot be reached now may be one the restore starts.
    if let Ok(mut client) = backstop_core::pg::connect(&url, "backstop") {
        backstop_core::pg::pooler::refuse_pooled(&mut client, &url, "backstop restore")?;
    }
    let whole = match (&m.restore_point, &m.kept_data_dir) {
        (Some(p), _) => Some(format!("pgBackRest restore point {}", p.name)),
        (None, Some(k)) => Some(format!("the data directory kept in {}", k.path.display())),
        (None, None) => None,
    };
    if let (false, Some(whole)) = (args.yes, &whole) {
        confirm(&format!(
            "restore the whole cluster of database {} at {} to {whole}?\n\
             The server is stopped and started again; its data directory is kept whole beside \
             the restored one.\nType yes to go on: ",
            m.database,
            redact(&url),
        ))?;
    } else if !args.yes {
        confirm(&format!(
            "restore backup {} ({} old, {}, {} row(s) in {} table(s)) over database {} at {}?\n\
             Writes are frozen meanwhile; the current state is kept as a pre-restore snapshot.\n\
             Type yes to go on: ",
            m.id,
            backstop_core::kit::duration::age(m.age(Utc::now())),
            backstop_core::kit::size::human(m.size_bytes),
            m.row_counts.values().sum::<i64>(),
            m.row_counts.len(),
            m.database,
            redact(&url)
        ))?;
    }
    let tools = Tools::find()?;
    let mut progress = super::backup::Bar::new(args.output.format);
    let options = RestoreOptions {
        jobs: super::backup::jobs(&config),
        resume: args.resume,
        lock_wait: config.migrations.lock_wait,
        whole_cluster: args.whole_cluster,
        server: config.backup.server_control(),
        mode: config.backup.restore,
        schemas: config.backup.restore_schemas.clone(),
    };
    // Ctrl-C reaches pg_restore and Backstop alike: pg_restore stops, and
    // Backstop lives on to leave the target as it was (or on record) and
    // say that it was interrupted.
    outlive_interrupts();
    let report =
        backup::restore(&url, &store, &tools, &id, &options, &config.freeze, &mut progress)?;
    drop(progress);
    match args.output.format {
        Format::Json => print_json(&report)?,
        Format::Text => {
            let took = format!(
                "{:.1}s{}",
                report.duration_ms as f64 / 1000.0,
                if report.resumed { ", resumed" } else { "" }
            );
            let mut out = match (&report.kept_data_dir, &m.restore_point) {
                (Some(_), Some(point)) => format!(
                    "✓ restored the whole cluster of {} to restore point {} (backup {}): {} \
                     protected table(s), {} row(s) and the schema as recorded at the point ({took})\n",
                    report.database, point.name, report.backup_id, report.tables, report.rows
                ),
                (Some(_), None) => format!(
                    "✓ swapped the cluster of {} back to the data directory of backup {} ({took})\n",
                    report.database, report.backup_id
                ),
                (None, _) => format!(
                    "✓ restored backup {} into {}: {} table(s), {} row(s) match the manifest ({took})\n",
                    report.backup_id, report.database, report.tables, report.rows
                ),
            };
            out.push_str(&match (&report.kept_data_dir, &report.snapshot_database) {
                (Some(dir), _) => format!(
                    "  the cluster as it was before the restore is kept whole in {} (backup {}: \
                     nothing written since the point is lost); `backstop backup restore {}` swaps it \
                     back\n",
                    dir.display(),
                    report.snapshot_id,
                    report.snapshot_id
                ),
                (None, Some(db)) => format!(
                    "  the state before the restore is kept as database {db} (backup {}); \
                     `backstop backup restore {}` puts it back\n",
                    report.snapshot_id, report.snapshot_id
                ),
                (None, None) => format!(
                    "  the state before the restore is backup {}; `backstop backup restore {}` puts it back\n",
                    report.snapshot_id, report.snapshot_id
                ),
            });
            print(&out)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `restore --abandon`.
fn abandon(url: &str, store: &backup::Store, format: Format) -> anyhow::Result<ExitCode> {
    let done = backup::restore::abandon(url, store)?;
    match format {
        Format::Json => print_json(&serde_json::json!({ "abandoned": done }))?,
        Format::Text => print(&match &done {
            Some(a) => format!(
                "abandoned the restore of backup {}: {}{}the database is as it was\n",
                a.backup_id,
                a.dropped.as_deref().map(|d| format!("dropped its copy {d}, ")).unwrap_or_default(),
                if a.unfrozen { "lifted the write freeze; " } else { "" }
            ),
            None => "no restore is unfinished: nothing to abandon\n".to_string(),
        })?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Asks on a terminal; refuses when stdin is not one.
fn confirm(question: &str) -> anyhow::Result<()> {
    if !std::io::stdin().is_terminal() {
        return Err(UsageError(
            "restore replaces the database; pass --yes to confirm (not asking: stdin is not a terminal)"
                .into(),
        )
        .into());
    }
    let mut err = std::io::stderr();
    let _ = write!(err, "{question}");
    let _ = err.flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if answer.trim().eq_ignore_ascii_case("yes") {
        Ok(())
    } else {
        Err(UsageError("restore not confirmed; nothing was changed".into()).into())
    }
}
