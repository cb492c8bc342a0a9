//! Benchmark (not a test): from the first breaching sample to the flags off
//! (method A) and to a verified restore (method B), carried out by
//! `backstop respond watch --auto B`, on a pgbench database (scale 50, about 5M
//! rows) with realistic rows. Printed beside the runbook's "3 minutes"
//! (Method A by hand: remove each flag, redeploy) and "20 minutes"
//! (Method B: restore the backup). Targets: under 5 s and under 2 minutes.
//!
//! The trigger reads the application's error rate from a table (the `sql`
//! source), with no `for` window, so one breaching sample decides A; B
//! follows after the 5 s escalation window (counted in B's figure).
//!
//! Method B's own part, from its `stop_writes` hook to its
//! `resume_writes` hook (each writes the time to a file), is also set
//! beside `pg_restore -j2` of the same backup into a new database, in the
//! same run (target <= 1.2x): what writes wait for.
//!
//! `cargo bench -p backstop-cli --bench respond`; `BENCH_SCALE` sets the
//! pgbench scale. Exits non-zero if a step fails.

use std::io::{BufRead, BufReader};
use std::process::{Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use backstop_core::pg::cluster::Cluster;
use common::{check, clean_env, secs};

mod common;

const DATABASE: &str = "bench";

const CONFIG: &str = r#"[database]
url = "${DATABASE_URL}"

[migrations]
dir = "migrations"

[backup]
dir = "backups"
jobs = 2

[[flags]]
key = "client_cards"
release = "v2"

[[flags]]
key = "client_memory"
release = "v2"

[[triggers]]
name = "error rate"
source = "sql"
sql = "select rate from app_metrics.errors"
above = 0.05
interval = "1s"
method = "A"

[decide]
escalate_after = "5s"

[hooks]
stop_writes = "date +%s.%N > stopped"
resume_writes = "date +%s.%N > resumed"
"#;

fn main() -> ExitCode {
    common::exit("respond", run())
}

fn run() -> anyhow::Result<()> {
    let scale = common::scale()?;
    let cluster = Cluster::start().context("starting a throwaway PostgreSQL cluster")?;
    cluster.create_database(DATABASE, None)?;
    let work = tempfile::Builder::new().prefix("backstop-bench-respond-").tempdir()?;
    let dir = work.path();
    let v2 = dir.join("migrations/2_v2");
    std::fs::create_dir_all(&v2)?;
    std::fs::write(dir.join("backstop.toml"), CONFIG)?;
    std::fs::write(
        v2.join("up.sql"),
        "CREATE TABLE client_notes (id bigserial PRIMARY KEY, aid int NOT NULL REFERENCES pgbench_accounts, body text);\n\
         CREATE INDEX client_notes_aid_idx ON client_notes (aid);\n",
    )?;
    std::fs::write(v2.join("down.sql"), "DROP TABLE client_notes;\n")?;

    eprintln!("respond bench: pgbench -i -s {scale}, then realistic account columns...");
    let (rows, size) = common::pgbench_realistic(&cluster, DATABASE, scale)?;
    let url = cluster.url(DATABASE);
    let backstop = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_backstop"));
        clean_env(&mut cmd);
        cmd.args(args).env("DATABASE_URL", &url).current_dir(dir);
        cmd
    };
    let mut db = cluster.connect(DATABASE)?;
    db.batch_execute(
        "CREATE SCHEMA app_metrics; CREATE TABLE app_metrics.errors (rate float8); INSERT INTO app_metrics.errors VALUES (0.01)",
    )?;
    eprintln!("respond bench: {rows} accounts, {size}; migrate v2 (its backup first)...");
    check(backstop(&["migrate"]).output()?, "backstop migrate")?;
    for args in [
        &["flags", "sync"][..],
        &["flags", "enable", "client_cards", "--reason", "launch"],
        &["flags", "enable", "client_memory", "--reason", "launch"],
    ] {
        check(backstop(args).output()?, "backstop flags")?;
    }
    db.batch_execute(
        "INSERT INTO client_notes (aid, body) SELECT aid, 'written after v2' FROM generate_series(1, 1000) aid",
    )?;
    let backup: String =
        db.query_one("select backup_id from backstop.applied where version = '2'", &[])?.get(0);

    let mut watch = backstop(&["watch", "--auto", "B"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting backstop watch")?;
    let lines: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
    let reader = {
        let lines = lines.clone();
        let out = watch.stdout.take().expect("piped");
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                lines.lock().expect("not poisoned").push((Instant::now(), line));
            }
        })
    };
    let seen = |needle: &str| {
        lines
            .lock()
            .expect("not poisoned")
            .iter()
            .find(|(_, l)| l.contains(needle))
            .map(|(t, _)| *t)
    };
    let wait = |needle: &str, limit: Duration| -> anyhow::Result<Instant> {
        let start = Instant::now();
        loop {
            if let Some(t) = seen(needle) {
                return Ok(t);
            }
            if start.elapsed() > limit {
                bail!("watch did not print {needle:?} within {}", secs(limit));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait("error rate = 0.01", Duration::from_secs(30))?;
    eprintln!("respond bench: the error rate goes to 8 %...");
    db.batch_execute("UPDATE app_metrics.errors SET rate = 0.08")?;
    drop(db);
    let breach = wait("error rate = 0.08", Duration::from_secs(30))?;
    let flags_off = wait("method A: flags off", Duration::from_secs(30))?;
    let restored = wait("method B carried out", Duration::from_secs(600));
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(watch.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    );
    let _ = watch.wait();
    let _ = reader.join();
    let restored = restored?;

    let mut db = cluster.connect(DATABASE)?;
    let on: i64 =
        db.query_one("select count(*) from backstop.flags where state = 'ENABLED'", &[])?.get(0);
    let notes: Option<String> =
        db.query_one("select to_regclass('public.client_notes')::text", &[])?.get(0);
    if on != 0 || notes.is_some() {
        bail!("after the run {on} flag(s) are on and client_notes is {notes:?}");
    }
    let a = flags_off - breach;
    let b = restored - breach;
    // What writes waited for, against pg_restore -j2 of the same backup.
    let stamp = |file: &str| -> anyhow::Result<f64> {
        let text =
            std::fs::read_to_string(dir.join(file)).with_context(|| format!("the {file} hook"))?;
        Ok(text.trim().parse()?)
    };
    let writes_waited = Duration::from_secs_f64(stamp("resumed")? - stamp("stopped")?);
    cluster.create_database("plain_restore", None)?;
    db.batch_execute("CHECKPOINT")?;
    let mut plain = Command::new(cluster.bin().tool("pg_restore"));
    clean_env(&mut plain);
    plain
        .args(["-j", "2"])
        .arg(format!("--dbname={}", cluster.url("plain_restore")))
        .arg(dir.join("backups").join(&backup).join("dump"));
    let started = Instant::now();
    check(plain.output()?, "pg_restore -j2")?;
    let pg_restore_j2 = started.elapsed();
    let (runbook_a, runbook_b) = (Duration::from_secs(180), Duration::from_secs(1200));
    let met = |ok: bool| if ok { "met" } else { "NOT met" };
    println!(
        "from the first breaching sample, pgbench scale {scale} with realistic accounts ({rows} rows, {size}):"
    );
    println!(
        "  flags off (method A): {:.2}s; runbook by hand: 3 min ({:.0}x faster); target < 5 s: {}",
        a.as_secs_f64(),
        runbook_a.as_secs_f64() / a.as_secs_f64(),
        met(a < Duration::from_secs(5))
    );
    println!(
        "  verified restore (method B, after the 5 s escalation window): {}; runbook: 20 min ({:.0}x faster); target < 2 min: {}",
        secs(b),
        runbook_b.as_secs_f64() / b.as_secs_f64(),
        met(b < Duration::from_secs(120))
    );
    let ratio = writes_waited.as_secs_f64() / pg_restore_j2.as_secs_f64();
    println!(
        "  method B from its stop_writes hook to its resume_writes hook: {} vs pg_restore -j2 of the same backup {}: {ratio:.2}x (target <= 1.2x: {})",
        secs(writes_waited),
        secs(pg_restore_j2),
        met(ratio <= 1.2)
    );
    Ok(())
}
