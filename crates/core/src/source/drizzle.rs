//! Drizzle Kit's layout: `NNNN_<name>.sql` files whose order and identity
//! come from `meta/_journal.json` (`entries[]` with `idx`, `when` in
//! milliseconds since the epoch, `tag` = the file's stem, `breakpoints`),
//! with drizzle-kit's `meta/NNNN_snapshot.json` beside; no down. Drizzle
//! runs the pending migrations in one transaction, each file cut at its
//! `--> statement-breakpoint` lines (SQL comments to PostgreSQL's parser,
//! which splits the file here), and records each by its `when`.
//!
//! A journal that does not parse keeps the order unknown: every migration
//! is still read, in the order of the file names, each with the journal's
//! problem. A `.sql` file the journal does not list is one drizzle never
//! runs: a finding, not an error.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{
    entries, file_name, Discovered, Found, Ignored, Part, PartSource, Problem, ProblemKind,
    SourceError, Stray,
};

/// The files drizzle-kit's settings may live in, in the order it reads them.
pub(super) const CONFIGS: [&str; 7] = [
    "drizzle.config.ts",
    "drizzle.config.mts",
    "drizzle.config.cts",
    "drizzle.config.js",
    "drizzle.config.mjs",
    "drizzle.config.cjs",
    "drizzle.config.json",
];

/// The journal, relative to the migrations folder.
pub const JOURNAL: &str = "meta/_journal.json";

/// The journal's version and dialect as drizzle-kit writes them for PostgreSQL.
const JOURNAL_VERSION: &str = "7";

/// One entry of the journal.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Entry {
    pub idx: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub when: i64,
    pub tag: String,
    #[serde(default)]
    pub breakpoints: bool,
}

#[derive(Debug, Deserialize)]
struct Journal {
    entries: Vec<Entry>,
}

/// Why the journal cannot be used, with its place in the file.
#[derive(Debug)]
struct JournalError {
    line: usize,
    column: usize,
    message: String,
}

fn read_journal(path: &Path) -> Result<(String, Vec<Entry>), JournalError> {
    let text = std::fs::read_to_string(path).map_err(|e| JournalError {
        line: 1,
        column: 1,
        message: format!("cannot be read ({e})"),
    })?;
    let journal: Journal = serde_json::from_str(&text).map_err(|e| JournalError {
        line: e.line().max(1),
        column: e.column().max(1),
        message: format!("is not a drizzle journal ({e})"),
    })?;
    Ok((text, journal.entries))
}

/// The version and name in a tag: `0003_brave_wolf` is `0003`, `brave_wolf`.
fn split_tag(tag: &str) -> (String, String) {
    match tag.split_once('_') {
        Some((v, n)) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) && !n.is_empty() => {
            (v.to_string(), n.to_string())
        }
        _ => (tag.to_string(), tag.to_string()),
    }
}

/// The line of the journal that names `tag`, for pointing at an entry.
fn line_of_tag(text: &str, tag: &str) -> usize {
    let quoted = format!("\"{tag}\"");
    text.lines().position(|l| l.contains("\"tag\"") && l.contains(&quoted)).map_or(1, |i| i + 1)
}

