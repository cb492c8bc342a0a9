//! The risk rules of `backstop check`: what `backstop-sql` reads of each
//! statement, turned by the rules in [`rules`] into a risk assessment. No
//! IO, no database: the live part of a check lives in `backstop-core`.

// The floors, from the ground up; each module uses only those below it:
// parallel, risk, codes, model, batch_names, context, suppress, coltypes,
// rules, analyze.
pub mod analyze;
pub mod batch_names;
pub mod codes;
mod coltypes;
pub mod context;
pub mod model;
pub mod parallel;
pub mod risk;
pub mod rules;
pub mod suppress;

pub use analyze::{check, Input, InputError, Options, Report};
pub use backstop_sql::{checksum, checksum_split, redact_secrets};
pub use backstop_sql::{referenced_relations, split, split_only, Position, Statement, SyntaxError};
pub use backstop_sql::{EnumValue, Facts, RelationName, Rename, Routine};
pub use model::Origin;
pub use model::{conditions, Finding, Impact, Probability, Severity, Subject, TypeSpec, Verdict};
pub use rules::{Code, Family};

/// The first-line marker of a migration that must run outside a transaction.
pub const NO_TRANSACTION_MARKER: &str = "-- backstop:no-transaction";
