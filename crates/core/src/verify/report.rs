//! What a run of the suite found, and how it is shown: text for people,
//! JSON for programs (the serde form), Markdown for PRs and incidents,
//! JUnit XML for CI.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use super::config::Severity;

/// The verdict on one check: a failed warning-severity check is `Warn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    Warn,
}

impl Status {
    /// The mark text and Markdown reports put before the check.
    pub fn mark(self) -> &'static str {
        match self {
            Status::Pass => "✅",
            Status::Fail => "❌",
            Status::Warn => "⚠",
        }
    }
}

/// One check's result.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    pub name: String,
    pub kind: String,
    pub severity: Severity,
    pub status: Status,
    /// What was found, in a sentence: why it passed or failed.
    pub detail: String,
    pub duration_ms: u64,
}

/// The whole suite's result.
#[derive(Debug, Clone, Serialize)]
pub struct SuiteReport {
    pub checks: Vec<CheckResult>,
    pub passed: usize,
    pub failed: usize,
    pub warned: usize,
    pub duration_ms: u64,
}

impl SuiteReport {
    /// Counts the statuses of `checks`.
    pub fn new(checks: Vec<CheckResult>, duration: Duration) -> SuiteReport {
        let count = |s: Status| checks.iter().filter(|c| c.status == s).count();
        SuiteReport {
            passed: count(Status::Pass),
            failed: count(Status::Fail),
            warned: count(Status::Warn),
            duration_ms: millis(duration),
            checks,
        }
    }

    /// True when no critical check failed.
    pub fn ok(&self) -> bool {
        self.failed == 0
    }

    /// One line: passed or failed, with the counts and the time.
    pub fn summary(&self) -> String {
        let total = self.checks.len();
        let time = crate::kit::duration::human(Duration::from_millis(self.duration_ms));
        let warnings = match self.warned {
            0 => String::new(),
            1 => ", 1 warning".to_string(),
            n => format!(", {n} warnings"),
        };
        if self.ok() {
            format!("verify passed: {}/{total} checks{warnings} in {time}", self.passed)
        } else {
            format!(
                "verify FAILED: {} critical check(s) failed, {}/{total} passed{warnings} in {time}",
                self.failed, self.passed
            )
        }
    }

    /// ✅/❌/⚠ lines with details and timings, then the summary.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for c in &self.checks {
            let _ = writeln!(
                out,
                "{} {}: {} ({})",
                c.status.mark(),
                c.name,
                c.detail,
                crate::kit::duration::human(Duration::from_millis(c.duration_ms))
            );
        }
        let _ = writeln!(out, "{}", self.summary());
        out
    }

    /// A Markdown table, for PR comments and incident reports.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "### {}\n", self.summary());
        let _ = writeln!(out, "| | check | kind | detail | time |");
        let _ = writeln!(out, "|---|---|---|---|---|");
        for c in &self.checks {
            let _ = writeln!(
                out,
                "| {} | {} | `{}` | {} | {} |",
                c.status.mark(),
                crate::kit::markdown::cell(&c.name),
                c.kind,
                crate::kit::markdown::cell(&c.detail),
                crate::kit::duration::human(Duration::from_millis(c.duration_ms))
            );
        }
        out
    }

    /// JUnit XML: one testcase per check; a critical failure is a
    /// `<failure>`, a warning passes with the reason in `<system-out>`.
    pub fn junit(&self) -> String {
        let secs = |ms: u64| format!("{:.3}", ms as f64 / 1000.0);
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let totals = format!(
            "tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"0\" time=\"{}\"",
            self.checks.len(),
            self.failed,
            secs(self.duration_ms)
        );
        let _ = writeln!(out, "<testsuites name=\"backstop verify\" {totals}>");
        let _ = writeln!(out, "  <testsuite name=\"backstop verify\" {totals}>");
        for c in &self.checks {
            let _ = write!(
                out,
                "    <testcase name=\"{}\" classname=\"backstop.verify.{}\" time=\"{}\"",
                xml(&c.name),
                xml(&c.kind),
                secs(c.duration_ms)
            );
            match c.status {
                Status::Pass => {
                    let _ = writeln!(
                        out,
                        ">\n      <system-out>{}</system-out>\n    </testcase>",
                        xml(&c.detail)
                    );
                }
                Status::Warn => {
                    let _ = writeln!(
                        out,
                        ">\n      <system-out>warning: {}</system-out>\n    </testcase>",
                        xml(&c.detail)
                    );
                }
                Status::Fail => {
                    let _ = writeln!(
                        out,
                        ">\n      <failure message=\"{}\" type=\"critical\">{}</failure>\n    </testcase>",
                        xml(&first_line(&c.detail)),
                        xml(&c.detail)
                    );
                }
            }
        }
        out.push_str("  </testsuite>\n</testsuites>\n");
        out
    }
}

