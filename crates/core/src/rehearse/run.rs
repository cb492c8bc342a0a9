//! The run driver: copy the target, snapshot the copy, choose the pending
//! migrations, round-trip each on the copy with its locks traced, run the
//! `[verify]` suite on the migrated copy, play the failure scenarios on
//! fresh copies, and gather it all into one [`Rehearsal`].

use std::borrow::Cow;
use std::time::Instant;

use postgres::Client;

use super::clone::{CopyDb, Workspace};
use super::computed::{self, DownMaker};
use super::dump::db_err;
use super::gate::key_of;
use super::locks::Tracing;
use super::outcome::{passed, LockRow, Rehearsal, Rehearsed, RoundTrip, Scenario, Step, TripClass};
use super::round_trip::{round_trip_one, OneTrip};
use super::scenarios::{scenario_a, scenario_b, scenario_c};
use super::snapshot::{track, Snapshot};
use super::{lossy, ms, Options, RehearseError, VerifyPlan};
use crate::migrate::{self, ApplyError, Note, Progress, Settings};
use crate::pg::tracked::Tracked;
use crate::pg::Prepared;
use crate::source::Migration;

/// Counts the rehearsal's steps for the progress line.
struct Stages {
    done: usize,
    total: usize,
}

impl Stages {
    /// The copy is stage 1 and done; then the snapshot, a round trip per
    /// pending migration and, when any is pending, the `[verify]` suite
    /// (when it has checks) and the three scenarios.
    fn new(pending: usize, verifies: bool, expands: bool) -> Stages {
        let after = 3 + usize::from(verifies) + usize::from(expands);
        let after_trips = if pending == 0 { 0 } else { after };
        Stages { done: 1, total: 2 + pending + after_trips }
    }

    fn next(&mut self, progress: &mut dyn Progress, name: &str) {
        self.done += 1;
        progress.note(Note::Stage { index: self.done, total: self.total, name });
    }
}

/// Which of `migrations` are pending on the copy, within `range`.
fn pending<'m>(
    client: &mut Client,
    migrations: &'m [Migration],
    range: &Option<(String, String)>,
) -> Result<Vec<&'m Migration>, RehearseError> {
    let status = migrate::status(client, migrations)?;
    if !status.drifted.is_empty() {
        return Err(ApplyError::Drift(status.drifted).into());
    }
    let versions: Vec<&str> = status.pending.iter().map(|p| p.version.as_str()).collect();
    Ok(within(migrations, &versions, range))
}

/// The migrations whose versions are in `pending`, in folder order, and
/// within the inclusive `range` of folder positions. A bound that names
/// no migration of the folder leaves that side open.
fn within<'m>(
    migrations: &'m [Migration],
    pending: &[&str],
    range: &Option<(String, String)>,
) -> Vec<&'m Migration> {
    let order = crate::source::Order::of(migrations);
    let bounds = range.as_ref().map(|(a, b)| (order.position(a), order.position(b)));
    migrations
        .iter()
        .enumerate()
        .filter(|(_, m)| pending.contains(&m.version.as_str()))
        .filter(|(i, _)| match bounds {
            Some((a, b)) => a.is_none_or(|a| *i >= a) && b.is_none_or(|b| *i <= b),
            None => true,
        })
        .map(|(_, m)| m)
        .collect()
}

