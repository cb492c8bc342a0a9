//! The round trips of the pending migrations: one per migration, in
//! order, on the rehearsal's copy, each from the state after the ups
//! before it.
//!
//! A long run is cut in two halves played side by side, the second on a
//! copy of its own that first applies the first half's ups as `migrate`
//! applies them; where the cut falls is settled while they run, so that
//! both end together (`meet`). The rule that keeps one down's defect from
//! hiding behind another's: every migration still has its own round trip,
//! compared with the picture of its copy just before its own up, and
//! nothing is batched.
//! The first half stopping (an up that fails, a down that leaves the copy
//! where the next ones cannot start) makes every trip of the second half
//! "not rehearsed", as one run would. Not cut: a run the rehearsal
//! isolates (its migrations change what the whole server shares), and
//! copies that cannot be worked on side by side (`Workspace::side_by_side`).

use postgres::Client;

use super::computed_trip;
use super::halves_meet::Meet;
use super::injected::APlan;
use super::locks::Tracing;
use super::outcome::{LockRow, RoundTrip, Scenario, Step, TripClass};
use super::round_trip::{round_trip_one, OneTrip};
use super::second_half::{self, BStart};
use super::snapshot::{track, Snapshot};
use super::{Options, RehearseError};
use crate::copies::clone::{CopyDb, Workspace};
use crate::downs::made::{DownMaker, Makers};
use crate::migrate::{self, MigrateOptions, Note, Progress, Settings};
use crate::pg::tracked::Tracked;
use crate::pg::Prepared;
use crate::source::Migration;

/// How many pending migrations a run holds before it is cut in two:
/// below this, the second copy and the plain apply of the first half cost
/// about what the cut saves.
const CUT_FROM: usize = 40;

/// Counts the rehearsal's steps for the progress line.
pub(super) struct Stages {
    done: usize,
    total: usize,
}

impl Stages {
    /// The copy is stage 1 and done; then the snapshot, a round trip per
    /// pending migration and, when any is pending, the `[verify]` suite
    /// (when it has checks) and the three scenarios.
    pub(super) fn new(pending: usize, verifies: bool, expands: bool) -> Stages {
        let after = 3 + usize::from(verifies) + usize::from(expands);
        let after_trips = if pending == 0 { 0 } else { after };
        Stages { done: 1, total: 2 + pending + after_trips }
    }

    pub(super) fn next(&mut self, progress: &mut dyn Progress, name: &str) {
        self.done += 1;
        progress.note(Note::Stage { index: self.done, total: self.total, name });
    }
}

/// A copy the round trips run on: its session, and the picture of it.
pub(super) struct OnCopy<'a> {
    pub(super) client: &'a mut Client,
    pub(super) copy: &'a CopyDb,
    pub(super) prepared: &'a mut Prepared,
    pub(super) tracked: &'a mut Tracked,
}

/// What the round trips of all pending migrations found: the trips, the
/// locks the ups took, a step per migration, and why the copy was left
/// where later migrations (and the `[verify]` suite) cannot run on it.
pub(super) struct RoundTrips {
    pub(super) round_trip: RoundTrip,
    pub(super) locks: Vec<LockRow>,
    pub(super) steps: Vec<Step>,
    pub(super) stopped: Option<String>,
    /// Scenario A, where it rode on these copies (see `ride`) and the
    /// round trips reached its state.
    pub(super) a: Option<Scenario>,
    /// Scenario B's start, where it rode on these copies, and B once
    /// played where they ended.
    pub(super) b_start: Option<BStart>,
    pub(super) b: Option<Scenario>,
}

/// Where the round trips of a run are cut in two: the first migration of
/// the second half, unless the halves settle another as they run, and
/// that half's copy.
pub(super) struct Cut {
    at: usize,
    copy: CopyDb,
}

/// The label of the second half's copy.
pub(super) const SECOND_HALF: &str = "round_trip_second_half";

