//! `foreign_keys`: no orphan rows for any foreign key, NOT VALID ones
//! included (PostgreSQL never checked the rows that were there when those
//! were added), nor ones whose triggers were bypassed during a restore.

use postgres::Client;

use super::{db, find_relation, foreign_keys, ForeignKey, Outcome, TABLE_KINDS};
use crate::pg::quote_ident;
use crate::verify::config::ForeignKeysCheck;
use crate::verify::VerifyError;

pub(crate) fn run(c: &ForeignKeysCheck, client: &mut Client) -> Result<Outcome, VerifyError> {
    let only: Option<Vec<u32>> = match &c.tables {
        None => None,
        Some(names) => {
            let mut oids = Vec::new();
            for name in names {
                match find_relation(client, name, &TABLE_KINDS)? {
                    Some(rel) => oids.push(rel.oid),
                    None => return Ok(Outcome::Fail(format!("table {name} does not exist"))),
                }
            }
            Some(oids)
        }
    };
    let keys = foreign_keys(client, only.as_deref())?;
    let mut problems = Vec::new();
    for fk in &keys {
        let orphan = orphan_condition(fk);
        let count: i64 = client
            .query_one(&format!("select count(*) from {} c where {orphan}", fk.child.sql()), &[])
            .map_err(db("counting orphan rows"))?
            .get(0);
        if count == 0 {
            continue;
        }
        let cols: Vec<String> =
            fk.columns.iter().map(|c| format!("c.{}::text", quote_ident(c))).collect();
        let samples = client
            .query(
                &format!(
                    "select {} from {} c where {orphan} limit 3",
                    cols.join(", "),
                    fk.child.sql()
                ),
                &[],
            )
            .map_err(db("reading orphan rows"))?;
        let examples: Vec<String> = samples
            .iter()
            .map(|r| {
                fk.columns
                    .iter()
                    .enumerate()
                    .map(|(i, col)| {
                        let v: Option<String> = r.get(i);
                        format!("{col}={}", v.unwrap_or_else(|| "NULL".into()))
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        problems.push(format!(
            "{}.{} → {}.{} ({}{}): {count} orphan row(s), e.g. {}",
            fk.child,
            fk.columns.join(","),
            fk.parent,
            fk.referenced.join(","),
            fk.name,
            if fk.validated { "" } else { ", NOT VALID" },
            examples.join("; ")
        ));
    }
    let not_valid = keys.iter().filter(|k| !k.validated).count();
    Ok(if problems.is_empty() {
        let nv = if not_valid > 0 { format!(" ({not_valid} NOT VALID)") } else { String::new() };
        Outcome::Pass(format!("{} foreign key(s){nv} checked, no orphan rows", keys.len()))
    } else {
        Outcome::Fail(problems.join("; "))
    })
}

/// Rows of the child (alias `c`) that break the key: all key columns set
/// and no parent row, or (MATCH FULL) some set and some NULL.
fn orphan_condition(fk: &ForeignKey) -> String {
    let cols: Vec<String> = fk.columns.iter().map(|c| format!("c.{}", quote_ident(c))).collect();
    let all_set = cols.iter().map(|c| format!("{c} is not null")).collect::<Vec<_>>().join(" and ");
    let joined = cols
        .iter()
        .zip(&fk.referenced)
        .map(|(c, r)| format!("p.{} = {c}", quote_ident(r)))
        .collect::<Vec<_>>()
        .join(" and ");
    let missing =
        format!("({all_set} and not exists (select 1 from {} p where {joined}))", fk.parent.sql());
    if fk.match_full && cols.len() > 1 {
        let list = cols.join(", ");
        format!("({missing} or (num_nulls({list}) > 0 and num_nonnulls({list}) > 0))")
    } else {
        missing
    }
}
