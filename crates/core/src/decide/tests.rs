//! The decision on recorded series: the runbooks' cases, and the gaps the
//! known tools leave (no data as a pass, one gap resetting a window).

use std::collections::BTreeMap;
use std::time::Duration;

use super::*;

fn trigger(name: &str, above: f64, for_: Option<&str>, method: Method) -> Trigger {
    Trigger {
        name: name.into(),
        source: Source::Prometheus { query: "errors / requests".into() },
        above: Some(above),
        below: None,
        for_: for_.map(|f| humantime::parse_duration(f).unwrap()),
        k_of_n: None,
        interval: Duration::from_secs(30),
        min_samples: 0,
        traffic: None,
        on_missing: OnMissing::Hold,
        dry_run: false,
        declining: 3,
        action: Action::Method(method),
        timeout: Duration::from_secs(10),
    }
}

fn error_rate() -> Trigger {
    trigger("error rate", 0.05, Some("5m"), Method::A)
}

/// Samples every 30 s from t = 0, one per value.
fn series(values: &[Option<f64>]) -> Vec<Sample> {
    values.iter().enumerate().map(|(i, v)| Sample { t: i as f64 * 30.0, value: *v }).collect()
}

fn steady(value: f64, minutes: usize) -> Vec<Option<f64>> {
    vec![Some(value); minutes * 2 + 1]
}

fn run(triggers: &[Trigger], named: &[(&str, Vec<Sample>)], taken: &[Taken]) -> Decision {
    let samples: BTreeMap<String, Vec<Sample>> =
        named.iter().map(|(n, s)| (n.to_string(), s.clone())).collect();
    decide(triggers, &samples, taken, &DecideSection::default())
}

#[test]
fn six_minutes_at_eight_percent_calls_for_a() {
    let mut values = steady(0.01, 2);
    values.extend(steady(0.08, 6));
    let d = run(&[error_rate()], &[("error rate", series(&values))], &[]);
    assert_eq!(d.verdict, Verdict::Rollback, "{d:#?}");
    assert_eq!(d.method, Some(Method::A));
    let e = &d.evidence[0];
    assert_eq!(e.state, State::Breach);
    assert!(e.reason.contains("crossed for 6 min"), "{}", e.reason);
    // The evidence holds the breaching run and the sample before it.
    assert_eq!(e.samples.first().unwrap().value, Some(0.01));
    assert!(e.samples[1..].iter().all(|s| s.value == Some(0.08)));
}

#[test]
fn a_three_minute_blip_decides_nothing() {
    let mut values = steady(0.01, 2);
    values.extend(steady(0.08, 3));
    let during = run(&[error_rate()], &[("error rate", series(&values))], &[]);
    assert_eq!(during.verdict, Verdict::Ok, "{during:#?}");
    assert_eq!(during.evidence[0].state, State::Pending);
    values.extend(steady(0.01, 3));
    let after = run(&[error_rate()], &[("error rate", series(&values))], &[]);
    assert_eq!(after.verdict, Verdict::Ok);
    assert_eq!(after.evidence[0].state, State::Ok);
}

#[test]
fn a_declining_breach_holds_instead_of_acting() {
    let mut values = steady(0.09, 6);
    values.extend([Some(0.08), Some(0.07), Some(0.06)]);
    let d = run(&[error_rate()], &[("error rate", series(&values))], &[]);
    assert_eq!(d.verdict, Verdict::Hold, "{d:#?}");
    assert_eq!(d.evidence[0].state, State::Declining);
    assert!(d.reason.contains("0.08 → 0.07 → 0.06"), "{}", d.reason);
}

#[test]
fn one_rls_violation_calls_for_c_at_once_over_a() {
    let rls = trigger("rls violations", 0.0, None, Method::C);
    let mut errors = steady(0.01, 1);
    errors.extend(steady(0.08, 6));
    let d = run(
        &[error_rate(), rls],
        &[("error rate", series(&errors)), ("rls violations", series(&[Some(0.0), Some(1.0)]))],
        &[],
    );
    assert_eq!(d.verdict, Verdict::Rollback);
    assert_eq!(d.method, Some(Method::C), "{d:#?}");
    assert!(d.reason.starts_with("rls violations:"), "{}", d.reason);
    // Two symptoms at once: the decision says which trigger chose C, and
    // what else breaches.
    assert!(
        d.reason.ends_with(
            "; method C is the strongest the breaching triggers call for (also breaching: error \
             rate (method A)), and it does what the weaker ones do"
        ),
        "{}",
        d.reason
    );
}

