//! The expand scenario of `rehearse --expand`: on a fresh copy, the
//! pending migrations expanded as `migrate --expand` would (its backfills,
//! validations and concurrent index builds run on the copy's rows, so a
//! value the new type cannot take shows here, not in production); a row
//! updated through each shape; each type change's inverse tried on every
//! row; the expand rolled back and the copy compared with its start
//! (schema and data); expanded again and contracted, and the contracted
//! schema compared with a plain `migrate` of the same migrations on
//! another copy. Cosmetic differences (column order: a twin is added
//! last) are said apart and never fail it.

use std::time::Instant;

use postgres::Client;

use super::outcome::Scenario;
use super::snapshot::{compare, listed, snapshot};
use super::{ms, RehearseError};
use crate::copies::clone::Workspace;
use crate::expand::{self, views, Expanded};
use crate::migrate::{self, MigrateOptions, Progress, Settings};
use crate::pg::{quote_ident, quote_qualified};
use crate::source::Migration;

/// Plays the expand scenario of the pending migrations in `schema`.
pub(super) fn scenario_expand(
    workspace: &mut Workspace,
    migrations: &[Migration],
    settings: &Settings,
    schema: &str,
    progress: &mut dyn Progress,
) -> Result<Scenario, RehearseError> {
    let t = Instant::now();
    let copy = workspace.copy("expand")?;
    let mut client = copy.connect()?;
    let start = snapshot(&mut client)?;
    let played = play(&mut client, migrations, settings, schema, &start)?;
    let (ok, mut detail, mut notes) = match played {
        Ok((detail, notes)) => (true, detail, notes),
        Err(failure) => (false, failure, Vec::new()),
    };
    if ok {
        // The contracted schema against a plain migrate on another copy.
        let contracted = snapshot(&mut client)?;
        drop(client);
        let plain = workspace.copy("expand_plain")?;
        let mut other = plain.connect()?;
        let options = MigrateOptions::default();
        let report =
            migrate::migrate(&mut other, migrations, settings, &options, &mut [], progress)?;
        if let Some(f) = report.failure {
            return Ok(scenario(
                false,
                t,
                format!("a plain migrate fails on the copy: {}", f.message),
            ));
        }
        let migrated = snapshot(&mut other)?;
        let differ = migrated.schema.differences(&contracted.schema);
        if !differ.is_empty() {
            let what = differ.join("; ");
            return Ok(scenario(
                false,
                t,
                format!("the contract does not end where a plain migrate does: {what}"),
            ));
        }
        notes.extend(migrated.schema.cosmetic_differences(&contracted.schema));
        for m in &migrated.tables {
            let rows = contracted.tables.iter().find(|c| c.table == m.table).map(|c| c.rows);
            if rows != Some(m.rows) {
                return Ok(scenario(
                    false,
                    t,
                    format!(
                        "table {} holds {} rows after the contract and {} after a plain migrate",
                        m.table,
                        rows.unwrap_or(0),
                        m.rows
                    ),
                ));
            }
        }
        detail.push_str(", contracted to the schema a plain migrate gives");
    }
    if !notes.is_empty() {
        detail.push_str(&format!(" (apart, not failing: {})", notes.join("; ")));
    }
    Ok(scenario(ok, t, detail))
}

fn scenario(ok: bool, t: Instant, detail: String) -> Scenario {
    Scenario::played("expand", ok, ms(t.elapsed()), detail)
}

/// Expand, writes, inverses, rollback compared with `start`, expand and
/// contract: what it did and its notes, or the first failure.
type Played = Result<(String, Vec<String>), String>;

fn play(
    client: &mut Client,
    migrations: &[Migration],
    settings: &Settings,
    schema: &str,
    start: &super::snapshot::Snapshot,
) -> Result<Played, RehearseError> {
    let quiet = &mut |_: &str| {};
    let expanded = match expand::expand(client, migrations, settings, schema, &mut [], quiet) {
        Ok(e) => e,
        Err(e) => return Ok(Err(format!("the expand fails: {e}"))),
    };
    if !expanded.unsettled.is_empty() {
        let what = expanded.unsettled.join("; ");
        return Ok(Err(format!("the expand does not settle on the copy's rows: {what}")));
    }
    if let Some(failed) = writes(client, &expanded)? {
        return Ok(Err(failed));
    }
    let notes = inverses(client, &expanded)?;
    if let Err(e) = expand::rollback(client, settings) {
        return Ok(Err(format!("the rollback of the expand fails: {e}")));
    }
    let back = snapshot(client)?;
    let differ = compare(start, &back, None);
    if !differ.is_empty() {
        return Ok(Err(format!(
            "the rollback of the expand does not bring the copy back to its start: {}",
            listed(&differ)
        )));
    }
    let again = expand::expand(client, migrations, settings, schema, &mut [], quiet)
        .and_then(|_| expand::contract(client, migrations, settings, &mut [], quiet));
    if let Err(e) = again {
        return Ok(Err(format!("expanded again, the contract fails: {e}")));
    }
    let filled: u64 = expanded.backfill.iter().map(|f| f.rows).sum();
    let detail = format!(
        "expanded as {} ({filled} rows backfilled), a row updated through each shape, rolled back \
         to the copy's start exactly, expanded again",
        expanded.new_schema
    );
    Ok(Ok((detail, notes)))
}

