//! The down of an up that changes an enum type's labels (`ADD VALUE`,
//! `RENAME VALUE`, or Prisma's swap for a type of the same name with other
//! labels): PostgreSQL cannot drop a label, so the down makes the type
//! again with the labels the catalog had before the up, moves every
//! column of the type to it (each default dropped and set again), drops
//! the type the up left and gives the new one its name, all read from the
//! catalog, with no `pg_dump`.
//!
//! An index whose expression or predicate names the type (`WHERE kind =
//! 'a'`) is dropped first and made again last from its definition, which
//! names the type by its name. Only where nothing else uses the type: a
//! view, function, domain, array column, constraint or default naming it
//! elsewhere, or a column under a view or policy, needs definitions this
//! reader does not take, and the down is worked out the full way. The type's owner must be the role
//! that runs the down, with no grant and no comment of its own, for the
//! type made again to be the same. The down is proved like any other.

use backstop_sql::rewrite::{ident, literal, qualified};
use backstop_sql::RelationName;
use postgres::Client;

/// The type as the catalog names it, with the statements that put its
/// labels back; `None` when this reader cannot (see the module's notes).
pub(super) struct Back {
    /// The picture's key of the type (`type schema.name`).
    pub key: String,
    pub statements: Vec<String>,
}

/// What the catalog says of the type now (before the up).
const TYPE: &str = "
select t.oid, n.nspname::text, t.typname::text,
       array(select e.enumlabel::text from pg_enum e where e.enumtypid = t.oid order by e.enumsortorder),
       t.typacl is null and t.typowner = (select oid from pg_roles where rolname = current_user)
         and not exists (select 1 from pg_description d
                          where d.classoid = 'pg_type'::regclass and d.objoid = t.oid)
  from pg_type t join pg_namespace n on n.oid = t.typnamespace
 where t.oid = to_regtype($1) and t.typtype = 'e'";

/// Whether anything but plain table columns (with their defaults, plain
/// indexes, unique keys and, from PostgreSQL 18, their `NOT NULL`
/// constraints, which name no type) and indexes whose expression or predicate
/// names it (made again after) uses the type `$1`.
const USED_OTHERWISE: &str = "
with rebuilt as (
  select i.oid from pg_depend d join pg_class i on i.oid = d.objid
   where d.classid = 'pg_class'::regclass and d.refclassid = 'pg_type'::regclass and d.refobjid = $1
     and i.relkind = 'i'
     and not exists (select 1 from pg_constraint k where k.conindid = i.oid)
     and not exists (select 1 from pg_description x where x.classoid = 'pg_class'::regclass and x.objoid = i.oid)
), cols as (
  select a.attrelid, a.attnum from pg_attribute a join pg_class c on c.oid = a.attrelid
   where a.atttypid = $1 and not a.attisdropped and a.attnum > 0 and c.relkind not in ('i', 'I')
)
select exists (
  select 1 from pg_depend d
   where d.refclassid = 'pg_type'::regclass
     and d.refobjid in ($1, (select typarray from pg_type where oid = $1))
     and not (d.classid = 'pg_type'::regclass and d.objid = (select typarray from pg_type where oid = $1))
     and not (d.classid = 'pg_class'::regclass
              and exists (select 1 from cols where cols.attrelid = d.objid and cols.attnum = d.objsubid))
     and not (d.classid = 'pg_class'::regclass and d.objid in (select oid from rebuilt))
     and not (d.classid = 'pg_attrdef'::regclass
              and exists (select 1 from pg_attrdef ad join cols on ad.adrelid = cols.attrelid
                                                    and ad.adnum = cols.attnum
                           where ad.oid = d.objid))
) or exists (
  select 1 from cols join pg_class c on c.oid = cols.attrelid
   where c.relkind <> 'r' or c.relispartition
      or exists (select 1 from pg_inherits i where i.inhparent = c.oid or i.inhrelid = c.oid)
) or exists (
  select 1 from pg_depend d join cols on d.refobjid = cols.attrelid and d.refobjsubid = cols.attnum
   where d.refclassid = 'pg_class'::regclass
     and not (d.classid = 'pg_attrdef'::regclass)
     and not (d.classid = 'pg_class'::regclass
              and (select relkind from pg_class where oid = d.objid) = 'i')
     and not (d.classid = 'pg_constraint'::regclass
              and (select contype from pg_constraint where oid = d.objid) in ('p', 'u', 'n'))
)";

