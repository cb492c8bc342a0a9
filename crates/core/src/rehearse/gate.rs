//! The rehearsal gate: with `[rehearse] required = true`, `migrate` refuses
//! migrations whose exact (version, checksum) list has no passing rehearsal
//! recent enough, and says which command to run.

use std::time::Duration;

use postgres::Client;

use crate::migrate::{Gate, GatePass, GateRefusal};
use crate::source::Migration;

/// The gate's key for an ordered list of migrations.
pub fn key_of<'a>(migrations: impl IntoIterator<Item = &'a Migration>) -> String {
    let mut hasher = blake3::Hasher::new();
    for m in migrations {
        hasher.update(m.version.as_bytes());
        hasher.update(b":");
        hasher.update(m.checksum.as_bytes());
        hasher.update(b"\n");
    }
    hasher.finalize().to_hex()[..32].to_string()
}

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
                    rehearsal_id: Some(pass.id),
                    ..Default::default()
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

#[cfg(test)]
mod tests {
    use super::key_of;

    fn folder(files: &[(&str, &str)]) -> Vec<crate::source::Migration> {
        let tmp = tempfile::tempdir().unwrap();
        for (rel, sql) in files {
            let p = tmp.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, sql).unwrap();
        }
        crate::source::load(tmp.path(), None).unwrap().migrations
    }

    #[test]
    fn the_key_follows_versions_order_and_checksums() {
        let ms = folder(&[("1_a/up.sql", "CREATE TABLE a (id int);"), ("2_b/up.sql", "SELECT 1;")]);
        let key = key_of(ms.iter());
        assert_eq!(key.len(), 32);
        assert_eq!(key, key_of(ms.iter()), "the same list gives the same key");
        assert_ne!(key, key_of(ms.iter().rev()), "order matters");
        assert_ne!(key, key_of(ms.iter().take(1)), "every migration counts");
        let changed =
            folder(&[("1_a/up.sql", "CREATE TABLE a (id bigint);"), ("2_b/up.sql", "SELECT 1;")]);
        assert_ne!(key, key_of(changed.iter()), "an edited up is another rehearsal");
        let reformatted = folder(&[
            ("1_a/up.sql", "CREATE  TABLE a (id int); -- hi"),
            ("2_b/up.sql", "SELECT 1;"),
        ]);
        assert_eq!(key, key_of(reformatted.iter()), "whitespace and comments do not count");
    }
}
