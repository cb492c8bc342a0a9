//! Finding PostgreSQL's own programs for a server of a given major version:
//! `initdb` and `pg_ctl` for throwaway clusters, `pg_dump` and `pg_restore`
//! for backups. One search, in this order: `BACKSTOP_PG_BIN` (one or more
//! directories separated by `:`; when set it is the whole search), the
//! directories of `[postgres] bin_dirs`, Debian's layout
//! (`/usr/lib/postgresql/<major>/bin`, newest first), `pg_config --bindir`,
//! then `PATH`. For a server of major N a directory of major N wins; client
//! tools of a newer major do where PostgreSQL allows it (a dump needs a
//! `pg_dump` of the server's major or newer); a throwaway copy of a
//! database runs on the same major as the database.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::RwLock;

/// Where a directory of programs was found, said in messages and by
/// `status --verbose`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// `BACKSTOP_PG_BIN`.
    Env,
    /// `[postgres] bin_dirs` in backstop.toml.
    Config,
    /// `/usr/lib/postgresql/<major>/bin`.
    Debian,
    /// `pg_config --bindir`.
    PgConfig,
    /// A directory of `PATH`.
    Path,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Origin::Env => "BACKSTOP_PG_BIN",
            Origin::Config => "[postgres] bin_dirs",
            Origin::Debian => "Debian's /usr/lib/postgresql",
            Origin::PgConfig => "pg_config --bindir",
            Origin::Path => "PATH",
        })
    }
}

/// Which programs a use needs from one directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kit {
    /// `initdb` and `pg_ctl`: a throwaway cluster.
    Server,
    /// `pg_dump` and `pg_restore`: a backup and its restore.
    Client,
}

impl Kit {
    /// The programs the directory must hold; the first one tells the version.
    pub fn tools(self) -> &'static [&'static str] {
        match self {
            Kit::Server => &["pg_ctl", "initdb"],
            Kit::Client => &["pg_dump", "pg_restore"],
        }
    }
}

impl fmt::Display for Kit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.tools().join(", ").as_str())
    }
}

/// A directory of PostgreSQL programs of one version.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BinDir {
    /// The real directory (symbolic links resolved: a cluster started as
    /// root runs its programs as `postgres`, who must reach them by a path
    /// it may enter).
    pub dir: PathBuf,
    /// `17.10`, from `<tool> --version`.
    pub version: String,
    pub major: u32,
    pub origin: Origin,
}

impl fmt::Display for BinDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} in {} ({})", self.version, self.dir.display(), self.origin)
    }
}

/// How near the major of the programs must be to the server's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Match {
    /// The same major: a throwaway copy of a database.
    Exact,
    /// The same major, else the nearest newer one: client tools.
    OrNewer,
}

/// Why no directory fits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Miss {
    /// No directory holds the programs at all.
    None { searched: String },
    /// Some do, none of a major that fits; `found` lists them.
    Major { major: u32, found: Vec<BinDir>, searched: String },
}

impl fmt::Display for Miss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Miss::None { searched } => write!(f, "none found; looked in {searched}"),
            Miss::Major { major, found, searched } => {
                let found: Vec<String> = found.iter().map(|b| b.to_string()).collect();
                write!(
                    f,
                    "none of PostgreSQL {major}; found {}; looked in {searched}",
                    found.join(", ")
                )
            }
        }
    }
}

/// `[postgres]` in backstop.toml.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PostgresSection {
    /// Directories of PostgreSQL programs (one per major, in any order),
    /// searched before Debian's layout, `pg_config` and `PATH`; relative
    /// ones are taken from the config file's folder.
    pub bin_dirs: Vec<PathBuf>,
}

/// `[postgres] bin_dirs` of the loaded config: set once by the command
/// that loaded it, read by every search after.
static CONFIG_DIRS: RwLock<Vec<PathBuf>> = RwLock::new(Vec::new());

/// Makes `[postgres] bin_dirs` part of every later search.
pub fn set_config_dirs(dirs: Vec<PathBuf>) {
    if let Ok(mut d) = CONFIG_DIRS.write() {
        *d = dirs;
    }
}

