//! Sampled copies, for databases too big to copy whole: a consistent
//! subset in which every foreign key is still satisfied.
//!
//! Everything is read in one exported snapshot of the source (a
//! repeatable-read, read-only transaction): `pg_dump --section=pre-data`
//! makes the tables, each table's subset is streamed with `COPY`, the
//! sequences are set, and `pg_dump --section=post-data` adds indexes,
//! constraints and triggers last, so the foreign keys are validated
//! against the subset: a subset that broke one would fail the copy.
//!
//! Which rows: each table keeps the rows whose key (primary key, else the
//! whole row) hashes below the percentage, deterministically, plus every
//! row a kept row of another table refers to. A table's set is written as
//! a CTE over its referencing tables' sets, so the closure is exact and
//! computed in the server. Tables on a foreign-key cycle (a self-reference
//! included) cannot be closed that way and are copied whole, as is
//! Backstop's own history; the report names them.

use crate::pg::db;
use std::collections::{BTreeMap, BTreeSet};

use postgres::{Client, Transaction};
use serde::Serialize;

use super::dump::{connect_source, pipe_dump, prepare_cluster};
use super::CopyError;
use crate::pg::cluster::Cluster;
use crate::pg::{quote_ident, quote_qualified};

/// What a sampled copy holds, for the report.
#[derive(Debug, Clone, Serialize)]
pub struct SampleInfo {
    pub percent: f64,
    /// Rows copied over all tables.
    pub rows: u64,
    /// User tables copied whole, with why (Backstop's history always is).
    pub whole_tables: Vec<String>,
}

/// The hash space a row's key falls in: `percent` of it is kept.
const BUCKETS: f64 = 1_048_576.0;

/// A table copied as one unit (a partitioned table with its partitions).
#[derive(Debug)]
struct Unit {
    schema: String,
    name: String,
    partitioned: bool,
    /// Columns that hold data (generated ones are computed again).
    columns: Vec<String>,
    /// Primary key columns, empty without one.
    key: Vec<String>,
    whole: Option<&'static str>,
}

impl Unit {
    fn qualified(&self) -> String {
        quote_qualified(Some(&self.schema), &self.name)
    }

    fn scan(&self) -> String {
        let only = if self.partitioned { "" } else { "ONLY " };
        format!("{only}{}", self.qualified())
    }
}

/// `a."x", a."y"` for `names`, or `"x", "y"` without an alias.
fn column_list(names: &[String], alias: Option<&str>) -> String {
    let prefix = alias.map(|a| format!("{a}.")).unwrap_or_default();
    names.iter().map(|c| format!("{prefix}{}", quote_ident(c))).collect::<Vec<_>>().join(", ")
}

/// A foreign key from `child`'s `columns` to `parent`'s `referenced`.
#[derive(Debug)]
struct Edge {
    child: usize,
    parent: usize,
    columns: Vec<String>,
    referenced: Vec<String>,
}

/// Fills database `base` of `cluster` with a `percent` sample of the source.
pub(crate) fn sample_into(
    source_url: &str,
    cluster: &Cluster,
    base: &str,
    percent: f64,
) -> Result<SampleInfo, CopyError> {
    prepare_cluster(source_url, cluster)?;
    cluster.create_database(base, None).map_err(CopyError::Cluster)?;
    let mut source = connect_source(source_url)?;
    let mut tx = source
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .map_err(db("starting the sample's snapshot"))?;
    // Rows a policy hides must fail the copy, not vanish from it.
    tx.batch_execute("SET LOCAL row_security = off").map_err(db("turning row security off"))?;
    let snapshot: String = tx
        .query_one("select pg_export_snapshot()", &[])
        .map_err(db("exporting the sample's snapshot"))?
        .get(0);
    let bin = cluster.bin();
    let target_url = cluster.url(base);
    let snapshot_arg = format!("--snapshot={snapshot}");
    let mut args = super::dump::left_out_args(&mut tx, true)?;
    args.push(snapshot_arg);
    let args = |section: &'static str| {
        std::iter::once(section).chain(args.iter().map(String::as_str)).collect::<Vec<_>>()
    };
    pipe_dump(bin, source_url, &target_url, &args("--section=pre-data"))?;

    let (units, edges) = read_graph(&mut tx)?;
    let mut target = cluster.connect(base).map_err(CopyError::Cluster)?;
    let mut rows = 0;
    for i in 0..units.len() {
        rows += copy_unit(&mut tx, &mut target, &units, &edges, i, percent)?;
    }
    set_sequences(&mut tx, &mut target)?;
    drop(target);
    pipe_dump(bin, source_url, &target_url, &args("--section=post-data"))?;
    tx.commit().map_err(db("ending the sample's snapshot"))?;
    // Backstop's own history is always whole; the report names user tables.
    let whole_tables = units
        .iter()
        .filter(|u| u.schema != "backstop")
        .filter_map(|u| u.whole.map(|why| format!("{}.{} ({why})", u.schema, u.name)))
        .collect();
    Ok(SampleInfo { percent, rows, whole_tables })
}

