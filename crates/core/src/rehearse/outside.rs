//! What a copy never runs: a statement that calls a function reaching
//! outside the database (pg_net's `net.http_*`, dblink). A rehearsal and
//! the replay of `backstop downs` run the migrations without it, so a copy
//! never sends what production would.

use backstop_lint::calls::reaches_outside;
use backstop_lint::rewrite::literal;

use crate::source::Migration;

/// `migrations` as a copy runs them: each statement that calls a function
/// reaching outside the database replaced by a `SELECT` that says so.
pub fn replayed(migrations: &[Migration]) -> std::borrow::Cow<'_, [Migration]> {
    let outside = |m: &Migration| m.up.statements.iter().any(|s| reaches_outside(&s.sql).is_some());
    if !migrations.iter().any(outside) {
        return std::borrow::Cow::Borrowed(migrations);
    }
    let mut out = migrations.to_vec();
    for m in &mut out {
        for s in &mut m.up.statements {
            if let Some(call) = reaches_outside(&s.sql) {
                s.sql = format!(
                    "SELECT {}",
                    literal(&format!("not replayed: {call} reaches outside the database"))
                );
            }
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Each such call in `migrations`, with its place: `net.http_post
/// (…/up.sql:4)`.
pub(super) fn calls_in<'m>(migrations: impl Iterator<Item = &'m Migration>) -> Vec<String> {
    let mut out = Vec::new();
    for m in migrations {
        for s in &m.up.statements {
            if let Some(call) = reaches_outside(&s.sql) {
                out.push(format!("{call} ({}:{})", m.up.path.display(), s.position.line));
            }
        }
    }
    out
}
