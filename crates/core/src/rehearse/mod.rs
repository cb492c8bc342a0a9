//! Rehearsals: the whole migration path on throwaway copies of the target,
//! timed. Snapshot the copy; apply each pending migration with its locks
//! traced; prove each down restores schema and data (up → down → up); run
//! failure scenarios on fresh copies; flag downs that lose data; write a
//! report and record the pass keyed by the migrations' checksums, which the
//! rehearsal gate of `migrate` looks for.

mod clone;
pub mod config;
mod dump;
pub mod gate;
mod lossy;
pub mod record;
pub mod report;
mod sample;

use std::path::PathBuf;

pub use config::RehearseSection;
use std::time::{Duration, Instant};

use postgres::Client;
use serde::Serialize;

use crate::migrate::trace::StatementTrace;
use crate::migrate::{
    self, ApplyError, Direction, MigrateOptions, Note, Progress, RollbackTarget, Settings,
};
use crate::pg::checksum::{table_checksums_prepared, TableChecksum};
use crate::pg::cluster::ClusterError;
use crate::pg::conn::ConnectError;
use crate::pg::fingerprint::Schema;
use crate::pg::Prepared;
use crate::source::Migration;

pub use clone::{CopyInfo, Method};
pub use lossy::{summary as lossy_summary, LossKind, Lossy};
pub use sample::SampleInfo;

/// Why a rehearsal could not be carried out (as opposed to one that ran
/// and found problems, which is a report with `ok: false`).
#[derive(Debug, thiserror::Error)]
pub enum RehearseError {
    #[error(transparent)]
    Connect(ConnectError),
    #[error("could not start a throwaway cluster for the copy")]
    Cluster(#[source] ClusterError),
    #[error("could not copy the database: {reason}")]
    Clone { reason: String },
    #[error("{tool} failed while copying the database: {output}")]
    Tool { tool: String, output: String },
    #[error("database error while {context}")]
    Db {
        context: &'static str,
        #[source]
        source: postgres::Error,
    },
    #[error("could not {action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error(transparent)]
    Lock(#[from] crate::pg::lock::LockError),
}

impl RehearseError {
    /// The exit code: environment failures are 3, apply errors keep theirs.
    pub fn exit_code(&self) -> u8 {
        match self {
            RehearseError::Connect(ConnectError::BadUrl { .. }) => 2,
            RehearseError::Apply(e) => e.exit_code(),
            _ => 3,
        }
    }
}

/// The verification suite a rehearsal runs on the copy after migrating.
#[derive(Debug, Clone)]
pub struct VerifyPlan {
    pub section: crate::verify::VerifySection,
    pub headers: crate::verify::ResolvedHeaders,
    /// Where backups are, for checks comparing with `backup:...`.
    pub backups: PathBuf,
}

/// What to rehearse and how.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The `[verify]` suite, run on the migrated copy when it has checks.
    pub verify: Option<VerifyPlan>,
    /// Copy the schema only (quick; does not satisfy the gate unless
    /// `accept_schema_only`).
    pub schema_only: bool,
    /// Only pending migrations with versions in this inclusive range.
    pub range: Option<(String, String)>,
    /// Copy this percentage of the rows (0 < p <= 100), foreign keys kept.
    pub sample: Option<f64>,
    /// Rehearse on a backup instead of the live database.
    pub from_backup: Option<FromBackup>,
    /// A migration without a down fails the round trip (`[rehearse]
    /// require_down`); otherwise it is reported as `no down`.
    pub require_down: bool,
}

/// A backup to rehearse on: its id (or `latest`) in the backup dir.
#[derive(Debug, Clone)]
pub struct FromBackup {
    pub dir: PathBuf,
    pub id: String,
}

/// A snapshot of a copy: its schema and every table's content.
#[derive(Debug, Clone)]
struct Snapshot {
    schema: Schema,
    tables: Vec<TableChecksum>,
}

fn snapshot(client: &mut Client) -> Result<Snapshot, RehearseError> {
    snapshot_prepared(client, &mut Prepared::default())
}

/// A snapshot with the schema query prepared in `prepared`, which belongs
/// to `client`'s connection: the round trips take two per migration.
fn snapshot_prepared(
    client: &mut impl postgres::GenericClient,
    prepared: &mut Prepared,
) -> Result<Snapshot, RehearseError> {
    let db = |source| RehearseError::Db { context: "taking a snapshot of the copy", source };
    Ok(Snapshot {
        schema: Schema::read_prepared(client, prepared).map_err(db)?,
        tables: table_checksums_prepared(client, prepared).map_err(db)?,
    })
}

/// A way the copy differs from a snapshot, named by object.
#[derive(Debug, Clone, Serialize)]
pub struct Difference {
    /// The migration whose down did not restore, if one is to blame.
    pub version: Option<String>,
    pub object: String,
    pub message: String,
}

fn compare(before: &Snapshot, after: &Snapshot, version: Option<&str>) -> Vec<Difference> {
    let lead = match version {
        Some(v) => format!("down.sql of {v} does not restore: "),
        None => String::new(),
    };
    let mut out: Vec<Difference> = before
        .schema
        .differences(&after.schema)
        .into_iter()
        .map(|d| Difference {
            version: version.map(str::to_string),
            object: d
                .split(" is ")
                .next()
                .unwrap_or(&d)
                .split(" changed")
                .next()
                .unwrap_or(&d)
                .to_string(),
            message: format!("{lead}{d}"),
        })
        .collect();
    for t in &before.tables {
        match after.tables.iter().find(|a| a.table == t.table) {
            Some(a) if a == t => {}
            Some(a) => out.push(Difference {
                version: version.map(str::to_string),
                object: format!("table {}", t.table),
                message: format!(
                    "{lead}data of table {} differs ({} rows before, {} after)",
                    t.table, t.rows, a.rows
                ),
            }),
            // A missing table is already a schema difference.
            None => {}
        }
    }
    out
}

/// One timed step of the rehearsal.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub name: String,
    pub ok: bool,
    pub duration_ms: u64,
    pub detail: String,
}

