//! The suite that `migrate` and `rollback` (and method C) run afterwards
//! when `after_migrate = true`. It is prepared before the run, so what
//! would stop it stops the run before anything changes: a header variable
//! that is not set, a snapshot that does not exist. When a check compares
//! with a snapshot it does not name, the state right before the run is
//! taken as its baseline.

use std::path::PathBuf;

use postgres::Client;
use serde_json::json;

use super::{ChecksumScope, Phase, ResolvedHeaders, Selection, Snapshot, Suite, SuiteReport};
use super::{VerifyError, VerifySection};
use crate::migrate::Report;
use crate::schema::events;

/// What the suite after a run is built from: the `[verify]` section, the
/// resolved header values of its http checks, and the backups folder its
/// checks may compare with.
#[derive(Debug, Clone)]
pub struct AfterPlan {
    pub section: VerifySection,
    pub headers: ResolvedHeaders,
    pub backups: PathBuf,
}

/// A suite prepared to run after a migrate or rollback.
pub struct AfterRun {
    phase: Phase,
    suite: Suite,
}

impl AfterRun {
    /// `None` without a plan (`after_migrate` is off), when nothing will
    /// change (`dry_run`), or when no check belongs after this kind of run.
    pub fn prepare(
        client: &mut Client,
        url: &str,
        plan: Option<&AfterPlan>,
        phase: Phase,
        dry_run: bool,
    ) -> Result<Option<AfterRun>, VerifyError> {
        let Some(plan) = plan.filter(|p| p.section.after_migrate && !dry_run) else {
            return Ok(None);
        };
        let selection = Selection {
            phase: Some(phase),
            backups: Some(plan.backups.clone()),
            ..Default::default()
        };
        let baseline = if selection.needs_baseline(&plan.section)? {
            let name = match phase {
                Phase::Migrate => "before this migrate",
                Phase::Rollback => "before this rollback",
            };
            let scope = ChecksumScope::for_suite(&plan.section);
            Some(Snapshot::take(client, name, &scope)?)
        } else {
            None
        };
        let suite =
            Suite::prepare(client, url, &plan.section, &selection, baseline, &plan.headers)?;
        Ok((!suite.is_empty()).then_some(AfterRun { phase, suite }))
    }

    /// Runs the suite when the run changed something, and records the
    /// outcome in the audit log.
    pub fn finish(self, client: &mut Client, report: &Report) -> Option<SuiteReport> {
        if report.done.is_empty() {
            return None;
        }
        let versions = report.done.iter().map(|d| d.version.clone()).collect();
        Some(self.run(client, versions))
    }

    /// Runs the suite whatever ran before it (a rollback method that
    /// reverts no migration: the flags off, a restore), and records the
    /// outcome in the audit log with `versions`.
    pub fn run(self, client: &mut Client, versions: Vec<String>) -> SuiteReport {
        let result = self.suite.run();
        let event = events::Event {
            kind: "verify",
            outcome: if result.ok() { "ok" } else { "failed" },
            versions,
            details: json!({
                "after": self.phase,
                "passed": result.passed,
                "failed": result.failed,
                "warned": result.warned,
                "checks": result.checks.iter().map(|c| json!({"name": c.name, "status": c.status})).collect::<Vec<_>>(),
            }),
        };
        // The outcome is what matters; the log is best effort.
        let _ = events::record(client, &event);
        result
    }
}