/// The places one search looks, in order.
#[derive(Debug, Clone)]
pub struct Search {
    places: Vec<(PathBuf, Origin)>,
    /// `BACKSTOP_PG_BIN` is set: its directories are the whole search.
    exclusive: bool,
}

impl Search {
    /// The places of this process's environment and config.
    pub fn new() -> Search {
        if let Some(dirs) = std::env::var_os("BACKSTOP_PG_BIN").filter(|d| !d.is_empty()) {
            let places = std::env::split_paths(&dirs)
                .filter(|d| !d.as_os_str().is_empty())
                .map(|d| (d, Origin::Env))
                .collect();
            return Search { places, exclusive: true };
        }
        let mut places: Vec<(PathBuf, Origin)> = Vec::new();
        if let Ok(dirs) = CONFIG_DIRS.read() {
            places.extend(dirs.iter().map(|d| (d.clone(), Origin::Config)));
        }
        places.extend(debian_dirs(Path::new("/usr/lib/postgresql")));
        if let Some(dir) = pg_config_bindir() {
            places.push((dir, Origin::PgConfig));
        }
        if let Some(paths) = std::env::var_os("PATH") {
            // An empty entry is not the working directory here.
            places.extend(
                std::env::split_paths(&paths)
                    .filter(|d| d.is_absolute())
                    .map(|d| (d, Origin::Path)),
            );
        }
        Search { places, exclusive: false }
    }

    /// A search of exactly these places (tests, and `BACKSTOP_PG_BIN`).
    pub fn of(places: Vec<(PathBuf, Origin)>) -> Search {
        let exclusive = places.iter().all(|(_, o)| *o == Origin::Env);
        Search { places, exclusive }
    }

    /// Whether `BACKSTOP_PG_BIN` is the whole search.
    pub fn is_exclusive(&self) -> bool {
        self.exclusive
    }

    /// The places, said for a message.
    pub fn searched(&self) -> String {
        if self.exclusive {
            let dirs: Vec<String> =
                self.places.iter().map(|(d, _)| d.display().to_string()).collect();
            return format!("BACKSTOP_PG_BIN={}", dirs.join(":"));
        }
        let mut out = Vec::new();
        let config: Vec<String> = self
            .places
            .iter()
            .filter(|(_, o)| *o == Origin::Config)
            .map(|(d, _)| d.display().to_string())
            .collect();
        if !config.is_empty() {
            out.push(format!("[postgres] bin_dirs ({})", config.join(", ")));
        }
        out.push("/usr/lib/postgresql/*/bin".to_string());
        out.push("pg_config --bindir".to_string());
        out.push("PATH".to_string());
        out.join(", ")
    }

    /// The program of `kit` that the one place searched lacks (a single
    /// `BACKSTOP_PG_BIN` folder, for its message); `None` with more places.
    pub fn lacking(&self, kit: Kit) -> Option<(PathBuf, &'static str)> {
        let [(dir, _)] = self.places.as_slice() else { return None };
        kit.tools().iter().find(|t| !dir.join(t).is_file()).map(|t| (dir.clone(), *t))
    }

    /// Every directory that holds the programs of `kit`, in search order,
    /// each once, with its version. A directory whose program does not
    /// answer `--version` with a PostgreSQL version is left out.
    pub fn all(&self, kit: Kit) -> Vec<BinDir> {
        self.dirs(kit).collect()
    }

