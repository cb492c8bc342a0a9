//! Working out a down from two pictures of one database: `before` (the
//! state to go back to) and `after` (the state now). Objects are paired by
//! catalog identity, else by name; what the up made is dropped, what it
//! removed or changed is put back from `before`'s definitions, columns are
//! compared one by one from the catalog.
//!
//! Two phases, because names must agree before definitions are compared:
//! [`renames`] gives every renamed object its old name back; [`plan`]
//! works out the rest once those renames are in place. The statements go
//! in an order that dependencies allow: dependents dropped first, columns
//! changed, created objects dropped, changed ones put back, removed ones
//! made again, defaults and sequence values last.

use std::collections::{HashMap, HashSet};

use backstop_lint::rewrite;

use super::catalog::{Catalog, Column, Enum, Table};
use super::ddl;
use super::toc::{Dump, Entry};
use backstop_lint::rewrite::{ident as quote_ident, literal as quote_literal, qualified};

/// One side of the comparison.
pub(super) struct State {
    pub dump: Dump,
    pub catalog: Catalog,
}

/// A computed down before it is proved.
#[derive(Debug, Default, Clone)]
pub(super) struct Plan {
    pub statements: Vec<String>,
    /// What cannot come back from DDL, each object named.
    pub loses: Vec<String>,
    pub notes: Vec<String>,
}

impl Plan {
    fn push(&mut self, sql: impl Into<String>) {
        let sql = sql.into();
        for s in rewrite::statements(&sql).unwrap_or_else(|| vec![sql.clone()]) {
            self.statements.push(s);
        }
    }

    /// Every statement of an entry's definition.
    fn push_entry(&mut self, e: &Entry) {
        self.push(e.sql.clone());
    }
}

/// The entries of `before` and `after` that are one object.
struct Pairs {
    /// after index → before index.
    of_after: HashMap<usize, usize>,
    /// before index → after index.
    of_before: HashMap<usize, usize>,
}

fn pair(before: &Dump, after: &Dump) -> Pairs {
    let mut by_identity: HashMap<String, usize> = HashMap::new();
    let mut by_name: HashMap<String, usize> = HashMap::new();
    for (i, e) in before.entries.iter().enumerate() {
        by_identity.insert(e.identity(before), i);
        by_name.insert(e.by_name(), i);
    }
    let mut pairs = Pairs { of_after: HashMap::new(), of_before: HashMap::new() };
    for (i, e) in after.entries.iter().enumerate() {
        if let Some(&b) = by_identity.get(&e.identity(after)) {
            pairs.of_after.insert(i, b);
            pairs.of_before.insert(b, i);
        }
    }
    // What a down made again has new OIDs: the same kind and name is the
    // same object.
    for (i, e) in after.entries.iter().enumerate() {
        if pairs.of_after.contains_key(&i) {
            continue;
        }
        if let Some(&b) = by_name.get(&e.by_name()) {
            if !pairs.of_before.contains_key(&b) {
                pairs.of_after.insert(i, b);
                pairs.of_before.insert(b, i);
            }
        }
    }
    pairs
}

/// The tables of `before` and `after` that are one table: by OID, else by
/// name.
fn table_pairs<'c>(before: &'c Catalog, after: &'c Catalog) -> Vec<(&'c Table, &'c Table)> {
    let mut out = Vec::new();
    let mut taken = HashSet::new();
    for a in &after.tables {
        if let Some(b) = before.table(a.oid) {
            out.push((b, a));
            taken.insert(b.oid);
        }
    }
    for a in &after.tables {
        if before.table(a.oid).is_some() {
            continue;
        }
        if let Some(b) = before.table_named(&a.schema, &a.name).filter(|b| !taken.contains(&b.oid))
        {
            out.push((b, a));
            taken.insert(b.oid);
        }
    }
    out
}

/// Columns of one table pair that are one column: by position when the
/// table is the same object, then by name among the rest (a column a down
/// added back has a new position).
fn column_pairs<'t>(before: &'t Table, after: &'t Table) -> Vec<(&'t Column, &'t Column)> {
    let mut out: Vec<(&Column, &Column)> = Vec::new();
    if before.oid == after.oid {
        for a in &after.columns {
            if let Some(b) = before.columns.iter().find(|b| b.attnum == a.attnum) {
                out.push((b, a));
            }
        }
    }
    for a in &after.columns {
        if out.iter().any(|(_, x)| x.attnum == a.attnum) {
            continue;
        }
        let free = |b: &&Column| b.name == a.name && !out.iter().any(|(x, _)| x.attnum == b.attnum);
        if let Some(b) = before.columns.iter().find(free) {
            out.push((b, a));
        }
    }
    out
}

