//! What the project put on the platform's tables, in a restore in place.
//!
//! The platform's schemas stay as they are, but a release hangs its own
//! triggers and policies on their tables (a signup trigger on
//! `auth.users`, a policy on `storage.objects`). Those that call into
//! the project's schemas go with them and come back from the backup
//! (`in_place::attached`); the rest are decided here, on what the backup
//! holds and on what the migrations applied since it touched (their
//! records, `migrate::expect`): one the backup holds and the database
//! lacks (a restore or a down took it) is put back; one a migration
//! applied since made or changed goes, or is made again as the backup
//! holds it; one nobody can tell is the project's stays, named. Rows of
//! the platform's tables are restored only where they are the project's
//! (`platform_rows`); where another's count differs from the backup's,
//! the restore says so.

use std::collections::BTreeSet;

use postgres::Client;

use super::toc::{Entry, Toc};
use crate::backup::manifest::Manifest;
use crate::backup::BackupError;
use crate::pg::quote_ident;

/// A trigger or policy on a table of a platform schema.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Rule {
    /// `TRIGGER` or `POLICY`, as pg_restore lists them.
    kind: &'static str,
    schema: String,
    table: String,
    name: String,
}

impl Rule {
    /// A kind as a list or a query names it, as this module keeps it.
    fn kind_of(kind: &str) -> &'static str {
        if kind == "TRIGGER" {
            "TRIGGER"
        } else {
            "POLICY"
        }
    }

    /// Its key in the schema's picture (`trigger auth.users.on_signup`).
    fn picture_key(&self) -> String {
        format!("{} {}.{}.{}", self.kind.to_lowercase(), self.schema, self.table, self.name)
    }

    /// Its entry's key in a backup's list.
    fn entry_key(&self) -> String {
        Entry::key(self.kind, &self.schema, &format!("{} {}", self.table, self.name))
    }

    fn said(&self) -> String {
        format!("{} {} on {}.{}", self.kind.to_lowercase(), self.name, self.schema, self.table)
    }

    fn drop(&self) -> String {
        let on = format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.table));
        format!("DROP {} IF EXISTS {} ON {on};\n", self.kind, quote_ident(&self.name))
    }
}

/// What the restore does with the project's rules on the platform's tables.
#[derive(Debug, Default)]
pub(super) struct Plan {
    /// Entries of the backup's list to restore.
    pub keep: Vec<String>,
    /// Statements run before the restore, in its transaction.
    pub drops: String,
    /// What it does and leaves, each a line to say.
    pub done: Vec<String>,
    pub left: Vec<String>,
    /// What must be there after the restore, and what must not.
    there: Vec<Rule>,
    gone: Vec<Rule>,
}

/// Decides, for backup `m` (its list `toc`) restored in place over
/// `schemas`, what becomes of the triggers and policies on the other
/// schemas' tables; `attached` (list keys) are those that go with the
/// project's schemas, decided already.
pub(super) fn plan(
    client: &mut Client,
    toc: &Toc,
    m: &Manifest,
    schemas: &[String],
    attached: &[String],
) -> Result<Plan, BackupError> {
    let outside = |s: &str| s != "backstop" && s != "-" && !schemas.iter().any(|x| x == s);
    let now = rules_now(client, schemas)?;
    let tables = tables_now(client, schemas)?;
    let touched = touched_since(client, m)?;
    let mut plan = Plan::default();
    let id = &m.id;
    for (kind, schema, name) in toc.entries_of(&["TRIGGER", "POLICY"]) {
        if !outside(schema) {
            continue;
        }
        // `table name`: the table is the longest one of the schema that
        // the name starts with, a space after it.
        let Some(table) = tables
            .iter()
            .filter(|(s, t)| s == schema && name.starts_with(&format!("{t} ")))
            .map(|(_, t)| t)
            .max_by_key(|t| t.len())
        else {
            plan.left.push(format!(
                "{} {name} on {schema}: not put back, its table is not there any more",
                kind.to_lowercase()
            ));
            continue;
        };
        let rule = Rule {
            kind: Rule::kind_of(kind),
            schema: schema.to_string(),
            table: table.clone(),
            name: name[table.len() + 1..].to_string(),
        };
        if attached.contains(&rule.entry_key()) {
            continue;
        }
        let (there, changed) = (now.contains(&rule), touched.contains(&rule.picture_key()));
        if there && !changed {
            continue;
        }
        if there {
            plan.drops.push_str(&rule.drop());
            plan.done.push(format!(
                "{}: made again as backup {id} holds it (a migration applied since changed it)",
                rule.said()
            ));
        } else {
            plan.done.push(format!("{}: put back, as backup {id} holds it", rule.said()));
        }
        plan.keep.push(rule.entry_key());
        plan.there.push(rule);
    }
    for rule in
        now.iter().filter(|r| !toc.has(r.kind, &r.schema, &format!("{} {}", r.table, r.name)))
    {
        if attached.contains(&rule.entry_key()) {
            continue;
        }
        if touched.contains(&rule.picture_key()) {
            plan.drops.push_str(&rule.drop());
            plan.done.push(format!(
                "{}: removed, as backup {id} has none (a migration applied since made it)",
                rule.said()
            ));
            plan.gone.push(rule.clone());
        } else {
            plan.left.push(format!(
                "{}: stays: backup {id} has none, and no migration applied since made it (the \
                 platform's, or made by hand)",
                rule.said()
            ));
        }
    }
    plan.left.extend(rows_left(client, m, schemas)?);
    Ok(plan)
}

