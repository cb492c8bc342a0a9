//! Benchmark (not a test): a rollback drill's wall time against the sum of
//! its parts run by hand on a pgbench database (scale 50, about 5M rows)
//! with realistic rows and a release that adds a column and a table.
//!
//! By hand, on a throwaway cluster of its own: the backup restored with
//! `pg_restore`, the copy's own backup (`backstop backup create`), the
//! release applied (`migrate`), its flags on, then flags off (method A)
//! and `verify`, flags on, the downs (`rollback`) and `verify`, flags on,
//! `restore` of the copy's backup and `verify`. The drill does the same
//! in one command, timing each step. Printed: each part's time, each
//! step of the drill, and the ratio of the drill to the sum.
//!
//! `cargo bench -p backstop-cli --bench drill`; `BENCH_SCALE` sets the
//! pgbench scale. Exits non-zero if a step fails.

use std::path::Path;
use std::process::{Command, ExitCode};
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
protected_tables = ["pgbench_branches", "pgbench_tellers"]
statement_timeout = "off"

[backup]
dir = "backups"
jobs = 2

[[flags]]
key = "account_notes"
release = "v2"

[[verify.checks]]
name = "connection"
kind = "connection"

[[verify.checks]]
name = "pgbench tables"
kind = "tables"
tables = ["pgbench_accounts", "pgbench_branches", "pgbench_tellers", "pgbench_history"]

[[verify.checks]]
name = "every account has a branch"
kind = "sql"
query = "select count(*) from pgbench_accounts a left join pgbench_branches b using (bid) where b.bid is null"
expect = "0"

[drill]
method_a = "5m"
method_b = "20m"
method_c = "1h"
"#;

const UP: &str = "ALTER TABLE pgbench_accounts ADD COLUMN archived_at timestamptz;\n\
CREATE TABLE account_notes (id bigserial PRIMARY KEY, aid int NOT NULL REFERENCES pgbench_accounts, body text);\n\
CREATE INDEX account_notes_aid_idx ON account_notes (aid);\n";
const DOWN: &str =
    "DROP TABLE account_notes;\nALTER TABLE pgbench_accounts DROP COLUMN archived_at;\n";

fn main() -> ExitCode {
    common::exit("drill", run())
}

/// A project folder with the bench's config and the release v2.
fn project(dir: &Path, required_backup: bool) -> anyhow::Result<()> {
    let v2 = dir.join("migrations/2_v2");
    std::fs::create_dir_all(&v2)?;
    let config = if required_backup {
        CONFIG.to_string()
    } else {
        CONFIG.replace("jobs = 2\n", "jobs = 2\nrequired = false\n")
    };
    std::fs::write(dir.join("backstop.toml"), config)?;
    std::fs::write(v2.join("up.sql"), UP)?;
    std::fs::write(v2.join("down.sql"), DOWN)?;
    Ok(())
}

fn backstop(dir: &Path, url: &str, args: &[&str]) -> anyhow::Result<(Duration, String)> {
    let t = Instant::now();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_backstop"));
    clean_env(&mut cmd);
    let out = cmd.args(args).env("DATABASE_URL", url).current_dir(dir).output()?;
    let out = check(out, &format!("backstop {}", args.join(" ")))?;
    Ok((t.elapsed(), String::from_utf8_lossy(&out.stdout).into_owned()))
}

