//! Method C, the full rollback of a release. Before anything is undone,
//! what the release exposed is counted (rows in the tables its migrations
//! created, per owner where an owner column exists, and their row-level
//! security) and those tables are exported to CSV, checksummed, for the
//! forensics the runbook asks for. Then the flags go off, the release's
//! migrations are reverted with their down files, the protected tables are
//! checked against their row counts before the downs, and the verify suite
//! runs.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;

use super::{begin, step, HooksSection, RespondError, Step, Target};
use crate::migrate::{self, RollbackTarget, Settings};
use crate::pg::quote_ident;
use crate::source::Migration;
use crate::undo::Downs;
use crate::verify::SuiteReport;

/// A table the release created, as it stands before method C.
#[derive(Debug, Clone, Serialize)]
pub struct TableExposure {
    /// `schema.name`, as PostgreSQL names it.
    pub table: String,
    /// The migration that created it.
    pub created_by: String,
    pub rows: i64,
    /// The first of `[check] owner_columns` the table has.
    pub owner_column: Option<String>,
    /// Distinct owners among its rows.
    pub owners: Option<i64>,
    pub rls_enabled: bool,
    pub rls_forced: bool,
    pub policies: i64,
    /// Its columns besides the key and the owner column: what kind of data
    /// it holds, for the users' e-mail.
    pub columns: Vec<String>,
    /// Since when the data was there: when its migration was applied.
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// The CSV export, relative to the forensics folder, and its BLAKE3.
    pub file: String,
    pub blake3: String,
}

/// What method C works on.
pub struct Full<'a> {
    /// The folder's migrations (their downs are run).
    pub migrations: &'a [Migration],
    pub settings: &'a Settings,
    /// Which migrations make up the release.
    pub revert: &'a RollbackTarget,
    /// Where the forensics folder `<UTC time>/` is made.
    pub forensics_root: &'a Path,
    /// `[check] owner_columns`.
    pub owner_columns: &'a [String],
    /// `[migrations] protected_tables`.
    pub protected_tables: &'a [String],
    /// Export what the downs remove (columns of tables that stay, rows, enum
    /// values in use) before they run, into `<forensics>/dropped/`.
    pub keep_dropped: bool,
}

/// What method C did besides its steps.
#[derive(Debug, Clone, Serialize)]
pub struct FullOutcome {
    pub steps: Vec<Step>,
    /// The migrations reverted, newest first.
    pub reverted: Vec<String>,
    pub exposure: Vec<TableExposure>,
    /// The forensics folder (exports, `manifest.json`).
    pub forensics: PathBuf,
    /// What the downs removed, exported before they ran (in `dropped/`).
    pub kept: Vec<migrate::keep::Kept>,
    /// Why no verify check ran after the downs, where none did.
    pub not_verified: Option<String>,
}

/// What the verify suite said after method C's downs.
#[derive(Debug)]
pub enum Verified {
    /// Its checks ran and passed: how many.
    Passed(String),
    /// No check ran, and why: no step claims the database was verified;
    /// the outcome event says so instead (`not_verified`).
    NotRun(String),
}

/// What method C reverts, decided before any step is taken: the open
/// expand where one is (dropped, as every rollback drops it first;
/// nothing of it was applied, so no down runs), else the migrations the
/// downs would revert, newest first. Its plan (`plan::method_c`) and the
/// method itself both read it here.
#[derive(Debug, Clone, Default)]
pub struct Reverts {
    pub versions: Vec<String>,
    /// The versions are an open expand's.
    pub expand: bool,
}

/// [`Reverts`] of `revert` on `client`'s database.
pub fn reverts(
    client: &mut postgres::Client,
    migrations: &[Migration],
    settings: &Settings,
    revert: &RollbackTarget,
) -> Result<Reverts, RespondError> {
    let open = crate::expand::in_progress(client).map_err(|e| RespondError::Step {
        step: "reading the open expand".into(),
        detail: crate::kit::error::chain(&e),
    })?;
    if let Some(open) = open {
        return Ok(Reverts { versions: vec![open.version], expand: true });
    }
    let plan = migrate::rollback(client, migrations, settings, revert, true, &mut migrate::Quiet)?;
    let versions = plan.groups.iter().flat_map(|g| g.versions.clone()).collect();
    Ok(Reverts { versions, expand: false })
}

