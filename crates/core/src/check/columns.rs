//! What the database says of a column a migration changes: whether a
//! type change rewrites or cuts (`pg_cast`, the column's type today),
//! whether a validated CHECK spares a `SET NOT NULL` its scan, and whether
//! a default's functions are volatile (`pg_proc`). Each answer raises,
//! lowers or clears the finding it concerns, as in [`super::live`].

use backstop_lint::{Code, Finding, Impact, Probability, RelationName};
use postgres::GenericClient;

use super::table::{name, regclass, scale_lock, table_size, Outcome};
use super::CheckError;
use crate::pg::db;

/// A column becoming NOT NULL: a validated CHECK that proves it spares the
/// scan; otherwise the lock lasts as long as the table is big.
pub(super) fn not_null(
    client: &mut impl GenericClient,
    f: &mut Finding,
    table: &RelationName,
    column: &str,
) -> Result<Outcome, CheckError> {
    let defs = validated_checks(client, table)?;
    if defs.iter().any(|d| backstop_sql::stmt::check_proves_not_null(d, column)) {
        // A validated CHECK (column IS NOT NULL) proves it: PostgreSQL
        // skips the scan, which is all the finding is about.
        return Ok(Outcome::Drop);
    } else if let Some(facts) = table_size(client, table)? {
        scale_lock(f, table, &facts);
    }
    Ok(Outcome::Keep)
}

