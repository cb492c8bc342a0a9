//! `backstop.drills`: each rollback drill of this database, the one thing a
//! drill writes to it. A row is made `running` when the drill holds the
//! drill lock, says the step under way and the directories it works in,
//! and is finished in one statement (outcome, steps, report); a drill
//! killed on the way leaves a `running` row that no session's lock stands
//! behind, which readers show as `interrupted` and the next drill marks so.

use chrono::{DateTime, Utc};
use postgres::GenericClient;
use serde::Serialize;

use super::Error;
use crate::pg::lock::DRILL_LOCK_KEY;

/// One drill as recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Record {
    pub id: i64,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// `passed`, `failed`, `running` or `interrupted`.
    pub outcome: String,
    /// Who ran it (`user@host`).
    pub by: String,
    pub backup_id: Option<String>,
    pub release: Option<String>,
    /// The step under way (running), or where it stopped (interrupted).
    pub step: Option<String>,
    /// Each step with its outcome, time and target, as the drill wrote them.
    pub steps: serde_json::Value,
    pub duration_ms: Option<i64>,
    /// The Markdown report.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<String>,
    /// The directories a running drill works in (its throwaway cluster,
    /// its workspace), for the next drill to check and clean.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub work_dirs: Vec<String>,
}

impl Record {
    /// Passed, and so counts for `drill --due`.
    pub fn passed(&self) -> bool {
        self.outcome == "passed"
    }
}

/// A running row whose drill holds no lock any more reads `interrupted`.
const COLUMNS: &str = "id, started_at, finished_at,
    case when outcome = 'running' and not exists (
        select from pg_locks l
         where l.locktype = 'advisory' and l.granted and l.objsubid = 1
           and l.database = (select oid from pg_database where datname = current_database())
           and l.classid::bigint = (($1::bigint >> 32) & 4294967295)
           and l.objid::bigint = ($1::bigint & 4294967295))
         then 'interrupted' else outcome end,
    by, backup_id, release, step, steps, duration_ms, report, work_dirs";

fn record(r: &postgres::Row) -> Record {
    Record {
        id: r.get(0),
        started_at: r.get(1),
        finished_at: r.get(2),
        outcome: r.get(3),
        by: r.get(4),
        backup_id: r.get(5),
        release: r.get(6),
        step: r.get(7),
        steps: r.get(8),
        duration_ms: r.get(9),
        report: r.get(10),
        work_dirs: r.get(11),
    }
}

/// Whether this database records drills (an older schema does not).
pub fn recorded(client: &mut impl GenericClient) -> Result<bool, Error> {
    super::has(client, "backstop.drills")
}

/// Opens the record of a drill that starts now; its id. Call with the
/// schema ensured and the drill lock held.
pub fn begin(client: &mut impl GenericClient, by: &str) -> Result<i64, Error> {
    Ok(client
        .query_one(
            "insert into backstop.drills (outcome, by) values ('running', $1) returning id",
            &[&by],
        )?
        .get(0))
}

/// Says which step drill `id` is at, on what backup and release, and the
/// directories it works in.
pub fn at_step(
    client: &mut impl GenericClient,
    id: i64,
    step: &str,
    backup_id: Option<&str>,
    release: Option<&str>,
    work_dirs: &[String],
) -> Result<(), Error> {
    client.execute(
        "update backstop.drills set step = $2, backup_id = coalesce($3, backup_id),
                release = coalesce($4, release), work_dirs = $5
          where id = $1",
        &[&id, &step, &backup_id, &release, &work_dirs],
    )?;
    Ok(())
}

/// How a drill ended, written in one statement.
#[derive(Debug, Clone)]
pub struct Finished<'a> {
    /// `passed` or `failed`.
    pub outcome: &'a str,
    pub backup_id: Option<&'a str>,
    pub release: Option<&'a str>,
    pub steps: serde_json::Value,
    pub duration_ms: i64,
    pub report: &'a str,
}

/// Finishes drill `id`: the whole record at once.
pub fn finish(client: &mut impl GenericClient, id: i64, f: &Finished<'_>) -> Result<(), Error> {
    client.execute(
        "update backstop.drills
            set outcome = $2, finished_at = clock_timestamp(), backup_id = coalesce($3, backup_id),
                release = coalesce($4, release), steps = $5, duration_ms = $6, report = $7,
                step = null, work_dirs = '{}'
          where id = $1",
        &[&id, &f.outcome, &f.backup_id, &f.release, &f.steps, &f.duration_ms, &f.report],
    )?;
    Ok(())
}

/// Marks as interrupted every running drill but `current`; call holding
/// the drill lock, so none of them still runs. Returns them as they were
/// left (step and work directories kept, to say what was cleaned).
pub fn mark_interrupted(
    client: &mut impl GenericClient,
    current: i64,
) -> Result<Vec<Record>, Error> {
    let rows = client.query(
        "update backstop.drills set outcome = 'interrupted', finished_at = clock_timestamp()
          where outcome = 'running' and id <> $1
         returning id, started_at, finished_at, outcome, by, backup_id, release, step, steps,
                   duration_ms, report, work_dirs",
        &[&current],
    )?;
    let mut left: Vec<Record> = rows.iter().map(record).collect();
    left.sort_by_key(|r| r.id);
    Ok(left)
}

/// The drills, newest first, at most `limit`.
pub fn list(client: &mut impl GenericClient, limit: i64) -> Result<Vec<Record>, Error> {
    if !recorded(client)? {
        return Ok(Vec::new());
    }
    let rows = client.query(
        &format!("select {COLUMNS} from backstop.drills order by id desc limit $2"),
        &[&DRILL_LOCK_KEY, &limit],
    )?;
    Ok(rows.iter().map(record).collect())
}

/// The newest drill, whatever its outcome.
pub fn latest(client: &mut impl GenericClient) -> Result<Option<Record>, Error> {
    Ok(list(client, 1)?.into_iter().next())
}

/// The newest drill that passed.
pub fn latest_passed(client: &mut impl GenericClient) -> Result<Option<Record>, Error> {
    if !recorded(client)? {
        return Ok(None);
    }
    let row = client.query_opt(
        &format!(
            "select {COLUMNS} from backstop.drills where outcome = 'passed'
              order by finished_at desc limit 1"
        ),
        &[&DRILL_LOCK_KEY],
    )?;
    Ok(row.as_ref().map(record))
}
