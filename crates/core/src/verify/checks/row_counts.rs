//! `row_counts`: per-table row counts equal to a snapshot, or within a
//! tolerance. All tables are counted in one repeatable-read transaction.

use postgres::Client;

use super::{db, find_relation, Outcome, TABLE_KINDS};
use crate::verify::config::{RowCountsCheck, TableName, Tolerance};
use crate::verify::snapshot::Snapshot;
use crate::verify::VerifyError;

pub(crate) fn run(
    c: &RowCountsCheck,
    snapshot: &Snapshot,
    client: &mut Client,
) -> Result<Outcome, VerifyError> {
    let wanted = compared_tables(c.tables.as_deref(), snapshot);
    let mut tx = super::one_moment(client)?;
    let mut problems = Vec::new();
    let mut total = 0i64;
    for (shown, key) in &wanted {
        let Some(key) = key else {
            problems.push(format!("snapshot {} has no count of {shown}", snapshot.name));
            continue;
        };
        let before = snapshot.tables[key].rows;
        let name = TableName::parse(key).map_err(|reason| VerifyError::SnapshotCorrupt {
            name: snapshot.name.clone(),
            reason,
        })?;
        let Some(rel) = find_relation(&mut tx, &name, &TABLE_KINDS)? else {
            problems.push(format!("{shown} is gone (it had {before} rows)"));
            continue;
        };
        let now: i64 = tx
            .query_one(&format!("select count(*) from only {}", rel.sql()), &[])
            .map_err(db("counting rows"))?
            .get(0);
        total += now;
        if !within(before, now, c.tolerance) {
            problems.push(format!("{shown}: {before} → {now} rows ({:+})", now - before));
        }
    }
    let against = format!(
        "snapshot {} ({})",
        snapshot.name,
        snapshot.taken_at.format("%Y-%m-%d %H:%M:%S UTC")
    );
    let tolerance = match c.tolerance {
        Tolerance::Rows(0) => String::new(),
        Tolerance::Rows(n) => format!(" within {n} rows"),
        Tolerance::Percent(p) => format!(" within {p}%"),
    };
    Ok(if problems.is_empty() {
        Outcome::Pass(format!(
            "{} table(s), {total} rows, equal{tolerance} to {against}",
            wanted.len()
        ))
    } else {
        Outcome::Fail(format!("differs from {against}{tolerance}: {}", problems.join("; ")))
    })
}

/// The tables to compare, as shown and as keyed in the snapshot.
pub(crate) fn compared_tables(
    tables: Option<&[TableName]>,
    snapshot: &Snapshot,
) -> Vec<(String, Option<String>)> {
    match tables {
        Some(list) => list.iter().map(|t| (t.to_string(), snapshot.key_for(t))).collect(),
        None => snapshot
            .tables
            .keys()
            .map(|k| (k.strip_prefix("public.").unwrap_or(k).to_string(), Some(k.clone())))
            .collect(),
    }
}

/// Whether `now` is within `tolerance` of `before`.
pub(crate) fn within(before: i64, now: i64, tolerance: Tolerance) -> bool {
    let diff = (now - before).unsigned_abs();
    match tolerance {
        Tolerance::Rows(n) => diff <= n,
        Tolerance::Percent(p) => (diff as f64) <= (before.unsigned_abs() as f64) * p / 100.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerance_in_rows_and_percent() {
        assert!(within(100, 100, Tolerance::Rows(0)));
        assert!(!within(100, 99, Tolerance::Rows(0)));
        assert!(within(100, 103, Tolerance::Rows(3)));
        assert!(within(1000, 990, Tolerance::Percent(1.0)));
        assert!(!within(1000, 989, Tolerance::Percent(1.0)));
        assert!(!within(0, 1, Tolerance::Percent(50.0)));
    }
}
