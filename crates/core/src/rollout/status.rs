//! A rollout as its control database records it, with the counts per
//! wave and the one rule of what to do next, for `backstop rollout
//! status`, the end of every run and the status page.

use std::collections::BTreeMap;

use postgres::GenericClient;
use serde::Serialize;

use super::plan::connect;
use super::{db, RolloutConfig, RolloutError};
use crate::schema::rollouts::{self, Rollout, RolloutState, Target, TargetState, Wave};

/// A wave with how many of its databases stand where.
#[derive(Debug, Clone, Serialize)]
pub struct WaveRecord {
    #[serde(flatten)]
    pub wave: Wave,
    /// State → databases, e.g. `{"done": 20, "failed": 1}`.
    pub counts: BTreeMap<&'static str, usize>,
}

/// Everything recorded about one rollout.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    #[serde(flatten)]
    pub rollout: Rollout,
    pub waves: Vec<WaveRecord>,
    pub targets: Vec<Target>,
    /// What a person should do next, if anything.
    pub next: Option<String>,
}

impl Record {
    /// Databases in `state`.
    pub fn count(&self, state: TargetState) -> usize {
        self.targets.iter().filter(|t| t.state == state).count()
    }

    /// Whether the rollout ended well: done, and every database with it
    /// (or, after an undo, every database taken back).
    pub fn ok(&self) -> bool {
        match self.rollout.state {
            RolloutState::Done => self.count(TargetState::Done) == self.targets.len(),
            RolloutState::Undone => true,
            _ => false,
        }
    }
}

/// The latest rollout recorded in the control database of `config`;
/// `None` when there never was one. Writes nothing.
pub fn status(config: &RolloutConfig) -> Result<Option<Record>, RolloutError> {
    let mut control = connect(config)?;
    current(&mut control).map_err(db("reading the rollout"))
}

/// The latest rollout recorded in the database `client` is connected to.
pub fn current(client: &mut impl GenericClient) -> Result<Option<Record>, postgres::Error> {
    match rollouts::latest(client)? {
        Some(r) => read(client, r.id).map(Some),
        None => Ok(None),
    }
}

/// Rollout `id` as recorded.
pub(crate) fn read(client: &mut impl GenericClient, id: i64) -> Result<Record, postgres::Error> {
    let rollout = rollouts::get(client, id)?.expect("rollout ids come from its own table");
    let targets = rollouts::targets(client, id)?;
    let waves = rollouts::waves(client, id)?
        .into_iter()
        .map(|wave| {
            let mut counts = BTreeMap::new();
            for t in targets.iter().filter(|t| t.wave == wave.idx) {
                *counts.entry(t.state.as_str()).or_insert(0) += 1;
            }
            WaveRecord { wave, counts }
        })
        .collect();
    let next = next(&rollout, &targets);
    Ok(Record { rollout, waves, targets, next })
}

/// What to do next, by where the rollout stands.
fn next(rollout: &Rollout, targets: &[Target]) -> Option<String> {
    let failed = targets.iter().filter(|t| t.state == TargetState::Failed).count();
    let undo_failed = targets.iter().filter(|t| t.undo_error.is_some()).count();
    match rollout.state {
        RolloutState::Running => Some(
            "a run is carrying it out, or was killed: `backstop rollout --resume` goes on from \
             where the records stand (it waits for a live run's lock, never applies a migration twice)"
                .into(),
        ),
        RolloutState::Halted => Some(
            "look at why it halted; then `backstop rollout --resume` goes on (retrying the failed \
             databases), or `backstop rollout --undo` takes every database that got the release back"
                .into(),
        ),
        RolloutState::Done if failed > 0 => Some(format!(
            "{failed} database(s) failed: fix them, then `backstop rollout --resume` retries them; \
             or `backstop rollout --undo` takes every database that got the release back"
        )),
        RolloutState::Undoing if undo_failed > 0 => Some(format!(
            "{undo_failed} database(s) could not be taken back (see each one's undo error); fix \
             them, then `backstop rollout --undo` again"
        )),
        RolloutState::Undoing => {
            Some("an undo was interrupted: `backstop rollout --undo` finishes it".into())
        }
        RolloutState::Done | RolloutState::Undone => None,
    }
}
