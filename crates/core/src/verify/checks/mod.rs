//! One file per check kind. Each takes its config and a session (or, for
//! `http`, the resolved headers) and says pass or fail with a sentence
//! that names what it found. What they share lives here: the session a
//! check runs in, finding a table from its configured name, binding a
//! value as text, and PostgreSQL's error in one line.

pub(crate) mod checksums;
pub(crate) mod columns;
pub(crate) mod connection;
pub(crate) mod explain;
pub(crate) mod extensions;
pub(crate) mod foreign_keys;
pub mod http;
pub(crate) mod indexes;
pub(crate) mod recent_rows;
pub(crate) mod rls;
pub(crate) mod rls_isolation;
pub(crate) mod row_counts;
pub(crate) mod sql;
pub(crate) mod tables;

pub(crate) use crate::pg::db;
use std::sync::Arc;
use std::time::Duration;

use postgres::types::{to_sql_checked, Format, IsNull, ToSql, Type};
use postgres::{Client, GenericClient};

use super::config::{CheckSpec, Kind, TableName};
use super::snapshot::Snapshot;
use super::VerifyError;

/// What a check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    Pass(String),
    Fail(String),
}

/// One check with everything it needs to run on its own thread.
#[derive(Debug)]
pub(crate) struct Job {
    pub spec: CheckSpec,
    pub url: String,
    /// What `row_counts` and `checksums` compare with.
    pub snapshot: Option<Arc<Snapshot>>,
    /// The `http` check's headers, `${ENV}` filled in.
    pub headers: Vec<(String, String)>,
}

/// Runs one check.
pub(crate) fn run(job: &Job) -> Result<Outcome, VerifyError> {
    let timeout = job.spec.timeout;
    let snapshot =
        || job.snapshot.as_deref().expect("the suite loads a snapshot for snapshot checks");
    match &job.spec.kind {
        Kind::Http(c) => http::run(c, &job.headers, timeout),
        Kind::Connection(c) => connection::run(c, &job.url, timeout),
        Kind::RlsIsolation(c) => rls_isolation::run(c, &mut session(&job.url, timeout, false)?),
        kind => {
            let client = &mut session(&job.url, timeout, true)?;
            match kind {
                Kind::Tables(c) => tables::run(c, client),
                Kind::Columns(c) => columns::run(c, client),
                Kind::Extensions(c) => extensions::run(c, client),
                Kind::Indexes(c) => indexes::run(c, client),
                Kind::Rls(c) => rls::run(c, client),
                Kind::RowCounts(c) => row_counts::run(c, snapshot(), client),
                Kind::Checksums(c) => checksums::run(c, snapshot(), client),
                Kind::ForeignKeys(c) => foreign_keys::run(c, client),
                Kind::RecentRows(c) => recent_rows::run(c, client),
                Kind::Sql(c) => sql::run(c, client),
                Kind::Explain(c) => explain::run(c, client),
                Kind::Http(_) | Kind::Connection(_) | Kind::RlsIsolation(_) => {
                    unreachable!("matched above")
                }
            }
        }
    }
}

/// A session for one check: its queries end at the check's timeout, and
/// (for every check but `rls_isolation`, which rolls back what it writes)
/// it cannot write.
pub(crate) fn session(
    url: &str,
    timeout: Duration,
    read_only: bool,
) -> Result<Client, VerifyError> {
    let mut client = crate::pg::connect(url, "backstop verify")?;
    let ms = timeout.as_millis().clamp(1, i32::MAX as u128);
    let mut sql = format!("SET statement_timeout = {ms}; SET lock_timeout = {ms};");
    if read_only {
        sql.push_str(" SET default_transaction_read_only = on;");
    }
    client.batch_execute(&sql).map_err(db("preparing the check's session"))?;
    Ok(client)
}

/// A read-only repeatable-read transaction (see [`crate::pg::one_moment`]).
pub(crate) fn one_moment(client: &mut Client) -> Result<postgres::Transaction<'_>, VerifyError> {
    Ok(crate::pg::one_moment(client).map_err(db("starting a repeatable-read transaction"))?)
}

/// PostgreSQL's error in one line: `SQLSTATE: message (detail)`.
pub(crate) fn pg_message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!("{}: {}", db.code().code(), db.message());
            if let Some(detail) = db.detail() {
                s.push_str(&format!(" ({detail})"));
            }
            s
        }
        None => e.to_string(),
    }
}

/// A relation found from its configured name.
#[derive(Debug, Clone)]
pub(crate) struct Relation {
    pub schema: String,
    pub name: String,
    pub oid: u32,
}

impl Relation {
    /// `"schema"."name"`, quoted for SQL text.
    pub fn sql(&self) -> String {
        crate::pg::quote_qualified(Some(&self.schema), &self.name)
    }
}

