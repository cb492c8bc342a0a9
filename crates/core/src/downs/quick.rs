//! Downs exact by construction. When every statement of an up is in a
//! shape of `backstop_sql::up_shapes` and the schema picture after it holds
//! new objects beside old ones unchanged (or changed only where the
//! picture holds the part whole: privileges, row security, a
//! publication's tables, see `set_back`), the down deletes the rows the
//! up's text named, takes back its renames and column changes, drops what
//! it added and sets the rest back from the picture before: no
//! `pg_dump`. It is proved like any other: the up and this down in one
//! transaction that is rolled back, the part of the picture they touched
//! compared with the one before (schema and every touched table's rows).
//! Only then is the up applied for real. Anything else (a changed object,
//! a kind this reader does not drop, a proof that does not hold) leaves
//! the copy as it was, for the full way of `run`.

use std::collections::{BTreeMap, BTreeSet};

use backstop_sql::rewrite::{ident, qualified, relation};
use backstop_sql::up_shapes::{ColumnChange, Shape};
use backstop_sql::RelationName;
use postgres::Client;

use super::ddl::joined;
use super::{Down, DownsError, Status};
use crate::migrate::{self, Direction, Settings};
use crate::pg::fingerprint::Schema;
use crate::pg::tracked::{Kept, Tracked, Written};
use crate::pg::Prepared;
use crate::source::Migration;

/// How an up reads for the quick way: every statement in one of the
/// shapes of `backstop_sql::up_shapes`, in order, with its place.
pub(super) struct Reading {
    shapes: Vec<(String, Shape)>,
    /// The up runs in one transaction: its proof can run inside it, and
    /// a proof that does not hold leaves the copy as it was.
    pub transactional: bool,
    /// It may write the catalogs directly (`Migration::writes_catalogs`).
    catalogs: bool,
    /// The migration's version: a delete of rows inserted `ON CONFLICT DO
    /// NOTHING` matches the transaction that applied it.
    version: String,
}

/// The up of `m` read for the quick way: `None` when a statement of it is
/// in no such shape.
pub(super) fn read(m: &Migration) -> Option<Reading> {
    if m.up.statements.is_empty() || !m.problems.is_empty() {
        return None;
    }
    let transactional = m.up.in_one_transaction();
    let catalogs = m.writes_catalogs();
    let sqls: Vec<&str> = m.up.statements.iter().map(|s| s.sql.as_str()).collect();
    if let Some(types) = backstop_sql::up_shapes::enum_swap(&sqls) {
        let place = format!("{}:{}", m.up.path.display(), m.up.statements[0].position.line);
        let shapes = types.into_iter().map(|t| (place.clone(), Shape::Labels(t))).collect();
        return Some(Reading { shapes, transactional, catalogs, version: m.version.clone() });
    }
    let mut made = backstop_sql::up_shapes::Made::default();
    let mut shapes = Vec::new();
    for s in &m.up.statements {
        let place = format!("{}:{}", m.up.path.display(), s.position.line);
        for shape in backstop_sql::up_shapes::shapes(&s.sql, &mut made).ok()? {
            shapes.push((place.clone(), shape));
        }
    }
    Some(Reading { shapes, transactional, catalogs, version: m.version.clone() })
}

impl Reading {
    /// What the up changes in rows that were there, as `loses` says it.
    fn lost(&self) -> Vec<String> {
        self.shapes
            .iter()
            .filter_map(|(place, s)| match s {
                Shape::Data(what) => Some(format!(
                    "rows the up changed with {what} ({place}) cannot be put back by SQL"
                )),
                _ => None,
            })
            .collect()
    }

