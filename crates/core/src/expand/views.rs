//! The new shape in the database: the schema of views, one per table of
//! the expanded schema, each a plain column list over its table so that
//! PostgreSQL makes it updatable on its own (inserts, updates and deletes
//! through it land in the table, with the table's defaults). Views keep
//! row level security with `security_invoker` (PostgreSQL 15 and later),
//! and get the privileges their tables and schema grant.

use std::collections::BTreeMap;

use postgres::GenericClient;

use super::plan::{ColumnFacts, Table, TableShape};
use crate::pg::{quote_ident, quote_qualified};

/// The tables of `schema` (partitions left to their parent), by name, read
/// in one query: each column's facts, and from them the column list, the
/// columns an insert cannot leave out and the primary key.
pub fn tables(
    client: &mut impl GenericClient,
    schema: &str,
) -> Result<BTreeMap<String, Table>, postgres::Error> {
    let mut tables: BTreeMap<String, Table> = BTreeMap::new();
    let mut keys: BTreeMap<String, Vec<(i32, String, String)>> = BTreeMap::new();
    for r in client.query(COLUMN_FACTS, &[&schema])? {
        let name: String = r.get(0);
        let t = tables.entry(name.clone()).or_insert_with(|| Table {
            rls: r.get(1),
            columns: Vec::new(),
            required: Vec::new(),
            facts: BTreeMap::new(),
            key: Vec::new(),
        });
        // A table with no column comes as one row with no column.
        let Some(column) = r.get::<_, Option<String>>(2) else { continue };
        let facts = ColumnFacts {
            type_sql: r.get(3),
            not_null: r.get(4),
            default: r.get(5),
            used_by: r.get(6),
            computed: r.get(8),
            indexes: r.get(9),
        };
        if let Some(at) = r.get::<_, Option<i32>>(7) {
            keys.entry(name).or_default().push((at, column.clone(), facts.type_sql.clone()));
        }
        if facts.not_null && facts.default.is_none() && !facts.computed {
            t.required.push(column.clone());
        }
        t.columns.push(column.clone());
        t.facts.insert(column, facts);
    }
    for (name, mut key) in keys {
        key.sort();
        if let Some(t) = tables.get_mut(&name) {
            t.key = key.into_iter().map(|(_, c, ty)| (c, ty)).collect();
        }
    }
    Ok(tables)
}

/// Each column of the schema's tables, in order: whether its table has
/// row level security, its type, NOT NULL, default, what depends on it
/// (its default aside), its place in the primary key, whether it is
/// identity or generated, and the definitions of the indexes on it that no
/// constraint owns.
const COLUMN_FACTS: &str = "
select c.relname::text, c.relrowsecurity, a.attname::text, format_type(a.atttypid, a.atttypmod),
       a.attnotnull, pg_get_expr(d.adbin, d.adrelid),
       coalesce((select array_agg(distinct pg_describe_object(p.classid, p.objid, p.objsubid))
                   from pg_depend p
                  where p.refclassid = 'pg_class'::regclass and p.refobjid = c.oid
                    and p.refobjsubid = a.attnum and p.classid <> 'pg_attrdef'::regclass
                    and p.deptype in ('n', 'a', 'i')), '{}'),
       (select array_position(i.indkey::int2[], a.attnum)
          from pg_index i where i.indrelid = c.oid and i.indisprimary),
       coalesce(a.attidentity <> '' or a.attgenerated <> '', false),
       coalesce((select array_agg(pg_get_indexdef(i.indexrelid) order by i.indexrelid)
                   from pg_index i
                  where i.indrelid = c.oid and a.attnum = any(i.indkey::int2[])
                    and not exists (select 1 from pg_constraint k
                                     where k.conindid = i.indexrelid)), '{}')
  from pg_class c
  join pg_namespace n on n.oid = c.relnamespace
  left join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
  left join pg_attrdef d on d.adrelid = c.oid and d.adnum = a.attnum
 where n.nspname = $1 and c.relkind in ('r', 'p') and not c.relispartition
 order by c.relname, a.attnum";

