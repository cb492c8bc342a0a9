//! The watch loop as a state machine over the pure [`crate::decide`]: each
//! round samples the triggers that are due, decides, records in the audit
//! log every sample that moves a trigger to another state and every new
//! decision, and carries out the method called for when `auto` allows it
//! (through the one [`Responder`]), keeping the escalation bookkeeping
//! (which methods were taken, when). What it does is told as it happens,
//! so `backstop respond watch`, the demo and a library user can each show it their
//! own way.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::decide::sample::{Reading, Sampler};
use crate::decide::{self, DecideSection, Decision, Method, Sample, Taken, Trigger, Verdict};
use crate::migrate::RollbackTarget;
use crate::respond::{self, Observer, RespondError, Responder, Step, Target};
use crate::schema::events;

mod ramp;
pub use ramp::{RampNews, RampRun};

/// How much history each trigger keeps for its window.
const KEEP: usize = 1000;

/// The methods watch may carry out by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub enum Auto {
    /// Decide and say; carry out nothing.
    None,
    /// Method A (flags off).
    A,
    /// A or B.
    B,
    /// Any method.
    C,
}

impl Auto {
    /// Whether `m` may be carried out without a person.
    pub fn allows(self, m: Method) -> bool {
        match self {
            Auto::None => false,
            Auto::A => m == Method::A,
            Auto::B => m <= Method::B,
            Auto::C => true,
        }
    }
}

