//! Where a hand-written down runs but leaves the schema otherwise, its
//! fix is worked out from where the file's down left the copy, which it
//! ran on for real. When no fix holds there, the copy is brought back to
//! where the up left it (the difference from the picture taken then,
//! worked out the way a down is, and the up's history row put back), so
//! that the down can be worked out whole from there and the replay goes
//! on: before, every later migration was "not reached".

use super::picture::State;
use super::run::{db, Replay};
use super::DownsError;
use crate::pg::fingerprint::Schema;
use crate::schema::applied::{self, AppliedRow};
use crate::source::Migration;

/// The copy as the up of a migration left it, set aside before its
/// hand-written down runs for real.
pub(super) struct AfterUp {
    picture: State,
    schema: Schema,
    /// The up's row of the copy's history, which the down removes.
    applied: Vec<AppliedRow>,
}

impl Replay<'_> {
    /// What [`Replay::regain`] needs to come back to where the up of `m`
    /// left the copy.
    pub(super) fn after_up_aside(&mut self, m: &Migration) -> Result<AfterUp, DownsError> {
        let picture = self.picture()?;
        let schema = self.schema()?;
        let applied = applied::all(&mut *self.client)
            .map_err(db("reading the copy's history"))?
            .into_iter()
            .filter(|r| r.version == m.version)
            .collect();
        Ok(AfterUp { picture, schema, applied })
    }

    /// Brings the copy back to `aside` in one transaction; why it could
    /// not, if it could not (the copy is then where it was, or, when the
    /// schema still differs after, left so: the caller stops the replay).
    pub(super) fn regain(&mut self, aside: AfterUp) -> Result<Option<String>, DownsError> {
        let now = self.picture()?;
        let client = &mut *self.client;
        let mut dependents =
            |seeds: &super::remade_around::Seeds| super::remade_around::dependents(client, seeds);
        let plan = super::plan::plan(&aside.picture, &now, &mut dependents, &Default::default())
            .map_err(db("working out the way back to where the up left the copy"))?;
        if let Some(unheld) = plan.unheld.first() {
            return Ok(Some(format!("the way back to where the up left it cannot hold {unheld}")));
        }
        let mut tx = self.client.transaction().map_err(db("starting a transaction"))?;
        let sql = super::ddl::joined(&plan.statements, self.settings);
        if let Err(e) = tx.batch_execute(&sql) {
            let why = crate::pg::conn::error_chain(&e);
            return Ok(Some(format!("the way back to where the up left it fails: {why}")));
        }
        applied::insert_copied(&mut tx, &aside.applied)
            .map_err(db("putting the up's history row back"))?;
        tx.commit().map_err(db("committing on the copy"))?;
        let left = aside.schema.differences(&self.schema()?);
        Ok((!left.is_empty()).then(|| {
            format!("{} difference(s) from where the up left it remain: {}", left.len(), left[0])
        }))
    }
}
