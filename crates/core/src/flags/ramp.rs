//! Release ramps: a release's share raised step by step (`flags ramp v2
//! --steps 1,5,25,50,100 --every 10m`) with flagd's `fractional`, whose
//! buckets are fixed by flag key and targeting key, so a user who has the
//! release at 5 % still has it at 25 %. The rule lives here: the plan and
//! its checks, when a step is due and what lets it happen (the triggers
//! judged clear since the step began), and each change in one transaction
//! with the flags, the audit events and the `NOTIFY` every `serve` reloads
//! on. A step moves only from the step recorded, so two processes never
//! serve a step twice nor skip one. Sampling and judging the triggers, and
//! killing the release at a breach, is the watch loop's
//! ([`crate::watch`]), which carries a ramp on.

use std::time::Duration;

use postgres::{Client, GenericClient, Transaction};
use serde::Serialize;
use serde_json::{json, Value};

use super::store::{self, FlagChange};
use super::{FlagsError, State};
use crate::pg::{db, DbError};
use crate::schema::{self, events, flags as flag_table, ramps as table};

pub use crate::schema::ramps::{Ramp, RampState};

/// Why a ramp could not be started, moved or stopped.
#[derive(Debug, thiserror::Error)]
pub enum RampError {
    #[error("--steps {given:?}: {why}; write rising shares in per cent from 0 to 100, e.g. --steps 1,5,25,50,100")]
    BadSteps { given: String, why: String },
    #[error("--every {given:?}: {why}")]
    BadEvery { given: String, why: String },
    #[error("release {release} is already ramping (ramp {id}: steps {steps}, at {share}%); carry it on with `backstop flags ramp {release}`, or stop it first with `backstop flags ramp {release} --abort --reason \"...\"`")]
    Running { release: String, id: i64, steps: String, share: i32 },
    #[error("the ramp of release {release} is carried on by {by} right now; `backstop flags ramp {release} --status` shows it (stop the process of that session, or end the session with pg_terminate_backend, to carry it on here)")]
    CarriedElsewhere { release: String, by: String },
    #[error("no ramp of release {release} is running; start one with `backstop flags ramp {release} --steps 1,5,25,50,100 --every 10m --reason \"...\"`")]
    NoRamp { release: String },
    #[error("a ramp is judged by the [[triggers]] between its steps, and backstop.toml has none; add the triggers that say the release is healthy")]
    NoTriggers,
    #[error(transparent)]
    Flags(#[from] FlagsError),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl RampError {
    /// 2 for what the operator asked wrongly, the flags' and the database's own otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            RampError::Flags(e) => e.exit_code(),
            RampError::Db(_) => 3,
            _ => 2,
        }
    }
}

/// What a ramp is to do: the shares in turn, and the least time between two.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub steps: Vec<u32>,
    pub every: Duration,
}

impl Plan {
    /// Reads `--steps 1,5,25,50,100` and `--every 10m`.
    pub fn parse(steps: &str, every: &str) -> Result<Plan, RampError> {
        let bad = |why: String| RampError::BadSteps { given: steps.to_string(), why };
        let mut shares = Vec::new();
        for part in steps.split(',') {
            let text = part.trim().trim_end_matches('%').trim();
            if text.is_empty() {
                return Err(bad("a share is missing between two commas".into()));
            }
            let share: u32 = text
                .parse()
                .map_err(|_| bad(format!("{:?} is not a whole number of per cent", part.trim())))?;
            shares.push(share);
        }
        let every = crate::kit::duration::parse(every)
            .map_err(|why| RampError::BadEvery { given: every.to_string(), why })?;
        if every < Duration::from_secs(1) {
            return Err(RampError::BadEvery {
                given: crate::kit::duration::human(every),
                why: "a step needs at least a second to be judged; write e.g. \"10m\"".into(),
            });
        }
        let plan = Plan { steps: shares, every };
        plan.check().map_err(bad)?;
        Ok(plan)
    }

    /// Refuses shares outside 0..=100 and shares that do not rise.
    pub fn check(&self) -> Result<(), String> {
        if let Some(s) = self.steps.iter().find(|s| **s > 100) {
            return Err(format!("{s} is more than 100"));
        }
        if let Some(w) = self.steps.windows(2).find(|w| w[1] <= w[0]) {
            return Err(format!("{} after {} does not rise", w[1], w[0]));
        }
        Ok(())
    }

