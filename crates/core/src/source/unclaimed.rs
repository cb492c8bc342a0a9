//! A folder Backstop looks in whose `.sql` files no layout reads is no
//! empty history: `status` would say "0 migrations", `check` GO and
//! `migrate` "up to date" over a project whose migrations all wait (a
//! Graphile Migrate project's `committed/000001.sql`, Atlas's). It is refused by name instead, with the tool the
//! files look like and the setting to use, before anything touches a
//! database.

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

/// The `.sql` files under `dir`, `depth` folders down, hidden folders
/// and dependencies left out.
fn sql_files(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        if path.is_dir() {
            if depth > 0 && !name.starts_with('.') && name != "node_modules" {
                sql_files(&path, depth - 1, out);
            }
        } else if name.ends_with(".sql") {
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
        None
    };
    match tool {
        Some(tool) => format!("; they look like {tool}, which Backstop does not read yet"),
        None => String::new(),
    }
}
