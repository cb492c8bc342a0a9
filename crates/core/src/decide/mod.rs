//! The rollback decision: samples in, verdict out. Pure, so `backstop
//! decide` can replay recorded samples offline and `backstop respond watch` can
//! decide live with the same code.
//!
//! A trigger breaches when its samples cross its threshold for long enough:
//! `for` counts consecutive breaching samples (one missing sample does not
//! reset it unless `on_missing` says so), `k_of_n` counts breaches among the
//! last n. No data is never a pass: by default a missing sample holds the
//! decision for a person. A breach whose last samples are falling holds too
//! ("declining": the runbooks' guard against a needless rollback). Every
//! verdict carries its evidence: the samples it rests on and the rule.

pub(crate) mod config;
pub mod sample;

use std::time::Duration;

use serde::Serialize;

pub use config::{
    parse_k_of_n, parse_number, Action, DecideSection, Method, OnMissing, Source, Trigger,
};

/// One sample: when (Unix seconds) and the value, `None` when the source
/// gave nothing (no series, an error, `NaN`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
pub struct Sample {
    pub t: f64,
    #[serde(deserialize_with = "config::lenient_number")]
    pub value: Option<f64>,
}

/// What was already done, for escalation: `method` carried out at `t`.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Taken {
    pub t: f64,
    pub method: Method,
}

/// The overall answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// A trigger calls for a rollback method.
    Rollback,
    /// Not enough to act on (no data, too few samples, declining, waiting
    /// for a method to take effect): a person should look.
    Hold,
    /// Every trigger is within its threshold.
    Ok,
}

/// One trigger's state, as its evidence says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Within the threshold.
    Ok,
    /// Crossed for long enough: calls for its action.
    Breach,
    /// Crossing, not yet for long enough.
    Pending,
    /// Crossed, but the last samples are getting better.
    Declining,
    /// The latest sample is missing.
    NoData,
    /// Fewer samples than `min_samples`.
    Insufficient,
    /// After the method was carried out: waiting for it to take effect.
    Recovering,
    /// Still crossed after the escalation window: the next method.
    Escalate,
}

/// Why a trigger is in its state, with the samples it rests on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evidence {
    pub trigger: String,
    pub source: &'static str,
    /// The query, SQL, URL or command sampled.
    pub query: String,
    /// The rule, e.g. `above 0.05 for 5m`.
    pub rule: String,
    pub state: State,
    /// A sentence saying why.
    pub reason: String,
    /// The action the trigger calls for.
    pub action: Action,
    pub dry_run: bool,
    /// The samples the state rests on (the deciding window), oldest first.
    pub samples: Vec<Sample>,
}

/// The decision and everything it rests on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub verdict: Verdict,
    /// The method to carry out when the verdict is rollback.
    pub method: Option<Method>,
    /// The one flag to kill, when the deciding trigger names one.
    pub flag: Option<String>,
    pub reason: String,
    pub evidence: Vec<Evidence>,
}

fn breaching(t: &Trigger, v: f64) -> bool {
    match (t.above, t.below) {
        (Some(a), _) if v > a => true,
        (_, Some(b)) if v < b => true,
        _ => false,
    }
}

/// Whether the value got better from `a` to `b` (lower for `above`).
fn better(t: &Trigger, a: f64, b: f64) -> bool {
    if t.above.is_some() {
        b < a
    } else {
        b > a
    }
}

/// A sample judged: breaching (`Some(true)`), within (`Some(false)`), or
/// unknown (`None`: missing and `on_missing = "hold"`).
fn judged(t: &Trigger, s: &Sample) -> Option<bool> {
    match s.value {
        Some(v) if !v.is_nan() => Some(breaching(t, v)),
        _ => match t.on_missing {
            OnMissing::Breach => Some(true),
            OnMissing::Hold | OnMissing::Ignore => None,
        },
    }
}

fn fmt_value(v: Option<f64>) -> String {
    match v {
        None => "no data".into(),
        Some(v) if v.is_nan() => "NaN".into(),
        Some(v) => format!("{v}"),
    }
}

