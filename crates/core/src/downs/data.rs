//! The data part of a down: rows an up inserted that its text names
//! (`INSERT … VALUES` with a key among its constants, into a table that
//! was there before) are deleted, exactly those; every other change of
//! rows that were there (`UPDATE`, `DELETE`, `INSERT … SELECT`, a `DO`
//! block's) cannot be put back by SQL and is said so, pointing at the
//! backup. The proof compares the rows of the tables the down deletes
//! from with the rows before the up.

use postgres::GenericClient;

use backstop_sql::rewrite::{ident, qualified};
use backstop_sql::rows::{Inserted, RowChange};
use backstop_sql::RelationName;

use super::catalog::Catalog;
use crate::source::Migration;

/// What the down does to rows, and what it cannot do.
#[derive(Debug, Default)]
pub(super) struct DataDown {
    /// The deletes, in the order the down runs them (the up's last first).
    pub statements: Vec<String>,
    /// The tables whose rows the proof compares, as SQL names.
    pub tables: Vec<String>,
    /// Changes of rows that were there, which no SQL puts back: what and where.
    pub irreversible: Vec<String>,
    /// What cannot be read at all (a `DO` block's dynamic SQL).
    pub unreadable: Vec<String>,
}

/// The tables the up inserts into that were there before it (`before`),
/// as SQL names before the up (a table it renamed first is named as it
/// was): the ones whose rows a proof compares.
pub(super) fn inserted_tables(m: &Migration, before: &Catalog) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (i, s) in m.up.statements.iter().enumerate() {
        for change in backstop_sql::rows::row_changes(&s.sql) {
            if let RowChange::Inserted(ins) = change {
                let was = as_before(m, i, &ins.table);
                let name = sql_name(&was);
                if existed(before, &was) && !made_earlier(m, i, &ins.table) && !out.contains(&name)
                {
                    out.push(name);
                }
            }
        }
    }
    out
}

/// `table` as it was named before the up, undoing the renames of the
/// table by the up's statements before statement `at`. The down puts
/// those names back before it deletes rows.
fn as_before(m: &Migration, at: usize, table: &RelationName) -> RelationName {
    let mut name = table.clone();
    for s in m.up.statements[..at].iter().rev() {
        let Some(r) = &s.facts.renames else { continue };
        let same_schema =
            name.schema.is_none() || r.table.schema.is_none() || name.schema == r.table.schema;
        if r.column.is_none() && r.to == name.name && same_schema {
            name = RelationName {
                schema: name.schema.clone().or(r.table.schema.clone()),
                name: r.table.name.clone(),
            };
        }
    }
    name
}

/// Works out the data part of the down of `m`, on the copy after its up.
pub(super) fn plan(
    client: &mut impl GenericClient,
    m: &Migration,
    before: &Catalog,
) -> Result<DataDown, postgres::Error> {
    let mut out = DataDown::default();
    for (at, s) in m.up.statements.iter().enumerate() {
        let place = format!("{}:{}", m.up.path.display(), s.position.line);
        for change in backstop_sql::rows::row_changes(&s.sql) {
            let change = match change {
                RowChange::Inserted(mut i) => {
                    i.table = as_before(m, at, &i.table);
                    RowChange::Inserted(i)
                }
                RowChange::Irreversible { what, table } => {
                    RowChange::Irreversible { what, table: table.map(|t| as_before(m, at, &t)) }
                }
                other => other,
            };
            // A table the up made by a name an older one had (moved or
            // renamed away first) is new: its rows go with it.
            let old = |t: &RelationName| existed(before, t) && !made_earlier(m, at, t);
            match change {
                RowChange::Inserted(i) if old(&i.table) => {
                    match delete_of(client, &i, &m.version)? {
                        Ok(delete) => {
                            out.statements.push(delete);
                            let name = sql_name(&i.table);
                            if !out.tables.contains(&name) {
                                out.tables.push(name);
                            }
                        }
                        Err(why) => out.irreversible.push(format!(
                            "rows the up inserted into {} ({place}) cannot be told apart: {why}; \
                             they stay",
                            shown(&i.table)
                        )),
                    }
                }
                RowChange::Irreversible { what, table } => {
                    let changed_old = table.as_ref().is_none_or(old);
                    if changed_old && !fills_only_added(m, at) {
                        out.irreversible.push(format!(
                            "rows the up changed with {what} ({place}) cannot be put back by SQL"
                        ));
                    }
                }
                RowChange::Unreadable { what } => out.unreadable.push(format!(
                    "the up's {what} ({place}) cannot be read: rows it changed, if any, stay as \
                     the up left them"
                )),
                RowChange::Inserted(_) => {}
            }
        }
    }
    out.statements.reverse();
    Ok(out)
}