    /// The statements that take back its renames and column changes, the
    /// last first, and put enum labels back, from what the catalog says
    /// before the up.
    fn inverses(&self, client: &mut Client) -> Result<Option<Inverses>, postgres::Error> {
        let mut out = Vec::new();
        let mut labels = Inverses::default();
        for (_, shape) in self.shapes.iter().rev() {
            match shape {
                Shape::Labels(t) => {
                    let Some(back) = super::labels::back(client, t)? else { return Ok(None) };
                    labels.relabelled.push(back.key);
                    labels.last.extend(back.statements);
                }
                Shape::Rename(back) => out.push(back.clone()),
                Shape::Column { table, column, change } => {
                    let Some(back) = column_back(client, table, column, *change)? else {
                        return Ok(None);
                    };
                    out.push(back);
                }
                Shape::Options { table, keys } => out.push(options_back(client, table, keys)?),
                Shape::DropColumn { table, column } => {
                    let Some(back) = super::dropped_column::column(client, table, column)? else {
                        return Ok(None);
                    };
                    out.extend(back);
                }
                Shape::Inserted(i) => labels.inserted.push(i.clone()),
                Shape::Adds | Shape::Data(_) => {}
            }
        }
        Ok(Some(Inverses { first: out, version: self.version.clone(), ..labels }))
    }

    /// Whether the down gives every row back as it was: not where the up
    /// changed rows, nor where it dropped a column (its values are lost;
    /// the proof then compares the schema alone).
    fn keeps_rows(&self) -> bool {
        let drops_column = self.shapes.iter().any(|(_, s)| matches!(s, Shape::DropColumn { .. }));
        self.lost().is_empty() && !drops_column
    }

    /// The enum types whose labels the up changes.
    fn relabelled(&self) -> impl Iterator<Item = &RelationName> {
        self.shapes.iter().filter_map(|(_, s)| match s {
            Shape::Labels(t) => Some(t),
            _ => None,
        })
    }
}

/// The statements of a down read before its up: those run before the
/// drops of what the up added, and those after them.
#[derive(Default)]
pub(super) struct Inverses {
    first: Vec<String>,
    /// Enum labels put back: after the drops, so that nothing the up
    /// made still uses the type.
    last: Vec<String>,
    /// The picture's keys of those enum types, which may differ in their
    /// labels until then.
    relabelled: Vec<String>,
    /// Rows the up inserted into tables that were there, the last first:
    /// deleted before anything else, the tables named as the up left them.
    inserted: Vec<backstop_sql::rows::Inserted>,
    version: String,
}

/// The statement that puts the storage parameters `keys` of `table` back
/// as the catalog has them now (before the up): each set to its old
/// value, or reset where it had none.
fn options_back(
    client: &mut Client,
    table: &RelationName,
    keys: &[String],
) -> Result<String, postgres::Error> {
    let name = relation(table);
    let row = client.query_opt(
        "select coalesce(reloptions, '{}') from pg_class where oid = to_regclass($1)",
        &[&name],
    )?;
    let old: Vec<String> = row.map(|r| r.get(0)).unwrap_or_default();
    let mut set = Vec::new();
    let mut reset = Vec::new();
    for key in keys {
        let value = old.iter().find_map(|o| o.strip_prefix(&format!("{key}=")));
        match value {
            Some(v) => set.push(format!("{} = {}", ident(key), backstop_sql::rewrite::literal(v))),
            None => reset.push(ident(key)),
        }
    }
    let mut parts = Vec::new();
    if !reset.is_empty() {
        parts.push(format!("RESET ({})", reset.join(", ")));
    }
    if !set.is_empty() {
        parts.push(format!("SET ({})", set.join(", ")));
    }
    Ok(format!("ALTER TABLE {name} {}", parts.join(", ")))
}

/// The statement that puts a column's type, default or NOT NULL back as
/// the catalog has it now (before the up); `None` when there is no such
/// column yet.
fn column_back(
    client: &mut Client,
    table: &RelationName,
    column: &str,
    change: ColumnChange,
) -> Result<Option<String>, postgres::Error> {
    let name = relation(table);
    let row = client.query_opt(
        "select format_type(a.atttypid, a.atttypmod), pg_get_expr(d.adbin, d.adrelid), a.attnotnull
           from pg_attribute a
           left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
          where a.attrelid = to_regclass($1) and a.attname = $2 and not a.attisdropped",
        &[&name, &column],
    )?;
    let Some(row) = row else { return Ok(None) };
    let (ty, default, not_null): (String, Option<String>, bool) =
        (row.get(0), row.get(1), row.get(2));
    let col = ident(column);
    Ok(Some(match change {
        ColumnChange::Type => super::ddl::retype(&name, &col, &ty, &ty, None),
        ColumnChange::Default => match default {
            Some(d) => format!("ALTER TABLE {name} ALTER COLUMN {col} SET DEFAULT {d}"),
            None => format!("ALTER TABLE {name} ALTER COLUMN {col} DROP DEFAULT"),
        },
        ColumnChange::NotNull if not_null => {
            format!("ALTER TABLE {name} ALTER COLUMN {col} SET NOT NULL")
        }
        ColumnChange::NotNull => format!("ALTER TABLE {name} ALTER COLUMN {col} DROP NOT NULL"),
    }))
}

