//! A picture of a database (its schema and every table's content) kept
//! current by re-reading only what changed, so that a run which reads the
//! picture after every migration costs what the migrations touch, not the
//! size of the schema times their number.
//!
//! What changed is found in the catalogs themselves. Every catalog row a
//! statement writes gets a new `xmin`, the transaction that wrote it: a
//! row whose `xmin` is newer than the snapshot the picture was read at was
//! written since, whatever statement wrote it (`DO` blocks, dynamic SQL and
//! functions included). Rows gone since are found by listing the catalogs'
//! row OIDs. Each changed row is mapped to the object of the picture it
//! belongs to (a constraint to its table, a rewrite rule to its view) and
//! so is everything that depends on it in `pg_depend`, transitively: a
//! table renamed changes the text of the views and foreign keys that name
//! it. A change no dependency records (a role renamed, another
//! `search_path`) reads the whole picture again.
//!
//! Content: a table's checksum is taken again when its relation changed
//! or when the caller says rows of it were written (rehearsals know it
//! from the locks each statement took: no row is written without at least
//! a `RowExclusiveLock`).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use postgres::GenericClient;

use super::checksum::{table_checksums_of, TableChecksum};
use super::fingerprint::{read_owned, Object, Owned, Owner, Owners, Schema};
use super::Prepared;

mod journal;
pub use journal::{install as install_journal, remove as remove_journal};

/// The tables whose rows were written since the picture was read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Written {
    /// Those relations (OIDs); the set may hold more than tables.
    #[default]
    None,
    Some(BTreeSet<u32>),
    /// Unknown (statements ran outside a traced transaction): all of them.
    All,
}

impl Written {
    /// The relations the open transaction of `client` holds a lock on that
    /// lets it write rows: no row is written without one.
    pub fn here(client: &mut impl GenericClient) -> Result<Written, postgres::Error> {
        let rows = client.query_typed(
            "select distinct relation from pg_locks
              where pid = pg_backend_pid() and locktype = 'relation' and granted
                and relation is not null and mode not in ('AccessShareLock', 'RowShareLock')",
            &[],
        )?;
        Ok(Written::Some(rows.iter().map(|r| r.get::<_, u32>(0)).collect()))
    }

    /// Both sets of writes together.
    pub fn and(self, other: Written) -> Written {
        match (self, other) {
            (Written::All, _) | (_, Written::All) => Written::All,
            (Written::None, w) | (w, Written::None) => w,
            (Written::Some(mut a), Written::Some(b)) => {
                a.extend(b);
                Written::Some(a)
            }
        }
    }

    fn contains(&self, oid: u32) -> bool {
        match self {
            Written::None => false,
            Written::Some(set) => set.contains(&oid),
            Written::All => true,
        }
    }
}

/// A part of the picture: the objects of some owners and the content of
/// some tables. Two parts over the same owners and tables compare as two
/// whole pictures would: everything else is the same in both.
#[derive(Debug, Clone)]
pub struct Part {
    pub schema: Schema,
    pub tables: Vec<TableChecksum>,
}

/// Tables' contents with their OIDs.
type Checksums = Vec<(u32, TableChecksum)>;

/// What a look read of the database, before the picture takes it in.
enum Seen {
    /// Everything, read again.
    Whole(Box<Tracked>),
    Changed(Box<Read>),
}

/// The objects of the owners that changed and the tables that may have
/// (those `written` among them), as they are now.
struct Read {
    changes: Changes,
    written: Written,
    objects: Vec<Owned>,
    tables: Checksums,
}

/// What a look saw, for [`Tracked::adopt`].
pub struct Kept(Seen);

/// A catalog row: the catalog's OID and the row's.
type Row = (u32, u32);

/// The catalogs' rows that make up the picture, each with its owner.
#[derive(Debug, Clone, Default)]
struct Inventory {
    rows: HashMap<Row, Owner>,
    /// Relations that are tables (their content is checksummed).
    tables: BTreeSet<u32>,
    /// Each role's OID and name: a role made, dropped or renamed changes
    /// the set (its name is in privileges, policies and owners; its
    /// attributes are in no definition). Read from `pg_roles`, not from
    /// `pg_authid`, which only a superuser may read: a platform's owner
    /// rehearses on a copy beside its database.
    roles: BTreeSet<(u32, String)>,
}

