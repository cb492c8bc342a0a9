//! The kinds of check a `[[verify.checks]]` entry can be, each with the
//! keys it takes (serde refuses any other), and the table names they are
//! about. The common keys and the checks of values serde cannot see are in
//! the section's parsing, `super`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::kit::duration::de as duration;

/// A table name as written in config: `table` or `schema.table`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TableName {
    pub schema: Option<String>,
    pub name: String,
}

impl TableName {
    /// Splits `schema.table`; a name may not hold more than one dot.
    pub fn parse(text: &str) -> Result<TableName, String> {
        let parts: Vec<&str> = text.split('.').collect();
        match parts.as_slice() {
            [name] if !name.is_empty() => Ok(TableName { schema: None, name: name.to_string() }),
            [schema, name] if !schema.is_empty() && !name.is_empty() => {
                Ok(TableName { schema: Some(schema.to_string()), name: name.to_string() })
            }
            _ => Err(format!("{text:?} is not a table name; write \"table\" or \"schema.table\"")),
        }
    }
}

impl std::fmt::Display for TableName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.schema {
            Some(s) => write!(f, "{s}.{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

impl<'de> Deserialize<'de> for TableName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        TableName::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// What a check looks at, with the keys of its kind.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Kind {
    Connection(ConnectionCheck),
    Tables(TablesCheck),
    Columns(ColumnsCheck),
    Extensions(ExtensionsCheck),
    Indexes(IndexesCheck),
    Rls(RlsCheck),
    RlsIsolation(RlsIsolationCheck),
    RowCounts(RowCountsCheck),
    Checksums(ChecksumsCheck),
    ForeignKeys(ForeignKeysCheck),
    RecentRows(RecentRowsCheck),
    Sql(SqlCheck),
    Http(HttpCheck),
    Explain(ExplainCheck),
}

impl Kind {
    /// The `kind = "..."` value, as reports show it.
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Connection(_) => "connection",
            Kind::Tables(_) => "tables",
            Kind::Columns(_) => "columns",
            Kind::Extensions(_) => "extensions",
            Kind::Indexes(_) => "indexes",
            Kind::Rls(_) => "rls",
            Kind::RlsIsolation(_) => "rls_isolation",
            Kind::RowCounts(_) => "row_counts",
            Kind::Checksums(_) => "checksums",
            Kind::ForeignKeys(_) => "foreign_keys",
            Kind::RecentRows(_) => "recent_rows",
            Kind::Sql(_) => "sql",
            Kind::Http(_) => "http",
            Kind::Explain(_) => "explain",
        }
    }

    /// The snapshot this check compares with: `Some(None)` when it needs
    /// one but names none (the run's own baseline is used), `None` when it
    /// needs none.
    pub fn snapshot(&self) -> Option<Option<&str>> {
        match self {
            Kind::RowCounts(c) => Some(c.snapshot.as_deref()),
            Kind::Checksums(c) => Some(c.snapshot.as_deref()),
            _ => None,
        }
    }
}

/// `connection`: the database answers; its version and latency.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionCheck {
    /// Fails when connecting plus one round trip takes longer.
    #[serde(default, deserialize_with = "opt_duration")]
    pub max_latency: Option<Duration>,
}

/// `tables`: these tables exist (or, with `absent = true`, do not).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TablesCheck {
    pub tables: Vec<TableName>,
    #[serde(default)]
    pub absent: bool,
}

/// `columns`: these columns of `table` exist (or must not).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnsCheck {
    pub table: TableName,
    pub columns: Vec<String>,
    #[serde(default)]
    pub absent: bool,
}

/// `extensions`: these extensions are installed (or must not be).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtensionsCheck {
    pub extensions: Vec<String>,
    #[serde(default)]
    pub absent: bool,
}

/// `indexes`: these indexes exist (or must not); names may be schema-qualified.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexesCheck {
    pub indexes: Vec<TableName>,
    #[serde(default)]
    pub absent: bool,
}

