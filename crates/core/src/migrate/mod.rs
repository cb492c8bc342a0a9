//! Guarded apply and rollback: the migration lock, the history schema, drift
//! detection, planning of transaction groups, and the audit of outcomes.
//! Gates (backup, risk check, rehearsal) are composed by the CLI around this.

mod audit;
pub mod config;
pub mod expect;
mod gate;
mod group;
pub mod keep;
pub mod lost;
mod plan;
pub mod protect;
mod rollback;
pub mod rows_block;
mod run;
mod status;
pub mod trace;

use std::time::Duration;

use postgres::Client;
use serde::Serialize;
use serde_json::json;

pub use crate::schema::applied::AppliedRow;
pub use config::{DefectiveDowns, InStep, MigrationsSection, RollbackSection, Settings};
pub use gate::{pass_all, Gate, GatePass, GateRefusal, Stamp, Waived};
pub use plan::{plan_down, plan_up, EnumRule, EnumValueRule, Plan, PlannedGroup, Split};
pub use rollback::{rollback, RollbackTarget};
pub use run::{
    apply_group_in, attempt, set_timeouts, trial, Direction, Done, Failure, Group, GroupOutcome,
    Stage,
};
pub use status::{status, Drift, Entry, HalfApplied, Status};

use crate::pg::lock::{LockError, LockHolder, MigrationLock};
use crate::schema::{self, events};
use crate::source::{Migration, Order, Part, Problem};
use audit::{refused, started};

/// Things worth telling the operator while a run goes on.
#[derive(Debug)]
pub enum Note<'a> {
    WaitingForLock {
        holder: Option<&'a LockHolder>,
    },
    GroupStarted {
        group: &'a Group<'a>,
    },
    Statement {
        version: &'a str,
        direction: Direction,
        index: usize,
        total: usize,
        sql: &'a str,
        elapsed: Duration,
        /// Locks the statement took and relations it rewrote; filled only
        /// when [`Progress::trace_locks`] asks for it (rehearsals do).
        trace: Option<&'a trace::StatementTrace>,
    },
    Verified {
        version: &'a str,
        checks: usize,
    },
    Retrying {
        attempt: u32,
        of: u32,
        wait: Duration,
    },
    /// Values a down would remove were exported before it ran.
    Kept {
        kept: &'a keep::Kept,
        folder: &'a std::path::Path,
    },
    /// The groups of a run that is not one transaction (or adds enum
    /// values), before the first group starts.
    Plan {
        groups: &'a [PlannedGroup],
        enum_values: &'a [EnumValueRule],
    },
    /// A longer run (a rehearsal) starts its step `index` (from 1) of `total`.
    Stage {
        index: usize,
        total: usize,
        name: &'a str,
    },
}

