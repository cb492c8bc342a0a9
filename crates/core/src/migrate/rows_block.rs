//! Before a rollback runs (and in `rollback --dry-run`), each down's
//! statements are held against the live rows they will meet: a NOT NULL
//! column added back to a table that has rows, a column made NOT NULL that
//! rows hold NULL in, a UNIQUE constraint the data duplicates, a CHECK it
//! breaks, a FOREIGN KEY it orphans. Each names a few rows by key and the
//! fix. A table an earlier statement of the rollback touches is not
//! judged: its rows by then are not the rows of now.

use std::collections::HashSet;
use std::path::PathBuf;

use postgres::GenericClient;

use backstop_sql::requires::Requirement;
use backstop_sql::rewrite::{ident, qualified};
use backstop_sql::RelationName;

use crate::source::Migration;

/// A down statement that the live rows would make fail.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RowBlock {
    pub version: String,
    pub file: PathBuf,
    pub line: usize,
    pub message: String,
    /// A few of the rows in the way, by key.
    pub rows: Vec<String>,
    pub fix: String,
}

impl std::fmt::Display for RowBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)?;
        if !self.rows.is_empty() {
            write!(f, " (e.g. {})", self.rows.join(", "))?;
        }
        write!(f, "; {}", self.fix)
    }
}

fn sql_name(t: &RelationName) -> String {
    qualified(t.schema.as_deref().unwrap_or(""), &t.name)
}

/// The downs of `targets`, in the order they run, held against the rows.
pub fn check(
    client: &mut impl GenericClient,
    targets: &[&Migration],
) -> Result<Vec<RowBlock>, postgres::Error> {
    let mut out = Vec::new();
    let mut touched: HashSet<String> = HashSet::new();
    for m in targets {
        let Some(down) = &m.down else { continue };
        for s in &down.statements {
            for req in backstop_sql::requires::requirements(&s.sql) {
                let table = match &req {
                    Requirement::NotNull { table, .. }
                    | Requirement::Empty { table, .. }
                    | Requirement::Unique { table, .. }
                    | Requirement::Check { table, .. }
                    | Requirement::Reference { table, .. } => table,
                };
                if touched.contains(&table.name) {
                    continue;
                }
                if let Some((message, rows, fix)) = judge(client, &req)? {
                    out.push(RowBlock {
                        version: m.version.clone(),
                        file: down.path.clone(),
                        line: s.position.line,
                        message,
                        rows,
                        fix,
                    });
                }
            }
            touched.extend(touches(&s.sql));
        }
    }
    Ok(out)
}

/// The tables whose rows a statement changes (values written, converted
/// or the table made again): later requirements on them are not judged on
/// today's rows. Adding a constraint or `SET NOT NULL` changes no row.
fn touches(sql: &str) -> Vec<String> {
    use backstop_sql::rows::RowChange;
    let name = |t: &str| t.rsplit('.').next().unwrap_or(t).to_string();
    let changes = backstop_sql::rows::row_changes(sql);
    if !changes.is_empty() {
        if changes.iter().any(|c| matches!(c, RowChange::Unreadable { .. })) {
            return backstop_sql::referenced_relations(sql).iter().map(|t| name(t)).collect();
        }
        return changes
            .into_iter()
            .filter_map(|c| match c {
                RowChange::Inserted(i) => Some(i.table.name),
                RowChange::Irreversible { table, .. } => table.map(|t| t.name),
                RowChange::Unreadable { .. } => None,
            })
            .collect();
    }
    let keeps_rows = backstop_sql::split(sql).is_ok_and(|stmts| {
        stmts.iter().all(|s| {
            let upper = s.sql.trim_start().to_ascii_uppercase();
            upper.starts_with("ALTER TABLE") && !upper.contains(" TYPE ")
        })
    });
    if keeps_rows {
        Vec::new()
    } else {
        backstop_sql::referenced_relations(sql).iter().map(|t| name(t)).collect()
    }
}

/// How rows are named: by primary key, else by physical place.
fn row_label(client: &mut impl GenericClient, table: &str) -> Result<String, postgres::Error> {
    let keys: Option<String> = client
        .query_one(
            "select string_agg(quote_ident(a.attname), ', ' order by k.n)
               from pg_index i cross join lateral unnest(i.indkey) with ordinality k(attnum, n)
               join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
              where i.indrelid = to_regclass($1) and i.indisprimary",
            &[&table],
        )?
        .get(0);
    Ok(match keys {
        Some(k) => format!("row({k})::text"),
        None => "ctid::text".into(),
    })
}

/// Whether the table and the columns exist now (a down may make them).
fn present(
    client: &mut impl GenericClient,
    table: &str,
    columns: &[&str],
) -> Result<bool, postgres::Error> {
    let names: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
    client
        .query_one(
            "select to_regclass($1) is not null and (select count(*) from pg_attribute
                 where attrelid = to_regclass($1) and attname = any($2) and attnum > 0
                   and not attisdropped) = cardinality($2)",
            &[&table, &names],
        )
        .map(|r| r.get(0))
}