/// Why the copy must be in a throwaway cluster, when a migration the
/// rehearsal may run (a pending one, up or down) changes what the whole
/// server shares: a copy on the source's server would change production
/// (a role, `ALTER SYSTEM`, a role's settings). A statement that cannot
/// be rehearsed anywhere without reaching outside (a tablespace's
/// directory, a subscription) is refused before anything runs. Also the
/// extensions those migrations create (a down that creates one: its up
/// dropped it).
fn server_reach(
    source_url: &str,
    migrations: &[Migration],
    options: &Options,
) -> Result<(Option<String>, Vec<String>), RehearseError> {
    use backstop_lint::refs::Reach;
    let mut source = super::dump::connect_source(source_url)?;
    let applied = if crate::schema::exists(&mut source).map_err(db_err("reading the history"))? {
        crate::schema::applied::versions(&mut source).map_err(db_err("reading the history"))?
    } else {
        Vec::new()
    };
    drop(source);
    // The pending migrations before a range are applied to the copy too
    // (`before_range`): every one up to the range's end counts.
    let order = crate::source::Order::of(migrations);
    let in_range = |m: &Migration| match &options.range {
        Some((_, b)) => match (order.position(&m.version), order.position(b)) {
            (Some(at), Some(end)) => at <= end,
            _ => true,
        },
        None => true,
    };
    let mut isolate = None;
    let mut refs = backstop_lint::refs::Refs::default();
    for m in migrations.iter().filter(|m| !applied.contains(&m.version) && in_range(m)) {
        for file in std::iter::once(&m.up).chain(m.down.as_ref()) {
            for s in &file.statements {
                refs.add(&s.sql);
                let place = || format!("{}:{}", file.path.display(), s.position.line);
                match backstop_lint::refs::reach(&s.sql) {
                    Some(Reach::Outside(why)) => {
                        return Err(RehearseError::Unsafe { place: place(), why })
                    }
                    Some(Reach::Server(what)) if isolate.is_none() => {
                        isolate = Some(format!(
                            "{what} at {} changes what the whole server shares: rehearsed where it \
                             cannot reach production",
                            place()
                        ))
                    }
                    _ => {}
                }
            }
        }
    }
    let extensions =
        refs.created_extensions.into_iter().chain(refs.maybe_created_extensions).collect();
    Ok((isolate, extensions))
}