/// Receives [`Note`]s; the CLI prints them, tests and JSON output ignore them.
pub trait Progress {
    fn note(&mut self, note: Note<'_>);
    /// Whether each statement's locks and rewrites should be traced (one
    /// catalog query per statement; off for production runs).
    fn trace_locks(&self) -> bool {
        false
    }
    /// A progress for work done beside this run's (a second copy of a
    /// rehearsal, on another thread), whose notes this one takes back at
    /// [`Progress::rejoin`]; by default they are not said.
    fn beside(&mut self) -> Box<dyn Progress + Send> {
        Box::new(Quiet)
    }
    /// Takes back what was noted beside this run since [`Progress::beside`].
    fn rejoin(&mut self) {}
    /// The relations the statements noted since the last take may have
    /// written rows of, from their traced locks, taken; `None` where this
    /// progress does not keep them.
    fn take_written(&mut self) -> Option<crate::pg::tracked::Written> {
        None
    }
}

/// A [`Progress`] that says nothing.
pub struct Quiet;

impl Progress for Quiet {
    fn note(&mut self, _: Note<'_>) {}
}

/// Why a run could not be carried out at all (as opposed to a migration
/// that failed and was rolled back, which is a [`Failure`] in the report).
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Db(#[from] crate::pg::DbError),
    #[error("lost the database session while running migration {version}; nothing of the interrupted transaction was committed")]
    ConnectionLost {
        version: String,
        #[source]
        source: postgres::Error,
    },
    #[error("{}", drift_message(.0))]
    Drift(Vec<Drift>),
    #[error("cannot roll back: no down migration for {}; `backstop downs --write` computes and proves one (or write it by hand)", .0.join(", "))]
    MissingDown(Vec<String>),
    #[error("cannot roll back: the live rows would make {} fail; nothing ran:\n  {}", if .0.len() == 1 { "a down" } else { "downs" }, .0.iter().map(|b| b.to_string()).collect::<Vec<_>>().join("\n  "))]
    RowsBlock(Vec<rows_block::RowBlock>),
    #[error("version {0} is not a migration in the migrations dir; `backstop status` lists them")]
    UnknownVersion(String),
    #[error("version {0} is not applied; `backstop status` lists what is")]
    NotApplied(String),
    #[error(
        "{} older than {latest}, the latest applied migration: written before it, {} may not fit \
         the schema it left; rehearse with `backstop rehearse`, then apply with --allow-out-of-order",
        plural_versions(.older), if .older.len() == 1 { "it" } else { "they" }
    )]
    OutOfOrder { older: Vec<String>, latest: String },
    #[error(transparent)]
    Gate(#[from] GateRefusal),
    #[error("{}", not_one_transaction_message(.reasons, .each, .first_group.as_deref()))]
    NotOneTransaction { reasons: Vec<String>, each: bool, first_group: Option<String> },
    #[error("{}", unrunnable_message(.0))]
    Unrunnable(Vec<Problem>),
    #[error(
        "the values the down migrations would remove could not be kept first, so nothing was \
         reverted; free the disk or fix the folder, or set [rollback] export_dropped = false \
         if losing them is meant"
    )]
    Keep(#[source] keep::KeepError),
    #[error(transparent)]
    ToolHistory(#[from] crate::adopt::InStepError),
    #[error("an expand of {version} is in progress (schema {new_schema}); `backstop migrate --contract` or `backstop rollback` ends it first")]
    Expanded { version: String, new_schema: String },
}

fn not_one_transaction_message(reasons: &[String], each: &bool, first: Option<&str>) -> String {
    if *each {
        return "--each asks for one transaction per migration and [migrations] all_or_nothing = true \
                for one transaction in all; drop one of them"
            .to_string();
    }
    let mut text =
        "[migrations] all_or_nothing = true, and the pending migrations cannot run in one \
                    transaction; nothing was applied:"
            .to_string();
    for r in reasons {
        text.push_str(&format!("\n  - {r}"));
    }
    let split = match first {
        Some(v) => format!("apply the first group alone (`backstop migrate --to {v}`) and the rest in later runs, "),
        None => String::new(),
    };
    text.push_str(&format!(
        "\n{split}or set all_or_nothing = false to let Backstop commit between the groups \
         (`backstop migrate --dry-run` shows them)"
    ));
    text
}

fn unrunnable_message(problems: &[Problem]) -> String {
    let mut text = format!(
        "{} cannot run as written; fix {} (`backstop check` reports every such file):",
        if problems.len() == 1 { "a file this run needs" } else { "files this run needs" },
        if problems.len() == 1 { "it" } else { "them" }
    );
    for p in problems {
        text.push_str(&format!("\n  {p}"));
    }
    text
}

impl ApplyError {
    /// The process exit code this error calls for.
    pub fn exit_code(&self) -> u8 {
        match self {
            ApplyError::Drift(_)
            | ApplyError::MissingDown(_)
            | ApplyError::RowsBlock(_)
            | ApplyError::OutOfOrder { .. } => 1,
            ApplyError::UnknownVersion(_)
            | ApplyError::NotApplied(_)
            | ApplyError::Unrunnable(_)
            | ApplyError::NotOneTransaction { .. }
            | ApplyError::Expanded { .. } => 2,
            ApplyError::Lock(_)
            | ApplyError::Db(_)
            | ApplyError::ConnectionLost { .. }
            | ApplyError::Keep(_) => 3,
            ApplyError::ToolHistory(e) => e.exit_code(),
            ApplyError::Gate(refusal) => refusal.exit_code,
        }
    }
}

fn plural_versions(versions: &[String]) -> String {
    match versions {
        [one] => format!("pending migration {one} is"),
        many => format!("pending migrations {} are", many.join(", ")),
    }
}

fn drift_message(drift: &[Drift]) -> String {
    let list: Vec<String> = drift.iter().map(|d| d.to_string()).collect();
    format!(
        "applied migrations differ from their files: {}; restore the files, or accept them with `backstop history repair VERSION`",
        list.join("; ")
    )
}

/// The pending migrations a run applies, in folder order, up to `to`.
fn select_pending<'m>(
    migrations: &'m [Migration],
    status: &Status,
    to: Option<&str>,
) -> Vec<&'m Migration> {
    let last = to.and_then(|to| Order::of(migrations).position(to)).unwrap_or(usize::MAX);
    let waiting: std::collections::HashSet<&str> =
        status.pending.iter().map(|p| p.version.as_str()).collect();
    migrations
        .iter()
        .enumerate()
        .filter(|(i, m)| waiting.contains(m.version.as_str()) && *i <= last)
        .map(|(_, m)| m)
        .collect()
}

