//! What a down misses, said so a person can act on it. The comparison of
//! two snapshots names every object that differs; here a relation that is
//! gone or new becomes one line with its size and a count of what went
//! with it (its columns, indexes, constraints, triggers, policies, owned
//! sequences), a changed view or function becomes a diff of its
//! definition, and each line says who did it: the up, whose change the
//! down does not undo, or the down itself.

use postgres::GenericClient;

use super::outcome::{DefinitionDiff, Difference, Presence, RelationChange};
use super::snapshot::Snapshot;
use super::RehearseError;
use crate::pg::checksum::TableChecksum;
use crate::pg::fingerprint::Schema;
use crate::source::Migration;

/// The pictures a down's differences are read against.
pub(super) struct Pictures<'a> {
    /// Before the up.
    pub(super) before: &'a Schema,
    pub(super) before_rows: &'a [TableChecksum],
    /// Right after the down.
    pub(super) after: &'a Schema,
    pub(super) after_rows: &'a [TableChecksum],
    /// After the up (the copy once the down's trial is undone), to tell
    /// what the up did from what the down did; `None` when unknown.
    pub(super) after_up: Option<&'a Schema>,
    /// Bytes of a relation (`schema.name`), where measured.
    pub(super) bytes: &'a dyn Fn(&str) -> Option<i64>,
}

/// A down's differences, told.
#[derive(Debug, Default)]
pub(super) struct Told {
    pub(super) differences: Vec<Difference>,
    pub(super) relations: Vec<RelationChange>,
    pub(super) definitions: Vec<DefinitionDiff>,
}

/// How one object differs.
struct Change<'a> {
    key: &'a str,
    before: Option<&'a str>,
    after: Option<&'a str>,
}

impl Change<'_> {
    fn presence(&self) -> Option<Presence> {
        match (self.before, self.after) {
            (Some(_), None) => Some(Presence::Gone),
            (None, Some(_)) => Some(Presence::New),
            _ => None,
        }
    }
}

fn definition<'a>(schema: &'a Schema, key: &str) -> Option<&'a str> {
    schema
        .objects
        .binary_search_by(|o| o.key.as_str().cmp(key))
        .ok()
        .map(|i| schema.objects[i].definition.as_str())
}

/// The kind of relation a `relation` definition starts with (its relkind).
fn relation_kind(definition: &str) -> &'static str {
    match definition.split(' ').next() {
        Some("r") => "table",
        Some("p") => "partitioned table",
        Some("v") => "view",
        Some("m") => "materialized view",
        Some("f") => "foreign table",
        Some("S") => "sequence",
        _ => "relation",
    }
}

/// A name as PostgreSQL's deparser writes it: bare when it can be.
fn deparsed(name: &str) -> String {
    let bare = name.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$');
    if bare {
        name.to_string()
    } else {
        crate::pg::quote_ident(name)
    }
}

/// Whether the object under `key` (with `definition`) belongs to the
/// relation `rel` (`schema.name`): its columns, constraints, triggers and
/// policies by key, its indexes by their definition, a view's text.
fn belongs(key: &str, definition: &str, rel: &str) -> Option<&'static str> {
    for (prefix, part) in [
        ("column ", "column"),
        ("constraint ", "constraint"),
        ("trigger ", "trigger"),
        ("policy ", "policy"),
        ("rule ", "rule"),
    ] {
        if key
            .strip_prefix(prefix)
            .and_then(|k| k.strip_prefix(rel))
            .is_some_and(|k| k.starts_with('.'))
        {
            return Some(part);
        }
    }
    if key.strip_prefix("view ") == Some(rel) {
        return Some("definition");
    }
    if key.starts_with("index ") {
        let (schema, name) = rel.split_once('.').unwrap_or(("public", rel));
        let shown = format!("{}.{}", deparsed(schema), deparsed(name));
        if [" ON ", " ON ONLY "]
            .iter()
            .any(|on| definition.contains(&format!("{on}{shown} USING ")))
        {
            return Some("index");
        }
    }
    None
}

/// The sequences named by `nextval('...')` in column definitions.
fn sequences_in(definition: &str) -> Vec<String> {
    definition
        .split("nextval('")
        .skip(1)
        .filter_map(|rest| rest.split('\'').next())
        .map(|s| s.trim_matches('"').to_string())
        .collect()
}

fn plural(n: usize, what: &str) -> String {
    match (n, what) {
        (1, w) => format!("1 {w}"),
        (n, "index") => format!("{n} indexes"),
        (n, "policy") => format!("{n} policies"),
        (n, w) => format!("{n} {w}s"),
    }
}

