//! Benchmark (not a test): what Backstop's guards cost on a real migration.
//!
//! On a throwaway cluster with a 1,000,000-row table, times the release
//! `backstop migrate` against `psql -1 -f` of the same SQL (add a column and
//! an index), alternating which goes first, undoing the migration between
//! runs (untimed). Prints each tool's median and min, the ratio of medians
//! and whether the target holds: backstop median <= 1.10 x psql median +
//! 150 ms. Exits 0 whether or not the target is met, non-zero if a run fails.
//!
//! The guards are measured with the check gate off (`[check] required =
//! false`); the gate's own cost is printed last, as the time of `backstop
//! check` on the same pending migration against the same database.
//!
//! `cargo bench -p backstop-cli --bench migrate_overhead`; `BENCH_ROUNDS`
//! sets the number of rounds (default 7).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _};
use backstop_core::pg::cluster::Cluster;

const DATABASE: &str = "bench";
const ROWS: u32 = 1_000_000;
const DEFAULT_ROUNDS: usize = 7;
const TARGET_RATIO: f64 = 1.10;
const TARGET_SLACK: Duration = Duration::from_millis(150);

const UP_SQL: &str = "ALTER TABLE items ADD COLUMN note text;\n\
                      CREATE INDEX items_created_at_idx ON items (created_at);\n";
const DOWN_SQL: &str = "DROP INDEX items_created_at_idx;\n\
                        ALTER TABLE items DROP COLUMN note;\n";

/// The realistic table shared with the other benchmarks (bench/items.sql).
fn seed_sql() -> String {
    include_str!("../../../bench/items.sql")
        .replace("{rows}", &ROWS.to_string())
        .replace("{desc_repeats}", "6")
        .replace("{desc_spread}", "170")
        .replace(
            "{extra_attrs}",
            ",\n           'dims', jsonb_build_object('w', g % 100, 'h', (g / 7) % 50)",
        )
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("migrate_overhead: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The two contenders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tool {
    Backstop,
    Psql,
}

impl Tool {
    fn label(self) -> &'static str {
        match self {
            Tool::Backstop => "backstop migrate",
            Tool::Psql => "psql -1 -f",
        }
    }
}

/// Everything a run needs: where the files are, how to reach the database.
/// Declared after the cluster in `run`, so its session ends before the
/// cluster stops.
struct Bench {
    client: postgres::Client,
    url: String,
    work: PathBuf,
    psql: PathBuf,
}

