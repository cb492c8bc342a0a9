//! The demo's last act: v2 goes live behind its flags and the application
//! starts failing. `backstop respond watch --auto B` decides from the metrics,
//! turns the flags off, sees the error rate stay up, escalates to B and
//! restores the backup taken before v2 (the rows written since kept in the
//! pre-restore snapshot); then the incident texts. Then method C on a
//! planted RLS leak: exposure counted, exports written, v2 reverted, the
//! users' e-mail. Each step runs the real `backstop` binary on a project
//! folder, as a user would.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use backstop_core::pg;
use backstop_core::pg::fingerprint::Schema;

use super::{Story, V1, V1_DIR, V2_DIR, V2_DOWN, V2_UP, V2_VERIFY};

/// The application's metrics endpoint: 8 % errors while v2's tables are
/// live (its code fails on them), 1 % otherwise; 503 while the database
/// cannot be reached (mid-restore). It reads the database on every request.
struct Metrics {
    url: String,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Metrics {
    fn start(database: &str) -> anyhow::Result<Metrics> {
        let listener = TcpListener::bind("127.0.0.1:0").context("binding the metrics endpoint")?;
        listener.set_nonblocking(true)?;
        let url = format!("http://{}/metrics.json", listener.local_addr()?);
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, database) = (stop.clone(), database.to_string());
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut conn, _)) => {
                        let _ = conn.set_nonblocking(false);
                        let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
                        let mut buf = [0u8; 2048];
                        let _ = conn.read(&mut buf);
                        let live = pg::connect(&database, "demo app metrics").map(|mut c| {
                            c.query_one("select to_regclass('public.clients') is not null", &[])
                                .map(|r| r.get::<_, bool>(0))
                        });
                        let (status, body) = match live {
                            Ok(Ok(true)) => ("200 OK", r#"{"error_rate": 0.08}"#),
                            Ok(Ok(false)) => ("200 OK", r#"{"error_rate": 0.01}"#),
                            _ => {
                                ("503 Service Unavailable", r#"{"error": "database unavailable"}"#)
                            }
                        };
                        let _ = write!(
                            conn,
                            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        );
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Ok(Metrics { url, stop, thread: Some(thread) })
    }
}

impl Drop for Metrics {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn config(metrics: &str) -> String {
    format!(
        r#"[database]
url = "${{DATABASE_URL}}"

[migrations]
dir = "migrations"
protected_tables = ["users", "ai_usage_tracking", "usage_alerts"]

[backup]
dir = "backups"

[notify]
product = "MeetSolis"

[[flags]]
key = "client_cards"
release = "v2"
description = "Client cards UI and /api/clients"

[[flags]]
key = "client_memory"
release = "v2"
description = "AI memory of each client's meetings"

[[triggers]]
name = "error rate"
source = "http"
url = "{metrics}"
json_path = "error_rate"
above = 0.05
for = "3s"
interval = "1s"
method = "A"

[decide]
escalate_after = "3s"
"#
    )
}

/// A project folder holding the demo's v1 and v2 as `backstop` reads them.
fn project(root: &Path, metrics: &str) -> anyhow::Result<PathBuf> {
    let dir = root.join("project");
    for (sub, files) in [
        (V1_DIR, vec![("up.sql", V1)]),
        (V2_DIR, vec![("up.sql", V2_UP), ("down.sql", V2_DOWN), ("verify.sql", V2_VERIFY)]),
    ] {
        let d = dir.join("migrations").join(sub);
        std::fs::create_dir_all(&d)?;
        for (name, text) in files {
            std::fs::write(d.join(name), text)?;
        }
    }
    std::fs::write(dir.join("backstop.toml"), config(metrics))?;
    Ok(dir)
}

fn backstop(dir: &Path, url: &str, args: &[&str]) -> anyhow::Result<Command> {
    let mut cmd = Command::new(std::env::current_exe().context("finding the backstop binary")?);
    cmd.args(args).current_dir(dir).env("DATABASE_URL", url).env_remove("BACKSTOP_CONFIG");
    Ok(cmd)
}

/// Runs `backstop ARGS`: its output, or why it failed.
fn run(dir: &Path, url: &str, args: &[&str]) -> anyhow::Result<Result<String, String>> {
    let out: Output = backstop(dir, url, args)?.output()?;
    // The steps go to stderr as they happen, the summary to stdout after.
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stderr), String::from_utf8_lossy(&out.stdout));
    Ok(if out.status.success() {
        Ok(text)
    } else {
        Err(format!(
            "`backstop {}` exited {:?}: {}",
            args.join(" "),
            out.status.code(),
            text.trim()
        ))
    })
}

fn indent(text: &str, max: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut out: String = lines.iter().take(max).map(|l| format!("    {l}\n")).collect();
    if lines.len() > max {
        out.push_str(&format!("    … ({} more lines)\n", lines.len() - max));
    }
    out
}

fn count(url: &str, sql: &str) -> anyhow::Result<i64> {
    let mut c = pg::connect(url, "backstop demo")?;
    Ok(c.query_one(sql, &[])?.get(0))
}

/// The last act. `v1` is the schema the demo's database had at v1.
pub(super) fn play(story: &mut Story, url: &str, root: &Path, v1: &Schema) -> anyhow::Result<()> {
    let metrics = Metrics::start(url)?;
    let dir = project(root, &metrics.url)?;
    migrate_behind_a_backup(story, &dir, url);
    flags_on_and_rows_written(story, &dir, url);
    watch_escalates_to_b(story, &dir, url);
    rows_kept_in_the_snapshot(story, url);
    incident_texts(story, &dir, url);
    method_c_on_a_leak(story, &dir, url, v1);
    Ok(())
}

/// The last act: v2 applied again by `backstop migrate`, behind a verified backup.
fn migrate_behind_a_backup(story: &mut Story, dir: &Path, url: &str) {
    story.check("v2 applied again by `backstop migrate`, behind a verified backup", || {
        let out = match run(dir, url, &["migrate"])? {
            Ok(out) => out,
            Err(why) => return Ok(Err(why)),
        };
        let mut c = pg::connect(url, "backstop demo")?;
        let guarded = backstop_core::schema::applied::all(&mut c)?
            .iter()
            .filter(|r| r.version == "20260107120000" && r.backup_id.is_some())
            .count();
        let backup =
            out.lines().find(|l| l.contains("backup")).unwrap_or_default().trim().to_string();
        Ok(if guarded == 1 { Ok(backup) } else { Err("no backup guards v2".into()) })
    });
}

/// The last act: v2's flags on, and rows written since.
fn flags_on_and_rows_written(story: &mut Story, dir: &Path, url: &str) {
    story.check("v2's flags on, and rows written since", || {
        for args in [
            &["flags", "sync"][..],
            &["flags", "enable", "client_cards", "--reason", "launch"],
            &["flags", "enable", "client_memory", "--reason", "launch"],
        ] {
            if let Err(why) = run(dir, url, args)? {
                return Ok(Err(why));
            }
        }
        let mut c = pg::connect(url, "demo app")?;
        c.batch_execute(
            "INSERT INTO clients (user_id, name, company) VALUES (1, 'Ada', 'Analytical Engines'), (2, 'Grace', 'Compilers Inc')",
        )?;
        Ok(Ok("client_cards, client_memory on; 2 clients added by users".into()))
    });
}

/// The last act: watch --auto B: A, no recovery, B.
fn watch_escalates_to_b(story: &mut Story, dir: &Path, url: &str) {
    let mut shown = String::new();
    story.check("the app fails at 8 %: watch --auto B turns the flags off, sees no recovery, escalates to B and restores", || {
        let mut child = backstop(dir, url, &["respond", "watch", "--auto", "B", "--for", "60s"])?
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let lines = Arc::new(Mutex::new(Vec::<String>::new()));
        let reader = {
            let lines = lines.clone();
            let out = child.stdout.take().expect("piped");
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    lines.lock().expect("not poisoned").push(line);
                }
            })
        };
        let started = Instant::now();
        let restored = loop {
            let done = lines.lock().expect("not poisoned").iter().any(|l| l.contains("method B carried out"));
            let cleared = done && lines.lock().expect("not poisoned").iter().rev().take(3).any(|l| l.contains("= 0.01"));
            if cleared || started.elapsed() > Duration::from_secs(45) {
                break done;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        );
        let _ = child.wait();
        let _ = reader.join();
        let lines = lines.lock().expect("not poisoned").clone();
        let kept: Vec<&String> = lines
            .iter()
            .filter(|l| {
                !l.trim().is_empty() && !l.starts_with("watching") && !l.contains("sampled: ")
            })
            .collect();
        for l in &kept {
            shown.push_str(&format!("    {l}\n"));
        }
        if !restored {
            return Ok(Err("watch did not carry out method B within 45 s".into()));
        }
        let a = lines.iter().any(|l| l.contains("method A: flags off"));
        let mut c = pg::connect(url, "backstop demo")?;
        let flags_on = backstop_core::schema::flags::list(&mut c)?.iter().filter(|f| f.enabled()).count();
        let clients = count(url, "select count(*) from pg_class where relname = 'clients' and relkind = 'r'")?;
        Ok(match (a, flags_on, clients) {
            (true, 0, 0) => Ok(format!("decided, A then B, in {:.1}s", started.elapsed().as_secs_f64())),
            _ => Err(format!("method A seen: {a}, flags on: {flags_on}, clients table present: {clients}")),
        })
    });
    print!("{shown}");
}

