//! Per-table content checksums computed inside the server: each row is
//! hashed and the hashes summed, so the result does not depend on row
//! order, duplicate rows count (a sum, not an XOR, where pairs cancel), and
//! no table is copied to the client. The `backstop` schema is left out.
//!
//! From PostgreSQL 14 each column is hashed by its type's own hash function
//! called directly (a few dozen nanoseconds a value), seeded with the
//! column's place among the table's columns in name order, so that values
//! swapped between columns show but the order of the columns in the table
//! (which changes no behaviour but `SELECT *`) does not; NULL
//! stands in as a constant of its own. The column hashes are XORed and the
//! result mixed once more, so the row hash is not a linear function of the
//! columns and values swapped between two rows show too. Columns without a
//! direct hash call are hashed together with `hash_record_extended`, types
//! without a hash function (json, point, ...) and types whose hash loses
//! what a checksum must see (interval: `1 day` = `24 hours`; enums: their
//! OIDs, which differ between databases) by their text form. Older servers
//! hash each row's text form. The method is part of the checksum, so
//! checksums made different ways never compare equal by accident.
//!
//! Why not the record hash for every row: `hash_record_extended(row(...))`
//! builds a record and takes it apart again for every row, which cost more
//! than all the column hashes; and its result is linear in the column
//! hashes, so a sum of it missed values swapped between rows.
//!
//! What still hashes alike, as PostgreSQL's hash functions define
//! equality: a numeric's scale (`1.0` and `1.00`) and its special values
//! (`NaN`, `Infinity`, `-Infinity`), `0` and `-0` in floats, jsonb's empty
//! containers (`{}` and `[]`, `"a"` and `["a"]` at the top); timestamps
//! hash the XOR of their two 32-bit halves (the int8 hash), so a change that
//! keeps that fold (one in four billion at random) goes unseen; text in
//! arrays follows the column's collation.

use std::collections::HashMap;

use postgres::GenericClient;

use super::unreadable::FILTERED;

/// Rows hashed column by column, each column by its type's own hash
/// function (PostgreSQL 14 and later).
pub const METHOD_COLUMN_HASH: &str = "sum(mix(xor(column hashes by name)))/v3";
/// Rows hashed as text (before PostgreSQL 14).
pub const METHOD_TEXT_HASH: &str = "sum(hashtextextended(row::text))/v1";

/// Column types hashed by a direct call of their hash function: the
/// type's name in `pg_catalog` and the call, `{c}` the column, `{s}` its
/// seed. One list: the catalog query only reports each column's type.
const DIRECT: &[(&str, &str)] = &[
    ("int2", "hashint2extended({c}, {s})"),
    ("int4", "hashint4extended({c}, {s})"),
    // The int8 hash folds both halves into 32 bits (1 and 2^32 + 0 collide);
    // the value in the seed keeps all 64.
    ("int8", "hashint8extended({c}, {s} # {c})"),
    ("oid", "hashoidextended({c}, {s})"),
    ("float4", "hashfloat4extended({c}, {s})"),
    ("float8", "hashfloat8extended({c}, {s})"),
    ("numeric", "hash_numeric_extended({c}, {s})"),
    ("bool", "hashint4extended({c}::int4, {s})"),
    ("char", "hashcharextended({c}, {s})"),
    ("name", "hashnameextended({c}, {s})"),
    // Under "C" a string hashes as its bytes; a nondeterministic collation
    // would hash 'A' and 'a' alike.
    ("text", "hashtextextended({c} collate \"C\", {s})"),
    ("varchar", "hashtextextended({c} collate \"C\", {s})"),
    ("bpchar", "hashbpcharextended({c} collate \"C\", {s})"),
    ("uuid", "uuid_hash_extended({c}, {s})"),
    ("timestamp", "timestamp_hash_extended({c}, {s})"),
    // The same instant as a timestamp whatever the session's time zone;
    // `at time zone 'UTC'` would look the zone name up on every row.
    ("timestamptz", "timestamp_hash_extended({c} at time zone interval '0', {s})"),
    ("time", "time_hash_extended({c}, {s})"),
    ("timetz", "timetz_hash_extended({c}, {s})"),
    ("jsonb", "jsonb_hash_extended({c}, {s})"),
    ("inet", "hashinetextended({c}, {s})"),
    ("cidr", "hashinetextended({c}, {s})"),
    ("macaddr", "hashmacaddrextended({c}, {s})"),
];