/// A relation of the picture: its schema and name.
type Rel = (String, String);

/// The new objects, by what their drop looks like.
#[derive(Default)]
struct Added {
    tables: BTreeMap<char, Vec<Rel>>,
    columns: BTreeMap<Rel, Vec<String>>,
    constraints: Vec<(Rel, String)>,
    indexes: Vec<(Rel, Rel)>,
    triggers: Vec<(Rel, String)>,
    policies: Vec<(Rel, String)>,
    routines: Vec<String>,
    types: Vec<(bool, Rel)>,
    schemas: Vec<String>,
    extensions: Vec<String>,
    /// User mappings (user, server), servers and wrappers.
    mappings: Vec<(String, String)>,
    servers: Vec<String>,
    wrappers: Vec<String>,
    /// Tables that were there, added to a publication: (publication, table).
    publications: Vec<(String, String)>,
}

/// `schema.name` of a key's rest, cut into exactly `n` parts: `None`
/// where a name holds a dot (the key cannot say where names end).
fn parts(rest: &str, n: usize) -> Option<Vec<String>> {
    let p: Vec<String> = rest.split('.').map(str::to_string).collect();
    (p.len() == n).then_some(p)
}

/// The table an index is on, from `pg_get_indexdef`'s `… ON [ONLY] s.t USING …`.
fn index_table(definition: &str) -> Option<Rel> {
    let (_, after) = definition.split_once(" ON ")?;
    let after = after.strip_prefix("ONLY ").unwrap_or(after);
    let name = after.split(" USING ").next()?;
    let t = parts(name, 2)?;
    let unquote = |s: &str| s.trim_matches('"').replace("\"\"", "\"");
    Some((unquote(&t[0]), unquote(&t[1])))
}

