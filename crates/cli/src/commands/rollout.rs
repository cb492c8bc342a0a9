//! `backstop rollout`: the migrations carried to every database of
//! `[[targets]]`, wave by wave (`--resume`, `--undo`, `--dry-run`), and
//! `rollout status`. The plan, the gates, the halts and the records are
//! core's (`backstop_core::rollout`); this file renders them.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use backstop_core::migrator::FleetMigrator;
use backstop_core::rollout::{self, Happening, Plan, Record, Setup, TargetState};

use super::{print, print_json};
use crate::render::terminal_safe;
use crate::{Format, Output};

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    command: Option<Sub>,
    #[command(flatten)]
    output: Output,
    /// Go on with the latest rollout from where its records stand (after a
    /// halt, failed databases, or a run that was killed): the failed
    /// databases are tried again; none gets a migration twice.
    #[arg(long, conflicts_with = "undo")]
    resume: bool,
    /// Take every database that got the release back to the version it
    /// had before, newest wave first (its downs, or a restore where it has none).
    #[arg(long)]
    undo: bool,
    /// Show the plan (each wave's databases, URLs masked) and change nothing.
    #[arg(long, conflicts_with_all = ["resume", "undo"])]
    dry_run: bool,
    /// Expand each database instead of migrating it (`migrate --expand`,
    /// every gate), wave by wave with the bakes, then contract them all
    /// once the last wave baked; `--undo` drops the expands still open.
    #[arg(long, conflicts_with_all = ["resume", "undo"])]
    expand: bool,
    /// The schema whose tables the expands serve.
    #[arg(long, value_name = "SCHEMA", default_value = "public", requires = "expand")]
    schema: String,
}

#[derive(Debug, clap::Subcommand)]
enum Sub {
    /// The latest rollout: its waves, its databases' states, what to do next.
    Status(StatusArgs),
}

#[derive(Debug, clap::Args)]
struct StatusArgs {
    #[command(flatten)]
    output: Output,
}

/// Each happening as a line on stderr (text output only).
struct Lines {
    text: bool,
}