const RENAMED_FIRST: [&str; 1] = ["SCHEMA"];

/// The statements that give every renamed object (and column) its name
/// from `before` back.
pub(super) fn renames(before: &State, after: &State) -> Vec<String> {
    let pairs = pair(&before.dump, &after.dump);
    let mut first = Vec::new();
    let mut objects = Vec::new();
    let mut members = Vec::new();
    for (&a, &b) in &pairs.of_after {
        let (ae, be) = (&after.dump.entries[a], &before.dump.entries[b]);
        if ae.name == be.name && ae.schema == be.schema {
            continue;
        }
        let Some(sql) = ddl::rename_back(be, ae) else { continue };
        let list = if RENAMED_FIRST.contains(&ae.kind.as_str()) {
            &mut first
        } else if ddl::is_member(&ae.kind) {
            &mut members
        } else {
            &mut objects
        };
        list.push((a, sql));
    }
    let mut columns = Vec::new();
    for (b, a) in table_pairs(&before.catalog, &after.catalog) {
        if b.oid != a.oid {
            continue;
        }
        for (bc, ac) in column_pairs(b, a) {
            if bc.name != ac.name {
                columns.push(format!(
                    "ALTER TABLE {} RENAME COLUMN {} TO {}",
                    b.qualified(),
                    quote_ident(&ac.name),
                    quote_ident(&bc.name)
                ));
            }
        }
    }
    let mut out = Vec::new();
    for list in [&mut first, &mut objects, &mut members] {
        list.sort();
        out.extend(list.drain(..).map(|(_, s)| s));
    }
    out.extend(columns);
    out
}

/// The views (by OID in `after`) that depend on the given relations and
/// columns, through any number of views.
pub(super) type Dependents<'f> =
    dyn FnMut(&[u32], &[(u32, i16)]) -> Result<Vec<u32>, postgres::Error> + 'f;

/// What the comparison found, shared by the steps.
struct Work<'s> {
    before: &'s State,
    after: &'s State,
    pairs: Pairs,
    /// After's tables that stay (paired), by OID.
    kept_tables: HashSet<u32>,
    /// After's relations (by OID) to drop and make again from `before`.
    rebuild: HashSet<u32>,
    plan: Plan,
}

impl Work<'_> {
    /// Whether `e` is part of a table that stays, which the catalog
    /// comparison puts back (defaults, row security, identity).
    fn table_part(&self, dump: &Dump, e: &Entry, after_side: bool) -> bool {
        if !ddl::part_of_table(e) {
            return false;
        }
        let owners =
            if after_side { &self.after.catalog.owners } else { &self.before.catalog.owners };
        let Some(parent) = dump.parent_of(e, owners) else { return false };
        if after_side {
            self.kept_tables.contains(&parent.oid)
        } else {
            let paired = dump
                .entries
                .iter()
                .position(|x| x.id == parent.id)
                .and_then(|i| self.pairs.of_before.get(&i));
            paired.is_some_and(|a| self.kept_tables.contains(&self.after.dump.entries[*a].oid))
        }
    }

    fn created(&self, i: usize) -> bool {
        !self.pairs.of_after.contains_key(&i)
    }

    /// The before entry paired with after entry `i`, when their
    /// definitions differ.
    fn changed(&self, i: usize) -> Option<&Entry> {
        let b = &self.before.dump.entries[*self.pairs.of_after.get(&i)?];
        (b.sql != self.after.dump.entries[i].sql).then_some(b)
    }

    fn parent_created(&self, e: &Entry) -> bool {
        let dump = &self.after.dump;
        dump.parent_of(e, &self.after.catalog.owners)
            .and_then(|p| dump.entries.iter().position(|x| x.id == p.id))
            .is_some_and(|i| self.created(i))
    }
}

fn is_view(kind: &str) -> bool {
    kind == "VIEW" || kind == "MATERIALIZED VIEW"
}

