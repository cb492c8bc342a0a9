//! The parts of the schema picture's one query, one per kind of object a
//! table or view has and is, and the functions, types, extensions and
//! schemas; the kinds outside tables (foreign data wrappers, operators,
//! text search, publications, …) are in [`super::kinds`]. Each part says
//! whose object a row is (its owner), so that a picture can be read again
//! for some owners only (`pg::tracked`).

/// The `pg_class` row of the index of `pg_index x`, looked up by its OID
/// for each index: read for some tables' indexes (`x.indrelid = any(..)`,
/// a plan made once for any number of them), a plain join hashed every
/// relation of the database instead.
pub(super) const INDEX_CLASS: &str =
    "select i.oid, i.relname, i.relnamespace from pg_class i where i.oid = x.indexrelid offset 0";

/// Schemas that are never part of a user's schema.
pub(super) const SKIPPED: &str = "('pg_catalog', 'information_schema', 'backstop', 'pg_toast')";

/// One part of the picture's query: its select list, the rest of the
/// statement, and the owner of each row: its kind (`r`, `f`, `t`, `n`,
/// `e`, or the name of the catalog holding the owner, `pg_cast`) and OID
/// expression. Where the part's catalog names its table in a column of
/// its own (`k.conrelid`), that column is the owner, so that the filter of
/// a read for some owners falls on the catalog's own rows: the plan of
/// the constraints of two tables had sorted every constraint of the
/// database to join them with the table's row (`c.oid`), 0.44 ms against
/// 0.18 ms on 812 tables.
pub(super) struct Part {
    pub select: String,
    pub from: String,
    pub kind: &'static str,
    pub owner: &'static str,
    /// The majors whose catalogs the part reads: from `since`, before `until`.
    pub since: i32,
    pub until: i32,
    /// A cheap test, true wherever the part can have a row: a picture read
    /// once leaves out the parts whose test is false (see
    /// `fingerprint::Schema::read`). `None`: the part is always read.
    pub probe: Option<String>,
    /// The same for the relations `$1` only, of a part about relations: a
    /// read for some of them (every look of a rehearsal) runs the part
    /// only where it is true (see `fingerprint::relation_look`). `None`:
    /// the part is always read.
    pub probe_some: Option<String>,
}

pub(super) fn part(select: String, from: String, kind: &'static str, owner: &'static str) -> Part {
    Part { select, from, kind, owner, since: 0, until: i32::MAX, probe: None, probe_some: None }
}

/// The probe for some relations of a part whose rows are rows of
/// `catalog` naming their table in `column`.
pub(super) fn on_some(catalog: &str, column: &str, also: &str) -> String {
    format!("exists (select 1 from {catalog} where {column} = any($1::oid[]){also})")
}

/// The probe of a part whose rows are objects of `catalog` a user (or an
/// extension) made. PostgreSQL hands out OIDs from 16384 on once initdb is
/// done, and wraps around to 16384 again, so every object made since has
/// one at least that high; what is lower is initdb's own, all of it in
/// the schemas the picture skips (but the `public` schema and the
/// `plpgsql` extension, whose parts have no probe).
pub(super) fn user_made(catalog: &str) -> String {
    format!("exists (select 1 from {catalog} where oid >= 16384)")
}

/// The probe of a part whose rows need a row of `catalog` (one with no
/// rows after initdb).
pub(super) fn any_row(catalog: &str) -> String {
    format!("exists (select 1 from {catalog})")
}

impl Part {
    /// The part, read only from major `major` on.
    pub fn since(self, major: i32) -> Part {
        Part { since: major, ..self }
    }

    /// The part, read only before major `major`.
    pub fn until(self, major: i32) -> Part {
        Part { until: major, ..self }
    }

    /// Whether the part is read on major `major` (14 stands for every
    /// major before 15, whose catalogs are alike for the picture).
    pub fn reads(&self, major: i32) -> bool {
        self.since <= major && major < self.until
    }

    /// The part, read only where `probe` (an SQL test) is true.
    pub fn probe(self, probe: String) -> Part {
        Part { probe: Some(probe), ..self }
    }

    /// The part, read for some relations only where `probe` (an SQL test
    /// of the relations `$1`) is true.
    pub fn probe_some(self, probe: String) -> Part {
        Part { probe_some: Some(probe), ..self }
    }
}

/// `o` is no member of an extension and not made by PostgreSQL itself
/// (an array type, a multirange's cast): pg_dump writes neither.
pub(super) fn own(catalog: &str, oid: &str) -> String {
    format!(
        "not exists (select 1 from pg_depend x where x.classid = '{catalog}'::regclass \
         and x.objid = {oid} and x.deptype in ('e', 'i'))"
    )
}

