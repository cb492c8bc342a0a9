//! `backstop flags serve`: flags served as flagd JSON and over OFREP, the kill
//! switch pushed on the event stream, writes behind the token, bad requests
//! refused with the right status and nothing changed.

use std::time::{Duration, Instant};

use crate::common::server::{read_until, Server, TOKEN};
use crate::common::Project;
use serde_json::{json, Value};

fn config(extra: &str) -> String {
    format!(
        r#"[database]
url = "${{DATABASE_URL}}"

[serve]
token = "${{SERVE_TOKEN}}"
{extra}

[[flags]]
key = "client_cards"
release = "v2"
description = "Client cards <b>UI</b>"
default = false

[[flags]]
key = "client_memory"
release = "v2"

[[flags]]
key = "theme"
release = "v3"
variants = {{ classic = "classic", dark = "dark" }}
default_variant = "dark"
"#
    )
}

fn project(label: &str, extra: &str) -> Project {
    let p = Project::new(label);
    p.config(&config(extra));
    p.run(&["flags", "sync"]).expect_code(0);
    p.run(&["flags", "enable", "client_cards", "--reason", "launch"]).expect_code(0);
    p.run(&["flags", "enable", "theme", "--reason", "launch"]).expect_code(0);
    p
}

fn enabled(p: &Project) -> Vec<(String, bool)> {
    let list = p.run(&["flags", "list", "--format", "json"]).expect_code(0).json();
    list.as_array()
        .unwrap()
        .iter()
        .map(|f| (f["key"].as_str().unwrap().to_string(), f["enabled"].as_bool().unwrap()))
        .collect()
}

