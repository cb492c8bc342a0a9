//! Comparing two databases table by table, every column, exactly, with
//! the row hash of `pg::checksum` (the same on both sides). Rows are put in
//! buckets that both sides agree on whatever their collations or key
//! order: ranges of the key when it is one integer column, otherwise a
//! hash of the key (of its text in the C collation, or a uuid's own
//! hash). Each side gives every bucket's row count and hash sum; buckets
//! that differ are split again (level by level, one query per side for all
//! the buckets of a level) and rows are fetched only for small buckets
//! (at most [`FETCH_LIMIT`] rows, four times that for hash buckets).
//! Range buckets need no checksum first: their first split costs little
//! more, proves a match as well, and a differing bucket's rows are found
//! through the key's index. Hash buckets come after the checksum, which
//! proves most tables the same in one scan, since finding a hash bucket's
//! rows takes a scan.
//! A table that could not be compared makes the verdict an error: a match
//! is only ever reported when it was proved.
//! The schemas are compared too, with the semantic picture rehearsals use:
//! behaviour differences count, cosmetic ones are reported apart.

use std::collections::{BTreeMap, BTreeSet};

use postgres::Client;
use serde::Serialize;
use serde_json::Value;

use crate::pg::{checksum, quote_ident, quote_qualified};

/// Buckets per split.
const FANOUT: i64 = 256;
/// A bucket with at most this many rows on each side is fetched.
pub const FETCH_LIMIT: i64 = 256;
/// Rows a first-level range bucket holds, about.
const RANGE_ROWS: f64 = 4096.0;
/// Rows a first-level hash bucket holds, about: few enough buckets to
/// group them in memory cheaply, small enough to read a differing one.
const HASH_ROWS: f64 = 512.0;
/// Rows fetched by one query at most (roughly: whole buckets are fetched).
const FETCH_BATCH: i64 = 50_000;
/// How many differing rows a table's result lists.
pub const SHOWN: usize = 100;

/// One row that is not the same on both sides, named by its key.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RowDiff {
    /// The primary key's values, as JSON.
    pub key: Value,
    /// `missing` (in the target), `extra` (in the target) or `different`.
    pub kind: &'static str,
    /// For `different`: column → [source value, target value].
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub columns: BTreeMap<String, [Value; 2]>,
    /// The whole source row (`to_jsonb`), for `missing` and `different`;
    /// kept only when the caller asks for every row (sync).
    #[serde(skip)]
    pub source_row: Option<Value>,
}

/// One table's comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableResult {
    /// `schema.table`, for reading.
    pub table: String,
    /// The schema and the table, as names (either may hold a dot).
    #[serde(skip)]
    pub schema: String,
    #[serde(skip)]
    pub name: String,
    /// `match`, `differ`, `only_in_source`, `only_in_target` or `error`.
    pub status: &'static str,
    pub source_rows: Option<i64>,
    pub target_rows: Option<i64>,
    /// Rows missing, extra and different, counted in full.
    pub missing: usize,
    pub extra: usize,
    pub different: usize,
    /// The first [`SHOWN`] differing rows.
    pub rows: Vec<RowDiff>,
    /// What else the reader must know (no primary key, the error).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl TableResult {
    /// A result with nothing compared (yet): counts unknown, no rows.
    fn empty(schema: &str, name: &str, status: &'static str) -> TableResult {
        TableResult {
            table: format!("{schema}.{name}"),
            schema: schema.to_string(),
            name: name.to_string(),
            status,
            source_rows: None,
            target_rows: None,
            missing: 0,
            extra: 0,
            different: 0,
            rows: Vec::new(),
            note: None,
        }
    }
}

/// One foreign key of the target, checked row by row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ForeignKey {
    pub table: String,
    pub constraint: String,
    /// Declared `NOT VALID`: PostgreSQL never checked the rows that were there.
    pub not_valid: bool,
    /// Rows whose key has no parent row.
    pub orphans: i64,
}

/// The comparison of two databases.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// `match`, `differ` or `error`.
    pub verdict: &'static str,
    pub tables: Vec<TableResult>,
    /// The target's foreign keys with orphaned rows (all checked).
    pub foreign_keys: Vec<ForeignKey>,
    /// Why the foreign keys could not be checked, when they could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub foreign_key_error: Option<String>,
    /// How the schemas differ in behaviour (tables, columns and their
    /// types and collations, constraints, indexes, functions, policies):
    /// the target against the source.
    pub schema: Vec<String>,
    /// Differences that change nothing (column order, a function body
    /// written differently), reported apart, never a failure.
    pub schema_cosmetic: Vec<String>,
    /// Why the schemas could not be compared, when they could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema_error: Option<String>,
    /// The tolerances the rows were compared with (none: exactly).
    #[serde(skip_serializing_if = "Tolerances::is_exact")]
    pub tolerances: Tolerances,
}

/// Differences that count as none, only when asked (`[compare]`
/// `numeric_tolerance`, `timestamp_precision`); shown with the verdict.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Tolerances {
    /// numeric, real and double precision values at most this far apart
    /// are equal: `"0.01"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub numeric: Option<String>,
    /// Timestamps and times are equal once rounded to this many
    /// fractional digits of a second, as a column of that precision
    /// stores them (6: exact).
    #[serde(
        rename = "timestamp_precision",
        skip_serializing_if = "Option::is_none",
        serialize_with = "precision_label"
    )]
    pub timestamp_digits: Option<u8>,
}

/// The precisions `timestamp_precision` accepts, by fractional digits.
const PRECISIONS: [&str; 7] = ["1s", "100ms", "10ms", "1ms", "100us", "10us", "1us"];

fn precision_label<S: serde::Serializer>(d: &Option<u8>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(d.map_or("1us", |d| PRECISIONS[usize::from(d.min(6))]))
}

impl Tolerances {
    pub fn is_exact(&self) -> bool {
        self.numeric.is_none() && self.timestamp_digits.is_none()
    }

