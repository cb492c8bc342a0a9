//! The rehearsal report in Markdown: what was rehearsed, on what copy,
//! each step and scenario with its time, the lock trace, round-trip
//! differences, lossy downs and the measured time to roll back. The text
//! is the template `report.md` beside this file, filled from the
//! [`Rehearsal`].

use minijinja::{context, Environment};
use serde::Serialize;

use super::lossy;
use super::outcome::{trip_counts, LockRow, Rehearsal, Scenario};

/// The report's template.
const TEMPLATE: &str = include_str!("report.md");

/// A round trip as its table row shows it: the outcome as the summary
/// writes it.
#[derive(Serialize)]
struct TripLine<'a> {
    version: &'a str,
    name: &'a str,
    outcome: &'static str,
    detail: &'a str,
}

/// A lock with what it blocks, in words.
#[derive(Serialize)]
struct LockLine<'a> {
    #[serde(flatten)]
    lock: &'a LockRow,
    blocks: &'static str,
}

/// A scenario with the rollback method it times.
#[derive(Serialize)]
struct ScenarioLine<'a> {
    #[serde(flatten)]
    scenario: &'a Scenario,
    method: &'static str,
}

fn mark(ok: bool) -> &'static str {
    if ok {
        "✓"
    } else {
        "✗"
    }
}

fn human_ms(ms: u64) -> String {
    crate::kit::duration::human(std::time::Duration::from_millis(ms))
}

fn human_bytes(b: i64) -> String {
    crate::kit::size::human(b.max(0) as u64)
}

/// A checksum shortened to 16 characters, as the table shows it.
fn short(checksum: &str) -> String {
    checksum.get(..16.min(checksum.len())).unwrap_or(checksum).to_string()
}

/// How much of the data the copy holds.
fn data_of(r: &Rehearsal) -> String {
    match (&r.copy.sample, r.copy.schema_only) {
        (_, true) => "schema only".to_string(),
        (Some(s), _) => format!("{}% sample", s.percent),
        (None, false) => "full".to_string(),
    }
}

