//! The backup dir: listing complete backups, reading and rewriting their
//! manifests, making new ids, and cleaning `.partial` dirs of runs that died.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use rand::Rng;

use super::manifest::{self, Manifest};
use super::BackupError;

/// Suffix of a backup still being written.
pub const PARTIAL: &str = ".partial";
/// File in a `.partial` dir naming the pid of the run writing it.
pub const OWNER_FILE: &str = "owner.pid";
/// A `.partial` dir without an owner file is dead after this long.
const ORPHAN_GRACE: Duration = Duration::from_secs(60);

/// The backup dir from `[backup] dir`.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    pub fn new(dir: impl Into<PathBuf>) -> Store {
        Store { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `<dir>/<id>`.
    pub fn path(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// `<dir>/<id>/dump`, pg_dump's directory archive.
    pub fn dump_dir(&self, id: &str) -> PathBuf {
        self.path(id).join(manifest::DUMP_DIR)
    }

    /// Every complete backup, oldest first. An entry whose manifest cannot
    /// be read is returned as a problem, not skipped silently.
    pub fn list(&self) -> Result<(Vec<Manifest>, Vec<BackupError>), BackupError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok((Vec::new(), Vec::new()))
            }
            Err(source) => return Err(BackupError::Dir { path: self.dir.clone(), source }),
        };
        let mut found = Vec::new();
        let mut problems = Vec::new();
        for entry in entries.filter_map(|e| e.ok()) {
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with('.') || name.ends_with(PARTIAL) || !entry.path().is_dir() {
                continue;
            }
            match Manifest::read(&entry.path()) {
                Ok(m) => found.push(m),
                Err(e) => problems.push(e),
            }
        }
        found.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok((found, problems))
    }

    /// The manifest of backup `id`.
    pub fn load(&self, id: &str) -> Result<Manifest, BackupError> {
        let valid = !id.is_empty()
            && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            && !id.ends_with(PARTIAL);
        let dir = self.path(id);
        if !valid || !dir.join(manifest::FILE).is_file() {
            return Err(BackupError::NotFound { id: id.to_string(), dir: self.dir.clone() });
        }
        Manifest::read(&dir)
    }

    /// Backup `which`: an id, or `latest`, the newest verified dump (or
    /// pgBackRest restore point) of the database `client` is connected to
    /// (same system identifier and name).
    pub fn pick(
        &self,
        client: &mut postgres::Client,
        which: &str,
    ) -> Result<Manifest, BackupError> {
        if which != "latest" {
            return self.load(which);
        }
        let source = super::identity::source_of(client)?;
        let (all, _) = self.list()?;
        all.into_iter()
            .rev()
            .find(|m| {
                matches!(m.kind, manifest::Kind::Dump | manifest::Kind::RestorePoint)
                    && m.verified().is_some()
                    && m.same_database(source.system_identifier.as_deref(), &source.database)
            })
            .ok_or(BackupError::NoneVerified { database: source.database, dir: self.dir.clone() })
    }

    /// Rewrites the manifest of an existing backup (a verification result,
    /// a migration it guards).
    pub fn save(&self, m: &Manifest) -> Result<(), BackupError> {
        m.write(&self.path(&m.id))
    }

    /// Creates `<dir>/<id>.partial/` (and the backup dir, mode 0700) with
    /// this process's pid in it.
    pub fn begin(&self, id: &str) -> Result<PathBuf, BackupError> {
        let dir_err = |source| BackupError::Dir { path: self.dir.clone(), source };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(dir_err)?;
        crate::pg::export::ignored(&self.dir);
        // Backups hold every row: keep them out of the project's repository.
        let ignore = self.dir.join(".gitignore");
        if !ignore.exists() {
            use std::io::Write as _;
            use std::os::unix::fs::OpenOptionsExt as _;
            let _ = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&ignore)
                .and_then(|mut f| {
                    f.write_all(b"# Backstop backups hold every row of the database.\n*\n")
                });
        }
        let partial = self.dir.join(format!("{id}{PARTIAL}"));
        std::fs::DirBuilder::new().mode(0o700).create(&partial).map_err(|source| {
            if super::is_disk_full(&source) {
                BackupError::DiskFull { path: self.dir.clone() }
            } else {
                BackupError::Dir { path: self.dir.clone(), source }
            }
        })?;
        let owner = partial.join(OWNER_FILE);
        if let Err(source) = std::fs::write(&owner, std::process::id().to_string()) {
            let _ = std::fs::remove_dir_all(&partial);
            return Err(if super::is_disk_full(&source) {
                BackupError::DiskFull { path: self.dir.clone() }
            } else {
                BackupError::Dir { path: self.dir.clone(), source }
            });
        }
        Ok(partial)
    }

    /// [`Store::begin`] under a new id ([`new_id`]) that no backup, complete
    /// or not, has: backups taken at once (a rollout's wave) may draw the
    /// same id in the same second, and the one that comes second draws again.
    pub fn begin_new(&self, now: DateTime<Utc>) -> Result<(String, PathBuf), BackupError> {
        let mut tries = 0;
        loop {
            let id = new_id(now);
            tries += 1;
            if self.path(&id).exists() && tries < 16 {
                continue;
            }
            match self.begin(&id) {
                Err(BackupError::Dir { source, .. })
                    if source.kind() == std::io::ErrorKind::AlreadyExists && tries < 16 => {}
                other => return other.map(|partial| (id, partial)),
            }
        }
    }

    /// Renames `<id>.partial` to `<id>` once it is complete.
    pub fn commit(&self, id: &str, partial: &Path) -> Result<PathBuf, BackupError> {
        let _ = std::fs::remove_file(partial.join(OWNER_FILE));
        let done = self.path(id);
        std::fs::rename(partial, &done).map_err(BackupError::io(&done))?;
        manifest::sync_dir(&self.dir).map_err(BackupError::io(&self.dir))?;
        Ok(done)
    }

    /// `.partial` dirs whose owner process is gone.
    pub fn dead_partials(&self) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut dead = Vec::new();
        for entry in entries.filter_map(|e| e.ok()) {
            if !entry.file_name().to_string_lossy().ends_with(PARTIAL) {
                continue;
            }
            let path = entry.path();
            let owner = std::fs::read_to_string(path.join(OWNER_FILE));
            let is_dead = match owner.ok().and_then(|pid| pid.trim().parse::<i32>().ok()) {
                Some(pid) => !process_alive(pid),
                // Just created by a live run (its owner file not yet
                // written, or written half: a backup beside it in a
                // rollout's wave reads it then), or a dead one's: decide
                // by age.
                None => entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| SystemTime::now().duration_since(t).ok())
                    .is_none_or(|age| age > ORPHAN_GRACE),
            };
            if is_dead {
                dead.push(path);
            }
        }
        dead.sort();
        dead
    }

    /// Removes `.partial` dirs whose owner process is gone; returns them.
    pub fn clean_partials(&self) -> Vec<PathBuf> {
        self.dead_partials().into_iter().filter(|p| std::fs::remove_dir_all(p).is_ok()).collect()
    }

    /// Removes a complete backup's files.
    pub fn remove(&self, id: &str) -> Result<(), BackupError> {
        let path = self.path(id);
        std::fs::remove_dir_all(&path).map_err(BackupError::io(&path))
    }
}

