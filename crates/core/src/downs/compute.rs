//! The replay that computes downs (`backstop downs`, and the downs
//! `migrate` keeps): the history replayed on a throwaway copy of its
//! start, each down asked about worked out and proved on the way (`run`).
//!
//! A long replay is cut in two halves, each on a copy of its own, played
//! side by side: the second copy first applies the ups of the first half
//! as `migrate` applies them, then proves its own half while the first
//! copy proves the first. The rule that keeps a defect from hiding: every
//! down is still proved alone, against the picture of its copy just
//! before its own up, and its start fingerprint is read on the copy it
//! was proved on, so a chain of kept proofs breaks (and is proved again
//! by the next run) wherever the two copies ever differ. The first half
//! stopping (an up that fails) makes every down asked about after it
//! unprovable, as one replay would. A history that changes what the whole
//! server shares (a role, `ALTER SYSTEM`, a database, a `DO` block's
//! dynamic SQL) is not cut: the two copies share a server, and one
//! half's role would stand in the other's way.

use std::time::Duration;

use postgres::Client;

use super::run::{Replay, Start};
use super::{Computed, Down, DownsError, Options};
use crate::copies::CopyDb;
use crate::migrate::{self, MigrateOptions, Note, Progress, Settings};
use crate::pg::fingerprint::Schema;
use crate::pg::tracked::Tracked;
use crate::pg::Prepared;
use crate::source::Migration;

/// How many migrations asked about a replay holds before it is cut in
/// two: below this, the second copy and the plain apply of the first
/// half cost about what the cut saves.
const CUT_FROM: usize = 40;

fn db(context: &'static str) -> impl Fn(postgres::Error) -> DownsError {
    move |source| DownsError::Db(crate::pg::DbError::new(context, source))
}

/// `settings` for the replay of `migrations` from `start`: its pictures
/// hold the project's schema, not its tools' history, and one that does
/// not start from the target leaves out the protected tables it never has
/// (see [`migrate::protect::on_replay`]).
fn on_replay(
    client: &mut Client,
    settings: &Settings,
    migrations: &[Migration],
    start: &Start,
) -> Result<Settings, DownsError> {
    let settings = settings.on_copy(migrations);
    match start {
        Start::Target | Start::FirstDeploy => Ok(settings),
        _ => migrate::protect::on_replay(client, &settings)
            .map_err(db("looking up the protected tables")),
    }
}

