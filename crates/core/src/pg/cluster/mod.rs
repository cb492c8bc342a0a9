//! Throwaway PostgreSQL clusters: `initdb` + `pg_ctl` from the local server
//! binaries into a temp dir, on a free port, gone when dropped. Used by the
//! demo, rehearsals, backup checks and every test.
//!
//! A cluster never outlives its owner: a small watcher process waits on a
//! pipe that only the owner holds and stops the server and deletes the dir
//! when the pipe closes (also after SIGKILL or a panic that aborts), and
//! every start removes clusters whose recorded owner pid is dead.

use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use nix::unistd::{Gid, Uid, User};
use rand::distributions::Alphanumeric;
use rand::Rng;

use crate::pg::bins::{BinDir, Kit, Match, Miss, Origin, Search};
use crate::pg::preload::{Preload, CONF_FILE};
use crate::pg::template::Binaries;

mod kept;
mod life;
mod restored;
mod sessions;

const DIR_PREFIX: &str = "backstop-cluster-";

/// Where a throwaway cluster's own settings start in `postgresql.conf`.
const SETTINGS_MARK: &str = "\n# backstop throwaway cluster\n";
const OWNER_FILE: &str = "owner.pid";
const SUPERUSER: &str = "postgres";

/// What went wrong starting or driving a throwaway cluster. All of these are
/// environment errors (exit 3).
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(
        "PostgreSQL server binaries (initdb, pg_ctl) not found; looked in {searched}; \
         install them (`apt-get install postgresql`) or name the directory that holds them in \
         BACKSTOP_PG_BIN or [postgres] bin_dirs"
    )]
    BinariesMissing { searched: String },
    #[error(
        "BACKSTOP_PG_BIN={dir} does not contain `{tool}`; point it at the directory with initdb \
         and pg_ctl, or install them (`apt-get install postgresql`) and unset it"
    )]
    BadBinDir { dir: PathBuf, tool: &'static str },
    #[error(
        "a throwaway copy of a PostgreSQL {major} database needs PostgreSQL {major}'s server \
         binaries (initdb, pg_ctl): {miss}; install PostgreSQL {major} or name its bin directory \
         in BACKSTOP_PG_BIN or [postgres] bin_dirs"
    )]
    NoMajor { major: u32, miss: String },
    #[error(
        "running as root, but there is no `postgres` user to own the throwaway cluster \
         (PostgreSQL refuses to run as root); create one with `useradd postgres` or run as a normal user"
    )]
    NoPostgresUser,
    #[error("could not prepare the cluster directory {path}")]
    Dir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the `postgres` user may not run {tool} (a cluster started as root runs as `postgres`); \
         put PostgreSQL's binaries where it may enter (not under a private home folder), or \
         run as a normal user"
    )]
    Unreachable { tool: String },
    #[error("could not run {tool}")]
    Spawn {
        tool: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{tool} failed: {output}")]
    Tool { tool: String, output: String },
    #[error("could not connect to the throwaway cluster")]
    Connect(#[source] postgres::Error),
    #[error(
        "the target's server preloads {libraries} (shared_preload_libraries), which PostgreSQL \
         {major} in {dir} cannot load, so no copy of it can run here: install it ({how}), or name \
         a bin directory whose PostgreSQL {major} has it in BACKSTOP_PG_BIN or [postgres] \
         bin_dirs; nothing ran"
    )]
    PreloadMissing { libraries: String, major: u32, dir: PathBuf, how: String },
}

/// The directory of the local PostgreSQL server binaries and their major version.
#[derive(Debug, Clone)]
pub struct PgBin {
    pub dir: PathBuf,
    pub major: u32,
    /// `17.10`, from `pg_ctl --version`.
    pub version: String,
    /// Where the search found it.
    pub origin: Origin,
}

impl PgBin {
    /// The first server binaries of the search ([`crate::pg::bins`]), of
    /// whatever major: for a cluster that copies no database.
    pub fn find() -> Result<PgBin, ClusterError> {
        let search = Search::new();
        match search.first(Kit::Server) {
            Ok(b) => Ok(PgBin::from(b)),
            Err(miss) => Err(PgBin::missing(&search, miss)),
        }
    }

