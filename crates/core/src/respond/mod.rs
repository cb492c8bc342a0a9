//! Carrying out a rollback method after COMMIT (method C, the full
//! rollback, is in [`full`]). Method A, the kill switch:
//! the release's flags off (or the one flag a trigger names), then the
//! `[hooks] after_kill` command (a redeploy, a cache purge). Each step is
//! timed and recorded in `backstop.events`, a started event first, so an
//! interrupted run shows in `status`; killing flags twice changes nothing,
//! so a method run again after a crash finishes where it stopped.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::flags::{self, FlagsError};
use crate::schema::events;

pub mod full;
pub mod plan;
mod responder;
pub use full::{method_c, reverts, Full, FullOutcome, Reverts, TableExposure, Verified};
pub use responder::{
    forensics_root, release_to_kill, target, FullSetup, Observer, Responder, RestoreRun,
    RestoreSetup,
};

/// `[hooks]`: shell commands the methods run at their steps.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HooksSection {
    /// After the flags are off (e.g. a redeploy, so no cached flag lingers).
    pub after_kill: Option<String>,
    /// Method B, before the restore: stop the application's writes
    /// (maintenance mode); the restore also freezes the database's.
    pub stop_writes: Option<String>,
    /// Method B, after the restore: let the application write again.
    pub resume_writes: Option<String>,
    /// How long a hook may run before it is stopped and the method with it.
    #[serde(deserialize_with = "crate::kit::duration::de")]
    pub timeout: Duration,
}

impl Default for HooksSection {
    fn default() -> Self {
        HooksSection {
            after_kill: None,
            stop_writes: None,
            resume_writes: None,
            timeout: Duration::from_secs(120),
        }
    }
}

/// What method A turns off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// Every flag of a release.
    Release(String),
    /// One flag.
    Flag(String),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Release(r) => write!(f, "release {r}"),
            Target::Flag(k) => write!(f, "flag {k}"),
        }
    }
}

/// One finished step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    pub name: String,
    pub ok: bool,
    pub took_ms: u64,
    /// What it did, or why it failed.
    pub detail: String,
    /// A hook's output (truncated).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
}

/// Why a method stopped.
#[derive(Debug, thiserror::Error)]
pub enum RespondError {
    #[error(transparent)]
    Flags(#[from] FlagsError),
    #[error("step {step} failed: {detail}; the steps before it stand (see `backstop status`)")]
    Step { step: String, detail: String },
    #[error("database error while recording the method")]
    Db(#[from] postgres::Error),
    #[error("method B needs a backup to restore, and no applied migration recorded one; pass --backup ID (`backstop backup list` shows them)")]
    NoBackup,
    #[error(transparent)]
    Rollback(#[from] crate::migrate::ApplyError),
    #[error(
        "method C has nothing to revert: no applied migration is chosen (see `backstop status`)"
    )]
    NothingToRevert,
    #[error("no release has a flag on: nothing for method A to turn off")]
    NoFlagOn,
    #[error("flags of several releases are on ({}); name one with --release", .0.join(", "))]
    SeveralReleases(Vec<String>),
    #[error("method C reverts migrations, and no migrations folder was read for it")]
    NoFolder,
}

impl RespondError {
    pub fn exit_code(&self) -> u8 {
        match self {
            RespondError::Flags(e) => e.exit_code(),
            RespondError::Step { .. } => 1,
            RespondError::Db(_) => 3,
            RespondError::NoBackup
            | RespondError::NothingToRevert
            | RespondError::NoFlagOn
            | RespondError::SeveralReleases(_)
            | RespondError::NoFolder => 2,
            RespondError::Rollback(_) => 1,
        }
    }
}

/// Runs a hook: whether it succeeded, and its output (truncated), or why not.
pub fn run_hook(command: &str, timeout: Duration) -> (bool, String) {
    let ran = crate::shell::run(command, timeout);
    let output = crate::shell::truncated(format!("{}{}", ran.stdout, ran.stderr).trim_end(), 4000);
    match ran.outcome {
        Ok(()) => (true, output),
        Err(why) if output.is_empty() => (false, why),
        Err(why) => (false, format!("{why}\n{output}")),
    }
}

fn step(name: &str, started: Instant, ok: bool, detail: String, output: Option<String>) -> Step {
    Step { name: name.into(), ok, took_ms: started.elapsed().as_millis() as u64, detail, output }
}

/// One method being carried out: its steps so far, and the audit log.
struct Run<'a> {
    url: &'a str,
    base: serde_json::Value,
    logged: bool,
    steps: Vec<Step>,
    on_step: &'a mut dyn FnMut(&Step),
}