/// Column types (and element types of arrays) that the columns without a
/// direct call keep in `hash_record_extended`; every other type goes in
/// as text. Not interval (its hash makes `1 day` equal `24 hours`) and not
/// enums (their hash is the label's OID, different in every database).
const HASHABLE: &str = "array['int2', 'int4', 'int8', 'numeric', 'float4', 'float8', 'bool', \
    'text', 'varchar', 'bpchar', 'name', '\"char\"', 'uuid', 'date', 'timestamp', 'timestamptz', \
    'time', 'timetz', 'jsonb', 'bytea', 'inet', 'cidr', 'macaddr', 'oid']::regtype[]::oid[]";

/// One table's content: row count and an order-independent checksum.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TableChecksum {
    /// `schema.table`.
    pub table: String,
    pub rows: i64,
    /// 16 hex digits over the method, the row count and the sum of row hashes.
    pub checksum: String,
}

/// The checksum method this server supports.
pub fn method(client: &mut impl GenericClient) -> Result<&'static str, postgres::Error> {
    Ok(method_of(super::server_version_num(client)? / 10000))
}

/// The method for a server of major `major`.
fn method_of(major: i32) -> &'static str {
    if major >= 14 {
        METHOD_COLUMN_HASH
    } else {
        METHOD_TEXT_HASH
    }
}

