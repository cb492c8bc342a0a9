//! The downs of one run proved together, as a rollback of the whole run
//! runs them: a down proved alone, against the state just before its own
//! up, can still fail beside the others (one leaves rows a down before it
//! cannot drop). On the replay's copy, after the last up, every down in
//! reverse in one transaction that is rolled back, and the schema then
//! compared with the one before the first up, as a rollback's own check
//! compares it ([`crate::migrate::expect`]). A deploy onto a database with
//! history runs the downs of the newest migrations applied before it
//! after its own, whichever deploys applied them (their kept downs and the
//! records of what they must bring back, read from the target): a
//! rollback across the last deploys runs them so.

use postgres::Client;

use super::proofs::Own;
use super::run::db;
use super::{Down, DownsError, Status};
use crate::adopt::keyed::ToolHistory;
use crate::migrate::expect::{self, Expected};
use crate::migrate::{self, Direction, Settings};
use crate::source::Migration;

/// How the downs of a run fared together.
#[derive(Debug, Clone)]
pub struct Chain {
    /// The migrations whose downs ran, in the order they were applied.
    pub versions: Vec<String>,
    /// Why they do not bring the schema back together; `None`: they do.
    pub failed: Option<String>,
    /// The migration whose down fails after the ones before it, if one
    /// does: where a rollback of them would stop.
    pub stops_at: Option<String>,
}

/// An applied migration of the deploys before, as a rollback runs it: with
/// the down it would run (the kept one, else its author's) and the record
/// of what that down must bring back.
pub(super) type Earlier = (Migration, Expected);

/// How many of the migrations applied before a deploy it runs the downs
/// of after its own: a rollback across a few deploys goes back a few, and
/// a deploy of one after a bootstrap of hundreds stays as cheap as its own.
const EARLIER: usize = 20;

/// The newest applied migrations (at most [`EARLIER`] of them, whichever
/// deploys applied them), in the order applied, each with its down and
/// record (read on the target, `client`); cut after the newest one that
/// has no down, whose down runs outside a transaction or that has no
/// record (its down was never proved). None where the log is off or
/// nothing was deployed yet.
pub(super) fn earlier(
    client: &mut Client,
    migrations: &[Migration],
) -> Result<Vec<Earlier>, DownsError> {
    let read = db("reading the deploy before this one");
    if crate::schema::events::last_deploy(client).map_err(&read)?.is_empty() {
        return Ok(Vec::new());
    }
    let mut applied = crate::schema::applied::versions(client).map_err(&read)?;
    applied.retain(|v| migrations.iter().any(|m| &m.version == v && !m.repeatable));
    // The newest applied, whichever deploys applied them: a rollback of
    // the last three deploys runs them all, newest first.
    let newest: Vec<String> = applied.iter().rev().take(EARLIER).cloned().collect();
    let kept = crate::schema::applied::kept_downs_of(client, &newest).map_err(&read)?;
    let mut records = expect::records(client, &newest).map_err(&read)?;
    let mut out = Vec::new();
    for version in &newest {
        let m = migrations.iter().find(|m| &m.version == version).expect("kept to the folder's");
        let m = kept.get(version).map_or_else(|| m.clone(), |sql| m.with_kept_down(sql));
        if m.down.as_ref().is_none_or(|f| f.no_transaction) {
            break;
        }
        // No record of what its down must bring back: applied with no
        // proof of its down (adopted, or deployed with `keep_downs`
        // off), which a chain of proved downs does not take in.
        let Some(record) = records.remove(version) else { break };
        out.push((m, record));
    }
    out.reverse();
    Ok(out)
}

/// The down that runs for `d` (of `m`), where it is proved: the author's
/// where it held, else the one worked out.
fn proved(m: &Migration, d: &Down) -> Option<Migration> {
    if !d.proved || d.start.is_none() || d.end.is_none() {
        return None;
    }
    match (d.status, &d.own) {
        (Status::Ok, Some(Own::Holds)) => Some(m.clone()),
        (Status::Computed | Status::Fixed | Status::Irreversible, _) => {
            let sql = d.replacement.as_ref().or(d.sql.as_ref())?;
            Some(m.with_kept_down(sql))
        }
        _ => None,
    }
}

