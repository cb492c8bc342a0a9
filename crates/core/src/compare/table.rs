//! The comparison of one table present on both sides: the plan (session
//! settings, the key, checksum first or not, the buckets), the descent
//! through the bucket levels to the differing buckets, and the reading and
//! diffing of their rows.

use std::collections::{BTreeMap, BTreeSet};

use postgres::Client;

use super::buckets::{both, HashedKey, Shape, Side, Split};
use super::catalog::{column_type, integer_bounds, primary_key};
use super::diff::{key_order, row_diffs};
use super::tolerance::{drop_within_tolerances, tolerant_columns, Tolerances};
use super::{Job, Progress, TableResult, FANOUT, FETCH_BATCH, HASH_ROWS, RANGE_ROWS};
use crate::pg::{checksum, quote_ident, quote_qualified};

/// Differing buckets set to be read, in batches: (level, bucket codes).
type Fetch = Vec<(u32, Vec<i64>)>;

/// Compares one table present on both sides, listing the first
/// `job.keep` differing rows (with the source rows when unlimited).
pub(super) fn table(
    source: &mut Client,
    target: &mut Client,
    schema: &str,
    name: &str,
    job: &Job<'_>,
) -> Result<TableResult, postgres::Error> {
    let tolerances = job.tolerances;
    let label = format!("{schema}.{name}");
    let step = |what: &str| (job.progress)(Progress::Step(&label, what));
    settle_sessions(source, target)?;
    let relation = quote_qualified(Some(schema), name);
    let key = Key::read(source, target, schema, name, &relation)?;
    let mut result = TableResult::empty(schema, name, "differ");
    // A column on one side only would make every row differ: the rows are
    // compared on the columns both have, and the others listed apart.
    let (mine, theirs) = both(
        || super::catalog::columns(&mut *source, schema, name),
        || super::catalog::columns(&mut *target, schema, name),
    );
    let (mine, theirs) = (mine?, theirs?);
    result.columns_only_in_source = mine.iter().filter(|c| !theirs.contains(c)).cloned().collect();
    result.columns_only_in_target = theirs.iter().filter(|c| !mine.contains(c)).cloned().collect();
    let skip = (&result.columns_only_in_source.clone(), &result.columns_only_in_target.clone());
    let common: Vec<String> = mine.iter().filter(|c| theirs.contains(c)).cloned().collect();
    // With an integer key the first split's scan is the proof itself (its
    // buckets sum to the checksum) and costs little more than the
    // checksum; with any other key the checksum comes first: one scan
    // (parallel where the server allows) proves most tables the same.
    if key.range.is_none()
        && checksum_settles(source, target, &key, tolerances, &mut result, skip, &step)?
    {
        if result.status == "differ" && key.columns.is_empty() {
            // No key to match rows by: whole rows are counted instead.
            (result.missing, result.extra) = whole_rows(source, target, &relation, &common)?;
        }
        return Ok(result);
    }
    let method = checksum::method(source)?;
    let shape = shape(source, relation, &key)?;
    // The planner cannot know the buckets are few: it would sort every row
    // to group them, or plan to spill them. Hashing them in memory, in
    // parallel where the server allows, is what fits.
    for c in [&mut *source, &mut *target] {
        c.batch_execute(
            "set work_mem = '64MB'; set enable_sort = off; set parallel_setup_cost = 0; set parallel_tuple_cost = 0",
        )?;
    }
    let rounding = tolerances.rounding();
    let mut s = Side {
        row_hash: checksum::row_hash_sql_without(source, method, schema, name, &rounding, skip.0)?,
        row_json: row_json(skip.0),
        client: source,
        shape: &shape,
    };
    let mut t = Side {
        row_hash: checksum::row_hash_sql_without(target, method, schema, name, &rounding, skip.1)?,
        row_json: row_json(skip.1),
        client: target,
        shape: &shape,
    };
    let Some(fetch) = descend(&mut s, &mut t, job, &mut result, &step)? else {
        return Ok(result);
    };
    read_differing(&mut s, &mut t, fetch, job, &mut result, &step)?;
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

/// A row as JSON without the columns `skip`.
fn row_json(skip: &[String]) -> String {
    if skip.is_empty() {
        return "to_jsonb(t)".to_string();
    }
    let names: Vec<String> = skip.iter().map(|s| format!("'{}'", s.replace('\'', "''"))).collect();
    format!("(to_jsonb(t) - array[{}]::text[])", names.join(", "))
}

/// Keys, timestamps and (with the text method) row hashes must not
/// depend on the sessions' settings; JIT only slows these scans.
fn settle_sessions(source: &mut Client, target: &mut Client) -> Result<(), postgres::Error> {
    for c in [source, target] {
        c.batch_execute(
            "set timezone = 'UTC'; set datestyle = 'ISO, YMD'; set extra_float_digits = 3; set jit = off; reset enable_seqscan",
        )?;
    }
    Ok(())
}

/// What the two sides say about the table's primary key, which decides
/// how its rows can be matched and put in buckets.
struct Key {
    /// The source's key columns, in key order (empty: no primary key).
    columns: Vec<String>,
    /// Both sides have this same key: rows can be matched by it.
    same: bool,
    /// A key of one column: (column, its type on the source, on the target).
    types: Option<(String, String, String)>,
    /// A key of one integer column on both sides: (column quoted, the
    /// smallest and largest value of both sides), for range buckets.
    range: Option<(String, i64, i64)>,
}

impl Key {
    /// Reads the key of `relation` (`schema.name`, quoted) on both sides.
    fn read(
        source: &mut Client,
        target: &mut Client,
        schema: &str,
        name: &str,
        relation: &str,
    ) -> Result<Key, postgres::Error> {
        let columns = primary_key(source, schema, name)?;
        let same = !columns.is_empty() && columns == primary_key(target, schema, name)?;
        // A key of one column: its type on each side.
        let types = match columns.as_slice() {
            [column] if same => Some((
                column.clone(),
                column_type(source, relation, column)?,
                column_type(target, relation, column)?,
            )),
            _ => None,
        };
        let integer = |t: &str| matches!(t, "smallint" | "integer" | "bigint");
        let range = match &types {
            Some((column, a, b)) if integer(a) && integer(b) => {
                integer_bounds(source, target, relation, column)?
                    .map(|(lo, hi)| (quote_ident(column), lo, hi))
            }
            _ => None,
        };
        Ok(Key { columns, same, types, range })
    }
}

/// The whole-table checksums of both sides, into `result`; whether they
/// settle the table: it matches, or its rows cannot be matched by key
/// (then only the counts and checksums are compared, as its note says).
fn checksum_settles(
    source: &mut Client,
    target: &mut Client,
    key: &Key,
    tolerances: &Tolerances,
    result: &mut TableResult,
    skip: (&Vec<String>, &Vec<String>),
    step: &dyn Fn(&str),
) -> Result<bool, postgres::Error> {
    step("checksums");
    let (schema, name) = (&result.schema, &result.name);
    let (a, b) = both(
        || checksum::table_checksum_without(&mut *source, schema, name, skip.0),
        || checksum::table_checksum_without(&mut *target, schema, name, skip.1),
    );
    let (a, b) = (a?, b?);
    (result.source_rows, result.target_rows) = (Some(a.rows), Some(b.rows));
    if a == b {
        result.status = "match";
        return Ok(true);
    }
    if !key.same {
        let mut note = if key.columns.is_empty() {
            "no primary key: rows are matched whole, so a changed row counts as one missing and \
             one extra"
                .to_string()
        } else {
            "the primary keys differ between the sides: only counts and checksums are compared"
                .to_string()
        };
        if !tolerances.is_exact() {
            note.push_str(", exactly (tolerances apply to rows matched by key)");
        }
        result.note = Some(note);
        return Ok(true);
    }
    Ok(false)
}

/// For a table with no key: how many rows the source has that the target
/// lacks, and the target has that the source lacks, each row taken whole
/// (on the `columns` both have) and counted as often as it is there, so
/// an append-only table's rows written on one side are counted exactly.
fn whole_rows(
    source: &mut Client,
    target: &mut Client,
    relation: &str,
    columns: &[String],
) -> Result<(usize, usize), postgres::Error> {
    let cols: Vec<String> = columns.iter().map(|c| format!("t.{}", quote_ident(c))).collect();
    let sql = format!(
        "select md5(row({})::text), count(*) from {relation} t group by 1",
        cols.join(", ")
    );
    let (a, b) = both(|| source.query(&sql, &[]), || target.query(&sql, &[]));
    let counted = |rows: Vec<postgres::Row>| -> BTreeMap<String, i64> {
        rows.iter().map(|r| (r.get(0), r.get(1))).collect()
    };
    let (a, b) = (counted(a?), counted(b?));
    let more = |x: &BTreeMap<String, i64>, y: &BTreeMap<String, i64>| -> usize {
        x.iter().map(|(h, n)| (n - y.get(h).copied().unwrap_or(0)).max(0) as usize).sum()
    };
    Ok((more(&a, &b), more(&b, &a)))
}

/// What both sides query alike: the key as text and as JSON, and the
/// buckets, sized by the source's row estimate.
fn shape(source: &mut Client, relation: String, key: &Key) -> Result<Shape, postgres::Error> {
    let cols: Vec<String> = key.columns.iter().map(|c| format!("t.{}", quote_ident(c))).collect();
    // The key as text in the C collation: the same bytes, so the same
    // bucket, on both sides whatever the columns' collations.
    let key_text = match cols.as_slice() {
        [one] => format!("(({one})::text collate \"C\")"),
        many => format!("((row({}))::text collate \"C\")", many.join(", ")),
    };
    let key_json = format!(
        "jsonb_build_object({})",
        key.columns
            .iter()
            .zip(&cols)
            .map(|(k, c)| format!("'{}', {c}", k.replace('\'', "''")))
            .collect::<Vec<_>>()
            .join(", ")
    );
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
    let split = key
        .range
        .clone()
        .and_then(|(column, lo, hi)| Split::range(column, lo, hi, buckets(RANGE_ROWS)))
        .unwrap_or_else(|| Split::Hash {
            key: match &key.types {
                Some((column, a, b)) if a == "uuid" && b == "uuid" => {
                    HashedKey::Uuid(quote_ident(column))
                }
                _ => HashedKey::Text(key_text.clone()),
            },
            first: buckets(HASH_ROWS).max(FANOUT),
        });
    Ok(Shape { relation, key_text, key_json, split })
}

/// Goes down the bucket levels to the differing buckets small enough to
/// read, which it gives in batches; `None` when the first level proves the
/// table the same (no checksum came first). Buckets only one side has are
/// counted in `result` once enough rows are set to be listed.
fn descend(
    s: &mut Side<'_>,
    t: &mut Side<'_>,
    job: &Job<'_>,
    result: &mut TableResult,
    step: &dyn Fn(&str),
) -> Result<Option<Fetch>, postgres::Error> {
    let keep = job.keep;
    let whole = keep == usize::MAX;
    let shape: &Shape = s.shape;
    let split = &shape.split;
    // Breadth first: at each level one scan per side gives every bucket
    // under the differing ones; small differing buckets are fetched
    // together, big ones split again.
    let mut under: Vec<i64> = Vec::new();
    let mut fetch: Fetch = Vec::new();
    let mut batch_rows = 0i64;
    // Rows of buckets only one side has, set to be read.
    let mut lone = 0usize;
    let levels = split.levels();
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
                return Ok(None);
            }
        }
        if level == 1 && matches!(split, Split::Range { .. }) {
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
            } else if size > split.fetch_limit() && level < levels {
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
    Ok(Some(fetch))
}

/// Reads the rows of the differing buckets, batch by batch, and counts
/// (and lists, up to `job.keep`) the rows that differ beyond the
/// tolerances.
fn read_differing(
    s: &mut Side<'_>,
    t: &mut Side<'_>,
    fetch: Fetch,
    job: &Job<'_>,
    result: &mut TableResult,
    step: &dyn Fn(&str),
) -> Result<(), postgres::Error> {
    let (keep, tolerances) = (job.keep, job.tolerances);
    let whole = keep == usize::MAX;
    // The columns whose values may be equal within the tolerances though
    // they differ, by their kind on the target.
    let tolerant = if tolerances.is_exact() {
        BTreeMap::new()
    } else {
        tolerant_columns(t.client, &t.shape.relation, tolerances)?
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
        let mut diffs = row_diffs(&rs, &rt, whole);
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
    Ok(())
}
