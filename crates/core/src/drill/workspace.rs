//! The drill's workspace: a private temp dir for the copy's own backup and
//! the exports of method C (users' rows, so mode 0700), gone whatever way
//! the drill ends. As a throwaway cluster does, it has a watcher process
//! waiting on a pipe only the drill holds: when the drill dies, even by
//! SIGKILL, the kernel closes the pipe and the watcher removes the dir.
//! Its name carries the drill's pid, so a dir whose watcher was killed too
//! is found and removed by the next drill.

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

const PREFIX: &str = "backstop-drill-";

/// A temp dir removed when dropped, or by its watcher when the drill dies.
pub(super) struct Workspace {
    dir: PathBuf,
    watcher: Option<(Child, ChildStdin)>,
}

impl Workspace {
    pub fn new() -> std::io::Result<Workspace> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("{PREFIX}{}-", std::process::id()))
            .tempdir()?
            .keep();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(r#"read line; [ "$line" = keep ] && exit 0; rm -rf "$0""#)
            .arg(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .inspect_err(|_| {
                let _ = std::fs::remove_dir_all(&dir);
            })?;
        let stdin = child.stdin.take().expect("stdin was piped");
        Ok(Workspace { dir, watcher: Some((child, stdin)) })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some((mut child, mut stdin)) = self.watcher.take() {
            let _ = stdin.write_all(b"keep\n");
            drop(stdin);
            let _ = child.wait();
        }
    }
}

/// Removes the workspaces of drills whose process is gone; the dirs removed.
pub(super) fn remove_stale() -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return Vec::new() };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(rest) = name.strip_prefix(PREFIX) else { continue };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        let gone = matches!(
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
            Err(nix::errno::Errno::ESRCH)
        );
        if gone && std::fs::remove_dir_all(entry.path()).is_ok() {
            removed.push(entry.path());
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workspace_is_private_and_gone_when_dropped() {
        let w = Workspace::new().unwrap();
        let dir = w.path().to_path_buf();
        std::fs::write(dir.join("rows.csv"), "1,a\n").unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        drop(w);
        assert!(!dir.exists());
    }

    #[test]
    fn a_dead_drills_workspace_is_removed_by_the_next() {
        let dir = std::env::temp_dir().join(format!("{PREFIX}{}-x", i32::MAX));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(remove_stale().contains(&dir));
        assert!(!dir.exists());
    }
}
