//! `backstop serve`: flags served as flagd JSON and over OFREP, the kill
//! switch pushed on the event stream, writes behind the token, bad requests
//! refused with the right status and nothing changed.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{poll_until, Project};
use serde_json::{json, Value};

const TOKEN: &str = "s3cret-serve-token";

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

/// A running `backstop serve` on a free port; stopped with SIGTERM on drop.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(p: &Project) -> Server {
        let mut child = p
            .std_cmd(&["serve", "--listen", "127.0.0.1:0"])
            .env("SERVE_TOKEN", TOKEN)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("backstop serve starts");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let base = loop {
            let line = lines.next().expect("serve says where it listens").unwrap();
            if let Some(addr) = line.split("listening on ").nth(1) {
                break addr.trim().to_string();
            }
        };
        // Keep reading the logs so the pipe never fills.
        std::thread::spawn(move || for _ in lines {});
        let server = Server { child, base };
        poll_until("serve is ready", 100, Duration::from_millis(100), || {
            server.get("/readyz", None).0 == 200
        });
        server
    }

    fn agent() -> ureq::Agent {
        ureq::Agent::config_builder().http_status_as_error(false).build().into()
    }

    fn get(&self, path: &str, headers: Option<(&str, &str)>) -> (u16, String, Option<String>) {
        let mut req = Server::agent().get(format!("{}{path}", self.base));
        if let Some((k, v)) = headers {
            req = req.header(k, v);
        }
        Server::read(req.call().expect("the server answers"))
    }

    fn post(
        &self,
        path: &str,
        body: &str,
        headers: &[(&str, &str)],
    ) -> (u16, String, Option<String>) {
        let mut req = Server::agent().post(format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        Server::read(req.send(body).expect("the server answers"))
    }

    fn read(mut resp: ureq::http::Response<ureq::Body>) -> (u16, String, Option<String>) {
        let etag = resp.headers().get("etag").map(|v| v.to_str().unwrap().to_string());
        let status = resp.status().as_u16();
        let body = resp.body_mut().read_to_string().unwrap_or_default();
        (status, body, etag)
    }

    fn eval(&self, key: &str, context: Value) -> (u16, Value) {
        let (status, body, _) = self.post(
            &format!("/ofrep/v1/evaluate/flags/{key}"),
            &json!({ "context": context }).to_string(),
            &[],
        );
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    /// Opens the event stream and reads until it says it is connected.
    fn stream(&self) -> BufReader<TcpStream> {
        let addr = self.base.trim_start_matches("http://");
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(
            s,
            "GET /ofrep/v1/events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
        )
        .unwrap();
        let mut r = BufReader::new(s);
        read_until(&mut r, ": connected");
        r
    }
}

/// Reads lines from the stream until one contains `needle`; returns it.
fn read_until(r: &mut BufReader<TcpStream>, needle: &str) -> String {
    let mut line = String::new();
    loop {
        line.clear();
        let n = r.read_line(&mut line).expect("the stream stays open");
        assert!(n > 0, "the stream ended before {needle:?}");
        if line.contains(needle) {
            return line;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
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
    assert!(off.get("value").is_none(), "a disabled flag has no value: {off}");
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
    let out = common::Run::from_output(cmd.output().unwrap());
    out.expect_code(3).expect_output("the address is in use");
    let mut cmd = p.cmd();
    cmd.env("SERVE_TOKEN", TOKEN).args(["serve", "--listen", "localhost"]);
    common::Run::from_output(cmd.output().unwrap())
        .expect_code(2)
        .expect_output("is not an address");
    // Reading the token from an unset variable is a config error, before listening.
    common::Run::from_output(p.cmd().args(["serve", "--listen", "127.0.0.1:0"]).output().unwrap())
        .expect_code(2)
        .expect_output("SERVE_TOKEN");
    drop(taken);
}
