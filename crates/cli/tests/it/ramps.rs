//! `backstop flags ramp`: a release's share raised step by step, judged by
//! the triggers between steps. The share `serve` hands out over OFREP
//! follows every step (a user who has the release keeps it as it grows), a
//! breach kills the release at once, a ramp whose process is killed -9
//! goes on from its recorded step (by `flags ramp` again or by `watch`),
//! and bad input is refused before anything changes.
//!
//! The trigger is a SQL query on a gate the test holds: it answers "no
//! data" (the ramp holds) until the test allows the next share, "healthy"
//! once it does, and a breach when the test plants one. So every step
//! happens when the test says, without timing anything.

use std::collections::BTreeSet;
use std::process::{Child, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::server::Server;
use crate::common::{poll_until, Project};

const CONFIG: &str = r#"[database]
url = "${DATABASE_URL}"

[decide]
escalate_after = "2s"

[[flags]]
key = "new_checkout"
release = "v2"
default = false

[[flags]]
key = "other"
release = "v3"

[[triggers]]
name = "error rate"
source = "sql"
sql = """
select case when g.breach then 0.9
            when exists (select from backstop.ramps r
                          where r.state = 'running' and r.steps[r.step + 2] <= g.allowed) then 0.01
       end
  from app_metrics.gate g"""
above = 0.05
interval = "1s"
method = "A"
"#;

const STEPS: [&str; 8] =
    ["flags", "ramp", "v2", "--steps", "1,5,25,50,100", "--every", "1s", "--reason"];

fn project(label: &str) -> Project {
    let p = Project::new(label);
    p.config(CONFIG);
    p.client()
        .batch_execute(
            "create schema app_metrics;
             create table app_metrics.gate (allowed int not null, breach bool not null);
             insert into app_metrics.gate values (0, false);",
        )
        .unwrap();
    p.run(&["flags", "sync"]).expect_code(0);
    p
}

/// Lets the ramp go on up to `share` (the gate is healthy until then).
fn allow(p: &Project, share: i32) {
    p.client().execute("update app_metrics.gate set allowed = $1", &[&share]).unwrap();
}

/// `flags ramp v2 …` in the background, its output in `name` in the project.
fn ramp_in_background(p: &Project, name: &str) -> Child {
    let out = std::fs::File::create(p.path().join(name)).unwrap();
    let mut args: Vec<&str> = STEPS.to_vec();
    args.push("canary");
    p.std_cmd(&args).stdout(out.try_clone().unwrap()).stderr(out).spawn().unwrap()
}

/// `flags ramp v2 --status` as JSON; null while there is no ramp yet.
fn status(p: &Project) -> Value {
    let run = p.run(&["flags", "ramp", "v2", "--status", "--format", "json"]);
    match run.code {
        Some(0) => run.json(),
        _ => Value::Null,
    }
}

/// Waits until a running ramp serves `share`.
fn until_share(p: &Project, share: i64) {
    for _ in 0..600 {
        let now = status(p);
        if now["state"] == "running" && now["share"] == share {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let outs: Vec<String> = std::fs::read_dir(p.path())
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "out"))
        .map(|e| {
            format!("--- {}\n{}", e.path().display(), std::fs::read_to_string(e.path()).unwrap())
        })
        .collect();
    let run = p.run(&["flags", "ramp", "v2", "--status"]);
    panic!("the ramp never served {share}%\n{}\n{run:?}", outs.join("\n"));
}

/// Waits for `child` to end, with a bound; its exit code.
fn exit_of(child: &mut Child) -> Option<i32> {
    let mut code = None;
    poll_until("the ramp's process ends", 600, Duration::from_millis(100), || {
        match child.try_wait().unwrap() {
            Some(status) => {
                code = Some(status.code());
                true
            }
            None => false,
        }
    });
    code.unwrap()
}

/// The percents the flag events of `key` recorded, in order (100 when on
/// for everyone, none when turned off).
fn percents(p: &Project, key: &str) -> Vec<Option<i64>> {
    p.client()
        .query(
            "select details from backstop.events where kind = 'flag' and details ->> 'key' = $1
              and details ->> 'to' = 'ENABLED' order by id",
            &[&key],
        )
        .unwrap()
        .iter()
        .map(|r| r.get::<_, Value>(0)["percent"].as_i64())
        .collect()
}

fn ramp_events(p: &Project) -> Vec<(String, i64)> {
    p.client()
        .query("select outcome, details from backstop.events where kind = 'ramp' order by id", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, Value>(1)["share"].as_i64().unwrap()))
        .collect()
}

