//! Stepping aside before names go back: where the up renamed or moved an
//! object and made a new one by its old name (a swap: `a` renamed to
//! `a_old` and a new `a`; `items` moved to `archive` and a new `items`),
//! the new one moves to a name nothing has before the old one gets its
//! name back. A table moved back brings its indexes and its columns'
//! sequences into its old schema too: the new table's of the same names
//! step aside with it.

use std::collections::HashMap;

use backstop_sql::rewrite::{ident, qualified};

use super::columns::PG_CONSTRAINT;
use super::ddl;
use super::picture::State;
use super::toc::{Entry, PG_CLASS};

/// The kinds that share one name space in a schema (relations, and the
/// types named alike) and can step aside by a rename.
const STEP_ASIDE: [&str; 8] =
    ["TABLE", "VIEW", "MATERIALIZED VIEW", "SEQUENCE", "INDEX", "FOREIGN TABLE", "TYPE", "DOMAIN"];

/// The objects of `after` holding a name a renamed object must get back:
/// the statements that move each aside first, to a name nothing has, and
/// each as it then is (the plan drops a new one by that name; one renamed
/// itself goes on from it). The statements, and the moved entries by
/// their index in `after`'s dump.
pub(super) fn aside(
    before: &State,
    after: &State,
    of_after: &HashMap<usize, usize>,
) -> (Vec<String>, HashMap<usize, Entry>) {
    let entries = &after.dump.entries;
    let mut statements = Vec::new();
    let mut moved = HashMap::new();
    let step = |h: usize, statements: &mut Vec<String>, moved: &mut HashMap<usize, Entry>| {
        if moved.contains_key(&h) {
            return;
        }
        let holder = &entries[h];
        let (table, name) = match holder.table_and_member() {
            Some((table, member)) if holder.kind == "CONSTRAINT" => (Some(table), member),
            _ => (None, holder.name.as_str()),
        };
        let free = |n: &str| {
            ![entries, &before.dump.entries]
                .iter()
                .any(|list| list.iter().any(|e| e.schema == holder.schema && relation_name(e) == n))
        };
        let mut n = 1;
        let mut new = format!("{name}__backstop_aside");
        while !free(&new) {
            n += 1;
            new = format!("{name}__backstop_aside_{n}");
        }
        // An index-backed constraint steps aside by its index, whose
        // rename renames it too (its table may have stepped aside first).
        let (to, sql) = match table {
            Some(table) => (
                Entry { name: format!("{table} {new}"), ..holder.clone() },
                Some(format!(
                    "ALTER INDEX {} RENAME TO {}",
                    qualified(&holder.schema, name),
                    ident(&new)
                )),
            ),
            None => {
                let to = Entry { name: new, ..holder.clone() };
                let sql = ddl::rename_back(&to, holder);
                (to, sql)
            }
        };
        if let Some(sql) = sql {
            statements.push(sql);
            moved.insert(h, to);
        }
    };
    for (&a, &b) in of_after {
        let (ae, be) = (&entries[a], &before.dump.entries[b]);
        if (ae.name == be.name && ae.schema == be.schema) || !STEP_ASIDE.contains(&ae.kind.as_str())
        {
            continue;
        }
        let holder = entries.iter().position(|o| {
            o.oid != ae.oid
                && o.class == ae.class
                && o.schema == be.schema
                && o.name == be.name
                && STEP_ASIDE.contains(&o.kind.as_str())
        });
        if let Some(h) = holder {
            step(h, &mut statements, &mut moved);
        }
        if ae.schema == be.schema || ae.kind != "TABLE" {
            continue;
        }
        for companion in companions(after, ae) {
            let holder = entries.iter().position(|o| {
                o.schema == be.schema && relation_name(o) == companion && o.kind != "TABLE"
            });
            if let Some(h) = holder {
                step(h, &mut statements, &mut moved);
            }
        }
    }
    (statements, moved)
}

/// The relation name an entry holds in its schema: an index-backed
/// constraint's is its index's, the constraint's own name.
fn relation_name(e: &Entry) -> &str {
    match e.table_and_member() {
        Some((_, member)) if e.kind == "CONSTRAINT" => member,
        _ if STEP_ASIDE.contains(&e.kind.as_str()) => &e.name,
        _ => "",
    }
}

/// The names of what moves with `table` to another schema: its indexes
/// (an index-backed constraint's too) and its columns' sequences.
fn companions<'a>(after: &'a State, table: &Entry) -> Vec<&'a str> {
    let catalog = &after.catalog;
    let belongs = |e: &Entry| match e.kind.as_str() {
        "INDEX" => catalog.owners.get(&(PG_CLASS, e.oid)) == Some(&table.oid),
        "CONSTRAINT" => catalog.owners.get(&(PG_CONSTRAINT, e.oid)) == Some(&table.oid),
        "SEQUENCE" => catalog.sequence_owners.get(&e.oid).is_some_and(|(t, _)| *t == table.oid),
        _ => false,
    };
    after.dump.entries.iter().filter(|e| belongs(e)).map(relation_name).collect()
}
