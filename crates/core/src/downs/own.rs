//! A migration's own down (its author's file) tried after its up on the
//! replay's copy, as a rollback runs it: in a transaction rolled back, the
//! schema, what the whole server shares and the database's own settings
//! compared with the state before the up.

use super::run::{db, Proof, Replay};
use super::DownsError;
use crate::migrate::{self, Direction, Settings};
use crate::pg::fingerprint::Schema;
use crate::rehearse::server_state as roles;
use crate::source::{Migration, Part};

impl Replay<'_> {
    /// The migration's own down tried after its up, both rolled back:
    /// `None` when it cannot be tried so (outside a transaction).
    pub(super) fn try_own_down(
        &mut self,
        m: &Migration,
        before: &Schema,
    ) -> Result<Option<(Proof, bool)>, DownsError> {
        let Some(down) = &m.down else { return Ok(None) };
        if !m.up.in_one_transaction() || down.no_transaction || !m.runnable(Part::Down) {
            return Ok(None);
        }
        let groups = [
            migrate::Group::whole(Direction::Up, true, vec![m]),
            migrate::Group::whole(Direction::Down, true, vec![m]),
        ];
        let proof = self.tried(&groups, before)?;
        match proof {
            // A value the up added to an enum cannot be used in the same
            // transaction (55P04), and a rollback runs the down in one of
            // its own: tried so, after the up committed.
            Proof::Fails(why) if why.starts_with("55P04 ") => {
                if let Some(why) = self.up(m)? {
                    return Ok(Some((Proof::Fails(format!("the up fails: {why}")), true)));
                }
                let down = [migrate::Group::whole(Direction::Down, true, vec![m])];
                Ok(Some((self.tried(&down, before)?, true)))
            }
            proof => Ok(Some((proof, false))),
        }
    }

    /// `groups` tried one after the other in a transaction rolled back
    /// (as a rollback runs them, but for the protected tables' guard: a
    /// proof asks whether the schema comes back), and the schema after
    /// the last compared with `before`, with what the whole server shares
    /// and the database's own settings.
    fn tried(
        &mut self,
        groups: &[migrate::Group<'_>],
        before: &Schema,
    ) -> Result<Proof, DownsError> {
        let globals = roles::Globals::read(&mut *self.client).map_err(db("reading the roles"))?;
        let settings = Settings {
            protected_tables: Vec::new(),
            protected_made: Vec::new(),
            ..self.settings.clone()
        };
        let (mut after, mut globals_after) = (None, None);
        let last = groups.len() - 1;
        let prepared = &mut *self.prepared;
        let outcomes =
            migrate::trial(&mut *self.client, &settings, groups, self.progress, |i, tx| {
                if i == last {
                    after = Some(Schema::read_prepared(tx, prepared));
                    globals_after = Some(roles::Globals::read(tx));
                }
                Ok(())
            })?;
        // 55P04 (a new enum value used in the transaction that added it)
        // is told apart: the caller tries again as a rollback runs it.
        let failed = |f: &migrate::Failure| match f.sqlstate.as_deref() {
            Some("55P04") => format!("55P04 {}", f.message),
            _ => f.message.clone(),
        };
        if let Some(Err(f)) = outcomes.iter().find(|o| o.is_err()) {
            return Ok(if f.direction == Direction::Up {
                self.up_failed = Some((**f).clone());
                Proof::Fails(format!("the up fails: {}", f.message))
            } else {
                Proof::Fails(failed(f))
            });
        }
        let now = after.expect("read after the down").map_err(db("reading the schema"))?;
        let globals_after =
            globals_after.expect("read after the down").map_err(db("reading the roles"))?;
        let mut differences = globals.differences(&globals_after);
        differences.extend(before.differences(&now));
        Ok(if differences.is_empty() {
            Proof::Holds(before.cosmetic_differences(&now))
        } else {
            Proof::Differs(differences)
        })
    }
}