impl Run<'_> {
    fn done(&mut self, s: Step) {
        (self.on_step)(&s);
        self.steps.push(s);
    }

    /// Writes the method's outcome with its steps, on a fresh session (a
    /// restore replaces the database the first one was on).
    fn finish(&self, outcome: &str) -> Result<(), RespondError> {
        if !self.logged {
            return Ok(());
        }
        let mut details = self.base.clone();
        details["steps"] = json!(self.steps);
        let mut client = crate::pg::connect(self.url, "backstop rollback").map_err(|e| {
            RespondError::Step { step: "recording the outcome".into(), detail: e.to_string() }
        })?;
        crate::freeze::exempt(&mut client)?;
        events::record(
            &mut client,
            &events::Event { kind: "method", outcome, versions: vec![], details },
        )?;
        Ok(())
    }

    /// Records a failed step and the method's failure; the error to return.
    fn failed(&mut self, s: Step) -> RespondError {
        let detail = s.detail.clone();
        let name = s.name.clone();
        self.done(s);
        if let Err(e) = self.finish("failed") {
            return e;
        }
        RespondError::Step { step: name, detail }
    }

    fn kill(
        &mut self,
        client: &mut postgres::Client,
        target: &Target,
        reason: &str,
        lock_wait: Duration,
    ) -> Result<(), RespondError> {
        let actor = crate::schema::actor();
        let started = Instant::now();
        let killed = match target {
            Target::Release(r) => {
                flags::kill_release(client, r, &actor, reason, lock_wait).map(|c| c.len())
            }
            Target::Flag(k) => flags::disable(client, k, &actor, reason, lock_wait).map(|_| 1),
        };
        match killed {
            Ok(n) => {
                let detail = format!("{n} flag(s) of {target} off; serve pushed the change");
                self.done(step("flags off", started, true, detail, None));
                Ok(())
            }
            Err(e) => {
                self.done(step("flags off", started, false, e.to_string(), None));
                self.finish("failed")?;
                Err(e.into())
            }
        }
    }

    fn hook(
        &mut self,
        name: &str,
        command: Option<&str>,
        timeout: Duration,
    ) -> Result<(), RespondError> {
        let Some(command) = command else { return Ok(()) };
        let started = Instant::now();
        let (ok, output) = run_hook(command, timeout);
        if ok {
            self.done(step(name, started, true, format!("`{command}` ran"), Some(output)));
            Ok(())
        } else {
            let detail = format!("`{command}`: {}", output.lines().next().unwrap_or(""));
            Err(self.failed(step(name, started, false, detail, Some(output))))
        }
    }
}

fn begin<'a>(
    client: &mut postgres::Client,
    url: &'a str,
    base: serde_json::Value,
    on_step: &'a mut dyn FnMut(&Step),
) -> Result<Run<'a>, RespondError> {
    // A method acts on a frozen database too (a restore that died left
    // one): its session is Backstop's, exempt like the others.
    crate::freeze::exempt(client)?;
    // The first method (or rollback decision) opens the incident; the
    // others join it.
    let why = format!(
        "method {}: {}",
        base["method"].as_str().unwrap_or("?"),
        base["reason"].as_str().unwrap_or("")
    );
    crate::schema::incidents::open(client, &why)?;
    // Without the audit log there are no flags either: the kill says so.
    let start = events::Event {
        kind: "method",
        outcome: "started",
        versions: vec![],
        details: base.clone(),
    };
    let logged = events::record_if_logged(client, &start)?;
    Ok(Run { url, base, logged, steps: Vec::new(), on_step })
}

/// Method A: the flags off, then the after-kill hook. `on_step` sees each
/// step as it finishes. Records a started event and the outcome.
#[allow(clippy::too_many_arguments)]
pub fn method_a(
    client: &mut postgres::Client,
    url: &str,
    target: &Target,
    hooks: &HooksSection,
    reason: &str,
    lock_wait: Duration,
    mut on_step: impl FnMut(&Step),
) -> Result<Vec<Step>, RespondError> {
    let base = json!({ "method": "A", "target": target, "reason": reason });
    let mut run = begin(client, url, base, &mut on_step)?;
    run.kill(client, target, reason, lock_wait)?;
    run.hook("after_kill hook", hooks.after_kill.as_deref(), hooks.timeout)?;
    run.finish("ok")?;
    Ok(run.steps)
}