    /// How values are rounded before they are hashed: to the tolerance's
    /// first significant decimal place, so values that round alike are
    /// within it.
    fn rounding(&self) -> checksum::Rounding {
        checksum::Rounding {
            numeric_scale: self.numeric.as_deref().map(numeric_scale),
            time_digits: self.timestamp_digits,
        }
    }

    /// In words, for the verdict: `numeric values within 0.01, timestamps to 1ms`.
    pub fn describe(&self) -> Option<String> {
        let mut parts = Vec::new();
        if let Some(n) = &self.numeric {
            parts.push(format!("numeric values within {n}"));
        }
        if let Some(d) = self.timestamp_digits {
            parts.push(format!("timestamps to {}", PRECISIONS[usize::from(d.min(6))]));
        }
        (!parts.is_empty()).then(|| parts.join(", "))
    }
}

/// The decimal places `s` with 10^-s at most the tolerance `text` (a
/// checked positive decimal): "0.01" → 2, "0.05" → 2, "5" → 0, "250" → -2.
fn numeric_scale(text: &str) -> i32 {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let whole = whole.trim_start_matches('0');
    if whole.is_empty() {
        fraction.find(|c| c != '0').map_or(0, |z| z as i32 + 1)
    } else {
        1 - whole.len() as i32
    }
}

/// Counts the orphans of every foreign key of `client`'s user tables,
/// `NOT VALID` ones too; returns those with any.
pub fn orphans(client: &mut Client) -> Result<Vec<ForeignKey>, postgres::Error> {
    let fks = client.query(
        "select n.nspname::text, c.relname::text, k.conname::text, not k.convalidated,
                pn.nspname::text, p.relname::text,
                (select array_agg(a.attname::text order by o) from unnest(k.conkey) with ordinality u(n, o)
                   join pg_attribute a on a.attrelid = k.conrelid and a.attnum = u.n),
                (select array_agg(a.attname::text order by o) from unnest(k.confkey) with ordinality u(n, o)
                   join pg_attribute a on a.attrelid = k.confrelid and a.attnum = u.n)
           from pg_constraint k
           join pg_class c on c.oid = k.conrelid join pg_namespace n on n.oid = c.relnamespace
           join pg_class p on p.oid = k.confrelid join pg_namespace pn on pn.oid = p.relnamespace
          where k.contype = 'f' and n.nspname not in ('pg_catalog', 'information_schema', 'backstop')
          order by 1, 2, 3",
        &[],
    )?;
    let mut out = Vec::new();
    for fk in fks {
        let (schema, table, name, not_valid): (String, String, String, bool) =
            (fk.get(0), fk.get(1), fk.get(2), fk.get(3));
        let (pschema, ptable): (String, String) = (fk.get(4), fk.get(5));
        let (cols, pcols): (Vec<String>, Vec<String>) = (fk.get(6), fk.get(7));
        let not_null = cols
            .iter()
            .map(|c| format!("c.{} is not null", quote_ident(c)))
            .collect::<Vec<_>>()
            .join(" and ");
        let join = cols
            .iter()
            .zip(&pcols)
            .map(|(c, p)| format!("p.{} = c.{}", quote_ident(p), quote_ident(c)))
            .collect::<Vec<_>>()
            .join(" and ");
        let sql = format!(
            "select count(*) from only {} c where {not_null} and not exists (select from only {} p where {join})",
            quote_qualified(Some(&schema), &table),
            quote_qualified(Some(&pschema), &ptable)
        );
        let orphans: i64 = client.query_one(&sql, &[])?.get(0);
        if orphans > 0 {
            out.push(ForeignKey {
                table: format!("{schema}.{table}"),
                constraint: name,
                not_valid,
                orphans,
            });
        }
    }
    Ok(out)
}

/// How rows are put in buckets. Both sides must agree on every row's
/// bucket whatever their collations, so a bucket is either a range of a
/// single integer key (integers order alike everywhere) or a hash of the
/// key's text in the C collation (any key).
#[derive(Clone)]
enum Split {
    /// Hash buckets of the key: `first` at the first split, [`FANOUT`]
    /// below, one seed per level; finding a bucket's rows takes a scan.
    Hash { key: HashedKey, first: i64 },
    /// Ranges of the integer column `column` (quoted), from `lo`: at level
    /// L (1-based) a bucket is `[start, start + widths[L - 1])`. Widths are
    /// powers of two, each [`FANOUT`] times the next and the last 1, so
    /// buckets nest and the deepest hold one key. A bucket's rows are
    /// found through the key's index.
    Range { column: String, lo: i64, widths: Vec<i64> },
}

/// How a key is hashed into buckets, the same way on both sides.
#[derive(Clone)]
enum HashedKey {
    /// The key as text in the C collation (SQL): any key.
    Text(String),
    /// A uuid column on both sides (quoted): by its own hash function,
    /// three times cheaper than its text.
    Uuid(String),
}

impl HashedKey {
    fn hash(&self, seed: u32) -> String {
        match self {
            HashedKey::Text(text) => format!("hashtextextended({text}, {seed})"),
            HashedKey::Uuid(column) => format!("uuid_hash_extended(t.{column}, {seed})"),
        }
    }
}

impl Split {
    /// Range buckets for a key of one integer column spanning `lo..=hi`
    /// on the two sides together, about `first` buckets at the first
    /// split; `None` when the span does not fit in 64-bit arithmetic.
    fn range(column: String, lo: i64, hi: i64, first: i64) -> Option<Split> {
        let span = hi.checked_sub(lo)?.checked_add(1)?;
        let wanted = u64::try_from((span - 1) / first + 1).ok()?;
        let mut width = i64::try_from(wanted.checked_next_power_of_two()?).ok()?;
        // The last bucket's end must be representable too.
        lo.checked_add((span / width + 1).checked_mul(width)?)?;
        let mut widths = vec![width];
        while width > 1 {
            width = (width / FANOUT).max(1);
            widths.push(width);
        }
        Some(Split::Range { column, lo, widths })
    }

    /// A differing bucket with at most this many rows on each side has
    /// its rows read rather than split again. Reading a hash bucket's
    /// rows takes a scan, so hash buckets are read bigger.
    fn fetch_limit(&self) -> i64 {
        match self {
            Split::Hash { .. } => 4 * FETCH_LIMIT,
            Split::Range { .. } => FETCH_LIMIT,
        }
    }