/// The problems that keep `part` of these migrations from running.
fn problems_of(migrations: &[&Migration], parts: &[Part]) -> Vec<Problem> {
    migrations
        .iter()
        .flat_map(|m| m.problems.iter().filter(|p| parts.contains(&p.part)))
        .cloned()
        .collect()
}

/// What a `migrate` or `rollback` run did (or, with `dry_run`, would do).
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub dry_run: bool,
    /// The transaction groups, in order, each with why it is apart.
    pub groups: Vec<PlannedGroup>,
    /// The values `ALTER TYPE ... ADD VALUE` adds, and the rule each fell under.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub enum_values: Vec<EnumValueRule>,
    /// Migrations that were committed.
    pub done: Vec<Done>,
    /// Why the run stopped, if it did.
    pub failure: Option<Failure>,
    /// Where a run that failed leaves the database: what stays committed,
    /// what was rolled back, what never ran, and the way back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub standing: Option<Standing>,
    /// What the downs removed, exported before they ran.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kept: Vec<keep::Kept>,
    /// The folder of those exports.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept_in: Option<std::path::PathBuf>,
    /// A rollback's migrations whose ups changed rows the downs cannot
    /// put back.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_put_back: Vec<lost::NotPutBack>,
    /// `rollback --to start` stopped before this migration: it has no down.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_before: Option<String>,
    /// A rollback's check of the schema after its downs, before COMMIT.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compared: Option<expect::Checked>,
    /// A dry run of a rollback of several migrations: whether their downs
    /// were proved together, as the chain it runs, and how that went.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub together: Option<String>,
}

/// Where a run that failed in group `failed_group` leaves the database.
#[derive(Debug, Clone, Serialize)]
pub struct Standing {
    /// The failed group, from 1.
    pub failed_group: usize,
    /// How many groups the run had.
    pub groups: usize,
    /// Versions the groups before the failed one committed; they stay.
    pub committed: Vec<String>,
    /// Versions of the failed group that were rolled back (all of them,
    /// or none when a no-transaction migration stopped half-way).
    pub rolled_back: Vec<String>,
    /// Versions of the groups after the failed one, which never ran.
    pub not_run: Vec<String>,
    /// The command that takes the database back to where the run started,
    /// when something of the run stays committed.
    pub undo: Option<String>,
}

impl Report {
    /// True when the run stopped on a failed migration.
    pub fn failed(&self) -> bool {
        self.failure.is_some()
    }
}

/// Options of a forward run.
#[derive(Debug, Clone, Default)]
pub struct MigrateOptions {
    /// Apply up to and including this version.
    pub to: Option<String>,
    /// One transaction per migration instead of one for all.
    pub each: bool,
    pub dry_run: bool,
    /// Apply pending migrations older than the latest applied one.
    pub allow_out_of_order: bool,
    /// `[migrations] all_or_nothing`: refuse, before anything runs, a batch
    /// that cannot be one transaction.
    pub all_or_nothing: bool,
}