    fn every_ms(&self) -> i64 {
        i64::try_from(self.every.as_millis()).unwrap_or(i64::MAX)
    }

    fn shares(&self) -> Vec<i32> {
        self.steps.iter().map(|s| *s as i32).collect()
    }

    /// Whether `r` is this plan.
    fn is(&self, r: &Ramp) -> bool {
        r.steps == self.shares() && r.every_ms == self.every_ms()
    }
}

impl Ramp {
    /// The share served now, in per cent.
    pub fn share(&self) -> i32 {
        self.steps.get(self.step as usize).copied().unwrap_or(0)
    }

    /// The share of the next step, if there is one.
    pub fn next_share(&self) -> Option<i32> {
        self.steps.get(self.step as usize + 1).copied()
    }

    /// The least time between two steps.
    pub fn every(&self) -> Duration {
        Duration::from_millis(self.every_ms.max(0) as u64)
    }

    /// How long until the next step is due, as of when the row was read;
    /// zero when it is due, none without a next step.
    pub fn due_in(&self) -> Option<Duration> {
        let next = self.next_at?;
        Some((next - self.as_of).to_std().unwrap_or(Duration::ZERO))
    }

    /// `1% → 5% → [25%] → 50% → 100%`: the plan, the step served now in brackets.
    pub fn path(&self) -> String {
        let current = (self.state == RampState::Running).then_some(self.step as usize);
        self.steps
            .iter()
            .enumerate()
            .map(|(i, s)| if Some(i) == current { format!("[{s}%]") } else { format!("{s}%") })
            .collect::<Vec<_>>()
            .join(" → ")
    }
}

/// What the triggers say about the step a ramp is at.
#[derive(Debug, Clone, PartialEq)]
pub enum Judgement {
    /// Every trigger sampled since the step began, all within their thresholds.
    Clear,
    /// Not every trigger has been sampled since the step began.
    Unjudged,
    /// Not enough to go on (no data, too few samples, declining): the ramp
    /// waits for the triggers or a person.
    Hold(String),
}

/// What a ramp does next, by [`next_move`].
#[derive(Debug, Clone, PartialEq)]
pub enum Move {
    /// The next step is not due yet, or the step is not judged yet.
    Wait,
    /// Serve the next step now.
    Advance,
    /// Due, and held by the triggers: the reason.
    Hold(String),
    /// Not running any more.
    Ended,
}

/// The rule of a ramp: once the next step is due, it is served when the
/// triggers, sampled since the step began, are all clear; a trigger that
/// cannot judge holds the ramp where it is. (A breach is not a move: it
/// kills the release.)
pub fn next_move(r: &Ramp, judgement: &Judgement) -> Move {
    if r.state != RampState::Running || r.next_share().is_none() {
        return Move::Ended;
    }
    if r.due_in().is_some_and(|d| !d.is_zero()) {
        return Move::Wait;
    }
    match judgement {
        Judgement::Clear => Move::Advance,
        Judgement::Unjudged => Move::Wait,
        Judgement::Hold(why) => Move::Hold(why.clone()),
    }
}

/// How a ramp was taken up by [`begin`].
#[derive(Debug, Clone)]
pub enum Begun {
    /// Started now, its first step served.
    Started(Ramp),
    /// Already running: carried on from its recorded step.
    Resumed(Ramp),
}

impl Begun {
    pub fn ramp(&self) -> &Ramp {
        match self {
            Begun::Started(r) | Begun::Resumed(r) => r,
        }
    }
}

/// The running ramp of `release`, if any.
fn running_of(client: &mut impl GenericClient, release: &str) -> Result<Option<Ramp>, RampError> {
    let latest = table::latest(client, release).map_err(db("reading backstop.ramps"))?;
    Ok(latest.filter(|r| r.state == RampState::Running))
}