/// What a look at the catalogs found since the picture was read.
struct Changes {
    inventory: Inventory,
    owners: BTreeSet<Owner>,
    /// A change no dependency records: read everything again.
    whole: bool,
    /// Where the next look starts: see [`Listing::horizon`].
    horizon: u64,
    stamp: Option<String>,
    /// See [`journal::LOCAL_STAMP`]; only from the journal's look.
    local: Option<String>,
}

/// The picture of one database, kept current by [`Tracked::refresh`].
#[derive(Debug, Clone)]
pub struct Tracked {
    /// The oldest transaction still running when the picture was read
    /// (a full transaction ID): catalog rows written by it or later are
    /// news. Catalog rows carry its low 32 bits ([`xid32`]), the
    /// journal's rows the whole.
    since: u64,
    search_path: String,
    inventory: Inventory,
    objects: BTreeMap<Owner, Vec<Owned>>,
    tables: BTreeMap<u32, TableChecksum>,
    /// Rows written since the picture was read, as the caller said.
    written: Written,
    /// What [`STAMP`] said when the picture was read: while it says the
    /// same, nothing was written since.
    stamp: Option<String>,
    /// What [`journal::LOCAL_STAMP`] said when the journal's look read the
    /// picture: the same test for this database alone.
    local: Option<String>,
    /// Whether changes are read from the journal (`journal`) first.
    journal: bool,
    /// Whether statements may have written the catalogs directly since
    /// the picture was read: the next look lists them whole.
    listed_next: bool,
    /// How long reading the database took, the first read and every look
    /// and refresh since: what a proof's comparisons cost (see
    /// [`Tracked::reading`]).
    reading: std::cell::Cell<std::time::Duration>,
}

impl Tracked {
    /// Reads the whole picture.
    pub fn read(
        client: &mut impl GenericClient,
        prepared: &mut Prepared,
    ) -> Result<Tracked, postgres::Error> {
        let started = std::time::Instant::now();
        let tracked = prepared.generic(client, Tracked::read_now)?;
        tracked.reading.set(started.elapsed());
        Ok(tracked)
    }

    /// How long reading the database has taken this picture so far: the
    /// whole read, then each look and refresh (a proof reads the part of
    /// the schema its up touched after the up and after the down).
    pub fn reading(&self) -> std::time::Duration {
        self.reading.get()
    }

    fn read_now(
        client: &mut impl GenericClient,
        prepared: &mut Prepared,
    ) -> Result<Tracked, postgres::Error> {
        // Frozen: which rows are news does not matter to a whole read.
        let now = listing(client, prepared, 2)?;
        let mut tracked = Tracked {
            since: now.horizon,
            search_path: now.search_path,
            inventory: now.inventory,
            objects: BTreeMap::new(),
            tables: BTreeMap::new(),
            written: Written::None,
            stamp: now.stamp,
            local: None,
            journal: false,
            listed_next: false,
            reading: Default::default(),
        };
        tracked.replace(read_owned(client, prepared, None)?, None);
        let all: Vec<u32> = tracked.inventory.tables.iter().copied().collect();
        tracked.tables = table_checksums_of(client, prepared, &all)?.into_iter().collect();
        Ok(tracked)
    }

    /// Reads the whole picture of a throwaway copy, with the server's
    /// event triggers noting what each command changes from then on
    /// where the session may make them (see `journal`): a look then reads
    /// those objects instead of listing every catalog. Never on a
    /// database that is not a copy: the triggers stay in it (until
    /// [`remove_journal`]).
    pub fn read_journaled(
        client: &mut impl GenericClient,
        prepared: &mut Prepared,
    ) -> Result<Tracked, postgres::Error> {
        let on = journal::install(client)?;
        let mut tracked = Tracked::read(client, prepared)?;
        tracked.journal = on;
        Ok(tracked)
    }

    /// Says that statements which may write the catalogs directly
    /// (`UPDATE pg_attribute …`) run before the next refresh: no event
    /// trigger sees those, so looks until then list the catalogs whole.
    pub fn catalogs_written(&mut self) {
        self.listed_next = true;
    }

    /// The whole picture.
    pub fn schema(&self) -> Schema {
        Schema::of(self.objects.values().flatten().cloned())
    }

