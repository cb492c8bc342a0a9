//! What the benchmarks share: a pgbench database with realistic rows, and
//! small helpers for running and timing commands.

#![allow(dead_code)]

use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context as _};
use backstop_core::pg::cluster::Cluster;

pub mod archived;

const DEFAULT_SCALE: u32 = 50;

/// pgbench_accounts rebuilt with realistic columns: text of many lengths,
/// money, timestamps in random order and a jsonb document per row.
pub const REALISTIC_ACCOUNTS: &str = "
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

/// The pgbench scale: `BENCH_SCALE`, or 50.
pub fn scale() -> anyhow::Result<u32> {
    match std::env::var("BENCH_SCALE") {
        Ok(s) => s.trim().parse::<u32>().ok().filter(|n| *n >= 1).with_context(|| {
            format!("BENCH_SCALE={s:?} is not a positive whole number; unset it or set e.g. 50")
        }),
        Err(_) => Ok(DEFAULT_SCALE),
    }
}

/// `pgbench -i -s SCALE` into `database`, its accounts rebuilt with
/// realistic columns, vacuumed: the accounts' row count and the database's size.
pub fn pgbench_realistic(
    cluster: &Cluster,
    database: &str,
    scale: u32,
) -> anyhow::Result<(i64, String)> {
    let mut init = Command::new(cluster.bin().tool("pgbench"));
    clean_env(&mut init);
    init.args(["-i", "-q", "-s", &scale.to_string()]).arg(cluster.url(database));
    check(init.output().context("running pgbench -i")?, "pgbench -i")?;
    let mut client = cluster.connect(database)?;
    client.batch_execute(REALISTIC_ACCOUNTS).context("adding realistic columns")?;
    client.batch_execute("VACUUM ANALYZE").context("vacuuming")?;
    let r = client.query_one(
        "SELECT (SELECT count(*) FROM pgbench_accounts), pg_size_pretty(pg_database_size(current_database()))",
        &[],
    )?;
    Ok((r.get(0), r.get(1)))
}

/// No PG* settings of the caller reach the command.
pub fn clean_env(cmd: &mut Command) {
    for var in ["PGDATA", "PGPORT", "PGHOST", "PGUSER", "PGPASSWORD", "PGDATABASE", "PGOPTIONS"] {
        cmd.env_remove(var);
    }
}

