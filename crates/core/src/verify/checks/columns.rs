//! `columns`: the named columns of a table exist, or with `absent = true`
//! do not.

use postgres::Client;

use super::{columns_of, list, table, Outcome};
use crate::verify::config::ColumnsCheck;
use crate::verify::VerifyError;

pub(crate) fn run(c: &ColumnsCheck, client: &mut Client) -> Result<Outcome, VerifyError> {
    let rel = match table(client, &c.table)? {
        Ok(rel) => rel,
        Err(why) if c.absent => {
            return Ok(Outcome::Pass(format!("{why}, so neither do its columns")))
        }
        Err(why) => return Ok(Outcome::Fail(why)),
    };
    let have = columns_of(client, rel.oid)?;
    let (present, missing): (Vec<&String>, Vec<&String>) =
        c.columns.iter().partition(|col| have.contains(col));
    Ok(match (c.absent, missing.is_empty(), present.is_empty()) {
        (false, true, _) => Outcome::Pass(format!("{rel} has {}", list(&present))),
        (false, false, _) => {
            Outcome::Fail(format!("{rel} lacks {} (it has {})", list(&missing), list(&have)))
        }
        (true, _, true) => Outcome::Pass(format!("{rel} has no {}", list(&c.columns))),
        (true, _, false) => Outcome::Fail(format!("{rel} still has {}", list(&present))),
    })
}