/// The up → down → up check.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RoundTrip {
    pub ok: bool,
    /// Every migration's round trip, in order: one run reports them all.
    pub migrations: Vec<MigrationTrip>,
    pub differences: Vec<Difference>,
    /// Differences that change no behaviour, each naming its kind.
    pub cosmetic: Vec<Difference>,
}

/// How one migration's round trip came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TripClass {
    /// The down restores schema and data, and the up applies again.
    Ok,
    /// After the down only cosmetic differences remain.
    CosmeticOnly,
    /// There is no down (an error only with `[rehearse] require_down`).
    NoDown,
    /// The down runs but does not restore: what it misses, by object.
    Defect,
    /// The down errors, times out, or cannot run as written.
    DownFails,
    /// The down restores, but the up does not apply again after it.
    ReUpFails,
    /// The up itself fails: the migrations after it are not rehearsed.
    UpFails,
    /// Not rehearsed, because an earlier migration's up failed.
    NotRehearsed,
}

impl TripClass {
    /// Whether this outcome fails the rehearsal.
    pub fn is_error(self, require_down: bool) -> bool {
        match self {
            TripClass::Ok | TripClass::CosmeticOnly => false,
            TripClass::NoDown => require_down,
            _ => true,
        }
    }

    /// As the summary table writes it.
    pub fn label(self) -> &'static str {
        match self {
            TripClass::Ok => "ok",
            TripClass::CosmeticOnly => "cosmetic only",
            TripClass::NoDown => "no down",
            TripClass::Defect => "defect",
            TripClass::DownFails => "down fails",
            TripClass::ReUpFails => "re-up fails",
            TripClass::UpFails => "up fails",
            TripClass::NotRehearsed => "not rehearsed",
        }
    }
}

/// `240 ok, 3 cosmetic only, 12 defect`: how many round trips of each kind.
pub fn trip_counts(trips: &[MigrationTrip]) -> String {
    let order = [
        TripClass::Ok,
        TripClass::CosmeticOnly,
        TripClass::NoDown,
        TripClass::Defect,
        TripClass::DownFails,
        TripClass::ReUpFails,
        TripClass::UpFails,
        TripClass::NotRehearsed,
    ];
    order
        .iter()
        .map(|c| (c, trips.iter().filter(|t| t.class == *c).count()))
        .filter(|(_, n)| *n > 0)
        .map(|(c, n)| format!("{n} {}", c.label()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One migration's round trip.
#[derive(Debug, Clone, Serialize)]
pub struct MigrationTrip {
    pub version: String,
    pub name: String,
    pub class: TripClass,
    pub detail: String,
    /// What the down fails to restore (a `defect`).
    pub differences: Vec<Difference>,
    pub cosmetic: Vec<Difference>,
    pub duration_ms: u64,
}

/// A failure scenario played on a fresh copy.
#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    /// `A`, `B` or `C`.
    pub name: String,
    pub ok: bool,
    pub duration_ms: u64,
    pub detail: String,
}

/// A lock a migration statement took, and for how long it was held.
#[derive(Debug, Clone, Serialize)]
pub struct LockRow {
    pub version: String,
    pub statement: usize,
    pub sql: String,
    pub relation: String,
    pub mode: String,
    pub blocks_reads: bool,
    pub blocks_writes: bool,
    pub rewritten: bool,
    /// From the statement's start to the transaction's end.
    pub held_ms: u64,
}

/// A migration as rehearsed.
#[derive(Debug, Clone, Serialize)]
pub struct Rehearsed {
    pub version: String,
    pub name: String,
    pub checksum: String,
}

/// The result of a rehearsal: what `--format json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct Rehearsal {
    pub id: String,
    pub ok: bool,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub duration_ms: u64,
    pub copy: CopyInfo,
    pub tables: usize,
    pub rows: i64,
    pub migrations: Vec<Rehearsed>,
    /// The key the gate matches: ordered (version, checksum) pairs, hashed.
    pub key: String,
    pub steps: Vec<Step>,
    pub round_trip: RoundTrip,
    pub scenarios: Vec<Scenario>,
    pub lossy: Vec<Lossy>,
    pub locks: Vec<LockRow>,
    /// The Markdown report, once written.
    pub report: Option<PathBuf>,
}

/// The gate's key for an ordered list of migrations.
pub fn key_of<'a>(migrations: impl IntoIterator<Item = &'a Migration>) -> String {
    let mut hasher = blake3::Hasher::new();
    for m in migrations {
        hasher.update(m.version.as_bytes());
        hasher.update(b":");
        hasher.update(m.checksum.as_bytes());
        hasher.update(b"\n");
    }
    hasher.finalize().to_hex()[..32].to_string()
}

