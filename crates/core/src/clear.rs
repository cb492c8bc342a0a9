//! Emptying the tables of a database: the target of a cutover that is
//! rolled back, before it is copied again. Every user table (or those
//! named) is emptied by one `TRUNCATE` of all of them in one transaction,
//! so foreign keys between them, cycles included, cannot stand in the way
//! and nothing is left half-cleared. The plan lists the tables in
//! foreign-key order (referring tables first) with their rows, and a
//! foreign key from a table outside the set stops it before anything is
//! touched. The migration tools' history tables stay unless named: the
//! schema stays, and so does the record of which migrations made it.

use crate::pg::db;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use postgres::Client;
use serde::Serialize;

use crate::pg::quote_qualified;

/// One table to empty.
#[derive(Debug, Clone, Serialize)]
pub struct Table {
    /// `schema.name`.
    pub table: String,
    #[serde(skip)]
    pub schema: String,
    #[serde(skip)]
    pub name: String,
    pub rows: i64,
}

/// What `clear` would do.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// Referring tables first, the tables they refer to after them.
    pub tables: Vec<Table>,
    /// Tables on a cycle of foreign keys (a self-reference counts).
    pub cycles: Vec<String>,
    /// Foreign keys into the set from tables outside it: `child → parent (constraint)`.
    pub outside: Vec<String>,
    /// The migration tools' history tables (each tool's default table, and
    /// any shaped as one: `adopt::history::tool_tables`), kept
    /// as Backstop's own is: the schema stays, and so does the record of
    /// what made it. Emptied only when named.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kept_histories: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ClearError {
    #[error(transparent)]
    Db(#[from] crate::pg::DbError),
    #[error("no table matches {0}; `backstop data compare` lists the tables")]
    NoSuchTable(String),
    #[error("tables outside the ones to clear refer to them, so emptying them would break {}; clear those too (--tables) or drop the keys first", .0.join(", "))]
    ReferredFromOutside(Vec<String>),
}

impl ClearError {
    /// 3 for the database, 2 for a table that is not there, 1 for tables
    /// that others refer to (the check found a problem).
    pub fn exit_code(&self) -> u8 {
        match self {
            ClearError::Db(_) => 3,
            ClearError::NoSuchTable(_) => 2,
            ClearError::ReferredFromOutside(_) => 1,
        }
    }
}

