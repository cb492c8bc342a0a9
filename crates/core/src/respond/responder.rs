//! The one responder that carries out methods A, B and C for `rollback
//! --method`, `watch --auto` and the demo alike: which flags go off, the
//! Slack alert when a method starts and ends, the restore of method B, and
//! for method C the verify suite after the downs and the incident texts
//! written beside its exports.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{FullOutcome, HooksSection, RespondError, Restore, Step, Target, Verified};
use crate::backup::restore::RestoreOptions;
use crate::backup::store::Store;
use crate::decide::Method;
use crate::flags::Flag;
use crate::freeze::FreezeSection;
use crate::incident::{Notifier, Stage};
use crate::migrate::{RollbackTarget, Settings};
use crate::source::Migration;
use crate::verify::AfterPlan;

/// What a responder tells its caller while it works.
pub trait Observer {
    /// A step of `method` finished.
    fn step(&mut self, method: Method, step: &Step);
    /// Something went wrong that does not stop the method (a Slack post).
    fn warning(&mut self, text: &str);
}

/// How method B restores: where the backups are, with how many jobs, and
/// how writes are frozen meanwhile.
#[derive(Debug, Clone)]
pub struct RestoreSetup {
    pub store: Store,
    pub jobs: usize,
    pub freeze: FreezeSection,
    /// How a physical restore stops and starts the server.
    pub server: crate::backup::restore::ServerControl,
    /// How a dump is put back, and which schemas in place (`[backup]
    /// restore`, `restore_schemas`).
    pub mode: crate::backup::config::RestoreMode,
    pub schemas: Vec<String>,
}

/// How method B's restore runs this time.
#[derive(Debug, Clone, Copy, Default)]
pub struct RestoreRun {
    /// Finish an interrupted restore instead of starting one.
    pub resume: bool,
    /// A physical restore goes on when other databases changed since
    /// the point.
    pub whole_cluster: bool,
}

/// What method C works on: the folder's migrations (their downs run), the
/// suite to verify with afterwards and where the forensics go.
#[derive(Debug, Clone)]
pub struct FullSetup {
    pub migrations: Vec<Migration>,
    pub settings: Settings,
    /// The suite after the downs, when `[verify] after_migrate` is on.
    pub after: Option<AfterPlan>,
    /// Where the forensics folder `<UTC time>/` is made.
    pub forensics_root: PathBuf,
    /// `[check] owner_columns`.
    pub owner_columns: Vec<String>,
    /// `[rollback] export_dropped`: what the downs remove is exported first.
    pub keep_dropped: bool,
}

/// Everything the methods need, taken from the configuration once.
#[derive(Debug, Clone)]
pub struct Responder {
    pub url: String,
    pub hooks: HooksSection,
    /// How long a flag change waits for a lock.
    pub lock_wait: Duration,
    pub notifier: Notifier,
    pub restore: RestoreSetup,
    /// `None` where the command has no migrations folder: method C refuses.
    pub full: Option<FullSetup>,
}

/// Where method C writes its forensics: `.backstop/forensics/` beside the
/// config file, with the rest of what Backstop writes (out of git: they
/// hold users' rows).
pub fn forensics_root(config_file: Option<&Path>) -> PathBuf {
    config_file
        .and_then(Path::parent)
        .map_or_else(|| Path::new(".").to_path_buf(), Path::to_path_buf)
        .join(crate::pg::export::LOCAL_DIR)
        .join("forensics")
}

/// The flags a method turns off: `flag`, or `release`, or the one release
/// with flags on. When `none_if_all_off` (B and C, which go on to restore
/// or revert after a kill already done) and nothing is on: none.
pub fn target(
    flags: &[Flag],
    flag: Option<String>,
    release: Option<&str>,
    none_if_all_off: bool,
) -> Result<Option<Target>, RespondError> {
    Ok(match (flag, release) {
        (Some(f), _) => Some(Target::Flag(f)),
        (None, None) if none_if_all_off && !flags.iter().any(Flag::enabled) => None,
        (None, release) => Some(Target::Release(release_to_kill(flags, release)?)),
    })
}

/// The release whose flags method A turns off: the one given, or the one
/// release with a flag on.
pub fn release_to_kill(flags: &[Flag], given: Option<&str>) -> Result<String, RespondError> {
    if let Some(r) = given {
        return Ok(r.to_string());
    }
    let mut on: Vec<String> =
        flags.iter().filter(|f| f.enabled()).map(|f| f.release.clone()).collect();
    on.sort();
    on.dedup();
    match on.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(RespondError::NoFlagOn),
        many => Err(RespondError::SeveralReleases(many.to_vec())),
    }
}

impl Responder {
    /// Posts the alert or the resolution; a failure is a warning.
    fn announce(&self, stage: Stage, observer: &mut dyn Observer) {
        if let Err(e) = self.notifier.announce(stage) {
            observer.warning(&e);
        }
    }

