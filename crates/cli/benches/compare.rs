//! Benchmark (not a test): `backstop data compare` against reladiff (PyPI) on
//! the same pair of databases, on two throwaway clusters, with a table of
//! 10,000,000 realistic rows (text of many lengths, money, timestamps,
//! jsonb, booleans): (a) identical, (b) 100 updated and 10 deleted rows
//! scattered through it. reladiff runs comparing every column (`-c %`), and
//! once more with its default (the key only) to show what that misses.
//! Targets: at least 3 times faster than reladiff's all-columns run on both
//! pairs, every difference found.
//!
//! `cargo bench -p backstop-cli --bench compare`; `BENCH_ROWS` sets the
//! rows (default 10,000,000), `BENCH_KEY=uuid` keys them by uuid instead
//! of bigint. reladiff is installed into a cached venv by
//! `bench/reladiff.sh` when missing.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use backstop_core::pg::cluster::Cluster;
use common::{check, clean_env, secs};

mod common;

const DATABASE: &str = "bench";

/// The key of row `i` as SQL: a bigint, or with `BENCH_KEY=uuid` a uuid.
fn key_of(i: &str, uuid: bool) -> String {
    if uuid {
        format!("md5(({i})::text)::uuid")
    } else {
        format!("({i})::bigint")
    }
}

fn rows_sql(n: i64, uuid: bool) -> String {
    format!(
        "SELECT setseed(0.42);
         CREATE TABLE accounts AS
         SELECT {} AS id,
                left(md5(i::text) || md5((i * 7)::text) || md5((i * 13)::text), 12 + (i % 80)::int) AS note,
                round((random() * 100000)::numeric, 2) AS amount,
                timestamptz '2020-01-01 00:00:00+00' + random() * interval '5 years' AS seen_at,
                jsonb_build_object('plan', (ARRAY['free', 'pro', 'team', 'enterprise'])[1 + i % 4],
                                   'score', round((random() * 100)::numeric, 3),
                                   'tags', jsonb_build_array(left(md5((i * 3)::text), 6))) AS attrs,
                i % 3 <> 0 AS active
           FROM generate_series(1, {n}) i;
         ALTER TABLE accounts ADD PRIMARY KEY (id);",
        key_of("i", uuid)
    )
}

fn main() -> ExitCode {
    common::exit("compare", run())
}

/// The differing keys `backstop data compare --format json` found.
fn backstop_compare(a: &str, b: &str) -> anyhow::Result<(Duration, usize, String)> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_backstop"));
    clean_env(&mut cmd);
    cmd.args(["compare", "--source", a, "--target", b, "--format", "json"]);
    let t = Instant::now();
    let out = cmd.output().context("running backstop compare")?;
    let took = t.elapsed();
    if !matches!(out.status.code(), Some(0 | 1)) {
        bail!("backstop compare failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let found = json["tables"]
        .as_array()
        .map(|t| {
            t.iter()
                .map(|t| {
                    (t["missing"].as_u64().unwrap_or(0)
                        + t["extra"].as_u64().unwrap_or(0)
                        + t["different"].as_u64().unwrap_or(0)) as usize
                })
                .sum()
        })
        .unwrap_or(0);
    Ok((took, found, json["verdict"].as_str().unwrap_or("?").to_string()))
}

/// reladiff's run and the distinct keys it reported.
fn reladiff(a: &str, b: &str, all_columns: bool) -> anyhow::Result<(Duration, usize)> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/reladiff.sh");
    let mut cmd = Command::new(script);
    clean_env(&mut cmd);
    // Its console wraps lines at 80 columns, JSON included, when not on a terminal.
    cmd.env("COLUMNS", "100000");
    // reladiff knows only the postgresql:// scheme.
    let (a, b) = (
        a.replacen("postgres://", "postgresql://", 1),
        b.replacen("postgres://", "postgresql://", 1),
    );
    cmd.args([&a, "accounts", &b, "accounts", "-k", "id", "--json"]);
    if all_columns {
        cmd.args(["-c", "%"]);
    }
    let t = Instant::now();
    let out = check(cmd.output().context("running reladiff")?, "reladiff")?;
    let took = t.elapsed();
    // It exits 0 after logging an error, with no differences printed.
    if String::from_utf8_lossy(&out.stderr).contains("ERROR") {
        bail!("reladiff failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    if std::env::var_os("BENCH_DEBUG").is_some() {
        let shown =
            |b: &[u8]| String::from_utf8_lossy(b).lines().take(5).collect::<Vec<_>>().join("\n");
        eprintln!(
            "reladiff: {} line(s) of output; stdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout).lines().count(),
            shown(&out.stdout),
            shown(&out.stderr)
        );
    }
    let keys: BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v.get(1).and_then(|row| row.get(0)).map(|k| k.to_string()))
        .collect();
    Ok((took, keys.len()))
}

