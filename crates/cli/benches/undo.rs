//! A true "reverted", measured on the default path a user runs (every
//! default gate on: the check, the verified backup, every down proved),
//! on a golang-migrate-style history of 300 pairs with authored downs
//! (`bench/history.rs`: views on views, plpgsql, enums, data backfills),
//! each figure against its reference in the same run on one throwaway
//! cluster:
//!
//! 1. the first `migrate` of the whole history, every down proved by
//!    migrate itself: goal no slower than `psql -f` per file;
//! 2. the deploy of one new migration with an authored down on top of it:
//!    goal at most 1 s beside the backup gate's own time (printed beside);
//! 3. `rollback` of that migration, and of the whole history: the time of
//!    its own check before COMMIT (the schema read before and after the
//!    downs, and compared), goal at most 10 % of the rollback's time;
//! 4. `check` of one pending migration with the copy the last migrate
//!    kept (the pending migration run there first, its down proved):
//!    goal at most 1 s, beside the live check without that run (`[check]
//!    skip = ["BS405"]`). It plays first, on a database and project of
//!    its own, so that the copy it leaves does not serve the deploy of 2.
//!
//! Run: `cargo bench -p backstop-cli --bench undo` (BENCH_PAIRS sets the
//! history's length, default 300; BENCH_WRITE=DIR only writes the project
//! under DIR, with the one more migration in DIR/more, to profile one
//! command by hand).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use backstop_core::pg::cluster::Cluster;

mod common;
#[allow(dead_code)]
#[path = "../../../bench/history.rs"]
mod history;

const CONFIG: &str = "[migrations]\ndir = \"migrations\"\nlayout = \"golang-migrate\"\n";

fn main() -> std::process::ExitCode {
    common::exit("undo", run())
}

/// Writes the history as golang-migrate leaves it; the up files, in order.
fn write(dir: &Path, pairs: usize) -> anyhow::Result<Vec<PathBuf>> {
    let migrations = dir.join("migrations");
    std::fs::create_dir_all(&migrations)?;
    let mut ups = Vec::new();
    for i in 0..pairs {
        let (up, down) = history::migration(i);
        let stem = format!("{:06}_m{i}", i + 1);
        let path = migrations.join(format!("{stem}.up.sql"));
        std::fs::write(&path, up)?;
        std::fs::write(migrations.join(format!("{stem}.down.sql")), down)?;
        ups.push(path);
    }
    std::fs::write(dir.join("backstop.toml"), CONFIG)?;
    Ok(ups)
}

/// One more pair after the history, with its author's down.
fn one_more(dir: &Path, pairs: usize) -> anyhow::Result<PathBuf> {
    let stem = format!("{:06}_deploy_note", pairs + 1);
    let up = dir.join(format!("migrations/{stem}.up.sql"));
    std::fs::write(
        &up,
        "ALTER TABLE t0 ADD COLUMN deploy_note text;\nCREATE INDEX t0_deploy_note ON t0 (deploy_note);\n",
    )?;
    std::fs::write(
        dir.join(format!("migrations/{stem}.down.sql")),
        "DROP INDEX t0_deploy_note;\nALTER TABLE t0 DROP COLUMN deploy_note;\n",
    )?;
    Ok(up)
}

/// A time a line of the output gives after `marker` (`… in 0.5s`, `… in 12 ms`).
fn time_after(output: &str, line_has: &str, marker: &str) -> Option<Duration> {
    let line = output.lines().find(|l| l.contains(line_has))?;
    let rest = line.rsplit(marker).next()?.trim();
    let number: String = rest.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
    let value: f64 = number.parse().ok()?;
    let unit = rest[number.len()..].trim_start();
    Some(Duration::from_secs_f64(if unit.starts_with("ms") { value / 1000.0 } else { value }))
}

