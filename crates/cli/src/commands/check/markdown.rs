//! The risk assessment document: summary, risk matrix, details per risk,
//! a mitigation checklist and the verdict. Ready to paste into a pull
//! request.

use std::fmt::Write as _;

use backstop_core::check::Assessment;
use backstop_lint::{Code, Finding, Impact, Probability, Severity, Verdict};

/// One row of the matrix: the findings of one rule at one rating.
struct Risk<'a> {
    code: Code,
    severity: Severity,
    probability: Probability,
    impact: Impact,
    findings: Vec<&'a Finding>,
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// The paragraph of a rule's docs that starts with `**{part}:**`.
fn doc_part(code: Code, part: &str) -> String {
    let docs = code.docs();
    let marker = format!("**{part}:**");
    let Some(start) = docs.find(&marker) else { return String::new() };
    let rest = &docs[start + marker.len()..];
    let end = rest.find("\n\n").unwrap_or(rest.len());
    rest[..end].split_whitespace().collect::<Vec<_>>().join(" ")
}

fn risks(a: &Assessment) -> Vec<Risk<'_>> {
    let mut out: Vec<Risk<'_>> = Vec::new();
    for f in &a.findings {
        match out.iter_mut().find(|r| {
            r.code == f.code
                && r.severity == f.severity
                && r.probability == f.probability
                && r.impact == f.impact
        }) {
            Some(r) => r.findings.push(f),
            None => out.push(Risk {
                code: f.code,
                severity: f.severity,
                probability: f.probability,
                impact: f.impact,
                findings: vec![f],
            }),
        }
    }
    out.sort_by_key(|r| (std::cmp::Reverse(r.severity), r.code));
    out
}

fn cell(text: &str) -> String {
    backstop_core::kit::markdown::cell(text)
}

