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
    let mut out = Vec::with_capacity(tables.len());
    for t in tables {
        let (schema, name): (String, String) = (t.get(0), t.get(1));
        out.push(table_checksum(client, &schema, &name)?);
    }
    Ok(out)
}

/// The checksum of one table.
pub fn table_checksum(
    client: &mut impl GenericClient,
    schema: &str,
    name: &str,
) -> Result<TableChecksum, postgres::Error> {
    let qualified = super::quote_qualified(Some(schema), name);
    // hashtextextended is a 64-bit hash; summing as numeric cannot overflow.
    let row = client.query_one(
        &format!(
            "select count(*), coalesce(sum(hashtextextended(t::text, 0)::numeric), 0)::text
               from only {qualified} t"
        ),
        &[],
    )?;
    Ok(TableChecksum { table: format!("{schema}.{name}"), rows: row.get(0), checksum: row.get(1) })
}