    /// The server binaries for a copy of a PostgreSQL `major` database:
    /// of that major, or with [`Match::OrNewer`] the nearest newer one.
    pub fn for_major(major: u32, how: Match) -> Result<PgBin, ClusterError> {
        let search = Search::new();
        match search.for_major(Kit::Server, major, how) {
            Ok(b) => Ok(PgBin::from(b)),
            Err(miss @ Miss::None { .. }) => Err(PgBin::missing(&search, miss)),
            Err(miss) => Err(ClusterError::NoMajor { major, miss: miss.to_string() }),
        }
    }

    fn missing(search: &Search, miss: Miss) -> ClusterError {
        if search.is_exclusive() {
            if let Some((dir, tool)) = search.lacking(Kit::Server) {
                return ClusterError::BadBinDir { dir, tool };
            }
        }
        let searched = match miss {
            Miss::None { searched } | Miss::Major { searched, .. } => searched,
        };
        ClusterError::BinariesMissing { searched }
    }

    /// The path of one of the server tools (`initdb`, `pg_ctl`, `pg_dump`...).
    pub fn tool(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl From<BinDir> for PgBin {
    fn from(b: BinDir) -> PgBin {
        PgBin { dir: b.dir, major: b.major, version: b.version, origin: b.origin }
    }
}

/// The account the server runs as: the `postgres` user when we are root.
#[derive(Debug, Clone, Copy)]
struct RunAs {
    uid: Uid,
    gid: Gid,
}

fn run_as() -> Result<Option<RunAs>, ClusterError> {
    if !Uid::effective().is_root() {
        return Ok(None);
    }
    let user = User::from_name(SUPERUSER).ok().flatten().ok_or(ClusterError::NoPostgresUser)?;
    Ok(Some(RunAs { uid: user.uid, gid: user.gid }))
}

/// A private PostgreSQL server in a temp dir, stopped and deleted on drop.
pub struct Cluster {
    bin: PgBin,
    dir: PathBuf,
    port: u16,
    password: String,
    run_as: Option<RunAs>,
    watcher: Option<(Child, ChildStdin)>,
    running: bool,
    /// TCP takes TLS only; [`Cluster::connect`] uses the socket.
    tls_only: bool,
    /// Restored from a backup: starting waits for the recovery to end.
    recovering: bool,
    /// What the server loads at its start, and the database its settings
    /// name now (`pg::preload`).
    preload: Option<(Preload, String)>,
    /// The role Backstop's own sessions log in as (`postgres`, unless a
    /// copy needed the name: [`Cluster::free_role_name`]).
    superuser: String,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("dir", &self.dir).field("port", &self.port).finish()
    }
}

impl Cluster {
    /// Creates and starts a new cluster with the local binaries.
    pub fn start() -> Result<Cluster, ClusterError> {
        Cluster::start_with(PgBin::find()?)
    }

    /// Creates and starts a new cluster with the given binaries.
    pub fn start_with(bin: PgBin) -> Result<Cluster, ClusterError> {
        Cluster::launch(bin, None, None, None)
    }

    /// The same for a cluster expected to hold about `bytes` (a schema
    /// without rows, a small copy): placed on a memory filesystem when
    /// there is room to spare (see [`base_dir`]), where the thousands of
    /// files a schema makes cost no disk writes.
    pub fn start_sized(bin: PgBin, bytes: u64) -> Result<Cluster, ClusterError> {
        Cluster::launch(bin, None, Some(bytes), None)
    }

    /// The same for a copy of a server that preloads `preload`, its
    /// settings pointed at the copy's database `database`. A library the
    /// binaries cannot load is named with how to provide it before
    /// anything starts.
    pub fn start_preloaded(
        bin: PgBin,
        bytes: u64,
        preload: &Preload,
        database: &str,
    ) -> Result<Cluster, ClusterError> {
        if preload.is_empty() {
            return Cluster::start_sized(bin, bytes);
        }
        Cluster::launch(bin, None, Some(bytes), Some((preload.clone(), database.to_string())))
    }

    /// [`Cluster::start_with`] for a copy of a server that preloads
    /// `preload` (its settings pointed at the copy's database `database`).
    pub fn start_with_preload(
        bin: PgBin,
        preload: &Preload,
        database: &str,
    ) -> Result<Cluster, ClusterError> {
        if preload.is_empty() {
            return Cluster::start_with(bin);
        }
        Cluster::launch(bin, None, None, Some((preload.clone(), database.to_string())))
    }

    /// What the cluster preloads (empty for none).
    pub fn preload(&self) -> Preload {
        self.preload.as_ref().map(|(p, _)| p.clone()).unwrap_or_default()
    }