/// Where `todo` is cut, when it is long enough, the machine has a second
/// core and the copies may be worked on side by side.
pub(super) fn cut_at(workspace: &Workspace, todo: &[Migration], isolated: bool) -> Option<usize> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cores < 2 || isolated || !workspace.side_by_side() || todo.len() < CUT_FROM {
        return None;
    }
    // The second half also applies the first half's ups, which cost
    // about a fifth of a round trip each: it takes a little less.
    Some(todo.len() - todo.len() * 9 / 20)
}

impl Cut {
    /// The cut at `at`, on `copy` (made with the label [`SECOND_HALF`]).
    pub(super) fn new(at: usize, copy: CopyDb) -> Cut {
        Cut { at, copy }
    }
}

/// Where the round trips ended: on the rehearsal's copy, or on the second
/// half's (its session), or on the second half's where B's end already
/// restored it (see `ride`).
pub(super) enum End<'c> {
    Main,
    Second(Box<Client>, &'c CopyDb),
    Restored,
}

/// Where scenarios ride on a cut run: A's plan, and the workspace where B
/// ends on the second half's own thread (none: B ends after both halves,
/// as a `[verify]` suite must run on the copy first).
pub(super) type Rides<'a> = Option<(&'a APlan, Option<&'a Workspace>)>;

/// The round trips of `todo` on `main`, the second half on `cut`'s copy
/// beside it where there is a cut; there, scenarios A and B ride on the
/// two copies where `ride` is given (see `ride`).
#[allow(clippy::too_many_arguments)]
pub(super) fn all<'c>(
    main: OnCopy<'_>,
    (cut, ride): (Option<&'c Cut>, Rides<'_>),
    migrations: &[Migration],
    todo: &[Migration],
    (settings, options): (&Settings, &Options),
    stages: &mut Stages,
    tracing: &mut Tracing<'_>,
    makers: Option<&mut Makers<'_>>,
) -> Result<(RoundTrips, End<'c>), RehearseError> {
    let t = std::time::Instant::now();
    let (maker, other_maker) = match makers {
        Some(Makers { first, second }) => {
            let first: &mut dyn DownMaker = &mut **first;
            let second: &mut (dyn DownMaker + Send) = &mut **second;
            (Some(first), Some(second))
        }
        None => (None, None),
    };
    let Some(cut) = cut else {
        let on = (migrations, &[] as &[Migration]);
        let mut trips =
            run(main, on, todo, (settings, options), Some(stages), tracing, (maker, None, None))?;
        trips.round_trip.duration_ms = super::ms(t.elapsed());
        return Ok((trips, End::Main));
    };
    let at = ride.and_then(|(plan, _)| second_half::a_at(plan, todo));
    let mut beside = tracing.inner.beside();
    let meet = Meet::new(todo.len());
    let (trips, other) = std::thread::scope(|s| {
        let other = s.spawn(|| {
            second_half(
                (cut, &meet),
                migrations,
                todo,
                (settings, options),
                beside.as_mut(),
                (other_maker, ride.map(|(plan, ws)| (plan, at, ws))),
            )
        });
        let trips = run(
            main,
            (migrations, &[]),
            todo,
            (settings, options),
            Some(&mut *stages),
            tracing,
            (maker, None, Some(&meet)),
        );
        let first_ms = super::ms(t.elapsed());
        (
            trips.map(|trips| (trips, first_ms)),
            other.join().expect("the second half's thread does not panic"),
        )
    });
    tracing.rejoin();
    let (mut trips, first_ms) = trips?;
    let (mut other, client, cut_at) = other?;
    // The round trips' own time: B's end may follow them on their half.
    let trips_ms = first_ms.max(other.round_trip.duration_ms);
    let second = &todo[cut_at..];
    (trips.a, trips.b_start, trips.b) = (other.a.take(), other.b_start.take(), other.b.take());
    if let (Some(why), Some(b)) = (&trips.stopped, &mut trips.b) {
        // B ended on its half before the first half stopped: as one run,
        // the migration failed.
        *b = second_half::b_stopped(b.duration_ms, why);
    }
    for m in second {
        stages.next(tracing.inner, &format!("round trip {}", m.label()));
    }
    match trips.stopped.clone() {
        // As one run: nothing after the stop is rehearsed.
        Some(why) => {
            for m in second {
                add(&mut trips, m, OneTrip::not_rehearsed(m, &why), options);
            }
        }
        None => {
            trips.locks.extend(other.locks);
            trips.steps.extend(other.steps);
            for t in other.round_trip.migrations {
                trips.round_trip.record(t);
            }
            trips.stopped = other.stopped;
        }
    }
    trips.round_trip.ok = trips.round_trip.passes(options.require_down);
    trips.round_trip.duration_ms = trips_ms;
    let end = match client {
        Some(client) => End::Second(Box::new(client), &cut.copy),
        None => End::Restored,
    };
    Ok((trips, end))
}

