//! `backstop rollback`: revert applied migrations with their down files,
//! or carry out the runbook's rollback methods A, B and C (`--method`).

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
    /// release's flags off and runs [hooks] after_kill; B adds a restore of
    /// the migration's backup; C exports what the release exposed, then A
    /// and the down migrations (--to/--steps choose them; default the last).
    #[arg(long, value_name = "A|B|C", conflicts_with = "dry_run")]
    method: Option<String>,
    /// Methods A to C: the release whose flags go off (default: the one release with flags on).
    #[arg(long, value_name = "RELEASE", requires = "method", conflicts_with = "flag")]
    release: Option<String>,
    /// Methods A to C: turn off only this flag.
    #[arg(long, value_name = "KEY", requires = "method")]
    flag: Option<String>,
    /// Why, for the audit log.
    #[arg(long, value_name = "TEXT", requires = "method")]
    reason: Option<String>,
    /// Carry the method out (without it: say what it would do).
    #[arg(long, requires = "method")]
    yes: bool,
    /// Method B: the backup to restore (default: the one the latest applied
    /// migration recorded).
    #[arg(long, value_name = "ID", requires = "method")]
    backup: Option<String>,
    /// Method B: finish a restore that was interrupted.
    #[arg(long, requires = "method")]
    resume: bool,
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
    if m == Method::C {
        return full(args, config);
    }
    if args.to.is_some() || args.steps.is_some() {
        return Err(super::UsageError(format!(
            "--to and --steps choose the migrations method C reverts; method {m} reverts none"
        ))
        .into());
    }
    let (config, url, store) = super::backup::load(config, &args.conn)?;
    let mut client = backstop_core::pg::connect(&url, "backstop rollback")?;
    let flags = backstop_core::flags::list(&mut client)?;
    let target = flags_to_kill(
        &mut client,
        &flags,
        args.flag.clone(),
        args.release.as_deref(),
        m == Method::B,
    )?;
    let affected: Vec<&str> = flags
        .iter()
        .filter(|f| match &target {
            Some(Target::Release(r)) => &f.release == r,
            Some(Target::Flag(k)) => &f.key == k,
            None => false,
        })
        .map(|f| f.key.as_str())
        .collect();
    let restore_id = match m {
        Method::B => Some(respond::backup_to_restore(&mut client, args.backup.as_deref())?),
        _ => None,
    };
    if !args.yes {
        let mut plan = match &target {
            Some(t) => format!(
                "method {m} would turn off {t} ({}: {})",
                affected.len(),
                affected.join(", ")
            ),
            None => format!("method {m}: no flag is on, nothing to turn off"),
        };
        for (name, hook) in [
            ("after_kill", &config.hooks.after_kill),
            ("stop_writes", if m == Method::B { &config.hooks.stop_writes } else { &None }),
        ] {
            if let Some(hook) = hook {
                plan.push_str(&format!(", run [hooks] {name} `{hook}`"));
            }
        }
        if let Some(id) = &restore_id {
            plan.push_str(&format!(
                ", restore backup {id} (the current state kept as a pre-restore snapshot)"
            ));
            if let Some(hook) = &config.hooks.resume_writes {
                plan.push_str(&format!(", run [hooks] resume_writes `{hook}`"));
            }
        }
        print(&format!("{plan}.\nnothing changed; run again with --yes to carry it out\n"))?;
        return Ok(ExitCode::SUCCESS);
    }
    let reason = args.reason.unwrap_or_else(|| format!("backstop rollback --method {m}"));
    let text = args.output.format == Format::Text;
    let mut alerted = false;
    let on_step = |s: &respond::Step| {
        if text {
            eprintln!("{}", crate::render::step_line(s));
        }
        // The alert goes out once the method is on record and its first step done.
        if !alerted {
            alerted = true;
            super::incident::announce(&config, &url, true);
        }
    };
    let carried = match restore_id {
        None => respond::method_a(
            &mut client,
            &url,
            target.as_ref().expect("method A always has a target"),
            &config.hooks,
            &reason,
            config.migrations.lock_wait,
            on_step,
        ),
        Some(id) => {
            let tools = backstop_core::backup::tools::Tools::find()?;
            let restore = respond::Restore {
                store: &store,
                tools: &tools,
                backup: Some(id),
                options: backstop_core::backup::restore::RestoreOptions {
                    jobs: super::backup::jobs(&config),
                    resume: args.resume,
                    lock_wait: config.migrations.lock_wait,
                },
                freeze: &config.freeze,
            };
            // Ctrl-C stops pg_restore; Backstop lives on to leave the
            // database as it was, or on record for --resume.
            super::restore::outlive_interrupts();
            respond::method_b(
                &mut client,
                &url,
                target.as_ref(),
                &config.hooks,
                &restore,
                &reason,
                on_step,
            )
        }
    };
    // The resolution, or the failure, goes out either way.
    super::incident::announce(&config, &url, false);
    let steps = carried?;
    match args.output.format {
        Format::Json => print_json(
            &serde_json::json!({ "method": m.to_string(), "target": target, "steps": steps }),
        )?,
        Format::Text => print(&format!("✓ method {m} carried out\n"))?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `rollback --method C`: the full rollback, with its forensics.
fn full(args: Args, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    use backstop_core::respond;
    let ctx = Context::load(config, &args.conn)?;
    let revert = revert_target(args.to.clone(), args.steps);
    let mut client = ctx.connect()?;
    let flags = backstop_core::flags::list(&mut client)?;
    let target =
        flags_to_kill(&mut client, &flags, args.flag.clone(), args.release.as_deref(), true)?;
    let root = forensics_root(&ctx);
    if !args.yes {
        let plan = migrate::rollback(
            &mut client,
            &ctx.migrations,
            &ctx.settings,
            &revert,
            true,
            &mut Quiet,
        )?;
        let versions: Vec<String> = plan.groups.iter().flat_map(|g| g.versions.clone()).collect();
        let flags = match &target {
            Some(t) => format!("turn off {t}"),
            None => "turn off no flag (none is on)".into(),
        };
        print(&format!(
            "method C would count and export the tables that {} created to {}/<time>/, {flags}, \
             revert {} with their down files, check the protected tables and verify.\n\
             nothing changed; run again with --yes to carry it out\n",
            if versions.is_empty() { "no migration".into() } else { versions.join(", ") },
            root.display(),
            if versions.is_empty() { "nothing".into() } else { versions.join(", ") },
        ))?;
        return Ok(if versions.is_empty() { ExitCode::from(2) } else { ExitCode::SUCCESS });
    }
    let reason = args.reason.unwrap_or_else(|| "backstop rollback --method C".into());
    let text = args.output.format == Format::Text;
    let on_step = |s: &respond::Step| {
        if text {
            eprintln!("{}", crate::render::step_line(s));
        }
    };
    let outcome = carry_out_c(&ctx, &mut client, target.as_ref(), &revert, &reason, on_step)?;
    let written = "report.md and user_email.txt";
    match args.output.format {
        Format::Json => print_json(&serde_json::json!({
            "method": "C",
            "target": target,
            "reverted": outcome.reverted,
            "exposure": outcome.exposure,
            "forensics": outcome.forensics,
            "steps": outcome.steps,
        }))?,
        Format::Text => print(&format!(
            "✓ method C carried out: {} reverted; exports, manifest.json, {} in {}\n",
            outcome.reverted.join(", "),
            written,
            outcome.forensics.display()
        ))?,
    }
    Ok(ExitCode::SUCCESS)
}

/// The migrations a rollback reverts: those after `--to`, or the last `--steps` (default 1).
fn revert_target(to: Option<String>, steps: Option<usize>) -> RollbackTarget {
    match (to, steps) {
        (Some(v), _) => RollbackTarget::To(v),
        (None, n) => RollbackTarget::Steps(n.unwrap_or(1)),
    }
}

/// The flags a method turns off: `--flag`, or `--release`, or the one
/// release with flags on. When `none_if_all_off` (B and C, which go on to
/// restore or revert after a kill already done) and nothing is on: none.
fn flags_to_kill(
    client: &mut postgres::Client,
    flags: &[backstop_core::flags::Flag],
    flag: Option<String>,
    release: Option<&str>,
    none_if_all_off: bool,
) -> anyhow::Result<Option<backstop_core::respond::Target>> {
    use backstop_core::respond::Target;
    Ok(match (flag, release) {
        (Some(f), _) => Some(Target::Flag(f)),
        (None, None) if none_if_all_off && !flags.iter().any(|f| f.enabled()) => None,
        (None, release) => Some(Target::Release(super::watch::release_to_kill(client, release)?)),
    })
}

/// Where method C writes its forensics: `forensics/` beside backstop.toml.
fn forensics_root(ctx: &Context) -> std::path::PathBuf {
    ctx.config
        .path
        .as_deref()
        .and_then(Path::parent)
        .map_or_else(|| Path::new(".").to_path_buf(), Path::to_path_buf)
        .join("forensics")
}

/// Method C with the verify suite after the downs, the alerts at its start
/// and end, and the incident report and users' e-mail written beside the
/// exports. `rollback --method C` and `watch --auto C` both use it.
pub fn carry_out_c(
    ctx: &Context,
    client: &mut postgres::Client,
    target: Option<&backstop_core::respond::Target>,
    revert: &RollbackTarget,
    reason: &str,
    mut on_step: impl FnMut(&backstop_core::respond::Step),
) -> anyhow::Result<backstop_core::respond::FullOutcome> {
    use backstop_core::respond;
    let mut after = AfterRun::prepare(ctx, client, Phase::Rollback, false)?;
    let mut verify = |client: &mut postgres::Client, report: &migrate::Report| {
        let Some(after) = after.take() else {
            return Ok("no verify check runs after a rollback (see [verify])".to_string());
        };
        match after.finish(client, report) {
            Some(suite) if suite.ok() => {
                Ok(format!("{} check(s) passed, {} warned", suite.passed, suite.warned))
            }
            Some(suite) => Err(format!(
                "{} critical check(s) failed: {}",
                suite.failed,
                suite.text().lines().filter(|l| l.contains('✗')).collect::<Vec<_>>().join("; ")
            )),
            None => Ok("nothing was reverted, nothing to verify".to_string()),
        }
    };
    let (config, url) = (&ctx.config, &ctx.url);
    let mut alerted = false;
    let step = |s: &respond::Step| {
        on_step(s);
        // The alert goes out once the method is on record and its first step done.
        if !alerted {
            alerted = true;
            super::incident::announce(config, url, true);
        }
    };
    let root = forensics_root(ctx);
    let full = respond::Full {
        migrations: &ctx.migrations,
        settings: &ctx.settings,
        revert,
        forensics_root: &root,
        owner_columns: &config.check.owner_columns,
        protected_tables: &config.migrations.protected_tables,
    };
    let carried = respond::method_c(
        client,
        url,
        target,
        &config.hooks,
        &full,
        reason,
        config.migrations.lock_wait,
        &mut verify,
        step,
    );
    super::incident::announce(config, url, false);
    let outcome = carried?;
    // The incident texts go beside the exports, from the timeline just written.
    let incident = super::incident::gather(config, url, None)?;
    for name in ["report.md", "user_email.txt"] {
        let body =
            backstop_core::incident::render(name, &incident, config.notify.templates.as_deref())?;
        std::fs::write(outcome.forensics.join(name), body)?;
    }
    Ok(outcome)
}

pub fn run(args: Args, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    if let Some(which) = args.method.clone() {
        return method(args, config, &which);
    }
    let ctx = Context::load(config, &args.conn)?;
    let target = revert_target(args.to, args.steps);
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
