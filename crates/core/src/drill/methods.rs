//! The runbook on the copy: the release brought onto it (the copy's own
//! verified backup first, as `migrate` takes one; the release's
//! migrations applied again when the backup predates them; its flags on),
//! then methods A, C and B carried out by the [`Responder`] production
//! uses, with hooks only where `[drill] hooks` marks them safe and a
//! notifier that tells no one, each followed by the verify suite.

use std::collections::BTreeMap;
use std::path::Path;

use postgres::Client;

use super::copy::{self, Copy};
use super::Setup;
use crate::backup::{self, Store, Tools};
use crate::kit::error::chain;
use crate::migrate::{self, Entry, MigrateOptions, RollbackTarget};
use crate::pg::fingerprint::Schema;
use crate::respond::{
    self, FullSetup, HooksSection, Responder, RestoreRun, RestoreSetup, Step, Target,
};
use crate::verify::{AfterPlan, AfterRun, Phase};

/// What a step body hands back: what it did (or why it failed), the
/// method's own steps, and the fix when it failed.
pub(super) struct Done {
    pub ok: bool,
    pub detail: String,
    pub parts: Vec<Step>,
    pub fix: Option<String>,
}

impl Done {
    fn ok(detail: String, parts: Vec<Step>) -> Done {
        Done { ok: true, detail, parts, fix: None }
    }

    pub fn failed(detail: String, fix: &str) -> Done {
        Done { ok: false, detail, parts: Vec::new(), fix: Some(fix.to_string()) }
    }

    fn with_parts(mut self, parts: Vec<Step>) -> Done {
        self.parts = parts;
        self
    }
}

/// What the methods share.
pub(super) struct Stage<'a> {
    pub setup: &'a Setup,
    pub copy: &'a Copy,
    /// The drill's own backups (the copy's), in its workspace.
    pub store: &'a Store,
    pub forensics: &'a Path,
    pub release: Option<&'a str>,
    /// The suite after each method.
    pub plan: Option<&'a AfterPlan>,
}

/// The release as it stands on the copy after the `release` step.
pub(super) struct OnCopy {
    /// The copy's own backup, which method B restores.
    pub own_backup: String,
    /// The release's migrations, which method C reverts.
    pub versions: Vec<String>,
    pub reapplied: bool,
    pub revert: RollbackTarget,
    /// The schema the release started from, or why it is not known.
    pub before: Result<Schema, String>,
    /// The backup production's method B would restore for this release.
    pub production_backup: Option<String>,
}

/// Passes a method's steps on as they finish; keeps its warnings.
struct Parts<'o> {
    observer: &'o mut dyn super::Observer,
    warnings: Vec<String>,
}

impl respond::Observer for Parts<'_> {
    fn step(&mut self, _: crate::decide::Method, step: &Step) {
        self.observer.note(super::Note::Part(step));
    }

    fn warning(&mut self, text: &str) {
        self.warnings.push(text.to_string());
    }
}

const REASON: &str = "backstop drill: the runbook played on a throwaway copy";