fn run() -> anyhow::Result<()> {
    let rounds = rounds()?;
    let cluster = Cluster::start().context("starting a throwaway PostgreSQL cluster")?;
    let psql = {
        let bundled = cluster.bin().tool("psql");
        if bundled.is_file() {
            bundled
        } else {
            PathBuf::from("psql")
        }
    };
    cluster.create_database(DATABASE, None).context("creating the benchmark database")?;
    let url = cluster.url(DATABASE);
    let mut client = cluster.connect(DATABASE).context("connecting to the benchmark database")?;

    eprintln!("migrate_overhead: building a {ROWS}-row table...");
    let started = Instant::now();
    client.batch_execute(&seed_sql()).context("filling the items table")?;
    client.batch_execute("VACUUM ANALYZE items").context("vacuuming the items table")?;
    let size: String = client
        .query_one("SELECT pg_size_pretty(pg_total_relation_size('items'))", &[])
        .context("measuring the items table")?
        .get(0);
    eprintln!(
        "migrate_overhead: items has {ROWS} rows, {size}, built in {}",
        secs(started.elapsed())
    );

    let work = tempfile::Builder::new()
        .prefix("backstop-bench-")
        .tempdir()
        .context("creating the benchmark work dir")?;
    write_files(work.path())?;
    let mut bench = Bench { client, url, work: work.path().to_path_buf(), psql };

    // One untimed run of each: creates backstop's history schema (a one-off
    // on a database's first migrate) and warms caches for both tools.
    for tool in [Tool::Backstop, Tool::Psql] {
        bench.apply(tool).with_context(|| format!("warm-up run of {}", tool.label()))?;
        bench.undo(tool).with_context(|| format!("undoing the warm-up of {}", tool.label()))?;
    }

    let mut backstop = Vec::with_capacity(rounds);
    let mut psql = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let order = if round % 2 == 0 {
            [Tool::Backstop, Tool::Psql]
        } else {
            [Tool::Psql, Tool::Backstop]
        };
        for tool in order {
            let took = bench
                .apply(tool)
                .with_context(|| format!("round {} of {}", round + 1, tool.label()))?;
            bench
                .undo(tool)
                .with_context(|| format!("undoing round {} of {}", round + 1, tool.label()))?;
            eprintln!("  round {}/{rounds}: {:<16} {}", round + 1, tool.label(), secs(took));
            match tool {
                Tool::Backstop => backstop.push(took),
                Tool::Psql => psql.push(took),
            }
        }
    }

    let (b_med, b_min) = (median(&backstop), min(&backstop));
    let (p_med, p_min) = (median(&psql), min(&psql));
    let ratio = b_med.as_secs_f64() / p_med.as_secs_f64();
    let allowed = p_med.mul_f64(TARGET_RATIO) + TARGET_SLACK;
    let met = b_med <= allowed;
    println!("migrate_overhead: {rounds} rounds, alternating order, after one warm-up run each");
    println!("  backstop migrate: median {}, min {}", secs(b_med), secs(b_min));
    println!("  psql -1 -f:       median {}, min {}", secs(p_med), secs(p_min));
    println!(
        "  overhead: {:+.0} ms; allowed: backstop median <= {}",
        (b_med.as_secs_f64() - p_med.as_secs_f64()) * 1000.0,
        secs(allowed)
    );
    println!(
        "migrate 1M rows: backstop median {}, psql -1 -f median {}, ratio {ratio:.2}x \
         (target <= 1.10x + 150ms: {})",
        secs(b_med),
        secs(p_med),
        if met { "met" } else { "NOT met" }
    );

    // The check gate's own figure: the same assessment `migrate` makes
    // under its lock (analysis plus the live catalog look-ups), as
    // `backstop check` of the pending migration.
    let mut checks = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let started = Instant::now();
        let out = bench
            .backstop("check")
            .args(["--format", "json"])
            .output()
            .context("running backstop check")?;
        let took = started.elapsed();
        ensure!(
            out.status.code() == Some(0),
            "backstop check exited {:?} in round {}: {}",
            out.status.code(),
            round + 1,
            String::from_utf8_lossy(&out.stderr)
        );
        checks.push(took);
    }
    println!(
        "check gate on the same migration (backstop check, live): median {}, min {}",
        secs(median(&checks)),
        secs(min(&checks))
    );
    Ok(())
}

fn rounds() -> anyhow::Result<usize> {
    match std::env::var("BENCH_ROUNDS") {
        Err(std::env::VarError::NotPresent) => Ok(DEFAULT_ROUNDS),
        Err(e) => Err(e).context("reading BENCH_ROUNDS"),
        Ok(text) => match text.trim().parse::<usize>() {
            Ok(n) if n >= 1 => Ok(n),
            _ => bail!("BENCH_ROUNDS={text:?} is not a positive whole number; unset it or set e.g. BENCH_ROUNDS=7"),
        },
    }
}