/// The last act: the rows written since v2 kept in the pre-restore snapshot.
fn rows_kept_in_the_snapshot(story: &mut Story, url: &str) {
    story.check("the rows written since v2 are kept in the pre-restore snapshot", || {
        let mut c = pg::connect(url, "backstop demo")?;
        let snapshot: Option<String> = backstop_core::schema::events::latest(&mut c, "restore")?
            .filter(|e| e.outcome == "ok")
            .and_then(|e| e.details["snapshot_database"].as_str().map(str::to_string));
        let Some(snapshot) = snapshot else {
            return Ok(Err("the restore named no snapshot".into()));
        };
        let kept_url = url.replacen(
            &format!("/{}", c.query_one("select current_database()", &[])?.get::<_, String>(0)),
            &format!("/{snapshot}"),
            1,
        );
        let n = count(&kept_url, "select count(*) from clients")?;
        Ok(if n == 2 {
            Ok(format!("2 clients in database {snapshot}"))
        } else {
            Err(format!("{n} clients in {snapshot}"))
        })
    });
}

/// The last act: the incident texts from the timeline.
fn incident_texts(story: &mut Story, dir: &Path, url: &str) {
    let mut shown = String::new();
    story.check(
        "the incident closed, its report and Slack text written from its own steps",
        || {
            if let Err(why) = run(
                dir,
                url,
                &["respond", "incident", "close", "--note", "errors back to 1 % after the restore"],
            )? {
                return Ok(Err(why));
            }
            let report =
                match run(dir, url, &["respond", "incident", "report", "--text", "report"])? {
                    Ok(t) => t,
                    Err(why) => return Ok(Err(why)),
                };
            let slack = match run(dir, url, &["respond", "incident", "report", "--text", "slack"])?
            {
                Ok(t) => t,
                Err(why) => return Ok(Err(why)),
            };
            shown.push_str(&indent(&report, 14));
            shown.push_str("    ----- Slack -----\n");
            shown.push_str(&indent(&slack, 8));
            Ok(if report.contains("### Method B: done") && !report.contains("STOPPED") {
                Ok(format!(
                    "{} lines of report, {} of Slack",
                    report.lines().count(),
                    slack.lines().count()
                ))
            } else {
                Err("the report does not tell method B as done".into())
            })
        },
    );
    print!("{shown}");
}

