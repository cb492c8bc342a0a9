//! `manifest.json`: what a backup holds and how it was proven: the source
//! database and server, the tools, every file with its BLAKE3 checksum,
//! row counts and the schema fingerprint from the dump's own snapshot, and
//! the results of each verification.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::config::VerifyLevel;
use super::BackupError;

/// The manifest's file name inside a backup's directory.
pub const FILE: &str = "manifest.json";
/// The folder pg_dump writes into, inside a backup's directory.
pub const DUMP_DIR: &str = "dump";

/// What a backup is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A pg_dump directory archive.
    Dump,
    /// A whole database kept under another name on the same server: the
    /// pre-restore snapshot a restore leaves behind.
    Database,
    /// A named restore point in a pgBackRest stanza's archived WAL: a
    /// point-in-time recovery to it is the backup.
    #[serde(rename = "restore_point")]
    RestorePoint,
    /// A whole data directory a physical restore replaced, kept beside the
    /// server's: the cluster as it was just before the restore. Putting
    /// it back is the restore's swap alone.
    #[serde(rename = "data_directory")]
    DataDirectory,
}

impl Kind {
    /// The engine that made a backup of this kind: `pg_dump` or
    /// `pgbackrest`.
    pub fn engine(self) -> &'static str {
        match self {
            Kind::Dump | Kind::Database => "pg_dump",
            Kind::RestorePoint | Kind::DataDirectory => "pgbackrest",
        }
    }
}

/// One file of the archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Relative to the backup's directory (`dump/toc.dat`).
    pub path: String,
    pub size: u64,
    pub blake3: String,
}

/// An extension installed in the source database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extension {
    pub name: String,
    pub version: String,
    /// The role owning most of what the extension made (a hosted
    /// platform's superuser, say): a test restore gives its objects back
    /// to that role. Not recorded by backups before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// The outcome of one verification.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Check {
    pub at: DateTime<Utc>,
    pub ok: bool,
    /// What was checked, or what was wrong.
    pub detail: String,
}

/// Every verification a backup went through, the latest of each kind.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Verification {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checksums: Option<Check>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restore: Option<Check>,
}

/// The database as the dump found it, so that a later `migrate` can tell
/// whether anything happened since and the backup still holds the state
/// it is about to change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbState {
    /// Versions in `backstop.applied`, from the dump's snapshot.
    pub applied: Vec<String>,
    /// Rows inserted, updated and deleted in user tables since the server's
    /// statistics began (`pg_stat_user_tables`), read just before the
    /// dump's snapshot.
    pub writes: i64,
    /// A hash of the user tables' storage files (`relfilenode`): TRUNCATE
    /// and rewrites change it without counting as written rows.
    pub storage: String,
    /// A hash of the user sequences' positions, as older versions kept
    /// them (see `sequence_values`, which replaces it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequences: Option<String>,
    /// Where each user sequence stood (`last_value`; none when never used
    /// or not readable): `nextval()` writes no row, and a restore of an
    /// older position would hand out ids again. Absent in manifests of
    /// older versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence_values: Option<std::collections::BTreeMap<String, Option<i64>>>,
    /// The id of the newest event in `backstop.events` (0 without the
    /// log): a migration applied and reverted since leaves the schema and
    /// the counters as they were, and is still a change the backup does
    /// not hold. Absent in manifests of older versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_event: Option<i64>,
}

/// Where a restore point is and what brings it back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestorePoint {
    /// The name given to `pg_create_restore_point`: `--type=name --target=…`.
    pub name: String,
    /// Its WAL position.
    pub lsn: String,
    /// The WAL segment that holds it, archived before the gate passed.
    pub wal_file: String,
    pub stanza: String,
    /// The newest backup in the repository when the point was made: the
    /// one a restore starts from.
    pub backup_label: String,
    pub backup_stopped_at: DateTime<Utc>,
    /// How pgBackRest was run for it (`[backup] pgbackrest_command`).
    #[serde(default)]
    pub command: Vec<String>,
    /// pgBackRest's config file, if `[backup] config` named one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<PathBuf>,
    /// What the point holds, read on its own snapshot (points made before
    /// Backstop recorded it have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<PointState>,
}

/// The state a restore point marks: what a recovery to it must show, and
/// the cluster's databases as they were, to tell later whether a restore
/// of the whole cluster would undo writes to another one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PointState {
    /// The protected tables' row counts and checksums at the point.
    pub protected: Vec<crate::pg::checksum::TableChecksum>,
    /// Versions in `backstop.applied` at the point.
    pub applied: Vec<String>,
    /// Every database's write counters just before the point.
    pub databases: Vec<DatabaseWrites>,
    /// How long writes to the protected tables waited for the point.
    pub locked_ms: u64,
}

/// A data directory a physical restore replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptDataDir {
    /// Where it is kept (`<data_dir>.pre-restore-<restore id>`).
    pub path: PathBuf,
    /// The server's data directory it was, and goes back to.
    pub data_dir: PathBuf,
    /// The restore that set it aside.
    pub restore_id: String,
    /// Every database's write counters once the restored server ran: a
    /// swap back undoes whatever was written since, in every database.
    pub databases: Vec<DatabaseWrites>,
}

