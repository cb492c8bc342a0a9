//! Running one group of migrations (up or down) under the guards: timeouts,
//! protected-table pre-flight and post-checks, verify.sql, history rows in
//! the same transaction, COMMIT only if everything passed.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use postgres::{Client, GenericClient};

pub use super::group::{Direction, Group};
use super::trace::Tracer;
use super::{protect, ApplyError, Note, Progress, Settings, Stamp};
use crate::source::{Migration, SqlFile};

/// Where a failure happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// A protected table was missing before anything ran.
    PreFlight,
    /// A statement of the migration failed.
    Statement,
    /// A statement of verify.sql failed.
    Verify,
    /// A protected table was dropped, truncated or lost rows.
    ProtectedTable,
    /// After a rollback's downs the schema is not the one before the
    /// migrations they revert ([`super::expect`]).
    Compared,
}

/// Why a group did not commit, with everything the operator needs.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Failure {
    pub version: String,
    pub name: String,
    pub direction: Direction,
    pub stage: Stage,
    pub file: Option<PathBuf>,
    /// 1-based statement number within the file, and how many it has.
    /// (`sql` below is shown with passwords masked.)
    pub statement: Option<usize>,
    pub statements: Option<usize>,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub sql: Option<String>,
    pub sqlstate: Option<String>,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
    /// Whether everything the group did was undone. False only for a
    /// no-transaction migration whose earlier statements were committed.
    pub rolled_back: bool,
    /// The statements of a no-transaction migration that stay committed.
    pub committed_statements: usize,
    /// The versions that were in the rolled-back group.
    pub group: Vec<String>,
    /// When a lock wait ran out: the sessions that held the locks.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub blockers: Vec<String>,
}

/// One migration run to completion.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Done {
    pub version: String,
    pub name: String,
    pub duration_ms: u64,
}

/// What running a group came to.
#[derive(Debug)]
pub enum GroupOutcome {
    Committed(Vec<Done>),
    Failed(Box<Failure>),
}

/// Records `m` as applied, in Backstop's history and in its own tool's
/// (Supabase, Prisma, Drizzle), in the caller's transaction.
fn record_applied(
    client: &mut impl postgres::GenericClient,
    m: &Migration,
    duration_ms: i64,
    stamp: &Stamp,
    settings: &Settings,
) -> Result<(), ApplyError> {
    let row = crate::schema::applied::NewApplied {
        version: &m.version,
        name: &m.name,
        checksum: &m.checksum,
        no_transaction: m.no_transaction,
        repeatable: m.repeatable,
        duration_ms,
        backup_id: stamp.backup_id.as_deref(),
        rehearsal_id: stamp.rehearsal_id.as_deref(),
        kept_down: stamp.kept_downs.get(&m.version).map(String::as_str),
        undo_to: stamp.undo_to.get(&m.version).map(String::as_str),
    };
    crate::schema::applied::insert(client, &row).map_err(|source| {
        ApplyError::Db(crate::pg::DbError::new(
            "recording the migration in backstop.applied",
            source,
        ))
    })?;
    if settings.tool_history.writes() {
        crate::adopt::in_step::applied(client, m, duration_ms, settings.tool_history)?;
    }
    Ok(())
}

/// Takes `m` out of Backstop's history and out of its own tool's, in the
/// caller's transaction.
fn record_reverted(
    client: &mut impl postgres::GenericClient,
    m: &Migration,
    settings: &Settings,
) -> Result<(), ApplyError> {
    crate::schema::applied::remove(client, &m.version).map_err(|source| {
        ApplyError::Db(crate::pg::DbError::new(
            "removing the migration from backstop.applied",
            source,
        ))
    })?;
    if settings.tool_history.writes() {
        crate::adopt::in_step::reverted(client, m)?;
    }
    Ok(())
}

fn ms(d: Duration) -> u64 {
    d.as_millis().try_into().unwrap_or(u64::MAX)
}

/// A database error that ends the run: the session is gone or the server
/// is shutting down. Anything else is the migration's own failure.
fn is_fatal(client_closed: bool, err: &postgres::Error) -> bool {
    if client_closed || err.is_closed() {
        return true;
    }
    match err.as_db_error() {
        Some(db) => matches!(db.severity(), "FATAL" | "PANIC"),
        None => true,
    }
}

