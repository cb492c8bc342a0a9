//! The plan of an expand built: each statement's expand forms applied,
//! checked against the tables as the catalog has them and the shapes as
//! the statements before left them, and turned into what runs at expand,
//! after it, and at contract; a statement with no expand form is a
//! [`Refusal`] naming its file and line.

use std::collections::BTreeMap;

use backstop_sql::expand::{forms, Form};
use backstop_sql::retypes;
use backstop_sql::rewrite::ident;

use super::plan::{
    ColumnShape, Concurrent, Constraint, Fill, NotNull, Plan, Refusal, Retyped, Served, Table,
    TableShape, TwinIndex,
};
use crate::pg::{quote_ident, quote_qualified};
use crate::source::Migration;

/// The plan of expanding `pending` in `schema`, whose tables (by name)
/// are as given; or every statement that stops it.
pub fn build(
    pending: &[&Migration],
    schema: &str,
    tables: &BTreeMap<String, Table>,
) -> Result<Plan, Vec<Refusal>> {
    let mut shapes: BTreeMap<String, TableShape> = tables
        .iter()
        .map(|(t, known)| {
            let columns = known.columns.iter().map(|c| ColumnShape::named(c, false)).collect();
            (t.clone(), TableShape { name: t.clone(), columns, made: false, shown_name: None })
        })
        .collect();
    let mut plan = Plan {
        migrations: pending
            .iter()
            .map(|m| Served {
                version: m.version.clone(),
                name: m.name.clone(),
                checksum: m.checksum.clone(),
            })
            .collect(),
        tables: Vec::new(),
        at_expand: Vec::new(),
        at_contract: Vec::new(),
        indexes: Vec::new(),
        retyped: Vec::new(),
        fills: Vec::new(),
        constraints: Vec::new(),
        not_null: Vec::new(),
        concurrent: Vec::new(),
    };
    let mut refusals = Vec::new();
    for m in pending {
        let file = m.up.path.display();
        if let Some(refusal) = unserved(m) {
            refusals.push(refusal);
            continue;
        }
        for st in &m.up.statements {
            let refuse = |reason: String| Refusal {
                place: format!("{file}:{}", st.position.line),
                statement: st.sql.lines().next().unwrap_or_default().trim().to_string(),
                reason,
            };
            let found = match forms(&st.sql) {
                Ok(f) => f,
                Err(reason) => {
                    refusals.push(refuse(reason));
                    continue;
                }
            };
            let generated = found.iter().filter(|f| generated(f)).count();
            if generated > 0 && generated < found.len() {
                refusals.push(refuse(
                    "a type change, a computed default, SET NOT NULL or ADD CONSTRAINT shares \
                     the statement with other changes; give it a statement of its own"
                        .into(),
                ));
                continue;
            }
            let (mut now, mut placed) = (false, false);
            for form in found {
                match one(&form, schema, &mut shapes, tables, &mut plan) {
                    Ok(When::Expand) => now = true,
                    Ok(When::Contract) => {}
                    Ok(When::Generated { expand, contract }) => {
                        plan.at_expand.extend(expand);
                        plan.at_contract.extend(contract);
                        placed = true;
                    }
                    Ok(When::After) => placed = true,
                    Err(reason) => refusals.push(refuse(reason)),
                }
                if let Form::CreateIndex { index, concurrent, .. } = &form {
                    plan.indexes.push(index.clone());
                    if *concurrent {
                        plan.concurrent
                            .push(Concurrent { index: index.clone(), sql: st.sql.clone() });
                    }
                }
            }
            if placed {
                continue;
            }
            if now {
                plan.at_expand.push(st.sql.clone());
            } else {
                plan.at_contract.push(st.sql.clone());
            }
        }
    }
    if !refusals.is_empty() {
        return Err(refusals);
    }
    plan.tables = shapes.into_values().collect();
    Ok(plan)
}

/// Why a whole migration cannot be served: its file cannot run as written
/// (the contract would record it applied with nothing of it run), or it
/// runs outside a transaction for more than concurrent index builds (which
/// the expand does after its own transaction).
fn unserved(m: &Migration) -> Option<Refusal> {
    if let Some(p) = m.problems_in(crate::source::Part::Up).next() {
        return Some(Refusal {
            place: format!("{}:{}", p.path.display(), p.line),
            statement: m.label(),
            reason: format!("it cannot run as written: {}", p.message),
        });
    }
    let concurrent_only = m.up.statements.iter().all(|st| {
        forms(&st.sql).is_ok_and(|f| {
            f.iter().all(|f| matches!(f, Form::CreateIndex { concurrent: true, .. }))
        })
    });
    (m.no_transaction && !concurrent_only).then(|| Refusal {
        place: format!("{}:1", m.up.path.display()),
        statement: m.label(),
        reason: "it runs outside a transaction, and an expand is one transaction (only CREATE \
                 INDEX CONCURRENTLY runs after it); apply it with `backstop migrate`"
            .into(),
    })
}

