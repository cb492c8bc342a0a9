//! `extensions`: the named extensions are installed, or with `absent =
//! true` are not. A missing one says whether the server could install it.

use postgres::Client;

use super::{db, list, Outcome};
use crate::verify::config::ExtensionsCheck;
use crate::verify::VerifyError;

pub(crate) fn run(c: &ExtensionsCheck, client: &mut Client) -> Result<Outcome, VerifyError> {
    let mut present = Vec::new();
    let mut missing = Vec::new();
    for name in &c.extensions {
        let row = client
            .query_one(
                "select (select extversion from pg_extension where extname = $1),
                        exists (select 1 from pg_available_extensions where name = $1)",
                &[name],
            )
            .map_err(db("reading pg_extension"))?;
        let version: Option<String> = row.get(0);
        let available: bool = row.get(1);
        match version {
            Some(v) => present.push(format!("{name} {v}")),
            None if available => {
                missing.push(format!("{name} (available: CREATE EXTENSION {name})"))
            }
            None => missing.push(format!("{name} (not available on this server)")),
        }
    }
    Ok(match (c.absent, missing.is_empty(), present.is_empty()) {
        (false, true, _) => Outcome::Pass(format!("installed: {}", list(&present))),
        (false, false, _) => Outcome::Fail(format!("not installed: {}", list(&missing))),
        (true, _, true) => Outcome::Pass(format!("not installed: {}", list(&c.extensions))),
        (true, _, false) => Outcome::Fail(format!("still installed: {}", list(&present))),
    })
}