/// What method C makes of the suite after its downs: given whether one
/// runs and its report, what it found, or why it failed.
pub type Judge = dyn Fn(bool, Option<SuiteReport>) -> Result<Verified, String>;

/// Method C, the rollback policy's phases ([`crate::undo`]) with its own
/// steps between them: `downs` is the suite made ready before anything
/// ran, `verify` says what the suite found after the downs (whether one
/// runs, and its report). An expand still open is the release, and
/// nothing of it was applied: it is dropped, as every rollback drops it
/// first, and no down runs. Records a started event and the outcome like
/// A and B.
#[allow(clippy::too_many_arguments)]
pub fn method_c(
    client: &mut postgres::Client,
    url: &str,
    target: Option<&Target>,
    hooks: &HooksSection,
    full: &Full<'_>,
    reason: &str,
    lock_wait: Duration,
    (downs, verify): (Downs, &Judge),
    mut on_step: impl FnMut(&Step),
) -> Result<FullOutcome, RespondError> {
    let Reverts { versions: reverted, expand } =
        reverts(client, full.migrations, full.settings, full.revert)?;
    if reverted.is_empty() {
        return Err(RespondError::NothingToRevert);
    }
    let base = json!({ "method": "C", "target": target, "reason": reason, "revert": reverted });
    let mut run = begin(client, url, base, &mut on_step)?;
    let folder = full.forensics_root.join(chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string());
    let exposure = forensics(&mut run, client, full, &folder, &reverted, reason)?;
    if let Some(target) = target {
        run.kill(client, target, reason, lock_wait)?;
        run.hook("after_kill hook", hooks.after_kill.as_deref(), hooks.timeout)?;
    }
    let before = protected_rows(client, full.protected_tables)?;
    let report = match expand {
        true => expand_dropped(&mut run, client, full, &folder)?,
        false => reverted_by_downs(&mut run, client, (full, &downs), &folder)?,
    };
    // The outcome event says what was exposed and what was kept, for the
    // incident's texts.
    run.base["exposure"] = json!(exposure);
    run.base["kept"] = json!(report.kept);
    run.base["forensics"] = json!(folder);
    check_protected(&mut run, client, full, &before)?;
    let started = Instant::now();
    let verifies = downs.verifies();
    let not_verified = match verify(verifies, downs.finish(client, &report)) {
        Ok(Verified::Passed(detail)) => {
            run.done(step("verify", started, true, detail, None));
            None
        }
        Ok(Verified::NotRun(why)) => {
            run.base["not_verified"] = json!(why);
            Some(why)
        }
        Err(detail) => return Err(run.failed(step("verify", started, false, detail, None))),
    };
    run.finish("ok")?;
    let (steps, forensics, kept) = (run.steps, folder, report.kept);
    Ok(FullOutcome { steps, reverted, exposure, forensics, kept, not_verified })
}

/// The steps before anything is undone: what the release exposed,
/// counted, and its tables exported for the forensics.
fn forensics(
    run: &mut super::Run<'_>,
    client: &mut postgres::Client,
    full: &Full<'_>,
    folder: &Path,
    reverted: &[String],
    reason: &str,
) -> Result<Vec<TableExposure>, RespondError> {
    let started = Instant::now();
    let created = created_tables(client, full.migrations, reverted)?;
    let mut exposure = Vec::new();
    for (table, version) in &created {
        match assess(client, table, version, full.owner_columns) {
            Ok(e) => exposure.push(e),
            Err(e) => {
                let detail = format!("counting {table}: {e}");
                return Err(run.failed(step("assess exposure", started, false, detail, None)));
            }
        }
    }
    let detail = exposure_summary(&exposure);
    run.done(step("assess exposure", started, true, detail, None));
    let started = Instant::now();
    match export(client, folder, &mut exposure, reverted, reason) {
        Ok(bytes) => {
            let detail = format!(
                "{} table(s), {bytes} byte(s) of CSV in {} (BLAKE3 in manifest.json)",
                exposure.len(),
                folder.display()
            );
            run.done(step("export forensics", started, true, detail, None));
            Ok(exposure)
        }
        Err(e) => {
            let detail = format!("{}: {e}", folder.display());
            Err(run.failed(step("export forensics", started, false, detail, None)))
        }
    }
}

