//! The differences between two versions of rows: which rows are missing,
//! extra or different, in which columns, in an order fit for reading.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::buckets::BucketRows;
use super::RowDiff;

/// The rows that differ between the two sides' versions of the same
/// buckets, in the order of their key text. With `whole` (sync) a missing
/// or different row keeps its source row, to be written to the target.
pub(super) fn row_diffs(rs: &BucketRows, rt: &BucketRows, whole: bool) -> Vec<RowDiff> {
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
    diffs
}

/// Keys in order for reading: numbers by value (`{"id":9}` before
/// `{"id":10}`), anything else by its JSON text.
pub(super) fn key_order(a: &Value, b: &Value) -> std::cmp::Ordering {
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
