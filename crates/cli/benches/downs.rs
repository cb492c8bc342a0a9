//! Computed downs at the length of real histories, measured in one run:
//!
//! 1. `backstop downs` over the generated history of 300 migrations (see
//!    `bench/history.rs`: tables, views on views, plpgsql functions and
//!    triggers, enums, indexes, constraints, renames, data backfills) laid
//!    out up-only, as Supabase, Prisma and Drizzle keep them: every down
//!    computed and proved, or marked unprovable with the reason. Against
//!    it, `backstop rehearse --schema-only` of the same history with its
//!    hand-written downs, which does the same replay without working
//!    anything out. Printed: both times and the ratio.
//! 2. The same history with broken and cosmetic downs planted: how many
//!    of the defective downs get a proved fix, and how many cosmetic ones
//!    are wrongly called defective.
//! 3. On a Supabase-shaped database (`bench/supabase_history.rs` on the
//!    platform of `crates/cli/tests/fixtures/platform/supabase_full.sql`,
//!    PostgreSQL 16 for pgvector): `backstop downs` of the project's
//!    history in the Supabase CLI's layout, with no backstop.toml, its
//!    replay started from the target's platform; against it `backstop
//!    rehearse --schema-only` of the same history with the downs that run
//!    wrote. Printed: both times and the ratio.
//!
//! Run: `cargo bench -p backstop-cli --bench downs`
//! (BENCH_MIGRATIONS sets the histories' length, default 300;
//! BENCH_ONLY=platform runs the third part alone.)

use std::path::{Path, PathBuf};
use std::time::Duration;

use backstop_core::pg::bins::{Kit, Origin, Search};
use backstop_core::pg::cluster::{Cluster, PgBin};

mod common;
#[path = "../../../bench/history.rs"]
mod history;
// The tests use the other layouts.
#[allow(dead_code)]
#[path = "../../../bench/supabase_history.rs"]
mod supabase_history;
use history::{migration, planted, Plant};
use supabase_history::{Layout, Platform};

/// `backstop ARGS`, whose standard output is JSON.
fn backstop(dir: &Path, url: &str, args: &[&str]) -> (Duration, serde_json::Value) {
    let (took, out) = common::backstop(dir, url, args);
    (took, serde_json::from_str(&out).expect("JSON on stdout"))
}