impl Plan {
    /// What differs, after the restore, from what the plan put back and
    /// removed.
    pub(super) fn differences(&self, client: &mut Client) -> Result<Vec<String>, BackupError> {
        let now = rules_now(client, &[])?;
        let mut out = Vec::new();
        for r in self.there.iter().filter(|r| !now.contains(r)) {
            out.push(format!("{} is not there after the restore", r.said()));
        }
        for r in self.gone.iter().filter(|r| now.contains(r)) {
            out.push(format!("{} is still there after the restore", r.said()));
        }
        Ok(out)
    }
}

/// The triggers (not a constraint's own) and policies on the tables of
/// every schema but `schemas` and Backstop's.
fn rules_now(client: &mut Client, schemas: &[String]) -> Result<BTreeSet<Rule>, BackupError> {
    let rows = client
        .query(
            "select 'TRIGGER', n.nspname::text, c.relname::text, t.tgname::text
               from pg_trigger t join pg_class c on c.oid = t.tgrelid
               join pg_namespace n on n.oid = c.relnamespace
              where not t.tgisinternal and n.nspname <> all($1) and n.nspname <> 'backstop'
             union all
             select 'POLICY', n.nspname::text, c.relname::text, p.polname::text
               from pg_policy p join pg_class c on c.oid = p.polrelid
               join pg_namespace n on n.oid = c.relnamespace
              where n.nspname <> all($1) and n.nspname <> 'backstop'",
            &[&schemas],
        )
        .map_err(BackupError::db("reading the triggers and policies on the platform's tables"))?;
    Ok(rows
        .iter()
        .map(|r| Rule {
            kind: Rule::kind_of(r.get(0)),
            schema: r.get(1),
            table: r.get(2),
            name: r.get(3),
        })
        .collect())
}

/// The tables (and views, whose triggers pg_dump lists alike) of every
/// schema but `schemas`, as (schema, name).
fn tables_now(
    client: &mut Client,
    schemas: &[String],
) -> Result<Vec<(String, String)>, BackupError> {
    let rows = client
        .query(
            "select n.nspname::text, c.relname::text from pg_class c
               join pg_namespace n on n.oid = c.relnamespace
              where c.relkind in ('r', 'p', 'v', 'm', 'f') and n.nspname <> all($1)",
            &[&schemas],
        )
        .map_err(BackupError::db("listing the platform's tables"))?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// The picture keys of what the migrations applied since backup `m`
/// touched, as their records say (none where the backup recorded no
/// history, or a migration was applied without a record).
fn touched_since(client: &mut Client, m: &Manifest) -> Result<BTreeSet<String>, BackupError> {
    let Some(state) = &m.state else { return Ok(BTreeSet::new()) };
    const READING: &str = "reading what the migrations applied since the backup touched";
    let db = || BackupError::db(READING);
    if !crate::schema::exists(client).map_err(db())? {
        return Ok(BTreeSet::new());
    }
    let now = crate::schema::applied::versions(client).map_err(db())?;
    let since: Vec<String> = now.into_iter().filter(|v| !state.applied.contains(v)).collect();
    let records = crate::migrate::expect::records(client, &since).map_err(db())?;
    Ok(records.into_values().flat_map(|e| e.touched.into_iter().map(|t| t.key)).collect())
}

/// The platform's small tables (at most 100,000 rows by the planner's
/// estimate) whose rows now number otherwise than in backup `m`: a
/// restore in place leaves them as they are.
fn rows_left(
    client: &mut Client,
    m: &Manifest,
    schemas: &[String],
) -> Result<Vec<String>, BackupError> {
    // One read of which of the backup's tables are the platform's and
    // small, then a count of each of those.
    let listed: Vec<&String> = m.row_counts.keys().collect();
    let small = client
        .query(
            "select n.nspname::text, c.relname::text from pg_class c
               join pg_namespace n on n.oid = c.relnamespace
              where n.nspname || '.' || c.relname = any($1) and c.relkind in ('r', 'p')
                and n.nspname <> all($2) and n.nspname <> 'backstop'
                and n.nspname || '.' || c.relname <> all($3)
                and c.reltuples <= 100000 and has_table_privilege(c.oid, 'SELECT')
              order by 1, 2",
            &[&listed, &schemas, &super::platform_rows::handled()],
        )
        .map_err(BackupError::db("reading the platform's tables"))?;
    let mut out = Vec::new();
    for row in &small {
        let (schema, name): (String, String) = (row.get(0), row.get(1));
        let table = format!("{schema}.{name}");
        let Some(then) = m.row_counts.get(&table) else { continue };
        let sql = format!("select count(*) from {}.{}", quote_ident(&schema), quote_ident(&name));
        let now: i64 = client
            .query_one(&sql, &[])
            .map_err(BackupError::db("counting the platform's rows"))?
            .get(0);
        if now != *then {
            out.push(format!(
                "{table}: {now} row(s) now, {then} in backup {}: rows of the platform's tables \
                 stay as they are",
                m.id
            ));
        }
    }
    Ok(out)
}
