//! `backstop data sync --from URL --to URL`: the rows that differ, found as
//! `compare` finds them, brought to the receiving side by primary key in
//! one transaction; a dry run unless `--yes` (`--apply`, its old name,
//! still answers).

use std::process::ExitCode;

use backstop_core::pg::{self, redact};
use backstop_core::sync::{self, SyncOptions};
use chrono::{DateTime, NaiveDateTime, Utc};

use super::{print, print_json, UsageError};
use crate::render::terminal_safe;
use crate::{Format, Output};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The database the rows come from (e.g. the new one, written since the switch).
    #[arg(long, value_name = "URL")]
    from: String,
    /// The database that receives them (e.g. the old one).
    #[arg(long, value_name = "URL")]
    to: String,
    /// Only these tables (`schema.table` or `table`, comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "TABLE,...")]
    tables: Vec<String>,
    /// Only rows whose updated_at (or created_at) is at or after this time
    /// (RFC 3339, or `YYYY-MM-DD HH:MM[:SS]` in UTC).
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Also delete the rows only the receiving side has.
    #[arg(long)]
    with_deletes: bool,
    /// Change the receiving side (without it: say what would change).
    #[arg(long, alias = "apply")]
    yes: bool,
    /// Say what would change and change nothing (as without --yes).
    #[arg(long, conflicts_with = "yes")]
    dry_run: bool,
    #[command(flatten)]
    output: Output,
}

fn since(text: &str) -> Result<DateTime<Utc>, UsageError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").map(|t| t.and_utc()))
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").map(|t| t.and_utc()))
        .map_err(|_| {
            UsageError(format!(
                "--since {text:?}: write a time as 2026-11-23T10:00:00Z or \"2026-11-23 10:00\" (UTC)"
            ))
        })
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    for url in [&args.from, &args.to] {
        pg::conn::parse_url(url)?;
    }
    let opts = SyncOptions {
        tables: args.tables.clone(),
        since: args.since.as_deref().map(since).transpose()?,
        with_deletes: args.with_deletes,
        apply: args.yes && !args.dry_run,
    };
    let mut from = pg::connect(&args.from, "backstop sync")?;
    let mut to = pg::connect(&args.to, "backstop sync")?;
    let report = sync::sync(&mut from, &mut to, &opts)?;
    let (from_shown, to_shown) = (redact(&args.from), redact(&args.to));
    match args.output.format {
        Format::Json => print_json(&serde_json::json!({
            "from": from_shown,
            "to": to_shown,
            "report": report,
        }))?,
        Format::Text => {
            let mut out = format!(
                "sync from {} to {}{}:\n",
                terminal_safe(&from_shown),
                terminal_safe(&to_shown),
                if report.applied { "" } else { " (dry run)" }
            );
            if report.tables.is_empty() && report.refused.is_empty() {
                out.push_str("  every table already matches: nothing to bring over\n");
            }
            for t in &report.tables {
                out.push_str(&format!(
                    "  {}: {} to insert, {} to update, {} to delete",
                    terminal_safe(&t.table),
                    t.insert,
                    t.update,
                    t.delete
                ));
                if t.kept > 0 {
                    out.push_str(&format!(
                        ", {} only on the receiving side kept (--with-deletes deletes them)",
                        t.kept
                    ));
                }
                if t.older > 0 {
                    out.push_str(&format!(", {} older than --since left out", t.older));
                }
                out.push('\n');
                if let Some(note) = &t.note {
                    out.push_str(&format!("    {}\n", terminal_safe(note)));
                }
            }
            for r in &report.refused {
                out.push_str(&format!("  ✗ {} (cannot be synced)\n", terminal_safe(r)));
            }
            match &report.after {
                Some(a) => out.push_str(&format!(
                    "✓ applied in one transaction; compared again: {}, {} missing, {} different, {} only on the receiving side\n",
                    a.verdict, a.missing, a.different, a.extra
                )),
                None => out.push_str("nothing changed; run again with --yes to bring the rows over\n"),
            }
            print(&out)?;
        }
    }
    let incomplete =
        report.after.is_some_and(|a| a.missing + a.different > 0 || a.verdict == "error");
    Ok(if incomplete || !report.refused.is_empty() { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
