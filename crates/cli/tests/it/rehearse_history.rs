//! `backstop rehearse` on a long generated history with broken, cosmetic
//! and awkward downs planted in it (`bench/history.rs`): the output must
//! stay a few lines per failing migration, name each planted defect in
//! its summary, report a gone table once with its size, show a changed
//! view or function as a diff, and say where the batch splits and why.

use crate::common::{DbExt, Project, Run};

#[path = "../../../../bench/history.rs"]
#[allow(dead_code)]
mod history;

/// Long enough for two full blocks of 40 and every planted shape.
const MIGRATIONS: usize = 90;

fn version(i: usize) -> String {
    format!("{:05}", i + 1)
}

#[test]
fn a_long_history_reads_as_a_summary_then_the_details_of_each_failing_migration() {
    let p = Project::new("rh_history");
    let mut planted = Vec::new();
    for i in 0..MIGRATIONS {
        let (up, down, plant) = history::planted_more(i);
        p.migration(&format!("{}_m{i}", version(i)), &up, Some(&down));
        if plant.is_some_and(|p| p != history::Plant::Cosmetic) {
            planted.push(version(i));
        }
    }
    let run = p.run(&["rehearse"]);
    run.expect_code(1);
    let out = &run.stdout;
    let lines: Vec<&str> = out.lines().collect();

    // The summary names every planted defect, and nothing else.
    let start = lines
        .iter()
        .position(|l| l.ends_with("migration(s) fail the round trip:"))
        .unwrap_or_else(|| panic!("no summary of the failing migrations:\n{out}"));
    let summary: Vec<&str> =
        lines[start + 1..].iter().take_while(|l| !l.is_empty()).copied().collect();
    let listed: Vec<String> = summary
        .iter()
        .map(|l| l.trim_start().split('_').next().unwrap_or_default().to_string())
        .collect();
    assert_eq!(listed, planted, "the summary lists exactly the planted defects:\n{out}");
    // Its details follow, in the same order.
    let details: Vec<usize> = planted
        .iter()
        .map(|v| {
            lines[start + summary.len()..]
                .iter()
                .position(|l| l.starts_with(&format!("{v}_")))
                .unwrap_or_else(|| panic!("no details for {v}:\n{out}"))
        })
        .collect();
    assert!(details.windows(2).all(|w| w[0] < w[1]), "details in run order:\n{out}");

    // A few lines per failing migration (a diff is some ten), not one per
    // migration or column.
    assert!(
        lines.len() <= 20 + 10 * planted.len(),
        "{} lines for {} failing migrations:\n{out}",
        lines.len(),
        planted.len()
    );
    assert!(lines.iter().all(|l| l.chars().count() < 400), "a line runs on:\n{out}");
    assert!(!out.contains("✓ round trip 00001"), "healthy round trips are counted, not listed");

    // A dropped table with a no-op down: one line, its size, what went with it.
    // Once in the summary, once in the details.
    let gone: Vec<&&str> = lines.iter().filter(|l| l.contains("public.t30")).collect();
    assert_eq!(gone.len(), 2, "{gone:#?}");
    let gone = &gone[1..];
    assert!(
        gone[0].contains("table public.t30 (300 rows, ")
            && gone[0].contains("kB) with its 5 columns, 1 constraint, 2 indexes and 1 sequence is gone: the up removes it"),
        "{}",
        gone[0]
    );

    // A view and a function put back wrong: diffs, not both texts whole.
    // (PostgreSQL 18 leaves the view's columns unqualified: `tag`, not `v13.tag`.)
    for expected in [
        "-  WHERE (v13.tag IS NOT NULL);",
        "+  WHERE ((v13.tag IS NOT NULL) AND (v13.id > 0));",
        "-  RETURN x * 24;",
        "+  RETURN x * 14;",
    ] {
        let unqualified = expected.replace("v13.", "");
        assert!(
            lines.iter().any(|l| l.trim_start() == expected || l.trim_start() == unqualified),
            "no {expected:?} in:\n{out}"
        );
    }
    assert_eq!(out.matches("CREATE OR REPLACE FUNCTION public.f14").count(), 0, "{out}");

    // Scenario A names its splits: notices it cannot avoid, a finding it can.
    assert!(out.contains("✗ scenario A: injected failure in "), "{out}");
    assert!(
        out.contains(
            "  notice: 00023_m22 runs alone outside a transaction: CREATE INDEX CONCURRENTLY (up.sql:2) cannot run inside one"
        ),
        "{out}"
    );
    assert!(out.contains("the enum value 'archived' it adds is used by 00037_m36"), "{out}");
    assert!(
        out.contains("  ✗ 00003_m2 is marked to run outside a transaction, but none of its statements needs to; fix: remove the mark"),
        "{out}"
    );
    assert!(out.contains("– scenario C skipped: no protected table"), "{out}");

    // The report: the same summary, diffs, and no per-column lines.
    let report = lines.iter().find_map(|l| l.strip_prefix("report: ")).expect("report path");
    let md = std::fs::read_to_string(p.path().join(report)).unwrap();
    for v in &planted {
        assert!(md.contains(&format!("\n| {v} | m")), "{v} not in the report's summary");
    }
    assert!(md.contains("```diff\n--- before the up\n+++ after the down\n"), "{md}");
    assert!(!md.contains("column public.t30."), "{md}");
    assert!(!md.contains("(scenario C):"), "a skipped scenario is not timed: {md}");
    assert!(md.lines().count() < 800, "{} report lines", md.lines().count());
    let log = lines.iter().find_map(|l| l.strip_prefix("statements run: ")).expect("log path");
    let logged = std::fs::read_to_string(p.path().join(log)).unwrap();
    assert!(logged.contains("00001 up step 1/2 CREATE TABLE t0"), "{}", &logged[..200]);
    // The second half's copy (a run this long is cut in two) logs too.
    assert!(logged.contains("  00090 up step 1/"), "{}", &logged[logged.len() - 400..]);
    assert!(!run.stderr.contains("up step"), "statements are not echoed without --verbose");
}