    /// How many levels the split goes down at most.
    fn levels(&self) -> u32 {
        match self {
            Split::Hash { .. } => LEVELS,
            Split::Range { widths, .. } => widths.len() as u32,
        }
    }

    /// A row's bucket at `level` as one number (for ranges, its start).
    fn code(&self, level: u32) -> String {
        match self {
            Split::Hash { key, first } => path_code(key, level, *first),
            Split::Range { column, lo, widths } => {
                let w = widths[level as usize - 1];
                format!("({lo}::int8 + ((t.{column}::int8 - {lo}::int8) / {w}) * {w})")
            }
        }
    }

    /// What follows `from only <relation> t` to keep the rows of the
    /// buckets `$1` at `level`.
    fn within(&self, level: u32) -> String {
        match self {
            Split::Hash { key, first } => {
                format!("where ({}) = any($1::bigint[])", path_code(key, level, *first))
            }
            Split::Range { column, widths, .. } => format!(
                "join unnest($1::bigint[]) b(start) on t.{column} >= b.start and t.{column} < b.start + {}",
                widths[level as usize - 1]
            ),
        }
    }
}

/// One side's view of a table.
struct Side<'a> {
    client: &'a mut Client,
    /// This side's row hash (its own columns' types).
    row_hash: String,
    shape: &'a Shape,
}

/// What both sides query alike.
struct Shape {
    /// `schema.table`, quoted.
    relation: String,
    /// The key as one text value, the same on both sides.
    key_text: String,
    /// The key as JSON, for showing it.
    key_json: String,
    split: Split,
}

/// Runs `f` and `g` at once (one on each side's server) and gives both results.
fn both<A: Send, B: Send>(f: impl FnOnce() -> A + Send, g: impl FnOnce() -> B) -> (A, B) {
    std::thread::scope(|scope| {
        let first = scope.spawn(f);
        let second = g();
        (first.join().unwrap_or_else(|e| std::panic::resume_unwind(e)), second)
    })
}

/// The deepest hash split: 256^6 buckets, far more than rows in any table.
const LEVELS: u32 = 6;

/// A row's hash bucket path down to `level` as one number: the bucket of
/// each split (seeds 1..=level; `first` buckets at the first, [`FANOUT`]
/// below) as digits, the first the most significant.
fn path_code(key: &HashedKey, level: u32, first: i64) -> String {
    (1..=level)
        .map(|seed| {
            let n = if seed == 1 { first } else { FANOUT };
            let weight = FANOUT.pow(level - seed);
            let hash = key.hash(seed);
            format!("((mod({hash}, {n}) + {n}) % {n}) * {weight}")
        })
        .collect::<Vec<_>>()
        .join(" + ")
}

impl Side<'_> {
    /// Row count and hash sum of every bucket at `level` under the
    /// buckets `under` of the level above (all rows at level 1): one scan
    /// (for ranges, index scans of those buckets).
    fn buckets(
        &mut self,
        level: u32,
        under: &[i64],
    ) -> Result<BTreeMap<i64, (i64, String)>, postgres::Error> {
        let filter = if level == 1 { String::new() } else { self.shape.split.within(level - 1) };
        let sql = format!(
            "select {code}, count(*), coalesce(sum({h}), 0)::text
               from only {r} t {filter} group by 1",
            code = self.shape.split.code(level),
            h = self.row_hash,
            r = self.shape.relation
        );
        let rows = if level == 1 {
            self.client.query(&sql, &[])?
        } else {
            self.client.query(&sql, &[&under])?
        };
        Ok(rows.iter().map(|r| (r.get(0), (r.get(1), r.get(2)))).collect())
    }

    /// The rows of the buckets `codes` at `level`: key text → (key JSON,
    /// row hash, row JSON).
    fn rows(
        &mut self,
        level: u32,
        codes: &[i64],
    ) -> Result<BTreeMap<String, (Value, i64, Value)>, postgres::Error> {
        let sql = format!(
            "select {k}, {kj}, {h}, to_jsonb(t) from only {r} t {within}",
            k = self.shape.key_text,
            kj = self.shape.key_json,
            h = self.row_hash,
            r = self.shape.relation,
            within = self.shape.split.within(level)
        );
        Ok(self
            .client
            .query(&sql, &[&codes])?
            .iter()
            .map(|r| (r.get::<_, String>(0), (r.get(1), r.get(2), r.get(3))))
            .collect())
    }
}

/// The type of `column` of `relation`, as `format_type` writes it.
fn column_type(c: &mut Client, relation: &str, column: &str) -> Result<String, postgres::Error> {
    Ok(c.query_one(
        "select format_type(atttypid, null) from pg_attribute
          where attrelid = $1::text::regclass and attname = $2",
        &[&relation, &column],
    )?
    .get(0))
}

