//! `backstop data compare --source URL --target URL`: two databases, table by
//! table, every column, exactly; the rows that differ named by key. Exit 0
//! when everything matches, 1 when something differs or could not be
//! compared (never a match it did not prove).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use backstop_core::compare::{self, Comparison, Judgement, Progress};
use backstop_core::pg::{self, redact};

use super::{print, print_json};
use crate::render::{label, terminal_safe};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CompareFormat {
    Text,
    Json,
    /// A report to paste into a ticket or a pull request.
    Markdown,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The database compared from (e.g. the old one).
    #[arg(long, value_name = "URL")]
    source: String,
    /// The database compared with it (e.g. the new one).
    #[arg(long, value_name = "URL")]
    target: String,
    /// Only these tables (`schema.table` or `table`, comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "TABLE,...")]
    tables: Vec<String>,
    /// How many tables are compared at once, each with a session on each
    /// side (default: the cores, at most 4).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    jobs: Option<u16>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = CompareFormat::Text)]
    format: CompareFormat,
    /// Leave this out of the schema comparison (`acl`: the relations'
    /// privileges, e.g. the grants a cutover's freeze revoked).
    #[arg(long, value_enum, value_delimiter = ',', value_name = "WHAT")]
    ignore: Vec<Ignore>,
}

/// What a comparison may leave out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Ignore {
    /// The relations' privileges (GRANT/REVOKE).
    Acl,
}

