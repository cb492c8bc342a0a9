//! Step 2 of a down: the tables that stay, column by column from the
//! catalog (dropped, added back, altered to their old type, default,
//! nullability, identity), their CHECK constraints, enum types put back
//! and row security.

use backstop_sql::rewrite::{ident as quote_ident, literal as quote_literal, qualified};

use super::catalog::{Catalog, Check, Column, Enum, Table};
use super::ddl;
use super::picture::{column_pairs, Plan, Work};
use super::toc::Dump;

/// Whether a column goes and comes back whole rather than altered: one
/// the table only inherited that the up made its own (it comes back with
/// its parent's), and a stored generated column whose expression the up
/// changed (PostgreSQL before 17 cannot set it: the down adds it back
/// with the old one, and PostgreSQL computes its values again).
fn remade(before: &Column, after: &Column) -> bool {
    (before.inherited_only && !after.inherited_only) || regenerated(before, after)
}

fn regenerated(before: &Column, after: &Column) -> bool {
    before.generated.is_some() && after.generated.is_some() && before.generated != after.generated
}

/// Whether the type of a column goes back (its own, or its enum's).
pub(super) fn retyped(before: &Column, after: &Column, swaps: &[(&Enum, &Enum)]) -> bool {
    before.type_name != after.type_name
        || before.collation != after.collation
        || swaps.iter().any(|(_, e)| of_enum(after, e))
}

/// Whether `column` is of enum type `e` (or an array of it).
pub(super) fn of_enum(column: &Column, e: &Enum) -> bool {
    let name = qualified(&e.schema, &e.name);
    column.type_name == name || column.type_name == format!("{name}[]")
}

/// The CHECK constraints of a table pair that pg_dump writes inside the
/// table (no entry of their own), as (before, after) by OID, then name.
pub(super) fn check_pairs<'t>(
    work: &Work<'_>,
    before: &'t Table,
    after: &'t Table,
) -> Vec<(Option<&'t Check>, Option<&'t Check>)> {
    let inline = |dump: &Dump, c: &Check| {
        !dump.entries.iter().any(|e| e.class == PG_CONSTRAINT && e.oid == c.oid)
    };
    let b: Vec<&Check> = before.checks.iter().filter(|c| inline(&work.before.dump, c)).collect();
    let a: Vec<&Check> = after.checks.iter().filter(|c| inline(&work.after.dump, c)).collect();
    let mut out = Vec::new();
    for ac in &a {
        let same =
            b.iter().find(|bc| bc.oid == ac.oid).or_else(|| b.iter().find(|bc| bc.name == ac.name));
        out.push((same.copied(), Some(*ac)));
    }
    for bc in &b {
        if !out.iter().any(|(x, _)| x.is_some_and(|x| x.oid == bc.oid)) {
            out.push((Some(*bc), None));
        }
    }
    out
}

/// A CHECK constraint as it was and as it is (`None`: absent), and the
/// comment to make again on it as it was.
type CheckChange = ((Option<Check>, Option<Check>), Option<String>);

/// The comment on a CHECK constraint of `table` as it was, when the up
/// kept it: the down drops the constraint and adds it back, and makes the
/// comment again after (a comment the up removed comes back with what
/// the up removed).
fn kept_comment(work: &Work<'_>, table: &Table, check: &Check) -> Option<String> {
    let name = format!("CONSTRAINT {} ON {}", quote_ident(&check.name), quote_ident(&table.name));
    let entries = &work.before.dump.entries;
    let i = entries
        .iter()
        .position(|e| e.kind == "COMMENT" && e.schema == table.schema && e.name == name)?;
    work.pairs.of_before.contains_key(&i).then(|| entries[i].sql.clone())
}

/// The catalog OID of `pg_constraint`, as pg_dump prints it.
pub(super) const PG_CONSTRAINT: u32 = 2606;