fn run() -> anyhow::Result<()> {
    let n: i64 = match std::env::var("BENCH_ROWS") {
        Ok(s) => s.trim().parse().ok().filter(|n| *n > 1000).with_context(|| {
            format!("BENCH_ROWS={s:?} is not a number above 1000; unset it or set e.g. 10000000")
        })?,
        Err(_) => 10_000_000,
    };
    let uuid = match std::env::var("BENCH_KEY").as_deref() {
        Ok("uuid") => true,
        Ok("bigint") | Err(_) => false,
        Ok(other) => bail!("BENCH_KEY={other:?}: write bigint (the default) or uuid"),
    };
    // reladiff first: an installation problem should show before the build.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/reladiff.sh");
    check(Command::new(&script).arg("--version").output()?, "bench/reladiff.sh")?;
    let (one, two) = (Cluster::start()?, Cluster::start()?);
    let t = Instant::now();
    for c in [&one, &two] {
        c.create_database(DATABASE, None)?;
        let mut db = c.connect(DATABASE)?;
        db.batch_execute(&rows_sql(n, uuid)).context("building the table")?;
        // On its own: VACUUM cannot run in the implicit transaction of a batch.
        db.batch_execute("VACUUM ANALYZE accounts").context("vacuuming")?;
    }
    let size: String = one
        .connect(DATABASE)?
        .query_one("select pg_size_pretty(pg_total_relation_size('accounts'))", &[])?
        .get(0);
    let key = if uuid { "uuid" } else { "bigint" };
    eprintln!(
        "compare bench: {n} rows ({size}, {key} key) on each of two clusters, built in {}",
        secs(t.elapsed())
    );
    let (a, b) = (one.url(DATABASE), two.url(DATABASE));

    let mut lines = Vec::new();
    for (label, expected) in [("identical", 0usize), ("100 updated, 10 deleted", 110)] {
        if expected > 0 {
            let step = n / 101;
            two.connect(DATABASE)?.batch_execute(&format!(
                "UPDATE accounts SET amount = amount + 0.01 WHERE id IN (SELECT {} FROM generate_series(1, 100) i);
                 DELETE FROM accounts WHERE id IN (SELECT {} FROM generate_series(1, 10) i);",
                key_of(&format!("i * {step} + 13"), uuid),
                key_of(&format!("i * {step} + 57"), uuid),
            ))?;
        }
        for c in [&one, &two] {
            c.connect("postgres")?.batch_execute("CHECKPOINT")?;
        }
        let (ours, found, verdict) = backstop_compare(&a, &b)?;
        eprintln!("  backstop compare: {} ({found} found, {verdict})", secs(ours));
        let (theirs, their_found) = reladiff(&a, &b, true)?;
        eprintln!("  reladiff -c %: {} ({their_found} found)", secs(theirs));
        let (key_only, key_found) = reladiff(&a, &b, false)?;
        eprintln!("  reladiff (key only): {} ({key_found} found)", secs(key_only));
        let ratio = theirs.as_secs_f64() / ours.as_secs_f64();
        lines.push(format!(
            "{label}: backstop compare {} ({found}/{expected} found), reladiff -c % {} ({their_found}/{expected} found): {ratio:.1}x faster (target 3x: {}); reladiff default (key only) {} ({key_found}/{expected} found)",
            secs(ours),
            secs(theirs),
            if ratio >= 3.0 && found == expected { "met" } else { "NOT met" },
            secs(key_only),
        ));
    }
    println!("compare bench: {n} rows ({size} per side, {key} key), two clusters, one run:");
    for l in lines {
        println!("  {l}");
    }
    Ok(())
}
