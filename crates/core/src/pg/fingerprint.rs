//! A semantic picture of a database's schema, read from the catalogs: one
//! line per object (table column, constraint, index, trigger, policy, RLS
//! setting, view, function, type, sequence, extension, and every other kind
//! `pg_dump --schema-only` writes: see `pg::kinds`) in a stable order, and
//! a fingerprint over them. Column order and comments are kept apart: they
//! change no behaviour (but `SELECT *`), so they are compared as cosmetic
//! and the fingerprint leaves them out. Never a text diff of `pg_dump`
//! output, which differs for reasons that do not matter. The `backstop`
//! schema is left out.

use postgres::GenericClient;

use super::comments::{comment_parts, PREFIX as COMMENT};
use super::kinds::kind_parts;
use super::parts::{other_parts, relation_member_parts, relation_parts, Part, SKIPPED};

mod acl;
pub(crate) use acl::{acl_items, grantee};
use acl::{masked_acl, same_but_privileges_order, split_acl, without_privilege};

/// One object of the schema: a stable key and its definition.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Object {
    pub key: String,
    pub definition: String,
}

/// The schema as a sorted list of objects.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Schema {
    /// Everything that changes behaviour: the fingerprint covers these.
    pub objects: Vec<Object>,
    /// What changes no behaviour: column order (only `SELECT *` and
    /// positional INSERT notice it) and comments, reported apart so nobody
    /// learns to ignore a schema difference. The fingerprint leaves them
    /// out.
    pub cosmetic: Vec<Object>,
}

impl Schema {
    /// Leaves the objects' privileges out of the picture: all of them
    /// (`roles` `None`), or those granted to `roles` (a role frozen by
    /// `backstop backup freeze`, whose revoked grants are no difference).
    pub fn mask_acl(&mut self, roles: Option<&[String]>) {
        for o in &mut self.objects {
            o.definition = masked_acl(&o.definition, roles);
        }
    }

    /// Leaves the privilege with letter `privilege` out of the objects'
    /// privileges: `m` (MAINTAIN, from PostgreSQL 17, which 17 gives a
    /// table's owner and GRANT ALL) when the other side of a comparison is
    /// older and has no such privilege.
    pub fn drop_privilege(&mut self, privilege: char) {
        for o in &mut self.objects {
            o.definition = without_privilege(&o.definition, privilege);
        }
    }

    /// Reads the schema of the connected database once: only the parts of
    /// the query whose probe finds something to read are planned (see
    /// [`read_probed`]). A session that reads again keeps one plan with
    /// [`Schema::read_prepared`].
    pub fn read(client: &mut impl GenericClient) -> Result<Schema, postgres::Error> {
        Ok(Schema::of(read_probed(client)?))
    }

    /// Reads the schema once or twice on one session (a rollback's check,
    /// before and after its downs): only the parts whose probe finds a row
    /// are read, as [`Schema::read`] reads them, and a second read finding
    /// the same kinds reuses the first one's plan, kept in `prepared`.
    pub fn read_probed(
        client: &mut impl GenericClient,
        prepared: &mut super::Prepared,
    ) -> Result<Schema, postgres::Error> {
        Ok(Schema::of(read_probed_with(client, prepared)?))
    }

    /// Reads the schema with the query prepared in `prepared`, planned once
    /// for all reads on the connection.
    pub fn read_prepared(
        client: &mut impl GenericClient,
        prepared: &mut super::Prepared,
    ) -> Result<Schema, postgres::Error> {
        Ok(Schema::of(read_owned(client, prepared, None)?))
    }

    /// A picture of (key, definition) pairs, for tests that compare
    /// pictures without a database.
    #[cfg(test)]
    pub(crate) fn of_pairs(objects: &[(&str, &str)]) -> Schema {
        let mut objects: Vec<Object> = objects
            .iter()
            .map(|(k, d)| Object { key: k.to_string(), definition: d.to_string() })
            .collect();
        objects.sort();
        Schema { objects, cosmetic: Vec::new() }
    }

    /// The picture made of objects read with their owners.
    pub fn of(owned: impl IntoIterator<Item = Owned>) -> Schema {
        let mut objects = Vec::new();
        let mut cosmetic = Vec::new();
        for o in owned {
            if o.cosmetic {
                cosmetic.push(o.object);
            } else {
                objects.push(o.object);
            }
        }
        objects.sort();
        cosmetic.sort();
        Schema { objects, cosmetic }
    }
}