/// The drops that take `after` back to `before` (two pictures of the
/// same owners), when `after` only adds to `before`; `None` otherwise.
/// `relabelled` names the enum types whose labels may differ (put back
/// apart).
pub(super) fn drops(before: &Schema, after: &Schema, relabelled: &[String]) -> Option<Vec<String>> {
    let old: BTreeMap<&str, &str> =
        before.objects.iter().map(|o| (o.key.as_str(), o.definition.as_str())).collect();
    let now: BTreeMap<&str, &str> =
        after.objects.iter().map(|o| (o.key.as_str(), o.definition.as_str())).collect();
    // Something that was there changed or went: no add.
    let same = |k: &str, d: &str| match now.get(k) {
        Some(n) => {
            *n == d || (relabelled.iter().any(|r| r == k) && super::labels::only_labels(d, n))
        }
        None => false,
    };
    // Something that was there changed in a part the picture holds whole
    // (privileges, row security, a publication's tables): set back from
    // the picture before, after the drops. Any other change: no add.
    let publications: Vec<&str> = old
        .keys()
        .chain(now.keys())
        .filter_map(|k| k.strip_prefix("publication "))
        .filter(|p| !p.starts_with("table ") && !p.starts_with("schema "))
        .collect();
    let mut back = Vec::new();
    for (k, d) in old.iter().filter(|(k, d)| !same(k, d)) {
        back.extend(super::set_back::statements(k, d, now.get(k).copied(), &publications)?);
    }
    // A comment on what was there, changed, lost or new: put back the full
    // way (a comment on what the up made goes with it).
    let comments = |s: &Schema| -> BTreeMap<String, String> {
        let of = s.cosmetic.iter().filter(|o| o.commented().is_some());
        of.map(|o| (o.key.clone(), o.definition.clone())).collect()
    };
    let (had, has) = (comments(before), comments(after));
    let on_old = |key: &String| {
        key.strip_prefix(crate::pg::comments::PREFIX).is_some_and(|k| old.contains_key(k))
    };
    if had.iter().any(|(k, d)| has.get(k) != Some(d))
        || has.keys().any(|k| !had.contains_key(k) && on_old(k))
    {
        return None;
    }
    let new: Vec<(&str, &str)> =
        now.iter().filter(|(k, _)| !old.contains_key(*k)).map(|(k, d)| (*k, *d)).collect();
    let mut added = Added::default();
    let made: BTreeSet<Rel> = new
        .iter()
        .filter_map(|(k, _)| k.strip_prefix("relation "))
        .filter_map(|r| parts(r, 2))
        .map(|p| (p[0].clone(), p[1].clone()))
        .collect();
    for (key, definition) in &new {
        let (kind, rest) = key_kind(key)?;
        match kind {
            "relation" => {
                let p = parts(rest, 2)?;
                let relkind = definition.chars().next()?;
                added.tables.entry(relkind).or_default().push((p[0].clone(), p[1].clone()));
            }
            "view" | "sequence" => {}
            "column" | "constraint" | "trigger" | "policy" | "not null" => {
                // A member's name may hold dots (a policy "Users can
                // read."); a table's that does is misread, and the proof
                // then refuses the drop.
                let p: Vec<String> = rest.splitn(3, '.').map(str::to_string).collect();
                if p.len() != 3 {
                    return None;
                }
                let rel = (p[0].clone(), p[1].clone());
                // A member a child only inherits goes with its parent's
                // (dropping it on the child first fails: it is inherited).
                if made.contains(&rel) || only_inherited(definition) {
                    continue;
                }
                let member = p[2].clone();
                match kind {
                    "column" => added.columns.entry(rel).or_default().push(member),
                    "constraint" => added.constraints.push((rel, member)),
                    "trigger" => added.triggers.push((rel, member)),
                    "policy" => added.policies.push((rel, member)),
                    _ => return None,
                }
            }
            "index" => {
                let p = parts(rest, 2)?;
                let table = index_table(definition)?;
                if !made.contains(&table) {
                    added.indexes.push((table, (p[0].clone(), p[1].clone())));
                }
            }
            "function" => {
                let (name, args) = rest.split_once('(')?;
                let p = parts(name, 2)?;
                added.routines.push(format!("{}({args}", qualified(&p[0], &p[1])));
            }
            "type" => {
                let p = parts(rest, 2)?;
                added.types.push((definition.starts_with('d'), (p[0].clone(), p[1].clone())));
            }
            "user mapping" => {
                let (user, server) = rest.rsplit_once(" server ")?;
                added.mappings.push((user.to_string(), server.to_string()));
            }
            "server" => added.servers.push(rest.to_string()),
            "foreign data wrapper" => added.wrappers.push(rest.to_string()),
            "schema" => added.schemas.push(rest.to_string()),
            "extension" => added.extensions.push(rest.to_string()),
            "publication table" => {
                let (publication, table) = super::set_back::member(rest, &publications)?;
                let made_here = made.iter().any(|(s, n)| qualified(s, n) == table);
                if !made_here {
                    added.publications.push((publication, table));
                }
            }
            _ => return None,
        }
    }
    let mut out = statements(added);
    out.extend(back);
    Some(out)
}

/// Whether a column's or constraint's definition in the picture says it
/// is only inherited (not also declared by its table): it goes when its
/// parent's does.
fn only_inherited(definition: &str) -> bool {
    definition.contains(" inherited") && !definition.contains(" inherited and local")
}

/// A key's kind and the rest: `not null`, `user mapping` and `foreign
/// data wrapper` are the kinds of several words this reader drops; any
/// other kind of several words is not.
fn key_kind(key: &str) -> Option<(&str, &str)> {
    for kind in ["not null", "user mapping", "foreign data wrapper", "publication table"] {
        if let Some(rest) = key.strip_prefix(kind).and_then(|r| r.strip_prefix(' ')) {
            return Some((kind, rest));
        }
    }
    key.split_once(' ')
}

