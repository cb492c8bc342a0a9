//! Expand/contract from plain SQL (issue 44): the pending migrations
//! served as a new shape beside the old one, so two versions of an
//! application write at once and a rollback loses no write.
//!
//! `expand` runs what the old shape never names for real (new columns,
//! nullable or with a constant default; new tables; named indexes) and
//! makes a schema `<schema>_<version>` of updatable views, one per table,
//! showing the new shape (renamed tables and columns under their new
//! names, dropped columns left out, retyped columns through a twin of the
//! new type kept in step by triggers and backfilled in batches: `twins`,
//! `backfill`). Every write through either shape lands in the same
//! table. `contract` runs the renames and drops for real, drops the views
//! and records the migrations as applied; `rollback` drops the views and
//! what the expand made (the values of added columns and new tables
//! exported first when `[rollback]` keeps them). Each passes the gates
//! `migrate` has and is one transaction under the migration lock,
//! recorded in `backstop.expands` and the audit log; a statement with no
//! expand form refuses the whole expand before anything changes.

mod apply;
pub mod backfill;
pub mod plan;
pub mod settle;
pub mod trace;
pub mod twins;
pub mod views;

use postgres::Client;
use serde_json::json;

use crate::migrate::{self, keep, ApplyError, Gate, Settings};
use crate::pg::lock::{LockError, MigrationLock};
use crate::pg::{db, quote_ident, quote_qualified, DbError};
use crate::schema::{self, applied, events, expands};
use crate::source::Migration;
pub use plan::{Plan, Refusal};

/// Why an expand, contract or rollback of an expand did not run; nothing
/// changed in each case.
#[derive(Debug, thiserror::Error)]
pub enum ExpandError {
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("no pending migrations to expand; `backstop status` lists them")]
    NothingPending,
    #[error(
        "the pending migrations cannot be expanded; nothing changed:\n  {}\n\
         apply them with `backstop migrate`, or move these statements to a later migration",
        .0.iter().map(|r| r.to_string()).collect::<Vec<_>>().join("\n  ")
    )]
    NoExpandForm(Vec<Refusal>),
    #[error(
        "an expand of {version} is in progress (schema {new_schema}, by {by}); finish it with \
         `backstop migrate --contract` or undo it with `backstop rollback` first"
    )]
    InProgress { version: String, new_schema: String, by: String },
    #[error("no expand is in progress; `backstop migrate --expand` starts one")]
    NoExpand,
    #[error(
        "the expand's migrations differ from their files: {}; restore the files (contract runs \
         what was expanded)",
        .0.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("; ")
    )]
    Drift(Vec<String>),
    #[error(
        "table{} {} of schema {schema} {} row level security, and PostgreSQL {major} has no \
         security_invoker views (15 and later): the new shape would bypass the policies; \
         apply with `backstop migrate` or upgrade the server",
        if .tables.len() == 1 { "" } else { "s" }, .tables.join(", "),
        if .tables.len() == 1 { "has" } else { "have" }
    )]
    RlsBeforeFifteen { schema: String, tables: Vec<String>, major: i32 },
    #[error(
        "schema {0} already exists; an expand serves the new shape there: drop or rename it first"
    )]
    SchemaTaken(String),
    #[error(
        "schema name {0} is longer than PostgreSQL's 63 bytes; use a shorter schema or version"
    )]
    NameTooLong(String),
    #[error(transparent)]
    Flag(#[from] crate::flags::FlagsError),
    #[error("the values of the added columns could not be kept, so nothing was rolled back; free the disk or set [rollback] export_dropped = false")]
    Keep(#[source] keep::KeepError),
    #[error(
        "the expand is not settled, so the contract would lose values or fail; nothing \
         changed:\n  {}\nmend the rows through the old shape (or drop what stops the index) and \
         run `backstop migrate --contract` again, or undo the expand with `backstop rollback`",
        .0.join("\n  ")
    )]
    Unsettled(Vec<String>),
}

impl ExpandError {
    /// The process exit code this error calls for.
    pub fn exit_code(&self) -> u8 {
        match self {
            ExpandError::Apply(e) => e.exit_code(),
            ExpandError::Drift(_) => 1,
            ExpandError::NothingPending
            | ExpandError::NoExpandForm(_)
            | ExpandError::InProgress { .. }
            | ExpandError::NoExpand
            | ExpandError::RlsBeforeFifteen { .. }
            | ExpandError::SchemaTaken(_)
            | ExpandError::NameTooLong(_)
            | ExpandError::Unsettled(_) => 2,
            ExpandError::Lock(_) | ExpandError::Db(_) | ExpandError::Keep(_) => 3,
            ExpandError::Flag(e) => e.exit_code(),
        }
    }
}