/// The smallest and largest value of the integer column `column` on the
/// two sides together (none when both are empty).
fn integer_bounds(
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

/// Compares one table present on both sides, listing the first
/// `job.keep` differing rows (with the source rows when unlimited).
fn table(
    source: &mut Client,
    target: &mut Client,
    schema: &str,
    name: &str,
    job: &Job<'_>,
) -> Result<TableResult, postgres::Error> {
    let (keep, tolerances) = (job.keep, job.tolerances);
    let label = format!("{schema}.{name}");
    let step = |what: &str| (job.progress)(Progress::Step(&label, what));
    // Keys, timestamps and (with the text method) row hashes must not
    // depend on the sessions' settings; JIT only slows these scans.
    for c in [&mut *source, &mut *target] {
        c.batch_execute(
            "set timezone = 'UTC'; set datestyle = 'ISO, YMD'; set extra_float_digits = 3; set jit = off; reset enable_seqscan",
        )?;
    }
    let relation = quote_qualified(Some(schema), name);
    let key = primary_key(source, schema, name)?;
    let same_key = !key.is_empty() && key == primary_key(target, schema, name)?;
    // A key of one column: its type on each side.
    let types = match key.as_slice() {
        [column] if same_key => Some((
            column.clone(),
            column_type(source, &relation, column)?,
            column_type(target, &relation, column)?,
        )),
        _ => None,
    };
    let integer = |t: &str| matches!(t, "smallint" | "integer" | "bigint");
    let range = match &types {
        Some((column, a, b)) if integer(a) && integer(b) => {
            integer_bounds(source, target, &relation, column)?
                .map(|(lo, hi)| (quote_ident(column), lo, hi))
        }
        _ => None,
    };
    let mut result = TableResult::empty(schema, name, "differ");
    // With an integer key the first split's scan is the proof itself (its
    // buckets sum to the checksum) and costs little more than the
    // checksum; with any other key the checksum comes first: one scan
    // (parallel where the server allows) proves most tables the same.
    if range.is_none() {
        step("checksums");
        let (a, b) = both(
            || checksum::table_checksum(&mut *source, schema, name),
            || checksum::table_checksum(&mut *target, schema, name),
        );
        let (a, b) = (a?, b?);
        (result.source_rows, result.target_rows) = (Some(a.rows), Some(b.rows));
        if a == b {
            result.status = "match";
            return Ok(result);
        }
        if !same_key {
            let mut note = if key.is_empty() {
                "no primary key: only the row counts and the whole-table checksum are compared"
                    .to_string()
            } else {
                "the primary keys differ between the sides: only counts and checksums are compared"
                    .to_string()
            };
            if !tolerances.is_exact() {
                note.push_str(", exactly (tolerances apply to rows matched by key)");
            }
            result.note = Some(note);
            return Ok(result);
        }
    }
    let cols: Vec<String> = key.iter().map(|c| format!("t.{}", quote_ident(c))).collect();
    // The key as text in the C collation: the same bytes, so the same
    // bucket, on both sides whatever the columns' collations.
    let key_text = match cols.as_slice() {
        [one] => format!("(({one})::text collate \"C\")"),
        many => format!("((row({}))::text collate \"C\")", many.join(", ")),
    };
    let key_json = format!(
        "jsonb_build_object({})",
        key.iter()
            .zip(&cols)
            .map(|(k, c)| format!("'{}', {c}", k.replace('\'', "''")))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let method = checksum::method(source)?;
    let estimate: f64 = source
        .query_one(
            "select greatest(reltuples, 0)::float8 from pg_class where oid = $1::text::regclass",
            &[&relation],
        )?
        .get(0);
    // Ranges: buckets of some thousands of rows, few enough to group in
    // memory cheaply, since the rows of a differing one are found through
    // the index. Hashes: buckets of some hundreds of rows, since a
    // differing one is read whole, by a scan.
    let buckets = |rows_each: f64| {
        ((estimate / rows_each).max(1.0) as u64).next_power_of_two().clamp(1, 1 << 20) as i64
    };
    let split = range
        .and_then(|(column, lo, hi)| Split::range(column, lo, hi, buckets(RANGE_ROWS)))
        .unwrap_or_else(|| Split::Hash {
            key: match &types {
                Some((column, a, b)) if a == "uuid" && b == "uuid" => {
                    HashedKey::Uuid(quote_ident(column))
                }
                _ => HashedKey::Text(key_text.clone()),
            },
            first: buckets(HASH_ROWS).max(FANOUT),
        });
    // The planner cannot know the buckets are few: it would sort every row
    // to group them, or plan to spill them. Hashing them in memory, in
    // parallel where the server allows, is what fits.
    for c in [&mut *source, &mut *target] {
        c.batch_execute(
            "set work_mem = '64MB'; set enable_sort = off; set parallel_setup_cost = 0; set parallel_tuple_cost = 0",
        )?;
    }
    let shape = Shape { relation, key_text, key_json, split };
    let rounding = tolerances.rounding();
    let mut s = Side {
        row_hash: checksum::row_hash_sql(source, method, schema, name, &rounding)?,
        client: source,
        shape: &shape,
    };
    let mut t = Side {
        row_hash: checksum::row_hash_sql(target, method, schema, name, &rounding)?,
        client: target,
        shape: &shape,
    };
    let whole = keep == usize::MAX;
    // Breadth first: at each level one scan per side gives every bucket
    // under the differing ones; small differing buckets are fetched
    // together, big ones split again.
    let mut under: Vec<i64> = Vec::new();
    let mut fetch: Vec<(u32, Vec<i64>)> = Vec::new();
    let mut batch_rows = 0i64;
    // Rows of buckets only one side has, set to be read.
    let mut lone = 0usize;
    let levels = shape.split.levels();
    for level in 1..=levels {
        if level > 1 && under.is_empty() {
            break;
        }
        step(&if level == 1 {
            "bucket sums over all rows".to_string()
        } else {
            format!("splitting {} differing bucket(s)", under.len())
        });
        let (bs, bt) = both(|| s.buckets(level, &under), || t.buckets(level, &under));
        let (bs, bt) = (bs?, bt?);
        if level == 1 && result.source_rows.is_none() {
            // No checksum came first (an integer key): all the buckets
            // equal is the proof.
            let rows = |b: &BTreeMap<i64, (i64, String)>| Some(b.values().map(|v| v.0).sum());
            (result.source_rows, result.target_rows) = (rows(&bs), rows(&bt));
            if bs == bt {
                result.status = "match";
                return Ok(result);
            }
        }
        if level == 1 && matches!(shape.split, Split::Range { .. }) {
            // The planner cannot know a bucket's range is narrow (its end
            // is a parameter): it would scan the whole table once per
            // bucket. The key's index is what fits.
            for c in [&mut *s.client, &mut *t.client] {
                c.batch_execute("set enable_seqscan = off")?;
            }
        }
        let codes: BTreeSet<i64> = bs.keys().chain(bt.keys()).copied().collect();
        let mut small = Vec::new();
        let mut big = Vec::new();
        for code in codes {
            let (x, y) = (bs.get(&code), bt.get(&code));
            if x == y {
                continue;
            }
            let size = x.map_or(0, |v| v.0).max(y.map_or(0, |v| v.0));
            // A bucket one side lacks: every row of it is missing (or
            // extra). Its rows are read only while some are still to be
            // listed (all of them for sync); the rest are counted.
            if x.is_none() || y.is_none() {
                if !whole && lone >= keep {
                    match x {
                        Some(v) => result.missing += v.0 as usize,
                        None => result.extra += size as usize,
                    }
                    continue;
                }
                lone += size as usize;
            } else if size > shape.split.fetch_limit() && level < levels {
                big.push(code);
                continue;
            }
            // Fetched in batches of about FETCH_BATCH rows: one scan per
            // batch, memory bounded however much differs.
            if small.is_empty() || batch_rows + size > FETCH_BATCH {
                if !small.is_empty() {
                    fetch.push((level, std::mem::take(&mut small)));
                }
                batch_rows = 0;
            }
            small.push(code);
            batch_rows += size;
        }
        if !small.is_empty() {
            fetch.push((level, small));
        }
        batch_rows = 0;
        under = big;
    }
    // The columns whose values may be equal within the tolerances though
    // they differ, by their kind on the target.
    let tolerant = if tolerances.is_exact() {
        BTreeMap::new()
    } else {
        tolerant_columns(t.client, &shape.relation, tolerances)?
    };
    let batches = fetch.len();
    for (i, (level, codes)) in fetch.into_iter().enumerate() {
        step(&format!(
            "reading the rows of {} differing bucket(s), batch {} of {batches}",
            codes.len(),
            i + 1
        ));
        let (rs, rt) = both(|| s.rows(level, &codes), || t.rows(level, &codes));
        let (rs, rt) = (rs?, rt?);
        let mut diffs = Vec::new();
        for k in rs.keys().chain(rt.keys()).collect::<BTreeSet<&String>>() {
            diffs.push(match (rs.get(k), rt.get(k)) {
                (Some((key, _, row)), None) => RowDiff {
                    key: key.clone(),
                    kind: "missing",
                    columns: BTreeMap::new(),
                    source_row: whole.then(|| row.clone()),
                },
                (None, Some((key, _, _))) => RowDiff {
                    key: key.clone(),
                    kind: "extra",
                    columns: BTreeMap::new(),
                    source_row: None,
                },
                (Some((key, ha, ra)), Some((_, hb, rb))) if ha != hb => RowDiff {
                    key: key.clone(),
                    kind: "different",
                    columns: differing_columns(ra, rb),
                    source_row: whole.then(|| ra.clone()),
                },
                _ => continue,
            });
        }
        if !tolerant.is_empty() {
            drop_within_tolerances(t.client, tolerances, &tolerant, &mut diffs)?;
        }
        for diff in diffs {
            match diff.kind {
                "missing" => result.missing += 1,
                "extra" => result.extra += 1,
                _ => result.different += 1,
            }
            if result.rows.len() < keep {
                result.rows.push(diff);
            }
        }
    }
    // The hashes were of rounded values: no row left is the proof.
    if !tolerances.is_exact()
        && result.missing + result.extra + result.different == 0
        && result.source_rows == result.target_rows
    {
        result.status = "match";
    }
    result.rows.sort_by(|a, b| key_order(&a.key, &b.key));
    Ok(result)
}

/// Keys in order for reading: numbers by value (`{"id":9}` before
/// `{"id":10}`), anything else by its JSON text.
fn key_order(a: &Value, b: &Value) -> std::cmp::Ordering {
    let parts = |v: &Value| -> Vec<Value> {
        v.as_object().map_or_else(|| vec![v.clone()], |o| o.values().cloned().collect())
    };
    let (a, b) = (parts(a), parts(b));
    for (x, y) in a.iter().zip(&b) {
        let order = match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal),
            _ => std::cmp::Ordering::Equal,
        }
        .then_with(|| x.to_string().cmp(&y.to_string()));
        if order.is_ne() {
            return order;
        }
    }
    a.len().cmp(&b.len())
}