pub(super) fn discover(dir: &Path) -> Result<Discovered, SourceError> {
    let mut out = Discovered::default();
    let journal_path = dir.join(JOURNAL);
    let mut sql_files: Vec<PathBuf> = Vec::new();
    for path in entries(dir)? {
        let name = file_name(&path);
        if !super::real_dir(&path) && name.ends_with(".sql") {
            sql_files.push(path);
        } else if name != "meta" {
            out.ignored.push(Ignored {
                path,
                why: "not a migration: drizzle runs the .sql files its journal lists".into(),
            });
        }
    }
    if let Ok(meta) = entries(&dir.join("meta")) {
        for path in meta.into_iter().filter(|p| file_name(p) != "_journal.json") {
            out.ignored.push(Ignored {
                path,
                why: "drizzle-kit's snapshot of the schema, not a migration".into(),
            });
        }
    }
    match read_journal(&journal_path) {
        Ok((text, journal)) => {
            let mut listed: HashSet<PathBuf> = HashSet::new();
            for entry in journal {
                let file = dir.join(format!("{}.sql", entry.tag));
                listed.insert(file.clone());
                out.migrations.push(listed_migration(&journal_path, &text, &entry, file));
            }
            for path in sql_files.into_iter().filter(|p| !listed.contains(p)) {
                out.strays.push(Stray {
                    message: format!(
                        "{} is not in {JOURNAL}, so drizzle never runs it; create migrations \
                         with `drizzle-kit generate` (`--custom` for hand-written SQL), which \
                         adds the journal entry, or delete the file",
                        file_name(&path)
                    ),
                    path,
                    line: 1,
                });
            }
        }
        Err(e) => {
            for path in sql_files {
                let stem = file_name(&path).trim_end_matches(".sql").to_string();
                let (version, name) = split_tag(&stem);
                let mut found = Found::new(version, stem, name, PartSource::file(path));
                found.problems.push(Problem {
                    part: Part::Up,
                    kind: ProblemKind::Journal,
                    path: journal_path.clone(),
                    line: e.line,
                    column: e.column,
                    message: format!(
                        "{JOURNAL} {}; drizzle takes the order of the migrations from it: \
                         restore it from version control or correct it there",
                        e.message
                    ),
                });
                out.migrations.push(found);
            }
        }
    }
    Ok(out)
}

fn listed_migration(journal: &Path, text: &str, entry: &Entry, file: PathBuf) -> Found {
    let (version, name) = split_tag(&entry.tag);
    let mut found =
        Found::new(version, entry.when.to_string(), name, PartSource::file(file.clone()));
    if !super::present(&file) {
        found.up.text = Some(String::new());
        found.problems.push(Problem {
            part: Part::Up,
            kind: ProblemKind::MissingFile,
            path: journal.to_path_buf(),
            line: line_of_tag(text, &entry.tag),
            column: 1,
            message: format!(
                "the journal lists {} but the folder has no {}.sql; restore the file from \
                 version control, or remove the entry if the migration was abandoned",
                entry.tag, entry.tag
            ),
        });
    }
    found
}

/// Appends a migration to the journal of `dir` as drizzle-kit does: the
/// next `idx`, `when` later than every earlier entry (drizzle applies what
/// is newer than the last `when` it recorded), breakpoints on. The entry
/// is added to the text as it is, so the rest of the file keeps its order
/// and layout; it is written to a temporary file beside the journal and
/// renamed, so a reader never sees half a journal. Returns the entry.
pub fn append_to_journal(dir: &Path, tag: &str, now_ms: i64) -> Result<Entry, SourceError> {
    let path = dir.join(JOURNAL);
    let text = if path.is_file() {
        std::fs::read_to_string(&path)
            .map_err(|source| SourceError::Read { path: path.clone(), source })?
    } else {
        format!(
            "{{\n  \"version\": \"{JOURNAL_VERSION}\",\n  \"dialect\": \"postgresql\",\n  \"entries\": []\n}}\n"
        )
    };
    let refuse = |line: usize, message: String| SourceError::Plan {
        path: path.clone(),
        line,
        message: format!("{message}; correct the journal before adding a migration"),
    };
    let journal: Journal = serde_json::from_str(&text)
        .map_err(|e| refuse(e.line(), format!("not a drizzle journal ({e})")))?;
    let last_when = journal.entries.iter().map(|e| e.when).max().unwrap_or(0);
    let entry = Entry {
        idx: journal.entries.iter().map(|e| e.idx + 1).max().unwrap_or(0),
        version: Some(JOURNAL_VERSION.to_string()),
        when: now_ms.max(last_when + 1),
        tag: tag.to_string(),
        breakpoints: true,
    };
    let close = entries_end(&text)
        .ok_or_else(|| refuse(1, "its `entries` list cannot be found".to_string()))?;
    let text = insert_entry(&text, close, &entry, journal.entries.is_empty());
    let write_err = |source| SourceError::Write { path: path.clone(), source };
    std::fs::create_dir_all(dir.join("meta")).map_err(write_err)?;
    let tmp = dir.join("meta/._journal.json.partial");
    std::fs::write(&tmp, text).map_err(write_err)?;
    std::fs::rename(&tmp, &path).map_err(write_err)?;
    Ok(entry)
}

