//! Benchmark (not a test): backup, verification and restore against the
//! plain PostgreSQL tools. Filled in below.

fn main() {}