    /// [`Search::all`], asking each directory's version only when the one
    /// before it is not what the caller wants: a search that stops at the
    /// first it wants runs no later program (`/usr/bin/pg_dump` on Debian
    /// is a Perl wrapper that starts the real one again).
    fn dirs(&self, kit: Kit) -> impl Iterator<Item = BinDir> + '_ {
        let mut seen: Vec<PathBuf> = Vec::new();
        self.places.iter().filter_map(move |(dir, origin)| {
            if !kit.tools().iter().all(|t| dir.join(t).is_file()) {
                return None;
            }
            let real = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone());
            if seen.contains(&real) {
                return None;
            }
            seen.push(real.clone());
            let version = tool_version(&dir.join(kit.tools()[0]))?;
            let major = major_of(&version)?;
            Some(BinDir { dir: real, version, major, origin: *origin })
        })
    }

    /// The first directory of `kit`, whatever its version: for a cluster
    /// that copies no server, and for tools before the server is known.
    pub fn first(&self, kit: Kit) -> Result<BinDir, Miss> {
        self.dirs(kit).next().ok_or_else(|| Miss::None { searched: self.searched() })
    }

    /// The directory of `kit` for a server of `major`: the first of that
    /// major, else (with [`Match::OrNewer`]) the first of the nearest newer.
    pub fn for_major(&self, kit: Kit, major: u32, how: Match) -> Result<BinDir, Miss> {
        let mut all = Vec::new();
        for b in self.dirs(kit) {
            if b.major == major {
                return Ok(b);
            }
            all.push(b);
        }
        pick(&all, major, how).cloned().ok_or_else(|| {
            if all.is_empty() {
                Miss::None { searched: self.searched() }
            } else {
                Miss::Major { major, found: all.clone(), searched: self.searched() }
            }
        })
    }
}

impl Default for Search {
    fn default() -> Self {
        Search::new()
    }
}

/// The best of `all` for a server of `major` (see [`Search::for_major`]).
pub fn pick(all: &[BinDir], major: u32, how: Match) -> Option<&BinDir> {
    if let Some(exact) = all.iter().find(|b| b.major == major) {
        return Some(exact);
    }
    if how == Match::Exact {
        return None;
    }
    let nearest = all.iter().filter(|b| b.major > major).map(|b| b.major).min()?;
    all.iter().find(|b| b.major == nearest)
}

/// The programs one use would run for a server, or why there are none.
#[derive(Debug, Clone)]
pub struct Choice {
    pub kit: Kit,
    /// For the kit's use: "backups" or "throwaway copies".
    pub used_for: &'static str,
    pub found: Result<BinDir, Miss>,
}

/// What a server of `server_version_num` is served with: its client
/// tools (same major or newer) and its throwaway clusters (same major).
/// `status --verbose` says these.
pub fn choices_for(server_version_num: i32) -> Vec<Choice> {
    let search = Search::new();
    let major = major_of_num(server_version_num);
    vec![
        Choice {
            kit: Kit::Client,
            used_for: "backups and restores",
            found: search.for_major(Kit::Client, major, Match::OrNewer),
        },
        Choice {
            kit: Kit::Server,
            used_for: "throwaway copies (rehearsals, test restores)",
            found: search.for_major(Kit::Server, major, Match::Exact),
        },
    ]
}

/// `/usr/lib/postgresql/<major>/bin` under `root`, newest major first.
fn debian_dirs(root: &Path) -> Vec<(PathBuf, Origin)> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut majors: Vec<u32> =
        entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect();
    majors.sort_unstable_by(|a, b| b.cmp(a));
    majors.into_iter().map(|m| (root.join(m.to_string()).join("bin"), Origin::Debian)).collect()
}

/// `pg_config --bindir`, asked once per process and `PATH`: a search runs
/// for every database of a rollout, and Debian's `pg_config` is a script.
fn pg_config_bindir() -> Option<PathBuf> {
    type Asked = std::collections::HashMap<Option<std::ffi::OsString>, Option<PathBuf>>;
    static ASKED: std::sync::OnceLock<std::sync::Mutex<Asked>> = std::sync::OnceLock::new();
    let path = std::env::var_os("PATH");
    // Held while asking: the threads of a wave ask once between them.
    let mut asked = ASKED.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    if let Some(known) = asked.get(&path) {
        return known.clone();
    }
    let found = Command::new("pg_config")
        .arg("--bindir")
        .stdin(Stdio::null())
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from);
    asked.insert(path, found.clone());
    found
}