/// Computes (or checks) the downs of `migrations` that `options` asks
/// for, replaying the folder on a throwaway database on the server of
/// `url`.
pub fn compute(
    url: &str,
    migrations: &[Migration],
    settings: &Settings,
    options: &Options,
    progress: &mut dyn Progress,
) -> Result<Computed, DownsError> {
    known(migrations, &options.versions)?;
    progress.note(Note::Stage { index: 1, total: 0, name: "preparing the start of the replay" });
    let mut target = crate::pg::connect(url, "backstop downs").map_err(DownsError::Connect)?;
    let (pg_dump, server) = pg_dump_for(&mut target)?;
    let (deploys, (mut workspace, mut start_notes, env, role)) =
        open_start((url, &mut target), migrations, options, &pg_dump)?;
    let first = deploys.is_some();
    // A deploy onto a history: the deploy before it, whose downs a
    // rollback of both runs after this one's.
    let earlier = match options.from_target && !first {
        true => super::chain::earlier(&mut target, migrations)?,
        false => Vec::new(),
    };
    drop(target);
    let options = deploys.as_ref().unwrap_or(options);
    // The replay works on the start itself unless it is cut in two (both
    // halves then start from copies of it): copying it (CREATE DATABASE,
    // with a checkpoint before and after) was a third of a one-migration
    // deploy's own time on a schema of 800 relations.
    let on_base = workspace.base_in_cluster();
    let mut copy = match &on_base {
        Some(base) => base.clone(),
        None => workspace.copy("downs")?,
    };
    let mut client = copy.connect()?;
    crate::schema::ensure(&mut client).map_err(db("creating Backstop's tables on the copy"))?;
    let start = match &options.start {
        _ if first => Start::FirstDeploy,
        _ if options.from_target => Start::Target,
        Some(_) => Start::Given(workspace.info.source.clone()),
        None => Start::Platform,
    };
    let settings = &workspace.settings_for(&on_replay(&mut client, settings, migrations, &start)?);
    // What reaches outside the database is never replayed.
    let database = crate::pg::database_of(url).map_err(DownsError::Connect)?;
    let (replayed, _) = crate::copies::held_back::replayed(migrations, &database);
    let asked =
        |m: &Migration| options.versions.is_empty() || options.versions.contains(&m.version);
    // Only what the copy has not applied is replayed (a start from the
    // target holds its history).
    let status = migrate::status(&mut client, &replayed)?;
    let pending: Vec<&str> = status.pending.iter().map(|p| p.version.as_str()).collect();
    let todo: Vec<&Migration> = migrations
        .iter()
        .filter(|m| !m.repeatable && pending.contains(&m.version.as_str()))
        .collect();
    let cut = cut_at(&todo, &asked, &mut start_notes).filter(|_| workspace.side_by_side());
    let second = match cut {
        Some(_) => {
            if on_base.is_some() {
                // A template copy needs its template to itself.
                drop(client);
                copy = workspace.copy("downs")?;
                client = copy.connect()?;
            }
            Some(workspace.copy("downs_second_half")?)
        }
        None => None,
    };
    let half = Half { pg_dump: &pg_dump, migrations: (&replayed, migrations), settings, start };
    let total = todo.len();
    let (out, last, reading) = match (cut, second) {
        (Some(at), Some(second)) => {
            let (first_half, second_half) = todo.split_at(at);
            start_notes.push(format!(
                "the replay ran in two halves side by side, each on a copy of its own: {} \
                 migration(s), then {} from where the first half ends",
                first_half.len(),
                second_half.len()
            ));
            let (mut out, stopped, first_reading, second_out) = std::thread::scope(|s| {
                let other = s.spawn(|| half.second(&second, first_half, second_half, &asked));
                let first = half.play(&mut client, &copy, first_half, &asked, (0, total), progress);
                let second_out = other.join().expect("the second half's thread does not panic");
                first.map(|(out, stopped, (_, reading))| (out, stopped, reading, second_out))
            })?;
            let (second_out, (end, second_reading), second_client) = second_out?;
            match stopped {
                // As one replay: nothing after the stop is proved.
                Some(why) => out.extend(
                    second_half
                        .iter()
                        .filter(|m| asked(m))
                        .map(|m| Down::unprovable(m, Vec::new(), vec![why.clone()])),
                ),
                None => out.extend(second_out),
            }
            drop_copy(&workspace, client, &copy.dbname);
            (out, (second_client, second, end), first_reading.max(second_reading))
        }
        _ => {
            let (out, _, (end, reading)) =
                half.play(&mut client, &copy, &todo, &asked, (0, total), progress)?;
            (out, (client, copy, end), reading)
        }
    };
    let (mut client, copy, end) = last;
    // The copy is where the last up left it: the run's downs together.
    let asked: Vec<&Migration> = todo.iter().copied().filter(|m| asked(m)).collect();
    let chain = together(&mut client, (settings, options), migrations, &earlier, (&asked, &out))?;
    match env {
        Some(env) => {
            // Kept without the journal's triggers: its next reader makes them again.
            crate::pg::tracked::remove_journal(&mut client).map_err(db("ending the journal"))?;
            let at = (copy.dbname.as_str(), super::replay_start::BASE);
            super::kept::keep(workspace, client, at, (&end, migrations), &env);
        }
        None => drop(workspace),
    }
    let major = crate::pg::bins::major_of_num(server);
    Ok(Computed { downs: out, start: start_notes, major, chain, role, reading })
}

/// Each of `versions` is a migration of the folder.
fn known(migrations: &[Migration], versions: &[String]) -> Result<(), DownsError> {
    match versions.iter().find(|v| !migrations.iter().any(|m| &m.version == *v)) {
        Some(v) => Err(DownsError::UnknownVersion { version: v.clone() }),
        None => Ok(()),
    }
}

/// The `pg_dump` of the target's server's major, and its version number.
fn pg_dump_for(target: &mut Client) -> Result<(std::path::PathBuf, i32), DownsError> {
    let tool_err = |e: crate::backup::BackupError| DownsError::Tool {
        tool: "pg_dump",
        why: crate::kit::error::chain(&e),
    };
    let tools = crate::backup::tools::Tools::find().map_err(tool_err)?;
    let server = crate::pg::server_version_num(target).map_err(db("reading the server version"))?;
    Ok((tools.fit(server).map_err(tool_err)?.dir.join("pg_dump"), server))
}

