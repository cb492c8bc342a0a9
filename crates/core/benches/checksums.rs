//! Benchmark (not a test): what a `checksums` check costs next to the
//! cheapest full read of a table, `SELECT count(*)`.
//!
//! On a throwaway cluster with a 10,000,000-row table of varied rows (text
//! of many lengths, NULLs, integers, numerics, timestamps, jsonb; seeded,
//! so every run builds the same table), it times Backstop's per-table
//! checksum (the query `pg::checksum::table_checksum` runs, in the server)
//! against `SELECT count(*)` of the same table, alternating which goes
//! first, after a warm-up that reads the table into cache. Prints each
//! one's median and min, the ratio of medians (target: at most 2.5x) and
//! the checksum's row rate. Exits 0 whether or not the target is met,
//! non-zero if a run fails.
//!
//! `cargo bench -p backstop-core --bench checksums`; `BENCH_ROWS` sets the
//! rows (default 10,000,000), `BENCH_ROUNDS` the rounds (default 5).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use backstop_core::pg::checksum;
use backstop_core::pg::cluster::Cluster;

const DEFAULT_ROWS: u64 = 10_000_000;
const DEFAULT_ROUNDS: usize = 5;
const TARGET_RATIO: f64 = 2.5;

type Error = Box<dyn std::error::Error>;

/// The realistic table shared with the other benchmarks (bench/items.sql).
fn seed_sql(rows: u64) -> String {
    include_str!("../../../bench/items.sql")
        .replace("{rows}", &rows.to_string())
        .replace("{desc_repeats}", "4")
        .replace("{desc_spread}", "110")
        .replace("{extra_attrs}", "")
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let mut text = e.to_string();
            let mut source = e.source();
            while let Some(s) = source {
                text.push_str(&format!(": {s}"));
                source = s.source();
            }
            eprintln!("checksums: error: {text}");
            ExitCode::FAILURE
        }
    }
}

fn env_number(name: &str, default: u64) -> Result<u64, Error> {
    match std::env::var(name) {
        Ok(v) => Ok(v.parse().map_err(|_| format!("{name}={v} is not a number"))?),
        Err(_) => Ok(default),
    }
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn run() -> Result<(), Error> {
    let rows = env_number("BENCH_ROWS", DEFAULT_ROWS)?;
    let rounds = env_number("BENCH_ROUNDS", DEFAULT_ROUNDS as u64)?.max(1) as usize;
    let cluster = Cluster::start()?;
    cluster.create_database("bench", None)?;
    let mut client = cluster.connect("bench")?;
    eprintln!("building a {rows}-row table (untimed)...");
    let t = Instant::now();
    client.batch_execute(&seed_sql(rows))?;
    // Visibility map and statistics as a settled production table has them.
    client.batch_execute("VACUUM (ANALYZE) items")?;
    let size: String =
        client.query_one("select pg_size_pretty(pg_table_size('items'))", &[])?.get(0);
    eprintln!("built in {:.0?}: {size}", t.elapsed());

    let method = checksum::method(&mut client)?;
    let checksum_sql = checksum::checksum_sql(&mut client, method, 0, "public", "items")?;
    let count_sql = "select count(*) from only public.items t";
    let workers: String =
        client.query_one("select current_setting('max_parallel_workers_per_gather')", &[])?.get(0);
    eprintln!("checksum query: {checksum_sql}");

    // Warm-up: both read the whole table once, so the cache is the same for both.
    let first = checksum::table_checksum(&mut client, "public", "items")?;
    client.query_one(count_sql, &[])?;

    let mut sums = Vec::with_capacity(rounds);
    let mut counts = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let time_checksum = |client: &mut postgres::Client| -> Result<Duration, Error> {
            let t = Instant::now();
            let c = checksum::table_checksum(client, "public", "items")?;
            let took = t.elapsed();
            if c != first {
                return Err(format!("checksum changed between runs: {c:?} vs {first:?}").into());
            }
            Ok(took)
        };
        let time_count = |client: &mut postgres::Client| -> Result<Duration, Error> {
            let t = Instant::now();
            let n: i64 = client.query_one(count_sql, &[])?.get(0);
            let took = t.elapsed();
            if n as u64 != rows {
                return Err(format!("count(*) says {n}, expected {rows}").into());
            }
            Ok(took)
        };
        if round % 2 == 0 {
            sums.push(time_checksum(&mut client)?);
            counts.push(time_count(&mut client)?);
        } else {
            counts.push(time_count(&mut client)?);
            sums.push(time_checksum(&mut client)?);
        }
    }
    // Where the time goes: the same checksum with the jsonb column's hash
    // replaced by its seed, a constant.
    let json_hash = "jsonb_hash_extended(t.\"attrs\", ";
    if !checksum_sql.contains(json_hash) {
        return Err(format!("the checksum query no longer calls {json_hash}...)").into());
    }
    let without_json = checksum_sql.replace(json_hash, "(");
    let mut plain = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        client.query_one(without_json.as_str(), &[])?;
        plain.push(t.elapsed());
    }
    // The text-form method (what servers before 14 get), once, for comparison.
    let text_sql =
        checksum::checksum_sql(&mut client, checksum::METHOD_TEXT_HASH, 0, "public", "items")?;
    let t = Instant::now();
    client.query_one(text_sql.as_str(), &[])?;
    let text_once = t.elapsed();
    let (sum_min, count_min) = (*sums.iter().min().unwrap(), *counts.iter().min().unwrap());
    let (sum_med, count_med) = (median(&mut sums), median(&mut counts));
    let ratio = sum_med.as_secs_f64() / count_med.as_secs_f64();
    let rate = rows as f64 / sum_med.as_secs_f64();
    println!(
        "checksums {rows} rows ({size}, PostgreSQL {}, max_parallel_workers_per_gather={workers}, {rounds} rounds):",
        cluster.bin().major
    );
    println!(
        "  checksum median {:.3}s (min {:.3}s), count(*) median {:.3}s (min {:.3}s)",
        sum_med.as_secs_f64(),
        sum_min.as_secs_f64(),
        count_med.as_secs_f64(),
        count_min.as_secs_f64()
    );
    println!(
        "  ratio {ratio:.2}x (target <= {TARGET_RATIO}x: {}), {:.1}M rows/s checksummed",
        if ratio <= TARGET_RATIO { "met" } else { "NOT met" },
        rate / 1e6
    );
    let plain_med = median(&mut plain);
    println!(
        "  without the jsonb column the checksum takes {:.3}s ({:.2}x count(*)): hashing jsonb is {:.0}% of it",
        plain_med.as_secs_f64(),
        plain_med.as_secs_f64() / count_med.as_secs_f64(),
        100.0 * (1.0 - plain_med.as_secs_f64() / sum_med.as_secs_f64())
    );
    println!(
        "  hashing rows as text instead (the method before PostgreSQL 14) takes {:.3}s, {:.2}x count(*)",
        text_once.as_secs_f64(),
        text_once.as_secs_f64() / count_med.as_secs_f64()
    );
    Ok(())
}
