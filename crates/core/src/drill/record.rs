//! The drill's side of its record: the drill lock (two drills of one
//! database take turns, and never wait for a migration), what an earlier
//! drill that was killed left (marked interrupted, its directories
//! checked and removed), and when the next drill is due.

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use postgres::Client;
use serde::Serialize;

use super::{DrillError, Note, Observer};
use crate::pg::db;
use crate::pg::lock::DRILL_LOCK_KEY;
use crate::schema::drills::{self, Record};

/// The drill lock, held until dropped; the server drops it with a session
/// that dies.
pub(super) struct Lock<'c> {
    client: &'c mut Client,
}

impl<'c> Lock<'c> {
    /// Takes the lock, waiting up to `wait`; says once who holds it.
    pub fn take(
        client: &'c mut Client,
        wait: Duration,
        observer: &mut dyn Observer,
    ) -> Result<Lock<'c>, DrillError> {
        let started = Instant::now();
        let mut said = false;
        loop {
            let got: bool = client
                .query_one("select pg_try_advisory_lock($1)", &[&DRILL_LOCK_KEY])
                .map_err(db("taking the drill lock"))?
                .get(0);
            if got {
                return Ok(Lock { client });
            }
            let holder = crate::pg::lock::holder_of(client, DRILL_LOCK_KEY)
                .map_err(db("looking up the drill lock's holder"))?
                .map_or_else(|| "a session this role may not see".to_string(), |h| h.to_string());
            if !said {
                said = true;
                observer.note(Note::Waiting(&holder));
            }
            if started.elapsed() >= wait {
                return Err(DrillError::LockWait { waited: started.elapsed(), holder });
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl std::ops::Deref for Lock<'_> {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.client
    }
}

impl std::ops::DerefMut for Lock<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        self.client
    }
}

impl Drop for Lock<'_> {
    fn drop(&mut self) {
        let _ = self.client.execute("select pg_advisory_unlock($1)", &[&DRILL_LOCK_KEY]);
    }
}

/// Marks the drills killed before this one (`current`) interrupted and
/// deals with the directories they worked in: what was cleaned, in words.
pub(super) fn clean_interrupted(
    client: &mut Client,
    current: i64,
) -> Result<Vec<String>, DrillError> {
    crate::pg::cluster::reap_stale_clusters();
    let left = drills::mark_interrupted(client, current).map_err(db("marking killed drills"))?;
    let mut said = Vec::new();
    let host = nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok());
    for r in &left {
        let mut dirs = Vec::new();
        // Its directories are this host's only if it ran here.
        let here =
            host.as_deref().is_some_and(|h| r.by.rsplit_once('@').is_some_and(|(_, b)| b == h));
        if !here && !r.work_dirs.is_empty() {
            dirs.push(format!(
                "it ran on another host, where {} may be left",
                r.work_dirs.join(" and ")
            ));
        }
        for dir in r.work_dirs.iter().filter(|_| here) {
            let path = Path::new(dir);
            if !path.exists() {
                dirs.push(format!("{dir} was gone already"));
            } else if std::fs::remove_dir_all(path).is_ok() {
                dirs.push(format!("removed {dir}"));
            } else {
                dirs.push(format!("{dir} could not be removed; remove it by hand"));
            }
        }
        said.push(format!(
            "drill {} (started {} by {}) was interrupted{}; its record now says so{}",
            r.id,
            r.started_at.format("%Y-%m-%d %H:%M:%S UTC"),
            r.by,
            r.step.as_deref().map(|s| format!(" at step {s}")).unwrap_or_default(),
            if dirs.is_empty() { String::new() } else { format!(": {}", dirs.join(", ")) }
        ));
    }
    for dir in super::workspace::remove_stale() {
        said.push(format!("removed {}, the workspace of a drill that was killed", dir.display()));
    }
    Ok(said)
}

