//! A fresh data directory kept once per set of server binaries, so that a
//! throwaway cluster is a copy of it rather than a new `initdb` (which
//! writes and syncs the catalogs of three databases: most of a small
//! cluster's start). The first cluster of a set of binaries runs `initdb`
//! and leaves a copy of its untouched data directory in the cache
//! (`$BACKSTOP_CACHE_DIR`, else `$XDG_CACHE_HOME/backstop`, else
//! `~/.cache/backstop`, under `initdb/`), written to a temporary name and
//! renamed; a copy that is not whole, or of another version, is not used.
//! The superuser's password is not in it: each cluster sets its own.

use std::fs;
use std::path::{Path, PathBuf};

/// Where the kept data directories are; `None` when there is no home.
fn cache_root() -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = var("BACKSTOP_CACHE_DIR") {
        return Some(dir.join("initdb"));
    }
    let base = var("XDG_CACHE_HOME").or_else(|| var("HOME").map(|h| h.join(".cache")))?;
    Some(base.join("backstop").join("initdb"))
}

/// Which binaries a kept data directory is for: their folder, version
/// (`15.18`) and major.
pub(super) struct Binaries<'a> {
    pub dir: &'a Path,
    pub version: &'a str,
    pub major: u32,
}

/// The kept data directory for `bin` run with `args`: one per binaries'
/// place, version and `initdb` options.
fn kept(bin: &Binaries<'_>, args: &[String]) -> Option<PathBuf> {
    let mut h = blake3::Hasher::new();
    h.update(bin.dir.to_string_lossy().as_bytes());
    h.update(bin.version.as_bytes());
    for a in args {
        h.update(a.as_bytes());
        h.update(&[0]);
    }
    let key = h.finalize().to_hex()[..24].to_string();
    Some(cache_root()?.join(format!("{}-{key}", bin.major)))
}

/// Whether `dir` is a whole data directory of `major`.
fn whole(dir: &Path, major: u32) -> bool {
    let version = fs::read_to_string(dir.join("PG_VERSION")).unwrap_or_default();
    version.trim() == major.to_string() && dir.join("global/pg_control").is_file()
}

/// Copies the kept data directory for `bin` and `args` to `data` (which
/// does not exist yet); `false` when there is none to copy.
pub(super) fn copy_kept(bin: &Binaries<'_>, args: &[String], data: &Path) -> bool {
    let Some(from) = kept(bin, args).filter(|d| whole(d, bin.major)) else { return false };
    match copy_tree(&from, data) {
        Ok(()) => true,
        Err(_) => {
            let _ = fs::remove_dir_all(data);
            false
        }
    }
}

/// Keeps a copy of `data`, fresh from `initdb`, for the next clusters of
/// `bin` and `args`. Best effort: a cache that cannot be written only
/// means the next cluster runs `initdb` too.
pub(super) fn keep(bin: &Binaries<'_>, args: &[String], data: &Path) {
    let Some(to) = kept(bin, args) else { return };
    if whole(&to, bin.major) {
        return;
    }
    let Some(parent) = to.parent() else { return };
    if fs::create_dir_all(parent).is_err() {
        return;
    }
    let partial = parent.join(format!(".partial-{}", std::process::id()));
    let _ = fs::remove_dir_all(&partial);
    if copy_tree(data, &partial).is_err() || fs::rename(&partial, &to).is_err() {
        let _ = fs::remove_dir_all(&partial);
    }
}

/// `from` copied to `to`, files with their permissions.
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    fs::create_dir(to)?;
    fs::set_permissions(to, fs::metadata(from)?.permissions())?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// How many copies of targets' schemas are kept at once; older ones go.
const COPIES_KEPT: usize = 2;

/// The folder kept copies live in, beside the clusters of `base` (the
/// same file system: a copy is moved, never copied).
const KEPT_DIR: &str = "backstop-kept-copies";

fn kept_place(base: &Path, key: &str, major: u32) -> PathBuf {
    base.join(KEPT_DIR).join(format!("{major}-{key}"))
}

/// Moves the data directory kept under `key` in `base` to `data` (which
/// does not exist yet): it is this cluster's from then on. `false` when
/// none is kept.
pub(super) fn take_kept_copy(base: &Path, key: &str, major: u32, data: &Path) -> bool {
    let from = kept_place(base, key, major);
    whole(&from, major) && fs::rename(&from, data).is_ok()
}

/// Keeps `data` (a cluster shut down cleanly) under `key` in `base` by
/// moving it there, with only the WAL segment `wal` that holds its last
/// checkpoint (the others are spent or spares); the oldest kept copies
/// beyond [`COPIES_KEPT`] go. Best effort: a copy that cannot be kept
/// only means the next run makes its own.
pub(super) fn keep_copy(data: &Path, base: &Path, key: &str, major: u32, wal: &str) {
    let to = kept_place(base, key, major);
    let Some(parent) = to.parent() else { return };
    let pruned = fs::read_dir(data.join("pg_wal")).and_then(|entries| {
        for entry in entries {
            let entry = entry?;
            if entry.file_type()?.is_file() && entry.file_name() != wal {
                fs::remove_file(entry.path())?;
            }
        }
        Ok(())
    });
    if pruned.is_err() || fs::create_dir_all(parent).is_err() {
        return;
    }
    discard(&to);
    if fs::rename(data, &to).is_err() {
        return;
    }
    // The newest is the last to go.
    let _ = fs::File::open(&to).and_then(|f| f.set_modified(std::time::SystemTime::now()));
    let mut kept: Vec<(std::time::SystemTime, PathBuf)> = fs::read_dir(parent)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    kept.sort();
    for (_, old) in kept.iter().rev().skip(COPIES_KEPT) {
        discard(old);
    }
}

/// Removes a kept copy that another run may be taking at this moment:
/// moved aside first (a rename is whole: either that run takes it, or it
/// is gone), then deleted.
fn discard(dir: &Path) {
    let Some(parent) = dir.parent() else { return };
    let aside = parent.join(format!(".gone-{}-{:x}", std::process::id(), rand::random::<u32>()));
    if fs::rename(dir, &aside).is_ok() {
        let _ = fs::remove_dir_all(&aside);
    }
}
