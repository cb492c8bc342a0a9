//! A Prisma history of 810 migrations as Prisma leaves it (see
//! `bench/prisma_history.rs`: shared timestamps, the author's `BEGIN` …
//! `COMMIT`, `COMMIT` after `ADD VALUE`, one-statement `CONCURRENTLY`
//! scripts, enum swaps, work tables, type changes, foreign servers),
//! measured in one run on one throwaway cluster:
//!
//! 1. `backstop migrate` of the whole history into an empty database,
//!    against `psql -f` per file, which is how a history is applied by
//!    hand (and close to how Prisma sends each script). Backstop runs with
//!    its gates and its kept downs off (`[check] required = false`,
//!    `[backup] required = false`, `[migrations] keep_downs = false`): the
//!    apply alone; the default run (check gate and kept downs on) is
//!    printed after it. Goal: at least 10 times faster than psql.
//! 2. `backstop rehearse` of the same history on an empty database (copy,
//!    a round trip per migration, scenarios A and B), against one plain
//!    apply of it (`backstop migrate`, gates off). Goal: at most 3 times.
//!
//! Run: `cargo bench -p backstop-cli --bench real_histories`
//! (BENCH_BLOCKS sets the history's length in blocks of 10, default 81).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use backstop_core::pg::cluster::Cluster;

mod common;
#[allow(dead_code)] // the test names the data changes
#[path = "../../../bench/prisma_history.rs"]
mod prisma_history;

const GATES_OFF: &str =
    "[migrations]\nlayout = \"prisma\"\ndir = \"db/migrations\"\nkeep_downs = false\n\n\
                         [check]\nrequired = false\n\n[backup]\nrequired = false\n";

fn main() -> std::process::ExitCode {
    common::exit("real_histories", run())
}

/// A project folder holding the history, with `config` as its backstop.toml.
fn project(
    root: &Path,
    name: &str,
    blocks: usize,
    config: Option<&str>,
) -> anyhow::Result<std::path::PathBuf> {
    let dir = root.join(name);
    let names = prisma_history::write(&dir.join("db/migrations"), blocks);
    anyhow::ensure!(!names.is_empty(), "no migrations written");
    if let Some(config) = config {
        std::fs::write(dir.join("backstop.toml"), config)?;
    }
    Ok(dir)
}

/// `psql -f` of each folder's migration.sql, in Prisma's order.
fn psql_per_file(cluster: &Cluster, db: &str, dir: &Path) -> anyhow::Result<Duration> {
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let t = Instant::now();
    for name in &names {
        let mut psql = Command::new(cluster.bin().tool("psql"));
        common::clean_env(&mut psql);
        psql.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-f"])
            .arg(dir.join(name).join("migration.sql"))
            .arg(cluster.url(db));
        common::check(psql.output().context("running psql")?, &format!("psql -f {name}"))?;
    }
    Ok(t.elapsed())
}

fn run() -> anyhow::Result<()> {
    let blocks = match std::env::var("BENCH_BLOCKS") {
        Ok(b) => b.trim().parse::<usize>().ok().filter(|n| *n > 0).with_context(|| {
            format!("BENCH_BLOCKS={b:?} is not a positive whole number; unset it or set e.g. 81")
        })?,
        Err(_) => 81,
    };
    let n = blocks * prisma_history::PER_BLOCK;
    let cluster = Cluster::start()?;
    let root = tempfile::tempdir()?;
    println!(
        "history: {n} Prisma migrations ({blocks} blocks), PostgreSQL {}",
        cluster.bin().version
    );

    for db in ["by_psql", "by_backstop", "by_default", "plain", "rehearsed"] {
        cluster.create_database(db, None)?;
    }
    let by_hand = project(root.path(), "psql", blocks, None)?;
    let psql = psql_per_file(&cluster, "by_psql", &by_hand.join("db/migrations"))?;
    let gates_off = project(root.path(), "backstop", blocks, Some(GATES_OFF))?;
    let (migrate, _) = common::backstop(&gates_off, &cluster.url("by_backstop"), &["migrate"]);
    println!(
        "migrate, gates off: backstop {}; psql -f per file {}: {:.1}x faster (goal >= 10x)",
        common::secs(migrate),
        common::secs(psql),
        psql.as_secs_f64() / migrate.as_secs_f64()
    );
    let default = project(root.path(), "default", blocks, None)?;
    let (full, _) = common::backstop(&default, &cluster.url("by_default"), &["migrate"]);
    println!(
        "migrate with no backstop.toml (check gate, {n} downs computed, proved and kept): {}",
        common::secs(full)
    );

    let (plain, _) = common::backstop(&gates_off, &cluster.url("plain"), &["migrate"]);
    let (rehearse, out) = common::backstop(&gates_off, &cluster.url("rehearsed"), &["rehearse"]);
    let verdict = out.lines().last().unwrap_or_default().to_string();
    println!(
        "rehearse: {} against one plain apply {}: {:.2}x (goal <= 3x); {verdict}",
        common::secs(rehearse),
        common::secs(plain),
        rehearse.as_secs_f64() / plain.as_secs_f64()
    );
    Ok(())
}