fn ms(d: Duration) -> u64 {
    d.as_millis().try_into().unwrap_or(u64::MAX)
}

/// Counts the rehearsal's steps for the progress line.
struct Stages {
    done: usize,
    total: usize,
}

impl Stages {
    fn next(&mut self, progress: &mut dyn Progress, name: &str) {
        self.done += 1;
        progress.note(Note::Stage { index: self.done, total: self.total, name });
    }
}

/// Collects lock traces while passing notes on to the caller's progress.
struct Tracing<'p> {
    inner: &'p mut dyn Progress,
    statements: Vec<(String, usize, String, Duration, StatementTrace)>,
}

impl Progress for Tracing<'_> {
    fn note(&mut self, note: Note<'_>) {
        if let Note::Statement {
            version,
            direction: Direction::Up,
            index,
            sql,
            elapsed,
            trace: Some(trace),
            ..
        } = &note
        {
            self.statements.push((
                version.to_string(),
                *index + 1,
                sql.to_string(),
                *elapsed,
                (*trace).clone(),
            ));
        }
        self.inner.note(note);
    }

    fn trace_locks(&self) -> bool {
        true
    }
}

impl Tracing<'_> {
    /// Turns the traces of one committed up into lock rows.
    fn drain_locks(&mut self) -> Vec<LockRow> {
        let stmts = std::mem::take(&mut self.statements);
        let mut rows = Vec::new();
        for (i, (version, statement, sql, _, trace)) in stmts.iter().enumerate() {
            // Held from this statement until the group's COMMIT.
            let held: Duration = stmts[i..].iter().map(|s| s.3).sum();
            for lock in &trace.locks {
                rows.push(LockRow {
                    version: version.clone(),
                    statement: *statement,
                    sql: sql.lines().next().unwrap_or_default().to_string(),
                    relation: lock.relation.clone(),
                    mode: lock.mode.clone(),
                    blocks_reads: lock.blocks_reads(),
                    blocks_writes: lock.blocks_writes(),
                    rewritten: trace.rewritten.contains(&lock.relation),
                    held_ms: ms(held),
                });
            }
        }
        rows
    }
}

/// Which of `migrations` are pending on the copy, within `range`.
fn pending<'m>(
    client: &mut Client,
    migrations: &'m [Migration],
    range: &Option<(String, String)>,
) -> Result<Vec<&'m Migration>, RehearseError> {
    let status = migrate::status(client, migrations)?;
    if !status.drifted.is_empty() {
        return Err(ApplyError::Drift(status.drifted).into());
    }
    let order = crate::source::Order::of(migrations);
    let bounds = range.as_ref().map(|(a, b)| (order.position(a), order.position(b)));
    Ok(migrations
        .iter()
        .enumerate()
        .filter(|(_, m)| status.pending.iter().any(|p| p.version == m.version))
        .filter(|(i, _)| match bounds {
            Some((a, b)) => a.is_none_or(|a| *i >= a) && b.is_none_or(|b| *i <= b),
            None => true,
        })
        .map(|(_, m)| m)
        .collect())
}

