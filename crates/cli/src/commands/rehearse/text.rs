//! The text output of `backstop rehearse`: the steps (round trips summed
//! up in one line), the scenarios with the splits of scenario A, the
//! migrations that fail their round trip each with a short why, then each
//! one's details in that order, and where the report and the statement log
//! are. `--verbose` lists every step, cosmetic note and lossy down.

use std::fmt::Write as _;

use backstop_core::rehearse::{self, summary, Rehearsal, Step};

use crate::render::{human, terminal_safe};

/// How many splits of scenario A the terminal names before counting the
/// rest (the report lists them all).
const SPLITS_SHOWN: usize = 3;
/// How many lossy lines the terminal shows before counting the rest.
const LOSSY_SHOWN: usize = 4;

fn ms(v: u64) -> String {
    human(std::time::Duration::from_millis(v))
}

fn mark(ok: bool) -> &'static str {
    if ok {
        "✓"
    } else {
        "✗"
    }
}

fn safe(text: &str) -> String {
    terminal_safe(text).into_owned()
}

fn steps(out: &mut String, r: &Rehearsal, verbose: bool) {
    let (trips, others): (Vec<&Step>, Vec<&Step>) =
        r.steps.iter().partition(|s| s.name.starts_with("round trip"));
    let line = |out: &mut String, s: &Step| {
        let _ = writeln!(
            out,
            "{} {}: {} ({})",
            mark(s.ok),
            safe(&s.name),
            safe(&s.detail),
            ms(s.duration_ms)
        );
    };
    // The copy and the snapshot, then the round trips, then the rest.
    let (first, rest) = others.split_at(others.len().min(2));
    first.iter().for_each(|s| line(out, s));
    if verbose {
        trips.iter().for_each(|s| line(out, s));
    } else if !trips.is_empty() {
        let _ = writeln!(
            out,
            "{} round trips of {} migration(s): {} ({})",
            mark(r.round_trip.ok),
            trips.len(),
            rehearse::trip_counts(&r.round_trip.migrations),
            ms(r.round_trip.took_ms(trips.iter().copied()))
        );
    }
    rest.iter().for_each(|s| line(out, s));
}

fn scenarios(out: &mut String, r: &Rehearsal, verbose: bool) {
    for s in &r.scenarios {
        if s.skipped {
            let _ = writeln!(out, "– scenario {} skipped: {}", s.name, safe(&s.detail));
            continue;
        }
        let _ = writeln!(
            out,
            "{} scenario {}: {} ({})",
            mark(s.ok),
            s.name,
            safe(&s.detail),
            ms(s.duration_ms)
        );
        let notices: Vec<_> = s.splits.iter().filter(|p| p.fix.is_none()).collect();
        let shown = if verbose { notices.len() } else { SPLITS_SHOWN };
        for p in notices.iter().take(shown) {
            let _ = writeln!(out, "  notice: {}", safe(&p.why));
        }
        if notices.len() > shown {
            let _ = writeln!(
                out,
                "  notice: … and {} more split(s) the batch cannot avoid, listed in the report",
                notices.len() - shown
            );
        }
        for p in s.splits.iter().filter(|p| p.fix.is_some()) {
            let fix = p.fix.as_deref().unwrap_or_default();
            let _ = writeln!(out, "  ✗ {}; fix: {}", safe(&p.why), safe(fix));
        }
        let shown = if verbose { s.left_in_place.len() } else { SPLITS_SHOWN };
        for d in s.left_in_place.iter().take(shown) {
            let _ = writeln!(out, "  note: left in place by design: {}", safe(d));
        }
        if s.left_in_place.len() > shown {
            let _ = writeln!(
                out,
                "  note: … and {} more difference(s) a restore in place leaves, listed in the report",
                s.left_in_place.len() - shown
            );
        }
    }
}

/// The failing migrations with a short why each, then each one's details.
fn failing(out: &mut String, r: &Rehearsal) {
    let failing = summary::failing(r);
    if failing.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n{} migration(s) fail the round trip:", failing.len());
    let width = failing.iter().map(|t| t.label().chars().count()).max().unwrap_or(0);
    for t in &failing {
        let _ = writeln!(
            out,
            "  {:<width$}  {:<13}  {}",
            safe(&t.label()),
            t.class.label(),
            safe(&t.why())
        );
    }
    for t in &failing {
        // The verdict `downs` gives the same down, in the same words.
        let verdict = t.verdict.map(|v| format!(" (the down: {})", v.label())).unwrap_or_default();
        let _ = writeln!(out, "\n{}: {}{verdict}", safe(&t.label()), t.class.label());
        if t.differences.is_empty() {
            let _ = writeln!(out, "  ✗ {}", safe(t.failure()));
        }
        for d in &t.differences {
            let _ = writeln!(out, "  ✗ {}", safe(&d.message));
            let Some(def) = t.definitions.iter().find(|def| d.object == def.object) else {
                continue;
            };
            for l in def.diff.lines() {
                let _ = writeln!(out, "      {}", safe(l));
            }
        }
        if let Some(re_up) = t.re_up() {
            let _ = writeln!(out, "  the up after it fails too: {}", safe(re_up));
        }
    }
    let fixable: Vec<&str> =
        failing.iter().filter(|t| t.fix().is_some()).map(|t| t.version.as_str()).collect();
    if !fixable.is_empty() {
        let _ = writeln!(
            out,
            "\nfix available: `backstop downs {}` computes a proved fix for each defective down",
            safe(&fixable.join(" "))
        );
    }
}

/// The text output of a rehearsal.
pub fn render(r: &Rehearsal, verbose: bool) -> String {
    let mut out = String::new();
    steps(&mut out, r, verbose);
    scenarios(&mut out, r, verbose);
    failing(&mut out, r);
    if !summary::failing(r).is_empty() {
        out.push('\n');
    }
    if verbose {
        for d in &r.round_trip.cosmetic {
            let _ = writeln!(out, "note: {}", safe(&d.message));
        }
    } else if let Some(line) = summary::cosmetic_line(r) {
        let _ = writeln!(out, "note: {line}");
    }
    for d in r.round_trip.migrations.iter().flat_map(|t| &t.added) {
        let _ = writeln!(out, "note: {}", safe(&d.message));
    }
    let lossy = if verbose {
        rehearse::lossy_summary(&r.lossy)
    } else {
        summary::lossy_lines(&r.lossy, LOSSY_SHOWN)
    };
    for l in lossy {
        let _ = writeln!(out, "⚠ {}", safe(&l));
    }
    let blocking = r.locks.iter().filter(|l| l.blocks_writes).count();
    if blocking > 0 {
        let _ = writeln!(out, "{blocking} lock(s) block writes; see the report's lock table");
    }
    if let Some(path) = &r.report {
        let _ = writeln!(out, "report: {}", safe(&path.display().to_string()));
    }
    if let Some(path) = &r.statements {
        let _ = writeln!(out, "statements run: {}", safe(&path.display().to_string()));
    }
    // The verdict counts what failed as the lines above it do: never the
    // number rehearsed where the number failing is read.
    let failures = summary::failures(r);
    let verdict = match (r.ok, failures.is_empty()) {
        (true, _) | (false, true) => format!(
            "{}: {} migration(s)",
            if r.ok { "passed" } else { "FAILED" },
            r.migrations.len()
        ),
        (false, false) => format!("FAILED: {}", failures.join("; ")),
    };
    let _ = writeln!(
        out,
        "rehearsal {verdict}, {} in {}",
        rehearse::report::copy_kind(r),
        ms(r.duration_ms)
    );
    out
}
