//! Rehearsal speed and accuracy, as ratios measured in one run:
//!
//! 1. `backstop rehearse` over a generated history of 280 migrations of
//!    the shapes real projects write (tables, views on views, plpgsql
//!    functions and triggers, enums, indexes, constraints, renames, data
//!    backfills), with broken and cosmetic downs planted in it (see
//!    `bench/history.rs`), against what projects do today: `pg_dump
//!    --schema-only` before the up and after the down of every migration,
//!    compared as text, with `psql` running the files. Both go through
//!    every migration in one pass. Printed: each one's time, how many of
//!    the planted defects each finds, and how many cosmetic downs each
//!    calls an error. Targets: 5× faster, every defect found, no cosmetic
//!    down called an error.
//!    The same on a project whose schema keeps growing (the history's
//!    `grown` form: over 800 relations and 300 functions at the end), where
//!    reading the whole schema after every migration would make the run
//!    O(migrations × schema): Backstop reads again only what each
//!    migration touched. Target: 5× on both.
//! 2. Copying a pgbench database (scale from BENCH_SCALE, default 50) by
//!    template against `pg_dump | psql`. Target: 5× faster.
//!
//! Run: `cargo bench -p backstop-cli --bench rehearse`
//! (BENCH_MIGRATIONS sets the history's length, default 280;
//! BENCH_HISTORIES=grown rehearses only that one; BENCH_BACKSTOP names
//! another `backstop` binary to measure, for A/B runs against an older
//! build.)

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use backstop_core::pg::cluster::Cluster;

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

mod common;
#[path = "../../../bench/history.rs"]
mod history;
use common::backstop;
use history::{grown, planted, Plant};

/// A history: migration `i`'s up, down and plant.
type History = fn(usize) -> (String, String, Option<Plant>);

/// Writes a history; returns each migration's plant.
fn write_corpus(dir: &Path, n: usize, history: History) -> Vec<Option<Plant>> {
    (0..n)
        .map(|i| {
            let (up, down, plant) = history(i);
            let m = dir.join(format!("{:05}_m{i}", i + 1));
            std::fs::create_dir_all(&m).unwrap();
            std::fs::write(m.join("up.sql"), up).unwrap();
            std::fs::write(m.join("down.sql"), down).unwrap();
            plant
        })
        .collect()
}

/// What one way of rehearsing made of the planted history.
#[derive(Default)]
struct Judged {
    defects_found: usize,
    defects: usize,
    cosmetic_called_errors: usize,
    cosmetic: usize,
    /// Healthy migrations called an error.
    false_alarms: usize,
}

