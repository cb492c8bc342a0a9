//! Comments (`COMMENT ON`, `pg_description`) in the schema picture: on
//! relations and indexes, columns, a table's constraints, triggers,
//! policies and rules, functions, types and schemas. A comment changes no
//! behaviour, so the picture holds it apart, as cosmetic: it is outside
//! the fingerprint (which keys stored proofs and backups), and a comment
//! lost, changed or added is a named cosmetic difference, never an error
//! and never silence.
//!
//! Each comment's key is `comment on ` and the key of the object it is
//! on (`comment on column public.t.c`), so that a comment is compared
//! only where its object is on both sides (an object gone is already a
//! difference).

use super::parts::{on_some, own, part, Part, INDEX_CLASS, SKIPPED};

/// How every comment's key starts.
pub const PREFIX: &str = "comment on ";

/// The probe for some relations of the comments on them and their columns.
fn on_some_relation() -> String {
    on_some("pg_description", "objoid", " and classoid = 'pg_class'::regclass")
}

/// The parts of the picture's query that read comments; each says whose
/// object the comment is on, as the part of that object does.
pub(super) fn comment_parts() -> Vec<Part> {
    let mut parts = relation_comment_parts();
    parts.extend(other_comment_parts());
    parts
}

/// Comments on relations, their indexes and their columns.
fn relation_comment_parts() -> Vec<Part> {
    vec![
        // Relations and indexes apart, each read from its own catalog row
        // and the comment found by its index: read for some owners only
        // (`pg::tracked`), one part keyed by either went through every
        // comment of the database, initdb's thousands included.
        part(
            format!("'{PREFIX}relation ' || n.nspname || '.' || c.relname, d.description"),
            format!(
                "from pg_class c join pg_namespace n on n.oid = c.relnamespace
               join pg_description d on d.objoid = c.oid and d.classoid = 'pg_class'::regclass
                                    and d.objsubid = 0
              where c.relkind in ('r', 'p', 'v', 'm', 'f', 'S') and n.nspname not in {SKIPPED}"
            ),
            "r",
            "c.oid",
        )
        .probe(on_made(&["pg_class"]))
        .probe_some(on_some_relation()),
        part(
            format!("'{PREFIX}index ' || n.nspname || '.' || i.relname, d.description"),
            format!(
                "from pg_index x cross join lateral ({INDEX_CLASS}) i
               join pg_namespace n on n.oid = i.relnamespace
               join pg_description d on d.objoid = i.oid and d.classoid = 'pg_class'::regclass
                                    and d.objsubid = 0
              where n.nspname not in {SKIPPED}"
            ),
            "r",
            "x.indrelid",
        )
        .probe(on_made(&["pg_class"]))
        .probe_some(
            "exists (select 1 from pg_index x join pg_description d on d.objoid = x.indexrelid
                      and d.classoid = 'pg_class'::regclass where x.indrelid = any($1::oid[]))"
                .into(),
        ),
        part(
            format!(
                "'{PREFIX}column ' || n.nspname || '.' || c.relname || '.' || a.attname, d.description"
            ),
            format!(
                "from pg_description d join pg_class c on c.oid = d.objoid
               join pg_namespace n on n.oid = c.relnamespace
               join pg_attribute a on a.attrelid = c.oid and a.attnum = d.objsubid
              where d.classoid = 'pg_class'::regclass and d.objsubid > 0 and not a.attisdropped
                and c.relkind in ('r', 'p', 'v', 'm', 'f') and n.nspname not in {SKIPPED}"
            ),
            "r",
            "c.oid",
        )
        .probe(on_made(&["pg_class"]))
        .probe_some(on_some_relation()),
    ]
}

