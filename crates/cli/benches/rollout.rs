//! Benchmark (not a test): a release carried to 200 tenant databases by
//! `backstop rollout` against a shell loop of `backstop migrate`, one
//! database after the other, each with every gate (the verified backup
//! being the bulk of a tenant's run).
//!
//! On a throwaway cluster, two sets of tenant databases are copied from one
//! template (the base migration applied by Backstop, 2,000 rows in its
//! table): the rollout takes set A in the waves of issue 36 (a canary of
//! 2, then 20, then the rest, `parallel` at a time), the loop takes set B
//! (`while read url; do DATABASE_URL=$url backstop migrate; done`), each
//! project with its own backups folder. Prints each time, the time per
//! database, and the ratio loop / rollout; the goal is 4x or more with
//! `parallel = 8` on 2 cores. Exits 0 whether or not the goal is met,
//! non-zero if a run fails. `rollout --undo` of set A is timed last, for
//! information.
//!
//! `cargo bench -p backstop-cli --bench rollout`; `BENCH_TENANTS` (default
//! 200) and `BENCH_PARALLEL` (default 8) change the fleet and the waves.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _};
use backstop_core::pg::cluster::Cluster;

const GOAL: f64 = 4.0;

const BASE_UP: &str =
    "create table accounts (id int primary key, balance int not null, note text);\n";
const LEDGER_UP: &str = "create table ledger (id bigserial primary key, \
                         account int not null references accounts (id), amount int not null);\n";
const CHECKED_UP: &str =
    "alter table accounts add constraint balance_nonnegative check (balance >= 0);\n";

fn main() -> std::process::ExitCode {
    common::exit("rollout", run())
}

fn env_num(name: &str, default: usize) -> anyhow::Result<usize> {
    match std::env::var(name) {
        Ok(s) => s.trim().parse::<usize>().ok().filter(|n| *n >= 1).with_context(|| {
            format!("{name}={s:?} is not a positive whole number; unset it or set e.g. {default}")
        }),
        Err(_) => Ok(default),
    }
}

/// A project folder with the release's three migrations (the base and
/// the two of the release) and `config`.
fn project(root: &Path, name: &str, config: &str) -> anyhow::Result<std::path::PathBuf> {
    let dir = root.join(name);
    for (stem, up, down) in [
        ("20260101000000_base", BASE_UP, "drop table accounts;\n"),
        ("20260201000000_ledger", LEDGER_UP, "drop table ledger;\n"),
        (
            "20260202000000_nonnegative",
            CHECKED_UP,
            "alter table accounts drop constraint balance_nonnegative;\n",
        ),
    ] {
        let m = dir.join("migrations").join(stem);
        std::fs::create_dir_all(&m)?;
        std::fs::write(m.join("up.sql"), up)?;
        std::fs::write(m.join("down.sql"), down)?;
    }
    std::fs::write(dir.join("backstop.toml"), config)?;
    Ok(dir)
}

fn backstop() -> Command {
    let binary =
        std::env::var("BENCH_BACKSTOP").unwrap_or_else(|_| env!("CARGO_BIN_EXE_backstop").into());
    let mut cmd = Command::new(binary);
    common::clean_env(&mut cmd);
    cmd.env_remove("BACKSTOP_CONFIG").env_remove("DATABASE_URL");
    cmd
}

/// Runs `cmd` to success; its time.
fn timed(cmd: &mut Command, label: &str) -> anyhow::Result<Duration> {
    let t = Instant::now();
    common::check(cmd.output().with_context(|| format!("running {label}"))?, label)?;
    Ok(t.elapsed())
}

