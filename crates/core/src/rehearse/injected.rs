//! Scenario A's plan and its injected run: the last transaction of the
//! batch a migration starts in, a failure at its end, and the judgement
//! of what the rollback left.

use std::time::Instant;

use postgres::Client;

use super::ms;
use super::outcome::{Difference, Scenario, Split};
use super::snapshot::{compare, first_of, listed, snapshot, Snapshot};
use super::RehearseError;
use crate::migrate::{self, MigrateOptions, Progress, Settings};
use crate::source::Migration;

/// Scenario A as the batch's plan says it: its splits, and the last
/// transaction a migration starts in, at whose end the failure goes.
pub(super) struct APlan {
    splits: Vec<Split>,
    avoidable: bool,
    transactions: usize,
    last: Option<LastTransaction>,
}

/// The last transaction of the batch a migration starts in.
struct LastTransaction {
    /// The migration the failure goes in, and where in its statements
    /// (where its author's COMMIT may split it).
    target: String,
    at: Option<usize>,
    /// The versions it applies.
    versions: Vec<String>,
    /// The last migration applied before it, if any.
    before: Option<String>,
}

impl APlan {
    pub(super) fn of(todo: &[Migration]) -> APlan {
        let pending: Vec<&Migration> = todo.iter().collect();
        let plan = migrate::plan_up(&pending, false);
        let splits = super::splits::of(&plan);
        let avoidable = splits.iter().any(|s| s.fix.is_some());
        let groups = &plan.groups;
        let last = groups.iter().rposition(|g| g.transactional && !g.continues()).map(|last| {
            let group = &groups[last];
            let version = |m: &&Migration| m.version.clone();
            LastTransaction {
                target: group.migrations.last().map(version).expect("a group is never empty"),
                at: group.last_until,
                versions: group.migrations.iter().map(version).collect(),
                before: last.checked_sub(1).and_then(|b| groups[b].migrations.last()).map(version),
            }
        });
        APlan { splits, avoidable, transactions: groups.len(), last }
    }

    /// The last migration applied before the last transaction (`None`
    /// inside: it is the batch's first); `None` where no migration
    /// starts in a transaction.
    pub(super) fn before_last(&self) -> Option<Option<&str>> {
        self.last.as_ref().map(|l| l.before.as_deref())
    }

    /// The first migration of the last transaction: the copy must hold
    /// every migration before it, and none after, for the injected run.
    pub(super) fn injected_from(&self) -> Option<&str> {
        self.last.as_ref().and_then(|l| l.versions.first()).map(String::as_str)
    }

    pub(super) fn scenario(&self, ok: bool, duration_ms: u64, detail: String) -> Scenario {
        Scenario {
            name: "A".into(),
            ok: ok && !self.avoidable,
            skipped: false,
            duration_ms,
            detail,
            splits: self.splits.clone(),
            left_in_place: Vec::new(),
        }
    }

    /// A where no migration starts in a transaction: nothing to inject.
    pub(super) fn no_transaction(&self) -> Scenario {
        let detail = "every migration runs outside a transaction: no failure rolls back on its own";
        self.scenario(true, 0, detail.to_string())
    }

    /// The injected run on a copy at the state before the last
    /// transaction (`before`, its snapshot): A, and whether the copy is
    /// left as it was.
    pub(super) fn injected(
        &self,
        client: &mut Client,
        migrations: &[Migration],
        settings: &Settings,
        before: Snapshot,
        progress: &mut dyn Progress,
    ) -> Result<(Scenario, bool), RehearseError> {
        let Some(last) = &self.last else { return Ok((self.no_transaction(), true)) };
        let mut broken: Vec<Migration> = migrations.to_vec();
        let injected_into =
            broken.iter_mut().find(|m| m.version == last.target).expect("pending is known");
        let injected = backstop_sql::split(
            "DO $$ BEGIN RAISE EXCEPTION 'backstop rehearsal: injected failure'; END $$",
        )
        .expect("valid SQL");
        let at = last.at.unwrap_or(injected_into.up.statements.len());
        let added = injected.len();
        injected_into.up.statements.splice(at..at, injected);
        for b in injected_into.up.boundaries.iter_mut().filter(|b| b.from >= at) {
            b.from += added;
        }
        let t = Instant::now();
        let options = MigrateOptions {
            to: Some(last.target.clone()),
            allow_out_of_order: true,
            ..Default::default()
        };
        let report = migrate::migrate(client, &broken, settings, &options, &mut [], progress)?;
        let duration_ms = ms(t.elapsed());
        let after = snapshot(client)?;
        let diffs = compare(&before, &after, None);
        let as_it_was = diffs.is_empty() && report.done.is_empty();
        // What the failure rolled back must be that transaction, no more
        // and no less: the copy was where the plan says it starts.
        if let Some(f) = report.failure.as_ref().filter(|f| f.group != last.versions) {
            let detail = format!(
                "the injected run rolled back {} migration(s) ({}), not the last transaction's {}",
                f.group.len(),
                first_of(&f.group),
                last.versions.len()
            );
            return Ok((self.scenario(false, duration_ms, detail), as_it_was));
        }
        let (ok, detail) =
            judge_a(&report, &diffs, &last.target, (last.versions.len(), self.transactions));
        Ok((self.scenario(ok, duration_ms, detail), as_it_was))
    }
}

