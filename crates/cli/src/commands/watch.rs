//! `backstop watch`: samples the `[[triggers]]` on their intervals, shows
//! each sample (on a terminal, in a table redrawn in place), decides with
//! the same code as `backstop decide`, records every decision with its
//! evidence, and with `--auto` carries out the methods up to the one it
//! names (A, B or C) by itself; above what `--auto` allows it prints the
//! command to run.

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use backstop_core::backup::store::Store;
use backstop_core::config::Config;
use backstop_core::decide::sample::{Reading, Sampler};
use backstop_core::decide::{self, Decision, Method, Sample, Taken, Verdict};
use backstop_core::respond::{self, Target};
use backstop_core::schema::events;
use serde_json::json;

use super::{print, UsageError};
use crate::render::{label, terminal_safe};
use crate::{Connection, Format, Output};

/// How much history each trigger keeps for its window.
const KEEP: usize = 1000;

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

impl Auto {
    fn allows(self, m: Method) -> bool {
        match self {
            Auto::None => false,
            Auto::A => m == Method::A,
            Auto::B => m <= Method::B,
            Auto::C => true,
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
    #[arg(long, value_name = "RELEASE")]
    release: Option<String>,
    /// One round: sample every trigger once, decide, act, and exit
    /// (exit 1 when a method is called for and not carried out).
    #[arg(long)]
    once: bool,
    #[command(flatten)]
    output: Output,
}

/// The release whose flags method A turns off.
pub fn release_to_kill(
    client: &mut postgres::Client,
    given: Option<&str>,
) -> anyhow::Result<String> {
    if let Some(r) = given {
        return Ok(r.to_string());
    }
    let mut on: Vec<String> = backstop_core::flags::list(client)?
        .into_iter()
        .filter(|f| f.enabled())
        .map(|f| f.release)
        .collect();
    on.sort();
    on.dedup();
    match on.as_slice() {
        [one] => Ok(one.clone()),
        [] => {
            Err(UsageError("no release has a flag on: nothing for method A to turn off".into())
                .into())
        }
        many => Err(UsageError(format!(
            "flags of several releases are on ({}); name one with --release",
            many.join(", ")
        ))
        .into()),
    }
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
struct Board {
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
    fn new(on: bool, names: &[&str]) -> Board {
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
    fn say(&self, text: &str) -> anyhow::Result<()> {
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
fn step_text(m: Method, s: &respond::Step) -> String {
    let line = crate::render::step_line(s);
    let (mark, rest) = line.split_once(' ').unwrap_or(("", &line));
    format!("{mark} method {m}: {rest}\n")
}

/// The command that carries out `m` by hand.
fn command_for(m: Method, release: Option<&str>, flag: Option<&str>) -> String {
    match (m, flag) {
        (Method::A, Some(f)) => format!("backstop rollback --method A --flag {f} --yes"),
        (Method::A, None) => match release {
            Some(r) => format!("backstop rollback --method A --release {r} --yes"),
            None => "backstop rollback --method A --release <RELEASE> --yes".into(),
        },
        (Method::B, _) => "backstop rollback --method B --yes".into(),
        (Method::C, _) => "backstop rollback --method C --yes".into(),
    }
}

fn record(client: &mut postgres::Client, d: &Decision) -> anyhow::Result<()> {
    let outcome = match d.verdict {
        Verdict::Rollback => "rollback",
        Verdict::Hold => "hold",
        Verdict::Ok => "ok",
    };
    let mut details = serde_json::to_value(d)?;
    details["source"] = json!("watch");
    events::record_if_logged(
        client,
        &events::Event { kind: "decide", outcome, versions: vec![], details },
    )?;
    Ok(())
}

/// A sample that moved its trigger to another state, as a `sample` event:
/// the trigger, its new state and why, and the latest sample.
fn record_sample(client: &mut postgres::Client, e: &decide::Evidence) -> anyhow::Result<()> {
    let details = json!({
        "trigger": e.trigger,
        "state": e.state,
        "reason": e.reason,
        "query": e.query,
        "sample": e.samples.last(),
        "source": "watch",
    });
    events::record_if_logged(
        client,
        &events::Event { kind: "sample", outcome: "ok", versions: vec![], details },
    )?;
    Ok(())
}

pub fn run(args: Args, config_path: Option<&Path>) -> anyhow::Result<ExitCode> {
    let (config, url, store) = super::backup::load(config_path, &args.conn)?;
    if config.triggers.is_empty() {
        return Err(UsageError("no [[triggers]] in backstop.toml: nothing to watch".into()).into());
    }
    watch(&config, config_path, &url, &store, &args)
}

fn watch(
    config: &Config,
    config_path: Option<&Path>,
    url: &str,
    store: &Store,
    args: &Args,
) -> anyhow::Result<ExitCode> {
    let mut client = backstop_core::pg::connect(url, "backstop watch")?;
    let mut sampler = Sampler::new(url, config.decide.prometheus_url.as_deref());
    let mut series: BTreeMap<String, Vec<Sample>> = BTreeMap::new();
    let mut due: Vec<Instant> = vec![Instant::now(); config.triggers.len()];
    let mut taken: Vec<Taken> = Vec::new();
    let mut last: Option<(Verdict, Option<Method>, Option<String>)> = None;
    let mut states: BTreeMap<String, decide::State> = BTreeMap::new();
    let started = Instant::now();
    let text = args.output.format == Format::Text;
    let names: Vec<&str> = config.triggers.iter().map(|t| t.name.as_str()).collect();
    let board = Board::new(text && std::io::stdout().is_terminal(), &names);
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
        let now = Instant::now();
        for (i, t) in config.triggers.iter().enumerate() {
            if due[i] > now {
                continue;
            }
            let reading = sampler.sample(t);
            if text {
                board.sample(&t.name, &reading)?;
            }
            let s = series.entry(t.name.clone()).or_default();
            s.push(reading.sample);
            if s.len() > KEEP {
                s.drain(..s.len() - KEEP);
            }
            due[i] = now + t.interval;
        }
        let decision = decide::decide(&config.triggers, &series, &taken, &config.decide);
        board.show(&decision);
        // The samples that matter: each one that moves a trigger to another
        // state (ok → pending → breach, no data, recovering...) is an event.
        for e in &decision.evidence {
            if states.get(&e.trigger) != Some(&e.state) {
                record_sample(&mut client, e).context("recording a sample")?;
                states.insert(e.trigger.clone(), e.state);
            }
        }
        let key = (decision.verdict, decision.method, decision.flag.clone());
        let changed = last.as_ref() != Some(&key);
        if changed {
            record(&mut client, &decision).context("recording the decision")?;
            match args.output.format {
                Format::Text => board.say(&format!("\n{}\n", super::decide::text(&decision)))?,
                Format::Json => print(&format!("{}\n", serde_json::to_string(&decision)?))?,
            }
            last = Some(key);
        }
        let mut unanswered = false;
        if let (Verdict::Rollback, Some(method)) = (decision.verdict, decision.method) {
            let release = if decision.flag.is_none() {
                release_to_kill(&mut client, args.release.as_deref()).ok()
            } else {
                None
            };
            let target = match (&decision.flag, &release) {
                (Some(f), _) => Some(Target::Flag(f.clone())),
                (None, Some(r)) => Some(Target::Release(r.clone())),
                (None, None) => None,
            };
            let mut alerted = false;
            let step_line = |s: &respond::Step| {
                if !alerted {
                    alerted = true;
                    super::incident::announce(config, url, true);
                }
                if text {
                    let _ = board.say(&step_text(method, s));
                }
            };
            let reason = format!("backstop watch: {}", decision.reason);
            let carried = match (method, &target) {
                (Method::A, Some(target)) if args.auto.allows(method) => {
                    respond::method_a(
                        &mut client,
                        url,
                        target,
                        &config.hooks,
                        &reason,
                        config.migrations.lock_wait,
                        step_line,
                    )?;
                    true
                }
                (Method::B, _) if args.auto.allows(method) => {
                    let tools = backstop_core::backup::tools::Tools::find()?;
                    let restore = respond::Restore {
                        store,
                        tools: &tools,
                        backup: None,
                        options: backstop_core::backup::restore::RestoreOptions {
                            jobs: super::backup::jobs(config),
                            resume: false,
                            lock_wait: config.migrations.lock_wait,
                        },
                        freeze: &config.freeze,
                    };
                    respond::method_b(
                        &mut client,
                        url,
                        target.as_ref(),
                        &config.hooks,
                        &restore,
                        &reason,
                        step_line,
                    )?;
                    // The restore replaced the database this session was on.
                    client = backstop_core::pg::connect(url, "backstop watch")?;
                    true
                }
                (Method::C, _) if args.auto.allows(method) => {
                    // Method C reverts the latest migration: the folder is needed.
                    let ctx = super::Context::load(config_path, &args.conn)?;
                    let print_step = |s: &respond::Step| {
                        if text {
                            let _ = board.say(&step_text(Method::C, s));
                        }
                    };
                    let outcome = super::rollback::carry_out_c(
                        &ctx,
                        &mut client,
                        target.as_ref(),
                        &backstop_core::migrate::RollbackTarget::Steps(1),
                        &reason,
                        print_step,
                    )?;
                    if text {
                        board.say(&format!(
                            "forensics of method C in {}\n",
                            outcome.forensics.display()
                        ))?;
                    }
                    true
                }
                _ => false,
            };
            if carried {
                // Method C sends its own alerts.
                if method != Method::C {
                    super::incident::announce(config, url, false);
                }
                taken.push(Taken {
                    t: chrono::Utc::now().timestamp_millis() as f64 / 1000.0,
                    method,
                });
                if text {
                    board.say(&format!(
                        "method {method} carried out; watching whether the triggers clear within {}\n",
                        backstop_core::kit::duration::human(config.decide.escalate_after)
                    ))?;
                }
            } else if method == Method::A && target.is_none() && args.auto.allows(method) {
                unanswered = true;
                if changed {
                    board.say("method A is called for, and which release to turn off is not clear: pass --release\n")?;
                }
            } else {
                unanswered = true;
                if changed {
                    board.say(&format!(
                        "method {method} is called for (above --auto); to carry it out:\n  {}\n",
                        command_for(method, release.as_deref(), decision.flag.as_deref())
                    ))?;
                }
            }
        }
        if args.once {
            return Ok(if unanswered { ExitCode::from(1) } else { ExitCode::SUCCESS });
        }
        if args.for_.is_some_and(|d| started.elapsed() >= d) {
            return Ok(ExitCode::SUCCESS);
        }
        let next = due.iter().min().copied().unwrap_or_else(Instant::now);
        std::thread::sleep(
            next.saturating_duration_since(Instant::now()).max(Duration::from_millis(50)),
        );
    }
}
