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
//!
//! Run: `cargo bench -p backstop-cli --bench downs`
//! (BENCH_MIGRATIONS sets the history's length, default 300.)

use std::path::Path;
use std::time::Duration;

use backstop_core::pg::cluster::Cluster;

mod common;
#[path = "../../../bench/history.rs"]
mod history;
use history::{migration, planted, Plant};

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
    let cluster = Cluster::start().expect("throwaway cluster");
    let work = tempfile::tempdir().unwrap();

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
    println!("computed downs, {n} up-only migrations (release build):");
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
}