/// A form whose statement the expand does not run as written, but through
/// statements of its own.
fn generated(form: &Form) -> bool {
    matches!(
        form,
        Form::RetypeColumn { .. }
            | Form::FillColumn { .. }
            | Form::SetNotNull { .. }
            | Form::AddConstraint { .. }
            | Form::FillRows { .. }
    )
}

/// When a form's statement runs: at expand (it adds what the old shape
/// never names), at contract (it changes what the old shape reads), after
/// the expand's transaction (a concurrent index build), or neither, with
/// statements of the expand's own standing in for it at expand and at
/// contract (a twin, a filled column, a NOT NULL, a NOT VALID constraint).
enum When {
    Expand,
    Contract,
    After,
    Generated { expand: Vec<String>, contract: Vec<String> },
}

/// Applies one form to the shapes and the plan, checked against the
/// tables as they are.
fn one(
    form: &Form,
    schema: &str,
    shapes: &mut BTreeMap<String, TableShape>,
    known: &BTreeMap<String, Table>,
    plan: &mut Plan,
) -> Result<When, String> {
    let table = form.table();
    if let Some(s) = table.schema.as_deref().filter(|s| *s != schema) {
        return Err(format!(
            "it names schema {s}, and this expand serves schema {schema}; expand one schema at a time"
        ));
    }
    let t = &table.name;
    if let Form::CreateTable { columns, .. } = form {
        if taken(shapes, t) {
            return Err(format!("there is already a table {schema}.{t}"));
        }
        let columns = columns.iter().map(|c| ColumnShape::named(c, false)).collect();
        shapes.insert(
            t.clone(),
            TableShape { name: t.clone(), columns, made: true, shown_name: None },
        );
        return Ok(When::Expand);
    }
    if let Form::RenameTable { to, .. } = form {
        if taken(shapes, to) {
            return Err(format!("there is already a table {schema}.{to}"));
        }
    }
    // A table is named as the new shape shows it: renamed, by its new name.
    let Some(shape) = shapes.values_mut().find(|s| s.view_name() == t) else {
        return Err(format!("there is no table {schema}.{t}"));
    };
    let at_expand = matches!(
        form,
        Form::AddColumn { .. }
            | Form::CreateIndex { .. }
            | Form::RetypeColumn { .. }
            | Form::FillColumn { .. }
            | Form::AddConstraint { .. }
            | Form::FillRows { .. }
    );
    if at_expand && shape.shown_name.is_some() {
        return Err(format!(
            "table {t} is renamed by this expand and has that name only after contract, while \
             this statement runs at expand; make the change in a migration after the contract"
        ));
    }
    if let Form::RenameTable { to, .. } = form {
        if shape.made {
            return Err(format!(
                "table {t} is made by this expand; make it under its final name {to}"
            ));
        }
        shape.shown_name = Some(to.clone());
        return Ok(When::Contract);
    }
    match form {
        Form::CreateIndex { concurrent: true, .. } => Ok(When::After),
        Form::AddConstraint { name, sql, validate, .. } => {
            let moved = shape.columns.iter().any(|c| c.real != c.shown || c.via.is_some());
            if moved {
                return Err(format!(
                    "table {t} has columns this expand renames or retypes, and the constraint is \
                     added at expand, on the names the table has until contract; add it in a \
                     migration after the contract"
                ));
            }
            plan.constraints.push(Constraint {
                table: shape.name.clone(),
                name: name.clone(),
                validate: *validate,
            });
            Ok(When::Generated { expand: vec![sql.clone()], contract: Vec::new() })
        }
        _ => columns_of(form, t, shape, known, schema, plan),
    }
}

/// Whether a table has the name `name`, now or in the new shape.
fn taken(shapes: &BTreeMap<String, TableShape>, name: &str) -> bool {
    shapes.contains_key(name) || shapes.values().any(|s| s.view_name() == name)
}