/// The targeting keys `serve` answers 'on' for, out of `n`, once it serves
/// `share`: asked over OFREP, one request per key.
fn on_keys(s: &Server, share: i64, n: usize) -> BTreeSet<usize> {
    poll_until(&format!("serve serves {share}%"), 300, Duration::from_millis(100), || {
        let (_, body, _) = s.get("/flags.json", None);
        let doc: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        let flag = &doc["flags"]["new_checkout"];
        let served = match flag["targeting"]["fractional"][0][1].as_i64() {
            Some(p) => p,
            None if flag["state"] == "ENABLED" => 100,
            None => 0,
        };
        served == share
    });
    let agent = Server::agent();
    let url = format!("{}/ofrep/v1/evaluate/flags/new_checkout", s.base);
    let mut on = BTreeSet::new();
    for i in 0..n {
        let body = json!({ "context": { "targetingKey": format!("user-{i}") } }).to_string();
        let resp = agent.post(&url).send(body).expect("serve answers");
        let (status, body, _) = Server::read(resp);
        assert_eq!(status, 200, "{body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        let reason = if share == 100 { "STATIC" } else { "SPLIT" };
        assert_eq!(body["reason"], reason, "{body}");
        if body["value"] == json!(true) {
            on.insert(i);
        }
    }
    on
}

#[test]
fn a_ramp_follows_every_step_over_ofrep_and_a_breach_at_25_kills_it_at_once() {
    let p = project("ramp_breach");
    let s = Server::start(&p);
    let mut ramp = ramp_in_background(&p, "ramp.out");
    const N: usize = 2000;
    let fraction = |on: &BTreeSet<usize>| on.len() as f64 / N as f64;

    until_share(&p, 1);
    let at1 = on_keys(&s, 1, N);
    assert!((fraction(&at1) - 0.01).abs() <= 0.01, "{} on at 1%", at1.len());
    // The triggers hold it (no data): it stays at 1% until they are clear.
    assert_eq!(status(&p)["share"], 1);
    allow(&p, 5);
    until_share(&p, 5);
    let at5 = on_keys(&s, 5, N);
    assert!((fraction(&at5) - 0.05).abs() <= 0.015, "{} on at 5%", at5.len());
    assert!(at1.is_subset(&at5), "a key on at 1% is on at 5%");
    allow(&p, 25);
    until_share(&p, 25);
    let at25 = on_keys(&s, 25, N);
    assert!((fraction(&at25) - 0.25).abs() <= 0.03, "{} on at 25%", at25.len());
    assert!(at5.is_subset(&at25), "a key on at 5% stays on at 25%");

    // /metrics and the status page show the ramp.
    poll_until("metrics show 25%", 100, Duration::from_millis(100), || {
        s.get("/metrics", None).1.contains("backstop_ramp_share{release=\"v2\"} 25")
    });
    let (_, metrics, _) = s.get("/metrics", None);
    assert!(metrics.contains("backstop_ramp_step{release=\"v2\",steps=\"5\"} 3"), "{metrics}");
    assert!(metrics.contains("backstop_ramp_carried{release=\"v2\"} 1"), "{metrics}");
    let (_, page, _) = s.get("/", None);
    assert!(page.contains("<h2>Ramps</h2>") && page.contains("1% → 5% → [25%] → 50% → 100%"));
    let shown = p.run(&["flags", "ramp", "v2", "--status"]).expect_code(0).stdout.clone();
    assert!(shown.contains("step     3 of 5: 25%"), "{shown}");
    assert!(shown.contains("next     50% at"), "{shown}");
    assert!(shown.contains("carried  by "), "{shown}");
    assert!(shown.contains("error rate"), "the evidence: {shown}");

    // The breach: killed at the first sample that sees it.
    p.client().execute("update app_metrics.gate set breach = true, allowed = 100", &[]).unwrap();
    assert_eq!(exit_of(&mut ramp), Some(1), "killed, the escalation settled");
    let out = std::fs::read_to_string(p.path().join("ramp.out")).unwrap();
    assert!(out.contains("✗ ramp of v2 (3 of 5) killed at 25%"), "{out}");
    assert!(out.contains("✓ method A: flags off"), "{out}");
    assert!(
        out.contains("method B is called for (above --auto)"),
        "escalated as watch does: {out}"
    );
    let decided: Value = p
        .client()
        .query_one(
            "select details from backstop.events where kind = 'decide' and outcome = 'rollback'
              order by id limit 1",
            &[],
        )
        .unwrap()
        .get(0);
    let samples = decided["evidence"][0]["samples"].as_array().unwrap();
    let breaching = samples.iter().filter(|s| s["value"] == json!(0.9)).count();
    assert_eq!(breaching, 1, "killed at the first breaching sample: {decided}");
    poll_until("serve serves the kill", 100, Duration::from_millis(100), || {
        s.eval("new_checkout", json!({ "targetingKey": "user-1" })).1["reason"] == "DISABLED"
    });
    assert_eq!(percents(&p, "new_checkout"), [Some(1), Some(5), Some(25)]);
    let st = status(&p);
    assert_eq!((st["state"].as_str(), st["share"].as_i64()), (Some("killed"), Some(25)));
    assert!(st["end_note"].as_str().unwrap().contains("killed at 25% by a breach"), "{st}");
}

#[test]
fn flags_ramp_status_after_a_kill_shows_the_breach_not_the_clear_judgement_before_it() {
    // Regression: `--status` of a ramp killed by a breach showed "OK
    // (clear)", the judgement of the round before the breach.
    let p = project("ramp_killed_status");
    allow(&p, 5);
    let out = std::fs::File::create(p.path().join("ramp.out")).unwrap();
    let args = ["flags", "ramp", "v2", "--steps", "1,5", "--every", "1h", "--reason", "canary"];
    let mut ramp = p.std_cmd(&args).stdout(out.try_clone().unwrap()).stderr(out).spawn().unwrap();
    // Clear at 1%, the next step an hour away: it stays, judged clear.
    poll_until("the ramp is judged clear", 300, Duration::from_millis(100), || {
        status(&p)["judgement"]["judged"] == "clear"
    });
    p.run(&["flags", "ramp", "v2", "--status"]).expect_code(0).expect_output("OK (clear)");
    p.client().execute("update app_metrics.gate set breach = true", &[]).unwrap();
    assert_eq!(exit_of(&mut ramp), Some(1), "killed, the escalation settled");
    let st = status(&p);
    assert_eq!(st["state"], "killed", "{st}");
    let j = &st["judgement"];
    assert_eq!(j["verdict"], "rollback", "{st}");
    assert_eq!(j["judged"], "breach: the release is killed", "{st}");
    assert_eq!(j["evidence"][0]["trigger"], "error rate", "{st}");
    assert_eq!(j["evidence"][0]["state"], "breach", "{st}");
    assert_eq!(j["evidence"][0]["value"], json!(0.9), "{st}");
    let shown = p.run(&["flags", "ramp", "v2", "--status"]).expect_code(0).stdout.clone();
    assert!(shown.contains("ROLLBACK (breach: the release is killed)"), "{shown}");
    assert!(!shown.contains("OK (clear)"), "{shown}");
}

#[test]
fn a_ramp_killed_9_goes_on_from_its_recorded_step_by_flags_ramp_and_by_watch() {
    let p = project("ramp_resume");
    allow(&p, 5);
    let mut first = ramp_in_background(&p, "first.out");
    until_share(&p, 5);
    first.kill().unwrap();
    first.wait().unwrap();
    poll_until("no process carries the ramp", 300, Duration::from_millis(100), || {
        status(&p)["carried"] == false
    });
    let shown = p.run(&["flags", "ramp", "v2", "--status"]).expect_code(0).stdout.clone();
    assert!(shown.contains("by no process now"), "{shown}");
    assert_eq!(status(&p)["share"], 5, "it stands where it was");

    // The same command again carries it on from 5%.
    let mut second = ramp_in_background(&p, "second.out");
    poll_until("the second carries it on", 300, Duration::from_millis(100), || {
        status(&p)["carried"] == true
    });
    allow(&p, 50);
    until_share(&p, 50);
    // While it runs, another ramp of the release is refused, whoever asks.
    // Regression: the refusal named the carrier on record (`driven_by`,
    // maybe the process killed above), not the session holding the ramp.
    let mut again: Vec<&str> = STEPS.to_vec();
    again.push("again");
    let holder: i32 = p
        .client()
        .query_one(
            "select pid from pg_locks where locktype = 'advisory' and objsubid = 2 and granted
                and database = (select oid from pg_database where datname = current_database())",
            &[],
        )
        .unwrap()
        .get(0);
    let refused = p.run(&again);
    refused
        .expect_code(2)
        .expect_output(&format!("is carried on by the session pid {holder} (backstop flags ramp"));
    let recorded = status(&p)["driven_by"].as_str().unwrap().to_string();
    assert!(!refused.all().contains(&recorded), "names {recorded:?}: {}", refused.all());
    second.kill().unwrap();
    second.wait().unwrap();
    let out = std::fs::read_to_string(p.path().join("second.out")).unwrap();
    assert!(out.contains("ramp of v2 carried on: 1% → [5%] → 25% → 50% → 100%"), "{out}");

    // `watch` started later takes it up from 50% and finishes it.
    poll_until("no process carries it", 300, Duration::from_millis(100), || {
        status(&p)["carried"] == false
    });
    allow(&p, 100);
    let watch_out = std::fs::File::create(p.path().join("watch.out")).unwrap();
    let mut watch = p.std_cmd(&["watch"]).stdout(watch_out).stderr(Stdio::null()).spawn().unwrap();
    poll_until("the ramp is done", 600, Duration::from_millis(100), || {
        status(&p)["state"] == "done"
    });
    watch.kill().unwrap();
    watch.wait().unwrap();
    let out = std::fs::read_to_string(p.path().join("watch.out")).unwrap();
    assert!(out.contains("ramp of v2 (4 of 5) carried on here at 50%"), "{out}");
    assert!(out.contains("✓ ramp of v2 (5 of 5) done at 100%"), "{out}");
    // Each step served once, none skipped, none repeated.
    assert_eq!(percents(&p, "new_checkout"), [Some(1), Some(5), Some(25), Some(50), Some(100)]);
    let shares: Vec<(String, i64)> = ramp_events(&p);
    let expected: Vec<(String, i64)> =
        [("begun", 1), ("step", 5), ("step", 25), ("step", 50), ("step", 100), ("done", 100)]
            .iter()
            .map(|(o, s)| (o.to_string(), *s))
            .collect();
    assert_eq!(shares, expected);
}

#[test]
fn bad_ramps_are_refused_and_change_nothing() {
    let p = project("ramp_bad");
    let ramp = |steps: &str, every: &str, release: &str| {
        p.run(&["flags", "ramp", release, "--steps", steps, "--every", every, "--reason", "x"])
    };
    ramp("5,1", "1s", "v2").expect_code(2).expect_output("1 after 5 does not rise");
    ramp("1,5,5", "1s", "v2").expect_code(2).expect_output("5 after 5 does not rise");
    ramp("1,150", "1s", "v2").expect_code(2).expect_output("150 is more than 100");
    ramp("1,-5", "1s", "v2").expect_code(2).expect_output("\"-5\" is not a whole number");
    ramp("1,5", "soon", "v2").expect_code(2).expect_output("--every \"soon\"");
    ramp("1,5", "0s", "v2").expect_code(2).expect_output("at least a second");
    ramp("1,5", "1s", "v9").expect_code(2).expect_output("no flag belongs to release v9");
    p.run(&["flags", "ramp", "v2", "--steps", "1,5", "--every", "1s"])
        .expect_code(2)
        .expect_output("a reason is needed");
    p.run(&["flags", "ramp", "v2", "--steps", "1,5"]).expect_code(2);
    p.run(&["flags", "ramp", "v2", "--status"])
        .expect_code(2)
        .expect_output("no ramp of release v2");
    p.run(&["flags", "ramp", "v2", "--abort", "--reason", "x"])
        .expect_code(2)
        .expect_output("no ramp of release v2 is running");
    p.run(&["flags", "ramp", "v2"])
        .expect_code(2)
        .expect_output("no ramp of release v2 is running");
    let no_triggers = CONFIG.split("[[triggers]]").next().unwrap();
    p.config(no_triggers);
    ramp("1,5", "1s", "v2").expect_code(2).expect_output("has none");
    p.config(CONFIG);
    let mut c = p.client();
    let ramps: i64 = c
        .query_one("select case when to_regclass('backstop.ramps') is null then 0 else (select count(*) from backstop.ramps) end", &[])
        .unwrap()
        .get(0);
    assert_eq!(ramps, 0, "no ramp recorded");
    let on: i64 = c
        .query_one("select count(*) from backstop.flags where state = 'ENABLED'", &[])
        .unwrap()
        .get(0);
    assert_eq!(on, 0, "no flag turned on");

    // A second ramp of a release while one runs: refused, with how to go on.
    let mut running = ramp_in_background(&p, "ramp.out");
    until_share(&p, 1);
    ramp("10,100", "1s", "v2")
        .expect_code(2)
        .expect_output("release v2 is already ramping")
        .expect_output("--abort");
    assert_eq!(status(&p)["steps"], json!([1, 5, 25, 50, 100]));
    // Another release ramps on its own.
    let other = ramp("100", "1s", "v3");
    other.expect_code(0).expect_output("ramp of v3 begun");
    // An abort stops it where it is; its process says so and exits 1.
    p.run(&["flags", "ramp", "v2", "--abort", "--reason", "looks wrong"])
        .expect_code(0)
        .expect_output("aborted at 1%");
    assert_eq!(exit_of(&mut running), Some(1));
    let out = std::fs::read_to_string(p.path().join("ramp.out")).unwrap();
    assert!(out.contains("ramp of v2 (1 of 5) aborted by "), "{out}");
    assert!(out.contains(": looks wrong"), "{out}");
    let st = status(&p);
    assert_eq!((st["state"].as_str(), st["share"].as_i64()), (Some("aborted"), Some(1)));

    // A release turned off by hand stops its ramp, held or not.
    let mut again = ramp_in_background(&p, "again.out");
    until_share(&p, 1);
    p.run(&["flags", "kill", "--release", "v2", "--reason", "by hand"]).expect_code(0);
    assert_eq!(exit_of(&mut again), Some(1));
    let st = status(&p);
    assert_eq!(st["state"], "killed", "{st}");
    assert!(
        st["end_note"]
            .as_str()
            .unwrap()
            .contains("flag new_checkout of the release was turned off outside the ramp"),
        "{st}"
    );
}