impl Stage<'_> {
    /// The responder production uses, pointed at the copy: no hook that
    /// is not marked safe, no alert, its restores from the copy's own backups.
    fn responder(&self) -> Responder {
        let s = self.setup;
        let after_kill = s.hooks.after_kill.clone().filter(|_| s.section.runs_after_kill());
        Responder {
            url: self.copy.url.clone(),
            hooks: HooksSection {
                after_kill: after_kill
                    .map(|h| format!("BACKSTOP_DRILL=1; export BACKSTOP_DRILL; {h}")),
                stop_writes: None,
                resume_writes: None,
                timeout: s.hooks.timeout,
            },
            lock_wait: s.lock_wait,
            notifier: crate::incident::Notifier::silent(&self.copy.url),
            restore: RestoreSetup {
                store: self.store.clone(),
                jobs: s.jobs,
                freeze: s.freeze.clone(),
                server: Default::default(),
                mode: s.restore.0,
                schemas: s.restore.1.clone(),
            },
            full: Some(FullSetup {
                migrations: s.migrations.clone(),
                settings: s.settings.clone(),
                after: self.plan.cloned(),
                forensics_root: self.forensics.to_path_buf(),
                owner_columns: s.owner_columns.clone(),
                keep_dropped: s.keep_dropped,
            }),
        }
    }

    /// The verify suite on the copy, as after a rollback: a summary, or
    /// which checks failed.
    fn verify(&self, client: &mut Client, phase: Phase) -> Result<String, String> {
        let prepared = AfterRun::prepare(client, &self.copy.url, self.plan, phase, false)
            .map_err(|e| format!("preparing the verify suite: {}", chain(&e)))?;
        let Some(after) = prepared else {
            let when = if phase == Phase::Rollback { "a rollback" } else { "a migrate" };
            return Ok(format!("nothing verified: no [verify] check runs after {when}"));
        };
        let suite = after.run(client, Vec::new());
        if suite.ok() {
            let names: Vec<&str> = suite.checks.iter().map(|c| c.name.as_str()).collect();
            let warned = match suite.warned {
                0 => String::new(),
                n => format!(", {n} warned"),
            };
            return Ok(format!(
                "verify: {} check(s) passed{warned} ({})",
                suite.passed,
                names.join(", ")
            ));
        }
        let failing: Vec<String> = suite
            .checks
            .iter()
            .filter(|c| c.status == crate::verify::Status::Fail)
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect();
        Err(format!("verify: {} critical check(s) failed: {}", suite.failed, failing.join("; ")))
    }

    /// The release's flags on again, as they are while it is live.
    pub fn launch(&self) -> Result<usize, String> {
        let Some(release) = self.release else { return Ok(0) };
        let mut client = self.copy.connect()?;
        let actor = crate::schema::actor();
        crate::flags::sync(&mut client, &self.setup.flags, &actor, self.setup.lock_wait)
            .map_err(|e| chain(&e))?;
        match crate::flags::enable_release(
            &mut client,
            release,
            None,
            &actor,
            "backstop drill: the release is live on the copy",
            self.setup.lock_wait,
        ) {
            Ok(changes) => Ok(changes.len()),
            Err(crate::flags::FlagsError::UnknownRelease { .. }) => Ok(0),
            Err(e) => Err(chain(&e)),
        }
    }
}

/// The downs the target kept for the migrations applied again on the
/// copy (of the same file: the checksum the target recorded), kept with
/// them there as `migrate` kept them on the target: method C runs them.
struct KeptOnTarget<'a> {
    applied: &'a [&'a Entry],
    downs: &'a BTreeMap<String, String>,
}

impl migrate::Gate for KeptOnTarget<'_> {
    fn name(&self) -> &str {
        "kept downs"
    }

    fn check(
        &mut self,
        _: &mut Client,
        pending: &[&crate::source::Migration],
        _: bool,
    ) -> Result<migrate::GatePass, migrate::GateRefusal> {
        let same = |m: &crate::source::Migration| {
            self.applied.iter().any(|e| e.version == m.version && e.checksum == m.checksum)
        };
        let kept_downs = pending
            .iter()
            .filter(|m| same(m))
            .filter_map(|m| Some((m.version.clone(), self.downs.get(&m.version)?.clone())))
            .collect();
        Ok(migrate::GatePass { kept_downs, ..Default::default() })
    }
}