fn list(rels: &[Rel]) -> String {
    rels.iter().map(|(s, n)| qualified(s, n)).collect::<Vec<_>>().join(", ")
}

/// The drops in the order dependents go first.
fn statements(a: Added) -> Vec<String> {
    let mut out = Vec::new();
    for (publication, table) in &a.publications {
        out.push(format!("ALTER PUBLICATION {} DROP TABLE {table}", ident(publication)));
    }
    for (user, server) in &a.mappings {
        let user = if user == "public" { "PUBLIC".to_string() } else { ident(user) };
        out.push(format!("DROP USER MAPPING IF EXISTS FOR {user} SERVER {}", ident(server)));
    }
    for (rel, name) in &a.triggers {
        out.push(format!(
            "DROP TRIGGER IF EXISTS {} ON {}",
            ident(name),
            qualified(&rel.0, &rel.1)
        ));
    }
    for (rel, name) in &a.policies {
        out.push(format!("DROP POLICY IF EXISTS {} ON {}", ident(name), qualified(&rel.0, &rel.1)));
    }
    let kind = |k: char| a.tables.get(&k).map(|v| v.as_slice()).unwrap_or(&[]);
    for (k, what) in [('v', "VIEW"), ('m', "MATERIALIZED VIEW")] {
        if !kind(k).is_empty() {
            out.push(format!("DROP {what} IF EXISTS {}", list(kind(k))));
        }
    }
    for (rel, name) in &a.constraints {
        out.push(format!(
            "ALTER TABLE {} DROP CONSTRAINT IF EXISTS {}",
            qualified(&rel.0, &rel.1),
            ident(name)
        ));
    }
    for (k, what) in [('f', "FOREIGN TABLE"), ('r', "TABLE"), ('p', "TABLE")] {
        if !kind(k).is_empty() {
            out.push(format!("DROP {what} IF EXISTS {}", list(kind(k))));
        }
    }
    for (rel, columns) in &a.columns {
        let cols: Vec<String> =
            columns.iter().map(|c| format!("DROP COLUMN {}", ident(c))).collect();
        out.push(format!("ALTER TABLE {} {}", qualified(&rel.0, &rel.1), cols.join(", ")));
    }
    for (_, index) in &a.indexes {
        out.push(format!("DROP INDEX IF EXISTS {}", qualified(&index.0, &index.1)));
    }
    for s in &a.servers {
        out.push(format!("DROP SERVER IF EXISTS {}", ident(s)));
    }
    for w in &a.wrappers {
        out.push(format!("DROP FOREIGN DATA WRAPPER IF EXISTS {}", ident(w)));
    }
    if !kind('S').is_empty() {
        out.push(format!("DROP SEQUENCE IF EXISTS {}", list(kind('S'))));
    }
    if !a.routines.is_empty() {
        out.push(format!("DROP ROUTINE IF EXISTS {}", a.routines.join(", ")));
    }
    for (domain, t) in &a.types {
        let what = if *domain { "DOMAIN" } else { "TYPE" };
        out.push(format!("DROP {what} IF EXISTS {}", qualified(&t.0, &t.1)));
    }
    if !a.schemas.is_empty() {
        let names: Vec<String> = a.schemas.iter().map(|s| ident(s)).collect();
        out.push(format!("DROP SCHEMA IF EXISTS {}", names.join(", ")));
    }
    for x in &a.extensions {
        out.push(format!("DROP EXTENSION IF EXISTS {}", ident(x)));
    }
    out
}

fn db(context: &'static str) -> impl Fn(postgres::Error) -> DownsError {
    move |source| DownsError::Db(crate::pg::DbError::new(context, source))
}

