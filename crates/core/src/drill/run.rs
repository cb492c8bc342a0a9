//! One drill from the first read of the target to its record: what is
//! checked before anything starts (the backup, the server binaries of the
//! target's major), the lock and the record, the steps in turn, the rows
//! the target wrote since the backup, the issues, and the report to the
//! team.

use std::time::{Duration, Instant};

use chrono::Utc;
use postgres::Client;

use super::copy::{self, Copy};
use super::methods::{self, Done, OnCopy, Stage};
use super::record::{clean_interrupted, Lock};
use super::workspace::Workspace;
use super::{
    judged, BackupUsed, Drill, DrillError, Issue, Note, Observer, Options, RowsSince, Setup,
    StepOutcome, StepResult, TableRows,
};
use crate::backup::{Kind, Manifest, Store, Tools};
use crate::pg::bins::Match;
use crate::pg::cluster::PgBin;
use crate::pg::db;
use crate::schema::drills;
use crate::verify::{AfterPlan, Phase};

/// For the tests of a drill killed at each step: `BACKSTOP_TEST_DRILL_KILL=<step>`
/// kills this process (SIGKILL) once the step is on record (the restore's
/// once its cluster runs; `record` just before the outcome is written).
fn kill_point(step: &str) {
    if std::env::var("BACKSTOP_TEST_DRILL_KILL").is_ok_and(|p| p == step) {
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
}

/// The steps as they are played, and the record they are kept in.
struct Play<'a, 'c> {
    setup: &'a Setup,
    observer: &'a mut dyn Observer,
    lock: Lock<'c>,
    id: i64,
    backup_id: String,
    release: Option<String>,
    work_dirs: Vec<String>,
    steps: Vec<StepResult>,
    issues: Vec<Issue>,
}

impl Play<'_, '_> {
    /// Records that `name` is under way.
    fn begin(&mut self, name: &str) -> Result<Instant, DrillError> {
        self.observer.note(Note::Starting(name));
        self.mark(name)?;
        kill_point(name);
        Ok(Instant::now())
    }

    fn mark(&mut self, name: &str) -> Result<(), DrillError> {
        drills::at_step(
            &mut *self.lock,
            self.id,
            name,
            Some(&self.backup_id),
            self.release.as_deref(),
            &self.work_dirs,
        )
        .map_err(db("recording the drill's step"))?;
        Ok(())
    }

    /// Judges a finished step against its target and keeps it; whether it
    /// did not fail.
    fn end(&mut self, name: &str, target: Option<Duration>, started: Instant, done: Done) -> bool {
        let took_ms = started.elapsed().as_millis() as u64;
        let target_ms = target.map(|d| d.as_millis() as u64);
        let outcome = judged(done.ok, took_ms, target_ms);
        let human = |ms: u64| crate::kit::duration::human(Duration::from_millis(ms));
        match outcome {
            StepOutcome::Failed => self.issues.push(Issue {
                step: name.into(),
                problem: done.detail.clone(),
                fix: done.fix.clone().unwrap_or_default(),
                fails: true,
            }),
            StepOutcome::Slow => self.issues.push(Issue {
                step: name.into(),
                problem: format!(
                    "{name} took {}, over its target of {}",
                    human(took_ms),
                    human(target_ms.unwrap_or_default())
                ),
                fix: slow_fix(name),
                fails: true,
            }),
            _ => {}
        }
        let result = StepResult {
            name: name.into(),
            outcome,
            took_ms,
            target_ms,
            detail: done.detail,
            parts: done.parts,
        };
        self.observer.note(Note::Finished(&result));
        self.steps.push(result);
        outcome != StepOutcome::Failed
    }

    fn step(
        &mut self,
        name: &str,
        target: Option<Duration>,
        body: impl FnOnce(&mut dyn Observer) -> Done,
    ) -> Result<bool, DrillError> {
        let started = self.begin(name)?;
        let done = body(&mut *self.observer);
        Ok(self.end(name, target, started, done))
    }

    /// A method the project does not use: said, with why, not held
    /// against the drill.
    fn not_used(&mut self, name: &str, target: Option<Duration>, why: &str) {
        let result = StepResult {
            name: name.to_string(),
            outcome: StepOutcome::NotUsed,
            took_ms: 0,
            target_ms: target.map(|d| d.as_millis() as u64),
            detail: format!("not used: {why}"),
            parts: Vec::new(),
        };
        self.observer.note(Note::Finished(&result));
        self.steps.push(result);
    }

    fn not_run(&mut self, names: &[(&str, Option<Duration>)], why: &str) {
        for (name, target) in names {
            let result = StepResult {
                name: name.to_string(),
                outcome: StepOutcome::NotRun,
                took_ms: 0,
                target_ms: target.map(|d| d.as_millis() as u64),
                detail: format!("not run: {why}"),
                parts: Vec::new(),
            };
            self.observer.note(Note::Finished(&result));
            self.steps.push(result);
        }
    }

    fn warn(&mut self, step: &str, problem: String, fix: &str) {
        self.observer.note(Note::Warning(&problem));
        self.issues.push(Issue { step: step.into(), problem, fix: fix.into(), fails: false });
    }
}

/// What to do about a step over its target.
fn slow_fix(step: &str) -> String {
    match step {
        "method A" => "a kill switch must be fast: look at what the flags' change waits for, and at the after_kill hook; or set a target the team can keep ([drill] method_a)".into(),
        "method B" | "restore" => "a restore takes as long as the data: more [backup] jobs, a faster disk, pgBackRest for a large database; or set a target the team can keep ([drill] method_b)".into(),
        "method C" => "the downs or the exports take long: look at which part (the steps above), or set a target the team can keep ([drill] method_c)".into(),
        _ => String::new(),
    }
}

/// Refuses before anything starts what a drill cannot restore.
fn restorable(m: &Manifest) -> Result<(), DrillError> {
    let what = match m.kind {
        Kind::Database => format!(
            "a database snapshot ({}) on the production server",
            m.snapshot_database.as_deref().unwrap_or("?")
        ),
        Kind::DataDirectory => {
            "a data directory a restore replaced, on the production server".into()
        }
        Kind::Dump | Kind::RestorePoint => return Ok(()),
    };
    Err(DrillError::NotRestorable { id: m.id.clone(), what })
}

/// The release whose flags go off: the one given, else the one release
/// with flags on (on the target), else the one declared last.
fn release_of(
    given: Option<&str>,
    on_target: &[crate::flags::Flag],
    declared: &[crate::flags::FlagDecl],
) -> Option<String> {
    if let Some(r) = given {
        return Some(r.to_string());
    }
    let mut on: Vec<&str> =
        on_target.iter().filter(|f| f.enabled()).map(|f| f.release.as_str()).collect();
    on.sort();
    on.dedup();
    if let [one] = on.as_slice() {
        return Some(one.to_string());
    }
    declared
        .iter()
        .rev()
        .map(|d| d.release.clone())
        .find(|r| on.is_empty() || on.contains(&r.as_str()))
        .or_else(|| on_target.last().map(|f| f.release.clone()))
}

/// The `[verify]` suite as a drill runs it after each method, without
/// the HTTP checks (they test the live application, not the copy): after
/// method A, whose release is still there, the checks that hold after a
/// migrate; after C and B the ones that hold after a rollback (a check
/// about the release's own tables, `after = ["migrate"]`, cannot).
fn drill_plan(plan: Option<&AfterPlan>) -> (Option<AfterPlan>, Vec<String>) {
    let Some(plan) = plan else {
        return (None, vec!["no [verify] check: nothing is verified after the methods".into()]);
    };
    let mut notes = Vec::new();
    let mut section = plan.section.clone();
    let http = section.checks.iter().filter(|c| c.kind.name() == "http").count();
    if http > 0 {
        notes.push(format!(
            "{http} http check(s) of [verify] left out: they test the live application, not the copy"
        ));
    }
    section.checks.retain(|c| c.kind.name() != "http");
    let after_rollback = |c: &&crate::verify::CheckSpec| c.after.contains(&Phase::Rollback);
    if !section.checks.iter().filter(after_rollback).any(|c| c.kind.name() == "rls_isolation") {
        notes.push("no rls_isolation check of [verify] runs after a rollback: the drill cannot prove that users still see only their own rows".into());
    }
    if !section.checks.iter().any(|c| after_rollback(&c)) {
        return (None, notes);
    }
    section.after_migrate = true;
    (
        Some(AfterPlan { section, headers: plan.headers.clone(), backups: plan.backups.clone() }),
        notes,
    )
}

/// The rows the target gained or lost since backup `m`; `None` when the
/// backup records no counts.
fn rows_since(client: &mut Client, m: &Manifest) -> Result<Option<RowsSince>, DrillError> {
    if m.row_counts.is_empty() {
        return Ok(None);
    }
    let now =
        crate::pg::fingerprint::row_counts(client).map_err(db("counting the target's rows"))?;
    let mut tables: Vec<TableRows> = now
        .iter()
        .filter(|(t, n)| m.row_counts.get(t) != Some(n))
        .map(|(t, n)| TableRows {
            table: t.clone(),
            in_backup: m.row_counts.get(t).copied().unwrap_or(0),
            now: *n,
            dropped_by_c: false,
        })
        .collect();
    for (t, n) in &m.row_counts {
        if !now.iter().any(|(x, _)| x == t) {
            tables.push(TableRows { table: t.clone(), in_backup: *n, now: 0, dropped_by_c: false });
        }
    }
    Ok(Some(RowsSince { backup_id: m.id.clone(), backup_at: m.created_at, tables }))
}

/// The tables the migrations `versions` create (`schema.name`).
fn created_by(setup: &Setup, versions: &[String]) -> Vec<String> {
    setup
        .migrations
        .iter()
        .filter(|m| versions.contains(&m.version))
        .flat_map(|m| m.up.statements.iter().filter_map(|s| s.facts.creates_table.as_ref()))
        .map(|r| format!("{}.{}", r.schema.as_deref().unwrap_or("public"), r.name))
        .collect()
}

/// Plays a drill of the database `setup.url` and records it there.
pub fn run(
    setup: &Setup,
    options: &Options,
    observer: &mut dyn Observer,
) -> Result<Drill, DrillError> {
    let started_at = Utc::now();
    let clock = Instant::now();
    let mut client = crate::pg::connect(&setup.url, "backstop drill")?;
    // What would stop the drill is found before anything is recorded.
    let num =
        crate::pg::server_version_num(&mut client).map_err(db("reading the server's version"))?;
    let major = crate::pg::bins::major_of_num(num);
    let m = setup.store.pick(&mut client, &options.from_backup)?;
    restorable(&m)?;
    let bin = PgBin::for_major(major, Match::Exact)?;
    let tools = Tools::find()?;
    let database: String = client
        .query_one("select current_database()::text", &[])
        .map_err(db("reading the database's name"))?
        .get(0);
    let target_status = crate::migrate::status(&mut client, &setup.migrations)?;
    let release =
        release_of(options.release.as_deref(), &crate::flags::list(&mut client)?, &setup.flags);
    let mut rows = rows_since(&mut client, &m)?;
    let workspace = Workspace::new().map_err(DrillError::Workspace)?;
    let mut lock = Lock::take(&mut client, setup.section.lock_wait, observer)?;
    crate::schema::ensure(&mut lock).map_err(db("creating the backstop schema"))?;
    let by = crate::schema::actor();
    let id = drills::begin(&mut *lock, &by).map_err(db("recording the drill"))?;
    let cleaned = clean_interrupted(&mut lock, id)?;
    for c in &cleaned {
        observer.note(Note::Cleaned(c));
    }
    let mut play = Play {
        setup,
        observer,
        lock,
        id,
        backup_id: m.id.clone(),
        release: release.clone(),
        work_dirs: vec![workspace.path().display().to_string()],
        steps: Vec::new(),
        issues: Vec::new(),
    };
    let (plan, notes) = drill_plan(setup.verify.as_ref());
    for n in notes {
        play.warn("verify", n, "add [[verify.checks]] that hold after a rollback (kind = \"rls_isolation\" among them)");
    }
    let on =
        play_steps(&mut play, &bin, &tools, &m, &target_status.applied, &workspace, plan.as_ref())?;
    if let (Some(r), Some(on)) = (rows.as_mut(), on.as_ref()) {
        let created = created_by(setup, &on.versions);
        for t in &mut r.tables {
            t.dropped_by_c = created.contains(&t.table);
        }
    }
    let passed =
        play.steps.iter().all(|s| matches!(s.outcome, StepOutcome::Passed | StepOutcome::NotUsed));
    let mut drill = Drill {
        id,
        database,
        server_major: major,
        started_at,
        finished_at: Utc::now(),
        by,
        backup: BackupUsed {
            id: m.id.clone(),
            kind: match m.kind {
                Kind::RestorePoint => "pgBackRest restore point",
                _ => "dump",
            }
            .to_string(),
            created_at: m.created_at,
            size_bytes: m.size_bytes,
        },
        release,
        migrations: on.as_ref().map(|o| o.versions.clone()).unwrap_or_default(),
        reapplied: on.as_ref().is_some_and(|o| o.reapplied),
        steps: std::mem::take(&mut play.steps),
        rows_since: rows,
        issues: std::mem::take(&mut play.issues),
        cleaned,
        notified: Vec::new(),
        duration_ms: clock.elapsed().as_millis() as u64,
        passed,
    };
    play.mark("record")?;
    kill_point("record");
    let finished = drills::Finished {
        outcome: if passed { "passed" } else { "failed" },
        backup_id: Some(&drill.backup.id),
        release: drill.release.as_deref(),
        steps: serde_json::to_value(&drill.steps).unwrap_or_default(),
        duration_ms: drill.duration_ms as i64,
        report: &super::report::markdown(&drill),
    };
    drills::finish(&mut *play.lock, id, &finished).map_err(db("recording the drill's outcome"))?;
    drop(play.lock);
    if setup.section.notify {
        drill.notified = super::report::send(setup, &drill, play.observer);
    }
    Ok(drill)
}

/// The steps in turn; the release as it stands on the copy when the
/// steps got that far.
fn play_steps(
    play: &mut Play<'_, '_>,
    bin: &PgBin,
    tools: &Tools,
    m: &Manifest,
    target_applied: &[crate::migrate::Entry],
    workspace: &Workspace,
    plan: Option<&AfterPlan>,
) -> Result<Option<OnCopy>, DrillError> {
    let section = &play.setup.section;
    let (a, b, c) = (Some(section.method_a), Some(section.method_b), Some(section.method_c));
    let later = [("release", None), ("method A", a), ("method C", c), ("method B", b)];
    play.observer.note(Note::Starting("restore"));
    play.mark("restore")?;
    let started = Instant::now();
    let copy: Result<Copy, String> = copy::start(bin, m);
    if let Ok(copy) = &copy {
        play.work_dirs.push(copy.cluster.dir().display().to_string());
        play.mark("restore")?;
        kill_point("restore");
    }
    let filled = match copy {
        Ok(copy) => {
            let target: &mut Client = &mut play.lock;
            copy::fill(&copy, target, &play.setup.store, tools, m, play.setup.jobs)
                .map(|d| (copy, d))
        }
        Err(e) => Err(e),
    };
    let copy = match filled {
        Ok((copy, detail)) => {
            play.end(
                "restore",
                section.restore,
                started,
                Done { ok: true, detail, parts: Vec::new(), fix: None },
            );
            copy
        }
        Err(detail) => {
            let fix = "a backup that does not restore is no backup: see why, take a new one (`backstop backup create`) and verify it with --restore";
            play.end("restore", section.restore, started, Done::failed(detail, fix));
            play.not_run(&later, "the backup could not be restored");
            return Ok(None);
        }
    };
    let store = Store::new(workspace.path().join("backups"));
    let forensics = workspace.path().join("forensics");
    let release = play.release.clone();
    let stage = Stage {
        setup: play.setup,
        copy: &copy,
        store: &store,
        forensics: &forensics,
        release: release.as_deref(),
        plan,
    };
    let started = play.begin("release")?;
    // The downs migrate kept on the target: method C on the copy runs them.
    let target_downs = crate::schema::applied::kept_downs(&mut *play.lock)
        .map_err(|e| crate::pg::DbError::new("reading the downs the target kept", e))?;
    let on = match methods::release(&stage, tools, (target_applied, &target_downs)) {
        Ok((on, done)) => {
            play.end("release", None, started, done);
            on
        }
        Err(done) => {
            play.end("release", None, started, done);
            play.not_run(&later[1..], "the release could not be brought onto the copy");
            return Ok(None);
        }
    };
    if let Err(why) = &on.before {
        play.warn(
            "method C",
            format!("the schema before the release is not known ({why}): the drill cannot prove that C's downs undo all of it"),
            "keep the release's backup (its migration records which) at least as long as [drill] every",
        );
    }
    let uses = |m: char| play.setup.section.uses(m, !play.setup.flags.is_empty());
    match uses('A') {
        Ok(()) => {
            play.step("method A", a, |o| methods::method_a(&stage, o))?;
        }
        Err(why) => play.not_used("method A", a, &why),
    }
    match uses('C') {
        Ok(()) => {
            let relaunched = stage.launch();
            play.step("method C", c, |o| match relaunched {
                Ok(_) => methods::method_c(&stage, &on, o),
                Err(e) => Done::failed(format!("turning the release's flags on again: {e}"), ""),
            })?;
        }
        Err(why) => play.not_used("method C", c, &why),
    }
    match uses('B') {
        Ok(()) => {
            let relaunched = stage.launch();
            play.step("method B", b, |o| match relaunched {
                Ok(_) => methods::method_b(&stage, &on, o),
                Err(e) => Done::failed(format!("turning the release's flags on again: {e}"), ""),
            })?;
        }
        Err(why) => play.not_used("method B", b, &why),
    }
    production_backup(play, &on, m);
    Ok(Some(on))
}

/// Production's method B restores the backup the release's migration
/// recorded: it must still be there.
fn production_backup(play: &mut Play<'_, '_>, on: &OnCopy, drilled: &Manifest) {
    let Some(id) = on.production_backup.as_deref() else {
        if !on.versions.is_empty() {
            play.warn(
                "method B",
                format!("the release ({}) recorded no backup: production's method B would have to be told which to restore", on.versions.join(", ")),
                "keep [backup] required = true, so migrate takes one before each release",
            );
        }
        return;
    };
    if id == drilled.id {
        return;
    }
    match play.setup.store.load(id) {
        Ok(m) if m.verified().is_some() => {}
        Ok(_) => play.warn(
            "method B",
            format!("the release's backup {id}, which production's method B restores, failed or never had a verification"),
            "verify it: `backstop backup verify --restore`",
        ),
        Err(_) => {
            let problem = format!(
                "the release's backup {id}, which production's method B restores, is not in {}",
                play.setup.store.dir().display()
            );
            play.observer.note(Note::Warning(&problem));
            play.issues.push(Issue {
                step: "method B".into(),
                problem,
                fix: "keep backups at least as long as [drill] every ([backup] retention), or production has no method B for this release".into(),
                fails: true,
            });
            if let Some(b) = play.steps.iter_mut().find(|s| s.name == "method B") {
                b.outcome = StepOutcome::Failed;
            }
        }
    }
}