/// The columns whose JSON values differ between two rows: column →
/// [source value, target value].
fn differing_columns(a: &Value, b: &Value) -> BTreeMap<String, [Value; 2]> {
    let names: BTreeSet<&String> = a
        .as_object()
        .into_iter()
        .flat_map(|o| o.keys())
        .chain(b.as_object().into_iter().flat_map(|o| o.keys()))
        .collect();
    names
        .into_iter()
        .filter_map(|c| {
            let (va, vb) = (
                a.get(c).cloned().unwrap_or(Value::Null),
                b.get(c).cloned().unwrap_or(Value::Null),
            );
            (va != vb).then(|| (c.clone(), [va, vb]))
        })
        .collect()
}

/// The columns of `relation` a tolerance applies to: name → the kind of
/// value (`numeric`, or the time type).
fn tolerant_columns(
    client: &mut Client,
    relation: &str,
    tolerances: &Tolerances,
) -> Result<BTreeMap<String, String>, postgres::Error> {
    let rows = client.query(
        "select a.attname::text, b.typname::text from pg_attribute a
           join pg_type y on y.oid = a.atttypid
           join pg_type b on b.oid = coalesce(nullif(y.typbasetype, 0), y.oid)
          where a.attrelid = $1::text::regclass and a.attnum > 0 and not a.attisdropped
            and b.typnamespace = 'pg_catalog'::regnamespace",
        &[&relation],
    )?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let (name, ty): (String, String) = (r.get(0), r.get(1));
            let kind = match ty.as_str() {
                "numeric" | "float4" | "float8" if tolerances.numeric.is_some() => "numeric",
                "timestamptz" | "timestamp" | "time" | "timetz"
                    if tolerances.timestamp_digits.is_some() =>
                {
                    ty.as_str()
                }
                _ => return None,
            };
            Some((name, kind.to_string()))
        })
        .collect())
}