pub fn render(a: &Assessment) -> String {
    let risks = risks(a);
    let mut out = String::new();
    let _ = writeln!(out, "# Migration risk assessment\n");
    let statements: usize = a.files.iter().map(|f| f.statements).sum();
    let files: Vec<String> = a.files.iter().map(|f| format!("`{}`", f.path)).collect();
    let _ = writeln!(out, "**Migrations:** {} ({statements} statements)  ", files.join(", "));
    match &a.live {
        Some(live) => {
            let _ = writeln!(
                out,
                "**Database:** `{}` (PostgreSQL {}): live facts checked",
                live.database, live.server_version
            );
        }
        None => {
            let why = a.static_only.as_deref().unwrap_or("no database");
            let _ = writeln!(out, "**Database:** not checked (static analysis only: {why})");
        }
    }

    let _ = writeln!(out, "\n## Summary\n");
    let _ = writeln!(out, "**Go/No-Go decision: {}**\n", a.verdict);
    let by_severity: Vec<String> = Severity::DESCENDING
        .iter()
        .filter(|s| a.summary.count(**s) > 0)
        .map(|s| format!("{} {}", a.summary.count(*s), s.as_str().to_uppercase()))
        .collect();
    let _ = write!(out, "{} risk(s) identified from {} finding(s)", risks.len(), a.findings.len());
    if !by_severity.is_empty() {
        let _ = write!(out, ": {}", by_severity.join(", "));
    }
    if !a.suppressed.is_empty() {
        let _ = write!(out, " ({} suppressed with a reason)", a.suppressed.len());
    }
    let _ = writeln!(out, ".\n");
    match a.verdict {
        Verdict::NoGo => {
            let _ = writeln!(out, "- ❌ Do NOT proceed: critical risks below (a protected object lost, or a migration certain to fail)");
        }
        Verdict::ConditionalGo => {
            let _ = writeln!(out, "- ✅ Proceed if: every mitigation of a HIGH risk is in place");
            let _ = writeln!(out, "- ❌ Do NOT proceed if: any of them is not");
        }
        Verdict::Go => {
            let _ = writeln!(out, "- ✅ Proceed; the notes below are worth a look");
        }
    }

    let _ = writeln!(out, "\n## Risk matrix\n");
    if risks.is_empty() {
        let _ = writeln!(out, "No risks found.");
    } else {
        let _ = writeln!(out, "| ID | Risk | Probability | Impact | Severity | Mitigation |");
        let _ = writeln!(out, "|----|------|-------------|--------|----------|------------|");
        for (i, r) in risks.iter().enumerate() {
            let meta = r.code.meta();
            let times = if r.findings.len() > 1 {
                format!(" ×{}", r.findings.len())
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "| R-{:03} | {} (`{}`{times}) | {} | {} | **{}** | {} |",
                i + 1,
                cell(&capitalize(meta.risk)),
                r.code,
                capitalize(r.probability.as_str()),
                r.impact.as_str().to_uppercase(),
                r.severity.as_str().to_uppercase(),
                cell(&r.findings[0].mitigation)
            );
        }
        let _ = writeln!(
            out,
            "\n**Severity = Probability × Impact** (1–4 each): 12 and above CRITICAL, 6–9 HIGH, 2–4 MEDIUM, 1 LOW."
        );
    }

    if !risks.is_empty() {
        let _ = writeln!(out, "\n## Risk details");
        for (i, r) in risks.iter().enumerate() {
            let meta = r.code.meta();
            let _ = writeln!(
                out,
                "\n### R-{:03}: {} ({})\n",
                i + 1,
                capitalize(meta.risk),
                r.severity.as_str().to_uppercase()
            );
            let _ = writeln!(
                out,
                "`{}` {} · {} · probability {} × impact {} · `backstop explain {}`\n",
                r.code,
                meta.name,
                meta.family.as_str(),
                r.probability.as_str(),
                r.impact.as_str(),
                r.code
            );
            for f in &r.findings {
                let _ = writeln!(out, "- `{}:{}:{}`: {}", f.file, f.line, f.column, f.message);
                for fact in &f.facts {
                    let _ = writeln!(out, "  - live: {fact}");
                }
                let _ = writeln!(out, "  - instead: {}", f.help);
            }
            let _ = writeln!(out, "\n**Why it hurts:** {}\n", doc_part(r.code, "Why it hurts"));
            let _ = writeln!(out, "**Mitigation:** {}", doc_part(r.code, "Instead"));
        }
    }

    let _ = writeln!(out, "\n## Mitigation checklist\n");
    if risks.is_empty() {
        let _ = writeln!(out, "Nothing to mitigate.");
    }
    for (i, r) in risks.iter().enumerate() {
        let mut seen: Vec<&str> = Vec::new();
        for f in &r.findings {
            if !seen.contains(&f.mitigation.as_str()) {
                seen.push(&f.mitigation);
                let _ = writeln!(
                    out,
                    "- [ ] R-{:03} ({}): {}",
                    i + 1,
                    r.severity.as_str().to_uppercase(),
                    f.mitigation
                );
            }
        }
    }
    if !a.suppressed.is_empty() {
        let _ = writeln!(out, "\nSuppressed with a reason (`-- backstop:ignore`):\n");
        for f in &a.suppressed {
            let _ = writeln!(
                out,
                "- `{}` at `{}:{}`: {} (reason: {})",
                f.code,
                f.file,
                f.line,
                f.message,
                f.suppressed.as_deref().unwrap_or_default()
            );
        }
    }

    let _ = writeln!(out, "\n## Verdict\n");
    match a.verdict {
        Verdict::NoGo => {
            let _ = writeln!(out, "**NO-GO.** Fix these before migrating (or accept each with `backstop migrate --accept-risk CODE`, which is audited):\n");
            for f in a.findings.iter().filter(|f| f.severity == Severity::Critical) {
                let _ = writeln!(out, "- `{}` `{}:{}`: {}", f.code, f.file, f.line, f.message);
            }
        }
        Verdict::ConditionalGo => {
            let _ = writeln!(out, "**CONDITIONAL GO.** Proceed only when all of these hold:\n");
            for (i, c) in a.conditions.iter().enumerate() {
                let _ = writeln!(out, "{}. {c}", i + 1);
            }
        }
        Verdict::Go => {
            let _ = writeln!(out, "**GO.** No critical or high risk found.");
        }
    }
    out
}
