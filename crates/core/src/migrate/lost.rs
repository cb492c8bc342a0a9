//! What a rollback's downs cannot put back: the values an up changed or
//! removed (an `UPDATE`, a `DELETE`, a `TRUNCATE`, a dropped table or
//! column). A down makes the schema again, never those values: only the
//! backup taken before the up holds them. A table or column the same up
//! made first held nothing before it, so filling it loses nothing.

use std::fmt::Write as _;

use serde::Serialize;

use backstop_sql::{stmt::same_table, RelationName};

use super::status::Entry;
use crate::source::Migration;

/// One reverted migration whose up changed rows its down cannot restore.
#[derive(Debug, Clone, Serialize)]
pub struct NotPutBack {
    pub version: String,
    pub label: String,
    /// What the up did, each with its place: `UPDATE of items (…/up.sql:3)`.
    pub what: Vec<String>,
    /// The backup taken before it, which holds the values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup: Option<String>,
}

impl std::fmt::Display for NotPutBack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.label, self.what.join(", "))?;
        match &self.backup {
            Some(b) => {
                write!(f, "; the values before it are in backup {b} (`backstop respond method B`)")
            }
            None => write!(f, "; no backup taken before it holds the values"),
        }
    }
}

/// The migrations of `targets` (as `applied` records them) whose ups
/// changed or removed rows.
pub fn of(targets: &[&Migration], applied: &[&Entry]) -> Vec<NotPutBack> {
    targets
        .iter()
        .filter_map(|m| {
            let what = changed_by(m);
            if what.is_empty() {
                return None;
            }
            let backup =
                applied.iter().find(|e| e.version == m.version).and_then(|e| e.backup_id.clone());
            Some(NotPutBack { version: m.version.clone(), label: m.label(), what, backup })
        })
        .collect()
}

/// What `m`'s up does to rows that were there before it, in words.
fn changed_by(m: &Migration) -> Vec<String> {
    let mut made: Vec<RelationName> = Vec::new();
    let mut added: Vec<(RelationName, String)> = Vec::new();
    let mut out = Vec::new();
    for s in &m.up.statements {
        let f = &s.facts;
        let old = |t: &RelationName| !made.iter().any(|n| same_table(n, t));
        let mut said = String::new();
        let mut say = |what: &str, t: &RelationName| {
            if !said.is_empty() {
                said.push_str(", ");
            }
            let _ = write!(said, "{what} {}", backstop_sql::stmt::display_table(t));
        };
        // An UPDATE that only fills columns this up added changes nothing
        // that was there before.
        let is_new =
            |t: &RelationName, c: &String| added.iter().any(|(n, a)| a == c && same_table(n, t));
        if let Some(t) = f.updates.as_ref().filter(|t| old(t)) {
            if f.updated_columns.iter().any(|c| !is_new(t, c)) {
                say("UPDATE of", t);
            }
        }
        if let Some(t) = f.deletes_from.as_ref().filter(|t| old(t)) {
            say("DELETE from", t);
        }
        for t in f.truncates.iter().filter(|t| old(t)) {
            say("TRUNCATE of", t);
        }
        for t in f.drops_tables.iter().filter(|t| old(t)) {
            say("DROP TABLE", t);
        }
        for (t, c) in &f.drops_columns {
            if old(t) && !is_new(t, c) {
                let column =
                    RelationName { schema: t.schema.clone(), name: format!("{}.{c}", t.name) };
                say("DROP COLUMN", &column);
            }
        }
        if !said.is_empty() {
            out.push(format!("{said} ({}:{})", m.up.path.display(), s.position.line));
        }
        made.extend(f.creates_table.iter().cloned());
        added.extend(f.adds_columns.iter().cloned());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn migration(up: &str) -> Migration {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("1_m")).unwrap();
        std::fs::write(dir.path().join("1_m/up.sql"), up).unwrap();
        let loaded = crate::source::load(dir.path(), None).unwrap();
        loaded.migrations.into_iter().next().unwrap()
    }

    #[test]
    fn changed_rows_are_named_and_what_the_up_made_first_is_not() {
        let m = migration(
            "UPDATE items SET price = price * 2 WHERE id > 3;\nDELETE FROM logs;\nALTER TABLE items DROP COLUMN note;\n\
             CREATE TABLE work (id int);\nINSERT INTO work VALUES (1);\nUPDATE work SET id = 2;\nDROP TABLE work;\n\
             ALTER TABLE items ADD COLUMN tmp int;\nUPDATE items SET tmp = 1;\nALTER TABLE items DROP COLUMN tmp;",
        );
        let what = changed_by(&m);
        // The work table, and the column the up added and filled, held
        // nothing before it.
        assert_eq!(what.len(), 3, "{what:?}");
        assert!(
            what[0].starts_with("UPDATE of items (") && what[0].ends_with("up.sql:1)"),
            "{what:?}"
        );
        assert!(what[1].starts_with("DELETE from logs"), "{what:?}");
        assert!(what[2].starts_with("DROP COLUMN items.note"), "{what:?}");
        assert!(changed_by(&migration("CREATE TABLE t (id int);\nINSERT INTO t VALUES (1);"))
            .is_empty());
    }
}