struct FailAt<'a> {
    migration: &'a Migration,
    file: &'a SqlFile,
    index: usize,
    stage: Stage,
}

fn failure_from_db(group: &Group<'_>, at: FailAt<'_>, err: &postgres::Error) -> Failure {
    let stmt = &at.file.statements[at.index];
    let db = err.as_db_error();
    let char_pos = db.and_then(|d| match d.position() {
        Some(postgres::error::ErrorPosition::Original(p)) => Some(*p),
        _ => None,
    });
    let position = at.file.position_in(at.index, char_pos);
    Failure {
        version: at.migration.version.clone(),
        name: at.migration.name.clone(),
        direction: group.direction,
        stage: at.stage,
        file: Some(at.file.path.clone()),
        statement: Some(at.index + 1),
        statements: Some(at.file.statements.len()),
        line: Some(position.line),
        column: Some(position.column),
        sql: Some(backstop_sql::redact_secrets(&stmt.sql)),
        sqlstate: db.map(|d| d.code().code().to_string()),
        message: db.map_or_else(|| err.to_string(), |d| d.message().to_string()),
        detail: db.and_then(|d| d.detail().map(str::to_string)),
        // PostgreSQL's hint says what is wrong; Backstop's says what to do.
        hint: match (db.and_then(|d| d.hint()), hint_for(db, at.stage)) {
            (Some(pg), Some(ours)) => Some(format!("{pg} {ours}")),
            (pg, ours) => pg.map(str::to_string).or(ours),
        },
        rolled_back: group.transactional,
        committed_statements: if group.transactional { 0 } else { at.index },
        group: group.versions(),
        blockers: Vec::new(),
    }
}

/// A session holding a lock a statement waited for, as `pg_stat_activity`
/// shows it to this role: what it may not see is null.
struct Blocker {
    pid: i32,
    application: String,
    user: Option<String>,
    state: Option<String>,
    since: Option<String>,
}

impl std::fmt::Display for Blocker {
    /// `pid 7 (app, user u, idle in transaction since …)`, leaving out
    /// what is hidden rather than showing it blank.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut words = vec![self.application.clone()];
        words.extend(self.user.as_ref().filter(|u| !u.is_empty()).map(|u| format!("user {u}")));
        words.push(match (&self.state, &self.since) {
            (Some(state), Some(since)) => format!("{state} since {since}"),
            (Some(state), None) => state.clone(),
            (None, Some(since)) => format!("since {since}"),
            (None, None) => "this role may not see more of it".into(),
        });
        write!(f, "pid {} ({})", self.pid, words.join(", "))
    }
}

/// The other sessions holding locks on the relations `sql` names: who a
/// statement that ran out of `lock_timeout` was waiting for.
pub(super) fn blockers(client: &mut Client, sql: &str) -> Vec<String> {
    let relations = backstop_sql::referenced_relations(sql);
    if relations.is_empty() {
        return Vec::new();
    }
    let rows = client.query(
        "select a.pid, coalesce(nullif(a.application_name, ''), '(no application name)'),
                a.usename::text, a.state,
                to_char(coalesce(a.xact_start, a.query_start) at time zone 'UTC',
                        'YYYY-MM-DD HH24:MI:SS \"UTC\"'),
                string_agg(distinct l.mode || ' on ' || c.relname, ', ')
           from pg_locks l
           join pg_stat_activity a on a.pid = l.pid
           join pg_class c on c.oid = l.relation
          where l.granted and l.pid <> pg_backend_pid()
            and l.relation in (select to_regclass(r)::oid from unnest($1::text[]) r)
          group by 1, 2, 3, 4, 5
          order by 5",
        &[&relations],
    );
    rows.map(|rows| {
        rows.iter()
            .map(|r| {
                let blocker = Blocker {
                    pid: r.get(0),
                    application: r.get(1),
                    user: r.get(2),
                    state: r.get(3),
                    since: r.get(4),
                };
                format!("{blocker} holds {}", r.get::<_, String>(5))
            })
            .collect()
    })
    .unwrap_or_default()
}

