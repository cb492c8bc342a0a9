//! What a copy never runs: a statement that calls a function reaching
//! outside the database (pg_net's `net.http_*`, dblink). A rehearsal and
//! the replay of `backstop downs` run the migrations without it, so a copy
//! never sends what production would.

use std::borrow::Cow;

use backstop_lint::calls::reaches_outside;
use backstop_lint::rewrite::literal;

use crate::source::Migration;

/// `migrations` as a copy runs them: each statement that calls a function
/// reaching outside the database replaced by a `SELECT` that says so;
/// and each such call with its version and place (`net.http_post
/// (…/up.sql:4)`).
pub fn replayed(migrations: &[Migration]) -> (Cow<'_, [Migration]>, Vec<(String, String)>) {
    let mut found = Vec::new();
    for (i, m) in migrations.iter().enumerate() {
        for (j, s) in m.up.statements.iter().enumerate() {
            if let Some(call) = reaches_outside(&s.sql) {
                found.push((i, j, call));
            }
        }
    }
    if found.is_empty() {
        return (Cow::Borrowed(migrations), Vec::new());
    }
    let mut out = migrations.to_vec();
    let mut calls = Vec::with_capacity(found.len());
    for (i, j, call) in found {
        let m = &mut out[i];
        let s = &mut m.up.statements[j];
        calls.push((
            m.version.clone(),
            format!("{call} ({}:{})", m.up.path.display(), s.position.line),
        ));
        s.sql = format!(
            "SELECT {}",
            literal(&format!("not replayed: {call} reaches outside the database"))
        );
    }
    (Cow::Owned(out), calls)
}