#[test]
fn a_run_cut_in_two_stops_where_one_run_would() {
    let p = Project::new("rh_cut_stop");
    for i in 0..45 {
        let up = match i {
            4 => "ALTER TABLE nowhere ADD COLUMN x int;".to_string(),
            _ => format!("CREATE TABLE t{i} (id int PRIMARY KEY, note text);"),
        };
        p.migration(&format!("{}_m{i}", version(i)), &up, Some(&format!("DROP TABLE t{i};")));
    }
    let json = p.run(&["rehearse", "--format", "json"]).json();
    let classes: Vec<&str> = json["round_trip"]["migrations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["class"].as_str().unwrap())
        .collect();
    let mut want = vec!["ok"; 4];
    want.push("up_fails");
    want.extend(["not_rehearsed"; 40]);
    assert_eq!(classes, want);
    // The last, in the second half, says why as one run would.
    let last = &json["round_trip"]["migrations"][44]["detail"];
    assert!(last.as_str().unwrap().contains("00005_m4 left the copy"), "{last}");
}

/// A run long enough to be cut in two: scenarios A and B ride on the
/// second half's copy, which passes through every state. A plays where
/// that copy holds every migration before the batch's last transaction
/// (which starts after a CONCURRENTLY index): among its round trips, or
/// while it applies the first half's ups. Played anywhere else, the
/// injected run would roll back more or less than that transaction. B
/// restores the backup of that copy's start once its round trips end.
#[test]
fn scenarios_a_and_b_ride_on_the_copies_of_a_run_cut_in_two() {
    // The second half starts at the 26th migration (the halves settle
    // the cut by their pace otherwise: see the next test).
    for (concurrently, last) in
        [(40, "3 transactions (4 migration(s))"), (10, "3 transactions (34")]
    {
        let p = Project::new(&format!("rh_ride_{concurrently}"));
        for i in 0..45 {
            let (up, down) = if i == concurrently {
                let on = format!("t{}", i - 1);
                (
                    format!("-- backstop:no-transaction\nCREATE INDEX CONCURRENTLY {on}_n ON {on} (note);"),
                    format!("-- backstop:no-transaction\nDROP INDEX CONCURRENTLY {on}_n;"),
                )
            } else {
                (
                    format!("CREATE TABLE t{i} (id int PRIMARY KEY, note text);"),
                    format!("DROP TABLE t{i};"),
                )
            };
            p.migration(&format!("{}_m{i}", version(i)), &up, Some(&down));
        }
        let mut cmd = p.std_cmd(&["rehearse", "--format", "json"]);
        let out = cmd.env("BACKSTOP_TEST_CUT_AT", "25").output().unwrap();
        let json = Run::from_output(out).expect_code(0).json();
        let trips = json["round_trip"]["migrations"].as_array().unwrap();
        assert!(trips.iter().all(|t| t["class"] == "ok"), "{:#}", json["round_trip"]);
        let scenarios = json["scenarios"].as_array().unwrap();
        let (a, b) = (&scenarios[0], &scenarios[1]);
        assert_eq!((&a["name"], &a["ok"]), (&"A".into(), &true.into()), "{a:#}");
        let detail = a["detail"].as_str().unwrap();
        let want = format!("injected failure in 00045 rolled back the last of the batch's {last}");
        assert!(detail.contains(&want), "{a:#}");
        assert_eq!((&b["name"], &b["ok"]), (&"B".into(), &true.into()), "{b:#}");
        let detail = b["detail"].as_str().unwrap();
        assert!(detail.contains("copy identical to the start; 25 late writes kept"), "{b:#}");
        assert!(!p.client().exists("public.t0"), "a copy's migration reached the target");
    }
}

/// A cut at either end: a second half given no round trip at all (its
/// backup, A and B's restore can outweigh them) still applies every up
/// and plays A and B; a first half of one migration too. Each migration
/// is round-tripped once, in order.
#[test]
fn a_cut_settled_at_either_end_still_round_trips_each_migration_once() {
    let p = Project::new("rh_cut_ends");
    for i in 0..45 {
        let up = format!("CREATE TABLE t{i} (id int PRIMARY KEY, note text);");
        p.migration(&format!("{}_m{i}", version(i)), &up, Some(&format!("DROP TABLE t{i};")));
    }
    for at in ["45", "44", "1"] {
        let mut cmd = p.std_cmd(&["rehearse", "--format", "json"]);
        let out = cmd.env("BACKSTOP_TEST_CUT_AT", at).output().unwrap();
        let json = Run::from_output(out).expect_code(0).json();
        let versions: Vec<&str> = json["round_trip"]["migrations"]
            .as_array()
            .unwrap()
            .iter()
            .inspect(|t| assert_eq!(t["class"], "ok", "cut at {at}: {t:#}"))
            .map(|t| t["version"].as_str().unwrap())
            .collect();
        let want: Vec<String> = (0..45).map(version).collect();
        assert_eq!(versions, want, "cut at {at}");
        let scenarios = json["scenarios"].as_array().unwrap();
        for s in &scenarios[..2] {
            assert_eq!(s["ok"], true, "cut at {at}: {s:#}");
        }
    }
    assert!(!p.client().exists("public.t0"), "a copy's migration reached the target");
}

/// One history, one verdict per down, whichever command asks: the first
/// deploy (which proves every down on a copy) names as defective exactly
/// the authored downs whose round trip the rehearsal fails: a down that
/// does not bring the schema back, one that fails, and one after which
/// the up fails again (a large object left behind, which no schema
/// picture holds). Before, the deploy missed the last kind: it never ran
/// the up again.
#[test]
fn migrate_and_rehearse_find_the_same_defective_downs() {
    let p = Project::new("rh_one_verdict");
    let mut planted = Vec::new();
    for i in 0..60 {
        let (up, down, plant) = history::planted(i);
        p.migration(&format!("{}_m{i}", version(i)), &up, Some(&down));
        if plant.is_some_and(|p| p != history::Plant::Cosmetic) {
            planted.push(version(i));
        }
    }
    let run = p.run(&["rehearse", "--schema-only"]);
    let lines: Vec<&str> = run.stdout.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.ends_with("migration(s) fail the round trip:"))
        .unwrap_or_else(|| panic!("no summary of the failing migrations:\n{}", run.all()));
    let rehearsed: Vec<String> = lines[start + 1..]
        .iter()
        .take_while(|l| !l.is_empty())
        .map(|l| l.trim_start().split('_').next().unwrap_or_default().to_string())
        .collect();
    assert_eq!(rehearsed, planted, "{}", run.all());
    // A bootstrap deploys, keeping the proved downs, and records which
    // authored downs do not hold.
    let migrate = p.run(&["migrate"]);
    migrate.expect_code(0);
    let mut db = p.client();
    let rows = db
        .query(
            "select details -> 'gates' -> 'keep_downs' -> 'defective' from backstop.events
              where kind = 'migrate' and details -> 'gates' ? 'keep_downs' order by id",
            &[],
        )
        .unwrap();
    let defective: Vec<serde_json::Value> = rows.iter().map(|r| r.get(0)).collect();
    let defective = serde_json::Value::Array(
        defective.into_iter().flat_map(|d| d.as_array().cloned().unwrap_or_default()).collect(),
    );
    let deployed: Vec<String> = defective
        .as_array()
        .unwrap_or_else(|| panic!("no defective list: {defective}\n{}", migrate.all()))
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(deployed, rehearsed, "{}", migrate.all());
    assert_eq!(db.applied().len(), 60);
}
