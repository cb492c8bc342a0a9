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
    filenodes: BTreeMap<u32, (String, u32)>,
    /// Relations (OIDs) that existed before the first statement.
    existing: BTreeSet<u32>,
}

impl Tracer {
    /// Records the state before the first statement: the storage of every
    /// user relation, and the locks the session already holds.
    pub fn start(client: &mut impl GenericClient) -> Result<Tracer, postgres::Error> {
        let mut filenodes = BTreeMap::new();
        let mut prepared = false;
        for r in client.query_typed(RELATIONS, &[])? {
            match r.get(0) {
                0 => prepared = true,
                oid => _ = filenodes.insert(oid, (r.get(1), r.get(2))),
            }
        }
        if !prepared {
            client.batch_execute(&format!("PREPARE {LOCKED_STATEMENT} AS {LOCKED}"))?;
        }
        let existing = filenodes.keys().copied().collect();
        let mut tracer = Tracer { held: BTreeSet::new(), filenodes, existing };
        tracer.held = tracer.locked(client)?.0;
        Ok(tracer)
    }

    /// What the statement just run changed; moves the baseline on.
    pub fn step(
        &mut self,
        client: &mut impl GenericClient,
    ) -> Result<StatementTrace, postgres::Error> {
        let (held, nodes) = self.locked(client)?;
        // A lock on a relation this transaction created blocks nobody.
        let locks = held
            .difference(&self.held)
            .filter(|l| self.existing.contains(&l.oid))
            .cloned()
            .collect();
        let mut rewritten = Vec::new();
        for (oid, (name, node)) in nodes {
            let before = self.filenodes.insert(oid, (name.clone(), node));
            if before.is_some_and(|(_, before)| before != node) {
                rewritten.push(name);
            }
        }
        self.held = held;
        Ok(StatementTrace { locks, rewritten })
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
/// partitioned tables, materialized views), for both queries below.
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

/// Every user relation and its storage (filenode), and a row of OID 0
/// when the session has [`LOCKED_STATEMENT`] prepared.
const RELATIONS: &str = concat!(
    "select c.oid, n.nspname || '.' || c.relname, coalesce(pg_relation_filenode(c.oid), 0)
       from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where ",
    user_relations!(),
    "
     union all
     select 0::oid, '', 0::oid from pg_prepared_statements where name = '",
    locked_statement!(),
    "'"
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
