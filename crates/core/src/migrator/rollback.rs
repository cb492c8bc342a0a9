//! The rollback as one policy: an expand still open is dropped first
//! (nothing of it was applied); otherwise the suite after a rollback is
//! made ready on the state before, the downs run under the guards of
//! [`crate::migrate::rollback`] (with its check before COMMIT), and the
//! suite runs on what they left. `backstop rollback` and a rollout's undo
//! take it, so both do the same in the same order.

use postgres::Client;

use super::MigratorError;
use crate::config::Config;
use crate::expand::Expanded;
use crate::migrate::{self, Progress, Report, RollbackTarget, Settings};
use crate::source::Migration;
use crate::verify::{AfterRun, Phase, SuiteReport};

/// What a rollback did.
#[derive(Debug)]
pub enum RolledBack {
    /// An expand was open: its new shape was dropped, nothing else ran.
    Expand(Box<Expanded>),
    /// The downs ran, or failed (the report says which).
    Downs(Box<Reverted>),
}

/// What the downs of a rollback did, with the suite that ran after them
/// where `[verify] after_migrate` asks for it.
#[derive(Debug)]
pub struct Reverted {
    pub report: Report,
    pub verified: Option<SuiteReport>,
}

/// Rolls back `target` of `migrations` on `client` (of the database at
/// `url`) under `config`, `settings` being the rollback's (its reason and
/// where what the downs remove is kept). A dry run shows the downs and
/// changes nothing, an open expand included.
pub fn rollback(
    client: &mut Client,
    (url, config): (&str, &Config),
    migrations: &[Migration],
    (settings, target): (&Settings, &RollbackTarget),
    dry_run: bool,
    progress: &mut dyn Progress,
) -> Result<RolledBack, MigratorError> {
    if !dry_run {
        if let Some(undone) = crate::expand::rollback_if_open(client, settings)? {
            return Ok(RolledBack::Expand(Box::new(undone)));
        }
    }
    let plan = config.after_plan()?;
    let after = AfterRun::prepare(client, url, plan.as_ref(), Phase::Rollback, dry_run)?;
    let report = migrate::rollback(client, migrations, settings, target, dry_run, progress)?;
    let verified = after.and_then(|after| after.finish(client, &report));
    Ok(RolledBack::Downs(Box::new(Reverted { report, verified })))
}