/// Decides one trigger on its samples (any order), at the time of the
/// latest sample, given what has already been carried out.
pub fn evaluate(
    t: &Trigger,
    samples: &[Sample],
    taken: &[Taken],
    escalate_after: Duration,
) -> Evidence {
    let mut samples: Vec<Sample> = samples.to_vec();
    samples.sort_by(|a, b| a.t.total_cmp(&b.t));
    if t.on_missing == OnMissing::Ignore {
        samples.retain(|s| s.value.is_some_and(|v| !v.is_nan()));
    }
    let mut ev = Evidence {
        trigger: t.name.clone(),
        source: t.source.kind(),
        query: t.source.text(),
        rule: t.rule(),
        state: State::Ok,
        reason: String::new(),
        action: t.action.clone(),
        dry_run: t.dry_run,
        samples: Vec::new(),
    };
    let Some(last) = samples.last().copied() else {
        ev.state = State::NoData;
        ev.reason = "no samples at all: no data is never a pass".into();
        return ev;
    };
    let present = samples.iter().filter(|s| s.value.is_some_and(|v| !v.is_nan())).count();
    if present < t.min_samples {
        ev.state = State::Insufficient;
        ev.reason =
            format!("{present} sample(s) with data, fewer than min_samples = {}", t.min_samples);
        ev.samples = samples;
        return ev;
    }
    if judged(t, &last).is_none() {
        ev.state = State::NoData;
        ev.reason = format!("the latest sample (t={}) has no data; holding for a person", last.t);
        ev.samples = samples[samples.len().saturating_sub(5)..].to_vec();
        return ev;
    }

    // The deciding window and whether it breaches.
    let Window { fired, samples: window, why } = match t.k_of_n {
        Some((k, n)) => k_of_n_window(t, &samples, k, n),
        None => run_window(t, &samples, last),
    };
    ev.samples = window;
    let crossing = judged(t, &last) == Some(true);
    (ev.state, ev.reason) = if !crossing && !fired {
        (State::Ok, why)
    } else if !fired {
        (State::Pending, why)
    } else if let Some(after) = after_method(t, taken, last, escalate_after) {
        // After this trigger's method was carried out: recovery or escalation.
        after
    } else if let Some(reason) = declining(t, &samples, &why) {
        // The runbooks' guard: a breach that is getting better holds.
        (State::Declining, reason)
    } else {
        (State::Breach, why)
    };
    ev
}

/// The samples a trigger's state rests on and whether they breach, with
/// a sentence saying so.
struct Window {
    /// Crossed for long enough (or often enough) to call for the action.
    fired: bool,
    /// The deciding window, oldest first: the evidence.
    samples: Vec<Sample>,
    why: String,
}

/// `k_of_n`: the last `n` samples breach when at least `k` of them cross
/// (and there are `n`), whether or not the crossings are consecutive.
fn k_of_n_window(t: &Trigger, samples: &[Sample], k: u32, n: u32) -> Window {
    let window: Vec<Sample> = samples[samples.len().saturating_sub(n as usize)..].to_vec();
    let hits = window.iter().filter(|s| judged(t, s) == Some(true)).count();
    let fired = window.len() >= n as usize && hits >= k as usize;
    Window {
        fired,
        samples: window,
        why: format!(
            "{hits} of the last {} sample(s) crossed (needs {k} of {n})",
            n.min(samples.len() as u32)
        ),
    }
}

