//! `backstop migrate`: apply pending migrations under the guards.

use std::path::Path;
use std::process::ExitCode;

use backstop_core::migrate::{self, MigrateOptions, Progress, Quiet};

use super::{print, print_json, Context};
use crate::render::{self, StderrProgress};
use crate::{Connection, Format, Output};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    conn: Connection,
    #[command(flatten)]
    output: Output,
    /// Apply up to and including this version.
    #[arg(long, value_name = "VERSION")]
    to: Option<String>,
    /// Show the transaction groups and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// One transaction per migration instead of one for all.
    #[arg(long)]
    each: bool,
    /// Use this backup (recent and verified) instead of taking one.
    #[arg(long, value_name = "ID", conflicts_with = "no_backup")]
    backup: Option<String>,
    /// Migrate without a backup; the reason goes into the audit log.
    #[arg(long, value_name = "REASON")]
    no_backup: Option<String>,
}

pub fn run(args: Args, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let ctx = Context::load(config, &args.conn)?;
    let options = MigrateOptions { to: args.to, each: args.each, dry_run: args.dry_run };
    let mut progress: Box<dyn Progress> = match args.output.format {
        Format::Text => Box::new(StderrProgress),
        Format::Json => Box::new(Quiet),
    };
    let mut backup_progress = super::backup::Bar::new(args.output.format);
    let mut backup_gate = super::backup::gate(
        &ctx.config,
        &ctx.url,
        args.backup,
        args.no_backup,
        &mut backup_progress,
    )?;
    let mut gates: Vec<&mut dyn migrate::Gate> = Vec::new();
    if let Some(gate) = backup_gate.as_mut() {
        gates.push(gate);
    }
    let mut client = ctx.connect()?;
    let report = migrate::migrate(
        &mut client,
        &ctx.migrations,
        &ctx.settings,
        &options,
        &mut gates,
        progress.as_mut(),
    )?;
    match args.output.format {
        Format::Json => print_json(&report)?,
        Format::Text => print(&render::report(
            &report,
            "applied",
            "nothing to migrate: the database is up to date",
        ))?,
    }
    Ok(if report.failed() { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
