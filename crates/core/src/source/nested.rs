//! Migrations below the root, where a project's tool looks for them: a Go
//! module's (its `go.mod` requires golang-migrate or goose) folders of
//! `*.up.sql` files or of goose's annotated scripts, anywhere in the
//! module (`internal/store/migrations`); and the tools' folders of a monorepo's packages (`packages/db/prisma`,
//! `apps/web/supabase`, a drizzle output folder). The walk skips what is
//! no project's own (dependencies, build output, examples, fixtures).

use std::path::{Path, PathBuf};

use super::Place;
use super::{entries, file_name, Layout};

/// Folders never walked into.
const SKIPPED: &[&str] = &[
    "node_modules",
    "target",
    "dist",
    "build",
    "out",
    ".git",
    ".next",
    ".turbo",
    "vendor",
    "testdata",
    "examples",
    "example",
    "fixtures",
    "test",
    "tests",
    "docs",
    "venv",
    ".venv",
    "__pycache__",
];

/// How deep below the root the walk goes.
const DEPTH: usize = 6;

/// Every folder below `root` (not `root` itself), down to [`DEPTH`].
pub(super) fn folders(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut level = vec![root.to_path_buf()];
    for _ in 0..DEPTH {
        let mut next = Vec::new();
        for d in &level {
            let Ok(children) = entries(d) else { continue };
            for child in children.into_iter().filter(|c| c.is_dir() && !c.is_symlink()) {
                let name = file_name(&child);
                if SKIPPED.contains(&name) || (name.starts_with('.') && name != ".config") {
                    continue;
                }
                out.push(child.clone());
                next.push(child);
            }
        }
        level = next;
    }
    out
}

/// The migration tool a Go module requires, from its `go.mod`.
fn go_requires(go_mod: &Path) -> Option<Layout> {
    let text = std::fs::read_to_string(go_mod).ok()?;
    if text.contains("github.com/golang-migrate/migrate") {
        Some(Layout::GolangMigrate)
    } else if text.contains("github.com/pressly/goose") {
        Some(Layout::Goose)
    } else {
        None
    }
}

/// The tool of the Go module `dir` is in (its `go.mod` here or in a
/// folder above), when that module requires golang-migrate or goose: how
/// a pair of `*.up.sql` files is read (sqlx writes them too).
pub(super) fn go_tool(dir: &Path) -> Option<Layout> {
    let dir = dir.canonicalize().ok()?;
    dir.ancestors().take(DEPTH + 2).find_map(|d| {
        let go_mod = d.join("go.mod");
        go_mod.is_file().then(|| go_requires(&go_mod)).flatten()
    })
}

/// Whether `dir` holds golang-migrate's files, or goose's scripts.
fn holds(dir: &Path, tool: Layout) -> bool {
    let Ok(files) = entries(dir) else { return false };
    match tool {
        Layout::GolangMigrate => files.iter().any(|f| file_name(f).ends_with(".up.sql")),
        Layout::Goose => files
            .iter()
            .filter(|f| file_name(f).ends_with(".sql"))
            .any(|f| std::fs::read_to_string(f).is_ok_and(|t| t.contains("-- +goose Up"))),
        _ => false,
    }
}

/// The `go.mod` files of the modules below `root` (a repository of several).
fn go_mods(root: &Path) -> Vec<PathBuf> {
    let Ok(children) = entries(root) else { return Vec::new() };
    children.into_iter().map(|c| c.join("go.mod")).filter(|g| g.is_file()).collect()
}

/// The places among `below` (the folders under `root`, [`folders`])
/// where a project's tool keeps migrations; Flyway's are
/// `flyway_places`'.
pub(super) fn places(root: &Path, below: &[PathBuf]) -> Vec<Place> {
    let mut out = Vec::new();
    let go_module = root.join("go.mod").is_file() || !go_mods(root).is_empty();
    for dir in below {
        if let Some(tool) = go_module.then(|| go_tool(dir)).flatten() {
            if holds(dir, tool) {
                let what = match tool {
                    Layout::Goose => "goose's scripts",
                    _ => "golang-migrate's *.up.sql files",
                };
                let why = format!("{what} of the Go module that requires {tool}");
                out.push(Place { dir: dir.clone(), layout: Some(tool), why });
            }
        }
        if dir.join(super::atlas::SUM).is_file() {
            let why = "Atlas's folder (atlas.sum)".to_string();
            out.push(Place { dir: dir.clone(), layout: Some(Layout::Atlas), why });
        }
        let rel = dir.strip_prefix(root).unwrap_or(dir);
        if rel.ends_with("supabase/migrations") && rel.components().count() > 2 {
            out.push(Place {
                dir: dir.clone(),
                layout: Some(Layout::Supabase),
                why: "the Supabase CLI's folder of a package".into(),
            });
        }
        if rel.ends_with("prisma/migrations") && rel.components().count() > 2 && prisma_folder(dir)
        {
            out.push(Place {
                dir: dir.clone(),
                layout: Some(Layout::Prisma),
                why: "Prisma's folder of a package".into(),
            });
        }
    }
    out
}