/// Creates `new_schema` with a view per table of `schema` showing its new
/// shape, granting what the schema and the tables grant.
pub fn create(
    client: &mut impl GenericClient,
    schema: &str,
    new_schema: &str,
    tables: &[TableShape],
    security_invoker: bool,
) -> Result<(), postgres::Error> {
    client.batch_execute(&format!("CREATE SCHEMA {}", quote_ident(new_schema)))?;
    for grantee in schema_usage(client, schema)? {
        client.batch_execute(&format!(
            "GRANT USAGE ON SCHEMA {} TO {grantee}",
            quote_ident(new_schema)
        ))?;
    }
    let with = if security_invoker { " WITH (security_invoker = true)" } else { "" };
    for t in tables {
        let list: Vec<String> = t
            .columns
            .iter()
            .filter(|c| !c.hidden)
            .map(|c| {
                let real = c.via.as_deref().unwrap_or(&c.real);
                match real == c.shown {
                    true => quote_ident(real),
                    false => format!("{} AS {}", quote_ident(real), quote_ident(&c.shown)),
                }
            })
            .collect();
        let view = quote_qualified(Some(new_schema), t.view_name());
        client.batch_execute(&format!(
            "CREATE VIEW {view}{with} AS SELECT {} FROM {}",
            list.join(", "),
            quote_qualified(Some(schema), &t.name)
        ))?;
        for (grantee, privilege) in table_grants(client, schema, &t.name)? {
            client.batch_execute(&format!("GRANT {privilege} ON {view} TO {grantee}"))?;
        }
    }
    Ok(())
}

/// Drops the views; then `drop_schema` drops their schema.
pub fn drop(
    client: &mut impl GenericClient,
    new_schema: &str,
    tables: &[TableShape],
) -> Result<(), postgres::Error> {
    for t in tables {
        client.batch_execute(&format!(
            "DROP VIEW IF EXISTS {}",
            quote_qualified(Some(new_schema), t.view_name())
        ))?;
    }
    Ok(())
}

/// Drops the new shape's schema, not CASCADE: anything someone else put in
/// it makes the drop fail rather than vanish.
pub fn drop_schema(
    client: &mut impl GenericClient,
    new_schema: &str,
) -> Result<(), postgres::Error> {
    client.batch_execute(&format!("DROP SCHEMA IF EXISTS {}", quote_ident(new_schema)))
}

/// Whether a schema named `name` exists.
pub fn schema_exists(client: &mut impl GenericClient, name: &str) -> Result<bool, postgres::Error> {
    Ok(client
        .query_one("select exists (select 1 from pg_namespace where nspname = $1)", &[&name])?
        .get(0))
}

/// Who may use `schema` besides its owner, quoted (`PUBLIC` as is).
fn schema_usage(
    client: &mut impl GenericClient,
    schema: &str,
) -> Result<Vec<String>, postgres::Error> {
    let rows = client.query(
        "select distinct r.rolname::text
           from pg_namespace n, aclexplode(n.nspacl) a
           left join pg_roles r on r.oid = a.grantee
          where n.nspname = $1 and a.privilege_type = 'USAGE' and a.grantee <> n.nspowner",
        &[&schema],
    )?;
    Ok(rows.iter().map(|r| grantee(r.get(0))).collect())
}

/// The table privileges a view can carry, by grantee, besides the owner's.
fn table_grants(
    client: &mut impl GenericClient,
    schema: &str,
    table: &str,
) -> Result<Vec<(String, String)>, postgres::Error> {
    let rows = client.query(
        "select r.rolname::text, a.privilege_type
           from pg_class c
           join pg_namespace n on n.oid = c.relnamespace, aclexplode(c.relacl) a
           left join pg_roles r on r.oid = a.grantee
          where n.nspname = $1 and c.relname = $2 and a.grantee <> c.relowner
            and a.privilege_type in ('SELECT', 'INSERT', 'UPDATE', 'DELETE')",
        &[&schema, &table],
    )?;
    Ok(rows.iter().map(|r| (grantee(r.get(0)), r.get(1))).collect())
}

/// A role name from the catalog, quoted; no role is PUBLIC.
fn grantee(name: Option<String>) -> String {
    name.map_or_else(|| "PUBLIC".to_string(), |n| quote_ident(&n))
}