/// The downs `downs` of `todo` (in the order applied) tried together on
/// `client`, a copy at the state after every up; `None` where there is
/// nothing to prove together (fewer than two, one not proved, or one that
/// runs outside a transaction).
pub(super) fn prove(
    client: &mut Client,
    settings: &Settings,
    history: &ToolHistory,
    earlier: &[Earlier],
    (todo, downs): (&[&Migration], &[Down]),
) -> Result<Option<Chain>, DownsError> {
    // A rollback never goes through a migration whose up creates a
    // protected table (the guard refuses its down): the chain is the
    // downs of the migrations after the newest one.
    let all: Vec<&Migration> = earlier.iter().map(|(m, _)| m).chain(todo.iter().copied()).collect();
    let stops = migrate::protect::rollback_stops(&settings.protected_tables, all.into_iter());
    let after = |at: usize| stops.as_ref().is_none_or(|(i, _)| at > *i);
    let from = earlier.len();
    let earlier: Vec<&Earlier> =
        earlier.iter().enumerate().filter(|(at, _)| after(*at)).map(|(_, e)| e).collect();
    let downs: Vec<&Down> = downs
        .iter()
        .filter(|d| {
            todo.iter().position(|m| m.version == d.version).is_some_and(|at| after(from + at))
        })
        .collect();
    if downs.is_empty() || downs.len() + earlier.len() < 2 {
        return Ok(None);
    }
    let mut runs: Vec<Migration> = earlier.iter().map(|(m, _)| m.clone()).collect();
    let mut records: Vec<(String, Option<Expected>)> =
        earlier.iter().map(|(m, r)| (m.version.clone(), Some(r.clone()))).collect();
    for d in downs {
        let Some(m) = todo.iter().find(|m| m.version == d.version) else { return Ok(None) };
        let Some(with_down) = proved(m, d) else { return Ok(None) };
        if with_down.down.as_ref().is_none_or(|f| f.no_transaction) {
            return Ok(None);
        }
        let before = d.start.clone().expect("a proved down's start was read");
        let record = Expected { before, after: d.end.clone(), touched: d.touched.clone() };
        records.push((d.version.clone(), Some(record)));
        runs.push(with_down);
    }
    let versions: Vec<String> = runs.iter().map(|m| m.version.clone()).collect();
    let mut prepared = crate::pg::Prepared::default();
    let start =
        expect::picture(&mut *client, &mut prepared).map_err(db("reading the copy's schema"))?;
    let (_, start) = start.digest(history);
    let now = match reversed(client, settings, &runs, |tx| expect::picture(tx, &mut prepared))? {
        Reversed::Fails { version, message } => {
            let failed = fails_after(&version, &message);
            return Ok(Some(Chain { versions, failed: Some(failed), stops_at: Some(version) }));
        }
        Reversed::After(now) => now,
    };
    let (fingerprint, now) = now.digest(history);
    let checked = expect::compared(&records, Some(&start), &fingerprint, &now);
    let failed = (!checked.passed()).then(|| checked.differences.join("; "));
    Ok(Some(Chain { versions, failed, stops_at: None }))
}

/// How the downs of a chain fared run in reverse as one rollback.
pub enum Reversed<T> {
    /// This migration's down failed after the ones before it.
    Fails { version: String, message: String },
    /// They all ran: what was read after the last, inside their
    /// transaction.
    After(T),
}

/// A down that failed in a chain, as every chain proof says it.
pub fn fails_after(version: &str, message: &str) -> String {
    format!("the down of {version} fails after the ones before it: {message}")
}

/// The one chain proof's run, for the deploy's chain and a rehearsal's:
/// the downs of `runs` (in the order applied) in reverse, in one
/// transaction as a rollback runs them (statement by statement, with its
/// guards), `read` after the last, and the transaction rolled back.
pub fn reversed<T>(
    client: &mut Client,
    settings: &Settings,
    runs: &[Migration],
    mut read: impl FnMut(&mut postgres::Transaction<'_>) -> Result<T, postgres::Error>,
) -> Result<Reversed<T>, DownsError> {
    let mut reverse: Vec<&Migration> = runs.iter().collect();
    reverse.reverse();
    let group = [migrate::Group::whole(Direction::Down, true, reverse)];
    let mut after = None;
    let outcomes = migrate::trial(client, settings, &group, &mut migrate::Quiet, |_, tx| {
        after = Some(read(tx));
        Ok(())
    })?;
    if let Some(Err(f)) = outcomes.first() {
        return Ok(Reversed::Fails { version: f.version.clone(), message: f.message.clone() });
    }
    let after = after.expect("read after the downs").map_err(db("reading the copy's schema"))?;
    Ok(Reversed::After(after))
}