/// The down from `after` back to `before`, renames already undone.
pub(super) fn plan(
    before: &State,
    after: &State,
    dependents: &mut Dependents<'_>,
) -> Result<Plan, postgres::Error> {
    let pairs = pair(&before.dump, &after.dump);
    let tables = table_pairs(&before.catalog, &after.catalog);
    let kept_tables = tables.iter().map(|(_, a)| a.oid).collect();
    let mut work =
        Work { before, after, pairs, kept_tables, rebuild: HashSet::new(), plan: Plan::default() };
    let swaps = enum_swaps(&before.catalog, &after.catalog);
    work.rebuild = to_rebuild(&work, &tables, &swaps, dependents)?;
    drop_dependents(&mut work);
    columns(&mut work, &tables, &swaps);
    drop_created(&mut work);
    put_back_changed(&mut work);
    recreate(&mut work);
    defaults_and_sequences(&mut work, &tables, &swaps);
    Ok(work.plan)
}

/// Enum types whose labels the up changed: (before, after).
fn enum_swaps<'c>(before: &'c Catalog, after: &'c Catalog) -> Vec<(&'c Enum, &'c Enum)> {
    after
        .enums
        .iter()
        .filter_map(|a| {
            let b = before.enum_of(a.oid).or_else(|| before.enum_named(&a.schema, &a.name))?;
            (b.labels != a.labels).then_some((b, a))
        })
        .collect()
}

/// Whether the type of a column goes back (its own, or its enum's).
fn retyped(before: &Column, after: &Column, swaps: &[(&Enum, &Enum)]) -> bool {
    before.type_name != after.type_name
        || before.collation != after.collation
        || swaps.iter().any(|(_, e)| of_enum(after, e))
}

/// Whether `column` is of enum type `e` (or an array of it).
fn of_enum(column: &Column, e: &Enum) -> bool {
    let name = qualified(&e.schema, &e.name);
    column.type_name == name || column.type_name == format!("{name}[]")
}

/// The views to drop and make again: those the up changed, and those
/// that depend on them or on a column whose type goes back.
fn to_rebuild(
    work: &Work<'_>,
    tables: &[(&Table, &Table)],
    swaps: &[(&Enum, &Enum)],
    dependents: &mut Dependents<'_>,
) -> Result<HashSet<u32>, postgres::Error> {
    let changed_views: Vec<u32> = work
        .after
        .dump
        .entries
        .iter()
        .enumerate()
        .filter(|(i, e)| is_view(&e.kind) && work.changed(*i).is_some())
        .map(|(_, e)| e.oid)
        .collect();
    let mut columns = Vec::new();
    for (b, a) in tables {
        for (bc, ac) in column_pairs(b, a) {
            let retyped = bc.type_name != ac.type_name || bc.collation != ac.collation;
            if retyped || swaps.iter().any(|(_, e)| of_enum(ac, e)) {
                columns.push((a.oid, ac.attnum));
            }
        }
    }
    let mut out: HashSet<u32> = changed_views.iter().copied().collect();
    out.extend(dependents(&changed_views, &columns)?);
    Ok(out)
}

/// Step 1: what must go before columns change: views and members the up
/// created, members it changed (made again later), views to rebuild, and
/// privileges it granted.
fn drop_dependents(work: &mut Work<'_>) {
    let after = &work.after.dump;
    let mut out = Plan::default();
    for (i, e) in after.entries.iter().enumerate().rev() {
        if work.table_part(after, e, true) {
            continue;
        }
        let created = work.created(i);
        let rebuilt = is_view(&e.kind) && work.rebuild.contains(&e.oid);
        if e.kind == "ACL" && (created || work.changed(i).is_some()) {
            if created && work.parent_created(e) {
                continue;
            }
            let grants = rewrite::statements(&e.sql).unwrap_or_default();
            for g in grants.iter().rev() {
                if let Some(inverse) = rewrite::inverse_grant(g) {
                    out.push(inverse);
                }
            }
            continue;
        }
        let member = ddl::is_member(&e.kind);
        let goes = if created && member {
            // A member goes with its parent when that goes too.
            !work.parent_created(e) && !parent_rebuilt(work, e)
        } else if (created && is_view(&e.kind)) || rebuilt {
            true
        } else {
            // A member the up changed: dropped here, made again later.
            !created
                && member
                && !matches!(e.kind.as_str(), "COMMENT" | "SEQUENCE OWNED BY")
                && work.changed(i).is_some()
                && !parent_rebuilt(work, e)
        };
        if goes {
            if let Some(sql) = ddl::drop_of(e) {
                out.push(sql);
            }
        }
    }
    work.plan.statements.extend(out.statements);
}