/// Applies pending migrations under the migration lock. `gates` run under
/// the lock before the first migration; any refusal stops the run, audited.
pub fn migrate(
    client: &mut Client,
    migrations: &[Migration],
    settings: &Settings,
    options: &MigrateOptions,
    gates: &mut [&mut dyn Gate],
    progress: &mut dyn Progress,
) -> Result<Report, ApplyError> {
    if let Some(to) = &options.to {
        if !migrations.iter().any(|m| &m.version == to) {
            return Err(ApplyError::UnknownVersion(to.clone()));
        }
    }
    let settings = &settings.knowing(migrations);
    // A file that cannot run, or a batch that cannot keep the promise of
    // all_or_nothing, is bad input: refused before anything is written
    // (and again under the lock, where the history is certain).
    let before = status(client, migrations)?;
    let pending = select_pending(migrations, &before, options.to.as_deref());
    let problems = problems_of(&pending, &[Part::Up, Part::Verify]);
    if !problems.is_empty() {
        return Err(ApplyError::Unrunnable(problems));
    }
    if options.all_or_nothing {
        one_transaction_if_asked(&plan_up(&pending, options.each), options)?;
    }
    with_lock(client, settings, progress, |client, progress| {
        if !options.dry_run {
            schema::ensure(client).map_err(|source| {
                ApplyError::Db(crate::pg::DbError::new("creating the backstop schema", source))
            })?;
        }
        audit::not_expanded(client, "migrate")?;
        let status = status(client, migrations)?;
        if !status.drifted.is_empty() {
            return Err(refused(client, "migrate", ApplyError::Drift(status.drifted)));
        }
        let pending = select_pending(migrations, &status, options.to.as_deref());
        if !options.dry_run && !pending.is_empty() {
            let versions = pending.iter().map(|m| m.version.clone()).collect();
            started(client, "migrate", versions, settings.reason.as_deref())?;
        }
        let plan = plan_up(&pending, options.each);
        refusals(migrations, &status, &pending, &plan, options)
            .map_err(|e| refused(client, "migrate", e))?;
        let (stamp, passed) = if pending.is_empty() {
            Default::default()
        } else {
            gate::pass_all(client, gates, &pending, options.dry_run)
                .map_err(|r| refused(client, "migrate", ApplyError::Gate(r)))?
        };
        let run = Run {
            kind: "migrate",
            dry_run: options.dry_run,
            stamp: &stamp,
            gates: passed,
            before: latest_applied(migrations, &status).map(|m| m.version.clone()),
            check: None,
        };
        run_groups(client, settings, &plan, &run, progress)
    })
}

/// The latest applied migration that a rollback can go back to.
pub fn latest_applied<'m>(migrations: &'m [Migration], status: &Status) -> Option<&'m Migration> {
    let order = Order::of(migrations);
    status
        .applied
        .iter()
        .filter_map(|e| order.position(&e.version))
        .filter(|i| !migrations[*i].repeatable)
        .max()
        .map(|i| &migrations[i])
}

/// What refuses a forward run under the lock before any gate: pending
/// migrations older than the latest applied one, files that cannot run,
/// a batch that cannot be the one transaction `all_or_nothing` asks for.
fn refusals(
    migrations: &[Migration],
    status: &Status,
    pending: &[&Migration],
    plan: &Plan<'_>,
    options: &MigrateOptions,
) -> Result<(), ApplyError> {
    let order = Order::of(migrations);
    if let (Some(latest), false) = (latest_applied(migrations, status), options.allow_out_of_order)
    {
        let at = order.position(&latest.version);
        let older: Vec<String> = pending
            .iter()
            .filter(|m| {
                let position = order.position(&m.version);
                !m.repeatable && matches!((position, at), (Some(i), Some(l)) if i < l)
            })
            .map(|m| m.version.clone())
            .collect();
        if !older.is_empty() {
            return Err(ApplyError::OutOfOrder { older, latest: latest.version.clone() });
        }
    }
    let problems = problems_of(pending, &[Part::Up, Part::Verify]);
    if !problems.is_empty() {
        return Err(ApplyError::Unrunnable(problems));
    }
    one_transaction_if_asked(plan, options)
}

/// Refuses a plan of more than one group when the run must be all or
/// nothing: the groups before a failed one would stay committed.
fn one_transaction_if_asked(plan: &Plan<'_>, options: &MigrateOptions) -> Result<(), ApplyError> {
    if !options.all_or_nothing || plan.is_one_group() {
        return Ok(());
    }
    let first_group =
        plan.groups.first().and_then(|g| g.migrations.last()).map(|m| m.version.clone());
    Err(ApplyError::NotOneTransaction { reasons: plan.reasons(), each: options.each, first_group })
}