/// The version a PostgreSQL program prints: `pg_dump (PostgreSQL) 15.18
/// (Debian 15.18-0+deb12u1)` gives `15.18`. Asked once per process for a
/// program file as it is (its size and time of change).
pub fn tool_version(tool: &Path) -> Option<String> {
    type Key = (PathBuf, u64, Option<std::time::SystemTime>);
    type Asked = std::collections::HashMap<Key, Option<String>>;
    static ASKED: std::sync::OnceLock<std::sync::Mutex<Asked>> = std::sync::OnceLock::new();
    let meta = std::fs::metadata(tool).ok()?;
    let key = (tool.to_path_buf(), meta.len(), meta.modified().ok());
    let mut asked = ASKED.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    if let Some(known) = asked.get(&key) {
        return known.clone();
    }
    let out = Command::new(tool).arg("--version").stdin(Stdio::null()).output().ok()?;
    let version = version_of(&String::from_utf8_lossy(&out.stdout));
    asked.insert(key, version.clone());
    version
}

/// The version in a `--version` line: the word after `(PostgreSQL)`.
pub fn version_of(text: &str) -> Option<String> {
    let mut words = text.split_whitespace();
    words.find(|w| *w == "(PostgreSQL)")?;
    let version = words.next()?;
    major_of(version)?;
    Some(version.to_string())
}