/// What method B restores, and how.
pub struct Restore<'a> {
    pub store: &'a crate::backup::store::Store,
    pub tools: &'a crate::backup::tools::Tools,
    /// The backup; `None`: the one the latest applied migration recorded.
    pub backup: Option<String>,
    pub options: crate::backup::restore::RestoreOptions,
    pub freeze: &'a crate::freeze::FreezeSection,
}

/// The backup method B restores: the one given, or the one that guarded
/// the latest migration that recorded one.
pub fn backup_to_restore(
    client: &mut postgres::Client,
    given: Option<&str>,
) -> Result<String, RespondError> {
    if let Some(id) = given {
        return Ok(id.to_string());
    }
    crate::schema::applied::latest_backup_id(client)?.ok_or(RespondError::NoBackup)
}

/// How many rows the state set aside by a restore held beyond the backup
/// (rows written after the migration, less those deleted): the restored
/// database kept under `snapshot`, counted against the backup's manifest.
/// `None` when it cannot be counted.
fn rows_since(
    url: &str,
    store: &crate::backup::store::Store,
    id: &str,
    snapshot: Option<&str>,
) -> Option<i64> {
    let snapshot = snapshot?;
    let manifest = store.load(id).ok()?;
    let mut kept = crate::pg::conn::connect_db(url, Some(snapshot), "backstop rollback").ok()?;
    let counts = crate::pg::fingerprint::row_counts(&mut kept).ok()?;
    Some(
        counts
            .iter()
            .map(|(table, n)| (n - manifest.row_counts.get(table).copied().unwrap_or(0)).max(0))
            .sum(),
    )
}

/// The applied migrations as `version_name`, oldest first; `None` when
/// they cannot be read (the texts then claim nothing about them).
fn applied_names(client: &mut postgres::Client) -> Option<Vec<String>> {
    let mut rows = crate::schema::applied::all(client).ok()?;
    rows.sort_by(|a, b| (a.applied_at, &a.version).cmp(&(b.applied_at, &b.version)));
    Some(rows.into_iter().map(|r| format!("{}_{}", r.version, r.name)).collect())
}

/// What a restore did to the history, for the incident's texts: the
/// migrations it took back (applied before it, not after) and the latest
/// one still applied after it, read on a fresh session (the restore
/// replaced the database). Null where a side could not be read (or, for
/// `before`, was not read by this run), so no text claims more than the
/// database showed.
fn history_after(url: &str, before: Option<Vec<String>>) -> serde_json::Value {
    let after =
        crate::pg::connect(url, "backstop rollback").ok().and_then(|mut c| applied_names(&mut c));
    match (before, after) {
        (Some(before), Some(after)) => {
            let undid: Vec<&String> = before.iter().filter(|v| !after.contains(v)).collect();
            json!({ "undid": undid, "at": after.last() })
        }
        (None, Some(after)) => json!({ "undid": null, "at": after.last() }),
        (_, None) => json!({ "undid": null, "at": null }),
    }
}