/// A command a row-level security policy can cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyCommand {
    Select,
    Insert,
    Update,
    Delete,
}

impl PolicyCommand {
    /// The `cmd` value of `pg_policies`.
    pub fn sql(self) -> &'static str {
        match self {
            PolicyCommand::Select => "SELECT",
            PolicyCommand::Insert => "INSERT",
            PolicyCommand::Update => "UPDATE",
            PolicyCommand::Delete => "DELETE",
        }
    }

    /// The `polcmd` code of `pg_policy` (`*` covers all commands).
    pub fn polcmd(self) -> &'static str {
        match self {
            PolicyCommand::Select => "r",
            PolicyCommand::Insert => "a",
            PolicyCommand::Update => "w",
            PolicyCommand::Delete => "d",
        }
    }
}

/// `rls`: row-level security is on (and forced, if asked) and each table
/// has a policy for each listed command.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RlsCheck {
    pub tables: Vec<TableName>,
    #[serde(default)]
    pub force: bool,
    #[serde(default)]
    pub commands: Vec<PolicyCommand>,
}

/// The default impersonation: Supabase's `authenticated` role with the
/// user's id in the JWT claims that `auth.uid()` reads.
pub const SUPABASE_IMPERSONATION: &str =
    r#"SET LOCAL ROLE authenticated; SET LOCAL request.jwt.claims = '{"sub":"{user}"}'"#;

/// Where the identity a policy compares with lives, when it is not the
/// owner column's own value (e.g. `users.clerk_id` while rows hold `users.id`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityLookup {
    /// The users table.
    pub table: TableName,
    /// Its column holding the identity (the JWT `sub`).
    pub column: String,
    /// Its column the owner column holds; default: the one the owner
    /// column's foreign key references.
    pub key: Option<String>,
}

/// `rls_isolation`: the cross-user test, in a transaction that is rolled back.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RlsIsolationCheck {
    pub table: TableName,
    pub owner_column: String,
    /// SQL run to act as a user; `{user}` becomes the test identity.
    #[serde(default = "default_impersonation")]
    pub impersonate: String,
    /// How test identities map to owner values, when not one to one.
    pub identity: Option<IdentityLookup>,
    /// A role that must still see every row. Default: `service_role` when
    /// such a role exists.
    pub service_role: Option<String>,
    /// SQL that inserts one test row; `$1` is the owner value. Default:
    /// Backstop fills the required columns itself.
    pub insert: Option<String>,
}

fn default_impersonation() -> String {
    SUPABASE_IMPERSONATION.to_string()
}

/// How far row counts may move from the snapshot.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Tolerance {
    Rows(u64),
    Percent(f64),
}

impl Default for Tolerance {
    fn default() -> Self {
        Tolerance::Rows(0)
    }
}

impl<'de> Deserialize<'de> for Tolerance {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Rows(u64),
            Text(String),
        }
        let bad = |text: &str| {
            serde::de::Error::custom(format!(
                "invalid tolerance {text:?}; write a number of rows (tolerance = 10) or a percentage (tolerance = \"1%\")"
            ))
        };
        match Raw::deserialize(d).map_err(|_| bad("?"))? {
            Raw::Rows(n) => Ok(Tolerance::Rows(n)),
            Raw::Text(t) => {
                let pct = t.trim().strip_suffix('%').ok_or_else(|| bad(&t))?;
                match pct.trim().parse::<f64>() {
                    Ok(p) if p.is_finite() && p >= 0.0 => Ok(Tolerance::Percent(p)),
                    _ => Err(bad(&t)),
                }
            }
        }
    }
}

/// `row_counts`: per-table counts equal to a snapshot, within a tolerance.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RowCountsCheck {
    /// Default: every table in the snapshot.
    pub tables: Option<Vec<TableName>>,
    /// A snapshot saved with `backstop verify --snapshot save NAME`.
    /// Default: the one given with `--snapshot`, or the state right
    /// before the `migrate`/`rollback` that runs the suite.
    pub snapshot: Option<String>,
    #[serde(default)]
    pub tolerance: Tolerance,
}

