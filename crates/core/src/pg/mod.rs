//! Everything that speaks to PostgreSQL directly: connections, the
//! migration lock, identifier quoting, throwaway clusters and the search
//! for PostgreSQL's programs of each major version.

pub mod bins;
pub mod checksum;
pub mod cluster;
pub mod comments;
pub mod conn;
pub mod export;
pub mod extension_owners;
pub mod fingerprint;
pub mod kinds;
pub mod lock;
mod parts;
pub mod pooler;
pub mod preload;
mod template;
pub mod tls;
pub mod tracked;
pub mod unreadable;

pub use conn::{connect, redact, ConnectError};

use std::collections::HashMap;

use postgres::{GenericClient, Statement};

/// Statements prepared once on one connection and reused by their text.
/// A statement without parameters is planned once and its plan kept, and
/// planning a large catalog query costs more than running it: a rehearsal
/// reads the schema twice per migration. Use one cache per connection.
#[derive(Default)]
pub struct Prepared {
    statements: HashMap<String, Statement>,
    /// The server's major version, once asked.
    major: Option<i32>,
    /// Whether the session may read `pg_user_mapping`, once asked.
    mappings: Option<bool>,
    /// Whether [`Prepared::generic`] has set the session up now.
    generic: bool,
}

/// How many statements one [`Prepared`] keeps before starting afresh.
const MAX_PREPARED: usize = 64;

impl Prepared {
    /// The prepared statement for `sql`, preparing it on first use.
    pub fn get(
        &mut self,
        client: &mut impl GenericClient,
        sql: &str,
    ) -> Result<Statement, postgres::Error> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        // Statements whose tables changed are never asked for again; a
        // dropped statement is closed on the server.
        if self.statements.len() >= MAX_PREPARED {
            self.statements.clear();
        }
        let statement = client.prepare(sql)?;
        self.statements.insert(sql.to_string(), statement.clone());
        Ok(statement)
    }

    /// The server's major version (`17`), asked once per cache.
    pub fn major(&mut self, client: &mut impl GenericClient) -> Result<i32, postgres::Error> {
        if let Some(major) = self.major {
            return Ok(major);
        }
        let major = server_version_num(client)? / 10000;
        self.major = Some(major);
        Ok(major)
    }

    /// Runs `f` with every prepared statement planned once
    /// (`plan_cache_mode = force_generic_plan`) and no JIT: Backstop's
    /// catalog reads are large, and planning one for each set of
    /// parameters, or compiling it (50 ms to 700 ms for the journal's look,
    /// which runs in under one), costs more than running it. Nested calls
    /// set nothing more; the settings are reset after the outer one, so
    /// the session's own (a migration's) are as they were.
    pub fn generic<C: GenericClient, T>(
        &mut self,
        client: &mut C,
        f: impl FnOnce(&mut C, &mut Prepared) -> Result<T, postgres::Error>,
    ) -> Result<T, postgres::Error> {
        if self.generic {
            return f(client, self);
        }
        client.batch_execute("SET jit = off; SET plan_cache_mode = force_generic_plan")?;
        self.generic = true;
        let out = f(client, self);
        self.generic = false;
        // After a failure the transaction may be aborted: its error is the one to tell.
        let reset = client.batch_execute("RESET jit; RESET plan_cache_mode");
        let out = out?;
        reset?;
        Ok(out)
    }

    /// Whether the session may read the catalog of user mappings (only
    /// superusers may: it holds their passwords), asked once per cache.
    pub fn reads_mappings(
        &mut self,
        client: &mut impl GenericClient,
    ) -> Result<bool, postgres::Error> {
        if let Some(may) = self.mappings {
            return Ok(may);
        }
        let sql = "select has_table_privilege('pg_catalog.pg_user_mapping', 'SELECT')";
        let may: bool = client.query_one(sql, &[])?.get(0);
        self.mappings = Some(may);
        Ok(may)
    }
}

/// The server's `server_version_num` (`170010` for 17.10).
pub fn server_version_num(client: &mut impl GenericClient) -> Result<i32, postgres::Error> {
    Ok(client.query_one("select current_setting('server_version_num')::int", &[])?.get(0))
}

/// A database failure, with what Backstop was doing when it happened: the
/// one error type every domain wraps for PostgreSQL's errors.
#[derive(Debug, thiserror::Error)]
#[error("database error while {context}")]
pub struct DbError {
    pub context: std::borrow::Cow<'static, str>,
    #[source]
    pub source: postgres::Error,
}

impl DbError {
    /// The failure `source` while doing `context` ("reading the flags").
    pub fn new(
        context: impl Into<std::borrow::Cow<'static, str>>,
        source: postgres::Error,
    ) -> Self {
        DbError { context: context.into(), source }
    }
}

/// For `map_err`: `client.query(..).map_err(pg::db("reading the flags"))?`.
pub fn db(
    context: impl Into<std::borrow::Cow<'static, str>>,
) -> impl FnOnce(postgres::Error) -> DbError {
    let context = context.into();
    move |source| DbError { context, source }
}

/// A read-only repeatable-read transaction: every table read in it is seen
/// as of one moment, so counts and checksums of several tables agree.
pub fn one_moment(
    client: &mut postgres::Client,
) -> Result<postgres::Transaction<'_>, postgres::Error> {
    client
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
}

/// The database `conn` names (`postgres` when it names none).
pub fn database_of(conn: &str) -> Result<String, ConnectError> {
    Ok(conn::parse_url(conn)?.get_dbname().unwrap_or("postgres").to_string())
}

/// Quotes an identifier (table, schema, role, database name) for SQL text.
/// The one place names from config or catalogs become SQL: a name such as
/// `x"; DROP TABLE users; --` stays a name.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes a possibly schema-qualified name (`schema.table` or `table`).
pub fn quote_qualified(schema: Option<&str>, name: &str) -> String {
    match schema {
        Some(schema) => format!("{}.{}", quote_ident(schema), quote_ident(name)),
        None => quote_ident(name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_ident_doubles_quotes() {
        assert_eq!(quote_ident("users"), "\"users\"");
        assert_eq!(quote_ident("x\"; DROP TABLE users; --"), "\"x\"\"; DROP TABLE users; --\"");
        assert_eq!(quote_qualified(Some("a\"b"), "c"), "\"a\"\"b\".\"c\"");
    }
}
