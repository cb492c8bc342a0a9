//! Downs that lose data, found from the parse trees before anything runs.
//! Two kinds: a down that drops a table or column its own up created
//! throws away what was written there since the migration (every such
//! migration of a long history does it, so the report counts them once);
//! a down that drops, empties or deletes from something that existed
//! before the up destroys data the migration never made, and is named.

use backstop_sql::RelationName;
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
    backstop_sql::stmt::same_table(a, b)
}

fn shown(r: &RelationName) -> String {
    backstop_sql::stmt::display_table(r)
}

/// Names as a down meets them, traced back to the names they had when the
/// down started (the names people know after the migration): a down that
/// renames `accounts` to `users_old` and then drops `users_old` drops
/// `accounts`.
#[derive(Default)]
struct Names {
    /// (name now, name when the down started)
    tables: Vec<(RelationName, RelationName)>,
    /// ((table now, column now), column when the down started)
    columns: Vec<((RelationName, String), String)>,
}

impl Names {
    fn table(&self, now: &RelationName) -> RelationName {
        self.tables
            .iter()
            .find(|(n, _)| same(n, now))
            .map_or_else(|| now.clone(), |(_, s)| s.clone())
    }

    fn column(&self, table: &RelationName, now: &str) -> String {
        self.columns
            .iter()
            .find(|((t, c), _)| c == now && same(t, table))
            .map_or_else(|| now.to_string(), |(_, s)| s.clone())
    }

    fn rename(&mut self, r: &backstop_sql::Rename) {
        let to = RelationName { schema: r.table.schema.clone(), name: r.to.clone() };
        match &r.column {
            None => {
                let start = self.table(&r.table);
                self.tables.retain(|(n, _)| !same(n, &r.table));
                self.tables.push((to.clone(), start));
                for ((t, _), _) in self.columns.iter_mut().filter(|((t, _), _)| same(t, &r.table)) {
                    *t = to.clone();
                }
            }
            Some(c) => {
                let start = self.column(&r.table, c);
                self.columns.retain(|((t, n), _)| !(n == c && same(t, &r.table)));
                self.columns.push(((r.table.clone(), r.to.clone()), start));
            }
        }
    }
}

/// What an up made, by the names they have after it: tables it created
/// and columns it added, followed through its own renames.
#[derive(Default)]
struct Made {
    tables: Vec<RelationName>,
    columns: Vec<(RelationName, String)>,
}

impl Made {
    fn of(m: &Migration) -> Made {
        let mut made = Made::default();
        for f in m.up.statements.iter().map(|s| &s.facts) {
            made.tables.extend(f.creates_table.iter().cloned());
            made.columns.extend(f.adds_columns.iter().cloned());
            let Some(r) = &f.renames else { continue };
            let to = RelationName { schema: r.table.schema.clone(), name: r.to.clone() };
            match &r.column {
                None => {
                    for t in made.tables.iter_mut().filter(|t| same(t, &r.table)) {
                        *t = to.clone();
                    }
                    for (t, _) in made.columns.iter_mut().filter(|(t, _)| same(t, &r.table)) {
                        *t = to.clone();
                    }
                }
                Some(c) => {
                    for (_, col) in
                        made.columns.iter_mut().filter(|(t, col)| col == c && same(t, &r.table))
                    {
                        *col = r.to.clone();
                    }
                }
            }
        }
        made
    }

    fn table(&self, t: &RelationName) -> bool {
        self.tables.iter().any(|c| same(c, t))
    }

    fn column(&self, t: &RelationName, c: &str) -> bool {
        self.table(t) || self.columns.iter().any(|(ut, uc)| uc == c && same(ut, t))
    }
}

/// `table accounts`, and how the down named it when it is not that name.
fn table_object(start: &RelationName, now: &RelationName) -> String {
    if same(start, now) && start.name == now.name {
        format!("table {}", shown(start))
    } else {
        format!("table {} (renamed {} by the down first)", shown(start), shown(now))
    }
}

/// The lossy downs among `migrations`.
pub fn find(migrations: &[Migration]) -> Vec<Lossy> {
    let mut out = Vec::new();
    for m in migrations {
        let Some(down) = &m.down else { continue };
        let made = Made::of(m);
        let mut names = Names::default();
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
                let start = names.table(t);
                let kind =
                    if made.table(&start) { LossKind::CreatedByUp } else { LossKind::PreExisting };
                flag(kind, table_object(&start, t), "drops");
            }
            for (t, c) in &f.drops_columns {
                let (start, column) = (names.table(t), names.column(t, c));
                let kind = if made.column(&start, &column) {
                    LossKind::CreatedByUp
                } else {
                    LossKind::PreExisting
                };
                let object = if start.name == t.name && &column == c {
                    format!("column {}.{column}", shown(&start))
                } else {
                    format!(
                        "column {}.{column} (renamed {}.{c} by the down first)",
                        shown(&start),
                        shown(t)
                    )
                };
                flag(kind, object, "drops");
            }
            for t in &f.truncates {
                let start = names.table(t);
                if !made.table(&start) {
                    flag(LossKind::PreExisting, table_object(&start, t), "empties");
                }
            }
            if let Some(t) = &f.deletes_from {
                let start = names.table(t);
                if !made.table(&start) {
                    flag(LossKind::PreExisting, table_object(&start, t), "deletes rows from");
                }
            }
            if let Some(r) = &f.renames {
                names.rename(r);
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

    fn lossy_of(up: &str, down: &str) -> Vec<(LossKind, String)> {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("1_a")).unwrap();
        std::fs::write(tmp.path().join("1_a/up.sql"), up).unwrap();
        std::fs::write(tmp.path().join("1_a/down.sql"), down).unwrap();
        let ms = crate::source::load(tmp.path(), None).unwrap().migrations;
        find(&ms).into_iter().map(|l| (l.kind, l.object)).collect()
    }

    #[test]
    fn a_table_the_down_renames_before_dropping_it_is_named_as_people_know_it() {
        use LossKind::*;
        // Regression: the note named `users_old`, a name that exists only
        // inside the down, and not the live table `accounts` it drops.
        assert_eq!(
            lossy_of(
                "ALTER TABLE users RENAME TO accounts;",
                "ALTER TABLE accounts RENAME TO users_old;\nCREATE TABLE users (id int);\nDROP TABLE users_old;",
            ),
            [(PreExisting, "table accounts (renamed users_old by the down first)".to_string())]
        );
        // The up made the table under another name: dropping it loses only
        // what was written since.
        assert_eq!(
            lossy_of(
                "CREATE TABLE t_new (id int);\nALTER TABLE t_new RENAME TO t;",
                "DROP TABLE t;",
            ),
            [(CreatedByUp, "table t".to_string())]
        );
        assert_eq!(
            lossy_of(
                "ALTER TABLE t ADD COLUMN c int;\nALTER TABLE t RENAME COLUMN c TO d;",
                "ALTER TABLE t RENAME COLUMN d TO e;\nALTER TABLE t DROP COLUMN e;\nDELETE FROM t;",
            ),
            [
                (CreatedByUp, "column t.d (renamed t.e by the down first)".to_string()),
                (PreExisting, "table t".to_string()),
            ]
        );
    }
}