/// A down proved the quick way: its statements, and the cosmetic
/// differences it leaves (a column added back comes last).
pub(super) struct Proved {
    statements: Vec<String>,
    cosmetic: Vec<String>,
    /// What the down leaves written otherwise but the same as read.
    also: Vec<(String, String)>,
    /// What the look right after the up saw, where nothing ran between
    /// the up and that look: the picture once the up commits.
    after_up: Option<Kept>,
    /// The tables the up (and the down's first statements) may have
    /// written: where the look was not right after the up, the picture
    /// reads their rows again once the up commits.
    up_wrote: Written,
}

/// How the quick way went inside the trial.
enum Tried {
    /// Not an add after all (or a kind this reader does not drop).
    Not,
    Proved(Proved),
    /// The down did not give the picture before back.
    Failed,
}

/// How applying an up the quick way went.
pub(super) enum Quick {
    /// Its down is proved and the up is applied.
    Proved(Proved),
    /// Its up fails (the statement, its place and the server's error);
    /// nothing changed.
    UpFails(Box<migrate::Failure>),
    /// Not proved this way; nothing changed: the full way may go on.
    Not,
}

/// The statements that take back the up's renames and column changes,
/// read from the catalog before the up (whose picture `tracked` is then
/// brought up to): `None` when a column it changes is not there yet.
pub(super) fn before(
    client: &mut Client,
    (tracked, prepared): (&mut Tracked, &mut Prepared),
    reading: &Reading,
) -> Result<Option<Inverses>, DownsError> {
    tracked.refresh(&mut *client, &mut *prepared).map_err(db("reading the schema"))?;
    if reading.catalogs {
        tracked.catalogs_written();
    }
    reading.inverses(client).map_err(db("reading the columns"))
}

/// Applies the up of `m`, which runs in one transaction, and proves the
/// quick down inside that transaction (a savepoint rolled back to): the
/// up is committed only when the down is proved, so where it is not the
/// copy is as it was, for the full way.
pub(super) fn apply_proved(
    client: &mut Client,
    settings: &Settings,
    (tracked, prepared): (&mut Tracked, &mut Prepared),
    m: &Migration,
    reading: &Reading,
    progress: &mut dyn migrate::Progress,
) -> Result<Quick, DownsError> {
    let Some(inverses) = before(client, (&mut *tracked, &mut *prepared), reading)? else {
        return Ok(Quick::Not);
    };
    let rows_too = reading.keeps_rows();
    let group = migrate::Group::whole(Direction::Up, true, vec![m]);
    let mut tried = Tried::Not;
    let (outcome, _) = migrate::attempt(client, settings, &group, progress, |tx| {
        let apply = |e: postgres::Error| {
            migrate::ApplyError::Db(crate::pg::DbError::new("proving a down", e))
        };
        tx.batch_execute("SAVEPOINT backstop_quick").map_err(apply)?;
        tried =
            prove((tx, settings), tracked, prepared, &inverses, rows_too).unwrap_or(Tried::Failed);
        tx.batch_execute("ROLLBACK TO SAVEPOINT backstop_quick").map_err(apply)?;
        Ok(matches!(tried, Tried::Proved(_)))
    })?;
    if let Err(f) = outcome {
        return Ok(Quick::UpFails(Box::new((*f).clone())));
    }
    Ok(match tried {
        Tried::Proved(mut proved) => {
            // Committed as the look after the up saw it: the picture takes
            // that look in, with the tables the up wrote, which it read.
            match proved.after_up.take() {
                Some(kept) => {
                    tracked.adopt(client, prepared, kept).map_err(db("reading the schema"))?;
                    progress.take_written();
                }
                None => tracked.wrote(proved.up_wrote.clone()),
            }
            Quick::Proved(proved)
        }
        Tried::Not | Tried::Failed => Quick::Not,
    })
}