fn parent_rebuilt(work: &Work<'_>, e: &Entry) -> bool {
    let owners = &work.after.catalog.owners;
    work.after
        .dump
        .parent_of(e, owners)
        .is_some_and(|p| is_view(&p.kind) && work.rebuild.contains(&p.oid))
}

/// Step 2: the columns of every table that stays, enum types put back,
/// row security.
fn columns(work: &mut Work<'_>, tables: &[(&Table, &Table)], swaps: &[(&Enum, &Enum)]) {
    let plan = &mut work.plan;
    for (b, a) in tables {
        let paired: Vec<i16> = column_pairs(b, a).iter().map(|(_, ac)| ac.attnum).collect();
        for c in a.columns.iter().filter(|c| !paired.contains(&c.attnum)) {
            plan.push(format!(
                "ALTER TABLE {} DROP COLUMN {}",
                a.qualified(),
                quote_ident(&c.name)
            ));
            plan.notes.push(format!(
                "drops column {}.{}, which the up added: `backstop rollback` exports its values first ([rollback] export_dropped)",
                a.qualified(),
                quote_ident(&c.name)
            ));
        }
    }
    // A default is cast with its column: dropped before the type goes
    // back, set again at the end.
    for (b, a) in tables {
        for (bc, ac) in column_pairs(b, a) {
            if ac.default.is_some() && retyped(bc, ac, swaps) {
                plan.push(ddl::set_default(a, &bc.name, None));
            }
        }
    }
    for (b, a) in swaps {
        enum_back(plan, b, a, tables);
    }
    for (b, a) in tables {
        for (bc, ac) in column_pairs(b, a) {
            if bc.type_name != ac.type_name {
                plan.loses.push(format!(
                    "values of column {}.{} are cast back from {} to {}: what the up's conversion changed stays changed",
                    a.qualified(),
                    quote_ident(&bc.name),
                    ac.type_name,
                    bc.type_name
                ));
            }
            for sql in ddl::alter_column(a, ac, bc) {
                plan.push(sql);
            }
        }
        let had: Vec<&str> = column_pairs(b, a).iter().map(|(bc, _)| bc.name.as_str()).collect();
        for c in b.columns.iter().filter(|c| !had.contains(&c.name.as_str())) {
            plan.push(ddl::add_column(a, c));
            plan.loses.push(format!(
                "values of column {}.{}: the up dropped the column; the down adds it back {}",
                a.qualified(),
                quote_ident(&c.name),
                if c.default.is_some() { "with its default" } else { "empty" }
            ));
            if c.not_null && c.default.is_none() && c.identity.is_none() {
                plan.notes.push(format!(
                    "column {}.{} comes back NOT NULL without a default: on a table with rows the down fails until values are given",
                    a.qualified(),
                    quote_ident(&c.name)
                ));
            }
        }
        if a.rls != b.rls {
            let what = if b.rls { "ENABLE" } else { "DISABLE" };
            plan.push(format!("ALTER TABLE {} {what} ROW LEVEL SECURITY", a.qualified()));
        }
        if a.force_rls != b.force_rls {
            let what = if b.force_rls { "FORCE" } else { "NO FORCE" };
            plan.push(format!("ALTER TABLE {} {what} ROW LEVEL SECURITY", a.qualified()));
        }
    }
}

