//! `rollout --undo`: every database that got the release goes back to the
//! version it had before the rollout reached it, newest wave first, each
//! wave's databases `parallel` at a time, through the same [`Apply`] as
//! the migrate (its downs, computed ones included, or a restore where no
//! down exists). Each database's undo is recorded before and after, so a
//! killed undo is finished by running it again; one that fails keeps its
//! error and the rollout stays `undoing`.
//!
//! [`Apply`]: super::Apply

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use super::plan;
use super::plan::connect;
use super::run::{lock, Setup};
use super::status::{self, Record};
use super::{db, Happening, RolloutError};
use crate::schema::rollouts::{self, RolloutState, TargetState, WaveState};

/// Takes the latest rollout back.
pub fn undo(setup: &Setup<'_>) -> Result<Record, RolloutError> {
    let mut control = connect(setup.config)?;
    lock(&mut control)?;
    let r = rollouts::latest(&mut control).map_err(db("reading backstop.rollouts"))?.ok_or_else(
        || {
            RolloutError::Nothing(
                "no rollout has run against this control database; nothing to undo".into(),
            )
        },
    )?;
    if r.state == RolloutState::Undone {
        return Err(RolloutError::Nothing(format!("rollout {} was already taken back", r.id)));
    }
    let id = r.id;
    let targets = plan::resolve(setup.config, &mut control)?;
    rollouts::set_state(
        &mut control,
        id,
        RolloutState::Undoing,
        Some("taking it back (rollout --undo)"),
    )
    .map_err(db("recording the undo"))?;
    let waves = rollouts::waves(&mut control, id).map_err(db("reading the rollout"))?;
    let rows = rollouts::targets(&mut control, id).map_err(db("reading the rollout"))?;
    let control = Mutex::new(control);
    let write = |what: &'static str,
                 f: &dyn Fn(&mut postgres::Client) -> Result<(), postgres::Error>| {
        let mut c = control.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut c).map_err(db(what))
    };
    let fatal: Mutex<Option<RolloutError>> = Mutex::new(None);
    let failures = AtomicUsize::new(0);
    for wave in waves.iter().rev() {
        // Those a run reached: their position was read before anything ran.
        let todo: Vec<&rollouts::Target> = rows
            .iter()
            .filter(|t| t.wave == wave.idx && t.positioned && t.state != TargetState::Undone)
            .collect();
        if todo.is_empty() {
            if wave.state != WaveState::Pending {
                write("recording the undo", &|c| {
                    rollouts::set_wave(c, id, wave.idx, WaveState::Undone, None)
                })?;
            }
            continue;
        }
        setup
            .observer
            .happening(Happening::UndoStarted { wave: &wave.name, databases: todo.len() });
        let before = failures.load(Ordering::SeqCst);
        let stop = AtomicBool::new(false);
        super::each_in_parallel(&todo, wave.parallel.max(1) as usize, &stop, |row| {
            let name = row.name.as_str();
            let result = write("recording a database's undo", &|c| {
                rollouts::target_undo(c, id, name, TargetState::Undoing, None)
            })
            .and_then(|()| {
                let outcome = match targets.iter().find(|t| t.name == name) {
                    Some(target) => setup.apply.undo(target, row.before_version.as_deref()),
                    None => Err(format!(
                        "{name} is no longer among the targets the configuration names; bring it back to undo it"
                    )),
                };
                let (state, error) = match &outcome {
                    Ok(undone) => {
                        setup.observer.happening(Happening::Reverted { target: name, undone });
                        (TargetState::Undone, None)
                    }
                    Err(e) => {
                        setup.observer.happening(Happening::UndoFailed { target: name, error: e });
                        failures.fetch_add(1, Ordering::SeqCst);
                        (TargetState::Undoing, Some(e.as_str()))
                    }
                };
                write("recording a database's undo", &|c| rollouts::target_undo(c, id, name, state, error))
            });
            if let Err(e) = result {
                *fatal.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
                stop.store(true, Ordering::SeqCst);
            }
        });
        if let Some(e) = fatal.lock().unwrap_or_else(|e| e.into_inner()).take() {
            return Err(e);
        }
        if failures.load(Ordering::SeqCst) == before {
            write("recording the undo", &|c| {
                rollouts::set_wave(c, id, wave.idx, WaveState::Undone, None)
            })?;
        }
    }
    let mut control = control.into_inner().unwrap_or_else(|e| e.into_inner());
    let (state, reason) = match failures.load(Ordering::SeqCst) {
        0 => (RolloutState::Undone, "every database that got the release went back".to_string()),
        n => (
            RolloutState::Undoing,
            format!("undo incomplete: {n} database(s) could not be taken back"),
        ),
    };
    if state == RolloutState::Undoing {
        setup.observer.happening(Happening::Halted { reason: &reason });
    }
    rollouts::set_state(&mut control, id, state, Some(&reason))
        .map_err(db("recording the undo"))?;
    status::read(&mut control, id).map_err(db("reading the rollout"))
}