/// Proves the quick down of an up already applied outside a transaction
/// (`inverses` read before it), in a transaction that is rolled back:
/// its statements when they give the picture before back, else why not.
pub(super) fn prove_applied(
    (client, settings): (&mut Client, &Settings),
    (tracked, prepared): (&Tracked, &mut Prepared),
    inverses: &Inverses,
    reading: &Reading,
) -> Result<Result<Proved, String>, DownsError> {
    let mut tx = client.transaction().map_err(db("starting a transaction"))?;
    let tried = prove((&mut tx, settings), tracked, prepared, inverses, reading.keeps_rows());
    tx.rollback().map_err(db("rolling back"))?;
    Ok(match tried {
        Ok(Tried::Proved(proved)) => Ok(proved),
        Ok(Tried::Not) => Err("the up changed something besides adding".into()),
        Ok(Tried::Failed) => Err("the drops of what it added leave the schema changed".into()),
        Err(e) => {
            Err(format!("the drops of what it added fail: {}", crate::pg::conn::error_chain(&e)))
        }
    })
}

/// The report of a down proved the quick way.
pub(super) fn down(m: &Migration, proved: &Proved, reading: &Reading) -> Down {
    let mut lost = reading.lost();
    let status = if lost.is_empty() { Status::Computed } else { Status::Irreversible };
    lost.extend(m.dropped_values().into_iter().map(|(_, what)| what));
    let mut notes = vec!["read from its statements: the down takes back what they changed and \
                          drops what they added"
        .to_string()];
    for t in reading.relabelled() {
        notes.push(format!(
            "type {} goes back to the labels it had before the up: a row holding a label the \
             up added makes the down fail, changing nothing, until the row is changed",
            relation(t)
        ));
    }
    notes.extend(proved.cosmetic.iter().map(|c| format!("cosmetic: {c}")));
    Down {
        version: m.version.clone(),
        name: m.name.clone(),
        status,
        sql: Some(super::write::render(m, &proved.statements, &lost, true, false)),
        proved: true,
        replaces: false,
        loses: lost,
        notes,
        replacement: None,
        start: None,
        end: None,
        own: None,
        touched: Vec::new(),
        up_failed: None,
        also: proved.also.clone(),
    }
}

