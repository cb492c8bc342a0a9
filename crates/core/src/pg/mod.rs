//! Everything that speaks to PostgreSQL directly: connections, the
//! migration lock, identifier quoting and throwaway clusters.

pub mod checksum;
pub mod cluster;
pub mod conn;
pub mod fingerprint;
pub mod lock;

pub use conn::{connect, redact, ConnectError};

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