/// A project folder holding migrations 0..n: each `(up, down)` from
/// `make`, without a down when it gives none.
fn project(
    root: &Path,
    name: &str,
    n: usize,
    make: impl Fn(usize) -> (String, Option<String>),
) -> std::path::PathBuf {
    let dir = root.join(name);
    for i in 0..n {
        let (up, down) = make(i);
        let m = dir.join("migrations").join(format!("{:05}_m{i}", i + 1));
        std::fs::create_dir_all(&m).unwrap();
        std::fs::write(m.join("up.sql"), up).unwrap();
        if let Some(d) = down {
            std::fs::write(m.join("down.sql"), d).unwrap();
        }
    }
    std::fs::write(dir.join("backstop.toml"), "[migrations]\ndir = \"migrations\"\n").unwrap();
    dir
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n = std::env::var("BENCH_MIGRATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(300);
    let work = tempfile::tempdir().unwrap();
    if std::env::var("BENCH_ONLY").is_ok_and(|v| v == "platform") {
        platform(work.path(), n);
        return;
    }
    let cluster = Cluster::start().expect("throwaway cluster");

    // 1. Up-only: every down computed.
    let up_only = project(work.path(), "up_only", n, |i| (migration(i).0, None));
    cluster.create_database("downs_target", None).unwrap();
    eprintln!("downs: {n} up-only migrations, backstop downs ...");
    let (ours, json) =
        backstop(&up_only, &cluster.url("downs_target"), &["downs", "--format", "json"]);
    let list = json.as_array().expect("one object per migration").clone();
    let proved = list.iter().filter(|d| d["proved"] == true).count();
    let unprovable: Vec<String> = list
        .iter()
        .filter(|d| d["status"] == "unprovable")
        .map(|d| format!("{}: {}", d["version"], d["notes"]))
        .collect();

    let with_downs = project(work.path(), "with_downs", n, |i| {
        let (up, down) = migration(i);
        (up, Some(down))
    });
    cluster.create_database("rehearse_target", None).unwrap();
    eprintln!("downs: the same history with its downs, backstop rehearse --schema-only ...");
    let (rehearsal, _) = backstop(
        &with_downs,
        &cluster.url("rehearse_target"),
        &["rehearse", "--schema-only", "--format", "json"],
    );

    // 2. Planted defects: fixes.
    let plants: Vec<Option<Plant>> = (0..n).map(|i| planted(i).2).collect();
    let planted_dir = project(work.path(), "planted", n, |i| {
        let (up, down, _) = planted(i);
        (up, Some(down))
    });
    cluster.create_database("planted_target", None).unwrap();
    eprintln!("downs: {n} migrations with planted downs, backstop downs ...");
    let (fixing, json) =
        backstop(&planted_dir, &cluster.url("planted_target"), &["downs", "--format", "json"]);
    let fixed = json.as_array().expect("one object per migration").clone();
    let status_of = |i: usize| {
        let version = format!("{:05}", i + 1);
        fixed
            .iter()
            .find(|d| d["version"] == version.as_str())
            .map(|d| d["status"].as_str().unwrap_or("").to_string())
    };
    let (mut defects, mut fixes, mut cosmetic, mut cosmetic_flagged, mut false_alarms) =
        (0, 0, 0, 0, 0);
    for (i, plant) in plants.iter().enumerate() {
        let status = status_of(i);
        match plant {
            // The up fails after such a down only: its schema is restored.
            Some(Plant::ReUpFails) => {}
            Some(Plant::Cosmetic) => {
                cosmetic += 1;
                cosmetic_flagged += usize::from(status.is_some());
                if status.is_some() && cosmetic_flagged <= 3 {
                    let version = format!("{:05}", i + 1);
                    let d = fixed.iter().find(|d| d["version"] == version.as_str());
                    eprintln!(
                        "cosmetic down called defective: {version}: {}",
                        d.map(|d| d.to_string()).unwrap_or_default()
                    );
                }
            }
            Some(_) => {
                defects += 1;
                fixes += usize::from(status.as_deref() == Some("fixed"));
            }
            None => false_alarms += usize::from(status.is_some()),
        }
    }

    let secs = |d: Duration| format!("{:.1}s", d.as_secs_f64());
    println!("computed downs, {n} up-only migrations ({}):", build());
    println!(
        "  backstop downs: {} ({} computed and proved of {}, {} unprovable), {:.0} ms per migration",
        secs(ours),
        proved,
        list.len(),
        unprovable.len(),
        ours.as_secs_f64() * 1000.0 / n as f64
    );
    for u in unprovable.iter().take(5) {
        println!("    unprovable {u}");
    }
    println!(
        "  backstop rehearse --schema-only of the same history with its downs: {} -> downs takes {:.2}x the time of a rehearsal",
        secs(rehearsal),
        ours.as_secs_f64() / rehearsal.as_secs_f64()
    );
    println!(
        "  planted downs: {fixes}/{defects} defective downs got a proved fix; {cosmetic_flagged}/{cosmetic} cosmetic downs called defective; {false_alarms} healthy downs listed; {}",
        secs(fixing)
    );
    platform(work.path(), n);
}

/// Which build is measured.
fn build() -> &'static str {
    if cfg!(debug_assertions) {
        "dev build"
    } else {
        "release build"
    }
}

/// PostgreSQL 16's programs as `.ci/tools/postgresql.sh` installs them.
fn pg16() -> Option<PathBuf> {
    let tools = std::env::var_os("BACKSTOP_TOOLS").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/backstop-tools")
    });
    let dir = tools.join("pg/16/bin");
    dir.join("pg_ctl").is_file().then_some(dir)
}

