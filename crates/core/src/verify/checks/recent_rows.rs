//! `recent_rows`: a table has rows newer than a duration, the "AI usage
//! tracking still writing" check. Stops at `min_rows` matches, so an index
//! on the column keeps it cheap on a big table.

use postgres::Client;

use super::{columns_of, db, table, Outcome};
use crate::verify::config::RecentRowsCheck;
use crate::verify::VerifyError;

pub(crate) fn run(c: &RecentRowsCheck, client: &mut Client) -> Result<Outcome, VerifyError> {
    let rel = match table(client, &c.table)? {
        Ok(rel) => rel,
        Err(why) => return Ok(Outcome::Fail(why)),
    };
    if !columns_of(client, rel.oid)?.contains(&c.column) {
        return Ok(Outcome::Fail(format!("{rel} has no column {}", c.column)));
    }
    let col = crate::pg::quote_ident(&c.column);
    let within = c.within.as_secs_f64();
    let human = crate::kit::duration::human(c.within);
    let recent: i64 = client
        .query_one(
            &format!(
                "select count(*) from (select 1 from {} where {col} > now() - $1 * interval '1 second' limit $2) r",
                rel.sql()
            ),
            &[&within, &c.min_rows],
        )
        .map_err(db("counting recent rows"))?
        .get(0);
    if recent >= c.min_rows {
        let some = if c.min_rows == 1 {
            "a row".to_string()
        } else {
            format!("at least {} rows", c.min_rows)
        };
        return Ok(Outcome::Pass(format!("{rel} has {some} with {} newer than {human}", c.column)));
    }
    let age: Option<f64> = client
        .query_one(
            &format!(
                "select extract(epoch from now() - max({col})::timestamptz)::float8 from {}",
                rel.sql()
            ),
            &[],
        )
        .map_err(db("reading the newest row"))?
        .get(0);
    let latest = match age {
        None => "the table has no row with a value there".to_string(),
        Some(secs) => format!(
            "the newest is {} old",
            crate::kit::duration::human(std::time::Duration::from_secs(secs.max(0.0) as u64))
        ),
    };
    Ok(Outcome::Fail(format!(
        "{rel} has {recent} row(s) with {} newer than {human} (at least {} expected); {latest}",
        c.column, c.min_rows
    )))
}
