//! Replaying a history on a throwaway database and proving each down on
//! the way. For every migration asked about: its own down is tried first
//! (up and down in one transaction that is rolled back); where there is
//! none, or it does not put the schema back, the schema is taken before
//! and after (`pg_dump` and the catalog), a down is worked out, run in a
//! transaction, the schema compared with the one before, and the
//! transaction rolled back. The copy then goes on from the state after the
//! up, so one run covers the whole history.

use std::path::PathBuf;

use postgres::Client;

use super::ddl::joined;
use super::found::{found_down, Found, Mode, Proof, NO_FIX, ROWS_TAKEN};
use super::picture::{Plan, State};
use super::plan;
use super::proofs::Own;
use super::{catalog, data, toc, Down, DownsError};
use crate::adopt::keyed::Digest;
use crate::copies::server_state as roles;
use crate::copies::CopyDb;
use crate::migrate::{self, MigrateOptions, Note, Progress, RollbackTarget, Settings};
use crate::pg::fingerprint::Schema;
use crate::pg::tracked::Tracked;
use crate::pg::Prepared;
use crate::source::Migration;

/// The copy being replayed, and what is known of its current state.
pub(super) struct Replay<'a> {
    pub(super) client: &'a mut Client,
    copy: CopyDb,
    pg_dump: PathBuf,
    /// The migrations as replayed (see `rehearse::outside::replayed`) and as written.
    migrations: &'a [Migration],
    originals: &'a [Migration],
    pub(super) settings: &'a Settings,
    pub(super) progress: &'a mut dyn Progress,
    /// The picture of the copy's current state, while it holds.
    pub(super) picture: Option<State>,
    /// The schema picture's queries, planned once for the whole replay.
    pub(super) prepared: &'a mut Prepared,
    /// The semantic picture, kept current between migrations: the state
    /// before the up of the migration being worked out.
    pub(super) tracked: &'a mut Tracked,
    /// Where the replay started, as a failure names it.
    start: Start,
    /// `pg_dump`'s options leaving out what the role may neither read nor
    /// change, read at the first picture: no migration run as the role
    /// makes such a table, so it holds for the whole replay.
    left_out: Option<Vec<String>>,
    /// How the last up that failed failed, for the down of its migration
    /// to carry (`Down::up_failed`).
    pub(super) up_failed: Option<migrate::Failure>,
    /// What the whole server shares, as last read, under its stamp
    /// (`own`: read whole only when the stamp moved).
    pub(super) globals: Option<(String, roles::Globals)>,
    /// Whether the session may read the settings files.
    pub(super) files_readable: Option<bool>,
}

/// Where a replay started: what an up that fails for want of an object
/// names, so that a user who gave `--start` is not told to give it.
#[derive(Clone)]
pub(super) enum Start {
    /// The target's platform, copied by itself.
    Platform,
    /// The start the user named with `--start`, as said (`database base`,
    /// `the schema dump base.sql`).
    Given(String),
    /// The target's own schema (`migrate` keeping downs).
    Target,
    /// The target's own schema, for `downs` where nothing of the project
    /// is applied there yet: where its first deploy starts.
    FirstDeploy,
}

impl Start {
    /// The hint after an up that failed for want of an object.
    fn hint(&self) -> String {
        match self {
            Start::Platform => "the history is written on something neither it nor the target's \
                                platform holds: pass --start with a database or a schema dump \
                                that does"
                .into(),
            Start::Given(start) => format!(
                "the history is written on something neither it nor the start given with \
                 --start, {start}, holds: give --start a database or a schema dump that has it"
            ),
            Start::Target => {
                "the history is written on something neither it nor the target holds".into()
            }
            Start::FirstDeploy => "the history is written on something neither it nor the \
                                   target holds: pass --start with a database or a schema \
                                   dump that does"
                .into(),
        }
    }
}

pub(super) fn db(context: &'static str) -> impl Fn(postgres::Error) -> DownsError {
    move |source| DownsError::Db(crate::pg::DbError::new(context, source))
}

