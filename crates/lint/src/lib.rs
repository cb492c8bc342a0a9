//! Pure analysis of migration SQL: PostgreSQL's own parser splits the text
//! into statements and says what each one does, and the rules in
//! [`rules`] turn that into a risk assessment. No IO, no database: the live
//! part of a check lives in `backstop-core`.

// The floors, from the ground up; each module uses only those below it:
// parallel, facts, parse, checksum, redact, versions, risk, codes, model, stmt, enum_use,
// batch, context, suppress, coltypes, rules, analyze. `compare` reads token streams
// and stands apart.
pub mod analyze;
pub mod batch_names;
pub mod calls;
pub mod checksum;
pub mod codes;
mod coltypes;
pub mod compare;
pub mod context;
pub mod enum_use;
pub mod expand;
pub mod facts;
pub mod inverse;
pub mod model;
pub mod parallel;
pub mod parse;
mod plpgsql;
pub mod redact;
pub mod refs;
pub mod requires;
pub mod retypes;
pub mod rewrite;
pub mod risk;
pub mod rows;
pub mod rules;
pub mod same_function;
pub mod stmt;
pub mod suppress;
pub mod up_shapes;
pub mod versions;

pub use analyze::{check, Input, InputError, Options, Report};
pub use checksum::{checksum, checksum_split};
pub use facts::{EnumValue, Facts, RelationName, Rename, Routine};
pub use model::Origin;
pub use model::{conditions, Finding, Impact, Probability, Severity, Subject, TypeSpec, Verdict};
pub use parse::{referenced_relations, split, split_only, Position, Statement, SyntaxError};
pub use redact::redact_secrets;
pub use rules::{Code, Family};

/// The first-line marker of a migration that must run outside a transaction.
pub const NO_TRANSACTION_MARKER: &str = "-- backstop:no-transaction";