/// Whether `dir` is one Prisma made: its lock file, or a folder with a
/// `migration.sql`.
fn prisma_folder(dir: &Path) -> bool {
    dir.join("migration_lock.toml").is_file()
        || entries(dir).is_ok_and(|es| es.iter().any(|e| e.join("migration.sql").is_file()))
}

/// The `drizzle.config.*` files that may be `out`'s, each with the folders
/// its `out` may count from: one in `out`'s folder or a folder above (up to
/// four), from its own folder; and one anywhere in a package whose
/// `package.json` runs drizzle-kit (`apps/web/server/db/drizzle.config.ts`,
/// run as `drizzle-kit migrate --config server/db/drizzle.config.ts` from
/// `apps/web`), from the package's folder too, where drizzle-kit runs.
pub(super) fn drizzle_configs_of(out: &Path) -> Vec<(PathBuf, Vec<PathBuf>)> {
    let mut configs: Vec<(PathBuf, Vec<PathBuf>)> = Vec::new();
    for root in out.ancestors().take(5) {
        for name in super::drizzle::CONFIGS {
            let path = root.join(name);
            if path.is_file() {
                configs.push((path, vec![root.to_path_buf()]));
            }
        }
    }
    for package in out.ancestors().skip(1).take(4) {
        let runs_kit = std::fs::read_to_string(package.join("package.json"))
            .is_ok_and(|t| t.contains("drizzle-kit"));
        if !runs_kit {
            continue;
        }
        let mut level = vec![package.to_path_buf()];
        for _ in 0..4 {
            let mut next = Vec::new();
            for d in &level {
                let Ok(children) = entries(d) else { continue };
                for child in children {
                    let name = file_name(&child);
                    if child.is_dir() && !SKIPPED.contains(&name) && !name.starts_with('.') {
                        next.push(child);
                    } else if super::drizzle::CONFIGS.contains(&name) {
                        let own = child.parent().map(Path::to_path_buf).unwrap_or_default();
                        configs.push((child.clone(), vec![package.to_path_buf(), own]));
                    }
                }
            }
            level = next;
        }
    }
    configs
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::source::write_under as write;

    fn found(root: &Path) -> Vec<(String, Option<Layout>)> {
        let mut out: Vec<(String, Option<Layout>)> = places(root, &folders(root))
            .into_iter()
            .map(|p| (p.dir.strip_prefix(root).unwrap().display().to_string(), p.layout))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    #[test]
    fn a_go_modules_migrations_are_found_anywhere_in_it_as_its_tool_reads_them() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        write(r, "go.mod", "module x\n\nrequire github.com/golang-migrate/migrate/v4 v4.17.0\n");
        write(r, "internal/store/migrations/000001_init.up.sql", "CREATE TABLE t (id int);");
        write(r, "internal/store/migrations/000001_init.down.sql", "DROP TABLE t;");
        write(r, "vendor/github.com/x/migrations/000001_a.up.sql", "SELECT 1;");
        assert_eq!(
            found(r),
            [("internal/store/migrations".to_string(), Some(Layout::GolangMigrate))]
        );
        assert_eq!(go_tool(&r.join("internal/store/migrations")), Some(Layout::GolangMigrate));
        let goose = tempfile::tempdir().unwrap();
        let g = goose.path();
        write(g, "go.mod", "module y\n\nrequire github.com/pressly/goose/v3 v3.20.0\n");
        write(
            g,
            "db/sql/00001_init.sql",
            "-- +goose Up\nCREATE TABLE t (id int);\n-- +goose Down\nDROP TABLE t;\n",
        );
        assert_eq!(found(g), [("db/sql".to_string(), Some(Layout::Goose))]);
    }

    #[test]
    fn a_monorepos_packages_tools_folders_are_candidates() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        write(
            r,
            "packages/db/prisma/migrations/migration_lock.toml",
            "provider = \"postgresql\"\n",
        );
        write(r, "apps/web/supabase/migrations/20240101000000_a.sql", "SELECT 1;");
        write(r, "examples/demo/prisma/migrations/migration_lock.toml", "");
        assert_eq!(
            found(r),
            [
                ("apps/web/supabase/migrations".to_string(), Some(Layout::Supabase)),
                ("packages/db/prisma/migrations".to_string(), Some(Layout::Prisma)),
            ]
        );
    }
}