/// Takes out of `diffs` the values equal within the tolerances (checked
/// by the server's own arithmetic, exactly), and the rows left with no
/// differing value.
fn drop_within_tolerances(
    client: &mut Client,
    tolerances: &Tolerances,
    tolerant: &BTreeMap<String, String>,
    diffs: &mut Vec<RowDiff>,
) -> Result<(), postgres::Error> {
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    let mut asked = Vec::new();
    let (mut kinds, mut a, mut b) = (Vec::new(), Vec::new(), Vec::new());
    for (i, d) in diffs.iter().enumerate() {
        for (column, [va, vb]) in &d.columns {
            if let (Some(kind), Some(x), Some(y)) = (tolerant.get(column), text(va), text(vb)) {
                asked.push((i, column.clone()));
                kinds.push(kind.clone());
                a.push(x);
                b.push(y);
            }
        }
    }
    if asked.is_empty() {
        return Ok(());
    }
    let p = tolerances.timestamp_digits.unwrap_or(6);
    let sql = format!(
        "select coalesce(case u.k
                  when 'numeric' then abs(u.a::numeric - u.b::numeric) <= $4::text::numeric
                  when 'timestamptz' then u.a::timestamptz({p}) = u.b::timestamptz({p})
                  when 'timestamp' then u.a::timestamp({p}) = u.b::timestamp({p})
                  when 'time' then u.a::time({p}) = u.b::time({p})
                  when 'timetz' then u.a::timetz({p}) = u.b::timetz({p}) end, false)
           from unnest($1::text[], $2::text[], $3::text[]) with ordinality u(k, a, b, i)
          order by u.i"
    );
    let within = client.query(&sql, &[&kinds, &a, &b, &tolerances.numeric])?;
    let mut emptied = BTreeSet::new();
    for ((i, column), row) in asked.into_iter().zip(within) {
        if row.get::<_, bool>(0) {
            diffs[i].columns.remove(&column);
            emptied.insert(i);
        }
    }
    let mut i = 0;
    diffs.retain(|d| {
        let keep = !(emptied.contains(&i) && d.columns.is_empty());
        i += 1;
        keep
    });
    Ok(())
}

/// Where a table's comparison is, for progress bars.
#[derive(Debug, Clone, Copy)]
pub enum Progress<'a> {
    Started(&'a str),
    /// A table's comparison moves on: (table, what it does now).
    Step(&'a str, &'a str),
    Finished(&'a TableResult),
}

/// What each table's comparison is asked for.
struct Job<'a> {
    /// How many differing rows to list (every one, with its source row,
    /// at `usize::MAX`: sync).
    keep: usize,
    tolerances: &'a Tolerances,
    progress: &'a (dyn Fn(Progress<'_>) + Sync),
}

