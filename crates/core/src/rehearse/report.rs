//! The rehearsal report in Markdown: what was rehearsed, on what copy,
//! each step and scenario with its time, the lock trace, round-trip
//! differences, lossy downs and the measured time to roll back. The text
//! is the template `report.md` beside this file, filled from the
//! [`Rehearsal`].

use minijinja::{context, Environment};
use serde::Serialize;

use super::lossy;
use super::outcome::{trip_counts, LockRow, Rehearsal, Scenario, Step};
use super::summary;

/// The report's template.
const TEMPLATE: &str = include_str!("report.md");

/// A migration that fails its round trip, as the summary and the
/// details show it.
#[derive(Serialize)]
struct Failing<'a> {
    version: &'a str,
    name: &'a str,
    label: String,
    outcome: &'static str,
    why: String,
    failure: &'a str,
    differences: Vec<&'a str>,
    definitions: &'a [super::outcome::DefinitionDiff],
    re_up: Option<&'a str>,
    fix: Option<String>,
}

/// A rehearsed migration with its outcome, for the table of them all.
#[derive(Serialize)]
struct Every<'a> {
    version: &'a str,
    name: &'a str,
    checksum: &'a str,
    outcome: &'static str,
    duration_ms: Option<u64>,
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

/// What kind of copy the rehearsal ran on, in a few words.
pub fn copy_kind(r: &Rehearsal) -> &'static str {
    match r.copy.method {
        super::Method::Template => "template copy",
        super::Method::Dump => "dumped copy",
        super::Method::Sample => "sampled copy",
        super::Method::Backup => "copy of a backup",
    }
}

/// How much of the data the copy holds.
fn data_of(r: &Rehearsal) -> String {
    match (&r.copy.sample, r.copy.schema_only) {
        (_, true) => "schema only".to_string(),
        (Some(s), _) => format!("{}% sample", s.percent),
        (None, false) => "full".to_string(),
    }
}

fn failing(r: &Rehearsal) -> Vec<Failing<'_>> {
    summary::failing(r)
        .into_iter()
        .map(|t| Failing {
            version: &t.version,
            name: &t.name,
            label: t.label(),
            outcome: t.class.label(),
            why: t.why(),
            failure: t.failure(),
            differences: t.differences.iter().map(|d| d.message.as_str()).collect(),
            definitions: &t.definitions,
            re_up: t.re_up(),
            fix: t.fix(),
        })
        .collect()
}