/// One row of each served table with a key updated through the new shape
/// and through the old one, in a transaction rolled back: the first that
/// fails, said.
fn writes(client: &mut Client, e: &Expanded) -> Result<Option<String>, RehearseError> {
    let db = |what: &'static str| move |err| RehearseError::Db(crate::pg::db(what)(err));
    let tables = views::tables(client, &e.schema).map_err(db("reading the expanded tables"))?;
    let mut tx = client.transaction().map_err(db("starting the writes through both shapes"))?;
    for shape in e.plan.tables.iter().filter(|s| !s.made) {
        let Some(known) = tables.get(&shape.name) else { continue };
        let shown = |real: &str| {
            shape.columns.iter().find(|c| c.real == real && !c.hidden).map(|c| c.shown.clone())
        };
        let Some(keys_shown) = known.key.iter().map(|(k, _)| shown(k)).collect::<Option<Vec<_>>>()
        else {
            continue;
        };
        let plain = |c: &&expand::plan::ColumnShape| {
            !c.hidden
                && !known.key.iter().any(|(k, _)| *k == c.real)
                && !known.facts.get(&c.real).is_some_and(|f| f.computed)
        };
        let Some(col) = shape.columns.iter().find(plain) else { continue };
        let keys_real: Vec<String> = known.key.iter().map(|(k, _)| k.clone()).collect();
        let new_view = quote_qualified(Some(&e.new_schema), shape.view_name());
        let old_table = quote_qualified(Some(&e.schema), &shape.name);
        for (side, relation, column, keys) in
            [("new", new_view, &col.shown, keys_shown), ("old", old_table, &col.real, keys_real)]
        {
            let keys: Vec<String> = keys.iter().map(|k| quote_ident(k)).collect();
            let (c, k) = (quote_ident(column), keys.join(", "));
            let sql = format!(
                "UPDATE {relation} SET {c} = {c} WHERE ({k}) = (SELECT {k} FROM {relation} LIMIT 1)"
            );
            if let Err(err) = tx.batch_execute(&sql) {
                let reason = err.as_db_error().map_or(err.to_string(), |d| d.message().to_string());
                return Ok(Some(format!(
                    "an update through the {side} shape of {} fails: {reason}",
                    shape.view_name()
                )));
            }
        }
    }
    tx.rollback().map_err(db("rolling back the writes through both shapes"))?;
    Ok(None)
}

/// Each type change's inverse tried on every row: where the old value does
/// not come back from the new one, a note (a write through the new shape
/// of such a value reaches the old shape changed).
fn inverses(client: &mut Client, e: &Expanded) -> Result<Vec<String>, RehearseError> {
    let mut notes = Vec::new();
    for (i, r) in e.plan.retyped.iter().enumerate() {
        let down = quote_qualified(Some(&e.new_schema), &format!("backstop_down_{i}"));
        let (c, w) = (quote_ident(&r.column), quote_ident(&r.twin));
        let sql = format!(
            "select count(*) from {} where {w} is not null and {down}({w}) is distinct from {c}",
            quote_qualified(Some(&e.schema), &r.table)
        );
        match client.query_one(&sql, &[]) {
            Ok(row) => {
                let n: i64 = row.get(0);
                if n > 0 {
                    notes.push(format!(
                        "{}.{}: {n} value(s) do not come back unchanged through the inverse ({})",
                        r.table, r.named, r.down
                    ));
                }
            }
            Err(err) => {
                let reason = err.as_db_error().map_or(err.to_string(), |d| d.message().to_string());
                notes.push(format!(
                    "{}.{}: the inverse fails on a value: {reason}",
                    r.table, r.named
                ));
            }
        }
    }
    Ok(notes)
}
