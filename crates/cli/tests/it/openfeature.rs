//! Real OpenFeature clients against `backstop serve`: the official OFREP
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
