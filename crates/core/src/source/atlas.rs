//! Atlas's versioned migrations: a folder of `<version>_<name>.sql` (or
//! `<version>.sql`) files beside `atlas.sum`, which holds the sum of the
//! folder on its first line (`h1:` and a base64 SHA-256) and, for each
//! file in order, the SHA-256 of every name and file up to it. Atlas
//! refuses a folder its sum no longer matches; so does Backstop, naming
//! the first file that differs (and the ones after it, which the sum can
//! no longer vouch for). A file's directives are read as Atlas reads them
//! (see [`super::atlas_files`]). Found by `atlas.sum`, or by `atlas.hcl`'s
//! `dir = "file://…"`. No down, but an archive's `down.sql`.

use std::path::{Path, PathBuf};

use super::{entries, file_name, Discovered, Found, Ignored, Part, PartSource, Problem};
use super::{ProblemKind, SourceError};

/// The integrity file Atlas keeps beside the migrations.
pub const SUM: &str = "atlas.sum";

fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The entries of an `atlas.sum` text, each file's name and hash, when
/// its first line is their sum.
pub(crate) fn read_sum(text: &str) -> Result<Vec<(String, String)>, String> {
    use sha2::Digest as _;
    let mut lines = text.lines();
    let sum =
        lines.next().and_then(|l| l.strip_prefix("h1:")).ok_or("no `h1:` sum on its first line")?;
    let mut out = Vec::new();
    let mut all = sha2::Sha256::new();
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let (name, hash) = line
            .split_once("h1:")
            .ok_or_else(|| format!("the line `{line}` is not `<file> h1:<hash>`"))?;
        all.update(name.trim().as_bytes());
        all.update(hash.as_bytes());
        out.push((name.trim().to_string(), hash.to_string()));
    }
    if base64(&all.finalize()) != sum {
        return Err("its first line is not the sum of its lines: it was edited by hand".into());
    }
    Ok(out)
}

/// Each file's hash as Atlas computes it: the SHA-256 of the names and
/// bytes of every file up to it, in order; a file whose first line says
/// `atlas:sum ignore` adds its name only and has no entry.
fn hashes(files: &[(String, Vec<u8>)]) -> Vec<(String, String)> {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    let mut out = Vec::new();
    for (name, bytes) in files {
        h.update(name.as_bytes());
        let first = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
        if String::from_utf8_lossy(first).contains("atlas:sum ignore") {
            continue;
        }
        h.update(bytes);
        out.push((name.clone(), base64(&h.clone().finalize())));
    }
    out
}

/// The version and name of a migration file, as Atlas reads them.
fn parse_name(name: &str) -> Option<(&str, &str)> {
    let stem = name.strip_suffix(".sql")?;
    let (version, title) = stem.split_once('_').unwrap_or((stem, ""));
    (!version.is_empty() && version.starts_with(|c: char| c.is_ascii_digit()))
        .then_some((version, title))
}

/// The folder `atlas.hcl` at `root` names for its migrations
/// (`migration { dir = "file://migrations" }`), with its line.
pub(super) fn hcl_dir(root: &Path) -> Option<(PathBuf, usize)> {
    let text = std::fs::read_to_string(root.join("atlas.hcl")).ok()?;
    text.lines().enumerate().find_map(|(i, line)| {
        let rest = line.trim().strip_prefix("dir")?.trim_start().strip_prefix('=')?.trim();
        let path = rest.trim_matches('"').strip_prefix("file://")?;
        Some((root.join(path.split('?').next().unwrap_or(path)), i + 1))
    })
}

