//! What a rehearsal plays once its copy is read: the round trips
//! (`trips`: in one run, or two halves side by side), the `[verify]`
//! suite on the copy where they end, and scenarios A, B and C: A and B
//! on one copy beside the round trips, or riding on the second half's
//! copy where the run is cut (`ride`), and C on a copy of its own (one
//! session and about a core; nothing they do on a copy of their own
//! reaches the round trips' copies), then the expand where it is asked
//! for.

use std::time::Instant;

use postgres::Client;

use super::chain;
use super::injected::APlan;
use super::locks::Tracing;
use super::outcome::{Scenario, Step};
use super::scenarios::{scenario_c, scenarios_a_b, Downs};
use super::second_half;
use super::trips::{Cut, End, OnCopy, RoundTrips, Stages, SECOND_HALF};
use super::{ms, Options, RehearseError, VerifyPlan};
use crate::copies::clone::{CopyDb, Workspace};
use crate::downs::made::Makers;
use crate::migrate::{self, Settings};
use crate::pg::fingerprint::Schema;
use crate::source::Migration;

/// Plays the round trips of `todo` on `main` and the scenarios (see the
/// module); what the round trips found and how each scenario went.
#[allow(clippy::too_many_arguments)]
pub(super) fn play(
    workspace: &mut Workspace,
    main: OnCopy<'_>,
    (migrations, todo): (&[Migration], &[Migration]),
    (settings, options): (&Settings, &Options),
    isolated: bool,
    (stages, tracing): (&mut Stages, &mut Tracing<'_>),
    mut makers: Option<Makers<'_>>,
    (baseline, start): (Option<crate::verify::Snapshot>, &Schema),
) -> Result<(RoundTrips, Vec<Scenario>), RehearseError> {
    let OnCopy { client, copy: main_copy, prepared, tracked } = main;
    // Scenarios A, B and C play on copies of their own beside the round
    // trips (a session and about a core): nothing they do reaches the
    // round trips' copy. Where copies cannot be worked on side by side,
    // they play after. C runs the downs: where a pending migration has
    // none of its own, C waits before its rollback for the downs the
    // round trips make.
    let waits = makers.is_some() && todo.iter().any(|m| m.down.is_none());
    let (beside, cut) = copies(workspace, todo, settings, isolated)?;
    // Where the run is cut in two, A and B ride on its copies (`ride`).
    let ride = cut.as_ref().map(|_| APlan::of(todo));
    let (given, later) = std::sync::mpsc::channel();
    let ws = &*workspace;
    // B ends on the second half's own thread, unless the `[verify]` suite
    // or the proof of the downs together must run on the copy before B
    // restores it.
    let suite = options.verify.as_ref().filter(|plan| !plan.section.checks.is_empty());
    let chained = todo.len() >= 2;
    let b_here = (suite.is_none() && !chained).then_some(ws);
    let (trips, scenarios) = std::thread::scope(|s| {
        let played = beside.as_ref().map(|copies| {
            let downs = if waits { Downs::Later(later) } else { Downs::Own };
            s.spawn(move || play_scenarios(copies, downs, ws, migrations, settings, todo))
        });
        let on = OnCopy { client: &mut *client, copy: main_copy, prepared, tracked };
        let trips = super::trips::all(
            on,
            (cut.as_ref(), ride.as_ref().map(|plan| (plan, b_here))),
            migrations,
            todo,
            (settings, options),
            &mut *stages,
            &mut *tracing,
            makers.as_mut(),
        )
        .and_then(|(mut trips, mut end)| {
            let with_downs = makers.as_ref().map(|m| m.with_downs(migrations));
            if let (Some(with_downs), true) = (&with_downs, waits) {
                // Scenario C may not be waiting any more: nothing to say.
                let _ = given.send(with_downs.clone());
            }
            let all_hold = trips.round_trip.migrations.iter().all(|t| chain::holds(t.class));
            if let (None, true, true) = (&trips.stopped, chained, all_hold) {
                let with_downs = with_downs.as_deref().unwrap_or(migrations);
                let c = match &mut end {
                    End::Main => &mut *client,
                    End::Second(c, _) => &mut **c,
                    End::Restored => unreachable!("B ends on its half only where no chain runs"),
                };
                let judged = (start, trips.round_trip.migrations.as_slice());
                trips.steps.extend(chain::step(c, settings, (with_downs, todo), judged)?);
            }
            if let (Some(plan), None, false) = (suite, &trips.stopped, todo.is_empty()) {
                stages.next(tracing.inner, "the [verify] suite on the migrated copy");
                let step = match &mut end {
                    End::Main => verify_step(client, main_copy, plan, baseline)?,
                    End::Second(c, copy) => verify_step(c, copy, plan, baseline)?,
                    End::Restored => unreachable!("B ends on its half only where no suite runs"),
                };
                trips.steps.push(step);
            }
            // B ends on the copy where the round trips ended.
            if let (Some(start), End::Second(c, copy)) = (trips.b_start.take(), end) {
                let stopped = trips.stopped.clone();
                trips.b =
                    Some(second_half::b_end(*c, (copy, ws), settings, start, stopped.as_deref())?);
            }
            Ok(trips)
        });
        // Where the round trips failed, C is told so.
        drop(given);
        let scenarios = played.map(|p| p.join().expect("the scenarios' thread does not panic"));
        (trips, scenarios)
    });
    let mut trips = trips?;
    let mut scenarios = match scenarios {
        Some(played) => played?,
        None if todo.is_empty() => Vec::new(),
        None => {
            let made = makers.as_ref().filter(|_| waits).map(|m| m.with_downs(migrations));
            let downs = made.as_deref().map_or(Downs::Own, Downs::Made);
            play_after(workspace, (migrations, downs), settings, todo)?
        }
    };
    if let Some(plan) = &ride {
        scenarios.splice(0..0, ridden(&mut trips, plan));
    }
    for name in [
        "A: a failure mid-migration",
        "B: restore the pre-migration backup",
        "C: damage, export, downs, restore",
    ]
    .iter()
    .take(scenarios.len())
    {
        stages.next(tracing.inner, &format!("scenario {name}"));
    }
    if let (Some(schema), false) = (&options.expand, todo.is_empty()) {
        stages.next(tracing.inner, "expand, rollback and contract");
        let played = super::expand_scenario::scenario_expand(
            workspace,
            migrations,
            settings,
            schema,
            tracing.inner,
        )?;
        scenarios.push(played);
    }
    Ok((trips, scenarios))
}

/// The `[verify]` suite on the migrated copy, as after a real migrate.
fn verify_step(
    client: &mut Client,
    copy: &CopyDb,
    plan: &VerifyPlan,
    baseline: Option<crate::verify::Snapshot>,
) -> Result<Step, RehearseError> {
    use crate::verify::{Selection, Suite};
    let t = Instant::now();
    let selection = Selection {
        phase: Some(crate::verify::Phase::Migrate),
        backups: Some(plan.backups.clone()),
        ..Default::default()
    };
    let prepared = Suite::prepare(
        client,
        &copy.conninfo()?,
        &plan.section,
        &selection,
        baseline,
        &plan.headers,
    );
    let (ok, detail) = match prepared {
        Ok(suite) if suite.is_empty() => (true, "no check runs after a migrate".to_string()),
        Ok(suite) => {
            let report = suite.run();
            let failed: Vec<String> = report
                .checks
                .iter()
                .filter(|c| c.status == crate::verify::Status::Fail)
                .map(|c| format!("{}: {}", c.name, c.detail))
                .collect();
            let mut detail = report.summary();
            if !failed.is_empty() {
                detail = format!("{detail}; {}", failed.join("; "));
            }
            (report.ok(), detail)
        }
        Err(e) => (false, format!("the suite could not be prepared: {e}")),
    };
    Ok(Step { name: "verify suite".into(), ok, duration_ms: ms(t.elapsed()), detail })
}

/// A and B as they rode on the round trips' copies.
fn ridden(trips: &mut RoundTrips, plan: &APlan) -> [Scenario; 2] {
    let a = match trips.a.take() {
        Some(a) => a,
        None if plan.injected_from().is_none() => plan.no_transaction(),
        None => second_half::a_not_reached(plan, trips.stopped.as_deref()),
    };
    let b = trips.b.take().unwrap_or_else(|| {
        Scenario::played("B", false, 0, "the round trips did not end: nothing to restore".into())
    });
    [a, b]
}

/// The copies the scenarios play on: A and B share one, so that one
/// apply of the pending migrations serves both (none where they ride on
/// the round trips' copies); C has its own where a protected table is
/// named (it damages one, or is skipped).
struct Copies {
    a_b: Option<CopyDb>,
    c: Option<CopyDb>,
}

/// The labels of the scenarios' copies.
const A_B: &str = "scenario_a_b";
const C: &str = "scenario_c";

/// Whether scenario C gets a copy: only where a protected table is named.
fn wants_c(settings: &Settings) -> bool {
    !settings.protected_tables.is_empty()
}

/// The copies made before the round trips start, all at once: the
/// scenarios' (none when nothing is pending, or where copies cannot be
/// worked on side by side: they are made when the scenarios play after
/// the round trips), and the second half's where the run is cut.
fn copies(
    workspace: &mut Workspace,
    todo: &[Migration],
    settings: &Settings,
    isolated: bool,
) -> Result<(Option<Copies>, Option<Cut>), RehearseError> {
    let scenarios = workspace.side_by_side() && !todo.is_empty();
    let at = super::trips::cut_at(workspace, todo, isolated);
    let mut labels = Vec::new();
    // A and B ride on the round trips' copies where the run is cut.
    let a_b = scenarios && at.is_none();
    if scenarios {
        labels.extend(a_b.then_some(A_B));
        labels.extend(wants_c(settings).then_some(C));
    }
    labels.extend(at.map(|_| SECOND_HALF));
    let mut made = workspace.copies(&labels)?.into_iter();
    let mut next = || made.next().expect("a copy for each label");
    let copies = scenarios
        .then(|| Copies { a_b: a_b.then(&mut next), c: wants_c(settings).then(&mut next) });
    Ok((copies, at.map(|at| Cut::new(at, next()))))
}

/// Plays scenarios A and B, then C (its downs from `downs`), each on its
/// copy, without a word: the rehearsal names each when the round trips
/// are done.
fn play_scenarios(
    copies: &Copies,
    downs: Downs<'_>,
    workspace: &Workspace,
    migrations: &[Migration],
    settings: &Settings,
    todo: &[Migration],
) -> Result<Vec<Scenario>, RehearseError> {
    let quiet = &mut migrate::Quiet;
    let mut played = Vec::new();
    if let Some(a_b) = &copies.a_b {
        played.extend(scenarios_a_b(a_b, workspace, migrations, settings, todo, quiet)?);
    }
    let c = copies.c.as_ref();
    played.push(scenario_c(c, workspace, (migrations, downs), settings, todo, quiet)?);
    Ok(played)
}

/// The scenarios where copies cannot be worked on side by side, after the
/// round trips: each copy made just before its scenarios play on it, as a
/// library that works in one database (pg_cron) follows the copy made
/// last. C's downs come from `downs`.
fn play_after(
    workspace: &mut Workspace,
    (migrations, downs): (&[Migration], Downs<'_>),
    settings: &Settings,
    todo: &[Migration],
) -> Result<Vec<Scenario>, RehearseError> {
    let quiet = &mut migrate::Quiet;
    let a_b = workspace.copy(A_B)?;
    let [a, b] = scenarios_a_b(&a_b, workspace, migrations, settings, todo, quiet)?;
    let c_copy = wants_c(settings).then(|| workspace.copy(C)).transpose()?;
    let c = scenario_c(c_copy.as_ref(), workspace, (migrations, downs), settings, todo, quiet)?;
    Ok(vec![a, b, c])
}