/// The byte offset of the `]` that closes the top-level `entries` array.
fn entries_end(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    let mut entries_open: Option<usize> = None;
    for (i, &b) in bytes.iter().enumerate() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if b == b'[' && depth == 2 && entries_open.is_none() {
                    let key = text[..i].trim_end().strip_suffix(':')?.trim_end();
                    if key.ends_with("\"entries\"") {
                        entries_open = Some(depth);
                    }
                }
            }
            b'}' | b']' => {
                if b == b']' && entries_open == Some(depth) {
                    return Some(i);
                }
                depth = depth.checked_sub(1)?;
            }
            _ => {}
        }
    }
    None
}

/// `text` with `entry` written before the `]` at `close`, indented as the
/// journal's own entries are (drizzle-kit indents by two spaces).
fn insert_entry(text: &str, close: usize, entry: &Entry, first: bool) -> String {
    let before = text[..close].trim_end();
    let outer = text[..close].rsplit('\n').next().unwrap_or("").to_string();
    let outer = if outer.trim().is_empty() { outer } else { "  ".to_string() };
    let unit = if outer.is_empty() { "  ".to_string() } else { outer.clone() };
    let item = format!("{outer}{unit}");
    let field = format!("{item}{unit}");
    let mut out = String::with_capacity(text.len() + 160);
    out.push_str(before);
    if !first {
        out.push(',');
    }
    out.push('\n');
    out.push_str(&format!(
        "{item}{{\n{field}\"idx\": {},\n{field}\"version\": \"{JOURNAL_VERSION}\",\n{field}\"when\": {},\n{field}\"tag\": {},\n{field}\"breakpoints\": true\n{item}}}\n{outer}",
        entry.idx,
        entry.when,
        serde_json::to_string(&entry.tag).expect("a string serializes"),
    ));
    out.push_str(&text[close..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_split_into_version_and_name() {
        assert_eq!(split_tag("0003_brave_wolf"), ("0003".into(), "brave_wolf".into()));
        assert_eq!(split_tag("custom"), ("custom".into(), "custom".into()));
    }

    #[test]
    fn appended_entries_keep_idx_and_when_increasing() {
        let tmp = tempfile::tempdir().unwrap();
        let first = append_to_journal(tmp.path(), "0000_a", 1_000).unwrap();
        let second = append_to_journal(tmp.path(), "0001_b", 500).unwrap();
        assert_eq!((first.idx, second.idx), (0, 1));
        assert_eq!(second.when, 1_001, "later than the entry before, whatever the clock says");
        let (text, entries) = read_journal(&tmp.path().join(JOURNAL)).unwrap();
        assert_eq!(
            entries.iter().map(|e| e.tag.as_str()).collect::<Vec<_>>(),
            ["0000_a", "0001_b"]
        );
        assert!(text.starts_with("{\n  \"version\": \"7\""), "{text}");
        assert!(text.contains("\n    {\n      \"idx\": 1,\n"), "{text}");
    }

    #[test]
    fn an_entry_goes_into_the_entries_list_whatever_comes_after_it() {
        let tmp = tempfile::tempdir().unwrap();
        let journal = "{\"entries\":[{\"idx\":0,\"when\":5,\"tag\":\"0000_a]\",\"breakpoints\":true}],\"dialect\":\"postgresql\"}";
        std::fs::create_dir_all(tmp.path().join("meta")).unwrap();
        std::fs::write(tmp.path().join(JOURNAL), journal).unwrap();
        append_to_journal(tmp.path(), "0001_b", 3).unwrap();
        let (text, entries) = read_journal(&tmp.path().join(JOURNAL)).unwrap();
        assert_eq!(entries.len(), 2, "{text}");
        assert_eq!(entries[1].when, 6);
        assert!(text.ends_with("\"dialect\":\"postgresql\"}"), "{text}");
    }
}