/// Backstop's own advice where PostgreSQL gives none.
fn hint_for(db: Option<&postgres::error::DbError>, stage: Stage) -> Option<String> {
    let code = db?.code().code();
    let hint = match code {
        "55P03" => {
            "another session held a lock the migration needed for longer than lock_timeout; \
                    retry when traffic is lower, or raise lock_timeout in backstop.toml"
        }
        "57014" => {
            "the statement ran longer than statement_timeout; raise it in backstop.toml \
                    or make the migration cheaper (batches, CONCURRENTLY)"
        }
        "55P04" => {
            "a value an enum gained in this transaction was used before it committed: \
                    run `backstop migrate --each` (one transaction per migration), or move \
                    the statements that use the new value into a later migration"
        }
        _ if stage == Stage::Verify => {
            "verify.sql asserts the migration's outcome; fix the \
                    migration or the assertion"
        }
        _ => return None,
    };
    Some(hint.to_string())
}

/// A protected table damaged by a known statement: the report names it.
fn damage_at(group: &Group<'_>, at: FailAt<'_>, violations: &[protect::Violation]) -> Failure {
    let stmt = &at.file.statements[at.index];
    let mut f = protected_failure(group, Stage::ProtectedTable, violations);
    f.version = at.migration.version.clone();
    f.name = at.migration.name.clone();
    f.file = Some(at.file.path.clone());
    f.statement = Some(at.index + 1);
    f.statements = Some(at.file.statements.len());
    f.line = Some(stmt.position.line);
    f.column = Some(stmt.position.column);
    f.sql = Some(backstop_sql::redact_secrets(&stmt.sql));
    f
}

fn protected_failure(
    group: &Group<'_>,
    stage: Stage,
    violations: &[protect::Violation],
) -> Failure {
    let message = violations.iter().map(|v| v.to_string()).collect::<Vec<_>>().join("; ");
    let hint = if stage == Stage::PreFlight {
        "protected tables must exist before a migration runs"
    } else {
        "protected tables may never be dropped, truncated or lose rows; change the migration, \
         or remove the table from protected_tables in backstop.toml if it is truly meant to go"
    };
    Failure::of_group(group, group.migrations[0], stage, message, hint)
}

impl Failure {
    /// A failure of the whole of `group` (named by its migration `m`) at
    /// `stage`, at no statement of it.
    pub(super) fn of_group(
        group: &Group<'_>,
        m: &Migration,
        stage: Stage,
        message: String,
        hint: &str,
    ) -> Failure {
        Failure {
            version: m.version.clone(),
            name: m.name.clone(),
            direction: group.direction,
            stage,
            file: None,
            statement: None,
            statements: None,
            line: None,
            column: None,
            sql: None,
            sqlstate: None,
            message,
            detail: None,
            hint: Some(hint.into()),
            rolled_back: group.transactional,
            committed_statements: 0,
            group: group.versions(),
            blockers: Vec::new(),
        }
    }
}

/// Sets the lock and statement timeouts of `s` for the session or, with
/// `scope` `LOCAL`, the transaction.
pub fn set_timeouts(
    client: &mut impl GenericClient,
    scope: &str,
    s: &Settings,
) -> Result<(), postgres::Error> {
    client.batch_execute(&format!(
        "SET {scope} lock_timeout = '{}ms'; SET {scope} statement_timeout = '{}ms'",
        s.lock_timeout.as_millis(),
        s.statement_timeout.as_millis()
    ))
}