/// Part 3: `downs` from the target's platform on a Supabase-shaped database,
/// against `rehearse --schema-only` of the same history.
fn platform(work: &Path, n: usize) {
    let title = format!(
        "computed downs on a Supabase-shaped database, {n} up-only migrations in the Supabase CLI's layout ({}, PostgreSQL 16):",
        build()
    );
    let Some(bin) = pg16() else {
        println!("{title}\n  skipped: PostgreSQL 16 is not installed (.ci/tools/postgresql.sh installs it)");
        return;
    };
    let server = Search::of(vec![(bin.clone(), Origin::Env)]).first(Kit::Server).expect("pg 16");
    let cluster = Cluster::start_with(PgBin::from(server)).expect("a PostgreSQL 16 cluster");
    cluster.create_database("platform_target", None).unwrap();
    let mut db = cluster.connect("platform_target").unwrap();
    db.batch_execute(supabase_history::PLATFORM).expect("the platform is made");
    let shape = Platform::of(&mut db);
    let dir = work.join("supabase_project");
    let steps = supabase_history::write(&dir, Layout::Supabase, n, shape);
    let url = cluster.url("platform_target");
    let env: [(&str, &Path); 1] = [("BACKSTOP_PG_BIN", &bin)];

    eprintln!("downs: {n} migrations on the Supabase platform, backstop downs ...");
    let (ours, out) = common::backstop_with(&dir, &url, &["downs", "--format", "json"], &env);
    let list: Vec<serde_json::Value> =
        serde_json::from_str::<serde_json::Value>(&out).expect("JSON").as_array().unwrap().clone();
    let count = |status: &str| list.iter().filter(|d| d["status"] == status).count();
    let unprovable: Vec<String> = list
        .iter()
        .filter(|d| d["status"] == "unprovable")
        .map(|d| format!("{}: {}", d["version"], d["notes"]))
        .collect();
    let backfills = steps.iter().filter(|s| s.backfill).count();

    common::backstop_with(&dir, &url, &["downs", "--write"], &env);
    eprintln!("downs: the same history with those downs, backstop rehearse --schema-only ...");
    let (rehearsal, out) =
        common::backstop_with(&dir, &url, &["rehearse", "--schema-only", "--format", "json"], &env);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
    let trips: Vec<&serde_json::Value> = json["steps"]
        .as_array()
        .map(|s| {
            s.iter()
                .filter(|s| s["name"].as_str().is_some_and(|n| n.starts_with("round trip")))
                .collect()
        })
        .unwrap_or_default();
    let trips_ok = trips.iter().filter(|s| s["ok"] == true).count();
    let failed: Vec<String> = trips
        .iter()
        .filter(|s| s["ok"] != true)
        .map(|s| {
            format!("{}: {}", s["name"].as_str().unwrap_or(""), s["detail"].as_str().unwrap_or(""))
        })
        .collect();
    let verdict = format!(
        "{trips_ok} of {} round trips held, rehearsal {}",
        trips.len(),
        if json["ok"] == true { "passed" } else { "failed" }
    );

    let secs = |d: Duration| format!("{:.1}s", d.as_secs_f64());
    println!("{title}");
    println!(
        "  backstop downs from the target's platform: {} ({} computed, {} irreversible (the {backfills} UPDATE backfills), {} unprovable, of {}), {:.0} ms per migration",
        secs(ours),
        count("computed"),
        count("irreversible"),
        unprovable.len(),
        list.len(),
        ours.as_secs_f64() * 1000.0 / n as f64
    );
    for u in unprovable.iter().take(5) {
        println!("    unprovable {u}");
    }
    println!(
        "  backstop rehearse --schema-only of the same history with those downs: {} ({verdict}) -> downs takes {:.2}x the time of a rehearsal",
        secs(rehearsal),
        ours.as_secs_f64() / rehearsal.as_secs_f64()
    );
    for f in failed.iter().take(3) {
        println!("    rehearse: {f}");
    }
}