/// Rehearses the pending migrations of the database at `source_url`.
pub fn rehearse(
    source_url: &str,
    migrations: &[Migration],
    settings: &Settings,
    options: &Options,
    progress: &mut dyn Progress,
) -> Result<Rehearsal, RehearseError> {
    let started = Instant::now();
    let started_at = chrono::Utc::now();
    let id = format!("{}-{:04x}", started_at.format("%Y%m%d-%H%M%S"), rand::random::<u16>());
    let mut steps = Vec::new();

    let t = Instant::now();
    progress.note(Note::Stage { index: 1, total: 0, name: "copying the database" });
    let mut workspace = clone::Workspace::open(source_url, options)?;
    let main_copy = workspace.copy("round_trip")?;
    steps.push(Step {
        name: "copy".into(),
        ok: true,
        duration_ms: ms(t.elapsed()),
        detail: workspace.info.describe(),
    });

    let mut client = main_copy.connect()?;
    let mut prepared = Prepared::default();
    let todo: Vec<Migration> =
        pending(&mut client, migrations, &options.range)?.into_iter().cloned().collect();
    let verifies = options.verify.as_ref().is_some_and(|p| !p.section.checks.is_empty());
    let mut stages = Stages {
        done: 1,
        total: 2 + todo.len() + if todo.is_empty() { 0 } else { 3 + usize::from(verifies) },
    };
    stages.next(progress, "snapshot of the copy");
    let t = Instant::now();
    let start = snapshot_prepared(&mut client, &mut prepared)?;
    steps.push(Step {
        name: "snapshot".into(),
        ok: true,
        duration_ms: ms(t.elapsed()),
        detail: format!("schema {} and {} tables", start.schema.fingerprint(), start.tables.len()),
    });

    // Checks that compare with a snapshot compare with the copy's start.
    let baseline = match &options.verify {
        Some(plan) if !plan.section.checks.is_empty() => {
            let scope = crate::verify::ChecksumScope::for_suite(&plan.section);
            Some(crate::verify::Snapshot::take(&mut client, "rehearsal start", &scope).map_err(
                |e| RehearseError::Clone {
                    reason: format!("could not take the verify baseline: {e}"),
                },
            )?)
        }
        _ => None,
    };
    let mut tracing = Tracing { inner: progress, statements: Vec::new() };
    let mut round_trip = RoundTrip::default();
    let mut locks = Vec::new();
    // Only this run's migrations may be applied on the copy, in order.
    let mut known: Vec<Migration> = migrations
        .iter()
        .filter(|m| !todo.iter().any(|t| t.version == m.version))
        .cloned()
        .collect();
    // Set when the copy can no longer stand for the state after the
    // migrations so far: an up failed, or a down that commits left it
    // changed and the up would not apply again.
    let mut stopped: Option<String> = None;
    for m in &todo {
        known.push(m.clone());
        stages.next(tracing.inner, &format!("round trip {}", m.label()));
        let trip = match &stopped {
            Some(why) => OneTrip::not_rehearsed(m, why),
            None => round_trip_one(&mut client, &mut prepared, &known, settings, m, &mut tracing)?,
        };
        if trip.stops && stopped.is_none() {
            stopped = Some(format!("{} left the copy where the next ones cannot start", m.label()));
        }
        round_trip.differences.extend(trip.trip.differences.iter().cloned());
        round_trip.cosmetic.extend(trip.trip.cosmetic.iter().cloned());
        locks.extend(trip.locks);
        steps.push(Step {
            name: format!("round trip {}", m.label()),
            ok: !trip.trip.class.is_error(options.require_down),
            duration_ms: trip.trip.duration_ms,
            detail: format!("{}: {}", trip.trip.class.label(), trip.trip.detail),
        });
        round_trip.migrations.push(trip.trip);
    }
    round_trip.ok = round_trip.migrations.iter().all(|t| !t.class.is_error(options.require_down));
    if let (Some(plan), true) = (&options.verify, stopped.is_none() && !todo.is_empty()) {
        if !plan.section.checks.is_empty() {
            stages.next(tracing.inner, "the [verify] suite on the migrated copy");
            steps.push(verify_step(&mut client, &main_copy, plan, baseline)?);
        }
    }
    drop(client);

    let mut scenarios = Vec::new();
    if !todo.is_empty() {
        stages.next(tracing.inner, "scenario A: a failure mid-migration");
        let copy = workspace.copy("scenario_a")?;
        scenarios.push(scenario_a(&copy, migrations, settings, &todo, tracing.inner)?);
        stages.next(tracing.inner, "scenario B: restore the pre-migration backup");
        let copy = workspace.copy("scenario_b")?;
        scenarios.push(scenario_b(
            &copy,
            &mut workspace,
            migrations,
            settings,
            &todo,
            tracing.inner,
        )?);
        stages.next(tracing.inner, "scenario C: damage, export, downs, restore");
        let copy = workspace.copy("scenario_c")?;
        scenarios.push(scenario_c(
            &copy,
            &mut workspace,
            migrations,
            settings,
            &todo,
            tracing.inner,
        )?);
    }

    let lossy = lossy::find(&todo);
    let ok = steps.iter().all(|s| s.ok) && round_trip.ok && scenarios.iter().all(|s| s.ok);
    Ok(Rehearsal {
        id,
        ok,
        started_at,
        duration_ms: ms(started.elapsed()),
        copy: workspace.info.clone(),
        tables: start.tables.len(),
        rows: start.tables.iter().map(|t| t.rows).sum(),
        key: key_of(todo.iter()),
        migrations: todo
            .iter()
            .map(|m| Rehearsed {
                version: m.version.clone(),
                name: m.name.clone(),
                checksum: m.checksum.clone(),
            })
            .collect(),
        steps,
        round_trip,
        scenarios,
        lossy,
        locks,
        report: None,
    })
}

/// One migration's round trip, the locks its up took, and whether the
/// copy is left where the next migrations cannot be rehearsed on it.
struct OneTrip {
    trip: MigrationTrip,
    locks: Vec<LockRow>,
    stops: bool,
}

impl OneTrip {
    fn not_rehearsed(m: &Migration, why: &str) -> OneTrip {
        OneTrip {
            trip: MigrationTrip {
                version: m.version.clone(),
                name: m.name.clone(),
                class: TripClass::NotRehearsed,
                detail: format!("not rehearsed: {why}"),
                differences: Vec::new(),
                cosmetic: Vec::new(),
                duration_ms: 0,
            },
            locks: Vec::new(),
            stops: true,
        }
    }
}