/// Where scenarios ride on the copies: A's plan, the index among all
/// pending migrations where A plays (`None`: nowhere), and where B ends on
/// this half (see [`Rides`]). A plays on the second half's copy, which
/// passes through every state: while it applies the first half's ups, or
/// among its own round trips.
type Riding<'p> = Option<(&'p APlan, Option<usize>, Option<&'p Workspace>)>;

/// The second half on its copy: the cut settled (see `meet`), the ups
/// of the first half applied as `migrate` applies them (with those
/// pending before a range), then the round trips of the rest of `todo`.
/// Its trips, its session (none where B ended on it), and the cut. Where
/// scenarios ride, B's start is taken first.
fn second_half(
    (cut, meet): (&Cut, &Meet),
    migrations: &[Migration],
    todo: &[Migration],
    (settings, options): (&Settings, &Options),
    progress: &mut (dyn Progress + Send),
    (maker, ride): (Option<&mut (dyn DownMaker + Send)>, Riding<'_>),
) -> Result<(RoundTrips, Option<Client>, usize), RehearseError> {
    let mut client = cut.copy.connect()?;
    let b_start = match ride {
        Some(_) => Some(BStart::take(&mut client, &cut.copy, settings)?),
        None => None,
    };
    let (at, b_here) = (ride.and_then(|(_, at, _)| at), ride.and_then(|(_, _, ws)| ws));
    let carries = (at, b_here.is_some());
    let cut_at = meet.settle(cut.at, b_start.as_ref().map(BStart::took), carries);
    let (first, second) = todo.split_at(cut_at);
    let early = ride.zip(at.filter(|&at| at < first.len())).map(|((plan, _, _), at)| (plan, at));
    let start = b_start.as_ref().map(BStart::start);
    let (a, stopped) = apply_first(&mut client, migrations, settings, first, (early, start))?;
    if let Some(why) = stopped {
        // The first half stops there too, and says so for these.
        let mut trips = RoundTrips::empty(options);
        for m in second {
            add(&mut trips, m, OneTrip::not_rehearsed(m, &why), options);
        }
        (trips.stopped, trips.a, trips.b_start) = (Some(why), a, b_start);
        return Ok((trips, Some(client), cut_at));
    }
    let mut prepared = Prepared::default();
    let mut tracked = track(&mut client, &mut prepared)?;
    let mut tracing = Tracing::new(progress);
    let on = OnCopy {
        client: &mut client,
        copy: &cut.copy,
        prepared: &mut prepared,
        tracked: &mut tracked,
    };
    let maker = maker.map(|m| m as &mut dyn DownMaker);
    let late =
        ride.zip(at.and_then(|at| at.checked_sub(first.len()))).map(|((p, _, _), at)| (p, at));
    let on_copy = (migrations, &[] as &[Migration]);
    let mut trips =
        run(on, on_copy, second, (settings, options), None, &mut tracing, (maker, late, None))?;
    trips.a = trips.a.or(a);
    trips.round_trip.duration_ms = super::ms(meet.elapsed());
    match (b_here, b_start) {
        // B's end beside the first half's last round trips; should the
        // first half stop, `all` says B's migration failed.
        (Some(ws), Some(start)) => {
            let stopped = trips.stopped.clone();
            let b =
                second_half::b_end(client, (&cut.copy, ws), settings, start, stopped.as_deref())?;
            trips.b = Some(b);
            Ok((trips, None, cut_at))
        }
        (_, b_start) => {
            trips.b_start = b_start;
            Ok((trips, Some(client), cut_at))
        }
    }
}

/// The ups of `first` applied as `migrate` applies them, not in the
/// statement log (which holds each round trip once); A played among them
/// where `early` says (its plan and index; `start`: the copy as read
/// before anything was applied, B's start). A, and why the second half
/// cannot go on: an up that fails, or A leaving the copy changed.
fn apply_first(
    client: &mut Client,
    migrations: &[Migration],
    settings: &Settings,
    first: &[Migration],
    (early, start): (Option<(&APlan, usize)>, Option<&Snapshot>),
) -> Result<(Option<Scenario>, Option<String>), RehearseError> {
    let quiet = &mut migrate::Quiet;
    let mut apply = |client: &mut Client, to: &Migration| -> Result<_, RehearseError> {
        let to = Some(to.version.clone());
        let opts = MigrateOptions { to, allow_out_of_order: true, ..Default::default() };
        let report = migrate::migrate(client, migrations, settings, &opts, &mut [], quiet)?;
        Ok(report
            .failure
            .map(|f| format!("{} fails on the second half's copy: {}", f.version, f.message)))
    };
    let mut a = None;
    if let Some((plan, at)) = early {
        if let Some(before) = at.checked_sub(1).map(|i| &first[i]) {
            if let Some(why) = apply(client, before)? {
                return Ok((None, Some(why)));
            }
        }
        // At the start, B has just read the copy as it is.
        let read = start.filter(|_| at == 0);
        let (played, stop) = second_half::a_here(client, migrations, settings, plan, read)?;
        a = Some(played);
        if stop.is_some() {
            return Ok((a, stop));
        }
    }
    let last = first.last().expect("a cut leaves a first half");
    Ok((a, apply(client, last)?))
}

impl RoundTrips {
    fn empty(options: &Options) -> RoundTrips {
        let round_trip = RoundTrip { require_down: options.require_down, ..Default::default() };
        RoundTrips {
            round_trip,
            locks: Vec::new(),
            steps: Vec::new(),
            stopped: None,
            a: None,
            b_start: None,
            b: None,
        }
    }
}

/// Adds the trip of `m`: an irreversible one accepted with a reason is
/// recorded as accepted; one that leaves the copy behind stops the run.
fn add(out: &mut RoundTrips, m: &Migration, mut trip: OneTrip, options: &Options) {
    let accepted = options.accept_irreversible.iter().find(|(v, _)| *v == m.version);
    let irreversible =
        matches!(trip.trip.class, TripClass::DataIrreversible | TripClass::Irreversible);
    if let (true, Some((_, reason))) = (irreversible, accepted) {
        trip.trip.class = TripClass::DataAccepted;
        trip.trip.detail = format!("{}; accepted: {reason}", trip.trip.detail);
    }
    if trip.stops && out.stopped.is_none() {
        out.stopped = Some(format!("{} left the copy where the next ones cannot start", m.label()));
    }
    out.locks.extend(trip.locks);
    out.steps.push(Step::of_trip(&m.label(), &trip.trip, options.require_down));
    out.round_trip.record(trip.trip);
}

/// Scenario A's plan and the index among a run's migrations where it
/// plays, before that migration's round trip.
type APlays<'p> = Option<(&'p APlan, usize)>;

