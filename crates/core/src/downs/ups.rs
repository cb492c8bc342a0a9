//! The pending ups alone on a copy of the target's schema, as `migrate`
//! runs them: what `check` runs to find a statement certain to fail
//! before anything touches the database. No down is proved here (that is
//! the deploy's, `rehearse`'s and `downs`' work), so the run costs about
//! one plain apply of what is pending, plus the copy.
//!
//! The copy is made as a replay's start from the target is (`start`):
//! a throwaway cluster of the target's major with its roles, settings and
//! preloads, the target's schema and history dumped into it; a call that
//! reaches outside the database is never run there. A copy a deploy kept
//! (`kept`) is not used: the check would leave it past the state it was
//! kept for.

use std::time::{Duration, Instant};

use super::{DownsError, Options};
use crate::migrate::{self, MigrateOptions, Progress, Settings};
use crate::source::{Migration, Part};

/// What running the pending ups on the copy found.
#[derive(Debug, Default)]
pub struct UpsRan {
    /// The versions that ran there, in order.
    pub ran: Vec<String>,
    /// The up that failed, with its statement, place and the server's
    /// error; the migrations after it did not run.
    pub failure: Option<migrate::Failure>,
    /// The first pending file that cannot run as written, with why: the
    /// run stopped before it (its finding is the check's own).
    pub unrunnable: Option<(String, String)>,
    /// Pending migrations that did not run (after a failure, or from a
    /// file that cannot run on).
    pub not_run: Vec<String>,
    /// Statements reaching outside the database that were left out, each
    /// as `call (file:line)`.
    pub left_out: Vec<String>,
    /// What making the copy said (a start it could not carry whole).
    pub notes: Vec<String>,
    /// How long the copy and the run took.
    pub took: Duration,
}

/// Runs the migrations pending on the target at `url` on a copy of its
/// schema, as `migrate` would with `settings`; waits for a lock on the
/// target no longer than `lock_wait` while dumping it.
pub fn run_ups(
    url: &str,
    migrations: &[Migration],
    settings: &Settings,
    lock_wait: Option<Duration>,
    progress: &mut dyn Progress,
) -> Result<UpsRan, DownsError> {
    let started = Instant::now();
    let tool_err = |e: crate::backup::BackupError| DownsError::Tool {
        tool: "pg_dump",
        why: crate::kit::error::chain(&e),
    };
    let server = {
        let mut target = crate::pg::connect(url, "backstop check").map_err(DownsError::Connect)?;
        crate::pg::server_version_num(&mut target)
            .map_err(super::run::db("reading the server version"))?
    };
    let tools =
        crate::backup::tools::Tools::find().and_then(|t| t.fit(server)).map_err(tool_err)?;
    let options = Options {
        versions: Vec::new(),
        start: None,
        from_target: true,
        target_fingerprint: None,
        lock_wait,
    };
    let (workspace, notes, _, _) =
        super::replay_start::open(url, migrations, &options, &tools.dir.join("pg_dump"), false)?;
    let copy = match workspace.base_in_cluster() {
        Some(base) => base,
        None => return Err(no_cluster().into()),
    };
    let mut client = copy.connect()?;
    crate::schema::ensure(&mut client).map_err(super::run::db("creating Backstop's tables"))?;
    let settings = workspace.settings_for(&settings.on_copy(migrations));
    let database = crate::pg::database_of(url).map_err(DownsError::Connect)?;
    let (replayed, calls) = crate::copies::held_back::replayed(migrations, &database);
    let status = migrate::status(&mut client, &replayed)?;
    let pending: Vec<&Migration> =
        replayed.iter().filter(|m| status.pending.iter().any(|p| p.version == m.version)).collect();
    let mut ran = UpsRan { notes, ..UpsRan::default() };
    ran.left_out = calls.into_iter().map(|(_, call)| call).collect();
    // A file that cannot run as written stops the run before it: what
    // comes before it still runs, and is checked.
    let stop = pending
        .iter()
        .position(|m| m.problems.iter().any(|p| matches!(p.part, Part::Up | Part::Verify)));
    if let Some(at) = stop {
        let m = pending[at];
        let why = m
            .problems
            .iter()
            .find(|p| matches!(p.part, Part::Up | Part::Verify))
            .map(|p| p.to_string())
            .unwrap_or_default();
        ran.unrunnable = Some((m.label(), why));
    }
    let runnable = &pending[..stop.unwrap_or(pending.len())];
    if let Some(last) = runnable.last() {
        let opts = MigrateOptions {
            to: Some(last.version.clone()),
            allow_out_of_order: true,
            ..Default::default()
        };
        let report = migrate::migrate(&mut client, &replayed, &settings, &opts, &mut [], progress)?;
        ran.ran = report.done.iter().map(|d| d.version.clone()).collect();
        ran.failure = report.failure;
    }
    ran.not_run = pending
        .iter()
        .filter(|m| !m.repeatable && !ran.ran.contains(&m.version))
        .map(|m| m.version.clone())
        .collect();
    drop(client);
    drop(workspace);
    ran.took = started.elapsed();
    Ok(ran)
}

fn no_cluster() -> crate::copies::CopyError {
    crate::copies::CopyError::Clone {
        reason: "the copy of the target's schema was not made in a throwaway cluster".into(),
    }
}