    /// The objects of [`Tracked::schema`] that are not cosmetic, in its
    /// order, without a copy of each: what a fingerprint reads.
    pub fn objects(&self) -> Vec<&Object> {
        let mut objects: Vec<&Object> =
            self.objects.values().flatten().filter(|o| !o.cosmetic).map(|o| &o.object).collect();
        objects.sort_unstable();
        objects
    }

    /// The cosmetic objects of [`Tracked::schema`] (column order,
    /// comments), in its order: what a record keeps apart.
    pub fn cosmetic(&self) -> Vec<&Object> {
        let mut objects: Vec<&Object> =
            self.objects.values().flatten().filter(|o| o.cosmetic).map(|o| &o.object).collect();
        objects.sort_unstable();
        objects
    }

    /// Every table's content, in name order.
    pub fn tables(&self) -> Vec<TableChecksum> {
        let mut tables: Vec<TableChecksum> = self.tables.values().cloned().collect();
        tables.sort_by(|a, b| a.table.cmp(&b.table));
        tables
    }

    /// Notes rows written since the picture was read (by statements that
    /// committed), for the next [`Tracked::refresh`] or look.
    pub fn wrote(&mut self, written: Written) {
        self.written = std::mem::take(&mut self.written).and(written);
    }

    /// Brings the picture up to the database's state now.
    pub fn refresh(
        &mut self,
        client: &mut impl GenericClient,
        prepared: &mut Prepared,
    ) -> Result<(), postgres::Error> {
        if self.written == Written::None {
            // Another database's transactions move the server's stamp (a
            // rehearsal's second copy works beside this one); with the
            // journal on, this database's own says whether anything here
            // changed, unless statements wrote the catalogs directly.
            let local = self.local.as_ref().filter(|_| self.journal && !self.listed_next);
            let (sql, stamp) = match local {
                Some(local) => (journal::LOCAL_STAMP, Some(local)),
                None => (STAMP, self.stamp.as_ref()),
            };
            if let Some(stamp) = stamp {
                let statement = prepared.get(client, sql)?;
                let now: Option<String> = client.query_one(&statement, &[])?.get(0);
                if now.as_ref() == Some(stamp) {
                    return Ok(());
                }
            }
        }
        prepared.generic(client, |client, prepared| self.refreshed(client, prepared))
    }

    fn refreshed(
        &mut self,
        client: &mut impl GenericClient,
        prepared: &mut Prepared,
    ) -> Result<(), postgres::Error> {
        let seen = self.seen(client, prepared, Written::None)?;
        self.take(seen);
        Ok(())
    }

    /// What differs from the database now, read but not yet taken in.
    fn seen(
        &self,
        client: &mut impl GenericClient,
        prepared: &mut Prepared,
        written: Written,
    ) -> Result<Seen, postgres::Error> {
        let started = std::time::Instant::now();
        let seen = self.seen_now(client, prepared, written);
        self.reading.set(self.reading.get() + started.elapsed());
        seen
    }

    fn seen_now(
        &self,
        client: &mut impl GenericClient,
        prepared: &mut Prepared,
        written: Written,
    ) -> Result<Seen, postgres::Error> {
        let changes = self.changes(client, prepared)?;
        let written = self.written.clone().and(written);
        if changes.whole {
            return Ok(Seen::Whole(Box::new(Tracked::read(client, prepared)?)));
        }
        let (objects, tables) =
            self.read_changed(client, prepared, &changes.owners, &changes.inventory, &written)?;
        Ok(Seen::Changed(Box::new(Read { changes, written, objects, tables })))
    }

    /// Takes what was seen in as the picture.
    fn take(&mut self, seen: Seen) {
        let Read { changes, written, objects, tables } = match seen {
            Seen::Whole(now) => {
                let (journal, reading) = (self.journal, self.reading.get());
                *self = *now;
                self.journal = journal;
                self.reading.set(reading);
                return;
            }
            Seen::Changed(read) => *read,
        };
        self.replace(objects, Some(&changes.owners));
        for oid in tables_of(&changes.owners, &self.inventory, &written) {
            self.tables.remove(&oid);
        }
        self.tables.extend(tables);
        self.inventory = changes.inventory;
        self.since = changes.horizon;
        self.stamp = changes.stamp;
        self.local = changes.local;
        self.listed_next = false;
        self.written = Written::None;
    }

