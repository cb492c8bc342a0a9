//! What the downs need from the catalogs besides `pg_dump`'s definitions:
//! every table's columns by position (so a rename is told from a drop and
//! an add) with type, default, nullability, identity, generation and
//! collation; row security; enum labels; sequence values; and which views
//! depend on a relation or a column. Read with `search_path` empty, so every
//! name and expression comes out schema-qualified, as pg_dump writes them.

use std::collections::HashMap;

use postgres::GenericClient;

/// Schemas that are never a user's.
const SKIPPED: &str = "('pg_catalog', 'information_schema', 'backstop', 'pg_toast')";

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Column {
    pub attnum: i16,
    pub name: String,
    /// `format_type`, qualified: `integer`, `public.mood`, `character varying(20)`.
    pub type_name: String,
    pub not_null: bool,
    pub default: Option<String>,
    /// `a` (always) or `d` (by default) for an identity column.
    pub identity: Option<char>,
    /// The expression of a stored generated column.
    pub generated: Option<String>,
    /// A collation other than the type's default, qualified.
    pub collation: Option<String>,
    /// What pg_dump sets with `ALTER COLUMN`: the statistics target (when
    /// set), the storage (`p`, `e`, `m`, `x`), the compression (when set)
    /// and the options (`n_distinct=…`).
    pub statistics: Option<i32>,
    pub storage: Option<String>,
    pub compression: Option<String>,
    pub options: Vec<String>,
    /// Inherited from a parent and not declared by the table itself
    /// (a partition's columns are left out: they are always so).
    pub inherited_only: bool,
    /// Inherited and not declared by the table itself, a partition's
    /// included: PostgreSQL drops it only with its parent's.
    pub from_parent: bool,
}

/// A CHECK constraint of a table (pg_dump writes most inside the table's
/// definition, so they have no entry of their own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Check {
    pub oid: u32,
    pub name: String,
    /// `CHECK (…)`, with `NOT VALID` when it is not validated.
    pub definition: String,
}

#[derive(Debug, Clone)]
pub(super) struct Table {
    pub oid: u32,
    pub schema: String,
    pub name: String,
    pub rls: bool,
    pub force_rls: bool,
    pub columns: Vec<Column>,
    pub checks: Vec<Check>,
    /// Storage parameters (`fillfactor=70`), those of its TOAST table
    /// apart (`autovacuum_enabled=false`, set as `toast.…`).
    pub options: Vec<String>,
    pub toast_options: Vec<String>,
    /// `d`, `n`, `f` or `i` (then `replica_index` names the index).
    pub replica_identity: String,
    /// `p` (logged) or `u` (unlogged).
    pub persistence: String,
    pub replica_index: Option<String>,
    /// The tables it inherits from (not a partition's parent), qualified.
    pub parents: Vec<String>,
    /// A partition or a child of inheritance: a column its parent has
    /// comes to it with the parent's.
    pub child: bool,
}

impl Table {
    pub fn qualified(&self) -> String {
        backstop_sql::rewrite::qualified(&self.schema, &self.name)
    }
}

/// An enum type and its labels in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Enum {
    pub oid: u32,
    pub schema: String,
    pub name: String,
    pub labels: Vec<String>,
}

/// A sequence's value: where `nextval` goes on from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SequenceValue {
    pub last_value: i64,
    pub is_called: bool,
}

/// (catalog, OID) of a member object → the OID of its relation.
pub(super) type Owners = HashMap<(u32, u32), u32>;

/// Sequence OID → (table OID, column number) of the column that owns it.
pub(super) type SequenceOwners = HashMap<u32, (u32, i16)>;

#[derive(Debug, Clone, Default)]
pub(super) struct Catalog {
    pub tables: Vec<Table>,
    pub enums: Vec<Enum>,
    /// By qualified name (quoted as needed).
    pub sequences: HashMap<String, SequenceValue>,
    /// The relation each member object belongs to: (catalog, OID) of a
    /// constraint, index, trigger, policy, rule or default → the table's
    /// OID. pg_dump names no dependency for these.
    pub owners: Owners,
    /// The column that owns a sequence (serial): sequence OID → (table
    /// OID, column number).
    pub sequence_owners: SequenceOwners,
    /// What the catalog says of each object of the dump, by (catalog, OID).
    pub objects: HashMap<(u32, u32), ObjectFacts>,
    /// The functions and procedures whose SQL-standard body reads a view
    /// (by OID): pg_dump names no dependency for these either.
    pub view_readers: std::collections::HashSet<u32>,
    /// Each extension by name: its version, its schema, and the versions
    /// its scripts can update it to from there (pg_dump writes none of it).
    pub extensions: HashMap<String, ExtensionFacts>,
}

