//! Whether a project shows that it runs its layout's own tool, so that a
//! fresh database gets that tool's history table from the first
//! `migrate` (see [`crate::adopt::in_step`]). A layout only one tool
//! writes says so by itself (goose's and dbmate's sections, Flyway's
//! `V1__` names, golang-migrate's pairs as the Go module or the files
//! chose them); the layouts two tools share say it by the project's own
//! files: sqlx's pairs by a `Cargo.toml` that requires sqlx, a
//! backstop/diesel folder by `diesel.toml` or a `Cargo.toml` that
//! requires diesel's migrations. Backstop's own folder (`backstop new`)
//! shows neither, and gets no other tool's table.

use std::path::Path;

use super::Layout;

/// How many folders above a migration's file are looked at: a project's
/// migrations sit at most a few levels below its manifest.
const ABOVE: usize = 8;

/// Whether the project the migration file `file` (of `layout`) belongs to
/// runs that layout's tool (a `sqitch.plan` is sqitch's own).
pub fn runs_tool(file: &Path, layout: Layout) -> bool {
    match layout {
        Layout::Goose | Layout::Dbmate | Layout::Flyway | Layout::GolangMigrate => true,
        Layout::Supabase | Layout::Prisma | Layout::Drizzle | Layout::GraphileMigrate => true,
        Layout::Atlas | Layout::Sqitch | Layout::Hasura | Layout::NodePgMigrate => true,
        Layout::Sqlx => manifest_above(file, |_, m| requires(m, &["sqlx"])),
        Layout::Diesel => manifest_above(file, |dir, m| {
            dir.join("diesel.toml").is_file() || requires(m, &["diesel_migrations"])
        }),
    }
}

/// Whether a folder above `file`, up to the repository's root (the folder
/// holding `.git`), holds a `Cargo.toml` or a file `found` accepts:
/// `found` gets the folder and its manifest's text (empty without one).
fn manifest_above(file: &Path, found: impl Fn(&Path, &str) -> bool) -> bool {
    let Ok(file) = file.canonicalize() else { return false };
    for dir in file.ancestors().skip(1).take(ABOVE) {
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap_or_default();
        if found(dir, &manifest) {
            return true;
        }
        if dir.join(".git").exists() {
            break;
        }
    }
    false
}

/// Whether a `Cargo.toml`'s text requires one of `crates` in any of its
/// dependency tables (a workspace's, a target's, the dev ones too).
fn requires(manifest: &str, crates: &[&str]) -> bool {
    let Ok(doc) = manifest.parse::<toml::Table>() else { return false };
    let names = |t: &toml::Table| {
        ["dependencies", "dev-dependencies", "build-dependencies"].iter().any(|k| {
            t.get(*k).and_then(|d| d.as_table()).is_some_and(|d| {
                d.iter().any(|(name, spec)| {
                    let package = spec.get("package").and_then(|p| p.as_str());
                    crates.contains(&package.unwrap_or(name))
                })
            })
        })
    };
    let workspace = doc.get("workspace").and_then(|w| w.as_table());
    let targets = doc.get("target").and_then(|t| t.as_table());
    names(&doc)
        || workspace.is_some_and(names)
        || targets.is_some_and(|t| t.values().filter_map(|v| v.as_table()).any(names))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_requires_a_crate_by_its_name_or_package_in_any_table() {
        assert!(requires("[dependencies]\nsqlx = { version = \"0.8\" }\n", &["sqlx"]));
        assert!(requires("[workspace.dependencies]\nsqlx = \"0.8\"\n", &["sqlx"]));
        assert!(requires(
            "[dependencies]\ndb = { package = \"sqlx\", version = \"0.8\" }\n",
            &["sqlx"]
        ));
        assert!(requires("[target.'cfg(unix)'.dev-dependencies]\nsqlx = \"0.8\"\n", &["sqlx"]));
        assert!(!requires("[dependencies]\nsqlx-core = \"0.8\"\n", &["sqlx"]));
        assert!(!requires("[package]\nname = \"sqlx\"\n", &["sqlx"]));
        assert!(!requires("not toml [", &["sqlx"]));
    }

    #[test]
    fn a_shared_layout_runs_its_tool_only_where_the_project_says_so() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join(".git")).unwrap();
        let dir = root.path().join("db/migrations");
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("1_a.up.sql");
        std::fs::write(&file, "select 1;").unwrap();
        assert!(!runs_tool(&file, Layout::Sqlx));
        assert!(!runs_tool(&file, Layout::Diesel));
        assert!(runs_tool(&file, Layout::Goose));
        std::fs::write(root.path().join("Cargo.toml"), "[dependencies]\nsqlx = \"0.8\"\n").unwrap();
        assert!(runs_tool(&file, Layout::Sqlx));
        assert!(!runs_tool(&file, Layout::Diesel));
        std::fs::write(root.path().join("diesel.toml"), "[print_schema]\n").unwrap();
        assert!(runs_tool(&file, Layout::Diesel));
    }
}
