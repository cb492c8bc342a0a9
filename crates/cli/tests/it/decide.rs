//! `backstop respond decide --samples`: the contract scripts rely on (verdict,
//! method, evidence) on recorded series, and bad triggers or sample files
//! refused with the place and the fix.

use crate::common::Project;
use serde_json::{json, Value};

const TRIGGERS: &str = r#"
[[triggers]]
name = "error rate"
source = "prometheus"
query = 'sum(rate(http_requests_total{code=~"5.."}[1m])) / sum(rate(http_requests_total[1m]))'
above = 0.05
for = "5m"
interval = "30s"
method = "A"

[[triggers]]
name = "rls violations"
source = "sql"
sql = "select count(*) from app.rls_violations"
above = 0
method = "C"
"#;

fn project(label: &str) -> Project {
    let p = Project::new(label);
    p.config(TRIGGERS);
    p
}

fn series(values: &[Value]) -> Value {
    Value::Array(
        values
            .iter()
            .enumerate()
            .map(|(i, v)| json!({ "t": 1_700_000_000 + i * 30, "value": v }))
            .collect(),
    )
}

#[test]
fn recorded_samples_give_verdict_method_and_evidence() {
    let p = project("decide_contract");
    let mut errors = vec![json!(0.01); 4];
    errors.extend(vec![json!("0.08"); 13]);
    p.write(
        "samples.json",
        &json!({ "error rate": series(&errors), "rls violations": series(&[json!(0)]) })
            .to_string(),
    );
    let run = p.run(&["decide", "--samples", "samples.json", "--format", "json"]);
    run.expect_code(1);
    let d = run.json();
    assert_eq!(d["verdict"], "rollback", "{d}");
    assert_eq!(d["method"], "A");
    let evidence = d["evidence"].as_array().unwrap();
    assert_eq!(evidence.len(), 2);
    assert_eq!(evidence[0]["trigger"], "error rate");
    assert_eq!(evidence[0]["state"], "breach");
    assert!(evidence[0]["query"].as_str().unwrap().contains("http_requests_total"));
    assert_eq!(
        evidence[0]["samples"].as_array().unwrap().len(),
        14,
        "the breaching run and the sample before it"
    );

    // What was done decides what comes next: A three minutes ago, no recovery: B.
    let last = 1_700_000_000 + 16 * 30;
    p.write(
        "after_a.json",
        &json!({ "error rate": series(&errors), "$taken": [{ "t": last - 180, "method": "A" }] })
            .to_string(),
    );
    let d = p.run(&["decide", "--samples", "after_a.json", "--format", "json"]).json();
    assert_eq!((&d["verdict"], &d["method"]), (&json!("rollback"), &json!("B")), "{d}");

    // No data for a trigger is a hold, never a pass; text says why.
    p.write(
        "healthy.json",
        &json!({ "error rate": series(&[json!(0.01), json!(0.01)]) }).to_string(),
    );
    p.run(&["decide", "--samples", "healthy.json"])
        .expect_code(0)
        .expect_output("HOLD")
        .expect_output("rls violations [sql] above 0: no_data");
}

#[test]
fn bad_triggers_and_sample_files_are_refused_with_the_place() {
    let p = project("decide_bad");
    p.config(&TRIGGERS.replace("source = \"sql\"", "source = \"graphite\""));
    p.write("s.json", "{}");
    p.run(&["decide", "--samples", "s.json"])
        .expect_code(2)
        .expect_output("backstop.toml:")
        .expect_output("unknown source \"graphite\"; use prometheus, sql, http or command");
    p.config(&TRIGGERS.replace("for = \"5m\"", "k_of_n = \"6/5\""));
    p.run(&["decide", "--samples", "s.json"])
        .expect_code(2)
        .expect_output("k_of_n = \"6/5\": write it like \"4/5\"");
    p.config(&TRIGGERS.replace("for = \"5m\"", "for = \"5m\"\nk_of_n = \"4/5\""));
    p.run(&["decide", "--samples", "s.json"])
        .expect_code(2)
        .expect_output("give for or k_of_n, not both");
    p.config(TRIGGERS);
    p.write("s.json", "{\"error rate\": [{\"t\": 1, \"value\": 0.1}],\n \"latency\": []}");
    p.run(&["decide", "--samples", "s.json"])
        .expect_code(2)
        .expect_output("samples for \"latency\", which no [[triggers]] declares");
    p.write("s.json", "{\"error rate\": [{\"t\": 1, \"value\": \"high\"}]}");
    p.run(&["decide", "--samples", "s.json"])
        .expect_code(2)
        .expect_output("\"high\" is not a number");
    p.write("s.json", "{\"error rate\": [\n");
    p.run(&["decide", "--samples", "s.json"]).expect_code(2).expect_output("s.json:2:");
}