/// Who an object of the picture belongs to: the catalog row whose change
/// (or whose dependencies' change) can change the object. A relation owns
/// its columns, constraints, indexes, triggers, policies and view text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Owner {
    Relation(u32),
    Function(u32),
    Type(u32),
    Schema(u32),
    Extension(u32),
    /// An object of another catalog (a server, a cast, a publication):
    /// the catalog's OID and the object's.
    Object(u32, u32),
}

impl Owner {
    /// The owner a query names by kind (`r`, `f`, `t`, `n`, `e`, or the
    /// OID of the catalog holding it) and OID.
    pub(super) fn of(kind: &str, oid: u32) -> Owner {
        match kind {
            "r" => Owner::Relation(oid),
            "f" => Owner::Function(oid),
            "t" => Owner::Type(oid),
            "n" => Owner::Schema(oid),
            "e" => Owner::Extension(oid),
            class => match class.parse() {
                Ok(class) => Owner::Object(class, oid),
                Err(_) => Owner::Extension(oid),
            },
        }
    }
}

/// An object of the picture with its owner.
#[derive(Debug, Clone)]
pub struct Owned {
    pub owner: Owner,
    pub object: Object,
    /// Column order or a comment: reported apart as a cosmetic difference.
    pub cosmetic: bool,
}

impl Object {
    /// The schema the object's name is in (`column public.t.c`, `schema
    /// public`); `""` for what belongs to none by its key (an extension,
    /// a publication, a cast of built-in types).
    pub fn schema_of_key(&self) -> &str {
        match self.key.strip_prefix("schema ") {
            Some(name) => name,
            None => {
                self.key.split(' ').find_map(|w| w.split_once('.').map(|(s, _)| s)).unwrap_or("")
            }
        }
    }

    /// The schema the object lives in: its name's, or an extension's own
    /// schema (`schema=` of its definition); `""` for one of none.
    pub fn schema(&self) -> &str {
        if self.key.starts_with("extension ") {
            if let Some((_, schema)) = self.definition.split_once(" schema=") {
                return schema.split(' ').next().unwrap_or("");
            }
        }
        self.schema_of_key()
    }

    /// The key of the object a comment is on (`column public.t.c` of
    /// `comment on column public.t.c`); `None` for what is no comment.
    pub fn commented(&self) -> Option<&str> {
        self.key.strip_prefix(COMMENT)
    }
}

/// The owners whose objects one read covers, by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Owners {
    pub relations: Vec<u32>,
    pub functions: Vec<u32>,
    pub types: Vec<u32>,
    pub schemas: Vec<u32>,
    pub extensions: Vec<u32>,
    /// Objects of other catalogs: the catalogs' OIDs and the objects', in step.
    pub classes: Vec<u32>,
    pub objects: Vec<u32>,
}

