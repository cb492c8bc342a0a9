//! `checksums`: per-table content checksums equal to a snapshot. Each is
//! one aggregate query in the server (see [`crate::pg::checksum`]); all run
//! in one repeatable-read transaction.

use postgres::Client;

use super::row_counts::compared_tables;
use super::{db, find_relation, Outcome, TABLE_KINDS};
use crate::pg::checksum;
use crate::verify::config::{ChecksumsCheck, TableName};
use crate::verify::snapshot::Snapshot;
use crate::verify::VerifyError;

pub(crate) fn run(
    c: &ChecksumsCheck,
    snapshot: &Snapshot,
    client: &mut Client,
) -> Result<Outcome, VerifyError> {
    let wanted = compared_tables(c.tables.as_deref(), snapshot);
    let mut tx = super::one_moment(client)?;
    let method = checksum::method(&mut tx).map_err(db("reading the server version"))?;
    let retake = "take a new one with `backstop verify --snapshot save NAME`";
    if snapshot.method.is_empty() || snapshot.method != method {
        let why = if snapshot.method.is_empty() {
            "holds no checksums (no checksums check was configured when it was taken)".to_string()
        } else {
            format!("was checksummed with {}, this server uses {method}", snapshot.method)
        };
        return Ok(Outcome::Fail(format!("snapshot {} {why}; {retake}", snapshot.name)));
    }
    let mut problems = Vec::new();
    let mut equal = 0;
    let mut rows = 0i64;
    for (shown, key) in &wanted {
        let Some(state) = key.as_ref().map(|k| &snapshot.tables[k]) else {
            problems.push(format!("snapshot {} has no {shown}", snapshot.name));
            continue;
        };
        let Some(before) = &state.checksum else {
            problems
                .push(format!("snapshot {} has no checksum of {shown}; {retake}", snapshot.name));
            continue;
        };
        let name = TableName::parse(key.as_deref().unwrap_or_default()).map_err(|reason| {
            VerifyError::SnapshotCorrupt { name: snapshot.name.clone(), reason }
        })?;
        let Some(rel) = find_relation(&mut tx, &name, &TABLE_KINDS)? else {
            problems.push(format!("{shown} is gone"));
            continue;
        };
        let now = checksum::table_checksum(&mut tx, &rel.schema, &rel.name)
            .map_err(db("checksumming a table"))?;
        rows += now.rows;
        if &now.checksum == before {
            equal += 1;
        } else if now.rows != state.rows {
            problems.push(format!(
                "{shown}: content changed ({} → {} rows, checksum {before} → {})",
                state.rows, now.rows, now.checksum
            ));
        } else {
            problems.push(format!(
                "{shown}: content changed with the same {} rows (checksum {before} → {}): a row was updated",
                now.rows, now.checksum
            ));
        }
    }
    Ok(if problems.is_empty() {
        Outcome::Pass(format!(
            "{equal} table(s), {rows} rows, content equal to snapshot {}",
            snapshot.name
        ))
    } else {
        Outcome::Fail(problems.join("; "))
    })
}