impl std::fmt::Display for Relation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.schema == "public" {
            f.write_str(&self.name)
        } else {
            write!(f, "{}.{}", self.schema, self.name)
        }
    }
}

/// Finds `name` among relations of the given kinds: in its schema when
/// qualified, else the first match along the session's `search_path`.
pub(crate) fn find_relation(
    client: &mut impl GenericClient,
    name: &TableName,
    kinds: &[&str],
) -> Result<Option<Relation>, VerifyError> {
    let kinds: Vec<String> = kinds.iter().map(|k| k.to_string()).collect();
    let row = client
        .query_opt(
            "select n.nspname::text, c.relname::text, c.oid
               from pg_class c join pg_namespace n on n.oid = c.relnamespace
              where c.relname = $1 and c.relkind::text = any($3)
                and (n.nspname = $2 or ($2 is null and n.nspname = any(current_schemas(false))))
              order by array_position(current_schemas(false), n.nspname) nulls last
              limit 1",
            &[&name.name, &name.schema, &kinds],
        )
        .map_err(db("looking up a relation"))?;
    Ok(row.map(|r| Relation { schema: r.get(0), name: r.get(1), oid: r.get(2) }))
}

/// A foreign key as the checks see it.
#[derive(Debug, Clone)]
pub(crate) struct ForeignKey {
    pub name: String,
    pub validated: bool,
    /// MATCH FULL: all key columns NULL, or none.
    pub match_full: bool,
    pub child: Relation,
    pub parent: Relation,
    pub columns: Vec<String>,
    pub referenced: Vec<String>,
}

/// The foreign keys of every user table, or of the `children` only.
pub(crate) fn foreign_keys(
    client: &mut impl GenericClient,
    children: Option<&[u32]>,
) -> Result<Vec<ForeignKey>, VerifyError> {
    let rows = client
        .query(
            "select k.conname::text, k.convalidated, k.confmatchtype = 'f',
                    cn.nspname::text, c.relname::text, c.oid, pn.nspname::text, p.relname::text, p.oid,
                    array(select a.attname::text from unnest(k.conkey) with ordinality u(n, i)
                            join pg_attribute a on a.attrelid = k.conrelid and a.attnum = u.n order by u.i),
                    array(select a.attname::text from unnest(k.confkey) with ordinality u(n, i)
                            join pg_attribute a on a.attrelid = k.confrelid and a.attnum = u.n order by u.i)
               from pg_constraint k
               join pg_class c on c.oid = k.conrelid join pg_namespace cn on cn.oid = c.relnamespace
               join pg_class p on p.oid = k.confrelid join pg_namespace pn on pn.oid = p.relnamespace
              where k.contype = 'f'
                and cn.nspname not in ('pg_catalog', 'information_schema', 'backstop')
                and ($1::oid[] is null and k.conparentid = 0 or k.conrelid = any($1))
              order by 4, 5, 1",
            &[&children],
        )
        .map_err(db("listing foreign keys"))?;
    Ok(rows
        .iter()
        .map(|r| ForeignKey {
            name: r.get(0),
            validated: r.get(1),
            match_full: r.get(2),
            child: Relation { schema: r.get(3), name: r.get(4), oid: r.get(5) },
            parent: Relation { schema: r.get(6), name: r.get(7), oid: r.get(8) },
            columns: r.get(9),
            referenced: r.get(10),
        })
        .collect())
}

/// The kinds of relation that hold rows.
pub(crate) const TABLE_KINDS: [&str; 3] = ["r", "p", "f"];

/// Finds a table, or says in the check's words that it is missing.
pub(crate) fn table(
    client: &mut impl GenericClient,
    name: &TableName,
) -> Result<Result<Relation, String>, VerifyError> {
    Ok(find_relation(client, name, &TABLE_KINDS)?
        .ok_or_else(|| format!("table {name} does not exist")))
}

/// The columns of a relation, in order.
pub(crate) fn columns_of(
    client: &mut impl GenericClient,
    oid: u32,
) -> Result<Vec<String>, VerifyError> {
    Ok(client
        .query(
            "select attname::text from pg_attribute
              where attrelid = $1 and attnum > 0 and not attisdropped order by attnum",
            &[&oid],
        )
        .map_err(db("reading columns"))?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// A value bound as a parameter in text form, whatever the parameter's
/// type: the server parses it with the type's own input function, so a
/// test row's `bigint`, `uuid` or enum owner goes in as a bind parameter
/// without Backstop knowing the type.
#[derive(Debug)]
pub(crate) struct AsText<'a>(pub &'a str);

impl ToSql for AsText<'_> {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.extend_from_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }

    fn encode_format(&self, _ty: &Type) -> Format {
        Format::Text
    }

    to_sql_checked!();
}

/// `a, b and c`.
pub(crate) fn list<T: std::fmt::Display>(items: &[T]) -> String {
    let items: Vec<String> = items.iter().map(|i| i.to_string()).collect();
    match items.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}
