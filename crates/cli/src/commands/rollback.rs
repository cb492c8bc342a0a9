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
    /// Carry out a rollback method of the runbook instead: A turns the
    /// release's flags off and runs [hooks] after_kill.
    #[arg(long, value_name = "A|B|C", conflicts_with_all = ["to", "steps", "dry_run"])]
    method: Option<String>,
    /// Method A: the release whose flags go off (default: the one release with flags on).
    #[arg(long, value_name = "RELEASE", requires = "method", conflicts_with = "flag")]
    release: Option<String>,
    /// Method A: turn off only this flag.
    #[arg(long, value_name = "KEY", requires = "method")]
    flag: Option<String>,
    /// Why, for the audit log.
    #[arg(long, value_name = "TEXT", requires = "method")]
    reason: Option<String>,
    /// Carry the method out (without it: say what it would do).
    #[arg(long, requires = "method")]
    yes: bool,
}

/// `rollback --method`: the runbook's methods after COMMIT.
fn method(args: Args, config: Option<&Path>, which: &str) -> anyhow::Result<ExitCode> {
    use backstop_core::decide::Method;
    use backstop_core::respond::{self, Target};
    let m = Method::parse(which).ok_or_else(|| {
        super::UsageError(format!(
            "--method {which:?}: use A (flags off), B (restore) or C (full rollback)"
        ))
    })?;
    if m != Method::A {
        return Err(super::UsageError(format!(
            "method {m} is not carried out by backstop yet; do it by hand: `backstop rollback --method A --yes`, then {}",
            if m == Method::B { "`backstop restore <BACKUP> --yes` (backstop backup list)" } else { "`backstop rollback --to <VERSION>` and the runbook's incident steps" }
        ))
        .into());
    }
    let (config, url, _) = super::backup::load(config, &args.conn)?;
    let mut client = backstop_core::pg::connect(&url, "backstop rollback")?;
    let target = match args.flag {
        Some(f) => Target::Flag(f),
        None => {
            Target::Release(super::watch::release_to_kill(&mut client, args.release.as_deref())?)
        }
    };
    let flags = backstop_core::flags::list(&mut client)?;
    let affected: Vec<&str> = flags
        .iter()
        .filter(|f| match &target {
            Target::Release(r) => &f.release == r,
            Target::Flag(k) => &f.key == k,
        })
        .map(|f| f.key.as_str())
        .collect();
    if !args.yes {
        let mut plan = format!(
            "method A would turn off {} ({}: {})",
            target,
            affected.len(),
            affected.join(", ")
        );
        if let Some(hook) = &config.hooks.after_kill {
            plan.push_str(&format!(", then run [hooks] after_kill `{hook}`"));
        }
        print(&format!(
            "{plan}.
nothing changed; run again with --yes to carry it out\n"
        ))?;
        return Ok(ExitCode::SUCCESS);
    }
    let reason = args.reason.unwrap_or_else(|| "backstop rollback --method A".into());
    let steps = respond::method_a(
        &mut client,
        &target,
        &config.hooks,
        &reason,
        config.migrations.lock_wait,
        |s| {
            if args.output.format == Format::Text {
                let mark = if s.ok { "✓" } else { "✗" };
                eprintln!(
                    "{mark} {} ({} ms): {}",
                    s.name,
                    s.took_ms,
                    crate::render::terminal_safe(&s.detail)
                );
            }
        },
    )?;
    match args.output.format {
        Format::Json => {
            print_json(&serde_json::json!({ "method": "A", "target": target, "steps": steps }))?
        }
        Format::Text => print(&format!("✓ method A carried out: {target} off\n"))?,
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run(args: Args, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    if let Some(which) = args.method.clone() {
        return method(args, config, &which);
    }
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
