//! Real OpenFeature clients against `backstop flags serve`: the official OFREP
//! provider (PyPI) through the OpenFeature SDK, and flagd's own evaluation
//! engine (npm) loading `/flags.json`. Installed by .ci/tools/openfeature.sh;
//! skipped, with the reason printed, where it has not run.

use std::path::PathBuf;
use std::process::Command;

use crate::common::server::Server;
use crate::common::{tools_dir, Project};
use serde_json::Value;

const CONFIG: &str = r#"[database]
url = "${DATABASE_URL}"

[serve]
token = "${SERVE_TOKEN}"

[[flags]]
key = "client_cards"
release = "v2"
default = false

[[flags]]
key = "client_memory"
release = "v2"
default = false

[[flags]]
key = "theme"
release = "v3"
variants = { classic = "classic", dark = "dark" }
default_variant = "dark"
default = "classic"
"#;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/openfeature").join(name)
}

fn json_of(cmd: &mut Command) -> Value {
    let out = cmd.output().expect("the client starts");
    assert!(
        out.status.success(),
        "{cmd:?} failed\n--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the client prints JSON")
}

fn project(label: &str) -> Project {
    let p = Project::new(label);
    p.config(CONFIG);
    p.run(&["flags", "sync"]).expect_code(0);
    p.run(&["flags", "enable", "client_cards", "--reason", "launch"]).expect_code(0);
    p.run(&["flags", "enable", "theme", "--reason", "launch"]).expect_code(0);
    p
}

#[test]
fn the_official_ofrep_provider_gets_values_reasons_and_the_code_default_when_off() {
    let python = tools_dir().join("ofrep-venv/bin/python");
    if !python.is_file() {
        crate::common::missing_tool("openfeature-provider-ofrep", ".ci/tools/openfeature.sh");
        return;
    }
    let p = project("of_python");
    let s = Server::start(&p);
    let got = json_of(Command::new(&python).arg(fixture("ofrep_client.py")).args([
        s.base.as_str(),
        "client_cards:bool:false",
        "theme:str:classic",
        "client_memory:bool:false",
        "no_such_flag:bool:true",
    ]));
    assert_eq!(got["client_cards"]["value"], true, "{got}");
    assert_eq!(got["client_cards"]["reason"], "STATIC", "{got}");
    assert_eq!(got["theme"]["value"], "dark", "{got}");
    assert_eq!(got["theme"]["variant"], "dark", "{got}");
    // Off: the application's own default, with the reason it was not served.
    assert_eq!(got["client_memory"]["value"], false, "{got}");
    assert_eq!(got["client_memory"]["reason"], "DISABLED", "{got}");
    assert_eq!(got["client_memory"]["error"], Value::Null, "{got}");
    assert_eq!(got["no_such_flag"]["value"], true, "{got}");
    assert_eq!(got["no_such_flag"]["error"], "FLAG_NOT_FOUND", "{got}");

    // The kill switch, as the application sees it on its next evaluation.
    p.run(&["flags", "kill", "--release", "v2", "--reason", "error rate"]).expect_code(0);
    crate::common::poll_until(
        "the kill reaches serve",
        100,
        std::time::Duration::from_millis(100),
        || {
            let got = json_of(
                Command::new(&python)
                    .arg(fixture("ofrep_client.py"))
                    .args([s.base.as_str(), "client_cards:bool:false"]),
            );
            got["client_cards"]["reason"] == "DISABLED" && got["client_cards"]["value"] == false
        },
    );
}

#[test]
fn flagds_own_engine_assigns_exactly_the_variants_backstop_assigns_on_a_10_90_split() {
    let modules = tools_dir().join("openfeature-node/node_modules");
    if !modules.join("@openfeature/flagd-core").is_dir() {
        crate::common::missing_tool("@openfeature/flagd-core", ".ci/tools/openfeature.sh");
        return;
    }
    let p = project("of_flagd");
    p.run(&["flags", "enable", "client_memory", "--percent", "10", "--reason", "canary"])
        .expect_code(0);
    let s = Server::start(&p);
    let got = json_of(
        Command::new("node").env("NODE_PATH", &modules).arg(fixture("flagd_split.cjs")).args([
            s.base.as_str(),
            "client_memory",
            "10000",
        ]),
    );
    assert_eq!(got["disagreements"], 0, "flagd and backstop disagree: {got}");
    let on = got["counts"]["true"].as_u64().unwrap_or(0);
    let off = got["counts"]["false"].as_u64().unwrap_or(0);
    assert_eq!(on + off, 10_000, "{got}");
    // A 10 % bucket of 10,000 keys: far from 0 and from 10,000.
    assert!((800..=1200).contains(&on), "{on} keys on for a 10 % rollout: {got}");
}

