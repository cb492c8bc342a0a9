//! `backstop rollback`: revert applied migrations with their down files;
//! `--method`, the old form of `backstop respond method`, carries out the
//! runbook's methods A, B and C instead (`commands::method`).

use std::path::Path;
use std::process::ExitCode;

use backstop_core::migrate::{self, Progress, Quiet};
use backstop_core::migrator::{self, RolledBack};
use backstop_core::verify::Phase;

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
    /// Revert everything applied after VERSION (VERSION stays applied);
    /// `start` reverts everything the downs reach.
    #[arg(long, value_name = "VERSION", conflicts_with = "steps")]
    to: Option<String>,
    /// Revert the last N applied migrations (default 1).
    #[arg(long, value_name = "N")]
    steps: Option<usize>,
    /// Show what would be reverted and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// The old form of `backstop respond method`: carry out method A, B or C.
    #[arg(long, value_enum, ignore_case = true, conflicts_with = "dry_run", hide = true)]
    method: Option<super::method::MethodArg>,
    /// Methods A to C: the release whose flags go off (default: the one release with flags on).
    #[arg(
        long,
        hide = true,
        value_name = "RELEASE",
        requires = "method",
        conflicts_with = "flag",
        value_parser = super::release_name
    )]
    release: Option<String>,
    /// Methods A to C: turn off only this flag.
    #[arg(long, hide = true, value_name = "KEY", requires = "method", value_parser = super::flag_key)]
    flag: Option<String>,
    /// Why, for the audit log (every method, the default one too).
    #[arg(long, value_name = "TEXT")]
    reason: Option<String>,
    /// Accepted so a script may pass --yes to every command that changes
    /// something; a rollback reverts without it (`--dry-run` shows it first).
    #[arg(long, conflicts_with = "dry_run")]
    yes: bool,
    /// Method B: the backup to restore (default: the one the latest applied
    /// migration recorded).
    #[arg(long, hide = true, value_name = "ID", requires = "method")]
    backup: Option<String>,
    /// Method B: finish a restore that was interrupted.
    #[arg(long, hide = true, requires = "method")]
    resume: bool,
    /// Method B with a pgBackRest restore point: restore the whole cluster
    /// even though other databases in it changed since the point (their
    /// writes since are undone, kept in the pre-restore data directory).
    #[arg(long, hide = true, requires = "method")]
    whole_cluster: bool,
}

pub fn run(args: Args, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    if let Some(method) = args.method {
        let request = super::method::Request {
            conn: args.conn,
            format: args.output.format,
            method: method.into(),
            to: args.to,
            steps: args.steps,
            release: args.release,
            flag: args.flag,
            reason: args.reason,
            yes: args.yes,
            backup: args.backup,
            resume: args.resume,
            whole_cluster: args.whole_cluster,
        };
        return super::method::run(request, config);
    }
    let ctx = Context::load(config, &args.conn)?;
    let target = super::revert_target(args.to, args.steps);
    let mut client = match args.dry_run {
        true => ctx.connect()?,
        false => ctx.connect_session("backstop rollback")?,
    };
    let mut progress: Box<dyn Progress> = match args.output.format {
        Format::Text => Box::new(StderrProgress),
        Format::Json => Box::new(Quiet),
    };
    // What the downs remove is exported first, into a folder of this run.
    let settings =
        migrate::Settings { reason: args.reason.clone(), ..ctx.config.rollback_settings() };
    let at = (ctx.url.as_str(), &ctx.config);
    let revert = (&settings, &target);
    let rolled = migrator::rollback(
        &mut client,
        at,
        &ctx.migrations,
        revert,
        args.dry_run,
        progress.as_mut(),
    )?;
    let (report, verified) = match rolled {
        RolledBack::Expand(undone) => {
            match args.output.format {
                Format::Json => print_json(&undone)?,
                Format::Text => print(&render::expanded(&undone, "rollback"))?,
            }
            return Ok(ExitCode::SUCCESS);
        }
        RolledBack::Downs(reverted) => (reverted.report, reverted.verified),
    };
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
