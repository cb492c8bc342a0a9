//! Incident texts from the real timeline, and the Slack alerts the methods
//! post (to a small HTTP server standing in for Slack's webhook): Block
//! Kit sections under the limit, 429 retried, the webhook never shown.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use crate::common::Project;
use serde_json::Value;

/// A stand-in for Slack's webhook: answers `statuses` in turn (then 200)
/// and keeps every body it was sent.
fn slack(statuses: Vec<u16>) -> (String, Arc<Mutex<Vec<Value>>>) {
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/services/T000/B000/SECRETWEBHOOK", server.local_addr().unwrap());
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let kept = bodies.clone();
    std::thread::spawn(move || {
        let mut statuses = statuses.into_iter();
        for s in server.incoming().flatten() {
            let mut r = BufReader::new(s);
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; length];
            let _ = r.read_exact(&mut body);
            kept.lock().unwrap().push(serde_json::from_slice(&body).unwrap_or(Value::Null));
            let status = statuses.next().unwrap_or(200);
            let extra = if status == 429 { "Retry-After: 0\r\n" } else { "" };
            let _ = write!(
                r.get_mut(),
                "HTTP/1.1 {status} X\r\n{extra}Content-Length: 2\r\nConnection: close\r\n\r\nok"
            );
        }
    });
    (url, bodies)
}

fn project(label: &str, webhook: &str, extra: &str) -> Project {
    let p = Project::new(label);
    p.config(&format!(
        r#"[database]
url = "${{DATABASE_URL}}"

[notify]
slack_webhook = "{webhook}"
product = "MeetSolis"
{extra}

[[flags]]
key = "client_cards"
release = "v2"

[[flags]]
key = "client_memory"
release = "v2"

[[triggers]]
name = "error rate"
source = "sql"
sql = "select 0.08"
above = 0.05
method = "A"
"#
    ));
    p.run(&["flags", "sync"]).expect_code(0);
    p.run(&["flags", "enable", "client_cards", "--reason", "launch"]).expect_code(0);
    p.run(&["flags", "enable", "client_memory", "--reason", "launch"]).expect_code(0);
    p
}

#[test]
fn a_method_posts_its_alert_and_resolution_and_the_report_tells_what_happened() {
    let (webhook, bodies) = slack(vec![429]);
    let p = project("incident_texts", &webhook, "");
    let run = p.run(&["watch", "--once", "--auto", "A"]);
    run.expect_code(0);
    assert!(!run.all().contains("SECRETWEBHOOK"));

    let sent = bodies.lock().unwrap().clone();
    assert_eq!(
        sent.len(),
        3,
        "the alert (once refused with 429, then sent) and the resolution: {sent:?}"
    );
    assert_eq!(sent[0], sent[1], "the retry sends the same message");
    assert_eq!(sent[1]["blocks"][0]["text"]["text"], "Rollback in progress: MeetSolis");
    assert_eq!(sent[2]["blocks"][0]["text"]["text"], "Rollback complete: MeetSolis");
    for body in &sent {
        for block in body["blocks"].as_array().unwrap() {
            assert!(block["text"]["text"].as_str().unwrap().len() <= 3000);
        }
    }
    let alert = sent[1]["blocks"][1]["text"]["text"].as_str().unwrap();
    assert!(alert.contains("Why: error rate: the latest value 0.08 crossed"), "{alert}");

    let report = p.run(&["incident", "report", "--format", "json"]);
    report.expect_code(0);
    let r = report.json();
    assert_eq!(r["incident"]["resolved"], true, "{r}");
    assert_eq!(r["incident"]["flags_off"], serde_json::json!(["client_cards", "client_memory"]));
    assert_eq!(r["incident"]["methods"], serde_json::json!([["A", "ok"]]));
    let text = r["texts"]["report"].as_str().unwrap();
    assert!(text.contains("- Flags turned off: client_cards, client_memory"), "{text}");
    assert!(text.contains("error rate (sql above 0.05): 0.08"), "{text}");
    assert!(text.contains("method A ok: ✓ flags off"), "{text}");
    assert!(r["texts"]["user_email"].as_str().unwrap().contains("MeetSolis"));
    assert!(r["texts"]["status_page"].as_str().unwrap().contains("Resolved"));
}

#[test]
fn templates_can_be_replaced_and_a_refusing_webhook_is_named_without_its_secret() {
    let (webhook, bodies) = slack(vec![404, 404]);
    let p = project("incident_custom", &webhook, "templates = \"texts\"");
    p.write(
        "texts/report.md",
        "Custom report for {{ i.product }}: {{ i.flags_off | length }} flag(s) off\n",
    );
    let run = p.run(&["rollback", "--method", "A", "--yes"]);
    run.expect_code(0).expect_output("Slack answered 404 (not retried)");
    assert!(!run.all().contains("SECRETWEBHOOK"), "{}", run.all());
    assert_eq!(bodies.lock().unwrap().len(), 2, "not retried");
    p.run(&["incident", "report", "--text", "report"])
        .expect_code(0)
        .expect_output("Custom report for MeetSolis: 2 flag(s) off");
    p.run(&["incident", "report", "--since", "yesterday"])
        .expect_code(2)
        .expect_output("--since \"yesterday\"");
    p.write("texts/report.md", "{% if %}");
    p.run(&["incident", "report", "--text", "report"])
        .expect_code(2)
        .expect_output("template report.md");
}