fn millis(d: Duration) -> u64 {
    d.as_millis().try_into().unwrap_or(u64::MAX)
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_string()
}

/// Escapes text for XML content and attributes; drops characters XML 1.0
/// cannot hold at all.
fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(ch),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(name: &str, status: Status, detail: &str) -> CheckResult {
        CheckResult {
            name: name.into(),
            kind: "sql".into(),
            severity: if status == Status::Warn { Severity::Warning } else { Severity::Critical },
            status,
            detail: detail.into(),
            duration_ms: 12,
        }
    }

    fn sample() -> SuiteReport {
        SuiteReport::new(
            vec![
                result("tables <exist>", Status::Pass, "clients, meetings exist"),
                result("orphans & \"leaks\"", Status::Fail, "3 orphan rows\nsecond line"),
                result("slow | query", Status::Warn, "p95 900ms above 300ms"),
            ],
            Duration::from_millis(1234),
        )
    }

    #[test]
    fn text_marks_each_check_and_sums_up() {
        let text = sample().text();
        assert!(text.contains("✅ tables <exist>: clients, meetings exist (12 ms)"), "{text}");
        assert!(text.contains("❌ orphans & \"leaks\": 3 orphan rows"), "{text}");
        assert!(text.contains("⚠ slow | query: p95"), "{text}");
        assert!(
            text.ends_with(
                "verify FAILED: 1 critical check(s) failed, 1/3 passed, 1 warning in 1.2 s\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn junit_escapes_and_counts_failures() {
        let xml = sample().junit();
        assert!(xml.contains("tests=\"3\" failures=\"1\""), "{xml}");
        assert!(xml.contains("name=\"tables &lt;exist&gt;\""), "{xml}");
        assert!(xml.contains("<failure message=\"3 orphan rows\" type=\"critical\">3 orphan rows\nsecond line</failure>"), "{xml}");
        assert!(xml.contains("name=\"orphans &amp; &quot;leaks&quot;\""), "{xml}");
        assert!(xml.contains("<system-out>warning: p95"), "{xml}");
        assert_eq!(xml.matches("<testcase ").count(), xml.matches("</testcase>").count());
        assert_eq!(super::xml("a\u{1}b"), "ab");
    }

    #[test]
    fn markdown_escapes_cells() {
        let md = sample().markdown();
        assert!(md.contains("| ⚠ | slow \\| query | `sql` |"), "{md}");
        assert!(md.contains("3 orphan rows<br>second line"), "{md}");
    }

    #[test]
    fn json_has_the_contract_fields() {
        let v = serde_json::to_value(sample()).unwrap();
        let first = &v["checks"][0];
        for key in ["name", "kind", "status", "detail"] {
            assert!(first.get(key).is_some(), "{key} missing in {first}");
        }
        assert_eq!(v["checks"][1]["status"], "fail");
        assert_eq!(v["checks"][2]["status"], "warn");
    }
}