/// Starts a ramp of `release` with `plan` (its first share served at
/// once), or takes up the one running with the same plan (or with any,
/// when `plan` is none) where it stands. Either way this session carries
/// it on from now, recorded as `by`; another that does is an error, and
/// so is a running ramp with another plan.
pub fn begin(
    client: &mut Client,
    release: &str,
    plan: Option<&Plan>,
    by: &str,
    reason: &str,
) -> Result<Begun, RampError> {
    if let Some(r) = running_of(client, release)? {
        if plan.is_some_and(|p| !p.is(&r)) {
            return Err(RampError::Running {
                release: release.to_string(),
                id: r.id,
                steps: r.steps.iter().map(i32::to_string).collect::<Vec<_>>().join(","),
                share: r.share(),
            });
        }
        take_over(client, &r, by)?;
        let r = running_of(client, release)?.unwrap_or(r);
        return Ok(Begun::Resumed(r));
    }
    let Some(plan) = plan else {
        return Err(RampError::NoRamp { release: release.to_string() });
    };
    store::require_reason(reason)?;
    if !super::list(client)?.iter().any(|f| f.release == release) {
        return Err(FlagsError::UnknownRelease { release: release.to_string() }.into());
    }
    schema::ensure(client).map_err(db("creating the backstop schema"))?;
    let mut tx = client.transaction().map_err(db("starting the ramp"))?;
    let row =
        table::NewRamp { release, steps: &plan.shares(), every_ms: plan.every_ms(), by, reason };
    let id = match table::insert(&mut tx, &row) {
        Ok(id) => id,
        Err(e) if e.code() == Some(&postgres::error::SqlState::UNIQUE_VIOLATION) => {
            // Another started one at the same moment.
            drop(tx);
            return begin(client, release, Some(plan), by, reason);
        }
        Err(e) => return Err(DbError::new("recording the ramp", e).into()),
    };
    let first = plan.steps[0];
    let mut changes = store::share_release(&mut tx, release, Some(first), by)?;
    let ramp = table::lock(&mut tx, id)
        .map_err(db("reading the ramp"))?
        .ok_or_else(|| RampError::NoRamp { release: release.to_string() })?;
    if ramp.state == RampState::Running
        && !table::take_over(&mut tx, id, by).map_err(db("taking the ramp over"))?
    {
        // A new id no one has seen: only a session of this very process could hold it.
        return Err(RampError::CarriedElsewhere { release: release.to_string(), by: by.into() });
    }
    record(&mut tx, "begun", &ramp, json!({ "reason": reason }))?;
    if ramp.state == RampState::Done {
        record(&mut tx, "done", &ramp, json!({}))?;
    }
    finish(tx, &mut changes, &ramp, by, &format!("ramp of {release} begun: {reason}"))?;
    Ok(Begun::Started(Ramp { driven_by: Some(by.to_string()), ..ramp }))
}

/// Takes the running ramp `r` over for this session, or says who has it.
pub fn take_over(client: &mut impl GenericClient, r: &Ramp, by: &str) -> Result<(), RampError> {
    if table::take_over(client, r.id, by).map_err(db("taking the ramp over"))? {
        return Ok(());
    }
    // The live holder, not `driven_by`: that names whoever took it last,
    // maybe a process killed since.
    let holder = table::holder(client, r.id).map_err(db("looking for the ramp's carrier"))?;
    let by = match holder {
        Some(h) => format!("the session {h}"),
        None => "a session this role may not see".into(),
    };
    Err(RampError::CarriedElsewhere { release: r.release.clone(), by })
}

/// Whether this session could take `r` over (none other carries it on).
pub fn try_take_over(client: &mut impl GenericClient, r: &Ramp, by: &str) -> Result<bool, DbError> {
    table::take_over(client, r.id, by).map_err(db("taking the ramp over"))
}

/// Lets `r` go, for another process to carry on.
pub fn let_go(client: &mut impl GenericClient, r: &Ramp) -> Result<(), DbError> {
    table::let_go(client, r.id).map_err(db("letting the ramp go"))
}

/// What [`advance`] did.
#[derive(Debug, Clone)]
pub enum Advanced {
    /// The next share is served.
    Stepped { ramp: Ramp, changes: Vec<FlagChange> },
    /// The ramp had moved on already (another process): as it is now.
    Moved(Ramp),
    /// The ramp is not running any more, or stopped now because a flag of
    /// its release was turned off outside it: as it is now.
    Ended(Ramp),
}

