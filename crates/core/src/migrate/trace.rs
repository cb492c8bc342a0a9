//! Lock tracing, as eugene does it: after each statement of a migration
//! transaction, which locks the session newly holds on which relation, and
//! which relations got new storage (a rewrite). Locks taken in a transaction
//! are held until it ends, so a lock's cost is the time from the statement
//! that took it to COMMIT.

use std::collections::{BTreeMap, BTreeSet};

use postgres::GenericClient;
use serde::Serialize;

/// A lock a statement took.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct LockTaken {
    /// The relation's OID: a table dropped and created again under the same
    /// name is another relation.
    #[serde(skip)]
    pub oid: u32,
    /// `schema.relation`.
    pub relation: String,
    /// e.g. `AccessExclusiveLock`.
    pub mode: String,
}

impl LockTaken {
    /// Whether the lock blocks plain reads (`SELECT`) of the relation.
    pub fn blocks_reads(&self) -> bool {
        self.mode == "AccessExclusiveLock"
    }

    /// Whether the lock blocks writes (`INSERT`/`UPDATE`/`DELETE`).
    pub fn blocks_writes(&self) -> bool {
        matches!(
            self.mode.as_str(),
            "ShareLock" | "ShareRowExclusiveLock" | "ExclusiveLock" | "AccessExclusiveLock"
        )
    }
}

/// What one statement did to locks and storage.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StatementTrace {
    pub locks: Vec<LockTaken>,
    /// Relations whose storage was replaced (`schema.relation`).
    pub rewritten: Vec<String>,
}

/// The session's state between statements.
#[derive(Debug, Clone, Default)]
pub struct Tracer {
    held: BTreeSet<LockTaken>,
    /// The storage of each relation locked so far, as of the last step.
    filenodes: BTreeMap<u32, (String, u32)>,
    /// The highest OID and filenode of any relation before the first
    /// statement. PostgreSQL hands out both from one counter that only
    /// grows (until it wraps around, after four billion), so a relation
    /// above it was made in this transaction, and storage above it was
    /// given to a relation in this transaction (a rewrite).
    horizon: u32,
}

impl Tracer {
    /// Records the state before the first statement: the horizon of
    /// relations and their storage, and the locks the session already
    /// holds. A relation can be rewritten only under a lock held to the
    /// end of the transaction, so the storage of the others needs no
    /// look: listing every relation's for each transaction cost a
    /// rehearsal of a long history more than its statements.
    pub fn start(client: &mut impl GenericClient) -> Result<Tracer, postgres::Error> {
        let row = client.query_typed_one(START, &[])?;
        let (horizon, prepared): (u32, bool) = (row.get(0), row.get(1));
        if !prepared {
            client.batch_execute(&format!("PREPARE {LOCKED_STATEMENT} AS {LOCKED}"))?;
        }
        let mut tracer = Tracer { held: BTreeSet::new(), filenodes: BTreeMap::new(), horizon };
        let (held, nodes) = tracer.locked(client)?;
        (tracer.held, tracer.filenodes) = (held, nodes);
        Ok(tracer)
    }

    /// What the statement just run changed; moves the baseline on.
    pub fn step(
        &mut self,
        client: &mut impl GenericClient,
    ) -> Result<StatementTrace, postgres::Error> {
        let (held, nodes) = self.locked(client)?;
        // A lock on a relation this transaction created blocks nobody.
        let locks = held.difference(&self.held).filter(|l| self.existed(l.oid)).cloned().collect();
        let mut rewritten = Vec::new();
        for (oid, (name, node)) in nodes {
            let before = self.filenodes.insert(oid, (name.clone(), node));
            let moved = match before {
                Some((_, before)) => before != node,
                // Locked by this statement: its storage is new if it was
                // handed out in this transaction.
                None => self.existed(oid) && node > self.horizon,
            };
            if moved {
                rewritten.push(name);
            }
        }
        self.held = held;
        Ok(StatementTrace { locks, rewritten })
    }

    /// Whether the relation `oid` existed before the first statement.
    fn existed(&self, oid: u32) -> bool {
        oid <= self.horizon
    }

    /// The user relations the session holds a lock on, with their storage
    /// now. Only those can have been rewritten since the last look: a
    /// rewrite takes an `ACCESS EXCLUSIVE` lock, held until the end of
    /// the transaction, so the relations not locked need no look.
    fn locked(
        &self,
        client: &mut impl GenericClient,
    ) -> Result<(BTreeSet<LockTaken>, Filenodes), postgres::Error> {
        let mut held = BTreeSet::new();
        let mut nodes = BTreeMap::new();
        for r in client.query_typed(&format!("EXECUTE {LOCKED_STATEMENT}"), &[])? {
            let (oid, relation): (u32, String) = (r.get(0), r.get(1));
            held.insert(LockTaken { oid, relation: relation.clone(), mode: r.get(3) });
            nodes.insert(oid, (relation, r.get(2)));
        }
        Ok((held, nodes))
    }
}

