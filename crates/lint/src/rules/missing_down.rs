//! BS403: a migration without a down migration.

use crate::context::{Cx, Hit};
use crate::model::{Impact, Probability};
use crate::rules::{Code, Family, Meta, Phase};

/// **What it finds:** a migration (a folder with `up.sql`, or a
/// `VERSION_name.up.sql` file) that has no down migration beside it.
///
/// **Why it hurts:** no one has written how to undo it. With `[migrations]
/// keep_downs` on (the default), `migrate` works out a down and proves it
/// on a copy before the first statement, and keeps it for `backstop
/// rollback`; where none can be proved (rows only a backup holds), and
/// with `keep_downs` off, the only way back when the release goes bad is
/// a full restore from backup, which takes longer and also rewinds
/// everything written since.
///
/// **Instead:** review the down `migrate` proves: `backstop downs --write`
/// computes and proves it on a replayed copy and writes it beside the
/// migration (up-only layouts keep it in `backstop/downs/`); or write
/// `down.sql` by hand and rehearse it. If the migration is truly
/// irreversible, say so: `-- backstop:ignore BS403 reason` above its
/// first statement.
pub const META: Meta = Meta {
    name: "missing-down",
    family: Family::Robustness,
    probability: Probability::Medium,
    impact: Impact::Medium,
    risk: "no down migration written for it",
    mitigation: "Review the down migrate proves (backstop downs --write), or write and rehearse one",
    phase: Phase::Statements,
};

pub fn check(cx: &Cx<'_>, out: &mut Vec<Hit>) {
    if cx.input.has_down != Some(false) {
        return;
    }
    let Some(first) = cx.stmts.first() else { return };
    out.push(Hit::new(
        Code::BS403,
        first,
        cx.head(first, 2),
        "this migration has no down migration: backstop rollback cannot undo it, only a restore can",
        "`backstop downs --write` computes and proves one (or write the down by hand)",
    ));
}
