//! The text report: the verdict with its conditions first, then each
//! finding like a compiler diagnostic (or their count per rule), then what
//! was checked.

use std::collections::HashMap;
use std::fmt::Write as _;

use backstop_core::check::Assessment;
use backstop_lint::{Code, Finding, Severity, Verdict};

use crate::render::terminal_safe;

/// The checked texts by path, each with where its lines start, so that a
/// report of many findings in one long file reads each line directly.
struct Texts<'a> {
    by_path: HashMap<&'a str, (&'a str, Vec<usize>)>,
}

impl<'a> Texts<'a> {
    fn of(a: &'a Assessment) -> Texts<'a> {
        let mut by_path = HashMap::new();
        for s in &a.sources {
            by_path.entry(s.path.as_str()).or_insert_with(|| {
                let mut starts = vec![0];
                starts.extend(s.text.match_indices('\n').map(|(i, _)| i + 1));
                (&*s.text, starts)
            });
        }
        Texts { by_path }
    }

    /// Line `line` (1-based) of the file at `path`, tabs as spaces.
    fn line(&self, path: &str, line: usize) -> Option<String> {
        let (text, starts) = self.by_path.get(path)?;
        let start = *starts.get(line.checked_sub(1)?)?;
        let end = starts.get(line).map_or(text.len(), |next| next - 1);
        let l = &text[start..end];
        Some(l.strip_suffix('\r').unwrap_or(l).replace('\t', "    "))
    }
}

fn counts(a: &Assessment) -> String {
    let parts: Vec<String> = Severity::DESCENDING
        .iter()
        .filter(|s| a.summary.count(**s) > 0)
        .map(|s| format!("{} {s}", a.summary.count(*s)))
        .collect();
    let mut text = if parts.is_empty() { "no findings".to_string() } else { parts.join(", ") };
    if !a.suppressed.is_empty() {
        text.push_str(&format!("; {} suppressed", a.suppressed.len()));
    }
    text
}

fn finding(out: &mut String, texts: &Texts<'_>, f: &Finding) {
    let _ = writeln!(out, "{}[{}]: {}", f.severity, f.code, terminal_safe(&f.message));
    let _ = writeln!(out, "  --> {}:{}:{}", terminal_safe(&f.file), f.line, f.column);
    if let Some(line) = texts.line(&f.file, f.line) {
        let width = f.line.to_string().len();
        let pad = " ".repeat(width);
        let line_len = line.chars().count();
        let start = f.column.saturating_sub(1).min(line_len);
        let end = if f.end_line == f.line { f.end_column.saturating_sub(1) } else { line_len };
        let marks = end.clamp(start + 1, line_len.max(start + 1)) - start;
        let _ = writeln!(out, " {pad} |");
        let _ = writeln!(out, " {} | {}", f.line, terminal_safe(line.trim_end()));
        let _ = writeln!(out, " {pad} | {}{}", " ".repeat(start), "^".repeat(marks));
    }
    for fact in &f.facts {
        let _ = writeln!(out, "   = live: {}", terminal_safe(fact));
    }
    let _ = writeln!(out, "   = help: {}", f.help);
    let _ = writeln!(out);
}

/// The verdict and what it asks: the conditions of a CONDITIONAL GO, or
/// what a NO-GO needs. First in the report, so the reader of a long one
/// sees what to do before the findings behind it.
fn verdict(out: &mut String, a: &Assessment) {
    let without = if a.live.is_none() { ", without live facts" } else { "" };
    let _ = writeln!(out, "verdict: {} ({}){without}", a.verdict, counts(a));
    match a.verdict {
        Verdict::NoGo => {
            let mut codes: Vec<Code> = a
                .findings
                .iter()
                .filter(|f| f.severity == Severity::Critical)
                .map(|f| f.code)
                .collect();
            codes.sort();
            codes.dedup();
            let flags: Vec<String> = codes.iter().map(|c| format!("--accept-risk {c}")).collect();
            let _ = writeln!(
                out,
                "  do not proceed: fix the critical findings (backstop migrate refuses them unless run with {})",
                flags.join(" ")
            );
        }
        Verdict::ConditionalGo => {
            let _ = writeln!(out, "  proceed only when all of these hold:");
            for c in &a.conditions {
                let _ = writeln!(out, "  - [ ] {c}");
            }
        }
        Verdict::Go => {}
    }
}

/// The count of findings per rule (`--statistics`), most first.
fn statistics(out: &mut String, a: &Assessment) {
    let rows = a.statistics();
    let width = rows.iter().map(|r| r.rule.len()).max().unwrap_or(0);
    for r in &rows {
        let severities: Vec<String> = Severity::DESCENDING
            .iter()
            .filter(|s| r.by_severity.count(**s) > 0)
            .map(|s| format!("{} {s}", r.by_severity.count(*s)))
            .collect();
        let _ = writeln!(
            out,
            "{:>6}  {}  {:<width$}  {}",
            r.count,
            r.code,
            r.rule,
            severities.join(", ")
        );
    }
}

/// The whole report: the verdict with its conditions, the findings (or,
/// with `statistics`, their count per rule), then what was checked.
pub fn render(a: &Assessment, with_statistics: bool) -> String {
    let mut out = String::new();
    verdict(&mut out, a);
    let _ = writeln!(out);
    if with_statistics {
        statistics(&mut out, a);
        if !a.findings.is_empty() {
            let _ = writeln!(out);
        }
    } else {
        let texts = Texts::of(a);
        for f in &a.findings {
            finding(&mut out, &texts, f);
        }
    }
    let statements: usize = a.files.iter().map(|f| f.statements).sum();
    let against = match &a.live {
        Some(live) => {
            format!("live facts from {} (PostgreSQL {})", live.database, live.server_version)
        }
        None => {
            format!("static analysis only ({})", a.static_only.as_deref().unwrap_or("no database"))
        }
    };
    let _ =
        writeln!(out, "checked {} file(s), {statements} statement(s); {against}", a.files.len());
    if let Some(copy) = a.live.as_ref().and_then(|l| l.copy.as_deref()) {
        let _ = writeln!(out, "{}", terminal_safe(copy));
    }
    if let Some(expand) = &a.expand {
        let _ = writeln!(out, "{}", terminal_safe(&expand.line()));
    }
    if !a.findings.is_empty() {
        // The last line of a long report says the verdict again.
        let _ = writeln!(out, "verdict: {} ({})", a.verdict, counts(a));
    }
    out
}

/// What `migrate` prints when its check gate has assessed the run.
pub fn gate_summary(a: &Assessment, accepted: &[Code]) -> String {
    let mut out = format!("check: {} ({})\n", a.verdict, counts(a));
    for f in a.findings.iter().filter(|f| f.severity >= Severity::High) {
        let mark = if f.severity == Severity::Critical && accepted.contains(&f.code) {
            " (risk accepted with --accept-risk, recorded in the audit log)"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "  {}[{}] {}:{}: {}{mark}",
            f.severity, f.code, f.file, f.line, f.message
        );
    }
    if a.verdict == Verdict::ConditionalGo {
        for c in &a.conditions {
            let _ = writeln!(out, "  condition: {c}");
        }
    }
    if let Some(copy) = a.live.as_ref().and_then(|l| l.copy.as_deref()) {
        let _ = writeln!(out, "  {}", terminal_safe(copy));
    }
    if !a.served.is_empty() {
        let mut codes: Vec<&str> = a.served.iter().map(|f| f.code.as_str()).collect();
        codes.sort_unstable();
        codes.dedup();
        let _ = writeln!(
            out,
            "  set apart, not true of this step (the expand does the statements another way): \
             {} finding(s), {}",
            a.served.len(),
            codes.join(", ")
        );
    }
    out
}