/// Serves `r`'s next share, from the step `r` is at only.
pub fn advance(client: &mut Client, r: &Ramp, actor: &str) -> Result<Advanced, RampError> {
    let mut tx = client.transaction().map_err(db("starting the ramp's step"))?;
    let Some(now) = table::lock(&mut tx, r.id).map_err(db("reading the ramp"))? else {
        return Ok(Advanced::Ended(Ramp { state: RampState::Aborted, ..r.clone() }));
    };
    if now.state != RampState::Running {
        return Ok(Advanced::Ended(now));
    }
    if now.step != r.step || now.next_share().is_none() {
        return Ok(Advanced::Moved(now));
    }
    if let Some(note) = turned_off(&mut tx, &now)? {
        let ended = stop(tx, &now, RampState::Killed, actor, &note)?;
        return Ok(Advanced::Ended(ended));
    }
    let to = now.step + 1;
    let share = now.steps[to as usize];
    let mut changes = store::share_release(&mut tx, &r.release, Some(share as u32), actor)?;
    if !table::set_step(&mut tx, r.id, now.step, to, actor).map_err(db("moving the ramp"))? {
        return Ok(Advanced::Moved(now));
    }
    let ramp = table::lock(&mut tx, r.id).map_err(db("reading the ramp"))?.unwrap_or(now);
    record(&mut tx, "step", &ramp, json!({}))?;
    if ramp.state == RampState::Done {
        record(&mut tx, "done", &ramp, json!({}))?;
    }
    let why = format!(
        "ramp of {}: step {} of {}, {share}%: the triggers were clear",
        r.release,
        to + 1,
        ramp.steps.len()
    );
    finish(tx, &mut changes, &ramp, actor, &why)?;
    Ok(Advanced::Stepped { ramp, changes })
}

/// Why `r` may go no further when a person or a watch turned a flag of
/// its release off (`flags kill`, the status page's button, a method A).
fn turned_off(client: &mut impl GenericClient, r: &Ramp) -> Result<Option<String>, RampError> {
    let off = super::list(client)?
        .into_iter()
        .find(|f| f.release == r.release && f.state == State::Disabled);
    Ok(off.map(|f| format!("flag {} of the release was turned off outside the ramp", f.key)))
}

/// Records running ramp `r` as killed when a flag of its release was
/// turned off outside it; the ramp as it ended, none while its release is on.
pub fn end_if_turned_off(
    client: &mut Client,
    r: &Ramp,
    actor: &str,
) -> Result<Option<Ramp>, RampError> {
    if turned_off(client, r)?.is_none() {
        return Ok(None);
    }
    let mut tx = client.transaction().map_err(db("stopping the ramp"))?;
    let Some(now) = table::lock(&mut tx, r.id).map_err(db("reading the ramp"))? else {
        return Ok(None);
    };
    match turned_off(&mut tx, &now)? {
        Some(note) if now.state == RampState::Running => {
            Ok(Some(stop(tx, &now, RampState::Killed, actor, &note)?))
        }
        _ => Ok(None),
    }
}

/// Stops the running ramp of `release` where it is: the share served
/// stays (`flags kill` turns the release off). The ramp as it ended.
pub fn abort(
    client: &mut Client,
    release: &str,
    actor: &str,
    reason: &str,
) -> Result<Ramp, RampError> {
    store::require_reason(reason)?;
    let mut tx = client.transaction().map_err(db("starting the abort"))?;
    let Some(r) = running_of(&mut tx, release)? else {
        return Err(RampError::NoRamp { release: release.to_string() });
    };
    let Some(r) = table::lock(&mut tx, r.id).map_err(db("reading the ramp"))? else {
        return Err(RampError::NoRamp { release: release.to_string() });
    };
    stop(tx, &r, RampState::Aborted, actor, reason)
}

/// Records that ramp `r` was killed (its release turned off at a breach);
/// the ramp as it ended, none when it was no longer running.
pub fn killed(
    client: &mut Client,
    r: &Ramp,
    actor: &str,
    why: &str,
) -> Result<Option<Ramp>, RampError> {
    let mut tx = client.transaction().map_err(db("recording the ramp's kill"))?;
    match table::lock(&mut tx, r.id).map_err(db("reading the ramp"))? {
        Some(now) if now.state == RampState::Running => {
            Ok(Some(stop(tx, &now, RampState::Killed, actor, why)?))
        }
        _ => Ok(None),
    }
}

