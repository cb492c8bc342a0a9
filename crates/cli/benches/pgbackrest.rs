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
    let t = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_backstop"))
        .arg("migrate")
        .args(args)
        .current_dir(dir)
        .env("DATABASE_URL", url)
        .env_remove("BACKSTOP_CONFIG")
        .output()
        .context("running backstop")?;
    let took = t.elapsed();
    if !out.status.success() {
        bail!(
            "backstop migrate {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(took)
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
    Ok(())
}