/// A new backup id: UTC time to the second and four random hex digits,
/// so ids sort by age and two runs in one second do not collide.
pub fn new_id(now: DateTime<Utc>) -> String {
    format!("{}-{:04x}", now.format("%Y%m%dT%H%M%SZ"), rand::thread_rng().gen::<u16>())
}

fn process_alive(pid: i32) -> bool {
    use nix::errno::Errno;
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) => true,
        Err(Errno::ESRCH) => false,
        Err(_) => true,
    }
}

/// Removes a `.partial` dir unless the backup was committed: a failed or
/// interrupted create leaves nothing behind that looks like a backup.
pub(crate) struct PartialGuard {
    pub path: Option<PathBuf>,
}

impl Drop for PartialGuard {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            let _ = std::fs::remove_dir_all(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backups_begun_in_the_same_second_each_get_their_own_id() {
        // Regression: a rollout's wave takes backups at once, and two drew
        // the same id in the same second (16 random bits): the second
        // failed on the first one's folder.
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::new(tmp.path().join("backups"));
        let now = "2026-01-07T12:00:00Z".parse().unwrap();
        let mut ids = std::collections::BTreeSet::new();
        for _ in 0..600 {
            let (id, partial) = store.begin_new(now).unwrap();
            assert!(partial.is_dir() && ids.insert(id.clone()), "{id} twice");
        }
    }

    #[test]
    fn ids_sort_by_time_and_only_dead_partials_are_cleaned() {
        let id = new_id("2026-01-07T12:00:00Z".parse().unwrap());
        assert!(id.starts_with("20260107T120000Z-") && id.len() == 21, "{id}");

        let tmp = tempfile::tempdir().unwrap();
        let store = Store::new(tmp.path().join("backups"));
        assert!(store.list().unwrap().0.is_empty());
        let live = store.begin("live").unwrap();
        let dead = store.begin("dead").unwrap();
        std::fs::write(dead.join(OWNER_FILE), i32::MAX.to_string()).unwrap();
        // Regression: a backup beside another in a rollout's wave read its
        // owner file between its creation and its write, took the empty
        // file for a dead owner's and removed the live backup's folder.
        let half_written = store.begin("half_written").unwrap();
        std::fs::write(half_written.join(OWNER_FILE), "").unwrap();
        assert_eq!(store.clean_partials(), std::slice::from_ref(&dead));
        assert!(half_written.is_dir());
        assert!(live.is_dir() && !dead.exists());
        assert!(store.list().unwrap().0.is_empty(), "a .partial dir is never listed");
        assert!(matches!(store.load("live"), Err(BackupError::NotFound { .. })));
        assert!(matches!(store.load("../etc"), Err(BackupError::NotFound { .. })));
    }
}