/// Whether a drill is due: no passed drill younger than `[drill] every`.
#[derive(Debug, Clone, Serialize)]
pub struct Due {
    pub overdue: bool,
    pub every_ms: u64,
    /// When the last passed drill finished.
    pub last_passed: Option<DateTime<Utc>>,
    /// The last drill, whatever its outcome: when it started, and how it went.
    pub last: Option<Record>,
    /// When the next drill is due (overdue: when it was).
    pub due_at: Option<DateTime<Utc>>,
}

impl Due {
    /// The line `status` shows: the last drill, and when the next is due;
    /// nothing where no drill was ever recorded.
    pub fn status_line(&self, now: DateTime<Utc>) -> Option<String> {
        let last = self.last.as_ref()?;
        let outcome = match last.step.as_deref() {
            Some(step) if last.outcome == "interrupted" => format!("interrupted at {step}"),
            _ => last.outcome.clone(),
        };
        let head = format!(
            "last drill: {outcome} {} (drill {}, {} ago)",
            last.started_at.format("%Y-%m-%d %H:%M UTC"),
            last.id,
            crate::kit::duration::age(now - last.started_at),
        );
        Some(match self.due_at {
            Some(due) if last.passed() && !self.overdue => {
                format!("{head}; the next is due in {}", crate::kit::duration::age(due - now))
            }
            _ => format!("{head}; {}", self.text(now)),
        })
    }

    /// One line for people.
    pub fn text(&self, now: DateTime<Utc>) -> String {
        let every = crate::kit::duration::human(Duration::from_millis(self.every_ms));
        let last = match &self.last {
            Some(r) if !r.passed() => format!(
                "; the last drill ({}) ran {} ago, {}",
                r.outcome,
                crate::kit::duration::age(now - r.started_at),
                r.started_at.format("%Y-%m-%d %H:%M UTC")
            ),
            _ => String::new(),
        };
        match (self.last_passed, self.due_at) {
            (None, _) if self.last.is_none() => {
                format!("drill overdue: no drill ever ran (one is asked every {every}); run `backstop backup drill`")
            }
            (None, _) => format!(
                "drill overdue: no drill has passed yet (one is asked every {every}){last}; run \
                 `backstop backup drill`"
            ),
            (Some(at), Some(due)) if self.overdue => format!(
                "drill overdue: the last passed drill ran {} ago ({}), more than every {every}, \
                 due since {}{last}; run `backstop backup drill`",
                crate::kit::duration::age(now - at),
                at.format("%Y-%m-%d %H:%M UTC"),
                due.format("%Y-%m-%d %H:%M UTC")
            ),
            (Some(at), due) => format!(
                "drill passed {} ago ({}); the next is due in {}{last}",
                crate::kit::duration::age(now - at),
                at.format("%Y-%m-%d %H:%M UTC"),
                due.map(|d| crate::kit::duration::age(d - now)).unwrap_or_default()
            ),
        }
    }
}

/// Whether a drill of the database `client` is on is due, by `every`.
pub fn due(client: &mut Client, every: Duration, now: DateTime<Utc>) -> Result<Due, DrillError> {
    let passed = drills::latest_passed(client).map_err(db("reading backstop.drills"))?;
    let last = drills::latest(client).map_err(db("reading backstop.drills"))?;
    let last_passed = passed.and_then(|r| r.finished_at);
    let every_chrono = chrono::Duration::from_std(every).unwrap_or(chrono::Duration::MAX);
    let due_at = last_passed.and_then(|at| at.checked_add_signed(every_chrono));
    Ok(Due {
        overdue: due_at.is_none_or(|d| d <= now),
        every_ms: every.as_millis() as u64,
        last_passed,
        last,
        due_at,
    })
}

/// The drills of the database `client` is on, newest first.
pub fn history(client: &mut Client, limit: i64) -> Result<Vec<Record>, DrillError> {
    Ok(drills::list(client, limit).map_err(db("reading backstop.drills"))?)
}
