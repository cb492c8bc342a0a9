//! Downs that lose data: a down that drops a table or column its up
//! created throws away whatever was written there after the migration.
//! Found from the parse trees, before anything runs.

use backstop_lint::RelationName;
use serde::Serialize;

use crate::source::Migration;

/// An object whose data a rollback would throw away.
#[derive(Debug, Clone, Serialize)]
pub struct Lossy {
    pub version: String,
    pub object: String,
    pub message: String,
}

fn same(a: &RelationName, b: &RelationName) -> bool {
    a.name == b.name && (a.schema.is_none() || b.schema.is_none() || a.schema == b.schema)
}

fn shown(r: &RelationName) -> String {
    match &r.schema {
        Some(s) => format!("{s}.{}", r.name),
        None => r.name.clone(),
    }
}

/// The lossy downs among `migrations`.
pub fn find(migrations: &[Migration]) -> Vec<Lossy> {
    let mut out = Vec::new();
    for m in migrations {
        let Some(down) = &m.down else { continue };
        let up_facts = || m.up.statements.iter().map(|s| &s.facts);
        let down_facts = || down.statements.iter().map(|s| &s.facts);
        let mut flag = |object: String| {
            out.push(Lossy {
                version: m.version.clone(),
                message: format!(
                    "rolling back {} loses data written after the migration: {object} is dropped",
                    m.version
                ),
                object,
            })
        };
        for created in up_facts().filter_map(|f| f.creates_table.as_ref()) {
            if down_facts().any(|f| f.drops_tables.iter().any(|d| same(d, created))) {
                flag(format!("table {}", shown(created)));
            }
        }
        for (table, column) in up_facts().flat_map(|f| f.adds_columns.iter()) {
            let dropped = down_facts()
                .any(|f| f.drops_columns.iter().any(|(t, c)| c == column && same(t, table)));
            if dropped {
                flag(format!("column {}.{column}", shown(table)));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_of_what_up_created_are_lossy_and_others_are_not() {
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
        write("2_b/down.sql", "DROP INDEX i; DROP TABLE legacy;");
        let ms = crate::source::load(tmp.path(), None).unwrap().migrations;
        let found: Vec<_> = find(&ms).into_iter().map(|l| (l.version, l.object)).collect();
        assert_eq!(
            found,
            [
                ("1".to_string(), "table clients".to_string()),
                ("1".into(), "column users.plan".into())
            ]
        );
    }
}
