//! `backstop respond watch`: samples the `[[triggers]]` on their intervals, shows
//! each sample (on a terminal, in a table redrawn in place), decides with
//! the same code as `backstop respond decide`, records every decision with its
//! evidence, and with `--auto` carries out the methods up to the one it
//! names (A, B or C) by itself; above what `--auto` allows it prints the
//! command to run.

use std::io::IsTerminal as _;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use backstop_core::decide::sample::Reading;
use backstop_core::decide::{Decision, Method};
use backstop_core::watch::{self, Happening, Watch};

use super::{print, UsageError};
use crate::render::{label, terminal_safe};
use crate::{Connection, Format, Output};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Auto {
    /// Decide and say; carry out nothing.
    None,
    /// Carry out method A (flags off) by itself.
    #[value(name = "A")]
    A,
    #[value(name = "B")]
    B,
    #[value(name = "C")]
    C,
}

impl From<Auto> for watch::Auto {
    fn from(a: Auto) -> Self {
        match a {
            Auto::None => watch::Auto::None,
            Auto::A => watch::Auto::A,
            Auto::B => watch::Auto::B,
            Auto::C => watch::Auto::C,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    conn: Connection,
    /// Stop after this long (default: until interrupted).
    #[arg(long = "for", value_name = "DURATION", value_parser = humantime::parse_duration)]
    for_: Option<Duration>,
    /// Carry out methods up to this one by itself.
    #[arg(long, value_enum, default_value_t = Auto::None)]
    auto: Auto,
    /// The release method A turns off (default: the one release with flags on).
    #[arg(long, value_name = "RELEASE", value_parser = super::release_name)]
    release: Option<String>,
    /// Let method B restore a pgBackRest restore point even when other
    /// databases of the cluster changed since it (their writes are undone,
    /// and kept in the replaced data directory).
    #[arg(long)]
    whole_cluster: bool,
    /// One round: sample every trigger once, decide, act, and exit
    /// (exit 1 when a method is called for and not carried out).
    #[arg(long)]
    once: bool,
    #[command(flatten)]
    output: Output,
}

fn sample_line(name: &str, r: &Reading) -> String {
    let at = chrono::DateTime::from_timestamp_millis((r.sample.t * 1000.0) as i64)
        .map(|t| t.format("%H:%M:%S").to_string())
        .unwrap_or_default();
    match (&r.sample.value, &r.error) {
        (Some(v), _) => format!("{at}  {} = {v}\n", terminal_safe(name)),
        (None, Some(e)) => {
            format!("{at}  {}: no value: {}\n", terminal_safe(name), terminal_safe(e))
        }
        (None, None) => format!("{at}  {}: no value\n", terminal_safe(name)),
    }
}

/// Where watch writes. On a terminal: a table redrawn in place, a line
/// per trigger (its latest value, rule and state) and one for the
/// verdict, with what happens (decisions, steps) printed above it.
/// Elsewhere: plain lines, one per sample too.
pub struct Board {
    live: Option<Live>,
}

/// The table on a terminal.
struct Live {
    multi: MultiProgress,
    /// Each trigger's name and line.
    triggers: Vec<(String, ProgressBar)>,
    verdict: ProgressBar,
}

impl Board {
    pub fn new(on: bool, names: &[&str]) -> Board {
        let live = on.then(|| {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stdout());
            let style = ProgressStyle::with_template("{msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
            let line = |text: String| {
                let bar = multi.add(ProgressBar::new_spinner().with_style(style.clone()));
                bar.set_message(text);
                bar
            };
            let triggers = names
                .iter()
                .map(|n| (n.to_string(), line(format!("  {}  …", terminal_safe(n)))))
                .collect();
            let verdict = line("  verdict: waiting for the first samples".into());
            Live { multi, triggers, verdict }
        });
        Board { live }
    }

    /// Prints `text` (whole lines): above the table on a terminal.
    pub fn say(&self, text: &str) -> anyhow::Result<()> {
        match &self.live {
            Some(live) => {
                for line in text.trim_end_matches('\n').split('\n') {
                    live.multi.println(line).context("writing to stdout")?;
                }
                Ok(())
            }
            None => print(text),
        }
    }

    /// A sample as it is taken: a line of its own, unless the table shows it.
    fn sample(&self, name: &str, r: &Reading) -> anyhow::Result<()> {
        if self.live.is_none() {
            print(&sample_line(name, r))?;
        }
        Ok(())
    }

    /// Redraws the table from `d`'s evidence.
    fn show(&self, d: &Decision) {
        let Some(live) = &self.live else { return };
        let width = live.triggers.iter().map(|(n, _)| n.chars().count()).max().unwrap_or(0);
        for (name, bar) in &live.triggers {
            let Some(e) = d.evidence.iter().find(|e| e.trigger == *name) else { continue };
            let value = e
                .samples
                .last()
                .and_then(|s| s.value)
                .map_or_else(|| "no value".to_string(), |v| v.to_string());
            bar.set_message(format!(
                "  {:width$}  {:>10}  {:<24}  {:<10}  {}",
                terminal_safe(name),
                value,
                terminal_safe(&e.rule),
                label(&e.state),
                terminal_safe(&e.reason)
            ));
        }
        let at = chrono::Utc::now().format("%H:%M:%S");
        let method = d.method.map(|m| format!(": method {m}")).unwrap_or_default();
        live.verdict.set_message(format!(
            "  verdict at {at}: {}{method}: {}",
            label(&d.verdict).to_uppercase(),
            terminal_safe(&d.reason)
        ));
    }
}

impl Drop for Board {
    fn drop(&mut self) {
        // The last table stays on the screen.
        if let Some(live) = &self.live {
            for bar in live.triggers.iter().map(|(_, b)| b).chain([&live.verdict]) {
                bar.abandon();
            }
        }
    }
}

/// A step of method `m` as watch prints it: `✓ method A: flags off (3 ms): ...`.
fn step_text(m: Method, s: &backstop_core::respond::Step) -> String {
    let line = crate::render::step_line(s);
    let (mark, rest) = line.split_once(' ').unwrap_or(("", &line));
    format!("{mark} method {m}: {rest}\n")
}

pub fn run(args: Args, config_path: Option<&Path>) -> anyhow::Result<ExitCode> {
    let (config, url) = super::target(config_path, &args.conn)?;
    if config.triggers.is_empty() {
        return Err(UsageError("no [[triggers]] in backstop.toml: nothing to watch".into()).into());
    }
    // Method C reverts the latest migration: the folder is read for it.
    let folder = if args.auto >= Auto::C {
        Some(super::Context::load(config_path, &args.conn)?.migrations)
    } else {
        None
    };
    let responder = config.responder(&url, folder)?;
    let mut watcher = Watch::new(
        config.triggers.clone(),
        config.decide.clone(),
        &url,
        args.auto.into(),
        args.release.clone(),
    )
    .whole_cluster(args.whole_cluster);
    let mut client = super::connect_session(&url, "backstop watch")?;
    let started = Instant::now();
    let text = args.output.format == Format::Text;
    let board = Board::new(text && std::io::stdout().is_terminal(), &watcher.names());
    if text {
        board.say(&format!(
            "watching {} trigger(s){}; auto: {:?}\n",
            config.triggers.len(),
            args.for_
                .map(|d| format!(" for {}", backstop_core::kit::duration::human(d)))
                .unwrap_or_default(),
            args.auto
        ))?;
    }
    loop {
        let mut failed: anyhow::Result<()> = Ok(());
        let round = watcher.round(&mut client, &responder, &mut |h| {
            if failed.is_ok() {
                failed = tell(&board, args.output.format, h);
            }
        })?;
        failed?;
        if args.once {
            return Ok(if round.unanswered { ExitCode::from(1) } else { ExitCode::SUCCESS });
        }
        if args.for_.is_some_and(|d| started.elapsed() >= d) {
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(
            watcher
                .next_due()
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(50)),
        );
    }
}

/// Shows one happening of a round: on the board in text, decisions as
/// JSON lines otherwise.
pub fn tell(board: &Board, format: Format, h: Happening) -> anyhow::Result<()> {
    let text = format == Format::Text;
    match h {
        Happening::Sample { trigger, reading } if text => board.sample(trigger, reading)?,
        Happening::Sample { .. } => {}
        Happening::Decision { decision, changed } => {
            board.show(decision);
            if changed {
                match format {
                    Format::Text => board.say(&format!("\n{}\n", super::decide::text(decision)))?,
                    Format::Json => print(&format!("{}\n", serde_json::to_string(decision)?))?,
                }
            }
        }
        Happening::Step { method, step } if text => board.say(&step_text(method, step))?,
        Happening::Step { .. } => {}
        Happening::Warning(w) => eprintln!("warning: {w}"),
        Happening::Forensics(path) if text => {
            board.say(&format!("forensics of method C in {}\n", path.display()))?
        }
        Happening::Forensics(_) => {}
        Happening::Carried { method, escalate_after } if text => board.say(&format!(
            "method {method} carried out; watching whether the triggers clear within {}\n",
            backstop_core::kit::duration::human(escalate_after)
        ))?,
        Happening::Carried { .. } => {}
        Happening::NeedsRelease => board.say(
            "method A is called for, and which release to turn off is not clear: pass --release\n",
        )?,
        Happening::AboveAuto { method, command } => board.say(&format!(
            "method {method} is called for (above --auto); to carry it out:\n  {command}\n"
        ))?,
        Happening::Closed { incident, clear_for } => board.say(&format!(
            "incident {incident} closed: every trigger clear for {}\n",
            backstop_core::kit::duration::human(clear_for)
        ))?,
        Happening::Ramp(news) if text => board.say(&crate::render::ramp_news(&news))?,
        Happening::Ramp(news) => print(&format!("{}\n", serde_json::to_string(&news)?))?,
    }
    Ok(())
}
