//! Hasura's migrations, where its CLI keeps them: a project is a folder
//! with Hasura's `config.yaml` (the repository's root, its `hasura/`, or
//! the folder above the migrations folder Backstop was pointed at). With
//! `version: 3` the migrations folder (`migrations_directory`, else
//! `migrations`) holds a folder per database, each holding
//! `<version>_<name>/{up,down}.sql`; with version 2 it holds those
//! folders itself. Each database's folder is a place of its own, read as
//! the backstop/diesel layout reads a folder of `up.sql` and `down.sql`
//! (Hasura applies them in the order of their versions, as Backstop does).
//!
//! Where the CLI keeps what it applied: with version 3 in the server's
//! catalog, `hdb_catalog.hdb_version`'s `cli_state` (a map per database
//! of version to "dirty"); with version 2 in `hdb_catalog.schema_migrations`
//! (version, dirty). Both belong to the Hasura server, which makes them.

use std::path::{Path, PathBuf};

use super::{entries, file_name, split_stem, HistoryTable, Layout, Place, SourceError};

/// The Hasura projects `root` may be: the folder itself, its `hasura/`,
/// its parent (when `root` is a project's migrations folder) and the one
/// above that (when it is a database's folder in one).
fn projects(root: &Path) -> Vec<PathBuf> {
    let mut out = vec![root.to_path_buf(), root.join("hasura")];
    out.extend(root.ancestors().skip(1).take(2).map(Path::to_path_buf));
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
        let config = project.join("config.yaml");
        let at = |dir: PathBuf, why: String| Place { dir, layout: Some(Layout::Hasura), why };
        let parent = root.parent();
        if version >= 3 && parent.is_some_and(|p| super::same_dir(&migrations, p)) {
            // `root` is one database's folder.
            let why = format!(
                "Hasura's migrations of database {} ({}, version {version})",
                file_name(root),
                config.display()
            );
            return Ok((vec![at(root.to_path_buf(), why)], Some(migrations)));
        }
        let above = root.ancestors().skip(1).any(|a| a == project);
        if !migrations.is_dir() || (above && !super::same_dir(&migrations, root)) {
            continue;
        }
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

/// The table the Hasura CLI keeps the state of the migrations in `dir` in
/// (see the module's comment), with the config that says so; `None` where
/// `dir` is no Hasura project's.
pub(super) fn history(dir: &Path) -> Option<HistoryTable> {
    let (config, version, _) = project_of(dir)?;
    let name = if version < 3 { "schema_migrations" } else { "hdb_version" };
    let set_in = Some(format!("{} (version {version})", config.display()));
    Some(HistoryTable { schema: Some("hdb_catalog".into()), name: name.into(), set_in })
}

/// The database whose migrations `dir` holds, as the CLI names it in its
/// state: the folder's name with config version 3; `None` otherwise.
pub fn database(dir: &Path) -> Option<String> {
    let (_, version, migrations) = project_of(dir)?;
    (version >= 3 && !super::same_dir(&migrations, dir)).then(|| file_name(dir).to_string())
}

/// The config, its version and migrations folder of the Hasura project
/// `dir` is the migrations folder of (version 2) or a database folder of.
fn project_of(dir: &Path) -> Option<(PathBuf, u32, PathBuf)> {
    dir.ancestors().skip(1).take(4).find_map(|project| {
        let (version, migrations) = config(project)?;
        let ours = super::same_dir(&migrations, dir)
            || dir.parent().is_some_and(|p| super::same_dir(&migrations, p));
        ours.then(|| (project.join("config.yaml"), version, migrations))
    })
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
        assert_eq!(dirs(root), [root.join("hasura/migrations/analytics"), default.clone()]);
        // A database's folder named by hand is that database alone.
        assert_eq!(dirs(&default), std::slice::from_ref(&default));
        assert_eq!(database(&default).as_deref(), Some("default"));
        assert_eq!(database(&root.join("hasura/migrations")), None);
        let table = history(&default).unwrap();
        assert_eq!(table.to_string(), "hdb_catalog.hdb_version");
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
        assert_eq!(history(&root.join("db")).unwrap().to_string(), "hdb_catalog.schema_migrations");
        assert_eq!(database(&root.join("db")), None, "version 2 keeps no state per database");
        // Another tool's config.yaml is no Hasura project.
        write(root, "config.yaml", "version: 2\nservices: {}\n");
        assert!(places(root).unwrap().0.is_empty());
        // A config.yaml above a folder that is not its migrations folder.
        write(root, "config.yaml", V3);
        write(root, "other/1_a/up.sql", "select 1;");
        assert!(places(&root.join("other")).unwrap().0.is_empty());
    }
}
