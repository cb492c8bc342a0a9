//! Protected tables, exactly: before a migration runs, each protected
//! table's OID, the filenode of each leaf partition and a baseline of
//! deleted tuples are recorded; afterwards, inside the same transaction,
//! an OID change means dropped (or dropped and recreated), a deleted-tuple
//! delta means rows were deleted, and a filenode change means TRUNCATE or a
//! rewrite, for which rows are counted before (only for the tables the
//! parser says are rewritten) and after. No full-table count otherwise.

use postgres::GenericClient;

use backstop_sql::Statement;

use crate::pg::quote_qualified;

/// A configured protected table name, split into schema and table.
fn split_name(configured: &str) -> (Option<&str>, &str) {
    match configured.split_once('.') {
        Some((schema, table)) if !schema.is_empty() && !table.contains('.') => {
            (Some(schema), table)
        }
        _ => (None, configured),
    }
}

#[derive(Debug, Clone)]
struct Leaf {
    oid: u32,
    qualified: String,
    filenode: u32,
    deleted_before: i64,
    rows_before: Option<i64>,
}

#[derive(Debug, Clone)]
struct Table {
    configured: String,
    oid: u32,
    leaves: Vec<Leaf>,
}

/// What pre-flight recorded.
#[derive(Debug, Clone, Default)]
pub struct Baseline {
    tables: Vec<Table>,
}

/// A protected table the migration would damage, or that is missing.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Violation {
    pub table: String,
    pub problem: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "protected table {} {}", self.table, self.problem)
    }
}

/// The table a configured protected name means on this server (search
/// path first, as PostgreSQL would), if it exists.
pub(crate) fn resolve(
    client: &mut impl GenericClient,
    configured: &str,
) -> Result<Option<u32>, postgres::Error> {
    let (schema, table) = split_name(configured);
    let row = client.query_opt(
        "select c.oid from pg_class c join pg_namespace n on n.oid = c.relnamespace
          where c.relname = $2 and c.relkind in ('r', 'p')
            and case when $1::text is null then n.nspname::text = any(current_schemas(false)::text[])
                     else n.nspname::text = $1 end
          order by array_position(current_schemas(false)::text[], n.nspname::text) nulls last
          limit 1",
        &[&schema, &table],
    )?;
    Ok(row.map(|r| r.get(0)))
}

fn deleted(client: &mut impl GenericClient, oid: u32) -> Result<i64, postgres::Error> {
    let row = client.query_one(
        "select coalesce((select n_tup_del from pg_stat_xact_user_tables where relid = $1), 0)",
        &[&oid],
    )?;
    Ok(row.get(0))
}

fn count_rows(client: &mut impl GenericClient, qualified: &str) -> Result<i64, postgres::Error> {
    Ok(client.query_one(&format!("select count(*) from only {qualified}"), &[])?.get(0))
}

fn names(configured: &str, r: &backstop_sql::RelationName) -> bool {
    let (schema, table) = split_name(configured);
    r.name == table && (r.schema.is_none() || schema.is_none() || r.schema.as_deref() == schema)
}

fn is_rewritten<'a>(configured: &str, mut statements: impl Iterator<Item = &'a Statement>) -> bool {
    statements
        .any(|s| s.facts.truncate_cascade || s.facts.rewrites.iter().any(|r| names(configured, r)))
}

fn is_created<'a>(configured: &str, mut statements: impl Iterator<Item = &'a Statement>) -> bool {
    statements.any(|s| s.facts.creates_table.as_ref().is_some_and(|r| names(configured, r)))
}

/// The protected tables (as configured) that one of `migrations` creates.
pub fn made_by(protected: &[String], migrations: &[crate::source::Migration]) -> Vec<String> {
    let ups = || migrations.iter().flat_map(|m| m.up.statements.iter());
    protected.iter().filter(|c| is_created(c, ups())).cloned().collect()
}

/// Where a rollback of `todo` (in the order applied) stops: the newest of
/// them whose up creates protected tables (its down would drop them, and
/// the guard refuses that), with those tables. The downs a rollback of
/// them all can run are those of the migrations after it.
pub fn rollback_stops<'m>(
    protected: &[String],
    todo: impl DoubleEndedIterator<Item = &'m crate::source::Migration> + ExactSizeIterator,
) -> Option<(usize, Vec<String>)> {
    let len = todo.len();
    todo.rev().enumerate().find_map(|(back, m)| {
        let made = made_by(protected, std::slice::from_ref(m));
        (!made.is_empty()).then(|| (len - 1 - back, made))
    })
}

/// `settings` for a replay that does not start from the target (`downs`
/// from the platform or a given start): it holds what its start and the
/// project's migrations make, so a protected table the start lacks and
/// no migration makes is never there and has no rows to lose. It is left
/// out, where the pre-flight would refuse every up as missing it.
pub fn on_replay(
    client: &mut impl GenericClient,
    settings: &super::Settings,
) -> Result<super::Settings, postgres::Error> {
    let mut kept = Vec::new();
    for configured in &settings.protected_tables {
        if settings.protected_made.contains(configured) || resolve(client, configured)?.is_some() {
            kept.push(configured.clone());
        }
    }
    Ok(super::Settings { protected_tables: kept, ..settings.clone() })
}