fn run() -> anyhow::Result<()> {
    let tenants = env_num("BENCH_TENANTS", 200)?;
    let parallel = env_num("BENCH_PARALLEL", 8)?;
    let cluster = Cluster::start().context("starting a throwaway PostgreSQL cluster")?;
    let work = tempfile::Builder::new().prefix("backstop-bench-rollout-").tempdir()?;
    cluster.create_database("control", None)?;
    cluster.create_database("tenant_tpl", None)?;
    let template = project(work.path(), "template", "[migrations]\ndir = \"migrations\"\n")?;
    timed(
        backstop().current_dir(&template).env("DATABASE_URL", cluster.url("tenant_tpl")).args([
            "migrate",
            "--to",
            "20260101000000",
            "--no-backup",
            "the template",
        ]),
        "backstop migrate (template)",
    )?;
    cluster.connect("tenant_tpl")?.batch_execute(
        "insert into accounts select g, g % 1000, md5(g::text) from generate_series(1, 2000) g",
    )?;
    let mut control = cluster.connect("control")?;
    control.batch_execute("create table tenants (fleet text, name text, url text)")?;
    let started = Instant::now();
    let mut loop_urls = String::new();
    for fleet in ["a", "b"] {
        for i in 1..=tenants {
            let db = format!("{fleet}_{i:03}");
            cluster.create_database(&db, Some("tenant_tpl"))?;
            control.execute(
                "insert into tenants values ($1, $2, $3)",
                &[&fleet, &format!("{i:03}"), &cluster.url(&db)],
            )?;
            if fleet == "b" {
                loop_urls.push_str(&cluster.url(&db));
                loop_urls.push('\n');
            }
        }
    }
    eprintln!("{} tenant databases copied in {}", 2 * tenants, common::secs(started.elapsed()));
    let fleet = project(
        work.path(),
        "fleet",
        &format!(
            "[rollout]\ncontrol = \"${{CONTROL_URL}}\"\n\n[migrations]\ndir = \"migrations\"\n\n\
             [[targets]]\nname = \"tenant-{{name}}\"\n\
             query = \"select name, url from tenants where fleet = 'a' order by name\"\n\n\
             [[waves]]\nname = \"canary\"\ntargets = [\"tenant-*\"]\ncount = 2\n\n\
             [[waves]]\nname = \"early\"\ntargets = [\"tenant-*\"]\ncount = 20\nparallel = {parallel}\n\n\
             [[waves]]\nname = \"rest\"\ntargets = [\"tenant-*\"]\nparallel = {parallel}\n"
        ),
    )?;
    let each = project(work.path(), "each", "[migrations]\ndir = \"migrations\"\n")?;
    std::fs::write(each.join("urls.txt"), loop_urls)?;
    let control_url = cluster.url("control");
    let rollout = timed(
        backstop().current_dir(&fleet).env("CONTROL_URL", &control_url).args(["rollout"]),
        "backstop rollout",
    )?;
    let shell = timed(
        Command::new("sh").current_dir(&each).env("BACKSTOP", backstop().get_program()).args([
            "-c",
            "while read -r url; do DATABASE_URL=\"$url\" \"$BACKSTOP\" migrate >/dev/null 2>&1 \
             || { echo \"backstop migrate failed\" >&2; exit 1; }; done < urls.txt",
        ]),
        "the loop of backstop migrate",
    )?;
    let undo = timed(
        backstop().current_dir(&fleet).env("CONTROL_URL", &control_url).args(["rollout", "--undo"]),
        "backstop rollout --undo",
    )?;
    let mut check = cluster.connect("control")?;
    let done: i64 = check
        .query_one("select count(*) from backstop.rollout_targets where state = 'undone'", &[])?
        .get(0);
    ensure!(done as usize == tenants, "the undo took back {done} of {tenants} tenants");
    let per = |d: Duration| format!("{:.0} ms", d.as_secs_f64() * 1000.0 / tenants as f64);
    let ratio = shell.as_secs_f64() / rollout.as_secs_f64();
    println!(
        "{tenants} tenants, every gate on (check, verified pg_dump backup, freeze), {} cores:",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "  backstop rollout (waves 2, 20, rest; parallel = {parallel})  {:>7}  ({} a database)",
        common::secs(rollout),
        per(rollout)
    );
    println!(
        "  shell loop of backstop migrate                     {:>7}  ({} a database)",
        common::secs(shell),
        per(shell)
    );
    println!(
        "  ratio {ratio:.1}x (goal >= {GOAL}x: {})",
        if ratio >= GOAL { "met" } else { "NOT met" }
    );
    println!("  backstop rollout --undo                            {:>7}", common::secs(undo));
    Ok(())
}
