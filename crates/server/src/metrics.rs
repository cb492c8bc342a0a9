//! `GET /metrics` in Prometheus' text exposition format: the flags' states,
//! the evaluations served by flag and reason, the stream's clients, the
//! ages of the last migration, backup, rehearsal and rollback decision, and
//! that decision's evidence: each trigger's state and the latest sample it
//! rested on; the last drill, its age and each step's outcome.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Mutex;

use backstop_core::flags::Evaluation;

use crate::Shared;

/// The one label every key that names no flag is counted under: keys
/// come from unauthenticated requests, and a series each would grow the
/// server and `/metrics` without bound.
const UNKNOWN: &str = "(unknown)";

/// Counters the handlers add to.
#[derive(Default)]
pub(crate) struct Metrics {
    /// (flag, reason) → evaluations served.
    evaluations: Mutex<BTreeMap<(String, String), u64>>,
}

impl Metrics {
    pub fn evaluated(&self, evaluations: &[Evaluation]) {
        let mut map = self.evaluations.lock().unwrap_or_else(|e| e.into_inner());
        for e in evaluations {
            let reason = serde_json::to_value(e.reason)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            let flag = match e.error_code {
                Some(backstop_core::flags::eval::ErrorCode::FlagNotFound) => UNKNOWN.to_string(),
                _ => e.key.clone(),
            };
            *map.entry((flag, reason)).or_default() += 1;
        }
    }
}

/// A label value as the exposition format wants it: backslash, double
/// quote and newline escaped.
fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

pub(crate) fn render(shared: &Shared) -> String {
    let mut out = String::new();
    let now = chrono::Utc::now();
    let age = |at: chrono::DateTime<chrono::Utc>| (now - at).num_milliseconds() as f64 / 1000.0;

    family(&mut out, "backstop_flag_enabled", "gauge", "1 when the flag is on, 0 when off.");
    let evaluator = shared.evaluator();
    for f in evaluator.flags() {
        let _ = writeln!(
            out,
            "backstop_flag_enabled{{flag=\"{}\",release=\"{}\"}} {}",
            label(&f.key),
            label(&f.release),
            u8::from(f.enabled())
        );
    }

    family(
        &mut out,
        "backstop_flag_evaluations_total",
        "counter",
        "Flag evaluations served, by flag and reason.",
    );
    for ((flag, reason), n) in
        shared.metrics.evaluations.lock().unwrap_or_else(|e| e.into_inner()).iter()
    {
        let _ = writeln!(
            out,
            "backstop_flag_evaluations_total{{flag=\"{}\",reason=\"{}\"}} {n}",
            label(flag),
            label(reason)
        );
    }

    family(&mut out, "backstop_stream_clients", "gauge", "Clients connected to the event stream.");
    let _ =
        writeln!(out, "backstop_stream_clients {}", shared.stream_clients.load(Ordering::SeqCst));
    family(&mut out, "backstop_sync_clients", "gauge", "Clients connected to the gRPC flag sync.");
    let _ = writeln!(out, "backstop_sync_clients {}", shared.sync_clients.load(Ordering::SeqCst));

    family(
        &mut out,
        "backstop_ready",
        "gauge",
        "1 when the database is reachable and the flags are fresh.",
    );
    let _ = writeln!(out, "backstop_ready {}", u8::from(shared.ready.load(Ordering::SeqCst)));

    let overview = shared.overview.read().unwrap_or_else(|e| e.into_inner()).clone();
    family(&mut out, "backstop_migrations_applied", "gauge", "Migrations applied.");
    let _ = writeln!(out, "backstop_migrations_applied {}", overview.applied.len());
    family(
        &mut out,
        "backstop_migrations_pending",
        "gauge",
        "Migrations in the folder not applied yet.",
    );
    let _ = writeln!(out, "backstop_migrations_pending {}", overview.pending.len());
    let ages = [
        (
            "backstop_last_migration_age_seconds",
            "Seconds since the last migration was applied.",
            overview.applied.iter().map(|(_, _, at)| *at).max(),
        ),
        (
            "backstop_last_backup_age_seconds",
            "Seconds since the newest backup was taken.",
            overview.backups.first().map(|b| b.created_at),
        ),
        (
            "backstop_last_rehearsal_age_seconds",
            "Seconds since the last rehearsal.",
            overview.rehearsal.as_ref().map(|(at, _, _)| *at),
        ),
        (
            "backstop_last_decision_age_seconds",
            "Seconds since the last rollback decision.",
            overview.last_decision,
        ),
        (
            "backstop_watch_last_sample_age_seconds",
            "Seconds since a running watch last sampled its triggers: a decision older than the watch's last sample is current; with no recent sample it was left by a watch that stopped.",
            overview.watching.as_ref().map(|b| b.at),
        ),
    ];
    for (name, help, at) in ages {
        if let Some(at) = at {
            family(&mut out, name, "gauge", help);
            let _ = writeln!(out, "{name} {:.3}", age(at));
        }
    }
    if let Some(d) = &overview.decision {
        decision(&mut out, d);
    }
    if let Some(due) = &overview.drill {
        drill(&mut out, due, now);
    }
    ramps(&mut out, &overview.ramps);
    if let Some((_, ok, _)) = &overview.rehearsal {
        family(
            &mut out,
            "backstop_last_rehearsal_ok",
            "gauge",
            "1 when the last rehearsal passed.",
        );
        let _ = writeln!(out, "backstop_last_rehearsal_ok {}", u8::from(*ok));
    }
    out
}