/// Renders the report.
pub fn markdown(r: &Rehearsal) -> Result<String, minijinja::Error> {
    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.add_filter("cell", |text: &str| crate::kit::markdown::cell(text));
    env.add_filter("ms", human_ms);
    env.add_filter("mark", mark);
    env.add_filter("short", |checksum: &str| short(checksum));
    env.add_template("report.md", TEMPLATE)?;
    let trips: Vec<TripLine<'_>> = r
        .round_trip
        .migrations
        .iter()
        .map(|t| TripLine {
            version: &t.version,
            name: &t.name,
            outcome: t.class.label(),
            detail: &t.detail,
        })
        .collect();
    let locks: Vec<LockLine<'_>> =
        r.locks.iter().map(|lock| LockLine { lock, blocks: lock.blocks() }).collect();
    let scenarios: Vec<ScenarioLine<'_>> =
        r.scenarios.iter().map(|s| ScenarioLine { scenario: s, method: s.method() }).collect();
    // The time of all round trips, when there were any.
    let round_trips: Vec<u64> = r
        .steps
        .iter()
        .filter(|s| s.name.starts_with("round trip"))
        .map(|s| s.duration_ms)
        .collect();
    let round_trips_ms = (!round_trips.is_empty()).then(|| round_trips.iter().sum::<u64>());
    env.get_template("report.md")?.render(context! {
        r => r,
        verdict => if r.ok { "PASSED" } else { "FAILED" },
        started => r.started_at.format("%Y-%m-%d %H:%M:%S").to_string(),
        tested => r.started_at.format("%Y-%m-%d").to_string(),
        source_size => human_bytes(r.copy.source_size_bytes),
        method => r.copy.describe(),
        data => data_of(r),
        trip_counts => trip_counts(&r.round_trip.migrations),
        trips => trips,
        lossy => lossy::summary(&r.lossy),
        locks => locks,
        scenarios => scenarios,
        round_trips_ms => round_trips_ms,
    })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use crate::rehearse::{
        CopyInfo, Difference, LockRow, LossKind, Lossy, Method, MigrationTrip, Rehearsal,
        Rehearsed, RoundTrip, SampleInfo, Scenario, Step, TripClass,
    };

    fn step(name: &str, ok: bool, duration_ms: u64, detail: &str) -> Step {
        Step { name: name.into(), ok, duration_ms, detail: detail.into() }
    }

    fn trip(version: &str, class: TripClass, detail: &str) -> MigrationTrip {
        MigrationTrip {
            version: version.into(),
            name: format!("name | {version}"),
            class,
            detail: detail.into(),
            differences: Vec::new(),
            cosmetic: Vec::new(),
            duration_ms: 12,
        }
    }

    fn difference(message: &str) -> Difference {
        Difference { version: Some("2".into()), object: "table t".into(), message: message.into() }
    }

    /// A failed rehearsal that fills every part of the report.
    fn full() -> Rehearsal {
        Rehearsal {
            id: "20260107-120000-beef".into(),
            ok: false,
            started_at: chrono::Utc.with_ymd_and_hms(2026, 1, 7, 12, 0, 0).unwrap(),
            duration_ms: 83_450,
            copy: CopyInfo {
                method: Method::Sample,
                source: "postgres://app:***@db/app".into(),
                source_size_bytes: 5 * 1024 * 1024,
                schema_only: false,
                fallback_reason: None,
                backup_id: None,
                sample: Some(SampleInfo {
                    percent: 10.0,
                    rows: 1234,
                    whole_tables: vec!["backstop.applied".into()],
                }),
            },
            tables: 7,
            rows: 12_345,
            migrations: vec![
                Rehearsed {
                    version: "1".into(),
                    name: "add | pipe".into(),
                    checksum: "0123456789abcdef0123456789abcdef".into(),
                },
                Rehearsed { version: "2".into(), name: "short".into(), checksum: "abc".into() },
            ],
            key: "k3y".into(),
            steps: vec![
                step("copy", true, 1500, "dump into a throwaway cluster"),
                step("round trip 1", true, 40, "ok: restored"),
                step("round trip 2", false, 2, "defect: line one\nline two"),
            ],
            round_trip: RoundTrip {
                ok: false,
                migrations: vec![
                    trip("1", TripClass::Ok, "restored"),
                    trip("2", TripClass::Defect, "1 difference(s) | after"),
                ],
                differences: vec![difference("down.sql of 2 does not restore: table t")],
                cosmetic: vec![difference("down of 2: column position of t.a")],
            },
            scenarios: vec![
                Scenario {
                    name: "A".into(),
                    ok: true,
                    duration_ms: 30,
                    detail: "rolled back".into(),
                },
                Scenario { name: "B".into(), ok: false, duration_ms: 2500, detail: "a | b".into() },
                Scenario { name: "C".into(), ok: true, duration_ms: 61_000, detail: "done".into() },
                Scenario { name: "D".into(), ok: true, duration_ms: 0, detail: String::new() },
            ],
            lossy: vec![Lossy {
                version: "2".into(),
                kind: LossKind::PreExisting,
                object: "table users".into(),
                message: "rolling back 2 destroys data that existed before it".into(),
            }],
            locks: vec![
                LockRow {
                    version: "1".into(),
                    statement: 1,
                    sql: "ALTER TABLE t ADD | c int".into(),
                    relation: "public.t".into(),
                    mode: "AccessExclusiveLock".into(),
                    blocks_reads: true,
                    blocks_writes: true,
                    rewritten: true,
                    held_ms: 1200,
                },
                LockRow {
                    version: "2".into(),
                    statement: 3,
                    sql: "CREATE INDEX ON t (c)".into(),
                    relation: "public.t".into(),
                    mode: "ShareLock".into(),
                    blocks_reads: false,
                    blocks_writes: true,
                    rewritten: false,
                    held_ms: 5,
                },
                LockRow {
                    version: "2".into(),
                    statement: 4,
                    sql: "SELECT 1".into(),
                    relation: "public.u".into(),
                    mode: "AccessShareLock".into(),
                    blocks_reads: false,
                    blocks_writes: false,
                    rewritten: false,
                    held_ms: 0,
                },
            ],
            report: None,
        }
    }

    /// A passing rehearsal with nothing pending, on a schema-only copy.
    fn empty() -> Rehearsal {
        let mut r = full();
        r.ok = true;
        r.copy.method = Method::Template;
        r.copy.schema_only = true;
        r.migrations.clear();
        r.steps.truncate(1);
        r.round_trip = RoundTrip::default();
        r.scenarios.clear();
        r.lossy.clear();
        r.locks.clear();
        r
    }

    #[test]
    fn a_full_report_shows_every_part() {
        let md = super::markdown(&full()).unwrap();
        let lines: Vec<&str> = md.lines().collect();
        for expected in [
            "# Rehearsal 20260107-120000-beef: FAILED",
            "Run 2026-01-07 12:00:00 UTC, took 1 min 23 s. Last tested: 2026-01-07.",
            "| 1 | add \\| pipe | `0123456789abcdef` |",
            "Gate key: `k3y`",
            "- data: 10% sample",
            "- source: `postgres://app:***@db/app` (5.2 MB)",
            "| ✗ | round trip 2 | 2 ms | defect: line one<br>line two |",
            "| ✗ | B | 2.5 s | a \\| b |",
            "1 ok, 1 defect",
            "| 2 | name \\| 2 | defect | 1 difference(s) \\| after |",
            "- ✗ down.sql of 2 does not restore: table t",
            "- note: down of 2: column position of t.a",
            "- ⚠ rolling back 2 destroys data that existed before it",
            "| 1 | 1 | `ALTER TABLE t ADD \\| c int` | public.t | AccessExclusiveLock | reads and writes | yes | 1.2 s |",
            "| 2 | 4 | `SELECT 1` | public.u | AccessShareLock | - | no | 0 ms |",
            "- round trips (up, down, up) of all migrations: 42 ms",
            "- full rollback (export, down, restore) (scenario C): 1 min 1 s",
        ] {
            assert!(lines.contains(&expected), "missing {expected:?} in:\n{md}");
        }
        assert!(
            md.contains("## Steps\n\n| | step | time | detail |\n|---|---|---|---|\n| ✓ | copy |")
        );
        assert!(md.ends_with("- scenario (scenario D): 0 ms\n"), "{md}");
    }

    #[test]
    fn an_empty_report_says_nothing_was_pending() {
        let md = super::markdown(&empty()).unwrap();
        assert!(md.starts_with("# Rehearsal 20260107-120000-beef: PASSED\n\nRun "), "{md}");
        assert!(md.contains("## What was rehearsed\n\nNothing was pending.\n\n## The copy\n"));
        assert!(
            md.contains("- method: template copy on the source's server\n- data: schema only\n")
        );
        assert!(md.contains("|---|---|---|---|\n| | none | | nothing pending |\n"));
        assert!(md.contains("## Round trip (up → down → up)\n\nNothing was pending.\n\n## Lossy downs\n\nNone: no down drops"));
        assert!(md.contains("No locks on existing relations were traced.\n"));
        assert!(!md.contains("Gate key") && !md.contains("### "), "{md}");
        assert!(md.ends_with("## Time to roll back\n\n"), "{md}");
    }
}
