//! `backstop verify`: run the verification suite of `[verify]`, or take a
//! snapshot for its `row_counts` and `checksums` checks; and the suite that
//! `migrate` and `rollback` run afterwards when `after_migrate = true`.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use backstop_core::config::Config;
use backstop_core::migrate::Report;
use backstop_core::pg;
use backstop_core::verify::{
    snapshot, ChecksumScope, Phase, Selection, Snapshot, Suite, SuiteReport,
};
use clap::ValueEnum;
use serde_json::json;

use super::{print, print_json, UsageError};
use crate::render::human;
use crate::Connection;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    conn: Connection,
    /// Run only these checks (names, comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "NAME,...")]
    only: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = VerifyFormat::Text)]
    format: VerifyFormat,
    /// `--snapshot save NAME` takes a snapshot of row counts and checksums;
    /// `--snapshot NAME` compares the row_counts and checksums checks with it.
    #[arg(long, num_args = 1..=2, value_names = ["save", "NAME"])]
    snapshot: Vec<String>,
}

/// How `backstop verify` prints its results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VerifyFormat {
    /// ✅/❌/⚠ lines for people.
    Text,
    /// One JSON object with `checks`.
    Json,
    /// A Markdown table for PRs and incident reports.
    Markdown,
    /// JUnit XML for CI.
    Junit,
}

enum SnapshotArg {
    None,
    Save(String),
    Use(String),
}

fn snapshot_arg(values: &[String]) -> Result<SnapshotArg, UsageError> {
    let valid = |name: &str| {
        if name.trim().is_empty() || name.len() > 200 {
            Err(UsageError(format!("{name:?} is not a snapshot name; use up to 200 characters")))
        } else {
            Ok(name.to_string())
        }
    };
    match values {
        [] => Ok(SnapshotArg::None),
        [save] if save == "save" => Err(UsageError(
            "--snapshot save needs a name: `backstop verify --snapshot save NAME`".into(),
        )),
        [name] => Ok(SnapshotArg::Use(valid(name)?)),
        [save, name] if save == "save" => Ok(SnapshotArg::Save(valid(name)?)),
        _ => Err(UsageError(
            "--snapshot takes `save NAME` to take a snapshot or `NAME` to compare with one".into(),
        )),
    }
}

pub fn run(args: Args, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let cfg = super::config(config)?;
    let url = cfg.database_url(args.conn.database_url.as_deref())?;
    pg::conn::parse_url(&url)?;
    let snapshot_arg = snapshot_arg(&args.snapshot)?;
    let headers = cfg.verify_headers()?;
    if let SnapshotArg::Save(name) = &snapshot_arg {
        if !args.only.is_empty() {
            return Err(UsageError("--only does not apply to --snapshot save".into()).into());
        }
        let mut client = pg::connect(&url, "backstop verify")?;
        return save(&mut client, &cfg, name, args.format);
    }
    if cfg.verify.checks.is_empty() {
        return Err(UsageError(
            "no checks to run: add [[verify.checks]] entries to backstop.toml (e.g. name = \"connection\", kind = \"connection\")".into(),
        )
        .into());
    }
    let selection = Selection {
        only: args.only,
        phase: None,
        snapshot: match snapshot_arg {
            SnapshotArg::Use(name) => Some(name),
            _ => None,
        },
        backups: Some(cfg.backup.dir.clone()),
    };
    let mut client = pg::connect(&url, "backstop verify")?;
    let suite = Suite::prepare(&mut client, &url, &cfg.verify, &selection, None, &headers)?;
    drop(client);
    let report = suite.run();
    print_report(&report, args.format)?;
    Ok(if report.ok() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn print_report(report: &SuiteReport, format: VerifyFormat) -> anyhow::Result<()> {
    match format {
        VerifyFormat::Text => print(&report.text()),
        VerifyFormat::Json => print_json(report),
        VerifyFormat::Markdown => print(&report.markdown()),
        VerifyFormat::Junit => print(&report.junit()),
    }
}

fn save(
    client: &mut postgres::Client,
    cfg: &Config,
    name: &str,
    format: VerifyFormat,
) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let scope = ChecksumScope::for_suite(&cfg.verify);
    let snap = Snapshot::take(client, name, &scope)?;
    snapshot::save(client, &snap)?;
    let checksummed = match snap.tables.values().filter(|t| t.checksum.is_some()).count() {
        0 => "counts only (no checksums check is configured)".to_string(),
        n => format!("checksums of {n} table(s)"),
    };
    match format {
        VerifyFormat::Json => print_json(&json!({
            "snapshot": snap.name,
            "taken_at": snap.taken_at,
            "tables": snap.tables,
        }))?,
        _ => print(&format!(
            "snapshot {} saved: {} table(s), {} rows, {checksummed} ({})\n\
             compare with it: backstop verify --snapshot {}\n",
            snap.name,
            snap.tables.len(),
            snap.total_rows(),
            human(started.elapsed()),
            snap.name
        ))?,
    }
    Ok(ExitCode::SUCCESS)
}

/// The suite's lines after a migrate or rollback report and, when it
/// failed, what was committed and the ways back.
pub fn after_text(suite: &SuiteReport, phase: Phase, report: &Report) -> String {
    let mut out = format!("verifying after the {}:\n", phase_word(phase));
    out.push_str(&suite.text());
    if !suite.ok() {
        let labels: Vec<String> =
            report.done.iter().map(|d| format!("{}_{}", d.version, d.name)).collect();
        let versions: Vec<&str> = report.done.iter().map(|d| d.version.as_str()).collect();
        match phase {
            Phase::Migrate => out.push_str(&format!(
                "✗ applied, verification failed: {} committed, {} critical check(s) failed\n  \
                 choices: undo with `backstop rollback --steps {}` (runs the down migrations), \
                 or fix forward and run `backstop verify` again\n",
                labels.join(", "),
                suite.failed,
                versions.len()
            )),
            Phase::Rollback => out.push_str(&format!(
                "✗ reverted, verification failed: {} reverted, {} critical check(s) failed\n  \
                 choices: re-apply with `backstop migrate`, restore the pre-migration backup, \
                 or fix and run `backstop verify` again\n",
                labels.join(", "),
                suite.failed
            )),
        }
    }
    out
}

fn phase_word(phase: Phase) -> &'static str {
    match phase {
        Phase::Migrate => "migrate",
        Phase::Rollback => "rollback",
    }
}

/// A migrate or rollback report as JSON, with the suite's result under `verify`.
pub fn with_suite(
    report: &Report,
    suite: Option<&SuiteReport>,
) -> anyhow::Result<serde_json::Value> {
    let mut value = serde_json::to_value(report).context("rendering JSON")?;
    if let (Some(suite), Some(map)) = (suite, value.as_object_mut()) {
        map.insert("verify".into(), serde_json::to_value(suite).context("rendering JSON")?);
    }
    Ok(value)
}