/// `checksums`: per-table content checksums equal to a snapshot.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChecksumsCheck {
    /// Default: every table in the snapshot.
    pub tables: Option<Vec<TableName>>,
    pub snapshot: Option<String>,
}

/// `foreign_keys`: no orphan rows for any foreign key, NOT VALID ones too.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForeignKeysCheck {
    /// Only the foreign keys of these (referencing) tables. Default: all.
    pub tables: Option<Vec<TableName>>,
}

/// `recent_rows`: `table` has rows whose `column` is newer than `within`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecentRowsCheck {
    pub table: TableName,
    pub column: String,
    #[serde(deserialize_with = "duration")]
    pub within: Duration,
    #[serde(default = "one")]
    pub min_rows: i64,
}

fn one() -> i64 {
    1
}

/// `sql`: a query and its expected result. Without `expect` or
/// `expect_rows`, the query must return one row whose first column is true.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlCheck {
    pub query: String,
    /// The first column of the first row, as text.
    pub expect: Option<String>,
    /// The number of rows.
    pub expect_rows: Option<u64>,
}

/// `http`: a request and what its response must be.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpCheck {
    pub url: String,
    #[serde(default = "get")]
    pub method: String,
    /// Header values may hold `${ENV}`; they are never printed.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A request body.
    pub body: Option<String>,
    #[serde(default = "ok_status")]
    pub expect_status: u16,
    pub body_contains: Option<String>,
    /// `$.data.items[0].id`: this must exist (and equal `json_equals`).
    pub json_path: Option<String>,
    pub json_equals: Option<toml::Value>,
    /// Send the request this many times.
    #[serde(default = "one_u32")]
    pub repeat: u32,
    /// `{ 10 = 429 }`: requests after the 10th must answer 429.
    #[serde(default)]
    pub expect_status_after: BTreeMap<String, u16>,
    /// The 95th percentile of the latencies over the repeats.
    #[serde(default, deserialize_with = "opt_duration")]
    pub max_p95: Option<Duration>,
}

fn get() -> String {
    "GET".into()
}

fn ok_status() -> u16 {
    200
}

fn one_u32() -> u32 {
    1
}

impl HttpCheck {
    /// The status request `i` (1-based) must answer with.
    pub fn expected_status(&self, i: u32) -> u16 {
        self.expect_status_after
            .iter()
            .filter_map(|(k, v)| k.parse::<u32>().ok().map(|k| (k, *v)))
            .filter(|(after, _)| i > *after)
            .max_by_key(|(after, _)| *after)
            .map_or(self.expect_status, |(_, status)| status)
    }
}

/// `explain`: the plan of `query` reads `table` through an index.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExplainCheck {
    pub query: String,
    pub table: TableName,
    /// This particular index must be used.
    pub index: Option<String>,
    /// Plan with `enable_seqscan = off`: proves an index can serve the
    /// query on a small table, where the planner would rightly scan.
    #[serde(default)]
    pub disable_seqscan: bool,
}

fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

/// Every kind, for messages.
pub(super) const KINDS: [&str; 14] = [
    "connection",
    "tables",
    "columns",
    "extensions",
    "indexes",
    "rls",
    "rls_isolation",
    "row_counts",
    "checksums",
    "foreign_keys",
    "recent_rows",
    "sql",
    "http",
    "explain",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_name_has_at_most_one_schema() {
        let t = TableName::parse("billing.plans").unwrap();
        assert_eq!((t.schema.as_deref(), t.name.as_str()), (Some("billing"), "plans"));
        assert_eq!(t.to_string(), "billing.plans");
        assert_eq!(TableName::parse("users").unwrap().to_string(), "users");
        for bad in ["", "a.b.c", ".x", "x."] {
            assert!(TableName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn every_kind_is_listed_for_messages() {
        assert_eq!(KINDS.len(), 14);
        assert!(KINDS.contains(&"rls_isolation") && KINDS.contains(&"explain"));
    }
}