    /// Takes in what the look of `kept` saw, once the transaction it was
    /// made in has committed with nothing changed after the look (a
    /// savepoint taken back to it): the picture is then current without
    /// reading it again. The next refresh starts from the look's horizon,
    /// so it reads again whatever that transaction changed unless this
    /// database's stamp, read now, says nothing changed since.
    pub fn adopt(
        &mut self,
        client: &mut impl GenericClient,
        prepared: &mut Prepared,
        kept: Kept,
    ) -> Result<(), postgres::Error> {
        self.take(kept.0);
        self.stamp = None;
        self.local = None;
        if self.journal {
            let statement = prepared.get(client, journal::LOCAL_STAMP)?;
            self.local = client.query_one(&statement, &[])?.get(0);
        }
        Ok(())
    }

    /// What differs between the picture and the database now (in the
    /// caller's transaction, which may be undone afterwards), with
    /// `written` (rows written since, on top of those [`Tracked::wrote`]
    /// noted): the part of the picture that may differ, as read before and
    /// as it is now. The picture itself stays as it was.
    pub fn look(
        &self,
        client: &mut impl GenericClient,
        prepared: &mut Prepared,
        written: Written,
    ) -> Result<(Part, Part), postgres::Error> {
        prepared.generic(client, |client, prepared| self.looked(client, prepared, written))
    }

    /// [`Tracked::look`], with what it saw kept for [`Tracked::adopt`].
    pub fn look_kept(
        &self,
        client: &mut impl GenericClient,
        prepared: &mut Prepared,
        written: Written,
    ) -> Result<(Part, Part, Kept), postgres::Error> {
        let seen =
            prepared.generic(client, |client, prepared| self.seen(client, prepared, written))?;
        let (before, after) = self.parts(&seen);
        Ok((before, after, Kept(seen)))
    }

    fn looked(
        &self,
        client: &mut impl GenericClient,
        prepared: &mut Prepared,
        written: Written,
    ) -> Result<(Part, Part), postgres::Error> {
        Ok(self.parts(&self.seen(client, prepared, written)?))
    }

    /// The part of the picture that may differ, as read before and as
    /// `seen` now.
    fn parts(&self, seen: &Seen) -> (Part, Part) {
        let Read { changes, written, objects, tables } = match seen {
            Seen::Whole(now) => {
                let whole = |t: &Tracked| Part { schema: t.schema(), tables: t.tables() };
                return (whole(self), whole(now));
            }
            Seen::Changed(read) => &**read,
        };
        let before_tables = tables_of(&changes.owners, &self.inventory, written);
        let before = Part {
            schema: Schema::of(
                changes.owners.iter().filter_map(|o| self.objects.get(o)).flatten().cloned(),
            ),
            tables: before_tables.iter().filter_map(|t| self.tables.get(t)).cloned().collect(),
        };
        let after = Part {
            schema: Schema::of(objects.iter().cloned()),
            tables: tables.iter().map(|(_, t)| t.clone()).collect(),
        };
        (before, after)
    }

    /// The objects of `owners` and the content of the tables that may
    /// have changed, as they are now.
    fn read_changed(
        &self,
        client: &mut impl GenericClient,
        prepared: &mut Prepared,
        owners: &BTreeSet<Owner>,
        now: &Inventory,
        written: &Written,
    ) -> Result<(Vec<Owned>, Checksums), postgres::Error> {
        let mut only = Owners::default();
        owners.iter().for_each(|o| only.add(*o));
        let objects = read_owned(client, prepared, Some(&only))?;
        let tables: Vec<u32> = tables_of(owners, now, written).into_iter().collect();
        Ok((objects, table_checksums_of(client, prepared, &tables)?))
    }

    /// Puts `now` in place of the objects of `owners` (of every owner
    /// when `None`).
    fn replace(&mut self, now: Vec<Owned>, owners: Option<&BTreeSet<Owner>>) {
        match owners {
            None => self.objects.clear(),
            Some(owners) => owners.iter().for_each(|o| {
                self.objects.remove(o);
            }),
        }
        for o in now {
            self.objects.entry(o.owner).or_default().push(o);
        }
    }