/// Up to five rows a query names, and how many there are; `None` when
/// the query cannot run here (an expression the down's own statements
/// make possible).
fn rows(
    client: &mut impl GenericClient,
    select_from_where: &str,
    label: &str,
) -> Option<(i64, Vec<String>)> {
    let count = client.query_one(&format!("select count(*) {select_from_where}"), &[]).ok()?;
    let n: i64 = count.get(0);
    if n == 0 {
        return Some((0, Vec::new()));
    }
    let some = client.query(&format!("select {label} {select_from_where} limit 5"), &[]).ok()?;
    Some((n, some.iter().map(|r| r.get::<_, String>(0)).collect()))
}

type Judged = Option<(String, Vec<String>, String)>;

fn judge(client: &mut impl GenericClient, req: &Requirement) -> Result<Judged, postgres::Error> {
    match req {
        Requirement::Empty { table, column } => {
            let t = sql_name(table);
            if !present(client, &t, &[])? {
                return Ok(None);
            }
            let label = row_label(client, &t)?;
            Ok(rows(client, &format!("from {t}"), &label).filter(|(n, _)| *n > 0).map(|(n, r)| {
                (
                    format!("{t} has {n} row(s), and the down adds {column} back NOT NULL with no default: it fails"),
                    r,
                    format!("give {column} a DEFAULT in the down (ADD COLUMN … NOT NULL DEFAULT …), or add it NULL, fill it, then SET NOT NULL"),
                )
            }))
        }
        Requirement::NotNull { table, column } => {
            let t = sql_name(table);
            if !present(client, &t, &[column])? {
                return Ok(None);
            }
            let label = row_label(client, &t)?;
            let c = ident(column);
            Ok(rows(client, &format!("from {t} where {c} is null"), &label).filter(|(n, _)| *n > 0).map(|(n, r)| {
                (
                    format!("{n} row(s) of {t} hold NULL in {column}, which the down makes NOT NULL: it fails"),
                    r,
                    format!("fill them in the down first (UPDATE {t} SET {c} = … WHERE {c} IS NULL), or leave the column nullable"),
                )
            }))
        }
        Requirement::Unique { table, columns } => {
            let t = sql_name(table);
            let cols: Vec<&str> = columns.iter().map(String::as_str).collect();
            if columns.is_empty() || !present(client, &t, &cols)? {
                return Ok(None);
            }
            let list = columns.iter().map(|c| ident(c)).collect::<Vec<_>>().join(", ");
            let not_null = columns
                .iter()
                .map(|c| format!("{} is not null", ident(c)))
                .collect::<Vec<_>>()
                .join(" and ");
            let dupes = format!(
                "from (select row({list})::text as v from {t} where {not_null} group by {list} having count(*) > 1) d"
            );
            Ok(rows(client, &dupes, "v").filter(|(n, _)| *n > 0).map(|(n, r)| {
                (
                    format!("{n} value(s) of ({}) appear more than once in {t}, which the down makes unique: it fails", columns.join(", ")),
                    r,
                    "merge or remove the duplicates first (in the down, or by hand), or leave the constraint out".into(),
                )
            }))
        }
        Requirement::Check { table, expr } => {
            let t = sql_name(table);
            if !present(client, &t, &[])? {
                return Ok(None);
            }
            let label = row_label(client, &t)?;
            Ok(rows(client, &format!("from {t} where not ({expr})"), &label).filter(|(n, _)| *n > 0).map(|(n, r)| {
                (
                    format!("{n} row(s) of {t} break CHECK ({expr}), which the down adds: it fails"),
                    r,
                    "correct those rows first, or add the constraint NOT VALID and validate it once they are".into(),
                )
            }))
        }
        Requirement::Reference { table, columns, to, to_columns } => {
            let (t, r) = (sql_name(table), sql_name(to));
            let cols: Vec<&str> = columns.iter().map(String::as_str).collect();
            if columns.is_empty() || !present(client, &t, &cols)? || !present(client, &r, &[])? {
                return Ok(None);
            }
            let to_cols = if to_columns.is_empty() {
                // The referenced table's primary key.
                let pk: Option<String> = client
                    .query_one(
                        "select string_agg(quote_ident(a.attname), ', ' order by k.n)
                           from pg_index i cross join lateral unnest(i.indkey) with ordinality k(attnum, n)
                           join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
                          where i.indrelid = to_regclass($1) and i.indisprimary",
                        &[&r],
                    )?
                    .get(0);
                match pk {
                    Some(pk) => pk,
                    None => return Ok(None),
                }
            } else {
                to_columns.iter().map(|c| ident(c)).collect::<Vec<_>>().join(", ")
            };
            let mine =
                columns.iter().map(|c| format!("x.{}", ident(c))).collect::<Vec<_>>().join(", ");
            let not_null = columns
                .iter()
                .map(|c| format!("x.{} is not null", ident(c)))
                .collect::<Vec<_>>()
                .join(" and ");
            let label = row_label(client, &t)?.replace("row(", "row(x.").replace(", ", ", x.");
            let orphans = format!(
                "from {t} x where {not_null} and not exists (select 1 from {r} y where row({}) = row({mine}))",
                to_cols.split(", ").map(|c| format!("y.{c}")).collect::<Vec<_>>().join(", ")
            );
            Ok(rows(client, &orphans, &label).filter(|(n, _)| *n > 0).map(|(n, rws)| {
                (
                    format!("{n} row(s) of {t} refer to values {r} does not have, and the down adds the foreign key: it fails"),
                    rws,
                    "delete or correct those rows first, or add the key NOT VALID".into(),
                )
            }))
        }
    }
}
