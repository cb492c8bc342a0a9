//! Pure analysis of migration SQL: PostgreSQL's own parser splits the text
//! into statements and says what each one does. No IO, no database.

pub mod parse;

pub use parse::{
    checksum, redact_secrets, split, Facts, Position, RelationName, Statement, SyntaxError,
};