/// The user relations that have storage of their own or may (tables,
/// partitioned tables, materialized views), for [`LOCKED`].
macro_rules! user_relations {
    () => {
        "c.relkind in ('r', 'p', 'm')
        and n.nspname not in ('pg_catalog', 'information_schema', 'backstop', 'pg_toast')
        and n.nspname not like 'pg_temp%'"
    };
}

/// The name of the session's prepared statement for [`LOCKED`], planned
/// once per session (a plan for each of the few statements of a
/// migration cost as much as running it).
macro_rules! locked_statement {
    () => {
        "backstop_locked"
    };
}
const LOCKED_STATEMENT: &str = locked_statement!();

/// The horizon of [`Tracer`] (the OIDs of `pg_class` and the filenodes,
/// each by its index), and whether the session has [`LOCKED_STATEMENT`]
/// prepared.
const START: &str = concat!(
    "select greatest((select max(oid) from pg_class),
                     (select max(relfilenode) from pg_class where reltablespace = 0),
                     (select max(m) from pg_tablespace t cross join lateral
                        (select max(relfilenode) m from pg_class where reltablespace = t.oid) c)),
            exists (select 1 from pg_prepared_statements where name = '",
    locked_statement!(),
    "')"
);

/// The user relations of this database the session holds a lock on:
/// storage and mode.
const LOCKED: &str = concat!(
    "select c.oid, n.nspname || '.' || c.relname, coalesce(pg_relation_filenode(c.oid), 0), l.mode
       from pg_locks l join pg_class c on c.oid = l.relation
       join pg_namespace n on n.oid = c.relnamespace
      where l.pid = pg_backend_pid() and l.granted and l.locktype = 'relation'
        and l.database = (select oid from pg_database where datname = current_database())
        and ",
    user_relations!()
);

type Filenodes = BTreeMap<u32, (String, u32)>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg::cluster::Cluster;

    /// The locks and rewrites of each statement, as the tracer tells them.
    fn traced(
        client: &mut postgres::Client,
        statements: &[&str],
    ) -> Vec<(Vec<String>, Vec<String>)> {
        let mut tx = client.transaction().unwrap();
        let mut tracer = Tracer::start(&mut tx).unwrap();
        let mut out = Vec::new();
        for sql in statements {
            tx.batch_execute(sql).unwrap();
            let step = tracer.step(&mut tx).unwrap();
            let locks = step.locks.iter().map(|l| format!("{} {}", l.relation, l.mode)).collect();
            out.push((locks, step.rewritten));
        }
        tx.rollback().unwrap();
        out
    }

    #[test]
    fn a_rewrite_is_told_from_a_change_in_place_and_new_tables_block_nobody() {
        let cluster = Cluster::start().unwrap();
        let mut client = cluster.connect("postgres").unwrap();
        for sql in [
            "create table t (a int); create table u (a int); insert into u values (1)",
            "alter table u alter column a type bigint",
            "vacuum full u",
        ] {
            client.batch_execute(sql).unwrap();
        }
        // Twice: the second session prepares nothing again.
        for _ in 0..2 {
            let steps = traced(
                &mut client,
                &[
                    "alter table t add column b int",
                    "alter table t alter column a type bigint",
                    "alter table t alter column b type bigint",
                    "create table n (a int)",
                    "alter table n alter column a type bigint",
                    // Rewritten before, in another transaction: its storage
                    // is above every OID made before it.
                    "alter table u add column b int",
                    "truncate u",
                ],
            );
            let rewritten: Vec<Vec<String>> = steps.iter().map(|(_, r)| r.clone()).collect();
            let t = || vec!["public.t".to_string()];
            let u = || vec!["public.u".to_string()];
            // A table made in the transaction is told rewritten too when
            // its storage moves after the statement that made it.
            let n = vec!["public.n".to_string()];
            assert_eq!(rewritten, [vec![], t(), t(), vec![], n, vec![], u()]);
            let locked = |i: usize| steps[i].0.clone();
            assert_eq!(locked(0), ["public.t AccessExclusiveLock"]);
            assert!(locked(3).is_empty() && locked(4).is_empty(), "{steps:?}");
            assert_eq!(locked(5), ["public.u AccessExclusiveLock"]);
        }
    }
}