/// The `release` step: the copy's own backup, the release's migrations
/// applied again when the backup predates them, its flags on.
pub(super) fn release(
    stage: &Stage<'_>,
    tools: &Tools,
    (target_applied, target_downs): (&[Entry], &BTreeMap<String, String>),
) -> Result<(OnCopy, Done), Done> {
    let s = stage.setup;
    let fail = |what: &str, e: String, fix: &str| Done::failed(format!("{what}: {e}"), fix);
    let mut client = stage.copy.connect().map_err(|e| fail("connecting to the copy", e, ""))?;
    let on_copy = migrate::status(&mut client, &s.migrations)
        .map_err(|e| fail("reading the copy's history", chain(&e), ""))?;
    let order = |v: &str| s.migrations.iter().position(|m| m.version == v);
    let mut missing: Vec<&Entry> = target_applied
        .iter()
        .filter(|t| !on_copy.applied.iter().any(|c| c.version == t.version))
        .collect();
    missing.sort_by_key(|e| order(&e.version));
    let own = backup::create(
        &stage.copy.url,
        stage.store,
        tools,
        &backup::CreateOptions {
            label: Some("drill: the copy before the release".into()),
            jobs: s.jobs,
            lock_wait: s.settings.lock_wait,
        },
        &mut backup::Quiet,
    )
    .map_err(|e| fail("backing up the copy", chain(&e), "see why pg_dump failed on the copy"))?;
    let mut detail = format!(
        "the copy's own backup {} ({}, checksummed) taken for method B",
        own.id,
        crate::kit::size::human(own.size_bytes)
    );
    let on = if let Some(last) = missing.last() {
        let before = Schema::read(&mut client).map_err(|e| chain(&e));
        let options = MigrateOptions { to: Some(last.version.clone()), ..Default::default() };
        let mut kept = KeptOnTarget { applied: &missing, downs: target_downs };
        let report = migrate::migrate(
            &mut client,
            &s.migrations,
            &s.settings,
            &options,
            &mut [&mut kept],
            &mut migrate::Quiet,
        )
        .map_err(|e| {
            fail(
                "applying the release on the copy",
                chain(&e),
                "fix the migration, then rehearse it",
            )
        })?;
        if let Some(f) = &report.failure {
            return Err(fail(
                "applying the release on the copy",
                format!("{} failed: {}", f.version, f.message),
                "the migration applied on production fails on its backup: rehearse it (`backstop rehearse --from-backup latest`)",
            ));
        }
        let versions: Vec<String> = missing.iter().map(|e| e.version.clone()).collect();
        detail.push_str(&format!(
            "; {} applied again (the backup predates {})",
            versions.join(", "),
            if versions.len() == 1 { "it" } else { "them" }
        ));
        OnCopy {
            own_backup: own.id,
            revert: RollbackTarget::Steps(versions.len()),
            versions,
            reapplied: true,
            before,
            production_backup: missing.first().and_then(|e| e.backup_id.clone()),
        }
    } else {
        let latest = target_applied.iter().max_by_key(|e| order(&e.version));
        let production_backup = latest.and_then(|e| e.backup_id.clone());
        let before = match &production_backup {
            Some(id) => copy::schema_of_backup(stage.copy, &s.store, tools, id),
            None => Err("the release's migration recorded no backup".to_string()),
        };
        if let Some(l) = latest {
            detail.push_str(&format!("; the backup holds the release ({})", l.version));
        }
        OnCopy {
            own_backup: own.id,
            versions: latest.map(|e| vec![e.version.clone()]).unwrap_or_default(),
            reapplied: false,
            revert: RollbackTarget::Steps(1),
            before,
            production_backup,
        }
    };
    match stage.launch() {
        Ok(n) => detail.push_str(&format!(
            "; {n} flag(s) of release {} on",
            stage.release.unwrap_or("(none)")
        )),
        Err(e) => return Err(fail("turning the release's flags on", e, "")),
    }
    Ok((on, Done::ok(detail, Vec::new())))
}

