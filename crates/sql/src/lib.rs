//! What Backstop knows of migration SQL, read with PostgreSQL's own
//! parser and nothing else: no IO, no database, no rule. The risk rules
//! of `backstop check` (`backstop-lint`) and the domains of
//! `backstop-core` (downs, expand, migrate, the copies) both read SQL
//! through it.

// The floors, from the ground up; each module uses only those below it:
// plpgsql, facts, checksum, parse, types, stmt, redact, versions,
// requires, rewrite, rows, calls, refs, enum_use, inverse, retypes,
// up_shapes, expand. `compare` and `same_function` read token streams
// and stand apart.
pub mod calls;
pub mod checksum;
pub mod compare;
pub mod enum_use;
pub mod expand;
pub mod facts;
pub mod inverse;
pub mod parse;
pub mod plpgsql;
pub mod redact;
pub mod refs;
pub mod requires;
pub mod retypes;
pub mod rewrite;
pub mod rows;
pub mod same_function;
pub mod stmt;
pub mod types;
pub mod up_shapes;
pub mod versions;

pub use checksum::{checksum, checksum_split};
pub use facts::{EnumValue, Facts, RelationName, Rename, Routine};
pub use parse::{referenced_relations, split, split_only, Position, Statement, SyntaxError};
pub use redact::redact_secrets;
pub use types::TypeSpec;
