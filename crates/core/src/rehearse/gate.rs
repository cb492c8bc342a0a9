//! The rehearsal gate: with `[rehearse] required = true`, `migrate` refuses
//! migrations whose exact (version, checksum) list has no passing rehearsal
//! recent enough, and says which command to run.

use std::time::Duration;

use postgres::Client;

use super::key_of;
use crate::migrate::{Gate, GatePass, GateRefusal};
use crate::source::Migration;

/// Looks for a passing rehearsal of exactly the pending migrations.
pub struct RehearsalGate {
    pub max_age: Duration,
    /// Whether a schema-only rehearsal is enough.
    pub accept_schema_only: bool,
}

impl Gate for RehearsalGate {
    fn name(&self) -> &str {
        "rehearsal"
    }

    fn check(
        &mut self,
        client: &mut Client,
        pending: &[&Migration],
        _dry_run: bool,
    ) -> Result<GatePass, GateRefusal> {
        let key = key_of(pending.iter().copied());
        let refuse =
            |reason: String, exit_code| GateRefusal { gate: "rehearsal".into(), reason, exit_code };
        let versions = pending.iter().map(|m| m.version.as_str()).collect::<Vec<_>>().join(", ");
        let age = crate::kit::duration::human(self.max_age);
        let found = crate::schema::rehearsals::latest_pass(
            client,
            &key,
            self.max_age,
            self.accept_schema_only,
        )
        .map_err(|e| refuse(format!("could not read backstop.rehearsals: {e}"), 3))?;
        match found {
            Some(pass) => {
                let at = pass.at.format("%Y-%m-%d %H:%M:%S UTC").to_string();
                Ok(GatePass {
                    detail: serde_json::json!({ "id": pass.id, "at": at, "key": key, "full_data": pass.full_data }),
                    backup_id: None,
                    rehearsal_id: Some(pass.id),
                })
            }
            None => Err(refuse(
                format!(
                    "no passing rehearsal of exactly these migrations ({versions}) in the last {age}; \
                     run `backstop rehearse` first{}",
                    if self.accept_schema_only {
                        ""
                    } else {
                        " (schema-only rehearsals count only with accept_schema_only = true)"
                    }
                ),
                1,
            )),
        }
    }
}
