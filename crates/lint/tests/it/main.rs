//! The lint crate's integration tests, one binary: every rule's fixtures
//! and a parser that never panics on any input.

mod fixtures;
mod no_panic;