impl Replay<'_> {
    /// Replays `todo` in order, working out the down of each that `asked`
    /// says; the ups of those between are applied together, just before
    /// the next one asked about (and not at all after the last).
    /// `(first, total)`: how the progress numbers them (the first is
    /// `first + 1` of `total`). With the downs, why the replay stopped, if
    /// it did (every one asked about after that is unprovable).
    pub(super) fn replay_all(
        &mut self,
        todo: &[&Migration],
        asked: &dyn Fn(&Migration) -> bool,
        (first, total): (usize, usize),
    ) -> Result<(Vec<Down>, Option<String>), DownsError> {
        let mut out: Vec<Down> = Vec::new();
        let mut stopped: Option<String> = None;
        let history = super::proofs::ToolHistory::of(self.originals)
            .leaving_out(&mut *self.client)
            .map_err(db("reading which tables the role may read"))?;
        // The down whose proof ends where the next migration starts: its
        // end fingerprint is that start's; and the picture at its start,
        // to tell what its up touched.
        let mut open_end: Option<(usize, Digest)> = None;
        // The last migration not asked about whose up is still to apply.
        let mut deferred: Option<&Migration> = None;
        for (i, m) in todo.iter().copied().enumerate() {
            if let Some(why) = &stopped {
                if asked(m) {
                    out.push(Down::unprovable(m, Vec::new(), vec![why.clone()]));
                }
                continue;
            }
            if !asked(m) {
                if let Some((at, before)) = open_end.take() {
                    let (end, now) = self.ends(&history)?;
                    out[at].ended(end, &now, &before);
                }
                deferred = Some(m);
                continue;
            }
            if let Some(d) = deferred.take() {
                if let Some(why) = self.up(d)? {
                    let why = format!(
                        "not reached: the up of {} fails on the replayed database: {why}",
                        d.label()
                    );
                    out.push(Down::unprovable(m, Vec::new(), vec![why.clone()]));
                    stopped = Some(why);
                    continue;
                }
            }
            let index = first + i + 1;
            let label = format!("{} ({index}/{total})", m.label());
            self.progress.note(Note::Stage { index, total, name: &label });
            let (start, digest) = self.ends(&history)?;
            if let Some((at, before)) = open_end.take() {
                out[at].ended(start.clone(), &digest, &before);
            }
            let (mut down, stop) = self.one(m)?;
            down.start = Some(start);
            if stop {
                stopped = Some(format!("not reached: {} could not be replayed", m.label()));
            } else {
                // Proved or not, where its up ends keys the next proof.
                open_end = Some((out.len(), digest));
            }
            out.push(down);
        }
        if let Some((at, before)) = open_end {
            let (end, now) = self.ends(&history)?;
            out[at].ended(end, &now, &before);
        }
        Ok((out, stopped))
    }
}

/// One end of an up on a copy: its picture brought up to date, and the
/// fingerprint and digest a proof's key reads of it (with the database's
/// own settings).
pub(super) fn ends_of(
    client: &mut Client,
    (tracked, prepared): (&mut Tracked, &mut Prepared),
    history: &super::proofs::ToolHistory,
) -> Result<(String, Digest), DownsError> {
    tracked.refresh(&mut *client, prepared).map_err(db("reading the schema"))?;
    let settings =
        crate::adopt::keyed::settings(client).map_err(db("reading the database's settings"))?;
    Ok(history.digest_apart(tracked.objects().into_iter().chain(&settings), tracked.cosmetic()))
}

/// What a proof compares beside the schema: the rows of the tables a data
/// down deletes from, and what the whole (throwaway) server shares.
struct Baseline {
    rows: Vec<(String, String)>,
    globals: roles::Globals,
}

impl<'a> Replay<'a> {
    /// A replay over a copy someone else drives (a rehearsal): its
    /// session, the statements prepared on it and its picture, current.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn over(
        client: &'a mut Client,
        copy: CopyDb,
        pg_dump: PathBuf,
        (migrations, originals): (&'a [Migration], &'a [Migration]),
        settings: &'a Settings,
        progress: &'a mut dyn Progress,
        (tracked, prepared): (&'a mut Tracked, &'a mut Prepared),
        start: Start,
    ) -> Replay<'a> {
        Replay {
            client,
            copy,
            pg_dump,
            migrations,
            originals,
            settings,
            progress,
            picture: None,
            prepared,
            tracked,
            start,
            left_out: None,
            up_failed: None,
            globals: None,
            files_readable: None,
        }
    }
}