    /// Points the preloaded libraries' settings that name a database
    /// (`cron.database_name`, read only at the server's start) at
    /// `database`, restarting the server when they named another: every
    /// session on the cluster ends.
    pub fn preload_for(&mut self, database: &str) -> Result<(), ClusterError> {
        let Some((preload, current)) = &self.preload else { return Ok(()) };
        if !preload.names_database() || current == database {
            return Ok(());
        }
        self.write_preload(database)?;
        self.stop_server(true)?;
        self.restart()
    }

    /// Writes the preload for `database` where `postgresql.conf` includes it.
    fn write_preload(&mut self, database: &str) -> Result<(), ClusterError> {
        let Some((preload, current)) = &mut self.preload else { return Ok(()) };
        let path = self.dir.join("data").join(CONF_FILE);
        fs::write(&path, preload.conf(database))
            .map_err(|source| ClusterError::Dir { path: path.clone(), source })?;
        *current = database.to_string();
        if let Some(who) = self.run_as {
            nix::unistd::chown(&path, Some(who.uid), Some(who.gid))
                .map_err(|e| ClusterError::Dir { path, source: e.into() })?;
        }
        Ok(())
    }

    /// A cluster whose TCP port accepts TLS connections only
    /// (`hostnossl ... reject`), with this certificate and key (PEM): for
    /// tests of TLS clients. [`Cluster::connect`] goes over the Unix socket.
    pub fn start_with_tls(cert_pem: &str, key_pem: &str) -> Result<Cluster, ClusterError> {
        Cluster::launch(PgBin::find()?, Some((cert_pem, key_pem)), None, None)
    }

    fn launch(
        bin: PgBin,
        tls: Option<(&str, &str)>,
        bytes: Option<u64>,
        preload: Option<(Preload, String)>,
    ) -> Result<Cluster, ClusterError> {
        let mut cluster = Cluster::unstarted(bin, tls.is_some(), bytes, preload.as_ref())?;
        cluster.init_db()?;
        cluster.start_as_made(preload, tls)?;
        Ok(cluster)
    }

    /// A new cluster's directory and watcher, its data directory not yet
    /// made; a preloaded library the binaries cannot load is refused first.
    fn unstarted(
        bin: PgBin,
        tls_only: bool,
        bytes: Option<u64>,
        preload: Option<&(Preload, String)>,
    ) -> Result<Cluster, ClusterError> {
        if let Some((p, _)) = preload {
            let missing = p.missing(&bin.dir);
            if !missing.is_empty() {
                return Err(ClusterError::PreloadMissing {
                    libraries: missing.join(", "),
                    major: bin.major,
                    dir: bin.dir.clone(),
                    how: Preload::how_to_provide(&missing, bin.major),
                });
            }
        }
        let (run_as, dir) = fresh_dir(bytes)?;
        let password: String =
            rand::thread_rng().sample_iter(&Alphanumeric).take(24).map(char::from).collect();
        let mut cluster = Cluster {
            bin,
            dir,
            port: 0,
            password,
            run_as,
            watcher: None,
            running: false,
            tls_only,
            recovering: false,
            preload: None,
            superuser: SUPERUSER.to_string(),
        };
        cluster.prepare()?;
        cluster.spawn_watcher()?;
        Ok(cluster)
    }

    /// Starts a cluster whose data directory is made: its preload and TLS
    /// in place, its own password set.
    fn start_as_made(
        &mut self,
        preload: Option<(Preload, String)>,
        tls: Option<(&str, &str)>,
    ) -> Result<(), ClusterError> {
        if let Some((p, database)) = preload {
            self.preload = Some((p, String::new()));
            self.write_preload(&database)?;
        }
        if let Some((cert, key)) = tls {
            self.enable_tls(cert, key)?;
        }
        self.start_server()?;
        self.set_password()
    }

    fn dir_err(&self, source: std::io::Error) -> ClusterError {
        ClusterError::Dir { path: self.dir.clone(), source }
    }

