//! The round trip of one migration: apply its up and keep it, try its down
//! and the up after it, compare the copy with the state before the up, and
//! judge the outcome. One migration at a time, so one run reports every
//! migration and names the down that misses something.

use std::time::Instant;

use postgres::Client;

use super::explain;
use super::locks::Tracing;
use super::ms;
use super::outcome::{Difference, LockRow, MigrationTrip, TripClass};
use super::snapshot::{compare, look, refresh, written_here, Snapshot};
use super::RehearseError;
use crate::migrate::{self, ApplyError, Direction, MigrateOptions, RollbackTarget, Settings};
use crate::pg::tracked::{Tracked, Written};
use crate::pg::Prepared;
use crate::source::Migration;

/// One migration's round trip, the locks its up took, and whether the
/// copy is left where the next migrations cannot be rehearsed on it.
pub(super) struct OneTrip {
    pub(super) trip: MigrationTrip,
    pub(super) locks: Vec<LockRow>,
    pub(super) stops: bool,
}

impl OneTrip {
    pub(super) fn not_rehearsed(m: &Migration, why: &str) -> OneTrip {
        let mut trip = started(m);
        trip.class = TripClass::NotRehearsed;
        trip.detail = why.to_string();
        OneTrip { trip, locks: Vec::new(), stops: true }
    }
}

/// A trip of `m` before anything is known about it.
fn started(m: &Migration) -> MigrationTrip {
    MigrationTrip {
        version: m.version.clone(),
        name: m.name.clone(),
        class: TripClass::Ok,
        verdict: None,
        detail: String::new(),
        differences: Vec::new(),
        relations: Vec::new(),
        definitions: Vec::new(),
        cosmetic: Vec::new(),
        added: Vec::new(),
        duration_ms: 0,
    }
}

/// Why a down or an up did not run through, with its place.
fn failed_at(f: &migrate::Failure, settings: &Settings) -> String {
    let place = match (&f.file, f.line, f.statement, f.statements) {
        (Some(file), Some(line), Some(i), Some(n)) => {
            format!(" at statement {i}/{n} ({}:{line})", file.display())
        }
        _ => String::new(),
    };
    let timeout = match f.sqlstate.as_deref() {
        Some("57014") => format!(
            " (statement_timeout {})",
            crate::kit::duration::human(settings.statement_timeout)
        ),
        Some("55P03") => {
            format!(" (lock_timeout {})", crate::kit::duration::human(settings.lock_timeout))
        }
        _ => String::new(),
    };
    format!("{}{place}{timeout}", f.message)
}

