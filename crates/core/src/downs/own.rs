//! A migration's own down (its author's file) tried after its up on the
//! replay's copy, as a rollback runs it: in a transaction rolled back, the
//! schema, what the whole server shares and the database's own settings
//! compared with the state before the up.

use super::run::{db, Proof, Replay};
use super::DownsError;
use crate::migrate::{self, Direction, Settings};
use crate::pg::tracked::Written;
use crate::rehearse::server_state as roles;
use crate::source::{Migration, Part};

impl Replay<'_> {
    /// The migration's own down tried after its up, both rolled back:
    /// `None` when it cannot be tried so (outside a transaction).
    pub(super) fn try_own_down(
        &mut self,
        m: &Migration,
    ) -> Result<Option<(Proof, bool)>, DownsError> {
        let Some(down) = &m.down else { return Ok(None) };
        if !m.up.in_one_transaction() || down.no_transaction || !m.runnable(Part::Down) {
            return Ok(None);
        }
        let groups = [
            migrate::Group::whole(Direction::Up, true, vec![m]),
            migrate::Group::whole(Direction::Down, true, vec![m]),
        ];
        let proof = self.tried(&groups)?;
        match proof {
            // A value the up added to an enum cannot be used in the same
            // transaction (55P04), and a rollback runs the down in one of
            // its own: tried so, after the up committed.
            Proof::Fails(why) if why.starts_with("55P04 ") => {
                if let Some(why) = self.up(m)? {
                    return Ok(Some((Proof::Fails(format!("the up fails: {why}")), true)));
                }
                let down = [migrate::Group::whole(Direction::Down, true, vec![m])];
                Ok(Some((self.tried(&down)?, true)))
            }
            proof => Ok(Some((proof, false))),
        }
    }

    /// `groups` tried one after the other in a transaction rolled back
    /// (as a rollback runs them, but for the protected tables' guard: a
    /// proof asks whether the schema comes back), and the schema after
    /// the last compared with the state before the up (the replay's
    /// picture, current to it), with what the whole server shares
    /// and the database's own settings.
    fn tried(&mut self, groups: &[migrate::Group<'_>]) -> Result<Proof, DownsError> {
        let (stamp, globals, files) = self.globals_now()?;
        let settings = Settings {
            protected_tables: Vec::new(),
            protected_made: Vec::new(),
            ..self.settings.clone()
        };
        let (mut look, mut globals_after) = (None, None);
        let last = groups.len() - 1;
        let prepared = &mut *self.prepared;
        // Only what the up and the down changed is read again, in the
        // copy's own session (`pg::tracked`): the picture is current to
        // the state before the up, and the rest is the same by its rule.
        let tracked = &*self.tracked;
        let outcomes =
            migrate::trial(&mut *self.client, &settings, groups, self.progress, |i, tx| {
                if i == last {
                    look = Some(tracked.look(tx, prepared, Written::None));
                    // Read whole only where something of them changed.
                    globals_after = Some(match roles::Globals::stamp(tx, files) {
                        Ok(now) if now == stamp => Ok(None),
                        Ok(_) => roles::Globals::read(tx).map(Some),
                        Err(e) => Err(e),
                    });
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
        let (before, now) = look.expect("read after the down").map_err(db("reading the schema"))?;
        let globals_after =
            globals_after.expect("read after the down").map_err(db("reading the roles"))?;
        let mut differences =
            globals_after.map(|after| globals.differences(&after)).unwrap_or_default();
        differences.extend(before.schema.differences(&now.schema));
        Ok(if differences.is_empty() {
            Proof::Holds(before.schema.cosmetic_differences(&now.schema))
        } else {
            Proof::Differs(differences)
        })
    }

    /// What the whole server shares now, with its stamp and whether the
    /// settings files are read: taken from the last read while the stamp
    /// says nothing changed (one query, where reading them whole is five).
    fn globals_now(&mut self) -> Result<(String, roles::Globals, bool), DownsError> {
        let files = match self.files_readable {
            Some(files) => files,
            None => {
                let files = roles::Globals::files_readable(&mut *self.client)
                    .map_err(db("reading the settings"))?;
                *self.files_readable.insert(files)
            }
        };
        let stamp =
            roles::Globals::stamp(&mut *self.client, files).map_err(db("reading the roles"))?;
        if let Some((kept, globals)) = &self.globals {
            if *kept == stamp {
                return Ok((stamp, globals.clone(), files));
            }
        }
        let globals = roles::Globals::read(&mut *self.client).map_err(db("reading the roles"))?;
        self.globals = Some((stamp.clone(), globals.clone()));
        Ok((stamp, globals, files))
    }
}
