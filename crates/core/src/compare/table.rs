//! The comparison of one table present on both sides: the plan (session
//! settings, the key, checksum first or not, the buckets), the descent
//! through the bucket levels to the differing buckets, and the reading and
//! diffing of their rows.

use std::collections::{BTreeMap, BTreeSet};

use postgres::Client;

use super::buckets::{both, HashedKey, Shape, Side, Split};
use super::catalog::{column_type, integer_bounds, primary_key};
use super::diff::{differing_columns, key_order};
use super::tolerance::{drop_within_tolerances, tolerant_columns};
use super::{Job, Progress, RowDiff, TableResult, FANOUT, FETCH_BATCH, HASH_ROWS, RANGE_ROWS};
use crate::pg::{checksum, quote_ident, quote_qualified};

/// Compares one table present on both sides, listing the first
/// `job.keep` differing rows (with the source rows when unlimited).
pub(super) fn table(
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