/// Comments on what hangs on a table, on functions, types and schemas.
fn other_comment_parts() -> Vec<Part> {
    vec![
        // What hangs on a table, keyed as the picture keys it.
        part(
            format!(
                "'{PREFIX}' || m.kind || ' ' || n.nspname || '.' || c.relname || '.' || m.name, d.description"
            ),
            format!(
                "from pg_description d
               join (select 'pg_constraint'::regclass::oid, oid, conrelid, 'constraint', conname from pg_constraint
                      where conrelid <> 0 and contype <> 'n'
                     union all
                     select 'pg_trigger'::regclass::oid, oid, tgrelid, 'trigger', tgname from pg_trigger
                      where not tgisinternal
                     union all
                     select 'pg_policy'::regclass::oid, oid, polrelid, 'policy', polname from pg_policy
                     union all
                     select 'pg_rewrite'::regclass::oid, oid, ev_class, 'rule', rulename from pg_rewrite
                      where rulename <> '_RETURN') m(class, oid, rel, kind, name)
                 on m.class = d.classoid and m.oid = d.objoid
               join pg_class c on c.oid = m.rel
               join pg_namespace n on n.oid = c.relnamespace
              where n.nspname not in {SKIPPED}"
            ),
            "r",
            "c.oid",
        )
        .probe(on_made(&["pg_constraint", "pg_trigger", "pg_policy", "pg_rewrite"]))
        // Any such comment in the database, not only on these relations:
        // one catalog to test, and such comments are few where any.
        .probe_some(on_made(&["pg_constraint", "pg_trigger", "pg_policy", "pg_rewrite"])),
        part(
            format!(
                "'{PREFIX}function ' || n.nspname || '.' || p.proname
                    || '(' || pg_get_function_identity_arguments(p.oid) || ')', d.description"
            ),
            format!(
                "from pg_description d join pg_proc p on p.oid = d.objoid
               join pg_namespace n on n.oid = p.pronamespace
              where d.classoid = 'pg_proc'::regclass and n.nspname not in {SKIPPED}
                and not exists (select 1 from pg_depend x where x.classid = 'pg_proc'::regclass
                                   and x.objid = p.oid and x.deptype = 'e')"
            ),
            "f",
            "p.oid",
        )
        .probe(on_made(&["pg_proc"])),
        part(
            format!("'{PREFIX}type ' || n.nspname || '.' || t.typname, d.description"),
            format!(
                "from pg_description d join pg_type t on t.oid = d.objoid
               join pg_namespace n on n.oid = t.typnamespace
              where d.classoid = 'pg_type'::regclass and t.typtype in ('e', 'd', 'r', 'c', 'b')
                and n.nspname not in {SKIPPED}
                and (t.typtype <> 'c' or (select c.relkind from pg_class c where c.oid = t.typrelid) = 'c')
                and {}",
                own("pg_type", "t.oid")
            ),
            "t",
            "t.oid",
        )
        .probe(on_made(&["pg_type"])),
        part(
            format!("'{PREFIX}schema ' || n.nspname, d.description"),
            format!(
                "from pg_description d join pg_namespace n on n.oid = d.objoid
              where d.classoid = 'pg_namespace'::regclass and n.nspname not in {SKIPPED}
                and n.nspname not like 'pg_temp%' and n.nspname not like 'pg_toast_temp%'"
            ),
            "n",
            "n.oid",
        ),
    ]
}

/// The probe of the comments on objects of `catalogs` (see
/// `parts::user_made`): the commented objects are a user's, so their OIDs
/// are at least 16384. Comments on schemas have none: `public` is initdb's.
fn on_made(catalogs: &[&str]) -> String {
    let classes: Vec<String> = catalogs.iter().map(|c| format!("'{c}'::regclass")).collect();
    format!(
        "exists (select 1 from pg_description where objoid >= 16384 and classoid in ({}))",
        classes.join(", ")
    )
}

/// The comments for `pg::tracked`'s inventory (see its query for the
/// columns): every comment on an object a user made (or on a schema,
/// `public`'s included), with the owner of
/// the object it is on, as the parts above name it; each by a stable
/// number made of what it is on (a comment has no OID of its own), so
/// that a comment removed is found.
pub(super) const INVENTORY: &str = "
union all
select 'pg_description'::regclass::oid,
       (hashtext(d.classoid || ':' || d.objoid || ':' || d.objsubid)::bigint & 4294967295)::oid,
       o.kind, o.owner, age(d.xmin) <= age(f.x), true, null
  from pg_description d cross join fresh_since f
  join lateral (
        select 'r', coalesce(x.indrelid, c.oid) from pg_class c left join pg_index x on x.indexrelid = c.oid
         where d.classoid = 'pg_class'::regclass and c.oid = d.objoid
        union all
        select case when k.conrelid <> 0 then 'r' else 't' end,
               case when k.conrelid <> 0 then k.conrelid else k.contypid end
          from pg_constraint k where d.classoid = 'pg_constraint'::regclass and k.oid = d.objoid
        union all
        select 'r', t.tgrelid from pg_trigger t where d.classoid = 'pg_trigger'::regclass and t.oid = d.objoid
        union all
        select 'r', p.polrelid from pg_policy p where d.classoid = 'pg_policy'::regclass and p.oid = d.objoid
        union all
        select 'r', r.ev_class from pg_rewrite r where d.classoid = 'pg_rewrite'::regclass and r.oid = d.objoid
        union all
        select 'f', d.objoid where d.classoid = 'pg_proc'::regclass
        union all
        select 't', d.objoid where d.classoid = 'pg_type'::regclass
        union all
        select 'n', d.objoid where d.classoid = 'pg_namespace'::regclass
       ) o(kind, owner) on true
 where d.objoid >= 16384 or d.classoid = 'pg_namespace'::regclass";
