//! `backstop backup drill`: the runbook played through on a throwaway copy of
//! what production would fall back on, timed against `[drill]`, recorded
//! in the database; `--list` shows the drills, `--due` fails when none
//! passed recently enough.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use backstop_core::drill::{self, Note, Observer, Options};

use super::{print, print_json, Context};
use crate::render::{step_line, terminal_safe};
use crate::Connection;

/// How a drill's report or the list is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DrillFormat {
    /// For people.
    Text,
    /// For programs: one JSON document on stdout.
    Json,
    /// The runbook's "Last tested" section.
    Markdown,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    conn: Connection,
    /// Output format.
    #[arg(long, value_enum, default_value_t = DrillFormat::Text)]
    format: DrillFormat,
    /// The backup to drill on: an id from `backstop backup list`, or
    /// `latest` (the newest verified backup of this database).
    #[arg(long, value_name = "ID|latest", default_value = "latest", value_parser = backup_id)]
    from_backup: String,
    /// The release whose flags method A turns off (default: the one with
    /// flags on, else the one declared last in [[flags]]).
    #[arg(long, value_name = "NAME", value_parser = super::release_name)]
    release: Option<String>,
    /// List the drills recorded in the database, newest first.
    #[arg(long, conflicts_with_all = ["due", "release"])]
    list: bool,
    /// Exit 1 when no drill passed within [drill] every, saying when the last ran.
    #[arg(long, conflicts_with_all = ["list", "release"])]
    due: bool,
}

fn backup_id(value: &str) -> Result<String, String> {
    if value.trim().is_empty() {
        return Err("it is blank; write a backup id from `backstop backup list`, or latest".into());
    }
    Ok(value.to_string())
}

/// Says what the drill does as it goes, on stderr (text output only;
/// warnings always).
struct Progress {
    text: bool,
}

impl Observer for Progress {
    fn note(&mut self, note: Note<'_>) {
        match note {
            Note::Warning(w) => eprintln!("warning: {}", terminal_safe(w)),
            _ if !self.text => {}
            Note::Waiting(holder) => {
                eprintln!(
                    "waiting for the drill lock: another drill runs ({})",
                    terminal_safe(holder)
                )
            }
            Note::Cleaned(c) => eprintln!("cleaned: {}", terminal_safe(c)),
            Note::Starting(step) => eprintln!("drill: {step}…"),
            Note::Part(s) => eprintln!("    {}", step_line(s)),
            Note::Finished(s) => eprintln!(
                "{} {} ({})",
                s.outcome.mark(),
                s.name,
                backstop_core::kit::duration::human(std::time::Duration::from_millis(s.took_ms))
            ),
        }
    }
}

pub fn run(args: Args, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    if args.list {
        return list(&args, config);
    }
    if args.due {
        return due(&args, config);
    }
    let ctx = Context::load(config, &args.conn)?;
    // Its lock and its backup need one session.
    drop(ctx.connect_session("backstop drill")?);
    let setup = ctx.config.drill(&ctx.url, ctx.migrations.clone())?;
    let options = Options { from_backup: args.from_backup.clone(), release: args.release.clone() };
    let mut progress = Progress { text: args.format == DrillFormat::Text };
    let drilled = drill::run(&setup, &options, &mut progress)?;
    match args.format {
        DrillFormat::Json => print_json(&drilled)?,
        DrillFormat::Markdown => print(&drilled.markdown())?,
        DrillFormat::Text => {
            let mut out: String =
                drilled.text().lines().map(|l| format!("{}\n", terminal_safe(l))).collect();
            if !drilled.notified.is_empty() {
                let _ = writeln!(out, "report sent to the team: {}", drilled.notified.join(", "));
            }
            print(&out)?
        }
    }
    Ok(if drilled.passed { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// `drill --list`.
fn list(args: &Args, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let (_, url) = super::target(config, &args.conn)?;
    let mut client = backstop_core::pg::connect(&url, "backstop drill")?;
    let drills = drill::history(&mut client, 100)?;
    match args.format {
        DrillFormat::Json => print_json(&drills)?,
        DrillFormat::Markdown => {
            let mut out = String::from(
                "| Drill | Started | Outcome | Took | Release | Backup | By |\n|---|---|---|---|---|---|---|\n",
            );
            for d in &drills {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} | {} |",
                    d.id,
                    d.started_at.format("%Y-%m-%d %H:%M UTC"),
                    d.outcome,
                    took(d),
                    backstop_core::kit::markdown::cell(d.release.as_deref().unwrap_or("–")),
                    backstop_core::kit::markdown::cell(d.backup_id.as_deref().unwrap_or("–")),
                    backstop_core::kit::markdown::cell(&d.by)
                );
            }
            print(&out)?
        }
        DrillFormat::Text if drills.is_empty() => {
            print("no drill recorded yet; run `backstop backup drill`\n")?
        }
        DrillFormat::Text => {
            let mut out = String::new();
            for d in &drills {
                let at = d.step.as_deref().map(|s| format!(" at {s}")).unwrap_or_default();
                let _ = writeln!(
                    out,
                    "{:>4}  {}  {:<11} {:>8}  release {}  backup {}  by {}",
                    d.id,
                    d.started_at.format("%Y-%m-%d %H:%M UTC"),
                    format!(
                        "{}{}",
                        d.outcome,
                        if d.outcome == "interrupted" { at } else { String::new() }
                    ),
                    took(d),
                    terminal_safe(d.release.as_deref().unwrap_or("-")),
                    terminal_safe(d.backup_id.as_deref().unwrap_or("-")),
                    terminal_safe(&d.by)
                );
            }
            print(&out)?
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn took(d: &backstop_core::schema::drills::Record) -> String {
    d.duration_ms
        .map(|ms| backstop_core::kit::duration::human(std::time::Duration::from_millis(ms as u64)))
        .unwrap_or_else(|| "-".into())
}

/// `drill --due`.
fn due(args: &Args, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let (config, url) = super::target(config, &args.conn)?;
    let mut client = backstop_core::pg::connect(&url, "backstop drill")?;
    let now = chrono::Utc::now();
    let due = drill::due(&mut client, config.drill.every, now)?;
    match args.format {
        DrillFormat::Json => print_json(&due)?,
        DrillFormat::Text | DrillFormat::Markdown => {
            print(&format!("{}\n", terminal_safe(&due.text(now))))?
        }
    }
    Ok(if due.overdue { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
