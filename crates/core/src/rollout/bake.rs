//! A wave's bake: for `bake` after its databases ran, the `[[triggers]]`
//! are sampled at their intervals and decided by the pure
//! [`crate::decide`]: a SQL trigger per database (its query runs on each
//! of the wave's databases, read only), the others (Prometheus, HTTP, a
//! command) once per wave. A rollback verdict on any database halts the
//! rollout at once; at the end every trigger is sampled once more and
//! every database's verdict must be "ok" (no data is never a pass).
//! Nothing is carried out: the breach halts the rollout, and `rollout
//! --undo` or the response methods are a person's call.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::json;

use super::Target;
use crate::decide::sample::Sampler;
use crate::decide::{self, DecideSection, Sample, Source, Trigger, Verdict};

/// What a bake came to, with the evidence recorded on the wave.
#[derive(Debug, Clone)]
pub enum Baked {
    /// Every trigger held on every database to the end.
    Held { evidence: serde_json::Value },
    /// A trigger breached.
    Breach { reason: String, evidence: serde_json::Value },
    /// At the end, a trigger had no data or too few samples to judge.
    Inconclusive { reason: String, evidence: serde_json::Value },
}

impl Baked {
    /// `held`, `breach` or `inconclusive`.
    pub fn verdict(&self) -> &'static str {
        match self {
            Baked::Held { .. } => "held",
            Baked::Breach { .. } => "breach",
            Baked::Inconclusive { .. } => "inconclusive",
        }
    }

    pub fn evidence(&self) -> &serde_json::Value {
        match self {
            Baked::Held { evidence }
            | Baked::Breach { evidence, .. }
            | Baked::Inconclusive { evidence, .. } => evidence,
        }
    }
}

/// Where a decision is made: one database (SQL triggers on it with the
/// wave's others) or the wave as a whole.
struct Scope<'a> {
    database: Option<&'a Target>,
    series: BTreeMap<String, Vec<Sample>>,
}

/// Bakes a wave whose `databases` went through.
pub fn bake(
    triggers: &[Trigger],
    section: &DecideSection,
    databases: &[&Target],
    bake: Duration,
) -> Baked {
    let start = Instant::now();
    if triggers.is_empty() {
        std::thread::sleep(bake);
        return Baked::Held {
            evidence: json!({ "verdict": "held", "reason": "no [[triggers]]: the bake only waited" }),
        };
    }
    let per_database = |t: &Trigger| matches!(t.source, Source::Sql { .. });
    let has_sql = triggers.iter().any(per_database) && !databases.is_empty();
    // The triggers each scope decides on: a database's SQL ones and the
    // wave's; the wave alone has only the others.
    let judged: Vec<Trigger> = match has_sql {
        true => triggers.to_vec(),
        false => triggers.iter().filter(|t| !per_database(t)).cloned().collect(),
    };
    let mut scopes: Vec<Scope<'_>> = match has_sql {
        true => databases
            .iter()
            .map(|d| Scope { database: Some(*d), series: BTreeMap::new() })
            .collect(),
        false => vec![Scope { database: None, series: BTreeMap::new() }],
    };
    let mut wave_sampler = Sampler::new(
        databases.first().map_or("", |d| d.url.as_str()),
        section.prometheus_url.as_deref(),
    );
    let mut due = vec![start; triggers.len()];
    let mut rounds = 0;
    loop {
        let now = Instant::now();
        let last = now >= start + bake;
        rounds += 1;
        for (i, t) in triggers.iter().enumerate() {
            if !(last || now >= due[i]) {
                continue;
            }
            due[i] = now + t.interval;
            if per_database(t) {
                for scope in scopes.iter_mut() {
                    let Some(database) = scope.database else { continue };
                    // A session per round: a wave of hundreds of databases
                    // holds no connection between samples.
                    let reading = Sampler::new(&database.url, None).sample(t);
                    scope.series.entry(t.name.clone()).or_default().push(reading.sample);
                }
            } else {
                let sample = wave_sampler.sample(t).sample;
                for scope in scopes.iter_mut() {
                    scope.series.entry(t.name.clone()).or_default().push(sample);
                }
            }
        }
        let mut holds = Vec::new();
        for scope in &scopes {
            let decision = decide::decide(&judged, &scope.series, &[], section);
            let on = scope.database.map_or("the wave".to_string(), |d| d.name.clone());
            match decision.verdict {
                Verdict::Rollback => {
                    let reason = format!("on {on}: {}", decision.reason);
                    let evidence = json!({ "verdict": "breach", "on": on, "rounds": rounds, "decision": decision });
                    return Baked::Breach { reason, evidence };
                }
                Verdict::Hold if last => holds.push((on, decision)),
                _ => {}
            }
        }
        if last {
            let scopes_n = scopes.len();
            if let Some((on, decision)) = holds.first() {
                let reason = format!("on {on}: {}", decision.reason);
                let evidence = json!({
                    "verdict": "inconclusive", "on": on, "rounds": rounds,
                    "inconclusive": holds.len(), "of": scopes_n, "decision": decision,
                });
                return Baked::Inconclusive { reason, evidence };
            }
            let evidence = json!({
                "verdict": "held", "rounds": rounds, "scopes": scopes_n,
                "took_ms": start.elapsed().as_millis() as u64,
                "reason": format!("every trigger held on {scopes_n} scope(s) for the bake"),
            });
            return Baked::Held { evidence };
        }
        let next = due.iter().min().copied().unwrap_or(start + bake).min(start + bake);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
}
