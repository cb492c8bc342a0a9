//! The two pictures a down is worked out from, and how their parts are
//! paired: entries of the dumps by catalog identity, then by name; tables
//! by OID, then name; columns by position, then name. [`Work`] carries
//! what the steps of [`super::plan`] share.

use std::collections::{HashMap, HashSet};

use backstop_sql::rewrite;

use super::catalog::{Catalog, Column, Table};
use super::ddl;
use super::toc::{Dump, Entry};

/// One side of the comparison.
pub(super) struct State {
    pub dump: Dump,
    pub catalog: Catalog,
}

/// A computed down before it is proved.
#[derive(Debug, Default, Clone)]
pub(super) struct Plan {
    pub statements: Vec<String>,
    /// What cannot come back from DDL, each object named.
    pub loses: Vec<String>,
    pub notes: Vec<String>,
    /// Objects of kinds no down here handles, which the up made, changed
    /// or dropped: the down is unprovable, whatever its proof says.
    pub unheld: Vec<String>,
}

impl Plan {
    pub fn push(&mut self, sql: impl Into<String>) {
        let sql = sql.into();
        for s in rewrite::statements(&sql).unwrap_or_else(|| vec![sql.clone()]) {
            self.statements.push(s);
        }
    }

    /// Every statement of an entry's definition.
    pub fn push_entry(&mut self, e: &Entry) {
        self.push(e.sql.clone());
    }
}

/// The entries of `before` and `after` that are one object.
pub(super) struct Pairs {
    /// after index → before index.
    pub of_after: HashMap<usize, usize>,
    /// before index → after index.
    pub of_before: HashMap<usize, usize>,
}

pub(super) fn pair(before: &Dump, after: &Dump) -> Pairs {
    let mut by_identity: HashMap<String, usize> = HashMap::new();
    let mut by_name: HashMap<String, usize> = HashMap::new();
    for (i, e) in before.entries.iter().enumerate() {
        by_identity.insert(e.identity(before), i);
        by_name.insert(e.by_name(), i);
    }
    let mut pairs = Pairs { of_after: HashMap::new(), of_before: HashMap::new() };
    for (i, e) in after.entries.iter().enumerate() {
        if let Some(&b) = by_identity.get(&e.identity(after)) {
            pairs.of_after.insert(i, b);
            pairs.of_before.insert(b, i);
        }
    }
    // What a down made again has new OIDs: the same kind and name is the
    // same object.
    for (i, e) in after.entries.iter().enumerate() {
        if pairs.of_after.contains_key(&i) {
            continue;
        }
        if let Some(&b) = by_name.get(&e.by_name()) {
            if !pairs.of_before.contains_key(&b) {
                pairs.of_after.insert(i, b);
                pairs.of_before.insert(b, i);
            }
        }
    }
    pairs
}

/// The tables of `before` and `after` that are one table: by OID, else by
/// name.
pub(super) fn table_pairs<'c>(
    before: &'c Catalog,
    after: &'c Catalog,
) -> Vec<(&'c Table, &'c Table)> {
    let mut out = Vec::new();
    let mut taken = HashSet::new();
    for a in &after.tables {
        if let Some(b) = before.table(a.oid) {
            out.push((b, a));
            taken.insert(b.oid);
        }
    }
    for a in &after.tables {
        if before.table(a.oid).is_some() {
            continue;
        }
        if let Some(b) = before.table_named(&a.schema, &a.name).filter(|b| !taken.contains(&b.oid))
        {
            out.push((b, a));
            taken.insert(b.oid);
        }
    }
    out
}

