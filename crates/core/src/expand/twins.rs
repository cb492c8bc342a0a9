//! The twin columns of an expand's type changes in the database. For each
//! retyped column the new shape's schema holds two SQL functions, `up`
//! (old value to new) and `down` (new to old), and each table with such
//! columns a row trigger that keeps the pair in step:
//!
//! - an insert that leaves the twin empty (the old shape's, which never
//!   names it) gets the twin computed from the column; one that fills it
//!   (the new shape's) gets the column computed from the twin;
//! - an update that changes the twin (only the new shape shows it) gets
//!   the column computed from it; one that changes the column, or finds
//!   the twin still empty, gets the twin computed from the column.
//!
//! A value one side cannot take (a data exception: out of range, invalid
//! text) is left NULL there and never fails the write of the running
//! application, except where the old column is NOT NULL (the write then
//! fails, naming the value); any other error (a privilege) fails the write
//! as it would without the expand: the backfill names the
//! old values with no new one, and contract refuses while there are any;
//! a rollback names, and exports, the new values with no old one. The
//! trigger stands aside for the backfill's own updates
//! (`backstop.backfill`), which compute the twin alone.

use std::path::Path;

use postgres::GenericClient;

use super::plan::{Fill, Retyped};
use crate::migrate::keep::Kept;
use backstop_sql::rewrite::literal as quote_literal;

use crate::pg::{export, quote_ident, quote_qualified};

/// The trigger's name on each table with a retyped column.
const TRIGGER: &str = "backstop_expand_sync";

/// The function that gives the new value of retyped column `i`.
pub fn up(new_schema: &str, i: usize) -> String {
    quote_qualified(Some(new_schema), &format!("backstop_up_{i}"))
}

fn down(new_schema: &str, i: usize) -> String {
    quote_qualified(Some(new_schema), &format!("backstop_down_{i}"))
}

/// The tables with retyped columns, each with the indexes of its columns.
fn by_table(retyped: &[Retyped]) -> Vec<(&str, Vec<usize>)> {
    let mut out: Vec<(&str, Vec<usize>)> = Vec::new();
    for (i, r) in retyped.iter().enumerate() {
        match out.iter_mut().find(|(t, _)| *t == r.table) {
            Some((_, cols)) => cols.push(i),
            None => out.push((&r.table, vec![i])),
        }
    }
    out
}

/// Makes the functions and triggers (the twins are added by the plan's
/// statements, before).
pub fn create(
    client: &mut impl GenericClient,
    schema: &str,
    new_schema: &str,
    retyped: &[Retyped],
) -> Result<(), postgres::Error> {
    for (i, r) in retyped.iter().enumerate() {
        let named = quote_ident(&r.named);
        let (up, down) = (up(new_schema, i), down(new_schema, i));
        let (old, new) = (&r.old_type, &r.new_type);
        // Every role that writes the table runs them through the trigger,
        // whatever default privileges say of new functions.
        client.batch_execute(&format!(
            "CREATE FUNCTION {up}({named} {old}) RETURNS {new} LANGUAGE sql AS $backstop$ SELECT {} \
             $backstop$;
             CREATE FUNCTION {down}({named} {new}) RETURNS {old} LANGUAGE sql AS $backstop$ \
             SELECT {} $backstop$;
             GRANT EXECUTE ON FUNCTION {up}({old}) TO PUBLIC;
             GRANT EXECUTE ON FUNCTION {down}({new}) TO PUBLIC;",
            r.up, r.down
        ))?;
    }
    for (j, (table, columns)) in by_table(retyped).into_iter().enumerate() {
        let blocks: String = columns.iter().map(|&i| block(new_schema, i, &retyped[i])).collect();
        let function = quote_qualified(Some(new_schema), &format!("backstop_sync_{j}"));
        client.batch_execute(&format!(
            "CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $backstop$
             BEGIN
               IF current_setting('backstop.backfill', true) = 'on' THEN RETURN NEW; END IF;
               {blocks}
               RETURN NEW;
             END $backstop$;
             CREATE TRIGGER {TRIGGER} BEFORE INSERT OR UPDATE ON {} FOR EACH ROW
               EXECUTE FUNCTION {function}();",
            quote_qualified(Some(schema), table)
        ))?;
    }
    Ok(())
}

