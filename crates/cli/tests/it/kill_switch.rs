//! The kill switch stays up: unknown keys cannot grow the metrics, slow
//! clients cannot hold every connection (nor keep a new client waiting
//! while they trickle their headers), nothing is answered "not found"
//! before the flags were read, a server cut off from its database says it
//! serves the last known flags, a disabled flag is an answer every OFREP
//! provider takes, and a change made through the server names its token.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::server::{Server, TOKEN};
use crate::common::{poll_until, Project};
use serde_json::{json, Value};

fn project(label: &str, serve: &str) -> Project {
    let p = Project::new(label);
    p.config(&format!(
        r#"[database]
url = "${{DATABASE_URL}}"

[serve]
tokens = {{ alice = "${{SERVE_TOKEN}}" }}
{serve}

[[flags]]
key = "new_checkout"
release = "v2"
default = false

[[flags]]
key = "banner"
release = "v2"
variants = {{ off = "none", spring = "spring sale" }}
default_variant = "spring"

[[flags]]
key = "theme"
release = "v3"
variants = {{ classic = "classic", dark = "dark" }}
default_variant = "dark"
default = "classic"
"#
    ));
    p.run(&["flags", "sync"]).expect_code(0);
    p.run(&["flags", "enable", "--release", "v2", "--reason", "launch"]).expect_code(0);
    p
}

#[test]
fn unknown_keys_share_one_metrics_series() {
    // Regression: every unknown key asked of OFREP became a series of its
    // own, forever: /metrics grew to 167 MB under 10,000 requests.
    let p = project("ks_metrics", "");
    let s = Server::start(&p);
    for i in 0..300 {
        let (status, _) = s.eval(&format!("no-such-flag-{i}"), json!({}));
        assert_eq!(status, 404);
    }
    s.eval("new_checkout", json!({}));
    let (_, metrics, _) = s.get("/metrics", None);
    let series: Vec<&str> =
        metrics.lines().filter(|l| l.starts_with("backstop_flag_evaluations_total{")).collect();
    assert!(series.len() <= 3, "{series:#?}");
    assert!(
        series.iter().any(|l| l.contains("flag=\"(unknown)\"") && l.ends_with(" 300")),
        "{series:#?}"
    );
    assert!(series.iter().any(|l| l.contains("flag=\"new_checkout\"")), "{series:#?}");
    assert!(!metrics.contains("no-such-flag"), "no key of a request is a label");
}

#[test]
fn a_disabled_flag_is_answered_with_a_value_and_reason_disabled() {
    let p = project("ks_disabled", "");
    p.run(&["flags", "kill", "--release", "v2", "--reason", "errors"]).expect_code(0);
    p.run(&["flags", "disable", "theme", "--reason", "test"]).expect_code(0);
    let s = Server::start(&p);
    let (status, body) = s.eval("new_checkout", json!({}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["reason"], "DISABLED");
    assert_eq!(body["value"], json!(false), "the code default [[flags]] declares: {body}");
    let (_, body) = s.eval("banner", json!({}));
    assert_eq!(body["value"], json!("none"), "the off variant: {body}");
    let (_, body) = s.eval("theme", json!({}));
    assert_eq!(body["value"], json!("classic"), "the declared default wins: {body}");
    assert!(body.get("errorCode").is_none(), "{body}");
}

#[test]
fn nothing_is_not_found_before_the_flags_were_ever_read() {
    // Regression: before its first load, serve answered FLAG_NOT_FOUND for
    // an enabled flag while /healthz said OK.
    let p = project("ks_unloaded", "");
    let nowhere =
        p.url.rsplit_once('/').map(|(base, _)| format!("{base}/no_such_database")).unwrap();
    let s = Server::spawn(&p, &[("DATABASE_URL", &nowhere)]);
    poll_until("serve answers", 50, Duration::from_millis(100), || {
        s.get("/healthz", None).0 == 200
    });
    let (status, body) = s.eval("new_checkout", json!({}));
    assert_eq!(status, 503, "{body}");
    assert_ne!(body["errorCode"], "FLAG_NOT_FOUND", "{body}");
    assert!(body["errorDetails"].as_str().unwrap_or("").contains("not been read"), "{body}");
    let (status, text, _) = s.get("/readyz", None);
    assert_eq!(status, 503);
    assert!(text.contains("not been read"), "{text}");
    let (status, _, _) = s.get("/flags.json", None);
    assert_eq!(status, 503);
}

#[test]
fn cut_off_from_its_database_serve_says_it_serves_the_last_known_flags() {
    let p = project("ks_stale", "");
    let s = Server::start(&p);
    let (_, body) = s.eval("new_checkout", json!({}));
    assert_eq!(body["value"], json!(true));
    // The database refuses every connection; the server's sessions end.
    let mut admin = crate::common::CLUSTER.connect("postgres").unwrap();
    admin.batch_execute(&format!("ALTER DATABASE \"{}\" ALLOW_CONNECTIONS false", p.db)).unwrap();
    admin
        .execute(
            "select pg_terminate_backend(pid) from pg_stat_activity where datname = $1",
            &[&p.db],
        )
        .unwrap();
    poll_until("readyz says stale", 100, Duration::from_millis(100), || {
        s.get("/readyz", None).1.contains("last known flags")
    });
    let resp = Server::agent()
        .post(format!("{}/ofrep/v1/evaluate/flags/new_checkout", s.base))
        .send("{}")
        .unwrap();
    assert!(resp.headers().get("x-backstop-stale").is_some(), "a header says it");
    let (status, body, _) = Server::read(resp);
    assert_eq!(status, 200, "the last known state is served");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["value"], json!(true));
    assert!(body["metadata"]["stale"].is_string(), "{body}");
    admin.batch_execute(&format!("ALTER DATABASE \"{}\" ALLOW_CONNECTIONS true", p.db)).unwrap();
    poll_until("ready again", 100, Duration::from_millis(100), || s.get("/readyz", None).0 == 200);
}