/// The open expand dropped (the policy's first phase), the values of the
/// columns it added kept first in `<folder>/dropped/` (unless
/// `[rollback] export_dropped = false`): no down ran, so the report
/// holds only what was exported.
fn expand_dropped(
    run: &mut super::Run<'_>,
    client: &mut postgres::Client,
    full: &Full<'_>,
    folder: &Path,
) -> Result<migrate::Report, RespondError> {
    let mut settings = full.settings.clone();
    settings.keep = full.keep_dropped.then(|| folder.join("dropped"));
    let started = Instant::now();
    match crate::undo::open_expand_dropped(client, &settings, false) {
        Ok(dropped) => {
            // What was exported before the expand went is the outcome's
            // `kept`, as the downs' exports are.
            let kept = dropped.as_ref().map(|e| e.kept.clone()).unwrap_or_default();
            let detail = match dropped {
                Some(e) => {
                    let mut detail = format!(
                        "the open expand of {} dropped ({} gone with what it made, the rows of \
                         the tables that were there kept); nothing of it was applied, so no down \
                         ran",
                        e.version, e.new_schema
                    );
                    // What the new shape held that the old cannot, and
                    // what was exported before it went, as `rollback` says.
                    let kept = e.kept.iter().map(|k| k.to_string());
                    for line in e.unmapped.iter().cloned().chain(kept) {
                        detail.push_str(&format!("; {line}"));
                    }
                    detail
                }
                None => "no expand was open any more; nothing dropped".into(),
            };
            run.done(step("open expand dropped", started, true, detail, None));
            Ok(migrate::Report { kept, ..migrate::Report::default() })
        }
        Err(e) => {
            let detail = crate::kit::error::chain(&e);
            Err(run.failed(step("open expand dropped", started, false, detail, None)))
        }
    }
}