/// `a, b and c`.
fn listed(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// `table public.t (200 rows, 48 kB) with its 4 columns and 1 index`.
fn relation_phrase(r: &RelationChange) -> String {
    let mut size = Vec::new();
    if let Some(rows) = r.rows {
        size.push(if rows == 1 { "1 row".to_string() } else { format!("{rows} rows") });
    }
    if let Some(bytes) = r.bytes {
        size.push(crate::kit::size::human(bytes.max(0) as u64));
    }
    let size = if size.is_empty() { String::new() } else { format!(" ({})", size.join(", ")) };
    let parts: Vec<String> = r
        .parts
        .iter()
        .filter(|(what, _)| what != "definition")
        .map(|(what, n)| plural(*n, what))
        .collect();
    let with =
        if parts.is_empty() { String::new() } else { format!(" with its {}", listed(&parts)) };
    format!("{} {}{size}{with}", r.kind, r.relation)
}

/// Who made `key` differ, said about `object` (how the line names it).
fn who(object: &str, c: &Change<'_>, after_up: Option<&Schema>) -> String {
    let after_up = after_up.map(|s| definition(s, c.key));
    match (c.before, c.after, after_up) {
        (Some(_), None, Some(Some(_))) => {
            format!("the down drops {object}, which was there before the up")
        }
        (Some(_), None, Some(None)) => {
            format!("{object} is gone: the up removes it and the down does not bring it back")
        }
        (Some(_), None, None) => format!("{object} is missing after the down"),
        (None, _, Some(Some(_))) => format!("the down leaves {object}, which the up added"),
        (None, _, Some(None)) => {
            format!("the down adds {object}, which was not there before the up")
        }
        (None, _, None) => format!("{object} is there after the down but was not before the up"),
        (Some(_), Some(a), Some(Some(up))) if up == a => {
            format!("{object} differs: the up changes it and the down does not change it back")
        }
        (Some(_), Some(_), Some(_)) => {
            format!("{object} differs: the down does not put it back as it was")
        }
        (Some(_), Some(_), None) => format!("{object} differs after the down"),
    }
}

/// A unified diff of two definitions, three lines of context.
pub(super) fn unified(before: &str, after: &str) -> String {
    let mut before = before.to_string();
    let mut after = after.to_string();
    for text in [&mut before, &mut after] {
        if !text.ends_with('\n') {
            text.push('\n');
        }
    }
    similar::TextDiff::from_lines(&before, &after)
        .unified_diff()
        .context_radius(3)
        .header("before the up", "after the down")
        .to_string()
}

/// What goes with the relation `rel` (`presence` gone or new) among
/// `changes`: marked `taken`, counted by kind.
fn parts_of(
    rel: &str,
    presence: Presence,
    changes: &[Change<'_>],
    taken: &mut [bool],
) -> Vec<(String, usize)> {
    let mut parts: Vec<(String, usize)> = Vec::new();
    let mut count = |what: &str| match parts.iter_mut().find(|(w, _)| w == what) {
        Some((_, n)) => *n += 1,
        None => parts.push((what.to_string(), 1)),
    };
    let mut sequences = Vec::new();
    for (j, other) in changes.iter().enumerate() {
        if taken[j] || other.presence() != Some(presence) {
            continue;
        }
        // A sequence's settings and a foreign table's server are the
        // relation's own lines, not parts to count.
        if [format!("sequence {rel}"), format!("foreign table {rel}")]
            .iter()
            .any(|k| k == other.key)
        {
            taken[j] = true;
            continue;
        }
        let def = other.before.or(other.after).unwrap_or_default();
        if let Some(part) = belongs(other.key, def, rel) {
            taken[j] = true;
            count(part);
            if part == "column" {
                sequences.extend(sequences_in(def));
            }
        }
    }
    for seq in sequences {
        let qualified = if seq.contains('.') {
            seq
        } else {
            format!("{}.{seq}", rel.split_once('.').map_or("public", |(s, _)| s))
        };
        let key = format!("relation {qualified}");
        if let Some(j) = changes.iter().position(|o| o.key == key && o.presence() == Some(presence))
        {
            if !taken[j] {
                taken[j] = true;
                count("sequence");
            }
        }
        let settings = format!("sequence {qualified}");
        if let Some(j) =
            changes.iter().position(|o| o.key == settings && o.presence() == Some(presence))
        {
            taken[j] = true;
        }
    }
    parts
}

/// Tells `diffs` (from comparing the copy before the up with the copy
/// after the down of `version`) against `p`.
pub(super) fn tell(diffs: Vec<Difference>, version: &str, p: &Pictures<'_>) -> Told {
    let mut told = Told::default();
    let mut data = Vec::new();
    let mut changes = Vec::new();
    for d in diffs {
        // Data differences are the only ones named `table ...`.
        let key = d.object.as_str();
        let (before, after) = (definition(p.before, key), definition(p.after, key));
        if key.starts_with("table ") || (before.is_none() && after.is_none()) {
            let message = d
                .message
                .split_once(" does not restore: ")
                .map_or(d.message.clone(), |(_, m)| m.to_string());
            data.push(Difference { message, ..d });
            continue;
        }
        changes.push((d.object.clone(), before.map(str::to_string), after.map(str::to_string)));
    }
    let changes: Vec<Change<'_>> = changes
        .iter()
        .map(|(key, before, after)| Change {
            key,
            before: before.as_deref(),
            after: after.as_deref(),
        })
        .collect();
    let mut taken = vec![false; changes.len()];
    let mut lines = Vec::new();
    // Tables before sequences: a sequence a gone table's column owns goes
    // with the table.
    let mut order: Vec<usize> = (0..changes.len()).collect();
    order.sort_by_key(|i| {
        changes[*i].before.or(changes[*i].after).is_some_and(|d| d.starts_with("S "))
    });
    for i in order {
        let c = &changes[i];
        let (Some(presence), Some(rel)) = (c.presence(), c.key.strip_prefix("relation ")) else {
            continue;
        };
        if taken[i] {
            continue;
        }
        taken[i] = true;
        let definition = c.before.or(c.after).unwrap_or_default();
        let parts = parts_of(rel, presence, &changes, &mut taken);
        let rows = match presence {
            Presence::Gone => p.before_rows,
            Presence::New => p.after_rows,
        }
        .iter()
        .find(|t| t.table == rel)
        .map(|t| t.rows);
        let change = RelationChange {
            relation: rel.to_string(),
            kind: relation_kind(definition).to_string(),
            presence,
            rows,
            bytes: (p.bytes)(rel),
            parts,
        };
        let object = format!("relation {rel}");
        lines.push((i, object, who(&relation_phrase(&change), c, p.after_up)));
        told.relations.push(change);
    }
    for (i, c) in changes.iter().enumerate() {
        if taken[i] {
            continue;
        }
        let defines = c.key.starts_with("view ") || c.key.starts_with("function ");
        let object = match (c.before, c.after) {
            (Some(b), Some(a)) if !defines => format!("{} ({b} → {a})", c.key),
            _ => c.key.to_string(),
        };
        let mut message = who(&object, c, p.after_up);
        if let (true, Some(b), Some(a)) = (defines, c.before, c.after) {
            message.push_str(" (diff below)");
            told.definitions
                .push(DefinitionDiff { object: c.key.to_string(), diff: unified(b, a) });
        }
        lines.push((i, c.key.to_string(), message));
    }
    lines.sort_by_key(|(i, _, _)| *i);
    told.differences = lines
        .into_iter()
        .map(|(_, object, message)| Difference {
            version: Some(version.to_string()),
            object,
            message,
        })
        .chain(data)
        .collect();
    told
}

/// Tells the differences the down of `m` left (`diffs`, between `before`
/// the up and `after` the down) on the copy, which is back at the state
/// after the up when `at_up`: what the up did is told from what the down
/// did, and the relations gone or new are measured. `dropped` holds the
/// sizes of the tables the up drops, measured before it ran.
pub(super) fn tell_on_copy(
    client: &mut postgres::Client,
    prepared: &mut crate::pg::Prepared,
    version: &str,
    diffs: Vec<Difference>,
    (before, after): (&Snapshot, &Snapshot),
    dropped: &[(String, i64)],
    at_up: bool,
) -> Result<Told, RehearseError> {
    if diffs.is_empty() {
        return Ok(Told::default());
    }
    let db = |source| {
        RehearseError::Db(crate::pg::DbError::new("reading the copy after the up", source))
    };
    let after_up =
        if at_up { Some(Schema::read_prepared(client, prepared).map_err(db)?) } else { None };
    let mut sizes = measure(client, &to_measure(&diffs)).map_err(db)?;
    sizes.extend(dropped.iter().cloned());
    let bytes = |rel: &str| sizes.iter().find(|(r, _)| r == rel).map(|(_, b)| *b);
    let pictures = Pictures {
        before: &before.schema,
        before_rows: &before.tables,
        after: &after.schema,
        after_rows: &after.tables,
        after_up: after_up.as_ref(),
        bytes: &bytes,
    };
    Ok(tell(diffs, version, &pictures))
}

/// The tables `m`'s up drops, by the names the up writes: their size must
/// be measured before the up, while they are still there.
pub(super) fn dropped_by_up(m: &Migration) -> Vec<String> {
    m.up.statements
        .iter()
        .flat_map(|s| &s.facts.drops_tables)
        .map(|t| crate::pg::quote_qualified(t.schema.as_deref(), &t.name))
        .collect()
}

/// Bytes on disk (with indexes and TOAST) of the relations among `names`
/// (as SQL writes them) that exist, keyed `schema.name`.
pub(super) fn measure(
    client: &mut impl GenericClient,
    names: &[String],
) -> Result<Vec<(String, i64)>, postgres::Error> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let rows = client.query(
        "select n.nspname || '.' || c.relname, pg_total_relation_size(c.oid)
           from unnest($1::text[]) as x(name)
           join pg_class c on c.oid = to_regclass(x.name)
           join pg_namespace n on n.oid = c.relnamespace",
        &[&names],
    )?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// The relations a told down left gone or new that may exist on the copy
/// now, as SQL names them, to measure.
pub(super) fn to_measure(diffs: &[Difference]) -> Vec<String> {
    diffs
        .iter()
        .filter_map(|d| d.object.strip_prefix("relation "))
        .map(|rel| match rel.split_once('.') {
            Some((s, n)) => crate::pg::quote_qualified(Some(s), n),
            None => crate::pg::quote_ident(rel),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(objects: &[(&str, &str)]) -> Schema {
        Schema::of_pairs(objects)
    }

    fn diff(object: &str) -> Difference {
        Difference {
            version: Some("7".into()),
            object: object.into(),
            message: format!("down.sql of 7 does not restore: {object} ..."),
        }
    }

    fn rows(table: &str, rows: i64) -> TableChecksum {
        TableChecksum { table: table.into(), rows, checksum: String::new() }
    }

    /// A table with a serial key, an index, a constraint and a trigger.
    const ORDERS: [(&str, &str); 10] = [
        ("relation public.orders", "r rls=false force=false persistence=p acl={}"),
        ("relation public.orders_id_seq", "S rls=false force=false persistence=p acl={}"),
        ("sequence public.orders_id_seq", "bigint start=1 increment=1"),
        ("column public.orders.id", "bigint not null default nextval('orders_id_seq'::regclass)"),
        ("column public.orders.total", "numeric"),
        ("column public.orders.note", "text"),
        ("constraint public.orders.orders_pkey", "PRIMARY KEY (id)"),
        (
            "index public.orders_pkey",
            "CREATE UNIQUE INDEX orders_pkey ON public.orders USING btree (id)",
        ),
        ("trigger public.orders.touch", "CREATE TRIGGER touch BEFORE UPDATE ON orders ..."),
        (
            "index public.other_idx",
            "CREATE INDEX other_idx ON public.orders_archive USING btree (id)",
        ),
    ];

    #[test]
    fn a_gone_relation_is_one_line_with_its_size_and_what_went_with_it() {
        let before = schema(&ORDERS);
        let after = schema(&ORDERS[9..]);
        let after_up = schema(&[]);
        let diffs: Vec<Difference> = ORDERS[..9].iter().map(|(k, _)| diff(k)).collect();
        let bytes = |rel: &str| (rel == "public.orders").then_some(49_152);
        let p = Pictures {
            before: &before,
            before_rows: &[rows("public.orders", 200)],
            after: &after,
            after_rows: &[],
            after_up: Some(&after_up),
            bytes: &bytes,
        };
        let told = tell(diffs, "7", &p);
        let messages: Vec<&str> = told.differences.iter().map(|d| d.message.as_str()).collect();
        assert_eq!(
            messages,
            ["table public.orders (200 rows, 49.2 kB) with its 3 columns, 1 constraint, 1 index, 1 trigger and 1 sequence is gone: the up removes it and the down does not bring it back"]
        );
        assert_eq!(told.relations.len(), 1);
        assert_eq!(told.relations[0].presence, Presence::Gone);
        assert_eq!(told.differences[0].object, "relation public.orders");
    }

    #[test]
    fn a_new_relation_says_whether_the_up_left_it_or_the_down_made_it() {
        let before = schema(&[]);
        let after = schema(&ORDERS[..9]);
        let diffs: Vec<Difference> = ORDERS[..9].iter().map(|(k, _)| diff(k)).collect();
        let none = |_: &str| None;
        let left = schema(&ORDERS[..9]);
        let mut p = Pictures {
            before: &before,
            before_rows: &[],
            after: &after,
            after_rows: &[rows("public.orders", 3)],
            after_up: Some(&left),
            bytes: &none,
        };
        let told = tell(diffs.clone(), "7", &p);
        assert_eq!(told.differences.len(), 1, "{:#?}", told.differences);
        assert!(
            told.differences[0]
                .message
                .starts_with("the down leaves table public.orders (3 rows) with its 3 columns"),
            "{}",
            told.differences[0].message
        );
        let empty = schema(&[]);
        p.after_up = Some(&empty);
        let told = tell(diffs, "7", &p);
        assert!(
            told.differences[0].message.starts_with("the down adds table public.orders (3 rows)"),
            "{}",
            told.differences[0].message
        );
        assert!(told.differences[0].message.ends_with(", which was not there before the up"));
    }

    #[test]
    fn a_constraint_the_down_adds_is_not_called_new() {
        // Regression: "constraint public.t.c is new" for a constraint the
        // down itself added, which reads as if the up had made it.
        let before =
            schema(&[("relation public.t", "r"), ("constraint public.t.c", "CHECK (x > 0)")]);
        let after =
            schema(&[("relation public.t", "r"), ("constraint public.t.c2", "CHECK (x > 0)")]);
        let after_up = schema(&[("relation public.t", "r")]);
        let none = |_: &str| None;
        let p = Pictures {
            before: &before,
            before_rows: &[],
            after: &after,
            after_rows: &[],
            after_up: Some(&after_up),
            bytes: &none,
        };
        let told =
            tell(vec![diff("constraint public.t.c"), diff("constraint public.t.c2")], "7", &p);
        let messages: Vec<&str> = told.differences.iter().map(|d| d.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "constraint public.t.c is gone: the up removes it and the down does not bring it back",
                "the down adds constraint public.t.c2, which was not there before the up",
            ]
        );
        assert!(messages.iter().all(|m| !m.contains("is new")));
    }

    #[test]
    fn a_changed_view_is_a_diff_of_its_definition_and_data_lines_stay() {
        let view_before = " SELECT t.id,\n    t.name\n   FROM t\n  WHERE t.active;";
        let view_after =
            " SELECT t.id,\n    t.name,\n    t.created_at\n   FROM t\n  WHERE t.active;";
        let before = schema(&[("view public.v", view_before), ("column public.t.a", "integer")]);
        let after = schema(&[("view public.v", view_after), ("column public.t.a", "text")]);
        let none = |_: &str| None;
        let p = Pictures {
            before: &before,
            before_rows: &[],
            after: &after,
            after_rows: &[],
            after_up: None,
            bytes: &none,
        };
        let data = Difference {
            version: Some("7".into()),
            object: "table public.t".into(),
            message: "down.sql of 7 does not restore: data of table public.t differs (3 rows before, 2 after)".into(),
        };
        let told = tell(vec![diff("view public.v"), diff("column public.t.a"), data], "7", &p);
        let messages: Vec<&str> = told.differences.iter().map(|d| d.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "view public.v differs after the down (diff below)",
                "column public.t.a (integer → text) differs after the down",
                "data of table public.t differs (3 rows before, 2 after)",
            ]
        );
        assert_eq!(told.definitions.len(), 1);
        let d = &told.definitions[0].diff;
        assert!(d.starts_with("--- before the up\n+++ after the down\n@@ "), "{d}");
        assert!(d.contains("\n-    t.name\n+    t.name,\n+    t.created_at\n"), "{d}");
        assert!(!d.contains("WHERE t.active;\n-"), "unchanged lines are context only: {d}");
    }

    #[test]
    fn indexes_belong_to_their_table_by_definition_quoted_or_not() {
        assert_eq!(
            belongs("index public.i", "CREATE INDEX i ON public.t USING btree (a)", "public.t"),
            Some("index")
        );
        assert_eq!(
            belongs(
                "index public.i",
                "CREATE INDEX i ON public.\"T x\" USING btree (a)",
                "public.T x"
            ),
            Some("index")
        );
        assert_eq!(
            belongs("index public.i", "CREATE INDEX i ON public.tt USING btree (a)", "public.t"),
            None
        );
        assert_eq!(belongs("column public.tt.a", "int", "public.t"), None);
        assert_eq!(belongs("policy public.t.p", "", "public.t"), Some("policy"));
        assert_eq!(sequences_in("bigint default nextval('a.s'::regclass)"), ["a.s"]);
    }
}