#[test]
fn flags_are_served_as_flagd_json_and_ofrep_and_a_kill_reaches_the_stream() {
    let p = project("serve_reads", "");
    let s = Server::start(&p);

    let (status, body, etag) = s.get("/flags.json", None);
    assert_eq!(status, 200);
    let doc: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["flags"]["client_cards"]["state"], "ENABLED");
    assert_eq!(doc["flags"]["client_memory"]["state"], "DISABLED");
    assert_eq!(doc["flags"]["theme"]["defaultVariant"], "dark");
    let etag = etag.expect("flags.json has an ETag");
    assert_eq!(s.get("/flags.json", Some(("If-None-Match", &etag))).0, 304);

    let (status, on) = s.eval("client_cards", json!({ "targetingKey": "user-1" }));
    assert_eq!(
        (status, &on["value"], &on["reason"]),
        (200, &json!(true), &json!("STATIC")),
        "{on}"
    );
    let (status, theme) = s.eval("theme", json!({}));
    assert_eq!((status, &theme["value"], &theme["variant"]), (200, &json!("dark"), &json!("dark")));
    let (status, off) = s.eval("client_memory", json!({}));
    assert_eq!((status, &off["reason"]), (200, &json!("DISABLED")), "{off}");
    // Off: a value every provider takes (its `off` variant here), with reason DISABLED.
    assert_eq!(off["value"], json!(false), "{off}");
    let (status, missing) = s.eval("no_such_flag", json!({}));
    assert_eq!((status, &missing["errorCode"]), (404, &json!("FLAG_NOT_FOUND")));

    let (status, body, etag) = s.post("/ofrep/v1/evaluate/flags", r#"{"context": {}}"#, &[]);
    assert_eq!(status, 200);
    let bulk: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(bulk["flags"].as_array().unwrap().len(), 3);
    assert_eq!(bulk["eventStreams"][0]["type"], "sse");
    let etag = etag.expect("bulk answers carry an ETag");
    let again =
        s.post("/ofrep/v1/evaluate/flags", r#"{"context": {}}"#, &[("If-None-Match", &etag)]);
    assert_eq!(again.0, 304);

    // The kill switch: a stream client hears it, and evaluations follow.
    let mut stream = s.stream();
    let started = Instant::now();
    p.run(&["flags", "kill", "--release", "v2", "--reason", "error rate"]).expect_code(0);
    let line = read_until(&mut stream, "refetchEvaluation");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the change arrived after {:?}",
        started.elapsed()
    );
    let event: Value =
        serde_json::from_str(line.trim().trim_start_matches("data:").trim()).unwrap();
    assert_ne!(event["etag"].as_str().unwrap(), etag);
    let (_, killed) = s.eval("client_cards", json!({ "targetingKey": "user-1" }));
    assert_eq!(killed["reason"], "DISABLED", "{killed}");
    let after =
        s.post("/ofrep/v1/evaluate/flags", r#"{"context": {}}"#, &[("If-None-Match", &etag)]);
    assert_eq!(after.0, 200, "the old ETag no longer matches");

    let (status, metrics, _) = s.get("/metrics", None);
    assert_eq!(status, 200);
    assert!(
        metrics.contains("backstop_flag_enabled{flag=\"client_cards\",release=\"v2\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "backstop_flag_evaluations_total{flag=\"client_memory\",reason=\"DISABLED\"} 3"
        ),
        "one single and two bulk evaluations: {metrics}"
    );
    assert!(metrics.contains("backstop_stream_clients 1"), "{metrics}");

    let (status, page, _) = s.get("/", None);
    assert_eq!(status, 200);
    assert!(page.contains("Kill release v2"), "{page}");
    assert!(
        page.contains("Client cards &lt;b&gt;UI&lt;&#x2f;b&gt;")
            || page.contains("Client cards &lt;b&gt;UI&lt;/b&gt;"),
        "{page}"
    );
}

#[test]
fn writes_need_the_token_and_bad_requests_change_nothing() {
    let p = project("serve_writes", "");
    let s = Server::start(&p);
    let before = enabled(&p);
    let events =
        p.client().query_one("select count(*) from backstop.events", &[]).unwrap().get::<_, i64>(0);
    let kill = r#"{"reason": "test"}"#;

    let (status, body, _) = s.post("/api/releases/v2/kill", kill, &[]);
    assert_eq!(status, 401, "{body}");
    let (status, body, _) =
        s.post("/api/releases/v2/kill", kill, &[("Authorization", "Bearer wrong")]);
    assert_eq!(status, 403, "{body}");
    assert!(!body.contains(TOKEN));
    let bearer = format!("Bearer {TOKEN}");
    let auth = [("Authorization", bearer.as_str())];
    let (status, body, _) = s.post("/api/releases/v9/kill", kill, &auth);
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("no flag belongs to release v9"), "{body}");
    let (status, body, _) =
        s.post("/api/flags/nope", r#"{"enabled": false, "reason": "x"}"#, &auth);
    assert_eq!(status, 404, "{body}");
    let (status, body, _) = s.post("/api/flags/client_cards", r#"{"enabled": "no"}"#, &auth);
    assert_eq!(status, 400, "{body}");
    let (status, body, _) =
        s.post("/api/flags/client_cards", r#"{"enabled": false, "reason": " "}"#, &auth);
    assert_eq!(status, 400, "{body}");

    let (status, body, _) = s.post("/ofrep/v1/evaluate/flags/client_cards", "{not json", &[]);
    assert_eq!(status, 400);
    assert!(body.contains("PARSE_ERROR"), "{body}");
    let (status, body, _) =
        s.post("/ofrep/v1/evaluate/flags/client_cards", r#"{"context": [1]}"#, &[]);
    assert_eq!(status, 400);
    assert!(body.contains("INVALID_CONTEXT"), "{body}");
    let big = format!(r#"{{"context": {{"blob": "{}"}}}}"#, "x".repeat(100 * 1024));
    let (status, _, _) = s.post("/ofrep/v1/evaluate/flags/client_cards", &big, &[]);
    assert_eq!(status, 413);

    assert_eq!(enabled(&p), before, "refused writes changed flags");
    let after =
        p.client().query_one("select count(*) from backstop.events", &[]).unwrap().get::<_, i64>(0);
    assert_eq!(after, events, "refused writes wrote events");

    let (status, body, _) = s.post("/api/releases/v2/kill", kill, &auth);
    assert_eq!(status, 200, "{body}");
    assert!(enabled(&p).iter().filter(|(k, _)| k.starts_with("client_")).all(|(_, on)| !on));
    let (status, _, _) = s.post(
        "/api/flags/client_cards",
        r#"{"enabled": true, "percent": 10, "reason": "canary"}"#,
        &auth,
    );
    assert_eq!(status, 200);
    let history =
        p.run(&["flags", "history", "client_cards", "--format", "json"]).expect_code(0).json();
    let reasons: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["details"]["reason"].as_str())
        .collect();
    assert!(reasons.contains(&"canary") && reasons.contains(&"test"), "{history}");
}

#[test]
fn private_reads_need_the_token() {
    let p = project("serve_private", "private = true");
    let s = Server::start(&p);
    assert_eq!(s.get("/flags.json", None).0, 401);
    assert_eq!(s.post("/ofrep/v1/evaluate/flags/theme", "{}", &[]).0, 401);
    let bearer = format!("Bearer {TOKEN}");
    assert_eq!(s.get("/flags.json", Some(("Authorization", &bearer))).0, 200);
    assert_eq!(s.get("/healthz", None).0, 200, "health stays open for probes");
}

#[test]
fn a_taken_port_or_a_bad_address_is_refused_clearly() {
    let p = project("serve_port", "");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let mut cmd = p.cmd();
    cmd.env("SERVE_TOKEN", TOKEN).args(["serve", "--listen", &addr]);
    let out = crate::common::Run::from_output(cmd.output().unwrap());
    out.expect_code(3).expect_output("the address is in use");
    let mut cmd = p.cmd();
    cmd.env("SERVE_TOKEN", TOKEN).args(["serve", "--listen", "localhost"]);
    crate::common::Run::from_output(cmd.output().unwrap())
        .expect_code(2)
        .expect_output("is not an address");
    // Reading the token from an unset variable is a config error, before listening.
    crate::common::Run::from_output(
        p.cmd().args(["serve", "--listen", "127.0.0.1:0"]).output().unwrap(),
    )
    .expect_code(2)
    .expect_output("SERVE_TOKEN");
    drop(taken);
}

#[test]
fn two_thousand_evaluations_a_second_for_ten_seconds_without_an_error() {
    let p = project("serve_load", "");
    let s = Server::start(&p);
    let (rate, secs, clients) = (2_000u64, 10u64, 4u64);
    let url = format!("{}/ofrep/v1/evaluate/flags/client_cards", s.base);
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let url = url.clone();
            std::thread::spawn(move || {
                let agent = Server::agent();
                let per_client = rate * secs / clients;
                let gap = Duration::from_secs(secs).div_f64(per_client as f64);
                let start = Instant::now();
                let mut latencies = Vec::new();
                let mut failures = Vec::new();
                // A bounded loop: exactly the planned requests, each at its slot.
                for i in 0..per_client {
                    let slot = start + gap.mul_f64(i as f64);
                    if let Some(wait) = slot.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    let body = format!(r#"{{"context": {{"targetingKey": "user-{c}-{i}"}}}}"#);
                    let sent = Instant::now();
                    match agent.post(&url).send(body.as_str()) {
                        Ok(mut r) if r.status() == 200 => {
                            let text = r.body_mut().read_to_string().unwrap();
                            if !text.contains("\"value\":true") {
                                failures.push(text);
                            }
                        }
                        Ok(r) => failures.push(format!("status {}", r.status())),
                        Err(e) => failures.push(e.to_string()),
                    }
                    latencies.push(sent.elapsed());
                }
                (latencies, failures, start.elapsed())
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut failures = Vec::new();
    let mut longest = Duration::ZERO;
    for t in threads {
        let (l, f, took) = t.join().unwrap();
        latencies.extend(l);
        failures.extend(f);
        longest = longest.max(took);
    }
    latencies.sort();
    let p99 = latencies[latencies.len() * 99 / 100];
    eprintln!(
        "load: {} evaluations in {longest:?} ({:.0}/s), p99 {p99:?}",
        latencies.len(),
        latencies.len() as f64 / longest.as_secs_f64()
    );
    assert_eq!(latencies.len() as u64, rate * secs);
    assert!(failures.is_empty(), "{} failed, first: {:?}", failures.len(), failures.first());
}

#[test]
fn the_status_page_in_chromium_shows_the_flags_and_its_kill_button_turns_a_release_off() {
    let modules = crate::common::tools_dir().join("puppeteer/node_modules");
    let chromium = std::path::Path::new("/usr/bin/chromium");
    if !modules.join("puppeteer-core").is_dir() || !chromium.is_file() {
        crate::common::missing_tool("chromium or puppeteer-core", ".ci/tools/chromium.sh");
        return;
    }
    let p = project("serve_page", "");
    // An incident open (method A turned release v3 off): the page's first
    // section, above the flags.
    p.run(&["rollback", "--method", "A", "--release", "v3", "--yes", "--reason", "slow answers"])
        .expect_code(0);
    let s = Server::start(&p);
    let shot = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("status-page.png");
    let script = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/openfeature/status_page.cjs");
    let out = std::process::Command::new("node")
        .env("NODE_PATH", &modules)
        .arg(script)
        .args([s.base.as_str(), TOKEN, "v2"])
        .arg(&shot)
        .output()
        .expect("node runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        seen["before"],
        json!({ "client_cards": "on", "client_memory": "off", "theme": "off" }),
        "{seen}"
    );
    assert_eq!(
        seen["after"],
        json!({ "client_cards": "off", "client_memory": "off", "theme": "off" }),
        "{seen}"
    );
    assert_eq!(
        enabled(&p),
        [
            ("client_cards".to_string(), false),
            ("client_memory".to_string(), false),
            ("theme".to_string(), false)
        ]
    );
    assert_eq!(seen["headings"][0], "Now", "the open incident comes first: {seen}");
    assert!(std::fs::metadata(&shot).map(|m| m.len() > 1000).unwrap_or(false));
    eprintln!("status page screenshot: {}", shot.display());
}

/// Regression: colour codes went into the log file when `serve`'s stderr
/// was redirected to it; colour is for a terminal only.
#[test]
fn the_log_written_to_a_file_holds_no_colour_codes() {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let p = project("serve_log_file", "");
    let log = p.path().join("serve.log");
    let mut child = p
        .std_cmd(&["serve", "--listen", "127.0.0.1:0"])
        .env("SERVE_TOKEN", TOKEN)
        .env_remove("NO_COLOR")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    crate::common::poll_until(
        "serve says where it listens",
        100,
        Duration::from_millis(100),
        || read().contains("listening on http://"),
    );
    let text = read();
    let base = text.split("listening on ").nth(1).unwrap().lines().next().unwrap().trim();
    // Ready once the flags are read, which may come a moment after it listens.
    let ready = || Server::agent().get(format!("{base}/readyz")).call().unwrap().status() == 200;
    crate::common::poll_until("serve is ready", 100, Duration::from_millis(100), ready);
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    child.wait().unwrap();
    let text = read();
    assert!(text.contains("backstop serve listening"), "the request log is written: {text}");
    assert!(!text.contains('\x1b'), "colour codes in the log file: {text:?}");
}

/// What the on-call reader wants first: the open incident heads the
/// status page, above the flags and the log, and the page says nothing of
/// one when none is open.
#[test]
fn the_status_page_puts_the_open_incident_first() {
    let p = project("serve_incident", "");
    let s = Server::start(&p);
    let (status, page, _) = s.get("/", None);
    assert_eq!(status, 200);
    assert!(!page.contains("id=\"now\""), "no incident is open yet: {page}");
    drop(s);
    p.run(&["rollback", "--method", "A", "--release", "v2", "--yes", "--reason", "error rate 8%"])
        .expect_code(0);
    let s = Server::start(&p);
    let (status, page, _) = s.get("/", None);
    assert_eq!(status, 200);
    let now = page.find("id=\"now\"").unwrap_or_else(|| panic!("no open incident shown: {page}"));
    assert!(page.contains("is open since"), "{page}");
    assert!(now < page.find("<h2>Flags").unwrap(), "the incident comes first: {page}");
}
