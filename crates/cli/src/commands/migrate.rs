//! `backstop migrate`: apply pending migrations under the guards.

use std::path::Path;
use std::process::ExitCode;

use backstop_core::migrate::{self, Gate, MigrateOptions, Progress, Quiet, Waived};
use backstop_core::rehearse::gate::RehearsalGate;
use backstop_core::verify::{AfterRun, Phase};

use super::verify;
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
    /// Use this backup (recent and verified) instead of taking one.
    #[arg(long, value_name = "ID", conflicts_with = "no_backup")]
    backup: Option<String>,
    /// Migrate without a backup; the reason goes into the audit log.
    #[arg(long, value_name = "REASON")]
    no_backup: Option<String>,
    /// Apply pending migrations older than the latest applied one (merged
    /// late from a branch); without it they are refused.
    #[arg(long)]
    allow_out_of_order: bool,
    /// Apply without the passing rehearsal `[rehearse] required` asks for;
    /// the reason is recorded in the audit log.
    #[arg(long, value_name = "REASON")]
    skip_rehearsal: Option<String>,
}

pub fn run(args: Args, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let ctx = Context::load(config, &args.conn)?;
    let options = MigrateOptions {
        to: args.to,
        each: args.each,
        dry_run: args.dry_run,
        allow_out_of_order: args.allow_out_of_order,
    };
    let mut progress: Box<dyn Progress> = match args.output.format {
        Format::Text => Box::new(StderrProgress),
        Format::Json => Box::new(Quiet),
    };
    // In the order of the runbook: the risk check, then the rehearsal.
    let mut check_gate = super::check::migrate_gate(
        &ctx.config,
        &ctx.url,
        args.accept_risk,
        args.output.format == Format::Text,
    );
    let mut rehearsal: Box<dyn Gate> = match args.skip_rehearsal {
        Some(reason) => Box::new(Waived { gate: "rehearsal", reason }),
        None => Box::new(RehearsalGate {
            max_age: ctx.config.rehearse.max_age,
            accept_schema_only: ctx.config.rehearse.accept_schema_only,
        }),
    };
    let mut backup_progress = super::backup::Bar::new(args.output.format);
    let mut backup = super::backup::gate(
        &ctx.config,
        &ctx.url,
        args.backup,
        args.no_backup,
        &mut backup_progress,
    )?;
    // Cheap refusals first: the check and the rehearsal record cost little,
    // the backup is a dump.
    let mut freeze = backstop_core::freeze::FreezeGate;
    let mut gates: Vec<&mut dyn Gate> = vec![&mut freeze];
    if let Some(gate) = check_gate.as_mut() {
        gates.push(gate);
    }
    if ctx.config.rehearse.required {
        gates.push(rehearsal.as_mut());
    }
    if let Some(gate) = backup.as_mut() {
        gates.push(gate.as_mut());
    }
    let mut client = ctx.connect()?;
    let plan = ctx.config.after_plan()?;
    let after =
        AfterRun::prepare(&mut client, &ctx.url, plan.as_ref(), Phase::Migrate, args.dry_run)?;
    let report = migrate::migrate(
        &mut client,
        &ctx.migrations,
        &ctx.settings,
        &options,
        &mut gates,
        progress.as_mut(),
    )?;
    let verified = after.and_then(|after| after.finish(&mut client, &report));
    match args.output.format {
        Format::Json => print_json(&verify::with_suite(&report, verified.as_ref())?)?,
        Format::Text => {
            print(&render::report(
                &report,
                "applied",
                "nothing to migrate: the database is up to date",
            ))?;
            if let Some(suite) = &verified {
                print(&verify::after_text(suite, Phase::Migrate, &report))?;
            }
        }
    }
    let verify_failed = verified.as_ref().is_some_and(|s| !s.ok());
    Ok(if report.failed() || verify_failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
