//! `backstop respond watch` and `backstop respond method A`: live samples from
//! real sources decide, method A turns the release's flags off and runs its
//! hook, escalation to B is called for when A does not help, and a verdict
//! never rests on bad data.

use std::io::{Read, Write};
use std::net::TcpListener;

use crate::common::Project;

fn config(trigger: &str, extra: &str) -> String {
    format!(
        r#"[database]
url = "${{DATABASE_URL}}"

[hooks]
after_kill = "echo redeployed >> hook.out"
timeout = "5s"
{extra}

[[flags]]
key = "client_cards"
release = "v2"

[[flags]]
key = "client_memory"
release = "v2"

{trigger}
"#
    )
}

const SQL_TRIGGER: &str = r#"[[triggers]]
name = "error rate"
source = "sql"
sql = "select rate from app_metrics.errors"
above = 0.05
interval = "1s"
method = "A"
"#;

fn project(label: &str, trigger: &str, extra: &str, rate: f64) -> Project {
    let p = Project::new(label);
    p.config(&config(trigger, extra));
    p.client()
        .batch_execute(&format!(
            "create schema app_metrics; create table app_metrics.errors (rate float8); insert into app_metrics.errors values ({rate})"
        ))
        .unwrap();
    p.run(&["flags", "sync"]).expect_code(0);
    p.run(&["flags", "enable", "client_cards", "--reason", "launch"]).expect_code(0);
    p.run(&["flags", "enable", "client_memory", "--reason", "launch"]).expect_code(0);
    p
}

fn on(p: &Project) -> Vec<bool> {
    let list = p.run(&["flags", "list", "--format", "json"]).expect_code(0).json();
    list.as_array().unwrap().iter().map(|f| f["enabled"].as_bool().unwrap()).collect()
}

