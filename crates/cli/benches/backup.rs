//! Benchmark (not a test): what Backstop's verified backups cost against the
//! plain PostgreSQL tools, on a pgbench database (scale 50, about 5M rows)
//! whose accounts get varied text, numbers, timestamps and JSON instead of
//! pgbench's blank filler (which compresses 56:1, unlike real data).
//!
//! Prints, from one run on one throwaway cluster:
//! - `backup create` vs `pg_dump -Fc`                               (target <= 0.6x)
//! - `backup create` + `backup verify --restore` vs `pg_dump -Fc` +
//!   `pg_restore` into a new database                              (target <= 1.0x)
//! - `restore` vs `pg_restore -j2` into a new database               (target <= 1.15x)
//!
//! `cargo bench -p backstop-cli --bench backup`; `BENCH_SCALE` sets the
//! pgbench scale (default 50). Exits 0 whether or not the targets are met,
//! non-zero if a run fails.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use backstop_core::pg::cluster::Cluster;
use common::{check, clean_env, secs};

mod common;

const DATABASE: &str = "bench";

fn main() -> ExitCode {
    common::exit("backup", run())
}

struct Bench {
    cluster: Cluster,
    work: PathBuf,
}

fn run() -> anyhow::Result<()> {
    let scale = common::scale()?;
    let cluster = Cluster::start().context("starting a throwaway PostgreSQL cluster")?;
    cluster.create_database(DATABASE, None).context("creating the benchmark database")?;
    let work = tempfile::Builder::new().prefix("backstop-bench-backup-").tempdir()?;
    let bench = Bench { cluster, work: work.path().to_path_buf() };
    std::fs::create_dir_all(bench.work.join("migrations"))?;
    std::fs::write(
        bench.work.join("backstop.toml"),
        "[migrations]\ndir = \"migrations\"\n\n[backup]\ndir = \"backups\"\njobs = 2\n",
    )?;

    eprintln!("backup bench: pgbench -i -s {scale}, then realistic account columns...");
    let t = Instant::now();
    let (rows, size) = common::pgbench_realistic(&bench.cluster, DATABASE, scale)?;
    eprintln!("backup bench: {rows} accounts, database {size}, built in {}", secs(t.elapsed()));

    // 1. backup create vs pg_dump -Fc.
    bench.checkpoint()?;
    let plain_dump = bench.work.join("plain.dump");
    let mut dump = bench.tool("pg_dump");
    dump.args(["-Fc", "-f"])
        .arg(&plain_dump)
        .arg(format!("--dbname={}", bench.cluster.url(DATABASE)));
    let pg_dump = timed("pg_dump -Fc", || check(dump.output()?, "pg_dump -Fc"))?;
    bench.checkpoint()?;
    let mut id = String::new();
    let create = timed("backstop backup create", || {
        let out = bench.backstop(&["backup", "create", "--format", "json"]).output()?;
        let out = check(out, "backstop backup create")?;
        let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        id = json["id"].as_str().context("backup create printed no id")?.to_string();
        Ok(out)
    })?;
    let sizes = (file_size(&plain_dump), dir_size(&bench.work.join("backups").join(&id)));

    // 2. create + verify --restore vs pg_dump -Fc + pg_restore into a new database.
    let verify = timed("backstop backup verify --restore", || {
        check(bench.backstop(&["backup", "verify", &id, "--restore"]).output()?, "backup verify")
    })?;
    bench.cluster.create_database("plain_restore", None)?;
    let mut restore_plain = bench.tool("pg_restore");
    restore_plain.arg(format!("--dbname={}", bench.cluster.url("plain_restore"))).arg(&plain_dump);
    let pg_restore =
        timed("pg_restore into a new database", || check(restore_plain.output()?, "pg_restore"))?;
    bench.drop_database("plain_restore")?;

    // 3. restore vs pg_restore -j2 (of the same directory archive).
    bench.checkpoint()?;
    bench.cluster.create_database("plain_parallel", None)?;
    let mut parallel = bench.tool("pg_restore");
    parallel
        .args(["-j", "2"])
        .arg(format!("--dbname={}", bench.cluster.url("plain_parallel")))
        .arg(bench.work.join("backups").join(&id).join("dump"));
    let pg_restore_j2 = timed("pg_restore -j2", || check(parallel.output()?, "pg_restore -j2"))?;
    bench.drop_database("plain_parallel")?;
    bench.checkpoint()?;
    let restore = timed("backstop restore", || {
        check(bench.backstop(&["restore", &id, "--yes"]).output()?, "backstop restore")
    })?;

    let r1 = ratio(create, pg_dump);
    let r2 = ratio(create + verify, pg_dump + pg_restore);
    let r3 = ratio(restore, pg_restore_j2);
    let met = |r: f64, target: f64| if r <= target { "met" } else { "NOT met" };
    println!(
        "backup bench: pgbench scale {scale} with realistic accounts ({rows} rows, {size}), 2 jobs, one run"
    );
    println!("  sizes: pg_dump -Fc {}, backup create {}", mb(sizes.0), mb(sizes.1));
    println!(
        "backup create {} vs pg_dump -Fc {}: {r1:.2}x (target <= 0.60x: {})",
        secs(create),
        secs(pg_dump),
        met(r1, 0.60)
    );
    println!(
        "backup create + verify --restore {} vs pg_dump -Fc + pg_restore {}: {r2:.2}x (target <= 1.00x: {})",
        secs(create + verify),
        secs(pg_dump + pg_restore),
        met(r2, 1.00)
    );
    println!(
        "restore {} vs pg_restore -j2 {}: {r3:.2}x (target <= 1.15x: {})",
        secs(restore),
        secs(pg_restore_j2),
        met(r3, 1.15)
    );
    Ok(())
}

impl Bench {
    /// A PostgreSQL tool of the cluster's version, with no PG* settings
    /// from the caller.
    fn tool(&self, name: &str) -> Command {
        let mut cmd = Command::new(self.cluster.bin().tool(name));
        clean_env(&mut cmd);
        cmd
    }

    fn backstop(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_backstop"));
        clean_env(&mut cmd);
        cmd.args(args).env("DATABASE_URL", self.cluster.url(DATABASE)).current_dir(&self.work);
        cmd
    }

    /// No dirty buffers left for one contender to flush for the other.
    fn checkpoint(&self) -> anyhow::Result<()> {
        self.cluster.connect("postgres")?.batch_execute("CHECKPOINT").context("CHECKPOINT")
    }

    fn drop_database(&self, name: &str) -> anyhow::Result<()> {
        self.cluster
            .connect("postgres")?
            .batch_execute(&format!("DROP DATABASE {name}"))
            .with_context(|| format!("dropping {name}"))
    }
}

fn timed(
    label: &str,
    f: impl FnOnce() -> anyhow::Result<std::process::Output>,
) -> anyhow::Result<Duration> {
    let t = Instant::now();
    f().with_context(|| format!("running {label}"))?;
    let took = t.elapsed();
    eprintln!("  {label}: {}", secs(took));
    Ok(took)
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}

fn mb(bytes: u64) -> String {
    format!("{:.0} MB", bytes as f64 / 1e6)
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| if e.path().is_dir() { dir_size(&e.path()) } else { file_size(&e.path()) })
                .sum()
        })
        .unwrap_or(0)
}