fn run() -> anyhow::Result<()> {
    let pairs = match std::env::var("BENCH_PAIRS") {
        Ok(p) => p.trim().parse::<usize>().ok().filter(|n| *n > 0).with_context(|| {
            format!("BENCH_PAIRS={p:?} is not a positive whole number; unset it or set e.g. 300")
        })?,
        Err(_) => 300,
    };
    if let Ok(dir) = std::env::var("BENCH_WRITE") {
        let dir = PathBuf::from(dir);
        write(&dir, pairs)?;
        let more = dir.join("more");
        write(&more, pairs)?;
        one_more(&more, pairs)?;
        println!(
            "wrote the project under {} (and with one more under {})",
            dir.display(),
            more.display()
        );
        return Ok(());
    }
    let cluster = Cluster::start()?;
    let root = tempfile::tempdir()?;
    println!(
        "PostgreSQL {}, every figure from one run on one throwaway cluster",
        cluster.bin().version
    );
    println!("history: {pairs} golang-migrate pairs with authored downs");
    let psql_dir = root.path().join("psql");
    let ups = write(&psql_dir, pairs)?;
    cluster.create_database("undo_psql", None)?;
    let psql = common::psql_files(&cluster, "undo_psql", &ups)?;

    let checked = root.path().join("checked");
    write(&checked, pairs)?;
    cluster.create_database("undo_check", None)?;
    let check_url = cluster.url("undo_check");
    common::backstop_said(&checked, &check_url, &["migrate"])?;
    one_more(&checked, pairs)?;
    let config = checked.join("backstop.toml");
    std::fs::write(&config, format!("{CONFIG}\n[check]\nskip = [\"BS405\"]\n"))?;
    let (without, _) = common::backstop_said(&checked, &check_url, &["check"])?;
    std::fs::write(&config, CONFIG)?;
    let (with, out) = common::backstop_said(&checked, &check_url, &["check"])?;
    anyhow::ensure!(
        out.contains("on a copy of the database's schema in ")
            && out.contains(": every statement runs"),
        "{out}"
    );
    println!(
        "  check of one pending migration, run first on a copy of the target's schema: {} \
         (goal <= 1s: {}); the live check without that run {}, so the run costs {}",
        common::secs(with),
        common::met(with <= Duration::from_secs(1)),
        common::secs(without),
        common::secs(with.saturating_sub(without))
    );

    let dir = root.path().join("project");
    write(&dir, pairs)?;
    cluster.create_database("undo", None)?;
    let url = cluster.url("undo");
    let (first, _) = common::backstop_said(&dir, &url, &["migrate"])?;
    println!(
        "  first migrate, every default gate on, every authored down proved: {} = {:.2}x psql -f \
         per file {} (goal <= 1x: {})",
        common::secs(first),
        common::ratio(first, psql),
        common::secs(psql),
        common::met(first <= psql)
    );

    one_more(&dir, pairs)?;
    let (deploy, out) = common::backstop_said(&dir, &url, &["migrate"])?;
    let backup = time_after(&out, " taken: ", " in ").unwrap_or_default();
    let own = deploy.saturating_sub(backup);
    println!(
        "  deploy of one migration with an authored down: {} with the backup gate's {} = {} \
         beside the backup (goal <= 1s: {})",
        common::secs(deploy),
        common::secs(backup),
        common::secs(own),
        common::met(own <= Duration::from_secs(1))
    );

    for (what, args) in [
        ("rollback of that migration", vec!["rollback", "--yes"]),
        ("rollback of the whole history", vec!["rollback", "--to", "start", "--yes"]),
    ] {
        let (took, out) = common::backstop_said(&dir, &url, &args)?;
        let check = time_after(&out, "compared on the database before COMMIT", "compared in ")
            .context("the rollback said no check time")?;
        println!(
            "  {what}: {}, its own check {} ms = {:.1} % of it (goal <= 10 %: {})",
            common::secs(took),
            check.as_millis(),
            100.0 * common::ratio(check, took),
            common::met(common::ratio(check, took) <= 0.10)
        );
    }
    Ok(())
}