/// The last drill: the age of the last one that passed (what `drill
/// --due` holds against `[drill] every`), whether a drill is due, and each
/// step of the last drill with its outcome, time and target.
fn drill(out: &mut String, due: &backstop_core::drill::Due, now: chrono::DateTime<chrono::Utc>) {
    if let Some(at) = due.last_passed {
        family(
            out,
            "backstop_drill_age_seconds",
            "gauge",
            "Seconds since the last passed rollback drill finished.",
        );
        let _ = writeln!(
            out,
            "backstop_drill_age_seconds {:.3}",
            (now - at).num_milliseconds() as f64 / 1000.0
        );
    }
    family(
        out,
        "backstop_drill_every_seconds",
        "gauge",
        "[drill] every: how old the last passed drill may be.",
    );
    let _ = writeln!(out, "backstop_drill_every_seconds {:.3}", due.every_ms as f64 / 1000.0);
    family(out, "backstop_drill_due", "gauge", "1 when no drill passed within [drill] every.");
    let _ = writeln!(out, "backstop_drill_due {}", u8::from(due.overdue));
    let Some(last) = &due.last else { return };
    family(
        out,
        "backstop_drill_last_passed",
        "gauge",
        "1 when the last drill passed (0: failed or interrupted).",
    );
    let _ = writeln!(out, "backstop_drill_last_passed {}", u8::from(last.passed()));
    let steps = last.steps.as_array().cloned().unwrap_or_default();
    if steps.is_empty() {
        return;
    }
    family(
        out,
        "backstop_drill_step",
        "gauge",
        "1 for each step of the last drill with its outcome (passed, slow, failed, not_run).",
    );
    for s in &steps {
        let _ = writeln!(
            out,
            "backstop_drill_step{{step=\"{}\",outcome=\"{}\"}} 1",
            label(s["name"].as_str().unwrap_or("")),
            label(s["outcome"].as_str().unwrap_or(""))
        );
    }
    family(
        out,
        "backstop_drill_step_seconds",
        "gauge",
        "How long each step of the last drill took.",
    );
    for s in &steps {
        let _ = writeln!(
            out,
            "backstop_drill_step_seconds{{step=\"{}\"}} {:.3}",
            label(s["name"].as_str().unwrap_or("")),
            s["took_ms"].as_f64().unwrap_or(0.0) / 1000.0
        );
    }
    family(
        out,
        "backstop_drill_step_target_seconds",
        "gauge",
        "The runbook's target for each step of the last drill that has one ([drill]).",
    );
    for s in steps.iter().filter(|s| s["target_ms"].is_number()) {
        let _ = writeln!(
            out,
            "backstop_drill_step_target_seconds{{step=\"{}\"}} {:.3}",
            label(s["name"].as_str().unwrap_or("")),
            s["target_ms"].as_f64().unwrap_or(0.0) / 1000.0
        );
    }
}