/// `for`: the samples breach when they have crossed for at least that
/// long without a break, up to the latest (`last`, never missing here).
fn run_window(t: &Trigger, samples: &[Sample], last: Sample) -> Window {
    // The run of consecutive breaching samples ending at the latest.
    // A missing sample (`hold`) neither breaks nor extends it.
    let mut start = samples.len();
    for (i, s) in samples.iter().enumerate().rev() {
        match judged(t, s) {
            Some(true) => start = i,
            Some(false) => break,
            None => continue,
        }
    }
    if start == samples.len() {
        return Window {
            fired: false,
            samples: samples[samples.len() - 1..].to_vec(),
            why: format!("the latest value {} is within the threshold", fmt_value(last.value)),
        };
    }
    let span = last.t - samples[start].t;
    let need = t.for_.map_or(0.0, |d| d.as_secs_f64());
    let why = if need == 0.0 {
        format!("the latest value {} crossed", fmt_value(last.value))
    } else {
        format!(
            "crossed for {} (needs {}): {} consecutive sample(s)",
            crate::kit::duration::human(Duration::from_secs_f64(span.max(0.0).round())),
            crate::kit::duration::human(Duration::from_secs_f64(need)),
            samples.len() - start
        )
    };
    Window { fired: span >= need, samples: samples[start.saturating_sub(1)..].to_vec(), why }
}

/// Once this trigger's method (or a stronger one) was carried out, a
/// breach is no longer a call for it: it is recovering, within the
/// escalation window, or escalates past it. `None` when none was.
fn after_method(
    t: &Trigger,
    taken: &[Taken],
    last: Sample,
    escalate_after: Duration,
) -> Option<(State, String)> {
    let wanted = t.action.method();
    let done = taken.iter().filter(|d| d.method >= wanted).max_by(|a, b| a.t.total_cmp(&b.t))?;
    let since = last.t - done.t;
    Some(if since >= escalate_after.as_secs_f64() {
        (
            State::Escalate,
            format!(
                "still {} ({}) {} after method {} was carried out, past the escalation window of {}",
                if t.above.is_some() { "above" } else { "below" },
                fmt_value(last.value),
                crate::kit::duration::human(Duration::from_secs_f64(since.round())),
                done.method,
                crate::kit::duration::human(escalate_after)
            ),
        )
    } else {
        (
            State::Recovering,
            format!(
                "method {} was carried out {} ago; waiting up to {} for it to take effect",
                done.method,
                crate::kit::duration::human(Duration::from_secs_f64(since.max(0.0).round())),
                crate::kit::duration::human(escalate_after)
            ),
        )
    })
}

/// The runbooks' guard against a needless rollback: when the last
/// `declining` values (2 or more asked) each got better, the reason to
/// hold, built on `why`; `None` when they did not.
fn declining(t: &Trigger, samples: &[Sample], why: &str) -> Option<String> {
    if t.declining < 2 {
        return None;
    }
    let recent: Vec<f64> = samples
        .iter()
        .rev()
        .filter_map(|s| s.value.filter(|v| !v.is_nan()))
        .take(t.declining)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    (recent.len() == t.declining && recent.windows(2).all(|w| better(t, w[0], w[1]))).then(|| {
        format!(
            "{why}, but the last {} samples are getting better ({}): holding",
            t.declining,
            recent.iter().map(|v| format!("{v}")).collect::<Vec<_>>().join(" → ")
        )
    })
}

/// Makes `e` inconclusive when the companion trigger's latest sample says
/// there was too little traffic to judge (or says nothing).
fn too_little_traffic(e: &mut Evidence, companion: &str, least: f64, series: Option<&Vec<Sample>>) {
    if matches!(e.state, State::NoData | State::Insufficient) {
        return;
    }
    let latest = series.and_then(|s| s.iter().max_by(|a, b| a.t.total_cmp(&b.t))).copied();
    let why = match latest.and_then(|s| s.value).filter(|v| !v.is_nan()) {
        Some(v) if v >= least => return,
        Some(v) => {
            format!("traffic: {companion} = {v}, below min_traffic = {least}: too little to judge")
        }
        None => format!("traffic: {companion} has no value: too little known to judge"),
    };
    e.state = State::Insufficient;
    e.reason = why;
}

/// The strongest method carried out that is at least `wanted`, else
/// `wanted` itself.
fn carried(taken: &[Taken], wanted: Method) -> Method {
    taken.iter().map(|d| d.method).filter(|m| *m >= wanted).max().unwrap_or(wanted)
}

