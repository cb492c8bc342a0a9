//! The lock trace of a rehearsal: a progress observer that collects what
//! each statement of an up locked while passing every note on, and turns
//! the traces of one committed up into the report's lock rows.

use std::time::Duration;

use super::ms;
use super::outcome::LockRow;
use crate::migrate::trace::StatementTrace;
use crate::migrate::{Direction, Note, Progress};
use crate::pg::tracked::Written;

/// One traced statement of an up: version, 1-based statement number, SQL,
/// how long it ran, and what it locked.
type Traced = (String, usize, String, Duration, StatementTrace);

/// Collects lock traces while passing notes on to the caller's progress.
pub(super) struct Tracing<'p> {
    pub(super) inner: &'p mut dyn Progress,
    statements: Vec<Traced>,
    /// Relations the statements since the last take may have written rows
    /// of, from the locks they took.
    written: Written,
    /// Set while a down and the up after it run: what they lock is
    /// forgotten, so it is not traced.
    untraced: bool,
}

impl<'p> Tracing<'p> {
    pub(super) fn new(inner: &'p mut dyn Progress) -> Tracing<'p> {
        Tracing { inner, statements: Vec::new(), written: Written::None, untraced: false }
    }

    /// The relations written since the last take.
    pub(super) fn take_written(&mut self) -> Written {
        std::mem::take(&mut self.written)
    }
}

/// Whether a lock lets its holder write rows (`RowExclusiveLock` and
/// stronger; `ShareLock` too, which `CREATE INDEX` takes: more than needed
/// is only slower).
fn writes(mode: &str) -> bool {
    !matches!(mode, "AccessShareLock" | "RowShareLock")
}

impl Progress for Tracing<'_> {
    fn note(&mut self, note: Note<'_>) {
        if let Note::Statement { trace, .. } = &note {
            // A statement not traced committed on its own: anything may
            // have been written.
            let written = match trace {
                Some(t) => Written::Some(
                    t.locks.iter().filter(|l| writes(&l.mode)).map(|l| l.oid).collect(),
                ),
                None => Written::All,
            };
            self.written = std::mem::take(&mut self.written).and(written);
        }
        if let Note::Statement {
            version,
            direction: Direction::Up,
            index,
            sql,
            elapsed,
            trace: Some(trace),
            ..
        } = &note
        {
            self.statements.push((
                version.to_string(),
                *index + 1,
                sql.to_string(),
                *elapsed,
                (*trace).clone(),
            ));
        }
        self.inner.note(note);
    }

    fn trace_locks(&self) -> bool {
        !self.untraced
    }

    fn beside(&mut self) -> Box<dyn Progress + Send> {
        self.inner.beside()
    }

    fn rejoin(&mut self) {
        self.inner.rejoin()
    }

    fn take_written(&mut self) -> Option<Written> {
        Some(Tracing::take_written(self))
    }
}

impl Tracing<'_> {
    /// Turns the traces of one committed up into lock rows.
    pub(super) fn drain_locks(&mut self) -> Vec<LockRow> {
        rows_of(&std::mem::take(&mut self.statements))
    }

    /// Runs a down and the up after it with no lock trace (the
    /// migration's locks are taken from its first up, and the report
    /// lists them once: a trace after each of their statements cost more
    /// than the statements), then forgets what they noted.
    pub(super) fn untraced<R>(&mut self, run: impl FnOnce(&mut Self) -> R) -> R {
        self.untraced = true;
        let out = run(self);
        self.untraced = false;
        self.statements.clear();
        self.written = Written::None;
        out
    }
}

/// The lock rows of the statements of one transaction, in order.
fn rows_of(stmts: &[Traced]) -> Vec<LockRow> {
    let mut rows = Vec::new();
    for (i, (version, statement, sql, _, trace)) in stmts.iter().enumerate() {
        // Held from this statement until the group's COMMIT.
        let held: Duration = stmts[i..].iter().map(|s| s.3).sum();
        for lock in &trace.locks {
            rows.push(LockRow {
                version: version.clone(),
                statement: *statement,
                sql: sql.lines().next().unwrap_or_default().to_string(),
                relation: lock.relation.clone(),
                mode: lock.mode.clone(),
                blocks_reads: lock.blocks_reads(),
                blocks_writes: lock.blocks_writes(),
                rewritten: trace.rewritten.contains(&lock.relation),
                held_ms: ms(held),
            });
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate::trace::LockTaken;

    fn lock(relation: &str, mode: &str) -> LockTaken {
        LockTaken { oid: 1, relation: relation.into(), mode: mode.into() }
    }

    fn traced(
        statement: usize,
        sql: &str,
        ms: u64,
        locks: Vec<LockTaken>,
        rewritten: &[&str],
    ) -> Traced {
        let trace =
            StatementTrace { locks, rewritten: rewritten.iter().map(|r| r.to_string()).collect() };
        ("1".into(), statement, sql.into(), Duration::from_millis(ms), trace)
    }

    #[test]
    fn a_lock_is_held_from_its_statement_to_the_commit() {
        let stmts = [
            traced(
                1,
                "ALTER TABLE t\n  ADD COLUMN c int",
                100,
                vec![lock("public.t", "AccessExclusiveLock")],
                &["public.t"],
            ),
            traced(2, "SELECT 1", 20, Vec::new(), &[]),
            traced(3, "CREATE INDEX ON u (c)", 5, vec![lock("public.u", "ShareLock")], &[]),
        ];
        let rows = rows_of(&stmts);
        assert_eq!(rows.len(), 2, "a statement without locks gives no row");
        assert_eq!(rows[0].sql, "ALTER TABLE t", "only the first line of the SQL");
        assert_eq!((rows[0].statement, rows[0].held_ms), (1, 125));
        assert!(rows[0].blocks_reads && rows[0].blocks_writes && rows[0].rewritten);
        assert_eq!((rows[1].statement, rows[1].held_ms), (3, 5));
        assert!(!rows[1].blocks_reads && rows[1].blocks_writes && !rows[1].rewritten);
    }
}