/// The last act: method C on an RLS leak: exposure counted, exports written, v2 reverted.
fn method_c_on_a_leak(story: &mut Story, dir: &Path, url: &str, v1: &Schema) {
    let mut shown = String::new();
    story.check("scenario C: an RLS leak in v2 is counted, exported and reverted", || {
        for args in
            [&["migrate"][..], &["flags", "enable", "client_cards", "--reason", "second launch"]]
        {
            if let Err(why) = run(dir, url, args)? {
                return Ok(Err(why));
            }
        }
        let mut c = pg::connect(url, "demo app")?;
        c.batch_execute(
            "ALTER TABLE clients DISABLE ROW LEVEL SECURITY;
             INSERT INTO clients (user_id, name) VALUES (1, 'Ada'), (1, 'Charles'), (2, 'Grace')",
        )?;
        let out = match run(
            dir,
            url,
            &["rollback", "--method", "C", "--yes", "--reason", "RLS leak on clients"],
        )? {
            Ok(t) => t,
            Err(why) => return Ok(Err(why)),
        };
        shown.push_str(&indent(&out, 12));
        let folder = std::fs::read_dir(dir.join(".backstop/forensics"))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .max()
            .context("no forensics folder")?;
        let email = std::fs::read_to_string(folder.join("user_email.txt"))?;
        shown.push_str("    ----- e-mail to users -----\n");
        shown.push_str(&indent(&email, 10));
        let diff = v1.differences(&Schema::read(&mut c)?);
        Ok(if !out.contains("clients (3 row(s), 2 distinct user_id, RLS OFF)") {
            Err("the exposure of clients was not counted".into())
        } else if !diff.is_empty() {
            Err(format!("the schema differs from v1: {}", diff.join("; ")))
        } else {
            Ok(format!("exports in {}, schema back to v1", folder.display()))
        })
    });
    print!("{shown}");
}