/// Why a comparison could not start.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error(transparent)]
    Connect(#[from] crate::pg::conn::ConnectError),
    #[error("database error while listing the tables")]
    Db(#[from] postgres::Error),
}

fn message(e: &postgres::Error) -> String {
    e.as_db_error().map_or_else(|| e.to_string(), |d| d.message().to_string())
}

/// A table to compare: (schema, name), whether the source has it, whether the target has it.
type Listed = ((String, String), bool, bool);

/// The tables of both sides that `only` chooses (`schema.table` or
/// `table`; empty: all), and which side has each.
fn tables_of(
    source: &mut Client,
    target: &mut Client,
    only: &[String],
) -> Result<Vec<Listed>, postgres::Error> {
    let a: BTreeSet<(String, String)> = checksum::user_tables(source)?.into_iter().collect();
    let b: BTreeSet<(String, String)> = checksum::user_tables(target)?.into_iter().collect();
    let wanted = |t: &(String, String)| {
        only.is_empty() || only.iter().any(|o| *o == format!("{}.{}", t.0, t.1) || *o == t.1)
    };
    Ok(a.union(&b)
        .filter(|t| wanted(t))
        .map(|t| (t.clone(), a.contains(t), b.contains(t)))
        .collect())
}

/// One table's result, whatever happens: an error is a result too.
fn one(
    source: &mut Client,
    target: &mut Client,
    t: &(String, String),
    in_a: bool,
    in_b: bool,
    job: &Job<'_>,
) -> TableResult {
    let empty = |status| TableResult::empty(&t.0, &t.1, status);
    match (in_a, in_b) {
        (true, false) => empty("only_in_source"),
        (false, true) => empty("only_in_target"),
        _ => match table(source, target, &t.0, &t.1, job) {
            Ok(r) => r,
            Err(e) => {
                // Whatever broke, this table was not shown to match.
                for c in [&mut *source, &mut *target] {
                    let _ = c.batch_execute("rollback");
                }
                let mut r = empty("error");
                r.note = Some(message(&e));
                r
            }
        },
    }
}

/// The target's foreign keys, the schemas, and the verdict over it all.
fn conclude(
    source: &mut Client,
    target: &mut Client,
    tables: Vec<TableResult>,
    tolerances: &Tolerances,
) -> Comparison {
    // An FK check that fails is an error of the whole comparison.
    let (foreign_keys, foreign_key_error) = match orphans(target) {
        Ok(f) => (f, None),
        Err(e) => (Vec::new(), Some(message(&e))),
    };
    let (schema, schema_cosmetic, schema_error) = match (
        crate::pg::fingerprint::Schema::read(source),
        crate::pg::fingerprint::Schema::read(target),
    ) {
        (Ok(a), Ok(b)) => (a.differences(&b), a.cosmetic_differences(&b), None),
        (Err(e), _) | (_, Err(e)) => (Vec::new(), Vec::new(), Some(message(&e))),
    };
    let broken = foreign_key_error.is_some() || schema_error.is_some();
    let verdict = if broken || tables.iter().any(|t| t.status == "error") {
        "error"
    } else if tables.iter().all(|t| t.status == "match")
        && foreign_keys.is_empty()
        && schema.is_empty()
    {
        "match"
    } else {
        "differ"
    };
    Comparison {
        verdict,
        tables,
        foreign_keys,
        foreign_key_error,
        schema,
        schema_cosmetic,
        schema_error,
        tolerances: tolerances.clone(),
    }
}

/// Compares every user table (or those named `schema.table` in `only`).
pub fn compare(
    source: &mut Client,
    target: &mut Client,
    only: &[String],
) -> Result<Comparison, postgres::Error> {
    compare_keeping(source, target, only, SHOWN, &Tolerances::default())
}

/// [`compare`], listing the first `keep` differing rows of each table
/// (every one, with its source row, when `keep` is `usize::MAX`: sync).
pub(crate) fn compare_keeping(
    source: &mut Client,
    target: &mut Client,
    only: &[String],
    keep: usize,
    tolerances: &Tolerances,
) -> Result<Comparison, postgres::Error> {
    let job = Job { keep, tolerances, progress: &|_| {} };
    let mut tables = Vec::new();
    for (t, in_a, in_b) in tables_of(source, target, only)? {
        tables.push(one(source, target, &t, in_a, in_b, &job));
    }
    Ok(conclude(source, target, tables, tolerances))
}

/// [`compare`] over connections of its own, `jobs` tables at a time (each
/// worker with a session on each side), telling `progress` as tables start
/// and finish. Results keep the tables' order.
pub fn compare_parallel(
    source_url: &str,
    target_url: &str,
    only: &[String],
    jobs: usize,
    tolerances: &Tolerances,
    progress: &(dyn Fn(Progress<'_>) + Sync),
) -> Result<Comparison, CompareError> {
    let connect = || -> Result<(Client, Client), CompareError> {
        Ok((
            crate::pg::connect(source_url, "backstop compare")?,
            crate::pg::connect(target_url, "backstop compare")?,
        ))
    };
    let (mut source, mut target) = connect()?;
    let work = tables_of(&mut source, &mut target, only)?;
    let job = Job { keep: SHOWN, tolerances, progress };
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: std::sync::Mutex<Vec<Option<TableResult>>> =
        std::sync::Mutex::new(vec![None; work.len()]);
    let run = |source: &mut Client, target: &mut Client| loop {
        let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let Some((t, in_a, in_b)) = work.get(i) else { break };
        let name = format!("{}.{}", t.0, t.1);
        progress(Progress::Started(&name));
        let r = one(source, target, t, *in_a, *in_b, &job);
        progress(Progress::Finished(&r));
        results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(r);
    };
    let workers = jobs.clamp(1, work.len().max(1));
    std::thread::scope(|scope| -> Result<(), CompareError> {
        let mut handles = Vec::new();
        for _ in 1..workers {
            let (mut s, mut t) = connect()?;
            handles.push(scope.spawn(move || run(&mut s, &mut t)));
        }
        run(&mut source, &mut target);
        for h in handles {
            let _ = h.join();
        }
        Ok(())
    })?;
    let tables: Vec<TableResult> = results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .zip(&work)
        .map(|(r, (t, _, _))| {
            r.unwrap_or_else(|| {
                let mut r = TableResult::empty(&t.0, &t.1, "error");
                r.note = Some("its worker stopped before comparing it".into());
                r
            })
        })
        .collect();
    Ok(conclude(&mut source, &mut target, tables, tolerances))
}

/// `[compare]`: what makes a comparison fail.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompareSection {
    /// `exact` (the default: any difference fails) or `runbook` (the
    /// cutover runbook's matrix: row counts within 1 %, content checksums
    /// and foreign keys fail it; schema differences are reported).
    pub preset: Preset,
    /// How far a table's row count may be from the source's, as a share of
    /// the source's rows: `"1%"`. Default: the preset's.
    #[serde(deserialize_with = "percent")]
    pub row_count_tolerance: Option<f64>,
    /// Which criteria fail the verdict. Default: the preset's.
    pub fail_on: Option<Vec<Criterion>>,
    /// numeric, real and double precision values at most this far apart
    /// count as equal: `"0.01"`. Default: exactly.
    #[serde(deserialize_with = "tolerance")]
    pub numeric_tolerance: Option<String>,
    /// Timestamps and times count as equal once rounded to this precision
    /// (`"1s"`, `"100ms"`, `"10ms"`, `"1ms"`, `"100us"`, `"10us"`,
    /// `"1us"`), as a column of that precision stores them. Default: to
    /// the microsecond.
    #[serde(deserialize_with = "precision")]
    pub timestamp_precision: Option<u8>,
}

/// `numeric_tolerance`: a positive decimal, as a string or a number.
fn tolerance<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Written {
        Text(String),
        Integer(i64),
        Float(f64),
    }
    let text = match <Option<Written> as serde::Deserialize>::deserialize(d)? {
        None => return Ok(None),
        Some(Written::Text(t)) => t.trim().to_string(),
        Some(Written::Integer(i)) => i.to_string(),
        Some(Written::Float(f)) => f.to_string(),
    };
    let digits = |p: &str| p.chars().all(|c| c.is_ascii_digit());
    let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
    let well_formed = !text.is_empty()
        && digits(whole)
        && digits(fraction)
        && !(whole.is_empty() && fraction.is_empty())
        && text.chars().any(|c| ('1'..='9').contains(&c))
        && text.len() <= 40;
    if !well_formed {
        return Err(serde::de::Error::custom(format!(
            "numeric_tolerance = {text:?}: write how far apart two values may be and still count as equal, a positive decimal such as \"0.01\""
        )));
    }
    Ok(Some(text))
}

/// `timestamp_precision`: one of [`PRECISIONS`], as fractional digits.
fn precision<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u8>, D::Error> {
    let Some(text) = <Option<String> as serde::Deserialize>::deserialize(d)? else {
        return Ok(None);
    };
    let wanted = text.trim().replace('µ', "u");
    PRECISIONS.iter().position(|p| *p == wanted).map(|d| Some(d as u8)).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "timestamp_precision = {text:?}: write one of {}",
            PRECISIONS.map(|p| format!("\"{p}\"")).join(", ")
        ))
    })
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    #[default]
    Exact,
    Runbook,
}

/// One thing a comparison can fail on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Criterion {
    /// Row counts, within `row_count_tolerance`; a table on one side only.
    Rows,
    /// The content of tables whose counts agree: checksums and rows.
    Content,
    /// Orphaned rows under the target's foreign keys.
    ForeignKeys,
    /// Schema differences in behaviour.
    Schema,
}

