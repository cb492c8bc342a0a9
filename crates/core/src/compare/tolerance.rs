//! Tolerances: when two values that differ still count as equal
//! (`[compare]` `numeric_tolerance`, `timestamp_precision`), how values are
//! rounded before they are hashed, and the exact check, by the server's own
//! arithmetic, that takes the rows within them out of a table's differences.

use std::collections::{BTreeMap, BTreeSet};

use postgres::Client;
use serde::Serialize;
use serde_json::Value;

use super::RowDiff;
use crate::pg::checksum;

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
pub(super) const PRECISIONS: [&str; 7] = ["1s", "100ms", "10ms", "1ms", "100us", "10us", "1us"];

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
    pub(super) fn rounding(&self) -> checksum::Rounding {
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

/// The columns of `relation` a tolerance applies to: name → the kind of
/// value (`numeric`, or the time type).
pub(super) fn tolerant_columns(
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
pub(super) fn drop_within_tolerances(
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
