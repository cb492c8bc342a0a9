//! The downs of a rehearsal's migrations proved together, as a rollback of
//! the whole run runs them: each round trip proves one down against the
//! state just before its own up, and a down can still fail beside the
//! others (one leaves rows, or an object, a down before it cannot drop).
//! On the copy where the round trips ended (every up applied), every down
//! in reverse in one transaction that is rolled back, and the schema then
//! compared with the copy's at the start; cosmetic differences do not
//! count, and rows are not compared (a down that loses values says so in
//! its own trip). The run of the downs is the deploy's chain proof's own
//! (`downs::chain::reversed`); only the comparison differs: the copy is
//! the rehearsal's alone, so its picture at the start is at hand.

use std::time::Instant;

use postgres::Client;

use super::outcome::{MigrationTrip, Step, TripClass};
use super::{ms, RehearseError};
use crate::downs::{self, chain::Reversed, DownsError};
use crate::migrate::{self, Settings};
use crate::pg::fingerprint::Schema;
use crate::pg::Prepared;
use crate::source::Migration;

/// The step's name in the report.
pub(super) const STEP: &str = "downs together";

/// Whether a trip of this class proved that its down gives back the
/// schema and every row as they were before its up: a chain of such
/// downs is proved by their round trips (each starts where the one after
/// it left the copy, exactly), with no need to run it again.
fn exact(class: TripClass) -> bool {
    matches!(class, TripClass::Ok | TripClass::CosmeticOnly | TripClass::Proved)
}

/// Whether a trip of this class leaves a down a rollback would run.
pub(super) fn holds(class: TripClass) -> bool {
    matches!(
        class,
        TripClass::Ok
            | TripClass::CosmeticOnly
            | TripClass::Proved
            | TripClass::ProvedLosing
            | TripClass::Irreversible
            | TripClass::DataIrreversible
            | TripClass::DataAccepted
    )
}

/// The step that proves the downs of `todo` together on `client` (at the
/// state after every up), `with_downs` holding each one's down (its own,
/// or the one worked out) and `start` the copy's schema before the first
/// up; `None` where there is no chain to prove: fewer than two downs, or
/// one that runs outside a transaction (said in the detail of its trip).
pub(super) fn step(
    client: &mut Client,
    settings: &Settings,
    (with_downs, todo): (&[Migration], &[Migration]),
    (start, trips): (&Schema, &[MigrationTrip]),
) -> Result<Option<Step>, RehearseError> {
    // A rollback never goes through a migration whose up creates a
    // protected table: the chain is the migrations after the newest one.
    let stops = migrate::protect::rollback_stops(&settings.protected_tables, todo.iter());
    let from = stops.as_ref().map_or(0, |(i, _)| i + 1);
    let stops_at = stops.map_or_else(String::new, |(i, tables)| {
        format!(
            " (not through {}, whose up creates protected table {}: its down would drop it)",
            todo[i].label(),
            tables.join(", ")
        )
    });
    let todo = &todo[from..];
    if todo.len() < 2 {
        return Ok(None);
    }
    let t = Instant::now();
    let versions: Vec<&str> = todo.iter().map(|m| m.version.as_str()).collect();
    let versions = versions.join(", ");
    let trip = |m: &Migration| trips.iter().find(|t| t.version == m.version);
    if todo.iter().all(|m| trip(m).is_some_and(|t| exact(t.class))) {
        return Ok(Some(Step {
            name: STEP.into(),
            ok: true,
            duration_ms: ms(t.elapsed()),
            detail: format!(
                "the downs of {versions} each gave back the schema and rows before their up in \
                 their round trips, so run in reverse they do too{stops_at}"
            ),
        }));
    }
    let mut runs = Vec::with_capacity(todo.len());
    for m in todo {
        let Some(with_down) = with_downs.iter().find(|w| w.version == m.version) else {
            return Ok(None);
        };
        if with_down.down.as_ref().is_none_or(|d| d.no_transaction) {
            return Ok(None);
        }
        runs.push(with_down.clone());
    }
    let step = |ok: bool, detail: String| Step {
        name: STEP.into(),
        ok,
        duration_ms: ms(t.elapsed()),
        detail,
    };
    // First as one batch in a transaction that is rolled back: a chain
    // that holds needs no more. Only where it fails does the chain proof
    // the deploy runs too (statement by statement, as a rollback runs
    // them) name the down that fails; and where tables are protected,
    // only that run has the guard a rollback has.
    let batch = settings.protected_tables.is_empty();
    if let Some(after) = batch.then(|| batched(client, settings, &runs)).transpose()?.flatten() {
        return Ok(Some(judged(start, &after, &versions, &stops_at, step)));
    }
    let read =
        |tx: &mut postgres::Transaction<'_>| Schema::read_prepared(tx, &mut Prepared::default());
    let ran = downs::chain::reversed(client, settings, &runs, read).map_err(|e| match e {
        DownsError::Apply(e) => RehearseError::Apply(*e),
        DownsError::Db(e) => RehearseError::Db(e),
        other => RehearseError::Down { version: versions.clone(), source: Box::new(other) },
    })?;
    Ok(Some(match ran {
        Reversed::Fails { version, message } => step(
            false,
            format!(
                "the downs of {versions}, each proved alone, fail together: {}; a rollback of \
                 them all would fail there",
                downs::chain::fails_after(&version, &message)
            ),
        ),
        Reversed::After(after) => judged(start, &after, &versions, &stops_at, step),
    }))
}

/// The step for the schema `after` the downs, against `start`.
fn judged(
    start: &Schema,
    after: &Schema,
    versions: &str,
    stops_at: &str,
    step: impl Fn(bool, String) -> Step,
) -> Step {
    let differences = start.differences(after);
    if differences.is_empty() {
        return step(
            true,
            format!(
                "the downs of {versions}, run in reverse in one transaction as a rollback of \
                 them all runs them, bring the schema back{stops_at}"
            ),
        );
    }
    step(
        false,
        format!(
            "the downs of {versions}, each proved alone, do not bring the schema back together: \
             {}; a rollback of them all would be refused by its own check",
            differences.join("; ")
        ),
    )
}

/// The downs of `runs` (in the order applied) in reverse as one batch in
/// a transaction that is rolled back: the schema after them, or `None`
/// where the batch fails.
fn batched(
    client: &mut Client,
    settings: &Settings,
    runs: &[Migration],
) -> Result<Option<Schema>, RehearseError> {
    let db = |source| RehearseError::Db(crate::pg::DbError::new("running the downs", source));
    let statements = runs.iter().rev().flat_map(|m| m.down.iter().flat_map(|d| &d.statements));
    // A statement may end in a comment: its semicolon goes on a line of its own.
    let sql: Vec<String> = statements.map(|s| format!("{}\n;", settings.as_run(&s.sql))).collect();
    let mut tx = client.transaction().map_err(db)?;
    migrate::set_timeouts(&mut tx, "LOCAL", settings).map_err(db)?;
    if tx.batch_execute(&sql.join("\n")).is_err() {
        tx.rollback().map_err(db)?;
        return Ok(None);
    }
    let after = Schema::read_prepared(&mut tx, &mut Prepared::default()).map_err(db)?;
    tx.rollback().map_err(db)?;
    Ok(Some(after))
}