/// Step 2: the columns of every table that stays, enum types put back,
/// row security.
pub(super) fn columns(work: &mut Work<'_>, tables: &[(&Table, &Table)], swaps: &[(&Enum, &Enum)]) {
    let checks: Vec<(String, Vec<CheckChange>)> = tables
        .iter()
        .map(|(b, a)| {
            // Changed, or around a type or function the down changes.
            let refit =
                |c: Option<&Check>| c.is_some_and(|c| work.refit.contains(&(PG_CONSTRAINT, c.oid)));
            let pairs = check_pairs(work, b, a)
                .into_iter()
                .filter(|(x, y)| x.map(|c| &c.definition) != y.map(|c| &c.definition) || refit(*y))
                .map(|(x, y)| ((x.cloned(), y.cloned()), x.and_then(|x| kept_comment(work, b, x))))
                .collect();
            (a.qualified(), pairs)
        })
        .collect();
    let redefault = work.redefault.clone();
    let usings = work.usings.clone();
    let (was, now) = (&work.before.catalog, &work.after.catalog);
    let plan = &mut work.plan;
    // Checks go first (they may name columns about to change) and come
    // back last.
    for (table, pairs) in &checks {
        for ((_, after), _) in pairs {
            if let Some(c) = after {
                plan.push(format!("ALTER TABLE {table} DROP CONSTRAINT {}", quote_ident(&c.name)));
            }
        }
    }
    drop_added(plan, tables);
    // A default is cast with its column: dropped before the type goes
    // back, set again at the end.
    for (b, a) in tables {
        for (bc, ac) in column_pairs(b, a) {
            let around = redefault.contains(&(a.oid, ac.attnum));
            if ac.default.is_some() && (retyped(bc, ac, swaps) || around) {
                plan.push(ddl::set_default(a, &bc.name, None));
            }
        }
    }
    for (b, a) in swaps {
        enum_back(plan, b, a, tables);
    }
    for (b, a) in tables {
        // One taken over from a parent comes back with the parent's.
        for (bc, ac) in column_pairs(b, a)
            .into_iter()
            .filter(|(bc, ac)| !bc.inherited_only || ac.inherited_only)
        {
            let labels = of_any_enum(bc, was) || of_any_enum(ac, now);
            let using = using_back(plan, &usings, (b, a), (bc, ac), labels);
            for sql in ddl::alter_column(a, ac, bc, using.as_deref()) {
                plan.push(sql);
            }
            for sql in super::storage::column_back(a, ac, bc) {
                plan.push(sql);
            }
        }
        for sql in super::storage::table_back(a, b) {
            plan.push(sql);
        }
        for (bc, _) in column_pairs(b, a).into_iter().filter(|(bc, ac)| regenerated(bc, ac)) {
            plan.push(ddl::add_column(a, bc));
        }
        let had: Vec<&str> = column_pairs(b, a).iter().map(|(bc, _)| bc.name.as_str()).collect();
        // One the table had from its parent comes back with the parent's
        // where the table is still a child; a partition the up detached
        // gets it before it is attached again.
        let own = |c: &&Column| !(c.from_parent && a.child);
        for c in b.columns.iter().filter(|c| !had.contains(&c.name.as_str())).filter(own) {
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
    for (table, pairs) in &checks {
        for ((before, _), comment) in pairs {
            if let Some(c) = before {
                plan.push(format!(
                    "ALTER TABLE {table} ADD CONSTRAINT {} {}",
                    quote_ident(&c.name),
                    c.definition
                ));
            }
            if let Some(comment) = comment {
                plan.push(comment.clone());
            }
        }
    }
}

/// The columns the up added to a table that stays, dropped; and those
/// made again whole ([`remade`]): a column the table only inherited that
/// the up made its own, so that the parent's, added back later, is
/// inherited again; a generated column, added back with its expression.
fn drop_added(plan: &mut Plan, tables: &[(&Table, &Table)]) {
    for (b, a) in tables {
        let paired: Vec<i16> = column_pairs(b, a).iter().map(|(_, ac)| ac.attnum).collect();
        // Made again whole (see `remade`): dropped here, added back below.
        let again: Vec<(i16, bool)> = column_pairs(b, a)
            .iter()
            .filter(|(bc, ac)| remade(bc, ac))
            .map(|(bc, ac)| (ac.attnum, regenerated(bc, ac)))
            .collect();
        for c in a.columns.iter() {
            let generated = match again.iter().find(|(n, _)| *n == c.attnum) {
                Some((_, generated)) => *generated,
                None if paired.contains(&c.attnum) => continue,
                // Goes with its parent's column: PostgreSQL refuses it alone.
                None if c.from_parent => continue,
                None => false,
            };
            let column = format!("{}.{}", a.qualified(), quote_ident(&c.name));
            plan.push(format!(
                "ALTER TABLE {} DROP COLUMN {}",
                a.qualified(),
                quote_ident(&c.name)
            ));
            plan.notes.push(if generated {
                format!(
                    "makes the generated column {column} again with the expression it had: \
                     PostgreSQL computes its values again"
                )
            } else {
                format!(
                    "drops column {column}, which the up added: `backstop rollback` exports its \
                     values first ([rollback] export_dropped)"
                )
            });
        }
    }
}

/// Whether `c` is of an enum type of `catalog` (or an array of one).
fn of_any_enum(c: &Column, catalog: &Catalog) -> bool {
    catalog.enums.iter().any(|e| of_enum(c, e))
}

/// How the old values of a column whose type goes back are computed: the
/// inverse of the up's `USING` where it is known (what it cannot restore
/// said in `loses`), else a cast (and the values named as cast back).
/// Where either type is an enum (`labels`), the cast goes through text:
/// PostgreSQL has no cast between two enum types, and a label's text is
/// the value (nothing lost when the up only cast it the same way).
fn using_back(
    plan: &mut Plan,
    usings: &super::picture::Usings,
    (b, a): (&Table, &Table),
    (bc, ac): (&Column, &Column),
    labels: bool,
) -> Option<String> {
    if bc.type_name == ac.type_name {
        return None;
    }
    let up = usings
        .get(&(b.name.clone(), bc.name.clone()))
        .or_else(|| usings.get(&(a.name.clone(), bc.name.clone())));
    let inverse = up.and_then(|u| backstop_sql::retypes::inverse(u, &bc.name, &bc.type_name));
    let column = format!("{}.{}", a.qualified(), quote_ident(&bc.name));
    if labels && inverse.is_none() {
        if !up.is_none_or(|u| backstop_sql::retypes::through_text(u, &bc.name)) {
            plan.loses.push(format!(
                "values of column {column} are cast back from {} to {} by their text: what the up's conversion changed stays changed",
                ac.type_name, bc.type_name
            ));
        }
        let text = if bc.type_name.ends_with("[]") { "text[]" } else { "text" };
        return Some(format!("{}::{text}::{}", quote_ident(&bc.name), bc.type_name));
    }
    match inverse {
        Some(inverse) => {
            if let Some(what) = &inverse.loses {
                plan.loses.push(format!(
                    "values of column {column} come back as {}: {what}",
                    inverse.expression
                ));
            }
            Some(format!("({})::{}", inverse.expression, bc.type_name))
        }
        // The up widened it (`numeric(10,2)` to `numeric(12,2)`): it
        // changed no value, and casting back loses none it had.
        None if up.is_none()
            && backstop_sql::stmt::widens_written(&bc.type_name, &ac.type_name) =>
        {
            plan.notes.push(format!(
                "column {column} goes back from {} to {}: a value written since the up that {} \
                 cannot hold makes the down fail (more decimals than it keeps are rounded)",
                ac.type_name, bc.type_name, bc.type_name
            ));
            None
        }
        None => {
            plan.loses.push(format!(
                "values of column {column} are cast back from {} to {}: what the up's conversion changed stays changed",
                ac.type_name, bc.type_name
            ));
            None
        }
    }
}

/// Whether putting `after`'s labels back to `before`'s takes a new type
/// (PostgreSQL can neither remove a value nor move one): not when values
/// were only renamed, or removed with the rest kept in their order.
pub(super) fn needs_new_type(before: &Enum, after: &Enum) -> bool {
    let added = after.labels.iter().filter(|l| !before.labels.contains(l)).count();
    !renamed_only(before, after) && (added > 0 || reordered(before, after))
}

/// Whether the labels both have come in another order (Prisma's swap to a
/// new type whose labels are listed in another order).
fn reordered(before: &Enum, after: &Enum) -> bool {
    let kept = |of: &Enum, other: &Enum| -> Vec<String> {
        of.labels.iter().filter(|l| other.labels.contains(l)).cloned().collect()
    };
    kept(before, after) != kept(after, before)
}

/// Whether `after`'s labels are `before`'s, some renamed in place.
fn renamed_only(before: &Enum, after: &Enum) -> bool {
    let added = after.labels.iter().filter(|l| !before.labels.contains(l)).count();
    let removed: Vec<&String> =
        before.labels.iter().filter(|l| !after.labels.contains(l)).collect();
    added == removed.len()
        && before.labels.len() == after.labels.len()
        && before.labels.iter().zip(&after.labels).all(|(b, a)| b == a || removed.contains(&b))
}

/// Puts an enum type's labels back: values the up added, or labels it put
/// in another order, by a swap to a new type of the old labels in their
/// order (PostgreSQL can neither remove nor move a value), renamed values
/// by renaming, removed ones by adding.
pub(super) fn enum_back(plan: &mut Plan, before: &Enum, after: &Enum, tables: &[(&Table, &Table)]) {
    let name = qualified(&after.schema, &after.name);
    let added: Vec<&String> = after.labels.iter().filter(|l| !before.labels.contains(l)).collect();
    if renamed_only(before, after) {
        for (b, a) in before.labels.iter().zip(&after.labels).filter(|(b, a)| b != a) {
            plan.push(format!(
                "ALTER TYPE {name} RENAME VALUE {} TO {}",
                quote_literal(a),
                quote_literal(b)
            ));
        }
        return;
    }
    if !needs_new_type(before, after) {
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
    if added.is_empty() {
        return;
    }
    let values: Vec<String> = added.iter().map(|l| quote_literal(l)).collect();
    plan.notes.push(format!(
        "type {name} goes back to its labels before the up: rows holding {} make the down fail until they are changed",
        values.join(", ")
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(labels: &[&str]) -> Enum {
        let labels = labels.iter().map(|l| l.to_string()).collect();
        Enum { oid: 1, schema: "public".into(), name: "level".into(), labels }
    }

    #[test]
    fn labels_in_another_order_take_a_new_type_as_added_ones_do() {
        let before = labels(&["low", "mid", "high"]);
        for (after, new_type) in [
            (&["high", "mid", "low"][..], true),
            (&["mid", "low"][..], true),
            (&["low", "high"][..], false),
            (&["low", "middle", "high"][..], false),
            (&["low", "mid", "high", "top"][..], true),
            (&["low", "mid", "high"][..], false),
        ] {
            assert_eq!(needs_new_type(&before, &labels(after)), new_type, "{after:?}");
        }
    }
}