/// The trigger's part for retyped column `i`.
fn block(new_schema: &str, i: usize, r: &Retyped) -> String {
    let c = format!("NEW.{}", quote_ident(&r.column));
    let w = format!("NEW.{}", quote_ident(&r.twin));
    let (old_c, old_w) =
        (format!("OLD.{}", quote_ident(&r.column)), format!("OLD.{}", quote_ident(&r.twin)));
    let to_new = format!(
        "BEGIN {w} := {}({c}); EXCEPTION WHEN data_exception THEN {w} := NULL; END;",
        up(new_schema, i)
    );
    // A NOT NULL column cannot be left empty: the write fails, saying why.
    let refused = match r.not_null {
        true => format!(
            "RAISE EXCEPTION USING ERRCODE = SQLSTATE, MESSAGE = format('the value %s of the \
             new shape''s column %s has no value in the old shape''s NOT NULL column %s (%s): %s', \
             {w}, {}, {}, {}, SQLERRM);",
            quote_literal(&r.named),
            quote_literal(&format!("{}.{}", r.table, r.column)),
            quote_literal(&r.old_type)
        ),
        false => format!("{c} := NULL;"),
    };
    let to_old = format!(
        "BEGIN {c} := {}({w}); EXCEPTION WHEN data_exception THEN {refused} END;",
        down(new_schema, i)
    );
    format!(
        "IF TG_OP = 'INSERT' THEN
           IF {w} IS NULL THEN {to_new} ELSE {to_old} END IF;
         ELSIF {w} IS DISTINCT FROM {old_w} THEN {to_old}
         ELSIF {c} IS DISTINCT FROM {old_c} OR ({w} IS NULL AND {c} IS NOT NULL) THEN {to_new}
         END IF;
        "
    )
}

/// The trigger that fills, where it is NULL, a column an `UPDATE` of the
/// migrations fills, for the rows the old shape writes (it never names
/// the column): one per filled column, each its own function, named to
/// fire after the twins' trigger (triggers fire in name order), so that a
/// value that reads a retyped column reads its twin filled.
pub fn create_fills(
    client: &mut impl GenericClient,
    schema: &str,
    new_schema: &str,
    fills: &[Fill],
) -> Result<(), postgres::Error> {
    for (i, f) in fills.iter().enumerate().filter(|(_, f)| f.by_rows) {
        let c = format!("NEW.{}", quote_ident(&f.column));
        let when = match &f.filter {
            Some(w) => format!(" AND {} IS TRUE", f.on_row(w, "NEW")),
            None => String::new(),
        };
        let function = fill_function(new_schema, i);
        client.batch_execute(&format!(
            "CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $backstop$
             BEGIN
               IF current_setting('backstop.backfill', true) = 'on' THEN RETURN NEW; END IF;
               IF {c} IS NULL{when} THEN
                 {c} := {};
               END IF;
               RETURN NEW;
             END $backstop$;
             CREATE TRIGGER {} BEFORE INSERT OR UPDATE ON {} FOR EACH ROW
               EXECUTE FUNCTION {function}();",
            f.on_row(&f.value, "NEW"),
            fill_trigger(i),
            quote_qualified(Some(schema), &f.table)
        ))?;
    }
    Ok(())
}

/// The fill's function, in the new shape's schema, and its trigger, on
/// the table: both `backstop_fill_<i>`.
fn fill_function(new_schema: &str, i: usize) -> String {
    quote_qualified(Some(new_schema), &format!("backstop_fill_{i}"))
}

fn fill_trigger(i: usize) -> String {
    quote_ident(&format!("backstop_fill_{i}"))
}