/// Round-trips each of `todo` in order on the copy, each from the state
/// after the ups before it; `later`: the pending migrations after them,
/// which this copy does not apply. `a`: scenario A's plan and the index
/// among `todo` where it plays, before that migration's round trip.
/// `meet`: the first half of a cut run stops where the cut is settled.
fn run(
    on: OnCopy<'_>,
    (migrations, later): (&[Migration], &[Migration]),
    todo: &[Migration],
    (settings, options): (&Settings, &Options),
    mut stages: Option<&mut Stages>,
    tracing: &mut Tracing<'_>,
    (mut maker, a, meet): (Option<&mut dyn DownMaker>, APlays<'_>, Option<&Meet>),
) -> Result<RoundTrips, RehearseError> {
    let OnCopy { client, copy, prepared, tracked } = on;
    let mut out = RoundTrips::empty(options);
    // The first up with a down of its own goes through all of `migrate`
    // (which makes the copy's history tables and refuses an expand in
    // progress); the others straight to their transaction.
    let mut checked = false;
    // Only this run's migrations may be applied on the copy, in order.
    let pending = |m: &Migration| todo.iter().chain(later).any(|t| t.version == m.version);
    let mut known: Vec<Migration> = migrations.iter().filter(|m| !pending(m)).cloned().collect();
    for (i, m) in todo.iter().enumerate() {
        if meet.is_some_and(|meet| !meet.claim(i)) {
            break;
        }
        if let (Some((plan, _)), None) = (a.filter(|&(_, at)| at == i), &out.stopped) {
            let (played, stop) = second_half::a_here(client, migrations, settings, plan, None)?;
            (out.a, out.stopped) = (Some(played), stop);
            // Its run came and went through `migrate`: the picture and the
            // maker read the copy again.
            tracked.wrote(crate::pg::tracked::Written::All);
            if let Some(maker) = maker.as_deref_mut() {
                maker.moved();
            }
        }
        known.push(m.clone());
        if let Some(stages) = stages.as_deref_mut() {
            stages.next(tracing.inner, &format!("round trip {}", m.label()));
        }
        // Set when the copy can no longer stand for the state after the
        // migrations so far: an up failed, or a down that commits left it
        // changed and the up would not apply again.
        let trip = match (&out.stopped, maker.as_deref_mut()) {
            (Some(why), _) => OneTrip::not_rehearsed(m, why),
            (None, Some(maker)) if m.down.is_none() => computed_trip::round_trip(
                client,
                copy,
                (tracked, prepared),
                &known,
                settings,
                m,
                tracing,
                maker,
            )?,
            (None, None) => {
                let lean = std::mem::replace(&mut checked, true);
                round_trip_one(client, prepared, tracked, &known, settings, m, tracing, lean)?
            }
            (None, Some(maker)) => {
                let lean = std::mem::replace(&mut checked, true);
                // A down of its author's that holds is kept as proved, so
                // the deploy of these files need not prove it again.
                maker.moved();
                let mark = maker.mark(client, (tracked, prepared)).map_err(|e| {
                    RehearseError::Down { version: m.version.clone(), source: Box::new(e) }
                })?;
                let trip =
                    round_trip_one(client, prepared, tracked, &known, settings, m, tracing, lean)?;
                let held = matches!(
                    trip.trip.class,
                    TripClass::Ok | TripClass::CosmeticOnly | TripClass::ProvedLosing
                );
                if held && !trip.stops {
                    maker.held(client, (tracked, prepared), m, mark).map_err(|e| {
                        RehearseError::Down { version: m.version.clone(), source: Box::new(e) }
                    })?;
                }
                trip
            }
        };
        add(&mut out, m, trip, options);
    }
    out.round_trip.ok = out.round_trip.passes(options.require_down);
    Ok(out)
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
}