/// Method A on the copy: the release's flags off, `after_kill` when it
/// is marked safe, then the verify suite.
pub(super) fn method_a(stage: &Stage<'_>, observer: &mut dyn super::Observer) -> Done {
    let Some(release) = stage.release else {
        return Done::failed(
            "no release has flags: method A has nothing to turn off".into(),
            "declare the release's flags under [[flags]] (release = \"...\") and guard its code with them",
        );
    };
    let mut client = match stage.copy.connect() {
        Ok(c) => c,
        Err(e) => return Done::failed(format!("connecting to the copy: {e}"), ""),
    };
    let has = crate::flags::list(&mut client).map(|f| f.iter().any(|f| f.release == release));
    if !matches!(has, Ok(true)) {
        return Done::failed(
            format!("release {release} has no flag: method A has nothing to turn off"),
            "declare the release's flags under [[flags]] and run `backstop flags sync`",
        );
    }
    let mut parts = Parts { observer, warnings: Vec::new() };
    let target = Target::Release(release.to_string());
    let steps = match stage.responder().method_a(&mut client, &target, REASON, &mut parts) {
        Ok(steps) => steps,
        Err(e) => return Done::failed(chain(&e), "see the failed part of method A"),
    };
    let hook = match (&stage.setup.hooks.after_kill, stage.setup.section.runs_after_kill()) {
        (Some(_), false) => "; [hooks] after_kill not run (not marked safe: [drill] hooks)",
        _ => "",
    };
    // The release is still there with its flags off: what holds after it.
    let what = format!("flags of release {release} off{hook}");
    verified(stage, &mut client, what, steps, Phase::Migrate)
}

fn verified(
    stage: &Stage<'_>,
    client: &mut Client,
    what: String,
    parts: Vec<Step>,
    phase: Phase,
) -> Done {
    match stage.verify(client, phase) {
        Ok(v) => Done::ok(format!("{what}; {v}"), parts),
        Err(v) => Done::failed(
            format!("{what}; {v}"),
            "the method leaves the database failing its checks: fix the method or the release",
        )
        .with_parts(parts),
    }
}

/// Method C on the copy: exports, flags off, the downs (computed ones
/// included), the protected tables and the verify suite; then the schema
/// must be the one the release started from.
pub(super) fn method_c(stage: &Stage<'_>, on: &OnCopy, observer: &mut dyn super::Observer) -> Done {
    if on.versions.is_empty() {
        return Done::failed(
            "no migration is applied: method C has nothing to revert".into(),
            "drill a database with a release applied",
        );
    }
    let mut client = match stage.copy.connect() {
        Ok(c) => c,
        Err(e) => return Done::failed(format!("connecting to the copy: {e}"), ""),
    };
    let target = stage.release.map(|r| Target::Release(r.to_string()));
    let mut parts = Parts { observer, warnings: Vec::new() };
    let outcome = match stage.responder().method_c(
        &mut client,
        target.as_ref(),
        &on.revert,
        REASON,
        &mut parts,
    ) {
        Ok(o) => o,
        Err(e) => return Done::failed(chain(&e), &c_fix(&e)),
    };
    let reverted = outcome.reverted.join(", ");
    let left = match (&on.before, Schema::read(&mut client)) {
        (Ok(before), Ok(after)) => before.differences(&after),
        (_, Err(e)) => {
            return Done::failed(format!("reading the schema after the downs: {}", chain(&e)), "")
                .with_parts(outcome.steps)
        }
        (Err(_), Ok(_)) => Vec::new(),
    };
    if !left.is_empty() {
        let named: Vec<String> = left.iter().map(|d| worded(d)).collect();
        return Done::failed(
            format!(
                "the downs of {reverted} ran, but the schema is not the one the release started from: {}",
                named.join("; ")
            ),
            &format!(
                "make the downs of {reverted} undo all their up does (or have Backstop compute them: \
                 `backstop downs`), then rehearse"
            ),
        )
        .with_parts(outcome.steps);
    }
    let proved = match &on.before {
        Ok(_) => "the schema is the one the release started from",
        Err(_) => "the schema before the release is not known, so not compared",
    };
    let verified = match &outcome.not_verified {
        Some(why) => format!("; not verified: {why}"),
        None => String::new(),
    };
    Done::ok(format!("{reverted} reverted; {proved}{verified}"), outcome.steps)
}

