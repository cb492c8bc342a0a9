//! The risk assessment document: summary, risk matrix, details per risk,
//! a mitigation checklist and the verdict. Ready to paste into a pull
//! request. The text is the template `markdown.md` beside this file.

use backstop_core::check::Assessment;
use backstop_lint::{Code, Finding, Impact, Probability, Severity, Verdict};
use minijinja::{context, Environment};
use serde::Serialize;

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

/// The Markdown of the assessment; the text is `markdown.md` beside this
/// file.
const TEMPLATE: &str = include_str!("markdown.md");

/// A finding as the risk details list it.
#[derive(Serialize)]
struct FindingLine<'a> {
    file: &'a str,
    line: usize,
    column: usize,
    message: &'a str,
    facts: &'a [String],
    help: &'a str,
}

/// A finding as the suppressed and NO-GO lists name it.
#[derive(Serialize)]
struct Named<'a> {
    code: String,
    file: &'a str,
    line: usize,
    message: &'a str,
    /// The reason of its ignore comment, when it was suppressed.
    reason: &'a str,
}

impl<'a> Named<'a> {
    fn of(f: &'a Finding) -> Named<'a> {
        Named {
            code: f.code.to_string(),
            file: &f.file,
            line: f.line,
            message: &f.message,
            reason: f.suppressed.as_deref().unwrap_or_default(),
        }
    }
}

/// One risk of the matrix with everything its rows and details show.
#[derive(Serialize)]
struct RiskView<'a> {
    /// `R-001`: numbered in matrix order.
    id: String,
    risk: String,
    code: String,
    name: &'static str,
    family: &'static str,
    /// ` ×3` when the rule found it more than once.
    times: String,
    probability: &'static str,
    probability_title: String,
    impact: &'static str,
    impact_upper: String,
    severity: String,
    mitigation: &'a str,
    findings: Vec<FindingLine<'a>>,
    why_it_hurts: String,
    instead: String,
    /// Each distinct mitigation once, for the checklist.
    mitigations: Vec<&'a str>,
}

impl<'a> RiskView<'a> {
    fn of(index: usize, r: &Risk<'a>) -> RiskView<'a> {
        let meta = r.code.meta();
        let mut mitigations: Vec<&str> = Vec::new();
        for f in r.findings.iter().copied() {
            if !mitigations.contains(&f.mitigation.as_str()) {
                mitigations.push(&f.mitigation);
            }
        }
        RiskView {
            id: format!("R-{:03}", index + 1),
            risk: capitalize(meta.risk),
            code: r.code.to_string(),
            name: meta.name,
            family: meta.family.as_str(),
            times: if r.findings.len() > 1 {
                format!(" ×{}", r.findings.len())
            } else {
                String::new()
            },
            probability: r.probability.as_str(),
            probability_title: capitalize(r.probability.as_str()),
            impact: r.impact.as_str(),
            impact_upper: r.impact.as_str().to_uppercase(),
            severity: r.severity.as_str().to_uppercase(),
            // A risk groups at least one finding: `risks` opens one with it.
            mitigation: r
                .findings
                .first()
                .copied()
                .map(|f| f.mitigation.as_str())
                .unwrap_or_default(),
            findings: r
                .findings
                .iter()
                .copied()
                .map(|f| FindingLine {
                    file: &f.file,
                    line: f.line,
                    column: f.column,
                    message: &f.message,
                    facts: &f.facts,
                    help: &f.help,
                })
                .collect(),
            why_it_hurts: doc_part(r.code, "Why it hurts"),
            instead: doc_part(r.code, "Instead"),
            mitigations,
        }
    }
}

/// Renders the assessment.
pub fn render(a: &Assessment) -> Result<String, minijinja::Error> {
    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.add_filter("cell", |text: &str| backstop_core::kit::markdown::cell(text));
    env.add_template("markdown.md", TEMPLATE)?;
    let risks: Vec<RiskView<'_>> =
        risks(a).iter().enumerate().map(|(i, r)| RiskView::of(i, r)).collect();
    let by_severity: Vec<String> = Severity::DESCENDING
        .iter()
        .filter(|s| a.summary.count(**s) > 0)
        .map(|s| format!("{} {}", a.summary.count(*s), s.as_str().to_uppercase()))
        .collect();
    let go = match a.verdict {
        Verdict::NoGo => "no_go",
        Verdict::ConditionalGo => "conditional_go",
        Verdict::Go => "go",
    };
    let critical: Vec<Named<'_>> =
        a.findings.iter().filter(|f| f.severity == Severity::Critical).map(Named::of).collect();
    env.get_template("markdown.md")?.render(context! {
        files => a.files.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(),
        statements => a.files.iter().map(|f| f.statements).sum::<usize>(),
        live => a.live,
        static_only => a.static_only.as_deref().unwrap_or("no database"),
        verdict => a.verdict.to_string(),
        go => go,
        risks => risks,
        findings => a.findings.len(),
        by_severity => by_severity,
        suppressed => a.suppressed.iter().map(Named::of).collect::<Vec<_>>(),
        critical => critical,
        conditions => a.conditions,
    })
}

#[cfg(test)]
mod tests {
    use backstop_core::check::{analyze, Assessment, LiveInfo, Settings, Source};
    use backstop_lint::{Severity, Verdict};