/// Ends `r` as `state` in `tx`, with its event, and commits.
fn stop(
    mut tx: Transaction<'_>,
    r: &Ramp,
    state: RampState,
    actor: &str,
    note: &str,
) -> Result<Ramp, RampError> {
    table::end(&mut tx, r.id, state, actor, note).map_err(db("ending the ramp"))?;
    let ended =
        table::lock(&mut tx, r.id).map_err(db("reading the ramp"))?.unwrap_or_else(|| r.clone());
    record(&mut tx, state.as_str(), &ended, json!({ "note": note }))?;
    // The status page and /metrics of every serve show ramps: they reload.
    let tag = super::etag(&super::list(&mut tx)?);
    flag_table::notify(&mut tx, &tag).map_err(db("notifying the ramp's end"))?;
    tx.commit().map_err(db("committing the ramp's end"))?;
    Ok(ended)
}

/// Writes the flag changes of a step with their events, and commits.
fn finish(
    tx: Transaction<'_>,
    changes: &mut [FlagChange],
    ramp: &Ramp,
    actor: &str,
    reason: &str,
) -> Result<(), RampError> {
    for c in changes.iter_mut() {
        c.ramp = Some(ramp.id);
    }
    Ok(store::commit(tx, changes, actor, reason)?)
}

/// A `ramp` event: what happened to `r`, with its step and share.
fn record(
    tx: &mut Transaction<'_>,
    outcome: &str,
    r: &Ramp,
    extra: Value,
) -> Result<(), RampError> {
    let mut details = json!({
        "ramp": r.id,
        "release": r.release,
        "step": r.step + 1,
        "share": r.share(),
        "steps": r.steps,
        "every_ms": r.every_ms,
        "next_at": r.next_at,
    });
    if let (Value::Object(d), Value::Object(x)) = (&mut details, extra) {
        d.extend(x);
    }
    events::record(tx, &events::Event { kind: "ramp", outcome, versions: vec![], details })
        .map_err(db("writing the ramp's event"))?;
    Ok(())
}

/// The running ramps (of every release), oldest first.
pub fn running(client: &mut impl GenericClient) -> Result<Vec<Ramp>, DbError> {
    table::running(client).map_err(db("reading backstop.ramps"))
}

/// Keeps what the triggers said of ramp `r` just now, for `--status`.
pub fn judged(client: &mut impl GenericClient, r: &Ramp, judgement: &Value) -> Result<(), DbError> {
    table::judged(client, r.id, judgement).map_err(db("recording the ramp's judgement"))
}

/// A ramp as `flags ramp --status`, the status page and `/metrics` show it.
#[derive(Debug, Clone, Serialize)]
pub struct RampStatus {
    #[serde(flatten)]
    pub ramp: Ramp,
    /// The share served now (for a killed ramp: before it was killed).
    pub share: i32,
    pub next_share: Option<i32>,
    /// Whether a process carries it on now (holds it).
    pub carried: bool,
}

impl RampStatus {
    fn of(client: &mut impl GenericClient, ramp: Ramp) -> Result<RampStatus, DbError> {
        let carried = ramp.state == RampState::Running
            && table::carried(client, ramp.id).map_err(db("looking for the ramp's carrier"))?;
        Ok(RampStatus { share: ramp.share(), next_share: ramp.next_share(), carried, ramp })
    }
}

/// The ramp of `release` that runs, else its newest; none if it never had one.
pub fn status(
    client: &mut impl GenericClient,
    release: &str,
) -> Result<Option<RampStatus>, DbError> {
    match table::latest(client, release).map_err(db("reading backstop.ramps"))? {
        Some(r) => Ok(Some(RampStatus::of(client, r)?)),
        None => Ok(None),
    }
}