impl Owners {
    pub fn add(&mut self, owner: Owner) {
        match owner {
            Owner::Relation(o) => self.relations.push(o),
            Owner::Function(o) => self.functions.push(o),
            Owner::Type(o) => self.types.push(o),
            Owner::Schema(o) => self.schemas.push(o),
            Owner::Extension(o) => self.extensions.push(o),
            Owner::Object(class, o) => {
                self.classes.push(class);
                self.objects.push(o);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.relations.is_empty()
            && self.functions.is_empty()
            && self.types.is_empty()
            && self.schemas.is_empty()
            && self.extensions.is_empty()
            && self.objects.is_empty()
    }
}

/// Reads the objects of the picture with their owners: all of them, or
/// only those of `only`.
pub fn read_owned(
    client: &mut impl GenericClient,
    prepared: &mut super::Prepared,
    only: Option<&Owners>,
) -> Result<Vec<Owned>, postgres::Error> {
    if only.is_some_and(Owners::is_empty) {
        return Ok(Vec::new());
    }
    let major = prepared.major(client)?;
    // Planning it for each set of owners costs ten times what running it
    // does (20 ms against 2 on 800 tables): one generic plan serves every set.
    let rows = prepared.generic(client, |c, p| read_rows(c, p, only, major))?;
    Ok(owned(&rows))
}

fn owned(rows: &[postgres::Row]) -> Vec<Owned> {
    rows.iter()
        .map(|row| {
            let object = Object { key: row.get(0), definition: row.get(1) };
            Owned {
                owner: Owner::of(row.get(2), row.get(3)),
                cosmetic: object.key.starts_with("column order ") || object.commented().is_some(),
                object,
            }
        })
        .collect()
}

/// Reads every object of the picture for one look only. Planning the
/// whole query in a new session costs more than reading it (45 ms against
/// 3 on a small database, most of a tenant's backup), and most of its
/// parts read kinds a database seldom has (operators, text search,
/// foreign data): one small query asks each part's probe first, and the
/// query reads only the parts a probe found something for. The skipped
/// probes are asked again in the query itself, so a kind made between the
/// two statements is never missed: the query then says so with a row of
/// empty key, and the whole query is read instead.
fn read_probed(client: &mut impl GenericClient) -> Result<Vec<Owned>, postgres::Error> {
    read_probed_with(client, &mut super::Prepared::default())
}

/// [`read_probed`] with the statements kept in `prepared`: a second read
/// on the same session finding the same kinds runs the query planned for
/// the first (the plan is most of a read's cost).
fn read_probed_with(
    client: &mut impl GenericClient,
    prepared: &mut super::Prepared,
) -> Result<Vec<Owned>, postgres::Error> {
    let major = prepared.major(client)?;
    let parts: Vec<Part> = parts().into_iter().filter(|p| p.reads(major)).collect();
    let rows = prepared.generic(client, |c, p| {
        let (read, skipped) = probe(c, &parts)?;
        read_parts(c, p, &read, &skipped, major)
    })?;
    Ok(owned(&rows))
}

fn read_rows(
    client: &mut impl GenericClient,
    prepared: &mut super::Prepared,
    only: Option<&Owners>,
    major: i32,
) -> Result<Vec<postgres::Row>, postgres::Error> {
    let Some(o) = only else {
        let statement = prepared.get(client, schema_query(None, major))?;
        return client.query(&statement, &[]);
    };
    // One query per kind of owner asked about: starting the executor for
    // the parts of every kind cost more than running the parts asked for.
    let groups: [(&Vec<u32>, &[&(dyn postgres::types::ToSql + Sync)]); GROUPS] = [
        (&o.relations, &[&o.relations]),
        (&o.functions, &[&o.functions]),
        (&o.types, &[&o.types]),
        (&o.schemas, &[&o.schemas]),
        (&o.extensions, &[&o.extensions]),
        (&o.classes, &[&o.classes, &o.objects]),
    ];
    let mut rows = Vec::new();
    for (group, (asked, params)) in groups.iter().enumerate() {
        if asked.is_empty() {
            continue;
        }
        if group == 0 {
            rows.extend(read_relations(client, prepared, params, major)?);
            continue;
        }
        let statement = prepared.get(client, schema_query(Some(group), major))?;
        rows.extend(client.query(&statement, params)?);
    }
    Ok(rows)
}

/// The parts about relations, as read for some of them: the parts read
/// always, with one more row of empty key saying which probes for them
/// found something (`"0100"`), and the parts with such a probe, in its
/// order. Each part a look runs costs its locks and executor start, rows
/// or none: most of the tables a rehearsal looks at have no trigger,
/// policy, rule or comment.
struct RelationLook {
    first: String,
    probed: Vec<String>,
}

/// The catalogs differ before 15 (no publication schemas, row filters):
/// for `major`, the slot of the statements kept for its catalogs (0 or 1)
/// and the major that stands for them.
fn catalogs_of(major: i32) -> (usize, i32) {
    if major >= 15 {
        (1, 15)
    } else {
        (0, 14)
    }
}

fn relation_look(major: i32) -> &'static RelationLook {
    static LOOKS: [std::sync::OnceLock<RelationLook>; 2] =
        [const { std::sync::OnceLock::new() }; 2];
    let (slot, at) = catalogs_of(major);
    LOOKS[slot].get_or_init(|| {
        let parts: Vec<Part> =
            parts().into_iter().filter(|p| p.reads(at) && group_of(p.kind) == 0).collect();
        let (probed, always): (Vec<&Part>, Vec<&Part>) =
            parts.iter().partition(|p| p.probe_some.is_some());
        let found: Vec<String> = probed
            .iter()
            .filter_map(|p| p.probe_some.as_deref())
            .map(|probe| format!("({probe})::int::text"))
            .collect();
        let mut first: Vec<String> = always.iter().map(|p| part_query(p, Some(0))).collect();
        first.push(format!("(select ''::text, {}, 'r'::text, 0::oid)", found.join(" || ")));
        RelationLook {
            first: first.join("\nunion all\n"),
            probed: probed.iter().map(|p| part_query(p, Some(0))).collect(),
        }
    })
}

/// The rows of the parts about the relations `params`: those read
/// always, and the others where their probe finds something.
fn read_relations(
    client: &mut impl GenericClient,
    prepared: &mut super::Prepared,
    params: &[&(dyn postgres::types::ToSql + Sync)],
    major: i32,
) -> Result<Vec<postgres::Row>, postgres::Error> {
    let look = relation_look(major);
    let statement = prepared.get(client, &look.first)?;
    let mut rows = client.query(&statement, params)?;
    // Without its row (never), every probed part is read.
    let found: String = match rows.iter().position(|r| r.get::<_, &str>(0).is_empty()) {
        Some(at) => rows.swap_remove(at).get(1),
        None => "1".repeat(look.probed.len()),
    };
    let more: Vec<&str> = look
        .probed
        .iter()
        .zip(found.chars())
        .filter(|(_, hit)| *hit == '1')
        .map(|(part, _)| part.as_str())
        .collect();
    if !more.is_empty() {
        let statement = prepared.get(client, &more.join("\nunion all\n"))?;
        rows.extend(client.query(&statement, params)?);
    }
    Ok(rows)
}

/// Owners by kind: relations, functions, types, schemas, extensions, and
/// objects of other catalogs (each a group of parts of the query).
const GROUPS: usize = 6;

fn group_of(kind: &str) -> usize {
    match kind {
        "r" => 0,
        "f" => 1,
        "t" => 2,
        "n" => 3,
        "e" => 4,
        _ => 5,
    }
}

/// The one query that reads every object of the schema (one round trip:
/// rehearsals read the picture twice per migration), or for a `group` of
/// [`group_of`] only the objects of the owners given as `$1` (with `$2`
/// for objects of other catalogs: the catalogs and the objects).
fn parts() -> Vec<Part> {
    let mut parts = relation_parts();
    parts.extend(relation_member_parts());
    parts.extend(other_parts());
    parts.extend(kind_parts());
    parts.extend(comment_parts());
    parts
}

fn schema_query(group: Option<usize>, major: i32) -> &'static str {
    const SLOTS: usize = 2 * (GROUPS + 1);
    static QUERIES: [std::sync::OnceLock<String>; SLOTS] =
        [const { std::sync::OnceLock::new() }; SLOTS];
    let (slot, at) = catalogs_of(major);
    QUERIES[slot * (GROUPS + 1) + group.unwrap_or(GROUPS)].get_or_init(|| {
        parts()
            .iter()
            .filter(|p| p.reads(at))
            .filter(|p| group.is_none_or(|g| group_of(p.kind) == g))
            .map(|p| part_query(p, group))
            .collect::<Vec<_>>()
            .join("\nunion all\n")
    })
}

