//! The ramps a watch carries on. Each round, after the decision: a ramp
//! this process holds moves to its next share when it is due and every
//! trigger, sampled since the step began, is clear ([`ramp::next_move`]);
//! at a breach every ramp it holds is killed at once, its release turned
//! off by method A whatever `--auto` says (starting a ramp consents to
//! that), and the watch goes on to escalate as it does for any method A.
//! `backstop respond watch` takes up every running ramp no other process holds
//! (one whose carrier died is free again); `backstop flags ramp` holds the
//! one it started or took up.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use serde_json::json;

use super::{Happening, Round, Tell, Watch, WatchError};
use crate::decide::{Decision, Method, Taken, Verdict};
use crate::flags::ramp::{self, Advanced, Judgement, Move, Ramp, RampState};
use crate::respond::{Responder, Target};

/// What happened to a ramp, told as it happens.
#[derive(Debug, serde::Serialize)]
#[serde(tag = "news", rename_all = "snake_case")]
pub enum RampNews<'a> {
    /// Taken up here, from the step it is at.
    Carried(&'a Ramp),
    /// Held by another process; left alone.
    Elsewhere(&'a Ramp),
    /// Its next share is served.
    Stepped(&'a Ramp),
    /// Its next step is due and the triggers hold it (said when the reason changes).
    Holding { ramp: &'a Ramp, reason: &'a str },
    /// It reached its last step.
    Done(&'a Ramp),
    /// Killed here at a breach: its release is off.
    Killed(&'a Ramp),
    /// Ended by someone else: aborted, or its flags turned off.
    Ended(&'a Ramp),
}

/// Where the ramp of a `flags ramp` run stands after a round.
#[derive(Debug, Clone, PartialEq)]
pub enum RampRun {
    /// Still moving, or killed and still watched for escalation.
    Going,
    /// Reached its last step.
    Done(Ramp),
    /// Killed (and the escalation settled: the triggers cleared, a method
    /// above `--auto` is called for, or nothing is left to wait for) or aborted.
    Stopped(Ramp),
    /// No longer held here, and its end not seen.
    Lost,
}

/// A ramp this process holds.
struct Held {
    ramp: Ramp,
    /// When `ramp` was read (its due time counts from then).
    read: Instant,
    /// When this process first saw its current step: the triggers must be
    /// sampled after it for the step to be judged.
    since: Instant,
    /// The reason it holds, as last told.
    holding: Option<String>,
}

/// The ramps of one watch.
#[derive(Default)]
pub(super) struct Ramps {
    /// Only this release's ramp (`flags ramp`); none: every running one.
    only: Option<String>,
    held: BTreeMap<i64, Held>,
    /// Ramps seen held elsewhere, told once.
    elsewhere: BTreeSet<i64>,
    /// Ramps that ended while held here, with when.
    ended: Vec<(Ramp, Instant)>,
}

impl Ramps {
    /// When the earliest held ramp's next step is due, if later than now.
    pub(super) fn next_due(&self) -> Option<Instant> {
        let now = Instant::now();
        self.held
            .values()
            .filter_map(|h| h.ramp.due_in().map(|d| h.read + d))
            .filter(|at| *at > now)
            .min()
    }
}

/// Who carries ramps on from this process, as recorded.
pub(super) fn carrier() -> String {
    format!("{} pid {}", crate::schema::actor(), std::process::id())
}

impl Watch {
    /// This watch carries on `ramp` (already taken over by
    /// [`ramp::begin`]) and no other.
    pub fn carrying(mut self, ramp: Ramp) -> Watch {
        self.ramps.only = Some(ramp.release.clone());
        let now = Instant::now();
        self.ramps.held.insert(ramp.id, Held { ramp, read: now, since: now, holding: None });
        self
    }

    /// Where the ramp of `release` stands after `round`.
    pub fn ramp_run(&self, release: &str, round: &Round) -> RampRun {
        if self.ramps.held.values().any(|h| h.ramp.release == release) {
            return RampRun::Going;
        }
        let Some((r, at)) = self.ramps.ended.iter().rev().find(|(r, _)| r.release == release)
        else {
            return RampRun::Lost;
        };
        let slowest = self.triggers.iter().map(|t| t.interval).max().unwrap_or_default();
        let waited = at.elapsed() > self.decide.escalate_after + slowest;
        match r.state {
            RampState::Done => RampRun::Done(r.clone()),
            RampState::Killed => {
                // Watched on as `watch` would until the escalation settles.
                let settled = round.unanswered
                    || round.verdict == Verdict::Ok
                    || (round.verdict == Verdict::Hold && waited);
                if settled {
                    RampRun::Stopped(r.clone())
                } else {
                    RampRun::Going
                }
            }
            _ => RampRun::Stopped(r.clone()),
        }
    }

    /// The round's part for ramps; whether they were killed now.
    pub(super) fn carry_ramps(
        &mut self,
        client: &mut postgres::Client,
        responder: &Responder,
        decision: &Decision,
        tell: &mut dyn FnMut(Happening),
    ) -> Result<bool, WatchError> {
        self.take_up_ramps(client, tell)?;
        if self.ramps.held.is_empty() {
            return Ok(false);
        }
        if decision.verdict == Verdict::Rollback {
            self.kill_ramps(client, responder, decision, tell)?;
            return Ok(true);
        }
        let ids: Vec<i64> = self.ramps.held.keys().copied().collect();
        for id in ids {
            let Some(held) = self.ramps.held.get_mut(&id) else { continue };
            let stopped = ramp::end_if_turned_off(client, &held.ramp, &carrier())
                .map_err(|e| WatchError::Ramp(Box::new(e)))?;
            if let Some(ended) = stopped {
                held.ramp = ended;
                self.ended(client, id, tell, false)?;
                continue;
            }
            let judgement = self.judgement(id, decision);
            let Some(held) = self.ramps.held.get_mut(&id) else { continue };
            let said = summary(decision, judged(&judgement));
            ramp::judged(client, &held.ramp, &said).map_err(WatchError::Db)?;
            match ramp::next_move(&held.ramp, &judgement) {
                Move::Wait => {}
                Move::Hold(why) => {
                    if held.holding.as_deref() != Some(why.as_str()) {
                        tell(Happening::Ramp(RampNews::Holding { ramp: &held.ramp, reason: &why }));
                        held.holding = Some(why);
                    }
                }
                Move::Advance => self.step(client, id, tell)?,
                Move::Ended => self.ended(client, id, tell, false)?,
            }
        }
        Ok(false)
    }

    /// What the triggers say of held ramp `id`'s step.
    fn judgement(&self, id: i64, decision: &Decision) -> Judgement {
        let Some(held) = self.ramps.held.get(&id) else { return Judgement::Unjudged };
        if self.sampled.iter().any(|at| at.is_none_or(|at| at < held.since)) {
            return Judgement::Unjudged;
        }
        match decision.verdict {
            Verdict::Ok => Judgement::Clear,
            _ => Judgement::Hold(decision.reason.clone()),
        }
    }

    /// Serves held ramp `id`'s next share.
    fn step(
        &mut self,
        client: &mut postgres::Client,
        id: i64,
        tell: &mut dyn FnMut(Happening),
    ) -> Result<(), WatchError> {
        let Some(held) = self.ramps.held.get_mut(&id) else { return Ok(()) };
        let advanced = ramp::advance(client, &held.ramp, &carrier())
            .map_err(|e| WatchError::Ramp(Box::new(e)))?;
        let now = Instant::now();
        match advanced {
            Advanced::Stepped { ramp, .. } | Advanced::Moved(ramp)
                if ramp.state == RampState::Running =>
            {
                *held = Held { ramp, read: now, since: now, holding: None };
                tell(Happening::Ramp(RampNews::Stepped(&held.ramp)));
            }
            Advanced::Stepped { ramp, .. } | Advanced::Moved(ramp) | Advanced::Ended(ramp) => {
                let stepped = ramp.state == RampState::Done && ramp.step > held.ramp.step;
                held.ramp = ramp;
                if stepped {
                    tell(Happening::Ramp(RampNews::Stepped(&held.ramp)));
                }
                self.ended(client, id, tell, false)?;
            }
        }
        Ok(())
    }

    /// Held ramp `id` is no longer running: says how it ended and lets it go.
    fn ended(
        &mut self,
        client: &mut postgres::Client,
        id: i64,
        tell: &mut dyn FnMut(Happening),
        killed_here: bool,
    ) -> Result<(), WatchError> {
        let Some(held) = self.ramps.held.remove(&id) else { return Ok(()) };
        let r = held.ramp;
        let news = match r.state {
            RampState::Done => RampNews::Done(&r),
            _ if killed_here => RampNews::Killed(&r),
            _ => RampNews::Ended(&r),
        };
        tell(Happening::Ramp(news));
        ramp::let_go(client, &r).map_err(WatchError::Db)?;
        self.ramps.ended.push((r, Instant::now()));
        Ok(())
    }

    /// Reads the running ramps: takes up those no one holds, notices the
    /// held ones that ended elsewhere.
    fn take_up_ramps(
        &mut self,
        client: &mut postgres::Client,
        tell: &mut dyn FnMut(Happening),
    ) -> Result<(), WatchError> {
        let running: Vec<Ramp> = ramp::running(client)
            .map_err(WatchError::Db)?
            .into_iter()
            .filter(|r| self.ramps.only.as_ref().is_none_or(|only| *only == r.release))
            .collect();
        let now = Instant::now();
        let by = carrier();
        for r in &running {
            if let Some(held) = self.ramps.held.get_mut(&r.id) {
                if held.ramp.step != r.step {
                    held.since = now;
                }
                held.ramp = r.clone();
                held.read = now;
                continue;
            }
            if self.ramps.only.is_some() && !self.ramps.ended.is_empty() {
                // `flags ramp` carries one ramp, once.
                continue;
            }
            if ramp::try_take_over(client, r, &by).map_err(WatchError::Db)? {
                self.ramps.elsewhere.remove(&r.id);
                let ramp = Ramp { driven_by: Some(by.clone()), ..r.clone() };
                let held = Held { ramp, read: now, since: now, holding: None };
                tell(Happening::Ramp(RampNews::Carried(&held.ramp)));
                self.ramps.held.insert(r.id, held);
            } else if self.ramps.elsewhere.insert(r.id) {
                tell(Happening::Ramp(RampNews::Elsewhere(r)));
            }
        }
        let gone: Vec<i64> = self
            .ramps
            .held
            .keys()
            .filter(|id| !running.iter().any(|r| r.id == **id))
            .copied()
            .collect();
        for id in gone {
            let release = self.ramps.held[&id].ramp.release.clone();
            if let Some(s) = ramp::status(client, &release).map_err(WatchError::Db)? {
                if let Some(held) = self.ramps.held.get_mut(&id) {
                    if s.ramp.id == id {
                        held.ramp = s.ramp;
                    }
                }
            }
            self.ended(client, id, tell, false)?;
        }
        Ok(())
    }

    /// At a breach: every held ramp's release off (method A), the ramps
    /// recorded as killed, and method A counted as taken for escalation.
    fn kill_ramps(
        &mut self,
        client: &mut postgres::Client,
        responder: &Responder,
        decision: &Decision,
        tell: &mut dyn FnMut(Happening),
    ) -> Result<(), WatchError> {
        let ids: Vec<i64> = self.ramps.held.keys().copied().collect();
        for id in ids {
            let r = self.ramps.held[&id].ramp.clone();
            let why = format!("killed at {}% by a breach: {}", r.share(), decision.reason);
            // The breach is the ramp's last judgement: `--status` shows what
            // killed it, not the clear round before.
            let said = summary(decision, "breach: the release is killed");
            ramp::judged(client, &r, &said).map_err(WatchError::Db)?;
            // Recorded first: whatever happens next, the ramp goes no further.
            let ended = ramp::killed(client, &r, &carrier(), &why)
                .map_err(|e| WatchError::Ramp(Box::new(e)))?;
            let reason = format!("backstop ramp of {}: {}", r.release, decision.reason);
            let mut observer = Tell(tell);
            responder.method_a(
                client,
                &Target::Release(r.release.clone()),
                &reason,
                &mut observer,
            )?;
            let tell = observer.0;
            if let Some(held) = self.ramps.held.get_mut(&id) {
                held.ramp = ended.unwrap_or(Ramp { state: RampState::Killed, ..r });
            }
            self.ended(client, id, tell, true)?;
        }
        self.taken.push(Taken {
            t: chrono::Utc::now().timestamp_millis() as f64 / 1000.0,
            method: Method::A,
        });
        tell(Happening::Carried { method: Method::A, escalate_after: self.decide.escalate_after });
        Ok(())
    }
}

/// What a judgement means for the ramp, in words.
fn judged(judgement: &Judgement) -> &'static str {
    match judgement {
        Judgement::Clear => "clear",
        Judgement::Unjudged => "not sampled since the step began",
        Judgement::Hold(_) => "holding",
    }
}

/// What `flags ramp --status` shows of the latest judgement: the verdict,
/// why, what the ramp does about it (`judged`), and each trigger's state
/// and latest value.
fn summary(decision: &Decision, judged: &str) -> serde_json::Value {
    let evidence: Vec<_> = decision
        .evidence
        .iter()
        .map(|e| {
            json!({
                "trigger": e.trigger,
                "state": e.state,
                "rule": e.rule,
                "reason": e.reason,
                "value": e.samples.last().and_then(|s| s.value),
            })
        })
        .collect();
    json!({
        "verdict": decision.verdict,
        "reason": decision.reason,
        "judged": judged,
        "evidence": evidence,
    })
}
