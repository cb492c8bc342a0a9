//! A computed down as a file a person can read, and saving it where the
//! folder's layout keeps downs: `down.sql` in folder layouts, the down
//! section of dbmate and goose files, `.down.sql` beside sqlx and
//! golang-migrate ups, `U` files for a Flyway project that has them, the
//! revert script of sqitch; for the rest, `backstop/downs/<version>.down.sql`
//! beside the migrations folder, which `rollback` and method C read. A
//! hand-written file is never replaced without `force`.

use std::path::{Path, PathBuf};

use super::{Down, Status};
use crate::source::{downs_dir, Layout, Migration};

/// The text of a down: a header saying what it is, what it cannot bring
/// back, then its statements.
pub(super) fn render(
    m: &Migration,
    statements: &[String],
    loses: &[String],
    proved: bool,
    adds: bool,
) -> String {
    let mut out = String::new();
    // ALTER SYSTEM cannot run in a transaction: the down runs statement by
    // statement, as the up did.
    if statements.iter().any(|s| s.trim_start().to_ascii_uppercase().starts_with("ALTER SYSTEM")) {
        out.push_str(crate::source::NO_TRANSACTION_MARKER);
        out.push('\n');
    }
    let what = if adds {
        format!("Statements to add at the end of the down of {}", m.label())
    } else {
        format!("Down of {}", m.label())
    };
    out.push_str(&format!(
        "-- {what}, {} from the schema before and after its up.\n",
        crate::source::COMPUTED_MARK
    ));
    if proved {
        out.push_str(&format!(
            "{}: up, this down, and the schema equals the one before.\n",
            crate::source::PROVED_MARK
        ));
    } else {
        out.push_str("-- NOT PROVED: see the notes of `backstop downs`; do not run it unread.\n");
    }
    if !loses.is_empty() {
        out.push_str("-- DDL cannot bring back data; this down does not restore:\n");
        for l in loses {
            out.push_str(&format!("--   - {l}\n"));
        }
        out.push_str(
            "-- The backup taken before the migration holds them (`backstop backup list`).\n",
        );
    }
    out.push('\n');
    for s in statements {
        out.push_str(s.trim_end());
        out.push_str(";\n");
    }
    out
}

/// Why a down was not saved.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(
        "{path} is hand-written: pass --force to replace it (its text is kept as {path}.orig)"
    )]
    HandWritten { path: PathBuf },
    #[error("{version}: the down is not proved, so it is not saved ({why})")]
    NotProved { version: String, why: String },
    #[error("could not write {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl WriteError {
    pub fn exit_code(&self) -> u8 {
        match self {
            WriteError::Io { .. } => 3,
            _ => 1,
        }
    }
}

/// Where a down of `m` goes, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// A file of its own.
    File(PathBuf),
    /// The down section of the migration's file.
    Section(PathBuf),
}

impl Place {
    pub fn path(&self) -> &Path {
        match self {
            Place::File(p) | Place::Section(p) => p,
        }
    }
}

/// Where the layout keeps the down of `m`; `dir` is the migrations folder.
pub fn place(dir: &Path, m: &Migration, flyway_has_undo: bool) -> Place {
    // It has one (a fix replaces its text), or an empty one to fill.
    if let Some(path) = m.down.as_ref().map(|d| &d.path).or(m.empty_down.as_ref()) {
        return match m.layout {
            Layout::Dbmate | Layout::Goose | Layout::NodePgMigrate => Place::Section(path.clone()),
            _ => Place::File(path.clone()),
        };
    }
    let beside = |name: String| m.up.path.with_file_name(name);
    let file_name = m.up.path.file_name().and_then(|f| f.to_str()).unwrap_or_default().to_string();
    match m.layout {
        Layout::Diesel | Layout::Hasura => Place::File(beside("down.sql".into())),
        Layout::Sqlx | Layout::GolangMigrate if file_name.ends_with(".up.sql") => {
            Place::File(beside(file_name.replace(".up.sql", ".down.sql")))
        }
        Layout::Dbmate | Layout::Goose | Layout::NodePgMigrate => Place::Section(m.up.path.clone()),
        Layout::Flyway if flyway_has_undo && file_name.starts_with('V') => {
            Place::File(beside(format!("U{}", &file_name[1..])))
        }
        _ => Place::File(downs_dir(dir).join(format!("{}.down.sql", m.version))),
    }
}