/// Puts an enum type's labels back: values the up added by a swap to a
/// new type of the old labels (PostgreSQL cannot remove a value), renamed
/// values by renaming, removed ones by adding.
fn enum_back(plan: &mut Plan, before: &Enum, after: &Enum, tables: &[(&Table, &Table)]) {
    let name = qualified(&after.schema, &after.name);
    let added: Vec<&String> = after.labels.iter().filter(|l| !before.labels.contains(l)).collect();
    let removed: Vec<&String> =
        before.labels.iter().filter(|l| !after.labels.contains(l)).collect();
    if added.len() == removed.len()
        && before.labels.len() == after.labels.len()
        && before.labels.iter().zip(&after.labels).all(|(b, a)| b == a || removed.contains(&b))
    {
        for (b, a) in before.labels.iter().zip(&after.labels).filter(|(b, a)| b != a) {
            plan.push(format!(
                "ALTER TYPE {name} RENAME VALUE {} TO {}",
                quote_literal(a),
                quote_literal(b)
            ));
        }
        return;
    }
    if added.is_empty() {
        for (i, label) in before.labels.iter().enumerate() {
            if after.labels.contains(label) {
                continue;
            }
            let place = match before.labels[i + 1..].iter().find(|l| after.labels.contains(l)) {
                Some(next) => format!(" BEFORE {}", quote_literal(next)),
                None => String::new(),
            };
            plan.push(format!("ALTER TYPE {name} ADD VALUE {}{place}", quote_literal(label)));
        }
        return;
    }
    let old = quote_ident(&format!("{}__backstop_old", after.name));
    plan.push(format!("ALTER TYPE {name} RENAME TO {old}"));
    let labels: Vec<String> = before.labels.iter().map(|l| quote_literal(l)).collect();
    plan.push(format!("CREATE TYPE {name} AS ENUM ({})", labels.join(", ")));
    let old_name = qualified(&after.schema, &format!("{}__backstop_old", after.name));
    for (b, t) in tables {
        let kept = column_pairs(b, t);
        for (_, c) in kept.iter().filter(|(_, c)| of_enum(c, after)) {
            let array = c.type_name.ends_with("[]");
            let (to, via) =
                if array { (format!("{name}[]"), "text[]") } else { (name.clone(), "text") };
            plan.push(format!(
                "ALTER TABLE {} ALTER COLUMN {} TYPE {to} USING {}::{via}::{to}",
                t.qualified(),
                quote_ident(&c.name),
                quote_ident(&c.name)
            ));
        }
    }
    plan.push(format!("DROP TYPE {old_name}"));
    let values: Vec<String> = added.iter().map(|l| quote_literal(l)).collect();
    plan.notes.push(format!(
        "type {name} goes back to its labels before the up: rows holding {} make the down fail until they are changed",
        values.join(", ")
    ));
}

/// Step 3: drop what the up created that is not part of something else,
/// dependents first. Foreign keys between the tables it created go
/// first: pg_dump orders tables by name, not by who refers to whom.
fn drop_created(work: &mut Work<'_>) {
    let after = &work.after.dump;
    let mut out = Vec::new();
    for (i, e) in after.entries.iter().enumerate() {
        if e.kind == "FK CONSTRAINT" && work.created(i) && work.parent_created(e) {
            out.extend(ddl::drop_of(e));
        }
    }
    for (i, e) in after.entries.iter().enumerate().rev() {
        if !work.created(i) || ddl::is_member(&e.kind) || is_view(&e.kind) {
            continue;
        }
        if work.table_part(after, e, true) || owned_by_dropped_column(work, e) {
            continue;
        }
        match ddl::drop_of(e) {
            Some(sql) => {
                if matches!(e.kind.as_str(), "TABLE" | "FOREIGN TABLE") {
                    work.plan.notes.push(format!(
                        "drops table {}.{}, which the up created: `backstop rollback` exports its rows first ([rollback] export_dropped)",
                        quote_ident(&e.schema),
                        quote_ident(&e.name)
                    ));
                }
                out.push(sql);
            }
            None if e.kind == "SEQUENCE" => {}
            None => work.plan.notes.push(format!(
                "{} {} was created by the up and Backstop cannot remove it: drop it by hand",
                e.kind.to_lowercase(),
                e.name
            )),
        }
    }
    for sql in out {
        work.plan.push(sql);
    }
}

/// Whether `e` is a sequence a column owns that goes too (with its table
/// or alone): dropping it first would fail on the column's default.
fn owned_by_dropped_column(work: &Work<'_>, e: &Entry) -> bool {
    if e.kind != "SEQUENCE" {
        return false;
    }
    let Some((table, attnum)) = work.after.catalog.sequence_owners.get(&e.oid) else {
        return false;
    };
    if !work.kept_tables.contains(table) {
        return true;
    }
    let tables = table_pairs(&work.before.catalog, &work.after.catalog);
    tables
        .iter()
        .filter(|(_, a)| a.oid == *table)
        .all(|(b, a)| !column_pairs(b, a).iter().any(|(_, ac)| ac.attnum == *attnum))
}