#[test]
fn the_npm_ofrep_provider_takes_a_killed_flag_as_disabled_not_as_an_error() {
    // Regression: @openfeature/ofrep-provider 0.1.3 called the answer for a
    // disabled flag malformed (no `value`), so every evaluation of a killed
    // flag was an ERROR in the application's logs and hooks.
    let modules = tools_dir().join("openfeature-node/node_modules");
    if !modules.join("@openfeature/ofrep-provider").is_dir() {
        crate::common::missing_tool("@openfeature/ofrep-provider", ".ci/tools/openfeature.sh");
        return;
    }
    let p = project("of_npm");
    p.run(&["flags", "kill", "--release", "v2", "--reason", "error rate"]).expect_code(0);
    p.run(&["flags", "disable", "theme", "--reason", "test"]).expect_code(0);
    let s = Server::start(&p);
    let got = json_of(
        Command::new("node").env("NODE_PATH", &modules).arg(fixture("ofrep_node.cjs")).args([
            s.base.as_str(),
            "client_cards:bool:true",
            "theme:str:dark",
            "no_such_flag:bool:true",
        ]),
    );
    assert_eq!(got["client_cards"]["reason"], "DISABLED", "{got}");
    assert_eq!(got["client_cards"]["error"], Value::Null, "{got}");
    assert_eq!(got["client_cards"]["value"], false, "the declared code default: {got}");
    assert_eq!(got["theme"]["reason"], "DISABLED", "{got}");
    assert_eq!(got["theme"]["value"], "classic", "{got}");
    assert_eq!(got["no_such_flag"]["error"], "FLAG_NOT_FOUND", "{got}");
    let logged: Vec<&str> =
        got["logged"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(
        logged.iter().all(|l| l.contains("no_such_flag")
            || l.contains("FlagNotFound")
            || l.contains("not found")),
        "only the unknown flag is an error: {logged:?}"
    );
}

#[test]
fn the_flagd_provider_in_process_gets_a_kill_pushed_over_grpc_sync() {
    // flagd's in-process providers used to poll /flags.json every 5 s; over
    // flagd.sync.v1 the change is pushed the moment it commits, so the
    // provider's configuration-changed event is what brings the new value.
    let modules = tools_dir().join("openfeature-node/node_modules");
    if !modules.join("@openfeature/flagd-provider").is_dir() {
        crate::common::missing_tool("@openfeature/flagd-provider", ".ci/tools/openfeature.sh");
        return;
    }
    let p = project("of_flagd_sync");
    let s = Server::start(&p);
    let (host, port) = s.addr().rsplit_once(':').unwrap();
    let mut child = Command::new("node")
        .env("NODE_PATH", &modules)
        .arg(fixture("flagd_sync.cjs"))
        .args([host, port, "client_cards", "3"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("node starts");
    let (tx, rx) = std::sync::mpsc::channel::<Value>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str(&line) {
                let _ = tx.send(v);
            }
        }
    });
    let next = |what: &str| {
        rx.recv_timeout(std::time::Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("the providers did not report {what}"))
    };
    let ready = next("being ready");
    assert_eq!(ready["ready"], 3, "{ready}");
    assert_eq!(ready["first"]["value"], true, "enabled before the kill: {ready}");
    assert_eq!(ready["first"]["reason"], "STATIC", "{ready}");

    p.run(&["flags", "kill", "--release", "v2", "--reason", "error rate"]).expect_code(0);
    let mut seen = std::collections::BTreeSet::new();
    while seen.len() < 3 {
        let change = next("the kill");
        assert_eq!(change["value"], false, "the kill reached provider: {change}");
        assert_eq!(change["reason"], "DISABLED", "{change}");
        seen.insert(change["provider"].as_u64().unwrap());
    }
    let metrics = s.get("/metrics", None).1;
    assert!(metrics.contains("backstop_sync_clients 3"), "{metrics}");
    let _ = child.kill();
    let _ = child.wait();
}

/// FetchAllFlags with grpc-js: its status code and details, or the keys.
fn grpc_fetch(s: &Server, token: Option<&str>) -> Option<Value> {
    let modules = tools_dir().join("openfeature-node/node_modules");
    if !modules.join("@grpc/proto-loader").is_dir() {
        crate::common::missing_tool("@grpc/proto-loader", ".ci/tools/openfeature.sh");
        return None;
    }
    let proto = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../server/proto");
    let mut cmd = Command::new("node");
    cmd.env("NODE_PATH", &modules).arg(fixture("grpc_fetch.cjs")).arg(s.addr()).arg(proto);
    cmd.args(token);
    Some(json_of(&mut cmd))
}

#[test]
fn grpc_sync_asks_for_the_token_when_private_and_says_unavailable_before_the_first_load() {
    let p = Project::new("of_grpc_private");
    p.config(&CONFIG.replace("[serve]\n", "[serve]\nprivate = true\n"));
    p.run(&["flags", "sync"]).expect_code(0);
    let s = Server::start(&p);
    let Some(none) = grpc_fetch(&s, None) else { return };
    assert_eq!(none["code"], 16, "UNAUTHENTICATED without a token: {none}");
    let wrong = grpc_fetch(&s, Some("not-the-token")).unwrap();
    assert_eq!(wrong["code"], 7, "PERMISSION_DENIED with a wrong one: {wrong}");
    let right = grpc_fetch(&s, Some(crate::common::server::TOKEN)).unwrap();
    assert_eq!(right["code"], 0, "{right}");
    assert_eq!(right["flags"], serde_json::json!(["client_cards", "client_memory", "theme"]));
    drop(s);

    // Never an empty flag set before the flags were read: UNAVAILABLE, so
    // providers retry.
    let nowhere =
        p.url.rsplit_once('/').map(|(base, _)| format!("{base}/no_such_database")).unwrap();
    let s = Server::spawn(&p, &[("DATABASE_URL", &nowhere)]);
    crate::common::poll_until("serve answers", 50, std::time::Duration::from_millis(100), || {
        s.get("/healthz", None).0 == 200
    });
    let early = grpc_fetch(&s, Some(crate::common::server::TOKEN)).unwrap();
    assert_eq!(early["code"], 14, "UNAVAILABLE before the first load: {early}");
    assert!(early["details"].as_str().unwrap_or("").contains("not been read"), "{early}");
}