/// What the catalog says of one extension.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct ExtensionFacts {
    pub version: String,
    pub schema: String,
    pub reachable: Vec<String>,
}

/// What the catalog says of one object of the dump.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct ObjectFacts {
    /// `pg_identify_object`'s identity: quoted and qualified as DDL names
    /// the object (`public.===(public.kind,pg_catalog.text)`, `(integer
    /// AS public.kind)`, `public.ops USING btree`).
    pub identity: String,
    /// A function's result and its arguments with names and defaults: what
    /// `CREATE OR REPLACE` cannot change.
    pub signature: Option<String>,
}

impl Catalog {
    pub fn table(&self, oid: u32) -> Option<&Table> {
        self.tables.iter().find(|t| t.oid == oid)
    }

    pub fn table_named(&self, schema: &str, name: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.schema == schema && t.name == name)
    }

    pub fn enum_of(&self, oid: u32) -> Option<&Enum> {
        self.enums.iter().find(|e| e.oid == oid)
    }

    pub fn enum_named(&self, schema: &str, name: &str) -> Option<&Enum> {
        self.enums.iter().find(|e| e.schema == schema && e.name == name)
    }
}

/// Reads the catalog of the connected database, and what it says of the
/// objects of `dump` (the same database's).
pub(super) fn read(
    client: &mut impl GenericClient,
    dump: &super::toc::Dump,
) -> Result<Catalog, postgres::Error> {
    client.batch_execute("SET search_path = ''")?;
    let read = read_inner(client, dump);
    client.batch_execute("RESET search_path")?;
    read
}

