//! `backstop rollback`: revert applied migrations with their down files.

use std::path::Path;
use std::process::ExitCode;

use backstop_core::migrate::{self, Progress, Quiet, RollbackTarget};
use backstop_core::verify::Phase;

use super::verify::{self, AfterRun};
use super::{print, print_json, Context};
use crate::render::{self, StderrProgress};
use crate::{Connection, Format, Output};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    conn: Connection,
    #[command(flatten)]
    output: Output,
    /// Revert everything applied after VERSION (VERSION stays applied).
    #[arg(long, value_name = "VERSION", conflicts_with = "steps")]
    to: Option<String>,
    /// Revert the last N applied migrations (default 1).
    #[arg(long, value_name = "N")]
    steps: Option<usize>,
    /// Show what would be reverted and change nothing.
    #[arg(long)]
    dry_run: bool,
}

pub fn run(args: Args, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let ctx = Context::load(config, &args.conn)?;
    let target = match (args.to, args.steps) {
        (Some(v), _) => RollbackTarget::To(v),
        (None, n) => RollbackTarget::Steps(n.unwrap_or(1)),
    };
    let mut client = ctx.connect()?;
    let after = AfterRun::prepare(&ctx, &mut client, Phase::Rollback, args.dry_run)?;
    let mut progress: Box<dyn Progress> = match args.output.format {
        Format::Text => Box::new(StderrProgress),
        Format::Json => Box::new(Quiet),
    };
    let report = migrate::rollback(
        &mut client,
        &ctx.migrations,
        &ctx.settings,
        &target,
        args.dry_run,
        progress.as_mut(),
    )?;
    let verified = after.and_then(|after| after.finish(&mut client, &report));
    match args.output.format {
        Format::Json => print_json(&verify::with_suite(&report, verified.as_ref())?)?,
        Format::Text => {
            print(&render::report(&report, "reverted", "nothing to roll back"))?;
            if let Some(suite) = &verified {
                print(&verify::after_text(suite, Phase::Rollback, &report))?;
            }
        }
    }
    let verify_failed = verified.as_ref().is_some_and(|s| !s.ok());
    Ok(if report.failed() || verify_failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
