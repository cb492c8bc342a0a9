//! A dropped column made again, as the catalog defines it before the up
//! that drops it: for the quick way, where an up drops a column of a table
//! that was there. Only what the catalog says exactly comes back: the
//! column (type, collation, default, NOT NULL), the constraints and
//! indexes that named it and went with it, its comment. A column with
//! more to it (identity, a generated expression, privileges of its own,
//! views, triggers, policies or statistics that name it) is left to the
//! full way.

use backstop_sql::rewrite::{ident, literal, relation};
use backstop_sql::RelationName;
use postgres::Client;

/// The statements that make `column` of `table` again as it is now, in
/// order; `None` when it is not there or has more to it than they hold.
pub(super) fn column(
    client: &mut Client,
    table: &RelationName,
    column: &str,
) -> Result<Option<Vec<String>>, postgres::Error> {
    let name = relation(table);
    let row = client.query_opt(
        "select a.attnum, format_type(a.atttypid, a.atttypmod), pg_get_expr(d.adbin, d.adrelid),
                a.attnotnull, a.attidentity <> '' or a.attgenerated <> '' or a.attacl is not null,
                case when a.attcollation <> t.typcollation
                     then (select quote_ident(n.nspname) || '.' || quote_ident(c.collname)
                             from pg_collation c join pg_namespace n on n.oid = c.collnamespace
                            where c.oid = a.attcollation) end,
                col_description(a.attrelid, a.attnum)
           from pg_attribute a
           join pg_type t on t.oid = a.atttypid
           left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
          where a.attrelid = to_regclass($1) and a.attname = $2 and not a.attisdropped",
        &[&name, &column],
    )?;
    let Some(row) = row else { return Ok(None) };
    let (attnum, ty, default, not_null, special): (i16, String, Option<String>, bool, bool) =
        (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
    let (collation, comment): (Option<String>, Option<String>) = (row.get(5), row.get(6));
    if special {
        return Ok(None);
    }
    // What depends on the column: only its own indexes and constraints
    // are made again here. A CHECK constraint depends on it twice (as a
    // column of the constraint and of its expression): once is enough.
    let dependents = client.query(
        "select distinct d.classid::regclass::text, d.objid,
                (select c.oid from pg_constraint c where c.oid = d.objid and c.contype <> 'n'),
                (select i.indexrelid from pg_index i where i.indexrelid = d.objid
                    and not exists (select from pg_constraint c where c.conindid = i.indexrelid))
           from pg_depend d
          where d.refclassid = 'pg_class'::regclass and d.refobjid = to_regclass($1)
            and d.refobjsubid = $2 and d.deptype in ('a', 'n')
            and not (d.classid = 'pg_class'::regclass and d.objid = to_regclass($1))",
        &[&name, &i32::from(attnum)],
    )?;
    let mut constraints = Vec::new();
    let mut indexes = Vec::new();
    for d in &dependents {
        let (class, constraint, index): (String, Option<u32>, Option<u32>) =
            (d.get(0), d.get(2), d.get(3));
        match (class.as_str(), constraint, index) {
            ("pg_constraint", Some(oid), _) => constraints.push(oid),
            ("pg_constraint", None, _) => {} // a NOT NULL constraint (PostgreSQL 18)
            ("pg_attrdef", _, _) => {}       // its default, made with it
            ("pg_class", _, Some(oid)) => indexes.push(oid),
            // The index of a constraint comes back with the constraint.
            ("pg_class", _, None) if is_constraint_index(client, d.get(1))? => {}
            _ => return Ok(None),
        }
    }
    let mut definition = format!("{} {ty}", ident(column));
    if let Some(c) = collation {
        definition.push_str(&format!(" COLLATE {c}"));
    }
    if let Some(d) = default {
        definition.push_str(&format!(" DEFAULT {d}"));
    }
    if not_null {
        definition.push_str(" NOT NULL");
    }
    let mut out = vec![format!("ALTER TABLE {name} ADD COLUMN {definition}")];
    for oid in constraints {
        let c = client.query_one(
            "select conrelid::regclass::text, quote_ident(conname), pg_get_constraintdef(oid)
               from pg_constraint where oid = $1",
            &[&oid],
        )?;
        let (on, cname, def): (String, String, String) = (c.get(0), c.get(1), c.get(2));
        out.push(format!("ALTER TABLE {on} ADD CONSTRAINT {cname} {def}"));
    }
    for oid in indexes {
        let i = client.query_one("select pg_get_indexdef($1)", &[&oid])?;
        out.push(i.get(0));
    }
    if let Some(text) = comment {
        out.push(format!("COMMENT ON COLUMN {name}.{} IS {}", ident(column), literal(&text)));
    }
    Ok(Some(out))
}

fn is_constraint_index(client: &mut Client, oid: u32) -> Result<bool, postgres::Error> {
    let row = client
        .query_one("select exists (select from pg_constraint where conindid = $1)", &[&oid])?;
    Ok(row.get(0))
}