#[test]
fn no_data_is_never_a_pass() {
    let d = run(&[error_rate()], &[], &[]);
    assert_eq!(d.verdict, Verdict::Hold);
    assert_eq!(d.evidence[0].state, State::NoData);
    let mut values = steady(0.01, 3);
    values.push(None);
    let d = run(&[error_rate()], &[("error rate", series(&values))], &[]);
    assert_eq!(d.verdict, Verdict::Hold, "{d:#?}");
    assert!(d.reason.contains("no data"), "{}", d.reason);
    // With on_missing = "ignore" the gap is dropped and the rest decides.
    let mut ignoring = error_rate();
    ignoring.on_missing = OnMissing::Ignore;
    let d = run(&[ignoring], &[("error rate", series(&values))], &[]);
    assert_eq!(d.verdict, Verdict::Ok);
    // Too few samples to say anything.
    let mut picky = error_rate();
    picky.min_samples = 20;
    let d = run(&[picky], &[("error rate", series(&steady(0.08, 6)))], &[]);
    assert_eq!(d.verdict, Verdict::Hold);
    assert_eq!(d.evidence[0].state, State::Insufficient);
}

#[test]
fn one_gap_in_a_breach_does_not_reset_the_window() {
    // Prometheus' `for:` starts again after one missed scrape; here a
    // missing sample neither breaks nor extends the run.
    let mut values = steady(0.08, 3);
    values.push(None);
    values.extend(steady(0.08, 3));
    let d = run(&[error_rate()], &[("error rate", series(&values))], &[]);
    assert_eq!(d.method, Some(Method::A), "{d:#?}");
}

#[test]
fn a_without_recovery_escalates_to_b_after_the_window() {
    let values = steady(0.08, 8);
    let s = series(&values);
    let last = s.last().unwrap().t;
    // A was carried out one minute ago: wait.
    let recent = [Taken { t: last - 60.0, method: Method::A }];
    let d = run(&[error_rate()], &[("error rate", s.clone())], &recent);
    assert_eq!(d.verdict, Verdict::Hold, "{d:#?}");
    assert_eq!(d.evidence[0].state, State::Recovering);
    // Three minutes ago, past the 2-minute window: B.
    let old = [Taken { t: last - 180.0, method: Method::A }];
    let d = run(&[error_rate()], &[("error rate", s)], &old);
    assert_eq!(d.verdict, Verdict::Rollback, "{d:#?}");
    assert_eq!(d.method, Some(Method::B));
    assert!(d.reason.contains("after method A was carried out"), "{}", d.reason);
    // A that worked: the error rate dropped, nothing more to do.
    let mut healed = steady(0.08, 6);
    healed.extend(steady(0.01, 3));
    let s = series(&healed);
    let d = run(
        &[error_rate()],
        &[("error rate", s.clone())],
        &[Taken { t: s.last().unwrap().t - 200.0, method: Method::A }],
    );
    assert_eq!(d.verdict, Verdict::Ok, "{d:#?}");
}

#[test]
fn a_flapping_series_breaches_on_k_of_n_where_for_never_would() {
    let flapping: Vec<Option<f64>> =
        (0..20).map(|i| Some(if i % 5 == 2 { 0.01 } else { 0.09 })).collect();
    let consecutive = run(&[error_rate()], &[("error rate", series(&flapping))], &[]);
    assert_eq!(consecutive.verdict, Verdict::Ok, "{consecutive:#?}");
    let mut k_of_n = error_rate();
    k_of_n.for_ = None;
    k_of_n.k_of_n = Some(parse_k_of_n("4/5").unwrap());
    k_of_n.declining = 0;
    let d = run(&[k_of_n], &[("error rate", series(&flapping))], &[]);
    assert_eq!(d.method, Some(Method::A), "{d:#?}");
    assert!(d.evidence[0].reason.contains("4 of the last 5"), "{}", d.evidence[0].reason);
}

