//! A folder Backstop looks in whose migration files no layout reads is no
//! empty history: `status` would say "0 migrations", `check` GO and
//! `migrate` "up to date" over a project whose migrations all wait (`.sql`
//! files of a hand-rolled runner or of Liquibase, a Rails project's
//! `db/migrate/*.rb`, Alembic's, Knex's or Laravel's files in their own
//! languages). It is refused by name instead, with the tool the files
//! look like where Backstop knows it and the setting to use, before
//! anything touches a database.

use std::path::{Path, PathBuf};

use super::{SourceError, Stray};

/// How deep below the folder `.sql` files are looked for: Hasura keeps
/// `<database>/<version>_<name>/up.sql`.
const DEPTH: usize = 3;

/// Refuses a folder that holds `.sql` files when its layout read no
/// migration from it (files it names as strays are already said).
pub(super) fn refuse(dir: &Path, strays: &[Stray]) -> Result<(), SourceError> {
    let mut files = Vec::new();
    sql_files(dir, DEPTH, &mut files);
    files.retain(|f| !strays.iter().any(|s| &s.path == f));
    if files.is_empty() {
        return Ok(());
    }
    files.sort();
    let shown: Vec<String> = files.iter().take(3).map(|f| f.display().to_string()).collect();
    let more = match files.len() - shown.len() {
        0 => String::new(),
        n => format!(" and {n} more"),
    };
    Err(SourceError::Unclaimed {
        dir: dir.to_path_buf(),
        count: files.len(),
        files: format!("{}{more}", shown.join(", ")),
        looks: looks_like(dir, &files),
    })
}

/// What other tools write their migrations in, beside SQL: Ruby (Rails),
/// Python (Alembic, Django), JavaScript and TypeScript (Knex,
/// node-pg-migrate, TypeORM, Sequelize), PHP (Laravel), and Liquibase's
/// changelogs. Backstop runs none of them.
const OTHER_LANGUAGES: [&str; 10] =
    ["rb", "py", "js", "cjs", "mjs", "ts", "php", "xml", "yaml", "yml"];

/// The migration files under `dir` (`.sql`, and those of
/// [`OTHER_LANGUAGES`]), `depth` folders down, hidden folders and
/// dependencies left out.
fn sql_files(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        if path.is_dir() {
            if depth > 0 && !name.starts_with('.') && name != "node_modules" {
                sql_files(&path, depth - 1, out);
            }
        } else if name.ends_with(".sql")
            || name
                .rsplit_once('.')
                .is_some_and(|(stem, ext)| !stem.is_empty() && OTHER_LANGUAGES.contains(&ext))
        {
            out.push(path);
        }
    }
}

/// Which tool the files look like, as the refusal says it.
fn looks_like(dir: &Path, files: &[PathBuf]) -> String {
    let near = |name: &str| dir.ancestors().take(3).any(|d| d.join(name).exists());
    let first_line = |f: &PathBuf| {
        std::fs::read_to_string(f).ok().and_then(|t| t.lines().next().map(str::to_string))
    };
    let graphile = near(".gmrc")
        || near(".gmrc.js")
        || files.iter().take(5).any(|f| first_line(f).is_some_and(|l| l.starts_with("--! ")));
    let tool = if graphile {
        Some("Graphile Migrate's (`.gmrc`, `--! Previous:` headers)")
    } else if dir.join("atlas.sum").exists() {
        Some("Atlas's (`atlas.sum`)")
    } else {
        other_tool(files)
    };
    match tool {
        Some(tool) => format!("; they look like {tool}, which Backstop does not read"),
        None => String::new(),
    }
}

/// The tool whose migrations `files` look like, told by their language
/// and what they hold.
fn other_tool(files: &[PathBuf]) -> Option<&'static str> {
    let holds = |ext: &[&str], needles: &[&str]| {
        files
            .iter()
            .filter(|f| f.extension().is_some_and(|e| ext.iter().any(|x| e == *x)))
            .take(5)
            .any(|f| {
                let text = std::fs::read_to_string(f).unwrap_or_default();
                needles.is_empty() || needles.iter().any(|n| text.contains(n))
            })
    };
    let liquibase_sql =
        files.iter().filter(|f| f.extension().is_some_and(|e| e == "sql")).take(5).any(|f| {
            std::fs::read_to_string(f).is_ok_and(|t| {
                t.trim_start().to_ascii_lowercase().starts_with("--liquibase formatted sql")
            })
        });
    if liquibase_sql || holds(&["xml", "yaml", "yml"], &["databaseChangeLog"]) {
        return Some("Liquibase's changelog (`--liquibase formatted sql`, `databaseChangeLog`)");
    }
    let js = ["js", "cjs", "mjs", "ts"];
    let found = [
        (holds(&["rb"], &["ActiveRecord::Migration"]), "Rails's Active Record migrations (Ruby)"),
        (holds(&["py"], &["alembic", "down_revision"]), "Alembic's revisions (Python)"),
        (holds(&["py"], &["migrations.Migration"]), "Django's migrations (Python)"),
        (holds(&js, &["pgm."]), "node-pg-migrate's JavaScript migrations"),
        (holds(&js, &["knex"]), "Knex's migrations (JavaScript)"),
        (holds(&js, &["MigrationInterface"]), "TypeORM's migrations (TypeScript)"),
        (holds(&js, &["queryInterface"]), "Sequelize's migrations (JavaScript)"),
        (holds(&["php"], &["Migration"]), "Laravel's migrations (PHP)"),
        (holds(&["rb"], &[]), "Ruby files"),
        (holds(&["py"], &[]), "Python files"),
        (holds(&js, &[]), "JavaScript or TypeScript files"),
        (holds(&["php"], &[]), "PHP files"),
    ];
    found.into_iter().find(|(yes, _)| *yes).map(|(_, tool)| tool)
}
