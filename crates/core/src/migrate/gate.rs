//! Gates: checks the `migrate` command composes around guarded apply (the
//! pre-migration backup, the risk check, the rehearsal requirement). They
//! run under the migration lock, once the pending migrations are known and
//! before the first one runs, so two runs never race past a gate.

use postgres::Client;
use serde_json::Value;

use crate::source::Migration;

/// What a passing gate hands on: a record for the audit log and, for some
/// gates, ids that are stamped on every migration applied in this run.
#[derive(Debug, Clone, Default)]
pub struct GatePass {
    /// Goes into the `migrate` event's `details.gates` under the gate's name.
    pub detail: Value,
    /// The backup guarding this run, written to `backstop.applied.backup_id`.
    pub backup_id: Option<String>,
    /// The rehearsal that covered this run, written to `backstop.applied.rehearsal_id`.
    pub rehearsal_id: Option<String>,
    /// Downs computed and proved for the pending migrations, by version,
    /// kept with each migration's record.
    pub kept_downs: std::collections::BTreeMap<String, String>,
    /// What a rollback of each must bring back (JSON of
    /// [`super::expect::Expected`]), by version.
    pub undo_to: std::collections::BTreeMap<String, String>,
}

/// Why a gate refused the run, and the exit code the refusal calls for
/// (1 when a check found a problem, 3 when the environment failed, e.g.
/// pg_dump missing).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{gate} gate refused the migration: {reason}")]
pub struct GateRefusal {
    pub gate: String,
    pub reason: String,
    pub exit_code: u8,
}

/// One gate. `dry_run` runs must not change anything; a gate may still
/// report what it would do.
pub trait Gate {
    /// Short name for messages and the audit log: `backup`, `check`, `rehearsal`.
    fn name(&self) -> &str;
    /// Decides whether `pending` may be applied.
    fn check(
        &mut self,
        client: &mut Client,
        pending: &[&Migration],
        dry_run: bool,
    ) -> Result<GatePass, GateRefusal>;
}

/// The ids gates stamp on the migrations of one run.
#[derive(Debug, Clone, Default)]
pub struct Stamp {
    pub backup_id: Option<String>,
    pub rehearsal_id: Option<String>,
    /// Downs computed and proved before the run, by version, kept with
    /// each migration's record.
    pub kept_downs: std::collections::BTreeMap<String, String>,
    /// What a rollback of each must bring back, by version.
    pub undo_to: std::collections::BTreeMap<String, String>,
}

/// A gate the operator waived for this run (`--no-backup REASON` and the
/// like): it passes, and the reason lands in the audit log.
pub struct Waived {
    pub gate: &'static str,
    pub reason: String,
}

impl Gate for Waived {
    fn name(&self) -> &str {
        self.gate
    }

    fn check(
        &mut self,
        _: &mut Client,
        _: &[&Migration],
        _: bool,
    ) -> Result<GatePass, GateRefusal> {
        Ok(GatePass {
            detail: serde_json::json!({ "waived": self.reason, "by": crate::schema::actor() }),
            ..Default::default()
        })
    }
}

/// Runs `gates` in order over `pending`, under the caller's migration
/// lock: what the passing gates stamp on the run and say for the audit
/// log (by gate name), or the first refusal.
pub fn pass_all(
    client: &mut Client,
    gates: &mut [&mut dyn Gate],
    pending: &[&Migration],
    dry_run: bool,
) -> Result<(Stamp, serde_json::Map<String, Value>), GateRefusal> {
    let mut stamp = Stamp::default();
    let mut passed = serde_json::Map::new();
    for gate in gates.iter_mut() {
        let pass = gate.check(client, pending, dry_run)?;
        stamp.backup_id = pass.backup_id.or(stamp.backup_id);
        stamp.rehearsal_id = pass.rehearsal_id.or(stamp.rehearsal_id);
        stamp.kept_downs.extend(pass.kept_downs);
        stamp.undo_to.extend(pass.undo_to);
        passed.insert(gate.name().to_string(), pass.detail);
    }
    Ok((stamp, passed))
}
