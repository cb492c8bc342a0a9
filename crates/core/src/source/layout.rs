//! Which files of a migrations folder make up which migration.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::SourceError;

/// The folder layout a migration was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// `VERSION_name/{up,down,verify}.sql` (diesel, backstop).
    Directory,
    /// `VERSION_name.up.sql` + `VERSION_name.down.sql`, or `VERSION_name.sql` (sqlx).
    Files,
}

/// The files found for one migration.
#[derive(Debug)]
pub(super) struct Found {
    pub version: String,
    pub name: String,
    pub up: PathBuf,
    pub down: Option<PathBuf>,
    pub verify: Option<PathBuf>,
    pub layout: Layout,
}

/// Splits `VERSION_name` into its parts; the version is digits, optionally
/// separated by `-` or `.` (diesel writes `2026-01-07-120000`).
fn split_stem(stem: &str) -> Option<(String, String)> {
    let (version, name) = stem.split_once('_')?;
    let valid = !version.is_empty()
        && version.starts_with(|c: char| c.is_ascii_digit())
        && version.chars().all(|c| c.is_ascii_digit() || c == '-' || c == '.')
        && !name.is_empty();
    valid.then(|| (version.to_string(), name.to_string()))
}

pub(super) fn discover(dir: &Path) -> Result<Vec<Found>, SourceError> {
    let read_err = |source| SourceError::Read { path: dir.to_path_buf(), source };
    let mut entries: Vec<_> =
        std::fs::read_dir(dir).map_err(read_err)?.collect::<Result<_, _>>().map_err(read_err)?;
    entries.sort_by_key(|e| e.file_name());

    let mut found = Vec::new();
    // sqlx files grouped by stem: (up, down)
    let mut files: BTreeMap<String, (Option<PathBuf>, Option<PathBuf>)> = BTreeMap::new();
    for entry in entries {
        let path = entry.path();
        let Some(file_name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
            continue;
        };
        if file_name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            let Some((version, name)) = split_stem(&file_name) else {
                return Err(SourceError::BadName {
                    path,
                    hint: "(folders hold up.sql, down.sql, verify.sql)",
                });
            };
            let up = path.join("up.sql");
            if !up.is_file() {
                return Err(SourceError::MissingUp { path });
            }
            let optional = |f: &str| Some(path.join(f)).filter(|p| p.is_file());
            found.push(Found {
                version,
                name,
                down: optional("down.sql"),
                verify: optional("verify.sql"),
                up,
                layout: Layout::Directory,
            });
        } else if let Some(base) = file_name.strip_suffix(".sql") {
            let (stem, is_down) = if let Some(s) = base.strip_suffix(".up") {
                (s, false)
            } else if let Some(s) = base.strip_suffix(".down") {
                (s, true)
            } else {
                (base, false)
            };
            if split_stem(stem).is_none() {
                return Err(SourceError::BadName {
                    path,
                    hint: "(files are VERSION_name.up.sql and VERSION_name.down.sql)",
                });
            }
            let slot = files.entry(stem.to_string()).or_default();
            if is_down {
                slot.1 = Some(path);
            } else {
                slot.0 = Some(path);
            }
        }
    }
    for (stem, (up, down)) in files {
        let (version, name) = split_stem(&stem).expect("checked when collected");
        let Some(up) = up else {
            let path = down.expect("an entry has at least one file");
            return Err(SourceError::OrphanDown { path, expected: format!("{stem}.up.sql") });
        };
        found.push(Found { version, name, up, down, verify: None, layout: Layout::Files });
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems_need_a_numeric_version_and_a_name() {
        assert_eq!(
            split_stem("20260107_add_clients"),
            Some(("20260107".into(), "add_clients".into()))
        );
        assert_eq!(
            split_stem("2026-01-07-120000_x"),
            Some(("2026-01-07-120000".into(), "x".into()))
        );
        assert_eq!(split_stem("schema"), None);
        assert_eq!(split_stem("v1_x"), None);
        assert_eq!(split_stem("1_"), None);
    }
}
