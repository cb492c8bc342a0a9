//! Saying why a migration's file cannot be read, and what to do about it:
//! a symlink that leads nowhere, to a folder or round in a loop, a folder
//! where the file belongs, a file this process may not read. The layouts
//! keep such a file in their migration (never skip it), so that it is that
//! migration's problem, named with its path.

use std::path::Path;

/// What is wrong with `path`, which could not be read (`error`), and the
/// fix; the path itself is said by the problem that carries this.
pub(super) fn why(path: &Path, error: &std::io::Error) -> String {
    let is_link = path.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink());
    if !is_link {
        if path.is_dir() {
            return "a folder, not a file; the migration's SQL belongs in a file of this name"
                .into();
        }
        return format!("cannot be read ({error}); check that this user may read it");
    }
    let target =
        std::fs::read_link(path).map_or_else(|_| "?".to_string(), |t| t.display().to_string());
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => format!(
            "a symlink to the folder {target}, not to a file; point it at the migration's SQL \
             file, or replace the link with the file"
        ),
        Err(e) if e.raw_os_error() == Some(nix::errno::Errno::ELOOP as i32) => format!(
            "a symlink that leads round in a loop (to {target}); point it at the migration's \
             SQL file, or replace the link with the file"
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => format!(
            "a symlink to {target}, which does not exist; restore {target}, or replace the \
             link with the migration's SQL file"
        ),
        _ => format!(
            "a symlink to {target}, which cannot be read ({error}); check that this user may \
             read it"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn why_of(path: &Path) -> String {
        let error = std::fs::read(path).expect_err("cannot be read");
        why(path, &error)
    }

    #[test]
    fn each_way_a_symlink_cannot_be_read_is_told_apart() {
        let tmp = tempfile::tempdir().unwrap();
        let at = |name: &str| tmp.path().join(name);
        std::fs::create_dir(at("folder")).unwrap();
        std::os::unix::fs::symlink("gone.sql", at("dangling.sql")).unwrap();
        std::os::unix::fs::symlink("folder", at("to_folder.sql")).unwrap();
        std::os::unix::fs::symlink("loop_b.sql", at("loop_a.sql")).unwrap();
        std::os::unix::fs::symlink("loop_a.sql", at("loop_b.sql")).unwrap();
        assert!(why_of(&at("dangling.sql")).starts_with("a symlink to gone.sql, which does not"));
        assert!(why_of(&at("to_folder.sql")).starts_with("a symlink to the folder folder,"));
        assert!(why_of(&at("loop_a.sql")).starts_with("a symlink that leads round in a loop"));
        assert!(why_of(&at("folder")).starts_with("a folder, not a file"));
    }
}
