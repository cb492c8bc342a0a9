//! Benchmark (not a test): reading and parsing a migrations folder of
//! 1,000 generated migrations (`bench/history.rs`: tables, views,
//! functions, triggers, enums, indexes, constraints, backfills; up and
//! down), written once in every layout Backstop reads. Prints each
//! layout's median over the rounds against the target of 300 ms on 2
//! cores, and beside it the cost of reading the same files without parsing
//! them, so the parser's share is plain.
//!
//! `cargo bench -p backstop-core --bench source_load`; `BENCH_MIGRATIONS`
//! sets the count (default 1000), `BENCH_ROUNDS` the rounds (default 7).

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use backstop_core::source::{self, Layout};

// The planted downs are the rehearse benchmark's; this one reads the history.
#[allow(dead_code)]
#[path = "../../../bench/history.rs"]
mod history;

const TARGET: Duration = Duration::from_millis(300);

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// Writes migration `i` of the history as `layout` lays it out.
fn write_migration(dir: &Path, layout: Layout, i: usize, plan: &mut String) {
    let (up, down) = history::migration(i);
    let stamp = 20_200_101_000_000u64 + i as u64 * 100;
    match layout {
        Layout::Diesel | Layout::Hasura => {
            let d = dir.join(format!("{stamp}_m{i}"));
            write(&d.join("up.sql"), &up);
            write(&d.join("down.sql"), &down);
        }
        Layout::Sqlx => {
            write(&dir.join(format!("{stamp}_m{i}.up.sql")), &up);
            write(&dir.join(format!("{stamp}_m{i}.down.sql")), &down);
        }
        Layout::GolangMigrate => {
            write(&dir.join(format!("{:06}_m{i}.up.sql", i + 1)), &format!("BEGIN;\n{up}\nCOMMIT;\n"));
            write(&dir.join(format!("{:06}_m{i}.down.sql", i + 1)), &down);
        }
        Layout::Dbmate => write(
            &dir.join(format!("{stamp}_m{i}.sql")),
            &format!("-- migrate:up\n{up}\n\n-- migrate:down\n{down}\n"),
        ),
        Layout::NodePgMigrate => write(
            &dir.join(format!("{}_m{i}.sql", 1_700_000_000_000u64 + i as u64)),
            &format!("-- Up Migration\n{up}\n\n-- Down Migration\n{down}\n"),
        ),
        Layout::Goose => write(
            &dir.join(format!("{:05}_m{i}.sql", i + 1)),
            &format!("-- +goose Up\n-- +goose StatementBegin\n{up}\n-- +goose StatementEnd\n\n-- +goose Down\n{down}\n"),
        ),
        Layout::Flyway => {
            write(&dir.join(format!("V{}__m{i}.sql", i + 1)), &up);
            write(&dir.join(format!("U{}__m{i}.sql", i + 1)), &down);
        }
        Layout::Sqitch => {
            write(&dir.join(format!("deploy/m{i}.sql")), &format!("BEGIN;\n{up}\nCOMMIT;\n"));
            write(&dir.join(format!("revert/m{i}.sql")), &down);
            let _ = writeln!(plan, "m{i} 2020-01-01T00:00:00Z Bench <bench@example.com> # migration {i}");
        }
        // Atlas's files; their atlas.sum is written once all are there.
        Layout::Atlas => write(&dir.join(format!("{stamp}_m{i}.sql")), &up),
        // graphile-migrate's committed files, chained by their headers
        // (each hash read and checked; the bench's are allowed to differ).
        Layout::GraphileMigrate => {
            let previous = if i == 0 { "-".to_string() } else { format!("sha1:{:040}", i - 1) };
            write(
                &dir.join(format!("committed/{:06}.sql", i + 1)),
                &format!("--! Previous: {previous}\n--! Hash: sha1:{i:040}\n--! AllowInvalidHash\n\n{up}\n"),
            );
        }
        // The up-only layouts: in a folder named as the tool names it.
        Layout::Supabase => write(&dir.join(format!("migrations/{stamp}_m{i}.sql")), &up),
        Layout::Prisma => write(&dir.join(format!("migrations/{stamp}_m{i}/migration.sql")), &up),
        Layout::Drizzle => {
            write(&dir.join(format!("{i:04}_m{i}.sql")), &up);
            let comma = if i == 0 { "" } else { "," };
            let when = 1_600_000_000_000u64 + i as u64;
            let _ = write!(
                plan,
                "{comma}\n{{\"idx\":{i},\"version\":\"7\",\"when\":{when},\"tag\":\"{i:04}_m{i}\",\"breakpoints\":true}}"
            );
        }
    }
}

fn median(mut d: Vec<Duration>) -> Duration {
    d.sort();
    d[d.len() / 2]
}

/// Every file under `dir`, read whole: the floor any reader pays.
fn read_all(dir: &Path) -> usize {
    let mut bytes = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        bytes += if path.is_dir() { read_all(&path) } else { std::fs::read(&path).unwrap().len() };
    }
    bytes
}

fn main() {
    let n = env_num("BENCH_MIGRATIONS", 1000);
    let rounds = env_num("BENCH_ROUNDS", 7).max(1);
    let tmp = tempfile::tempdir().unwrap();
    println!(
        "source load bench: {n} migrations per layout, {rounds} round(s), median; target {} ms",
        TARGET.as_millis()
    );
    let mut worst = Duration::ZERO;
    for layout in Layout::ALL {
        let dir = tmp.path().join(layout.name());
        let mut plan = match layout {
            Layout::Sqitch => String::from("%syntax-version=1.0.0\n%project=bench\n\n"),
            _ => String::new(),
        };
        for i in 0..n {
            write_migration(&dir, layout, i, &mut plan);
        }
        if layout == Layout::Sqitch {
            write(&dir.join("sqitch.plan"), &plan);
        }
        if layout == Layout::Atlas {
            write(&dir.join(source::atlas::SUM), &source::atlas::sum_file(&dir).unwrap());
        }
        if layout == Layout::Drizzle {
            let journal = format!(
                "{{\"version\":\"7\",\"dialect\":\"postgresql\",\"entries\":[{plan}\n]}}\n"
            );
            write(&dir.join("meta/_journal.json"), &journal);
        }
        let mut loads = Vec::new();
        let mut reads = Vec::new();
        let mut statements = 0;
        for _ in 0..rounds {
            let t = Instant::now();
            let bytes = read_all(&dir);
            reads.push(t.elapsed());
            assert!(bytes > 0);
            let t = Instant::now();
            let folder = source::load(&dir, None).expect("the generated folder reads");
            loads.push(t.elapsed());
            assert_eq!(folder.layout, layout);
            assert_eq!(folder.migrations.len(), n);
            let problems: Vec<_> = folder.problems().map(|(_, p)| p.to_string()).collect();
            assert!(problems.is_empty(), "{layout}: {problems:?}");
            statements = folder
                .migrations
                .iter()
                .map(|m| m.up.statements.len() + m.down.as_ref().map_or(0, |d| d.statements.len()))
                .sum();
        }
        let load = median(loads);
        worst = worst.max(load);
        println!(
            "  {:<16} {:>6.1} ms  ({statements} statements; reading the files alone {:.1} ms)  {}",
            layout.name(),
            load.as_secs_f64() * 1000.0,
            median(reads).as_secs_f64() * 1000.0,
            if load <= TARGET { "target met" } else { "target NOT met" }
        );
    }
    println!(
        "slowest layout: {:.1} ms against the target of {} ms",
        worst.as_secs_f64() * 1000.0,
        TARGET.as_millis()
    );
}
