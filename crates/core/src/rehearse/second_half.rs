//! Scenarios A and B on the second half's copy, where a long run is cut
//! in two: that copy passes through every state the two need (it applies
//! the first half's ups, then round-trips its own half), so no copy of
//! their own applies the batch once more. B backs it up before it
//! applies anything (its start); A plays where it holds every migration
//! before the batch's last transaction and none after; B restores its
//! backup over it once its round trips are done: on that half's own
//! thread, beside the first half's last round trips, unless a `[verify]`
//! suite must run on the copy first.

use std::time::{Duration, Instant};

use postgres::Client;

use super::injected::APlan;
use super::outcome::Scenario;
use super::scenario_backup::BackedUp;
use super::scenarios::restored_b;
use super::snapshot::{snapshot, Snapshot};
use super::{ms, RehearseError};
use crate::copies::clone::{CopyDb, Workspace};
use crate::migrate::{self, Settings};
use crate::source::Migration;

/// B's start: the copy before anything is applied, and its backup.
pub(super) struct BStart {
    start: Snapshot,
    backed: Result<BackedUp, String>,
    took: Duration,
}

impl BStart {
    /// Reads and backs up `copy` (its session `client`) as it is.
    pub(super) fn take(
        client: &mut Client,
        copy: &CopyDb,
        settings: &Settings,
    ) -> Result<BStart, RehearseError> {
        let t = Instant::now();
        let start = snapshot(client)?;
        let backed = BackedUp::take(&copy.conninfo()?, settings)?;
        Ok(BStart { start, backed, took: t.elapsed() })
    }

    /// The copy as it was read before anything was applied.
    pub(super) fn start(&self) -> &Snapshot {
        &self.start
    }

    /// How long reading and backing up the start took.
    pub(super) fn took(&self) -> Duration {
        self.took
    }
}

/// Where A plays among `todo`: the index of the first migration of the
/// batch's last transaction, if any starts in one.
pub(super) fn a_at(plan: &APlan, todo: &[Migration]) -> Option<usize> {
    let first = plan.injected_from()?;
    todo.iter().position(|m| m.version == first)
}

/// A on a round trips' copy that holds every migration before the last
/// transaction and none after: the scenario, and why the round trips stop
/// there when the injected run left the copy changed (the ones after it
/// would start from a state no deploy reaches). `read`: the copy as it
/// is, where it was already read (B's start, when A's state is the start).
pub(super) fn a_here(
    client: &mut Client,
    migrations: &[Migration],
    settings: &Settings,
    plan: &APlan,
    read: Option<&Snapshot>,
) -> Result<(Scenario, Option<String>), RehearseError> {
    let before = match read {
        Some(read) => read.clone(),
        None => snapshot(client)?,
    };
    let quiet = &mut migrate::Quiet;
    let (scenario, as_it_was) = plan.injected(client, migrations, settings, before, quiet)?;
    let stop =
        (!as_it_was).then(|| format!("scenario A left the copy changed: {}", scenario.detail));
    Ok((scenario, stop))
}

/// A where the round trips stopped before they reached its state.
pub(super) fn a_not_reached(plan: &APlan, stopped: Option<&str>) -> Scenario {
    let why = stopped.unwrap_or("the round trips did not reach it");
    plan.scenario(false, 0, format!("the transactions before the last one failed: {why}"))
}

/// B's end on the copy where the round trips ended (`client`, its
/// session, which goes): the late writes, the restore of the start's
/// backup and the comparisons. Its time is the backup's and this.
pub(super) fn b_end(
    client: Client,
    (copy, workspace): (&CopyDb, &Workspace),
    settings: &Settings,
    start: BStart,
    stopped: Option<&str>,
) -> Result<Scenario, RehearseError> {
    let started = Instant::now().checked_sub(start.took).unwrap_or_else(Instant::now);
    let backed = match (start.backed, stopped) {
        (Err(why), _) => return Ok(Scenario::played("B", false, ms(started.elapsed()), why)),
        (Ok(_), Some(why)) => return Ok(b_stopped(ms(started.elapsed()), why)),
        (Ok(backed), None) => backed,
    };
    restored_b(client, (copy, workspace), settings, (start.start, backed), started)
}

/// B where the round trips stopped (`why`): the migration failed, so no
/// restore of its backup is judged.
pub(super) fn b_stopped(duration_ms: u64, why: &str) -> Scenario {
    Scenario::played("B", false, duration_ms, format!("the migration failed: {why}"))
}