/// Saves `down` for `m` at its place; the path written.
pub fn save(
    dir: &Path,
    m: &Migration,
    down: &Down,
    flyway_has_undo: bool,
    force: bool,
) -> Result<PathBuf, WriteError> {
    let text = match (down.status, &down.replacement, &down.sql) {
        (Status::Fixed | Status::Irreversible, Some(r), _) => r.clone(),
        (Status::Computed, _, Some(sql)) => sql.clone(),
        (Status::Irreversible, None, Some(sql)) if down.proved => sql.clone(),
        _ => {
            let why = down.notes.first().cloned().unwrap_or_else(|| "nothing to save".into());
            return Err(WriteError::NotProved { version: m.version.clone(), why });
        }
    };
    let place = place(dir, m, flyway_has_undo);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| WriteError::Io { path: path.clone(), source }
    };
    match &place {
        Place::File(path) => {
            let exists = path.is_file();
            // Backstop's own, or a template that holds no statement.
            let ours = exists
                && (m.empty_down.as_ref() == Some(path)
                    || std::fs::read_to_string(path).is_ok_and(|t| is_computed(&t)));
            if exists && !ours && !force {
                return Err(WriteError::HandWritten { path: path.clone() });
            }
            if exists && !ours {
                std::fs::copy(path, orig(path)).map_err(io(path))?;
            }
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(io(parent))?;
            }
            atomic_write(path, &text).map_err(io(path))?;
        }
        Place::Section(path) => {
            let file = std::fs::read_to_string(path).map_err(io(path))?;
            let has_down = m.down.as_ref().is_some_and(|d| !d.statements.is_empty());
            if has_down && !force {
                return Err(WriteError::HandWritten { path: path.clone() });
            }
            if has_down {
                std::fs::copy(path, orig(path)).map_err(io(path))?;
            }
            atomic_write(path, &with_section(&file, m.layout, &text)).map_err(io(path))?;
        }
    }
    Ok(place.path().to_path_buf())
}

/// Whether a file's text is a down Backstop computed (replaced freely).
fn is_computed(text: &str) -> bool {
    text.lines().take(2).any(|l| l.contains(crate::source::COMPUTED_MARK))
}

fn orig(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".orig");
    PathBuf::from(name)
}

fn atomic_write(path: &Path, text: &str) -> std::io::Result<()> {
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    std::fs::write(&partial, text)?;
    std::fs::rename(&partial, path)
}

/// The file's text with its down section replaced by `down` (added at the
/// end, with its marker, when it has none).
fn with_section(file: &str, layout: Layout, down: &str) -> String {
    let (marker, up_marker) = match layout {
        Layout::Goose => ("-- +goose Down", "-- +goose Up"),
        Layout::NodePgMigrate => ("-- Down Migration", "-- Up Migration"),
        _ => ("-- migrate:down", "-- migrate:up"),
    };
    let lines: Vec<&str> = file.lines().collect();
    let is = |l: &str, m: &str| l.trim().to_ascii_lowercase().starts_with(&m.to_ascii_lowercase());
    let start = lines.iter().position(|l| is(l, marker));
    let mut out = String::new();
    match start {
        Some(i) => {
            // The down section runs to the next up marker or the end.
            let end = lines[i + 1..].iter().position(|l| is(l, up_marker)).map(|j| i + 1 + j);
            for l in &lines[..=i] {
                out.push_str(l);
                out.push('\n');
            }
            out.push_str(down);
            if let Some(end) = end {
                out.push('\n');
                for l in &lines[end..] {
                    out.push_str(l);
                    out.push('\n');
                }
            }
        }
        None => {
            out.push_str(file.trim_end());
            out.push_str(&format!("\n\n{marker}\n{down}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_down_section_is_filled_or_added() {
        let down = "DROP TABLE t;\n";
        assert_eq!(
            with_section(
                "-- migrate:up\nCREATE TABLE t (a int);\n\n-- migrate:down\n",
                Layout::Dbmate,
                down
            ),
            "-- migrate:up\nCREATE TABLE t (a int);\n\n-- migrate:down\nDROP TABLE t;\n"
        );
        assert_eq!(
            with_section("-- +goose Up\nCREATE TABLE t (a int);\n", Layout::Goose, down),
            "-- +goose Up\nCREATE TABLE t (a int);\n\n-- +goose Down\nDROP TABLE t;\n"
        );
    }
}
