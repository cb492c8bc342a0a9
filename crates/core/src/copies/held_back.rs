//! What a copy runs otherwise than the target: a statement that reaches
//! outside the database (pg_net's `net.http_*`, dblink, a `COPY` to or
//! from a program or a server file, the server-side file functions) is
//! never run, up or down, so a copy never sends what production would nor
//! runs a program or touches a file on the machine Backstop runs on; and an
//! `ALTER DATABASE` of the target's own database alters the copy's, whose
//! name is another.

use std::borrow::Cow;

use backstop_sql::calls::reaches_outside;
use backstop_sql::rewrite::{literal, on_current_database};

use crate::source::Migration;

/// `migrations` as a copy of database `database` runs them: each statement
/// that calls a function reaching outside the database replaced by a
/// `SELECT` that says so, each `ALTER DATABASE database …` (up or down)
/// made to alter the copy's; and each outside call with its version and
/// place (`net.http_post (…/up.sql:4)`).
pub fn replayed<'m>(
    migrations: &'m [Migration],
    database: &str,
) -> (Cow<'m, [Migration]>, Vec<(String, String)>) {
    let mut found = Vec::new();
    let mut renamed = Vec::new();
    for (i, m) in migrations.iter().enumerate() {
        for (j, s) in m.up.statements.iter().enumerate() {
            if let Some(call) = reaches_outside(&s.sql) {
                found.push((i, j, call));
            } else if let Some(sql) = on_current_database(&s.sql, database) {
                renamed.push((i, false, j, sql));
            }
        }
        for (j, s) in m.down.iter().flat_map(|d| d.statements.iter().enumerate()) {
            if let Some(call) = reaches_outside(&s.sql) {
                renamed.push((i, true, j, held_back(&call)));
            } else if let Some(sql) = on_current_database(&s.sql, database) {
                renamed.push((i, true, j, sql));
            }
        }
    }
    if found.is_empty() && renamed.is_empty() {
        return (Cow::Borrowed(migrations), Vec::new());
    }
    let mut out = migrations.to_vec();
    for (i, down, j, sql) in renamed {
        let file = if down { out[i].down.as_mut() } else { Some(&mut out[i].up) };
        if let Some(s) = file.and_then(|f| f.statements.get_mut(j)) {
            s.sql = sql;
        }
    }
    let mut calls = Vec::with_capacity(found.len());
    for (i, j, call) in found {
        let m = &mut out[i];
        let s = &mut m.up.statements[j];
        calls.push((
            m.version.clone(),
            format!("{call} ({}:{})", m.up.path.display(), s.position.line),
        ));
        s.sql = held_back(&call);
    }
    (Cow::Owned(out), calls)
}

/// What a copy runs in place of a statement that reaches outside the
/// database (`call`): a `SELECT` that says so.
fn held_back(call: &str) -> String {
    format!("SELECT {}", literal(&format!("not replayed: {call} reaches outside the database")))
}