    /// The catalog rows new, changed or gone since the picture was read,
    /// as the owners whose objects may differ.
    fn changes(
        &self,
        client: &mut impl GenericClient,
        prepared: &mut Prepared,
    ) -> Result<Changes, postgres::Error> {
        if self.journal && !self.listed_next {
            if let Some(changes) = self.journaled(client, prepared)? {
                return Ok(changes);
            }
        }
        let Listing { inventory, entries, search_path, horizon, stamp } =
            listing(client, prepared, self.since)?;
        let mut changed: BTreeSet<Row> = BTreeSet::new();
        let mut owners = BTreeSet::new();
        // Roles: their names are in privileges, policies and owners; the
        // search_path decides how every definition names things.
        let whole = inventory.roles != self.inventory.roles || search_path != self.search_path;
        for e in entries {
            if e.role {
                continue;
            }
            let news = e.fresh || (e.listed && !self.inventory.rows.contains_key(&e.row));
            match e.owner {
                _ if !news => {}
                Some(owner) => {
                    owners.insert(owner);
                    changed.insert(e.row);
                }
                None => {
                    changed.insert(e.row);
                }
            }
        }
        // An object gone, and what went with it.
        for (row, owner) in &self.inventory.rows {
            if !inventory.rows.contains_key(row) {
                owners.insert(*owner);
            }
        }
        // Everything that depends on what changed may read differently.
        if !changed.is_empty() {
            let (catalogs, oids): (Vec<u32>, Vec<u32>) = changed.into_iter().unzip();
            let statement = prepared.get(client, DEPENDENTS)?;
            for r in client.query(&statement, &[&catalogs, &oids])? {
                if let Some(owner) = inventory.rows.get(&(r.get(0), r.get(1))) {
                    owners.insert(*owner);
                }
            }
        }
        Ok(Changes { inventory, owners, whole, horizon, stamp, local: None })
    }
}

/// One row of [`inventory_query`].
struct Entry {
    row: Row,
    /// `None`: a row that only leads to its dependents.
    owner: Option<Owner>,
    fresh: bool,
    listed: bool,
    role: bool,
}

/// The catalog rows the picture is made of, read now.
struct Listing {
    inventory: Inventory,
    /// Every row, with whether it was written since the `since` asked for.
    entries: Vec<Entry>,
    search_path: String,
    /// The oldest transaction still running: rows written by it or by any
    /// later one are news to a picture read now.
    horizon: u64,
    /// See [`STAMP`].
    stamp: Option<String>,
}

fn listing(
    client: &mut impl GenericClient,
    prepared: &mut Prepared,
    since: u64,
) -> Result<Listing, postgres::Error> {
    let mappings = prepared.reads_mappings(client)?;
    let statement = prepared.get(client, inventory_query(mappings))?;
    let rows = client.query(&statement, &[&xid32(since)])?;
    let mut inventory = Inventory::default();
    let mut entries = Vec::with_capacity(rows.len());
    let mut search_path = String::new();
    let mut horizon = 0;
    let mut stamp = None;
    for r in &rows {
        let row: Row = (r.get(0), r.get(1));
        let (kind, owner_oid): (&str, u32) = (r.get(2), r.get(3));
        let (fresh, listed): (bool, bool) = (r.get(4), r.get(5));
        let owner = match kind {
            "path" => {
                search_path = r.get(6);
                continue;
            }
            "since" => {
                horizon = full_xid(r.get(6));
                continue;
            }
            "stamp" => {
                stamp = r.get(6);
                continue;
            }
            "a" => {
                inventory.roles.insert((row.1, r.get(6)));
                None
            }
            "-" => None,
            kind => Some(owner_of(kind, owner_oid)),
        };
        if kind == "rt" {
            inventory.tables.insert(owner_oid);
        }
        if let (true, Some(o)) = (listed, owner) {
            inventory.rows.insert(row, o);
        }
        entries.push(Entry { row, owner, fresh, listed, role: kind == "a" });
    }
    Ok(Listing { inventory, entries, search_path, horizon, stamp })
}

/// The low 32 bits of a full transaction ID, as catalog rows' `xmin`
/// holds them (for `$n::text::xid`).
fn xid32(xid: u64) -> String {
    (xid % (1 << 32)).to_string()
}

/// A full transaction ID as the server writes it.
fn full_xid(text: Option<String>) -> u64 {
    text.and_then(|t| t.parse().ok()).unwrap_or(0)
}

/// The tables among `owners` (in `inventory`) and those written.
fn tables_of(owners: &BTreeSet<Owner>, inventory: &Inventory, written: &Written) -> BTreeSet<u32> {
    inventory
        .tables
        .iter()
        .copied()
        .filter(|t| written.contains(*t) || owners.contains(&Owner::Relation(*t)))
        .collect()
}