/// The user tables' foreign keys as (child, parent, constraint), by
/// `schema.name`; partitions count as their root table.
pub(crate) fn foreign_keys(
    client: &mut Client,
) -> Result<Vec<(String, String, String)>, postgres::Error> {
    Ok(client
        .query(
            "select format('%s.%s', cn.nspname, cc.relname), format('%s.%s', pn.nspname, pc.relname), k.conname::text
               from pg_constraint k
               join pg_class cc on cc.oid = coalesce(pg_partition_root(k.conrelid), k.conrelid)
               join pg_namespace cn on cn.oid = cc.relnamespace
               join pg_class pc on pc.oid = coalesce(pg_partition_root(k.confrelid), k.confrelid)
               join pg_namespace pn on pn.oid = pc.relnamespace
              where k.contype = 'f' and k.conparentid = 0",
            &[],
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
}

/// `tables` ordered so that a table comes before every table it refers to
/// (referring first), and the tables on a cycle. Ties keep name order.
pub(crate) fn referring_first(
    tables: &[String],
    keys: &[(String, String, String)],
) -> (Vec<String>, Vec<String>) {
    let set: BTreeSet<&str> = tables.iter().map(String::as_str).collect();
    // For each table, how many tables inside the set still refer to it.
    let mut referred: BTreeMap<&str, usize> = set.iter().map(|t| (*t, 0)).collect();
    let mut parents: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (child, parent, _) in keys {
        if set.contains(child.as_str()) && set.contains(parent.as_str()) {
            *referred.get_mut(parent.as_str()).expect("in the set") += 1;
            parents.entry(child.as_str()).or_default().push(parent.as_str());
        }
    }
    let mut order = Vec::new();
    let mut ready: BTreeSet<&str> =
        referred.iter().filter(|(_, n)| **n == 0).map(|(t, _)| *t).collect();
    while let Some(t) = ready.pop_first() {
        order.push(t.to_string());
        for p in parents.get(t).into_iter().flatten() {
            let n = referred.get_mut(p).expect("in the set");
            *n -= 1;
            if *n == 0 {
                ready.insert(p);
            }
        }
    }
    // What is left is on a cycle or referred to from one.
    let cycles: Vec<String> = referred
        .iter()
        .filter(|(t, _)| !order.iter().any(|o| o == *t))
        .map(|(t, _)| t.to_string())
        .collect();
    order.extend(cycles.iter().cloned());
    (order, cycles)
}

/// The plan for emptying every user table, or those named in `only`
/// (`schema.table` or `table`).
pub fn plan(client: &mut Client, only: &[String]) -> Result<Plan, ClearError> {
    let all = crate::pg::checksum::user_tables(client).map_err(db("listing the tables"))?;
    for o in only {
        if !all.iter().any(|(s, n)| *o == format!("{s}.{n}") || o == n) {
            return Err(ClearError::NoSuchTable(o.clone()));
        }
    }
    let histories: Vec<(String, String)> = if only.is_empty() {
        crate::adopt::history::tool_tables(client)
            .map_err(db("looking for the migration tools' history tables"))?
    } else {
        Vec::new()
    };
    let kept_histories: Vec<String> =
        all.iter().filter(|t| histories.contains(t)).map(|(s, n)| format!("{s}.{n}")).collect();
    let chosen: Vec<(String, String)> = all
        .into_iter()
        .filter(|t| !histories.contains(t))
        .filter(|(s, n)| only.is_empty() || only.iter().any(|o| *o == format!("{s}.{n}") || o == n))
        .collect();
    let names: Vec<String> = chosen.iter().map(|(s, n)| format!("{s}.{n}")).collect();
    let keys = foreign_keys(client).map_err(db("reading the foreign keys"))?;
    let outside: Vec<String> = keys
        .iter()
        .filter(|(c, p, _)| names.contains(p) && !names.contains(c))
        .map(|(c, p, k)| format!("{c} → {p} ({k})"))
        .collect();
    let (order, cycles) = referring_first(&names, &keys);
    let mut tables = Vec::new();
    for name in order {
        let (schema, table) = chosen
            .iter()
            .find(|(s, n)| format!("{s}.{n}") == name)
            .cloned()
            .expect("ordered from the chosen tables");
        let rows: i64 = client
            .query_one(
                &format!("select count(*) from {}", quote_qualified(Some(&schema), &table)),
                &[],
            )
            .map_err(db("counting the rows"))?
            .get(0);
        tables.push(Table { table: name, schema, name: table, rows });
    }
    Ok(Plan { tables, cycles, outside, kept_histories })
}

/// Empties the plan's tables in one transaction; the rows removed.
pub fn clear(client: &mut Client, plan: &Plan, lock_wait: Duration) -> Result<i64, ClearError> {
    if !plan.outside.is_empty() {
        return Err(ClearError::ReferredFromOutside(plan.outside.clone()));
    }
    if plan.tables.is_empty() {
        return Ok(0);
    }
    let list: Vec<String> =
        plan.tables.iter().map(|t| quote_qualified(Some(&t.schema), &t.name)).collect();
    let mut tx = client.transaction().map_err(db("starting the transaction"))?;
    tx.batch_execute(&format!("set local lock_timeout = {}", lock_wait.as_millis().max(1)))
        .map_err(db("setting the lock timeout"))?;
    // Counted again under the lock: what is removed is what was there.
    let mut rows = 0i64;
    tx.batch_execute(&format!("lock table {} in access exclusive mode", list.join(", ")))
        .map_err(db("locking the tables"))?;
    for t in &list {
        let n: i64 = tx
            .query_one(&format!("select count(*) from {t}"), &[])
            .map_err(db("counting the rows"))?
            .get(0);
        rows += n;
    }
    tx.batch_execute(&format!("truncate {}", list.join(", ")))
        .map_err(db("emptying the tables"))?;
    let details = serde_json::json!({ "tables": plan.tables, "rows": rows });
    crate::schema::events::record_if_logged(
        &mut tx,
        &crate::schema::events::Event { kind: "clear", outcome: "ok", versions: vec![], details },
    )
    .map_err(db("recording the clear"))?;
    tx.commit().map_err(db("committing"))?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(c: &str, p: &str) -> (String, String, String) {
        (c.into(), p.into(), format!("{c}_fk"))
    }

    #[test]
    fn referring_tables_come_first_and_cycles_are_named() {
        let tables: Vec<String> =
            ["public.a", "public.b", "public.c", "public.x", "public.y", "public.self"]
                .map(String::from)
                .to_vec();
        let keys = vec![
            key("public.c", "public.b"),
            key("public.b", "public.a"),
            key("public.x", "public.y"),
            key("public.y", "public.x"),
            key("public.self", "public.self"),
        ];
        let (order, cycles) = referring_first(&tables, &keys);
        let at = |t: &str| order.iter().position(|o| o == t).unwrap();
        assert!(at("public.c") < at("public.b") && at("public.b") < at("public.a"), "{order:?}");
        assert_eq!(cycles, ["public.self", "public.x", "public.y"]);
        assert_eq!(order.len(), tables.len());
    }
}