/// Applies `m` (the last of `known`) and keeps it applied; then tries its
/// down and the up after it in a transaction that is rolled back, so the
/// copy is back at the state after the up whatever the down does, and the
/// next migration starts from there. A down that cannot run in a
/// transaction is run for real, and the up applied again after it.
/// `lean`: the up may go straight to its transaction (see [`apply_up`]).
#[allow(clippy::too_many_arguments)]
pub(super) fn round_trip_one(
    client: &mut Client,
    prepared: &mut Prepared,
    tracked: &mut Tracked,
    known: &[Migration],
    settings: &Settings,
    m: &Migration,
    tracing: &mut Tracing<'_>,
    lean: bool,
) -> Result<OneTrip, RehearseError> {
    let t = Instant::now();
    let mut trip = started(m);
    let finish = |mut trip: MigrationTrip, locks: Vec<LockRow>, stops: bool| {
        trip.duration_ms = ms(t.elapsed());
        let hint = match trip.class {
            TripClass::Defect | TripClass::DownFails => "computes a proved fix",
            TripClass::NoDown => "computes a proved down",
            _ => "",
        };
        if !hint.is_empty() {
            trip.detail.push_str(&format!("; `backstop downs {}` {hint}", trip.version));
        }
        Ok(OneTrip { trip, locks, stops })
    };
    // The picture of the copy as it is before the up.
    refresh(tracked, client, prepared)?;
    if m.writes_catalogs() {
        tracked.catalogs_written();
    }
    let dropped = explain::measure(client, &explain::dropped_by_up(m)).map_err(|source| {
        RehearseError::Db(crate::pg::DbError::new("measuring the tables the up drops", source))
    })?;
    // Migrations older than the latest applied one are rehearsed so that
    // they can then be applied with --allow-out-of-order.
    let opts = MigrateOptions {
        to: Some(m.version.clone()),
        allow_out_of_order: true,
        ..Default::default()
    };
    let up = match apply_up(client, known, settings, (&opts, lean), m, tracing) {
        Ok(up) => up,
        Err(ApplyError::Unrunnable(problems)) => {
            trip.class = TripClass::UpFails;
            trip.detail = problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; ");
            return finish(trip, Vec::new(), true);
        }
        Err(e) => return Err(e.into()),
    };
    let locks = tracing.drain_locks();
    tracked.wrote(tracing.take_written());
    if let Some(f) = up {
        trip.class = TripClass::UpFails;
        trip.detail = failed_at(&f, settings);
        return finish(trip, locks, true);
    }
    let up_ms = ms(t.elapsed());
    let Some(down) = &m.down else {
        trip.class = TripClass::NoDown;
        trip.detail = "only a restore can undo it".to_string();
        return finish(trip, locks, false);
    };
    if let Some(p) = m.problems_in(crate::source::Part::Down).next() {
        trip.class = TripClass::DownFails;
        trip.detail = format!("the down cannot run as written: {p}");
        return finish(trip, locks, false);
    }
    let tried = if !down.no_transaction {
        down_in_trial(client, prepared, tracked, settings, m, tracing)?
    } else {
        down_for_real(client, prepared, tracked, known, settings, &opts, tracing)?
    };
    let (before, after, re_up, stops) = match tried {
        DownTry::Fails { detail, stops } => {
            trip.class = TripClass::DownFails;
            trip.detail = detail;
            return finish(trip, locks, stops);
        }
        DownTry::Ran { before, after, re_up, stops } => (before, after, re_up, stops),
    };
    let diffs = compare(&before, &after, Some(m.version.as_str()));
    let (diffs, added) = rows_the_down_adds(m, diffs, (&before, &after));
    trip.added = added;
    let told = explain::tell_on_copy(
        client,
        prepared,
        &m.version,
        diffs,
        (&before, &after),
        &dropped,
        !stops,
    )?;
    (trip.differences, trip.relations, trip.definitions) =
        (told.differences, told.relations, told.definitions);
    trip.cosmetic = cosmetic(&before, &after, &m.version);
    (trip.class, trip.detail) =
        judge(&trip.differences, trip.cosmetic.len(), re_up.as_deref(), up_ms);
    if !trip.added.is_empty() && trip.differences.is_empty() {
        trip.detail.push_str(&format!(
            "; the down adds rows to {} (said apart)",
            trip.added.iter().map(|d| d.object.as_str()).collect::<Vec<_>>().join(", ")
        ));
    }
    if trip.class == TripClass::Defect {
        if let Some(lost) = only_lost_data(m, &trip.differences) {
            trip.class = TripClass::DataIrreversible;
            trip.detail = format!(
                "the schema round trips; {lost}: only the backup taken before it holds those rows \
                 (accept with `backstop rehearse --accept-irreversible {} --reason \"…\"`)",
                m.version
            );
        } else if let Some(lost) = only_dropped_values(m, &trip.differences, (&before, &after)) {
            trip.class = TripClass::ProvedLosing;
            trip.detail =
                format!("the schema round trips, losing {lost}: only the backup holds them");
        }
    }
    finish(trip, locks, stops)
}

/// The data differences that are rows the down adds to a table it
/// inserts into (an audit row), taken out of `differences` and said
/// apart: `backstop downs` judges a down on the rows it takes, never on
/// the rows it adds, and the two must give one answer.
fn rows_the_down_adds(
    m: &Migration,
    differences: Vec<Difference>,
    (before, after): (&Snapshot, &Snapshot),
) -> (Vec<Difference>, Vec<Difference>) {
    use backstop_sql::facts::RelationName;
    use backstop_sql::rows::RowChange;
    let Some(down) = &m.down else { return (differences, Vec::new()) };
    let written = |part: &crate::source::SqlFile| -> Vec<Option<RelationName>> {
        part.statements
            .iter()
            .flat_map(|s| backstop_sql::rows::row_changes(&s.sql))
            .map(|c| match c {
                RowChange::Inserted(i) => Some(i.table),
                RowChange::Irreversible { table, .. } => table,
                RowChange::Unreadable { .. } => None,
            })
            .collect()
    };
    // Rows the up put in a table and the down left are the down's fault.
    let (by_down, by_up) = (written(down), written(&m.up));
    let names = |t: &RelationName, (schema, name): (&str, &str)| {
        t.name == name.trim_matches('"')
            && t.schema.as_deref().is_none_or(|s| s == schema.trim_matches('"'))
    };
    let mut kept = Vec::new();
    let mut added = Vec::new();
    for d in differences {
        let table = d.object.strip_prefix("table ").filter(|_| d.message.contains("data of table"));
        let grew = table.and_then(|table| {
            let (schema, name) = table.split_once('.').unwrap_or(("public", table));
            let at = (schema, name);
            let written = by_down.iter().flatten().any(|t| names(t, at))
                && !by_up.iter().any(|t| t.as_ref().is_none_or(|t| names(t, at)));
            let (was, is) = (before.rows_of(table)?, after.rows_of(table)?);
            (written && is > was).then(|| (table.to_string(), is - was))
        });
        match grew {
            Some((table, more)) => added.push(Difference {
                version: d.version.clone(),
                object: d.object.clone(),
                message: format!(
                    "the down of {} adds {more} row(s) to table {table}: rows a down adds are \
                     said apart, not judged",
                    m.version
                ),
            }),
            None => kept.push(d),
        }
    }
    (kept, added)
}

