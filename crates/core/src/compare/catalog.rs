//! What the catalogs say about a table's key: its columns, their types,
//! and the span of an integer key's values.

use postgres::Client;

use crate::pg::quote_ident;

/// The type of `column` of `relation`, as `format_type` writes it.
pub(super) fn column_type(
    c: &mut Client,
    relation: &str,
    column: &str,
) -> Result<String, postgres::Error> {
    Ok(c.query_one(
        "select format_type(atttypid, null) from pg_attribute
          where attrelid = $1::text::regclass and attname = $2",
        &[&relation, &column],
    )?
    .get(0))
}

/// The smallest and largest value of the integer column `column` on the
/// two sides together (none when both are empty).
pub(super) fn integer_bounds(
    source: &mut Client,
    target: &mut Client,
    relation: &str,
    column: &str,
) -> Result<Option<(i64, i64)>, postgres::Error> {
    let mut bounds = Vec::new();
    let q = quote_ident(column);
    for c in [source, target] {
        let row = c.query_one(
            &format!("select min({q})::int8, max({q})::int8 from only {relation}"),
            &[],
        )?;
        if let (Some(lo), Some(hi)) = (row.get::<_, Option<i64>>(0), row.get::<_, Option<i64>>(1)) {
            bounds.push((lo, hi));
        }
    }
    let lo = bounds.iter().map(|b| b.0).min();
    let hi = bounds.iter().map(|b| b.1).max();
    Ok(lo.zip(hi))
}

/// The primary key's columns of a table, in key order.
pub(crate) fn primary_key(
    client: &mut Client,
    schema: &str,
    name: &str,
) -> Result<Vec<String>, postgres::Error> {
    Ok(client
        .query(
            "select a.attname::text from pg_index i
               join pg_class c on c.oid = i.indrelid join pg_namespace n on n.oid = c.relnamespace
               join lateral unnest(i.indkey) with ordinality k(attnum, ord) on true
               join pg_attribute a on a.attrelid = c.oid and a.attnum = k.attnum
              where i.indisprimary and n.nspname = $1 and c.relname = $2
              order by k.ord",
            &[&schema, &name],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// The columns of `schema.name`, in order.
pub(super) fn columns(
    client: &mut Client,
    schema: &str,
    name: &str,
) -> Result<Vec<String>, postgres::Error> {
    let rows = client.query(
        "select a.attname::text from pg_attribute a
           join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace
          where n.nspname = $1 and c.relname = $2 and a.attnum > 0 and not a.attisdropped
          order by a.attnum",
        &[&schema, &name],
    )?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}