/// Rehearses the pending migrations of the database at `source_url`; the
/// downs of those that have none are worked out and proved by `maker`,
/// where one is given (otherwise their trip is `no down`).
pub fn rehearse(
    source_url: &str,
    migrations: &[Migration],
    settings: &Settings,
    options: &Options,
    maker: Option<&mut dyn DownMaker>,
    progress: &mut dyn Progress,
) -> Result<Rehearsal, RehearseError> {
    // The copy is thrown away: its tools' histories are not kept in step.
    let settings = &settings.on_copy();
    // Nor does a copy send what production would: a call that reaches
    // outside the database (pg_net, dblink) is not run there.
    let database = super::dump::source_dbname(source_url)?;
    let (replayed, outside) = super::outside::replayed(migrations, &database);
    let migrations: &[Migration] = &replayed;
    let started = Instant::now();
    let started_at = chrono::Utc::now();
    let id = format!("{}-{:04x}", started_at.format("%Y%m%d-%H%M%S"), rand::random::<u16>());
    let mut steps = Vec::new();

    let t = Instant::now();
    progress.note(Note::Stage { index: 1, total: 0, name: "copying the database" });
    let (isolate, extensions) = server_reach(source_url, migrations, options)?;
    let mut workspace = Workspace::open(source_url, options, isolate, &extensions)?;
    let main_copy = workspace.copy("round_trip")?;
    steps.push(Step {
        name: "copy".into(),
        ok: true,
        duration_ms: ms(t.elapsed()),
        detail: workspace.info.describe(),
    });

    let mut client = main_copy.connect()?;
    let mut prepared = Prepared::default();
    let todo: Vec<Migration> =
        pending(&mut client, migrations, &options.range)?.into_iter().cloned().collect();
    steps.extend(not_replayed(&outside, &todo));
    let (todo, unrunnable) = up_to_unrunnable(todo);
    // What is not rehearsed is not applied to the copies either.
    let migrations = &*without(migrations, unrunnable.as_ref());
    steps.extend(unrunnable.map(|u| u.step));
    let todo = match before_range(&mut client, migrations, settings, options, &todo, progress)? {
        Some(step) if !step.ok => {
            steps.push(step);
            Vec::new()
        }
        Some(step) => {
            steps.push(step);
            todo
        }
        None => todo,
    };
    let mut stages = Stages::new(todo.len(), options.verifies(), options.expand.is_some());
    stages.next(progress, "snapshot of the copy");
    let t = Instant::now();
    let mut tracked = track(&mut client, &mut prepared)?;
    let start = Snapshot { schema: tracked.schema(), tables: tracked.tables() };
    steps.push(Step {
        name: "snapshot".into(),
        ok: true,
        duration_ms: ms(t.elapsed()),
        detail: format!("schema {} and {} tables", start.schema.fingerprint(), start.tables.len()),
    });

    let baseline = verify_baseline(&mut client, options)?;
    let mut tracing = Tracing::new(progress);
    // Scenarios A, B and C play on copies of their own beside the round
    // trips (each is a session and about a core): nothing they do reaches
    // the round trips' copy. Where copies cannot be worked on side by
    // side, they play after.
    let beside = match workspace.side_by_side() {
        true => scenario_copies(&mut workspace, &todo)?,
        false => None,
    };
    let (trips, scenarios) = std::thread::scope(|s| {
        let played = beside.as_ref().map(|copies| {
            let workspace = &workspace;
            let todo = &todo;
            s.spawn(move || play_scenarios(copies, workspace, migrations, settings, todo))
        });
        let trips = RoundTrips::run(
            &mut client,
            &main_copy,
            &mut prepared,
            &mut tracked,
            migrations,
            &todo,
            settings,
            options,
            &mut stages,
            &mut tracing,
            maker,
        )
        .and_then(|mut trips| {
            if let (Some(plan), true) = (&options.verify, !trips.stopped && !todo.is_empty()) {
                if !plan.section.checks.is_empty() {
                    stages.next(tracing.inner, "the [verify] suite on the migrated copy");
                    trips.steps.push(verify_step(&mut client, &main_copy, plan, baseline)?);
                }
            }
            Ok(trips)
        });
        let scenarios = played.map(|p| p.join().expect("the scenarios' thread does not panic"));
        (trips, scenarios)
    });
    let trips = trips?;
    steps.extend(trips.steps);
    drop(client);
    let mut scenarios = match scenarios {
        Some(played) => played?,
        // Each copy made just before its scenario plays on it.
        None if todo.is_empty() => Vec::new(),
        None => {
            let mut played = Vec::new();
            for (which, label) in SCENARIOS.iter().enumerate() {
                let copy = workspace.copy(label)?;
                played.push(play(which, &copy, &workspace, migrations, settings, &todo)?);
            }
            played
        }
    };
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
        let played = super::shapes::scenario_expand(
            &mut workspace,
            migrations,
            settings,
            schema,
            tracing.inner,
        )?;
        scenarios.push(played);
    }
    let lossy = lossy::find(&todo);
    let ok = passed(&steps, &trips.round_trip, &scenarios);
    Ok(Rehearsal {
        id,
        ok,
        started_at,
        duration_ms: ms(started.elapsed()),
        copy: workspace.info.clone(),
        tables: start.tables.len(),
        rows: start.tables.iter().map(|t| t.rows).sum(),
        key: key_of(todo.iter()),
        migrations: todo.iter().map(rehearsed).collect(),
        steps,
        round_trip: trips.round_trip,
        scenarios,
        lossy,
        locks: trips.locks,
        report: None,
        statements: None,
    })
}

fn rehearsed(m: &Migration) -> Rehearsed {
    Rehearsed { version: m.version.clone(), name: m.name.clone(), checksum: m.checksum.clone() }
}