    fn prepare(&self) -> Result<(), ClusterError> {
        fs::write(self.dir.join(OWNER_FILE), std::process::id().to_string())
            .map_err(|e| self.dir_err(e))?;
        if let Some(who) = self.run_as {
            nix::unistd::chown(&self.dir, Some(who.uid), Some(who.gid))
                .map_err(|e| self.dir_err(e.into()))?;
        }
        Ok(())
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn command(&self, tool: &str) -> Command {
        let mut cmd = Command::new(self.bin.tool(tool));
        if let Some(who) = self.run_as {
            cmd.uid(who.uid.as_raw()).gid(who.gid.as_raw());
        }
        // The tools must not pick up a user's PG* settings.
        for var in ["PGDATA", "PGPORT", "PGHOST", "PGUSER", "PGPASSWORD", "PGDATABASE"] {
            cmd.env_remove(var);
        }
        cmd.current_dir(&self.dir);
        cmd
    }

    fn run(&self, mut cmd: Command, tool: &str) -> Result<(), ClusterError> {
        let out = cmd.stdin(Stdio::null()).output().map_err(|source| {
            if self.run_as.is_some() && source.kind() == std::io::ErrorKind::PermissionDenied {
                let program = Path::new(cmd.get_program()).display().to_string();
                return ClusterError::Unreachable { tool: program };
            }
            ClusterError::Spawn { tool: tool.to_string(), source }
        })?;
        if out.status.success() {
            return Ok(());
        }
        let mut output = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if output.is_empty() {
            output = String::from_utf8_lossy(&out.stdout).trim().to_string();
        }
        Err(ClusterError::Tool { tool: tool.to_string(), output })
    }

    /// The watcher stops the server and deletes the dir once our end of its
    /// stdin closes, which the kernel does when this process ends in any way.
    fn spawn_watcher(&mut self) -> Result<(), ClusterError> {
        let script = r#"read line; [ "$line" = keep ] && exit 0
"$0" stop -D "$1" -m immediate >/dev/null 2>&1
rm -rf "$2""#;
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(script).arg(self.bin.tool("pg_ctl")).arg(self.data_dir()).arg(&self.dir);
        if let Some(who) = self.run_as {
            cmd.uid(who.uid.as_raw()).gid(who.gid.as_raw());
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|source| ClusterError::Spawn { tool: "sh".into(), source })?;
        let stdin = child.stdin.take().expect("stdin was piped");
        self.watcher = Some((child, stdin));
        Ok(())
    }

    /// The data directory: a copy of the one kept for these binaries
    /// (`pg::template`), or `initdb` (whose result is then kept). No
    /// password is set here: [`Cluster::set_password`] sets this
    /// cluster's own once it runs.
    fn init_db(&self) -> Result<(), ClusterError> {
        let args: Vec<String> =
            ["-U", SUPERUSER, "--auth-local=trust", "--auth-host=scram-sha-256"]
                .into_iter()
                .chain(["-E", "UTF8", "--locale=C", "--no-sync"])
                .map(str::to_string)
                .collect();
        let data = self.data_dir();
        let bin =
            Binaries { dir: &self.bin.dir, version: &self.bin.version, major: self.bin.major };
        if super::template::copy_kept(&bin, &args, &data) {
            if let Some(who) = self.run_as {
                chown_tree(&data, (who.uid.as_raw(), who.gid.as_raw()))
                    .map_err(|e| self.dir_err(e))?;
            }
        } else {
            let mut cmd = self.command("initdb");
            cmd.arg("-D").arg(&data).args(&args);
            self.run(cmd, "initdb")?;
            super::template::keep(&bin, &args, &data);
        }
        self.write_settings()
    }

    /// Appends the throwaway settings to `postgresql.conf`, in place of
    /// those of the cluster the data directory was copied from, if any.
    fn write_settings(&self) -> Result<(), ClusterError> {
        // Durability is worthless for a throwaway copy; speed is not.
        let settings = format!(
            "{SETTINGS_MARK}listen_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 200\n\
             log_min_messages = warning\ninclude_if_exists = '{CONF_FILE}'\n",
            self.dir.display()
        );
        let path = self.data_dir().join("postgresql.conf");
        let mut conf = fs::read_to_string(&path).map_err(|e| self.dir_err(e))?;
        if let Some(at) = conf.find(SETTINGS_MARK) {
            conf.truncate(at);
        }
        conf.push_str(&settings);
        fs::write(&path, conf).map_err(|e| self.dir_err(e))
    }

    /// Gives the superuser this cluster's own password, over the private
    /// socket (TCP takes a password, which it has none of before this).
    fn set_password(&self) -> Result<(), ClusterError> {
        let mut client = postgres::Config::new()
            .host_path(&self.dir)
            .port(self.port)
            .user(SUPERUSER)
            .dbname("postgres")
            .connect(postgres::NoTls)
            .map_err(ClusterError::Connect)?;
        // The password is letters and digits only: no quoting to get wrong.
        client
            .batch_execute(&format!("ALTER ROLE {SUPERUSER} PASSWORD '{}'", self.password))
            .map_err(ClusterError::Connect)
    }

    fn enable_tls(&self, cert_pem: &str, key_pem: &str) -> Result<(), ClusterError> {
        let data = self.data_dir();
        for (name, text) in [("server.crt", cert_pem), ("server.key", key_pem)] {
            let path = data.join(name);
            fs::write(&path, text).map_err(|e| self.dir_err(e))?;
            // The server refuses a key others can read.
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600))
                .map_err(|e| self.dir_err(e))?;
            if let Some(who) = self.run_as {
                nix::unistd::chown(&path, Some(who.uid), Some(who.gid))
                    .map_err(|e| self.dir_err(e.into()))?;
            }
        }
        fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .and_then(|mut f| {
                f.write_all(
                    b"ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n",
                )
            })
            .map_err(|e| self.dir_err(e))?;
        let hba = "local all all trust\n\
                   hostnossl all all all reject\n\
                   hostssl all all all scram-sha-256\n";
        fs::write(data.join("pg_hba.conf"), hba).map_err(|e| self.dir_err(e))
    }