/// Step 4: objects the up changed in place, put back in place.
fn put_back_changed(work: &mut Work<'_>) {
    let after = &work.after.dump;
    for (i, e) in after.entries.iter().enumerate() {
        if ddl::is_member(&e.kind) || is_view(&e.kind) || work.table_part(after, e, true) {
            continue;
        }
        let Some(b) = work.changed(i) else { continue };
        let statements = rewrite::statements(&b.sql).unwrap_or_default();
        let owners: Vec<&String> =
            statements.iter().filter(|s| rewrite::is_owner_change(s)).collect();
        match e.kind.as_str() {
            "FUNCTION" | "PROCEDURE" => {
                for s in &statements {
                    let replaced = rewrite::or_replace(s);
                    work.plan.push(replaced.unwrap_or_else(|| s.clone()));
                }
            }
            "SEQUENCE" => {
                for s in &statements {
                    work.plan.push(rewrite::sequence_as_alter(s).unwrap_or_else(|| s.clone()));
                }
            }
            // Columns and enum labels are compared from the catalog.
            "TABLE" | "TYPE" | "SCHEMA" | "EXTENSION" if e.owner != b.owner => {
                for s in owners {
                    work.plan.push(s.clone());
                }
            }
            "TABLE" | "TYPE" | "SCHEMA" | "EXTENSION" => {}
            _ if e.owner != b.owner => {
                for s in owners {
                    work.plan.push(s.clone());
                }
            }
            _ => work.plan.notes.push(format!(
                "{} {} was changed by the up in a way Backstop does not put back: compare it by hand",
                e.kind.to_lowercase(),
                e.name
            )),
        }
    }
}

/// Step 5: make again, in `before`'s order, what the up removed, the
/// members it changed and the views being rebuilt with their members.
fn recreate(work: &mut Work<'_>) {
    let before = &work.before.dump;
    for (i, e) in before.entries.iter().enumerate() {
        if work.table_part(before, e, false) {
            continue;
        }
        let paired = work.pairs.of_before.get(&i).copied();
        let gone = paired.is_none();
        let changed_member = paired
            .is_some_and(|a| ddl::is_member(&e.kind) && work.after.dump.entries[a].sql != e.sql);
        let rebuilt_view = paired.is_some_and(|a| {
            let ae = &work.after.dump.entries[a];
            is_view(&ae.kind) && work.rebuild.contains(&ae.oid)
        });
        let member_of_rebuilt = ddl::is_member(&e.kind)
            && before.parent_of(e, &work.before.catalog.owners).is_some_and(|p| {
                let pi = before.entries.iter().position(|x| x.id == p.id);
                pi.and_then(|pi| work.pairs.of_before.get(&pi)).is_some_and(|a| {
                    let ae = &work.after.dump.entries[*a];
                    is_view(&ae.kind) && work.rebuild.contains(&ae.oid)
                })
            });
        if !(gone || changed_member || rebuilt_view || member_of_rebuilt) {
            continue;
        }
        work.plan.push_entry(e);
        if e.kind == "MATERIALIZED VIEW" {
            work.plan.push(format!("REFRESH MATERIALIZED VIEW {}", qualified(&e.schema, &e.name)));
        }
        if gone && matches!(e.kind.as_str(), "TABLE" | "FOREIGN TABLE") {
            work.plan.loses.push(format!(
                "rows of table {}: the up dropped the table; the down makes it again, empty",
                qualified(&e.schema, &e.name)
            ));
        }
    }
}

/// Steps 6 and 7: column defaults (after the sequences they call are
/// back), and the values of sequences made again.
fn defaults_and_sequences(
    work: &mut Work<'_>,
    tables: &[(&Table, &Table)],
    swaps: &[(&Enum, &Enum)],
) {
    for (b, a) in tables {
        let pairs = column_pairs(b, a);
        for (bc, ac) in &pairs {
            let dropped = ac.default.is_some() && retyped(bc, ac, swaps);
            if bc.generated.is_some() || bc.identity.is_some() {
                continue;
            }
            if (dropped && bc.default.is_some()) || (!dropped && bc.default != ac.default) {
                work.plan.push(ddl::set_default(a, &bc.name, bc.default.as_deref()));
            }
        }
        let had: Vec<&str> = pairs.iter().map(|(bc, _)| bc.name.as_str()).collect();
        for c in b.columns.iter().filter(|c| !had.contains(&c.name.as_str())) {
            if let Some(d) = c.default.as_deref().filter(|d| d.contains("nextval(")) {
                work.plan.push(ddl::set_default(a, &c.name, Some(d)));
            }
        }
    }
    let mut gone: Vec<(&String, &super::catalog::SequenceValue)> = work
        .before
        .catalog
        .sequences
        .iter()
        .filter(|(name, _)| !work.after.catalog.sequences.contains_key(*name))
        .collect();
    gone.sort_by(|a, b| a.0.cmp(b.0));
    for (name, value) in gone {
        work.plan.push(format!(
            "SELECT pg_catalog.setval({}, {}, {})",
            quote_literal(name),
            value.last_value,
            value.is_called
        ));
    }
}