/// Columns of one table pair that are one column: by position when the
/// table is the same object, then by name among the rest (a column a down
/// added back has a new position).
pub(super) fn column_pairs<'t>(
    before: &'t Table,
    after: &'t Table,
) -> Vec<(&'t Column, &'t Column)> {
    let mut out: Vec<(&Column, &Column)> = Vec::new();
    if before.oid == after.oid {
        for a in &after.columns {
            if let Some(b) = before.columns.iter().find(|b| b.attnum == a.attnum) {
                out.push((b, a));
            }
        }
    }
    for a in &after.columns {
        if out.iter().any(|(_, x)| x.attnum == a.attnum) {
            continue;
        }
        let free = |b: &&Column| b.name == a.name && !out.iter().any(|(x, _)| x.attnum == b.attnum);
        if let Some(b) = before.columns.iter().find(free) {
            out.push((b, a));
        }
    }
    out
}

/// The up's `USING` expressions of column type changes, by (table name,
/// column name) as the up writes them.
pub(super) type Usings = HashMap<(String, String), String>;

/// What the comparison found, shared by the steps.
pub(super) struct Work<'s> {
    pub before: &'s State,
    pub after: &'s State,
    pub pairs: Pairs,
    /// After's tables that stay (paired), by OID.
    pub kept_tables: HashSet<u32>,
    /// After's relations (by OID) to drop and make again from `before`.
    pub rebuild: HashSet<u32>,
    /// After's objects, by (catalog, OID), to drop and make again around
    /// what the down changes (see `super::remade_around`).
    pub refit: HashSet<(u32, u32)>,
    /// After's column defaults, (table OID, column number), to drop and set
    /// again around what the down changes.
    pub redefault: HashSet<(u32, i16)>,
    /// Before's entries (by index) made ahead of the columns that need them.
    pub early: HashSet<usize>,
    /// The up's `USING` expressions of column type changes, by (table,
    /// column) as the up names them.
    pub usings: Usings,
    /// Before's entries (by index) put back in place (an index's storage
    /// parameters), not made again.
    pub in_place: HashSet<usize>,
    pub plan: Plan,
}

impl Work<'_> {
    /// Whether `e` is part of a table that stays, which the catalog
    /// comparison puts back (defaults, row security, identity).
    pub fn table_part(&self, dump: &Dump, e: &Entry, after_side: bool) -> bool {
        // A partition's index goes with its parent's (none on the before
        // side, where it is made again with its attachment).
        if after_side && dump.attached(e) {
            return true;
        }
        if !ddl::part_of_table(e) {
            return false;
        }
        let owners =
            if after_side { &self.after.catalog.owners } else { &self.before.catalog.owners };
        let Some(parent) = dump.parent_of(e, owners) else { return false };
        if after_side {
            self.kept_tables.contains(&parent.oid)
        } else {
            let paired = dump
                .entries
                .iter()
                .position(|x| x.id == parent.id)
                .and_then(|i| self.pairs.of_before.get(&i));
            paired.is_some_and(|a| self.kept_tables.contains(&self.after.dump.entries[*a].oid))
        }
    }

    pub fn created(&self, i: usize) -> bool {
        !self.pairs.of_after.contains_key(&i)
    }

    /// The before entry paired with after entry `i`, when their
    /// definitions differ.
    pub fn changed(&self, i: usize) -> Option<&Entry> {
        let b = &self.before.dump.entries[*self.pairs.of_after.get(&i)?];
        (b.sql != self.after.dump.entries[i].sql).then_some(b)
    }

    /// The statement that drops `e`, an object of the state after the up.
    pub fn drop_after(&self, e: &Entry) -> Option<String> {
        ddl::drop_of(e).or_else(|| {
            super::objects::drop_of(e, self.after.catalog.objects.get(&(e.class, e.oid)))
        })
    }

    pub fn parent_created(&self, e: &Entry) -> bool {
        let dump = &self.after.dump;
        dump.parent_of(e, &self.after.catalog.owners)
            .and_then(|p| dump.entries.iter().position(|x| x.id == p.id))
            .is_some_and(|i| self.created(i))
    }
}

pub(super) fn is_view(kind: &str) -> bool {
    kind == "VIEW" || kind == "MATERIALIZED VIEW"
}