/// An expand, as started or finished.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Expanded {
    /// The schema that keeps the old shape.
    pub schema: String,
    /// The schema of views serving the new shape.
    pub new_schema: String,
    pub version: String,
    pub plan: Plan,
    /// What a rollback exported before dropping the added columns.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kept: Vec<keep::Kept>,
    /// The backfill of the retyped columns' twins, when it ran.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub backfill: Vec<backfill::Filled>,
    /// What stops a contract after the backfills, validations and index
    /// builds, one line each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unsettled: Vec<String>,
    /// What a rollback found written through the new shape that the old
    /// types cannot hold, one line a column.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unmapped: Vec<String>,
    /// The table locks this run's own transactions held, by step.
    #[serde(skip_serializing_if = "trace::LockTrace::is_empty")]
    pub locks: trace::LockTrace,
    /// `migrate --expand` found this expand open on the same migrations
    /// and finished its backfill.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub resumed: bool,
}

impl Expanded {
    fn new(schema: &str, new_schema: String, version: String, plan: Plan) -> Expanded {
        Expanded {
            schema: schema.into(),
            new_schema,
            version,
            plan,
            kept: Vec::new(),
            backfill: Vec::new(),
            unsettled: Vec::new(),
            unmapped: Vec::new(),
            locks: trace::LockTrace::default(),
            resumed: false,
        }
    }
}

/// The expand in progress, if any.
pub fn in_progress(client: &mut Client) -> Result<Option<Expanded>, ExpandError> {
    Ok(opened(client)?.map(|(_, e)| e))
}

/// Whether pending migrations can be expanded, as `check` says it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Expandable {
    /// The schema whose tables the expand would serve.
    pub schema: String,
    pub possible: bool,
    /// Where it cannot, each statement that stops it and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub refusals: Vec<Refusal>,
}

impl Expandable {
    /// Reads, changing nothing, whether `pending` could be expanded in
    /// `schema` as the tables are now.
    pub fn read(
        client: &mut Client,
        pending: &[&Migration],
        schema: &str,
    ) -> Result<Expandable, DbError> {
        let tables = views::tables(client, schema).map_err(db("reading the schema's tables"))?;
        let refusals = apply::build(pending, schema, &tables).err().unwrap_or_default();
        Ok(Expandable { schema: schema.into(), possible: refusals.is_empty(), refusals })
    }

    /// One line for people.
    pub fn line(&self) -> String {
        match self.refusals.as_slice() {
            [] => format!(
                "expand: the pending migrations can be served as a new shape of {} beside the \
                 old one (`backstop migrate --expand`)",
                self.schema
            ),
            [first, rest @ ..] => format!(
                "expand: not possible for the pending migrations: {first}{}",
                if rest.is_empty() { String::new() } else { format!(" (and {} more)", rest.len()) }
            ),
        }
    }
}

/// An expand in progress as `status` and the status page show it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Open {
    /// The schema whose tables keep the old shape.
    pub schema: String,
    /// The schema of views serving the new shape.
    pub new_schema: String,
    /// The migrations it serves, in order.
    pub versions: Vec<String>,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub started_by: String,
}

impl Open {
    /// The expand in progress, if any (none without Backstop's schema).
    pub fn read(client: &mut Client) -> Result<Option<Open>, DbError> {
        if !schema::has(client, "backstop.expands").map_err(db("looking for backstop.expands"))? {
            return Ok(None);
        }
        let Some(row) = expands::open(client).map_err(db("reading the expand in progress"))? else {
            return Ok(None);
        };
        let versions = serde_json::from_value::<Plan>(row.plan)
            .map(|p| p.migrations.into_iter().map(|m| m.version).collect())
            .unwrap_or_else(|_| vec![row.version]);
        Ok(Some(Open {
            schema: row.schema,
            new_schema: row.new_schema,
            versions,
            started_at: row.started_at,
            started_by: row.started_by,
        }))
    }

