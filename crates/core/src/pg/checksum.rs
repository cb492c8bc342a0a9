//! Per-table content checksums computed inside the server: each row is
//! hashed and the hashes summed, so the result does not depend on row
//! order, duplicate rows count (a sum, not an XOR, where pairs cancel), and
//! no table is copied to the client. The `backstop` schema is left out.
//!
//! From PostgreSQL 14 a row is hashed with `hash_record_extended` over its
//! columns, each by its type's own hash function (columns of types without
//! one, such as json or point, by their text form); older servers hash the
//! row's text form. The method is part of the checksum, so checksums made
//! different ways never compare equal by accident.

use postgres::GenericClient;

/// Rows hashed column by column (PostgreSQL 14 and later).
pub const METHOD_RECORD_HASH: &str = "sum(hash_record_extended)/v1";
/// Rows hashed as text (before PostgreSQL 14).
pub const METHOD_TEXT_HASH: &str = "sum(hashtextextended(row::text))/v1";

/// Column types hashed by their own hash function; every other type is
/// hashed through its text form.
const HASHABLE: &str = "array['int2', 'int4', 'int8', 'numeric', 'float4', 'float8', 'bool', \
    'text', 'varchar', 'bpchar', 'name', 'char', 'uuid', 'date', 'timestamp', 'timestamptz', \
    'time', 'timetz', 'interval', 'jsonb', 'bytea', 'inet', 'cidr', 'macaddr', 'oid']::regtype[]::oid[]";

/// One table's content: row count and an order-independent checksum.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TableChecksum {
    /// `schema.table`.
    pub table: String,
    pub rows: i64,
    /// 16 hex digits over the method, the row count and the sum of row hashes.
    pub checksum: String,
}

/// The checksum method this server supports.
pub fn method(client: &mut impl GenericClient) -> Result<&'static str, postgres::Error> {
    let version: i32 =
        client.query_one("select current_setting('server_version_num')::int", &[])?.get(0);
    Ok(if version >= 140000 { METHOD_RECORD_HASH } else { METHOD_TEXT_HASH })
}

/// Every user table as `(schema, name)` (leaf partitions count as tables),
/// Backstop's own schema left out.
pub fn user_tables(
    client: &mut impl GenericClient,
) -> Result<Vec<(String, String)>, postgres::Error> {
    let rows = client.query(
        "select n.nspname::text, c.relname::text from pg_class c
           join pg_namespace n on n.oid = c.relnamespace
          where c.relkind = 'r'
            and n.nspname not in ('pg_catalog', 'information_schema', 'backstop', 'pg_toast')
            and n.nspname not like 'pg_temp%'
          order by 1, 2",
        &[],
    )?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Checksums of every user table, in one statement: one round trip, one snapshot.
pub fn table_checksums(
    client: &mut impl GenericClient,
) -> Result<Vec<TableChecksum>, postgres::Error> {
    let tables = user_tables(client)?;
    if tables.is_empty() {
        return Ok(Vec::new());
    }
    let method = method(client)?;
    let mut parts = Vec::with_capacity(tables.len());
    for (i, (schema, name)) in tables.iter().enumerate() {
        parts.push(format!("({})", checksum_sql(client, method, i as i64, schema, name)?));
    }
    let rows = client.query(parts.join("\nunion all\n").as_str(), &[])?;
    let mut out: Vec<(i64, TableChecksum)> = rows
        .iter()
        .map(|r| {
            let i: i64 = r.get(0);
            let (schema, name) = &tables[i as usize];
            (i, checksum_of(method, format!("{schema}.{name}"), r.get(1), r.get(2)))
        })
        .collect();
    out.sort_by_key(|(i, _)| *i);
    Ok(out.into_iter().map(|(_, t)| t).collect())
}

/// The checksum of one table.
pub fn table_checksum(
    client: &mut impl GenericClient,
    schema: &str,
    name: &str,
) -> Result<TableChecksum, postgres::Error> {
    let method = method(client)?;
    let sql = checksum_sql(client, method, 0, schema, name)?;
    let row = client.query_one(sql.as_str(), &[])?;
    Ok(checksum_of(method, format!("{schema}.{name}"), row.get(1), row.get(2)))
}

/// The query that checksums one table: `(index, count, sum as text)`.
pub fn checksum_sql(
    client: &mut impl GenericClient,
    method: &str,
    index: i64,
    schema: &str,
    name: &str,
) -> Result<String, postgres::Error> {
    let qualified = super::quote_qualified(Some(schema), name);
    let row_hash = if method == METHOD_TEXT_HASH {
        "hashtextextended(t::text, 0)".to_string()
    } else {
        let columns = client.query(
            &format!(
                "select a.attname::text,
                        coalesce(nullif(t.typbasetype, 0), t.oid) = any({HASHABLE})
                        or t.typtype = 'e'
                        or (t.typcategory = 'A' and t.typelem = any({HASHABLE}))
                   from pg_attribute a
                   join pg_class c on c.oid = a.attrelid
                   join pg_namespace n on n.oid = c.relnamespace
                   join pg_type t on t.oid = a.atttypid
                  where n.nspname = $1 and c.relname = $2 and a.attnum > 0 and not a.attisdropped
                  order by a.attnum"
            ),
            &[&schema, &name],
        )?;
        let exprs: Vec<String> = columns
            .iter()
            .map(|r| {
                let col = format!("t.{}", super::quote_ident(&r.get::<_, String>(0)));
                if r.get(1) {
                    col
                } else {
                    format!("{col}::text")
                }
            })
            .collect();
        format!("hash_record_extended(row({}), 0)", exprs.join(", "))
    };
    // The hashes are bigints; PostgreSQL sums bigints exactly (as numeric).
    Ok(format!(
        "select {index}::bigint, count(*), coalesce(sum({row_hash}), 0)::text from only {qualified} t"
    ))
}

fn checksum_of(method: &str, table: String, rows: i64, sum: String) -> TableChecksum {
    let mut hasher = blake3::Hasher::new();
    for part in [method, &rows.to_string(), &sum] {
        hasher.update(part.as_bytes());
        hasher.update(&[0]);
    }
    TableChecksum { table, rows, checksum: hasher.finalize().to_hex()[..16].to_string() }
}
