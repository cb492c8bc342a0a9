//! `backstop rollback`: revert applied migrations with their down files,
//! or carry out the runbook's rollback methods A, B and C (`--method`).

use std::path::Path;
use std::process::ExitCode;

use backstop_core::decide::Method;
use backstop_core::migrate::{self, Progress, Quiet, RollbackTarget};
use backstop_core::migrator::{self, RolledBack};
use backstop_core::respond::{self, Observer, Step};
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
    /// The default rollback and method C; methods A and B revert no
    /// migration (A turns flags off, B restores a backup).
    #[arg(long, value_name = "VERSION", conflicts_with = "steps")]
    to: Option<String>,
    /// Revert the last N applied migrations (default 1). The default
    /// rollback and method C; methods A and B revert no migration.
    #[arg(long, value_name = "N")]
    steps: Option<usize>,
    /// Show what would be reverted and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Carry out a rollback method of the runbook instead: A turns the
    /// release's flags off and runs [hooks] after_kill; B adds a restore of
    /// the migration's backup; C exports what the release exposed, then A
    /// and the down migrations (--to/--steps choose them; default the last).
    #[arg(long, value_enum, ignore_case = true, conflicts_with = "dry_run")]
    method: Option<MethodArg>,
    /// Methods A to C: the release whose flags go off (default: the one release with flags on).
    #[arg(
        long,
        value_name = "RELEASE",
        requires = "method",
        conflicts_with = "flag",
        value_parser = super::release_name
    )]
    release: Option<String>,
    /// Methods A to C: turn off only this flag.
    #[arg(long, value_name = "KEY", requires = "method", value_parser = super::flag_key)]
    flag: Option<String>,
    /// Why, for the audit log (every method, the default one too).
    #[arg(long, value_name = "TEXT")]
    reason: Option<String>,
    /// Carry it out. Methods A to C without it say what they would do; the
    /// default rollback reverts at once (`--dry-run` shows it first) and
    /// takes --yes as well, so a script may pass it to every rollback.
    #[arg(long, conflicts_with = "dry_run")]
    yes: bool,
    /// Method B: the backup to restore (default: the one the latest applied
    /// migration recorded).
    #[arg(long, value_name = "ID", requires = "method")]
    backup: Option<String>,
    /// Method B: finish a restore that was interrupted.
    #[arg(long, requires = "method")]
    resume: bool,
    /// Method B with a pgBackRest restore point: restore the whole cluster
    /// even though other databases in it changed since the point (their
    /// writes since are undone, kept in the pre-restore data directory).
    #[arg(long, requires = "method")]
    whole_cluster: bool,
}

/// `--method`: the runbook's rollback methods, checked by the parser (a
/// letter it does not know is a usage error listing the three).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
#[value(rename_all = "UPPER")]
enum MethodArg {
    /// Flags off, [hooks] after_kill.
    A,
    /// A, then a restore of the migration's backup.
    B,
    /// The full rollback: exports of what the release exposed, A, the downs.
    C,
}

impl From<MethodArg> for Method {
    fn from(m: MethodArg) -> Method {
        match m {
            MethodArg::A => Method::A,
            MethodArg::B => Method::B,
            MethodArg::C => Method::C,
        }
    }
}

/// Prints each step of a method on stderr (text output) and warnings always.
struct Steps {
    text: bool,
}

impl Observer for Steps {
    fn step(&mut self, _: Method, step: &Step) {
        if self.text {
            eprintln!("{}", render::step_line(step));
        }
    }

    fn warning(&mut self, text: &str) {
        eprintln!("warning: {text}");
    }
}