    /// One line for people: which shapes are served where, and how it ends.
    pub fn line(&self) -> String {
        format!(
            "expand in progress: {} served in schema {} beside the old shape in {} (since {} by \
             {}); `backstop migrate --contract` makes it real, `backstop rollback` drops it",
            self.versions.join(", "),
            self.new_schema,
            self.schema,
            self.started_at.format("%Y-%m-%d %H:%M:%S UTC"),
            self.started_by
        )
    }
}

/// The expand in progress with its row's id, read once.
fn opened(client: &mut Client) -> Result<Option<(i64, Expanded)>, ExpandError> {
    let Some(row) = expands::open(client).map_err(db("reading the expand in progress"))? else {
        return Ok(None);
    };
    from_row(row).map(Some)
}

fn from_row(row: expands::ExpandRow) -> Result<(i64, Expanded), ExpandError> {
    let plan = serde_json::from_value(row.plan).map_err(|_| ExpandError::NoExpand)?;
    Ok((row.id, Expanded::new(&row.schema, row.new_schema, row.version, plan)))
}

/// Expands the pending migrations of `migrations` in `schema` (`public`),
/// then settles it (backfills, validations, concurrent index builds),
/// saying its progress through `note`. An expand already open on exactly
/// these migrations is settled instead (a run stopped halfway resumes).
pub fn expand(
    client: &mut Client,
    migrations: &[Migration],
    settings: &Settings,
    schema: &str,
    gates: &mut [&mut dyn Gate],
    note: &mut dyn FnMut(&str),
) -> Result<Expanded, ExpandError> {
    let mut lock = locked(client, settings)?;
    let client = &mut *lock;
    schema::ensure(client).map_err(db("creating the backstop schema"))?;
    let status = migrate::status(client, migrations)?;
    let waiting: Vec<&str> = status.pending.iter().map(|p| p.version.as_str()).collect();
    let pending: Vec<&Migration> =
        migrations.iter().filter(|m| waiting.contains(&m.version.as_str())).collect();
    if let Some(row) = expands::open(client).map_err(db("reading the expand in progress"))? {
        let by = row.started_by.clone();
        let (_, mut open) = from_row(row)?;
        let same = open.plan.migrations.len() == pending.len()
            && open
                .plan
                .migrations
                .iter()
                .zip(&pending)
                .all(|(s, m)| s.version == m.version && s.checksum == m.checksum);
        // The same migrations: a run stopped after the expand's
        // transaction (a crash mid-backfill, a rollout resumed) goes on.
        if same {
            let mut locks = trace::LockTrace::default();
            let settled = settle::settle(client, &open, settings, false, &mut locks, note)?;
            open.locks = locks;
            (open.backfill, open.unsettled) = (settled.backfill, settled.unsettled);
            open.resumed = true;
            return Ok(open);
        }
        let e = ExpandError::InProgress { version: open.version, new_schema: open.new_schema, by };
        return Err(refused(client, "expand", e));
    }
    if !status.drifted.is_empty() {
        return Err(refused(client, "expand", ApplyError::Drift(status.drifted).into()));
    }
    let Some(last) = pending.last() else { return Err(ExpandError::NothingPending) };
    let version = last.version.clone();
    let new_schema = format!("{schema}_{version}");
    if new_schema.len() > 63 {
        return Err(ExpandError::NameTooLong(new_schema));
    }
    let tables = views::tables(client, schema).map_err(db("reading the schema's tables"))?;
    let plan = apply::build(&pending, schema, &tables)
        .map_err(|r| refused(client, "expand", ExpandError::NoExpandForm(r)))?;
    let major =
        crate::pg::server_version_num(client).map_err(db("reading the server version"))? / 10000;
    let with_rls: Vec<String> =
        tables.iter().filter(|(_, t)| t.rls).map(|(n, _)| n.clone()).collect();
    if major < 15 && !with_rls.is_empty() {
        let e = ExpandError::RlsBeforeFifteen { schema: schema.into(), tables: with_rls, major };
        return Err(refused(client, "expand", e));
    }
    if views::schema_exists(client, &new_schema).map_err(db("looking for the schema"))? {
        return Err(refused(client, "expand", ExpandError::SchemaTaken(new_schema)));
    }
    // The gates `migrate` runs (freeze, check, rehearsal, backup), last:
    // a refusal above costs nothing, a backup does.
    let (stamp, passed) = migrate::pass_all(client, gates, &pending, false)
        .map_err(|r| refused(client, "expand", ApplyError::Gate(r).into()))?;
    let record = serde_json::to_value(&plan).expect("a plan is plain data");
    let mut locks = trace::LockTrace::default();
    let mut tx = client.transaction().map_err(db("starting the expand"))?;
    let started = std::time::Instant::now();
    timeouts(&mut tx, settings, schema).map_err(db("setting the expand's timeouts"))?;
    for sql in &plan.at_expand {
        tx.batch_execute(sql).map_err(db(format!("adding a column: {sql}")))?;
    }
    views::create(&mut tx, schema, &new_schema, &plan.tables, major >= 15)
        .map_err(db("making the new shape's views"))?;
    twins::create(&mut tx, schema, &new_schema, &plan.retyped)
        .map_err(db("making the triggers that keep the retyped columns in step"))?;
    twins::create_fills(&mut tx, schema, &new_schema, &plan.fills)
        .map_err(db("making the triggers that fill the new columns"))?;
    expands::insert(&mut tx, schema, &version, &new_schema, &record)
        .map_err(db("recording the expand"))?;
    let actor = schema::actor();
    crate::flags::shape::open(&mut tx, schema, &new_schema, &version, &actor)?;
    committed(tx, &mut locks, "expand", started)?;
    let versions = plan.migrations.iter().map(|m| m.version.clone()).collect();
    let details = json!({
        "new_schema": new_schema, "plan": record, "gates": passed, "backup_id": stamp.backup_id,
    });
    audit(client, "expand", versions, details)?;
    let mut done = Expanded::new(schema, new_schema, version, plan);
    let settled = settle::settle(client, &done, settings, false, &mut locks, note)?;
    done.locks = locks;
    (done.backfill, done.unsettled) = (settled.backfill, settled.unsettled);
    Ok(done)
}