impl rollout::Observer for Lines {
    fn happening(&self, h: Happening<'_>) {
        if !self.text {
            return;
        }
        let line = match h {
            Happening::Planned { rollout, plan } => format!(
                "rollout {rollout}: {} database(s) in {} wave(s): {}",
                plan.waves.iter().map(|w| w.targets.len()).sum::<usize>(),
                plan.waves.len(),
                plan.waves
                    .iter()
                    .map(|w| format!("{} {}", terminal_safe(&w.name), w.targets.len()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Happening::Untaken { names } => format!(
                "note: no wave takes {} target(s): {}",
                names.len(),
                terminal_safe(&names.join(", "))
            ),
            Happening::WaveStarted { wave, databases, parallel } => format!(
                "wave {}: {databases} database(s), {parallel} at a time",
                terminal_safe(wave)
            ),
            Happening::Done { target, applied, took, .. } => match applied.len() {
                0 => format!("  ✓ {}: up to date", terminal_safe(target)),
                n => format!(
                    "  ✓ {}: {n} migration(s) applied ({})",
                    terminal_safe(target),
                    backstop_core::kit::duration::human(took)
                ),
            },
            Happening::Failed { target, error, .. } => {
                format!("  ✗ {}: {}", terminal_safe(target), terminal_safe(error))
            }
            Happening::Baking { wave, bake, triggers, databases } => format!(
                "wave {}: baking {} ({triggers} trigger(s), {databases} database(s))",
                terminal_safe(wave),
                backstop_core::kit::duration::human(bake)
            ),
            Happening::Baked { wave, verdict } => {
                format!("wave {}: bake {verdict}", terminal_safe(wave))
            }
            Happening::Halted { reason } => terminal_safe(reason).into_owned(),
            Happening::UndoStarted { wave, databases } => {
                format!("undo of wave {}: {databases} database(s)", terminal_safe(wave))
            }
            Happening::Reverted { target, undone } => format!(
                "  ↩ {}: {} reverted ({})",
                terminal_safe(target),
                undone.reverted.len(),
                undone.how
            ),
            Happening::UndoFailed { target, error } => {
                format!("  ✗ {}: {}", terminal_safe(target), terminal_safe(error))
            }
            Happening::Note(text) => format!("  note: {}", terminal_safe(text)),
        };
        eprintln!("{line}");
    }
}

pub fn run(args: Args, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let config = super::config(config)?;
    if let Some(Sub::Status(s)) = args.command {
        return status(&config.rollout, s.output.format);
    }
    let folder = config.migrations.load()?;
    let apply = FleetMigrator { config: &config, migrations: &folder.migrations };
    let format = args.output.format;
    let lines = Lines { text: format == Format::Text };
    let setup = Setup {
        config: &config.rollout,
        migrations: &folder.migrations,
        triggers: &config.triggers,
        decide: &config.decide,
        apply: &apply,
        observer: &lines,
        expand: args.expand.then_some(args.schema.as_str()),
    };
    if args.dry_run {
        let plan = rollout::dry_run(&setup)?;
        match format {
            Format::Json => print_json(&plan)?,
            Format::Text => print(&plan_text(&plan))?,
        }
        return Ok(ExitCode::SUCCESS);
    }
    let record = match (args.resume, args.undo) {
        (_, true) => rollout::undo(&setup)?,
        (true, false) => rollout::resume(&setup)?,
        (false, false) => rollout::start(&setup)?,
    };
    match format {
        Format::Json => print_json(&record)?,
        Format::Text => print(&record_text(&record))?,
    }
    Ok(if record.ok() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn status(config: &rollout::RolloutConfig, format: Format) -> anyhow::Result<ExitCode> {
    let record = rollout::status(config)?;
    match (format, &record) {
        (Format::Json, _) => print_json(&record)?,
        (Format::Text, None) => print("no rollout has run against this control database\n")?,
        (Format::Text, Some(r)) => print(&record_text(r))?,
    }
    Ok(ExitCode::SUCCESS)
}

/// The plan of a dry run, for people.
fn plan_text(plan: &Plan) -> String {
    let mut out = String::new();
    for w in &plan.waves {
        let bake = match w.bake.is_zero() {
            true => String::new(),
            false => format!(", bake {}", backstop_core::kit::duration::human(w.bake)),
        };
        let _ = writeln!(
            out,
            "wave {}: {} database(s), {} at a time, halt after {} failure(s){bake}",
            terminal_safe(&w.name),
            w.targets.len(),
            w.parallel,
            w.halt_after
        );
        for &i in &w.targets {
            let t = &plan.targets[i];
            let _ = writeln!(
                out,
                "  {}  {}  ({})",
                terminal_safe(&t.name),
                terminal_safe(&t.shown_url()),
                t.kind.as_str()
            );
        }
    }
    if !plan.untaken.is_empty() {
        let _ = writeln!(out, "no wave takes: {}", terminal_safe(&plan.untaken.join(", ")));
    }
    out.push_str("nothing changed (dry run)\n");
    out
}

/// A rollout as recorded, for people: the waves' counts, the databases
/// that failed, why it stands where it does and what to do next.
fn record_text(r: &Record) -> String {
    let mut out = String::new();
    let when = r.rollout.started_at.format("%Y-%m-%d %H:%M:%S UTC");
    let _ = writeln!(
        out,
        "rollout {}: {} (started {when} by {})",
        r.rollout.id, r.rollout.state, r.rollout.started_by
    );
    for w in &r.waves {
        let counts: Vec<String> = w.counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
        let _ = writeln!(
            out,
            "  wave {:<12} {:<8} {}",
            terminal_safe(&w.wave.name),
            w.wave.state.as_str(),
            counts.join(", ")
        );
    }
    let failed: Vec<_> = r.targets.iter().filter(|t| t.state == TargetState::Failed).collect();
    if !failed.is_empty() {
        let _ = writeln!(out, "failed:");
        for t in failed {
            let error = t.error.as_deref().unwrap_or("");
            let _ = writeln!(out, "  {}  {}", terminal_safe(&t.name), terminal_safe(error));
        }
    }
    let undo_failed: Vec<_> = r.targets.iter().filter(|t| t.undo_error.is_some()).collect();
    if !undo_failed.is_empty() {
        let _ = writeln!(out, "not taken back:");
        for t in undo_failed {
            let error = t.undo_error.as_deref().unwrap_or("");
            let _ = writeln!(out, "  {}  {}", terminal_safe(&t.name), terminal_safe(error));
        }
    }
    if let Some(reason) = &r.rollout.reason {
        let _ = writeln!(out, "{}", terminal_safe(reason));
    }
    if let Some(next) = &r.next {
        let _ = writeln!(out, "next: {next}");
    }
    out
}