/// The fix for method C stopped by `e`, from what stopped it (the error's
/// kind, never its words).
fn c_fix(e: &respond::RespondError) -> String {
    use respond::RespondError;
    match e {
        RespondError::Rollback(migrate::ApplyError::MissingDown(labels)) => format!(
            "{} {} no down migration to run: have Backstop keep a proved one (`migrate` keeps \
             the one a rehearsal proved, with [migrations] keep_downs on, and on an up-only \
             layout proves it itself) or write one (`backstop downs --write`), then rehearse; \
             until then method B is the release's only undo",
            labels.join(", "),
            if labels.len() == 1 { "has" } else { "have" }
        ),
        RespondError::Rollback(migrate::ApplyError::RowsBlock(_)) => {
            "the downs of the release fail on its own data: fix them, then rehearse".into()
        }
        RespondError::Step { step, .. } if step == respond::full::DOWNS_CHECKED => {
            "the downs of the release leave the schema other than before it: make them undo all \
             their up does (`backstop downs` computes and proves them), then rehearse"
                .into()
        }
        RespondError::Step { step, .. } if step == "down migrations" => {
            "the downs of the release fail on its own data: fix them, then rehearse".into()
        }
        _ => "see why method C stopped: the error says what to do".into(),
    }
}

/// A schema difference said from the downs' side.
fn worded(difference: &str) -> String {
    if let Some(what) = difference.strip_suffix(" is new") {
        format!("{what} is still there (the downs leave it)")
    } else if let Some(what) = difference.strip_suffix(" is gone") {
        format!("{what} is missing (the downs remove what was there before)")
    } else {
        difference.to_string()
    }
}

/// Method B on the copy: flags off, the restore of the copy's own backup,
/// the verify suite.
pub(super) fn method_b(stage: &Stage<'_>, on: &OnCopy, observer: &mut dyn super::Observer) -> Done {
    let mut client = match stage.copy.connect() {
        Ok(c) => c,
        Err(e) => return Done::failed(format!("connecting to the copy: {e}"), ""),
    };
    let target = stage.release.map(|r| Target::Release(r.to_string()));
    let mut parts = Parts { observer, warnings: Vec::new() };
    let steps = match stage.responder().method_b(
        &mut client,
        target.as_ref(),
        Some(on.own_backup.clone()),
        RestoreRun::default(),
        REASON,
        &mut parts,
    ) {
        Ok(steps) => steps,
        Err(e) => return Done::failed(chain(&e), "see why the restore failed"),
    };
    drop(client);
    let mut client = match stage.copy.connect() {
        Ok(c) => c,
        Err(e) => return Done::failed(format!("connecting to the restored copy: {e}"), ""),
    };
    let what = format!("the copy's own backup {} restored", on.own_backup);
    verified(stage, &mut client, what, steps, Phase::Rollback)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate::ApplyError;
    use crate::respond::RespondError;

    #[test]
    fn a_migration_with_no_down_is_told_it_has_none_not_that_its_downs_fail_on_its_data() {
        // Regression: the fix was chosen by the words of the error, and
        // said "the downs of the release fail on its own data".
        let fix = c_fix(&RespondError::Rollback(ApplyError::MissingDown(vec![
            "20260103000000_v3".into(),
        ])));
        assert!(fix.starts_with("20260103000000_v3 has no down migration to run"), "{fix}");
        assert!(fix.contains("`backstop downs --write`"), "{fix}");
        assert!(!fix.contains("fail on its own data"), "{fix}");
        let two = c_fix(&RespondError::Rollback(ApplyError::MissingDown(vec![
            "2_a".into(),
            "3_b".into(),
        ])));
        assert!(two.starts_with("2_a, 3_b have no down migration to run"), "{two}");
        // A down that ran and failed is the downs' own fault.
        let failed = c_fix(&RespondError::Step {
            step: "down migrations".into(),
            detail: "the down of 3 failed and was rolled back: no down migration for x".into(),
        });
        assert!(failed.contains("fail on its own data"), "{failed}");
        // What stopped C before its downs is neither.
        let verify =
            c_fix(&RespondError::Step { step: "verify".into(), detail: "1 check failed".into() });
        assert!(!verify.contains("no down") && !verify.contains("own data"), "{verify}");
    }
}
