//! Benchmark (not a test): a column type change (`integer` to `bigint`) on
//! a table of 1,000,000 rows (`BENCH_ROWS`), served by `backstop migrate
//! --expand` then `--contract` with every default gate (the risk check,
//! the backup), against the plain `ALTER TABLE … TYPE` run by a client,
//! which rewrites the table under an ACCESS EXCLUSIVE lock.
//!
//! All along, a writer inserts one row at a time into the table (the old
//! shape, each insert its own transaction); the longest any insert took is
//! the longest the writes were held up by a lock. Prints, for each path,
//! the wall time and that longest insert, and the time of `backstop
//! rollback` of an open expand (goal: under 1 s), then checks that every
//! insert of the writer is in the table.
//!
//! `cargo bench -p backstop-cli --bench expand`.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _};
use backstop_core::pg::cluster::Cluster;

const ROLLBACK_GOAL: Duration = Duration::from_secs(1);
const BASE: &str = "CREATE TABLE events (id bigserial PRIMARY KEY, value int, note text);\n";
const RETYPE: &str = "ALTER TABLE events ALTER COLUMN value TYPE bigint;\n";

fn main() -> std::process::ExitCode {
    common::exit("expand", run())
}

/// A writer of the old shape: one insert at a time until stopped, the
/// longest insert (µs) since the last [`Writer::longest`] kept.
struct Writer {
    stop: Arc<AtomicBool>,
    longest: Arc<AtomicU64>,
    handle: std::thread::JoinHandle<anyhow::Result<i64>>,
}

impl Writer {
    fn start(cluster: &Cluster, db: &str) -> anyhow::Result<Writer> {
        let mut client = cluster.connect(db)?;
        let (stop, longest) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
        let (s, l) = (stop.clone(), longest.clone());
        let handle = std::thread::spawn(move || {
            let mut n = 0i64;
            while !s.load(Ordering::Relaxed) {
                let t = Instant::now();
                client.execute("INSERT INTO events (value, note) VALUES (1, 'writer')", &[])?;
                l.fetch_max(t.elapsed().as_micros() as u64, Ordering::Relaxed);
                n += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
            Ok(n)
        });
        Ok(Writer { stop, longest, handle })
    }

    /// The longest insert since the last call.
    fn longest(&self) -> Duration {
        Duration::from_micros(self.longest.swap(0, Ordering::Relaxed))
    }

    /// Stops it: the inserts it made.
    fn stop(self) -> anyhow::Result<i64> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().map_err(|_| anyhow::anyhow!("the writer panicked"))?
    }
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn run() -> anyhow::Result<()> {
    let rows: i64 = match std::env::var("BENCH_ROWS") {
        Ok(s) => s.trim().parse().ok().filter(|n| *n > 0).with_context(|| {
            format!("BENCH_ROWS={s:?} is not a positive whole number; unset it or set e.g. 100000")
        })?,
        Err(_) => 1_000_000,
    };
    let cluster = Cluster::start().context("starting a throwaway PostgreSQL cluster")?;
    let work = tempfile::Builder::new().prefix("backstop-bench-expand-").tempdir()?;
    let dir = work.path();
    let write = |stem: &str, sql: &str| -> anyhow::Result<()> {
        let m = dir.join("migrations").join(stem);
        std::fs::create_dir_all(&m)?;
        Ok(std::fs::write(m.join("up.sql"), sql)?)
    };
    write("20240101000000_events", BASE)?;
    std::fs::write(dir.join("backstop.toml"), "[migrations]\ndir = \"migrations\"\n")?;
    cluster.create_database("tpl", None)?;
    common::backstop_ok(dir, &cluster.url("tpl"), &["migrate", "--no-backup", "the template"])?;
    let mut tpl = cluster.connect("tpl")?;
    tpl.batch_execute(&format!(
        "INSERT INTO events (value, note) SELECT n, md5(n::text) FROM generate_series(1, {rows}) n"
    ))?;
    tpl.batch_execute("VACUUM ANALYZE events")?;
    drop(tpl);
    for db in ["plain", "expanded"] {
        cluster
            .connect("postgres")?
            .batch_execute(&format!("CREATE DATABASE {db} TEMPLATE tpl"))?;
    }
    println!("expand bench: events of {rows} rows, value integer to bigint, PostgreSQL's own lock");

    // The plain way: one statement, the table rewritten under its lock.
    let writer = Writer::start(&cluster, "plain")?;
    std::thread::sleep(Duration::from_millis(200));
    writer.longest();
    let t = Instant::now();
    cluster.connect("plain")?.batch_execute(RETYPE)?;
    let plain = t.elapsed();
    std::thread::sleep(Duration::from_millis(200));
    let plain_wait = writer.longest();
    writer.stop()?;
    println!(
        "  plain ALTER … TYPE: {}, the longest insert beside it {}",
        ms(plain),
        ms(plain_wait)
    );

    // The expand: every default gate, the backfill, a rollback, again, the contract.
    write("20240102000000_retype", RETYPE)?;
    let url = cluster.url("expanded");
    let writer = Writer::start(&cluster, "expanded")?;
    std::thread::sleep(Duration::from_millis(200));
    writer.longest();
    let expand = common::backstop_ok(dir, &url, &["migrate", "--expand"])?;
    let expand_wait = writer.longest();
    let rollback = common::backstop_ok(dir, &url, &["rollback"])?;
    let rollback_wait = writer.longest();
    common::backstop_ok(dir, &url, &["migrate", "--expand"])?;
    writer.longest();
    let contract = common::backstop_ok(dir, &url, &["migrate", "--contract"])?;
    std::thread::sleep(Duration::from_millis(200));
    let contract_wait = writer.longest();
    let inserted = writer.stop()?;
    println!(
        "  backstop migrate --expand (check, backup, backfill): {}, the longest insert beside it {}",
        ms(expand),
        ms(expand_wait)
    );
    println!(
        "  backstop rollback of the expand: {} (goal under {}: {}), the longest insert {}",
        ms(rollback),
        ms(ROLLBACK_GOAL),
        if rollback < ROLLBACK_GOAL { "met" } else { "NOT met" },
        ms(rollback_wait)
    );
    println!(
        "  backstop migrate --contract (check, backup): {}, the longest insert beside it {}",
        ms(contract),
        ms(contract_wait)
    );
    let longest = expand_wait.max(rollback_wait).max(contract_wait);
    println!(
        "  longest insert: plain {} against expand/contract {} ({:.0}x shorter); wall time: \
         plain {} against expand + contract {}",
        ms(plain_wait),
        ms(longest),
        plain_wait.as_secs_f64() / longest.as_secs_f64().max(1e-6),
        ms(plain),
        ms(expand + contract)
    );
    let mut check = cluster.connect("expanded")?;
    let row = check.query_one(
        "SELECT count(*) FILTER (WHERE note = 'writer'), count(*), pg_typeof(max(value))::text \
         FROM events",
        &[],
    )?;
    let (kept, total, ty): (i64, i64, String) = (row.get(0), row.get(1), row.get(2));
    ensure!(kept == inserted, "the writer inserted {inserted} rows and {kept} are there");
    ensure!(total == rows + inserted, "{total} rows, {} expected", rows + inserted);
    ensure!(ty == "bigint", "the column is {ty} after the contract");
    println!("  every insert of the writer kept ({inserted}); the column is bigint");
    Ok(())
}
