//! What changed, as the server's event triggers saw it: on a throwaway
//! copy (where Backstop is a superuser) two event triggers write every
//! object a DDL command made or altered (`ddl_command_end`) and every
//! object one dropped (`sql_drop`; a column dropped is a change of its
//! table) to `backstop.journal`, in the
//! command's own transaction, so a change undone is gone from the journal
//! too. A look then reads the journal's news and the owners of those
//! objects and of everything that depends on them, by index, instead of
//! listing every catalog of the picture.
//!
//! A `GRANT` or `REVOKE` is reported without its objects: one on tables
//! or sequences is journaled as the object `(0, 0)`, and the look then
//! finds the relations it changed by their rows' age (`pg_class` for the
//! table's privileges, `pg_attribute` for a column's).
//!
//! The journal does not see everything, and the look lists the catalogs
//! whole ([`super::Tracked`]'s listing) whenever it may have missed
//! something: a command it reports without an object (`GRANT` on anything
//! but tables and sequences, `ALTER DEFAULT PRIVILEGES`) or with an object
//! of a catalog it does not map (servers, casts, operators, a
//! publication's schemas, text search, extensions' members), an object dropped that the picture did not know, a role made
//! or changed (roles are the server's, not the database's), another
//! search_path, event triggers turned off, or statements the caller says
//! write the catalogs directly. Relations whose catalog row changed
//! without a command on them (a partition detached, a child's column
//! added by its parent's `ALTER TABLE`) are found by their row's age, as
//! the listing finds them.

use std::collections::{BTreeSet, HashSet};

use postgres::GenericClient;

use super::{Changes, Inventory, Row, Tracked};
use crate::pg::fingerprint::Owner;
use crate::pg::Prepared;

/// The catalogs whose objects the journal's look maps to their owner,
/// besides those of [`super::OF_RELATIONS`] (each a part of a relation).
/// A publication owns the tables it names: a platform's history adds
/// nearly every table it makes to one (Supabase's realtime), and each
/// such migration had the look list every catalog.
const MAPPED: &[&str] = &[
    "pg_class",
    "pg_type",
    "pg_proc",
    "pg_namespace",
    "pg_extension",
    "pg_constraint",
    "pg_publication",
    "pg_publication_rel",
];

fn mapped(catalog: &str) -> bool {
    MAPPED.contains(&catalog) || super::OF_RELATIONS.iter().any(|(c, _, _)| *c == catalog)
}

/// The event triggers and their table, out of every picture (`backstop`
/// is not a user's schema, and the pictures of event triggers leave these
/// names out). The functions run as the superuser who made them: a
/// migration that runs as another role (`SET ROLE`) is journaled too.
const INSTALL: &str = "
create schema if not exists backstop;
drop table if exists backstop.journal;
create unlogged table backstop.journal (
    classid oid, objid oid, dropped bool not null, part bool not null, rel oid,
    at xid8 not null default pg_current_xact_id());
create index if not exists journal_at on backstop.journal (at);
create or replace function backstop.journal_made() returns event_trigger
language plpgsql security definer set search_path = pg_catalog as $$
begin
  insert into backstop.journal (classid, objid, dropped, part)
  select coalesce(classid, g.grant_on), coalesce(objid, g.grant_on), false, false
    from pg_event_trigger_ddl_commands()
   cross join lateral (select case when command_tag in ('GRANT', 'REVOKE')
                                    and object_type in ('TABLE', 'SEQUENCE')
                               then 0::oid end as grant_on) g;
end $$;
create or replace function backstop.journal_dropped() returns event_trigger
language plpgsql security definer set search_path = pg_catalog as $$
begin
  insert into backstop.journal (classid, objid, dropped, part, rel)
  select classid, objid, objsubid = 0, objsubid = 0 and not original and not normal,
         case when object_type in ('default value', 'table constraint', 'trigger', 'policy', 'rule')
              then coalesce(to_regclass(format('%I.%I', address_names[1], address_names[2]))::oid, 0)
         end
    from pg_event_trigger_dropped_objects()
   where not is_temporary;
end $$;
create event trigger backstop_journal_made on ddl_command_end
  execute function backstop.journal_made();
create event trigger backstop_journal_dropped on sql_drop
  execute function backstop.journal_dropped();
alter event trigger backstop_journal_made enable always;
alter event trigger backstop_journal_dropped enable always;";

