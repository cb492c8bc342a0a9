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
    /// Records the state before the first statement.
    pub fn start(client: &mut impl GenericClient) -> Result<Tracer, postgres::Error> {
        prepare_state(client)?;
        let (held, filenodes) = read_state(client)?;
        let existing = filenodes.keys().copied().collect();
        Ok(Tracer { held, filenodes, existing })
    }

    /// What the statement just run changed; moves the baseline on.
    pub fn step(
        &mut self,
        client: &mut impl GenericClient,
    ) -> Result<StatementTrace, postgres::Error> {
        let (held, nodes) = read_state(client)?;
        // A lock on a relation this transaction created blocks nobody.
        let locks = held
            .difference(&self.held)
            .filter(|l| self.existing.contains(&l.oid))
            .cloned()
            .collect();
        let rewritten = nodes
            .iter()
            .filter_map(|(oid, (name, node))| match self.filenodes.get(oid) {
                Some((_, before)) if before != node => Some(name.clone()),
                _ => None,
            })
            .collect();
        self.held = held;
        self.filenodes = nodes;
        Ok(StatementTrace { locks, rewritten })
    }
}

/// The session's prepared statement for [`STATE_QUERY`]: planned once per
/// session rather than after every statement of every migration.
const STATE_STATEMENT: &str = "backstop_lock_trace";

/// The relation locks the session holds and every user relation's storage
/// (filenode), in one query.
const STATE_QUERY: &str = "select c.oid, n.nspname || '.' || c.relname,
        coalesce(pg_relation_filenode(c.oid), 0), l.mode
   from pg_class c join pg_namespace n on n.oid = c.relnamespace
   left join pg_locks l on l.relation = c.oid and l.pid = pg_backend_pid()
        and l.granted and l.locktype = 'relation'
  where c.relkind in ('r', 'p', 'm')
    and n.nspname not in ('pg_catalog', 'information_schema', 'backstop', 'pg_toast')
    and n.nspname not like 'pg_temp%'";

/// Prepares [`STATE_QUERY`] in the session unless it already is.
fn prepare_state(client: &mut impl GenericClient) -> Result<(), postgres::Error> {
    let prepared = client
        .query_opt("select 1 from pg_prepared_statements where name = $1", &[&STATE_STATEMENT])?
        .is_some();
    if !prepared {
        client.batch_execute(&format!("PREPARE {STATE_STATEMENT} AS {STATE_QUERY}"))?;
    }
    Ok(())
}

type Filenodes = BTreeMap<u32, (String, u32)>;

/// The locks the session holds and the storage of every user relation.
fn read_state(
    client: &mut impl GenericClient,
) -> Result<(BTreeSet<LockTaken>, Filenodes), postgres::Error> {
    let rows = client.query(&format!("EXECUTE {STATE_STATEMENT}"), &[])?;
    let mut held = BTreeSet::new();
    let mut nodes = BTreeMap::new();
    for r in &rows {
        let (oid, relation): (u32, String) = (r.get(0), r.get(1));
        if let Some(mode) = r.get::<_, Option<String>>(3) {
            held.insert(LockTaken { oid, relation: relation.clone(), mode });
        }
        nodes.insert(oid, (relation, r.get(2)));
    }
    Ok((held, nodes))
}
