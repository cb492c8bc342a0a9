//! Recording passes: in the target's `backstop.rehearsals` (when it can be
//! reached) and as JSON beside the Markdown report, keyed by the ordered
//! (version, checksum) pairs of the rehearsed migrations.

use std::path::Path;

use postgres::Client;

use super::{Rehearsal, RehearseError};
use crate::pg::lock::MigrationLock;
use crate::schema;

/// Writes the rehearsal into the target's history. The lock is taken so the
/// `backstop` schema is never created by two runs at once.
pub fn record(
    client: &mut Client,
    r: &Rehearsal,
    wait: std::time::Duration,
) -> Result<(), RehearseError> {
    let db = |context| move |source| RehearseError::Db(crate::pg::DbError::new(context, source));
    let mut lock = MigrationLock::acquire(client, wait, |_| {})?;
    schema::ensure(&mut lock).map_err(db("creating the backstop schema"))?;
    let report = r.report.as_ref().map(|p| p.display().to_string());
    let row = schema::rehearsals::NewRehearsal {
        id: &r.id,
        key: &r.key,
        ok: r.ok,
        full_data: !r.copy.schema_only,
        migrations: serde_json::to_value(&r.migrations).unwrap_or_default(),
        duration_ms: r.duration_ms as i64,
        report: report.as_deref(),
    };
    schema::rehearsals::insert(&mut *lock, &row).map_err(db("recording the rehearsal"))?;
    let event = schema::events::Event {
        kind: "rehearse",
        outcome: if r.ok { "ok" } else { "failed" },
        versions: r.migrations.iter().map(|m| m.version.clone()).collect(),
        details: serde_json::json!({
            "id": r.id,
            "key": r.key,
            "report": report,
            // Data no SQL puts back, accepted for this pass, with why.
            "accepted_irreversible": r
                .round_trip
                .migrations
                .iter()
                .filter(|t| t.class == super::TripClass::DataAccepted)
                .map(|t| serde_json::json!({ "version": t.version, "detail": t.detail }))
                .collect::<Vec<_>>(),
        }),
    };
    schema::events::record(&mut *lock, &event).map_err(db("writing the audit event"))?;
    Ok(())
}

/// The name the files of `r` share in the report folder, without the
/// extension: `2026-01-07-20260107-120000-beef`.
pub fn stem(r: &Rehearsal) -> String {
    format!("{}-{}", r.started_at.format("%Y-%m-%d"), r.id)
}

/// Writes the report and its JSON twin into `dir` and returns the report's path.
pub fn write_files(dir: &Path, r: &mut Rehearsal) -> Result<std::path::PathBuf, RehearseError> {
    let io = |action, path: &Path| {
        let path = path.to_path_buf();
        move |source| RehearseError::Io { action, path, source }
    };
    std::fs::create_dir_all(dir).map_err(io("create", dir))?;
    crate::pg::export::ignored(dir);
    let stem = stem(r);
    let md = dir.join(format!("{stem}.md"));
    r.report = Some(md.clone());
    let text = super::report::markdown(r).map_err(RehearseError::Report)?;
    std::fs::write(&md, text).map_err(io("write", &md))?;
    let json = dir.join(format!("{stem}.json"));
    let text = serde_json::to_string_pretty(r).unwrap_or_default();
    std::fs::write(&json, text).map_err(io("write", &json))?;
    Ok(md)
}