/// Turns the journal on in the database of `client`, outside any
/// transaction, where the session is a superuser (only they may make
/// event triggers): whether it is on (a superuser made it before, for a
/// session that works as another role: see `copies::runs_as`). Only
/// ever asked on a throwaway copy.
///
/// The copy's statistics of its schemas and relations are taken then: a
/// restored copy keeps those of its empty template (4 schemas), and the
/// generic plan of every look built on them scanned `pg_class` once per
/// schema, which made a look three times as long.
pub fn install(client: &mut impl GenericClient) -> Result<bool, postgres::Error> {
    let row = client.query_one(
        "select rolsuper, exists (select 1 from pg_event_trigger
                                   where evtname = 'backstop_journal_made')
           from pg_roles where rolname = current_user",
        &[],
    )?;
    let (superuser, installed): (bool, bool) = (row.get(0), row.get(1));
    if superuser && !installed {
        client.batch_execute(INSTALL)?;
        client.batch_execute("ANALYZE pg_catalog.pg_namespace, pg_catalog.pg_class")?;
    }
    Ok(superuser || installed)
}

/// Takes the journal's event triggers away (the table stays, in
/// Backstop's own schema): a copy kept for later, or dumped, carries no
/// trigger that calls a function of a schema its dump leaves out. A
/// session working as another role goes back to the superuser it is.
pub fn remove(client: &mut impl GenericClient) -> Result<(), postgres::Error> {
    client.batch_execute(
        "reset role;
         drop event trigger if exists backstop_journal_made;
         drop event trigger if exists backstop_journal_dropped;",
    )
}

impl Tracked {
    /// The changes since the picture was read, from the journal; `None`
    /// where it may have missed one (see the module's notes), for the
    /// listing to find them.
    pub(super) fn journaled(
        &self,
        client: &mut impl GenericClient,
        prepared: &mut Prepared,
    ) -> Result<Option<Changes>, postgres::Error> {
        let statement = prepared.get(client, &NEWS)?;
        let rows =
            client.query(&statement, &[&super::xid32(self.since), &self.since.to_string()])?;
        let mut inventory = Inventory { roles: BTreeSet::new(), ..self.inventory.clone() };
        let mut owners = BTreeSet::new();
        let (mut made, mut dropped) = (HashSet::new(), Vec::new());
        let (mut search_path, mut horizon, mut stamp, mut local) = (None, None, None, None);
        let mut whole = false;
        let mut triggers = 0;
        for r in &rows {
            let tag: &str = r.get(0);
            let (classid, objid): (Option<u32>, Option<u32>) = (r.get(1), r.get(2));
            let text: Option<String> = r.get(5);
            match tag {
                // A grant on tables or sequences: what it changed is
                // found by age (see [`NEWS`]).
                "made" if classid == Some(0) && objid == Some(0) => {}
                "made" | "dropped" => {
                    let (Some(classid), Some(objid)) = (classid, objid) else {
                        return Ok(None);
                    };
                    let catalog: Option<String> = r.get(3);
                    if !catalog.is_some_and(|c| mapped(&c)) {
                        return Ok(None);
                    }
                    if tag == "made" {
                        made.insert((classid, objid));
                    } else {
                        let part = r.get::<_, Option<bool>>(4) == Some(true);
                        dropped.push(((classid, objid), part, r.get::<_, Option<u32>>(6)));
                    }
                }
                "owned" => {
                    let row: Row = (classid.unwrap_or(0), objid.unwrap_or(0));
                    let (kind, owner): (Option<String>, Option<u32>) = (r.get(3), r.get(6));
                    match (kind, owner) {
                        (Some(kind), Some(owner)) => {
                            let o = super::owner_of(&kind, owner);
                            if kind == "rt" {
                                inventory.tables.insert(owner);
                            }
                            inventory.rows.insert(row, o);
                            owners.insert(o);
                        }
                        // A catalog the journal does not map: its owner as
                        // the last listing found it.
                        _ => owners.extend(self.inventory.rows.get(&row).copied()),
                    }
                }
                "role" => {
                    inventory.roles.insert((objid.unwrap_or(0), text.unwrap_or_default()));
                }
                // No event trigger fires for commands on event triggers.
                "event trigger" => {
                    let row = (PG_EVENT_TRIGGER, objid.unwrap_or(0));
                    if r.get::<_, Option<bool>>(4) == Some(true)
                        || !inventory.rows.contains_key(&row)
                    {
                        return Ok(None);
                    }
                    triggers += 1;
                }
                "path" => search_path = text,
                "since" => horizon = Some(super::full_xid(text)),
                "stamp" => stamp = text,
                "local" => local = text,
                "on" => {
                    if text.as_deref() != Some("on") {
                        return Ok(None);
                    }
                }
                _ => return Ok(None),
            }
        }
        for (row, part, relation) in dropped {
            match inventory.rows.remove(&row) {
                Some(o) => {
                    owners.insert(o);
                    if row.0 == PG_CLASS {
                        inventory.tables.remove(&row.1);
                    }
                }
                // A part of an object dropped with it (its row type, its
                // indexes), or an object made since and gone again.
                None if part || made.contains(&row) => {}
                // A default, constraint, trigger, policy or rule the
                // picture did not list: its table's, whose own drop is in
                // the journal when it went too (`0`).
                None => match relation {
                    Some(0) => {}
                    Some(table) => {
                        owners.insert(Owner::Relation(table));
                    }
                    None => return Ok(None),
                },
            }
        }
        let (Some(search_path), Some(horizon)) = (search_path, horizon) else {
            return Ok(None);
        };
        if triggers != inventory.rows.keys().filter(|(c, _)| *c == PG_EVENT_TRIGGER).count() {
            return Ok(None);
        }
        whole |= inventory.roles != self.inventory.roles || search_path != self.search_path;
        Ok(Some(Changes { inventory, owners, whole, horizon, stamp, local }))
    }
}