/// Applies a form on the columns of an existing table's shape.
fn columns_of(
    form: &Form,
    t: &str,
    shape: &mut TableShape,
    known: &BTreeMap<String, Table>,
    schema: &str,
    plan: &mut Plan,
) -> Result<When, String> {
    let made = shape.made;
    let (view_name, table_name) = (shape.view_name().to_string(), shape.name.clone());
    let columns = &mut shape.columns;
    match form {
        Form::AddColumn { column, .. } | Form::FillColumn { column, .. } => {
            if columns.iter().any(|c| &c.shown == column && !c.hidden) {
                return Err(format!("table {t} already has a column {column}"));
            }
            if columns.iter().any(|c| &c.real == column) {
                return Err(format!(
                    "table {t} keeps column {column} under that name until contract (the new \
                     shape renames or drops it); add the new column in a migration after the \
                     contract"
                ));
            }
            columns.push(ColumnShape::named(column, true));
            match form {
                Form::FillColumn { new_type, default, not_null, .. } if !made => {
                    let fill = Filling { column, new_type, default, not_null: *not_null };
                    filled(fill, &table_name, &view_name, known, schema, plan)
                }
                // A table the expand makes holds no rows to fill: as written.
                _ => Ok(When::Expand),
            }
        }
        Form::FillRows { column, value, filter, .. } => {
            let col = shown(columns, t, column)?;
            if made {
                // A table the expand makes: its rows are the new shape's.
                return Ok(When::Expand);
            }
            // The statement names the row's columns as the new shape shows
            // them at this point; the table may still call them otherwise.
            let moved = columns.iter().any(|c| c.real != c.shown || c.via.is_some());
            let row: Vec<(String, String)> = match moved {
                true => columns
                    .iter()
                    .filter(|c| !c.hidden)
                    .map(|c| (c.via.clone().unwrap_or_else(|| c.real.clone()), c.shown.clone()))
                    .collect(),
                false => Vec::new(),
            };
            let fill = (value.as_str(), filter.as_deref());
            fill_rows(fill, col, row, &table_name, known, plan)
        }
        Form::SetNotNull { column, .. } => {
            let col = shown(columns, t, column)?;
            if col.via.is_some() {
                return Err(format!(
                    "column {t}.{column} changes type in this expand; make it NOT NULL in a \
                     migration after the contract"
                ));
            }
            let real = col.real.clone();
            let contract =
                not_null_at_contract(plan, schema, &table_name, &view_name, &real, column);
            Ok(When::Generated { expand: Vec::new(), contract: vec![contract] })
        }
        Form::RenameColumn { from, to, .. } => {
            if columns.iter().any(|c| &c.shown == to && !c.hidden) {
                return Err(format!("table {t} already has a column {to}"));
            }
            let Some(col) = columns.iter_mut().find(|c| &c.shown == from && !c.hidden) else {
                return Err(format!("table {t} has no column {from}"));
            };
            if col.added || shape.made {
                return Err(format!(
                    "column {from} is made by this expand; make it under its final name {to}"
                ));
            }
            col.shown = to.clone();
            Ok(When::Contract)
        }
        Form::DropColumn { column, .. } => {
            let Some(col) = columns.iter_mut().find(|c| &c.shown == column && !c.hidden) else {
                return Err(format!("table {t} has no column {column}"));
            };
            if col.added || shape.made {
                return Err(format!(
                    "column {column} is made by this expand; leave it out of the migrations"
                ));
            }
            let required = known.get(&shape.name).is_some_and(|k| k.required.contains(&col.real));
            if required {
                return Err(format!(
                    "column {t}.{} is NOT NULL without a default, so inserts through the new \
                     shape, which no longer show it, would fail; drop NOT NULL or give it a \
                     default in a migration before this one",
                    col.real
                ));
            }
            col.hidden = true;
            Ok(When::Contract)
        }
        Form::RetypeColumn { column, new_type, using, .. } => {
            let known = known.get(&table_name);
            let retype = Retype { table: t, column, new_type, using: using.as_deref() };
            let r = retyped(retype, made, columns, known)?;
            let (expand, contract) = (vec![r.added(schema)], r.swapped(schema));
            plan.retyped.push(r);
            Ok(When::Generated { expand, contract })
        }
        // New tables, indexes, constraints and renamed tables returned above.
        Form::CreateIndex { .. } | Form::CreateTable { .. } => Ok(When::Expand),
        Form::RenameTable { .. } | Form::AddConstraint { .. } => Ok(When::Contract),
    }
}

/// A new column with a computed default, as the statement writes it.
struct Filling<'a> {
    column: &'a str,
    new_type: &'a str,
    default: &'a str,
    not_null: bool,
}