/// The start of the replay: where the first deploy will prove its downs
/// (a copy of the target: the options that ask for it come back), when
/// it is one and the copy can be made; else the one `options` ask for,
/// which for a target's platform says what it could not copy and what to
/// grant.
fn open_start(
    (url, target): (&str, &mut Client),
    migrations: &[Migration],
    options: &Options,
    pg_dump: &std::path::Path,
) -> Result<(Option<Options>, super::replay_start::Opened), DownsError> {
    let deploys = Options { from_target: true, ..options.clone() };
    let opened = match first_deploy(target, migrations, options)? {
        true => super::replay_start::open(url, migrations, &deploys, pg_dump, true).ok(),
        false => None,
    };
    let Some(mut opened) = opened else {
        return Ok((None, super::replay_start::open(url, migrations, options, pg_dump, true)?));
    };
    opened.1.push(
        "the replay starts from a copy of the target, as its first deploy's does (no \
         migration of the project is applied there): its proofs serve that migrate"
            .into(),
    );
    Ok((Some(deploys), opened))
}

/// Whether the replay of `backstop downs` (no start given) starts where
/// the target's first deploy proves its downs: a copy of the target, on
/// which no migration of the project is applied (by Backstop or by its
/// own tool). Proofs are keyed by the schema they start from, so only
/// then do they serve that deploy; a start of the target's platform alone
/// holds less than a hosted platform's database, and none would.
fn first_deploy(
    target: &mut Client,
    migrations: &[Migration],
    options: &Options,
) -> Result<bool, DownsError> {
    if options.from_target || options.start.is_some() {
        return Ok(false);
    }
    let status = migrate::status(target, migrations)?;
    if !status.applied.is_empty() {
        return Ok(false);
    }
    let refs: Vec<&Migration> = migrations.iter().collect();
    let tools = crate::adopt::unadopted(target, &refs).map_err(DownsError::Db)?;
    // A schema the role may not use is not in its copy: the start of the
    // platform names it, and what to grant.
    let unreadable: i64 = target
        .query_one(
            "select count(*) from pg_namespace
              where nspname !~ '^pg_' and nspname <> 'information_schema'
                and not has_schema_privilege(oid, 'USAGE')",
            &[],
        )
        .map_err(db("reading which schemas the role may use"))?
        .get(0);
    Ok(tools.is_empty() && unreadable == 0)
}

/// The downs `out` of `asked` proved together on `client`, where the
/// replay ended (see `downs::chain`), for a deploy.
fn together(
    client: &mut Client,
    (settings, options): (&Settings, &Options),
    migrations: &[Migration],
    earlier: &[super::chain::Earlier],
    (asked, out): (&[&Migration], &[Down]),
) -> Result<Option<super::chain::Chain>, DownsError> {
    // Only the deploy's replay, which starts from the target, is a run.
    if !options.from_target {
        return Ok(None);
    }
    let history = super::proofs::ToolHistory::of(migrations)
        .leaving_out(&mut *client)
        .map_err(db("reading which tables the role may read"))?;
    super::chain::prove(client, settings, &history, earlier, (asked, out))
}

/// Where `todo` is cut in two (the first migration of the second half),
/// when it is long enough, the machine has a second core for it, and no
/// statement shares the server (then `notes` gets why: `uncut_because`).
fn cut_at(
    todo: &[&Migration],
    asked: &dyn Fn(&Migration) -> bool,
    notes: &mut Vec<String>,
) -> Option<usize> {
    if let Some(why) = uncut_because(todo, asked) {
        notes.push(why);
        return None;
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let asked_count = todo.iter().filter(|m| asked(m)).count();
    if cores < 2 || asked_count < CUT_FROM {
        return None;
    }
    // The second half also applies the first half's ups, which cost
    // about a fourteenth of a proof each: it takes a little less.
    let mut seen = 0;
    let want = asked_count * 12 / 25;
    let at = todo.iter().rposition(|m| {
        seen += usize::from(asked(m));
        seen >= want
    })?;
    (at > 0).then_some(at)
}

/// The first statement of `m` (up or down) that changes what the whole
/// server shares, or may: what it does and where.
fn server_statement(m: &Migration) -> Option<String> {
    std::iter::once(&m.up).chain(m.down.as_ref()).find_map(|f| {
        f.statements.iter().find_map(|s| {
            let reach = backstop_sql::refs::reach(&s.sql)?;
            let what = match reach {
                backstop_sql::refs::Reach::Server(w) | backstop_sql::refs::Reach::Outside(w) => w,
            };
            Some(format!("{what} at {}:{}", f.path.display(), s.position.line))
        })
    })
}

/// The note saying why a replay long enough to be cut in two on a machine
/// with the cores for it is not: a migration that changes what the whole
/// server shares (both halves would share it), named with its place.
/// `None` where the replay is short or the cores are not there.
fn uncut_because(todo: &[&Migration], asked: &dyn Fn(&Migration) -> bool) -> Option<String> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cores < 2 || todo.iter().filter(|m| asked(m)).count() < CUT_FROM {
        return None;
    }
    let why = todo.iter().find_map(|m| server_statement(m))?;
    Some(format!(
        "the replay of {} migration(s) ran in one piece, not in two halves side by side: {why} \
         changes what the whole server shares, which two copies side by side would share too",
        todo.len()
    ))
}

