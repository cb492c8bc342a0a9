//! `status`: the migrations folder held against the database's history,
//! as applied, pending, drifted (an applied file changed or gone) and
//! half-applied (a no-transaction migration that stopped part-way).

use postgres::Client;
use serde::Serialize;

use super::ApplyError;
use crate::schema::{self, applied::AppliedRow};
use crate::source::{Migration, Order};

/// An applied migration whose file changed or disappeared.
#[derive(Debug, Clone, Serialize)]
pub struct Drift {
    pub version: String,
    pub name: String,
    /// `changed` (checksum differs) or `missing` (no file any more).
    pub kind: &'static str,
    pub applied_checksum: String,
    pub file_checksum: Option<String>,
}

impl std::fmt::Display for Drift {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            "missing" => {
                write!(f, "{}_{} was applied but its file is gone", self.version, self.name)
            }
            _ => write!(
                f,
                "{}_{} was applied but its file has changed since",
                self.version, self.name
            ),
        }
    }
}

/// A migration in a status listing.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub version: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied_at: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied_by: Option<String>,
    pub checksum: String,
    pub no_transaction: bool,
    /// The backup that guarded it (applied migrations taken with the backup gate).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup_id: Option<String>,
}

/// Applied, pending and drifted migrations.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub applied: Vec<Entry>,
    pub pending: Vec<Entry>,
    pub drifted: Vec<Drift>,
    /// No-transaction migrations that stopped half-way: their first
    /// statements stay committed, the rest never ran.
    pub half_applied: Vec<HalfApplied>,
}

/// A no-transaction migration that failed after committing some of its
/// statements, and has not been applied since.
#[derive(Debug, Clone, Serialize)]
pub struct HalfApplied {
    pub version: String,
    /// The statement that failed (1-based), and how many the file has.
    pub statement: usize,
    pub statements: usize,
    pub message: String,
    pub at: chrono::DateTime<chrono::Utc>,
}

/// Compares the migrations folder with the database's history.
pub fn status(client: &mut Client, migrations: &[Migration]) -> Result<Status, ApplyError> {
    let rows = schema::applied::all(client).map_err(|source| {
        ApplyError::Db(crate::pg::DbError::new("reading backstop.applied", source))
    })?;
    let mut status = compare(migrations, rows);
    status.half_applied = half_applied(client, &status).map_err(|source| {
        ApplyError::Db(crate::pg::DbError::new("reading backstop.events", source))
    })?;
    Ok(status)
}

/// The latest outcome of each pending migration, where it is a failure
/// that left statements committed.
fn half_applied(client: &mut Client, status: &Status) -> Result<Vec<HalfApplied>, postgres::Error> {
    let pending: Vec<String> = status.pending.iter().map(|e| e.version.clone()).collect();
    Ok(schema::events::half_applied(client, &pending)?
        .into_iter()
        .map(|(version, failure, at)| {
            let num = |k: &str| failure[k].as_u64().unwrap_or(0) as usize;
            HalfApplied {
                version,
                statement: num("statement"),
                statements: num("statements"),
                message: failure["message"].as_str().unwrap_or_default().to_string(),
                at,
            }
        })
        .collect())
}

/// The folder held against the history's rows, in folder order. Pure, so
/// the rules (a changed repeatable migration is pending again, a changed
/// file is drift) hold without a database.
fn compare(migrations: &[Migration], mut rows: Vec<AppliedRow>) -> Status {
    let order = Order::of(migrations);
    // Folder order; rows whose file is gone after those, oldest first.
    rows.sort_by_key(|r| (order.position(&r.version).unwrap_or(usize::MAX), r.applied_at));
    let mut drifted = Vec::new();
    let mut applied = Vec::new();
    let mut reapply = Vec::new();
    for row in &rows {
        let file = order.position(&row.version).map(|i| &migrations[i]);
        match file {
            None => drifted.push(Drift {
                version: row.version.clone(),
                name: row.name.clone(),
                kind: "missing",
                applied_checksum: row.checksum.clone(),
                file_checksum: None,
            }),
            // A repeatable migration whose file changed applies again.
            Some(m) if m.repeatable && m.checksum != row.checksum => {
                reapply.push(m.version.as_str())
            }
            Some(m) if m.checksum != row.checksum => drifted.push(Drift {
                version: row.version.clone(),
                name: row.name.clone(),
                kind: "changed",
                applied_checksum: row.checksum.clone(),
                file_checksum: Some(m.checksum.clone()),
            }),
            Some(_) => {}
        }
        applied.push(Entry {
            version: row.version.clone(),
            name: row.name.clone(),
            applied_at: Some(row.applied_at),
            duration_ms: Some(row.duration_ms),
            applied_by: Some(row.applied_by.clone()),
            checksum: row.checksum.clone(),
            no_transaction: row.no_transaction,
            backup_id: row.backup_id.clone(),
        });
    }
    let done: std::collections::HashSet<&str> = rows.iter().map(|r| r.version.as_str()).collect();
    let pending = migrations
        .iter()
        .filter(|m| !done.contains(m.version.as_str()) || reapply.contains(&m.version.as_str()))
        .map(|m| Entry {
            version: m.version.clone(),
            name: m.name.clone(),
            applied_at: None,
            duration_ms: None,
            applied_by: None,
            checksum: m.checksum.clone(),
            no_transaction: m.no_transaction,
            backup_id: None,
        })
        .collect();
    Status { applied, pending, drifted, half_applied: Vec::new() }
}

/// The migrations of `targets` that have a down kept with their record
/// (proved when `migrate` applied them: worked out where the migration
/// had no down, or in place of its own down where that did not bring
/// the schema back), as migrations with that down.
pub(super) fn with_kept_downs(
    client: &mut Client,
    targets: &[&Migration],
) -> Result<Vec<Migration>, ApplyError> {
    let versions: Vec<String> = targets.iter().map(|m| m.version.clone()).collect();
    let kept = crate::schema::applied::kept_downs_of(client, &versions).map_err(|source| {
        ApplyError::Db(crate::pg::DbError::new("reading the kept downs", source))
    })?;
    Ok(targets
        .iter()
        .filter_map(|m| kept.get(&m.version).map(|sql| m.with_kept_down(sql)))
        .collect())
}
