//! What pg_dump writes about a table besides its columns' types and its
//! constraints, read from the catalog and put back by a down: storage
//! parameters (`ALTER TABLE … SET (fillfactor = 70)`, the TOAST table's as
//! `toast.…`), the replica identity, whether it is logged, the tables it
//! inherits from, and each column's statistics target, storage,
//! compression and options.

use std::collections::HashMap;

use backstop_sql::rewrite::{ident as quote_ident, literal as quote_literal};
use postgres::GenericClient;

use super::catalog::{Column, Table};

/// Reads the settings of `tables` (read just before, with their columns).
pub(super) fn read_settings(
    client: &mut impl GenericClient,
    tables: &mut [Table],
) -> Result<(), postgres::Error> {
    let index: HashMap<u32, usize> = tables.iter().enumerate().map(|(i, t)| (t.oid, i)).collect();
    for row in client.query(
        "select c.oid, coalesce(c.reloptions, '{}'), coalesce(t.reloptions, '{}'), c.relreplident::text,
                (select quote_ident(i.relname) from pg_index x join pg_class i on i.oid = x.indexrelid
                  where x.indrelid = c.oid and x.indisreplident),
                array(select quote_ident(pn.nspname) || '.' || quote_ident(p.relname)
                        from pg_inherits h join pg_class p on p.oid = h.inhparent
                        join pg_namespace pn on pn.oid = p.relnamespace
                       where h.inhrelid = c.oid and not c.relispartition order by h.inhseqno),
                c.relpersistence::text
           from pg_class c left join pg_class t on t.oid = c.reltoastrelid
          where c.oid = any($1::oid[])",
        &[&tables.iter().map(|t| t.oid).collect::<Vec<u32>>()],
    )? {
        let Some(&i) = index.get(&row.get::<_, u32>(0)) else { continue };
        let t = &mut tables[i];
        t.options = row.get(1);
        t.toast_options = row.get(2);
        t.replica_identity = row.get(3);
        t.replica_index = row.get(4);
        t.parents = row.get(5);
        t.persistence = row.get(6);
    }
    for row in client.query(
        "select a.attrelid, a.attnum,
                case when coalesce(a.attstattarget, -1) >= 0 then a.attstattarget::int end,
                a.attstorage::text,
                nullif(a.attcompression::text, ''), coalesce(a.attoptions, '{}')
           from pg_attribute a
          where a.attrelid = any($1::oid[]) and a.attnum > 0 and not a.attisdropped",
        &[&tables.iter().map(|t| t.oid).collect::<Vec<u32>>()],
    )? {
        let Some(&i) = index.get(&row.get::<_, u32>(0)) else { continue };
        let attnum: i16 = row.get(1);
        let Some(c) = tables[i].columns.iter_mut().find(|c| c.attnum == attnum) else { continue };
        c.statistics = row.get(2);
        c.storage = row.get(3);
        c.compression = row.get(4);
        c.options = row.get(5);
    }
    Ok(())
}

/// `key=value` items as `key` and `key = 'value'`.
fn parts(items: &[String]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|i| match i.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (i.clone(), String::new()),
        })
        .collect()
}

/// `RESET (…)` of the keys `now` has and `was` has not, then `SET (…)` of
/// `was`'s items that `now` lacks or holds otherwise; `prefix` is `toast.`
/// for a TOAST table's.
fn options_back(now: &[String], was: &[String], prefix: &str) -> (Vec<String>, Vec<String>) {
    let (now, was) = (parts(now), parts(was));
    let reset = now
        .iter()
        .filter(|(k, _)| !was.iter().any(|(w, _)| w == k))
        .map(|(k, _)| format!("{prefix}{k}"))
        .collect();
    let set = was
        .iter()
        .filter(|item| !now.contains(item))
        .map(|(k, v)| format!("{prefix}{k} = {}", quote_literal(v)))
        .collect();
    (reset, set)
}

/// The statements that put the settings of table `now` back to `was`'s.
pub(super) fn table_back(now: &Table, was: &Table) -> Vec<String> {
    let t = now.qualified();
    let mut out = Vec::new();
    let (mut reset, mut set) = options_back(&now.options, &was.options, "");
    let (toast_reset, toast_set) = options_back(&now.toast_options, &was.toast_options, "toast.");
    reset.extend(toast_reset);
    set.extend(toast_set);
    if !reset.is_empty() {
        out.push(format!("ALTER TABLE {t} RESET ({})", reset.join(", ")));
    }
    if !set.is_empty() {
        out.push(format!("ALTER TABLE {t} SET ({})", set.join(", ")));
    }
    if (now.replica_identity.as_str(), &now.replica_index)
        != (was.replica_identity.as_str(), &was.replica_index)
    {
        let identity = match (was.replica_identity.as_str(), &was.replica_index) {
            ("f", _) => "FULL".to_string(),
            ("n", _) => "NOTHING".to_string(),
            ("i", Some(index)) => format!("USING INDEX {index}"),
            _ => "DEFAULT".to_string(),
        };
        out.push(format!("ALTER TABLE {t} REPLICA IDENTITY {identity}"));
    }
    // Its sequences (identity, serial) follow it from PostgreSQL 15 on.
    if now.persistence != was.persistence && !was.persistence.is_empty() {
        let to = if was.persistence == "u" { "UNLOGGED" } else { "LOGGED" };
        out.push(format!("ALTER TABLE {t} SET {to}"));
    }
    for p in now.parents.iter().filter(|p| !was.parents.contains(p)) {
        out.push(format!("ALTER TABLE {t} NO INHERIT {p}"));
    }
    for p in was.parents.iter().filter(|p| !now.parents.contains(p)) {
        out.push(format!("ALTER TABLE {t} INHERIT {p}"));
    }
    out
}

/// The statements that put column `now`'s settings back to `was`'s.
pub(super) fn column_back(table: &Table, now: &Column, was: &Column) -> Vec<String> {
    let head = format!("ALTER TABLE {} ALTER COLUMN {}", table.qualified(), quote_ident(&was.name));
    let mut out = Vec::new();
    if now.statistics != was.statistics {
        out.push(format!("{head} SET STATISTICS {}", was.statistics.unwrap_or(-1)));
    }
    if now.storage != was.storage {
        let storage = match was.storage.as_deref() {
            Some("p") => "PLAIN",
            Some("e") => "EXTERNAL",
            Some("m") => "MAIN",
            _ => "EXTENDED",
        };
        out.push(format!("{head} SET STORAGE {storage}"));
    }
    if now.compression != was.compression {
        let method = match was.compression.as_deref() {
            Some("p") => "pglz",
            Some("l") => "lz4",
            _ => "default",
        };
        out.push(format!("{head} SET COMPRESSION {method}"));
    }
    let (reset, set) = options_back(&now.options, &was.options, "");
    if !reset.is_empty() {
        out.push(format!("{head} RESET ({})", reset.join(", ")));
    }
    if !set.is_empty() {
        out.push(format!("{head} SET ({})", set.join(", ")));
    }
    out
}