/// Where a half of the replay ended: the copy's schema, and how long its
/// reads of the schema took ([`Tracked::reading`]).
type Ended = (Schema, Duration);

/// What both halves of a replay share.
struct Half<'a> {
    pg_dump: &'a std::path::Path,
    /// The migrations as replayed and as written.
    migrations: (&'a [Migration], &'a [Migration]),
    settings: &'a Settings,
    start: Start,
}

impl Half<'_> {
    /// Replays `todo` on `copy` (session `client`): the downs, why it
    /// stopped, if it did, and the copy's schema where it ended, with how
    /// long reading the schema took ([`Tracked::reading`]).
    fn play(
        &self,
        client: &mut Client,
        copy: &CopyDb,
        todo: &[&Migration],
        asked: &dyn Fn(&Migration) -> bool,
        numbering: (usize, usize),
        progress: &mut dyn Progress,
    ) -> Result<(Vec<Down>, Option<String>, Ended), DownsError> {
        let mut prepared = Prepared::default();
        let mut tracked = Tracked::read_journaled(&mut *client, &mut prepared)
            .map_err(db("reading the copy's schema"))?;
        let mut replay = Replay::over(
            client,
            copy.clone(),
            self.pg_dump.to_path_buf(),
            self.migrations,
            self.settings,
            progress,
            (&mut tracked, &mut prepared),
            self.start.clone(),
        );
        let (downs, stopped) = replay.replay_all(todo, asked, numbering)?;
        let end = replay.schema()?;
        Ok((downs, stopped, (end, tracked.reading())))
    }

    /// The second half on its copy: the ups of `before` applied as
    /// `migrate` applies them, then `todo` replayed. Its downs, the copy's
    /// schema where it ended, and its session (the copy is where the whole
    /// replay ends).
    fn second(
        &self,
        copy: &CopyDb,
        before: &[&Migration],
        todo: &[&Migration],
        asked: &(dyn Fn(&Migration) -> bool + Sync),
    ) -> Result<(Vec<Down>, Ended, Client), DownsError> {
        let mut client = copy.connect()?;
        crate::schema::ensure(&mut client).map_err(db("creating Backstop's tables on the copy"))?;
        let last = before.last().expect("a cut leaves a first half");
        let opts = MigrateOptions {
            to: Some(last.version.clone()),
            allow_out_of_order: true,
            ..Default::default()
        };
        let quiet = &mut migrate::Quiet;
        let report =
            migrate::migrate(&mut client, self.migrations.0, self.settings, &opts, &mut [], quiet)?;
        if let Some(f) = report.failure {
            // The first half stops there too, and says so for these.
            let why = format!(
                "not reached: the up of {} fails on the replayed database: {}",
                f.version, f.message
            );
            let out = todo
                .iter()
                .filter(|m| asked(m))
                .map(|m| Down::unprovable(m, Vec::new(), vec![why.clone()]));
            let end = Schema::read(&mut client).map_err(db("reading the copy's schema"))?;
            return Ok((out.collect(), (end, Duration::ZERO), client));
        }
        let total = before.len() + todo.len();
        let (out, _, end) =
            self.play(&mut client, copy, todo, asked, (before.len(), total), quiet)?;
        Ok((out, end, client))
    }
}

/// Drops the first half's copy (its session ends here), so that the
/// cluster kept for the next run holds only where the replay ended.
fn drop_copy(workspace: &crate::copies::Workspace, client: Client, dbname: &str) {
    drop(client);
    let Some(cluster) = workspace.cluster() else { return };
    if let Ok(mut admin) = cluster.connect("postgres") {
        let sql =
            format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", crate::pg::quote_ident(dbname));
        let _ = admin.batch_execute(&sql);
    }
}
