//! `tables`: the named tables exist, or with `absent = true` do not (a v1
//! table that the migration was meant to drop).

use postgres::Client;

use super::{find_relation, list, Outcome, TABLE_KINDS};
use crate::verify::config::TablesCheck;
use crate::verify::VerifyError;

pub(crate) fn run(c: &TablesCheck, client: &mut Client) -> Result<Outcome, VerifyError> {
    let mut present = Vec::new();
    let mut missing = Vec::new();
    let mut not_tables = Vec::new();
    for name in &c.tables {
        match find_relation(client, name, &TABLE_KINDS)? {
            Some(r) => present.push(r.to_string()),
            None => match find_relation(client, name, &["v", "m"])? {
                Some(r) => not_tables.push(format!("{r} (a view)")),
                None => missing.push(name.to_string()),
            },
        }
    }
    Ok(match (c.absent, missing.is_empty() && not_tables.is_empty(), present.is_empty()) {
        (false, true, _) => Outcome::Pass(format!("{} exist", list(&present))),
        (false, false, _) => {
            let mut why = Vec::new();
            if !missing.is_empty() {
                why.push(format!("{} missing", list(&missing)));
            }
            if !not_tables.is_empty() {
                why.push(format!("{} not a table", list(&not_tables)));
            }
            Outcome::Fail(why.join("; "))
        }
        (true, _, true) => Outcome::Pass(format!(
            "{} do not exist",
            list(&c.tables.iter().map(|t| t.to_string()).collect::<Vec<_>>())
        )),
        (true, _, false) => Outcome::Fail(format!("{} still exist", list(&present))),
    })
}