/// Catalogs whose rows belong to a relation: the catalog, the column
/// naming it, and which of its rows the picture holds. A foreign key's
/// triggers on the table it references are internal, in no picture: a
/// table many others reference (a platform's users) is not read again
/// for each key made to it.
const OF_RELATIONS: &[(&str, &str, &str)] = &[
    ("pg_trigger", "tgrelid", " and not o.tgisinternal"),
    ("pg_policy", "polrelid", ""),
    ("pg_rewrite", "ev_class", ""),
    ("pg_attrdef", "adrelid", ""),
];

/// Every catalog row the picture is made of: `(catalog, oid, owner kind,
/// owner oid, written since $1, listed, text)`. Listed rows are every row
/// of their catalog in user schemas (a row missing later is gone); the
/// others (columns, enum labels, index rows, collations) only when written
/// since and stand for their owner. `rt` marks a table, `a` a role, `-` a
/// row that only leads to its dependents; `path` carries the session's
/// search_path and `since` the oldest transaction still running. Columns
/// are looked for among relations made after `initdb` (OIDs from 16384
/// on), first by age alone: scanning every column of the
/// user's relations one relation at a time was half the listing's time.
fn inventory_query(mappings: bool) -> &'static str {
    static QUERIES: [std::sync::OnceLock<String>; 2] = [const { std::sync::OnceLock::new() }; 2];
    QUERIES[usize::from(mappings)].get_or_init(|| {
        let of_relations: String = OF_RELATIONS
            .iter()
            .map(|(catalog, rel, held)| {
                format!(
                    "union all
select '{catalog}'::regclass::oid, o.oid, 'r', o.{rel}, age(o.xmin) <= age(f.x), true, null
  from {catalog} o cross join fresh_since f join pg_class c on c.oid = o.{rel}
 where c.relnamespace in (select oid from users){held}
"
                )
            })
            .collect();
        format!(
            "{}{of_relations}{}{}{}",
            with_parts(INVENTORY_HEAD),
            with_parts(INVENTORY_TAIL),
            super::kinds::INVENTORY.replace(
                super::kinds::MAPPINGS_SEEN,
                if mappings { super::kinds::MAPPINGS_READ } else { super::kinds::MAPPINGS_SEEN }
            ),
            super::comments::INVENTORY
        )
    })
}

const INVENTORY_HEAD: &str = "
with fresh_since as (select $1::text::xid as x), {USERS}
select 'pg_class'::regclass::oid, c.oid, {CLASS_OWNER}, age(c.xmin) <= age(f.x), true, null::text
  from pg_class c cross join fresh_since f left join pg_index x on x.indexrelid = c.oid
 where c.relnamespace in (select oid from users)
union all
select 'pg_constraint'::regclass::oid, k.oid, {CONSTRAINT_OWNER}, age(k.xmin) <= age(f.x), true, null
  from pg_constraint k cross join fresh_since f where k.connamespace in (select oid from users)
";

const INVENTORY_TAIL: &str = "union all
select 'pg_proc'::regclass::oid, p.oid, 'f', p.oid, age(p.xmin) <= age(f.x), true, null
  from pg_proc p cross join fresh_since f where p.pronamespace in (select oid from users)
union all
select 'pg_type'::regclass::oid, t.oid, {TYPE_OWNER}, age(t.xmin) <= age(f.x), true, null
  from pg_type t cross join fresh_since f where t.typnamespace in (select oid from users)
union all
select 'pg_namespace'::regclass::oid, n.oid, 'n', n.oid, age(n.xmin) <= age(f.x), true, null
  from pg_namespace n cross join fresh_since f where n.oid in (select oid from users)
union all
select 'pg_extension'::regclass::oid, e.oid, 'e', e.oid, age(e.xmin) <= age(f.x), true, null
  from pg_extension e cross join fresh_since f
union all
select 'pg_authid'::regclass::oid, a.oid, 'a', a.oid, false, true, a.rolname::text
  from pg_roles a
union all
select 'pg_class'::regclass::oid, a.attrelid, case when c.relkind = 'c' then 't' else 'r' end,
       case when c.relkind = 'c' then c.reltype else a.attrelid end, true, false, null
  from (select distinct a.attrelid from pg_attribute a cross join fresh_since f
         where a.attrelid >= 16384 and age(a.xmin) <= age(f.x) offset 0) a
  join pg_class c on c.oid = a.attrelid
 where c.relnamespace in (select oid from users)