fn run() -> anyhow::Result<()> {
    let scale = common::scale()?;
    let cluster = Cluster::start().context("starting a throwaway PostgreSQL cluster")?;
    cluster.create_database(DATABASE, None)?;
    let work = tempfile::Builder::new().prefix("backstop-bench-drill-").tempdir()?;
    let target_dir = work.path().join("target");
    project(&target_dir, true)?;
    eprintln!("drill bench: pgbench -i -s {scale}, then realistic account columns...");
    let (rows, size) = common::pgbench_realistic(&cluster, DATABASE, scale)?;
    let url = cluster.url(DATABASE);
    eprintln!("drill bench: {rows} accounts, {size}; migrate v2 (its backup first)...");
    backstop(&target_dir, &url, &["migrate"])?;
    backstop(&target_dir, &url, &["flags", "sync"])?;
    backstop(&target_dir, &url, &["flags", "enable", "--release", "v2", "--reason", "launch"])?;
    let mut db = cluster.connect(DATABASE)?;
    db.batch_execute(
        "INSERT INTO account_notes (aid, body) SELECT aid, 'written after v2' FROM generate_series(1, 1000) aid",
    )?;
    let backup: String =
        db.query_one("select backup_id from backstop.applied where version = '2'", &[])?.get(0);
    drop(db);

    eprintln!("drill bench: backstop drill...");
    let (wall, json) = backstop(&target_dir, &url, &["drill", "--format", "json"])?;
    let report: serde_json::Value =
        serde_json::from_str(&json).context("reading the drill's JSON")?;
    if report["passed"] != true {
        bail!("the drill did not pass:\n{json}");
    }

    eprintln!("drill bench: the same parts by hand...");
    let hand = by_hand(&target_dir, &backup, work.path())?;
    let sum: Duration = hand.iter().map(|(_, d)| *d).sum();
    println!(
        "rollback drill, pgbench scale {scale} with realistic accounts ({rows} rows, {size}), release v2 (a column and a table):"
    );
    println!("  backstop drill: {} wall", secs(wall));
    for s in report["steps"].as_array().into_iter().flatten() {
        println!(
            "    {:<10} {:>7.2}s  {} (target {})",
            s["name"].as_str().unwrap_or("?"),
            s["took_ms"].as_f64().unwrap_or(0.0) / 1000.0,
            s["outcome"].as_str().unwrap_or("?"),
            s["target_ms"].as_f64().map_or("none".to_string(), |t| format!("{:.0}s", t / 1000.0)),
        );
    }
    println!("  by hand: {} in all", secs(sum));
    for (part, d) in &hand {
        println!("    {part:<44} {:>7.2}s", d.as_secs_f64());
    }
    println!(
        "  drill / by hand: {:.2} (the drill's own work besides the parts: starting, counting the target's rows, the record, reading schemas)",
        wall.as_secs_f64() / sum.as_secs_f64()
    );
    Ok(())
}

/// The parts a person runs for the same drill, each timed, on a
/// throwaway cluster of the bench's own.
fn by_hand(
    target_dir: &Path,
    backup: &str,
    work: &Path,
) -> anyhow::Result<Vec<(String, Duration)>> {
    let mut parts = Vec::new();
    let t = Instant::now();
    let copy = Cluster::start()?;
    copy.create_database(DATABASE, None)?;
    let mut restore = Command::new(copy.bin().tool("pg_restore"));
    clean_env(&mut restore);
    restore
        .args(["--jobs=2", "--no-tablespaces", "--exit-on-error", "--dbname"])
        .arg(copy.url(DATABASE))
        .arg(target_dir.join("backups").join(backup).join("dump"));
    check(restore.output()?, "pg_restore")?;
    parts.push(("pg_restore of the backup (cluster started)".to_string(), t.elapsed()));

    let dir = work.join("hand");
    project(&dir, false)?;
    let url = copy.url(DATABASE);
    let mut run = |label: &str, args: &[&str]| -> anyhow::Result<String> {
        let (d, out) = backstop(&dir, &url, args)?;
        parts.push((label.to_string(), d));
        Ok(out)
    };
    let made = run("backup create (the copy's own)", &["backup", "create", "--format", "json"])?;
    let own: serde_json::Value =
        serde_json::from_str(&made).context("reading backup create's JSON")?;
    let own = own["id"].as_str().context("backup create names its backup")?.to_string();
    run("migrate (the release applied again)", &["migrate"])?;
    let on: &[&str] = &["flags", "enable", "--release", "v2", "--reason", "drill by hand"];
    run("flags sync", &["flags", "sync"])?;
    run("flags on", on)?;
    run(
        "flags off (method A)",
        &["flags", "kill", "--release", "v2", "--reason", "drill by hand"],
    )?;
    run("verify", &["verify"])?;
    run("flags on", on)?;
    run("rollback (the downs, method C)", &["rollback"])?;
    run("verify", &["verify"])?;
    run("flags on", on)?;
    run("restore of the copy's backup (method B)", &["restore", &own, "--yes"])?;
    run("verify", &["verify"])?;
    drop(copy);
    Ok(parts)
}
