//! `backstop migrate`: apply pending migrations under the guards.

use std::path::Path;
use std::process::ExitCode;

use backstop_core::check::Assessment;
use backstop_core::migrate::{MigrateOptions, Progress, Quiet};
use backstop_core::migrator::{self, Step, Stepped, Waivers, Watchers};
use backstop_core::verify::Phase;

use super::verify;
use super::{print, print_json, Context};
use crate::render::{self, StderrProgress};
use crate::{Connection, Format, Output};

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("waiver").multiple(true)
    .args(["accept_risk", "no_backup", "skip_rehearsal"])))]
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
    /// (repeatable); recorded in the audit log with --reason.
    #[arg(long = "accept-risk", value_name = "CODE", value_parser = super::check::parse_code)]
    accept_risk: Vec<backstop_lint::Code>,
    /// Use this backup (recent and verified) instead of taking one.
    #[arg(long, value_name = "ID", conflicts_with = "no_backup")]
    backup: Option<String>,
    /// Migrate without a backup; say why with --reason (the audit log
    /// keeps it; `--no-backup REASON` says it too).
    #[arg(long, value_name = "REASON", num_args = 0..=1, default_missing_value = "")]
    no_backup: Option<String>,
    /// Apply pending migrations older than the latest applied one (merged
    /// late from a branch); without it they are refused.
    #[arg(long)]
    allow_out_of_order: bool,
    /// Apply without the passing rehearsal `[rehearse] required` asks for;
    /// say why with --reason (recorded in the audit log; `--skip-rehearsal
    /// REASON` says it too).
    #[arg(long, value_name = "REASON", num_args = 0..=1, default_missing_value = "")]
    skip_rehearsal: Option<String>,
    /// Why the waivers of this run (--accept-risk, --no-backup,
    /// --skip-rehearsal) are taken: the audit log keeps it with each.
    #[arg(long, value_name = "TEXT", requires = "waiver")]
    reason: Option<String>,
    /// Serve the pending migrations as a new shape (a schema of views,
    /// `<schema>_<version>`) beside the old one, untouched; see docs/expand.md.
    #[arg(long, conflicts_with_all = ["contract", "to", "each", "dry_run"])]
    expand: bool,
    /// Make the expand in progress the real shape: renames run, the views go,
    /// the migrations are recorded as applied.
    #[arg(long, conflicts_with_all = ["to", "each", "dry_run"])]
    contract: bool,
    /// The schema whose tables an expand serves in a new shape.
    #[arg(long, value_name = "SCHEMA", default_value = "public", requires = "expand")]
    schema: String,
}

/// The waivers asked for, each with its reason: its own value where the
/// old form gave one (`--no-backup REASON`), else `--reason`. A waiver
/// that must say why and cannot is a usage error before anything runs.
fn waivers_of(args: &Args) -> Result<Waivers, super::UsageError> {
    let reason = args.reason.as_deref().map(str::trim).filter(|r| !r.is_empty());
    let why = |own: &Option<String>, flag: &str| match own.as_deref().map(str::trim) {
        None => Ok(None),
        Some("") => reason.map(|r| Some(r.to_string())).ok_or_else(|| {
            super::UsageError(format!(
                "{flag} needs a reason for the audit log: add --reason TEXT, e.g. {flag} \
                 --reason \"empty database\""
            ))
        }),
        Some(own) => Ok(Some(own.to_string())),
    };
    Ok(Waivers {
        accept_risk: args.accept_risk.clone(),
        backup: args.backup.clone(),
        no_backup: why(&args.no_backup, "--no-backup")?,
        skip_rehearsal: why(&args.skip_rehearsal, "--skip-rehearsal")?,
        accept_reason: reason.filter(|_| !args.accept_risk.is_empty()).map(str::to_string),
    })
}

pub fn run(args: Args, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let waivers = waivers_of(&args)?;
    let ctx = Context::load(config, &args.conn)?;
    let options = MigrateOptions {
        to: args.to,
        each: args.each,
        dry_run: args.dry_run,
        allow_out_of_order: args.allow_out_of_order,
        all_or_nothing: false,
    };
    let text = args.output.format == Format::Text;
    let mut apply: Box<dyn Progress> = match args.output.format {
        Format::Text => Box::new(StderrProgress),
        Format::Json => Box::new(Quiet),
    };
    let mut backup = super::backup::Bar::new(args.output.format);
    let accepted = args.accept_risk;
    let mut note = |line: &str| {
        if text {
            eprintln!("{line}");
        }
    };
    if !accepted.is_empty() && waivers.accept_reason.is_none() {
        note(
            "note: say why the risks are accepted with --reason TEXT (the audit log keeps it \
             beside them); a later release will ask for it",
        );
    }
    let watchers = Watchers {
        assessment: Box::new(move |a: &Assessment| {
            if text {
                eprint!("{}", super::check::gate_summary(a, &accepted));
            }
        }),
        backup: &mut backup,
        apply: apply.as_mut(),
        note: &mut note,
    };
    let mut client =
        if args.dry_run { ctx.connect()? } else { ctx.connect_session("backstop migrate")? };
    if args.expand || args.contract {
        let step = if args.expand { Step::Expand { schema: &args.schema } } else { Step::Contract };
        let stepped = migrator::expand_step(
            &mut client,
            &ctx.config,
            &ctx.url,
            &ctx.migrations,
            step,
            waivers,
            watchers,
        )?;
        return stepped_out(&stepped, step, args.output.format);
    }
    let outcome = migrator::migrate(
        &mut client,
        &ctx.config,
        &ctx.url,
        &ctx.migrations,
        &options,
        waivers,
        watchers,
    )?;
    let (report, verified) = (&outcome.report, outcome.verified.as_ref());
    match args.output.format {
        Format::Json => print_json(&verify::with_suite(report, verified)?)?,
        Format::Text => {
            print(&render::report(
                report,
                "applied",
                "nothing to migrate: the database is up to date",
            ))?;
            if let Some(suite) = verified {
                print(&verify::after_text(suite, Phase::Migrate, report))?;
            }
        }
    }
    Ok(if outcome.failed() { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// What `--expand` or `--contract` did, and the verify suite after it.
fn stepped_out(stepped: &Stepped, step: Step<'_>, format: Format) -> anyhow::Result<ExitCode> {
    let what = if step == Step::Contract { "contract" } else { "expand" };
    let failed = stepped.verified.as_ref().is_some_and(|s| !s.ok());
    match format {
        Format::Json => {
            let mut value = serde_json::to_value(&stepped.done)?;
            if let Some(suite) = &stepped.verified {
                value["verify"] = serde_json::to_value(suite)?;
            }
            print_json(&value)?
        }
        Format::Text => {
            print(&render::expanded(&stepped.done, what))?;
            if let Some(suite) = &stepped.verified {
                let mut out = format!("verifying after the {what}:\n{}", suite.text());
                if failed {
                    out.push_str(match step {
                        Step::Expand { .. } => {
                            "✗ expanded, verification failed: undo with `backstop rollback` \
                             (drops the new shape, every row stays), or fix forward and run \
                             `backstop verify` again\n"
                        }
                        Step::Contract => {
                            "✗ contracted, verification failed: the new shape is the real one; \
                             fix forward and run `backstop verify` again, or `backstop backup restore` \
                             the backup taken before the contract\n"
                        }
                    });
                }
                print(&out)?;
            }
        }
    }
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
