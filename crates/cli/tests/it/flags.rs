//! `backstop flags`: flags declared in config, created off by sync, turned
//! on, rolled out, killed by release; every change audited in the same
//! transaction and announced with NOTIFY.

use crate::common::Project;
use serde_json::Value;

const CONFIG: &str = r#"[database]
url = "${DATABASE_URL}"

[[flags]]
key = "client_cards"
release = "v2"
description = "Client cards UI and /api/clients"
default = false

[[flags]]
key = "client_memory"
release = "v2"

[[flags]]
key = "pgvector_search"
release = "v3"
"#;

fn project(label: &str) -> Project {
    let p = Project::new(label);
    p.config(CONFIG);
    p
}

fn listed(p: &Project) -> Vec<Value> {
    p.run(&["flags", "list", "--format", "json"]).expect_code(0).json().as_array().unwrap().clone()
}

fn enabled(p: &Project, key: &str) -> bool {
    listed(p).iter().find(|f| f["key"] == key).unwrap()["enabled"].as_bool().unwrap()
}

#[test]
fn sync_creates_declared_flags_off_and_never_flips_existing_ones() {
    let p = project("flags_sync");
    p.run(&["flags", "sync"])
        .expect_code(0)
        .expect_output("created (off): client_cards, client_memory, pgvector_search");
    let list = listed(&p);
    assert_eq!(list.len(), 3);
    for f in &list {
        assert_eq!(f["enabled"], false, "{f}");
        assert!(f["updated_by"].as_str().unwrap().contains('@'));
        assert!(f["release"].is_string());
    }
    p.run(&["flags", "enable", "client_cards", "--reason", "launch"]).expect_code(0);
    // A declaration removed from config is reported, and nothing is flipped.
    p.config(&CONFIG.replace("[[flags]]\nkey = \"pgvector_search\"\nrelease = \"v3\"\n", ""));
    p.run(&["flags", "sync"])
        .expect_code(0)
        .expect_output("created (off): none")
        .expect_output("no longer in backstop.toml: pgvector_search");
    assert!(enabled(&p, "client_cards"));
    assert_eq!(listed(&p).len(), 3);
}

#[test]
fn enable_rollout_disable_and_kill_are_audited_and_notified_in_one_transaction() {
    let p = project("flags_changes");
    p.run(&["flags", "sync"]).expect_code(0);
    let mut listener = p.client();
    listener.batch_execute("LISTEN backstop_flags").unwrap();

    p.run(&["flags", "enable", "client_cards", "--reason", "launch"])
        .expect_code(0)
        .expect_output("✓ client_cards on");
    p.run(&["flags", "enable", "client_memory", "--percent", "10", "--reason", "canary"])
        .expect_code(0)
        .expect_output("on for 10%");
    let list = listed(&p);
    let memory = list.iter().find(|f| f["key"] == "client_memory").unwrap();
    assert_eq!(memory["percent"], 10);
    assert_eq!(memory["targeting"]["fractional"][0], serde_json::json!(["on", 10]));

    let run = p.run(&["flags", "kill", "--release", "v2", "--reason", "error rate 8%"]);
    run.expect_code(0).expect_output("✓ client_cards off").expect_output("✓ client_memory off");
    assert!(!enabled(&p, "client_cards") && !enabled(&p, "client_memory"));

    // Three commits, three notifications, each carrying the ETag of the time.
    use postgres::fallible_iterator::FallibleIterator as _;
    let notes: Vec<String> = listener
        .notifications()
        .timeout_iter(std::time::Duration::from_secs(5))
        .take(3)
        .map(|n| Ok(n.payload().to_string()))
        .collect()
        .unwrap();
    assert_eq!(notes.len(), 3, "{notes:?}");
    assert!(notes.iter().all(|n| n.starts_with('"')), "{notes:?}");
    assert_ne!(notes[0], notes[2]);

    let history =
        p.run(&["flags", "history", "client_cards", "--format", "json"]).expect_code(0).json();
    let reasons: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["details"]["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["flags sync: declared in backstop.toml", "launch", "error rate 8%"]);
    p.run(&["flags", "history", "client_cards"])
        .expect_code(0)
        .expect_output("ENABLED -> DISABLED")
        .expect_output("error rate 8%");

    // The kill undone: the whole release on again, in one change.
    p.run(&["flags", "enable", "--release", "v2", "--reason", "fixed forward"])
        .expect_code(0)
        .expect_output("✓ client_cards on")
        .expect_output("✓ client_memory on");
    assert!(enabled(&p, "client_cards") && enabled(&p, "client_memory"));
}

#[test]
fn unknown_flags_and_releases_missing_reasons_and_bad_shares_change_nothing() {
    let p = project("flags_bad");
    p.run(&["flags", "sync"]).expect_code(0);
    p.run(&["flags", "enable", "nope", "--reason", "x"])
        .expect_code(2)
        .expect_output("no flag nope");
    p.run(&["flags", "kill", "--release", "v9", "--reason", "x"])
        .expect_code(2)
        .expect_output("no flag belongs to release v9");
    p.run(&["flags", "enable", "--release", "v9", "--reason", "x"])
        .expect_code(2)
        .expect_output("no flag belongs to release v9");
    p.run(&["flags", "enable", "client_cards", "--release", "v2", "--reason", "x"]).expect_code(2);
    p.run(&["flags", "enable", "client_cards"]).expect_code(2).expect_output("--reason");
    p.run(&["flags", "enable", "client_cards", "--reason", " "])
        .expect_code(2)
        .expect_output("a reason is needed");
    p.run(&["flags", "enable", "client_cards", "--percent", "101", "--reason", "x"]).expect_code(2);
    assert!(listed(&p).iter().all(|f| f["enabled"] == false));
    let flag_events: i64 = p
        .client()
        .query_one("select count(*) from backstop.events where kind = 'flag' and details->>'reason' <> 'flags sync: declared in backstop.toml'", &[])
        .unwrap()
        .get(0);
    assert_eq!(flag_events, 0);
    // A bad declaration is a config error with its place.
    p.config("[[flags]]\nkey = \"has space\"\nrelease = \"v2\"\n");
    p.run(&["flags", "list"])
        .expect_code(2)
        .expect_output("backstop.toml:1:")
        .expect_output("no spaces");
}
