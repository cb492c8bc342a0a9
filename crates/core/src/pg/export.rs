//! Values copied out of the database before something removes them: a
//! query's rows as CSV through `COPY … TO STDOUT`, each file written as
//! `.partial`, synced, checksummed with BLAKE3 and only then renamed, the
//! manifest last, every file `0600` and the folder `0700` whatever the
//! umask. A killed run leaves nothing that looks complete.

use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Why an export could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("database error while exporting {file}")]
    Db {
        file: String,
        #[source]
        source: postgres::Error,
    },
    #[error("could not write {path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// One file written: its name in the folder, its size and BLAKE3.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Written {
    pub file: String,
    pub bytes: u64,
    pub blake3: String,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ExportError + '_ {
    move |source| ExportError::Io { path: path.display().to_string(), source }
}

/// Makes `folder` (and its parents), readable by its owner only.
pub fn folder(folder: &Path) -> Result<(), ExportError> {
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(folder).map_err(io(folder))?;
    std::fs::set_permissions(folder, std::fs::Permissions::from_mode(0o700)).map_err(io(folder))?;
    ignored(folder);
    Ok(())
}

/// The name of Backstop's own folder in a project: backups, exports,
/// forensics, rehearsal reports and proofs, all of it out of git.
pub const LOCAL_DIR: &str = ".backstop";

/// Keeps Backstop's own folder out of the project's repository, whoever
/// made it and whatever the project's `.gitignore` says: where `path` is
/// in a `.backstop` folder (or is one), that folder gets a `.gitignore`
/// of its own holding `*` the first time anything is made in it (it holds
/// rows, secrets and exports of users' data, one `git add -A` from a
/// commit). Best effort: a folder that cannot take it is only not marked.
pub fn ignored(path: &Path) {
    let Some(local) = path.ancestors().find(|p| p.file_name().is_some_and(|n| n == LOCAL_DIR))
    else {
        return;
    };
    let ignore = local.join(".gitignore");
    if ignore.exists() || !local.is_dir() {
        return;
    }
    let _ = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o644).open(&ignore).and_then(
        |mut f| {
            f.write_all(
                b"# Backstop's own files (backups, exports, forensics, reports, proofs): never in git.\n*\n",
            )
        },
    );
}

/// A file name for `parts` (a table, a column...) that stays inside the
/// folder whatever the names hold.
pub fn file_name(parts: &[&str], extension: &str) -> String {
    let safe: Vec<String> = parts
        .iter()
        .map(|p| {
            p.chars()
                .map(|c| if c.is_alphanumeric() || matches!(c, '_' | '-' | '.') { c } else { '_' })
                .collect()
        })
        .collect();
    format!("{}.{extension}", safe.join("."))
}

/// Opens `path` for writing, new, `0600`.
fn create(path: &Path) -> Result<std::fs::File, ExportError> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io(path))
}

/// Renames `<name>.partial` to `<name>` once it is whole and synced.
fn seal(file: std::fs::File, partial: &Path, done: &Path) -> Result<(), ExportError> {
    file.sync_all().map_err(io(partial))?;
    std::fs::rename(partial, done).map_err(io(done))
}

/// Writes the rows of `query` as CSV with a header to `folder/file`.
pub fn csv(
    client: &mut impl postgres::GenericClient,
    query: &str,
    folder: &Path,
    file: &str,
) -> Result<Written, ExportError> {
    let done = folder.join(file);
    let partial = folder.join(format!("{file}.partial"));
    let mut out = create(&partial)?;
    let db = |source| ExportError::Db { file: file.to_string(), source };
    let mut reader = client
        .copy_out(&format!("copy ({query}) to stdout with (format csv, header)"))
        .map_err(db)?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut bytes = 0u64;
    loop {
        let n = reader.read(&mut buf).map_err(io(&partial))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(io(&partial))?;
        bytes += n as u64;
    }
    drop(reader);
    seal(out, &partial, &done)?;
    Ok(Written { file: file.to_string(), bytes, blake3: hasher.finalize().to_hex().to_string() })
}

/// Writes a text file (a report, a manifest) the same way: `.partial`
/// first, `0600`.
pub fn text(folder: &Path, file: &str, body: &str) -> Result<(), ExportError> {
    let done = folder.join(file);
    let partial = folder.join(format!("{file}.partial"));
    let mut out = create(&partial)?;
    out.write_all(body.as_bytes()).map_err(io(&partial))?;
    seal(out, &partial, &done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backstops_own_folder_ignores_itself_whoever_made_it() {
        let tmp = tempfile::tempdir().unwrap();
        let deep = tmp.path().join(".backstop/exports/20261128T000000Z");
        folder(&deep).unwrap();
        let ignore = std::fs::read_to_string(tmp.path().join(".backstop/.gitignore")).unwrap();
        assert!(ignore.lines().any(|l| l == "*"), "{ignore}");
        // Elsewhere, nothing is written.
        let other = tmp.path().join("exports/x");
        folder(&other).unwrap();
        assert!(!tmp.path().join("exports/.gitignore").exists());
    }

    #[test]
    fn names_stay_inside_the_folder_and_texts_are_private_and_whole() {
        assert_eq!(file_name(&["public", "../etc", "a b"], "csv"), "public..._etc.a_b.csv");
        assert_eq!(file_name(&["public.clients"], "csv"), "public.clients.csv");
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("x/y");
        folder(&sub).unwrap();
        text(&sub, "report.md", "hello").unwrap();
        let mode = std::fs::metadata(sub.join("report.md")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(std::fs::metadata(&sub).unwrap().permissions().mode() & 0o777, 0o700);
        assert!(!sub.join("report.md.partial").exists());
        assert!(text(&sub, "report.md", "again").is_ok(), "a finished file is replaced whole");
    }
}
