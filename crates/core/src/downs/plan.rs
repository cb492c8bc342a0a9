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

use std::collections::HashSet;

use backstop_sql::rewrite::{self, ident as quote_ident, literal as quote_literal, qualified};

use super::aside::aside;
use super::catalog::{Catalog, Enum, Table};
use super::columns::{columns, needs_new_type, of_enum, retyped};
use super::ddl;
use super::picture::{column_pairs, is_view, pair, table_pairs, Plan, State, Usings, Work};
use super::remade_around::{Around, Dependents, Seeds};
use super::toc::Entry;

const RENAMED_FIRST: [&str; 1] = ["SCHEMA"];

/// The statements that give every renamed object (and column) its name
/// from `before` back.
pub(super) fn renames(before: &State, after: &State) -> Vec<String> {
    let pairs = pair(&before.dump, &after.dump);
    let mut first = Vec::new();
    let mut objects = Vec::new();
    let mut members = Vec::new();
    let (aside, mut stepped) = aside(before, after, &pairs.of_after);
    // Schemas renamed by the up, by their name now: they get their names
    // back first, and what is in them goes with them.
    let schemas: std::collections::HashMap<&str, &str> = pairs
        .of_after
        .iter()
        .map(|(&a, &b)| (&after.dump.entries[a], &before.dump.entries[b]))
        .filter(|(ae, be)| ae.kind == "SCHEMA" && ae.name != be.name)
        .map(|(ae, be)| (ae.name.as_str(), be.name.as_str()))
        .collect();
    // A column's sequence (serial, or identity: pg_dump writes the
    // latter as the column's `ADD GENERATED`) goes where its table goes.
    let owned = |e: &Entry| {
        e.kind == "SEQUENCE"
            && (e.sql.contains("GENERATED")
                || after.dump.entries.iter().any(|o| {
                    o.kind == "SEQUENCE OWNED BY" && o.schema == e.schema && o.name == e.name
                }))
    };
    for (&a, &b) in &pairs.of_after {
        let (ae, be) = (&after.dump.entries[a], &before.dump.entries[b]);
        // One that stepped aside goes from the name it stepped aside to.
        let mut ae = stepped.remove(&a).unwrap_or_else(|| ae.clone());
        if let Some(now) = schemas.get(ae.schema.as_str()).filter(|_| ae.kind != "SCHEMA") {
            ae.schema = now.to_string();
        }
        if ae.schema != be.schema && owned(&after.dump.entries[a]) {
            ae.schema = be.schema.clone();
        }
        let ae = &ae;
        if ae.name == be.name && ae.schema == be.schema {
            continue;
        }
        let facts = after.catalog.objects.get(&(ae.class, ae.oid));
        let Some(sql) =
            ddl::rename_back(be, ae).or_else(|| super::objects::rename_back(be, ae, facts))
        else {
            continue;
        };
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
        for ac in &a.checks {
            if let Some(bc) = b.checks.iter().find(|bc| bc.oid == ac.oid && bc.name != ac.name) {
                columns.push(format!(
                    "ALTER TABLE {} RENAME CONSTRAINT {} TO {}",
                    b.qualified(),
                    quote_ident(&ac.name),
                    quote_ident(&bc.name)
                ));
            }
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
    first.sort();
    out.extend(first.drain(..).map(|(_, s)| s));
    out.extend(aside);
    for list in [&mut objects, &mut members] {
        list.sort();
        out.extend(list.drain(..).map(|(_, s)| s));
    }
    out.extend(columns);
    out
}

/// The down from `after` back to `before`, renames already undone.
pub(super) fn plan(
    before: &State,
    after: &State,
    dependents: &mut Dependents<'_>,
    usings: &Usings,
) -> Result<Plan, postgres::Error> {
    let pairs = pair(&before.dump, &after.dump);
    let tables = table_pairs(&before.catalog, &after.catalog);
    let kept_tables = tables.iter().map(|(_, a)| a.oid).collect();
    let mut work = Work {
        before,
        after,
        pairs,
        kept_tables,
        rebuild: HashSet::new(),
        refit: HashSet::new(),
        redefault: HashSet::new(),
        early: HashSet::new(),
        in_place: HashSet::new(),
        usings: usings.clone(),
        plan: Plan::default(),
    };
    work.plan.unheld = unheld(&work);
    let swaps = enum_swaps(&before.catalog, &after.catalog);
    let around = to_rebuild(&work, &tables, &swaps, dependents)?;
    (work.rebuild, work.refit, work.redefault) = (around.views, around.refit, around.redefault);
    drop_dependents(&mut work);
    make_early(&mut work, &tables);
    columns(&mut work, &tables, &swaps);
    drop_created(&mut work);
    put_back_changed(&mut work);
    extensions_back(&mut work);
    recreate(&mut work);
    defaults_and_sequences(&mut work, &tables, &swaps);
    Ok(work.plan)
}

/// The objects of kinds no down here handles that the up made, changed
/// or dropped.
fn unheld(work: &Work<'_>) -> Vec<String> {
    let shown = |e: &Entry| {
        let name =
            if e.schema.is_empty() { e.name.clone() } else { format!("{}.{}", e.schema, e.name) };
        format!("{} {name}", e.kind.to_lowercase())
    };
    let mut out = Vec::new();
    for (i, e) in work.after.dump.entries.iter().enumerate() {
        if !super::objects::handled(&e.kind) && (work.created(i) || work.changed(i).is_some()) {
            out.push(shown(e));
        }
    }
    for (i, e) in work.before.dump.entries.iter().enumerate() {
        if !super::objects::handled(&e.kind) && !work.pairs.of_before.contains_key(&i) {
            out.push(shown(e));
        }
    }
    out
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

/// What to drop and make again around what the down changes (see
/// [`super::remade_around`]): the views the up changed and their dependents, and
/// what depends on a column whose type goes back, on an enum type swapped
/// back, or on a function made again with `DROP` and `CREATE`.
fn to_rebuild(
    work: &Work<'_>,
    tables: &[(&Table, &Table)],
    swaps: &[(&Enum, &Enum)],
    dependents: &mut Dependents<'_>,
) -> Result<Around, postgres::Error> {
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
    let types = swaps.iter().filter(|(b, a)| needs_new_type(b, a)).map(|(_, a)| a.oid).collect();
    let functions = replaced_functions(work);
    let seeds = Seeds { relations: changed_views, columns, types, functions };
    let mut around = dependents(&seeds)?;
    for f in &seeds.functions {
        around.refit.insert((PG_PROC, *f));
    }
    Ok(around)
}

/// The catalog OID of `pg_proc`, as pg_dump prints it.
const PG_PROC: u32 = 1255;

/// The functions (OIDs after the up) whose result or arguments the up
/// changed, which `CREATE OR REPLACE` cannot put back: dropped and made
/// again, with their dependents around them.
fn replaced_functions(work: &Work<'_>) -> Vec<u32> {
    let mut out = Vec::new();
    for (i, e) in work.after.dump.entries.iter().enumerate() {
        if !matches!(e.kind.as_str(), "FUNCTION" | "PROCEDURE") {
            continue;
        }
        let Some(b) = work.changed(i) else { continue };
        let signature = |state: &State, x: &Entry| {
            state.catalog.objects.get(&(x.class, x.oid)).and_then(|f| f.signature.clone())
        };
        if signature(work.before, b) != signature(work.after, e) {
            out.push(e.oid);
        }
    }
    out
}

/// Makes the types the columns about to be added back or changed are of,
/// where the up dropped them, before the columns step.
fn make_early(work: &mut Work<'_>, tables: &[(&Table, &Table)]) {
    let mut columns = Vec::new();
    for (b, a) in tables {
        let pairs = column_pairs(b, a);
        for (bc, ac) in &pairs {
            if bc.type_name != ac.type_name || bc.collation != ac.collation {
                columns.push(*bc);
            }
        }
        let had: Vec<&str> = pairs.iter().map(|(bc, _)| bc.name.as_str()).collect();
        columns.extend(b.columns.iter().filter(|c| !had.contains(&c.name.as_str())));
    }
    for i in super::remade_around::early(work, &columns) {
        work.early.insert(i);
        let e = &work.before.dump.entries[i];
        work.plan.push_entry(e);
    }
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
        let rebuilt = (is_view(&e.kind) && work.rebuild.contains(&e.oid))
            || (!created && work.refit.contains(&(e.class, e.oid)));
        let acl = matches!(e.kind.as_str(), "ACL" | "DEFAULT ACL");
        if acl && (created || work.changed(i).is_some()) {
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
        if !created && !rebuilt && !parent_rebuilt(work, e) {
            if let Some(statements) = storage_in_place(work, i, e) {
                out.statements.extend(statements);
                work.in_place.insert(work.pairs.of_after[&i]);
                continue;
            }
        }
        let goes = if created && reads_a_view(&work.after.catalog, e) {
            // Its SQL body reads a view the up made: it goes first.
            true
        } else if created && member {
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
            if let Some(sql) = work.drop_after(e) {
                out.push(sql);
            }
        }
    }
    work.plan.statements.extend(out.statements);
}

/// An index (or the constraint it makes) the up changed only in its
/// storage parameters: `ALTER INDEX` puts them back in place.
fn storage_in_place(work: &Work<'_>, i: usize, e: &Entry) -> Option<Vec<String>> {
    let index = match e.kind.as_str() {
        "INDEX" => qualified(&e.schema, &e.name),
        "CONSTRAINT" => qualified(&e.schema, e.table_and_member()?.1),
        _ => return None,
    };
    let b = work.changed(i)?;
    backstop_sql::inverse::index_storage_back(&b.sql, &e.sql, &index)
}

fn parent_rebuilt(work: &Work<'_>, e: &Entry) -> bool {
    let owners = &work.after.catalog.owners;
    work.after
        .dump
        .parent_of(e, owners)
        .is_some_and(|p| is_view(&p.kind) && work.rebuild.contains(&p.oid))
}

/// Step 3: drop what the up created that is not part of something else,
/// dependents first. Foreign keys between the tables it created go
/// first: pg_dump orders tables by name, not by who refers to whom.
fn drop_created(work: &mut Work<'_>) {
    let after = &work.after.dump;
    let mut out = Vec::new();
    for (i, e) in after.entries.iter().enumerate() {
        // A policy or rule on one new table may read another: dropping
        // either table first fails on the other's dependence.
        let ties = matches!(e.kind.as_str(), "FK CONSTRAINT" | "POLICY" | "RULE");
        if ties && work.created(i) && work.parent_created(e) {
            out.extend(work.drop_after(e));
        }
    }
    for (i, e) in after.entries.iter().enumerate().rev() {
        if !work.created(i) || ddl::is_member(&e.kind) || is_view(&e.kind) {
            continue;
        }
        if reads_a_view(&work.after.catalog, e) {
            continue;
        }
        if work.table_part(after, e, true) || owned_by_dropped_column(work, e) {
            continue;
        }
        match work.drop_after(e) {
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
            // A shell type goes with its type.
            None if matches!(e.kind.as_str(), "SEQUENCE" | "SHELL TYPE") => {}
            // Named once already, as a kind no down handles.
            None if !super::objects::handled(&e.kind) => {}
            None => work.plan.unheld.push(format!(
                "{} {}, which the up created and Backstop cannot remove",
                e.kind.to_lowercase(),
                e.name
            )),
        }
    }
    for sql in out {
        work.plan.push(sql);
    }
}

/// Whether `e` is a function or procedure whose SQL-standard body reads a
/// view (as the catalog says): it goes before the views, as a view on a
/// view does.
fn reads_a_view(catalog: &Catalog, e: &Entry) -> bool {
    matches!(e.kind.as_str(), "FUNCTION" | "PROCEDURE") && catalog.view_readers.contains(&e.oid)
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
        // Dropped with what depends on it, made again after.
        if work.refit.contains(&(e.class, e.oid)) {
            continue;
        }
        let statements = rewrite::statements(&b.sql).unwrap_or_default();
        let owners: Vec<&String> =
            statements.iter().filter(|s| rewrite::is_owner_change(s)).collect();
        if super::objects::changed_in_place(&e.kind) {
            match super::objects::put_back(b, e, work.drop_after(e)) {
                Some(statements) => statements.into_iter().for_each(|s| work.plan.push(s)),
                None => work.plan.unheld.push(format!(
                    "{} {}, which the up changed and Backstop cannot put back",
                    e.kind.to_lowercase(),
                    e.name
                )),
            }
            continue;
        }
        let owner_changed = e.owner != b.owner;
        // What ALTER DOMAIN or ALTER TYPE puts back, for those kinds.
        let altered = match e.kind.as_str() {
            "DOMAIN" => backstop_sql::inverse::domain_back(&b.sql, &e.sql),
            // A composite type's attributes (an enum's labels are the
            // catalog's to compare).
            "TYPE" => backstop_sql::inverse::composite_back(&b.sql, &e.sql),
            _ => None,
        };
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
            "TYPE" if altered.as_ref().is_some_and(|d| !d.is_empty()) => {
                for s in altered.into_iter().flatten() {
                    work.plan.push(s);
                }
                if owner_changed {
                    for s in owners {
                        work.plan.push(s.clone());
                    }
                }
            }
            // Columns and enum labels are compared from the catalog.
            "TABLE" | "TYPE" | "SCHEMA" | "EXTENSION" if e.owner != b.owner => {
                for s in owners {
                    work.plan.push(s.clone());
                }
            }
            "TABLE" | "TYPE" | "SCHEMA" | "EXTENSION" => {}
            // Columns from the catalog; its own options in place.
            "FOREIGN TABLE" => {
                let (bf, af) = (statements.first(), rewrite::statements(&e.sql));
                let af = af.and_then(|a| a.into_iter().next());
                let owner_changed = e.owner != b.owner;
                if let (Some(bf), Some(af)) = (bf, af) {
                    work.plan.statements.extend(backstop_sql::inverse::options_back(bf, &af));
                }
                if owner_changed {
                    for s in owners {
                        work.plan.push(s.clone());
                    }
                }
            }
            "DOMAIN" => match altered {
                Some(back) => {
                    for s in back {
                        work.plan.push(s);
                    }
                    if owner_changed {
                        for s in owners {
                            work.plan.push(s.clone());
                        }
                    }
                }
                None => work.plan.notes.push(format!(
                    "domain {} was changed by the up in a way ALTER DOMAIN cannot put back (its \
                     type or collation, or an unnamed check): compare it by hand",
                    e.name
                )),
            },
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

/// Whether the down drops `p` (an entry of `before` that the up kept)
/// and makes it again: around what it changes (`refit`), a view it
/// rebuilds, an enum type it swaps for one of the old labels (`swapped`:
/// their OIDs after the up), a member the up changed. A comment on it
/// goes with it, and is made again after it.
fn remade(work: &Work<'_>, p: &Entry, swapped: &[u32]) -> bool {
    let before = &work.before.dump;
    let Some(i) = before.entries.iter().position(|x| x.id == p.id) else { return false };
    let Some(a) = work.pairs.of_before.get(&i) else { return false };
    let ae = &work.after.dump.entries[*a];
    let kept_in_place = matches!(ae.kind.as_str(), "COMMENT" | "SEQUENCE OWNED BY" | "ACL")
        || work.in_place.contains(&i);
    work.refit.contains(&(ae.class, ae.oid))
        || (is_view(&ae.kind) && work.rebuild.contains(&ae.oid))
        || (ae.kind == "TYPE" && swapped.contains(&ae.oid))
        || (ddl::is_member(&ae.kind) && !kept_in_place && ae.sql != p.sql)
}

/// Step 4, extensions: one the up updated goes back to the version it had,
/// by its own scripts where they lead there (`ALTER EXTENSION … UPDATE
/// TO`); where none does (most extensions ship no downgrade), dropped and
/// made again at that version, which fails, and says why, where anything
/// depends on it.
fn extensions_back(work: &mut Work<'_>) {
    let (was, now) = (&work.before.catalog.extensions, &work.after.catalog.extensions);
    let mut names: Vec<&String> =
        was.keys().filter(|n| now.get(*n).is_some_and(|x| x.version != was[*n].version)).collect();
    names.sort();
    for name in names {
        let (b, a) = (&was[name], &now[name]);
        let version = quote_literal(&b.version);
        if a.reachable.contains(&b.version) {
            work.plan.push(format!("ALTER EXTENSION {} UPDATE TO {version}", quote_ident(name)));
            continue;
        }
        work.plan.push(format!("DROP EXTENSION {}", quote_ident(name)));
        work.plan.push(format!(
            "CREATE EXTENSION {} WITH SCHEMA {} VERSION {version}",
            quote_ident(name),
            b.schema
        ));
        work.plan.notes.push(format!(
            "extension {name} has no script back from {} to {}: the down drops it and makes it \
             again at {}, which fails where anything depends on it",
            a.version, b.version, b.version
        ));
    }
}

/// Step 5: make again, in `before`'s order, what the up removed, the
/// members it changed, the views being rebuilt with their members, and
/// the comments on what the down drops and makes again.
fn recreate(work: &mut Work<'_>) {
    let swapped: Vec<u32> = enum_swaps(&work.before.catalog, &work.after.catalog)
        .into_iter()
        .filter(|(b, a)| needs_new_type(b, a))
        .map(|(_, a)| a.oid)
        .collect();
    let defaults = defaults_in_force(work);
    let before = &work.before.dump;
    for (i, e) in before.entries.iter().enumerate() {
        if work.table_part(before, e, false)
            || work.early.contains(&i)
            || work.in_place.contains(&i)
        {
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
        let refit = paired.is_some_and(|a| {
            let ae = &work.after.dump.entries[a];
            work.refit.contains(&(ae.class, ae.oid))
        });
        let comment_of_remade = e.kind == "COMMENT"
            && !gone
            && before
                .parent_of(e, &work.before.catalog.owners)
                .is_some_and(|p| remade(work, p, &swapped));
        if !(gone
            || changed_member
            || rebuilt_view
            || member_of_rebuilt
            || refit
            || comment_of_remade)
        {
            continue;
        }
        work.plan.push_entry(e);
        let name = ddl::grant_name(e);
        for default in &defaults {
            if let Some(undone) = rewrite::default_undone_on(default, &e.kind, &e.schema, &name) {
                work.plan.push(undone);
            }
        }
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

/// The default privileges in force while the down makes objects again,
/// each statement (`ALTER DEFAULT PRIVILEGES …`), the last first: those
/// the up left as they were (one it made or changed is undone in step 1).
/// What they give an object made again is taken back right after it is
/// made, so that its privileges are the ones it had (pg_dump writes those
/// after it, where they differ from PostgreSQL's own).
fn defaults_in_force(work: &Work<'_>) -> Vec<String> {
    let after = &work.after.dump.entries;
    let kept = (0..after.len()).filter(|i| {
        after[*i].kind == "DEFAULT ACL" && !work.created(*i) && work.changed(*i).is_none()
    });
    let mut out = Vec::new();
    for i in kept {
        out.extend(rewrite::statements(&after[i].sql).unwrap_or_default().into_iter().rev());
    }
    out
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
            let around = work.redefault.contains(&(a.oid, ac.attnum));
            let dropped = ac.default.is_some() && (retyped(bc, ac, swaps) || around);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::downs::catalog::Catalog;
    use crate::downs::toc;

    fn state(entries: &[(u32, &str, &str, &str)]) -> State {
        let text: String = entries
            .iter()
            .map(|(id, name, kind, sql)| {
                format!(
                    "--\n-- TOC entry {id} (class 0 OID 0)\n-- Name: {name}; Type: {kind}; Schema: public; Owner: app\n--\n\n{sql}\n\n"
                )
            })
            .collect();
        State { dump: toc::parse(&text), catalog: Catalog::default() }
    }

    #[test]
    fn a_kind_no_down_handles_makes_the_down_unprovable_by_name() {
        // Regression: an object Backstop could not remove was a note, and
        // the down, empty, was proved while the object stayed.
        let before = state(&[(1, "t", "TABLE", "CREATE TABLE public.t (id integer);")]);
        let after = state(&[
            (1, "t", "TABLE", "CREATE TABLE public.t (id integer);"),
            (
                2,
                "TABLE t",
                "SECURITY LABEL",
                "SECURITY LABEL FOR selinux ON TABLE public.t IS 'x';",
            ),
            (3, "g", "PROPERTY GRAPH", "CREATE PROPERTY GRAPH public.g;"),
        ]);
        let mut none = |_: &Seeds| Ok(Around::default());
        let plan = plan(&before, &after, &mut none, &Usings::default()).unwrap();
        assert_eq!(plan.unheld.len(), 2, "{:?}", plan.unheld);
        assert!(plan.unheld.iter().any(|u| u.starts_with("security label")), "{:?}", plan.unheld);
        assert!(plan.unheld.iter().any(|u| u.starts_with("property graph")), "{:?}", plan.unheld);
        let same = plan_of(&before);
        assert!(same.unheld.is_empty(), "{:?}", same.unheld);
    }

    fn plan_of(s: &State) -> Plan {
        let mut none = |_: &Seeds| Ok(Around::default());
        plan(s, s, &mut none, &Usings::default()).unwrap()
    }
}
