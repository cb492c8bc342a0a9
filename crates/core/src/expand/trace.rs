//! The lock trace of an expand, its contract or its rollback: the table
//! locks each of Backstop's own transactions held, read from `pg_locks` at
//! its end (before its commit), with how long the transaction held them.
//! Kept by step (`expand`, `backfill`, `validate`, `contract`,
//! `rollback`), relation and mode: how many transactions, the longest.
//! What blocks the application's writes is a mode stronger than ROW
//! EXCLUSIVE; the trace says the longest such hold.

use std::time::Duration;

use postgres::GenericClient;
use serde::Serialize;

/// One step's hold of one mode on one relation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Held {
    pub step: String,
    pub relation: String,
    pub mode: String,
    /// Transactions of the step that held it.
    pub transactions: u64,
    pub longest_ms: f64,
}

/// The trace, in the order the holds were first seen.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LockTrace {
    pub held: Vec<Held>,
}

/// Modes that block an insert, update or delete of the relation.
const BLOCKS_WRITES: &[&str] =
    &["ShareLock", "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock"];

impl LockTrace {
    /// Adds what a transaction of `step` held, for `held` long.
    pub fn note(&mut self, step: &str, locks: Vec<(String, String)>, held: Duration) {
        let ms = held.as_secs_f64() * 1000.0;
        for (relation, mode) in locks {
            let same = |h: &&mut Held| h.step == step && h.relation == relation && h.mode == mode;
            match self.held.iter_mut().find(same) {
                Some(h) => {
                    h.transactions += 1;
                    h.longest_ms = h.longest_ms.max(ms);
                }
                None => self.held.push(Held {
                    step: step.into(),
                    relation,
                    mode,
                    transactions: 1,
                    longest_ms: ms,
                }),
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// The longest hold of a mode that blocks writes, if any.
    pub fn longest_blocking(&self) -> Option<&Held> {
        self.held
            .iter()
            .filter(|h| BLOCKS_WRITES.contains(&h.mode.as_str()))
            .max_by(|a, b| a.longest_ms.total_cmp(&b.longest_ms))
    }

    /// Whether a hold of `step` blocks writes.
    pub fn blocks_writes(&self, step: &str) -> bool {
        self.held.iter().any(|h| h.step == step && BLOCKS_WRITES.contains(&h.mode.as_str()))
    }
}

/// The relation locks this session holds now, on relations outside the
/// system's schemas: (schema.relation, mode).
pub fn held(client: &mut impl GenericClient) -> Result<Vec<(String, String)>, postgres::Error> {
    let rows = client.query(
        "select n.nspname || '.' || c.relname, l.mode
           from pg_locks l
           join pg_class c on c.oid = l.relation
           join pg_namespace n on n.oid = c.relnamespace
          where l.pid = pg_backend_pid() and l.locktype = 'relation' and l.granted
            and n.nspname not in ('pg_catalog', 'information_schema', 'backstop')
            and n.nspname not like 'pg\\_toast%' and c.relkind in ('r', 'p')
          order by 1, 2",
        &[],
    )?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}