/// The major of a version: `15.18` → 15, `18beta1` → 18, `9.6.24` → 9.
pub fn major_of(version: &str) -> Option<u32> {
    let digits: String = version.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

/// `server_version_num` (`170010`) → major (17).
pub fn major_of_num(server_version_num: i32) -> u32 {
    (server_version_num / 10_000).max(0) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A folder with `tools`, each a script that prints `version` as
    /// PostgreSQL's programs do.
    fn fake(root: &Path, name: &str, version: &str, tools: &[&str]) -> PathBuf {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for t in tools {
            let path = dir.join(t);
            std::fs::write(&path, format!("#!/bin/sh\necho '{t} (PostgreSQL) {version}'\n"))
                .unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        dir
    }

    const ALL: &[&str] = &["pg_ctl", "initdb", "pg_dump", "pg_restore"];

    #[test]
    fn versions_are_read_as_postgresql_prints_them() {
        assert_eq!(
            version_of("pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n").as_deref(),
            Some("15.18")
        );
        assert_eq!(version_of("pg_ctl (PostgreSQL) 18beta1").as_deref(), Some("18beta1"));
        assert_eq!(version_of("something else 17.1"), None);
        assert_eq!(major_of("9.6.24"), Some(9));
        assert_eq!(major_of("18beta1"), Some(18));
        assert_eq!(major_of_num(170010), 17);
    }

    #[test]
    fn the_servers_major_wins_then_the_nearest_newer_for_client_tools() {
        let root = tempfile::tempdir().unwrap();
        let d18 = fake(root.path(), "a18", "18.6", ALL);
        let d15 = fake(root.path(), "b15", "15.18", ALL);
        let d17 = fake(root.path(), "c17", "17.10", ALL);
        let search = Search::of(vec![
            (d18.clone(), Origin::Env),
            (d15.clone(), Origin::Env),
            (d17.clone(), Origin::Env),
        ]);
        let real = |d: &Path| std::fs::canonicalize(d).unwrap();
        assert_eq!(search.first(Kit::Server).unwrap().dir, real(&d18));
        assert_eq!(search.for_major(Kit::Client, 15, Match::OrNewer).unwrap().dir, real(&d15));
        assert_eq!(search.for_major(Kit::Client, 17, Match::Exact).unwrap().dir, real(&d17));
        // 16 is not there: pg_dump 17 may dump it, a copy must not run on 17.
        let newer = search.for_major(Kit::Client, 16, Match::OrNewer).unwrap();
        assert_eq!((newer.major, newer.version.as_str()), (17, "17.10"));
        match search.for_major(Kit::Server, 16, Match::Exact).unwrap_err() {
            Miss::Major { major, found, .. } => {
                assert_eq!(major, 16);
                assert_eq!(found.len(), 3);
            }
            other => panic!("{other:?}"),
        }
        // Nothing older ever stands in for a newer server.
        let miss = search.for_major(Kit::Client, 19, Match::OrNewer).unwrap_err();
        assert!(miss.to_string().contains("none of PostgreSQL 19"), "{miss}");
        assert!(miss.to_string().contains("BACKSTOP_PG_BIN="), "{miss}");
    }

    #[test]
    fn a_folder_without_the_kits_programs_or_a_version_is_skipped() {
        let root = tempfile::tempdir().unwrap();
        let clients = fake(root.path(), "clients", "17.2", &["pg_dump", "pg_restore"]);
        let servers = fake(root.path(), "servers", "16.4", &["pg_ctl", "initdb"]);
        let liar = root.path().join("liar");
        std::fs::create_dir_all(&liar).unwrap();
        for t in ["pg_ctl", "initdb"] {
            std::fs::write(liar.join(t), "#!/bin/sh\necho hello\n").unwrap();
            std::fs::set_permissions(liar.join(t), std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let search = Search::of(vec![
            (liar.clone(), Origin::Config),
            (clients.clone(), Origin::Config),
            (servers.clone(), Origin::Path),
        ]);
        assert!(!search.is_exclusive());
        let server = search.first(Kit::Server).unwrap();
        assert_eq!((server.major, server.origin), (16, Origin::Path));
        let client = search.first(Kit::Client).unwrap();
        assert_eq!((client.major, client.origin), (17, Origin::Config));
        assert_eq!(search.lacking(Kit::Server), None, "more than one place");
        let one = Search::of(vec![(clients.clone(), Origin::Env)]);
        assert_eq!(one.lacking(Kit::Server), Some((clients, "pg_ctl")));
    }

    #[test]
    fn a_search_that_finds_what_it_wants_runs_no_later_program() {
        let root = tempfile::tempdir().unwrap();
        let wanted = fake(root.path(), "wanted", "17.2", ALL);
        // A later folder whose program says when it runs.
        let later = root.path().join("later");
        std::fs::create_dir_all(&later).unwrap();
        let ran = root.path().join("ran");
        for t in ALL {
            let script =
                format!("#!/bin/sh\ntouch '{}'\necho '{t} (PostgreSQL) 16.4'\n", ran.display());
            std::fs::write(later.join(t), script).unwrap();
            std::fs::set_permissions(later.join(t), std::fs::Permissions::from_mode(0o755))
                .unwrap();
        }
        let search = Search::of(vec![(wanted, Origin::Env), (later, Origin::Env)]);
        assert_eq!(search.first(Kit::Client).unwrap().major, 17);
        assert_eq!(search.for_major(Kit::Client, 17, Match::Exact).unwrap().major, 17);
        assert!(!ran.exists(), "a later folder's program ran");
        // Where the first is not the major asked for, the later ones are read.
        assert_eq!(search.for_major(Kit::Server, 16, Match::Exact).unwrap().major, 16);
        assert!(ran.exists());
    }

    #[test]
    fn a_linked_folder_is_found_once_by_its_real_path() {
        let root = tempfile::tempdir().unwrap();
        let real = fake(root.path(), "real", "18.6", ALL);
        let link = root.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let search = Search::of(vec![(link, Origin::Env), (real.clone(), Origin::Env)]);
        let all = search.all(Kit::Server);
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].dir, std::fs::canonicalize(&real).unwrap());
    }

    #[test]
    fn debians_folders_come_newest_first() {
        let root = tempfile::tempdir().unwrap();
        for m in ["15", "9.6", "17", "notes"] {
            std::fs::create_dir_all(root.path().join(m).join("bin")).unwrap();
        }
        let dirs: Vec<PathBuf> = debian_dirs(root.path()).into_iter().map(|(d, _)| d).collect();
        assert_eq!(dirs, vec![root.path().join("17/bin"), root.path().join("15/bin")]);
    }
}