/// The definitions of the validated CHECK constraints of `table`.
fn validated_checks(
    client: &mut impl GenericClient,
    table: &RelationName,
) -> Result<Vec<String>, CheckError> {
    let rows = client
        .query(
            "select pg_get_constraintdef(oid) from pg_constraint
              where conrelid = to_regclass($1) and contype = 'c' and convalidated",
            &[&regclass(table)],
        )
        .map_err(db("reading check constraints"))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// A `PRIMARY KEY USING INDEX`: the columns of the index (as the run made
/// it, else as the database's index has them) that are nullable on the
/// table and that no validated CHECK proves NOT NULL, each set NOT NULL
/// with a scan. Confirmed (with the columns named and the lock scaled by
/// the table's size) where there is one; not reported where there is
/// none, or where neither the run nor the database says the columns.
pub(super) fn key_index(
    client: &mut impl GenericClient,
    f: &mut Finding,
    table: &RelationName,
    index: &str,
    columns: &[String],
) -> Result<bool, CheckError> {
    let rows = client
        .query(
            "select a.attname::text, a.attnotnull
               from pg_attribute a
              where a.attrelid = to_regclass($1) and a.attnum > 0 and not a.attisdropped
                and (a.attname = any($2) or (cardinality($2) = 0 and exists (
                     select from pg_index i join pg_class x on x.oid = i.indexrelid
                      where i.indrelid = a.attrelid and x.relname = $3
                        and a.attnum = any(i.indkey::int2[]))))",
            &[&regclass(table), &columns, &index],
        )
        .map_err(db("reading the key index's columns"))?;
    let checks = validated_checks(client, table)?;
    let nullable: Vec<String> = rows
        .iter()
        .filter(|r| !r.get::<_, bool>(1))
        .map(|r| r.get::<_, String>(0))
        .filter(|c| !checks.iter().any(|d| backstop_sql::stmt::check_proves_not_null(d, c)))
        .collect();
    if nullable.is_empty() {
        return Ok(false);
    }
    f.facts.push(format!(
        "pg_attribute: {} of {} may hold NULL (no NOT NULL, no validated CHECK)",
        nullable.join(", "),
        name(table)
    ));
    if let Some(facts) = table_size(client, table)? {
        scale_lock(f, table, &facts);
    }
    Ok(true)
}

/// A default calling functions no checked migration defines: `pg_proc`
/// says whether one is volatile (the table is rewritten), all are stable
/// or immutable (no finding), or one does not exist.
pub(super) fn functions(
    client: &mut impl GenericClient,
    f: &mut Finding,
    table: &RelationName,
    names: &[String],
) -> Result<Outcome, CheckError> {
    let (mut volatile, mut missing) = (Vec::new(), Vec::new());
    for func in names {
        let (schema, base) = match func.rsplit_once('.') {
            Some((s, b)) => (Some(s.to_string()), b.to_string()),
            None => (None, func.clone()),
        };
        let row = client
            .query_one(
                "select count(*), coalesce(bool_or(p.provolatile = 'v'), false) from pg_proc p
                   join pg_namespace n on n.oid = p.pronamespace
                  where p.proname = $2 and ($1::text is null or n.nspname = $1)",
                &[&schema, &base],
            )
            .map_err(db("reading pg_proc"))?;
        let (count, is_volatile): (i64, bool) = (row.get(0), row.get(1));
        if is_volatile {
            volatile.push(func.clone());
        } else if count == 0 {
            missing.push(func.clone());
        }
    }
    if !volatile.is_empty() {
        let meta = f.code.meta();
        f.rate(meta.probability, meta.impact);
        f.facts.push(format!("{}() is volatile (pg_proc)", volatile.join("(), ")));
        if let Some(facts) = table_size(client, table)? {
            scale_lock(f, table, &facts);
        }
        return Ok(Outcome::Keep);
    }
    if missing.is_empty() {
        return Ok(Outcome::Drop);
    }
    f.facts.push(format!(
        "pg_proc has no function {}(): the statement fails unless something creates it first",
        missing.join("(), ")
    ));
    Ok(Outcome::Keep)
}

pub(super) fn column_type(
    client: &mut impl GenericClient,
    f: &mut Finding,
    table: &RelationName,
    column: &str,
    new_type: &backstop_sql::TypeSpec,
) -> Result<Outcome, CheckError> {
    let current = client
        .query_opt(
            "select a.atttypid, a.atttypmod, format_type(a.atttypid, a.atttypmod),
                    (select typname::text from pg_type where oid = a.atttypid)
               from pg_attribute a
              where a.attrelid = to_regclass($1) and a.attname = $2 and a.attnum > 0 and not a.attisdropped",
            &[&regclass(table), &column],
        )
        .map_err(db("reading the column's type"))?;
    let Some(current) = current else {
        if table_size(client, table)?.is_some() {
            f.rate(Probability::Certain, Impact::High);
            f.facts.push(format!(
                "{}.{column} does not exist on the server: the statement fails",
                name(table)
            ));
        }
        return Ok(Outcome::Keep);
    };
    let (old_oid, old_mod, shown): (u32, i32, String) =
        (current.get(0), current.get(1), current.get(2));
    f.facts.push(format!("{}.{column} is {shown} today", name(table)));
    let old_name: String = current.get(3);
    if f.code == Code::BS107 && new_type.widens(&old_name, &typmod_modifiers(&old_name, old_mod)) {
        // The new type holds every value of the old one: no value is cut.
        return Ok(Outcome::Drop);
    }
    let target =
        if new_type.array { format!("{}[]", new_type.name) } else { new_type.name.clone() };
    let new_oid: Option<u32> = client
        .query_one("select to_regtype($1)::oid", &[&target])
        .map_err(db("resolving the new type"))?
        .get(0);
    let Some(new_oid) = new_oid else { return Ok(Outcome::Keep) };
    // The typmod PostgreSQL stores for the new type, for the types whose
    // modifiers only widen or narrow (varchar, char, numeric).
    let new_mod: Option<i32> = match (new_type.base(), new_type.modifiers.as_slice()) {
        (_, []) => Some(-1),
        ("varchar" | "bpchar", [n]) => i32::try_from(*n).ok().map(|n| n + 4),
        ("numeric", [p]) => i32::try_from(*p).ok().map(|p| (p << 16) + 4),
        ("numeric", [p, s]) => {
            i32::try_from(*p).ok().zip(i32::try_from(*s).ok()).map(|(p, s)| ((p << 16) | s) + 4)
        }
        _ => None,
    };
    let widening = new_mod.is_some_and(|m| m == -1 || (old_mod != -1 && m >= old_mod));
    let coercible = old_oid == new_oid
        || client
            .query_one(
                "select exists (select 1 from pg_cast where castsource = $1 and casttarget = $2 and castmethod = 'b')",
                &[&old_oid, &new_oid],
            )
            .map_err(db("reading pg_cast"))?
            .get::<_, bool>(0);
    if new_type.using {
        return Ok(Outcome::Keep);
    }
    if old_oid == new_oid && widening {
        // Same type, wider or unconstrained: no rewrite, nothing cut.
        return Ok(Outcome::Drop);
    } else if coercible && f.code == Code::BS206 && (old_oid != new_oid || widening) {
        // Binary-coercible: PostgreSQL converts without a rewrite.
        return Ok(Outcome::Drop);
    } else if f.code == Code::BS206 {
        if let Some(facts) = table_size(client, table)? {
            scale_lock(f, table, &facts);
        }
    }
    Ok(Outcome::Keep)
}

/// The modifiers a stored typmod stands for, as written (`varchar(50)`:
/// `[50]`; `numeric(10,2)`: `[10, 2]`).
fn typmod_modifiers(type_name: &str, typmod: i32) -> Vec<i64> {
    if typmod < 0 {
        return Vec::new();
    }
    let m = i64::from(typmod) - 4;
    match type_name {
        "numeric" => vec![(m >> 16) & 0xffff, m & 0xffff],
        "varchar" | "bpchar" => vec![m],
        _ => Vec::new(),
    }
}