/// A new column whose default each row computes, on a table that has rows:
/// added bare with its default for new rows, the rows there filled in
/// batches after the expand's transaction, NOT NULL set at contract.
fn filled(
    f: Filling<'_>,
    table_name: &str,
    view_name: &str,
    known: &BTreeMap<String, Table>,
    schema: &str,
    plan: &mut Plan,
) -> Result<When, String> {
    let column = f.column;
    let key = walked(known.get(table_name), view_name, column)?;
    let table = quote_qualified(Some(schema), table_name);
    let c = quote_ident(column);
    let expand = vec![
        format!("ALTER TABLE {table} ADD COLUMN {c} {}", f.new_type),
        format!("ALTER TABLE {table} ALTER COLUMN {c} SET DEFAULT {}", f.default),
    ];
    let fill = Fill {
        table: table_name.into(),
        column: column.into(),
        value: f.default.into(),
        filter: None,
        key,
        by_rows: false,
        row: Vec::new(),
    };
    plan.fills.push(fill);
    let contract = match f.not_null {
        true => vec![not_null_at_contract(plan, schema, table_name, view_name, column, column)],
        false => Vec::new(),
    };
    Ok(When::Generated { expand, contract })
}

/// A column the same expand adds, filled by an `UPDATE` of the migrations
/// with an expression of the row: the rows there in batches, the old
/// shape's by a trigger.
fn fill_rows(
    (value, filter): (&str, Option<&str>),
    col: &ColumnShape,
    row: Vec<(String, String)>,
    table_name: &str,
    known: &BTreeMap<String, Table>,
    plan: &mut Plan,
) -> Result<When, String> {
    let (t, column) = (table_name, col.shown.as_str());
    if !col.added || col.via.is_some() {
        return Err(format!(
            "this UPDATE changes column {t}.{column}, which the old shape reads; an expand \
             fills only a column it adds"
        ));
    }
    let key = walked(known.get(table_name), t, column)?;
    plan.fills.push(Fill {
        table: table_name.into(),
        column: col.real.clone(),
        value: value.into(),
        filter: filter.map(str::to_string),
        key,
        by_rows: true,
        row,
    });
    Ok(When::Generated { expand: Vec::new(), contract: Vec::new() })
}

/// The primary key a backfill of `column` of table `t` walks, or why
/// there is none to walk.
fn walked(known: Option<&Table>, t: &str, column: &str) -> Result<Vec<(String, String)>, String> {
    match known.map(|k| k.key.clone()).unwrap_or_default() {
        key if !key.is_empty() => Ok(key),
        _ => Err(format!(
            "table {t} has no primary key, which the backfill of column {column} walks in \
             batches; add one in a migration before this one"
        )),
    }
}

/// A column as the new shape shows it at this point of the migrations.
fn shown<'c>(columns: &'c [ColumnShape], t: &str, name: &str) -> Result<&'c ColumnShape, String> {
    columns
        .iter()
        .find(|c| c.shown == name && !c.hidden)
        .ok_or_else(|| format!("table {t} has no column {name}"))
}

/// Records a NOT NULL for the contract and gives its statement, naming the
/// table and column as they are called at that point of the contract.
fn not_null_at_contract(
    plan: &mut Plan,
    schema: &str,
    table: &str,
    table_then: &str,
    column: &str,
    column_then: &str,
) -> String {
    let check = format!("backstop_not_null_{}", plan.not_null.len());
    plan.not_null.push(NotNull { table: table.into(), column: column.into(), check });
    format!(
        "ALTER TABLE {} ALTER COLUMN {} SET NOT NULL",
        quote_qualified(Some(schema), table_then),
        quote_ident(column_then)
    )
}

/// A type change as the statement writes it.
struct Retype<'a> {
    table: &'a str,
    column: &'a str,
    new_type: &'a str,
    using: Option<&'a str>,
}

