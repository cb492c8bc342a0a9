//! `indexes`: the named indexes exist (and are valid), or with `absent =
//! true` do not. An index left invalid by a failed `CREATE INDEX
//! CONCURRENTLY` exists but serves no query: that fails too.

use postgres::Client;

use super::{db, find_relation, list, Outcome};
use crate::verify::config::IndexesCheck;
use crate::verify::VerifyError;

pub(crate) fn run(c: &IndexesCheck, client: &mut Client) -> Result<Outcome, VerifyError> {
    let mut present = Vec::new();
    let mut missing = Vec::new();
    let mut invalid = Vec::new();
    for name in &c.indexes {
        let Some(index) = find_relation(client, name, &["i", "I"])? else {
            missing.push(name.to_string());
            continue;
        };
        let row = client
            .query_one(
                "select x.indisvalid, t.relname::text from pg_index x
                   join pg_class t on t.oid = x.indrelid where x.indexrelid = $1",
                &[&index.oid],
            )
            .map_err(db("reading pg_index"))?;
        let valid: bool = row.get(0);
        let table: String = row.get(1);
        if valid {
            present.push(format!("{index} on {table}"));
        } else {
            invalid.push(format!("{index} on {table} is INVALID (a failed CREATE INDEX CONCURRENTLY; drop and rebuild it)"));
        }
    }
    Ok(if c.absent {
        let found: Vec<String> = present.into_iter().chain(invalid).collect();
        if found.is_empty() {
            Outcome::Pass(format!("{} do not exist", list(&c.indexes)))
        } else {
            Outcome::Fail(format!("still there: {}", list(&found)))
        }
    } else if missing.is_empty() && invalid.is_empty() {
        Outcome::Pass(format!("{} exist", list(&present)))
    } else {
        let mut why = Vec::new();
        if !missing.is_empty() {
            why.push(format!("missing: {}", list(&missing)));
        }
        why.extend(invalid);
        Outcome::Fail(why.join("; "))
    })
}