fn percent<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    let text = <Option<String> as serde::Deserialize>::deserialize(d)?;
    let Some(text) = text else { return Ok(None) };
    text.trim()
        .strip_suffix('%')
        .and_then(|n| n.trim().parse::<f64>().ok())
        .filter(|n| n.is_finite() && (0.0..=100.0).contains(n))
        .map(Some)
        .ok_or_else(|| {
            serde::de::Error::custom(format!(
                "row_count_tolerance = {text:?}: write a share of the rows from \"0%\" to \"100%\", e.g. \"1%\""
            ))
        })
}

/// One criterion's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Judged {
    pub criterion: Criterion,
    /// Whether it fails the verdict when not met.
    pub counts: bool,
    pub ok: bool,
    pub detail: String,
}

/// The verdict under `[compare]`.
#[derive(Debug, Clone, Serialize)]
pub struct Judgement {
    /// `pass`, `fail` or `error` (something could not be compared).
    pub verdict: &'static str,
    pub preset: Preset,
    pub row_count_tolerance: f64,
    pub criteria: Vec<Judged>,
}

impl CompareSection {
    /// The tolerances rows are compared with.
    pub fn tolerances(&self) -> Tolerances {
        Tolerances {
            numeric: self.numeric_tolerance.clone(),
            timestamp_digits: self.timestamp_precision,
        }
    }

    /// The tolerance and failing criteria in force.
    fn policy(&self) -> (f64, Vec<Criterion>) {
        use Criterion::*;
        let (tolerance, fail_on) = match self.preset {
            Preset::Exact => (0.0, vec![Rows, Content, ForeignKeys, Schema]),
            Preset::Runbook => (1.0, vec![Rows, Content, ForeignKeys]),
        };
        (self.row_count_tolerance.unwrap_or(tolerance), self.fail_on.clone().unwrap_or(fail_on))
    }

    /// Judges `c` by the policy: every criterion with what it found.
    pub fn judge(&self, c: &Comparison) -> Judgement {
        let (tolerance, fail_on) = self.policy();
        let mut criteria = Vec::new();
        let mut add = |criterion, ok, detail: String| {
            criteria.push(Judged { criterion, counts: fail_on.contains(&criterion), ok, detail })
        };

        let mut off = Vec::new();
        for t in &c.tables {
            match (t.source_rows, t.target_rows, t.status) {
                (_, _, "only_in_source") => off.push(format!("{} only in the source", t.table)),
                (_, _, "only_in_target") => off.push(format!("{} only in the target", t.table)),
                (Some(a), Some(b), _) => {
                    let share = (a - b).abs() as f64 * 100.0 / a.max(1) as f64;
                    if share > tolerance {
                        off.push(format!("{}: {a} → {b} ({share:.2}%)", t.table));
                    }
                }
                _ => {}
            }
        }
        let detail = if off.is_empty() {
            format!("every table's row count within {tolerance}% of the source's")
        } else {
            off.join("; ")
        };
        add(Criterion::Rows, off.is_empty(), detail);

        let differ: Vec<String> = c
            .tables
            .iter()
            .filter(|t| t.status == "differ")
            .map(|t| match &t.note {
                Some(note) => format!("{} ({note})", t.table),
                None => format!(
                    "{}: {} missing, {} extra, {} different",
                    t.table, t.missing, t.extra, t.different
                ),
            })
            .collect();
        let detail = match (differ.is_empty(), c.tolerances.describe()) {
            (true, None) => "checksums equal".to_string(),
            (true, Some(within)) => format!("equal within the tolerances: {within}"),
            (false, _) => differ.join("; "),
        };
        add(Criterion::Content, differ.is_empty(), detail);

        let orphans: i64 = c.foreign_keys.iter().map(|f| f.orphans).sum();
        let detail = match (&c.foreign_key_error, orphans) {
            (Some(e), _) => format!("not checked: {e}"),
            (None, 0) => "no orphaned rows in the target".to_string(),
            (None, n) => format!("{n} orphaned row(s) under {} key(s)", c.foreign_keys.len()),
        };
        add(Criterion::ForeignKeys, orphans == 0 && c.foreign_key_error.is_none(), detail);

        let detail = match (&c.schema_error, c.schema.len()) {
            (Some(e), _) => format!("not compared: {e}"),
            (None, 0) => "the same".to_string(),
            (None, n) => format!("{n} difference(s)"),
        };
        add(Criterion::Schema, c.schema.is_empty() && c.schema_error.is_none(), detail);

        let verdict = if c.verdict == "error" {
            "error"
        } else if criteria.iter().any(|j| j.counts && !j.ok) {
            "fail"
        } else {
            "pass"
        };
        Judgement { verdict, preset: self.preset, row_count_tolerance: tolerance, criteria }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn widths(split: Option<Split>) -> Option<(i64, Vec<i64>)> {
        split.map(|s| match s {
            Split::Range { lo, widths, .. } => (lo, widths),
            Split::Hash { .. } => unreachable!(),
        })
    }

    #[test]
    fn range_buckets_nest_down_to_one_key() {
        // 10M dense keys in ~2442 buckets of 4096, then 16, then 1.
        assert_eq!(
            widths(Split::range("id".into(), 1, 10_000_000, 4096)),
            Some((1, vec![4096, 16, 1]))
        );
        let (_, w) = widths(Split::range("id".into(), -1_000_000_000, 2_000_000_000, 8)).unwrap();
        assert_eq!(w[0], 1 << 29);
        assert!(w.windows(2).all(|p| p[1] == (p[0] / FANOUT).max(1) && p[0] % p[1] == 0), "{w:?}");
        assert_eq!(w.last(), Some(&1));
        assert_eq!(widths(Split::range("id".into(), 5, 5, 1)), Some((5, vec![1])));
    }

    #[test]
    fn keys_spanning_more_than_64_bits_are_not_split_in_ranges() {
        assert!(Split::range("id".into(), i64::MIN, i64::MAX, 4).is_none());
        assert!(Split::range("id".into(), -10, i64::MAX, 1 << 20).is_none());
        assert!(Split::range("id".into(), 0, i64::MAX / 2, 1 << 20).is_some());
    }
}
