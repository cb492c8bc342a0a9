//! `backstop flags ramp RELEASE --steps 1,5,25,50,100 --every 10m`: the
//! release's share raised step by step, the `[[triggers]]` judged between
//! steps, the release killed at a breach; `--status` shows where a ramp
//! is, `--abort` stops it where it is. Run again after it was stopped, it
//! carries the ramp on from its recorded step. The rules are core's
//! (`flags::ramp`, `watch`); this parses and renders.

use std::fmt::Write as _;
use std::io::IsTerminal as _;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use backstop_core::flags::ramp::{self, Begun, Plan, RampError, RampState, RampStatus};
use backstop_core::watch::{RampRun, Watch};

use super::watch::{tell, Auto, Board};
use super::{print, print_json, UsageError};
use crate::render::{label, next_step, terminal_safe};
use crate::{Connection, Format, Output};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The release whose flags are ramped.
    #[arg(value_parser = super::release_name)]
    release: String,
    /// The shares in per cent, rising, e.g. 1,5,25,50,100.
    #[arg(long, value_name = "SHARES", requires = "every")]
    steps: Option<String>,
    /// The least time between two steps, e.g. 10m (the triggers must be clear to move on).
    #[arg(long, value_name = "DURATION", requires = "steps")]
    every: Option<String>,
    /// Why, for the audit log (to start a ramp, or to abort one).
    #[arg(long, value_name = "TEXT", default_value = "")]
    reason: String,
    /// Show the ramp: its step, when the next is due, the triggers' latest judgement.
    #[arg(long, conflicts_with_all = ["steps", "abort"])]
    status: bool,
    /// Stop the running ramp where it is (the share served stays; `flags kill` turns it off).
    #[arg(long, conflicts_with = "steps")]
    abort: bool,
    /// After the ramp's kill at a breach, carry out the escalation up to
    /// this method by itself (the kill itself, method A, is always carried out).
    #[arg(long, value_enum, default_value_t = Auto::A)]
    auto: Auto,
    #[command(flatten)]
    conn: Connection,
    #[command(flatten)]
    output: Output,
}

pub fn run(args: Args, config_path: Option<&Path>) -> anyhow::Result<ExitCode> {
    let (config, url) = super::target(config_path, &args.conn)?;
    let actor = backstop_core::schema::actor();
    if args.status {
        let mut client = backstop_core::pg::connect(&url, "backstop flags ramp")?;
        let Some(status) = ramp::status(&mut client, &args.release)? else {
            return Err(RampError::NoRamp { release: args.release }.into());
        };
        match args.output.format {
            Format::Json => print_json(&status)?,
            Format::Text => print(&status_text(&status))?,
        }
        return Ok(ExitCode::SUCCESS);
    }
    if args.abort {
        let mut client = backstop_core::pg::connect(&url, "backstop flags ramp")?;
        let r = ramp::abort(&mut client, &args.release, &actor, &args.reason)?;
        match args.output.format {
            Format::Json => print_json(&r)?,
            Format::Text => print(&format!(
                "ramp of {} aborted at {}%: the share stays; `backstop flags kill --release {}` turns it off\n",
                terminal_safe(&r.release),
                r.share(),
                terminal_safe(&r.release)
            ))?,
        }
        return Ok(ExitCode::SUCCESS);
    }
    // Everything is checked before the database is touched.
    let plan = match (&args.steps, &args.every) {
        (Some(steps), Some(every)) => Some(Plan::parse(steps, every)?),
        _ => None,
    };
    if config.triggers.is_empty() {
        return Err(RampError::NoTriggers.into());
    }
    let responder = config.responder(&url, None)?;
    if args.auto >= Auto::C {
        return Err(UsageError(
            "--auto C reverts migrations, which a ramp does not read; run `backstop respond watch --auto C` beside it".into(),
        )
        .into());
    }
    let mut client = backstop_core::pg::connect(&url, "backstop flags ramp")?;
    let by = format!("{actor} pid {}", std::process::id());
    let begun = ramp::begin(&mut client, &args.release, plan.as_ref(), &by, &args.reason)?;
    let text = args.output.format == Format::Text;
    let mut watcher = Watch::new(
        config.triggers.clone(),
        config.decide.clone(),
        &url,
        args.auto.into(),
        Some(args.release.clone()),
    );
    let board = Board::new(text && std::io::stdout().is_terminal(), &watcher.names());
    match args.output.format {
        Format::Text => board.say(&begun_text(&begun))?,
        Format::Json => {
            let news = match begun {
                Begun::Started(_) => "begun",
                Begun::Resumed(_) => "resumed",
            };
            let mut line = serde_json::to_value(begun.ramp())?;
            line["news"] = serde_json::json!(news);
            print(&format!("{line}\n"))?;
        }
    }
    let r = begun.ramp().clone();
    if r.state == RampState::Done {
        return Ok(ExitCode::SUCCESS);
    }
    watcher = watcher.carrying(r);
    loop {
        let mut failed: anyhow::Result<()> = Ok(());
        let round = watcher.round(&mut client, &responder, &mut |h| {
            if failed.is_ok() {
                failed = tell(&board, args.output.format, h);
            }
        })?;
        failed?;
        match watcher.ramp_run(&args.release, &round) {
            RampRun::Going => {}
            RampRun::Done(_) => return Ok(ExitCode::SUCCESS),
            RampRun::Stopped(r) => {
                if text {
                    board.say(&format!(
                        "the ramp of {} stopped at {}% ({}), short of its last step: {}\n",
                        terminal_safe(&r.release),
                        r.share(),
                        label(&r.state),
                        terminal_safe(r.end_note.as_deref().unwrap_or(""))
                    ))?;
                }
                return Ok(ExitCode::from(1));
            }
            RampRun::Lost => {
                return Err(UsageError(format!(
                    "the ramp of {} is no longer carried on here; `backstop flags ramp {} --status` shows it",
                    args.release, args.release
                ))
                .into())
            }
        }
        std::thread::sleep(
            watcher
                .next_due()
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(50)),
        );
    }
}