pub(super) fn discover(dir: &Path) -> Result<Discovered, SourceError> {
    let mut out = Discovered::default();
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    for path in entries(dir)? {
        let name = file_name(&path).to_string();
        if name.ends_with(".sql") && !path.is_dir() {
            files.push((name, path));
        } else if name == SUM {
            out.ignored.push(Ignored {
                path,
                why: "Atlas's integrity sum of the folder (checked)".into(),
            });
        } else {
            out.ignored.push(Ignored { path, why: "not an Atlas migration file".into() });
        }
    }
    files.sort();
    let read: Vec<(String, Vec<u8>)> =
        files.iter().map(|(n, p)| (n.clone(), std::fs::read(p).unwrap_or_default())).collect();
    let computed = hashes(&read);
    let recorded = match std::fs::read_to_string(dir.join(SUM)) {
        Ok(text) => read_sum(&text).map_err(|why| {
            format!("{} cannot be read: {why}; run `atlas migrate hash`", dir.join(SUM).display())
        }),
        Err(_) => Err(format!(
            "there is no {SUM} beside it, which Atlas requires; run `atlas migrate hash`"
        )),
    };
    // From the first file whose hash differs, no file is vouched for.
    let mut broken: Option<String> = None;
    let mut checkpoints: Vec<(usize, String)> = Vec::new();
    for (i, (name, path)) in files.iter().enumerate() {
        let Some((version, title)) = parse_name(name) else {
            out.ignored.push(Ignored {
                path: path.clone(),
                why: "not named `<version>_<name>.sql`, as Atlas names migrations".into(),
            });
            continue;
        };
        let title = if title.is_empty() { "migration" } else { title };
        let mut found = Found::new(
            version.to_string(),
            version.to_string(),
            title.to_string(),
            PartSource::file(path.clone()),
        );
        let text = String::from_utf8_lossy(&read[i].1).into_owned();
        let directed = super::atlas_files::read(&text);
        found.up.no_transaction = directed.no_transaction;
        for (line, message) in directed.problems {
            let (path, line) = (path.clone(), line.max(1));
            let kind = ProblemKind::Unsupported;
            found.problems.push(Problem { part: Part::Up, kind, path, line, column: 1, message });
        }
        found.down = directed.down.map(|text| PartSource {
            path: path.clone(),
            text: Some(text),
            no_transaction: false,
        });
        if directed.checkpoint {
            checkpoints.push((out.migrations.len(), name.clone()));
        }
        let own = computed.iter().find(|(n, _)| n == name).map(|(_, h)| h);
        let why = match (&recorded, &broken) {
            (Err(why), _) => Some(why.clone()),
            (Ok(_), Some(first)) => Some(format!("{SUM} no longer vouches for it: {first}, before it, changed")),
            (Ok(entries), None) => match (entries.iter().find(|(n, _)| n == name), own) {
                (None, Some(_)) => Some(format!("it is not in {SUM}: it was added without `atlas migrate hash`")),
                (Some((_, want)), Some(have)) if want != have => Some(format!("it no longer matches its hash in {SUM}: it changed after `atlas migrate hash` (or a file before it did)")),
                _ => None,
            },
        };
        if let Some(why) = why {
            if recorded.is_ok() && broken.is_none() {
                broken = Some(name.clone());
            }
            found.problems.push(Problem {
                part: Part::Up,
                kind: ProblemKind::Hash,
                path: path.clone(),
                line: 1,
                column: 1,
                message: format!("{why}; Atlas refuses the folder too"),
            });
        }
        found.up.text = Some(directed.up);
        out.migrations.push(found);
    }
    // A checkpoint holds the schema of every file before it: Atlas starts
    // a new database from the newest one. Where those files are in the
    // folder they run in its place (the same schema, and the history the
    // database keeps of them); one with none before it is the start.
    for (at, name) in checkpoints.into_iter().rev() {
        if at > 0 {
            let m = out.migrations.remove(at);
            out.ignored.push(Ignored {
                path: m.up.path,
                why: format!(
                    "an Atlas checkpoint (`-- atlas:checkpoint`): the files before {name} are in                      the folder and run in its place, to the same schema"
                ),
            });
        }
    }
    Ok(out)
}