/// The step that names the calls reaching outside the database that the
/// copies run the migrations of `todo` without.
fn not_replayed(outside: &[(String, String)], todo: &[Migration]) -> Option<Step> {
    let calls: Vec<&str> = outside
        .iter()
        .filter(|(version, _)| todo.iter().any(|t| &t.version == version))
        .map(|(_, call)| call.as_str())
        .collect();
    (!calls.is_empty()).then(|| Step {
        name: "not replayed".into(),
        ok: true,
        duration_ms: 0,
        detail: format!(
            "{}: reaches outside the database, so the copies run the migration without it",
            calls.join(", ")
        ),
    })
}

/// The pending migrations from the first that cannot run as written: the
/// step that names them, and their versions.
struct Unrunnable {
    step: Step,
    skipped: Vec<String>,
}

/// `migrations` without those `unrunnable` names.
fn without<'m>(
    migrations: &'m [Migration],
    unrunnable: Option<&Unrunnable>,
) -> Cow<'m, [Migration]> {
    match unrunnable {
        Some(u) => migrations.iter().filter(|m| !u.skipped.contains(&m.version)).cloned().collect(),
        None => Cow::Borrowed(migrations),
    }
}

/// `todo` up to the first migration whose up (or verify) cannot run as
/// written, as `migrate --to` would apply it, and the failed step that
/// names that file and the migrations after it, which are not rehearsed.
fn up_to_unrunnable(mut todo: Vec<Migration>) -> (Vec<Migration>, Option<Unrunnable>) {
    use crate::source::Part;
    let broken = |m: &Migration| !m.runnable(Part::Up) || !m.runnable(Part::Verify);
    let Some(at) = todo.iter().position(broken) else { return (todo, None) };
    let rest: Vec<Migration> = todo.split_off(at);
    let problems: Vec<String> = rest[0]
        .problems
        .iter()
        .filter(|p| matches!(p.part, Part::Up | Part::Verify))
        .map(|p| p.to_string())
        .collect();
    let after: Vec<String> = rest[1..].iter().map(Migration::label).collect();
    let mut detail = format!(
        "{} cannot run as written ({}): rehearsed up to the migration before it",
        rest[0].label(),
        problems.join("; ")
    );
    if !after.is_empty() {
        detail.push_str(&format!("; not rehearsed after it: {}", after.join(", ")));
    }
    let step = Step { name: "not rehearsed".into(), ok: false, duration_ms: 0, detail };
    (todo, Some(Unrunnable { step, skipped: rest.iter().map(|m| m.version.clone()).collect() }))
}

/// With a range, the pending migrations before it are applied to the copy
/// first, not rehearsed: the rehearsed ones start where they will. The
/// step that says so; `None` when there are none.
fn before_range(
    client: &mut Client,
    migrations: &[Migration],
    settings: &Settings,
    options: &Options,
    todo: &[Migration],
    progress: &mut dyn Progress,
) -> Result<Option<Step>, RehearseError> {
    let (Some(_), Some(first)) = (&options.range, todo.first()) else { return Ok(None) };
    let order = crate::source::Order::of(migrations);
    let at = order.position(&first.version);
    let earlier: Vec<&Migration> = pending(client, migrations, &None)?
        .into_iter()
        .filter(|m| order.position(&m.version) < at)
        .collect();
    let Some(last) = earlier.last() else { return Ok(None) };
    let t = Instant::now();
    let options = migrate::MigrateOptions {
        to: Some(last.version.clone()),
        allow_out_of_order: true,
        ..Default::default()
    };
    let report = migrate::migrate(client, migrations, settings, &options, &mut [], progress)?;
    let (ok, detail) = match report.failure {
        None => (
            true,
            format!(
                "{} pending migration(s) before the range applied first, not rehearsed",
                earlier.len()
            ),
        ),
        Some(f) => (
            false,
            format!(
                "{} before the range fails, so the range cannot be rehearsed: {}",
                f.version, f.message
            ),
        ),
    };
    Ok(Some(Step { name: "before the range".into(), ok, duration_ms: ms(t.elapsed()), detail }))
}

