//! The drill's report: text for people (and for Slack and e-mail), and
//! Markdown a team pastes into its runbook as the "Last tested" section.
//! Both name every step with its time and target, the rows the target
//! wrote since the backup as each method would lose or keep them, and
//! every issue with its fix. Sent to the team only, never to users.

use std::fmt::Write as _;
use std::time::Duration;

use super::{Drill, Note, Observer, RowsSince, Setup, StepOutcome};
use crate::kit::markdown::cell;

fn human(ms: u64) -> String {
    crate::kit::duration::human(Duration::from_millis(ms))
}

fn verdict(d: &Drill) -> String {
    if d.passed {
        return "passed".into();
    }
    let of = |o: StepOutcome| -> Vec<&str> {
        d.steps.iter().filter(|s| s.outcome == o).map(|s| s.name.as_str()).collect()
    };
    let mut parts = Vec::new();
    for (o, word) in [(StepOutcome::Failed, "failed"), (StepOutcome::Slow, "slow")] {
        let names = of(o);
        if !names.is_empty() {
            parts.push(format!("{} step(s) {word} ({})", names.len(), names.join(", ")));
        }
    }
    format!("failed: {}", parts.join(", "))
}

fn heading(d: &Drill) -> String {
    let migrations = if d.migrations.is_empty() {
        "no migration".to_string()
    } else {
        format!(
            "{}{}",
            d.migrations.join(", "),
            if d.reapplied { ", applied again on the copy" } else { "" }
        )
    };
    format!(
        "drill {} of {} (PostgreSQL {}) on backup {} ({}, taken {}), release {} ({migrations})",
        d.id,
        d.database,
        d.server_major,
        d.backup.id,
        d.backup.kind,
        d.backup.created_at.format("%Y-%m-%d %H:%M UTC"),
        d.release.as_deref().unwrap_or("(none)"),
    )
}

/// What each method does with the rows written since the backup.
fn rows_text(r: &RowsSince) -> Vec<String> {
    if r.tables.is_empty() {
        return vec![format!(
            "no row written since backup {}: every method keeps what the database holds",
            r.backup_id
        )];
    }
    let delta = |t: &super::TableRows| format!("{} {:+}", t.table, t.now - t.in_backup);
    let all: Vec<String> = r.tables.iter().map(delta).collect();
    let gained: i64 = r.tables.iter().map(|t| (t.now - t.in_backup).max(0)).sum();
    let dropped: Vec<String> = r.tables.iter().filter(|t| t.dropped_by_c).map(delta).collect();
    vec![
        format!(
            "rows changed since backup {} ({}): {}",
            r.backup_id,
            r.backup_at.format("%Y-%m-%d %H:%M UTC"),
            all.join(", ")
        ),
        "method A keeps them all (it only turns flags off)".into(),
        format!(
            "method B sets {gained} row(s) written since aside with the state before the \
             restore (kept as a pre-restore snapshot, no longer seen by the application)"
        ),
        if dropped.is_empty() {
            "method C keeps them all".into()
        } else {
            format!(
                "method C keeps them but those of the tables the release created ({}), which its \
                 downs drop after exporting them",
                dropped.join(", ")
            )
        },
    ]
}

/// The report for people: the heading, a line a step, the rows, the
/// issues with their fixes, and the verdict.
pub fn text(d: &Drill) -> String {
    let mut out = format!("{}\n", heading(d));
    for s in &d.steps {
        let target = s.target_ms.map(|t| format!(", target {}", human(t))).unwrap_or_default();
        let _ = writeln!(
            out,
            "{} {} ({}{target}): {}",
            s.outcome.mark(),
            s.name,
            if s.outcome == StepOutcome::NotRun { "-".to_string() } else { human(s.took_ms) },
            s.detail
        );
    }
    if let Some(r) = &d.rows_since {
        for line in rows_text(r) {
            let _ = writeln!(out, "  {line}");
        }
    }
    if !d.issues.is_empty() {
        let _ = writeln!(out, "issues ({}):", d.issues.len());
        for i in &d.issues {
            let mark = if i.fails { "✗" } else { "⚠" };
            let _ = writeln!(out, "  {mark} {}: {}", i.step, i.problem);
            if !i.fix.is_empty() {
                let _ = writeln!(out, "    fix: {}", i.fix);
            }
        }
    }
    for c in &d.cleaned {
        let _ = writeln!(out, "cleaned: {c}");
    }
    let _ = writeln!(out, "drill {} in {}", verdict(d), human(d.duration_ms));
    out
}

/// The report as a runbook's "Last tested" section.
pub fn markdown(d: &Drill) -> String {
    let mut out = String::from("## Last tested\n\n");
    let _ = writeln!(
        out,
        "**{}** by {}: **{}** in {}.\n\n{}.\n",
        d.started_at.format("%Y-%m-%d %H:%M UTC"),
        cell(&d.by),
        verdict(d),
        human(d.duration_ms),
        heading(d).replacen("drill", "Drill", 1)
    );
    out.push_str("| Step | Outcome | Time | Target | What happened |\n|---|---|---|---|---|\n");
    for s in &d.steps {
        let _ = writeln!(
            out,
            "| {} | {} {} | {} | {} | {} |",
            s.name,
            s.outcome.mark(),
            s.outcome.word(),
            if s.outcome == StepOutcome::NotRun { "–".into() } else { human(s.took_ms) },
            s.target_ms.map(human).unwrap_or_else(|| "–".into()),
            cell(&s.detail)
        );
    }
    if let Some(r) = &d.rows_since {
        out.push_str("\n### Rows written since the backup\n\n");
        for line in rows_text(r) {
            let _ = writeln!(out, "- {}", cell(&line));
        }
    }
    out.push_str("\n### Issues found\n\n");
    if d.issues.is_empty() {
        out.push_str("None.\n");
    }
    for i in &d.issues {
        let _ = write!(
            out,
            "- {}**{}**: {}",
            if i.fails { "" } else { "(warning) " },
            i.step,
            i.problem
        );
        if !i.fix.is_empty() {
            let _ = write!(out, " *Fix:* {}", i.fix);
        }
        out.push('\n');
    }
    out
}

/// Sends the text report to the team (Slack, e-mail) where `[notify]`
/// says; where it went. A failure to send is a warning.
pub(super) fn send(setup: &Setup, d: &Drill, observer: &mut dyn Observer) -> Vec<String> {
    let n = &setup.notifier;
    let title =
        format!("{}: rollback drill {}", n.product, if d.passed { "passed" } else { "failed" });
    let body = text(d);
    let mut sent = Vec::new();
    match n.post_to_team(&title, &body) {
        Ok(true) => sent.push("Slack".to_string()),
        Ok(false) => {}
        Err(e) => observer.note(Note::Warning(&format!("the report did not reach Slack: {e}"))),
    }
    match n.mail_team(&title, &body) {
        Ok(true) => sent.push("e-mail".to_string()),
        Ok(false) => {}
        Err(e) => observer.note(Note::Warning(&format!("the report was not mailed: {e}"))),
    }
    sent
}