/// When every difference after the down is in the rows of a table whose
/// columns the up dropped, and the table holds as many rows as before:
/// the values of those columns, which no down brings back, as `loses`
/// names them. The computed down of such an up is proved on its schema
/// alone the same way (`downs::quick`), so the two say the same.
fn only_dropped_values(
    m: &Migration,
    differences: &[Difference],
    (before, after): (&Snapshot, &Snapshot),
) -> Option<String> {
    let dropped = m.dropped_values();
    let explained = |d: &Difference| {
        let Some(table) = d.object.strip_prefix("table ") else { return false };
        let (schema, name) = table.split_once('.').unwrap_or(("public", table));
        let dropped_here = dropped
            .iter()
            .any(|(t, _)| t.name == name && t.schema.as_deref().is_none_or(|s| s == schema));
        dropped_here
            && d.message.contains("data of table")
            && before.rows_of(table).is_some()
            && before.rows_of(table) == after.rows_of(table)
    };
    if differences.is_empty() || !differences.iter().all(explained) {
        return None;
    }
    Some(dropped.into_iter().map(|(_, what)| what).collect::<Vec<_>>().join("; "))
}

/// Applies the up of `m` (the last of `known`, the only one pending) as
/// `migrate` applies it; its failure, if it fails. Where `lean`, an up
/// that is one transaction of its own goes straight to that transaction
/// (statements, guards, history row): the copy is this rehearsal's alone,
/// and the lock, history reads and events `migrate` wraps around it (some
/// sixteen statements, more than most ups) have nothing to find there
/// once the first up of the run went through them.
fn apply_up(
    client: &mut Client,
    known: &[Migration],
    settings: &Settings,
    (opts, lean): (&MigrateOptions, bool),
    m: &Migration,
    tracing: &mut Tracing<'_>,
) -> Result<Option<migrate::Failure>, ApplyError> {
    use crate::source::Part;
    let runnable = m.problems_in(Part::Up).chain(m.problems_in(Part::Verify)).next().is_none();
    if !(lean && runnable && m.up.in_one_transaction() && !m.repeatable) {
        return Ok(migrate::migrate(client, known, settings, opts, &mut [], tracing)?.failure);
    }
    let group = migrate::Group::whole(Direction::Up, true, vec![m]);
    let (outcome, _) = migrate::attempt(client, settings, &group, tracing, |_| Ok(true))?;
    Ok(outcome.err().map(|f| *f))
}

/// When every difference after the down is in the rows of a table the
/// up changed in a way no SQL puts back (or that a `DO` block it cannot
/// read may have changed): what the up did, for the trip's detail. The
/// same reading of the up as `backstop downs` makes, so the two agree.
fn only_lost_data(m: &Migration, differences: &[Difference]) -> Option<String> {
    use backstop_sql::rows::RowChange;
    let mut lost: Vec<(String, Option<String>)> = Vec::new();
    for s in &m.up.statements {
        let place = format!("{}:{}", m.up.path.display(), s.position.line);
        for change in backstop_sql::rows::row_changes(&s.sql) {
            match change {
                RowChange::Irreversible { what, table } => {
                    lost.push((format!("{what} ({place})"), table.map(|t| t.name)))
                }
                RowChange::Unreadable { what } => lost.push((format!("{what} ({place})"), None)),
                RowChange::Inserted(_) => {}
            }
        }
    }
    if lost.is_empty() {
        return None;
    }
    let explained = |d: &Difference| {
        let Some(table) = d.object.strip_prefix("table ") else { return false };
        let is_data = d.message.contains("data of table");
        let name = table.rsplit('.').next().unwrap_or(table).trim_matches('"');
        is_data && lost.iter().any(|(_, t)| t.as_deref().is_none_or(|t| t == name))
    };
    if differences.is_empty() || !differences.iter().all(explained) {
        return None;
    }
    let what: Vec<String> = lost.into_iter().map(|(w, _)| w).collect();
    Some(format!("rows the up changed with {} cannot be put back by SQL", what.join(", ")))
}