/// Every user table the session's role may read whole as `(schema, name)`
/// (leaf partitions count as tables; not one whose rows row level security
/// filters for the role: `pg::unreadable`), Backstop's own schema left out.
pub fn user_tables(
    client: &mut impl GenericClient,
) -> Result<Vec<(String, String)>, postgres::Error> {
    let rows = client.query(&tables_query(), &[])?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// The user tables in order: schema, name, whether the table is big
/// enough for a checksum statement of its own, its OID, and whether it is
/// a heap whose file has no page, so no row: its checksum is known without
/// reading it (a row written, even by a transaction still open, extends
/// the file at once, and a scan reads nothing beyond its end). Most tables
/// of a schema-only copy are empty, and planning the statement that reads
/// them cost more than all the rest of a look at the copy.
fn tables_query() -> String {
    format!(
        "select n.nspname::text, c.relname::text, c.relpages >= {OWN_STATEMENT_PAGES}, c.oid,
                am.amname = 'heap' and pg_relation_size(c.oid) = 0
           from pg_class c join pg_namespace n on n.oid = c.relnamespace
           left join pg_am am on am.oid = c.relam
          where c.relkind = 'r' and {USER_SCHEMAS} and {READABLE} and not {FILTERED}
          order by 1, 2"
    )
}

/// A table of [`tables_query`].
struct Listed {
    schema: String,
    name: String,
    big: bool,
    oid: u32,
    empty: bool,
}

impl Listed {
    fn of(r: &postgres::Row) -> Listed {
        Listed { schema: r.get(0), name: r.get(1), big: r.get(2), oid: r.get(3), empty: r.get(4) }
    }
}

/// Checksums of every user table. Big tables are checksummed by statements
/// of their own: where others may write meanwhile, call it inside a
/// repeatable-read transaction so all see one snapshot.
pub fn table_checksums(
    client: &mut impl GenericClient,
) -> Result<Vec<TableChecksum>, postgres::Error> {
    table_checksums_prepared(client, &mut super::Prepared::default())
}

/// Tables at least this big (pages of 8 kB: PostgreSQL's default
/// `min_parallel_table_scan_size`) are checksummed by a statement of their
/// own, which parallel workers can share; the small ones go together in
/// one statement, one round trip.
const OWN_STATEMENT_PAGES: i32 = 1024;

/// [`table_checksums`] with its statements kept in `prepared` (which
/// belongs to `client`'s connection): a rehearsal checksums the same tables
/// twice per migration, and planning the statement is much of the cost.
pub fn table_checksums_prepared(
    client: &mut impl GenericClient,
    prepared: &mut super::Prepared,
) -> Result<Vec<TableChecksum>, postgres::Error> {
    let list = prepared.get(client, &tables_query())?;
    let tables: Vec<Listed> = client.query(&list, &[])?.iter().map(Listed::of).collect();
    let all_columns = prepared.get(client, &columns_query(USER_SCHEMAS))?;
    let columns = client.query(&all_columns, &[])?;
    Ok(checksums(client, prepared, tables, columns)?.into_iter().map(|(_, t)| t).collect())
}

/// Checksums of the user tables among the relations `oids`, each with its
/// OID, in name order.
pub fn table_checksums_of(
    client: &mut impl GenericClient,
    prepared: &mut super::Prepared,
    oids: &[u32],
) -> Result<Vec<(u32, TableChecksum)>, postgres::Error> {
    if oids.is_empty() {
        return Ok(Vec::new());
    }
    let only = "c.oid = any($1::oid[])";
    let list = prepared
        .get(client, &tables_query().replace("order by", &format!("and {only} order by")))?;
    let some_columns = prepared.get(client, &columns_query(only))?;
    // Planned once for every set of tables: planning them for each set
    // cost more than running them. The columns only of the tables read.
    let (tables, columns) = prepared.generic(client, |client, _| {
        let tables: Vec<Listed> = client.query(&list, &[&oids])?.iter().map(Listed::of).collect();
        let read: Vec<u32> = tables.iter().filter(|t| !t.empty).map(|t| t.oid).collect();
        let columns =
            if read.is_empty() { Vec::new() } else { client.query(&some_columns, &[&read])? };
        Ok((tables, columns))
    })?;
    checksums(client, prepared, tables, columns)
}

/// Checksums of `tables` whose columns are `columns` (rows of
/// [`columns_query`]), each with its OID.
fn checksums(
    client: &mut impl GenericClient,
    prepared: &mut super::Prepared,
    tables: Vec<Listed>,
    columns: Vec<postgres::Row>,
) -> Result<Vec<(u32, TableChecksum)>, postgres::Error> {
    if tables.is_empty() {
        return Ok(Vec::new());
    }
    let method = method_of(prepared.major(client)?);
    let mut columns = group_columns(columns);
    let mut small = Vec::new();
    let mut statements = Vec::new();
    let mut out = Vec::with_capacity(tables.len());
    for (i, t) in tables.iter().enumerate() {
        if t.empty {
            // What its statement would read: no row, and a sum of none.
            let none = checksum_of(method, format!("{}.{}", t.schema, t.name), 0, "0".into());
            out.push((i as i64, (t.oid, none)));
            continue;
        }
        let cols = columns.remove(&(t.schema.clone(), t.name.clone())).unwrap_or_default();
        let sql = checksum_query(method, i as i64, &t.schema, &t.name, &cols);
        if t.big {
            statements.push(sql);
        } else {
            small.push(format!("({sql})"));
        }
    }
    if !small.is_empty() {
        statements.push(small.join("\nunion all\n"));
    }
    for sql in statements {
        let statement = prepared.get(client, &sql)?;
        for r in client.query(&statement, &[])? {
            let i: i64 = r.get(0);
            let t = &tables[i as usize];
            let table = format!("{}.{}", t.schema, t.name);
            out.push((i, (t.oid, checksum_of(method, table, r.get(1), r.get(2)))));
        }
    }
    out.sort_by_key(|(i, _)| *i);
    Ok(out.into_iter().map(|(_, t)| t).collect())
}

/// The checksum of one table.
pub fn table_checksum(
    client: &mut impl GenericClient,
    schema: &str,
    name: &str,
) -> Result<TableChecksum, postgres::Error> {
    table_checksum_without(client, schema, name, &[])
}

/// The checksum of one table over its columns but `skip` (those the other
/// side of a comparison does not have).
pub fn table_checksum_without(
    client: &mut impl GenericClient,
    schema: &str,
    name: &str,
    skip: &[String],
) -> Result<TableChecksum, postgres::Error> {
    let method = method(client)?;
    let rows =
        client.query(&columns_query("n.nspname = $1 and c.relname = $2"), &[&schema, &name])?;
    let mut columns =
        group_columns(rows).remove(&(schema.to_string(), name.to_string())).unwrap_or_default();
    columns.retain(|c| !skip.contains(&c.name));
    let sql = if method == METHOD_TEXT_HASH && !skip.is_empty() {
        let qualified = super::quote_qualified(Some(schema), name);
        format!(
            "select 0::bigint, count(*), coalesce(sum({}), 0)::text from only {qualified} t",
            text_hash_without(skip)
        )
    } else {
        checksum_query(method, 0, schema, name, &columns)
    };
    let row = client.query_one(sql.as_str(), &[])?;
    Ok(checksum_of(method, format!("{schema}.{name}"), row.get(1), row.get(2)))
}

/// The text method's row hash of a row without the columns `skip`.
fn text_hash_without(skip: &[String]) -> String {
    let names: Vec<String> = skip.iter().map(|s| format!("'{}'", s.replace('\'', "''"))).collect();
    format!("hashtextextended((to_jsonb(t) - array[{}]::text[])::text, 0)", names.join(", "))
}

/// Schemas whose tables are user data.
/// The SQL expression hashing one row of `schema.name` (aliased `t`), the
/// same way its checksum does: equal rows hash alike on any two servers
/// that use the same method.
pub fn row_hash_sql(
    client: &mut impl GenericClient,
    method: &str,
    schema: &str,
    name: &str,
    rounding: &Rounding,
) -> Result<String, postgres::Error> {
    row_hash_sql_without(client, method, schema, name, rounding, &[])
}

/// [`row_hash_sql`] over the columns but `skip`.
pub fn row_hash_sql_without(
    client: &mut impl GenericClient,
    method: &str,
    schema: &str,
    name: &str,
    rounding: &Rounding,
    skip: &[String],
) -> Result<String, postgres::Error> {
    if method == METHOD_TEXT_HASH {
        if skip.is_empty() {
            return Ok("hashtextextended(t::text, 0)".to_string());
        }
        return Ok(text_hash_without(skip));
    }
    let rows =
        client.query(&columns_query("n.nspname = $1 and c.relname = $2"), &[&schema, &name])?;
    let mut columns =
        group_columns(rows).remove(&(schema.to_string(), name.to_string())).unwrap_or_default();
    columns.retain(|c| !skip.contains(&c.name));
    Ok(row_hash_rounded(&columns, rounding))
}

/// Values hashed after rounding, for comparisons with tolerances: rows
/// that hash alike are then equal within them (rows that do not are
/// checked value by value). Checksums never round.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rounding {
    /// numeric, real and double precision values rounded to this many
    /// decimal places (negative: to tens, hundreds...).
    pub numeric_scale: Option<i32>,
    /// Timestamps and times rounded to this many fractional digits of a
    /// second (0..=6), as a column of that precision stores them.
    pub time_digits: Option<u8>,
}

