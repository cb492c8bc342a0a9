//! A migration's own down (its author's file) tried after its up on the
//! replay's copy, as a rollback runs it: in a transaction rolled back, the
//! schema, what the whole server shares and the database's own settings
//! compared with the state before the up.

use super::found::Proof;
use super::run::{db, Replay};
use super::DownsError;
use crate::copies::server_state as roles;
use crate::migrate::{self, Direction, Settings};
use crate::pg::checksum::TableChecksum;
use crate::pg::tracked::{Tracked, Written};
use crate::pg::Prepared;
use crate::source::{Migration, Part};

impl Replay<'_> {
    /// The migration's own down tried after its up, as a rollback runs
    /// it: `None` when it cannot be tried so (outside a transaction).
    /// With the proof, whether the up is now applied on the copy: it is
    /// applied once, and committed where its down holds (the down tried
    /// in a savepoint rolled back to), else rolled back with the down.
    pub(super) fn try_own_down(
        &mut self,
        m: &Migration,
    ) -> Result<Option<(Proof, bool)>, DownsError> {
        let Some(down) = &m.down else { return Ok(None) };
        if !m.up.in_one_transaction() || down.no_transaction || !m.runnable(Part::Down) {
            return Ok(None);
        }
        match self.applied_if_it_holds(m)? {
            // A value the up added to an enum cannot be used in the same
            // transaction (55P04), and a rollback runs the down in one of
            // its own: tried so, after the up committed.
            (Proof::Fails(why), false) if why.starts_with("55P04 ") => {
                if let Some(why) = self.up(m)? {
                    return Ok(Some((Proof::Fails(format!("the up fails: {why}")), true)));
                }
                let down = [migrate::Group::whole(Direction::Down, true, vec![m])];
                Ok(Some((self.tried(&down, &Lost::of(m))?, true)))
            }
            done => Ok(Some(done)),
        }
    }

    /// The up of `m` applied as `migrate` applies it, then its own down
    /// in a savepoint, the state after it compared with the state before
    /// the up ([`judged`]) and the up run again, and the savepoint rolled
    /// back to: the up is committed where the down holds, or where only
    /// the up run again fails. The proof, and whether the up was
    /// committed.
    fn applied_if_it_holds(&mut self, m: &Migration) -> Result<(Proof, bool), DownsError> {
        let (stamp, globals, files) = self.globals_now()?;
        if m.writes_catalogs() {
            self.tracked.catalogs_written();
        }
        let down_settings = self.unguarded();
        let up = migrate::Group::whole(Direction::Up, true, vec![m]);
        let down = migrate::Group::whole(Direction::Down, true, vec![m]);
        let settings = self.settings;
        let (tracked, prepared) = (&*self.tracked, &mut *self.prepared);
        let lost = Lost::of(m);
        let mut proof = None;
        let apply = |e| migrate::ApplyError::Db(crate::pg::DbError::new("proving a down", e));
        let (outcome, kept) =
            migrate::attempt(&mut *self.client, self.settings, &up, self.progress, |tx| {
                tx.batch_execute("SAVEPOINT backstop_own_down").map_err(apply)?;
                let ran = migrate::apply_group_in(tx, &down_settings, &down, &mut migrate::Quiet)?;
                let judged = match ran {
                    Err(f) => Proof::Fails(failed(&f)),
                    Ok(_) => judged(tx, (tracked, prepared), (&stamp, &globals, files), &lost)
                        .map_err(apply)?,
                };
                // The up again after it, as a rehearsal's round trip and a
                // redeploy after a rollback run it: a down that leaves what
                // no picture holds (a large object, a row a key refuses
                // twice) does not hold. No down worked out from the picture
                // would do better, so the up is kept and the replay goes on.
                let (judged, keep) = match judged {
                    Proof::Holds(cosmetic, also) => {
                        match migrate::apply_group_in(tx, settings, &up, &mut migrate::Quiet)? {
                            Ok(_) => (Proof::Holds(cosmetic, also), true),
                            Err(f) => (Proof::Differs(vec![again(&f)]), true),
                        }
                    }
                    other => (other, false),
                };
                tx.batch_execute("ROLLBACK TO SAVEPOINT backstop_own_down").map_err(apply)?;
                proof = Some(judged);
                Ok(keep)
            })?;
        if let Err(f) = outcome {
            let why = format!("the up fails: {}", f.message);
            self.up_failed = Some(*f);
            return Ok((Proof::Fails(why), false));
        }
        if kept {
            self.picture = None;
        }
        Ok((proof.expect("judged after the down"), kept))
    }

    /// `groups` tried one after the other in a transaction rolled back
    /// (as a rollback runs them, but for the protected tables' guard: a
    /// proof asks whether the schema comes back), and the state after the
    /// last judged against the state before the up ([`judged`]).
    fn tried(&mut self, groups: &[migrate::Group<'_>], lost: &Lost) -> Result<Proof, DownsError> {
        let (stamp, globals, files) = self.globals_now()?;
        let settings = self.unguarded();
        let mut proof = None;
        let last = groups.len() - 1;
        let (tracked, prepared) = (&*self.tracked, &mut *self.prepared);
        let outcomes =
            migrate::trial(&mut *self.client, &settings, groups, self.progress, |i, tx| {
                if i == last {
                    proof = Some(judged(tx, (tracked, prepared), (&stamp, &globals, files), lost));
                }
                Ok(())
            })?;
        if let Some(Err(f)) = outcomes.iter().find(|o| o.is_err()) {
            return Ok(if f.direction == Direction::Up {
                self.up_failed = Some((**f).clone());
                Proof::Fails(format!("the up fails: {}", f.message))
            } else {
                Proof::Fails(failed(f))
            });
        }
        proof.expect("judged after the down").map_err(db("reading the schema"))
    }

    /// The replay's settings without the protected tables' guard: a
    /// down's proof asks whether the schema comes back, not whether the
    /// down keeps a table's rows.
    fn unguarded(&self) -> Settings {
        Settings {
            protected_tables: Vec::new(),
            protected_made: Vec::new(),
            ..self.settings.clone()
        }
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
        let stamp = roles::Globals::stamp(&mut *self.client, &mut *self.prepared, files)
            .map_err(db("reading the roles"))?;
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

/// What an up that fails when it runs again after its own down says.
fn again(f: &migrate::Failure) -> String {
    format!(
        "the up fails when it runs again after it ({}): the down leaves behind what the schema \
         does not show, and no down worked out from the schema would take it back",
        f.message
    )
}

/// A down's failure as a proof says it; 55P04 (a new enum value used in
/// the transaction that added it) told apart: the caller tries again as a
/// rollback runs it.
fn failed(f: &migrate::Failure) -> String {
    match f.sqlstate.as_deref() {
        Some("55P04") => format!("55P04 {}", f.message),
        _ => f.message.clone(),
    }
}

/// The state in `tx` after a down, against the state before its up:
/// only what changed since the replay's picture (current to the state
/// before the up) is read again, in the copy's own session
/// (`pg::tracked`), the rest being the same by its rule; what the whole
/// server shares is read whole only where its stamp moved. Where the
/// down holds, also each object it left written otherwise but the same
/// as read (a function made again with other spacing), with the short
/// hash of what it left: a rollback's check, which compares definitions
/// by their hashes, takes that as put back.
fn judged(
    tx: &mut postgres::Transaction<'_>,
    (tracked, prepared): (&Tracked, &mut Prepared),
    (stamp, globals, files): (&str, &roles::Globals, bool),
    lost: &Lost,
) -> Result<Proof, postgres::Error> {
    let written = Written::here(tx)?;
    let (before, now) = tracked.look(tx, prepared, written)?;
    let mut differences = match roles::Globals::stamp(tx, prepared, files)? {
        now if now == stamp => Vec::new(),
        _ => globals.differences(&roles::Globals::read(tx)?),
    };
    differences.extend(before.schema.differences(&now.schema));
    differences.extend(lost.data_differences(&before.tables, &now.tables));
    if !differences.is_empty() {
        return Ok(Proof::Differs(differences));
    }
    let also = crate::adopt::keyed::written_otherwise(&before.schema, &now.schema);
    Ok(Proof::Holds(before.schema.cosmetic_differences(&now.schema), also))
}

/// The tables whose rows an up changes in a way no SQL puts back
/// (`UPDATE`, `DELETE`, …): after a down, their rows differ as a loss the
/// backup holds, not as the down's defect. `None`: any table (a `DO`
/// block the reader cannot follow). The same reading of the up as
/// `rehearse` makes, so the two give one answer.
pub(super) struct Lost(Option<Vec<String>>);

impl Lost {
    pub(super) fn of(m: &Migration) -> Lost {
        use backstop_sql::rows::RowChange;
        let mut tables = Vec::new();
        for s in &m.up.statements {
            for change in backstop_sql::rows::row_changes(&s.sql) {
                match change {
                    RowChange::Irreversible { table: Some(t), .. } => tables.push(t.name),
                    RowChange::Irreversible { table: None, .. } | RowChange::Unreadable { .. } => {
                        return Lost(None)
                    }
                    RowChange::Inserted(_) => {}
                }
            }
        }
        Lost(Some(tables))
    }

    /// Each table written since the state before the up that holds fewer
    /// rows than it did then, where the up did not change its rows for
    /// good: a down that deletes rows an earlier migration put there.
    /// Rows a down adds (an audit row) or leaves are not judged here: the
    /// rollback's export and check say those.
    fn data_differences(&self, before: &[TableChecksum], now: &[TableChecksum]) -> Vec<String> {
        let Some(lost) = &self.0 else { return Vec::new() };
        let name = |t: &str| t.rsplit('.').next().unwrap_or(t).trim_matches('"').to_string();
        before
            .iter()
            .filter(|b| !lost.contains(&name(&b.table)))
            .filter_map(|b| {
                let after = now.iter().find(|a| a.table == b.table)?;
                (after.rows < b.rows).then(|| {
                    format!(
                        "data of table {} differs ({} rows before, {} after)",
                        b.table, b.rows, after.rows
                    )
                })
            })
            .collect()
    }
}
