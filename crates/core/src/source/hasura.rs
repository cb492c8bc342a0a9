//! Hasura's migrations, where its CLI keeps them: a project is a folder
//! with Hasura's `config.yaml` (the repository's root, its `hasura/`, or
//! the folder above the migrations folder Backstop was pointed at). With
//! `version: 3` the migrations folder (`migrations_directory`, else
//! `migrations`) holds a folder per database, each holding
//! `<version>_<name>/{up,down}.sql`; with version 2 it holds those
//! folders itself. Each database's folder is a place of its own, read as
//! the backstop/diesel layout reads a folder of `up.sql` and `down.sql`
//! (Hasura applies them in the order of their versions, as Backstop does).

use std::path::{Path, PathBuf};

use super::{entries, file_name, split_stem, Layout, Place, SourceError};

/// The Hasura projects `root` may be: the folder itself, its `hasura/`,
/// and its parent (when `root` is a project's migrations folder).
fn projects(root: &Path) -> Vec<PathBuf> {
    let mut out = vec![root.to_path_buf(), root.join("hasura")];
    if let Some(parent) = root.parent() {
        out.push(parent.to_path_buf());
    }
    out
}

/// A top-level `key: value` of a YAML mapping (Hasura's config holds its
/// settings as plain scalars at the top), without quotes or a comment.
fn top_level<'t>(text: &'t str, key: &str) -> Option<&'t str> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(key)?.strip_prefix(':')?;
        let value = rest.split(" #").next().unwrap_or(rest).trim();
        Some(value.trim_matches(|c| c == '"' || c == '\''))
    })
}

/// Hasura's config version and migrations folder, when `dir` holds
/// Hasura's `config.yaml` (its `version` and its `endpoint` or
/// `metadata_directory`, which the CLI writes on `hasura init`).
fn config(dir: &Path) -> Option<(u32, PathBuf)> {
    let text = std::fs::read_to_string(dir.join("config.yaml")).ok()?;
    let version = top_level(&text, "version")?.parse().ok()?;
    let hasuras =
        top_level(&text, "endpoint").is_some() || top_level(&text, "metadata_directory").is_some();
    if !hasuras {
        return None;
    }
    let folder = top_level(&text, "migrations_directory").unwrap_or("migrations");
    Some((version, dir.join(folder)))
}

/// The places of the Hasura project at or around `root`: one per
/// database folder for config version 3 (a folder whose name is no
/// migration's), the migrations folder itself for version 2; with the
/// migrations folder, which holds no other place.
pub(super) fn places(root: &Path) -> Result<(Vec<Place>, Option<PathBuf>), SourceError> {
    for project in projects(root) {
        let Some((version, migrations)) = config(&project) else { continue };
        let above = Some(project.as_path()) == root.parent();
        if !migrations.is_dir() || (above && !super::same_dir(&migrations, root)) {
            continue;
        }
        let config = project.join("config.yaml");
        let at = |dir: PathBuf, why: String| Place { dir, layout: Some(Layout::Diesel), why };
        if version < 3 {
            let why = format!("Hasura's migrations ({}, version {version})", config.display());
            return Ok((vec![at(migrations.clone(), why)], Some(migrations)));
        }
        let mut out = Vec::new();
        for db in entries(&migrations)? {
            let name = file_name(&db).to_string();
            if db.is_dir() && split_stem(&name).is_none() {
                let why = format!(
                    "Hasura's migrations of database {name} ({}, version {version})",
                    config.display()
                );
                out.push(at(db, why));
            }
        }
        return Ok((out, Some(migrations)));
    }
    Ok((Vec::new(), None))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::source::write_under as write;

    const V3: &str = "version: 3\nendpoint: http://localhost:8080 # the server\nmetadata_directory: metadata\nactions:\n  kind: synchronous\n";

    #[test]
    fn a_version_3_project_has_a_place_per_database_from_the_root_hasura_or_its_migrations() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        write(root, "hasura/config.yaml", V3);
        write(root, "hasura/migrations/default/1612345678901_init/up.sql", "create table t ();");
        let dirs = |from: &Path| -> Vec<PathBuf> {
            places(from).unwrap().0.into_iter().map(|p| p.dir).collect()
        };
        let default = root.join("hasura/migrations/default");
        for from in [root.to_path_buf(), root.join("hasura"), root.join("hasura/migrations")] {
            assert_eq!(dirs(&from), std::slice::from_ref(&default), "from {}", from.display());
        }
        write(root, "hasura/migrations/analytics/1612345678902_a/up.sql", "select 1;");
        assert_eq!(dirs(root), [root.join("hasura/migrations/analytics"), default]);
        let why = &places(root).unwrap().0[0].why;
        assert!(why.contains("database analytics") && why.contains("version 3"), "{why}");
    }

    #[test]
    fn version_2_and_a_named_folder_and_other_configs() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        write(
            root,
            "config.yaml",
            "version: 2\nendpoint: \"https://h.example\"\nmigrations_directory: db\n",
        );
        write(root, "db/1612345678901_init/up.sql", "create table t ();");
        let found = places(root).unwrap().0;
        assert_eq!(found.iter().map(|p| p.dir.clone()).collect::<Vec<_>>(), [root.join("db")]);
        // Another tool's config.yaml is no Hasura project.
        write(root, "config.yaml", "version: 2\nservices: {}\n");
        assert!(places(root).unwrap().0.is_empty());
        // A config.yaml above a folder that is not its migrations folder.
        write(root, "config.yaml", V3);
        write(root, "other/1_a/up.sql", "select 1;");
        assert!(places(&root.join("other")).unwrap().0.is_empty());
    }
}