/// The tables the session's role may read: a superuser (asked once, not
/// per table) reads all; any other role leaves out what `pg::unreadable`
/// names.
const READABLE: &str = "(exists (select from pg_roles where rolname = current_user and rolsuper)
                         or has_table_privilege(c.oid, 'SELECT'))";

const USER_SCHEMAS: &str =
    "n.nspname not in ('pg_catalog', 'information_schema', 'backstop', 'pg_toast')
    and n.nspname not like 'pg_temp%'";

/// The query that checksums one table: `(index, count, sum as text)`.
pub fn checksum_sql(
    client: &mut impl GenericClient,
    method: &str,
    index: i64,
    schema: &str,
    name: &str,
) -> Result<String, postgres::Error> {
    let columns = if method == METHOD_TEXT_HASH {
        Vec::new()
    } else {
        let rows =
            client.query(&columns_query("n.nspname = $1 and c.relname = $2"), &[&schema, &name])?;
        group_columns(rows).remove(&(schema.to_string(), name.to_string())).unwrap_or_default()
    };
    Ok(checksum_query(method, index, schema, name, &columns))
}

/// The checksum query of one table whose columns are known.
fn checksum_query(
    method: &str,
    index: i64,
    schema: &str,
    name: &str,
    columns: &[Column],
) -> String {
    let qualified = super::quote_qualified(Some(schema), name);
    let row_hash = if method == METHOD_TEXT_HASH {
        "hashtextextended(t::text, 0)".to_string()
    } else {
        row_hash(columns)
    };
    // The hashes are bigints; PostgreSQL sums bigints exactly (in 128 bits,
    // as fast as summing int4).
    format!(
        "select {index}::bigint, count(*), coalesce(sum({row_hash}), 0)::text from only {qualified} t"
    )
}

