//! The rollback as one policy ([`crate::undo`]) taken whole: an expand
//! still open is dropped first and nothing else runs; otherwise the suite
//! after a rollback, the downs under the guards of
//! [`crate::migrate::rollback`] (with its check before COMMIT), and the
//! suite on what they left. `backstop rollback` and a rollout's undo take
//! it, so both do the same in the same order.

use postgres::Client;

use super::MigratorError;
use crate::config::Config;
use crate::expand::Expanded;
use crate::migrate::{Progress, Report, RollbackTarget, Settings};
use crate::source::Migration;
use crate::undo::{self, Downs};
use crate::verify::SuiteReport;

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
    if let Some(undone) = undo::open_expand_dropped(client, settings, dry_run)? {
        return Ok(RolledBack::Expand(Box::new(undone)));
    }
    let plan = config.after_plan()?;
    let downs = Downs::prepare(client, url, plan.as_ref(), dry_run)?;
    let report = downs.run(client, migrations, (settings, target), dry_run, progress)?;
    let verified = downs.finish(client, &report);
    Ok(RolledBack::Downs(Box::new(Reverted { report, verified })))
}