/// The `atlas.sum` of the folder `dir` as `atlas migrate hash` writes
/// it (for tests and benches that make an Atlas folder).
pub fn sum_file(dir: &Path) -> Result<String, SourceError> {
    use sha2::Digest as _;
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    for path in entries(dir)? {
        let name = file_name(&path).to_string();
        if name.ends_with(".sql") && !path.is_dir() {
            let bytes =
                std::fs::read(&path).map_err(|source| SourceError::Read { path, source })?;
            files.push((name, bytes));
        }
    }
    files.sort();
    let entries = hashes(&files);
    let mut all = sha2::Sha256::new();
    let mut lines = String::new();
    for (name, hash) in &entries {
        all.update(name.as_bytes());
        all.update(hash.as_bytes());
        lines.push_str(&format!("{name} h1:{hash}\n"));
    }
    Ok(format!("h1:{}\n{lines}", base64(&all.finalize())))
}

/// The hash `atlas.sum` beside `file` gives it, for Atlas's revisions.
pub(crate) fn sum_of(file: &Path) -> Option<String> {
    let text = std::fs::read_to_string(file.parent()?.join(SUM)).ok()?;
    let name = file_name(file);
    read_sum(&text).ok()?.into_iter().find(|(n, _)| n == name).map(|(_, h)| h)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The atlas.sum of the three files below, as `atlas migrate hash`
    /// writes it: computed apart from this module (Python's hashlib, by
    /// the algorithm checked against an atlas.sum of a public project).
    const SUM_TEXT: &str = "h1:pgix0VzPPDAQL8OTHPpOi4RXKJqZSs6qqmwjLeG9twY=
20240101000000_init.sql h1:gvgWUeN29IfIxz/wXTqysRwD1IXaG173rN0ms/Xe4XA=
20240102000000_b.sql h1:XbCFUc5/egBuAWJwf96FYx7t6op1eQBnj4tcXhhY+rs=
20240103000000.sql h1:ZUE0A8MU6yRZ1y/Fuf2xcCKkz3bsz4im9DlpjrA70Vg=
";

    #[test]
    fn a_folder_that_no_longer_matches_its_sum_is_refused_from_the_changed_file_on() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let files: Vec<(String, Vec<u8>)> = [
            ("20240101000000_init.sql", "create table a (id int);\n"),
            (
                "20240102000000_b.sql",
                "-- atlas:txmode none\n\ncreate index concurrently a_id on a (id);\n",
            ),
            ("20240103000000.sql", "create table c (id int);\n"),
        ]
        .iter()
        .map(|(n, t)| (n.to_string(), t.as_bytes().to_vec()))
        .collect();
        for (n, b) in &files {
            std::fs::write(d.join(n), b).unwrap();
        }
        std::fs::write(d.join(SUM), SUM_TEXT).unwrap();
        assert_eq!(sum_file(d).unwrap(), SUM_TEXT, "written as Atlas writes it");
        let found = discover(d).unwrap();
        assert_eq!(found.migrations.len(), 3);
        assert!(found.migrations.iter().all(|m| m.problems.is_empty()));
        assert!(found.migrations[1].up.no_transaction);
        assert_eq!(found.migrations[2].name, "migration");
        assert!(sum_of(&d.join("20240102000000_b.sql")).is_some());

        std::fs::write(d.join("20240102000000_b.sql"), "create index a_id on a (id);\n").unwrap();
        let found = discover(d).unwrap();
        let said: Vec<usize> = found.migrations.iter().map(|m| m.problems.len()).collect();
        assert_eq!(said, [0, 1, 1]);
        assert!(found.migrations[2].problems[0]
            .message
            .contains("20240102000000_b.sql, before it"));

        std::fs::write(d.join(SUM), "h1:bogus\n20240101000000_init.sql h1:x\n").unwrap();
        let found = discover(d).unwrap();
        assert!(found.migrations[0].problems[0].message.contains("edited by hand"));
    }
}