/// The tables to copy and the foreign keys between them; tables on a
/// cycle are marked whole.
fn read_graph(tx: &mut Transaction<'_>) -> Result<(Vec<Unit>, Vec<Edge>), CopyError> {
    let rows = tx
        .query(
            "select c.oid, n.nspname::text, c.relname::text, c.relkind = 'p',
                    array(select a.attname::text from pg_attribute a
                           where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
                             and a.attgenerated = '' order by a.attnum),
                    array(select a.attname::text from pg_index i
                            join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey)
                           where i.indrelid = c.oid and i.indisprimary
                           order by array_position(i.indkey::int2[], a.attnum))
               from pg_class c join pg_namespace n on n.oid = c.relnamespace
              where c.relkind in ('r', 'p') and not c.relispartition
                and has_table_privilege(c.oid, 'SELECT')
                and n.nspname not in ('pg_catalog', 'information_schema', 'pg_toast')
                and n.nspname not like 'pg_temp%'
              order by 2, 3",
            &[],
        )
        .map_err(db("listing the tables to sample"))?;
    let mut index = BTreeMap::new();
    let mut units = Vec::new();
    for r in &rows {
        let schema: String = r.get(1);
        let columns: Vec<String> = r.get(4);
        let whole = if schema == "backstop" {
            Some("Backstop's history")
        } else if columns.is_empty() {
            Some("no columns to sample by")
        } else {
            None
        };
        index.insert(r.get::<_, u32>(0), units.len());
        units.push(Unit {
            schema,
            name: r.get(2),
            partitioned: r.get(3),
            columns,
            key: r.get(5),
            whole,
        });
    }
    let fks = tx
        .query(
            "select coalesce(pg_partition_root(k.conrelid)::oid, k.conrelid),
                    coalesce(pg_partition_root(k.confrelid)::oid, k.confrelid),
                    array(select a.attname::text from unnest(k.conkey) with ordinality u(n, i)
                            join pg_attribute a on a.attrelid = k.conrelid and a.attnum = u.n
                           order by u.i),
                    array(select a.attname::text from unnest(k.confkey) with ordinality u(n, i)
                            join pg_attribute a on a.attrelid = k.confrelid and a.attnum = u.n
                           order by u.i)
               from pg_constraint k where k.contype = 'f' and k.conparentid = 0",
            &[],
        )
        .map_err(db("listing the foreign keys"))?;
    let edges: Vec<Edge> = fks
        .iter()
        .filter_map(|r| {
            Some(Edge {
                child: *index.get(&r.get::<_, u32>(0))?,
                parent: *index.get(&r.get::<_, u32>(1))?,
                columns: r.get(2),
                referenced: r.get(3),
            })
        })
        .collect();
    for i in on_cycles(units.len(), &edges) {
        units[i].whole.get_or_insert("on a foreign-key cycle");
    }
    Ok((units, edges))
}

/// The tables that lie on a cycle of references (a self-reference counts).
fn on_cycles(n: usize, edges: &[Edge]) -> BTreeSet<usize> {
    let mut parents = vec![Vec::new(); n];
    for e in edges {
        parents[e.child].push(e.parent);
    }
    // A table is on a cycle when it can reach itself.
    let mut out = BTreeSet::new();
    for start in 0..n {
        let mut seen = BTreeSet::new();
        let mut todo = parents[start].clone();
        while let Some(t) = todo.pop() {
            if t == start {
                out.insert(start);
                break;
            }
            if seen.insert(t) {
                todo.extend(&parents[t]);
            }
        }
    }
    out
}

/// For each table, the foreign keys that refer to it.
fn referring(n: usize, edges: &[Edge]) -> Vec<Vec<&Edge>> {
    let mut out = vec![Vec::new(); n];
    for e in edges {
        out[e.parent].push(e);
    }
    out
}

/// The query whose rows are unit `i`'s share of the sample: one CTE per
/// table whose rows decide it, those that refer to it first.
fn sample_query(units: &[Unit], edges: &[Edge], i: usize, percent: f64) -> String {
    let referring = referring(units.len(), edges);
    let mut order = Vec::new();
    visit(units, &referring, i, &mut BTreeSet::new(), &mut order);
    let threshold = (percent / 100.0 * BUCKETS).round() as i64;
    let ctes: Vec<String> = order
        .iter()
        .map(|&t| {
            let u = &units[t];
            let body = if u.whole.is_some() {
                format!("SELECT t.* FROM {} t", u.scan())
            } else {
                let key = if u.key.is_empty() { &u.columns } else { &u.key };
                let mut kept = vec![format!(
                    "(hashtextextended(row({})::text, 0) & {}) < {threshold}",
                    column_list(key, Some("t")),
                    BUCKETS as i64 - 1
                )];
                for e in &referring[t] {
                    kept.push(format!(
                        "({}) IN (SELECT {} FROM s{} c)",
                        column_list(&e.referenced, Some("t")),
                        column_list(&e.columns, Some("c")),
                        e.child
                    ));
                }
                format!("SELECT t.* FROM {} t WHERE {}", u.scan(), kept.join("\n   OR "))
            };
            format!("s{t} AS ({body})")
        })
        .collect();
    format!(
        "WITH {}\nSELECT {} FROM s{i} t",
        ctes.join(",\n"),
        column_list(&units[i].columns, Some("t"))
    )
}

