//! Benchmark (not a test): the backup gate in front of `migrate` with
//! pgBackRest against the gate with `pg_dump`, on a pgbench database with
//! realistic rows (scale from BENCH_SCALE, default 200: 20,000,000 accounts)
//! in a throwaway cluster archiving its WAL into a local pgBackRest
//! repository with one full backup.
//!
//! The same trivial migration is applied three ways, one after the other:
//! with `engine = "pgbackrest"` (stanza check, archiving check, a restore
//! point archived), with `engine = "pg_dump"` (a verified dump), and with
//! `--no-backup`; each gate's time is its run minus the ungated one.
//! Targets: the pgBackRest gate under 5 s and at least 50x faster than the
//! dump.
//!
//! Then what the restore point buys back, each against its reference in
//! the same run: the method B restore of the point (pgBackRest restore
//! into a new data directory, recovery to the point, verification, the
//! swap) against `pg_restore -j2` of the pg_dump gate's dump into an empty
//! database; and the rehearsal copy (`backup verify --restore`: recovery
//! of the point into a throwaway cluster, what `rehearse --from-backup`
//! does) against a template copy (`CREATE DATABASE … TEMPLATE`).
//!
//! `cargo bench -p backstop-cli --bench pgbackrest` (needs pgBackRest:
//! `.ci/tools/pgbackrest.sh`).

use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use common::archived::Archived;
use common::secs;

mod common;

const DATABASE: &str = "bench";

fn main() -> ExitCode {
    if std::env::args().any(|a| a == "--list") {
        return ExitCode::SUCCESS;
    }
    common::exit("pgbackrest", run())
}

/// `backstop migrate ARGS` in `dir`; how long it took.
fn migrate(dir: &Path, url: &str, args: &[&str]) -> anyhow::Result<Duration> {
    let all: Vec<&str> = std::iter::once("migrate").chain(args.iter().copied()).collect();
    common::backstop_ok(dir, url, &all)
}

fn run() -> anyhow::Result<()> {
    let scale: u32 = match std::env::var("BENCH_SCALE") {
        Ok(s) => s.trim().parse().context("BENCH_SCALE is not a whole number")?,
        Err(_) => 200,
    };
    eprintln!("pgbackrest bench: pgbench -i -s {scale} with realistic accounts, archiving, a full backup...");
    let t = Instant::now();
    let mut size = String::new();
    let archived = Archived::start(|cluster| {
        cluster.create_database(DATABASE, None)?;
        let (_, s) = common::pgbench_realistic(cluster, DATABASE, scale)?;
        size = s;
        Ok(())
    })?;
    eprintln!("pgbackrest bench: database {size}, built and backed up in {}", secs(t.elapsed()));
    let work = tempfile::Builder::new().prefix("backstop-bench-pgbackrest-").tempdir()?;
    let dir = work.path();
    let url = archived.cluster.url(DATABASE);
    let config = |engine: &str| {
        format!(
            "[migrations]\ndir = \"migrations\"\n\n[backup]\ndir = \"backups\"\njobs = 2\nengine = \"{engine}\"\n\
             stanza = \"main\"\nconfig = \"{}\"\nmax_age = \"1d\"\n",
            archived.config().display()
        )
    };
    let step = |n: u32| -> anyhow::Result<()> {
        let m = dir.join(format!("migrations/{n:03}_gate"));
        std::fs::create_dir_all(&m)?;
        std::fs::write(m.join("up.sql"), format!("CREATE TABLE gate_{n} (id int);"))?;
        std::fs::write(m.join("down.sql"), format!("DROP TABLE gate_{n};"))?;
        Ok(())
    };

    std::fs::write(dir.join("backstop.toml"), config("pgbackrest"))?;
    step(1)?;
    eprintln!("pgbackrest bench: migrate, pgBackRest gate...");
    let with_pgbackrest = migrate(dir, &url, &[])?;
    std::fs::write(dir.join("backstop.toml"), config("pg_dump"))?;
    step(2)?;
    eprintln!("pgbackrest bench: migrate, pg_dump gate...");
    let with_dump = migrate(dir, &url, &[])?;
    step(3)?;
    let ungated = migrate(dir, &url, &["--no-backup", "benchmark baseline"])?;

    let gate = |d: Duration| d.saturating_sub(ungated).as_secs_f64().max(0.001);
    let (ours, dump) = (gate(with_pgbackrest), gate(with_dump));
    let ratio = dump / ours;
    println!(
        "backup gate before migrate, pgbench scale {scale} ({size}): pgBackRest {ours:.2}s (target < 5s: {}), \
         pg_dump {dump:.1}s: {ratio:.0}x faster (target 50x: {}); migrate without a gate {:.2}s",
        if ours < 5.0 { "met" } else { "NOT met" },
        if ratio >= 50.0 { "met" } else { "NOT met" },
        ungated.as_secs_f64()
    );
    restores(&archived, dir, &url, scale, &size)
}