/// The rows of the parts `read`, or of the whole query where the probe of
/// a part in `skipped` finds something now.
fn read_parts(
    client: &mut impl GenericClient,
    prepared: &mut super::Prepared,
    read: &[&Part],
    skipped: &[&Part],
    major: i32,
) -> Result<Vec<postgres::Row>, postgres::Error> {
    let mut selects: Vec<String> = read.iter().map(|p| part_query(p, None)).collect();
    let guard = probes_of(skipped.iter().copied());
    if !guard.is_empty() {
        selects
            .push(format!("(select '', '', 'r'::text, 0::oid where {})", guard.join("\n    or ")));
    }
    let rows = client.query(&selects.join("\nunion all\n"), &[])?;
    if rows.iter().any(|r| r.get::<_, &str>(0).is_empty()) {
        return read_rows(client, prepared, None, major);
    }
    Ok(rows)
}

/// The parts to read and those to skip: a part is skipped when its probe
/// finds nothing.
fn probe<'p>(
    client: &mut impl GenericClient,
    parts: &'p [Part],
) -> Result<(Vec<&'p Part>, Vec<&'p Part>), postgres::Error> {
    let probes = probes_of(parts.iter());
    let row = client.query_one(&format!("select array[{}]", probes.join(", ")), &[])?;
    let hits: Vec<bool> = row.get(0);
    let found = |probe: &str| probes.iter().zip(&hits).any(|(p, hit)| *p == probe && *hit);
    Ok(parts.iter().partition(|p| p.probe.as_deref().is_none_or(found)))
}

/// The probes of `parts`, each once (parts may share one).
fn probes_of<'p>(parts: impl Iterator<Item = &'p Part>) -> Vec<&'p str> {
    let mut probes: Vec<&str> = parts.filter_map(|p| p.probe.as_deref()).collect();
    probes.sort_unstable();
    probes.dedup();
    probes
}

