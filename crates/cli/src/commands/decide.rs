//! `backstop respond decide --samples FILE.json`: the rollback decision on recorded
//! samples, offline (tests, post-mortems, tuning a trigger): the same code
//! `backstop respond watch` decides with live.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use backstop_core::config::Config;
use backstop_core::decide::{self, Decision, Sample, State, Taken, Verdict};

use super::{print, print_json, UsageError};
use crate::render::terminal_safe;
use crate::{Format, Output};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// `{"<trigger name>": [{"t": <unix seconds>, "value": <number|null>}, ...]}`;
    /// `"$taken": [{"t": ..., "method": "A"}]` says what was already carried out.
    #[arg(long, value_name = "FILE.json")]
    samples: PathBuf,
    #[command(flatten)]
    output: Output,
}

/// Each trigger's samples, and what was already carried out.
type Recorded = (BTreeMap<String, Vec<Sample>>, Vec<Taken>);

/// The samples file, read and checked against the triggers.
fn read(path: &Path, config: &Config) -> anyhow::Result<Recorded> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the samples file {}", path.display()))?;
    let mut doc: BTreeMap<String, serde_json::Value> = serde_json::from_str(&text).map_err(|e| {
        UsageError(format!(
            "{}:{}:{}: {e}; write {{\"<trigger name>\": [{{\"t\": <unix seconds>, \"value\": <number or null>}}]}}",
            path.display(),
            e.line(),
            e.column()
        ))
    })?;
    let taken: Vec<Taken> = match doc.remove("$taken") {
        None => Vec::new(),
        Some(v) => serde_json::from_value(v).map_err(|e| {
            UsageError(format!(
                "{}: \"$taken\": {e}; write [{{\"t\": <unix seconds>, \"method\": \"A\"}}]",
                path.display()
            ))
        })?,
    };
    let mut samples = BTreeMap::new();
    for (name, series) in doc {
        if !config.triggers.iter().any(|t| t.name == name) {
            return Err(UsageError(format!(
                "{}: samples for {name:?}, which no [[triggers]] declares (declared: {})",
                path.display(),
                config
                    .triggers
                    .iter()
                    .map(|t| format!("{:?}", t.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
            .into());
        }
        let series: Vec<Sample> = serde_json::from_value(series)
            .map_err(|e| UsageError(format!("{}: {name:?}: {e}", path.display())))?;
        samples.insert(name, series);
    }
    Ok((samples, taken))
}

pub fn run(args: Args, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let config = super::config(config)?;
    if config.triggers.is_empty() {
        return Err(
            UsageError("no [[triggers]] in backstop.toml: nothing to decide on".into()).into()
        );
    }
    let (samples, taken) = read(&args.samples, &config)?;
    let decision = decide::decide(&config.triggers, &samples, &taken, &config.decide);
    match args.output.format {
        Format::Json => print_json(&decision)?,
        Format::Text => print(&text(&decision))?,
    }
    Ok(exit(&decision))
}

/// 1 when a method is called for, else 0 (a hold is shown, not failed).
pub fn exit(decision: &Decision) -> ExitCode {
    match decision.verdict {
        Verdict::Rollback => ExitCode::from(1),
        Verdict::Hold | Verdict::Ok => ExitCode::SUCCESS,
    }
}

fn mark(state: State) -> &'static str {
    match state {
        State::Ok => "✓",
        State::Breach | State::Escalate => "✗",
        _ => "…",
    }
}

/// Whether the only thing held for is a method already carried out taking
/// effect: watch itself escalates when it does not.
fn waiting_for_a_method(d: &Decision) -> bool {
    let deciding = || d.evidence.iter().filter(|e| !e.dry_run);
    deciding().any(|e| e.state == State::Recovering)
        && deciding().all(|e| matches!(e.state, State::Ok | State::Recovering))
}

/// The decision for people: the verdict, why, and each trigger's evidence.
pub fn text(d: &Decision) -> String {
    let mut out = String::new();
    let head = match (d.verdict, d.method) {
        (Verdict::Rollback, Some(m)) => match &d.flag {
            Some(flag) => format!("ROLLBACK: method {m} (kill flag {})", terminal_safe(flag)),
            None => format!("ROLLBACK: method {m}"),
        },
        (Verdict::Rollback, None) => "ROLLBACK".into(),
        // Regression: watch --auto B said "a person should look" while it
        // was itself waiting out the escalation window after method A.
        (Verdict::Hold, _) if waiting_for_a_method(d) => {
            "HOLD: waiting for the method carried out to take effect (watch escalates if it does not)"
                .into()
        }
        (Verdict::Hold, _) => "HOLD: a person should look".into(),
        (Verdict::Ok, _) => "OK".into(),
    };
    let _ = writeln!(out, "{head}\n  {}", terminal_safe(&d.reason));
    for e in &d.evidence {
        let state = crate::render::label(&e.state);
        let _ = writeln!(
            out,
            "\n{} {} [{}] {}: {state}{}",
            mark(e.state),
            terminal_safe(&e.trigger),
            e.source,
            e.rule,
            if e.dry_run { " (dry run: decides nothing)" } else { "" }
        );
        let _ = writeln!(out, "    {}", terminal_safe(&e.reason));
        let _ = writeln!(out, "    sampled: {}", terminal_safe(&e.query));
        let shown: Vec<String> = e
            .samples
            .iter()
            .rev()
            .take(12)
            .rev()
            .map(|s| match s.value {
                Some(v) => format!("{v}"),
                None => "—".into(),
            })
            .collect();
        if !shown.is_empty() {
            let more = e.samples.len().saturating_sub(shown.len());
            let _ = writeln!(
                out,
                "    samples{}: {}",
                if more > 0 {
                    format!(" (last {} of {})", shown.len(), e.samples.len())
                } else {
                    String::new()
                },
                shown.join(" ")
            );
        }
    }
    out
}