/// Scenario A passes only when the injected failure stopped the run, the
/// transaction was rolled back, nothing in it had committed, and the copy
/// is as it was before it. `(migrations, transactions)`: how many
/// migrations the last transaction holds, and how many the batch runs in.
fn judge_a(
    report: &migrate::Report,
    diffs: &[Difference],
    last: &str,
    (migrations, transactions): (usize, usize),
) -> (bool, String) {
    match (&report.failure, diffs.is_empty(), report.done.is_empty()) {
        (Some(f), true, true) if f.rolled_back && transactions <= 1 => (
            true,
            format!(
                "injected failure in {last} rolled back automatically; copy identical to the start"
            ),
        ),
        (Some(f), true, true) if f.rolled_back => (
            true,
            format!(
                "injected failure in {last} rolled back the last of the batch's {transactions} \
                 transactions ({migrations} migration(s)) automatically; copy identical to the \
                 state before it; the ones before it stay committed (see the splits)"
            ),
        ),
        (None, _, _) => (false, "the injected failure did not stop the migration".to_string()),
        (Some(_), _, false) => (
            false,
            format!(
                "{} migration(s) committed before the failure, up to {}: a failure there leaves them applied",
                report.done.len(),
                report.done.last().map_or("", |d| d.version.as_str())
            ),
        ),
        (Some(_), _, true) => {
            (false, format!("the copy differs after the rollback: {}", listed(diffs)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(rolled_back: bool) -> migrate::Failure {
        migrate::Failure {
            version: "2".into(),
            name: "m".into(),
            direction: migrate::Direction::Up,
            stage: migrate::Stage::Statement,
            file: None,
            statement: None,
            statements: None,
            line: None,
            column: None,
            sql: None,
            sqlstate: None,
            message: "backstop rehearsal: injected failure".into(),
            detail: None,
            hint: None,
            rolled_back,
            committed_statements: 0,
            group: Vec::new(),
            blockers: Vec::new(),
        }
    }

    #[test]
    fn scenario_a_passes_only_on_a_clean_automatic_rollback() {
        let report = |failure, done: &[&str]| migrate::Report {
            failure,
            done: done
                .iter()
                .map(|v| migrate::Done { version: v.to_string(), name: "m".into(), duration_ms: 1 })
                .collect(),
            ..Default::default()
        };
        let diff = Difference {
            version: None,
            object: "table t".into(),
            message: "table t is new".into(),
        };
        let clean = judge_a(&report(Some(failure(true)), &[]), &[], "2", (2, 1));
        assert_eq!(
            clean,
            (
                true,
                "injected failure in 2 rolled back automatically; copy identical to the start"
                    .into()
            )
        );
        assert_eq!(
            judge_a(&report(None, &["1", "2"]), &[], "2", (2, 1)),
            (false, "the injected failure did not stop the migration".into())
        );
        let (ok, detail) = judge_a(&report(Some(failure(true)), &["1"]), &[], "2", (2, 1));
        assert!(!ok);
        assert_eq!(
            detail,
            "1 migration(s) committed before the failure, up to 1: a failure there leaves them applied",
            "regression: every committed version was listed on one line"
        );
        let (ok, detail) = judge_a(&report(Some(failure(true)), &[]), &[], "9", (3, 4));
        assert!(ok);
        assert!(
            detail.contains("the last of the batch's 4 transactions (3 migration(s))"),
            "{detail}"
        );
        assert_eq!(
            judge_a(&report(Some(failure(true)), &[]), &[diff], "2", (2, 1)),
            (false, "the copy differs after the rollback: table t is new".into())
        );
        assert!(!judge_a(&report(Some(failure(false)), &[]), &[], "2", (2, 1)).0);
    }
}