fn judge(plants: &[Option<Plant>], flagged: &[bool]) -> Judged {
    let mut j = Judged::default();
    for (plant, flagged) in plants.iter().zip(flagged) {
        match plant {
            Some(Plant::Cosmetic) => {
                j.cosmetic += 1;
                j.cosmetic_called_errors += usize::from(*flagged);
            }
            Some(_) => {
                j.defects += 1;
                j.defects_found += usize::from(*flagged);
            }
            None => j.false_alarms += usize::from(*flagged),
        }
    }
    j
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

/// Runs a file in one transaction; whether it succeeded.
fn psql_file(cluster: &Cluster, db: &str, file: &Path) -> bool {
    tool(cluster, "psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-1", "-f"])
        .arg(file)
        .arg(conninfo(cluster, db))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
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

/// Today's way: psql the files, pg_dump --schema-only around each down,
/// on through the history whatever happens. A migration is flagged when
/// its down fails, the dumps differ, or the up fails after the down.
fn baseline(cluster: &Cluster, db: &str, dir: &Path, n: usize) -> (Duration, Vec<bool>) {
    let t = Instant::now();
    let mut flagged = Vec::with_capacity(n);
    for i in 0..n {
        let m = dir.join(format!("{:05}_m{i}", i + 1));
        let before = schema_dump(cluster, db);
        assert!(psql_file(cluster, db, &m.join("up.sql")), "the up of migration {i} fails");
        let down = psql_file(cluster, db, &m.join("down.sql"));
        let differs = schema_dump(cluster, db) != before;
        let again = psql_file(cluster, db, &m.join("up.sql"));
        flagged.push(!down || differs || !again);
    }
    (t.elapsed(), flagged)
}

/// Rehearses one history both ways and says how each did.
fn round_trips(
    cluster: &Cluster,
    dir: &Path,
    name: &str,
    n: usize,
    history: History,
    report: &mut String,
) {
    let migrations = dir.join("migrations");
    let plants = write_corpus(&migrations, n, history);
    std::fs::write(dir.join("backstop.toml"), "[migrations]\ndir = \"migrations\"\n").unwrap();
    let (ours_db, theirs_db) = (format!("{name}_backstop"), format!("{name}_baseline"));
    cluster.create_database(&ours_db, None).unwrap();
    cluster.create_database(&theirs_db, None).unwrap();
    eprintln!("rehearse: {n} migrations ({name}), backstop rehearse ...");
    let (ours, json) = backstop(dir, &cluster.url(&ours_db), &["rehearse", "--format", "json"]);
    let parsed: serde_json::Value = serde_json::from_str(&json).expect("rehearse prints JSON");
    let trips = parsed["round_trip"]["migrations"].as_array().expect("round trips");
    assert_eq!(trips.len(), n, "one run reports every migration");
    let error_classes = ["defect", "down_fails", "re_up_fails", "up_fails", "not_rehearsed"];
    let ours_flagged: Vec<bool> =
        trips.iter().map(|t| error_classes.contains(&t["class"].as_str().unwrap_or(""))).collect();
    eprintln!("rehearse: {n} migrations ({name}), pg_dump --schema-only + psql ...");
    let (theirs, theirs_flagged) = baseline(cluster, &theirs_db, &migrations, n);
    let (a, b) = (judge(&plants, &ours_flagged), judge(&plants, &theirs_flagged));
    let ratio = theirs.as_secs_f64() / ours.as_secs_f64();
    let size = schema_size(cluster, &theirs_db);
    let _ = writeln!(
        report,
        "round trips of {n} migrations ({name} history, {size} at the end), one pass each: backstop rehearse {:.1}s, pg_dump -s + psql {:.1}s: {ratio:.1}x faster (target 5x: {})",
        ours.as_secs_f64(),
        theirs.as_secs_f64(),
        if ratio >= 5.0 { "met" } else { "NOT met" }
    );
    // Whether a round trip costs more as the schema grows.
    let per_trip = |range: &[serde_json::Value]| {
        let mut ms: Vec<u64> = range.iter().filter_map(|t| t["duration_ms"].as_u64()).collect();
        ms.sort_unstable();
        ms.get(ms.len() / 2).copied().unwrap_or_default()
    };
    let tenth = (n / 10).max(1);
    let _ = writeln!(
        report,
        "  backstop rehearse: median round trip {} ms in the first {tenth} migrations, {} ms in the last {tenth}",
        per_trip(&trips[..tenth]),
        per_trip(&trips[n - tenth..])
    );
    for (who, j) in [("backstop rehearse", &a), ("pg_dump -s + psql", &b)] {
        let _ = writeln!(
            report,
            "  {who:<18} planted defects found {}/{}, cosmetic downs called errors {}/{}, healthy migrations called errors {}",
            j.defects_found, j.defects, j.cosmetic_called_errors, j.cosmetic, j.false_alarms
        );
    }
    let _ = writeln!(
        report,
        "  targets: every defect found ({}), no cosmetic down called an error ({})",
        if a.defects_found == a.defects { "met" } else { "NOT met" },
        if a.cosmetic_called_errors == 0 && a.false_alarms == 0 { "met" } else { "NOT met" }
    );
}

/// How big the schema of the baseline's database is once every up ran.
fn schema_size(cluster: &Cluster, db: &str) -> String {
    let mut client = cluster.connect(db).unwrap();
    let row = client
        .query_one(
            "select (select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace
                      where n.nspname = 'public'),
                    (select count(*) from pg_proc p join pg_namespace n on n.oid = p.pronamespace
                      where n.nspname = 'public')",
            &[],
        )
        .unwrap();
    format!("{} relations, {} functions", row.get::<_, i64>(0), row.get::<_, i64>(1))
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks for a list; there is nothing to run as a test
    }
    let n = env_num("BENCH_MIGRATIONS", 280);
    let scale = env_num("BENCH_SCALE", 50);
    let cluster = Cluster::start().expect("throwaway cluster");
    let work = tempfile::tempdir().unwrap();
    let mut report = String::new();

    // 1. Round trips over the planted history, then over the grown one.
    let only = std::env::var("BENCH_HISTORIES").unwrap_or_default();
    for (name, history) in [("planted", planted as History), ("grown", grown as History)] {
        if !only.is_empty() && !only.split(',').any(|h| h == name) {
            continue;
        }
        round_trips(&cluster, &work.path().join(name), name, n, history, &mut report);
    }

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