fn read_inner(
    client: &mut impl GenericClient,
    dump: &super::toc::Dump,
) -> Result<Catalog, postgres::Error> {
    let tables = read_tables(client)?;
    let (owners, sequence_owners) = read_owners(client)?;
    Ok(Catalog {
        tables,
        enums: read_enums(client)?,
        sequences: read_sequences(client)?,
        owners,
        sequence_owners,
        objects: read_objects(client, dump)?,
        view_readers: client
            .query(
                "select distinct d.objid from pg_depend d join pg_class c on c.oid = d.refobjid
                  where d.classid = 'pg_proc'::regclass and d.refclassid = 'pg_class'::regclass
                    and d.deptype = 'n' and c.relkind in ('v', 'm')",
                &[],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect(),
        extensions: read_extensions(client)?,
    })
}

fn read_extensions(
    client: &mut impl GenericClient,
) -> Result<HashMap<String, ExtensionFacts>, postgres::Error> {
    let rows = client.query(
        "select x.extname::text, x.extversion, quote_ident(n.nspname),
                array(select p.target from pg_extension_update_paths(x.extname) p
                       where p.source = x.extversion and p.path is not null)
           from pg_extension x join pg_namespace n on n.oid = x.extnamespace",
        &[],
    )?;
    Ok(rows
        .iter()
        .map(|r| {
            let facts = ExtensionFacts { version: r.get(1), schema: r.get(2), reachable: r.get(3) };
            (r.get(0), facts)
        })
        .collect())
}

/// What the catalog says of every object of `dump` that has an identity.
fn read_objects(
    client: &mut impl GenericClient,
    dump: &super::toc::Dump,
) -> Result<HashMap<(u32, u32), ObjectFacts>, postgres::Error> {
    let (classes, oids): (Vec<u32>, Vec<u32>) =
        dump.entries.iter().filter(|e| e.class != 0).map(|e| (e.class, e.oid)).unzip();
    let rows = client.query(
        "select x.c, x.o, (pg_identify_object(x.c, x.o, 0)).identity,
                case when x.c = 'pg_proc'::regclass
                     then pg_get_function_result(x.o) || ' (' || pg_get_function_arguments(x.o) || ')' end
           from unnest($1::oid[], $2::oid[]) x(c, o)",
        &[&classes, &oids],
    )?;
    Ok(rows
        .iter()
        .map(|r| {
            let facts = ObjectFacts {
                identity: r.get::<_, Option<String>>(2).unwrap_or_default(),
                signature: r.get(3),
            };
            ((r.get(0), r.get(1)), facts)
        })
        .collect())
}

/// Every user table with its columns and CHECK constraints.
fn read_tables(client: &mut impl GenericClient) -> Result<Vec<Table>, postgres::Error> {
    let mut tables: Vec<Table> = Vec::new();
    for row in client.query(
        &format!(
            "select c.oid, n.nspname::text, c.relname::text, c.relrowsecurity, c.relforcerowsecurity,
                    exists (select 1 from pg_inherits i where i.inhrelid = c.oid)
               from pg_class c join pg_namespace n on n.oid = c.relnamespace
              where c.relkind in ('r', 'p', 'f') and n.nspname not in {SKIPPED}
                and not exists (select 1 from pg_depend d where d.classid = 'pg_class'::regclass
                                   and d.objid = c.oid and d.deptype = 'e')
              order by 2, 3"
        ),
        &[],
    )? {
        tables.push(Table {
            oid: row.get(0),
            schema: row.get(1),
            name: row.get(2),
            rls: row.get(3),
            force_rls: row.get(4),
            columns: Vec::new(),
            checks: Vec::new(),
            options: Vec::new(),
            toast_options: Vec::new(),
            replica_identity: String::new(),
            persistence: String::new(),
            replica_index: None,
            parents: Vec::new(),
            child: row.get(5),
        });
    }
    let index: HashMap<u32, usize> = tables.iter().enumerate().map(|(i, t)| (t.oid, i)).collect();
    for row in client.query(
        &format!(
            "select a.attrelid, a.attnum, a.attname::text, format_type(a.atttypid, a.atttypmod),
                    a.attnotnull,
                    case when a.attgenerated = '' then pg_get_expr(d.adbin, d.adrelid) end,
                    nullif(a.attidentity, '')::text,
                    case when a.attgenerated <> '' then pg_get_expr(d.adbin, d.adrelid) end,
                    case when a.attcollation <> t.typcollation
                         then quote_ident(cn.nspname) || '.' || quote_ident(co.collname) end,
                    a.attinhcount > 0 and not a.attislocal and not c.relispartition,
                    a.attinhcount > 0 and not a.attislocal
               from pg_attribute a
               join pg_class c on c.oid = a.attrelid
               join pg_namespace n on n.oid = c.relnamespace
               join pg_type t on t.oid = a.atttypid
               left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
               left join pg_collation co on co.oid = a.attcollation
               left join pg_namespace cn on cn.oid = co.collnamespace
              where a.attnum > 0 and not a.attisdropped and c.relkind in ('r', 'p', 'f')
                and n.nspname not in {SKIPPED}
              order by a.attrelid, a.attnum"
        ),
        &[],
    )? {
        let Some(i) = index.get(&row.get::<_, u32>(0)) else { continue };
        let identity: Option<String> = row.get(6);
        tables[*i].columns.push(Column {
            attnum: row.get(1),
            name: row.get(2),
            type_name: row.get(3),
            not_null: row.get(4),
            default: row.get(5),
            identity: identity.and_then(|s| s.chars().next()),
            generated: row.get(7),
            collation: row.get(8),
            statistics: None,
            storage: None,
            compression: None,
            options: Vec::new(),
            inherited_only: row.get(9),
            from_parent: row.get(10),
        });
    }
    for row in client.query(
        "select conrelid, oid, conname::text, pg_get_constraintdef(oid)
           from pg_constraint where contype = 'c' and conrelid <> 0 order by conrelid, conname",
        &[],
    )? {
        let Some(i) = index.get(&row.get::<_, u32>(0)) else { continue };
        tables[*i].checks.push(Check { oid: row.get(1), name: row.get(2), definition: row.get(3) });
    }
    Ok(tables)
}

fn read_enums(client: &mut impl GenericClient) -> Result<Vec<Enum>, postgres::Error> {
    let mut enums: Vec<Enum> = Vec::new();
    for row in client.query(
        &format!(
            "select t.oid, n.nspname::text, t.typname::text,
                    array(select e.enumlabel::text from pg_enum e where e.enumtypid = t.oid
                           order by e.enumsortorder)
               from pg_type t join pg_namespace n on n.oid = t.typnamespace
              where t.typtype = 'e' and n.nspname not in {SKIPPED}"
        ),
        &[],
    )? {
        enums.push(Enum {
            oid: row.get(0),
            schema: row.get(1),
            name: row.get(2),
            labels: row.get(3),
        });
    }
    Ok(enums)
}

fn read_sequences(
    client: &mut impl GenericClient,
) -> Result<HashMap<String, SequenceValue>, postgres::Error> {
    let mut sequences = HashMap::new();
    for row in client.query(
        &format!(
            "select quote_ident(schemaname) || '.' || quote_ident(sequencename),
                    coalesce(last_value, start_value), last_value is not null
               from pg_sequences where schemaname not in {SKIPPED}"
        ),
        &[],
    )? {
        sequences.insert(
            row.get::<_, String>(0),
            SequenceValue { last_value: row.get(1), is_called: row.get(2) },
        );
    }
    Ok(sequences)
}

/// Which relation each member object belongs to, and which column owns
/// each sequence.
fn read_owners(
    client: &mut impl GenericClient,
) -> Result<(Owners, SequenceOwners), postgres::Error> {
    let mut owners = HashMap::new();
    for row in client.query(
        "select 'pg_constraint'::regclass::oid, oid, conrelid from pg_constraint where conrelid <> 0
         union all select 'pg_class'::regclass::oid, indexrelid, indrelid from pg_index
         union all select 'pg_trigger'::regclass::oid, oid, tgrelid from pg_trigger
         union all select 'pg_policy'::regclass::oid, oid, polrelid from pg_policy
         union all select 'pg_rewrite'::regclass::oid, oid, ev_class from pg_rewrite
         union all select 'pg_attrdef'::regclass::oid, oid, adrelid from pg_attrdef",
        &[],
    )? {
        owners.insert((row.get(0), row.get(1)), row.get(2));
    }
    let mut sequence_owners = HashMap::new();
    for row in client.query(
        "select objid, refobjid, refobjsubid::int2 from pg_depend
          where classid = 'pg_class'::regclass and refclassid = 'pg_class'::regclass
            and deptype = 'a' and refobjsubid > 0
            and objid in (select oid from pg_class where relkind = 'S')",
        &[],
    )? {
        sequence_owners.insert(row.get(0), (row.get(1), row.get(2)));
    }
    Ok((owners, sequence_owners))
}

/// The views and materialized views that depend on any of `relations`
/// (and on `columns`, as (table, attnum)), directly or through other
/// views: their OIDs.
pub(super) fn dependent_views(
    client: &mut impl GenericClient,
    relations: &[u32],
    columns: &[(u32, i16)],
) -> Result<Vec<u32>, postgres::Error> {
    if relations.is_empty() && columns.is_empty() {
        return Ok(Vec::new());
    }
    let col_tables: Vec<u32> = columns.iter().map(|c| c.0).collect();
    let col_nums: Vec<i16> = columns.iter().map(|c| c.1).collect();
    let rows = client.query(
        "with recursive deps(oid) as (
             select distinct r.ev_class
               from pg_depend d join pg_rewrite r on r.oid = d.objid
              where d.classid = 'pg_rewrite'::regclass and d.refclassid = 'pg_class'::regclass
                and r.ev_class <> d.refobjid
                and (d.refobjid = any($1::oid[])
                     or (d.refobjid, d.refobjsubid) in
                        (select * from unnest($2::oid[], $3::int2[])))
             union
             select r.ev_class
               from deps
               join pg_depend d on d.refclassid = 'pg_class'::regclass and d.refobjid = deps.oid
               join pg_rewrite r on r.oid = d.objid and d.classid = 'pg_rewrite'::regclass
              where r.ev_class <> deps.oid
         )
         select oid from deps",
        &[&relations, &col_tables, &col_nums],
    )?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// The foreign keys (constraint OIDs) on or to `columns` (relation OID,
/// column number): a column's type cannot go back while one holds it to a
/// column of the other type, so the down drops them first and makes them
/// again after.
pub(super) fn foreign_keys_on(
    client: &mut impl GenericClient,
    columns: &[(u32, i16)],
) -> Result<Vec<u32>, postgres::Error> {
    if columns.is_empty() {
        return Ok(Vec::new());
    }
    let tables: Vec<u32> = columns.iter().map(|c| c.0).collect();
    let nums: Vec<i16> = columns.iter().map(|c| c.1).collect();
    let rows = client.query(
        "select c.oid from pg_constraint c
          where c.contype = 'f'
            and exists (select 1 from unnest($1::oid[], $2::int2[]) x(rel, att)
                         where (x.rel = c.conrelid and x.att = any(c.conkey))
                            or (x.rel = c.confrelid and x.att = any(c.confkey)))",
        &[&tables, &nums],
    )?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}
