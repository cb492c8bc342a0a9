//! The text report: each finding like a compiler diagnostic, then the
//! verdict with its conditions.

use std::fmt::Write as _;

use backstop_core::check::Assessment;
use backstop_lint::{Code, Finding, Severity, Verdict};

use crate::render::terminal_safe;

/// The line `line` (1-based) of `text`, tabs as spaces.
fn source_line(text: &str, line: usize) -> Option<String> {
    text.lines().nth(line.checked_sub(1)?).map(|l| l.replace('\t', "    "))
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

fn finding(out: &mut String, a: &Assessment, f: &Finding) {
    let _ = writeln!(out, "{}[{}]: {}", f.severity, f.code, terminal_safe(&f.message));
    let _ = writeln!(out, "  --> {}:{}:{}", terminal_safe(&f.file), f.line, f.column);
    let text = a.sources.iter().find(|s| s.path == f.file).map(|s| s.text.as_str());
    if let Some(line) = text.and_then(|t| source_line(t, f.line)) {
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

/// The whole report.
pub fn render(a: &Assessment) -> String {
    let mut out = String::new();
    for f in &a.findings {
        finding(&mut out, a, f);
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
    out
}