    /// Method A: `target`'s flags off, then `[hooks] after_kill`. The alert
    /// (or the escalation) goes out once its first step is done; what it did
    /// (or where it stopped) at the end. The incident is resolved only when
    /// it is closed.
    pub fn method_a(
        &self,
        client: &mut postgres::Client,
        target: &Target,
        reason: &str,
        observer: &mut dyn Observer,
    ) -> Result<Vec<Step>, RespondError> {
        let mut alerted = false;
        let carried = super::method_a(
            client,
            &self.url,
            target,
            &self.hooks,
            reason,
            self.lock_wait,
            |s: &Step| {
                observer.step(Method::A, s);
                if !alerted {
                    alerted = true;
                    self.announce(Stage::Begun, observer);
                }
            },
        );
        self.announce(Stage::Ended, observer);
        carried
    }

    /// Method B: A (when a flag is on), then the restore of `backup`
    /// (default: the one the latest applied migration recorded), resumed
    /// when `resume`.
    pub fn method_b(
        &self,
        client: &mut postgres::Client,
        target: Option<&Target>,
        backup: Option<String>,
        how: RestoreRun,
        reason: &str,
        observer: &mut dyn Observer,
    ) -> Result<Vec<Step>, RespondError> {
        let tools = crate::backup::tools::Tools::find().map_err(|e| RespondError::Step {
            step: "finding pg_restore".into(),
            detail: crate::kit::error::chain(&e),
        })?;
        let restore = Restore {
            store: &self.restore.store,
            tools: &tools,
            backup,
            options: RestoreOptions {
                jobs: self.restore.jobs,
                resume: how.resume,
                lock_wait: self.lock_wait,
                whole_cluster: how.whole_cluster,
                server: self.restore.server.clone(),
                mode: self.restore.mode,
                schemas: self.restore.schemas.clone(),
            },
            freeze: &self.restore.freeze,
        };
        let mut alerted = false;
        let carried = super::method_b(
            client,
            &self.url,
            target,
            &self.hooks,
            &restore,
            reason,
            |s: &Step| {
                observer.step(Method::B, s);
                if !alerted {
                    alerted = true;
                    self.announce(Stage::Begun, observer);
                }
            },
        );
        self.announce(Stage::Ended, observer);
        carried
    }

    /// Method C: the full rollback of the migrations `revert` chooses,
    /// with the verify suite after the downs, the alerts at its start and
    /// end, and the incident report and users' e-mail written beside the
    /// exports.
    pub fn method_c(
        &self,
        client: &mut postgres::Client,
        target: Option<&Target>,
        revert: &RollbackTarget,
        reason: &str,
        observer: &mut dyn Observer,
    ) -> Result<FullOutcome, RespondError> {
        let full = self.full.as_ref().ok_or(RespondError::NoFolder)?;
        let downs = crate::undo::Downs::prepare(client, &self.url, full.after.as_ref(), false)
            .map_err(|e| RespondError::Step {
                step: "preparing the verify suite".into(),
                detail: crate::kit::error::chain(&e),
            })?;
        let verify = |verifies: bool, suite: Option<crate::verify::SuiteReport>| match suite {
            _ if !verifies => Ok(Verified::NotRun(
                "no verify check runs after a rollback (see [verify])".to_string(),
            )),
            Some(suite) if suite.ok() => Ok(Verified::Passed(format!(
                "{} check(s) passed, {} warned",
                suite.passed, suite.warned
            ))),
            Some(suite) => Err(format!(
                "{} critical check(s) failed: {}",
                suite.failed,
                suite
                    .checks
                    .iter()
                    .filter(|c| c.status == crate::verify::Status::Fail)
                    .map(|c| format!("{}: {}", c.name, c.detail))
                    .collect::<Vec<_>>()
                    .join("; ")
            )),
            None => Ok(Verified::NotRun("nothing was reverted, nothing to verify".to_string())),
        };
        let on = super::Full {
            migrations: &full.migrations,
            settings: &full.settings,
            revert,
            forensics_root: &full.forensics_root,
            owner_columns: &full.owner_columns,
            protected_tables: &full.settings.protected_tables,
            keep_dropped: full.keep_dropped,
        };
        let mut alerted = false;
        let carried = super::method_c(
            client,
            &self.url,
            target,
            &self.hooks,
            &on,
            reason,
            self.lock_wait,
            (downs, &verify),
            |s: &Step| {
                observer.step(Method::C, s);
                if !alerted {
                    alerted = true;
                    self.announce(Stage::Begun, observer);
                }
            },
        );
        self.announce(Stage::Ended, observer);
        let outcome = carried?;
        // The incident texts go beside the exports, from the timeline just written.
        let texts = self.notifier.gather(None).map_err(|e| RespondError::Step {
            step: "writing the incident texts".into(),
            detail: crate::kit::error::chain(&e),
        })?;
        for name in ["report.md", "user_email.txt"] {
            let written = self
                .notifier
                .render(name, &texts)
                .map_err(|e| crate::kit::error::chain(&e))
                .and_then(|body| {
                    crate::pg::export::text(&outcome.forensics, name, &body)
                        .map_err(|e| crate::kit::error::chain(&e))
                });
            if let Err(detail) = written {
                return Err(RespondError::Step { step: format!("writing {name}"), detail });
            }
        }
        Ok(outcome)
    }
}
