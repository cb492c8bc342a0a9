//! `backstop respond method A|B|C`: the runbook's rollback methods carried
//! out after COMMIT: A turns a release's flags off, B adds a restore of the
//! migration's backup, C exports what the release exposed, then A and the
//! downs. `rollback --method`, its old form, still answers.

use std::path::Path;
use std::process::ExitCode;

use backstop_core::decide::Method;
use backstop_core::respond::{self, Observer, Step};

use super::{print, print_json, Context};
use crate::render;
use crate::{Connection, Format, Output};

/// `backstop respond method`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    conn: Connection,
    #[command(flatten)]
    output: Output,
    /// The method: A turns the release's flags off and runs [hooks]
    /// after_kill; B adds a restore of the migration's backup; C exports
    /// what the release exposed, then A and the down migrations.
    #[arg(value_enum, ignore_case = true)]
    method: MethodArg,
    /// Method C: revert everything applied after VERSION (default: the last migration).
    #[arg(long, value_name = "VERSION", conflicts_with = "steps")]
    to: Option<String>,
    /// Method C: revert the last N applied migrations.
    #[arg(long, value_name = "N")]
    steps: Option<usize>,
    /// The release whose flags go off (default: the one release with flags on).
    #[arg(long, value_name = "RELEASE", conflicts_with = "flag", value_parser = super::release_name)]
    release: Option<String>,
    /// Turn off only this flag.
    #[arg(long, value_name = "KEY", value_parser = super::flag_key)]
    flag: Option<String>,
    /// Why, for the audit log.
    #[arg(long, value_name = "TEXT")]
    reason: Option<String>,
    /// Carry it out (without it: say what it would do, and change nothing).
    #[arg(long, conflicts_with = "dry_run")]
    yes: bool,
    /// Say what it would do and change nothing (as without --yes).
    #[arg(long)]
    dry_run: bool,
    /// Method B: the backup to restore (default: the one the latest applied
    /// migration recorded).
    #[arg(long, value_name = "ID")]
    backup: Option<String>,
    /// Method B: finish a restore that was interrupted.
    #[arg(long)]
    resume: bool,
    /// Method B with a pgBackRest restore point: restore the whole cluster
    /// even though other databases in it changed since the point (their
    /// writes since are undone, kept in the pre-restore data directory).
    #[arg(long)]
    whole_cluster: bool,
}

impl From<Args> for Request {
    fn from(a: Args) -> Request {
        Request {
            conn: a.conn,
            format: a.output.format,
            method: a.method.into(),
            to: a.to,
            steps: a.steps,
            release: a.release,
            flag: a.flag,
            reason: a.reason,
            yes: a.yes && !a.dry_run,
            backup: a.backup,
            resume: a.resume,
            whole_cluster: a.whole_cluster,
        }
    }
}

/// A method asked for, by `respond method` or `rollback --method`.
pub struct Request {
    pub conn: Connection,
    pub format: Format,
    pub method: Method,
    pub to: Option<String>,
    pub steps: Option<usize>,
    pub release: Option<String>,
    pub flag: Option<String>,
    pub reason: Option<String>,
    pub yes: bool,
    pub backup: Option<String>,
    pub resume: bool,
    pub whole_cluster: bool,
}

/// `--method`: the runbook's rollback methods, checked by the parser (a
/// letter it does not know is a usage error listing the three).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
#[value(rename_all = "UPPER")]
pub enum MethodArg {
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

/// The runbook's methods after COMMIT.
pub fn run(args: Request, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let m = args.method;
    if m == Method::C {
        return full(args, config);
    }
    if args.to.is_some() || args.steps.is_some() {
        let does = if m == Method::A { "turns flags off" } else { "restores a backup" };
        return Err(super::UsageError(format!(
            "--to and --steps choose the migrations that method C reverts (or `backstop \
             rollback`); method {m} {does} and reverts no migration"
        ))
        .into());
    }
    let (config, url) = super::target(config, &args.conn)?;
    let responder = config.responder(&url, None)?;
    let mut client = super::connect_session(&url, &format!("backstop respond method {m}"))?;
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
    let reason = args.reason.unwrap_or_else(|| format!("backstop respond method {m}"));
    let mut steps = Steps { text: args.format == Format::Text };
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
    match args.format {
        Format::Json => print_json(
            &serde_json::json!({ "method": m.to_string(), "target": target, "steps": carried }),
        )?,
        Format::Text => print(&format!("✓ method {m} carried out\n"))?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Method C: the full rollback, with its forensics.
fn full(args: Request, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let ctx = Context::load(config, &args.conn)?;
    let revert = super::revert_target(args.to.clone(), args.steps);
    let mut client = ctx.connect_session("backstop respond method C")?;
    let flags = backstop_core::flags::list(&mut client)?;
    let target = respond::target(&flags, args.flag.clone(), args.release.as_deref(), true)?;
    if !args.yes {
        let root = respond::forensics_root(ctx.config.path.as_deref());
        let reverts = respond::reverts(&mut client, &ctx.migrations, &ctx.settings, &revert)?;
        print(&respond::plan::method_c(target.as_ref(), &reverts, &root))?;
        let none = reverts.versions.is_empty();
        return Ok(if none { ExitCode::from(2) } else { ExitCode::SUCCESS });
    }
    let responder = ctx.config.responder(&ctx.url, Some(ctx.migrations.clone()))?;
    let reason = args.reason.unwrap_or_else(|| "backstop respond method C".into());
    let mut steps = Steps { text: args.format == Format::Text };
    let outcome = responder.method_c(&mut client, target.as_ref(), &revert, &reason, &mut steps)?;
    let written = "report.md and user_email.txt";
    match args.format {
        Format::Json => print_json(&serde_json::json!({
            "method": "C",
            "target": target,
            "reverted": outcome.reverted,
            "exposure": outcome.exposure,
            "forensics": outcome.forensics,
            "kept": outcome.kept,
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
