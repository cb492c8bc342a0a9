//! Per-table content checksums computed inside the server: each row's text
//! form is hashed and the hashes summed, so the result does not depend on
//! row order and no table is copied to the client. The `backstop` schema is
//! left out.

use postgres::GenericClient;

/// One table's content: row count and an order-independent checksum.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TableChecksum {
    /// `schema.table`.
    pub table: String,
    pub rows: i64,
    pub checksum: String,
}

/// Checksums of every user table (leaf partitions count as tables).
pub fn table_checksums(
    client: &mut impl GenericClient,
) -> Result<Vec<TableChecksum>, postgres::Error> {
    let tables = client.query(
        "select n.nspname::text, c.relname::text from pg_class c
           join pg_namespace n on n.oid = c.relnamespace
          where c.relkind = 'r'
            and n.nspname not in ('pg_catalog', 'information_schema', 'backstop', 'pg_toast')
            and n.nspname not like 'pg_temp%'
          order by 1, 2",
        &[],
    )?;
    if tables.is_empty() {
        return Ok(Vec::new());
    }
    // One statement for all tables: one round trip, one snapshot.
    let parts: Vec<String> = tables
        .iter()
        .enumerate()
        .map(|(i, t)| checksum_sql(i as i64, &t.get::<_, String>(0), &t.get::<_, String>(1)))
        .collect();
    let rows = client.query(parts.join("\nunion all\n").as_str(), &[])?;
    let mut out: Vec<(i64, TableChecksum)> = rows
        .iter()
        .map(|r| {
            let i: i64 = r.get(0);
            let t = &tables[i as usize];
            let table = format!("{}.{}", t.get::<_, String>(0), t.get::<_, String>(1));
            (i, TableChecksum { table, rows: r.get(1), checksum: r.get(2) })
        })
        .collect();
    out.sort_by_key(|(i, _)| *i);
    Ok(out.into_iter().map(|(_, t)| t).collect())
}

/// hashtextextended is a 64-bit hash; summing as numeric cannot overflow.
fn checksum_sql(index: i64, schema: &str, name: &str) -> String {
    let qualified = super::quote_qualified(Some(schema), name);
    format!(
        "(select {index}::bigint, count(*), coalesce(sum(hashtextextended(t::text, 0)::numeric), 0)::text
            from only {qualified} t)"
    )
}

/// The checksum of one table.
pub fn table_checksum(
    client: &mut impl GenericClient,
    schema: &str,
    name: &str,
) -> Result<TableChecksum, postgres::Error> {
    let row = client.query_one(checksum_sql(0, schema, name).as_str(), &[])?;
    Ok(TableChecksum { table: format!("{schema}.{name}"), rows: row.get(1), checksum: row.get(2) })
}