/// One database's rows written since its statistics began
/// (`pg_stat_database`: inserted + updated + deleted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseWrites {
    pub name: String,
    pub writes: i64,
    /// When its statistics began, if they were ever reset.
    pub stats_reset: Option<String>,
}

/// The manifest of one backup.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub id: String,
    pub kind: Kind,
    pub label: Option<String>,
    pub created_at: DateTime<Utc>,
    /// The database's name.
    pub database: String,
    /// `pg_control_system()`'s system identifier: with the name, what
    /// makes two databases "the same".
    pub system_identifier: Option<String>,
    pub server_version: String,
    pub server_version_num: i32,
    pub encoding: String,
    pub pg_dump_version: Option<String>,
    pub compression: Option<String>,
    pub jobs: Option<usize>,
    pub size_bytes: u64,
    pub files: Vec<FileEntry>,
    /// Exact row counts per table (`schema.table`), from the dump's snapshot.
    pub row_counts: BTreeMap<String, i64>,
    pub schema_fingerprint: String,
    /// The fingerprint of each schema's part, so that a restore of some
    /// schemas can be checked (backups made before Backstop recorded it
    /// have none).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub schema_fingerprints: BTreeMap<String, String>,
    /// Tables (`schema.table`) the dump leaves out: the role that took it
    /// may not read them, nor change them (`pg::unreadable`). A restore
    /// leaves them as they are, and a swap, which would lose them, is
    /// refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub left_out: Vec<String>,
    /// Roles of the source server, so a test restore can create them.
    pub roles: Vec<String>,
    /// The database's own settings (`ALTER DATABASE … SET`, as
    /// `name=value`), which a dump does not hold: a restore in place
    /// leaves the settings of the day, and says which differ.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub database_settings: Vec<String>,
    pub extensions: Vec<Extension>,
    pub duration_ms: u64,
    /// Migration versions this backup was taken or reused for.
    #[serde(default)]
    pub guards: Vec<String>,
    /// What the database looked like when it was taken (backups made before
    /// Backstop recorded it have none, and are not reused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<DbState>,
    /// For [`Kind::Database`]: the database that holds the snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_database: Option<String>,
    /// For [`Kind::RestorePoint`]: where the point is and what restores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_point: Option<RestorePoint>,
    /// For [`Kind::DataDirectory`]: where it is kept and what it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept_data_dir: Option<KeptDataDir>,
    #[serde(default)]
    pub verification: Verification,
}

impl Manifest {
    /// The version that wrote the archive, as a `server_version_num`: the
    /// pg_dump's major (a pg_restore needs that major or newer to read
    /// it), else the server's.
    pub fn written_by_num(&self) -> i32 {
        let dump = self
            .pg_dump_version
            .as_deref()
            .and_then(crate::pg::bins::major_of)
            .map_or(0, |m| m as i32 * 10_000);
        dump.max(self.server_version_num)
    }

    /// How far this backup is verified: `None` when a check failed or none
    /// ran. A failed checksum check outweighs an older passed restore.
    pub fn verified(&self) -> Option<VerifyLevel> {
        let v = &self.verification;
        if v.checksums.as_ref().is_some_and(|c| !c.ok) {
            return None;
        }
        match (&v.checksums, &v.restore) {
            (_, Some(r)) if r.ok => Some(VerifyLevel::Restore),
            (Some(c), _) if c.ok => Some(VerifyLevel::Checksums),
            _ => None,
        }
    }

    /// Whether this and `other` describe the same database (system
    /// identifier and name; the name alone when a system identifier is
    /// unknown on either side).
    pub fn same_database(&self, system_identifier: Option<&str>, database: &str) -> bool {
        self.database == database
            && match (self.system_identifier.as_deref(), system_identifier) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }

    /// The age of the backup at `now`.
    pub fn age(&self, now: DateTime<Utc>) -> chrono::Duration {
        now - self.created_at
    }

    /// Reads `<dir>/manifest.json`.
    pub fn read(dir: &Path) -> Result<Manifest, BackupError> {
        let path = dir.join(FILE);
        let text = std::fs::read_to_string(&path).map_err(BackupError::io(&path))?;
        serde_json::from_str(&text)
            .map_err(|e| BackupError::BadManifest { path, reason: e.to_string() })
    }

    /// Writes `<dir>/manifest.json` atomically (a temp file renamed over
    /// it), mode 0600, synced.
    pub fn write(&self, dir: &Path) -> Result<(), BackupError> {
        let path = dir.join(FILE);
        let tmp = dir.join(format!("{FILE}.tmp"));
        let mut text = serde_json::to_string_pretty(self).expect("a manifest serializes");
        text.push('\n');
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            sync_dir(dir)
        };
        write().map_err(|source| {
            let _ = std::fs::remove_file(&tmp);
            if super::is_disk_full(&source) {
                BackupError::DiskFull { path: dir.to_path_buf() }
            } else {
                BackupError::Io { path, source }
            }
        })
    }
}