/// The twin of a retyped column, or why the column cannot have one.
fn retyped(
    r: Retype<'_>,
    made: bool,
    columns: &mut [ColumnShape],
    known: Option<&Table>,
) -> Result<Retyped, String> {
    let (t, c) = (r.table, r.column);
    let twin_taken = |name: &str| columns.iter().any(|x| x.real == name || x.shown == name);
    let col = shown(columns, t, c)?;
    if col.added || made {
        return Err(format!("column {c} is made by this expand; make it with its final type"));
    }
    if col.via.is_some() {
        return Err(format!(
            "column {t}.{c} changes type twice in this expand; change it once, to the last type"
        ));
    }
    let real = col.real.clone();
    let twin = format!("_backstop_new_{real}");
    if twin.len() > 63 || twin_taken(&twin) {
        return Err(format!(
            "the twin column {twin} of {t}.{c} is taken or longer than 63 bytes; rename the \
             column first"
        ));
    }
    let facts = known.and_then(|k| k.facts.get(&real)).cloned().unwrap_or_default();
    let indexes = twin_indexes(&facts.indexes, &real, &twin);
    let moved = |used: &String| {
        let named = used.strip_prefix("index ");
        indexes.iter().any(|i| named.is_some_and(|n| n.rsplit('.').next() == Some(&i.name)))
    };
    let blocking: Vec<&String> = facts.used_by.iter().filter(|u| !moved(u)).collect();
    if !blocking.is_empty() {
        let names: Vec<&str> = blocking.iter().map(|u| u.as_str()).collect();
        return Err(format!(
            "column {t}.{c} is used by {}, which contract would have to rebuild on the new \
             column; not an expand form yet: change the type with `backstop migrate`",
            names.join(", ")
        ));
    }
    let key = walked(known, t, c)?;
    let named = ident(c);
    let up = match r.using {
        Some(e) => e.to_string(),
        None => format!("CAST({named} AS {})", r.new_type),
    };
    let old = &facts.type_sql;
    let (down, loses) = match r.using {
        None => (format!("CAST({named} AS {old})"), None),
        Some(e) if retypes::through_text(e, c) => {
            (format!("CAST(CAST({named} AS text) AS {old})"), None)
        }
        Some(e) => match retypes::inverse(e, c, old) {
            Some(inv) => (format!("CAST(({}) AS {old})", inv.expression), inv.loses),
            None => {
                return Err(format!(
                    "no inverse is known for USING {e}: a value written through the new shape \
                     could not reach column {c} of the old one; known are casts, \
                     convert_to/convert_from, to_timestamp/extract(epoch) and text to json"
                ))
            }
        },
    };
    let col = columns.iter_mut().find(|x| x.real == real).expect("found above");
    col.via = Some(twin.clone());
    Ok(Retyped {
        table: t.into(),
        column: real,
        twin,
        named: c.into(),
        old_type: old.clone(),
        new_type: r.new_type.into(),
        up,
        down,
        loses,
        key,
        default: facts.default.clone(),
        not_null: facts.not_null,
        indexes,
    })
}

/// The indexes of `column` (their definitions) made again on `twin`;
/// one on an expression or with a predicate of the column is left out
/// (the column's `used_by` then still names it, which refuses the form).
fn twin_indexes(defs: &[String], column: &str, twin: &str) -> Vec<TwinIndex> {
    defs.iter()
        .filter_map(|def| {
            let name = backstop_sql::expand::retarget_index(def, column, twin, "")
                .ok()
                .map(|(name, _)| name)?;
            let on_twin = format!("_backstop_new_{name}");
            if on_twin.len() > 63 {
                return None;
            }
            let (_, sql) =
                backstop_sql::expand::retarget_index(def, column, twin, &on_twin).ok()?;
            Some(TwinIndex { name, on_twin: Concurrent { index: on_twin, sql } })
        })
        .collect()
}

impl Retyped {
    /// The statement that adds the twin at expand.
    fn added(&self, schema: &str) -> String {
        format!(
            "ALTER TABLE {} ADD COLUMN {} {}",
            quote_qualified(Some(schema), &self.table),
            quote_ident(&self.twin),
            self.new_type
        )
    }

    /// The statements that put the twin in the column's place at contract,
    /// where the column is called `named`: the column dropped, the twin
    /// renamed, the default and NOT NULL carried over.
    fn swapped(&self, schema: &str) -> Vec<String> {
        let table = quote_qualified(Some(schema), &self.table);
        let named = quote_ident(&self.named);
        let mut out = vec![
            format!("ALTER TABLE {table} DROP COLUMN {named}"),
            format!("ALTER TABLE {table} RENAME COLUMN {} TO {named}", quote_ident(&self.twin)),
        ];
        for i in &self.indexes {
            out.push(format!(
                "ALTER INDEX {} RENAME TO {}",
                quote_qualified(Some(schema), &i.on_twin.index),
                quote_ident(&i.name)
            ));
        }
        if let Some(d) = &self.default {
            out.push(format!(
                "ALTER TABLE {table} ALTER COLUMN {named} SET DEFAULT CAST(({d}) AS {})",
                self.new_type
            ));
        }
        if self.not_null {
            out.push(format!("ALTER TABLE {table} ALTER COLUMN {named} SET NOT NULL"));
        }
        out
    }
}
