//! The quick way inside a replay: a migration whose up only adds,
//! renames or changes what the catalog can take back (`quick`) has its
//! down read from its statements and proved in one transaction with the
//! up, with no `pg_dump`; and where a migration's own down does not hold,
//! the down read so replaces it, before the full way is tried.

use super::proofs::Own;
use super::run::Replay;
use super::{Down, DownsError, Status};
use crate::source::Migration;

impl Replay<'_> {
    /// Where the migration's own down does not hold (`own`, `why`), the
    /// down read from its up's statements the quick way, proved, in place
    /// of the full way's (which dumps the schema before and after): `None`
    /// where the up is not read so, or its down not proved so (the copy
    /// is then as it was, for the full way).
    pub(super) fn quick_instead(
        &mut self,
        m: &Migration,
        own: &Own,
        why: &str,
    ) -> Result<Option<(Down, bool)>, DownsError> {
        let Some(reading) = super::quick::read(m).filter(|r| r.transactional) else {
            return Ok(None);
        };
        let Some((mut down, stop)) = self.quick(m, &reading)? else { return Ok(None) };
        if down.proved {
            if down.status != Status::Irreversible {
                down.status = Status::Fixed;
                down.replaces = true;
            }
            down.replacement = down.sql.clone();
            down.notes.insert(
                0,
                format!(
                    "the hand-written down {why}; this down, read from the up's statements, \
                     replaces it"
                ),
            );
        }
        down.own = Some(own.clone());
        Ok(Some((down, stop)))
    }

    /// The quick way for `m` (read as `reading`): the up applied once with
    /// its down proved; `None` when the full way is to go on from the state
    /// before the up, which is left as it was.
    pub(super) fn quick(
        &mut self,
        m: &Migration,
        reading: &super::quick::Reading,
    ) -> Result<Option<(Down, bool)>, DownsError> {
        use super::quick::Quick;
        let picture = (&mut *self.tracked, &mut *self.prepared);
        if reading.transactional {
            let tried = super::quick::apply_proved(
                self.client,
                self.settings,
                picture,
                m,
                reading,
                self.progress,
            )?;
            return Ok(match tried {
                Quick::Proved(proved) => {
                    self.picture = None;
                    Some((super::quick::down(m, &proved, reading), false))
                }
                Quick::UpFails(failure) => {
                    let why = self.hinted(failure.message.clone(), failure.sqlstate.clone());
                    // Carried to the down's report like the full way's
                    // (`Down::up_failed`): the check names the statement.
                    self.up_failed = Some(*failure);
                    let notes = vec![format!("the up fails on the replayed database: {why}")];
                    Some((Down::unprovable(m, Vec::new(), notes), true))
                }
                Quick::Not => None,
            });
        }
        // An up that cannot run in one transaction is applied for real
        // first; its down is then proved in a transaction rolled back.
        let Some(inverses) = super::quick::before(self.client, picture, reading)? else {
            return Ok(None);
        };
        if let Some(why) = self.up(m)? {
            let notes = vec![format!("the up fails on the replayed database: {why}")];
            return Ok(Some((Down::unprovable(m, Vec::new(), notes), true)));
        }
        let picture = (&*self.tracked, &mut *self.prepared);
        let down = match super::quick::prove_applied(
            (self.client, self.settings),
            picture,
            &inverses,
            reading,
        )? {
            Ok(proved) => super::quick::down(m, &proved, reading),
            Err(why) => Down::unprovable(
                m,
                Vec::new(),
                vec![format!(
                    "not proved: {why}; its up runs outside a transaction, so the copy cannot \
                     go back to before it to work the down out another way: write this down \
                     by hand"
                )],
            ),
        };
        Ok(Some((down, false)))
    }
}