/// The id of the newest store entry of `kind`.
fn entry(dir: &Path, url: &str, kind: &str) -> anyhow::Result<String> {
    let (_, out) = common::backstop(dir, url, &["backup", "list", "--format", "json"]);
    let list: serde_json::Value = serde_json::from_str(&out)?;
    let ids = list.as_array().context("backup list is a list")?.iter();
    ids.filter(|e| e["kind"] == kind)
        .filter_map(|e| e["id"].as_str().map(str::to_string))
        .max()
        .with_context(|| format!("no {kind} entry in {out}"))
}

/// The restore point against `pg_restore -j2`, the rehearsal copy
/// against a template copy.
fn restores(
    archived: &Archived,
    dir: &Path,
    url: &str,
    scale: u32,
    size: &str,
) -> anyhow::Result<()> {
    let cluster = &archived.cluster;
    let point = entry(dir, url, "restore_point")?;
    let dump = entry(dir, url, "dump")?;

    eprintln!("pgbackrest bench: rehearsal copy, recovery into a throwaway cluster...");
    let (recovery, out) = common::backstop(dir, url, &["backup", "verify", &point, "--restore"]);
    if !out.contains("recovered to") {
        bail!("backup verify --restore did not recover the point:\n{out}");
    }
    eprintln!("pgbackrest bench: template copy...");
    let mut admin = cluster.connect("postgres")?;
    let t = Instant::now();
    admin.batch_execute(&format!("CREATE DATABASE bench_template TEMPLATE {DATABASE}"))?;
    let template = t.elapsed();
    admin.batch_execute("DROP DATABASE bench_template")?;

    eprintln!("pgbackrest bench: pg_restore -j2 of the pg_dump gate's dump...");
    admin.batch_execute("CREATE DATABASE bench_restored TEMPLATE template0")?;
    let mut pg_restore = Command::new(cluster.bin().tool("pg_restore"));
    common::clean_env(&mut pg_restore);
    pg_restore
        .args(["-j2", "--no-owner", "-d"])
        .arg(cluster.url("bench_restored"))
        .arg(dir.join("backups").join(&dump).join("dump"));
    let t = Instant::now();
    common::check(pg_restore.output().context("running pg_restore")?, "pg_restore")?;
    let logical = t.elapsed();
    admin.batch_execute("DROP DATABASE bench_restored")?;
    drop(admin);

    eprintln!("pgbackrest bench: method B restore of the point...");
    let (physical, out) =
        common::backstop(dir, url, &["restore", &point, "--yes", "--whole-cluster"]);
    if !out.contains("kept whole in") {
        bail!("restore of the point did not finish:\n{out}");
    }
    println!(
        "method B restore, pgbench scale {scale} ({size}): restore point {:.1}s (pgBackRest \
         restore, recovery, verification, swap), pg_restore -j2 of a dump {:.1}s: {:.2}x",
        physical.as_secs_f64(),
        logical.as_secs_f64(),
        logical.as_secs_f64() / physical.as_secs_f64()
    );
    println!(
        "rehearsal copy, pgbench scale {scale} ({size}): recovery of the point into a throwaway \
         cluster {:.1}s, template copy {:.1}s on the production server: {:.2}x",
        recovery.as_secs_f64(),
        template.as_secs_f64(),
        template.as_secs_f64() / recovery.as_secs_f64()
    );
    Ok(())
}