pub fn run(args: Args, config: Option<&std::path::Path>) -> anyhow::Result<ExitCode> {
    let policy = super::config(config)?.compare;
    for url in [&args.source, &args.target] {
        pg::conn::parse_url(url)?;
    }
    let jobs = args.jobs.map_or_else(
        || std::thread::available_parallelism().map_or(2, |n| n.get()).min(4),
        usize::from,
    );
    let bars = Bars::new(args.format == CompareFormat::Text && std::io::stderr().is_terminal());
    let tolerances = policy.tolerances();
    let result = compare::compare_parallel(
        &args.source,
        &args.target,
        &args.tables,
        jobs,
        &tolerances,
        args.ignore.contains(&Ignore::Acl),
        &|p| bars.show(p),
    )?;
    drop(bars);
    let (source, target) = (redact(&args.source), redact(&args.target));
    let judged = policy.judge(&result);
    match args.format {
        CompareFormat::Json => {
            let mut json = serde_json::to_value(&result)?;
            json["judgement"] = serde_json::to_value(&judged)?;
            print_json(&json)?
        }
        CompareFormat::Text => {
            print(&format!("{}{}", text(&result, &source, &target), judgement_text(&judged)))?
        }
        CompareFormat::Markdown => print(&format!(
            "{}{}",
            markdown(&result, &source, &target),
            judgement_markdown(&judged)
        ))?,
    }
    Ok(if judged.verdict == "pass" { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// A spinner per table being compared, on a terminal; nothing otherwise.
struct Bars {
    multi: Option<MultiProgress>,
    running: Mutex<HashMap<String, ProgressBar>>,
}

impl Bars {
    fn new(on: bool) -> Bars {
        Bars { multi: on.then(MultiProgress::new), running: Mutex::default() }
    }

    fn show(&self, p: Progress<'_>) {
        let Some(multi) = &self.multi else { return };
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        match p {
            Progress::Started(table) => {
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.set_message(format!("{}: comparing", terminal_safe(table)));
                bar.enable_steady_tick(Duration::from_millis(120));
                running.insert(table.to_string(), bar);
            }
            Progress::Step(table, what) => {
                if let Some(bar) = running.get(table) {
                    bar.set_message(format!("{}: {}", terminal_safe(table), terminal_safe(what)));
                }
            }
            Progress::Finished(r) => {
                if let Some(bar) = running.remove(&r.table) {
                    bar.finish_and_clear();
                    multi.remove(&bar);
                }
                let _ = multi.println(format!("  {}: {}", terminal_safe(&r.table), r.status));
            }
        }
    }
}

impl Drop for Bars {
    fn drop(&mut self) {
        if let Some(multi) = &self.multi {
            let _ = multi.clear();
        }
    }
}

fn rows(n: Option<i64>) -> String {
    n.map_or_else(|| "-".into(), |n| n.to_string())
}

fn text(c: &Comparison, source: &str, target: &str) -> String {
    let mut out = format!(
        "compare {} → {}: {}\n",
        terminal_safe(source),
        terminal_safe(target),
        c.verdict.to_uppercase()
    );
    if let Some(within) = c.tolerances.describe() {
        let _ = writeln!(out, "  equal within the tolerances of [compare]: {within}");
    }
    for t in &c.tables {
        let name = terminal_safe(&t.table);
        let _ = match t.status {
            "match" => writeln!(out, "  ✓ {name}: {} rows, the same content", rows(t.source_rows)),
            "only_in_source" => writeln!(out, "  ✗ {name}: only in the source"),
            "only_in_target" => writeln!(out, "  ✗ {name}: only in the target"),
            "not_readable" => {
                writeln!(out, "  – {name}: not compared: the role may not read it on either side")
            }
            "error" => writeln!(
                out,
                "  ! {name}: not compared: {}",
                terminal_safe(t.note.as_deref().unwrap_or("error"))
            ),
            _ => writeln!(
                out,
                "  ✗ {name}: {} / {} rows: {} missing in the target, {} extra, {} different{}",
                rows(t.source_rows),
                rows(t.target_rows),
                t.missing,
                t.extra,
                t.different,
                t.note.as_deref().map(|n| format!(" ({n})")).unwrap_or_default()
            ),
        };
        for (side, columns) in
            [("source", &t.columns_only_in_source), ("target", &t.columns_only_in_target)]
        {
            if !columns.is_empty() {
                let _ = writeln!(
                    out,
                    "      column(s) only in the {side}: {} (rows compared on the columns both have)",
                    terminal_safe(&columns.join(", "))
                );
            }
        }
        for r in &t.rows {
            let key = r.key.to_string();
            let key = terminal_safe(&key);
            let _ = match r.kind {
                "missing" => writeln!(out, "      missing in the target: {key}"),
                "extra" => writeln!(out, "      extra in the target: {key}"),
                _ => writeln!(
                    out,
                    "      different {key}: {}",
                    r.columns
                        .iter()
                        .map(|(c, [a, b])| terminal_safe(&format!("{c} {a} → {b}")).into_owned())
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
            };
        }
        let listed = t.rows.len();
        let all = t.missing + t.extra + t.different;
        if all > listed {
            let _ = writeln!(out, "      … and {} more", all - listed);
        }
    }
    if let Some(e) = &c.schema_error {
        let _ = writeln!(out, "  ! schemas not compared: {}", terminal_safe(e));
    }
    for left in &c.acl_left_out {
        let _ = writeln!(out, "  (left out of the schema comparison: {})", terminal_safe(left));
    }
    for d in &c.schema {
        let _ = writeln!(out, "  ✗ schema: {}", terminal_safe(d));
    }
    if !c.schema_cosmetic.is_empty() {
        let _ = writeln!(
            out,
            "  cosmetic schema differences (no effect, not counted): {}",
            terminal_safe(&c.schema_cosmetic.join("; "))
        );
    }
    if let Some(e) = &c.foreign_key_error {
        let _ = writeln!(out, "  ! foreign keys not checked: {}", terminal_safe(e));
    }
    for fk in &c.foreign_keys {
        let _ = writeln!(
            out,
            "  ✗ {}: foreign key {}{}: {} orphaned row(s) in the target",
            terminal_safe(&fk.table),
            terminal_safe(&fk.constraint),
            if fk.not_valid { " (NOT VALID)" } else { "" },
            fk.orphans
        );
    }
    out
}

/// Text for a Markdown table cell: no pipes or line breaks.
fn cell(text: &str) -> String {
    backstop_core::kit::markdown::cell(&terminal_safe(text))
}

fn markdown(c: &Comparison, source: &str, target: &str) -> String {
    let mut out = format!(
        "## Compare: {}\n\n- Source: `{}`\n- Target: `{}`\n",
        c.verdict.to_uppercase(),
        cell(source),
        cell(target)
    );
    if let Some(within) = c.tolerances.describe() {
        let _ = writeln!(out, "- Equal within the tolerances of `[compare]`: {within}");
    }
    out.push_str("\n| Table | Status | Source rows | Target rows | Missing | Extra | Different | Note |\n|---|---|---:|---:|---:|---:|---:|---|\n");
    for t in &c.tables {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            cell(&t.table),
            t.status,
            rows(t.source_rows),
            rows(t.target_rows),
            t.missing,
            t.extra,
            t.different,
            cell(t.note.as_deref().unwrap_or(""))
        );
    }
    let differing: Vec<_> = c.tables.iter().filter(|t| !t.rows.is_empty()).collect();
    if !differing.is_empty() {
        out.push_str("\n### Differing rows\n\n| Table | Key | Kind | Columns (source → target) |\n|---|---|---|---|\n");
        for t in differing {
            for r in &t.rows {
                let columns: Vec<String> =
                    r.columns.iter().map(|(c, [a, b])| format!("{c}: {a} → {b}")).collect();
                let _ = writeln!(
                    out,
                    "| {} | `{}` | {} | {} |",
                    cell(&t.table),
                    cell(&r.key.to_string()),
                    r.kind,
                    cell(&columns.join("; "))
                );
            }
        }
    }
    if !c.schema.is_empty() || !c.schema_cosmetic.is_empty() || c.schema_error.is_some() {
        out.push_str("\n### Schema\n\n");
        if let Some(e) = &c.schema_error {
            let _ = writeln!(out, "- not compared: {}", cell(e));
        }
        for d in &c.schema {
            let _ = writeln!(out, "- {}", cell(d));
        }
        for d in &c.schema_cosmetic {
            let _ = writeln!(out, "- cosmetic, not counted: {}", cell(d));
        }
    }
    if !c.foreign_keys.is_empty() || c.foreign_key_error.is_some() {
        out.push_str("\n### Foreign keys of the target\n\n");
        if let Some(e) = &c.foreign_key_error {
            let _ = writeln!(out, "- not checked: {}", cell(e));
        }
        for fk in &c.foreign_keys {
            let _ = writeln!(
                out,
                "- {} `{}`{}: {} orphaned row(s)",
                cell(&fk.table),
                cell(&fk.constraint),
                if fk.not_valid { " (NOT VALID)" } else { "" },
                fk.orphans
            );
        }
    }
    out
}

fn judgement_text(j: &Judgement) -> String {
    let mut out = format!(
        "verdict: {} ([compare] preset {}, row counts within {}%)\n",
        j.verdict.to_uppercase(),
        label(&j.preset),
        j.row_count_tolerance
    );
    for c in &j.criteria {
        let mark = match (c.ok, c.counts) {
            (true, _) => "✓",
            (false, true) => "✗",
            (false, false) => "!",
        };
        let counted = if c.counts { "" } else { " (reported, not counted)" };
        let _ = writeln!(
            out,
            "  {mark} {}{counted}: {}",
            label(&c.criterion),
            terminal_safe(&c.detail)
        );
    }
    out
}

fn judgement_markdown(j: &Judgement) -> String {
    let mut out = format!(
        "\n### Verdict: {} ([compare] preset {}, row counts within {}%)\n\n| Criterion | Counts | Result | Detail |\n|---|---|---|---|\n",
        j.verdict.to_uppercase(),
        label(&j.preset),
        j.row_count_tolerance
    );
    for c in &j.criteria {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            label(&c.criterion),
            if c.counts { "yes" } else { "no" },
            if c.ok { "ok" } else { "failed" },
            cell(&c.detail)
        );
    }
    out
}