fn events(p: &Project, kind: &str) -> Vec<(String, serde_json::Value)> {
    p.client()
        .query("select outcome, details from backstop.events where kind = $1 order by id", &[&kind])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[test]
fn a_breach_with_auto_a_turns_the_release_off_and_runs_the_hook() {
    let p = project("watch_auto_a", SQL_TRIGGER, "", 0.08);
    p.run(&["watch", "--once", "--auto", "A"])
        .expect_code(0)
        .expect_output("error rate = 0.08")
        .expect_output("ROLLBACK: method A")
        .expect_output("✓ method A: flags off")
        .expect_output("✓ method A: after_kill hook");
    assert_eq!(on(&p), [false, false]);
    assert_eq!(std::fs::read_to_string(p.path().join("hook.out")).unwrap(), "redeployed\n");
    let decided = events(&p, "decide");
    assert_eq!(decided.len(), 1);
    assert_eq!(decided[0].0, "rollback");
    assert_eq!(decided[0].1["evidence"][0]["samples"][0]["value"], 0.08, "{:?}", decided[0].1);
    let method: Vec<String> = events(&p, "method").into_iter().map(|(o, _)| o).collect();
    assert_eq!(method, ["started", "ok"]);
    // The sample that moved the trigger to breach is an event of its own.
    let samples = events(&p, "sample");
    assert_eq!(samples.len(), 1, "{samples:?}");
    assert_eq!(samples[0].1["state"], "breach");
    assert_eq!(samples[0].1["sample"]["value"], 0.08, "{:?}", samples[0].1);

    // serve's /metrics shows the decision and the sample it rested on.
    let s = crate::common::server::Server::start(&p);
    let (status, metrics, _) = s.get("/metrics", None);
    assert_eq!(status, 200);
    for line in [
        "backstop_decision{verdict=\"rollback\",method=\"A\"} 1",
        "backstop_trigger_state{trigger=\"error rate\",state=\"breach\",rule=\"above 0.05\"} 1",
        "backstop_trigger_value{trigger=\"error rate\"} 0.08",
    ] {
        assert!(metrics.contains(line), "{line} missing in\n{metrics}");
    }
}

#[test]
fn without_auto_the_command_is_printed_and_nothing_changes() {
    let p = project("watch_say", SQL_TRIGGER, "", 0.08);
    p.run(&["watch", "--once"])
        .expect_code(1)
        .expect_output("method A is called for (above --auto)")
        .expect_output("backstop respond method A --release v2 --yes");
    assert_eq!(on(&p), [true, true]);
    assert!(!p.path().join("hook.out").exists());
}

#[test]
fn on_a_terminal_watch_redraws_one_table_of_its_triggers() {
    let p = project("watch_board", SQL_TRIGGER, "", 0.08);
    // A pseudo-terminal from util-linux's `script`, as a user's shell has.
    let command = format!("{} watch --for 3s", crate::common::backstop_bin().display());
    let out = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .current_dir(p.path())
        .env("DATABASE_URL", &p.url)
        .env_remove("BACKSTOP_CONFIG")
        .output()
        .expect("script runs");
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{screen}");
    // The trigger's line (value, rule, state) and the verdict's, redrawn
    // in place rather than a line per sample.
    assert!(screen.contains("\x1b["), "no cursor movement: {screen:?}");
    let row = screen
        .lines()
        .map(|l| l.rsplit('\r').next().unwrap_or(l))
        .find(|l| l.contains("error rate") && l.contains("breach"))
        .unwrap_or_else(|| panic!("no trigger line: {screen:?}"));
    assert!(row.contains("0.08") && row.contains("above 0.05"), "{row:?}");
    assert!(screen.contains("verdict at ") && screen.contains("ROLLBACK: method A"), "{screen:?}");
    assert!(!screen.contains("error rate = 0.08"), "sample lines on a terminal: {screen:?}");
    // What happened is printed above the table, once.
    assert_eq!(screen.matches("method A is called for (above --auto)").count(), 1, "{screen:?}");
}

#[test]
fn a_verdict_never_rests_on_bad_data() {
    // The query fails: no value, a hold, nothing turned off.
    let broken = SQL_TRIGGER.replace("app_metrics.errors", "app_metrics.missing");
    let p = project("watch_bad_sql", &broken, "", 0.08);
    p.run(&["watch", "--once", "--auto", "A"])
        .expect_code(0)
        .expect_output(
            "no value: the query failed: relation \"app_metrics.missing\" does not exist",
        )
        .expect_output("HOLD");
    assert_eq!(on(&p), [true, true]);

    // An endpoint that answers HTML instead of JSON.
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut s in server.incoming().flatten() {
            let mut buf = [0u8; 2048];
            let _ = s.read(&mut buf);
            let body = "<html><body>Login</body></html>";
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let http = format!(
        "[[triggers]]\nname = \"error rate\"\nsource = \"http\"\nurl = \"http://{addr}/metrics.json\"\njson_path = \"errors.rate\"\nabove = 0.05\nmethod = \"A\"\ntimeout = \"2s\"\n"
    );
    p.config(&config(&http, ""));
    p.run(&["watch", "--once", "--auto", "A"])
        .expect_code(0)
        .expect_output("answered 200 with an HTML page")
        .expect_output("HOLD");
    assert_eq!(on(&p), [true, true]);

    // A command that hangs is stopped at its timeout: no value.
    let hang = "[[triggers]]\nname = \"error rate\"\nsource = \"command\"\ncommand = \"sleep 30\"\nabove = 0.05\nmethod = \"A\"\ntimeout = \"300ms\"\n";
    p.config(&config(hang, ""));
    p.run(&["watch", "--once", "--auto", "A"])
        .expect_code(0)
        .expect_output("did not finish within 300 ms");
    assert_eq!(on(&p), [true, true]);
}

#[test]
fn when_a_does_not_help_b_is_called_for_after_the_window() {
    let p = project("watch_escalate", SQL_TRIGGER, "[decide]\nescalate_after = \"2s\"\n", 0.08);
    let run = p.run(&["watch", "--for", "6s", "--auto", "A"]);
    run.expect_code(0)
        .expect_output("✓ method A: flags off")
        .expect_output("HOLD: waiting for the method carried out to take effect")
        .expect_output("after method A was carried out, past the escalation window of 2 s")
        .expect_output("method B is called for (above --auto)");
    assert!(!run.all().contains("a person should look"), "{}", run.all());
    let decided: Vec<String> = events(&p, "decide").into_iter().map(|(o, _)| o).collect();
    assert_eq!(decided.first().map(String::as_str), Some("rollback"));
    assert!(decided.iter().any(|o| o == "hold"), "waiting for A shows as a hold: {decided:?}");
    let methods = events(&p, "method").into_iter().filter(|(o, _)| o == "ok").count();
    assert_eq!(methods, 1, "A is carried out once, not again on every sample");
}

#[test]
fn rollback_method_a_says_what_it_would_do_then_does_it() {
    let p = project("method_a", SQL_TRIGGER, "", 0.0);
    p.run(&["rollback", "--method", "A"])
        .expect_code(0)
        .expect_output("method A would turn off release v2 (2: client_cards, client_memory)")
        .expect_output("nothing changed");
    assert_eq!(on(&p), [true, true]);
    p.run(&["rollback", "--method", "A", "--flag", "client_memory", "--yes", "--reason", "cost"])
        .expect_code(0)
        .expect_output("flag client_memory off");
    assert_eq!(on(&p), [true, false]);

    p.config(
        &config(SQL_TRIGGER, "")
            .replace("echo redeployed >> hook.out", "echo deploy failed >&2; exit 7"),
    );
    p.run(&["rollback", "--method", "A", "--yes"])
        .expect_code(1)
        .expect_output("✓ flags off")
        .expect_output("step after_kill hook failed")
        .expect_output("deploy failed");
    assert_eq!(on(&p), [false, false], "the flags stay off when the hook fails");
    let outcomes: Vec<String> = events(&p, "method").into_iter().map(|(o, _)| o).collect();
    assert_eq!(outcomes.last().map(String::as_str), Some("failed"));

    p.run(&["rollback", "--method", "C", "--yes"])
        .expect_code(2)
        .expect_output("method C has nothing to revert");
    p.run(&["rollback", "--method", "A", "--steps", "1"])
        .expect_code(2)
        .expect_output("--to and --steps choose the migrations that method C reverts")
        .expect_output("method A turns flags off and reverts no migration");
    // The same methods under `respond`, where a letter is checked as the value it is.
    p.run(&["respond", "method", "a", "--release", "v2"])
        .expect_code(0)
        .expect_output("method A would turn off release v2")
        .expect_output("nothing changed");
    p.run(&["respond", "method", "Z"]).expect_code(2).expect_output("[possible values: A, B, C]");
    p.run(&["rollback", "--method", "Z"])
        .expect_code(2)
        .expect_output("invalid value 'Z' for '--method <METHOD>'")
        .expect_output("[possible values: A, B, C]");
    p.run(&["rollback", "--method", "A", "--release", "v9", "--yes"])
        .expect_code(2)
        .expect_output("no flag belongs to release v9");
}

/// Prometheus from Debian's package, when .ci/tools/prometheus.sh has run.
fn prometheus() -> Option<std::path::PathBuf> {
    let found = ["/usr/bin/prometheus", "/usr/local/bin/prometheus"]
        .into_iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.is_file());
    if found.is_none() {
        crate::common::missing_tool("prometheus", ".ci/tools/prometheus.sh");
    }
    found
}

#[test]
fn a_real_prometheus_breach_is_decided_one_interval_after_the_for_window() {
    let Some(bin) = prometheus() else { return };
    // The application's exporter: an error ratio of 8 %.
    let exporter = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = exporter.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut s in exporter.incoming().flatten() {
            let mut buf = [0u8; 2048];
            let _ = s.read(&mut buf);
            let body = "# TYPE app_error_ratio gauge\napp_error_ratio 0.08\n";
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let work = tempfile::tempdir().unwrap();
    std::fs::write(
        work.path().join("prometheus.yml"),
        format!("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: ['{target}']\n"),
    )
    .unwrap();
    let mut server = std::process::Command::new(bin)
        .arg(format!("--config.file={}", work.path().join("prometheus.yml").display()))
        .arg(format!("--storage.tsdb.path={}", work.path().join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("prometheus starts");
    let agent: ureq::Agent =
        ureq::Agent::config_builder().http_status_as_error(false).build().into();
    crate::common::poll_until(
        "prometheus is ready",
        150,
        std::time::Duration::from_millis(200),
        || {
            agent
                .get(format!("http://127.0.0.1:{port}/-/ready"))
                .call()
                .is_ok_and(|r| r.status() == 200)
        },
    );

    let trigger = "[[triggers]]\nname = \"error rate\"\nsource = \"prometheus\"\nquery = \"max(app_error_ratio)\"\nabove = 0.05\nfor = \"3s\"\ninterval = \"1s\"\nmethod = \"A\"\n";
    let p = project(
        "watch_prometheus",
        trigger,
        &format!("[decide]\nprometheus_url = \"http://127.0.0.1:{port}\"\n"),
        0.0,
    );
    let run = p.run(&["watch", "--for", "12s", "--auto", "A", "--format", "json"]);
    let _ = server.kill();
    let _ = server.wait();
    run.expect_code(0);
    let decisions: Vec<serde_json::Value> = run
        .all()
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let fired = decisions
        .iter()
        .find(|d| d["verdict"] == "rollback")
        .unwrap_or_else(|| panic!("no rollback: {decisions:?}"));
    assert_eq!(fired["method"], "A");
    // The samples it rests on: the breaching run spans the 3 s window, and
    // the decision came at the first sample that completed it.
    let samples = fired["evidence"][0]["samples"].as_array().unwrap();
    let breaching: Vec<f64> = samples
        .iter()
        .filter(|s| s["value"].as_f64().is_some_and(|v| v > 0.05))
        .map(|s| s["t"].as_f64().unwrap())
        .collect();
    let span = breaching.last().unwrap() - breaching.first().unwrap();
    assert!((3.0..5.0).contains(&span), "decided after {span} s of breach: {fired}");
    assert_eq!(on(&p), [false, false], "method A was carried out");
}

#[test]
fn method_b_turns_flags_off_stops_writes_and_restores_the_migrations_backup_keeping_late_writes() {
    let p = Project::new("method_b");
    let hooks = "[hooks]\nafter_kill = \"echo redeployed >> hook.out\"\nstop_writes = \"echo stop >> writes.out\"\nresume_writes = \"echo resume >> writes.out\"\n\n[backup]\nmax_age = \"1ms\"\n";
    p.config(&format!(
        "{}\n{hooks}\n[[flags]]\nkey = \"client_cards\"\nrelease = \"v2\"\n",
        crate::common::DEFAULT_CONFIG
    ));
    p.migration(
        "1_users",
        "CREATE TABLE users (id int PRIMARY KEY); INSERT INTO users SELECT generate_series(1, 50);",
        Some("DROP TABLE users;"),
    );
    p.run(&["migrate"]).expect_code(0);
    p.migration(
        "2_clients",
        "CREATE TABLE clients (id int PRIMARY KEY, name text);",
        Some("DROP TABLE clients;"),
    );
    p.run(&["migrate"]).expect_code(0);
    let guard: String = p
        .client()
        .query_one("select backup_id from backstop.applied where version = '2'", &[])
        .unwrap()
        .get(0);
    p.run(&["flags", "sync"]).expect_code(0);
    p.run(&["flags", "enable", "client_cards", "--reason", "launch"]).expect_code(0);
    p.client().batch_execute("INSERT INTO clients VALUES (1, 'written after v2')").unwrap();

    p.run(&["rollback", "--method", "B"])
        .expect_code(0)
        .expect_output(&format!("restore backup {guard}"))
        .expect_output("nothing changed");
    assert_eq!(on(&p), [true]);

    p.run(&["rollback", "--method", "B", "--yes", "--reason", "error rate did not drop"])
        .expect_code(0)
        .expect_output("✓ flags off")
        .expect_output("✓ stop_writes hook")
        .expect_output("✓ restore")
        .expect_output("kept as database")
        .expect_output("✓ resume_writes hook")
        .expect_output("✓ method B carried out");
    assert_eq!(on(&p), [false], "the flags stay off: they are not part of the restore");
    assert_eq!(std::fs::read_to_string(p.path().join("writes.out")).unwrap(), "stop\nresume\n");
    let mut db = p.client();
    let clients: Option<String> =
        db.query_one("select to_regclass('public.clients')::text", &[]).unwrap().get(0);
    assert_eq!(clients, None, "the database is as it was before v2");
    let users: i64 = db.query_one("select count(*) from users", &[]).unwrap().get(0);
    assert_eq!(users, 50);
    let outcomes: Vec<String> = events(&p, "method").into_iter().map(|(o, _)| o).collect();
    assert_eq!(outcomes, ["started", "ok"], "the log survives the restore");
    // The late write is in the pre-restore snapshot.
    let snapshot: String = db
        .query_one(
            "select details->>'snapshot_database' from backstop.events where kind = 'restore' and outcome = 'ok' order by id desc limit 1",
            &[],
        )
        .map(|r| r.get::<_, Option<String>>(0).unwrap_or_default())
        .unwrap_or_default();
    assert!(!snapshot.is_empty(), "the restore names its pre-restore snapshot");
    let mut kept = crate::common::CLUSTER.connect(&snapshot).unwrap();
    let late: i64 = kept.query_one("select count(*) from clients", &[]).unwrap().get(0);
    assert_eq!(late, 1);

    // With nothing on and no backup to name, B says what it needs.
    let bare = Project::new("method_b_none");
    bare.config(&format!("{}\n[backup]\nrequired = false\n", crate::common::DEFAULT_CONFIG));
    bare.migration("1_t", "CREATE TABLE t (id int);", Some("DROP TABLE t;"));
    bare.run(&["migrate"]).expect_code(0);
    bare.run(&["rollback", "--method", "B", "--yes"])
        .expect_code(2)
        .expect_output("method B needs a backup to restore");
    let still: Option<String> =
        bare.client().query_one("select to_regclass('public.t')::text", &[]).unwrap().get(0);
    assert_eq!(still.as_deref(), Some("t"), "nothing changed");
}

/// A project with protected `users` (50 rows) and a release v2 that made
/// `client_notes` without row-level security (the runbook's leak), with 7
/// notes of 3 users written since, and v2's flag on. `down` is v2's down.
fn released_v2(label: &str, down: &str) -> Project {
    released_v2_keeping(label, down, "")
}

/// [`released_v2`], with more of `[migrations]` (`keeping`).
fn released_v2_keeping(label: &str, down: &str, keeping: &str) -> Project {
    let p = Project::new(label);
    p.config(&format!(
        "{}protected_tables = [\"users\"]\n{keeping}\n[backup]\nrequired = false\n\n[hooks]\nafter_kill = \"echo redeployed >> hook.out\"\n\n[[flags]]\nkey = \"client_notes\"\nrelease = \"v2\"\n",
        crate::common::DEFAULT_CONFIG
    ));
    p.migration(
        "1_users",
        "CREATE TABLE users (id int PRIMARY KEY); INSERT INTO users SELECT generate_series(1, 50);",
        Some("DROP TABLE users;"),
    );
    p.migration(
        "2_v2",
        "CREATE TABLE client_notes (id int PRIMARY KEY, user_id int NOT NULL REFERENCES users, body text);\n\
         CREATE INDEX ON client_notes (user_id);",
        Some(down),
    );
    p.run(&["migrate"]).expect_code(0);
    p.client()
        .batch_execute(
            "INSERT INTO client_notes SELECT i, 1 + i % 3, 'note, \"quoted\"\nsecond line ' || i FROM generate_series(1, 7) i",
        )
        .unwrap();
    p.run(&["flags", "sync"]).expect_code(0);
    p.run(&["flags", "enable", "client_notes", "--reason", "launch"]).expect_code(0);
    p
}

#[test]
fn method_c_exports_what_the_release_exposed_then_turns_it_off_and_reverts_it() {
    use std::os::unix::fs::PermissionsExt as _;
    let p = released_v2("method_c", "DROP TABLE client_notes;");
    p.run(&["rollback", "--method", "C"])
        .expect_code(0)
        .expect_output("revert 2 with their down files")
        .expect_output("nothing changed");
    assert_eq!(on(&p), [true]);

    let run = p
        .run(&["rollback", "--method", "C", "--yes", "--reason", "RLS leak"])
        .expect_code(0)
        .expect_output("✓ assess exposure")
        .expect_output("client_notes (7 row(s), 3 distinct user_id, RLS OFF)")
        .expect_output("✓ export forensics")
        .expect_output("✓ flags off")
        .expect_output("✓ after_kill hook")
        .expect_output("✓ down migrations")
        .expect_output("✓ protected tables")
        .expect_output("✓ method C carried out: 2 reverted")
        // No verify check runs after a rollback here: said, never a ✓.
        .expect_output("not verified: no verify check runs after a rollback")
        .all();
    assert!(!run.contains("✓ verify"), "{run}");
    assert_eq!(on(&p), [false]);
    let mut db = p.client();
    let notes: Option<String> =
        db.query_one("select to_regclass('public.client_notes')::text", &[]).unwrap().get(0);
    assert_eq!(notes, None, "v2 is reverted");
    let users: i64 = db.query_one("select count(*) from users", &[]).unwrap().get(0);
    assert_eq!(users, 50);
    let outcomes: Vec<String> = events(&p, "method").into_iter().map(|(o, _)| o).collect();
    assert_eq!(outcomes, ["started", "ok"]);

    // The forensics: private, complete, checksummed, with the incident texts.
    let root = p.path().join(".backstop/forensics");
    let folders: Vec<_> = std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(folders.len(), 1, "{run}");
    let folder = &folders[0];
    assert_eq!(std::fs::metadata(folder).unwrap().permissions().mode() & 0o777, 0o700);
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(folder.join("manifest.json")).unwrap())
            .unwrap();
    let table = &manifest["tables"][0];
    assert_eq!(table["table"], "client_notes");
    assert_eq!(table["rows"], 7);
    assert_eq!(table["owners"], 3);
    assert_eq!(table["rls_enabled"], false);
    let csv = std::fs::read(folder.join(table["file"].as_str().unwrap())).unwrap();
    assert_eq!(table["blake3"].as_str().unwrap(), blake3::hash(&csv).to_hex().as_str());
    let csv = String::from_utf8(csv).unwrap();
    assert!(csv.starts_with("id,user_id,body\n"), "{csv}");
    assert!(csv.contains("\"note, \"\"quoted\"\"\nsecond line 7\""), "{csv}");
    let report = std::fs::read_to_string(folder.join("report.md")).unwrap();
    assert!(report.contains("method C"), "{report}");
    assert!(folder.join("user_email.txt").is_file());

    // Nothing left to revert: C refuses before any step.
    p.run(&["rollback", "--method", "C", "--yes", "--to", "1"])
        .expect_code(2)
        .expect_output("nothing to revert");
}

#[test]
fn method_c_stops_when_a_down_would_damage_a_protected_table() {
    // The deploy finds that this down deletes rows 1_users made (and
    // would keep a proved one instead): the project keeps the file's, so
    // method C runs it and its guard must stop it.
    let p = released_v2_keeping(
        "method_c_damage",
        "DROP TABLE client_notes;\nDELETE FROM users WHERE id > 40;",
        "defective_downs = \"deploy\"\n",
    );
    p.run(&["rollback", "--method", "C", "--yes"])
        .expect_code(1)
        .expect_output("✓ export forensics")
        .expect_output("✓ flags off")
        .expect_output("✗ down migrations")
        .expect_output("protected table users had 10 row(s) deleted");
    let outcomes: Vec<String> = events(&p, "method").into_iter().map(|(o, _)| o).collect();
    assert_eq!(outcomes, ["started", "failed"]);
    let mut db = p.client();
    let users: i64 = db.query_one("select count(*) from users", &[]).unwrap().get(0);
    assert_eq!(users, 50, "the down was rolled back");
    let notes: i64 = db.query_one("select count(*) from client_notes", &[]).unwrap().get(0);
    assert_eq!(notes, 7, "v2 stays, its flags off");
}

#[test]
fn an_rls_violation_calls_for_c_at_once_and_watch_auto_c_carries_it_out() {
    let p = released_v2("watch_auto_c", "DROP TABLE client_notes;");
    let config = std::fs::read_to_string(p.path().join("backstop.toml")).unwrap();
    p.config(&format!(
        "{config}\n[[triggers]]\nname = \"tables without RLS\"\nsource = \"sql\"\n\
         sql = \"select count(*)::float8 from pg_class where relname = 'client_notes' and not relrowsecurity\"\n\
         above = 0\ninterval = \"1s\"\nmethod = \"C\"\n"
    ));
    // Below --auto C, the command is printed and nothing changes.
    p.run(&["watch", "--once", "--auto", "B"])
        .expect_code(1)
        .expect_output("ROLLBACK: method C")
        .expect_output("backstop respond method C --yes");
    assert_eq!(on(&p), [true]);
    p.run(&["watch", "--once", "--auto", "C"])
        .expect_code(0)
        .expect_output("✓ method C: assess exposure")
        .expect_output("client_notes (7 row(s), 3 distinct user_id, RLS OFF)")
        .expect_output("✓ method C: down migrations")
        .expect_output("forensics of method C in");
    assert_eq!(on(&p), [false]);
    let notes: Option<String> = p
        .client()
        .query_one("select to_regclass('public.client_notes')::text", &[])
        .unwrap()
        .get(0);
    assert_eq!(notes, None, "v2 is reverted");
    let methods: Vec<String> = events(&p, "method").into_iter().map(|(o, _)| o).collect();
    assert_eq!(methods, ["started", "ok"]);
}