    fn start_server(&mut self) -> Result<(), ClusterError> {
        // A port picked free can be taken before the server binds it; retry.
        let mut last = None;
        for _ in 0..5 {
            self.port = free_port().map_err(|e| self.dir_err(e))?;
            match self.pg_ctl_start() {
                Ok(()) => {
                    self.running = true;
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("at least one attempt"))
    }

    fn pg_ctl_start(&self) -> Result<(), ClusterError> {
        // A restored cluster recovers first, for as long as it takes:
        // pg_ctl waits. Any other starts in moments: watched closer.
        let wait = if self.recovering { ["-w", "-t", "3600"] } else { ["-W", "-t", "60"] };
        let from = self.log_len();
        let mut cmd = self.command("pg_ctl");
        cmd.arg("start")
            .arg("-D")
            .arg(self.data_dir())
            .args(wait)
            .arg("-l")
            .arg(self.dir.join("server.log"))
            .arg("-o")
            .arg(format!("-p {}", self.port));
        self.run(cmd, "pg_ctl start").map_err(|e| match e {
            ClusterError::Tool { tool, output } => {
                let log = fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                ClusterError::Tool { tool, output: format!("{output}\n{}", tail.join("\n")) }
            }
            other => other,
        })?;
        if self.recovering {
            return Ok(());
        }
        self.wait_ready(from, Duration::from_secs(60))
    }

    /// Stops the server at once, as a crash would (`pg_ctl stop -m immediate`).
    pub fn stop_immediate(&mut self) -> Result<(), ClusterError> {
        self.stop_server(false)
    }

    /// Starts a stopped cluster again on the same port.
    pub fn restart(&mut self) -> Result<(), ClusterError> {
        self.pg_ctl_start()?;
        self.running = true;
        Ok(())
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory the cluster lives in (data, socket, log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn bin(&self) -> &PgBin {
        &self.bin
    }

    /// Leaves the server running after this process exits; returns its dir.
    /// The caller owns it from then on (`pg_ctl stop -D <dir>/data`).
    pub fn keep(mut self) -> PathBuf {
        if let Some((mut child, mut stdin)) = self.watcher.take() {
            let _ = stdin.write_all(b"keep\n");
            drop(stdin);
            let _ = child.wait();
        }
        let _ = fs::remove_file(self.dir.join(OWNER_FILE));
        self.running = false;
        let dir = std::mem::take(&mut self.dir);
        std::mem::forget(self);
        dir
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.running {
            let _ = self.stop_immediate();
        }
        let _ = fs::remove_dir_all(&self.dir);
        if let Some((mut child, stdin)) = self.watcher.take() {
            drop(stdin);
            let _ = child.wait();
        }
    }
}

/// The account a new cluster runs as and its new directory, once the
/// directories of clusters whose owners died are gone.
fn fresh_dir(bytes: Option<u64>) -> Result<(Option<RunAs>, PathBuf), ClusterError> {
    reap_stale_clusters();
    let run_as = run_as()?;
    let base = base_dir(bytes);
    let dir = tempfile::Builder::new()
        .prefix(DIR_PREFIX)
        .tempdir_in(&base)
        .map_err(|source| ClusterError::Dir { path: base.clone(), source })?
        .keep();
    Ok((run_as, dir))
}

/// The memory filesystem clusters may use.
const MEMORY_DIR: &str = "/dev/shm";

/// Where a new cluster's directory goes: `BACKSTOP_CLUSTER_DIR` when it is
/// set; a cluster expected to hold `bytes` on the memory filesystem when
/// it has four times that free and a GiB beside; the temp dir otherwise
/// (a copy of unknown size, which may be a whole production database).
pub fn base_dir(bytes: Option<u64>) -> PathBuf {
    if let Some(dir) = std::env::var_os("BACKSTOP_CLUSTER_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    match bytes {
        Some(bytes) if memory_room() >= bytes.saturating_mul(4).saturating_add(1 << 30) => {
            PathBuf::from(MEMORY_DIR)
        }
        _ => std::env::temp_dir(),
    }
}

/// Bytes free on the memory filesystem (0 where there is none).
fn memory_room() -> u64 {
    let dir = Path::new(MEMORY_DIR);
    if !dir.is_dir() {
        return 0;
    }
    nix::sys::statvfs::statvfs(dir)
        .map(|s| s.blocks_available().saturating_mul(s.fragment_size()))
        .unwrap_or(0)
}

/// Hands `dir` and every file under it to the user and group `(uid, gid)`.
pub(crate) fn chown_tree(dir: &Path, owner: (u32, u32)) -> std::io::Result<()> {
    nix::unistd::chown(dir, Some(owner.0.into()), Some(owner.1.into()))?;
    if dir.is_dir() && !dir.is_symlink() {
        for entry in fs::read_dir(dir)? {
            chown_tree(&entry?.path(), owner)?;
        }
    }
    Ok(())
}

/// A TCP port free on 127.0.0.1 now.
pub(crate) fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Removes clusters whose owner process is gone: stops their server and
/// deletes their dir. Best effort; a cluster still in use is never touched.
pub fn reap_stale_clusters() {
    let mut bases = vec![std::env::temp_dir(), PathBuf::from(MEMORY_DIR)];
    if let Some(dir) = std::env::var_os("BACKSTOP_CLUSTER_DIR").filter(|d| !d.is_empty()) {
        bases.push(PathBuf::from(dir));
    }
    bases.dedup();
    let entries = bases.iter().filter_map(|b| fs::read_dir(b).ok()).flatten();
    for entry in entries.filter_map(|e| e.ok()) {
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with(DIR_PREFIX) {
            continue;
        }
        let dir = entry.path();
        let Ok(owner) = fs::read_to_string(dir.join(OWNER_FILE)) else {
            continue;
        };
        let Ok(owner) = owner.trim().parse::<i32>() else {
            continue;
        };
        if process_alive(owner) {
            continue;
        }
        if let Some(postmaster) = fs::read_to_string(dir.join("data/postmaster.pid"))
            .ok()
            .and_then(|s| s.lines().next().and_then(|l| l.trim().parse::<i32>().ok()))
        {
            let pid = nix::unistd::Pid::from_raw(postmaster);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGQUIT);
            for _ in 0..50 {
                if !process_alive(postmaster) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let _ = fs::remove_dir_all(&dir);
    }
}

fn process_alive(pid: i32) -> bool {
    use nix::errno::Errno;
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) => true,
        Err(Errno::ESRCH) => false,
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_answers_and_is_gone_after_drop() {
        let cluster = Cluster::start().expect("cluster starts");
        let dir = cluster.dir().to_path_buf();
        let mut client = cluster.connect("postgres").unwrap();
        let one: i32 = client.query_one("select 1", &[]).unwrap().get(0);
        assert_eq!(one, 1);
        drop(client);
        drop(cluster);
        assert!(!dir.exists(), "cluster dir {dir:?} left behind");
    }

    #[test]
    fn a_dead_owners_cluster_is_reaped_by_the_next_start() {
        let cluster = Cluster::start().unwrap();
        let dir = cluster.dir().to_path_buf();
        let port = cluster.port();
        // Pretend the owner died: point the marker at a pid that cannot exist
        // and detach the watcher so only the reaper can clean up.
        let kept = cluster.keep();
        assert_eq!(kept, dir);
        fs::write(dir.join(OWNER_FILE), i32::MAX.to_string()).unwrap();
        let other = Cluster::start().unwrap();
        assert!(!dir.exists(), "stale cluster {dir:?} was not removed");
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err() || other.port() == port);
    }
}