union all
select 'pg_type'::regclass::oid, e.enumtypid, 't', e.enumtypid, true, false, null
  from pg_enum e cross join fresh_since f where age(e.xmin) <= age(f.x)
union all
select 'pg_class'::regclass::oid, x.indexrelid, 'r', x.indrelid, true, false, null
  from pg_index x cross join fresh_since f where age(x.xmin) <= age(f.x)
union all
select 'pg_collation'::regclass::oid, o.oid, '-', o.oid, true, false, null
  from pg_collation o cross join fresh_since f
 where age(o.xmin) <= age(f.x) and o.collnamespace not in (select oid from users)
union all
select 0, 0, 'path', 0, false, false, current_setting('search_path')
union all
select 0, 0, 'since', 0, false, false, pg_snapshot_xmin(pg_current_snapshot())::text
union all
select 0, 0, 'stamp', 0, false, false, ({STAMP})";

/// `sql` with the pieces the listing and the journal's look share put in
/// place of their names in braces: the user's schemas (`users`, a
/// `WITH` item), the owner of a relation (over `pg_class c` with its
/// `pg_index x`), of a constraint (`pg_constraint k`) and of a type
/// (`pg_type t`) as `kind, oid` (`rt` a table), and [`STAMP`].
fn with_parts(sql: &str) -> String {
    const PARTS: [(&str, &str); 5] = [
        (
            "{USERS}",
            "users as (select oid from pg_namespace
                where nspname not in ('pg_catalog', 'information_schema', 'backstop', 'pg_toast')
                  and nspname not like 'pg_temp%' and nspname not like 'pg_toast_temp%')",
        ),
        (
            "{CLASS_OWNER}",
            "case c.relkind when 'r' then 'rt' when 'c' then 't' else 'r' end,
       case when c.relkind = 'c' then c.reltype else coalesce(x.indrelid, c.oid) end",
        ),
        (
            "{CONSTRAINT_OWNER}",
            "case when k.conrelid <> 0 then 'r' else 't' end,
       case when k.conrelid <> 0 then k.conrelid else k.contypid end",
        ),
        (
            "{TYPE_OWNER}",
            // An array type the server made for its element (every table
            // and enum has one) is no object of the picture: its element's
            // owner stands for it, so the look after a CREATE TABLE reads
            // the table alone, not a type too.
            "case when t.typrelid <> 0 then 'r'
            when (select e.typrelid from pg_type e where e.oid = t.typelem and e.typarray = t.oid) <> 0
            then 'r' else 't' end,
       case when t.typrelid <> 0 then t.typrelid
            else coalesce((select case when e.typrelid <> 0 then e.typrelid else e.oid end
                             from pg_type e where e.oid = t.typelem and e.typarray = t.oid), t.oid) end",
        ),
        ("{STAMP}", STAMP),
    ];
    PARTS.iter().fold(sql.to_string(), |sql, (name, part)| sql.replace(name, part))
}

/// The owner a listed row names: `rt` is a table, a relation whose
/// content is checksummed.
fn owner_of(kind: &str, oid: u32) -> Owner {
    Owner::of(if kind == "rt" { "r" } else { kind }, oid)
}

/// Which transactions the session sees as done, and its search_path;
/// `NULL` inside a transaction that wrote (its own writes are not in
/// the snapshot). While two readings are equal and not `NULL`, no
/// transaction ended between them, so no catalog row changed: every
/// write has a transaction of its own, and the snapshot lists the
/// running ones as well as the next to come.
const STAMP: &str = "select case when pg_current_xact_id_if_assigned() is null
                   then pg_current_snapshot()::text || ' ' || current_setting('search_path') end";

/// Every object that depends on the objects `($1[i], $2[i])` (catalog and
/// OID), directly or through others, the objects themselves included.
const DEPENDENTS: &str = "
with recursive changed(classid, objid) as (
    select * from unnest($1::oid[], $2::oid[])
  union
    select d.classid, d.objid
      from pg_depend d join changed c on d.refclassid = c.classid and d.refobjid = c.objid
)
select classid, objid from changed";

#[cfg(test)]
mod tests;
