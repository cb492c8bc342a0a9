//! Starting and resuming a rollout: the control database's session lock
//! (one run at a time, released by the server when a killed run's
//! session ends), the plan written before the first database is touched,
//! then wave by wave: the wave's databases on `parallel` threads, each
//! database's state written before and after its run, the wave halted at
//! `halt_after` failures (the runs under way finish: each is one guarded
//! migrate, so a database is done or untouched, never half), then the bake.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use postgres::Client;
use serde_json::json;

use super::bake::{self, Baked};
use super::plan::{self, Plan};
use super::status::{self, Record};
use super::{db, Applied, Apply, Failed, Happening, Observer, Position, RolloutError, Target};
use crate::decide::{DecideSection, Trigger};
use crate::schema::rollouts::{self, RolloutState, TargetState, WaveState};
use crate::source::Migration;

/// The session lock a run holds on the control database: "rollout!".
const LOCK_KEY: i64 = i64::from_be_bytes(*b"rollout!");

/// How long a run waits for another's lock (a killed run's session may
/// take a moment to end).
const LOCK_WAIT: Duration = Duration::from_secs(10);

/// What a run works with: the configuration, the migrations it carries,
/// the triggers its bakes watch, and the guarded migrate of one database.
pub struct Setup<'a> {
    pub config: &'a super::RolloutConfig,
    pub migrations: &'a [Migration],
    pub triggers: &'a [Trigger],
    pub decide: &'a DecideSection,
    pub apply: &'a dyn Apply,
    pub observer: &'a dyn Observer,
    /// A new rollout expands in this schema, bakes, then contracts (a
    /// resumed one does what its record says).
    pub expand: Option<&'a str>,
}