/// One part's select: all its rows, or for a `group` those of the owners
/// given as parameters (see [`schema_query`]).
fn part_query(p: &Part, group: Option<usize>) -> String {
    let only = match group {
        None => String::new(),
        Some(5) => format!(
            " and ('{}'::regclass::oid, {}) in (select * from unnest($1::oid[], $2::oid[]))",
            p.kind, p.owner
        ),
        Some(_) => format!(" and {} = any($1::oid[])", p.owner),
    };
    let kind = if p.kind.starts_with("pg_") {
        format!("'{}'::regclass::oid::text", p.kind)
    } else {
        format!("'{}'::text", p.kind)
    };
    // Column order is one row per relation.
    let group = if p.select.starts_with("'column order ") { " group by 1, 3, 4" } else { "" };
    format!("(select {}, {kind}, {}::oid {}{only}{group})", p.select, p.owner, p.from)
}

impl Schema {
    /// A short stable hash of the whole schema.
    pub fn fingerprint(&self) -> String {
        let mut hasher = blake3::Hasher::new();
        for o in &self.objects {
            hasher.update(o.key.as_bytes());
            hasher.update(&[0]);
            hasher.update(o.definition.as_bytes());
            hasher.update(&[0]);
        }
        hasher.finalize().to_hex()[..16].to_string()
    }

    /// A fingerprint of each schema's part: the objects whose name is in
    /// that schema (`column public.t.c`, `schema public`), by schema name;
    /// what belongs to none (an extension, a publication) under `""`.
    pub fn fingerprints_by_schema(&self) -> std::collections::BTreeMap<String, String> {
        let mut parts: std::collections::BTreeMap<String, blake3::Hasher> = Default::default();
        for o in &self.objects {
            let h = parts.entry(o.schema_of_key().to_string()).or_default();
            h.update(o.key.as_bytes());
            h.update(&[0]);
            h.update(o.definition.as_bytes());
            h.update(&[0]);
        }
        parts.into_iter().map(|(k, h)| (k, h.finalize().to_hex()[..16].to_string())).collect()
    }

    /// What differs from `other` in behaviour: objects gone, new or changed.
    pub fn differences(&self, other: &Schema) -> Vec<String> {
        diff(&self.objects, &other.objects)
            .into_iter()
            .filter(|c| c.cosmetic().is_none())
            .map(|c| c.to_string())
            .collect()
    }

    /// Differences that change no behaviour, each saying which kind it is,
    /// reported apart from [`Schema::differences`]: column order alone
    /// (only `SELECT *` and positional INSERT notice), a function body
    /// that differs only in whitespace, comments or keyword case, or in
    /// parentheses that group nothing (as PostgreSQL's parsers read it), a view
    /// that differs only by a date frozen into it when it was created, a
    /// view whose columns follow its table's new order, a comment lost,
    /// changed or added (`comment on column public.t.c: lost (it was
    /// '…')`).
    pub fn cosmetic_differences(&self, other: &Schema) -> Vec<String> {
        let mut out: Vec<String> = diff(&self.objects, &other.objects)
            .into_iter()
            .filter_map(|c| c.cosmetic().map(|class| format!("{}: {class}", c.key)))
            .collect();
        out.extend(self.column_order_differences(other));
        out.extend(self.comment_differences(other));
        out
    }

    /// The cosmetic objects of both pictures whose object (`of`: its key
    /// in `objects`, `None` when it is of another class) is on both sides:
    /// an object gone or new is already a behaviour difference.
    fn cosmetic_on_both(
        &self,
        other: &Schema,
        of: impl Fn(&Object) -> Option<String>,
    ) -> (Vec<Object>, Vec<Object>) {
        // `objects` is sorted by key.
        let exists =
            |s: &Schema, key: &str| s.objects.binary_search_by(|x| x.key.as_str().cmp(key)).is_ok();
        let shared =
            |o: &&Object| of(o).is_some_and(|key| exists(self, &key) && exists(other, &key));
        let mine = self.cosmetic.iter().filter(shared).cloned().collect();
        let theirs = other.cosmetic.iter().filter(shared).cloned().collect();
        (mine, theirs)
    }

    fn column_order_differences(&self, other: &Schema) -> Vec<String> {
        let (mine, theirs) = self.cosmetic_on_both(other, |o| {
            o.key.strip_prefix("column order ").map(|table| format!("relation {table}"))
        });
        diff(&mine, &theirs)
            .into_iter()
            .map(|c| format!("{c} (only SELECT * and positional INSERT notice)"))
            .collect()
    }