/// [`super::STAMP`] for this database alone, where the journal is on:
/// `NULL` inside a transaction that wrote, else the newest journal entry,
/// the search_path, the roles (each OID and name), the event triggers
/// (each row's OID and the transaction that wrote it) and whether event
/// triggers fire. Every command that changes what a look reads here is
/// journaled in its own transaction, whose ID is newer than any before
/// it, and a look reads nothing else the journal does not hold but roles
/// and event triggers; while two readings are equal, a look would find
/// nothing new (but rows written to the catalogs directly, which the
/// caller says, and commands of two sessions at once in the copy, which
/// no rehearsal runs).
pub(super) const LOCAL_STAMP: &str = "
select case when pg_current_xact_id_if_assigned() is null
  then (select coalesce(max(at)::text, '-') from backstop.journal)
       || ' ' || current_setting('search_path')
       || ' ' || coalesce(current_setting('event_triggers', true), 'on')
       || ' ' || (select string_agg(oid::text || ':' || rolname, ',' order by oid) from pg_roles)
       || ' ' || coalesce((select string_agg(oid::text || ':' || xmin::text || evtenabled::text, ',' order by oid)
                             from pg_event_trigger), '')
  end";

/// `pg_class`'s and `pg_event_trigger`'s OIDs, which never change.
const PG_CLASS: u32 = 1259;
const PG_EVENT_TRIGGER: u32 = 3466;