/// Drops the fill triggers and their functions.
pub fn drop_fills(
    client: &mut impl GenericClient,
    schema: &str,
    new_schema: &str,
    fills: &[Fill],
) -> Result<(), postgres::Error> {
    for (i, f) in fills.iter().enumerate().filter(|(_, f)| f.by_rows) {
        client.batch_execute(&format!(
            "DROP TRIGGER IF EXISTS {} ON {}; DROP FUNCTION IF EXISTS {}();",
            fill_trigger(i),
            quote_qualified(Some(schema), &f.table),
            fill_function(new_schema, i)
        ))?;
    }
    Ok(())
}

/// Drops the triggers and functions (not the twins).
pub fn drop(
    client: &mut impl GenericClient,
    schema: &str,
    new_schema: &str,
    retyped: &[Retyped],
) -> Result<(), postgres::Error> {
    for (j, (table, _)) in by_table(retyped).into_iter().enumerate() {
        client.batch_execute(&format!(
            "DROP TRIGGER IF EXISTS {TRIGGER} ON {}; DROP FUNCTION IF EXISTS {}();",
            quote_qualified(Some(schema), table),
            quote_qualified(Some(new_schema), &format!("backstop_sync_{j}"))
        ))?;
    }
    for i in 0..retyped.len() {
        client.batch_execute(&format!(
            "DROP FUNCTION IF EXISTS {}; DROP FUNCTION IF EXISTS {};",
            up(new_schema, i),
            down(new_schema, i)
        ))?;
    }
    Ok(())
}

/// The twins' statements for a rollback: each dropped.
pub fn dropped(schema: &str, retyped: &[Retyped]) -> Vec<String> {
    retyped
        .iter()
        .map(|r| {
            format!(
                "ALTER TABLE {} DROP COLUMN {}",
                quote_qualified(Some(schema), &r.table),
                quote_ident(&r.twin)
            )
        })
        .collect()
}

/// Values written through the new shape that the old type cannot hold,
/// found before a rollback drops the twins: one line each column that has
/// any, and what was exported of them into `folder`.
pub fn unmapped(
    client: &mut impl GenericClient,
    schema: &str,
    retyped: &[Retyped],
    folder: Option<&Path>,
) -> Result<(Vec<String>, Vec<Kept>), super::ExpandError> {
    let db = crate::pg::db;
    let (mut lines, mut kept) = (Vec::new(), Vec::new());
    for r in retyped {
        let table = quote_qualified(Some(schema), &r.table);
        let keys: Vec<String> = r.key.iter().map(|(k, _)| quote_ident(k)).collect();
        let query = format!(
            "select {}, {} from {table} where {} is null and {} is not null",
            keys.join(", "),
            quote_ident(&r.twin),
            quote_ident(&r.column),
            quote_ident(&r.twin)
        );
        let rows: i64 = client
            .query_one(&format!("select count(*) from ({query}) q"), &[])
            .map_err(db("counting the values the old type cannot hold"))?
            .get(0);
        if rows == 0 {
            continue;
        }
        let label = format!("{schema}.{}.{}", r.table, r.named);
        let Some(folder) = folder else {
            lines.push(format!(
                "{label}: {rows} row(s) written through the new shape hold a {} the old type {} \
                 cannot, and were not kept ([rollback] export_dropped is off)",
                r.new_type, r.old_type
            ));
            continue;
        };
        export::folder(folder).map_err(|e| super::ExpandError::Keep(e.into()))?;
        let file = export::file_name(&["unmapped", schema, &r.table, &r.named], "csv");
        let written = export::csv(client, &query, folder, &file)
            .map_err(|e| super::ExpandError::Keep(e.into()))?;
        lines.push(format!(
            "{label}: {rows} row(s) written through the new shape hold a {} the old type {} \
             cannot; kept in {}",
            r.new_type,
            r.old_type,
            folder.join(&file).display()
        ));
        kept.push(Kept {
            table: format!("{schema}.{}", r.table),
            column: Some(r.named.clone()),
            what: format!("values of type {} with no {} value", r.new_type, r.old_type),
            rows,
            file,
            blake3: written.blake3,
        });
    }
    Ok((lines, kept))
}