/// Makes the new shape the real one: the renames run as written, the
/// views and their schema go, the migrations are recorded as applied.
pub fn contract(
    client: &mut Client,
    migrations: &[Migration],
    settings: &Settings,
    gates: &mut [&mut dyn Gate],
    note: &mut dyn FnMut(&str),
) -> Result<Expanded, ExpandError> {
    let mut lock = locked(client, settings)?;
    let client = &mut *lock;
    let Some((id, mut open)) = opened(client)? else { return Err(ExpandError::NoExpand) };
    let changed: Vec<String> = open
        .plan
        .migrations
        .iter()
        .filter(|s| !migrations.iter().any(|m| m.version == s.version && m.checksum == s.checksum))
        .map(|s| format!("{} ({}) changed or missing", s.version, s.name))
        .collect();
    if !changed.is_empty() {
        return Err(refused(client, "contract", ExpandError::Drift(changed)));
    }
    let of: Vec<&Migration> = open
        .plan
        .migrations
        .iter()
        .filter_map(|s| migrations.iter().find(|m| m.version == s.version))
        .collect();
    // Every row filled, every constraint and NOT NULL proved, every index
    // built, or the contract would lose a value or fail halfway.
    let mut locks = trace::LockTrace::default();
    let settled = settle::settle(client, &open, settings, true, &mut locks, note)?;
    if !settled.unsettled.is_empty() {
        // A check that proved a NOT NULL before another step failed goes.
        for sql in checks_dropped(&open, false) {
            let _ = client.batch_execute(&sql);
        }
        return Err(refused(client, "contract", ExpandError::Unsettled(settled.unsettled)));
    }
    open.backfill = settled.backfill;
    let (stamp, passed) = migrate::pass_all(client, gates, &of, false)
        .map_err(|r| refused(client, "contract", ApplyError::Gate(r).into()))?;
    let mut tx = client.transaction().map_err(db("starting the contract"))?;
    let started = std::time::Instant::now();
    timeouts(&mut tx, settings, &open.schema).map_err(db("setting the contract's timeouts"))?;
    // The views first, the tables after: a write through a view locks the
    // view, then its table; locking in the other order would deadlock with
    // it (and fail the application's write).
    views::drop(&mut tx, &open.new_schema, &open.plan.tables)
        .map_err(db("dropping the new shape's views"))?;
    twins::drop(&mut tx, &open.schema, &open.new_schema, &open.plan.retyped)
        .map_err(db("dropping the triggers of the retyped columns"))?;
    twins::drop_fills(&mut tx, &open.schema, &open.new_schema, &open.plan.fills)
        .map_err(db("dropping the triggers that fill the new columns"))?;
    views::drop_schema(&mut tx, &open.new_schema).map_err(db("dropping the new shape's schema"))?;
    for sql in &open.plan.at_contract {
        tx.batch_execute(sql).map_err(db(format!("renaming: {sql}")))?;
    }
    for sql in checks_dropped(&open, true) {
        tx.batch_execute(&sql).map_err(db("dropping the checks that proved NOT NULL"))?;
    }
    // Recorded as `migrate` records them: Backstop's history, and the
    // project's own tool's where it is kept in step.
    for m in &of {
        let row = applied::NewApplied {
            version: &m.version,
            name: &m.name,
            checksum: &m.checksum,
            no_transaction: false,
            repeatable: false,
            duration_ms: 0,
            backup_id: stamp.backup_id.as_deref(),
            rehearsal_id: stamp.rehearsal_id.as_deref(),
            kept_down: None,
            undo_to: None,
        };
        applied::insert(&mut tx, &row).map_err(db("recording the migrations as applied"))?;
        if settings.tool_history.writes() {
            crate::adopt::in_step::applied(&mut tx, m, 0, settings.tool_history)
                .map_err(|e| ExpandError::Apply(ApplyError::ToolHistory(e)))?;
        }
    }
    expands::close(&mut tx, id, "contracted").map_err(db("closing the expand"))?;
    let (actor, why) = (schema::actor(), "the expand is contracted: one shape again");
    crate::flags::shape::close(&mut tx, &open.schema, &open.new_schema, &actor, why)?;
    committed(tx, &mut locks, "contract", started)?;
    open.locks = locks;
    let versions = open.plan.migrations.iter().map(|m| m.version.clone()).collect();
    let details = json!({ "new_schema": open.new_schema, "gates": passed });
    audit(client, "contract", versions, details)?;
    Ok(open)
}