/// Takes the run's session lock on the control database, waiting a
/// little for a session that is ending.
pub(super) fn lock(control: &mut Client) -> Result<(), RolloutError> {
    let started = Instant::now();
    loop {
        let got: bool = control
            .query_one("select pg_try_advisory_lock($1)", &[&LOCK_KEY])
            .map_err(db("taking the rollout lock"))?
            .get(0);
        if got {
            return Ok(());
        }
        if started.elapsed() >= LOCK_WAIT {
            let holder = control
                .query_opt(
                    "select format('pid %s, %s from %s, since %s', a.pid, a.application_name,
                                   coalesce(host(a.client_addr), 'local socket'),
                                   to_char(a.backend_start at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS \"UTC\"'))
                       from pg_locks l join pg_stat_activity a on a.pid = l.pid
                      where l.locktype = 'advisory' and l.granted
                        and l.classid = ($1 >> 32)::oid and l.objid = ($1 & 4294967295)::oid
                        and l.objsubid = 1",
                    &[&LOCK_KEY],
                )
                .ok()
                .flatten()
                .map_or_else(|| "a session this role may not see".to_string(), |r| r.get(0));
            return Err(RolloutError::Busy { holder });
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The migrations a rollout carries, as recorded: `[[version, checksum]]`,
/// and the last version.
fn release(migrations: &[Migration]) -> (serde_json::Value, Option<String>) {
    let list: Vec<serde_json::Value> =
        migrations.iter().map(|m| json!([m.version, m.checksum])).collect();
    (json!(list), migrations.last().map(|m| m.version.clone()))
}

/// Refuses to go on with files that differ from those the rollout started with.
fn same_release(r: &rollouts::Rollout, migrations: &[Migration]) -> Result<(), RolloutError> {
    for pair in r.release.as_array().into_iter().flatten() {
        let (Some(version), Some(checksum)) = (pair[0].as_str(), pair[1].as_str()) else {
            continue;
        };
        let what = match migrations.iter().find(|m| m.version == version) {
            None => format!("migration {version} is no longer in the folder"),
            Some(m) if m.checksum != checksum => format!("migration {version} was edited"),
            Some(_) => continue,
        };
        return Err(RolloutError::ReleaseChanged { id: r.id, what });
    }
    Ok(())
}

/// Resolves the targets and deals them to the waves; writes nothing.
pub fn dry_run(setup: &Setup<'_>) -> Result<Plan, RolloutError> {
    let mut control = plan::connect(setup.config)?;
    let targets = plan::resolve(setup.config, &mut control)?;
    plan::plan(setup.config, targets)
}

/// Starts a new rollout: the plan written, then the waves.
pub fn start(setup: &Setup<'_>) -> Result<Record, RolloutError> {
    let mut control = plan::connect(setup.config)?;
    lock(&mut control)?;
    if let Some(r) = rollouts::latest(&mut control).map_err(db("reading backstop.rollouts"))? {
        let hint = match r.state {
            RolloutState::Running | RolloutState::Halted => {
                "continue it with `backstop rollout --resume`, or take it back with `backstop rollout --undo`"
            }
            RolloutState::Undoing => "finish taking it back with `backstop rollout --undo`",
            RolloutState::Done | RolloutState::Undone => "",
        };
        if !hint.is_empty() {
            return Err(RolloutError::Open { id: r.id, state: r.state, hint });
        }
    }
    let targets = plan::resolve(setup.config, &mut control)?;
    let plan = plan::plan(setup.config, targets)?;
    crate::schema::ensure(&mut control).map_err(db("creating the backstop schema"))?;
    let (release, to) = release(setup.migrations);
    let started_by = crate::schema::actor();
    let new = rollouts::NewRollout {
        started_by: &started_by,
        release,
        to_version: to.as_deref(),
        expand: setup.expand,
        waves: plan
            .waves
            .iter()
            .map(|w| {
                let bake = w.bake.as_millis() as i64;
                (w.name.as_str(), w.parallel as i32, w.halt_after as i32, bake)
            })
            .collect(),
        targets: plan
            .waves
            .iter()
            .enumerate()
            .flat_map(|(i, w)| w.targets.iter().map(move |&t| (i, t)))
            .map(|(i, t)| {
                let target = &plan.targets[t];
                (target.name.as_str(), i as i32, target.kind.as_str(), target.shown_url())
            })
            .collect(),
    };
    let id = rollouts::create(&mut control, &new).map_err(db("writing the rollout's plan"))?;
    setup.observer.happening(Happening::Planned { rollout: id, plan: &plan });
    if !plan.untaken.is_empty() {
        setup.observer.happening(Happening::Untaken { names: &plan.untaken });
    }
    drive(setup, control, id, plan.targets)
}

/// Resumes the latest rollout where its records say it stands.
pub fn resume(setup: &Setup<'_>) -> Result<Record, RolloutError> {
    let mut control = plan::connect(setup.config)?;
    lock(&mut control)?;
    let r = rollouts::latest(&mut control).map_err(db("reading backstop.rollouts"))?.ok_or_else(
        || {
            RolloutError::Nothing(
                "no rollout has run against this control database; start one with `backstop rollout`"
                    .into(),
            )
        },
    )?;
    match r.state {
        RolloutState::Undone => {
            return Err(RolloutError::Nothing(format!(
                "rollout {} was taken back; start a new one with `backstop rollout`",
                r.id
            )))
        }
        RolloutState::Undoing => {
            return Err(RolloutError::Open {
                id: r.id,
                state: r.state,
                hint: "finish taking it back with `backstop rollout --undo`",
            })
        }
        RolloutState::Done => {
            let targets =
                rollouts::targets(&mut control, r.id).map_err(db("reading the rollout"))?;
            if !targets.iter().any(|t| t.state != TargetState::Done) {
                return Err(RolloutError::Nothing(format!(
                    "rollout {} is done: every database got the release; `backstop rollout` starts a new one",
                    r.id
                )));
            }
        }
        RolloutState::Running | RolloutState::Halted => {}
    }
    same_release(&r, setup.migrations)?;
    let targets = plan::resolve(setup.config, &mut control)?;
    drive(setup, control, r.id, targets)
}

/// What the threads of a wave share.
struct Shared<'a> {
    setup: &'a Setup<'a>,
    control: Mutex<Client>,
    id: i64,
    to: Option<String>,
    /// An expand rollout: the schema the expands serve.
    expand: Option<String>,
    targets: HashMap<String, Target>,
    /// An error on the control database: the run stops.
    fatal: Mutex<Option<RolloutError>>,
}

impl Shared<'_> {
    fn write<T>(
        &self,
        what: &'static str,
        f: impl FnOnce(&mut Client) -> Result<T, postgres::Error>,
    ) -> Result<T, RolloutError> {
        let mut control = self.control.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut control).map_err(db(what))
    }
}

/// Runs the waves that are not done, in order.
fn drive(
    setup: &Setup<'_>,
    mut control: Client,
    id: i64,
    targets: Vec<Target>,
) -> Result<Record, RolloutError> {
    let record = rollouts::get(&mut control, id).map_err(db("reading backstop.rollouts"))?;
    let (to, expand) = record.map(|r| (r.to_version, r.expand)).unwrap_or_default();
    let shared = Shared {
        setup,
        control: Mutex::new(control),
        id,
        to,
        expand,
        targets: targets.into_iter().map(|t| (t.name.clone(), t)).collect(),
        fatal: Mutex::new(None),
    };
    shared
        .write("recording the run", |c| rollouts::set_state(c, id, RolloutState::Running, None))?;
    let waves = shared.write("reading the rollout", |c| rollouts::waves(c, id))?;
    for wave in &waves {
        if let Some(reason) = run_wave(&shared, wave)? {
            setup.observer.happening(Happening::Halted { reason: &reason });
            shared.write("recording the halt", |c| {
                rollouts::set_state(c, id, RolloutState::Halted, Some(&reason))
            })?;
            return finish(shared);
        }
    }
    let rows = shared.write("reading the rollout", |c| rollouts::targets(c, id))?;
    let failed = rows.iter().filter(|t| t.state != TargetState::Done).count();
    if let (Some(_), 0) = (&shared.expand, failed) {
        if let Some(reason) = contract_all(&shared, &rows)? {
            setup.observer.happening(Happening::Halted { reason: &reason });
            shared.write("recording the halt", |c| {
                rollouts::set_state(c, id, RolloutState::Halted, Some(&reason))
            })?;
            return finish(shared);
        }
    }
    let reason = match failed {
        0 if shared.expand.is_some() => format!(
            "every wave ran and baked; {} database(s) expanded, then contracted",
            rows.len()
        ),
        0 => format!("every wave ran; {} database(s) got the release", rows.len()),
        n => format!(
            "every wave ran; {n} of {} database(s) failed (under each wave's halt_after)",
            rows.len()
        ),
    };
    shared.write("recording the end", |c| {
        rollouts::set_state(c, id, RolloutState::Done, Some(&reason))
    })?;
    finish(shared)
}

/// The contract of every database an expand rollout expanded, once its
/// last wave baked, with the first wave's parallelism; why the rollout
/// halts, if any failed (their expands stay open: `--resume` contracts
/// them, `--undo` drops them).
fn contract_all(
    shared: &Shared<'_>,
    rows: &[rollouts::Target],
) -> Result<Option<String>, RolloutError> {
    let observer = shared.setup.observer;
    let waves = shared.write("reading the rollout", |c| rollouts::waves(c, shared.id))?;
    let parallel = waves.iter().map(|w| w.parallel.max(1) as usize).max().unwrap_or(1);
    observer.happening(Happening::WaveStarted {
        wave: CONTRACT,
        databases: rows.len(),
        parallel: parallel.min(rows.len().max(1)),
    });
    let failed = Mutex::new(Vec::new());
    let never = AtomicBool::new(false);
    super::each_in_parallel(rows, parallel, &never, |row| {
        let Some(target) = shared.targets.get(&row.name) else {
            let error = "no longer among the targets the configuration names".to_string();
            observer.happening(Happening::Failed {
                wave: CONTRACT,
                target: &row.name,
                error: &error,
            });
            failed.lock().unwrap_or_else(|e| e.into_inner()).push(row.name.clone());
            return;
        };
        let started = Instant::now();
        match shared.setup.apply.contract(target) {
            Ok(done) => observer.happening(Happening::Done {
                wave: CONTRACT,
                target: &row.name,
                applied: &done.versions,
                took: started.elapsed(),
            }),
            Err(f) => {
                observer.happening(Happening::Failed {
                    wave: CONTRACT,
                    target: &row.name,
                    error: &f.error,
                });
                failed.lock().unwrap_or_else(|e| e.into_inner()).push(row.name.clone());
            }
        }
    });
    let failed = failed.into_inner().unwrap_or_else(|e| e.into_inner());
    Ok((!failed.is_empty()).then(|| {
        format!(
            "the contract failed on {} of {} database(s) ({}); their expands stay open: \
             `backstop rollout --resume` contracts them again, `backstop rollout --undo` takes \
             every database back",
            failed.len(),
            rows.len(),
            failed.join(", ")
        )
    }))
}

/// The name the contract of an expand rollout goes by, as a wave's.
const CONTRACT: &str = "contract";

fn finish(shared: Shared<'_>) -> Result<Record, RolloutError> {
    let mut control = shared.control.into_inner().unwrap_or_else(|e| e.into_inner());
    status::read(&mut control, shared.id).map_err(db("reading the rollout"))
}

/// Runs one wave's databases that are not done, then its bake; why the
/// rollout halts, if it does.
fn run_wave(shared: &Shared<'_>, wave: &rollouts::Wave) -> Result<Option<String>, RolloutError> {
    let (id, idx) = (shared.id, wave.idx);
    let rows = shared.write("reading the rollout", |c| rollouts::targets(c, id))?;
    let todo: Vec<&rollouts::Target> =
        rows.iter().filter(|t| t.wave == idx && t.state != TargetState::Done).collect();
    let was_done = wave.state == WaveState::Done;
    if was_done && todo.is_empty() {
        return Ok(None);
    }
    shared.write("recording the wave", |c| {
        rollouts::set_wave(c, id, idx, WaveState::Running, None)
    })?;
    let observer = shared.setup.observer;
    let parallel = (wave.parallel.max(1) as usize).min(todo.len().max(1));
    observer.happening(Happening::WaveStarted {
        wave: &wave.name,
        databases: todo.len(),
        parallel,
    });
    let failures = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let halt_after = wave.halt_after.max(1) as usize;
    super::each_in_parallel(&todo, parallel, &stop, |row| match one(shared, wave, row) {
        Ok(true) => {}
        Ok(false) => {
            if failures.fetch_add(1, Ordering::SeqCst) + 1 >= halt_after {
                stop.store(true, Ordering::SeqCst);
            }
        }
        Err(e) => {
            *shared.fatal.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
            stop.store(true, Ordering::SeqCst);
        }
    });
    if let Some(e) = shared.fatal.lock().unwrap_or_else(|e| e.into_inner()).take() {
        return Err(e);
    }
    let failed = failures.load(Ordering::SeqCst);
    if failed >= halt_after {
        let reason = format!(
            "wave {:?} halted: {failed} database(s) failed (halt_after = {halt_after}); those it \
             had not reached are untouched, and so are the waves after it",
            wave.name
        );
        shared.write("recording the wave", |c| {
            rollouts::set_wave(c, id, idx, WaveState::Halted, None)
        })?;
        return Ok(Some(reason));
    }
    if !was_done && wave.bake_ms > 0 {
        if let Some(reason) = bake_wave(shared, wave)? {
            return Ok(Some(reason));
        }
    }
    shared
        .write("recording the wave", |c| rollouts::set_wave(c, id, idx, WaveState::Done, None))?;
    Ok(None)
}

/// The wave's bake; why the rollout halts, if it does.
fn bake_wave(shared: &Shared<'_>, wave: &rollouts::Wave) -> Result<Option<String>, RolloutError> {
    let (id, idx) = (shared.id, wave.idx);
    shared
        .write("recording the bake", |c| rollouts::set_wave(c, id, idx, WaveState::Baking, None))?;
    let rows = shared.write("reading the rollout", |c| rollouts::targets(c, id))?;
    let databases: Vec<&Target> = rows
        .iter()
        .filter(|t| t.wave == idx && t.state == TargetState::Done)
        .filter_map(|t| shared.targets.get(&t.name))
        .collect();
    let setup = shared.setup;
    let bake = Duration::from_millis(wave.bake_ms as u64);
    setup.observer.happening(Happening::Baking {
        wave: &wave.name,
        bake,
        triggers: setup.triggers.len(),
        databases: databases.len(),
    });
    let baked = bake::bake(setup.triggers, setup.decide, &databases, bake);
    setup.observer.happening(Happening::Baked { wave: &wave.name, verdict: baked.verdict() });
    let (state, reason) = match &baked {
        Baked::Held { .. } => (WaveState::Done, None),
        Baked::Breach { reason, .. } => (
            WaveState::Halted,
            Some(format!("a trigger breached during the bake of wave {:?}: {reason}", wave.name)),
        ),
        Baked::Inconclusive { reason, .. } => (
            WaveState::Halted,
            Some(format!(
                "the bake of wave {:?} was inconclusive (no data is never a pass): {reason}",
                wave.name
            )),
        ),
    };
    shared.write("recording the bake", |c| {
        rollouts::set_wave(c, id, idx, state, Some(baked.evidence()))
    })?;
    Ok(reason)
}

/// One database's run: recorded before and after; whether it went through.
fn one(
    shared: &Shared<'_>,
    wave: &rollouts::Wave,
    row: &rollouts::Target,
) -> Result<bool, RolloutError> {
    let (id, name) = (shared.id, row.name.as_str());
    let observer = shared.setup.observer;
    shared.write("recording a database's start", |c| rollouts::target_running(c, id, name))?;
    let Some(target) = shared.targets.get(name) else {
        let error = format!(
            "{name} is no longer among the targets the configuration names (a query's row gone?); \
             bring it back, or take the rollout back with `backstop rollout --undo`"
        );
        finished(
            shared,
            name,
            Err(Failed { error: error.clone(), versions: Vec::new(), after: None }),
        )?;
        observer.happening(Happening::Failed { wave: &wave.name, target: name, error: &error });
        return Ok(false);
    };
    let started = Instant::now();
    let mut positioned = |p: &Position| -> Result<(), String> {
        shared
            .write("recording a database's position", |c| {
                rollouts::target_positioned(c, id, name, p.before.as_deref())
            })
            .map_err(|e| crate::kit::error::chain(&e))
    };
    let apply = shared.setup.apply;
    let result = match &shared.expand {
        Some(schema) => apply.expand(target, schema, &mut positioned),
        None => apply.migrate(target, shared.to.as_deref(), &mut positioned),
    };
    let ok = result.is_ok();
    match &result {
        Ok(applied) => {
            for note in &applied.notes {
                observer.happening(Happening::Note(&format!("{name}: {note}")));
            }
            observer.happening(Happening::Done {
                wave: &wave.name,
                target: name,
                applied: &applied.versions,
                took: started.elapsed(),
            });
        }
        Err(f) => observer.happening(Happening::Failed {
            wave: &wave.name,
            target: name,
            error: &f.error,
        }),
    }
    finished(shared, name, result)?;
    Ok(ok)
}

fn finished(
    shared: &Shared<'_>,
    name: &str,
    result: Result<Applied, Failed>,
) -> Result<(), RolloutError> {
    let id = shared.id;
    shared.write("recording a database's outcome", |c| match &result {
        Ok(a) => rollouts::target_finished(
            c,
            id,
            name,
            TargetState::Done,
            &a.versions,
            a.after.as_deref(),
            None,
        ),
        Err(f) => rollouts::target_finished(
            c,
            id,
            name,
            TargetState::Failed,
            &f.versions,
            f.after.as_deref(),
            Some(&f.error),
        ),
    })
}
