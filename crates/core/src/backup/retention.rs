//! `backup prune`: `[backup] retention` removes backups older than it,
//! always keeping the newest `keep_min`; `.partial` dirs of dead runs go
//! too. A pre-restore database snapshot is pruned like any backup, by
//! dropping its database.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::manifest::{Kind, Manifest};
use super::{BackupError, Store};

/// What a prune removed (or, with `dry_run`, would remove).
#[derive(Debug, serde::Serialize)]
pub struct PruneReport {
    pub dry_run: bool,
    pub removed: Vec<Pruned>,
    pub kept: Vec<String>,
    pub partials: Vec<PathBuf>,
    /// Backups that should have gone but could not, with why.
    pub failed: Vec<Pruned>,
}

/// One backup in a prune report.
#[derive(Debug, serde::Serialize)]
pub struct Pruned {
    pub id: String,
    pub kind: Kind,
    pub created_at: DateTime<Utc>,
    pub size_bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Which backups a retention policy removes, oldest first: older than
/// `retention`, and not among the newest `keep_min`.
pub fn expired(
    backups: &[Manifest],
    retention: Duration,
    keep_min: usize,
    now: DateTime<Utc>,
) -> Vec<&Manifest> {
    let mut newest_first: Vec<&Manifest> = backups.iter().collect();
    newest_first.sort_by_key(|m| std::cmp::Reverse(m.created_at));
    let retention = chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
    let mut out: Vec<&Manifest> =
        newest_first.into_iter().skip(keep_min).filter(|m| m.age(now) > retention).collect();
    out.reverse();
    out
}

/// Applies the retention policy. `drop_database` removes the database of a
/// [`Kind::Database`] snapshot; its files go only once that succeeded.
pub fn prune(
    store: &Store,
    retention: Duration,
    keep_min: usize,
    now: DateTime<Utc>,
    dry_run: bool,
    drop_database: &mut dyn FnMut(&Manifest) -> Result<(), BackupError>,
) -> Result<PruneReport, BackupError> {
    let (backups, _unreadable) = store.list()?;
    let expired = expired(&backups, retention, keep_min, now);
    let partials = if dry_run { store.dead_partials() } else { store.clean_partials() };
    let mut report = PruneReport {
        dry_run,
        removed: Vec::new(),
        kept: backups
            .iter()
            .filter(|b| !expired.iter().any(|e| e.id == b.id))
            .map(|b| b.id.clone())
            .collect(),
        partials,
        failed: Vec::new(),
    };
    for m in expired {
        let mut entry = Pruned {
            id: m.id.clone(),
            kind: m.kind,
            created_at: m.created_at,
            size_bytes: m.size_bytes,
            error: None,
        };
        if dry_run {
            report.removed.push(entry);
            continue;
        }
        let result = match m.kind {
            Kind::Database => drop_database(m).and_then(|()| store.remove(&m.id)),
            // Only the record: the stanza's backups and WAL are pgBackRest's
            // to expire, by its own retention.
            Kind::Dump | Kind::RestorePoint => store.remove(&m.id),
            // The cluster as it was before a physical restore: its files go.
            Kind::DataDirectory => remove_kept(m).and_then(|()| store.remove(&m.id)),
        };
        match result {
            Ok(()) => report.removed.push(entry),
            Err(e) => {
                entry.error = Some(crate::kit::error::chain(&e));
                report.failed.push(entry);
            }
        }
    }
    Ok(report)
}

/// Removes a kept data directory (never the one it was, which is live).
fn remove_kept(m: &super::Manifest) -> Result<(), BackupError> {
    let Some(kept) = &m.kept_data_dir else { return Ok(()) };
    if kept.path == kept.data_dir || !kept.path.exists() {
        return Ok(());
    }
    std::fs::remove_dir_all(&kept.path).map_err(BackupError::io(&kept.path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(id: &str, days_ago: i64, now: DateTime<Utc>) -> Manifest {
        let text = format!(
            r#"{{"format":1,"id":"{id}","kind":"dump","label":null,"created_at":"{}",
            "database":"app","system_identifier":null,"server_version":"15.8",
            "server_version_num":150008,"encoding":"UTF8","pg_dump_version":null,"compression":null,
            "jobs":null,"size_bytes":1,"files":[],"row_counts":{{}},"schema_fingerprint":"f",
            "roles":[],"extensions":[],"duration_ms":1}}"#,
            (now - chrono::Duration::days(days_ago)).to_rfc3339()
        );
        serde_json::from_str(&text).unwrap()
    }

    #[test]
    fn retention_keeps_the_newest_keep_min_whatever_their_age() {
        let now = Utc::now();
        let month = Duration::from_secs(30 * 86400);
        let all = vec![at("a", 90, now), at("b", 60, now), at("c", 40, now), at("d", 1, now)];
        let ids = |v: Vec<&Manifest>| v.iter().map(|m| m.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(expired(&all, month, 3, now)), ["a"]);
        assert_eq!(ids(expired(&all, month, 1, now)), ["a", "b", "c"]);
        assert_eq!(ids(expired(&all, month, 10, now)), Vec::<String>::new());
        assert_eq!(
            ids(expired(&all, Duration::from_secs(86400 * 365), 0, now)),
            Vec::<String>::new()
        );
    }
}