/// `rollback --method`: the runbook's methods after COMMIT.
fn method(args: Args, config: Option<&Path>, m: Method) -> anyhow::Result<ExitCode> {
    if m == Method::C {
        return full(args, config);
    }
    if args.to.is_some() || args.steps.is_some() {
        let does = if m == Method::A { "turns flags off" } else { "restores a backup" };
        return Err(super::UsageError(format!(
            "--to and --steps choose the migrations that the default rollback (no --method) or \
             method C reverts; method {m} {does} and reverts no migration"
        ))
        .into());
    }
    let (config, url) = super::target(config, &args.conn)?;
    let responder = config.responder(&url, None)?;
    let mut client = super::connect_session(&url, "backstop rollback")?;
    let flags = backstop_core::flags::list(&mut client)?;
    let target =
        respond::target(&flags, args.flag.clone(), args.release.as_deref(), m == Method::B)?;
    let affected = respond::plan::affected(&flags, target.as_ref());
    let restore_id = match m {
        Method::B => Some(respond::backup_to_restore(&mut client, args.backup.as_deref())?),
        _ => None,
    };
    if !args.yes {
        let store = backstop_core::backup::Store::new(&config.backup.dir);
        let point = restore_id.as_ref().and_then(|id| store.load(id).ok()?.restore_point);
        let restore = restore_id.as_deref().map(|backup| respond::plan::PlannedRestore {
            backup,
            point: point.as_ref().map(|p| p.name.as_str()),
        });
        let planned = (target.as_ref(), affected.as_slice());
        print(&respond::plan::method_ab(m, planned, &config.hooks, restore))?;
        return Ok(ExitCode::SUCCESS);
    }
    let reason = args.reason.unwrap_or_else(|| format!("backstop rollback --method {m}"));
    let mut steps = Steps { text: args.output.format == Format::Text };
    let carried = match restore_id {
        None => {
            let target = target.as_ref().expect("method A always has a target");
            responder.method_a(&mut client, target, &reason, &mut steps)?
        }
        Some(id) => {
            // Ctrl-C stops pg_restore; Backstop lives on to leave the
            // database as it was, or on record for --resume.
            super::restore::outlive_interrupts();
            responder.method_b(
                &mut client,
                target.as_ref(),
                Some(id),
                respond::RestoreRun { resume: args.resume, whole_cluster: args.whole_cluster },
                &reason,
                &mut steps,
            )?
        }
    };
    match args.output.format {
        Format::Json => print_json(
            &serde_json::json!({ "method": m.to_string(), "target": target, "steps": carried }),
        )?,
        Format::Text => print(&format!("✓ method {m} carried out\n"))?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `rollback --method C`: the full rollback, with its forensics.
fn full(args: Args, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let ctx = Context::load(config, &args.conn)?;
    let revert = revert_target(args.to.clone(), args.steps);
    let mut client = ctx.connect_session("backstop rollback --method C")?;
    let flags = backstop_core::flags::list(&mut client)?;
    let target = respond::target(&flags, args.flag.clone(), args.release.as_deref(), true)?;
    if !args.yes {
        let root = respond::forensics_root(ctx.config.path.as_deref());
        let plan = migrate::rollback(
            &mut client,
            &ctx.migrations,
            &ctx.settings,
            &revert,
            true,
            &mut Quiet,
        )?;
        let versions: Vec<String> = plan.groups.iter().flat_map(|g| g.versions.clone()).collect();
        print(&respond::plan::method_c(target.as_ref(), &versions, &root))?;
        return Ok(if versions.is_empty() { ExitCode::from(2) } else { ExitCode::SUCCESS });
    }
    let responder = ctx.config.responder(&ctx.url, Some(ctx.migrations.clone()))?;
    let reason = args.reason.unwrap_or_else(|| "backstop rollback --method C".into());
    let mut steps = Steps { text: args.output.format == Format::Text };
    let outcome = responder.method_c(&mut client, target.as_ref(), &revert, &reason, &mut steps)?;
    let written = "report.md and user_email.txt";
    match args.output.format {
        Format::Json => print_json(&serde_json::json!({
            "method": "C",
            "target": target,
            "reverted": outcome.reverted,
            "exposure": outcome.exposure,
            "forensics": outcome.forensics,
            "steps": outcome.steps,
            "not_verified": outcome.not_verified,
        }))?,
        Format::Text => {
            print(&format!(
                "✓ method C carried out: {} reverted; exports, manifest.json, {} in {}\n",
                outcome.reverted.join(", "),
                written,
                outcome.forensics.display()
            ))?;
            if let Some(why) = &outcome.not_verified {
                print(&format!("  not verified: {why}\n"))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The migrations a rollback reverts: those after `--to`, or the last `--steps` (default 1).
fn revert_target(to: Option<String>, steps: Option<usize>) -> RollbackTarget {
    match (to, steps) {
        (Some(v), _) if v == "start" => RollbackTarget::Start,
        (Some(v), _) => RollbackTarget::To(v),
        (None, n) => RollbackTarget::Steps(n.unwrap_or(1)),
    }
}

pub fn run(args: Args, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    if let Some(which) = args.method {
        return method(args, config, which.into());
    }
    let ctx = Context::load(config, &args.conn)?;
    let target = revert_target(args.to, args.steps);
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