/// How trying a down went.
enum DownTry {
    /// The down ran through: the part of the copy the up or the down may
    /// have changed, before the up and right after the down; why the up did
    /// not apply again (if it did not), and whether the copy is left where
    /// the next migrations cannot start.
    Ran { before: Snapshot, after: Snapshot, re_up: Option<String>, stops: bool },
    /// The down failed: why, and whether the copy moved.
    Fails { detail: String, stops: bool },
}

/// Down, snapshot, up again: all in one transaction that is rolled back,
/// so the copy stays at the state after the up.
fn down_in_trial(
    client: &mut Client,
    prepared: &mut Prepared,
    tracked: &Tracked,
    settings: &Settings,
    m: &Migration,
    tracing: &mut Tracing<'_>,
) -> Result<DownTry, RehearseError> {
    let down_group = migrate::Group::whole(Direction::Down, true, vec![m]);
    let up_group = migrate::Group::whole(Direction::Up, m.up.in_one_transaction(), vec![m]);
    // An up that cannot run in a transaction is not tried again here.
    let groups: Vec<migrate::Group<'_>> =
        if up_group.transactional { vec![down_group, up_group] } else { vec![down_group] };
    let mut after = None;
    let outcomes = tracing.untraced(|tracing| {
        migrate::trial(client, settings, &groups, tracing, |i, tx| {
            if i == 0 {
                after = Some(written_here(tx).and_then(|w| look(tracked, tx, prepared, w)));
            }
            Ok(())
        })
    })?;
    if let Some(Err(f)) = outcomes.first() {
        let detail = failed_at(f, settings);
        return Ok(DownTry::Fails { detail, stops: false });
    }
    let re_up = match outcomes.get(1) {
        Some(Err(f)) => Some(failed_at(f, settings)),
        _ => None,
    };
    let (before, after) = after.expect("taken after the down passed")?;
    Ok(DownTry::Ran { before, after, re_up, stops: false })
}

/// A down that must commit statement by statement: run it for real, then
/// bring the up back.
fn down_for_real(
    client: &mut Client,
    prepared: &mut Prepared,
    tracked: &mut Tracked,
    known: &[Migration],
    settings: &Settings,
    up_again: &MigrateOptions,
    tracing: &mut Tracing<'_>,
) -> Result<DownTry, RehearseError> {
    let rollback = RollbackTarget::Steps(1);
    let down = tracing.untraced(|tracing| {
        migrate::rollback(client, known, settings, &rollback, false, tracing)
    })?;
    if let Some(f) = down.failure {
        let detail = failed_at(&f, settings);
        // Statements it committed before failing stay: the copy moved.
        return Ok(DownTry::Fails { detail, stops: f.committed_statements > 0 });
    }
    let (before, after) = look(tracked, client, prepared, Written::All)?;
    let again = tracing.untraced(|tracing| {
        migrate::migrate(client, known, settings, up_again, &mut [], tracing)
    })?;
    // The down committed and the up ran again: the next look reads it all.
    tracked.wrote(Written::All);
    let re_up = again.failure.as_ref().map(|f| failed_at(f, settings));
    let stops = re_up.is_some();
    Ok(DownTry::Ran { before, after, re_up, stops })
}

/// The differences after the down of `version` that change no behaviour,
/// each named by its kind.
fn cosmetic(before: &Snapshot, after: &Snapshot, version: &str) -> Vec<Difference> {
    before
        .schema
        .cosmetic_differences(&after.schema)
        .into_iter()
        .map(|d| Difference {
            version: Some(version.to_string()),
            // `comment on column public.t.c: lost (…)`: what the comment is on.
            object: match d.strip_prefix(crate::pg::comments::PREFIX) {
                Some(_) => d.split(": ").next().unwrap_or(&d).to_string(),
                None => d.split([':', ' ']).take(2).collect::<Vec<_>>().join(" "),
            },
            message: format!("down of {version}: {d}"),
        })
        .collect()
}