/// Whether a statement of `m`'s up before statement `at` made `table`
/// (as statement `at` names it), and none dropped it since. Names are
/// matched strictly (an unqualified one is public's): a table of another
/// schema by the same name is another table, whose rows count.
fn made_earlier(m: &Migration, at: usize, table: &RelationName) -> bool {
    let schema = |t: &RelationName| t.schema.clone().unwrap_or_else(|| "public".into());
    let same = |t: &RelationName| t.name == table.name && schema(t) == schema(table);
    for s in m.up.statements[..at].iter().rev() {
        if s.facts.drops_tables.iter().any(same) {
            return false;
        }
        if s.facts.creates_table.as_ref().is_some_and(same) {
            return true;
        }
    }
    false
}

/// Whether statement `at` of `m`'s up is an `UPDATE` that sets only
/// columns the up added before it: they held nothing before the up.
fn fills_only_added(m: &Migration, at: usize) -> bool {
    let s = &m.up.statements[at];
    let Some(table) = &s.facts.updates else { return false };
    let added = m.up.statements[..at].iter().flat_map(|e| &e.facts.adds_columns);
    let added: Vec<&(RelationName, String)> = added.collect();
    !s.facts.updated_columns.is_empty()
        && s.facts
            .updated_columns
            .iter()
            .all(|c| added.iter().any(|(t, a)| a == c && backstop_sql::stmt::same_table(t, table)))
}

/// The up's rows of `table`, as one digest, for a proof to compare.
pub(super) fn rows_digest(
    client: &mut impl GenericClient,
    table: &str,
) -> Result<String, postgres::Error> {
    let row = client.query_one(
        &format!(
            "select count(*)::text || ':' || coalesce(md5(string_agg(t::text, E'\\n' order by t::text)), '')
               from {table} t"
        ),
        &[],
    )?;
    Ok(row.get(0))
}

fn existed(before: &Catalog, t: &RelationName) -> bool {
    before
        .tables
        .iter()
        .any(|b| b.name == t.name && t.schema.as_ref().is_none_or(|s| *s == b.schema))
}

fn sql_name(t: &RelationName) -> String {
    qualified(t.schema.as_deref().unwrap_or(""), &t.name)
}

fn shown(t: &RelationName) -> String {
    backstop_sql::stmt::display_table(t)
}

/// The `DELETE` of exactly the rows `i` wrote, or why it cannot be said.
/// A plain insert failed on any key that was there, so every key it names
/// is its own: the rows are matched by key. After `ON CONFLICT DO
/// NOTHING` a key may have been there already (a bucket the dashboard
/// made): a row is deleted only when every constant the insert gave
/// matches and the transaction that applied `version` wrote it (its
/// `xmin`, against `backstop.applied.xid`), so a row that was there, or
/// was changed since, stays.
pub(super) fn delete_of(
    client: &mut impl GenericClient,
    i: &Inserted,
    version: &str,
) -> Result<Result<String, String>, postgres::Error> {
    let table = sql_name(&i.table);
    let columns: Vec<String> = match &i.columns {
        Some(c) => c.clone(),
        None => client
            .query(
                "select attname::text from pg_attribute
                  where attrelid = to_regclass($1) and attnum > 0 and not attisdropped
                  order by attnum",
                &[&table],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect(),
    };
    let keys: Vec<Vec<String>> = client
        .query(
            "select array_agg(a.attname::text order by k.n)
               from pg_index i
              cross join lateral unnest(i.indkey) with ordinality k(attnum, n)
               join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
              where i.indrelid = to_regclass($1) and (i.indisprimary or i.indisunique)
                and i.indpred is null and i.indexprs is null
              group by i.indexrelid, i.indisprimary
              order by i.indisprimary desc, 1",
            &[&table],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let value = |row: &[Option<String>], column: &str| -> Option<String> {
        let at = columns.iter().position(|c| c == column)?;
        row.get(at).cloned().flatten()
    };
    let known =
        |key: &[String]| i.rows.iter().all(|row| key.iter().all(|k| value(row, k).is_some()));
    let Some(key) = keys.iter().find(|k| known(k)) else {
        return Ok(Err(if keys.is_empty() {
            "the table has no primary key or unique constraint".into()
        } else {
            "no key of the table is given as a constant in every row".into()
        }));
    };
    let matched: Vec<String> = if i.skips_conflicts {
        columns
            .iter()
            .filter(|c| i.rows.iter().all(|row| value(row, c).is_some()))
            .cloned()
            .collect()
    } else {
        key.clone()
    };
    let rows: Vec<String> = i
        .rows
        .iter()
        .map(|row| {
            let parts: Vec<String> = matched
                .iter()
                .map(|c| {
                    let v = value(row, c).unwrap_or_default();
                    if key.contains(c) {
                        format!("{} = {v}", ident(c))
                    } else {
                        format!("{} IS NOT DISTINCT FROM {v}", ident(c))
                    }
                })
                .collect();
            format!("({})", parts.join(" AND "))
        })
        .collect();
    let matched = rows.join("\n   OR ");
    if !i.skips_conflicts {
        return Ok(Ok(format!("DELETE FROM {table} WHERE {matched}")));
    }
    Ok(Ok(format!(
        "DELETE FROM {table} WHERE ({matched})\n  AND xmin::text::bigint = \
         (SELECT xid % 4294967296 FROM backstop.applied WHERE version = {})",
        backstop_sql::rewrite::literal(version)
    )))
}