/// The query for the columns of the tables `filter` picks, in order.
fn columns_query(filter: &str) -> String {
    format!(
        "select n.nspname::text, c.relname::text, a.attname::text, a.attnotnull,
                case when b.typnamespace = 'pg_catalog'::regnamespace then b.typname::text end,
                b.oid = any({HASHABLE})
                or (b.typcategory = 'A' and b.typelem = any({HASHABLE}))
           from pg_attribute a
           join pg_class c on c.oid = a.attrelid
           join pg_namespace n on n.oid = c.relnamespace
           join pg_type t on t.oid = a.atttypid
           join pg_type b on b.oid = coalesce(nullif(t.typbasetype, 0), t.oid)
          where c.relkind = 'r' and a.attnum > 0 and not a.attisdropped and {filter}
          order by 1, 2, a.attname"
    )
}

type Columns = HashMap<(String, String), Vec<Column>>;

/// Columns by `(schema, table)`.
fn group_columns(rows: Vec<postgres::Row>) -> Columns {
    let mut out: Columns = HashMap::new();
    for r in rows {
        out.entry((r.get(0), r.get(1))).or_default().push(Column {
            name: r.get(2),
            not_null: r.get(3),
            base_type: r.get(4),
            hashable: r.get(5),
        });
    }
    out
}

/// What the row hash needs to know of a column.
struct Column {
    name: String,
    not_null: bool,
    /// The type's name (a domain's base type) when it is in `pg_catalog`.
    base_type: Option<String>,
    /// Whether `hash_record_extended` may hash it by its type's hash function.
    hashable: bool,
}

/// One row's hash: each column hashed with a seed of its own position,
/// NULL as a constant of its own, the hashes XORed (as a balanced tree,
/// so a wide table's expression stays shallow) and mixed by hashing the
/// result once more, which keeps all 64 bits (the seed of
/// `hashint4extended`) and makes the sum over rows see values swapped
/// between rows.
fn row_hash(columns: &[Column]) -> String {
    row_hash_rounded(columns, &Rounding::default())
}

/// [`row_hash`] with values rounded first.
fn row_hash_rounded(columns: &[Column], rounding: &Rounding) -> String {
    let mut terms = Vec::with_capacity(columns.len() + 1);
    let mut rest = Vec::new();
    for (i, col) in columns.iter().enumerate() {
        let mut c = format!("t.{}", super::quote_ident(&col.name));
        let mut ty = col.base_type.as_deref();
        match (ty, rounding.numeric_scale, rounding.time_digits) {
            (Some("numeric" | "float4" | "float8"), Some(scale), _) => {
                c = format!("round({c}::numeric, {scale})");
                ty = Some("numeric");
            }
            (Some(time @ ("timestamptz" | "timestamp" | "time" | "timetz")), _, Some(p)) => {
                c = format!("({c})::{time}({p})");
            }
            _ => {}
        }
        let direct =
            ty.and_then(|ty| DIRECT.iter().find(|(name, _)| *name == ty)).map(|(_, call)| call);
        match direct {
            Some(call) => {
                let hash = call.replace("{c}", &c).replace("{s}", &literal(constant(2 * i as u64)));
                terms.push(if col.not_null {
                    hash
                } else {
                    format!("coalesce({hash}, {})", literal(constant(2 * i as u64 + 1)))
                });
            }
            // In the record the column's position is its place in the row.
            None if col.hashable => rest.push(c),
            None => rest.push(format!("{c}::text")),
        }
    }
    if !rest.is_empty() {
        terms.push(format!(
            "hash_record_extended(row({}), {})",
            rest.join(", "),
            literal(constant(2 * columns.len() as u64))
        ));
    }
    if terms.is_empty() {
        terms.push("0::int8".to_string());
    }
    format!("hashint4extended(0, {})", xor_tree(&terms))
}