/// How a round trip whose down ran through is judged: a difference that
/// changes behaviour is a defect (whatever the up after it does); else a
/// failing up after the down; else cosmetic differences; else ok.
fn judge(
    differences: &[Difference],
    cosmetic: usize,
    re_up: Option<&str>,
    up_ms: u64,
) -> (TripClass, String) {
    match (re_up, differences.is_empty(), cosmetic == 0) {
        (_, false, _) => (
            TripClass::Defect,
            format!(
                "{} difference(s) after the down: {}{}",
                differences.len(),
                differences.iter().map(|d| d.object.as_str()).collect::<Vec<_>>().join(", "),
                re_up.map(|r| format!("; the up after it fails too: {r}")).unwrap_or_default()
            ),
        ),
        (Some(r), true, _) => (TripClass::ReUpFails, format!("the up after the down fails: {r}")),
        (None, true, false) => {
            (TripClass::CosmeticOnly, format!("restored but for {cosmetic} cosmetic difference(s)"))
        }
        (None, true, true) => {
            (TripClass::Ok, format!("up {up_ms}ms, down and up again: schema and data restored"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn difference(object: &str) -> Difference {
        Difference { version: Some("3".into()), object: object.into(), message: String::new() }
    }

    #[test]
    fn a_behaviour_difference_is_a_defect_even_when_the_up_fails_again() {
        let diffs = [difference("table public.t"), difference("index public.i")];
        assert_eq!(
            judge(&diffs, 2, None, 10),
            (
                TripClass::Defect,
                "2 difference(s) after the down: table public.t, index public.i".into()
            )
        );
        let (class, detail) = judge(&diffs, 0, Some("boom"), 10);
        assert_eq!(class, TripClass::Defect);
        assert!(detail.ends_with("; the up after it fails too: boom"), "{detail}");
    }

    #[test]
    fn without_differences_the_up_again_then_cosmetics_decide() {
        assert_eq!(
            judge(&[], 3, Some("relation exists"), 10),
            (TripClass::ReUpFails, "the up after the down fails: relation exists".into())
        );
        assert_eq!(
            judge(&[], 3, None, 10),
            (TripClass::CosmeticOnly, "restored but for 3 cosmetic difference(s)".into())
        );
        assert_eq!(
            judge(&[], 0, None, 42),
            (TripClass::Ok, "up 42ms, down and up again: schema and data restored".into())
        );
    }

    fn failure(sqlstate: Option<&str>, place: bool) -> migrate::Failure {
        migrate::Failure {
            version: "3".into(),
            name: "m".into(),
            direction: Direction::Down,
            stage: migrate::Stage::Statement,
            file: place.then(|| "migrations/3_m/down.sql".into()),
            statement: Some(2),
            statements: Some(5),
            line: Some(7),
            column: Some(1),
            sql: None,
            sqlstate: sqlstate.map(str::to_string),
            message: "canceling statement".into(),
            detail: None,
            hint: None,
            rolled_back: true,
            committed_statements: 0,
            group: Vec::new(),
            blockers: Vec::new(),
        }
    }

    #[test]
    fn a_step_names_the_class_of_its_trip_once() {
        // Regression: "not rehearsed: not rehearsed: ..." and "down fails:
        // down fails: ...", the class written by the trip and by its step.
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("2_x")).unwrap();
        std::fs::write(tmp.path().join("2_x/up.sql"), "SELECT 1;").unwrap();
        let m = &crate::source::load(tmp.path(), None).unwrap().migrations[0];
        let trip = OneTrip::not_rehearsed(m, "1_a left the copy where the next ones cannot start");
        let step = super::super::outcome::Step::of_trip("2_x", &trip.trip, false);
        assert_eq!(
            step.detail,
            "not rehearsed: 1_a left the copy where the next ones cannot start"
        );
    }

    #[test]
    fn a_failure_names_its_place_and_the_timeout_that_ended_it() {
        let settings = Settings {
            protected_tables: Vec::new(),
            lock_timeout: std::time::Duration::from_secs(5),
            statement_timeout: std::time::Duration::from_secs(60),
            lock_wait: std::time::Duration::from_secs(1),
            lock_retries: 0,
            keep: None,
            tool_history: crate::migrate::InStep::Auto,
            reason: None,
            protected_made: Vec::new(),
            extensions_as_superuser: None,
        };
        let timeout = failed_at(&failure(Some("57014"), true), &settings);
        assert!(
            timeout.starts_with("canceling statement at statement 2/5 (migrations/3_m/down.sql:7)")
        );
        assert!(timeout.ends_with(" (statement_timeout 1 min)"), "{timeout}");
        let lock = failed_at(&failure(Some("55P03"), false), &settings);
        assert_eq!(lock, "canceling statement (lock_timeout 5 s)");
        assert_eq!(failed_at(&failure(None, false), &settings), "canceling statement");
    }
}