/// Method B: A, then writes stopped (`[hooks] stop_writes`; the restore
/// freezes the database's writes itself), the migration's backup restored
/// (the state before it kept as a pre-restore snapshot, so nothing written
/// since is lost), its row counts checked against the manifest, then
/// `[hooks] resume_writes`. With `options.resume`, an interrupted restore
/// is finished instead of started.
#[allow(clippy::too_many_arguments)]
pub fn method_b(
    client: &mut postgres::Client,
    url: &str,
    target: Option<&Target>,
    hooks: &HooksSection,
    restore: &Restore<'_>,
    reason: &str,
    mut on_step: impl FnMut(&Step),
) -> Result<Vec<Step>, RespondError> {
    let id = backup_to_restore(client, restore.backup.as_deref())?;
    // The backup must be there before anything is turned off for it.
    restore.store.load(&id).map_err(|e| RespondError::Step {
        step: "finding the backup".into(),
        detail: crate::kit::error::chain(&e),
    })?;
    let base = json!({ "method": "B", "target": target, "reason": reason, "backup": id });
    let lock_wait = restore.options.lock_wait;
    let mut run = begin(client, url, base, &mut on_step)?;
    match target {
        Some(target) => {
            run.kill(client, target, reason, lock_wait)?;
            run.hook("after_kill hook", hooks.after_kill.as_deref(), hooks.timeout)?;
        }
        None => run.done(step("flags off", Instant::now(), true, "no flag was on".into(), None)),
    }
    run.hook("stop_writes hook", hooks.stop_writes.as_deref(), hooks.timeout)?;
    let before = applied_names(client);
    let started = Instant::now();
    let restored = crate::backup::restore::restore(
        url,
        restore.store,
        restore.tools,
        &id,
        &restore.options,
        restore.freeze,
        &mut crate::backup::Quiet,
    );
    match restored {
        Ok(r) => {
            let kept = match (&r.kept_data_dir, &r.snapshot_database) {
                (Some(dir), _) => format!(
                    "the whole cluster as it was before it kept in data directory {}",
                    dir.display()
                ),
                (None, Some(db)) => {
                    format!("the state before it kept as database {db} (backup {})", r.snapshot_id)
                }
                (None, None) => format!("the state before it kept as backup {}", r.snapshot_id),
            };
            let kept_in = match (&r.kept_data_dir, &r.snapshot_database) {
                (Some(dir), _) => dir.display().to_string(),
                (None, Some(db)) => db.clone(),
                (None, None) => format!("backup {}", r.snapshot_id),
            };
            // A resumed restore began in an earlier run: what this one
            // read before it may be half restored already.
            let history = history_after(url, before.filter(|_| !r.resumed));
            run.base["restore"] = json!({
                "backup": id,
                "taken_at": restore.store.load(&id).ok().map(|m| m.created_at),
                "undid": history["undid"],
                "at": history["at"],
                "kept_in": kept_in,
                "kept_database": r.snapshot_database,
                "rows_since": null,
            });
            // A restore in place leaves the platform's schemas as they
            // were: what in them still runs or is still stored is said.
            let settings = restore.store.load(&id).ok().map(|m| m.database_settings);
            let left = match r.schemas.is_empty() {
                true => Vec::new(),
                false => left_in_place(url, &r.schemas, settings.as_deref()),
            };
            run.base["restore"]["left_in_place"] = json!(left);
            let left = match left.is_empty() {
                true => String::new(),
                false => {
                    format!("; left as they were by the restore in place: {}", left.join("; "))
                }
            };
            let detail = format!(
                "backup {id} restored{}: {} table(s), {} row(s) match its manifest; {kept}{left}",
                if r.resumed { " (resumed)" } else { "" },
                r.tables,
                r.rows
            );
            run.done(step("restore", started, true, detail, None));
        }
        Err(e) => {
            let detail = crate::kit::error::chain(&e);
            return Err(run.failed(step("restore", started, false, detail, None)));
        }
    }
    run.hook("resume_writes hook", hooks.resume_writes.as_deref(), hooks.timeout)?;
    // What the restore took back, counted once writes go on again: the
    // rows the state set aside held beyond the backup, then row by row.
    if let Some(kept) = run.base["restore"]["kept_database"].as_str().map(str::to_string) {
        run.base["restore"]["rows_since"] = json!(rows_since(url, restore.store, &id, Some(&kept)));
        let started = Instant::now();
        match taken_back(url, &kept) {
            Ok(counted) => {
                run.base["restore"]["taken_back"] = json!(counted);
                let detail = counted.said(&kept);
                run.done(step("count what the restore took back", started, true, detail, None));
            }
            // No ✓ for a count that did not happen: the texts fall back
            // to the rows added, and say the rest was not counted.
            Err(why) => run.base["restore"]["not_counted"] = json!(why),
        }
    }
    run.finish("ok")?;
    Ok(run.steps)
}