/// Checks that compare with a snapshot compare with the copy's start.
fn verify_baseline(
    client: &mut Client,
    options: &Options,
) -> Result<Option<crate::verify::Snapshot>, RehearseError> {
    Ok(match &options.verify {
        Some(plan) if !plan.section.checks.is_empty() => {
            let scope = crate::verify::ChecksumScope::for_suite(&plan.section);
            Some(crate::verify::Snapshot::take(client, "rehearsal start", &scope).map_err(|e| {
                RehearseError::Clone { reason: format!("could not take the verify baseline: {e}") }
            })?)
        }
        _ => None,
    })
}

/// What the round trips of all pending migrations found: the trips, the
/// locks the ups took, a step per migration, and whether the copy was left
/// where later migrations (and the `[verify]` suite) cannot run on it.
struct RoundTrips {
    round_trip: RoundTrip,
    locks: Vec<LockRow>,
    steps: Vec<Step>,
    stopped: bool,
}

impl RoundTrips {
    /// Round-trips each of `todo` in order on the copy, each from the state
    /// after the ups before it.
    #[allow(clippy::too_many_arguments)]
    fn run(
        client: &mut Client,
        copy: &CopyDb,
        prepared: &mut Prepared,
        tracked: &mut Tracked,
        migrations: &[Migration],
        todo: &[Migration],
        settings: &Settings,
        options: &Options,
        stages: &mut Stages,
        tracing: &mut Tracing<'_>,
        mut maker: Option<&mut dyn DownMaker>,
    ) -> Result<RoundTrips, RehearseError> {
        let mut out = RoundTrips {
            round_trip: RoundTrip::default(),
            locks: Vec::new(),
            steps: Vec::new(),
            stopped: false,
        };
        // Only this run's migrations may be applied on the copy, in order.
        let mut known: Vec<Migration> = migrations
            .iter()
            .filter(|m| !todo.iter().any(|t| t.version == m.version))
            .cloned()
            .collect();
        // Set when the copy can no longer stand for the state after the
        // migrations so far: an up failed, or a down that commits left it
        // changed and the up would not apply again.
        let mut stopped: Option<String> = None;
        for m in todo {
            known.push(m.clone());
            stages.next(tracing.inner, &format!("round trip {}", m.label()));
            let mut trip = match (&stopped, maker.as_deref_mut()) {
                (Some(why), _) => OneTrip::not_rehearsed(m, why),
                (None, Some(maker)) if m.down.is_none() => computed::round_trip(
                    client,
                    copy,
                    (tracked, prepared),
                    &known,
                    settings,
                    m,
                    tracing,
                    maker,
                )?,
                (None, maker) => {
                    if let Some(maker) = maker {
                        maker.moved();
                    }
                    round_trip_one(client, prepared, tracked, &known, settings, m, tracing)?
                }
            };
            let accepted = options.accept_irreversible.iter().find(|(v, _)| *v == m.version);
            let irreversible =
                matches!(trip.trip.class, TripClass::DataIrreversible | TripClass::Irreversible);
            if let (true, Some((_, reason))) = (irreversible, accepted) {
                trip.trip.class = TripClass::DataAccepted;
                trip.trip.detail = format!("{}; accepted: {reason}", trip.trip.detail);
            }
            if trip.stops && stopped.is_none() {
                stopped =
                    Some(format!("{} left the copy where the next ones cannot start", m.label()));
            }
            out.locks.extend(trip.locks);
            out.steps.push(Step::of_trip(&m.label(), &trip.trip, options.require_down));
            out.round_trip.record(trip.trip);
        }
        out.round_trip.ok = out.round_trip.passes(options.require_down);
        out.round_trip.require_down = options.require_down;
        out.stopped = stopped.is_some();
        Ok(out)
    }
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

/// The copies scenarios A, B and C play on, by label.
const SCENARIOS: [&str; 3] = ["scenario_a", "scenario_b", "scenario_c"];

/// The copies scenarios A, B and C play on, made before the round trips
/// start; none when nothing is pending.
fn scenario_copies(
    workspace: &mut Workspace,
    todo: &[Migration],
) -> Result<Option<Vec<CopyDb>>, RehearseError> {
    if todo.is_empty() {
        return Ok(None);
    }
    Ok(Some(SCENARIOS.iter().map(|label| workspace.copy(label)).collect::<Result<_, _>>()?))
}

/// Plays scenarios A, B and C, each on its copy, without a word: the
/// rehearsal names each when the round trips are done.
fn play_scenarios(
    copies: &[CopyDb],
    workspace: &Workspace,
    migrations: &[Migration],
    settings: &Settings,
    todo: &[Migration],
) -> Result<Vec<Scenario>, RehearseError> {
    let each = copies.iter().enumerate();
    each.map(|(which, copy)| play(which, copy, workspace, migrations, settings, todo)).collect()
}

/// Plays scenario A, B or C (`which`: 0, 1 or 2) on `copy`.
fn play(
    which: usize,
    copy: &CopyDb,
    workspace: &Workspace,
    migrations: &[Migration],
    settings: &Settings,
    todo: &[Migration],
) -> Result<Scenario, RehearseError> {
    let quiet = &mut migrate::Quiet;
    match which {
        0 => scenario_a(copy, migrations, settings, todo, quiet),
        1 => scenario_b(copy, workspace, migrations, settings, todo, quiet),
        _ => scenario_c(copy, workspace, migrations, settings, todo, quiet),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every stage a progress line was told about, as (index, total, name).
    #[derive(Default)]
    struct Seen(Vec<(usize, usize, String)>);

    impl Progress for Seen {
        fn note(&mut self, note: Note<'_>) {
            if let Note::Stage { index, total, name } = note {
                self.0.push((index, total, name.to_string()));
            }
        }
    }

    #[test]
    fn stages_count_the_trips_and_what_follows_them() {
        assert_eq!(Stages::new(0, true, true).total, 2, "nothing pending: copy and snapshot");
        assert_eq!(Stages::new(3, false, false).total, 8, "3 trips and 3 scenarios");
        assert_eq!(Stages::new(3, true, false).total, 9, "and the [verify] suite");
        assert_eq!(Stages::new(3, true, true).total, 10, "and the expand");
        let mut stages = Stages::new(1, false, false);
        let mut seen = Seen::default();
        stages.next(&mut seen, "snapshot of the copy");
        stages.next(&mut seen, "round trip 1");
        assert_eq!(
            seen.0,
            [(2, 6, "snapshot of the copy".to_string()), (3, 6, "round trip 1".to_string())]
        );
    }

    fn folder() -> Vec<Migration> {
        let tmp = tempfile::tempdir().unwrap();
        for v in ["1_a", "2_b", "3_c", "4_d"] {
            let p = tmp.path().join(v).join("up.sql");
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "SELECT 1;").unwrap();
        }
        crate::source::load(tmp.path(), None).unwrap().migrations
    }

    fn versions(ms: Vec<&Migration>) -> Vec<&str> {
        ms.into_iter().map(|m| m.version.as_str()).collect()
    }

    #[test]
    fn the_range_bounds_the_pending_migrations_by_folder_position() {
        let ms = folder();
        let range = |a: &str, b: &str| Some((a.to_string(), b.to_string()));
        assert_eq!(versions(within(&ms, &["4", "2", "3"], &None)), ["2", "3", "4"]);
        assert_eq!(versions(within(&ms, &["2", "3", "4"], &range("1", "3"))), ["2", "3"]);
        assert_eq!(versions(within(&ms, &["1", "2", "3", "4"], &range("2", "2"))), ["2"]);
        assert_eq!(
            versions(within(&ms, &["1", "2", "3", "4"], &range("3", "9"))),
            ["3", "4"],
            "an unknown bound leaves its side open"
        );
        assert!(within(&ms, &["1"], &range("2", "4")).is_empty());
    }
}