/// Flushes a directory's entries (a rename or new file in it) to disk.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Every file under `root/sub` with its size and BLAKE3 checksum, sorted by
/// path; also sets each file to mode 0600 and each folder to 0700.
pub fn checksum_files(root: &Path, sub: &str) -> Result<Vec<FileEntry>, BackupError> {
    let mut files = Vec::new();
    walk(root, &root.join(sub), &mut files)?;
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<FileEntry>) -> Result<(), BackupError> {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(BackupError::io(dir))?;
    for entry in std::fs::read_dir(dir).map_err(BackupError::io(dir))? {
        let entry = entry.map_err(BackupError::io(dir))?;
        let path = entry.path();
        if entry.file_type().map_err(BackupError::io(&path))?.is_dir() {
            walk(root, &path, out)?;
            continue;
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(BackupError::io(&path))?;
        let (size, blake3) = hash_file(&path)?;
        let rel = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().to_string();
        out.push(FileEntry { path: rel, size, blake3 });
    }
    Ok(())
}

/// The size and BLAKE3 hash of one file.
pub fn hash_file(path: &Path) -> Result<(u64, String), BackupError> {
    let mut f = std::fs::File::open(path).map_err(BackupError::io(path))?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(BackupError::io(path))?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((size, hasher.finalize().to_hex().to_string()))
}

/// Compares the files under `root` with `expected`: every listed file must
/// be there with its size and checksum, and no other file may be.
pub fn compare_files(root: &Path, expected: &[FileEntry]) -> Vec<String> {
    let mut problems = Vec::new();
    for f in expected {
        let path = root.join(&f.path);
        match hash_file(&path) {
            Err(_) => problems.push(format!("{} is missing or unreadable", f.path)),
            Ok((size, _)) if size != f.size => {
                problems.push(format!("{} has {size} bytes, the manifest says {}", f.path, f.size))
            }
            Ok((_, hash)) if hash != f.blake3 => {
                problems.push(format!("{} does not match its BLAKE3 checksum", f.path))
            }
            Ok(_) => {}
        }
    }
    let mut present = Vec::new();
    collect(root, &root.join(DUMP_DIR), &mut present);
    for p in present {
        if !expected.iter().any(|f| f.path == p) {
            problems.push(format!("{p} is not in the manifest"));
        }
    }
    problems
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.filter_map(|e| e.ok()) {
        let path: PathBuf = e.path();
        if path.is_dir() {
            collect(root, &path, out);
        } else {
            out.push(path.strip_prefix(root).unwrap_or(&path).to_string_lossy().to_string());
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn manifest() -> Manifest {
        Manifest {
            format: 1,
            id: "20260101T000000Z-abcd".into(),
            kind: Kind::Dump,
            label: None,
            created_at: Utc::now(),
            database: "app".into(),
            system_identifier: Some("7".into()),
            server_version: "15.8".into(),
            server_version_num: 150008,
            encoding: "UTF8".into(),
            pg_dump_version: Some("15.8".into()),
            compression: Some("gzip".into()),
            jobs: Some(2),
            size_bytes: 0,
            files: vec![],
            row_counts: BTreeMap::new(),
            schema_fingerprint: "f".into(),
            schema_fingerprints: BTreeMap::new(),
            left_out: Vec::new(),
            roles: vec![],
            database_settings: vec![],
            extensions: vec![],
            duration_ms: 1,
            guards: vec![],
            state: None,
            snapshot_database: None,
            restore_point: None,
            kept_data_dir: None,
            verification: Verification::default(),
        }
    }

    #[test]
    fn a_failed_checksum_check_outweighs_an_old_restore() {
        let mut m = manifest();
        assert_eq!(m.verified(), None);
        let check = |ok| Some(Check { at: Utc::now(), ok, detail: String::new() });
        m.verification.checksums = check(true);
        assert_eq!(m.verified(), Some(VerifyLevel::Checksums));
        m.verification.restore = check(true);
        assert_eq!(m.verified(), Some(VerifyLevel::Restore));
        m.verification.checksums = check(false);
        assert_eq!(m.verified(), None);
    }

    #[test]
    fn manifests_round_trip_and_files_are_compared_byte_for_byte() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join(DUMP_DIR)).unwrap();
        std::fs::write(tmp.path().join("dump/toc.dat"), b"hello").unwrap();
        let files = checksum_files(tmp.path(), DUMP_DIR).unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].path, "dump/toc.dat");
        let mode = std::fs::metadata(tmp.path().join("dump/toc.dat")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let mut m = manifest();
        m.files = files.clone();
        m.write(tmp.path()).unwrap();
        assert_eq!(Manifest::read(tmp.path()).unwrap().files, files);
        assert!(compare_files(tmp.path(), &files).is_empty());
        std::fs::write(tmp.path().join("dump/toc.dat"), b"hellp").unwrap();
        assert_eq!(
            compare_files(tmp.path(), &files),
            ["dump/toc.dat does not match its BLAKE3 checksum"]
        );
        std::fs::write(tmp.path().join("dump/extra.dat"), b"x").unwrap();
        assert_eq!(compare_files(tmp.path(), &files).len(), 2);
    }
}
