//! The live finding that another migration tool already applied pending
//! migrations: its history table holds them and Backstop's does not, so
//! running them again fails on what they created. One critical BS003 per
//! tool, at the first such migration, with the adopt command; `migrate`'s
//! check gate then refuses before anything runs.

use backstop_lint::{Code, Finding, Position};
use postgres::Client;

use super::CheckError;
use crate::adopt::Unadopted;
use crate::source::Migration;

/// How many versions a finding names before it says how many more.
const NAMED: usize = 5;

/// The findings for `pending` migrations another tool already applied.
pub fn findings(client: &mut Client, pending: &[&Migration]) -> Result<Vec<Finding>, CheckError> {
    if pending.is_empty() {
        return Ok(Vec::new());
    }
    let found = crate::adopt::unadopted(client, pending)?;
    Ok(found.iter().filter(|u| !u.applied.is_empty()).map(|u| finding(u, pending)).collect())
}

fn finding(u: &Unadopted, pending: &[&Migration]) -> Finding {
    let label = |v: &String| {
        pending.iter().find(|m| &m.version == v).map_or_else(|| v.clone(), |m| m.label())
    };
    let mut named: Vec<String> = u.applied.iter().take(NAMED).map(label).collect();
    if u.applied.len() > NAMED {
        named.push(format!("and {} more", u.applied.len() - NAMED));
    }
    let first = pending.iter().find(|m| m.version == u.applied[0]);
    let path = first.map(|m| m.up.path.display().to_string()).unwrap_or_default();
    let failed = if u.failed.is_empty() {
        String::new()
    } else {
        format!(
            " ({} of them left failed or dirty by {}: finish or undo {} with {} first)",
            u.failed.len(),
            u.tool,
            if u.failed.len() == 1 { "it" } else { "them" },
            u.tool
        )
    };
    let message = format!(
        "{} already applied {} pending migration(s) ({}) by its own history, {}, which \
         Backstop's does not hold{failed}: running them again fails on what they created; \
         take the history over with `{}`",
        u.tool,
        u.applied.len(),
        named.join(", "),
        u.table,
        u.command()
    );
    let help =
        format!("`{}` records them as applied without running them; then check again", u.command());
    backstop_lint::analyze::file_finding(
        Code::BS003,
        &path,
        Position { line: 1, column: 1 },
        message,
        &help,
    )
}