impl Replay<'_> {
    /// The picture of the current state: `pg_dump` and the catalog.
    pub(super) fn picture(&mut self) -> Result<State, DownsError> {
        if let Some(p) = self.picture.take() {
            return Ok(p);
        }
        // What the role may not read, nor change, pg_dump cannot lock and
        // no migration changes (a platform's table on a template copy).
        if self.left_out.is_none() {
            let left_out = crate::pg::unreadable::left_out_of_schema(&mut *self.client)
                .map_err(db("reading which tables the role may read"))?;
            self.left_out = Some(crate::pg::unreadable::exclude_args(&left_out));
        }
        let excluded = self.left_out.as_deref().unwrap_or_default();
        let (url, dbname) = (&self.copy.server_url, &self.copy.dbname);
        let mut dump = toc::dump_with(&self.pg_dump, url, dbname, excluded)?;
        let mut catalog =
            catalog::read(&mut *self.client, &dump).map_err(db("reading the catalog"))?;
        dump.name_members(&catalog.owners);
        super::storage::read_settings(&mut *self.client, &mut catalog.tables)
            .map_err(db("reading the tables' settings"))?;
        Ok(State { dump, catalog })
    }

    /// The ends of the up just applied ([`Replay::ends`]), with the
    /// content of the tables its statements wrote read again too (where
    /// the progress kept them), so the picture holds for the next migration.
    pub(super) fn ends_after_up(
        &mut self,
        history: &super::proofs::ToolHistory,
    ) -> Result<(String, Digest), DownsError> {
        if let Some(written) = self.progress.take_written() {
            self.tracked.wrote(written);
        }
        self.ends(history)
    }

    /// The fingerprint a proof is keyed by and the digest of the picture
    /// brought up to date: one end of an up.
    pub(super) fn ends(
        &mut self,
        history: &super::proofs::ToolHistory,
    ) -> Result<(String, Digest), DownsError> {
        ends_of(&mut *self.client, (&mut *self.tracked, &mut *self.prepared), history)
    }

    /// The schema as it is now, from the picture brought up to date.
    pub(super) fn schema(&mut self) -> Result<Schema, DownsError> {
        self.tracked
            .refresh(&mut *self.client, &mut *self.prepared)
            .map_err(db("reading the schema"))?;
        Ok(self.tracked.schema())
    }

    /// Applies the up of `m`; the failure, if it fails, with a hint when
    /// it fails for want of an object the history did not make.
    pub(super) fn up(&mut self, m: &Migration) -> Result<Option<String>, DownsError> {
        Ok(self.up_failure(m)?.map(|(message, sqlstate)| self.hinted(message, sqlstate)))
    }

    /// An up's failure, with a hint when it fails for want of an object
    /// the history did not make.
    pub(super) fn hinted(&self, message: String, sqlstate: Option<String>) -> String {
        let missing = ["42P01", "42883", "42704", "3F000", "42703"];
        if sqlstate.as_deref().is_some_and(|s| missing.contains(&s)) {
            format!("{message} ({})", self.start.hint())
        } else {
            message
        }
    }

    fn up_failure(
        &mut self,
        m: &Migration,
    ) -> Result<Option<(String, Option<String>)>, DownsError> {
        self.picture = None;
        if m.writes_catalogs() {
            self.tracked.catalogs_written();
        }
        let opts = MigrateOptions {
            to: Some(m.version.clone()),
            allow_out_of_order: true,
            ..Default::default()
        };
        match migrate::migrate(
            &mut *self.client,
            self.migrations,
            self.settings,
            &opts,
            &mut [],
            self.progress,
        ) {
            Ok(report) => Ok(report.failure.map(|f| {
                let told = (f.message.clone(), f.sqlstate.clone());
                self.up_failed = Some(f);
                told
            })),
            Err(migrate::ApplyError::Unrunnable(problems)) => Ok(Some((
                problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; "),
                None,
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// Runs `statements` and commits them.
    fn commit(&mut self, statements: &[String]) -> Result<(), DownsError> {
        if statements.is_empty() {
            return Ok(());
        }
        self.picture = None;
        let mut tx = self.client.transaction().map_err(db("starting a transaction"))?;
        tx.batch_execute(&joined(statements, self.settings))
            .map_err(db("renaming objects back on the copy"))?;
        tx.commit().map_err(db("committing on the copy"))
    }

    /// Runs `statements` in a transaction, compares the schema with
    /// `before`, and rolls back.
    fn prove(
        &mut self,
        statements: &[String],
        before: &Schema,
        baseline: &Baseline,
    ) -> Result<Proof, DownsError> {
        let mut tx = self.client.transaction().map_err(db("starting a transaction"))?;
        if let Err(e) = tx.batch_execute(&joined(statements, self.settings)) {
            return Ok(Proof::Fails(crate::pg::conn::error_chain(&e)));
        }
        let now = Schema::read_prepared(&mut tx, &mut *self.prepared)
            .map_err(db("reading the schema"))?;
        let mut differences = Vec::new();
        for (table, digest) in &baseline.rows {
            let after = data::rows_digest(&mut tx, table).map_err(db("reading the rows"))?;
            if &after != digest {
                differences.push(format!("the rows of {table} differ from those before the up"));
            }
        }
        let globals = roles::Globals::read(&mut tx).map_err(db("reading the roles"))?;
        differences.extend(baseline.globals.differences(&globals));
        drop(tx);
        differences.extend(before.differences(&now));
        if differences.is_empty() {
            let also = crate::adopt::keyed::written_otherwise(before, &now);
            Ok(Proof::Holds(before.cosmetic_differences(&now), also))
        } else {
            Ok(Proof::Differs(differences))
        }
    }

    /// Proves the `ALTER SYSTEM` part of a down for real (it cannot run in
    /// a transaction), then runs the up's own `ALTER SYSTEM` statements
    /// again so the replay goes on from the state after the up. Why it
    /// does not hold, if it does not.
    fn prove_system(
        &mut self,
        m: &Migration,
        system: &[String],
        before: &roles::Globals,
    ) -> Result<Option<String>, DownsError> {
        for s in system {
            if let Err(e) = self.client.batch_execute(s) {
                return Ok(Some(format!("{s} fails: {}", crate::pg::conn::error_chain(&e))));
            }
        }
        let now = roles::Globals::read(&mut *self.client).map_err(db("reading the settings"))?;
        let held = before.same_system(&now);
        for s in m.up.statements.iter().filter(|s| {
            matches!(backstop_sql::refs::reach(&s.sql), Some(backstop_sql::refs::Reach::Server(w)) if w == "ALTER SYSTEM")
        }) {
            self.client.batch_execute(&s.sql).map_err(db("setting the up's configuration again"))?;
        }
        self.client.batch_execute("SELECT pg_reload_conf()").map_err(db("reloading"))?;
        Ok((!held).then(|| "ALTER SYSTEM settings differ from those before the up".into()))
    }

    /// One migration asked about; whether the replay must stop after it.
    pub(super) fn one(&mut self, m: &Migration) -> Result<(Down, bool), DownsError> {
        self.up_failed = None;
        // The up as the copy runs it: a call that reaches outside the
        // database never runs there, whether its down is its author's or
        // worked out (before, an author's down was tried after the up as
        // written, and a copy sent pg_net's request).
        let migrations = self.migrations;
        let m = migrations.iter().find(|r| r.version == m.version).unwrap_or(m);
        let (mut down, stops) = self.either_way(m)?;
        if down.notes.first().is_some_and(|n| n.starts_with("the up fails")) {
            down.up_failed = self.up_failed.take();
        }
        Ok((down, stops))
    }

    /// The quick way where it serves, else the full way.
    fn either_way(&mut self, m: &Migration) -> Result<(Down, bool), DownsError> {
        if let Some(reading) = super::quick::read(m).filter(|_| m.down.is_none()) {
            if let Some(done) = self.quick(m, &reading)? {
                return Ok(done);
            }
        }
        // The quick way leaves the copy as it was when it gives up; the
        // picture is brought up to it (the own down's trial compares
        // what changed against it).
        self.tracked
            .refresh(&mut *self.client, &mut *self.prepared)
            .map_err(db("reading the schema"))?;
        let (mode, own) = match self.try_own_down(m)? {
            Some((Proof::Holds(cosmetic, also), up_done)) => {
                if !up_done {
                    if let Some(why) = self.up(m)? {
                        let notes = vec![format!("the up fails: {why}")];
                        return Ok((Down::unprovable(m, Vec::new(), notes), true));
                    }
                }
                return Ok((Down { also, ..Down::holds(m, &cosmetic) }, false));
            }
            Some((Proof::Fails(why), _)) if why.starts_with("the up fails") => {
                return Ok((Down::unprovable(m, Vec::new(), vec![why]), true));
            }
            // Tried after its up committed: the copy is past the state
            // before the up, so no down is worked out from there.
            Some((Proof::Fails(why), true)) => {
                let mut down = Down::unprovable(m, Vec::new(), vec![format!("not proved: {why}")]);
                down.own = Some(Own::Defective(vec![why]));
                return Ok((down, false));
            }
            Some((Proof::Fails(why), false)) => {
                let own = Own::Defective(vec![format!("it fails: {why}")]);
                if let Some(done) = self.quick_instead(m, &own, &format!("fails: {why}"))? {
                    return Ok(done);
                }
                (Mode::Replace(why), Some(own))
            }
            Some((Proof::Differs(differences), true)) => {
                let notes = vec![format!("not proved: after it, {}", differences.join("; "))];
                let mut down = Down::unprovable(m, Vec::new(), notes);
                down.own = Some(Own::Defective(differences));
                return Ok((down, false));
            }
            Some((Proof::Differs(differences), false)) => {
                // Rows it took that the schema does not hold (an earlier
                // migration's): nothing added after it brings them back,
                // so the down is worked out from where the up left the
                // copy instead, the file's never run there for real.
                let rows_only = differences.iter().all(|d| d.starts_with("data of table "));
                let own = Own::Defective(differences);
                let why = "does not bring the schema back";
                if let Some(done) = self.quick_instead(m, &own, why)? {
                    return Ok(done);
                }
                match rows_only {
                    true => (Mode::Replace(ROWS_TAKEN.into()), Some(own)),
                    false => (Mode::AddTo, Some(own)),
                }
            }
            None if m.down.is_some() => {
                let why = "it runs outside a transaction or cannot run as written, so it was not \
                           tried";
                (Mode::Replace(why.into()), Some(Own::NotTried(why.into())))
            }
            None => (Mode::Compute, None),
        };
        // The full way: the whole picture before the up (still the
        // copy's state: every trial above was rolled back).
        let before_schema = self.tracked.schema();
        let (down, stop) = self.worked_out(m, mode, &before_schema)?;
        Ok((Down { own: own.or(down.own), ..down }, stop))
    }

    /// The rest of [`Replay::one`] once it is known how the migration's
    /// own down fared (`mode`): the down worked out and proved.
    fn worked_out(
        &mut self,
        m: &Migration,
        mode: Mode,
        before_schema: &Schema,
    ) -> Result<(Down, bool), DownsError> {
        let before = self.picture()?;
        let mut rows = Vec::new();
        let originals = self.originals;
        let original = originals.iter().find(|o| o.version == m.version).unwrap_or(m);
        let mut compared = data::inserted_tables(original, &before.catalog);
        compared.extend(super::calls::shown_in(original, &before.catalog));
        for table in compared {
            let digest =
                data::rows_digest(&mut *self.client, &table).map_err(db("reading the rows"))?;
            rows.push((table, digest));
        }
        let globals = roles::Globals::read(&mut *self.client).map_err(db("reading the roles"))?;
        let baseline = Baseline { rows, globals };
        if let Some(why) = self.up(m)? {
            let notes = vec![format!("the up fails on the replayed database: {why}")];
            return Ok((Down::unprovable(m, Vec::new(), notes), true));
        }
        // Where the up left the copy, to come back to should no fix
        // added after the hand-written down hold.
        let mut aside = None;
        if matches!(mode, Mode::AddTo) {
            aside = Some(self.after_up_aside(m)?);
            if let Some(why) = self.own_down_for_real()? {
                let notes = vec![format!("the down fails when run for real: {why}")];
                return Ok((Down::unprovable(m, Vec::new(), notes), true));
            }
        }
        let mut found = self.work_out(original, &before, before_schema, &baseline)?;
        let mut mode = mode;
        let stop = match aside {
            // The copy is where the hand-written down left it: the fix
            // takes it back to the state before the up, and the up again
            // to where the next migration starts.
            Some(_) if matches!(found.proof, Proof::Holds(..)) => {
                self.commit(&found.plan.statements)?;
                self.up(m)?.is_some()
            }
            // No fix holds: the copy is taken back to where the up left
            // it, the down worked out whole from there, and the replay
            // goes on.
            Some(aside) => match self.regain(aside)? {
                Some(why) => {
                    found.plan.notes.push(format!(
                        "the copy is left where this down leaves it ({why}): later migrations \
                         are not replayed"
                    ));
                    true
                }
                None => {
                    let mut whole = self.work_out(original, &before, before_schema, &baseline)?;
                    self.picture = whole.after_up.take();
                    match whole.proof {
                        Proof::Holds(..) => (found, mode) = (whole, Mode::Replace(NO_FIX.into())),
                        _ => found.plan.notes.push(
                            "no down worked out whole from where the up left the copy holds \
                             either; the replay goes on from there"
                                .into(),
                        ),
                    }
                    false
                }
            },
            // The copy is at the state after the up, its objects the same:
            // the picture of it is the next migration's "before".
            None => {
                self.picture = found.after_up.take();
                false
            }
        };
        Ok((found_down(m, found, mode), stop))
    }

    /// Runs the migration's own down for real.
    fn own_down_for_real(&mut self) -> Result<Option<String>, DownsError> {
        self.picture = None;
        let report = migrate::rollback(
            &mut *self.client,
            self.migrations,
            self.settings,
            &RollbackTarget::Steps(1),
            false,
            self.progress,
        )?;
        Ok(report.failure.map(|f| f.message))
    }

    /// Works out the down from the current state back to `before`, proves
    /// it, and leaves the copy where it was.
    fn work_out(
        &mut self,
        m: &Migration,
        before: &State,
        before_schema: &Schema,
        baseline: &Baseline,
    ) -> Result<Found, DownsError> {
        let now = self.picture()?;
        let renames = plan::renames(before, &now);
        if let Err(e) = self.commit(&renames) {
            // A name to give back that something else still holds: this
            // down is not worked out (its transaction changed nothing),
            // and the replay goes on.
            let why = format!(
                "giving renamed objects their names back fails: {}",
                crate::kit::error::chain(&e)
            );
            let plan = Plan { statements: renames, ..Default::default() };
            return Ok(Found {
                plan,
                proof: Proof::Fails(why),
                after_up: Some(now),
                irreversible: false,
            });
        }
        let aligned = if renames.is_empty() { None } else { Some(self.picture()?) };
        let target = aligned.as_ref().unwrap_or(&now);
        let client = &mut *self.client;
        let mut dependents =
            |seeds: &super::remade_around::Seeds| super::remade_around::dependents(client, seeds);
        let usings =
            m.up.statements
                .iter()
                .flat_map(|s| backstop_sql::retypes::retypes(&s.sql))
                .filter_map(|r| Some(((r.table.name, r.column), r.using?)))
                .collect();
        let mut worked = plan::plan(before, target, &mut dependents, &usings)
            .map_err(db("working out the down"))?;
        let mut data =
            data::plan(&mut *self.client, m, &before.catalog).map_err(db("reading keys"))?;
        let calls = super::calls::plan(&mut *self.client, m).map_err(db("reading functions"))?;
        data.statements.extend(calls.statements);
        data.tables.extend(calls.tables);
        data.irreversible.extend(calls.irreversible);
        let globals_now =
            roles::Globals::read(&mut *self.client).map_err(db("reading the roles"))?;
        let globals = roles::plan(&baseline.globals, &globals_now);
        let mut statements = renames.clone();
        statements.extend(data.statements);
        statements.extend(globals.first);
        statements.append(&mut worked.statements);
        statements.extend(globals.last);
        // Only the tables the down deletes from are to have their rows back.
        let compared = Baseline {
            rows: baseline.rows.iter().filter(|(t, _)| data.tables.contains(t)).cloned().collect(),
            globals: baseline.globals.clone(),
        };
        let mut proof =
            self.prove(&worked_tail(&statements, renames.len()), before_schema, &compared)?;
        if !globals.system.is_empty() && matches!(proof, Proof::Holds(..)) {
            if let Some(why) = self.prove_system(m, &globals.system, &baseline.globals)? {
                proof = Proof::Differs(vec![why]);
            }
        }
        statements.extend(globals.system);
        if let Some(aligned) = &aligned {
            let back = plan::renames(&now, aligned);
            self.commit(&back)?;
        }
        worked.statements = statements;
        let irreversible = !data.irreversible.is_empty();
        worked.loses.extend(data.irreversible);
        worked.notes.extend(data.unreadable);
        worked.notes.extend(globals.notes);
        Ok(Found { plan: worked, proof, after_up: Some(now), irreversible })
    }
}

/// The statements after the renames, which already ran on the copy.
fn worked_tail(statements: &[String], renames: usize) -> Vec<String> {
    statements[renames..].to_vec()
}