/// In the trial's transaction after the up: the inverses, then the drops
/// of what is left added, then the enum labels put back, then the picture
/// compared with the one before the up (and each touched table's rows,
/// where no row is lost). Cosmetic differences are said, as the full way
/// says them, and do not fail the proof.
fn prove(
    (tx, settings): (&mut postgres::Transaction<'_>, &Settings),
    tracked: &Tracked,
    prepared: &mut Prepared,
    inverses: &Inverses,
    rows_too: bool,
) -> Result<Tried, postgres::Error> {
    let mut first = Vec::new();
    for i in &inverses.inserted {
        match super::data::delete_of(&mut *tx, i, &inverses.version)? {
            Ok(delete) => first.push(delete),
            Err(_) => return Ok(Tried::Not),
        }
    }
    first.extend(inverses.first.iter().cloned());
    let right_after_up = first.is_empty();
    if !right_after_up {
        tx.batch_execute(&joined(&first, settings))?;
    }
    let written = Written::here(tx)?;
    let up_wrote = written.clone();
    let (before, after, kept) = tracked.look_kept(tx, prepared, written)?;
    let after_up = right_after_up.then_some(kept);
    let Some(drops) = drops(&before.schema, &after.schema, &inverses.relabelled) else {
        return Ok(Tried::Not);
    };
    if !drops.is_empty() {
        tx.batch_execute(&joined(&drops, settings))?;
    }
    if !inverses.last.is_empty() {
        tx.batch_execute(&joined(&inverses.last, settings))?;
    }
    // With nothing run since the look (a rename taken back, nothing added),
    // a second look would see what the first saw.
    let (was, now) = if drops.is_empty() && inverses.last.is_empty() {
        (before, after)
    } else {
        let written = Written::here(tx)?;
        tracked.look(tx, prepared, written)?
    };
    let same = was.schema.differences(&now.schema).is_empty()
        && (!rows_too || same_rows(&was.tables, &now.tables));
    let mut statements = first;
    statements.extend(drops);
    statements.extend(inverses.last.iter().cloned());
    let cosmetic = was.schema.cosmetic_differences(&now.schema);
    let also = crate::adopt::keyed::written_otherwise(&was.schema, &now.schema);
    let proved = Proved { statements, cosmetic, also, after_up, up_wrote };
    Ok(if same { Tried::Proved(proved) } else { Tried::Failed })
}

/// Whether two lists of table contents hold the same rows, table by table.
fn same_rows(
    a: &[crate::pg::checksum::TableChecksum],
    b: &[crate::pg::checksum::TableChecksum],
) -> bool {
    let key =
        |t: &crate::pg::checksum::TableChecksum| (t.table.clone(), t.rows, t.checksum.clone());
    let mut x: Vec<_> = a.iter().map(key).collect();
    let mut y: Vec<_> = b.iter().map(key).collect();
    x.sort();
    y.sort();
    x == y
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(objects: &[(&str, &str)]) -> Schema {
        Schema::of_pairs(objects)
    }

    #[test]
    fn what_an_up_added_is_dropped_dependents_first() {
        let before =
            schema(&[("relation public.old", "r rls=false"), ("column public.old.id", "integer")]);
        let after = schema(&[
            ("relation public.old", "r rls=false"),
            ("column public.old.id", "integer"),
            ("column public.old.tag_id", "integer"),
            ("constraint public.old.old_tag_fk", "FOREIGN KEY (tag_id) REFERENCES tags(id)"),
            ("relation public.tags", "r rls=false"),
            ("column public.tags.id", "integer"),
            ("relation public.Tag_1", "r rls=false"),
            (
                "index public.tags_pkey",
                "CREATE UNIQUE INDEX tags_pkey ON public.tags USING btree (id)",
            ),
            ("index public.old_tag", "CREATE INDEX old_tag ON public.old USING btree (tag_id)"),
            ("relation public.tagged", "v rls=false"),
            ("view public.tagged", " SELECT 1"),
            ("type public.mood", "e a,b acl="),
            ("function public.f(a integer)", "CREATE FUNCTION …"),
        ]);
        assert_eq!(
            drops(&before, &after, &[]).unwrap(),
            [
                "DROP VIEW IF EXISTS public.tagged",
                "ALTER TABLE public.old DROP CONSTRAINT IF EXISTS old_tag_fk",
                "DROP TABLE IF EXISTS public.\"Tag_1\", public.tags",
                "ALTER TABLE public.old DROP COLUMN tag_id",
                "DROP INDEX IF EXISTS public.old_tag",
                "DROP ROUTINE IF EXISTS public.f(a integer)",
                "DROP TYPE IF EXISTS public.mood",
            ]
        );
    }

    #[test]
    fn an_up_that_changes_what_was_there_is_no_add() {
        let before = schema(&[("relation public.old", "r rls=false")]);
        let changed = schema(&[("relation public.old", "r rls=true")]);
        assert!(drops(&before, &changed, &[]).is_none());
        let gone = schema(&[]);
        assert!(drops(&before, &gone, &[]).is_none());
        let dotted =
            schema(&[("relation public.old", "r rls=false"), ("relation public.a.b", "r")]);
        assert!(
            drops(&before, &dotted, &[]).is_none(),
            "a name with a dot cannot be read from the key"
        );
        let other = schema(&[("relation public.old", "r rls=false"), ("rule public.old.r", "…")]);
        assert!(drops(&before, &other, &[]).is_none(), "a kind this reader does not drop");
    }

    #[test]
    fn a_comment_on_what_was_there_is_put_back_the_full_way() {
        let comment = |key: &str, text: &str| crate::pg::fingerprint::Object {
            key: format!("comment on {key}"),
            definition: text.into(),
        };
        let mut before = schema(&[("relation public.old", "r rls=false")]);
        let mut after =
            schema(&[("relation public.old", "r rls=false"), ("relation public.new", "r")]);
        after.cosmetic = vec![comment("relation public.new", "made here")];
        assert_eq!(drops(&before, &after, &[]).unwrap(), ["DROP TABLE IF EXISTS public.new"]);
        after.cosmetic.push(comment("relation public.old", "commented"));
        assert!(drops(&before, &after, &[]).is_none(), "a comment on an old table");
        before.cosmetic = vec![comment("relation public.old", "was")];
        after.cosmetic.pop();
        assert!(drops(&before, &after, &[]).is_none(), "a comment lost");
    }
}