#[test]
fn nan_is_no_data_and_infinity_is_a_value() {
    let recorded =
        r#"[{"t": 0, "value": "0.01"}, {"t": 30, "value": "+Inf"}, {"t": 60, "value": "NaN"}]"#;
    let s: Vec<Sample> = serde_json::from_str(recorded).unwrap();
    assert_eq!(s[1].value, Some(f64::INFINITY));
    let mut now = error_rate();
    now.for_ = None;
    let d = run(&[now.clone()], &[("error rate", s.clone())], &[]);
    assert_eq!(d.verdict, Verdict::Hold, "NaN (0/0: no traffic) is no data: {d:#?}");
    let d = run(&[now], &[("error rate", s[..2].to_vec())], &[]);
    assert_eq!(d.method, Some(Method::A), "+Inf is above any threshold: {d:#?}");
    assert!(serde_json::from_str::<Vec<Sample>>(r#"[{"t": 0, "value": "high"}]"#).is_err());
}

#[test]
fn dry_run_triggers_are_shown_and_decide_nothing() {
    let mut t = error_rate();
    t.dry_run = true;
    let d = run(&[t], &[("error rate", series(&steady(0.08, 6)))], &[]);
    assert_eq!(d.verdict, Verdict::Ok);
    assert_eq!(d.evidence[0].state, State::Breach);
    assert!(d.evidence[0].dry_run);
}

#[test]
fn a_kill_flag_trigger_names_its_flag() {
    let mut cost = trigger("ai cost", 10.0, Some("10m"), Method::A);
    cost.action = Action::KillFlag("pgvector_search".into());
    let d = run(&[cost], &[("ai cost", series(&steady(14.0, 11)))], &[]);
    assert_eq!(d.method, Some(Method::A));
    assert_eq!(d.flag.as_deref(), Some("pgvector_search"));
}

#[test]
fn below_thresholds_breach_downwards() {
    let mut logins = trigger("login success", 0.9, Some("2m"), Method::A);
    logins.above = None;
    logins.below = Some(0.9);
    let d = run(&[logins], &[("login success", series(&steady(0.5, 3)))], &[]);
    assert_eq!(d.method, Some(Method::A), "{d:#?}");
}

/// An error rate over a handful of requests proves nothing: with the
/// companion request rate under min_traffic, a breach is inconclusive
/// and holds; with enough traffic the same series calls for A.
#[test]
fn too_little_traffic_makes_a_breach_inconclusive() {
    let mut rate = error_rate();
    rate.traffic = Some(("requests".into(), 10.0));
    let mut requests = trigger("requests", 1e12, None, Method::A);
    requests.dry_run = true;
    let triggers = [rate, requests];
    let breach: Vec<Sample> = series(&[Some(0.08); 12]);
    let decide_with = |traffic: f64| {
        let samples = BTreeMap::from([
            ("error rate".to_string(), breach.clone()),
            ("requests".to_string(), series(&[Some(traffic); 12])),
        ]);
        decide(&triggers, &samples, &[], &DecideSection::default())
    };
    let quiet = decide_with(3.0);
    assert_eq!(quiet.verdict, Verdict::Hold, "{quiet:?}");
    assert_eq!(quiet.evidence[0].state, State::Insufficient);
    assert!(quiet.evidence[0].reason.contains("requests = 3, below min_traffic = 10"), "{quiet:?}");
    let busy = decide_with(250.0);
    assert_eq!((busy.verdict, busy.method), (Verdict::Rollback, Some(Method::A)), "{busy:?}");
    // No traffic sample at all is no pass either.
    let samples = BTreeMap::from([("error rate".to_string(), breach.clone())]);
    let unknown = decide(&triggers, &samples, &[], &DecideSection::default());
    assert_eq!(unknown.verdict, Verdict::Hold, "{unknown:?}");
}

/// Regression (issue 42): after method B the error rate was still above
/// its threshold past the escalation window, and the decision said "OK:
/// every trigger is within its threshold" above that very line: the
/// escalation went from the trigger's own method (A) to B, which was
/// already carried out. It goes on from the method carried out.
#[test]
fn an_escalation_goes_on_from_the_method_carried_out_and_never_says_ok() {
    let errors = steady(0.08, 12);
    let after_b = [Taken { method: Method::B, t: 60.0 }];
    let d = run(&[error_rate()], &[("error rate", series(&errors))], &after_b);
    assert_eq!(d.verdict, Verdict::Rollback, "{d:#?}");
    assert_eq!(d.method, Some(Method::C), "{d:#?}");
    let after_c = [Taken { method: Method::B, t: 60.0 }, Taken { method: Method::C, t: 90.0 }];
    let d = run(&[error_rate()], &[("error rate", series(&errors))], &after_c);
    assert_eq!(d.verdict, Verdict::Hold, "{d:#?}");
    assert!(d.reason.contains("nothing stronger is left: a person should look"), "{}", d.reason);
    assert!(!d.reason.contains("within its threshold"), "{}", d.reason);
}
