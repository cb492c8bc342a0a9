//! Another tool's history that Backstop has not taken over: a history
//! table of any tool [`super::history`] reads, recording versions that
//! `backstop.applied` lacks. `status` and `check` say so with the adopt
//! command, since a migration the other tool applied fails when it runs
//! again (its table or type already exists).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use postgres::Client;
use serde::Serialize;

use super::history::{self, RowState};
use super::AdoptError;
use crate::source::{Layout, Migration};

/// One tool's history that Backstop's own does not hold.
#[derive(Debug, Clone, Serialize)]
pub struct Unadopted {
    pub tool: Layout,
    /// The history table, `schema.name`.
    pub table: String,
    /// Migrations of the folder (by Backstop's version, in folder order)
    /// the tool records as applied or failed, which Backstop has not
    /// recorded: pending here, and sure to fail if run again.
    pub applied: Vec<String>,
    /// Of those, the ones the tool left failed or dirty.
    pub failed: Vec<String>,
    /// Versions the tool recorded (as it writes them) that no migration
    /// of the folder has.
    pub unknown: Vec<String>,
}

impl Unadopted {
    /// The command that takes the tool's history over (naming the table
    /// when it is not the tool's default).
    pub fn command(&self) -> String {
        let mut command = format!("backstop history adopt --from {}", self.tool.name());
        if self.table != history::table_of(self.tool) {
            command.push_str(&format!(" --table {}", self.table));
        }
        command
    }
}

/// The tools' histories in the database that hold versions Backstop has
/// not recorded, judged against `migrations` (the whole folder, or only
/// the pending ones), in folder order. A table of a tool's name whose
/// shape is not that tool's (another framework's `schema_migrations`) is
/// passed by. sqitch's changes are read for the project of the folder's
/// plan. A tool's history is looked for in its default table and in the
/// one its settings name (see [`history::candidates`]).
pub fn unadopted(
    client: &mut Client,
    migrations: &[&Migration],
) -> Result<Vec<Unadopted>, crate::pg::DbError> {
    let db = |context| move |source| crate::pg::DbError::new(context, source);
    // Hasura's state is a map in its server's catalog, which a database
    // serving Hasura holds whatever tool the project migrates with: only
    // a Hasura project's own is its history.
    let hasura = migrations.iter().any(|m| m.layout == Layout::Hasura);
    let mut candidates: Vec<(Layout, crate::source::HistoryTable)> = Layout::ALL
        .iter()
        .filter(|l| **l != Layout::Hasura || hasura)
        .flat_map(|l| history::candidates(*l, migrations).into_iter().map(|t| (*l, t)))
        .collect();
    // A tool's table under another name (a setting Backstop did not read,
    // a rename) is known by its shape: only the project's own tools', and
    // only where it records a migration of the folder (a table of the
    // application's that happens to have those columns is no history).
    let named = candidates.len();
    let tools: Vec<Layout> = migrations.iter().map(|m| m.layout).collect();
    let shaped = history::by_shape(client).map_err(db("looking for history tables by shape"))?;
    for (tool, table) in shaped.into_iter().filter(|(t, _)| tools.contains(t)) {
        let same = |(l, t): &(Layout, crate::source::HistoryTable)| {
            *l == tool
                && t.name == table.name
                && t.schema.as_deref().is_none_or(|s| Some(s) == table.schema.as_deref())
        };
        if !candidates.iter().any(same) {
            candidates.push((tool, table));
        }
    }
    let tables: Vec<String> = candidates.iter().map(|(_, t)| history::sql_name(t)).collect();
    let present: HashSet<String> = client
        .query("select t from unnest($1::text[]) t where to_regclass(t) is not null", &[&tables])
        .map_err(db("looking for other tools' history tables"))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if present.is_empty() && candidates.len() == named {
        return Ok(Vec::new());
    }
    let recorded: HashSet<String> = crate::schema::applied::all(client)
        .map_err(db("reading backstop.applied"))?
        .into_iter()
        .map(|r| r.version)
        .collect();
    let backstop = Backstop {
        recorded,
        reverted: crate::schema::events::last_reverted(client)
            .map_err(db("reading backstop.events"))?,
    };
    let project = tool_scope(migrations);
    let mut out = Vec::new();
    for (i, (tool, table)) in candidates.iter().enumerate() {
        let tool = *tool;
        let by_shape = i >= named;
        if !by_shape && !present.contains(&history::sql_name(table)) {
            continue;
        }
        let rows = match history::read(client, tool, table, project.as_deref()) {
            Ok(rows) => rows,
            // The session is gone: nothing else can be read either.
            Err(AdoptError::Db(e)) if e.source.as_db_error().is_none() => return Err(e),
            // Not this tool's table, or not of a shape it writes.
            Err(_) => continue,
        };
        let found = judge(tool, table.to_string(), migrations, &rows, &backstop);
        if !found.applied.is_empty() || (!by_shape && !found.unknown.is_empty()) {
            out.push(found);
        }
    }
    Ok(out)
}

