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
pub(crate) fn slack(statuses: Vec<u16>) -> (String, Arc<Mutex<Vec<Value>>>) {
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

fn titles(bodies: &Arc<Mutex<Vec<Value>>>) -> Vec<String> {
    bodies
        .lock()
        .unwrap()
        .iter()
        .map(|b| b["blocks"][0]["text"]["text"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn slack_follows_the_incident_started_method_done_and_resolved_only_when_closed() {
    let (webhook, bodies) = slack(vec![429]);
    let p = project("incident_texts", &webhook, "");
    let run = p.run(&["watch", "--once", "--auto", "A"]);
    run.expect_code(0);
    assert!(!run.all().contains("SECRETWEBHOOK"));
    let sent = bodies.lock().unwrap().clone();
    assert_eq!(sent[0], sent[1], "the retry after 429 sends the same message");
    // Regression: the method's end was posted as "Rollback complete" while
    // the triggers still breached.
    assert_eq!(
        titles(&bodies),
        [
            "MeetSolis: incident 1, rollback started",
            "MeetSolis: incident 1, rollback started",
            "MeetSolis: incident 1, method A done"
        ]
    );
    for body in &sent {
        for block in body["blocks"].as_array().unwrap() {
            assert!(block["text"]["text"].as_str().unwrap().len() <= 3000);
        }
    }
    let alert = sent[1]["blocks"][1]["text"]["text"].as_str().unwrap();
    assert!(alert.contains("Method A: error rate: the latest value 0.08 crossed"), "{alert}");
    let done = sent[2]["blocks"][1]["text"]["text"].as_str().unwrap();
    assert!(done.contains("turned the release's flags off"), "{done}");

    let r = p.run(&["incident", "report", "--format", "json"]).expect_code(0).json();
    assert_eq!(r["incident"]["id"], 1);
    assert_eq!(r["incident"]["open"], true, "open until its triggers clear or a person closes it");
    assert_eq!(r["incident"]["flags_off"], serde_json::json!(["client_cards", "client_memory"]));
    assert_eq!(r["incident"]["methods"][0]["method"], "A");
    assert_eq!(r["incident"]["methods"][0]["outcome"], "ok");
    let text = r["texts"]["report"].as_str().unwrap();
    assert!(text.contains("error rate (sql above 0.05): 0.08"), "{text}");
    assert!(text.contains("### Method A: done"), "{text}");
    assert!(text.contains("turned the release's flags off"), "{text}");
    let status = r["texts"]["status_page"].as_str().unwrap();
    assert!(status.contains("some requests to MeetSolis failed"), "{status}");
    assert!(!status.contains("client_cards") && !status.contains("launch"), "{status}");
    // Regression: "Monitoring" once method A was done, with errors at 8 %.
    assert!(status.starts_with("MeetSolis: Investigating"), "{status}");
    assert!(status.contains("We are still working on it."), "{status}");

    p.run(&["incident", "close", "--note", "the bad query was fixed"])
        .expect_code(0)
        .expect_output("incident 1 closed");
    assert_eq!(titles(&bodies).last().map(String::as_str), Some("MeetSolis: incident 1 resolved"));
    let r = p.run(&["incident", "report", "--format", "json"]).expect_code(0).json();
    assert_eq!(r["incident"]["open"], false);
    assert!(r["texts"]["status_page"].as_str().unwrap().contains("Resolved"), "{r}");
    p.run(&["incident", "close", "--note", "again"])
        .expect_code(0)
        .expect_output("no incident is open");
    p.run(&["incident", "list"])
        .expect_code(0)
        .expect_output("the bad query was fixed")
        .expect_output("decision: error rate");
}

#[test]
fn a_manual_method_c_after_an_error_incident_is_its_own_incident_and_says_only_what_it_did() {
    // Regression: `incident report` (a 24-hour window) merged a manual
    // method C with an error-rate incident two minutes earlier: the texts
    // claimed a restore C never did, cited the error-rate trigger, and
    // told users of "a rise in errors" when users' records had been
    // visible to others.
    let p = Project::new("incident_c");
    p.config(
        r#"[database]
url = "${DATABASE_URL}"

[backup]
required = false

[notify]
product = "MeetSolis"

[[flags]]
key = "clients"
release = "v2"
"#,
    );
    p.migration(
        "1_users",
        "CREATE TABLE users (id int PRIMARY KEY); INSERT INTO users SELECT generate_series(1, 60);",
        Some("DROP TABLE users;"),
    );
    p.migration(
        "2_clients",
        "CREATE TABLE clients (id int PRIMARY KEY, user_id int NOT NULL REFERENCES users, name text, company text);",
        Some("DROP TABLE clients;"),
    );
    p.run(&["migrate"]).expect_code(0);
    p.client()
        .batch_execute("INSERT INTO clients SELECT i, 1 + i % 47, 'c' || i, 'co' FROM generate_series(1, 120) i")
        .unwrap();
    p.run(&["flags", "sync"]).expect_code(0);
    p.run(&["flags", "enable", "clients", "--reason", "launch"]).expect_code(0);
    // First an error-rate incident, handled with A and closed.
    p.run(&["rollback", "--method", "A", "--yes", "--reason", "error rate 8%"]).expect_code(0);
    p.run(&["incident", "close", "--note", "errors gone"]).expect_code(0);
    p.run(&["flags", "enable", "clients", "--reason", "relaunch"]).expect_code(0);
    // Then the RLS leak, by hand.
    p.run(&[
        "rollback",
        "--method",
        "C",
        "--yes",
        "--reason",
        "RLS leak: clients visible to other users",
    ])
    .expect_code(0);
    let r = p.run(&["incident", "report", "--format", "json"]).expect_code(0).json();
    let i = &r["incident"];
    assert_eq!(i["id"], 2, "its own incident: {i}");
    assert_eq!(i["kind"], "exposure");
    assert_eq!(i["methods"].as_array().unwrap().len(), 1);
    assert_eq!(i["methods"][0]["method"], "C");
    assert_eq!(i["exposure"]["rows"], 120);
    assert_eq!(i["exposure"]["owners"], 47);
    assert!(i["trigger"].is_null(), "no error-rate trigger is cited: {i}");
    for key in ["report", "user_email", "slack", "status_page"] {
        let text = r["texts"][key].as_str().unwrap();
        assert!(!text.to_lowercase().contains("restor"), "{key} claims a restore:\n{text}");
        assert!(!text.to_lowercase().contains("error"), "{key} speaks of errors:\n{text}");
    }
    let email = r["texts"]["user_email"].as_str().unwrap();
    assert!(email.contains("client records (name, company)"), "{email}");
    assert!(email.contains("47 account"), "{email}");
    let status = r["texts"]["status_page"].as_str().unwrap();
    assert!(!status.contains("RLS leak") && !status.contains("clients"), "{status}");
    // The first incident's texts are still its own.
    let first =
        p.run(&["incident", "report", "--incident", "1", "--format", "json"]).expect_code(0).json();
    assert_eq!(first["incident"]["methods"][0]["method"], "A");
    assert_eq!(first["incident"]["methods"].as_array().unwrap().len(), 1);
}

#[test]
fn a_restore_of_the_latest_migrations_backup_tells_what_it_took_back_not_the_state_before_the_update(
) {
    // Regression: method B restored the backup taken before only the
    // latest migration, 2_clients still applied, and the status page said
    // "restored our data to its state before the update".
    let p = Project::new("incident_b_partial");
    p.config(&format!(
        "{}\n[backup]\nmax_age = \"1ms\"\n\n[notify]\nproduct = \"MeetSolis\"\n\n[[flags]]\nkey = \"client_notes\"\nrelease = \"v2\"\n",
        crate::common::DEFAULT_CONFIG
    ));
    p.migration(
        "1_users",
        "CREATE TABLE users (id int PRIMARY KEY, name text);\nINSERT INTO users VALUES (1, 'a'), (2, 'b');\n\
         CREATE TABLE audit (at int, what text);\nINSERT INTO audit VALUES (1, 'seed');",
        Some("DROP TABLE audit;\nDROP TABLE users;"),
    );
    p.run(&["migrate"]).expect_code(0);
    p.migration(
        "2_clients",
        "CREATE TABLE clients (id int PRIMARY KEY);",
        Some("DROP TABLE clients;"),
    );
    p.run(&["migrate"]).expect_code(0);
    p.migration("3_notes", "CREATE TABLE notes (id int PRIMARY KEY);", Some("DROP TABLE notes;"));
    p.run(&["migrate"]).expect_code(0);
    let guard: String = p
        .client()
        .query_one("select backup_id from backstop.applied where version = '3'", &[])
        .unwrap()
        .get(0);
    p.run(&["flags", "sync"]).expect_code(0);
    p.run(&["flags", "enable", "client_notes", "--reason", "launch"]).expect_code(0);
    // Written after the backup: a row added, one deleted, one changed; and
    // 37 rows appended to a table with no key (before, counted as none).
    p.client()
        .batch_execute("INSERT INTO users VALUES (10, 'x'); DELETE FROM users WHERE id = 1; UPDATE users SET name = 'B' WHERE id = 2;\n\
                        INSERT INTO audit SELECT i, 'after' FROM generate_series(1, 37) i;")
        .unwrap();
    p.run(&["rollback", "--method", "B", "--yes", "--reason", "error rate 8%"])
        .expect_code(0)
        .expect_output("the restore took back 38 row(s) written after the backup, brought back 1 deleted and changed back 1");
    let clients: Option<String> =
        p.client().query_one("select to_regclass('public.clients')::text", &[]).unwrap().get(0);
    assert_eq!(clients.as_deref(), Some("clients"), "the release's first migration stays");

    let r = p.run(&["incident", "report", "--format", "json"]).expect_code(0).json();
    assert_eq!(r["incident"]["restored"]["undid"], serde_json::json!(["3_notes"]), "{r}");
    assert_eq!(r["incident"]["restored"]["at"], "2_clients", "{r}");
    // Counted after writes resumed: the 37 rows the keyless table gained
    // (the keyed one holds as many rows as the backup did).
    assert_eq!(r["incident"]["restored"]["rows_since"], 37, "{r}");
    for key in ["status_page", "user_email"] {
        let text = r["texts"][key].as_str().unwrap();
        assert!(!text.contains("its state before the update"), "{key}:\n{text}");
        assert!(
            text.contains(
                "restored our data from a backup taken before the update's latest database change"
            ),
            "{key}:\n{text}"
        );
        assert!(!text.contains("3_notes") && !text.contains(&guard), "{key}:\n{text}");
    }
    let status = r["texts"]["status_page"].as_str().unwrap();
    assert!(
        status.starts_with("MeetSolis: Investigating"),
        "no decision found the triggers clear:\n{status}"
    );
    let report = r["texts"]["report"].as_str().unwrap();
    assert!(report.contains(&format!("Method B restored backup {guard} (taken ")), "{report}");
    assert!(
        report.contains("it took back 3_notes; the database is at 2_clients, and what the migrations up to it made is still there"),
        "{report}"
    );
    assert!(report.contains("brought back 1 deleted and changed back 1"), "{report}");
}

#[test]
fn watch_closes_the_incident_once_its_triggers_are_clear_for_close_after() {
    let (webhook, bodies) = slack(vec![]);
    let p = Project::new("incident_close");
    p.config(&format!(
        r#"[database]
url = "${{DATABASE_URL}}"

[notify]
slack_webhook = "{webhook}"
product = "MeetSolis"

[decide]
close_after = "1s"

[[flags]]
key = "client_cards"
release = "v2"

[[triggers]]
name = "error rate"
source = "sql"
sql = "select rate from app_metrics"
above = 0.05
method = "A"
interval = "200ms"
"#
    ));
    p.client()
        .batch_execute(
            "CREATE TABLE app_metrics (rate float8); INSERT INTO app_metrics VALUES (0.08)",
        )
        .unwrap();
    p.run(&["flags", "sync"]).expect_code(0);
    p.run(&["flags", "enable", "client_cards", "--reason", "launch"]).expect_code(0);
    p.run(&["watch", "--once", "--auto", "A"]).expect_code(0);
    p.client().batch_execute("UPDATE app_metrics SET rate = 0.01").unwrap();
    p.run(&["watch", "--for", "3s", "--auto", "A"])
        .expect_code(0)
        .expect_output("incident 1 closed: every trigger clear for 1 s");
    assert_eq!(titles(&bodies).last().map(String::as_str), Some("MeetSolis: incident 1 resolved"));
    let r = p.run(&["incident", "report", "--format", "json"]).expect_code(0).json();
    assert_eq!(r["incident"]["closed_by"], "backstop watch");
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
    p.run(&["incident", "report", "--incident", "99"])
        .expect_code(2)
        .expect_output("there is no incident 99");
    p.write("texts/report.md", "{% if %}");
    p.run(&["incident", "report", "--text", "report"])
        .expect_code(2)
        .expect_output("template report.md");
}
