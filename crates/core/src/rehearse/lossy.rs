//! Downs that lose data, found from the parse trees before anything runs.
//! Two kinds: a down that drops a table or column its own up created
//! throws away what was written there since the migration (every such
//! migration of a long history does it, so the report counts them once);
//! a down that drops, empties or deletes from something that existed
//! before the up destroys data the migration never made, and is named.

use backstop_lint::RelationName;
use serde::Serialize;

use crate::source::Migration;

/// Which kind of loss a down causes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LossKind {
    /// Drops what its up created: the rows written since the migration.
    CreatedByUp,
    /// Destroys data that existed before the up.
    PreExisting,
}

/// An object whose data a rollback would throw away.
#[derive(Debug, Clone, Serialize)]
pub struct Lossy {
    pub version: String,
    pub kind: LossKind,
    pub object: String,
    pub message: String,
}

fn same(a: &RelationName, b: &RelationName) -> bool {
    backstop_lint::stmt::same_table(a, b)
}

fn shown(r: &RelationName) -> String {
    backstop_lint::stmt::display_table(r)
}

/// The lossy downs among `migrations`.
pub fn find(migrations: &[Migration]) -> Vec<Lossy> {
    let mut out = Vec::new();
    for m in migrations {
        let Some(down) = &m.down else { continue };
        let up = || m.up.statements.iter().map(|s| &s.facts);
        let created =
            |t: &RelationName| up().any(|f| f.creates_table.as_ref().is_some_and(|c| same(c, t)));
        let added = |t: &RelationName, c: &str| {
            created(t) || up().any(|f| f.adds_columns.iter().any(|(ut, uc)| uc == c && same(ut, t)))
        };
        let mut flag = |kind: LossKind, object: String, what: &str| {
            let message = match kind {
                LossKind::CreatedByUp => format!(
                    "rolling back {} loses data written after the migration: {object} is dropped",
                    m.version
                ),
                LossKind::PreExisting => format!(
                    "rolling back {} destroys data that existed before it: the down {what} {object}",
                    m.version
                ),
            };
            out.push(Lossy { version: m.version.clone(), kind, object, message });
        };
        for f in down.statements.iter().map(|s| &s.facts) {
            for t in &f.drops_tables {
                let kind = if created(t) { LossKind::CreatedByUp } else { LossKind::PreExisting };
                flag(kind, format!("table {}", shown(t)), "drops");
            }
            for (t, c) in &f.drops_columns {
                let kind = if added(t, c) { LossKind::CreatedByUp } else { LossKind::PreExisting };
                flag(kind, format!("column {}.{c}", shown(t)), "drops");
            }
            for t in f.truncates.iter().filter(|t| !created(t)) {
                flag(LossKind::PreExisting, format!("table {}", shown(t)), "empties");
            }
            if let Some(t) = f.deletes_from.as_ref().filter(|t| !created(t)) {
                flag(LossKind::PreExisting, format!("table {}", shown(t)), "deletes rows from");
            }
        }
    }
    out
}

/// The report's summary of `lossy`: one line for the migrations whose
/// downs drop what their ups created, then each down that destroys data
/// from before its up.
pub fn summary(lossy: &[Lossy]) -> Vec<String> {
    let mut versions: Vec<&str> = lossy
        .iter()
        .filter(|l| l.kind == LossKind::CreatedByUp)
        .map(|l| l.version.as_str())
        .collect();
    versions.dedup();
    let mut out = Vec::new();
    if !versions.is_empty() {
        out.push(format!(
            "{} migration(s) create tables or columns; their downs drop them and the rows written since",
            versions.len()
        ));
    }
    out.extend(lossy.iter().filter(|l| l.kind == LossKind::PreExisting).map(|l| l.message.clone()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_of_what_up_created_are_counted_and_losses_of_older_data_named() {
        let tmp = tempfile::tempdir().unwrap();
        let write = |rel: &str, sql: &str| {
            let p = tmp.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, sql).unwrap();
        };
        write(
            "1_a/up.sql",
            "CREATE TABLE clients (id int); ALTER TABLE users ADD COLUMN plan text;",
        );
        write("1_a/down.sql", "ALTER TABLE public.users DROP COLUMN plan; DROP TABLE clients;");
        write("2_b/up.sql", "CREATE INDEX i ON users (id);");
        write("2_b/down.sql", "DROP INDEX i; DROP TABLE legacy; DELETE FROM users WHERE id > 5;");
        write("3_c/up.sql", "CREATE TABLE t (id int);");
        write("3_c/down.sql", "TRUNCATE t; DROP TABLE t;");
        let ms = crate::source::load(tmp.path(), None).unwrap().migrations;
        let found: Vec<_> = find(&ms).into_iter().map(|l| (l.version, l.kind, l.object)).collect();
        use LossKind::*;
        assert_eq!(
            found,
            [
                ("1".to_string(), CreatedByUp, "column public.users.plan".to_string()),
                ("1".into(), CreatedByUp, "table clients".into()),
                ("2".into(), PreExisting, "table legacy".into()),
                ("2".into(), PreExisting, "table users".into()),
                ("3".into(), CreatedByUp, "table t".into()),
            ]
        );
        let summary = summary(&find(&ms));
        assert_eq!(summary.len(), 3, "{summary:?}");
        assert!(
            summary[0].starts_with("2 migration(s) create tables or columns"),
            "{}",
            summary[0]
        );
        assert!(summary[2].contains("deletes rows from table users"), "{}", summary[2]);
    }
}