/// The running release ramps: the share each serves, its step, when the
/// next is due, and whether a process carries it on.
fn ramps(out: &mut String, ramps: &[backstop_core::flags::ramp::RampStatus]) {
    if ramps.is_empty() {
        return;
    }
    family(
        out,
        "backstop_ramp_share",
        "gauge",
        "The share (per cent) a running release ramp serves now.",
    );
    for s in ramps {
        let _ = writeln!(
            out,
            "backstop_ramp_share{{release=\"{}\"}} {}",
            label(&s.ramp.release),
            s.share
        );
    }
    family(
        out,
        "backstop_ramp_step",
        "gauge",
        "The step a running release ramp is at (1 is the first), of `steps`.",
    );
    for s in ramps {
        let _ = writeln!(
            out,
            "backstop_ramp_step{{release=\"{}\",steps=\"{}\"}} {}",
            label(&s.ramp.release),
            s.ramp.steps.len(),
            s.ramp.step + 1
        );
    }
    family(
        out,
        "backstop_ramp_next_step_seconds",
        "gauge",
        "Seconds until a running ramp's next step is due (0: due, waiting for the triggers to be clear).",
    );
    for s in ramps {
        if let Some(d) = s.ramp.due_in() {
            let _ = writeln!(
                out,
                "backstop_ramp_next_step_seconds{{release=\"{}\"}} {:.3}",
                label(&s.ramp.release),
                d.as_secs_f64()
            );
        }
    }
    family(
        out,
        "backstop_ramp_carried",
        "gauge",
        "1 when a process (flags ramp or watch) carries the ramp on; 0: it stands still until one does.",
    );
    for s in ramps {
        let _ = writeln!(
            out,
            "backstop_ramp_carried{{release=\"{}\"}} {}",
            label(&s.ramp.release),
            u8::from(s.carried)
        );
    }
}

/// The latest decision as recorded by `watch` (or `decide`): its verdict,
/// and per trigger its state and the newest sample of its evidence.
fn decision(out: &mut String, d: &serde_json::Value) {
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("").to_string();
    family(
        out,
        "backstop_decision",
        "gauge",
        "The latest decision: 1 for its verdict (ok, hold, rollback) and method.",
    );
    let _ = writeln!(
        out,
        "backstop_decision{{verdict=\"{}\",method=\"{}\"}} 1",
        label(&text(&d["verdict"])),
        label(d["method"].as_str().unwrap_or("none"))
    );
    let evidence = d["evidence"].as_array().cloned().unwrap_or_default();
    family(
        out,
        "backstop_trigger_state",
        "gauge",
        "1 for each trigger's state in the latest decision (ok, pending, breach, declining, no_data, insufficient, recovering, escalate).",
    );
    for e in &evidence {
        let _ = writeln!(
            out,
            "backstop_trigger_state{{trigger=\"{}\",state=\"{}\",rule=\"{}\"}} 1",
            label(&text(&e["trigger"])),
            label(&text(&e["state"])),
            label(&text(&e["rule"]))
        );
    }
    family(
        out,
        "backstop_trigger_value",
        "gauge",
        "The newest sample the latest decision rested on, per trigger (absent when it had no value).",
    );
    for e in &evidence {
        let latest = e["samples"].as_array().and_then(|s| s.last());
        if let Some(v) = latest.and_then(|s| s["value"].as_f64()) {
            let _ = writeln!(
                out,
                "backstop_trigger_value{{trigger=\"{}\"}} {v}",
                label(&text(&e["trigger"]))
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::label;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