    /// The assessment of one file of `sql`, with `users` protected.
    fn assess(sql: &str) -> Assessment {
        let sources = vec![Source {
            path: "migrations/1_m/up.sql".into(),
            text: sql.into(),
            no_transaction: false,
            outside_transaction: Vec::new(),
            has_down: Some(true),
            up_only: false,
            file_findings: Vec::new(),
        }];
        let settings = Settings {
            lint: backstop_lint::Options {
                protected_tables: vec!["users".into()],
                ..Default::default()
            },
            fail_on: Severity::Critical,
            required: false,
            config_file: "backstop.toml".into(),
            protected_made: Vec::new(),
            application_roles: Vec::new(),
            keep_downs: true,
        };
        let report = analyze(&sources, &settings);
        Assessment::new(sources, report, None)
    }

    fn no_go() -> Assessment {
        let mut a = assess(
            "-- backstop:ignore BS101 archived to meetings.csv\nDROP TABLE IF EXISTS meetings;\nDROP TABLE users;\n",
        );
        a.live = Some(LiveInfo {
            database: "postgres://u@h/db".into(),
            server_version: "17.2".into(),
            copy: None,
        });
        a.findings[0].facts.push("users holds 42 rows | 3 MB".into());
        a
    }

    fn conditional() -> Assessment {
        let mut a = assess("DROP TABLE IF EXISTS a;\nDROP TABLE IF EXISTS b;\n");
        a.static_only = Some("--offline".into());
        a
    }

    fn go() -> Assessment {
        assess("SELECT 1;\n")
    }

    #[test]
    fn a_no_go_lists_live_facts_suppressions_and_what_to_fix() {
        let md = super::render(&no_go()).unwrap();
        let lines: Vec<&str> = md.lines().collect();
        for expected in [
            "**Migrations:** `migrations/1_m/up.sql` (2 statements)  ",
            "**Database:** `postgres://u@h/db` (PostgreSQL 17.2): live facts checked",
            "**Go/No-Go decision: NO-GO**",
            "2 risk(s) identified from 2 finding(s): 1 CRITICAL, 1 MEDIUM (1 suppressed with a reason).",
            "- ❌ Do NOT proceed: critical risks below (a protected object lost, or a migration certain to fail)",
            "### R-001: Protected table dropped or emptied (CRITICAL)",
            "  - live: users holds 42 rows | 3 MB",
            "- [ ] R-001 (CRITICAL): Remove the statement: protected tables are never dropped, truncated or deleted from",
            "- `BS101` at `migrations/1_m/up.sql:2`: DROP TABLE meetings deletes the table and every row in it (reason: archived to meetings.csv)",
            "- `BS100` `migrations/1_m/up.sql:3`: DROP TABLE removes protected table users",
        ] {
            assert!(lines.contains(&expected), "missing {expected:?} in:\n{md}");
        }
        assert!(md.contains(
            "| R-001 | Protected table dropped or emptied (`BS100`) | Certain | CRITICAL | **CRITICAL** |"
        ));
    }

    #[test]
    fn a_conditional_go_counts_repeats_and_numbers_its_conditions() {
        let md = super::render(&conditional()).unwrap();
        assert!(md.contains("**Database:** not checked (static analysis only: --offline)\n"));
        assert!(md.contains(
            "| R-001 | Table dropped with its rows (`BS101` ×2) | Medium | HIGH | **HIGH** |"
        ));
        assert_eq!(md.matches("- [ ] R-001 (HIGH): ").count(), 1, "a mitigation is listed once");
        assert!(
            md.contains("**CONDITIONAL GO.** Proceed only when all of these hold:\n\n1. "),
            "{md}"
        );
    }

    #[test]
    fn a_go_without_risks_says_so_in_every_section() {
        let md = super::render(&go()).unwrap();
        assert!(md.contains("0 risk(s) identified from 0 finding(s).\n\n- ✅ Proceed; the notes below are worth a look\n"));
        assert!(md.contains("## Risk matrix\n\nNo risks found.\n\n## Mitigation checklist\n\nNothing to mitigate.\n"));
        assert!(!md.contains("## Risk details"));
        assert!(md.ends_with("## Verdict\n\n**GO.** No critical or high risk found.\n"), "{md}");
    }

    #[test]
    fn samples_have_their_verdicts() {
        assert_eq!(no_go().verdict, Verdict::NoGo);
        assert_eq!(conditional().verdict, Verdict::ConditionalGo);
        assert_eq!(go().verdict, Verdict::Go);
    }
}