/// What happened in a round, told as it happens.
#[derive(Debug)]
pub enum Happening<'a> {
    /// A trigger was sampled.
    Sample { trigger: &'a str, reading: &'a Reading },
    /// The round's decision; `changed` when it differs from the last one
    /// (only those are recorded).
    Decision { decision: &'a Decision, changed: bool },
    /// A step of a method finished.
    Step { method: Method, step: &'a Step },
    /// Something went wrong that does not stop watching (a Slack post).
    Warning(&'a str),
    /// Method C wrote its forensics here.
    Forensics(&'a Path),
    /// A method was carried out; the triggers have this long to clear.
    Carried { method: Method, escalate_after: Duration },
    /// Method A is called for and which release to turn off is unclear.
    NeedsRelease,
    /// A method above `auto` is called for: the command that carries it out.
    AboveAuto { method: Method, command: String },
    /// The incident was closed: every trigger was clear for this long.
    Closed { incident: i64, clear_for: Duration },
    /// Something happened to a release ramp this watch carries on.
    Ramp(RampNews<'a>),
}

/// Why watching stopped.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error(transparent)]
    Db(#[from] crate::pg::DbError),
    #[error(transparent)]
    Connect(#[from] crate::pg::ConnectError),
    #[error(transparent)]
    Respond(Box<RespondError>),
    #[error(transparent)]
    Ramp(Box<crate::flags::ramp::RampError>),
}

impl From<RespondError> for WatchError {
    fn from(e: RespondError) -> Self {
        WatchError::Respond(Box::new(e))
    }
}

impl WatchError {
    /// Exit code: the database is an environment error; a method's own
    /// failure keeps its code.
    pub fn exit_code(&self) -> u8 {
        match self {
            WatchError::Db(_) => 3,
            WatchError::Connect(e) => e.exit_code(),
            WatchError::Respond(e) => e.exit_code(),
            WatchError::Ramp(e) => e.exit_code(),
        }
    }
}

/// What a round left for the caller to decide on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    /// A method is called for and was not carried out.
    pub unanswered: bool,
    /// The round's verdict.
    pub verdict: Verdict,
}

/// The watch: triggers, their samples so far, and the methods taken.
pub struct Watch {
    triggers: Vec<Trigger>,
    decide: DecideSection,
    sampler: Sampler,
    auto: Auto,
    /// The release method A turns off (default: the one with flags on).
    release: Option<String>,
    series: BTreeMap<String, Vec<Sample>>,
    due: Vec<Instant>,
    /// When each trigger was last sampled.
    sampled: Vec<Option<Instant>>,
    /// The release ramps this watch carries on.
    ramps: ramp::Ramps,
    taken: Vec<Taken>,
    last: Option<(Verdict, Option<Method>, Option<String>)>,
    states: BTreeMap<String, decide::State>,
    /// Since when every trigger has been clear while an incident is open.
    clear_since: Option<Instant>,
    /// Method B may restore a restore point over other databases that
    /// changed since it (`--whole-cluster`).
    whole_cluster: bool,
}

impl Watch {
    /// A watch of `triggers` on the database at `url`.
    pub fn new(
        triggers: Vec<Trigger>,
        decide: DecideSection,
        url: &str,
        auto: Auto,
        release: Option<String>,
    ) -> Watch {
        let sampler = Sampler::new(url, decide.prometheus_url.as_deref());
        let due = vec![Instant::now(); triggers.len()];
        let sampled = vec![None; triggers.len()];
        Watch {
            triggers,
            decide,
            sampler,
            auto,
            release,
            series: BTreeMap::new(),
            due,
            sampled,
            ramps: ramp::Ramps::default(),
            taken: Vec::new(),
            last: None,
            states: BTreeMap::new(),
            clear_since: None,
            whole_cluster: false,
        }
    }

    /// Lets method B restore a pgBackRest restore point, which brings back
    /// the whole cluster, even when other databases in it changed since.
    pub fn whole_cluster(mut self, on: bool) -> Watch {
        self.whole_cluster = on;
        self
    }

    /// The triggers' names, in their order.
    pub fn names(&self) -> Vec<&str> {
        self.triggers.iter().map(|t| t.name.as_str()).collect()
    }

    /// When the next trigger, or the next step of a ramp carried on, is due.
    pub fn next_due(&self) -> Instant {
        let trigger = self.due.iter().min().copied().unwrap_or_else(Instant::now);
        self.ramps.next_due().map_or(trigger, |step| step.min(trigger))
    }

    /// Samples what is due, decides, records, and acts. `client` is
    /// replaced when a restore replaced the database it was on.
    pub fn round(
        &mut self,
        client: &mut postgres::Client,
        responder: &Responder,
        tell: &mut dyn FnMut(Happening),
    ) -> Result<Round, WatchError> {
        if self.sample_due(tell) {
            let by = ramp::carrier();
            let triggers = i32::try_from(self.triggers.len()).unwrap_or(i32::MAX);
            crate::schema::watching::beat(client, &by, triggers).map_err(|e| {
                WatchError::Db(crate::pg::DbError::new("recording the heartbeat", e))
            })?;
        }
        let decision = decide::decide(&self.triggers, &self.series, &self.taken, &self.decide);
        // The samples that matter: each one that moves a trigger to another
        // state (ok → pending → breach, no data, recovering...) is an event.
        for e in &decision.evidence {
            if self.states.get(&e.trigger) != Some(&e.state) {
                record_sample(client, e).map_err(|source| {
                    WatchError::Db(crate::pg::DbError::new("recording a sample", source))
                })?;
                self.states.insert(e.trigger.clone(), e.state);
            }
        }
        let key = (decision.verdict, decision.method, decision.flag.clone());
        let changed = self.last.as_ref() != Some(&key);
        if changed {
            if decision.verdict == Verdict::Rollback {
                // The first decision that calls for a rollback opens the incident.
                let why = format!("decision: {}", decision.reason);
                crate::schema::incidents::open(client, &why).map_err(|source| {
                    WatchError::Db(crate::pg::DbError::new("opening the incident", source))
                })?;
            }
            record(client, &decision).map_err(|source| {
                WatchError::Db(crate::pg::DbError::new("recording the decision", source))
            })?;
        }
        tell(Happening::Decision { decision: &decision, changed });
        self.close_when_clear(client, responder, &decision, tell)?;
        let killed = self.carry_ramps(client, responder, &decision, tell)?;
        if changed {
            self.last = Some(key);
        }
        let answered = Round { unanswered: false, verdict: decision.verdict };
        let (Verdict::Rollback, Some(method)) = (decision.verdict, decision.method) else {
            return Ok(answered);
        };
        if killed && method == Method::A {
            // The ramps' kill was this method A.
            return Ok(answered);
        }
        self.act(client, responder, &decision, method, changed, tell)
    }

    /// Closes the open incident once every trigger has been clear for
    /// `[decide] close_after`, and says so (Slack hears it is resolved).
    fn close_when_clear(
        &mut self,
        client: &mut postgres::Client,
        responder: &Responder,
        decision: &Decision,
        tell: &mut dyn FnMut(Happening),
    ) -> Result<(), WatchError> {
        if decision.verdict != Verdict::Ok {
            self.clear_since = None;
            return Ok(());
        }
        let db = |source| WatchError::Db(crate::pg::DbError::new("closing the incident", source));
        let Some(open) = crate::schema::incidents::current(client).map_err(db)? else {
            self.clear_since = None;
            return Ok(());
        };
        let since = *self.clear_since.get_or_insert_with(Instant::now);
        let clear_for = self.decide.close_after;
        if since.elapsed() < clear_for {
            return Ok(());
        }
        let note = format!("every trigger clear for {}", crate::kit::duration::human(clear_for));
        if crate::schema::incidents::close(client, open.id, "backstop watch", &note).map_err(db)? {
            let details = json!({ "note": note, "source": "watch", "incident": open.id });
            let event =
                events::Event { kind: "incident", outcome: "closed", versions: vec![], details };
            events::record(client, &event).map_err(db)?;
            if let Err(e) = responder.notifier.announce(crate::incident::Stage::Resolved) {
                tell(Happening::Warning(&e));
            }
            tell(Happening::Closed { incident: open.id, clear_for });
        }
        self.clear_since = None;
        Ok(())
    }

    /// Samples the triggers that are due; whether any was.
    fn sample_due(&mut self, tell: &mut dyn FnMut(Happening)) -> bool {
        let now = Instant::now();
        let mut sampled = false;
        for (i, t) in self.triggers.iter().enumerate() {
            if self.due[i] > now {
                continue;
            }
            let reading = self.sampler.sample(t);
            tell(Happening::Sample { trigger: &t.name, reading: &reading });
            let s = self.series.entry(t.name.clone()).or_default();
            s.push(reading.sample);
            if s.len() > KEEP {
                s.drain(..s.len() - KEEP);
            }
            self.due[i] = now + t.interval;
            self.sampled[i] = Some(now);
            sampled = true;
        }
        sampled
    }

    /// Carries out `method` when `auto` allows it, or says what to run.
    fn act(
        &mut self,
        client: &mut postgres::Client,
        responder: &Responder,
        decision: &Decision,
        method: Method,
        changed: bool,
        tell: &mut dyn FnMut(Happening),
    ) -> Result<Round, WatchError> {
        let release = match (&decision.flag, &self.release) {
            (Some(_), _) => None,
            (None, Some(r)) => Some(r.clone()),
            (None, None) => crate::flags::list(client)
                .ok()
                .and_then(|flags| respond::release_to_kill(&flags, None).ok()),
        };
        let target = match (&decision.flag, &release) {
            (Some(f), _) => Some(Target::Flag(f.clone())),
            (None, Some(r)) => Some(Target::Release(r.clone())),
            (None, None) => None,
        };
        let reason = format!("backstop watch: {}", decision.reason);
        let mut observer = Tell(tell);
        let carried = match (method, &target) {
            _ if !self.auto.allows(method) => false,
            (Method::A, Some(target)) => {
                responder.method_a(client, target, &reason, &mut observer)?;
                true
            }
            (Method::A, None) => false,
            (Method::B, _) => {
                responder.method_b(
                    client,
                    target.as_ref(),
                    None,
                    crate::respond::RestoreRun { resume: false, whole_cluster: self.whole_cluster },
                    &reason,
                    &mut observer,
                )?;
                // The restore replaced the database this session was on.
                *client = crate::pg::connect(&responder.url, "backstop watch")?;
                true
            }
            (Method::C, _) => {
                let revert = RollbackTarget::Steps(1);
                let outcome =
                    responder.method_c(client, target.as_ref(), &revert, &reason, &mut observer)?;
                (observer.0)(Happening::Forensics(&outcome.forensics));
                true
            }
        };
        let tell = observer.0;
        if carried {
            self.taken
                .push(Taken { t: chrono::Utc::now().timestamp_millis() as f64 / 1000.0, method });
            tell(Happening::Carried { method, escalate_after: self.decide.escalate_after });
            return Ok(Round { unanswered: false, verdict: decision.verdict });
        }
        if changed {
            if method == Method::A && target.is_none() && self.auto.allows(method) {
                tell(Happening::NeedsRelease);
            } else {
                let command = command_for(method, release.as_deref(), decision.flag.as_deref());
                tell(Happening::AboveAuto { method, command });
            }
        }
        Ok(Round { unanswered: true, verdict: decision.verdict })
    }
}

/// The responder's observer, telling the watch's caller.
struct Tell<'t>(&'t mut dyn FnMut(Happening));

impl Observer for Tell<'_> {
    fn step(&mut self, method: Method, step: &Step) {
        (self.0)(Happening::Step { method, step });
    }

    fn warning(&mut self, text: &str) {
        (self.0)(Happening::Warning(text));
    }
}

/// The command that carries out `m` by hand.
pub fn command_for(m: Method, release: Option<&str>, flag: Option<&str>) -> String {
    match (m, flag) {
        (Method::A, Some(f)) => format!("backstop respond method A --flag {f} --yes"),
        (Method::A, None) => match release {
            Some(r) => format!("backstop respond method A --release {r} --yes"),
            None => "backstop respond method A --release <RELEASE> --yes".into(),
        },
        (Method::B, _) => "backstop respond method B --yes".into(),
        (Method::C, _) => "backstop respond method C --yes".into(),
    }
}

/// A decision, as a `decide` event.
fn record(client: &mut postgres::Client, d: &Decision) -> Result<(), postgres::Error> {
    let outcome = match d.verdict {
        Verdict::Rollback => "rollback",
        Verdict::Hold => "hold",
        Verdict::Ok => "ok",
    };
    let mut details = serde_json::to_value(d).unwrap_or_default();
    details["source"] = json!("watch");
    events::record_if_logged(
        client,
        &events::Event { kind: "decide", outcome, versions: vec![], details },
    )?;
    Ok(())
}

/// A sample that moved its trigger to another state, as a `sample` event:
/// the trigger, its new state and why, and the latest sample.
fn record_sample(
    client: &mut postgres::Client,
    e: &decide::Evidence,
) -> Result<(), postgres::Error> {
    let details = json!({
        "trigger": e.trigger,
        "state": e.state,
        "reason": e.reason,
        "query": e.query,
        "sample": e.samples.last(),
        "source": "watch",
    });
    events::record_if_logged(
        client,
        &events::Event { kind: "sample", outcome: "ok", versions: vec![], details },
    )?;
    Ok(())
}