/// Records the state of every protected table. A missing table is returned
/// as a violation (the migration must not start) unless the migration
/// itself creates it or one of the project's migrations does (`made`, see
/// [`super::Settings::knowing`]): then there is nothing yet to lose.
pub fn preflight<'a>(
    client: &mut impl GenericClient,
    (protected, made): (&[String], &[String]),
    statements: impl Iterator<Item = &'a Statement> + Clone,
) -> Result<Result<Baseline, Violation>, postgres::Error> {
    let mut baseline = Baseline::default();
    for configured in protected {
        let Some(oid) = resolve(client, configured)? else {
            if made.contains(configured) || is_created(configured, statements.clone()) {
                continue;
            }
            return Ok(Err(Violation {
                table: configured.clone(),
                problem: "does not exist; create it, or fix protected_tables in backstop.toml"
                    .into(),
            }));
        };
        let count = is_rewritten(configured, statements.clone());
        let rows = client.query(
            // A plain table is its own only leaf; pg_partition_tree lists
            // nothing for it.
            "select c.oid, n.nspname::text, c.relname::text, pg_relation_filenode(c.oid)
               from pg_class c join pg_namespace n on n.oid = c.relnamespace
              where c.relkind = 'r'
                and (c.oid = $1 or c.oid in (select relid from pg_partition_tree($1::oid::regclass)))",
            &[&oid],
        )?;
        let mut leaves = Vec::with_capacity(rows.len());
        for row in rows {
            let oid: u32 = row.get(0);
            let schema: String = row.get(1);
            let name: String = row.get(2);
            let qualified = quote_qualified(Some(&schema), &name);
            let rows_before = if count { Some(count_rows(client, &qualified)?) } else { None };
            leaves.push(Leaf {
                oid,
                filenode: row.get::<_, Option<u32>>(3).unwrap_or(0),
                deleted_before: deleted(client, oid)?,
                rows_before,
                qualified,
            });
        }
        baseline.tables.push(Table { configured: configured.clone(), oid, leaves });
    }
    Ok(Ok(baseline))
}

/// The cheap part of [`postcheck`], run after every statement so a report
/// can name the statement that did the damage: is each protected table
/// still there, and were rows deleted from it? One round trip.
pub fn quick_check(
    client: &mut impl GenericClient,
    baseline: &Baseline,
) -> Result<Vec<Violation>, postgres::Error> {
    if baseline.tables.is_empty() {
        return Ok(Vec::new());
    }
    let oids: Vec<u32> = baseline
        .tables
        .iter()
        .flat_map(|t| std::iter::once(t.oid).chain(t.leaves.iter().map(|l| l.oid)))
        .collect();
    let rows = client.query(
        "select o, exists (select 1 from pg_class where oid = o), pg_stat_get_xact_tuples_deleted(o)
           from unnest($1::oid[]) o",
        &[&oids],
    )?;
    let state = |oid: u32| rows.iter().find(|r| r.get::<_, u32>(0) == oid);
    let mut violations = Vec::new();
    for table in &baseline.tables {
        if !state(table.oid).is_some_and(|r| r.get::<_, bool>(1)) {
            violations
                .push(Violation { table: table.configured.clone(), problem: "was dropped".into() });
            continue;
        }
        for leaf in &table.leaves {
            let removed = state(leaf.oid).map_or(0, |r| r.get::<_, i64>(2)) - leaf.deleted_before;
            if removed > 0 {
                violations.push(Violation {
                    table: table.configured.clone(),
                    problem: format!("had {removed} row(s) deleted from {}", leaf.qualified),
                });
            }
        }
    }
    Ok(violations)
}

/// Compares the protected tables with the baseline, in the same transaction.
pub fn postcheck(
    client: &mut impl GenericClient,
    baseline: &Baseline,
) -> Result<Vec<Violation>, postgres::Error> {
    let mut violations = Vec::new();
    for table in &baseline.tables {
        let mut problem = |p: String| {
            violations.push(Violation { table: table.configured.clone(), problem: p });
        };
        let still_there =
            client.query_opt("select 1 from pg_class where oid = $1", &[&table.oid])?.is_some();
        match (still_there, resolve(client, &table.configured)?) {
            (false, None) => {
                problem("was dropped".into());
                continue;
            }
            (false, Some(_)) => {
                problem("was dropped and recreated (its rows are gone)".into());
                continue;
            }
            (true, None) => {
                problem("was renamed or moved to another schema".into());
                continue;
            }
            (true, Some(oid)) if oid != table.oid => {
                problem("is shadowed by a new table of the same name".into());
                continue;
            }
            (true, Some(_)) => {}
        }
        for leaf in &table.leaves {
            let filenode: Option<Option<u32>> = client
                .query_opt(
                    "select pg_relation_filenode(oid) from pg_class where oid = $1",
                    &[&leaf.oid],
                )?
                .map(|r| r.get(0));
            let Some(filenode) = filenode else {
                problem(format!("lost its partition {} (dropped)", leaf.qualified));
                continue;
            };
            let removed = deleted(client, leaf.oid)? - leaf.deleted_before;
            if removed > 0 {
                problem(format!("had {removed} row(s) deleted from {}", leaf.qualified));
            }
            if filenode.unwrap_or(0) != leaf.filenode {
                match leaf.rows_before {
                    Some(before) => {
                        let after = count_rows(client, &leaf.qualified)?;
                        if after < before {
                            problem(format!(
                                "lost {} of {before} row(s) in {} (truncated or rewritten)",
                                before - after,
                                leaf.qualified
                            ));
                        }
                    }
                    None => problem(format!(
                        "had its storage replaced ({}) by a statement Backstop could not foresee, \
                         so no row count proves nothing was lost",
                        leaf.qualified
                    )),
                }
            }
        }
    }
    Ok(violations)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_at_one_dot_only() {
        assert_eq!(split_name("users"), (None, "users"));
        assert_eq!(split_name("auth.users"), (Some("auth"), "users"));
        assert_eq!(split_name("x\"; DROP TABLE users; --"), (None, "x\"; DROP TABLE users; --"));
        assert_eq!(split_name("a.b.c"), (None, "a.b.c"));
    }
}
