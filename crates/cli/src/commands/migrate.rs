//! `backstop migrate`: apply pending migrations under the guards.

use std::path::Path;
use std::process::ExitCode;

use backstop_core::migrate::{self, Gate, MigrateOptions, Progress, Quiet};

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
    /// Accept a critical risk the check gate found, by rule code
    /// (repeatable); recorded in the audit log.
    #[arg(long = "accept-risk", value_name = "CODE", value_parser = super::check::parse_code)]
    accept_risk: Vec<backstop_lint::Code>,
}

pub fn run(args: Args, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let ctx = Context::load(config, &args.conn)?;
    let mut client = ctx.connect()?;
    let options = MigrateOptions { to: args.to, each: args.each, dry_run: args.dry_run };
    let mut progress: Box<dyn Progress> = match args.output.format {
        Format::Text => Box::new(StderrProgress),
        Format::Json => Box::new(Quiet),
    };
    let mut check_gate = super::check::migrate_gate(
        config,
        &ctx.url,
        args.accept_risk,
        args.output.format == Format::Text,
    )?;
    let mut gates: Vec<&mut dyn Gate> = Vec::new();
    if let Some(gate) = check_gate.as_mut() {
        gates.push(gate);
    }
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