/// Runs a group; returns `Err` only when the session is lost or the
/// database misbehaves outside the migration's own statements.
pub fn run_group(
    client: &mut Client,
    settings: &Settings,
    (group, check): (&Group<'_>, Option<&super::expect::Check>),
    stamp: &Stamp,
    progress: &mut dyn Progress,
) -> Result<GroupOutcome, ApplyError> {
    progress.note(Note::GroupStarted { group });
    if group.transactional {
        run_transactional(client, settings, (group, check), stamp, progress)
    } else {
        // Its statements commit one by one: there is no COMMIT to hold
        // back, so a rollback ending with it is not compared.
        run_autocommit(client, settings, group, stamp, progress)
    }
}

/// A failure of the later part of a migration its author's COMMIT split:
/// whatever this group did is undone, but the earlier part stays
/// committed, so the migration is half applied.
pub(super) fn half_applied(group: &Group<'_>, f: &mut Failure) {
    if group.continues() && f.rolled_back {
        f.rolled_back = false;
        f.committed_statements = group.first_from;
    }
}

fn run_transactional(
    client: &mut Client,
    settings: &Settings,
    (group, check): (&Group<'_>, Option<&super::expect::Check>),
    stamp: &Stamp,
    progress: &mut dyn Progress,
) -> Result<GroupOutcome, ApplyError> {
    let db_err = |source| {
        ApplyError::Db(crate::pg::DbError::new("running the migration transaction", source))
    };
    // Dropping `tx` without commit rolls back: every early return below is safe.
    let mut tx = client.transaction().map_err(db_err)?;
    set_timeouts(&mut tx, "LOCAL", settings).map_err(db_err)?;
    if let (Direction::Down, Some(folder)) = (group.direction, &settings.keep) {
        let statements: Vec<&str> = group.statements().map(|s| s.sql.as_str()).collect();
        let kept =
            super::keep::before_downs(&mut tx, &statements, folder).map_err(ApplyError::Keep)?;
        for k in &kept {
            progress.note(Note::Kept { kept: k, folder });
        }
    }
    if check.is_some() {
        tx.batch_execute(super::expect::BEFORE_DOWNS).map_err(db_err)?;
    }
    match apply_in(&mut tx, settings, group, stamp, progress)? {
        Err(failure) => Ok(GroupOutcome::Failed(failure)),
        Ok(done) => {
            use super::expect::Verdict;
            match check.map(|c| c.run(&mut tx, group)).transpose()? {
                Some(Verdict::Refuse(failure)) => return Ok(GroupOutcome::Failed(failure)),
                // The check went back to before the downs to read it: the
                // downs once more, as they ran (and said) the first time.
                Some(Verdict::Again) => {
                    if let Err(f) = apply_in(&mut tx, settings, group, stamp, &mut super::Quiet)? {
                        return Ok(GroupOutcome::Failed(f));
                    }
                }
                Some(Verdict::Commit) | None => {}
            }
            tx.commit().map_err(|e| ApplyError::ConnectionLost {
                version: group.versions().join(","),
                source: e,
            })?;
            Ok(GroupOutcome::Committed(done))
        }
    }
}

/// How one group of a [`trial`] ended: the migrations it ran, or why not.
pub type TrialOutcome = Result<Vec<Done>, Box<Failure>>;

/// Runs `groups` one after the other, each under the guards, in one
/// transaction that is always rolled back: a rehearsal's try of a down and
/// of the up after it, which leaves the database exactly as it was however
/// they end. `after` sees the transaction after each group that passed
/// (to take a snapshot); the run stops at the first group that fails.
/// Every group must be transactional.
pub fn trial(
    client: &mut Client,
    settings: &Settings,
    groups: &[Group<'_>],
    progress: &mut dyn Progress,
    mut after: impl FnMut(usize, &mut postgres::Transaction<'_>) -> Result<(), ApplyError>,
) -> Result<Vec<TrialOutcome>, ApplyError> {
    let db_err = |source| ApplyError::Db(crate::pg::DbError::new("trying a migration", source));
    let mut tx = client.transaction().map_err(db_err)?;
    set_timeouts(&mut tx, "LOCAL", settings).map_err(db_err)?;
    let mut outcomes = Vec::with_capacity(groups.len());
    for (i, group) in groups.iter().enumerate() {
        debug_assert!(group.transactional);
        progress.note(Note::GroupStarted { group });
        let outcome = apply_in(&mut tx, settings, group, &Stamp::default(), progress)?;
        let failed = outcome.is_err();
        outcomes.push(outcome);
        if failed {
            break;
        }
        after(i, &mut tx)?;
    }
    tx.rollback().map_err(db_err)?;
    Ok(outcomes)
}

/// Applies a transactional `group` as a real run does (its statements,
/// guards and history rows), then lets `keep` look at the transaction:
/// committed when it says so, rolled back otherwise. A copy's proof runs
/// inside (a savepoint it rolls back to), so the up that a proof covers
/// is applied once, not tried and then applied again.
pub fn attempt(
    client: &mut Client,
    settings: &Settings,
    group: &Group<'_>,
    progress: &mut dyn Progress,
    keep: impl FnOnce(&mut postgres::Transaction<'_>) -> Result<bool, ApplyError>,
) -> Result<(TrialOutcome, bool), ApplyError> {
    let db_err = |source| ApplyError::Db(crate::pg::DbError::new("applying a migration", source));
    debug_assert!(group.transactional);
    let mut tx = client.transaction().map_err(db_err)?;
    set_timeouts(&mut tx, "LOCAL", settings).map_err(db_err)?;
    progress.note(Note::GroupStarted { group });
    let outcome = apply_in(&mut tx, settings, group, &Stamp::default(), progress)?;
    if outcome.is_err() || !keep(&mut tx)? {
        tx.rollback().map_err(db_err)?;
        return Ok((outcome, false));
    }
    tx.commit().map_err(|e| ApplyError::ConnectionLost {
        version: group.versions().join(","),
        source: e,
    })?;
    Ok((outcome, true))
}

/// [`apply_in`] for a caller's own transaction (a proof that runs a down
/// inside [`attempt`]'s, in a savepoint it rolls back to).
pub fn apply_group_in(
    tx: &mut postgres::Transaction<'_>,
    settings: &Settings,
    group: &Group<'_>,
    progress: &mut dyn Progress,
) -> Result<TrialOutcome, ApplyError> {
    apply_in(tx, settings, group, &Stamp::default(), progress)
}

/// The statements, checks and history rows of a transactional group in
/// `tx`, which the caller commits or rolls back.
fn apply_in(
    tx: &mut postgres::Transaction<'_>,
    settings: &Settings,
    group: &Group<'_>,
    stamp: &Stamp,
    progress: &mut dyn Progress,
) -> Result<TrialOutcome, ApplyError> {
    let db_err = |source| {
        ApplyError::Db(crate::pg::DbError::new("running the migration transaction", source))
    };
    let baseline =
        match protect::preflight(tx, protected(settings), group.statements()).map_err(db_err)? {
            Ok(b) => b,
            Err(v) => return Ok(Err(Box::new(protected_failure(group, Stage::PreFlight, &[v])))),
        };
    let mut tracer =
        if progress.trace_locks() { Some(Tracer::start(tx).map_err(db_err)?) } else { None };
    let mut done = Vec::with_capacity(group.migrations.len());
    for (i, m) in group.migrations.iter().enumerate() {
        let started = Instant::now();
        let file = group.file(m);
        for index in group.range(i) {
            let stmt = &file.statements[index];
            let t = Instant::now();
            if let Err(e) = tx.batch_execute(&settings.as_run(&stmt.sql)) {
                if is_fatal(false, &e) {
                    return Err(ApplyError::ConnectionLost {
                        version: m.version.clone(),
                        source: e,
                    });
                }
                let at = FailAt { migration: m, file, index, stage: Stage::Statement };
                return Ok(Err(Box::new(failure_from_db(group, at, &e))));
            }
            let damage = protect::quick_check(tx, &baseline).map_err(db_err)?;
            if !damage.is_empty() {
                let at = FailAt { migration: m, file, index, stage: Stage::ProtectedTable };
                return Ok(Err(Box::new(damage_at(group, at, &damage))));
            }
            let elapsed = t.elapsed();
            let trace = match tracer.as_mut() {
                Some(tracer) => Some(tracer.step(tx).map_err(db_err)?),
                None => None,
            };
            progress.note(Note::Statement {
                version: &m.version,
                direction: group.direction,
                index,
                total: file.statements.len(),
                sql: &backstop_sql::redact_secrets(&stmt.sql),
                elapsed,
                trace: trace.as_ref(),
            });
        }
        if !group.finishes(i) {
            // Its author's COMMIT comes next: the rest runs in the next group.
            continue;
        }
        match group.direction {
            Direction::Up => {
                if let Some(failure) = run_verify(tx, group, m, progress)? {
                    return Ok(Err(Box::new(failure)));
                }
                record_applied(tx, m, ms(started.elapsed()) as i64, stamp, settings)?;
            }
            Direction::Down => record_reverted(tx, m, settings)?,
        }
        done.push(Done {
            version: m.version.clone(),
            name: m.name.clone(),
            duration_ms: ms(started.elapsed()),
        });
    }
    let violations = protect::postcheck(tx, &baseline).map_err(db_err)?;
    if !violations.is_empty() {
        return Ok(Err(Box::new(protected_failure(group, Stage::ProtectedTable, &violations))));
    }
    Ok(Ok(done))
}

/// Runs a migration's verify.sql in the current transaction; a statement
/// that fails is the migration's failure.
fn run_verify(
    tx: &mut postgres::Transaction<'_>,
    group: &Group<'_>,
    m: &Migration,
    progress: &mut dyn Progress,
) -> Result<Option<Failure>, ApplyError> {
    let Some(verify) = &m.verify else {
        return Ok(None);
    };
    for (index, stmt) in verify.statements.iter().enumerate() {
        if let Err(e) = tx.batch_execute(&stmt.sql) {
            if is_fatal(false, &e) {
                return Err(ApplyError::ConnectionLost { version: m.version.clone(), source: e });
            }
            let at = FailAt { migration: m, file: verify, index, stage: Stage::Verify };
            return Ok(Some(failure_from_db(group, at, &e)));
        }
    }
    progress.note(Note::Verified { version: &m.version, checks: verify.statements.len() });
    Ok(None)
}

/// The protected tables and those of them the project's migrations create.
fn protected(settings: &Settings) -> (&[String], &[String]) {
    (&settings.protected_tables, &settings.protected_made)
}

/// Runs one statement of a no-transaction migration (whose statements are
/// `all`) in its own transaction with the protected-table checks around it;
/// commits only if it damaged none, else rolls back and returns the damage.
fn run_guarded(
    client: &mut Client,
    settings: &Settings,
    stmt: &backstop_sql::Statement,
    all: &[backstop_sql::Statement],
) -> Result<Vec<protect::Violation>, postgres::Error> {
    let mut tx = client.transaction()?;
    let baseline = protect::preflight(&mut tx, protected(settings), all.iter())?;
    tx.batch_execute(&settings.as_run(&stmt.sql))?;
    let damage = match &baseline {
        Ok(b) => protect::postcheck(&mut tx, b)?,
        Err(missing) => vec![missing.clone()],
    };
    if damage.is_empty() {
        tx.commit()?;
    }
    Ok(damage)
}

/// A no-transaction migration: statements commit one by one, so a failure
/// half-way leaves the earlier ones in place, and the report says so.
fn run_autocommit(
    client: &mut Client,
    settings: &Settings,
    group: &Group<'_>,
    stamp: &Stamp,
    progress: &mut dyn Progress,
) -> Result<GroupOutcome, ApplyError> {
    let db_err = |source| {
        ApplyError::Db(crate::pg::DbError::new("running a no-transaction migration", source))
    };
    let m = group.migrations[0];
    let file = group.file(m);
    let range = group.range(0);
    let statements = &file.statements[range.clone()];
    let baseline = {
        let mut tx = client.transaction().map_err(db_err)?;
        // The statements say which protected tables they rewrite (VACUUM
        // FULL): those get their rows counted, so a rewrite is not damage.
        let b =
            protect::preflight(&mut tx, protected(settings), statements.iter()).map_err(db_err)?;
        tx.commit().map_err(db_err)?;
        match b {
            Ok(b) => b,
            Err(v) => {
                return Ok(GroupOutcome::Failed(Box::new(protected_failure(
                    group,
                    Stage::PreFlight,
                    &[v],
                ))))
            }
        }
    };
    set_timeouts(client, "SESSION", settings).map_err(db_err)?;
    let started = Instant::now();
    let mut outcome = None;
    // Where the migration leaves transactions to us, each statement that may
    // run in a transaction gets its own, checked before COMMIT: between
    // separate transactions the server flushes the per-transaction delete
    // counts the protected-table check reads, so a DELETE could go unseen.
    let user_transactions = statements.iter().any(|s| s.facts.transaction_control);
    for index in range.clone() {
        let stmt = &file.statements[index];
        let t = Instant::now();
        let guarded = !user_transactions
            && stmt.facts.outside_transaction_only.is_none()
            && !settings.protected_tables.is_empty();
        let result = if guarded {
            run_guarded(client, settings, stmt, statements)
        } else {
            client.batch_execute(&settings.as_run(&stmt.sql)).map(|()| Vec::new())
        };
        let damage = match result {
            Ok(damage) => damage,
            Err(e) => {
                if is_fatal(client.is_closed(), &e) {
                    return Err(ApplyError::ConnectionLost {
                        version: m.version.clone(),
                        source: e,
                    });
                }
                let at = FailAt { migration: m, file, index, stage: Stage::Statement };
                outcome = Some(GroupOutcome::Failed(Box::new(failure_from_db(group, at, &e))));
                break;
            }
        };
        if !damage.is_empty() {
            let at = FailAt { migration: m, file, index, stage: Stage::ProtectedTable };
            let mut f = damage_at(group, at, &damage);
            f.committed_statements = index;
            outcome = Some(GroupOutcome::Failed(Box::new(f)));
            break;
        }
        progress.note(Note::Statement {
            version: &m.version,
            direction: group.direction,
            index,
            total: file.statements.len(),
            sql: &backstop_sql::redact_secrets(&stmt.sql),
            elapsed: t.elapsed(),
            trace: None,
        });
    }
    client.batch_execute("RESET lock_timeout; RESET statement_timeout").map_err(db_err)?;
    if let Some(failed) = outcome {
        return Ok(failed);
    }
    let mut tx = client.transaction().map_err(db_err)?;
    let violations = protect::postcheck(&mut tx, &baseline).map_err(db_err)?;
    if !violations.is_empty() {
        let mut f = protected_failure(group, Stage::ProtectedTable, &violations);
        f.committed_statements = range.end;
        return Ok(GroupOutcome::Failed(Box::new(f)));
    }
    if !group.finishes(0) {
        // Its author's BEGIN comes next: the rest runs in the next group.
        tx.commit().map_err(db_err)?;
        return Ok(GroupOutcome::Committed(Vec::new()));
    }
    if group.direction == Direction::Up {
        if let Some(mut f) = run_verify(&mut tx, group, m, progress)? {
            // Its statements are committed; only the history row is withheld.
            f.rolled_back = false;
            f.committed_statements = range.end;
            return Ok(GroupOutcome::Failed(Box::new(f)));
        }
    }
    match group.direction {
        Direction::Up => record_applied(&mut tx, m, ms(started.elapsed()) as i64, stamp, settings)?,
        Direction::Down => record_reverted(&mut tx, m, settings)?,
    }
    tx.commit().map_err(db_err)?;
    Ok(GroupOutcome::Committed(vec![Done {
        version: m.version.clone(),
        name: m.name.clone(),
        duration_ms: ms(started.elapsed()),
    }]))
}

#[cfg(test)]
mod tests {
    use super::Blocker;

    /// Regression: "pid 7 (app, user u,  since ) holds …" for a session
    /// this role may not see.
    #[test]
    fn a_hidden_blocker_is_named_without_blanks() {
        let hidden = Blocker {
            pid: 7,
            application: "(no application name)".into(),
            user: Some("app".into()),
            state: None,
            since: None,
        };
        assert_eq!(
            hidden.to_string(),
            "pid 7 ((no application name), user app, this role may not see more of it)"
        );
        let seen = Blocker {
            state: Some("idle in transaction".into()),
            since: Some("2026-01-07 12:00:00 UTC".into()),
            ..hidden
        };
        assert_eq!(
            seen.to_string(),
            "pid 7 ((no application name), user app, idle in transaction since 2026-01-07 12:00:00 UTC)"
        );
    }
}