#[test]
fn slow_clients_are_cut_off_and_cannot_hold_every_connection() {
    let p = project("ks_slow", "max_connections = 3\nheader_timeout = \"1s\"");
    let s = Server::start(&p);
    // Three clients that never finish their headers hold every slot...
    let mut slow: Vec<TcpStream> = (0..3)
        .map(|_| {
            let mut c = TcpStream::connect(s.addr()).unwrap();
            c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").unwrap();
            c
        })
        .collect();
    // ...until the header timeout cuts them off.
    let started = Instant::now();
    for c in &mut slow {
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = Vec::new();
        let _ = c.read_to_end(&mut buf);
    }
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    let (status, _, _) = s.get("/healthz", None);
    assert_eq!(status, 200, "the slots are free again");
}

/// What a slow client sends, one byte at a time: a request line, then a
/// header that never ends.
fn trickled_byte(i: usize) -> u8 {
    const START: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    START.get(i).copied().unwrap_or(b'a')
}

/// Raises this process's soft limit of open files to `want` (as far as
/// the hard limit allows): the test holds a socket per slow client.
fn raise_open_files(want: u64) {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    if soft < want {
        setrlimit(Resource::RLIMIT_NOFILE, want.min(hard), hard).unwrap();
    }
}

/// Whether the server still holds `c` open: nothing to read yet, no end.
fn still_open(c: &TcpStream) -> bool {
    c.set_nonblocking(true).unwrap();
    matches!(c.peek(&mut [0u8; 1]), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

#[test]
fn a_new_client_is_answered_while_more_slow_clients_than_connections_trickle_headers() {
    // Regression (issue 34): 1,100 sockets sending their headers a byte at
    // a time held all 1,000 connections, and a new client waited until the
    // header timeout cut them off.
    const SLOW: usize = 1100;
    raise_open_files(SLOW as u64 + 512);
    // The header timeout is far away: an answer cannot come from it.
    let p = project("ks_slowloris", "header_timeout = \"5min\"");
    let s = Server::start(&p);
    let slow: Vec<TcpStream> = (0..SLOW)
        .map(|_| {
            let mut c = TcpStream::connect(s.addr()).unwrap();
            c.write_all(&[trickled_byte(0)]).unwrap();
            c
        })
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let trickler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut slow = slow;
            let mut i = 1;
            while !stop.load(Ordering::SeqCst) {
                for c in &mut slow {
                    // One the server closed fails to write: it stays closed.
                    let _ = c.write_all(&[trickled_byte(i)]);
                }
                i += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            slow
        })
    };
    // A safety bound for a server that never answers, far below the
    // header timeout: the answer must not wait for the slow clients.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let answer = agent.get(format!("{}/healthz", s.base)).call();
    stop.store(true, Ordering::SeqCst);
    let slow = trickler.join().unwrap();
    let answer = answer.expect("a new client is answered while the slow ones trickle");
    assert_eq!(answer.status(), 200);
    let open = slow.iter().filter(|c| still_open(c)).count();
    // Only the oldest of them made room: each new client takes the place
    // of one that never sent a whole request.
    assert!(open >= SLOW * 8 / 10, "{open} of {SLOW} slow clients still connected");
    let (status, _, _) = s.get("/readyz", None);
    assert_eq!(status, 200, "the server still serves");
}

#[test]
fn a_change_through_the_server_names_its_token_and_the_page_cannot_be_framed() {
    let p = project("ks_token", "");
    let s = Server::start(&p);
    let auth = format!("Bearer {TOKEN}");
    let (status, body, _) = s.post(
        "/api/releases/v2/kill",
        r#"{"reason": "from the page"}"#,
        &[("Authorization", &auth), ("Content-Type", "application/json")],
    );
    assert_eq!(status, 200, "{body}");
    let mut db = p.client();
    let actor: String = db
        .query_one(
            "select actor from backstop.events where kind = 'flag' order by id desc limit 1",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(actor, "alice (backstop serve token)");
    let resp = Server::agent().get(format!("{}/", s.base)).call().unwrap();
    assert_eq!(resp.headers().get("x-frame-options").unwrap(), "DENY");
    let csp = resp.headers().get("content-security-policy").unwrap().to_str().unwrap().to_string();
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"), "{csp}");
    let (status, js, _) = s.get("/status.js", None);
    assert_eq!(status, 200);
    assert!(js.contains("/kill"), "{js}");
}
