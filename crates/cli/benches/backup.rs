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

use anyhow::{bail, Context as _};
use backstop_core::pg::cluster::Cluster;

const DATABASE: &str = "bench";
const DEFAULT_SCALE: u32 = 50;

/// pgbench_accounts rebuilt with realistic columns: text of many lengths,
/// money, timestamps in random order and a jsonb document per row.
const REALISTIC_ACCOUNTS: &str = "
SELECT setseed(0.42);
CREATE TABLE accounts_varied AS
SELECT aid, bid, abalance,
       left(md5(aid::text) || md5((aid * 7)::text) || md5((aid * 13)::text), 12 + aid % 80) AS note,
       round((random() * 100000)::numeric, 2) AS amount,
       timestamptz '2020-01-01 00:00:00+00' + random() * interval '5 years' AS seen_at,
       jsonb_build_object(
           'plan', (ARRAY['free', 'pro', 'team', 'enterprise'])[1 + aid % 4],
           'score', round((random() * 100)::numeric, 3),
           'active', aid % 3 <> 0,
           'tags', jsonb_build_array(left(md5((aid * 3)::text), 6), left(md5((aid * 5)::text), 8))
       ) AS attrs
  FROM pgbench_accounts;
DROP TABLE pgbench_accounts;
ALTER TABLE accounts_varied RENAME TO pgbench_accounts;
ALTER TABLE pgbench_accounts ADD PRIMARY KEY (aid);
CREATE INDEX pgbench_accounts_seen_at_idx ON pgbench_accounts (seen_at);
";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("backup bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

struct Bench {
    cluster: Cluster,
    work: PathBuf,
}

fn run() -> anyhow::Result<()> {
    let scale = match std::env::var("BENCH_SCALE") {
        Ok(s) => s.trim().parse::<u32>().ok().filter(|n| *n >= 1).with_context(|| {
            format!("BENCH_SCALE={s:?} is not a positive whole number; unset it or set e.g. 50")
        })?,
        Err(_) => DEFAULT_SCALE,
    };
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
    let mut init = bench.tool("pgbench");
    init.args(["-i", "-q", "-s", &scale.to_string()]).arg(bench.cluster.url(DATABASE));
    check(init.output().context("running pgbench -i")?, "pgbench -i")?;
    let mut client = bench.cluster.connect(DATABASE)?;
    client.batch_execute(REALISTIC_ACCOUNTS).context("adding realistic columns")?;
    client.batch_execute("VACUUM ANALYZE").context("vacuuming")?;
    let (rows, size): (i64, String) = {
        let r = client.query_one(
            "SELECT (SELECT count(*) FROM pgbench_accounts), pg_size_pretty(pg_database_size(current_database()))",
            &[],
        )?;
        (r.get(0), r.get(1))
    };
    drop(client);
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

fn clean_env(cmd: &mut Command) {
    for var in ["PGDATA", "PGPORT", "PGHOST", "PGUSER", "PGPASSWORD", "PGDATABASE", "PGOPTIONS"] {
        cmd.env_remove(var);
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

fn check(out: std::process::Output, label: &str) -> anyhow::Result<std::process::Output> {
    if out.status.success() {
        return Ok(out);
    }
    bail!(
        "{label} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}

fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
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