/// What `rollback` does while an expand is open: the expand is undone (no
/// migration of it was applied, so there is nothing else to take back);
/// `None`, with nothing done, when none is open.
pub fn rollback_if_open(
    client: &mut Client,
    settings: &Settings,
) -> Result<Option<Expanded>, ExpandError> {
    if in_progress(client)?.is_none() {
        return Ok(None);
    }
    rollback(client, settings).map(Some)
}

/// Undoes the expand in progress: the views and their schema go, and the
/// added columns (their values exported first when `settings.keep` names
/// a folder). Rows written through either shape stay: they are the
/// table's.
pub fn rollback(client: &mut Client, settings: &Settings) -> Result<Expanded, ExpandError> {
    let mut lock = locked(client, settings)?;
    let client = &mut *lock;
    let Some((id, mut open)) = opened(client)? else { return Err(ExpandError::NoExpand) };
    let at = |name: &str| quote_qualified(Some(&open.schema), name);
    let indexes = open.plan.indexes.iter().map(|i| format!("DROP INDEX IF EXISTS {}", at(i)));
    let columns = open
        .plan
        .added()
        .map(|(t, c)| format!("ALTER TABLE {} DROP COLUMN {}", at(t), quote_ident(c)));
    let tables = open.plan.made().map(|t| format!("DROP TABLE {}", at(t)));
    let added = open.plan.constraints.iter();
    let added = added.map(|c| constraint_dropped(&open.schema, &c.table, &c.name));
    let constraints: Vec<String> = added.chain(checks_dropped(&open, false)).collect();
    let drops: Vec<String> =
        constraints.into_iter().chain(indexes).chain(columns).chain(tables).collect();
    let retyped = &open.plan.retyped;
    let mut tx = client.transaction().map_err(db("starting the rollback of the expand"))?;
    let started = std::time::Instant::now();
    timeouts(&mut tx, settings, &open.schema).map_err(db("setting the rollback's timeouts"))?;
    // The views go first: no write through the new shape after them, and
    // no deadlock with one under way (it locks the view, then the table).
    // The values the old types cannot hold are then found while the
    // tables' writes go on; dropping the triggers locks the tables after.
    views::drop(&mut tx, &open.new_schema, &open.plan.tables)
        .map_err(db("dropping the new shape's views"))?;
    let (unmapped, mut kept) =
        twins::unmapped(&mut tx, &open.schema, retyped, settings.keep.as_deref())?;
    twins::drop(&mut tx, &open.schema, &open.new_schema, retyped)
        .map_err(db("dropping the triggers of the retyped columns"))?;
    twins::drop_fills(&mut tx, &open.schema, &open.new_schema, &open.plan.fills)
        .map_err(db("dropping the triggers that fill the new columns"))?;
    views::drop_schema(&mut tx, &open.new_schema).map_err(db("dropping the new shape's schema"))?;
    if let Some(folder) = settings.keep.as_deref() {
        let statements: Vec<&str> = drops.iter().map(String::as_str).collect();
        kept.extend(keep::before_downs(&mut tx, &statements, folder).map_err(ExpandError::Keep)?);
    }
    (open.kept, open.unmapped) = (kept, unmapped);
    for sql in drops.iter().chain(&twins::dropped(&open.schema, retyped)) {
        tx.batch_execute(sql).map_err(db(format!("dropping what the expand made: {sql}")))?;
    }
    expands::close(&mut tx, id, "rolled_back").map_err(db("closing the expand"))?;
    let (actor, why) = (schema::actor(), "the expand is rolled back: the old shape only");
    crate::flags::shape::close(&mut tx, &open.schema, &open.new_schema, &actor, why)?;
    committed(tx, &mut open.locks, "rollback", started)?;
    let versions = open.plan.migrations.iter().map(|m| m.version.clone()).collect();
    let details = json!({
        "new_schema": open.new_schema, "kept": open.kept, "unmapped": open.unmapped, "expand": true,
    });
    audit(client, "rollback", versions, details)?;
    Ok(open)
}