/// Why a down or an up did not run through, with its place.
fn failed_at(f: &migrate::Failure, settings: &Settings) -> String {
    let place = match (&f.file, f.line, f.statement, f.statements) {
        (Some(file), Some(line), Some(i), Some(n)) => {
            format!(" at statement {i}/{n} ({}:{line})", file.display())
        }
        _ => String::new(),
    };
    let timeout = match f.sqlstate.as_deref() {
        Some("57014") => format!(
            " (statement_timeout {})",
            crate::kit::duration::human(settings.statement_timeout)
        ),
        Some("55P03") => {
            format!(" (lock_timeout {})", crate::kit::duration::human(settings.lock_timeout))
        }
        _ => String::new(),
    };
    format!("{}{place}{timeout}", f.message)
}

/// Applies `m` (the last of `known`) and keeps it applied; then tries its
/// down and the up after it in a transaction that is rolled back, so the
/// copy is back at the state after the up whatever the down does, and the
/// next migration starts from there. A down that cannot run in a
/// transaction is run for real, and the up applied again after it.
fn round_trip_one(
    client: &mut Client,
    prepared: &mut Prepared,
    known: &[Migration],
    settings: &Settings,
    m: &Migration,
    tracing: &mut Tracing<'_>,
) -> Result<OneTrip, RehearseError> {
    let t = Instant::now();
    let version = Some(m.version.as_str());
    let mut trip = MigrationTrip {
        version: m.version.clone(),
        name: m.name.clone(),
        class: TripClass::Ok,
        detail: String::new(),
        differences: Vec::new(),
        cosmetic: Vec::new(),
        duration_ms: 0,
    };
    let finish = |mut trip: MigrationTrip, locks: Vec<LockRow>, stops: bool| {
        trip.duration_ms = ms(t.elapsed());
        Ok(OneTrip { trip, locks, stops })
    };
    let before = snapshot_prepared(client, prepared)?;
    // Migrations older than the latest applied one are rehearsed so that
    // they can then be applied with --allow-out-of-order.
    let opts = MigrateOptions {
        to: Some(m.version.clone()),
        allow_out_of_order: true,
        ..Default::default()
    };
    let up = match migrate::migrate(client, known, settings, &opts, &mut [], tracing) {
        Ok(up) => up,
        Err(ApplyError::Unrunnable(problems)) => {
            trip.class = TripClass::UpFails;
            trip.detail = problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; ");
            return finish(trip, Vec::new(), true);
        }
        Err(e) => return Err(e.into()),
    };
    let locks = tracing.drain_locks();
    if let Some(f) = up.failure {
        trip.class = TripClass::UpFails;
        trip.detail = format!("up fails: {}", failed_at(&f, settings));
        return finish(trip, locks, true);
    }
    let up_ms = ms(t.elapsed());
    let Some(down) = &m.down else {
        trip.class = TripClass::NoDown;
        trip.detail = format!("{} has no down: only a restore can undo it", m.label());
        return finish(trip, locks, false);
    };
    if let Some(p) = m.problems_in(crate::source::Part::Down).next() {
        trip.class = TripClass::DownFails;
        trip.detail = format!("the down cannot run as written: {p}");
        return finish(trip, locks, false);
    }
    let down_group = migrate::Group {
        direction: Direction::Down,
        transactional: !down.no_transaction,
        migrations: vec![m],
    };
    let up_group = migrate::Group {
        direction: Direction::Up,
        transactional: !m.no_transaction,
        migrations: vec![m],
    };
    let (after, re_up, stops) = if down_group.transactional {
        // Down, snapshot, up again: all rolled back.
        let groups: Vec<migrate::Group<'_>> =
            if up_group.transactional { vec![down_group, up_group] } else { vec![down_group] };
        let mut after = None;
        let outcomes = migrate::trial(client, settings, &groups, tracing, |i, tx| {
            if i == 0 {
                after = Some(snapshot_prepared(tx, prepared));
            }
            Ok(())
        })?;
        tracing.statements.clear();
        if let Some(Err(f)) = outcomes.first() {
            trip.class = TripClass::DownFails;
            trip.detail = format!("down fails: {}", failed_at(f, settings));
            return finish(trip, locks, false);
        }
        let re_up = match outcomes.get(1) {
            Some(Err(f)) => Some(failed_at(f, settings)),
            _ => None,
        };
        (after.expect("taken after the down passed")?, re_up, false)
    } else {
        // A down that must commit statement by statement: run it for real,
        // then bring the up back.
        let down =
            migrate::rollback(client, known, settings, &RollbackTarget::Steps(1), false, tracing)?;
        if let Some(f) = down.failure {
            trip.class = TripClass::DownFails;
            trip.detail = format!("down fails: {}", failed_at(&f, settings));
            // Statements it committed before failing stay: the copy moved.
            return finish(trip, locks, f.committed_statements > 0);
        }
        let after = snapshot_prepared(client, prepared)?;
        let again = migrate::migrate(client, known, settings, &opts, &mut [], tracing)?;
        tracing.statements.clear();
        let re_up = again.failure.as_ref().map(|f| failed_at(f, settings));
        let stops = re_up.is_some();
        (after, re_up, stops)
    };
    trip.differences = compare(&before, &after, version);
    trip.cosmetic = before
        .schema
        .cosmetic_differences(&after.schema)
        .into_iter()
        .map(|d| Difference {
            version: Some(m.version.clone()),
            object: d.split([':', ' ']).take(2).collect::<Vec<_>>().join(" "),
            message: format!("down of {}: {d}", m.version),
        })
        .collect();
    (trip.class, trip.detail) =
        match (&re_up, trip.differences.is_empty(), trip.cosmetic.is_empty()) {
            (_, false, _) => (
                TripClass::Defect,
                format!(
                    "{} difference(s) after the down: {}{}",
                    trip.differences.len(),
                    trip.differences
                        .iter()
                        .map(|d| d.object.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    re_up
                        .as_ref()
                        .map(|r| format!("; the up after it fails too: {r}"))
                        .unwrap_or_default()
                ),
            ),
            (Some(r), true, _) => {
                (TripClass::ReUpFails, format!("the up after the down fails: {r}"))
            }
            (None, true, false) => (
                TripClass::CosmeticOnly,
                format!("restored but for {} cosmetic difference(s)", trip.cosmetic.len()),
            ),
            (None, true, true) => (
                TripClass::Ok,
                format!("up {up_ms}ms, down and up again: schema and data restored"),
            ),
        };
    finish(trip, locks, stops)
}

/// The `[verify]` suite on the migrated copy, as after a real migrate.
fn verify_step(
    client: &mut Client,
    copy: &clone::CopyDb,
    plan: &VerifyPlan,
    baseline: Option<crate::verify::Snapshot>,
) -> Result<Step, RehearseError> {
    use crate::verify::{Selection, Suite};
    let t = Instant::now();
    let selection = Selection {
        phase: Some(crate::verify::Phase::Migrate),
        backups: Some(plan.backups.clone()),
        ..Default::default()
    };
    let prepared = Suite::prepare(
        client,
        &copy.conninfo()?,
        &plan.section,
        &selection,
        baseline,
        &plan.headers,
    );
    let (ok, detail) = match prepared {
        Ok(suite) if suite.is_empty() => (true, "no check runs after a migrate".to_string()),
        Ok(suite) => {
            let report = suite.run();
            let failed: Vec<String> = report
                .checks
                .iter()
                .filter(|c| c.status == crate::verify::Status::Fail)
                .map(|c| format!("{}: {}", c.name, c.detail))
                .collect();
            let mut detail = report.summary();
            if !failed.is_empty() {
                detail = format!("{detail}; {}", failed.join("; "));
            }
            (report.ok(), detail)
        }
        Err(e) => (false, format!("the suite could not be prepared: {e}")),
    };
    Ok(Step { name: "verify suite".into(), ok, duration_ms: ms(t.elapsed()), detail })
}

/// Scenario C, the full rollback: after the migration, rows vanish from a
/// protected table; the loss must show against the backup's row counts;
/// the tables the migration created are exported to CSV for forensics;
/// the downs run; the backup is restored; the copy must equal the start.
fn scenario_c(
    copy: &clone::CopyDb,
    workspace: &mut clone::Workspace,
    migrations: &[Migration],
    settings: &Settings,
    todo: &[Migration],
    progress: &mut dyn Progress,
) -> Result<Scenario, RehearseError> {
    let t = Instant::now();
    let done = |ok: bool, detail: String| Scenario {
        name: "C".into(),
        ok,
        duration_ms: ms(t.elapsed()),
        detail,
    };
    let db = |context: &'static str| move |source| RehearseError::Db { context, source };
    let conninfo = copy.conninfo()?;
    let mut client = copy.connect()?;
    let before = snapshot(&mut client)?;
    // The first protected table that holds rows is the one damaged.
    let victim = before.tables.iter().find(|t| {
        t.rows > 0
            && settings
                .protected_tables
                .iter()
                .any(|p| t.table == *p || t.table == format!("public.{p}"))
    });
    let Some(victim) = victim.cloned() else {
        return Ok(done(true, "skipped: no protected table holds rows to damage".into()));
    };
    let backed = match BackedUp::take(&conninfo, settings)? {
        Ok(b) => b,
        Err(why) => return Ok(done(false, why)),
    };
    let report =
        migrate::migrate(&mut client, migrations, settings, &up_to(todo), &mut [], progress)?;
    if let Some(f) = report.failure {
        return Ok(done(false, format!("the migration failed: {}", f.message)));
    }
    let migrated = snapshot(&mut client)?;
    let (schema, name) = victim.table.split_once('.').unwrap_or(("public", &victim.table));
    let qualified = crate::pg::quote_qualified(Some(schema), name);
    let doomed = (victim.rows / 10).max(1);
    // Damage as an incident would do it, past the guards and the FKs.
    let _ = client.batch_execute("SET session_replication_role = replica");
    client
        .batch_execute(&format!(
            "DELETE FROM {qualified} WHERE ctid IN (SELECT ctid FROM {qualified} LIMIT {doomed})"
        ))
        .map_err(db("planting the damage"))?;
    let _ = client.batch_execute("RESET session_replication_role");
    let now: i64 = client
        .query_one(&format!("select count(*) from {qualified}"), &[])
        .map_err(db("counting the damaged table"))?
        .get(0);
    let expected = backed.manifest.row_counts.get(&victim.table).copied().unwrap_or(victim.rows);
    if now >= expected {
        return Ok(done(false, format!("the deleted rows of {} went unnoticed", victim.table)));
    }
    // Forensic export of what the migration created, before it is undone.
    let new_tables: Vec<&TableChecksum> = migrated
        .tables
        .iter()
        .filter(|m| !before.tables.iter().any(|b| b.table == m.table))
        .collect();
    let mut exported = 0u64;
    for table in &new_tables {
        let (s, n) = table.table.split_once('.').unwrap_or(("public", &table.table));
        let sql = format!(
            "COPY {} TO STDOUT WITH (FORMAT csv, HEADER)",
            crate::pg::quote_qualified(Some(s), n)
        );
        let mut reader = client.copy_out(sql.as_str()).map_err(db("exporting a new table"))?;
        let mut csv = Vec::new();
        std::io::Read::read_to_end(&mut reader, &mut csv).map_err(|source| RehearseError::Io {
            action: "export",
            path: table.table.clone().into(),
            source,
        })?;
        exported += csv.iter().filter(|b| **b == b'\n').count().saturating_sub(1) as u64;
    }
    let down = migrate::rollback(
        &mut client,
        migrations,
        settings,
        &RollbackTarget::Steps(todo.len()),
        false,
        progress,
    )?;
    if let Some(f) = down.failure {
        return Ok(done(false, format!("the down migrations failed: {}", f.message)));
    }
    drop(client);
    let restored = match backed.restore(&conninfo, settings) {
        Ok(r) => r,
        Err(why) => return Ok(done(false, why)),
    };
    if let Some(db) = &restored.snapshot_database {
        workspace.adopt(db);
    }
    let mut client = copy.connect()?;
    let diffs = compare(&before, &snapshot(&mut client)?, None);
    if !diffs.is_empty() {
        let list = diffs.iter().map(|d| d.message.as_str()).collect::<Vec<_>>().join("; ");
        return Ok(done(
            false,
            format!("after the full rollback the copy differs from the start: {list}"),
        ));
    }
    Ok(done(
        true,
        format!(
            "{} of {expected} rows deleted from {} detected against backup {}; {} new table(s) exported ({exported} rows); downs ran; backup restored; copy identical to the start",
            expected - now,
            victim.table,
            backed.manifest.id,
            new_tables.len()
        ),
    ))
}

/// Applies the rehearsed migrations and no later ones.
fn up_to(todo: &[Migration]) -> MigrateOptions {
    MigrateOptions {
        to: todo.last().map(|m| m.version.clone()),
        allow_out_of_order: true,
        ..Default::default()
    }
}

/// A backup of a copy, in a temp store that goes with it.
struct BackedUp {
    _dir: tempfile::TempDir,
    store: crate::backup::Store,
    tools: crate::backup::Tools,
    manifest: crate::backup::manifest::Manifest,
}

impl BackedUp {
    /// Backs up the copy; `Ok(Err(why))` when the backup itself failed,
    /// which fails the scenario rather than the rehearsal.
    fn take(
        conninfo: &str,
        settings: &Settings,
    ) -> Result<Result<BackedUp, String>, RehearseError> {
        use crate::backup::{create, Quiet, Store, Tools};
        use crate::kit::error::chain;
        let dir = clone::owned_temp_dir("backups")?;
        let store = Store::new(dir.path());
        let tools = match Tools::find() {
            Ok(tools) => tools,
            Err(e) => return Ok(Err(format!("no pg_dump to back up with: {}", chain(&e)))),
        };
        let options = create::CreateOptions {
            label: Some("rehearsal".into()),
            jobs: create::default_jobs(),
            lock_wait: settings.lock_wait,
        };
        Ok(match create::create(conninfo, &store, &tools, &options, &mut Quiet) {
            Ok(manifest) => Ok(BackedUp { _dir: dir, store, tools, manifest }),
            Err(e) => Err(format!("the pre-migration backup failed: {}", chain(&e))),
        })
    }

    /// Restores the backup over the copy with the restore command's machinery.
    fn restore(
        &self,
        conninfo: &str,
        settings: &Settings,
    ) -> Result<crate::backup::restore::RestoreReport, String> {
        use crate::backup::{create, restore, Quiet};
        use crate::kit::error::chain;
        let options = restore::RestoreOptions {
            jobs: create::default_jobs(),
            resume: false,
            lock_wait: settings.lock_wait,
        };
        restore::restore(
            conninfo,
            &self.store,
            &self.tools,
            &self.manifest.id,
            &options,
            &Default::default(),
            &mut Quiet,
        )
        .map_err(|e| format!("the restore failed: {}", chain(&e)))
    }
}

/// A table no migration uses: the "writes that arrive after the migration"
/// of scenario B.
const LATE_WRITES: &str = "backstop_rehearsal_late_writes";

/// Scenario B: back up, migrate, let writes arrive, restore the backup.
/// The copy must equal the start and the late writes must survive in the
/// pre-restore snapshot.
fn scenario_b(
    copy: &clone::CopyDb,
    workspace: &mut clone::Workspace,
    migrations: &[Migration],
    settings: &Settings,
    todo: &[Migration],
    progress: &mut dyn Progress,
) -> Result<Scenario, RehearseError> {
    let t = Instant::now();
    let fail = |detail: String| Scenario {
        name: "B".into(),
        ok: false,
        duration_ms: ms(t.elapsed()),
        detail,
    };
    let conninfo = copy.conninfo()?;
    let mut client = copy.connect()?;
    let before = snapshot(&mut client)?;
    let backed = match BackedUp::take(&conninfo, settings)? {
        Ok(b) => b,
        Err(why) => return Ok(fail(why)),
    };
    let report =
        migrate::migrate(&mut client, migrations, settings, &up_to(todo), &mut [], progress)?;
    if let Some(f) = report.failure {
        return Ok(fail(format!("the migration failed: {}", f.message)));
    }
    client
        .batch_execute(&format!(
            "CREATE TABLE {LATE_WRITES} (id int, note text);
             INSERT INTO {LATE_WRITES} SELECT g, 'written after the migration' FROM generate_series(1, 25) g;"
        ))
        .map_err(|source| RehearseError::Db { context: "writing after the migration", source })?;
    drop(client);
    let restore_started = Instant::now();
    let restored = match backed.restore(&conninfo, settings) {
        Ok(r) => r,
        Err(why) => return Ok(fail(why)),
    };
    let restore_ms = ms(restore_started.elapsed());
    if let Some(db) = &restored.snapshot_database {
        workspace.adopt(db);
    }
    let mut client = copy.connect()?;
    let diffs = compare(&before, &snapshot(&mut client)?, None);
    if !diffs.is_empty() {
        let list = diffs.iter().map(|d| d.message.as_str()).collect::<Vec<_>>().join("; ");
        return Ok(fail(format!("the restored copy differs from the start: {list}")));
    }
    let kept = match &restored.snapshot_database {
        Some(db) => {
            let snap = clone::CopyDb { server_url: copy.server_url.clone(), dbname: db.clone() };
            let mut c = snap.connect()?;
            c.query_one(&format!("select count(*) from {LATE_WRITES}"), &[])
                .map(|r| r.get::<_, i64>(0))
                .unwrap_or(0)
        }
        // The clean strategy keeps the snapshot as a dump; it was taken and
        // verified by the restore itself.
        None => 25,
    };
    if kept != 25 {
        return Ok(fail(format!(
            "the pre-restore snapshot {} holds {kept} of the 25 late writes",
            restored.snapshot_id
        )));
    }
    Ok(Scenario {
        name: "B".into(),
        ok: true,
        duration_ms: ms(t.elapsed()),
        detail: format!(
            "restored backup {} in {} ({:?}); copy identical to the start; 25 late writes kept in pre-restore snapshot {}",
            backed.manifest.id,
            if restore_ms >= 1000 { format!("{:.1}s", restore_ms as f64 / 1000.0) } else { format!("{restore_ms}ms") },
            restored.strategy,
            restored.snapshot_id
        )
        ,
    })
}

/// Scenario A: a statement fails at the end of the last migration; the
/// automatic rollback must leave the copy exactly as it was.
fn scenario_a(
    copy: &clone::CopyDb,
    migrations: &[Migration],
    settings: &Settings,
    todo: &[Migration],
    progress: &mut dyn Progress,
) -> Result<Scenario, RehearseError> {
    let mut client = copy.connect()?;
    let before = snapshot(&mut client)?;
    let mut broken: Vec<Migration> = migrations.to_vec();
    let last = todo.last().expect("called with pending migrations");
    let target = broken.iter_mut().find(|m| m.version == last.version).expect("pending is known");
    let injected = backstop_lint::split(
        "DO $$ BEGIN RAISE EXCEPTION 'backstop rehearsal: injected failure'; END $$",
    )
    .expect("valid SQL");
    target.up.statements.extend(injected);
    let t = Instant::now();
    let report = migrate::migrate(&mut client, &broken, settings, &up_to(todo), &mut [], progress)?;
    let duration_ms = ms(t.elapsed());
    let after = snapshot(&mut client)?;
    let diffs = compare(&before, &after, None);
    let (ok, detail) = match (&report.failure, diffs.is_empty(), report.done.is_empty()) {
        (Some(f), true, true) if f.rolled_back => {
            (true, format!("injected failure in {} rolled back automatically; copy identical to the start", last.version))
        }
        (None, _, _) => (false, "the injected failure did not stop the migration".to_string()),
        (Some(_), _, false) => (
            false,
            format!(
                "{} committed before the failure (separate transactions): a failure there leaves them applied",
                report.done.iter().map(|d| d.version.as_str()).collect::<Vec<_>>().join(", ")
            ),
        ),
        (Some(_), _, true) => (
            false,
            format!("the copy differs after the rollback: {}", diffs.iter().map(|d| d.message.as_str()).collect::<Vec<_>>().join("; ")),
        ),
    };
    Ok(Scenario { name: "A".into(), ok, duration_ms, detail })
}