/// The journal's news since `$2` (the picture's horizon, a full
/// transaction ID; `$1` its low 32 bits, as catalog rows' `xmin` holds
/// them), each row `(tag, classid, objid, text,
/// flag, text, owner)`: `made` and `dropped` rows as the journal holds
/// them (with their catalog's name, whether a dropped one was a part of
/// another, and the table of a dropped default, constraint, trigger,
/// policy or rule: `0` when it went too); `owned`, every object those made and the relations whose
/// row is newer than `$1` are or that depends on them, with its owner's
/// kind and OID where the catalog is mapped (`rt` a table); `role`, each
/// with its name; `event trigger`, each with whether it changed; then the
/// session's search_path, the next horizon, the stamp, and `on`, whether
/// the event triggers fire.
static NEWS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let of_relations: String = super::OF_RELATIONS
        .iter()
        .map(|(catalog, rel, held)| {
            format!(
                "
union all
select 'r', o.{rel} from {catalog} o join pg_class c on c.oid = o.{rel}
 where ch.classid = '{catalog}'::regclass and o.oid = ch.objid and c.relnamespace in (select oid from users){held}"
            )
        })
        .collect();
    super::with_parts(&format!(
        "
with recursive f as (select $1::text::xid as x), {{USERS}},
j as (select classid, objid, dropped, part, rel from backstop.journal where at >= $2::text::xid8),
seed(classid, objid) as materialized (
    select classid, objid from j where not dropped and classid is not null and classid <> 0
  union
    select 'pg_class'::regclass::oid, c.oid from pg_class c cross join f
     where age(c.xmin) <= age(f.x) and c.relnamespace in (select oid from users)
  union
    -- A column's privileges granted (the journal's (0, 0)): its row's age.
    select 'pg_class'::regclass::oid, a.attrelid from pg_attribute a cross join f
     where exists (select 1 from j where j.classid = 0 and j.objid = 0)
       and age(a.xmin) <= age(f.x) and a.attnum > 0
       and a.attrelid in (select c.oid from pg_class c where c.relnamespace in (select oid from users))
),
-- The seed passed through arrays: the planner sizes the recursion's hash
-- table from its guess of the seed's rows (ten times more for each step),
-- and a guess of hundreds made every look zero megabytes of memory.
changed(classid, objid) as (
    select * from unnest(array(select classid from seed order by classid, objid),
                         array(select objid from seed order by classid, objid))
  union
    select d.classid, d.objid
      from changed c cross join lateral (
           select d.classid, d.objid from pg_depend d
            where d.refclassid = c.classid and d.refobjid = c.objid offset 0) d
)
select case when j.dropped then 'dropped' else 'made' end, j.classid, j.objid,
       j.classid::regclass::text, j.part, null::text, j.rel
  from j
union all
select 'owned', ch.classid, ch.objid, o.kind, null, null, o.owner
  from changed ch left join lateral ({OWNER}) o(kind, owner) on true
union all
select 'role', null, a.oid, null, false, a.rolname::text, null
  from pg_roles a
union all
select 'event trigger', null, e.oid, null, age(e.xmin) <= age(f.x), null, null
  from pg_event_trigger e cross join f where e.evtname not like 'backstop\\_journal%'
union all
select 'path', null, null, null, null, current_setting('search_path'), null
union all
select 'since', null, null, null, null, pg_snapshot_xmin(pg_current_snapshot())::text, null
union all
select 'stamp', null, null, null, null, ({{STAMP}}), null
union all
select 'local', null, null, null, null, ({LOCAL_STAMP}), null
union all
select 'on', null, null, null, null,
       case when coalesce(current_setting('event_triggers', true), 'on') = 'on'
             and (select count(*) from pg_event_trigger
                   where evtname like 'backstop\\_journal%' and evtenabled = 'A') = 2
            then 'on' end, null",
        OWNER = OWNER.replace("{OF_RELATIONS}", &of_relations)
    ))
});

/// The owner of the object `(ch.classid, ch.objid)`, as the listing
/// names it (`r` a relation, `rt` a table, `t` a type, `f` a function,
/// `n` a schema, `e` an extension, a publication's catalog OID for a
/// publication and the tables it names); no row where it is not in a
/// user's schema, or of a catalog not mapped. `{OF_RELATIONS}` stands for the
/// parts of relations, one per catalog of [`super::OF_RELATIONS`].
const OWNER: &str = "
select {CLASS_OWNER}
  from pg_class c left join pg_index x on x.indexrelid = c.oid
 where ch.classid = 'pg_class'::regclass and c.oid = ch.objid and c.relnamespace in (select oid from users)
union all
select {CONSTRAINT_OWNER}
  from pg_constraint k
 where ch.classid = 'pg_constraint'::regclass and k.oid = ch.objid and k.connamespace in (select oid from users){OF_RELATIONS}
union all
select 'f', p.oid from pg_proc p
 where ch.classid = 'pg_proc'::regclass and p.oid = ch.objid and p.pronamespace in (select oid from users)
union all
select {TYPE_OWNER}
  from pg_type t
 where ch.classid = 'pg_type'::regclass and t.oid = ch.objid and t.typnamespace in (select oid from users)
union all
select 'n', n.oid from pg_namespace n
 where ch.classid = 'pg_namespace'::regclass and n.oid = ch.objid and n.oid in (select oid from users)
union all
select 'e', e.oid from pg_extension e where ch.classid = 'pg_extension'::regclass and e.oid = ch.objid
union all
select 'pg_publication'::regclass::oid::text, p.oid from pg_publication p
 where ch.classid = 'pg_publication'::regclass and p.oid = ch.objid
union all
select 'pg_publication'::regclass::oid::text, r.prpubid from pg_publication_rel r
 where ch.classid = 'pg_publication_rel'::regclass and r.oid = ch.objid";
