//! The rehearsal report in Markdown: what was rehearsed, on what copy,
//! each step and scenario with its time, the lock trace, round-trip
//! differences, lossy downs and the measured time to roll back.

use std::fmt::Write as _;

use super::Rehearsal;

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

use crate::kit::markdown::cell;

/// Renders the report.
pub fn markdown(r: &Rehearsal) -> String {
    let mut out = String::new();
    let verdict = if r.ok { "PASSED" } else { "FAILED" };
    let _ = writeln!(out, "# Rehearsal {}: {verdict}\n", r.id);
    let _ = writeln!(
        out,
        "Run {} UTC, took {}. Last tested: {}.\n",
        r.started_at.format("%Y-%m-%d %H:%M:%S"),
        human_ms(r.duration_ms),
        r.started_at.format("%Y-%m-%d")
    );

    let _ = writeln!(out, "## What was rehearsed\n");
    if r.migrations.is_empty() {
        let _ = writeln!(out, "Nothing was pending.\n");
    } else {
        let _ = writeln!(out, "| version | name | checksum |\n|---|---|---|");
        for m in &r.migrations {
            let _ = writeln!(
                out,
                "| {} | {} | `{}` |",
                m.version,
                cell(&m.name),
                &m.checksum[..16.min(m.checksum.len())]
            );
        }
        let _ = writeln!(out, "\nGate key: `{}`\n", r.key);
    }

    let _ = writeln!(out, "## The copy\n");
    let data = match (&r.copy.sample, r.copy.schema_only) {
        (_, true) => "schema only".to_string(),
        (Some(s), _) => format!("{}% sample", s.percent),
        (None, false) => "full".to_string(),
    };
    let _ = writeln!(
        out,
        "- source: `{}` ({})\n- method: {}\n- data: {data}\n- {} tables, {} rows\n",
        r.copy.source,
        human_bytes(r.copy.source_size_bytes),
        r.copy.describe(),
        r.tables,
        r.rows
    );

    let _ = writeln!(out, "## Steps\n\n| | step | time | detail |\n|---|---|---|---|");
    for s in &r.steps {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            mark(s.ok),
            cell(&s.name),
            human_ms(s.duration_ms),
            cell(&s.detail)
        );
    }

    let _ = writeln!(
        out,
        "\n## Failure scenarios\n\n| | scenario | time | detail |\n|---|---|---|---|"
    );
    for s in &r.scenarios {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            mark(s.ok),
            s.name,
            human_ms(s.duration_ms),
            cell(&s.detail)
        );
    }
    if r.scenarios.is_empty() {
        let _ = writeln!(out, "| | none | | nothing pending |");
    }

    let _ = writeln!(out, "\n## Round trip (up → down → up)\n");
    let trips = &r.round_trip.migrations;
    if trips.is_empty() {
        let _ = writeln!(out, "Nothing was pending.");
    } else {
        let _ = writeln!(out, "{}\n", super::trip_counts(trips));
        let _ = writeln!(out, "| version | name | outcome | detail |\n|---|---|---|---|");
        for t in trips {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                t.version,
                cell(&t.name),
                t.class.label(),
                cell(&t.detail)
            );
        }
    }
    if !r.round_trip.differences.is_empty() {
        let _ = writeln!(out, "\n### What the downs do not restore\n");
        for d in &r.round_trip.differences {
            let _ = writeln!(out, "- ✗ {}", d.message);
        }
    }
    if !r.round_trip.cosmetic.is_empty() {
        let _ = writeln!(out, "\n### Cosmetic differences (no behaviour changes)\n");
        for d in &r.round_trip.cosmetic {
            let _ = writeln!(out, "- note: {}", d.message);
        }
    }

    let _ = writeln!(out, "\n## Lossy downs\n");
    let lossy = super::lossy::summary(&r.lossy);
    if lossy.is_empty() {
        let _ = writeln!(out, "None: no down drops a table or column, or deletes rows.");
    }
    for l in &lossy {
        let _ = writeln!(out, "- ⚠ {l}");
    }

    let _ = writeln!(out, "\n## Locks\n");
    if r.locks.is_empty() {
        let _ = writeln!(out, "No locks on existing relations were traced.");
    } else {
        let _ = writeln!(
            out,
            "| version | stmt | statement | relation | lock | blocks | rewrite | held |\n|---|---|---|---|---|---|---|---|"
        );
        for l in &r.locks {
            let blocks = match (l.blocks_reads, l.blocks_writes) {
                (true, _) => "reads and writes",
                (false, true) => "writes",
                _ => "-",
            };
            let _ = writeln!(
                out,
                "| {} | {} | `{}` | {} | {} | {blocks} | {} | {} |",
                l.version,
                l.statement,
                cell(&l.sql),
                l.relation,
                l.mode,
                if l.rewritten { "yes" } else { "no" },
                human_ms(l.held_ms)
            );
        }
    }

    let _ = writeln!(out, "\n## Time to roll back\n");
    let downs: Vec<_> = r.steps.iter().filter(|s| s.name.starts_with("round trip")).collect();
    if !downs.is_empty() {
        let total: u64 = downs.iter().map(|s| s.duration_ms).sum();
        let _ =
            writeln!(out, "- round trips (up, down, up) of all migrations: {}", human_ms(total));
    }
    for s in &r.scenarios {
        let method = match s.name.as_str() {
            "A" => "automatic transaction rollback",
            "B" => "restore of the pre-migration backup",
            "C" => "full rollback (export, down, restore)",
            _ => "scenario",
        };
        let _ = writeln!(out, "- {method} (scenario {}): {}", s.name, human_ms(s.duration_ms));
    }
    out
}