/// The migration both ways: a backstop folder and a plain file for psql.
fn write_files(work: &Path) -> anyhow::Result<()> {
    let folder = work.join("migrations/1_add_note");
    std::fs::create_dir_all(&folder).with_context(|| format!("creating {}", folder.display()))?;
    for (path, text) in [
        // The guards' cost alone: gates (the risk check, the backup) have their own figures.
        (
            work.join("backstop.toml"),
            "[migrations]\ndir = \"migrations\"\n\n[check]\nrequired = false\n\n[backup]\nrequired = false\n",
        ),
        (folder.join("up.sql"), UP_SQL),
        (folder.join("down.sql"), DOWN_SQL),
        (work.join("migration.sql"), UP_SQL),
    ] {
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

impl Bench {
    fn backstop(&self, subcommand: &str) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_backstop"));
        cmd.arg(subcommand).env("DATABASE_URL", &self.url).current_dir(&self.work);
        clean_env(&mut cmd);
        cmd
    }

    fn psql(&self) -> Command {
        let mut cmd = Command::new(&self.psql);
        cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(&self.url)
            .current_dir(&self.work);
        clean_env(&mut cmd);
        cmd
    }

    /// Runs the migration with `tool` from a checkpointed, unmigrated
    /// state; returns the wall time of the process, start to exit.
    fn apply(&mut self, tool: Tool) -> anyhow::Result<Duration> {
        ensure!(!self.applied()?, "the migration is already applied before the run");
        // Start each run with no dirty buffers to flush, so a checkpoint
        // does not land in one tool's run and not the other's.
        self.client.batch_execute("CHECKPOINT").context("running CHECKPOINT")?;
        let mut cmd = match tool {
            Tool::Backstop => self.backstop("migrate"),
            Tool::Psql => {
                let mut cmd = self.psql();
                cmd.args(["-1", "-f", "migration.sql"]);
                cmd
            }
        };
        let started = Instant::now();
        let out = cmd.output().with_context(|| format!("running {}", tool.label()))?;
        let took = started.elapsed();
        check(&out, tool.label())?;
        ensure!(
            self.applied()?,
            "{} exited 0 but the column items.note or its index is missing",
            tool.label()
        );
        Ok(took)
    }

    /// Takes the migration back the way the tool would (untimed).
    fn undo(&mut self, tool: Tool) -> anyhow::Result<()> {
        let (mut cmd, label) = match tool {
            Tool::Backstop => (self.backstop("rollback"), "backstop rollback"),
            Tool::Psql => {
                let mut cmd = self.psql();
                cmd.arg("-1").arg("-c").arg(DOWN_SQL);
                (cmd, "psql -c <down>")
            }
        };
        let out = cmd.output().with_context(|| format!("running {label}"))?;
        check(&out, label)?;
        ensure!(!self.applied()?, "{label} exited 0 but items.note or its index is still there");
        Ok(())
    }

    /// Whether both the column and the index exist (and not one of them).
    fn applied(&mut self) -> anyhow::Result<bool> {
        let row = self
            .client
            .query_one(
                "SELECT EXISTS (SELECT FROM pg_attribute
                                 WHERE attrelid = 'items'::regclass AND attname = 'note'
                                   AND NOT attisdropped),
                        to_regclass('items_created_at_idx') IS NOT NULL",
                &[],
            )
            .context("checking for items.note and items_created_at_idx")?;
        let (column, index): (bool, bool) = (row.get(0), row.get(1));
        ensure!(
            column == index,
            "half a migration: column items.note {}, index items_created_at_idx {}",
            if column { "exists" } else { "missing" },
            if index { "exists" } else { "missing" }
        );
        Ok(column)
    }
}

/// Neither tool may pick up the caller's PG* settings.
fn clean_env(cmd: &mut Command) {
    for var in ["PGDATA", "PGPORT", "PGHOST", "PGUSER", "PGPASSWORD", "PGDATABASE", "PGOPTIONS"] {
        cmd.env_remove(var);
    }
}

fn check(out: &std::process::Output, label: &str) -> anyhow::Result<()> {
    if out.status.success() {
        return Ok(());
    }
    bail!(
        "{label} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn median(times: &[Duration]) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort();
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2
    }
}

fn min(times: &[Duration]) -> Duration {
    times.iter().copied().min().unwrap_or_default()
}

fn secs(d: Duration) -> String {
    format!("{:.3}s", d.as_secs_f64())
}