/// Drops the checks that proved a NOT NULL, on the tables as named before
/// the contract or (`contracted`) as the contract named them.
fn checks_dropped(open: &Expanded, contracted: bool) -> Vec<String> {
    let plan = &open.plan;
    let named = |table: &str| -> String {
        let shape = plan.tables.iter().find(|t| t.name == table).filter(|_| contracted);
        shape.map_or(table, |t| t.view_name()).to_string()
    };
    let checks = plan.not_null.iter().map(|n| (named(&n.table), n.check.as_str()));
    checks.map(|(t, c)| constraint_dropped(&open.schema, &t, c)).collect()
}

fn constraint_dropped(schema: &str, table: &str, name: &str) -> String {
    format!(
        "ALTER TABLE {} DROP CONSTRAINT IF EXISTS {}",
        quote_qualified(Some(schema), table),
        quote_ident(name)
    )
}

/// Commits one of the step's transactions, its table locks read first
/// into the trace.
fn committed(
    mut tx: postgres::Transaction<'_>,
    locks: &mut trace::LockTrace,
    step: &str,
    started: std::time::Instant,
) -> Result<(), ExpandError> {
    let held = trace::held(&mut tx).map_err(db("reading the locks held"))?;
    tx.commit().map_err(db(format!("committing the {step}")))?;
    locks.note(step, held, started.elapsed());
    Ok(())
}

fn locked<'c>(
    client: &'c mut Client,
    settings: &Settings,
) -> Result<MigrationLock<'c>, ExpandError> {
    let mut lock = MigrationLock::acquire(client, settings.lock_wait, |_| {})?;
    schema::exempt(&mut *lock).map_err(db("exempting the session"))?;
    Ok(lock)
}

fn timeouts(
    tx: &mut postgres::Transaction<'_>,
    settings: &Settings,
    schema: &str,
) -> Result<(), postgres::Error> {
    tx.batch_execute(&format!(
        "SET LOCAL lock_timeout = {}; SET LOCAL statement_timeout = {}; SET LOCAL search_path = {}",
        settings.lock_timeout.as_millis(),
        settings.statement_timeout.as_millis(),
        quote_ident(schema)
    ))
}

fn audit(
    client: &mut Client,
    kind: &str,
    versions: Vec<String>,
    details: serde_json::Value,
) -> Result<(), ExpandError> {
    let event = events::Event { kind, outcome: "ok", versions, details };
    events::record(client, &event).map_err(db("writing the audit event"))?;
    Ok(())
}

/// Records a refusal in the audit log (when it exists) and hands it back.
fn refused(client: &mut Client, kind: &str, error: ExpandError) -> ExpandError {
    let event = events::Event {
        kind,
        outcome: "refused",
        versions: Vec::new(),
        details: json!({ "error": error.to_string() }),
    };
    let _ = events::record_if_logged(client, &event);
    error
}