/// The output of a command that succeeded, or an error with what it printed.
pub fn check(out: std::process::Output, label: &str) -> anyhow::Result<std::process::Output> {
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

pub fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// The bench's exit: its error, if any, said once with its label.
pub fn exit(label: &str, result: anyhow::Result<()>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{label} bench: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Runs `backstop ARGS` in `dir` against `url` (or the binary that
/// `BENCH_BACKSTOP` names) with none of the caller's PG* settings, to
/// success: its time, or an error with what it printed.
pub fn backstop_ok(dir: &std::path::Path, url: &str, args: &[&str]) -> anyhow::Result<Duration> {
    let binary =
        std::env::var("BENCH_BACKSTOP").unwrap_or_else(|_| env!("CARGO_BIN_EXE_backstop").into());
    let mut cmd = Command::new(binary);
    clean_env(&mut cmd);
    let t = std::time::Instant::now();
    let out = cmd
        .args(args)
        .current_dir(dir)
        .env("DATABASE_URL", url)
        .env_remove("BACKSTOP_CONFIG")
        .output()
        .context("running backstop")?;
    let took = t.elapsed();
    check(out, &format!("backstop {}", args.join(" ")))?;
    Ok(took)
}

/// Runs `backstop ARGS` in `dir` against `url` (or the binary that
/// `BENCH_BACKSTOP` names, for A/B runs against an older build): its time
/// and standard output. Exit 1 (the command found problems) is an answer
/// too; anything else stops the benchmark.
pub fn backstop(dir: &std::path::Path, url: &str, args: &[&str]) -> (Duration, String) {
    backstop_with(dir, url, args, &[])
}

/// `backstop ARGS` in `dir` on `url` (or the binary `BENCH_BACKSTOP`
/// names), with no configuration from outside and no input.
fn backstop_command(dir: &std::path::Path, url: &str, args: &[&str]) -> Command {
    let binary =
        std::env::var("BENCH_BACKSTOP").unwrap_or_else(|_| env!("CARGO_BIN_EXE_backstop").into());
    let mut cmd = Command::new(binary);
    cmd.args(args)
        .current_dir(dir)
        .env("DATABASE_URL", url)
        .env_remove("BACKSTOP_CONFIG")
        .stdin(std::process::Stdio::null());
    cmd
}

/// [`backstop`] with more variables in its environment (`BACKSTOP_PG_BIN`
/// for a server of another major than the machine's own).
pub fn backstop_with(
    dir: &std::path::Path,
    url: &str,
    args: &[&str],
    env: &[(&str, &std::path::Path)],
) -> (Duration, String) {
    let t = std::time::Instant::now();
    let out = backstop_command(dir, url, args)
        .envs(env.iter().map(|(k, v)| (*k, *v)))
        .output()
        .expect("backstop runs");
    let elapsed = t.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "backstop {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (elapsed, stdout)
}

/// `psql -f` of each file, in order, as a history is applied by hand: the
/// time it took.
pub fn psql_files(
    cluster: &Cluster,
    db: &str,
    files: &[std::path::PathBuf],
) -> anyhow::Result<Duration> {
    let t = std::time::Instant::now();
    for file in files {
        let mut psql = Command::new(cluster.bin().tool("psql"));
        clean_env(&mut psql);
        psql.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-f"]).arg(file).arg(cluster.url(db));
        check(psql.output().context("running psql")?, &format!("psql -f {file:?}"))?;
    }
    Ok(t.elapsed())
}

/// `backstop ARGS` in `dir` on `url`, which must succeed: its time, and
/// what it said on both outputs.
pub fn backstop_said(
    dir: &std::path::Path,
    url: &str,
    args: &[&str],
) -> anyhow::Result<(Duration, String)> {
    let (elapsed, text, code) = backstop_answered(dir, url, args)?;
    anyhow::ensure!(code == 0, "backstop {args:?} failed:\n{text}");
    Ok((elapsed, text))
}

/// `backstop ARGS` in `dir` on `url`, which may succeed or find problems
/// (exit 0 or 1): its time, what it said on both outputs, its exit code.
pub fn backstop_answered(
    dir: &std::path::Path,
    url: &str,
    args: &[&str],
) -> anyhow::Result<(Duration, String, i32)> {
    let t = std::time::Instant::now();
    let mut cmd = backstop_command(dir, url, args);
    clean_env(&mut cmd);
    let out = cmd.output().context("running backstop")?;
    let elapsed = t.elapsed();
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let code = out.status.code().unwrap_or(-1);
    anyhow::ensure!(matches!(code, 0 | 1), "backstop {args:?} failed ({code}):\n{text}");
    Ok((elapsed, text, code))
}

/// `a` as a multiple of `b`.
pub fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(1e-9)
}

/// A goal's verdict, as the figures print it.
pub fn met(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "NOT met"
    }
}

/// The backup gate's own time, as its line says it (`… in 0.5s`).
pub fn backup_time(output: &str) -> Duration {
    let line = output.lines().find(|l| l.starts_with("backup ") && l.contains(" taken: "));
    let secs = line.and_then(|l| l.rsplit(" in ").next()).map(|t| t.trim()).and_then(|t| {
        match t.strip_suffix("ms") {
            Some(ms) => ms.trim().parse::<f64>().ok().map(|v| v / 1000.0),
            None => t.trim_end_matches('s').trim().parse::<f64>().ok(),
        }
    });
    Duration::from_secs_f64(secs.unwrap_or(0.0))
}

/// The middle of three or more times.
pub fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}