fn with_lock<T>(
    client: &mut Client,
    settings: &Settings,
    progress: &mut dyn Progress,
    f: impl FnOnce(&mut Client, &mut dyn Progress) -> Result<T, ApplyError>,
) -> Result<T, ApplyError> {
    let mut lock = MigrationLock::acquire(client, settings.lock_wait, |holder| {
        progress.note(Note::WaitingForLock { holder })
    })?;
    // Backstop's own session writes its history and events even while the
    // database is frozen; the freeze gate decides whether a migration may.
    schema::exempt(&mut *lock).map_err(|source| {
        ApplyError::Db(crate::pg::DbError::new("exempting the session", source))
    })?;
    f(&mut lock, progress)
}

/// What kind of run `run_groups` carries out, and what it stamps and logs.
struct Run<'a> {
    kind: &'a str,
    dry_run: bool,
    stamp: &'a Stamp,
    /// Details of the gates that passed, for the audit log.
    gates: serde_json::Map<String, serde_json::Value>,
    /// The latest version applied before the run: where a rollback of what
    /// the run committed goes back to.
    before: Option<String>,
    /// A rollback's check before the COMMIT of its last group.
    check: Option<&'a expect::Check>,
}

fn run_groups(
    client: &mut Client,
    settings: &Settings,
    plan: &Plan<'_>,
    run: &Run<'_>,
    progress: &mut dyn Progress,
) -> Result<Report, ApplyError> {
    let mut report = Report {
        dry_run: run.dry_run,
        groups: plan.planned(),
        enum_values: plan.enum_values.clone(),
        ..Default::default()
    };
    if run.dry_run {
        return Ok(report);
    }
    if plan.groups.len() > 1 || !plan.enum_values.is_empty() {
        progress.note(Note::Plan { groups: &report.groups, enum_values: &report.enum_values });
    }
    let mut collect = Collect { inner: progress, kept: Vec::new() };
    for (index, group) in plan.groups.iter().enumerate() {
        let started = std::time::Instant::now();
        let check = run.check.filter(|_| index + 1 == plan.groups.len());
        let outcome = run_with_retries(client, settings, (group, check), run.stamp, &mut collect)?;
        let versions = group.versions();
        let kept = std::mem::take(&mut collect.kept);
        if !kept.is_empty() {
            report.kept_in = settings.keep.clone();
        }
        report.kept.extend(kept.iter().cloned());
        match outcome {
            GroupOutcome::Committed(done) => {
                let mut details = json!({
                    "duration_ms": started.elapsed().as_millis() as u64,
                    "done": done,
                });
                if !kept.is_empty() {
                    details["kept"] = json!({ "folder": settings.keep, "files": kept });
                }
                if !run.gates.is_empty() {
                    details["gates"] = serde_json::Value::Object(run.gates.clone());
                }
                audit::said(&mut details, settings);
                let event = events::Event { kind: run.kind, outcome: "ok", versions, details };
                events::record(client, &event).map_err(|source| {
                    ApplyError::Db(crate::pg::DbError::new("writing the audit event", source))
                })?;
                report.done.extend(done);
            }
            GroupOutcome::Failed(failure) => {
                let standing = standing(plan, index, &report.done, &failure, run);
                let mut details =
                    json!({ "failure": failure, "standing": standing, "gates": run.gates });
                audit::said(&mut details, settings);
                let event = events::Event {
                    kind: run.kind,
                    outcome: if failure.rolled_back { "rolled_back" } else { "failed" },
                    versions,
                    details,
                };
                // The schema may not exist on a dry database (a failed first run
                // creates it first, so this only fails when the session is gone).
                let _ = events::record(client, &event);
                report.failure = Some(*failure);
                report.standing = Some(standing);
                break;
            }
        }
    }
    Ok(report)
}