fn begun_text(begun: &Begun) -> String {
    let r = begun.ramp();
    let next =
        next_step(r).map(|n| format!("; next {n} if the triggers are clear")).unwrap_or_default();
    let verb = match begun {
        Begun::Started(_) => "begun",
        Begun::Resumed(_) => "carried on",
    };
    format!(
        "ramp of {} {verb}: {} every {}; {}% served (step {} of {}){next}\n",
        terminal_safe(&r.release),
        r.path(),
        backstop_core::kit::duration::human(r.every()),
        r.share(),
        r.step + 1,
        r.steps.len()
    )
}

/// `flags ramp --status` for people.
fn status_text(s: &RampStatus) -> String {
    let r = &s.ramp;
    let when = |at: chrono::DateTime<chrono::Utc>| at.format("%Y-%m-%d %H:%M:%S UTC").to_string();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "ramp {} of release {}: {}",
        r.id,
        terminal_safe(&r.release),
        label(&r.state)
    );
    let _ = writeln!(
        out,
        "  steps    {}, every {}",
        r.path(),
        backstop_core::kit::duration::human(r.every())
    );
    let _ = writeln!(
        out,
        "  step     {} of {}: {}% since {}",
        r.step + 1,
        r.steps.len(),
        s.share,
        when(r.step_at)
    );
    if r.state == RampState::Running {
        match (s.next_share, r.next_at) {
            (Some(share), Some(at)) => {
                let wait = r.due_in().filter(|d| !d.is_zero()).map_or_else(
                    || "due now".to_string(),
                    |d| format!("in {}", backstop_core::kit::duration::human(d)),
                );
                let _ = writeln!(
                    out,
                    "  next     {share}% at {} ({wait}), when the triggers are clear",
                    when(at)
                );
            }
            _ => {
                let _ = writeln!(out, "  next     none: this is its last step");
            }
        }
        let carrier = if s.carried {
            format!("by {}", terminal_safe(r.driven_by.as_deref().unwrap_or("a process")))
        } else {
            format!(
                "by no process now: `backstop flags ramp {0}` or `backstop respond watch` carries it on from this step",
                terminal_safe(&r.release)
            )
        };
        let _ = writeln!(out, "  carried  {carrier}");
    }
    let _ = writeln!(
        out,
        "  started  {} by {}: {}",
        when(r.started_at),
        terminal_safe(&r.started_by),
        terminal_safe(&r.reason)
    );
    if let Some(at) = r.ended_at {
        let _ = writeln!(
            out,
            "  ended    {} by {}: {}",
            when(at),
            terminal_safe(r.ended_by.as_deref().unwrap_or("?")),
            terminal_safe(r.end_note.as_deref().unwrap_or(""))
        );
    }
    evidence(&mut out, s);
    out
}

/// The triggers' latest judgement of the ramp, trigger by trigger.
fn evidence(out: &mut String, s: &RampStatus) {
    let (Some(at), Some(j)) = (s.ramp.judged_at, &s.ramp.judgement) else {
        let _ = writeln!(out, "  judged   not yet");
        return;
    };
    let text = |v: &serde_json::Value| terminal_safe(v.as_str().unwrap_or("")).into_owned();
    let _ = writeln!(
        out,
        "  judged   {}: {} ({}): {}",
        at.format("%Y-%m-%d %H:%M:%S UTC"),
        text(&j["verdict"]).to_uppercase(),
        text(&j["judged"]),
        text(&j["reason"])
    );
    let rows = j["evidence"].as_array().cloned().unwrap_or_default();
    let width = rows.iter().map(|e| text(&e["trigger"]).chars().count()).max().unwrap_or(0);
    for e in &rows {
        let value = e["value"].as_f64().map_or_else(|| "no value".to_string(), |v| v.to_string());
        let _ = writeln!(
            out,
            "    {:width$}  {:<12}  {:>10}  {}",
            text(&e["trigger"]),
            text(&e["state"]),
            value,
            text(&e["rule"])
        );
    }
}
