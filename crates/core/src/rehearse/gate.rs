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
        let age = humantime::format_duration(self.max_age).to_string();
        let table: bool = client
            .query_one("select to_regclass('backstop.rehearsals') is not null", &[])
            .map_err(|e| refuse(format!("could not read backstop.rehearsals: {e}"), 3))?
            .get(0);
        let found = if table {
            client
                .query_opt(
                    "select id, to_char(at at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS \"UTC\"'), full_data
                       from backstop.rehearsals
                      where key = $1 and ok and at > now() - make_interval(secs => $2)
                        and (full_data or $3)
                      order by at desc limit 1",
                    &[&key, &(self.max_age.as_secs_f64()), &self.accept_schema_only],
                )
                .map_err(|e| refuse(format!("could not read backstop.rehearsals: {e}"), 3))?
        } else {
            None
        };
        match found {
            Some(row) => {
                let id: String = row.get(0);
                let at: String = row.get(1);
                Ok(GatePass {
                    detail: serde_json::json!({ "id": id, "at": at, "key": key, "full_data": row.get::<_, bool>(2) }),
                    backup_id: None,
                    rehearsal_id: Some(id),
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