fn every(r: &Rehearsal) -> Vec<Every<'_>> {
    r.migrations
        .iter()
        .map(|m| {
            let trip = r.round_trip.migrations.iter().find(|t| t.version == m.version);
            Every {
                version: &m.version,
                name: &m.name,
                checksum: &m.checksum,
                outcome: trip.map_or("", |t| t.class.label()),
                duration_ms: trip.map(|t| t.duration_ms),
            }
        })
        .collect()
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
    let locks: Vec<LockLine<'_>> =
        r.locks.iter().map(|lock| LockLine { lock, blocks: lock.blocks() }).collect();
    let scenarios: Vec<ScenarioLine<'_>> =
        r.scenarios.iter().map(|s| ScenarioLine { scenario: s, method: s.method() }).collect();
    let (trip_steps, other_steps): (Vec<&Step>, Vec<&Step>) =
        r.steps.iter().partition(|s| s.name.starts_with("round trip"));
    // The time of all round trips, when there were any.
    let round_trips_ms =
        (!trip_steps.is_empty()).then(|| r.round_trip.took_ms(trip_steps.iter().copied()));
    let failing = failing(r);
    let fixable: Vec<&str> =
        failing.iter().filter(|t| t.fix.is_some()).map(|t| t.version).collect();
    env.get_template("report.md")?.render(context! {
        r => r,
        verdict => if r.ok { "PASSED" } else { "FAILED" },
        started => r.started_at.format("%Y-%m-%d %H:%M:%S").to_string(),
        tested => r.started_at.format("%Y-%m-%d").to_string(),
        source_size => human_bytes(r.copy.source_size_bytes),
        method => r.copy.describe(),
        copy_kind => copy_kind(r),
        data => data_of(r),
        trip_counts => trip_counts(&r.round_trip.migrations),
        failing => failing,
        fixable => fixable.join(" "),
        other_steps => other_steps,
        every => every(r),
        cosmetic => summary::cosmetic_line(r),
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
        CopyInfo, DefinitionDiff, Difference, LockRow, LossKind, Lossy, Method, MigrationTrip,
        Rehearsal, Rehearsed, RoundTrip, SampleInfo, Scenario, Split, Step, TripClass,
    };

    fn step(name: &str, ok: bool, duration_ms: u64, detail: &str) -> Step {
        Step { name: name.into(), ok, duration_ms, detail: detail.into() }
    }

    fn scenario(name: &str, ok: bool, duration_ms: u64, detail: &str) -> Scenario {
        Scenario {
            name: name.into(),
            ok,
            skipped: false,
            duration_ms,
            detail: detail.into(),
            splits: Vec::new(),
            left_in_place: Vec::new(),
        }
    }

    fn trip(version: &str, class: TripClass, detail: &str) -> MigrationTrip {
        MigrationTrip {
            version: version.into(),
            name: format!("name | {version}"),
            class,
            verdict: None,
            detail: detail.into(),
            differences: Vec::new(),
            relations: Vec::new(),
            definitions: Vec::new(),
            cosmetic: Vec::new(),
            added: Vec::new(),
            duration_ms: 12,
        }
    }

    fn difference(message: &str) -> Difference {
        Difference { version: Some("2".into()), object: "table t".into(), message: message.into() }
    }

    /// A failed rehearsal that fills every part of the report.
    fn full() -> Rehearsal {
        let mut defect = trip(
            "2",
            TripClass::Defect,
            "2 difference(s) | after; the up after it fails too: boom; `backstop downs 2` computes a proved fix",
        );
        defect.differences = vec![
            difference("table public.t (200 rows, 48 kB) with its 4 columns is gone: the up removes it and the down does not bring it back"),
            difference("view public.v differs after the down (diff below)"),
        ];
        defect.definitions = vec![DefinitionDiff {
            object: "view public.v".into(),
            diff: "--- before the up\n+++ after the down\n@@ -1 +1 @@\n- SELECT 1;\n+ SELECT 2;\n"
                .into(),
        }];
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
                Rehearsed { version: "3".into(), name: "gone".into(), checksum: "def".into() },
            ],
            key: "k3y".into(),
            steps: vec![
                step("copy", true, 1500, "dump into a throwaway cluster"),
                step("round trip 1", true, 40, "ok: restored"),
                step("round trip 2", false, 2, "defect: line one\nline two"),
                step("round trip 3", false, 3, "down fails: no such index"),
            ],
            round_trip: RoundTrip {
                ok: false,
                migrations: vec![
                    trip("1", TripClass::Ok, "restored"),
                    defect,
                    trip("3", TripClass::DownFails, "index \"i\" does not exist at statement 1/1 (down.sql:1)"),
                ],
                differences: vec![difference("down.sql of 2 does not restore: table t")],
                cosmetic: vec![difference("down of 2: column position of t.a")],
                require_down: false,
                duration_ms: 0,
            },
            scenarios: vec![
                Scenario {
                    splits: vec![
                        Split { at: "2".into(), why: "2_short runs alone outside a transaction: CREATE INDEX CONCURRENTLY (up.sql:1) cannot run inside one".into(), fix: None },
                        Split { at: "3".into(), why: "3_gone is marked to run outside a transaction, but none of its statements needs to".into(), fix: Some("remove the mark".into()) },
                    ],
                    ..scenario("A", false, 30, "rolled back")
                },
                scenario("B", false, 2500, "a | b"),
                Scenario { skipped: true, ..scenario("C", true, 4, "no protected table holds rows to damage") },
                scenario("D", true, 0, ""),
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
            statements: Some(".backstop/rehearsals/x.log".into()),
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
        r.statements = None;
        r
    }

    #[test]
    fn a_full_report_shows_every_part() {
        let md = super::markdown(&full()).unwrap();
        let lines: Vec<&str> = md.lines().collect();
        for expected in [
            "# Rehearsal 20260107-120000-beef: FAILED",
            "Run 2026-01-07 12:00:00 UTC, took 1 min 23 s. Last tested: 2026-01-07.",
            "- 3 migration(s) rehearsed on a sampled copy (10% sample): 1 ok, 1 defect, 1 down fails",
            "- – scenario C skipped: no protected table holds rows to damage",
            "- the statements run on the copies: `.backstop/rehearsals/x.log`",
            "| 2 | name \\| 2 | defect | table public.t (200 rows, 48 kB) with its 4 columns is gone: the up removes it and the down does not bring it… (+1 more) |",
            "| 3 | name \\| 3 | down fails | index \"i\" does not exist at statement 1/1 (down.sql:1) |",
            "Fix: `backstop downs 2` computes a proved fix for each defective down.",
            "### 2_name | 2: defect",
            "- ✗ view public.v differs after the down (diff below)",
            "- the up after it fails too: boom",
            "- fix: `backstop downs 2` computes a proved fix",
            "### 3_name | 3: down fails",
            "- ✗ index \"i\" does not exist at statement 1/1 (down.sql:1)",
            "| 1 | add \\| pipe | `0123456789abcdef` | ok | 12 ms |",
            "Gate key: `k3y`",
            "- data: 10% sample",
            "- source: `postgres://app:***@db/app` (5.2 MB)",
            "| ✗ | round trips | 45 ms | 3 migration(s): 1 ok, 1 defect, 1 down fails |",
            "| ✗ | B | 2.5 s | a \\| b |",
            "| – | C | skipped | no protected table holds rows to damage |",
            "- notice, at 2: 2_short runs alone outside a transaction: CREATE INDEX CONCURRENTLY (up.sql:1) cannot run inside one",
            "- ✗ at 3: 3_gone is marked to run outside a transaction, but none of its statements needs to. Fix: remove the mark",
            "- note: down of 2: column position of t.a",
            "- ⚠ rolling back 2 destroys data that existed before it",
            "| 1 | 1 | `ALTER TABLE t ADD \\| c int` | public.t | AccessExclusiveLock | reads and writes | yes | 1.2 s |",
            "| 2 | 4 | `SELECT 1` | public.u | AccessShareLock | - | no | 0 ms |",
            "- round trips (up, down, up) of all migrations: 45 ms",
            "- full rollback (export, down, restore) (scenario C): 1 min 1 s",
        ] {
            if expected.contains("scenario C): ") {
                assert!(!lines.contains(&expected), "a skipped scenario is timed in:\n{md}");
                continue;
            }
            assert!(lines.contains(&expected), "missing {expected:?} in:\n{md}");
        }
        assert!(
            md.contains("`view public.v`:\n\n```diff\n--- before the up\n+++ after the down\n@@ -1 +1 @@\n- SELECT 1;\n+ SELECT 2;\n```\n"),
            "{md}"
        );
        assert!(
            md.contains("## Steps\n\n| | step | time | detail |\n|---|---|---|---|\n| ✓ | copy |")
        );
        assert!(!md.contains("| round trip 1 |"), "round trips are one row of the steps: {md}");
        let summary = md.find("## Summary").unwrap();
        let details = md.find("## What the failing migrations do not restore").unwrap();
        let copy = md.find("## The copy").unwrap();
        assert!(summary < details && details < copy, "summary, details, then the rest: {md}");
        assert!(md.find("### 2_").unwrap() < md.find("### 3_").unwrap(), "details in run order");
        assert!(md.contains("- scenario (scenario D): 0 ms\n"), "{md}");
    }

    #[test]
    fn an_empty_report_says_nothing_was_pending() {
        let md = super::markdown(&empty()).unwrap();
        assert!(md.starts_with("# Rehearsal 20260107-120000-beef: PASSED\n\nRun "), "{md}");
        assert!(md.contains("## Summary\n\n- nothing was pending\n\n## The copy\n"), "{md}");
        assert!(
            md.contains("- method: template copy on the source's server\n- data: schema only\n")
        );
        assert!(md.contains("|---|---|---|---|\n| | none | | nothing pending |\n"));
        assert!(md.contains("## Lossy downs\n\nNone: no down drops"), "{md}");
        assert!(md.contains("No locks on existing relations were traced.\n"));
        assert!(!md.contains("Gate key") && !md.contains("### "), "{md}");
        assert!(md.ends_with("## Every migration\n\nNothing was pending.\n"), "{md}");
    }
}
