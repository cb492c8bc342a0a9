//! Rehearsal speed, as ratios measured in one run:
//!
//! 1. `backstop rehearse` over 300+ generated migrations of the shapes real
//!    projects write (tables, views, functions, triggers, enums, indexes,
//!    constraints, data backfills), each with an up → down → up round trip,
//!    against what projects do today: `pg_dump --schema-only` before the up
//!    and after the down of every migration, compared as text, with `psql`
//!    running the files. Target: 5× faster.
//! 2. Copying a pgbench database (scale from BENCH_SCALE, default 50) by
//!    template against `pg_dump | psql`. Target: 5× faster.
//!
//! Run: `cargo bench -p backstop-cli --bench rehearse`
//! (BENCH_MIGRATIONS sets the corpus size, default 300.)

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use backstop_core::pg::cluster::Cluster;

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[path = "../../../bench/history.rs"]
mod history;
use history::migration;

fn write_corpus(dir: &Path, n: usize) {
    for i in 0..n {
        let (up, down) = migration(i);
        let m = dir.join(format!("{:05}_m{i}", i + 1));
        std::fs::create_dir_all(&m).unwrap();
        std::fs::write(m.join("up.sql"), up).unwrap();
        std::fs::write(m.join("down.sql"), down).unwrap();
    }
}

fn run(cmd: &mut Command, what: &str) -> Duration {
    let t = Instant::now();
    let out = cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    t.elapsed()
}

fn tool(cluster: &Cluster, name: &str) -> Command {
    let mut cmd = Command::new(cluster.bin().tool(name));
    cmd.env("PGPASSWORD", password(cluster));
    for var in ["PGHOST", "PGPORT", "PGUSER", "PGDATABASE"] {
        cmd.env_remove(var);
    }
    cmd
}

fn password(cluster: &Cluster) -> String {
    let url = cluster.url("x");
    url.split(':').nth(2).and_then(|p| p.split('@').next()).unwrap_or_default().to_string()
}

fn conninfo(cluster: &Cluster, db: &str) -> String {
    format!("host=127.0.0.1 port={} user=postgres dbname={db}", cluster.port())
}

fn psql_file(cluster: &Cluster, db: &str, file: &Path) {
    run(
        tool(cluster, "psql")
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-1", "-f"])
            .arg(file)
            .arg(conninfo(cluster, db)),
        "psql",
    );
}

fn schema_dump(cluster: &Cluster, db: &str) -> String {
    let out = tool(cluster, "pg_dump")
        .args(["--schema-only", "--exclude-schema=backstop"])
        .arg(format!("--dbname={}", conninfo(cluster, db)))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // pg_dump 15 has no random \restrict key, but later ones do: drop it.
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Today's way: psql the files, pg_dump --schema-only around each down.
fn baseline(cluster: &Cluster, db: &str, dir: &Path, n: usize) -> Duration {
    let t = Instant::now();
    let mut mismatches = 0;
    for i in 0..n {
        let m = dir.join(format!("{:05}_m{i}", i + 1));
        let before = schema_dump(cluster, db);
        psql_file(cluster, db, &m.join("up.sql"));
        psql_file(cluster, db, &m.join("down.sql"));
        if schema_dump(cluster, db) != before {
            mismatches += 1;
        }
        psql_file(cluster, db, &m.join("up.sql"));
    }
    assert_eq!(mismatches, 0, "the generated downs must restore the schema");
    t.elapsed()
}

fn backstop(dir: &Path, url: &str, args: &[&str]) -> (Duration, String) {
    let t = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_backstop"))
        .args(args)
        .current_dir(dir)
        .env("DATABASE_URL", url)
        .env_remove("BACKSTOP_CONFIG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let elapsed = t.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "backstop {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (elapsed, stdout)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks for a list; there is nothing to run as a test
    }
    let n = env_num("BENCH_MIGRATIONS", 300);
    let scale = env_num("BENCH_SCALE", 50);
    let cluster = Cluster::start().expect("throwaway cluster");
    let work = tempfile::tempdir().unwrap();
    let migrations = work.path().join("migrations");
    write_corpus(&migrations, n);
    std::fs::write(work.path().join("backstop.toml"), "[migrations]\ndir = \"migrations\"\n")
        .unwrap();
    let mut report = String::new();

    // 1. Round trips over the corpus.
    cluster.create_database("corpus_backstop", None).unwrap();
    cluster.create_database("corpus_baseline", None).unwrap();
    eprintln!("rehearse: {n} migrations, backstop rehearse ...");
    let (ours, json) =
        backstop(work.path(), &cluster.url("corpus_backstop"), &["rehearse", "--format", "json"]);
    let parsed: serde_json::Value = serde_json::from_str(&json).expect("rehearse prints JSON");
    assert_eq!(parsed["ok"], true, "the corpus must rehearse cleanly: {json}");
    assert_eq!(parsed["migrations"].as_array().map(Vec::len), Some(n));
    eprintln!("rehearse: {n} migrations, pg_dump --schema-only + psql ...");
    let theirs = baseline(&cluster, "corpus_baseline", &migrations, n);
    let _ = writeln!(
        report,
        "round trips of {n} migrations: backstop rehearse {:.1}s, pg_dump -s + psql {:.1}s: {:.1}x faster (target 5x: {})",
        ours.as_secs_f64(),
        theirs.as_secs_f64(),
        theirs.as_secs_f64() / ours.as_secs_f64(),
        if theirs.as_secs_f64() / ours.as_secs_f64() >= 5.0 { "met" } else { "NOT met" }
    );

    // 2. Copying a pgbench database.
    cluster.create_database("bench_source", None).unwrap();
    eprintln!("clone: pgbench -i -s {scale} ...");
    run(
        tool(&cluster, "pgbench")
            .args(["-i", "-q", "-s", &scale.to_string()])
            .arg(conninfo(&cluster, "bench_source")),
        "pgbench -i",
    );
    let mut admin = cluster.connect("postgres").unwrap();
    let t = Instant::now();
    admin
        .batch_execute("CREATE DATABASE copy_template TEMPLATE bench_source STRATEGY FILE_COPY")
        .unwrap();
    let template = t.elapsed();
    cluster.create_database("copy_dump", None).unwrap();
    let t = Instant::now();
    let mut dump = tool(&cluster, "pg_dump")
        .arg(format!("--dbname={}", conninfo(&cluster, "bench_source")))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let restored = tool(&cluster, "psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1"])
        .arg(conninfo(&cluster, "copy_dump"))
        .stdin(dump.stdout.take().unwrap())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(dump.wait().unwrap().success() && restored.success());
    let dumped = t.elapsed();
    let _ = writeln!(
        report,
        "copy of pgbench scale {scale}: template {:.2}s, pg_dump | psql {:.1}s: {:.0}x faster (target 5x: {})",
        template.as_secs_f64(),
        dumped.as_secs_f64(),
        dumped.as_secs_f64() / template.as_secs_f64(),
        if dumped.as_secs_f64() / template.as_secs_f64() >= 5.0 { "met" } else { "NOT met" }
    );
    print!("{report}");
}