/// The columns of the type `$1` (a table's name, a column's, its default).
const COLUMNS: &str = "
select a.attrelid::regclass::text, a.attname::text, pg_get_expr(d.adbin, d.adrelid)
  from pg_attribute a join pg_class c on c.oid = a.attrelid
  left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
 where a.atttypid = $1 and not a.attisdropped and a.attnum > 0 and c.relkind = 'r'
 order by 1, a.attnum";

/// The indexes whose expression or predicate names the type `$1`: their
/// name and definition, which names the type by its name.
const INDEXES: &str = "
select distinct i.oid::regclass::text, pg_get_indexdef(i.oid)
  from pg_depend d join pg_class i on i.oid = d.objid
 where d.classid = 'pg_class'::regclass and d.refclassid = 'pg_type'::regclass and d.refobjid = $1
   and i.relkind = 'i'
 order by 1";

/// The statements that give the type `t` back the labels it has now,
/// read before the up.
pub(super) fn back(client: &mut Client, t: &RelationName) -> Result<Option<Back>, postgres::Error> {
    let Some(row) = client.query_opt(TYPE, &[&backstop_sql::rewrite::relation(t)])? else {
        return Ok(None);
    };
    let (oid, schema, name): (u32, String, String) = (row.get(0), row.get(1), row.get(2));
    let (labels, plain): (Vec<String>, bool) = (row.get(3), row.get(4));
    if !plain || client.query_one(USED_OTHERWISE, &[&oid])?.get::<_, bool>(0) {
        return Ok(None);
    }
    let columns = client.query(COLUMNS, &[&oid])?;
    let indexes = client.query(INDEXES, &[&oid])?;
    let mut spare = format!("{name}_backstop_down");
    while spare.len() > 63 {
        spare.remove(0);
    }
    let (old, new) = (qualified(&schema, &name), qualified(&schema, &spare));
    let listed: Vec<String> = labels.iter().map(|l| literal(l)).collect();
    let mut statements: Vec<String> =
        indexes.iter().map(|i| format!("DROP INDEX {}", i.get::<_, String>(0))).collect();
    statements.push(format!("CREATE TYPE {new} AS ENUM ({})", listed.join(", ")));
    let mut defaults = Vec::new();
    for c in &columns {
        let (table, column, default): (String, String, Option<String>) =
            (c.get(0), c.get(1), c.get(2));
        let col = ident(&column);
        if let Some(d) = default {
            statements.push(format!("ALTER TABLE {table} ALTER COLUMN {col} DROP DEFAULT"));
            defaults.push(format!("ALTER TABLE {table} ALTER COLUMN {col} SET DEFAULT {d}"));
        }
        statements.push(format!(
            "ALTER TABLE {table} ALTER COLUMN {col} TYPE {new} USING {col}::text::{new}"
        ));
    }
    statements.push(format!("DROP TYPE {old}"));
    statements.push(format!("ALTER TYPE {new} RENAME TO {}", ident(&name)));
    statements.extend(defaults);
    statements.extend(indexes.iter().map(|i| i.get::<_, String>(1)));
    Ok(Some(Back { key: format!("type {schema}.{name}"), statements }))
}

/// Whether two definitions of an enum type in the picture differ only in
/// their labels (`e a,b acl=…`).
pub(super) fn only_labels(before: &str, after: &str) -> bool {
    let acl =
        |d: &str| d.strip_prefix("e ").and_then(|r| r.rfind(" acl=").map(|i| r[i..].to_string()));
    acl(before).is_some() && acl(before) == acl(after)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_enum_differs_only_in_labels_when_the_rest_is_the_same() {
        assert!(only_labels("e a,b acl={x=U/x}", "e a,b,c acl={x=U/x}"));
        assert!(!only_labels("e a,b acl={x=U/x}", "e a,b acl={x=U/x,y=U/x}"));
        assert!(!only_labels("d integer", "d bigint"));
        assert!(only_labels("e a b,c acl={}", "e a b acl={}"), "a label with a space");
    }
}