/// Every running ramp with whether it is carried on, for the status page.
pub fn statuses(client: &mut impl GenericClient) -> Result<Vec<RampStatus>, DbError> {
    running(client)?.into_iter().map(|r| RampStatus::of(client, r)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(step: i32, due_in_s: i64) -> Ramp {
        let now = chrono::Utc::now();
        Ramp {
            id: 1,
            release: "v2".into(),
            steps: vec![1, 5, 25, 50, 100],
            every_ms: 10_000,
            step,
            step_at: now,
            next_at: Some(now + chrono::Duration::seconds(due_in_s)),
            state: RampState::Running,
            started_at: now,
            started_by: "t".into(),
            reason: "r".into(),
            ended_at: None,
            ended_by: None,
            end_note: None,
            driven_by: None,
            judged_at: None,
            judgement: None,
            as_of: now,
        }
    }

    #[test]
    fn plans_are_read_and_bad_ones_refused_with_the_place() {
        let p = Plan::parse("1, 5,25%,50,100", "10m").unwrap();
        assert_eq!(p.steps, [1, 5, 25, 50, 100]);
        assert_eq!(p.every, Duration::from_secs(600));
        for (steps, every, says) in [
            ("1,5,5,100", "1s", "5 after 5 does not rise"),
            ("5,1", "1s", "1 after 5 does not rise"),
            ("1,101", "1s", "101 is more than 100"),
            ("1,-5", "1s", "\"-5\" is not a whole number"),
            ("1,,5", "1s", "missing between two commas"),
            ("1,5", "soon", "--every \"soon\""),
            ("1,5", "0s", "at least a second"),
        ] {
            let e = Plan::parse(steps, every).unwrap_err().to_string();
            assert!(e.contains(says), "{steps} / {every}: {e}");
            assert_eq!(Plan::parse(steps, every).unwrap_err().exit_code(), 2);
        }
    }

    #[test]
    fn a_step_moves_when_due_and_judged_clear_and_holds_otherwise() {
        assert_eq!(next_move(&ramp(1, 5), &Judgement::Clear), Move::Wait, "not due");
        assert_eq!(next_move(&ramp(1, 0), &Judgement::Clear), Move::Advance);
        assert_eq!(next_move(&ramp(1, -3), &Judgement::Unjudged), Move::Wait);
        assert_eq!(
            next_move(&ramp(1, -3), &Judgement::Hold("no data".into())),
            Move::Hold("no data".into())
        );
        let last = Ramp { next_at: None, ..ramp(4, 0) };
        assert_eq!(next_move(&last, &Judgement::Clear), Move::Ended);
        let aborted = Ramp { state: RampState::Aborted, ..ramp(1, -3) };
        assert_eq!(next_move(&aborted, &Judgement::Clear), Move::Ended);
        assert_eq!(ramp(2, 0).path(), "1% → 5% → [25%] → 50% → 100%");
        assert_eq!((ramp(2, 0).share(), ramp(2, 0).next_share()), (25, Some(50)));
    }

    #[test]
    fn a_key_that_has_the_release_keeps_it_as_the_share_grows() {
        use crate::flags::{rollout, Evaluator, Flag};
        let mut variants = serde_json::Map::new();
        variants.insert("on".into(), json!(true));
        variants.insert("off".into(), json!(false));
        let base = Flag {
            key: "cards".into(),
            state: State::Enabled,
            variants,
            default_variant: "on".into(),
            targeting: None,
            description: String::new(),
            owner: None,
            release: "v2".into(),
            code_default: None,
            updated_at: chrono::Utc::now(),
            updated_by: "t".into(),
        };
        let on_at = |share: u32| -> Vec<bool> {
            let flag = Flag { targeting: rollout(&base, share).unwrap(), ..base.clone() };
            let e = Evaluator::new(vec![flag]);
            (0..5000)
                .map(|i| {
                    let ctx = json!({ "targetingKey": format!("user-{i}") });
                    e.evaluate("cards", &ctx).value == Some(json!(true))
                })
                .collect()
        };
        let mut before = on_at(0);
        assert!(before.iter().all(|on| !on), "0% serves nobody");
        for share in [1, 5, 25, 50, 100] {
            let now = on_at(share);
            let n = now.iter().filter(|on| **on).count();
            assert!((n as f64 / 5000.0 - f64::from(share) / 100.0).abs() < 0.02, "{n} at {share}%");
            assert!(before.iter().zip(&now).all(|(b, n)| !b || *n), "a key lost it at {share}%");
            before = now;
        }
    }
}
