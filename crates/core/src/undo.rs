//! The rollback as one policy, in the order every rollback takes it: an
//! expand still open is dropped first (nothing of it was applied, so no
//! down runs after it); otherwise the suite after a rollback is made ready
//! on the state before, the downs run under the guards of
//! [`migrate::rollback`] (with its check before COMMIT), and the suite
//! runs on what they left. `backstop rollback` and a rollout's undo take
//! it whole (`migrator::rollback`); method C puts its own steps between
//! the phases (forensics and flags off before the downs, the protected
//! tables' rows after them).

use postgres::Client;

use crate::expand::{ExpandError, Expanded};
use crate::migrate::{self, ApplyError, Progress, Report, RollbackTarget, Settings};
use crate::source::Migration;
use crate::verify::{AfterPlan, AfterRun, Phase, SuiteReport, VerifyError};

/// The first phase: an expand still open dropped (its new shape gone, the
/// values of the columns it added kept first where `settings.keep` names a
/// folder, every row of the tables kept); `None` where none is open. A
/// dry run drops nothing.
pub fn open_expand_dropped(
    client: &mut Client,
    settings: &Settings,
    dry_run: bool,
) -> Result<Option<Expanded>, ExpandError> {
    if dry_run {
        return Ok(None);
    }
    crate::expand::rollback_if_open(client, settings)
}

/// The downs of a rollback with the suite around them: made ready on the
/// state before ([`Downs::prepare`]), the downs ([`Downs::run`]), the suite
/// on what they left ([`Downs::finish`]).
pub struct Downs {
    after: Option<AfterRun>,
}

impl Downs {
    /// The suite after a rollback (`[verify] after_migrate`, as `plan`
    /// says) made ready on the database at `url` before anything runs.
    pub fn prepare(
        client: &mut Client,
        url: &str,
        plan: Option<&AfterPlan>,
        dry_run: bool,
    ) -> Result<Downs, VerifyError> {
        Ok(Downs { after: AfterRun::prepare(client, url, plan, Phase::Rollback, dry_run)? })
    }

    /// The downs of `target`, newest first, under the guards of
    /// [`migrate::rollback`] and its check before COMMIT.
    pub fn run(
        &self,
        client: &mut Client,
        migrations: &[Migration],
        (settings, target): (&Settings, &RollbackTarget),
        dry_run: bool,
        progress: &mut dyn Progress,
    ) -> Result<Report, ApplyError> {
        migrate::rollback(client, migrations, settings, target, dry_run, progress)
    }

    /// Whether a suite runs after the downs (`[verify] after_migrate`).
    pub fn verifies(&self) -> bool {
        self.after.is_some()
    }

    /// The suite on what the downs of `report` left: `None` where no suite
    /// runs after a rollback, or nothing was reverted.
    pub fn finish(self, client: &mut Client, report: &Report) -> Option<SuiteReport> {
        self.after.and_then(|after| after.finish(client, report))
    }
}