/// The parts about relations: what a table or view has and is.
pub(super) fn relation_parts() -> Vec<Part> {
    vec![
        // Columns: type, nullability, default, identity, generation,
        // collation, and what pg_dump sets with `ALTER COLUMN` (statistics
        // target, storage other than the type's, compression, options, a
        // foreign table's column options) and the column's own grants.
        // Position is left out.
        part(
            "'column ' || n.nspname || '.' || c.relname || '.' || a.attname,
                    format_type(a.atttypid, a.atttypmod)
                    || case when a.attnotnull then ' not null' else '' end
                    || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
                    || case when a.attidentity <> '' then ' identity ' || a.attidentity::text else '' end
                    || case when a.attgenerated <> '' then ' generated' else '' end
                    || coalesce(' collate ' || co.collname, '')
                    || case when coalesce(a.attstattarget, -1) >= 0 then ' statistics ' || a.attstattarget else '' end
                    || case when a.attstorage <> ty.typstorage then ' storage ' || a.attstorage::text else '' end
                    || case when a.attcompression <> '' then ' compression ' || a.attcompression::text else '' end
                    || coalesce(' options=' || (select string_agg(o::text, ',' order by o::text) from unnest(a.attoptions) o), '')
                    || coalesce(' fdw options=' || (select string_agg(o::text, ',' order by o::text) from unnest(a.attfdwoptions) o), '')
                    -- A column both inherited and declared by the table itself
                    -- stays when the parent drops it; one only inherited goes
                    -- (partitions are left out: how pg_dump makes them sets
                    -- this apart from the table's behaviour).
                    || case when a.attinhcount > 0 and not c.relispartition
                            then ' inherited' || case when a.attislocal then ' and local' else '' end
                            else '' end
                    || coalesce(' acl=' || a.attacl::text, '')"
                .into(),
            format!(
                "from pg_attribute a
               join pg_class c on c.oid = a.attrelid
               join pg_namespace n on n.oid = c.relnamespace
               join pg_type ty on ty.oid = a.atttypid
               left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
               left join pg_collation co on co.oid = a.attcollation and a.attcollation <> 100
              where a.attnum > 0 and not a.attisdropped and c.relkind in ('r', 'p', 'v', 'm', 'f')
                and n.nspname not in {SKIPPED}"
            ),
            "r",
            "c.oid",
        ),
        part(
            "'relation ' || n.nspname || '.' || c.relname,
                    c.relkind::text || ' rls=' || c.relrowsecurity || ' force=' || c.relforcerowsecurity
                    || ' persistence=' || c.relpersistence::text
                    || coalesce(' options=' || (select string_agg(o::text, ',' order by o::text) from unnest(c.reloptions) o), '')
                    || coalesce(' toast options=' || (select string_agg(o::text, ',' order by o::text) from unnest(tc.reloptions) o), '')
                    || ' replica identity=' || c.relreplident::text
                    || coalesce(' access method=' || am.amname, '')
                    || coalesce(' of type=' || format_type(nullif(c.reloftype, 0), null), '')
                    || coalesce(' partition key=' || pg_get_partkeydef(c.oid), '')
                    || coalesce(' partition bound=' || pg_get_expr(c.relpartbound, c.oid), '')
                    || coalesce(' inherits=' || (select string_agg(i.inhparent::regclass::text, ',' order by i.inhseqno)
                                                    from pg_inherits i where i.inhrelid = c.oid), '')
                    -- No ACL means the owner's default one: a GRANT and its REVOKE
                    -- leave it written out, with the same rights.
                    || ' acl=' || coalesce(c.relacl, acldefault((case when c.relkind = 'S' then 's' else 'r' end)::\"char\", c.relowner))::text"
                .into(),
            format!(
                "from pg_class c join pg_namespace n on n.oid = c.relnamespace
               left join pg_class tc on tc.oid = c.reltoastrelid
               left join pg_am am on am.oid = c.relam and c.relkind in ('r', 'p', 'm')
              where c.relkind in ('r', 'p', 'v', 'm', 'f', 'S') and n.nspname not in {SKIPPED}"
            ),
            "r",
            "c.oid",
        ),
        part(
            "'constraint ' || n.nspname || '.' || c.relname || '.' || k.conname,
                    pg_get_constraintdef(k.oid, true)
                    || case when k.coninhcount > 0 and not c.relispartition
                            then ' inherited' || case when k.conislocal then ' and local' else '' end
                            else '' end"
                .into(),
            format!(
                "from pg_constraint k join pg_class c on c.oid = k.conrelid
               join pg_namespace n on n.oid = c.relnamespace
              where n.nspname not in {SKIPPED} and k.contype <> 'n'"
            ),
            "r",
            "k.conrelid",
        ),
        // From 18 a column's NOT NULL is also a constraint (contype 'n'),
        // named by whoever made it (`t_col_not_null`, or as pg_dump
        // restored it). The column above already says NOT NULL; the
        // constraint counts only where it says more (NOT VALID, NO
        // INHERIT), keyed by its column, never by its name.
        part(
            "'not null ' || n.nspname || '.' || c.relname || '.' || a.attname,
                    case when k.convalidated then '' else 'not valid ' end
                    || case when k.connoinherit then 'no inherit' else '' end"
                .into(),
            format!(
                "from pg_constraint k join pg_class c on c.oid = k.conrelid
               join pg_namespace n on n.oid = c.relnamespace
               join pg_attribute a on a.attrelid = k.conrelid and a.attnum = k.conkey[1]
              where n.nspname not in {SKIPPED} and k.contype = 'n'
                and (not k.convalidated or k.connoinherit)"
            ),
            "r",
            "k.conrelid",
        )
        .probe_some(on_some(
            "pg_constraint",
            "conrelid",
            " and contype = 'n' and (not convalidated or connoinherit)",
        )),
    ]
}

/// The parts about what hangs on a relation: indexes, triggers,
/// policies, and a view's query.
pub(super) fn relation_member_parts() -> Vec<Part> {
    vec![
        part(
            "'index ' || n.nspname || '.' || i.relname, pg_get_indexdef(i.oid)
                    || case when x.indisclustered then ' clustered' else '' end
                    || case when x.indisreplident then ' replica identity' else '' end
                    || coalesce(' statistics=' || (select string_agg(s.attnum || ':' || s.attstattarget, ',' order by s.attnum)
                                                     from pg_attribute s where s.attrelid = i.oid and s.attstattarget > 0), '')"
                .into(),
            format!(
                "from pg_index x cross join lateral ({INDEX_CLASS}) i
               join pg_namespace n on n.oid = i.relnamespace
              where n.nspname not in {SKIPPED}"
            ),
            "r",
            "x.indrelid",
        ),
        part(
            "'trigger ' || n.nspname || '.' || c.relname || '.' || t.tgname,
                    pg_get_triggerdef(t.oid, true) || ' enabled=' || t.tgenabled::text"
                .into(),
            format!(
                "from pg_trigger t join pg_class c on c.oid = t.tgrelid
               join pg_namespace n on n.oid = c.relnamespace
              where not t.tgisinternal and n.nspname not in {SKIPPED}"
            ),
            "r",
            "t.tgrelid",
        )
        .probe("exists (select 1 from pg_trigger where not tgisinternal)".into())
        .probe_some(on_some("pg_trigger", "tgrelid", " and not tgisinternal")),
        part(
            "'policy ' || p.schemaname || '.' || p.tablename || '.' || p.policyname,
                    p.permissive || ' ' || p.cmd || ' to ' || (select string_agg(o::text, ',' order by o::text) from unnest(p.roles) o)
                    || coalesce(' using ' || p.qual, '') || coalesce(' check ' || p.with_check, '')"
                .into(),
            format!(
                "from pg_policies p join pg_namespace n on n.nspname = p.schemaname
               join pg_class c on c.relnamespace = n.oid and c.relname = p.tablename
              where p.schemaname not in {SKIPPED}"
            ),
            "r",
            "c.oid",
        )
        .probe(any_row("pg_policy"))
        .probe_some(on_some("pg_policy", "polrelid", "")),
        // What pg_views says of a view (or materialized view), read from
        // pg_class for its OID.
        part(
            "'view ' || n.nspname || '.' || c.relname, pg_get_viewdef(c.oid)".into(),
            format!(
                "from pg_class c join pg_namespace n on n.oid = c.relnamespace
              where c.relkind in ('v', 'm') and n.nspname not in {SKIPPED}"
            ),
            "r",
            "c.oid",
        )
        .probe_some(on_some("pg_class", "oid", " and relkind in ('v', 'm')")),
    ]
}

/// Functions, types, extensions, schemas, and column order apart.
pub(super) fn other_parts() -> Vec<Part> {
    vec![
        part(
            "'function ' || n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',
                    case when p.prokind in ('f', 'p', 'w') then pg_get_functiondef(p.oid)
                         else (select 'aggregate ' || pg_get_function_result(p.oid) || ' kind=' || a.aggkind::text
                                      || ' state=' || a.aggtransfn::regproc::text || ' ' || format_type(a.aggtranstype, null)
                                      || ' final=' || a.aggfinalfn::regproc::text || ' combine=' || a.aggcombinefn::regproc::text
                                      || ' init=' || coalesce(a.agginitval, '-') || ' sort=' || a.aggsortop::regoperator::text
                                 from pg_aggregate a where a.aggfnoid = p.oid) end
                    -- No ACL means the owner's default one.
                    || ' acl=' || coalesce(p.proacl, acldefault('f', p.proowner))::text"
                .into(),
            format!(
                "from pg_proc p join pg_namespace n on n.oid = p.pronamespace
               left join pg_depend dep on dep.classid = 'pg_proc'::regclass and dep.objid = p.oid and dep.deptype = 'e'
              where n.nspname not in {SKIPPED} and dep.objid is null"
            ),
            "f",
            "p.oid",
        )
        .probe(user_made("pg_proc")),
        part(
            "'type ' || n.nspname || '.' || t.typname,
                    t.typtype::text || coalesce(' ' || (select string_agg(e.enumlabel, ',' order by e.enumsortorder)
                                                         from pg_enum e where e.enumtypid = t.oid), '')
                    || case t.typtype
                         when 'd' then ' ' || format_type(t.typbasetype, t.typtypmod)
                              || case when t.typnotnull then ' not null' else '' end
                              || coalesce(' default ' || t.typdefault, '')
                              || coalesce(' collate ' || nullif(t.typcollation, bt.typcollation)::regcollation::text, '')
                              || coalesce(' ' || (select string_agg(k.conname || ' ' || pg_get_constraintdef(k.oid), ', ' order by k.conname)
                                                    from pg_constraint k where k.contypid = t.oid and k.contype <> 'n'), '')
                         when 'c' then ' (' || (select string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
                                                                  || coalesce(' collate ' || nullif(a.attcollation, at.typcollation)::regcollation::text, ''),
                                                                  ', ' order by a.attnum)
                                                  from pg_attribute a join pg_type at on at.oid = a.atttypid
                                                 where a.attrelid = t.typrelid and a.attnum > 0 and not a.attisdropped) || ')'
                         when 'r' then (select ' ' || format_type(r.rngsubtype, null)
                                               || ' opclass=' || (select o.opcname from pg_opclass o where o.oid = r.rngsubopc)
                                               || coalesce(' collate ' || nullif(r.rngcollation, 0)::regcollation::text, '')
                                               || ' canonical=' || r.rngcanonical::regproc::text || ' diff=' || r.rngsubdiff::regproc::text
                                          from pg_range r where r.rngtypid = t.oid)
                         when 'b' then ' ' || t.typinput::regproc::text || ' ' || t.typoutput::regproc::text
                              || ' ' || t.typreceive::regproc::text || ' ' || t.typsend::regproc::text
                              || ' len=' || t.typlen || ' align=' || t.typalign::text || ' storage=' || t.typstorage::text
                         else '' end
                    -- No ACL means the owner's default one.
                    || ' acl=' || coalesce(t.typacl, acldefault('T', t.typowner))::text"
                .into(),
            format!(
                "from pg_type t join pg_namespace n on n.oid = t.typnamespace
               left join pg_type bt on bt.oid = t.typbasetype
              where t.typtype in ('e', 'd', 'r', 'c', 'b') and n.nspname not in {SKIPPED}
                and (t.typtype <> 'c' or (select c.relkind from pg_class c where c.oid = t.typrelid) = 'c')
                and {}",
                own("pg_type", "t.oid")
            ),
            "t",
            "t.oid",
        ),
        part("'extension ' || x.extname, x.extversion || ' schema=' || x.extnamespace::regnamespace::text".into(), "from pg_extension x where true".into(), "e", "x.oid"),
        part(
            "'schema ' || n.nspname, pg_get_userbyid(n.nspowner)::text
                    || ' acl=' || coalesce(n.nspacl, acldefault('n', n.nspowner))::text"
                .into(),
            format!(
                "from pg_namespace n
              where n.nspname not in {SKIPPED} and n.nspname not like 'pg_temp%' and n.nspname not like 'pg_toast_temp%'"
            ),
            "n",
            "n.oid",
        ),
        part(
            "'column order ' || n.nspname || '.' || c.relname, string_agg(a.attname, ', ' order by a.attnum)"
                .into(),
            format!(
                "from pg_attribute a join pg_class c on c.oid = a.attrelid
               join pg_namespace n on n.oid = c.relnamespace
              where a.attnum > 0 and not a.attisdropped and c.relkind in ('r', 'p', 'v', 'm', 'f')
                and n.nspname not in {SKIPPED}"
            ),
            "r",
            "c.oid",
        ),
    ]
}