/// What names the folder's history among others kept in the same place
/// (see [`super::scope`]): the sqitch project of the plan beside its
/// deploy scripts, the Hasura database of its folder.
pub(super) fn tool_scope(migrations: &[&Migration]) -> Option<String> {
    let m = migrations.iter().find(|m| matches!(m.layout, Layout::Sqitch | Layout::Hasura))?;
    match m.layout {
        Layout::Hasura => crate::source::hasura::database(m.up.path.parent()?.parent()?),
        _ => {
            m.up.path
                .ancestors()
                .find(|d| d.join("sqitch.plan").is_file())
                .and_then(super::sqitch_project)
        }
    }
}

/// What Backstop's own history says of the versions.
struct Backstop {
    /// The versions `backstop.applied` holds.
    recorded: HashSet<String>,
    /// When each version was last reverted.
    reverted: HashMap<String, DateTime<Utc>>,
}

impl Backstop {
    /// Whether `row` of `tool` for `m` is one Backstop has since reverted:
    /// written before the revert, or (the row has no time) by a tool
    /// other than the migration's own, whose rows the revert did not take
    /// out, so it stayed behind.
    fn reverted_since(&self, tool: Layout, row: &history::ToolRow, m: &Migration) -> bool {
        let Some(at) = self.reverted.get(&m.version) else {
            return false;
        };
        match row.applied_at {
            Some(applied) => applied < *at,
            None => m.layout != tool,
        }
    }
}

/// What `rows` of `tool` hold that Backstop's history lacks.
fn judge(
    tool: Layout,
    table: String,
    migrations: &[&Migration],
    rows: &[history::ToolRow],
    backstop: &Backstop,
) -> Unadopted {
    let mut applied: HashSet<usize> = HashSet::new();
    let mut failed: HashSet<usize> = HashSet::new();
    let mut unknown = Vec::new();
    for row in rows {
        let Some(at) = migrations.iter().position(|m| super::same_version(tool, row, m)) else {
            unknown.push(row.version.clone());
            continue;
        };
        // golang-migrate's current version, a Flyway baseline: all up to it.
        let covered = if row.up_to { 0..=at } else { at..=at };
        for i in covered {
            let m = migrations[i];
            let stale = backstop.reverted_since(tool, row, m);
            if (row.up_to && m.repeatable) || stale || backstop.recorded.contains(&m.version) {
                continue;
            }
            applied.insert(i);
            if matches!(row.state, RowState::Failed { .. }) {
                failed.insert(i);
            }
        }
    }
    let in_order = |set: &HashSet<usize>| {
        let mut at: Vec<usize> = set.iter().copied().collect();
        at.sort_unstable();
        at.into_iter().map(|i| migrations[i].version.clone()).collect()
    };
    Unadopted { tool, table, applied: in_order(&applied), failed: in_order(&failed), unknown }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adopt::ToolRow;

    fn row(version: &str, up_to: bool, state: RowState) -> ToolRow {
        ToolRow {
            version: version.into(),
            repeatable: false,
            applied_at: None,
            applied_by: None,
            duration_ms: None,
            checksum: None,
            state,
            up_to,
        }
    }

    #[test]
    fn versions_the_tool_holds_and_backstop_lacks_are_named_in_folder_order() {
        let tmp = tempfile::tempdir().unwrap();
        for v in ["1_a", "2_b", "3_c"] {
            std::fs::write(tmp.path().join(format!("{v}.up.sql")), "select 1;").unwrap();
        }
        let folder = crate::source::load(tmp.path(), Some(Layout::GolangMigrate)).unwrap();
        let all: Vec<&Migration> = folder.migrations.iter().collect();
        let backstop = Backstop { recorded: ["1".to_string()].into(), reverted: HashMap::new() };
        let table = || history::table_of(Layout::GolangMigrate).to_string();

        // golang-migrate's one row: every version up to it is applied.
        let rows = [row("2", true, RowState::Applied)];
        let found = judge(Layout::GolangMigrate, table(), &all, &rows, &backstop);
        assert_eq!(found.applied, ["2"]);
        assert!(found.failed.is_empty() && found.unknown.is_empty());
        assert_eq!(found.command(), "backstop history adopt --from golang-migrate");

        let dirty = RowState::Failed { why: "dirty".into() };
        let rows = [row("3", false, dirty), row("9", false, RowState::Applied)];
        let found = judge(Layout::Sqlx, table(), &all, &rows, &backstop);
        assert_eq!(
            (found.applied, found.failed, found.unknown),
            (vec!["3".to_string()], vec!["3".to_string()], vec!["9".to_string()])
        );

        // Backstop reverted 2 since: a row without a time, or one from
        // before the revert, stayed behind; a later one is applied again.
        let at = Utc::now();
        let backstop = Backstop { reverted: [("2".to_string(), at)].into(), ..backstop };
        let stale = row("2", false, RowState::Applied);
        assert!(judge(Layout::Sqlx, table(), &all, std::slice::from_ref(&stale), &backstop)
            .applied
            .is_empty());
        let before = ToolRow { applied_at: Some(at - chrono::Duration::seconds(1)), ..stale };
        assert!(judge(Layout::Sqlx, table(), &all, std::slice::from_ref(&before), &backstop)
            .applied
            .is_empty());
        let again = ToolRow { applied_at: Some(at + chrono::Duration::seconds(1)), ..before };
        assert_eq!(judge(Layout::Sqlx, table(), &all, &[again], &backstop).applied, ["2"]);
    }
}