/// The rule when several triggers breach at once, said after the deciding
/// trigger's reason: the strongest method any of them calls for is carried
/// out (method C turns the flags off as A would, and B restores as well),
/// so a data exposure is never left waiting behind a flag flip. Empty when
/// only one trigger breaches.
fn others_breaching(evidence: &[Evidence], deciding: &str, method: Method) -> String {
    let others: Vec<String> = evidence
        .iter()
        .filter(|e| !e.dry_run && !deciding.starts_with(&format!("{}:", e.trigger)))
        .filter_map(|e| match e.state {
            State::Breach => Some(format!("{} (method {})", e.trigger, e.action.method())),
            State::Escalate => Some(format!("{} (method {})", e.trigger, e.action.method().next())),
            _ => None,
        })
        .collect();
    if others.is_empty() {
        return String::new();
    }
    format!(
        "; method {method} is the strongest the breaching triggers call for (also breaching: {}), \
         and it does what the weaker ones do",
        others.join(", ")
    )
}

/// Decides on every trigger's samples. A trigger without samples is no data.
pub fn decide(
    triggers: &[Trigger],
    samples: &std::collections::BTreeMap<String, Vec<Sample>>,
    taken: &[Taken],
    section: &DecideSection,
) -> Decision {
    let evidence: Vec<Evidence> = triggers
        .iter()
        .map(|t| {
            let s = samples.get(&t.name).map(Vec::as_slice).unwrap_or(&[]);
            let mut e = evaluate(t, s, taken, section.escalate_after);
            if let Some((companion, least)) = &t.traffic {
                too_little_traffic(&mut e, companion, *least, samples.get(companion));
            }
            e
        })
        .collect();
    let live = || evidence.iter().filter(|e| !e.dry_run);
    // The strongest method any live trigger calls for.
    let mut call: Option<(Method, Option<String>, String)> = None;
    for e in live() {
        let (method, flag) = match e.state {
            State::Breach => (e.action.method(), e.action.flag().map(str::to_string)),
            // Past the method actually carried out, which may be stronger
            // than the trigger's own (B after A escalated: C next).
            State::Escalate => (carried(taken, e.action.method()).next(), None),
            _ => continue,
        };
        let stronger = call.as_ref().is_none_or(|(m, _, _)| method > *m);
        if stronger {
            call = Some((method, flag, format!("{}: {}", e.trigger, e.reason)));
        }
    }
    if let Some((method, flag, mut reason)) = call {
        // A method already carried out is not called for again.
        let done = taken.iter().any(|d| d.method >= method) && flag.is_none();
        if !done {
            reason.push_str(&others_breaching(&evidence, &reason, method));
            return Decision {
                verdict: Verdict::Rollback,
                method: Some(method),
                flag,
                reason,
                evidence,
            };
        }
    }
    // Still breaching with every method it calls for carried out: nothing
    // left to do by itself, and certainly not "within its threshold".
    let exhausted: Vec<String> = live()
        .filter(|e| matches!(e.state, State::Breach | State::Escalate))
        .map(|e| {
            format!(
                "{}: {}; method {} was carried out and nothing stronger is left: a person should \
                 look",
                e.trigger,
                e.reason,
                carried(taken, e.action.method())
            )
        })
        .collect();
    let holds: Vec<String> = live()
        .filter(|e| {
            matches!(
                e.state,
                State::NoData | State::Insufficient | State::Declining | State::Recovering
            )
        })
        .map(|e| format!("{}: {}", e.trigger, e.reason))
        .chain(exhausted)
        .collect();
    if !holds.is_empty() {
        return Decision {
            verdict: Verdict::Hold,
            method: None,
            flag: None,
            reason: holds.join("; "),
            evidence,
        };
    }
    let reason = if triggers.is_empty() {
        "no triggers are configured ([[triggers]] in backstop.toml)".to_string()
    } else {
        "every trigger is within its threshold".to_string()
    };
    Decision { verdict: Verdict::Ok, method: None, flag: None, reason, evidence }
}

#[cfg(test)]
mod tests;
