//! `sql`: a custom query and its expected result, compared as text. The
//! query runs in a read-only transaction that is rolled back.

use postgres::{Client, SimpleQueryMessage};

use super::{pg_message, Outcome};
use crate::verify::config::SqlCheck;
use crate::verify::VerifyError;

pub(crate) fn run(c: &SqlCheck, client: &mut Client) -> Result<Outcome, VerifyError> {
    let mut tx = client.transaction().map_err(super::db("starting a transaction"))?;
    let messages = match tx.simple_query(&c.query) {
        Ok(m) => m,
        Err(e) if e.as_db_error().is_some() => {
            return Ok(Outcome::Fail(format!("the query failed: {}", pg_message(&e))))
        }
        Err(e) => return Err(VerifyError::Db(crate::pg::DbError::new("running the query", e))),
    };
    let rows: Vec<Vec<Option<String>>> = messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
            }
            _ => None,
        })
        .collect();
    let first = rows.first().and_then(|r| r.first().cloned()).flatten();
    let shown = |v: &Option<String>| v.clone().map_or("NULL".to_string(), |s| format!("{s:?}"));
    Ok(match (&c.expect, c.expect_rows) {
        (Some(expect), _) if rows.is_empty() => {
            Outcome::Fail(format!("returned no row, expected {expect:?}"))
        }
        (Some(expect), _) if first.as_deref() == Some(expect.as_str()) => {
            Outcome::Pass(format!("returned {expect:?} as expected"))
        }
        (Some(expect), _) => {
            Outcome::Fail(format!("returned {}, expected {expect:?}", shown(&first)))
        }
        (None, Some(n)) if rows.len() as u64 == n => {
            Outcome::Pass(format!("returned {n} row(s) as expected"))
        }
        (None, Some(n)) => Outcome::Fail(format!(
            "returned {} row(s), expected {n}{}",
            rows.len(),
            rows.first()
                .map(|r| format!("; the first: ({})", r.iter().map(shown).collect::<Vec<_>>().join(", ")))
                .unwrap_or_default()
        )),
        (None, None) => match (rows.len(), first.as_deref()) {
            (1, Some("t" | "true")) => Outcome::Pass("the assertion holds".to_string()),
            (0, _) => Outcome::Fail("returned no row; an assertion must return one row whose first column is true (or set expect / expect_rows)".to_string()),
            (1, _) => Outcome::Fail(format!("the assertion does not hold: it returned {}", shown(&first))),
            (n, _) => Outcome::Fail(format!("returned {n} rows; an assertion must return one row whose first column is true (or set expect / expect_rows)")),
        },
    })
}
