//! What the catalog says of one table (its size, its rows counted or
//! estimated) and how that rates a lock on it: shared by the live facts
//! of [`super::live`] and the column questions of [`super::columns`].

use backstop_lint::{Finding, Impact, Probability, RelationName};
use postgres::GenericClient;

use super::CheckError;
use crate::pg::{db, quote_qualified};

/// Tables up to this many estimated rows are counted exactly; above it the
/// planner's estimate is reported (a count would scan the whole table).
const COUNT_EXACTLY_UP_TO: f64 = 1_000_000.0;
/// Below both, a lock is over before anyone notices.
const SMALL_BYTES: i64 = 10 * 1024 * 1024;
const SMALL_ROWS: i64 = 100_000;
/// At either, a lock or rewrite lasts minutes.
const LARGE_BYTES: i64 = 1024 * 1024 * 1024;
const LARGE_ROWS: i64 = 10_000_000;

pub(super) fn name(t: &RelationName) -> String {
    backstop_sql::stmt::display_table(t)
}

pub(super) fn regclass(t: &RelationName) -> String {
    quote_qualified(t.schema.as_deref(), &t.name)
}

/// What the catalog says about one table.
#[derive(Debug, Clone)]
pub(super) struct TableFacts {
    /// Exact when `exact`, otherwise the planner's estimate (0 when the
    /// table was never analyzed, see `unknown`).
    pub rows: i64,
    pub exact: bool,
    pub unknown: bool,
    pub bytes: i64,
}

impl TableFacts {
    pub fn rows_text(&self) -> String {
        if self.exact {
            format!("{} row(s)", self.rows)
        } else if self.unknown {
            "rows not yet counted by ANALYZE".to_string()
        } else {
            format!("about {} rows (planner estimate)", self.rows)
        }
    }
}

/// Size and an estimate of rows: enough to rate a lock, and cheap.
pub(super) fn table_size(
    client: &mut impl GenericClient,
    table: &RelationName,
) -> Result<Option<TableFacts>, CheckError> {
    let row = client
        .query_opt(
            "select c.reltuples::float8, pg_total_relation_size(c.oid)::int8
               from pg_class c where c.oid = to_regclass($1) and c.relkind in ('r', 'p', 'm')",
            &[&regclass(table)],
        )
        .map_err(db("reading table sizes from pg_class"))?;
    Ok(row.map(|row| {
        let estimate: f64 = row.get(0);
        TableFacts {
            rows: estimate.max(0.0) as i64,
            exact: false,
            unknown: estimate < 0.0,
            bytes: row.get(1),
        }
    }))
}

/// Size and rows, counted exactly when the table is small enough to count.
pub(super) fn table_facts(
    client: &mut impl GenericClient,
    table: &RelationName,
) -> Result<Option<TableFacts>, CheckError> {
    let Some(estimated) = table_size(client, table)? else { return Ok(None) };
    // reltuples is -1 (unknown) for a table never vacuumed or analyzed.
    let small_enough = if estimated.unknown {
        estimated.bytes <= 256 * 1024 * 1024
    } else {
        estimated.rows as f64 <= COUNT_EXACTLY_UP_TO
    };
    if !small_enough {
        return Ok(Some(estimated));
    }
    let rows: i64 = client
        .query_one(&format!("select count(*) from only {}", regclass(table)), &[])
        .map_err(db("counting rows"))?
        .get(0);
    Ok(Some(TableFacts { rows, exact: true, unknown: false, bytes: estimated.bytes }))
}

fn human_bytes(bytes: i64) -> String {
    crate::kit::size::human(bytes.max(0) as u64)
}

/// Rates a lock or rewrite by the size of the table it holds.
pub(super) fn scale_lock(f: &mut Finding, table: &RelationName, facts: &TableFacts) {
    let size = format!("{}, {}", facts.rows_text(), human_bytes(facts.bytes));
    if facts.bytes < SMALL_BYTES && facts.rows < SMALL_ROWS {
        f.rate(Probability::Low, Impact::Low);
        f.facts.push(format!("{} is small ({size}): the lock lasts moments", name(table)));
    } else if facts.bytes >= LARGE_BYTES || facts.rows >= LARGE_ROWS {
        f.rate(Probability::High, Impact::High);
        f.facts.push(format!(
            "{} is large ({size}): the lock lasts as long as the scan or rewrite, minutes",
            name(table)
        ));
    } else {
        f.facts.push(format!("{} holds {size}", name(table)));
    }
}

/// What to do with a finding after looking at the database.
pub(super) enum Outcome {
    Keep,
    Drop,
}

pub(super) fn kept(keep: bool) -> Result<Outcome, CheckError> {
    Ok(if keep { Outcome::Keep } else { Outcome::Drop })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_sizes_are_in_the_powers_of_1000_that_config_and_backups_use() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(8192), "8.2 kB");
        // One unit system with config and backups: powers of 1000.
        assert_eq!(human_bytes(3_400_000_000), "3.4 GB");
        assert_eq!(human_bytes(3 * 1024 * 1024 * 1024), "3.2 GB");
    }
}