/// Depth-first: the tables referring to `t` (transitively) before `t`.
/// A whole table's set depends on nothing.
fn visit(
    units: &[Unit],
    referring: &[Vec<&Edge>],
    t: usize,
    seen: &mut BTreeSet<usize>,
    order: &mut Vec<usize>,
) {
    if !seen.insert(t) {
        return;
    }
    if units[t].whole.is_none() {
        for e in &referring[t] {
            visit(units, referring, e.child, seen, order);
        }
    }
    order.push(t);
}

/// Streams unit `i`'s rows from the source into the copy; returns how many.
fn copy_unit(
    tx: &mut Transaction<'_>,
    target: &mut Client,
    units: &[Unit],
    edges: &[Edge],
    i: usize,
    percent: f64,
) -> Result<u64, CopyError> {
    let u = &units[i];
    let failed = |e: postgres::Error| CopyError::Clone {
        reason: format!("sampling {}.{}: {}", u.schema, u.name, crate::pg::conn::error_chain(&e)),
    };
    let query = sample_query(units, edges, i, percent);
    let mut reader = tx.copy_out(&format!("COPY ({query}) TO STDOUT")).map_err(failed)?;
    let mut writer = target
        .copy_in(&format!("COPY {} ({}) FROM STDIN", u.qualified(), column_list(&u.columns, None)))
        .map_err(failed)?;
    std::io::copy(&mut reader, &mut writer).map_err(|e| CopyError::Clone {
        reason: format!("sampling {}.{}: {e}", u.schema, u.name),
    })?;
    drop(reader);
    writer.finish().map_err(failed)
}

/// Sets every sequence of the copy to the source's value, so new rows get
/// new ids there too.
fn set_sequences(tx: &mut Transaction<'_>, target: &mut Client) -> Result<(), CopyError> {
    let rows = tx
        .query(
            "select format('%I.%I', schemaname, sequencename), last_value
               from pg_sequences where last_value is not null",
            &[],
        )
        .map_err(db("reading the sequences"))?;
    for r in rows {
        let (name, value): (String, i64) = (r.get(0), r.get(1));
        target
            .execute("select setval($1::text::regclass, $2, true)", &[&name, &value])
            .map_err(db("setting the copy's sequences"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(name: &str, key: &[&str]) -> Unit {
        Unit {
            schema: "public".into(),
            name: name.into(),
            partitioned: false,
            columns: vec!["id".into(), "parent_id".into()],
            key: key.iter().map(|k| k.to_string()).collect(),
            whole: None,
        }
    }

    fn edge(child: usize, parent: usize) -> Edge {
        Edge { child, parent, columns: vec!["parent_id".into()], referenced: vec!["id".into()] }
    }

    #[test]
    fn cycles_and_self_references_are_found() {
        // 0 -> 1 -> 2 -> 1 (cycle of 1 and 2), 3 -> 3 (self), 4 -> 0.
        let edges = [edge(0, 1), edge(1, 2), edge(2, 1), edge(3, 3), edge(4, 0)];
        assert_eq!(on_cycles(5, &edges), BTreeSet::from([1, 2, 3]));
    }

    #[test]
    fn a_parent_keeps_what_its_children_refer_to_and_shared_children_are_one_cte() {
        // users (0) <- orders (1) <- items (2), and users <- items directly: a diamond.
        let units = vec![unit("users", &["id"]), unit("orders", &["id"]), unit("items", &[])];
        let edges = vec![edge(1, 0), edge(2, 1), edge(2, 0)];
        let q = sample_query(&units, &edges, 0, 10.0);
        assert_eq!(q.matches("s2 AS (").count(), 1, "{q}");
        assert!(q.find("s2 AS (").unwrap() < q.find("s1 AS (").unwrap(), "{q}");
        assert!(q.contains(r#"(t."id") IN (SELECT c."parent_id" FROM s1 c)"#), "{q}");
        assert!(
            q.contains("row(t.\"id\", t.\"parent_id\")::text"),
            "a keyless table hashes the whole row: {q}"
        );
        assert!(q.contains("< 104858"), "{q}");
    }
}