/// Where a run stands after group `index` failed: what the groups before
/// committed, what was rolled back, what never ran, and the command back
/// to where the run started.
fn standing(
    plan: &Plan<'_>,
    index: usize,
    done: &[Done],
    failure: &Failure,
    run: &Run<'_>,
) -> Standing {
    let committed: Vec<String> = done.iter().map(|d| d.version.clone()).collect();
    let undo = match (committed.first(), run.kind) {
        (None, _) => None,
        (Some(newest), "rollback") => Some(format!("backstop migrate --to {newest}")),
        (Some(_), _) => Some(match &run.before {
            Some(version) => format!("backstop rollback --to {version}"),
            None => format!("backstop rollback --steps {}", committed.len()),
        }),
    };
    Standing {
        failed_group: index + 1,
        groups: plan.groups.len(),
        committed,
        rolled_back: if failure.rolled_back { failure.group.clone() } else { Vec::new() },
        not_run: plan.groups[index + 1..].iter().flat_map(|g| g.versions()).collect(),
        undo,
    }
}

/// Passes notes on, and keeps what the downs' exports kept for the report.
struct Collect<'p> {
    inner: &'p mut dyn Progress,
    kept: Vec<keep::Kept>,
}

impl Progress for Collect<'_> {
    fn note(&mut self, note: Note<'_>) {
        if let Note::Kept { kept, .. } = &note {
            self.kept.push((*kept).clone());
        }
        self.inner.note(note);
    }

    fn trace_locks(&self) -> bool {
        self.inner.trace_locks()
    }

    fn take_written(&mut self) -> Option<crate::pg::tracked::Written> {
        self.inner.take_written()
    }
}

fn run_with_retries(
    client: &mut Client,
    settings: &Settings,
    (group, check): (&Group<'_>, Option<&expect::Check>),
    stamp: &Stamp,
    progress: &mut dyn Progress,
) -> Result<GroupOutcome, ApplyError> {
    let mut attempt = 0;
    loop {
        let mut outcome = run::run_group(client, settings, (group, check), stamp, progress)?;
        let lock_timeout = matches!(&outcome, GroupOutcome::Failed(f)
            if f.sqlstate.as_deref() == Some("55P03") && f.rolled_back);
        if !lock_timeout || attempt >= settings.lock_retries {
            if let (true, GroupOutcome::Failed(f)) = (lock_timeout, &mut outcome) {
                // Who held the locks, while they still hold them.
                if let Some(sql) = &f.sql {
                    f.blockers = run::blockers(client, sql);
                }
            }
            if let GroupOutcome::Failed(f) = &mut outcome {
                run::half_applied(group, f);
            }
            return Ok(outcome);
        }
        attempt += 1;
        let wait = Duration::from_millis(500 * 2u64.pow(attempt - 1)).min(Duration::from_secs(30));
        progress.note(Note::Retrying { attempt, of: settings.lock_retries, wait });
        std::thread::sleep(wait);
    }
}

/// What `repair` changed.
#[derive(Debug, Serialize)]
pub struct Repaired {
    pub version: String,
    pub old_checksum: String,
    pub new_checksum: String,
    pub changed: bool,
}

/// Accepts the current file's checksum for an applied migration, audited.
pub fn repair(
    client: &mut Client,
    migrations: &[Migration],
    settings: &Settings,
    version: &str,
    progress: &mut dyn Progress,
) -> Result<Repaired, ApplyError> {
    let m = migrations
        .iter()
        .find(|m| m.version == version)
        .ok_or_else(|| ApplyError::UnknownVersion(version.to_string()))?;
    with_lock(client, settings, progress, |client, _| {
        let db = |context| move |source| ApplyError::Db(crate::pg::DbError::new(context, source));
        let rows = schema::applied::all(client).map_err(db("reading backstop.applied"))?;
        let row = rows
            .iter()
            .find(|r| r.version == version)
            .ok_or_else(|| ApplyError::NotApplied(version.to_string()))?;
        let repaired = Repaired {
            version: version.to_string(),
            old_checksum: row.checksum.clone(),
            new_checksum: m.checksum.clone(),
            changed: row.checksum != m.checksum,
        };
        if repaired.changed {
            let mut tx = client.transaction().map_err(db("starting the repair"))?;
            schema::applied::set_checksum(&mut tx, version, &m.checksum)
                .map_err(db("updating the checksum"))?;
            let event = events::Event {
                kind: "repair",
                outcome: "ok",
                versions: vec![version.to_string()],
                details: json!({ "old_checksum": repaired.old_checksum, "new_checksum": repaired.new_checksum }),
            };
            events::record(&mut tx, &event).map_err(db("writing the audit event"))?;
            tx.commit().map_err(db("committing the repair"))?;
        }
        Ok(repaired)
    })
}