/// The release's down migrations (the policy's downs), with what they
/// remove kept first in `<folder>/dropped/` (unless `[rollback]
/// export_dropped = false`).
fn reverted_by_downs(
    run: &mut super::Run<'_>,
    client: &mut postgres::Client,
    (full, downs): (&Full<'_>, &Downs),
    folder: &Path,
) -> Result<migrate::Report, RespondError> {
    let mut settings = full.settings.clone();
    settings.keep = full.keep_dropped.then(|| folder.join("dropped"));
    let started = Instant::now();
    let report =
        downs.run(client, full.migrations, (&settings, full.revert), false, &mut migrate::Quiet);
    match report {
        Ok(r) if !r.failed() => {
            let done: Vec<&str> = r.done.iter().map(|d| d.version.as_str()).collect();
            let mut detail = format!("reverted {}", done.join(", "));
            if !r.kept.is_empty() {
                let kept: Vec<String> = r.kept.iter().map(|k| k.to_string()).collect();
                detail.push_str(&format!("; kept first in dropped/: {}", kept.join(", ")));
            }
            run.done(step("down migrations", started, true, detail, None));
            Ok(r)
        }
        Ok(r) => {
            let compared = r.failure.as_ref().is_some_and(|f| f.stage == migrate::Stage::Compared);
            let detail = match r.failure.as_ref() {
                Some(f) if compared => format!("{}; rolled back, nothing reverted", f.message),
                Some(f) => format!(
                    "the down of {} failed and was rolled back: {}; {} reverted before it",
                    f.version,
                    f.message,
                    r.done.len()
                ),
                None => "the downs failed".to_string(),
            };
            // The downs ran, and their own check found what they leave.
            let name = if compared { DOWNS_CHECKED } else { "down migrations" };
            Err(run.failed(step(name, started, false, detail, None)))
        }
        Err(e) => {
            let detail = crate::kit::error::chain(&e);
            Err(run.failed(step("down migrations", started, false, detail, None)))
        }
    }
}

/// The step of method C whose downs ran and whose check before COMMIT
/// found the schema other than before the release.
pub const DOWNS_CHECKED: &str = "downs' check";

/// The protected tables after the downs: every row they had before.
fn check_protected(
    run: &mut super::Run<'_>,
    client: &mut postgres::Client,
    full: &Full<'_>,
    before: &[(String, Option<i64>)],
) -> Result<(), RespondError> {
    let started = Instant::now();
    let after = protected_rows(client, full.protected_tables)?;
    let damaged: Vec<String> = before
        .iter()
        .filter_map(|(table, rows)| {
            let rows = (*rows)?;
            match after.iter().find(|(t, _)| t == table).and_then(|(_, now)| *now) {
                Some(now) if now >= rows => None,
                Some(now) => Some(format!("{table} has {now} row(s), {rows} before")),
                None => Some(format!("{table} is gone ({rows} row(s) before)")),
            }
        })
        .collect();
    if damaged.is_empty() {
        let detail = format!("{} protected table(s) kept every row", after.len());
        run.done(step("protected tables", started, true, detail, None));
        Ok(())
    } else {
        let detail = format!(
            "the downs damaged {}; restore the migration's backup: backstop respond method B --yes",
            damaged.join("; ")
        );
        Err(run.failed(step("protected tables", started, false, detail, None)))
    }
}

/// The tables the reverted migrations' up files create that exist now,
/// with the version that created each, oldest migration first.
fn created_tables(
    client: &mut postgres::Client,
    migrations: &[Migration],
    reverted: &[String],
) -> Result<Vec<(String, String)>, RespondError> {
    let mut out: Vec<(String, String)> = Vec::new();
    for m in migrations.iter().filter(|m| reverted.contains(&m.version)) {
        for s in &m.up.statements {
            let Some(rel) = &s.facts.creates_table else { continue };
            let written = crate::pg::quote_qualified(rel.schema.as_deref(), &rel.name);
            let found: Option<String> = client
                .query_one(
                    "select c.oid::regclass::text from pg_class c
                      where c.oid = to_regclass($1) and c.relkind in ('r', 'p')",
                    &[&written],
                )
                .ok()
                .and_then(|r| r.get(0));
            if let Some(name) = found.filter(|n| !out.iter().any(|(t, _)| t == n)) {
                out.push((name, m.version.clone()));
            }
        }
    }
    Ok(out)
}

fn assess(
    client: &mut postgres::Client,
    table: &str,
    version: &str,
    owner_columns: &[String],
) -> Result<TableExposure, postgres::Error> {
    let meta = client.query_one(
        "select c.relrowsecurity, c.relforcerowsecurity,
                (select count(*) from pg_policy p where p.polrelid = c.oid),
                (select a.attname::text from unnest($2::text[]) with ordinality o(name, n)
                   join pg_attribute a on a.attrelid = c.oid and a.attname = o.name
                    and a.attnum > 0 and not a.attisdropped
                  order by o.n limit 1)
           from pg_class c where c.oid = $1::text::regclass",
        &[&table, &owner_columns],
    )?;
    let owner_column: Option<String> = meta.get(3);
    let counts = match &owner_column {
        Some(col) => format!("select count(*), count(distinct {}) from {table}", quote_ident(col)),
        None => format!("select count(*), null::bigint from {table}"),
    };
    let row = unfiltered(client, &counts)?;
    let columns: Vec<String> = client
        .query(
            "select a.attname::text from pg_attribute a
              where a.attrelid = $1::text::regclass and a.attnum > 0 and not a.attisdropped
                and a.attname <> all($2::text[])
                and not exists (select from pg_index i where i.indrelid = a.attrelid
                                  and i.indisprimary and a.attnum = any(i.indkey))
              order by a.attnum",
            &[&table, &owner_column.iter().cloned().collect::<Vec<String>>()],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let since = crate::schema::applied::applied_at(client, version).ok().flatten();
    Ok(TableExposure {
        table: table.to_string(),
        created_by: version.to_string(),
        rows: row.get(0),
        owner_column,
        owners: row.get(1),
        rls_enabled: meta.get(0),
        rls_forced: meta.get(1),
        policies: meta.get(2),
        columns,
        since,
        file: String::new(),
        blake3: String::new(),
    })
}

fn exposure_summary(exposure: &[TableExposure]) -> String {
    if exposure.is_empty() {
        return "the release created no table that still exists".into();
    }
    let tables: Vec<String> = exposure
        .iter()
        .map(|e| {
            let owners = match (&e.owner_column, e.owners) {
                (Some(col), Some(n)) => format!(", {n} distinct {col}"),
                _ => String::new(),
            };
            let rls = match (e.rls_enabled, e.policies) {
                (false, _) => ", RLS OFF",
                (true, 0) => ", RLS on without a policy",
                (true, _) => "",
            };
            format!("{} ({} row(s){owners}{rls})", e.table, e.rows)
        })
        .collect();
    format!("{} new table(s): {}", exposure.len(), tables.join(", "))
}

/// Writes each table to `<folder>/<table>.csv` (folder 0700, files 0600:
/// they hold users' rows) and `manifest.json`; returns the bytes written.
fn export(
    client: &mut postgres::Client,
    folder: &Path,
    exposure: &mut [TableExposure],
    reverted: &[String],
    reason: &str,
) -> Result<u64, Box<dyn std::error::Error + Send + Sync>> {
    crate::pg::export::folder(folder)?;
    let mut total = 0u64;
    let mut tx = client.transaction()?;
    // One snapshot for every table, read whole whatever the policies say.
    tx.batch_execute(
        "set transaction isolation level repeatable read, read only; set local row_security = off",
    )?;
    for e in exposure.iter_mut() {
        let file = crate::pg::export::file_name(&[&e.table], "csv");
        let query = format!("select * from {}", e.table);
        let written = crate::pg::export::csv(&mut tx, &query, folder, &file)?;
        total += written.bytes;
        e.file = written.file;
        e.blake3 = written.blake3;
    }
    tx.commit()?;
    // The manifest last: a folder without one was not finished.
    let manifest = json!({
        "method": "C",
        "taken_at": chrono::Utc::now(),
        "reason": reason,
        "reverted": reverted,
        "tables": exposure,
    });
    crate::pg::export::text(folder, "manifest.json", &serde_json::to_string_pretty(&manifest)?)?;
    Ok(total)
}

/// Exact row counts of the protected tables that exist (`None`: missing),
/// each name resolved as the migration guard resolves it.
fn protected_rows(
    client: &mut postgres::Client,
    protected: &[String],
) -> Result<Vec<(String, Option<i64>)>, RespondError> {
    let mut out = Vec::new();
    for name in protected {
        let rows = match crate::migrate::protect::resolve(client, name)? {
            Some(oid) => {
                let table: String =
                    client.query_one("select $1::oid::regclass::text", &[&oid])?.get(0);
                Some(unfiltered(client, &format!("select count(*) from {table}"))?.get(0))
            }
            None => None,
        };
        out.push((name.clone(), rows));
    }
    Ok(out)
}

/// The one row of `sql` with row security off: a policy must not hide
/// rows from a count, and a role it would apply to gets an error instead
/// of a short one.
fn unfiltered(client: &mut postgres::Client, sql: &str) -> Result<postgres::Row, postgres::Error> {
    let mut tx = client.transaction()?;
    tx.batch_execute("set local row_security = off")?;
    let row = tx.query_one(sql, &[])?;
    tx.commit()?;
    Ok(row)
}