fn xor_tree(terms: &[String]) -> String {
    match terms {
        [one] => one.clone(),
        _ => {
            let (left, right) = terms.split_at(terms.len() / 2);
            format!("({} # {})", xor_tree(left), xor_tree(right))
        }
    }
}

/// A fixed, well-spread 64-bit constant for `n` (splitmix64): the seeds and
/// NULL stand-ins. Part of the method: changing them changes every checksum.
fn constant(n: u64) -> i64 {
    let mut z = n.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) as i64
}

fn literal(v: i64) -> String {
    format!("({v})::int8")
}

fn checksum_of(method: &str, table: String, rows: i64, sum: String) -> TableChecksum {
    let mut hasher = blake3::Hasher::new();
    for part in [method, &rows.to_string(), &sum] {
        hasher.update(part.as_bytes());
        hasher.update(&[0]);
    }
    TableChecksum { table, rows, checksum: hasher.finalize().to_hex()[..16].to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(name: &str, ty: Option<&str>, not_null: bool, hashable: bool) -> Column {
        Column { name: name.into(), not_null, base_type: ty.map(Into::into), hashable }
    }

    #[test]
    fn seeds_and_null_stand_ins_are_all_different() {
        let mut seen: Vec<i64> = (0..4000).map(constant).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 4000);
    }

    #[test]
    fn xor_tree_is_balanced() {
        let terms: Vec<String> = (0..5).map(|i| format!("h{i}")).collect();
        assert_eq!(xor_tree(&terms), "((h0 # h1) # (h2 # (h3 # h4)))");
        let wide: Vec<String> = (0..1600).map(|i| format!("h{i}")).collect();
        let depth = xor_tree(&wide).chars().take_while(|c| *c == '(').count();
        assert!(depth <= 11, "a 1600-column row nests {depth} deep");
    }

    #[test]
    fn row_hash_calls_direct_hashes_and_keeps_the_rest_in_one_record() {
        let sql = row_hash(&[
            column("id", Some("int8"), true, true),
            column("note", Some("text"), false, true),
            column("born", Some("date"), true, true),
            column("shape", Some("point"), false, false),
        ]);
        let s = |n: u64| literal(constant(n));
        assert_eq!(
            sql,
            format!(
                "hashint4extended(0, (hashint8extended(t.\"id\", {} # t.\"id\") # \
                 (coalesce(hashtextextended(t.\"note\" collate \"C\", {}), {}) # \
                 hash_record_extended(row(t.\"born\", t.\"shape\"::text), {}))))",
                s(0),
                s(2),
                s(3),
                s(8)
            )
        );
    }

    #[test]
    fn a_table_without_columns_still_has_a_row_hash() {
        assert_eq!(row_hash(&[]), "hashint4extended(0, 0::int8)");
    }

    #[test]
    fn rounding_hashes_numbers_and_times_as_rounded() {
        let rounding = Rounding { numeric_scale: Some(2), time_digits: Some(3) };
        let sql = row_hash_rounded(
            &[
                column("price", Some("float8"), true, true),
                column("at", Some("timestamptz"), true, true),
                column("n", Some("int4"), true, true),
            ],
            &rounding,
        );
        assert!(sql.contains("hash_numeric_extended(round(t.\"price\"::numeric, 2), "), "{sql}");
        assert!(
            sql.contains("timestamp_hash_extended((t.\"at\")::timestamptz(3) at time zone"),
            "{sql}"
        );
        assert!(sql.contains("hashint4extended(t.\"n\", "), "{sql}");
        let exact = [column("price", Some("numeric"), true, true)];
        assert_eq!(row_hash_rounded(&exact, &Rounding::default()), row_hash(&exact));
    }

    #[test]
    fn hostile_column_names_stay_names() {
        let sql = row_hash(&[column("x\"); DROP TABLE users; --", Some("text"), true, true)]);
        assert!(sql.contains("t.\"x\"\"); DROP TABLE users; --\""), "{sql}");
    }
}
