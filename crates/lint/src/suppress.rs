//! `-- backstop:ignore CODE reason` comments: a finding on the next line of
//! code (or in the statement that starts there) is suppressed when the
//! comment names its rule and gives a reason. Critical findings cannot be
//! suppressed this way; `backstop migrate --accept-risk CODE` accepts them,
//! audited.

use std::cell::Cell;

use pg_query::protobuf::{ScanToken, Token};

use crate::codes::Code;
use crate::context::{Cx, Hit};
use crate::model::{Finding, Ignore, Severity};

/// The comment's prefix.
pub const IGNORE_PREFIX: &str = "backstop:ignore";

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Finds the ignore comments of a file.
pub(crate) fn parse(text: &str, tokens: &[ScanToken]) -> Vec<Ignore> {
    let mut out = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        if t.token != Token::SqlComment as i32 {
            continue;
        }
        let span = t.start as usize..t.end as usize;
        let Some(body) = text.get(span.clone()).and_then(|c| c.strip_prefix("--")) else {
            continue;
        };
        let Some(rest) = body.trim_start().strip_prefix(IGNORE_PREFIX) else { continue };
        if !(rest.is_empty() || rest.starts_with(char::is_whitespace)) {
            continue;
        }
        let rest = rest.trim();
        let (list, reason) = match rest.split_once(char::is_whitespace) {
            Some((list, reason)) => (list, reason.trim()),
            None => (rest, ""),
        };
        let mut codes = Vec::new();
        let mut problem = None;
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match Code::lookup(item) {
                Some(code) => codes.push(code),
                None => {
                    problem = Some(format!(
                        "`{item}` is not a rule code or name; `backstop explain` lists them"
                    ))
                }
            }
        }
        if list.is_empty() {
            problem = Some(
                "names no rule; write `-- backstop:ignore CODE reason`, e.g. `-- backstop:ignore BS101 archived to meetings.csv`"
                    .into(),
            );
        } else if problem.is_none() && reason.is_empty() {
            problem = Some(format!(
                "gives no reason; say why it is safe, e.g. `-- backstop:ignore {list} table is empty since release 41`"
            ));
        }
        let target_line = tokens[i + 1..]
            .iter()
            .find(|n| n.token != Token::SqlComment as i32 && n.token != Token::CComment as i32)
            .map(|n| line_of(text, n.start as usize));
        out.push(Ignore {
            span,
            target_line,
            codes,
            reason: reason.to_string(),
            problem,
            used: Cell::new(false),
        });
    }
    out
}

/// Marks findings that a valid ignore covers as suppressed. Returns the
/// hits for ignores aimed at critical findings, which stay in force.
pub(crate) fn apply(cx: &Cx<'_>, findings: &mut [Finding]) -> Vec<Hit> {
    let mut extra = Vec::new();
    for f in findings.iter_mut() {
        let stmt_line =
            f.statement.and_then(|s| cx.stmts.get(s - 1)).map(|s| cx.lines.line(s.start));
        let ignore = cx.ignores.iter().find(|ig| {
            ig.problem.is_none()
                && ig.codes.contains(&f.code)
                && ig.target_line.is_some_and(|l| l == f.line || Some(l) == stmt_line)
        });
        let Some(ignore) = ignore else { continue };
        ignore.used.set(true);
        if f.severity == Severity::Critical {
            extra.push(Hit {
                code: Code::BS002,
                stmt: None,
                span: ignore.span.clone(),
                message: format!(
                    "{} is critical and cannot be ignored with a comment",
                    f.code
                ),
                help: format!(
                    "fix the statement, or accept the risk when migrating: `backstop migrate --accept-risk {}` (recorded in the audit log)",
                    f.code
                ),
                subject: None,
                rating: None,
                latent: false,
            });
        } else {
            f.suppressed = Some(ignore.reason.clone());
        }
    }
    extra
}

#[cfg(test)]
mod tests {
    use crate::analyze::check;
    use crate::context::{Input, Options};

    fn run(sql: &str) -> Vec<(String, bool)> {
        let opts = Options { runner_sets_lock_timeout: true, ..Options::default() };
        let report = check(&[Input::file("t.sql", sql)], &opts);
        report.findings.iter().map(|f| (f.code.to_string(), f.suppressed.is_some())).collect()
    }

    #[test]
    fn an_ignore_with_a_reason_suppresses_the_next_statement() {
        let sql = "-- backstop:ignore BS101 archived to meetings.csv on 2026-01-05\nDROP TABLE IF EXISTS meetings;\n";
        assert_eq!(run(sql), vec![("BS101".to_string(), true)]);
    }

    #[test]
    fn names_work_like_codes_and_several_can_be_listed() {
        let sql = "-- backstop:no-transaction\n-- backstop:ignore drop-table,BS401 archived first\nDROP TABLE meetings;\n";
        assert_eq!(run(sql), vec![("BS401".into(), true), ("BS101".into(), true)]);
    }

    #[test]
    fn an_ignore_without_reason_suppresses_nothing_and_is_reported() {
        let sql = "-- backstop:ignore BS101\nDROP TABLE IF EXISTS meetings;\n";
        assert_eq!(run(sql), vec![("BS002".into(), false), ("BS101".into(), false)]);
    }

    #[test]
    fn an_unused_ignore_is_reported() {
        let sql =
            "-- backstop:ignore BS101 nothing to see\nCREATE TABLE IF NOT EXISTS t (id int);\n";
        assert_eq!(run(sql), vec![("BS001".into(), false)]);
    }

    #[test]
    fn critical_findings_cannot_be_ignored() {
        let sql = "-- backstop:ignore BS402 we know\nBEGIN;\n";
        assert_eq!(run(sql), vec![("BS002".into(), false), ("BS402".into(), false)]);
    }
}