/// What a restore in place left running or stored in the platform's
/// schemas it did not put back (`restored`: those it did): pg_cron's
/// active jobs where the restore could not make them as the backup holds
/// them (a job the history scheduled goes on running) and Vault's
/// secrets; and the database's own settings that differ from those the
/// backup recorded (`settings`), which no dump holds. Empty where there
/// are none or they cannot be read.
fn left_in_place(url: &str, restored: &[String], settings: Option<&[String]>) -> Vec<String> {
    let Ok(mut client) = crate::pg::connect(url, "backstop rollback") else { return Vec::new() };
    let mut left = settings_left(&mut client, settings.unwrap_or_default());
    let kept = |schema: &str| !restored.iter().any(|s| s == schema);
    // Where the restore made pg_cron's jobs as the backup holds them, a
    // job the release scheduled is gone (or named where it stayed).
    let decided = |client: &mut postgres::Client| {
        crate::backup::restore::decides_platform_rows(client, "cron", "job")
    };
    if kept("cron") && !decided(&mut client) {
        let sql = "select coalesce(jobname, jobid::text) from cron.job where active order by jobid";
        let names: Vec<String> = client
            .query(sql, &[])
            .map(|rows| rows.iter().map(|r| r.get(0)).collect())
            .unwrap_or_default();
        if !names.is_empty() {
            left.push(format!(
                "pg_cron still runs {} job(s) ({}): unschedule those the release added with \
                 cron.unschedule",
                names.len(),
                names.join(", ")
            ));
        }
    }
    // Vault's secrets likewise, where the restore made them.
    let vault_decided = |client: &mut postgres::Client| {
        crate::backup::restore::decides_platform_rows(client, "vault", "secrets")
    };
    if kept("vault") && !vault_decided(&mut client) {
        let count = client.query_one("select count(*) from vault.secrets", &[]);
        if let Some(n) = count.ok().map(|row| row.get::<_, i64>(0)).filter(|n| *n > 0) {
            left.push(format!("vault.secrets holds {n} secret(s)"));
        }
    }
    left
}

/// The database settings that differ from `before` (the backup's), each
/// with the statement that puts it back.
fn settings_left(client: &mut postgres::Client, before: &[String]) -> Vec<String> {
    let Ok(now) = crate::backup::create::database_settings(client) else { return Vec::new() };
    let name = |s: &str| s.split_once('=').map_or(s, |(n, _)| n).to_string();
    let mut left = Vec::new();
    for s in now.iter().filter(|s| !before.contains(s)) {
        let was = before.iter().find(|b| name(b) == name(s));
        left.push(match was {
            Some(b) => format!("the database's setting {s} (the backup's was {b})"),
            None => format!(
                "the database's setting {s}, set after the backup (ALTER DATABASE … RESET {})",
                name(s)
            ),
        });
    }
    for b in before.iter().filter(|b| !now.iter().any(|s| name(s) == name(b))) {
        left.push(format!("the database's setting {b} the backup had is gone"));
    }
    left
}

/// The rows a restore took back: rows the state before it held that the
/// restored database lacks (written after the backup), rows it brought
/// back (deleted after the backup), and rows it changed back.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct TakenBack {
    pub added: i64,
    pub deleted: i64,
    pub changed: i64,
    /// Tables the state before held that the restored one has not (made
    /// after the backup), counted in `added` with their rows.
    pub tables_added: usize,
}

impl TakenBack {
    fn said(&self, kept: &str) -> String {
        format!(
            "the restore took back {} row(s) written after the backup, brought back {} deleted \
             and changed back {} ({} table(s) made after it went); each is in {kept}",
            self.added, self.deleted, self.changed, self.tables_added
        )
    }
}

/// Compares the state a restore replaced (kept as database `kept`) with
/// the restored database, every table, row by row.
fn taken_back(url: &str, kept: &str) -> Result<TakenBack, String> {
    let mut before = crate::pg::conn::connect_db(url, Some(kept), "backstop rollback")
        .map_err(|e| crate::kit::error::chain(&e))?;
    let mut after =
        crate::pg::connect(url, "backstop rollback").map_err(|e| crate::kit::error::chain(&e))?;
    let c = crate::compare::compare(&mut before, &mut after, &[]).map_err(|e| e.to_string())?;
    let mut counted = TakenBack { added: 0, deleted: 0, changed: 0, tables_added: 0 };
    for t in &c.tables {
        match t.status {
            "only_in_source" => {
                counted.tables_added += 1;
                counted.added += t.source_rows.unwrap_or(0);
            }
            "only_in_target" => counted.deleted += t.target_rows.unwrap_or(0),
            "error" => return Err(format!("{}: {}", t.table, t.note.clone().unwrap_or_default())),
            _ => {
                counted.added += t.missing as i64;
                counted.deleted += t.extra as i64;
                counted.changed += t.different as i64;
            }
        }
    }
    Ok(counted)
}