    fn comment_differences(&self, other: &Schema) -> Vec<String> {
        let (mine, theirs) = self.cosmetic_on_both(other, |o| o.commented().map(str::to_string));
        let shown = |text: &str| {
            let mut short: String = text.chars().take(60).collect();
            if short.len() < text.len() {
                short.push('…');
            }
            backstop_sql::rewrite::literal(&short)
        };
        diff(&mine, &theirs)
            .into_iter()
            .map(|c| match (&c.before, &c.after) {
                (Some(b), None) => format!("{}: lost (it was {})", c.key, shown(b)),
                (Some(b), Some(a)) => {
                    format!("{}: changed from {} to {}", c.key, shown(b), shown(a))
                }
                (None, a) => format!("{}: added ({})", c.key, shown(a.as_deref().unwrap_or(""))),
            })
            .collect()
    }
}

/// One object that differs between two pictures.
struct Change {
    key: String,
    before: Option<String>,
    after: Option<String>,
}

impl Change {
    /// Which kind of cosmetic difference this is, if it is one.
    fn cosmetic(&self) -> Option<&'static str> {
        let (Some(before), Some(after)) = (&self.before, &self.after) else { return None };
        use backstop_sql::compare;
        if same_but_privileges_order(before, after) {
            return Some("its privileges are the same, listed in another order");
        }
        if self.key.starts_with("function ") {
            if compare::same_tokens(before, after) {
                return Some("its body differs only in whitespace, comments or keyword case");
            }
            // The definition, then the privileges the picture appends.
            let split = |d| split_acl(d).unwrap_or((d, ""));
            let ((def_b, acl_b), (def_a, acl_a)) = (split(before), split(after));
            if acl_b == acl_a && backstop_sql::same_function::same_function(def_b, def_a) {
                return Some(
                    "it differs only in how it is written (parentheses that group nothing, \
                     spacing, case), as PostgreSQL's parsers read it",
                );
            }
        }
        if self.key.starts_with("view ") {
            if compare::frozen_dates_only(before, after) {
                return Some("only a date frozen into it when it was created differs");
            }
            if compare::select_list_reordered(before, after) {
                return Some(
                    "its columns come in another order, as its table's do (only SELECT * and positional INSERT notice)",
                );
            }
        }
        None
    }
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.before, &self.after) {
            (Some(_), None) => write!(f, "{} is gone", self.key),
            (None, _) => write!(f, "{} is new", self.key),
            (Some(b), Some(a)) => write!(f, "{} changed: {b} -> {a}", self.key),
        }
    }
}

fn diff(before: &[Object], after: &[Object]) -> Vec<Change> {
    let find = |list: &[Object], key: &str| {
        list.binary_search_by(|o| o.key.as_str().cmp(key)).ok().map(|i| list[i].definition.clone())
    };
    let mut out = Vec::new();
    for o in before {
        match find(after, &o.key) {
            None => out.push(Change {
                key: o.key.clone(),
                before: Some(o.definition.clone()),
                after: None,
            }),
            Some(d) if d != o.definition => out.push(Change {
                key: o.key.clone(),
                before: Some(o.definition.clone()),
                after: Some(d),
            }),
            Some(_) => {}
        }
    }
    for o in after {
        if find(before, &o.key).is_none() {
            out.push(Change {
                key: o.key.clone(),
                before: None,
                after: Some(o.definition.clone()),
            });
        }
    }
    out
}

/// Exact row counts of every user table the session may read, by
/// qualified name (the rest is `pg::unreadable`'s, left out of dumps too).
pub fn row_counts(client: &mut impl GenericClient) -> Result<Vec<(String, i64)>, postgres::Error> {
    let tables = client.query(
        &format!(
            "select n.nspname::text, c.relname::text from pg_class c
               join pg_namespace n on n.oid = c.relnamespace
              where c.relkind in ('r', 'p') and n.nspname not in {SKIPPED}
                and has_table_privilege(c.oid, 'SELECT')
              order by 1, 2"
        ),
        &[],
    )?;
    let mut counts = Vec::with_capacity(tables.len());
    for t in tables {
        let (schema, name): (String, String) = (t.get(0), t.get(1));
        let sql =
            format!("select count(*) from only {}", super::quote_qualified(Some(&schema), &name));
        let n: i64 = client.query_one(sql.as_str(), &[])?.get(0);
        counts.push((format!("{schema}.{name}"), n));
    }
    Ok(counts)
}

#[cfg(test)]
mod tests;
