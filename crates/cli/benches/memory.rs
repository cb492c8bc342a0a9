//! Benchmark (not a test): the memory a large data migration costs. Writes
//! a 50 MB migration of 5,697 statements (a table, then INSERT ... VALUES
//! of 123 rows each, the shape of the file issue 34 reported) and runs the
//! release `backstop check --offline`, `backstop check` and `backstop
//! migrate` on it against a throwaway cluster. Prints each run's peak
//! resident size, its ratio to the file's size and whether it meets the
//! target: under 8 times the file. Exits 0 whether or not the target is
//! met, non-zero if a run fails.
//!
//! `cargo bench -p backstop-cli --bench memory`; `BENCH_MB` sets the size
//! of the file (default 50; the statements keep their shape);
//! `BENCH_BACKSTOP` names another binary, for A/B runs against an older
//! build.

use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use anyhow::{bail, Context as _};
use backstop_core::pg::cluster::Cluster;
use common::secs;

mod common;

const DATABASE: &str = "bench";
const TARGET_RATIO: f64 = 8.0;
const ROWS_PER_INSERT: u64 = 123;

fn main() -> ExitCode {
    common::exit("memory", run())
}

/// About `bytes` of the reported shape: a table, then INSERTs of
/// [`ROWS_PER_INSERT`] rows each.
fn data_migration(bytes: usize) -> String {
    let mut sql = String::from(
        "CREATE TABLE customers (id bigint PRIMARY KEY, name text NOT NULL, note text, \
         amount numeric(12,2));\n",
    );
    let mut id = 0u64;
    while sql.len() < bytes {
        sql.push_str("INSERT INTO customers (id, name, note, amount) VALUES\n");
        for row in 0..ROWS_PER_INSERT {
            id += 1;
            let sep = if row + 1 == ROWS_PER_INSERT { ";\n" } else { ",\n" };
            sql.push_str(&format!(
                "  ({id}, 'customer {id}', 'note for row {id}; see ticket', {}.{:02}){sep}",
                id % 9973,
                id % 100
            ));
        }
    }
    sql
}

/// The size of the file: `BENCH_MB`, or 50 MB and 5,697 statements.
fn file_bytes() -> anyhow::Result<usize> {
    match std::env::var("BENCH_MB") {
        Ok(s) => s
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| *n >= 1)
            .map(|n| n << 20)
            .with_context(|| format!("BENCH_MB={s:?} is not a positive whole number of MB")),
        Err(_) => Ok((50 << 20) + (4 << 10)),
    }
}

/// Runs `backstop ARGS` in `dir`: its peak resident size in bytes, read
/// from its own `VmHWM` while it runs (what `wait4` reports for a child
/// counts the memory of the process that started it, here this one with
/// the file's text), and how long it took.
fn peak_of(dir: &Path, url: &str, args: &[&str]) -> anyhow::Result<(u64, f64)> {
    let binary =
        std::env::var("BENCH_BACKSTOP").unwrap_or_else(|_| env!("CARGO_BIN_EXE_backstop").into());
    let started = Instant::now();
    let child = Command::new(binary)
        .args(args)
        .current_dir(dir)
        .env("DATABASE_URL", url)
        .env_remove("BACKSTOP_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting backstop")?;
    let status = format!("/proc/{}/status", child.id());
    let watcher = std::thread::spawn(move || {
        let mut peak = 0u64;
        while let Some(kb) = std::fs::read_to_string(&status).ok().and_then(|s| {
            let line = s.lines().find_map(|l| l.strip_prefix("VmHWM:"))?;
            line.trim().trim_end_matches("kB").trim().parse::<u64>().ok()
        }) {
            peak = peak.max(kb * 1024);
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        peak
    });
    let out = child.wait_with_output().context("waiting for backstop")?;
    let took = started.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!("backstop {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    }
    Ok((watcher.join().unwrap_or(0), took))
}

fn run() -> anyhow::Result<()> {
    let sql = data_migration(file_bytes()?);
    let size = sql.len() as u64;
    let statements = sql.matches(";\n").count();
    let work = tempfile::Builder::new().prefix("backstop-bench-memory-").tempdir()?;
    let dir = work.path().join("migrations/20260101000000_customers");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("up.sql"), &sql)?;
    std::fs::write(dir.join("down.sql"), "DROP TABLE customers;\n")?;
    std::fs::write(
        work.path().join("backstop.toml"),
        "[database]\nurl = \"${DATABASE_URL}\"\n\n[migrations]\ndir = \"migrations\"\n",
    )?;
    drop(sql);

    let cluster = Cluster::start().context("starting a throwaway PostgreSQL cluster")?;
    cluster.create_database(DATABASE, None).context("creating the benchmark database")?;
    let url = cluster.url(DATABASE);
    let mb = |bytes: u64| bytes as f64 / f64::from(1 << 20);
    eprintln!("memory: {:.1} MB file of {statements} statements", mb(size));
    for args in [&["check", "--offline"][..], &["check"], &["migrate"]] {
        let (peak, took) = peak_of(work.path(), &url, args)?;
        let ratio = peak as f64 / size as f64;
        let met = if ratio < TARGET_RATIO { "met" } else { "NOT met" };
        println!(
            "backstop {:<15} peak {:>6.0} MB, {ratio:.1}x the file (target < {TARGET_RATIO:.0}x: \
             {met}), {}",
            args.join(" "),
            mb(peak),
            secs(std::time::Duration::from_secs_f64(took))
        );
    }
    Ok(())
}
