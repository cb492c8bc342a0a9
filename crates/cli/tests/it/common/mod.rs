//! What the CLI tests share: one throwaway cluster per test binary, a fresh
//! database and project folder per test, the real `backstop` binary, and a
//! direct connection to check what really happened in the database.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

pub mod platform;
pub mod server;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::LazyLock;

use backstop_core::pg::cluster::Cluster;
use tempfile::TempDir;

/// The cluster of this test binary. Rust never drops a `static`; the
/// cluster's watcher stops the server and deletes it when the process exits.
pub static CLUSTER: LazyLock<Cluster> =
    LazyLock::new(|| Cluster::start().expect("throwaway cluster starts"));

/// A name no other test (or test binary) uses at the same time.
/// A database of its own owned by a role of its own that is not a
/// superuser and can create neither databases nor roles (a managed
/// platform's owner): its URL, the role and the database.
pub fn owned_database(label: &str) -> (String, String, String) {
    let role = unique_name(&format!("{label}_owner"));
    let db = unique_name(label);
    let mut admin = CLUSTER.connect("postgres").unwrap();
    admin
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN PASSWORD 'owner-pw' NOSUPERUSER NOCREATEDB NOCREATEROLE"
        ))
        .unwrap();
    admin.batch_execute(&format!("CREATE DATABASE {db} OWNER {role}")).unwrap();
    let url = format!("postgres://{role}:owner-pw@127.0.0.1:{}/{db}", CLUSTER.port());
    (url, role, db)
}

pub fn unique_name(label: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let label: String = label.chars().take(40).collect();
    format!("{label}_{}_{n}", std::process::id())
}

/// A config that takes the URL from `DATABASE_URL`, as `backstop init` does.
pub const DEFAULT_CONFIG: &str = r#"[database]
url = "${DATABASE_URL}"

[migrations]
dir = "migrations"
"#;

/// The path of the `backstop` binary under test.
pub fn backstop_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_backstop"))
}

/// What one run of `backstop` did.
#[derive(Debug)]
pub struct Run {
    /// The exit code; `None` when the process was killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from_output(out: std::process::Output) -> Run {
        Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Stdout and stderr together, for "somewhere in the output" checks.
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    /// Asserts the exit code, showing both streams when it differs.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Run {
        assert_eq!(
            self.code,
            Some(code),
            "expected exit {code}\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// Asserts that stdout or stderr contains `needle`.
    #[track_caller]
    pub fn expect_output(&self, needle: &str) -> &Run {
        assert!(
            self.all().contains(needle),
            "output lacks {needle:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// The stdout parsed as one JSON document.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e})\n--- stdout\n{}\n--- stderr\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// A project folder with a backstop.toml and migrations/, and its own
/// fresh database on the shared cluster.
pub struct Project {
    pub dir: TempDir,
    pub db: String,
    pub url: String,
}

impl Project {
    /// A project with [`DEFAULT_CONFIG`], an empty migrations folder and a
    /// new database named after `label`.
    pub fn new(label: &str) -> Project {
        Project::on(&CLUSTER, label)
    }

    /// A project as a new user has it: no backstop.toml and no
    /// `migrations/` (the test writes its tool's folder).
    pub fn bare(label: &str) -> Project {
        let p = Project::new(label);
        std::fs::remove_file(p.path().join("backstop.toml")).unwrap();
        std::fs::remove_dir_all(p.path().join("migrations")).unwrap();
        p
    }

    /// The same on another cluster.
    pub fn on(cluster: &Cluster, label: &str) -> Project {
        let db = unique_name(label);
        cluster.create_database(&db, None).expect("test database is created");
        let dir = tempfile::Builder::new().prefix("backstop-cli-test-").tempdir().unwrap();
        std::fs::create_dir(dir.path().join("migrations")).unwrap();
        std::fs::write(dir.path().join("backstop.toml"), DEFAULT_CONFIG).unwrap();
        let url = cluster.url(&db);
        Project { dir, db, url }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Replaces backstop.toml.
    pub fn config(&self, text: &str) {
        self.write("backstop.toml", text);
    }

    /// Writes a file relative to the project, creating its folders.
    pub fn write(&self, rel: &str, text: &str) {
        let path = self.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// Writes a migration in the directory layout:
    /// `migrations/<stem>/{up,down}.sql`, `down` only when given.
    pub fn migration(&self, stem: &str, up: &str, down: Option<&str>) {
        self.write(&format!("migrations/{stem}/up.sql"), up);
        if let Some(down) = down {
            self.write(&format!("migrations/{stem}/down.sql"), down);
        }
    }

    /// `backstop` in the project folder with `DATABASE_URL` set to the
    /// project's database and no `BACKSTOP_CONFIG` from outside. The
    /// timeout only stops a hung run: it is no speed check (those are the
    /// benchmarks'), and a history of hundreds of migrations on two busy
    /// cores takes minutes.
    pub fn cmd(&self) -> assert_cmd::Command {
        let mut cmd = assert_cmd::Command::cargo_bin("backstop").expect("backstop binary is built");
        cmd.current_dir(self.path())
            .env("DATABASE_URL", &self.url)
            .env_remove("BACKSTOP_CONFIG")
            .timeout(std::time::Duration::from_secs(600));
        cmd
    }

    /// The same as a plain `std::process::Command`, for runs the test
    /// starts in the background, signals or runs several of at once.
    pub fn std_cmd(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = std::process::Command::new(backstop_bin());
        cmd.args(args)
            .current_dir(self.path())
            .env("DATABASE_URL", &self.url)
            .env_remove("BACKSTOP_CONFIG");
        cmd
    }

    /// Runs `backstop ARGS` and waits for it.
    pub fn run(&self, args: &[&str]) -> Run {
        Run::from_output(self.cmd().args(args).output().expect("backstop runs"))
    }

    /// Runs `backstop ARGS` that may take long (a history of hundreds of
    /// migrations): up to 20 minutes, and says how long it took.
    pub fn run_long(&self, args: &[&str]) -> Run {
        let t = std::time::Instant::now();
        let out = self
            .cmd()
            .timeout(std::time::Duration::from_secs(1200))
            .args(args)
            .output()
            .expect("backstop runs");
        eprintln!("backstop {}: {:.1} s", args.join(" "), t.elapsed().as_secs_f64());
        Run::from_output(out)
    }

    /// Runs `backstop ARGS` with `DATABASE_URL` set to `url` instead.
    pub fn run_with_url(&self, url: &str, args: &[&str]) -> Run {
        Run::from_output(
            self.cmd().env("DATABASE_URL", url).args(args).output().expect("backstop runs"),
        )
    }

    /// Runs `backstop ARGS` with extra environment variables (e.g. `BACKSTOP_PG_BIN`).
    pub fn run_env(&self, env: &[(&str, &Path)], args: &[&str]) -> Run {
        let mut cmd = self.cmd();
        for (k, v) in env {
            cmd.env(k, v);
        }
        Run::from_output(cmd.args(args).output().expect("backstop runs"))
    }

    /// A direct connection to the project's database on the shared cluster.
    pub fn client(&self) -> postgres::Client {
        CLUSTER.connect(&self.db).expect("test connects to its database")
    }
}

/// `backstop backup restore ID --yes` killed by SIGKILL once it has passed
/// `point`: a step its journal recorded, or a point inside a step
/// (`BACKSTOP_TEST_CRASH_AFTER`, see the restore's journal).
pub fn kill_restore_at(p: &Project, id: &str, point: &str) {
    let killed = p
        .std_cmd(&["restore", id, "--yes"])
        .env("BACKSTOP_TEST_CRASH_AFTER", point)
        .output()
        .unwrap();
    assert_eq!(killed.status.code(), None, "not killed at {point}: {killed:?}");
}

/// What a test asserts about a database, straight from the catalogs.
pub trait DbExt {
    fn exists(&mut self, relation: &str) -> bool;
    fn count(&mut self, table: &str) -> i64;
    fn history_schema_exists(&mut self) -> bool;
    /// The versions in `backstop.applied`, sorted.
    fn applied(&mut self) -> Vec<String>;
    /// `(kind, outcome, versions)` of every `backstop.events` row but the
    /// `started` ones, in order.
    fn events(&mut self) -> Vec<(String, String, Vec<String>)>;
    /// The same with the `started` rows.
    fn all_events(&mut self) -> Vec<(String, String, Vec<String>)>;
    /// Tables, views and sequences outside the system schemas.
    fn user_relations(&mut self) -> Vec<String>;
    /// The first column of every row `sql` returns, a text column.
    fn texts(&mut self, sql: &str) -> Vec<String>;
}

impl DbExt for postgres::Client {
    fn exists(&mut self, relation: &str) -> bool {
        self.query_one("select to_regclass($1) is not null", &[&relation]).unwrap().get(0)
    }

    fn count(&mut self, table: &str) -> i64 {
        self.query_one(&format!("select count(*) from {table}"), &[]).unwrap().get(0)
    }

    fn history_schema_exists(&mut self) -> bool {
        self.query_one("select exists (select from pg_namespace where nspname = 'backstop')", &[])
            .unwrap()
            .get(0)
    }

    fn applied(&mut self) -> Vec<String> {
        if !self.exists("backstop.applied") {
            return Vec::new();
        }
        self.texts("select version from backstop.applied order by version")
    }

    fn texts(&mut self, sql: &str) -> Vec<String> {
        self.query(sql, &[]).unwrap().iter().map(|r| r.get(0)).collect()
    }

    fn events(&mut self) -> Vec<(String, String, Vec<String>)> {
        self.all_events().into_iter().filter(|e| e.1 != "started").collect()
    }

    fn all_events(&mut self) -> Vec<(String, String, Vec<String>)> {
        if !self.exists("backstop.events") {
            return Vec::new();
        }
        self.query("select kind, outcome, versions from backstop.events order by id", &[])
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect()
    }

    fn user_relations(&mut self) -> Vec<String> {
        self.query(
            "select n.nspname || '.' || c.relname from pg_class c
               join pg_namespace n on n.oid = c.relnamespace
              where n.nspname not in ('pg_catalog', 'information_schema', 'pg_toast')
              order by 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
    }
}

/// `(kind, outcome, versions)` as owned strings, for comparing with [`DbExt::events`].
pub fn event(kind: &str, outcome: &str, versions: &[&str]) -> (String, String, Vec<String>) {
    (kind.into(), outcome.into(), versions.iter().map(|v| v.to_string()).collect())
}

/// Polls `check` every `every` until it holds; fails after `attempts`
/// checks. A bound on waiting for a state, not a timing assertion.
pub fn poll_until(
    what: &str,
    attempts: u32,
    every: std::time::Duration,
    mut check: impl FnMut() -> bool,
) {
    for _ in 0..attempts {
        if check() {
            return;
        }
        std::thread::sleep(every);
    }
    panic!("{what}: still not so after {attempts} checks {every:?} apart");
}

/// Where `.ci/tools/*.sh` install the third-party programs tests drive.
/// Says that a test cannot run because `what` is missing. Where CI set
/// `BACKSTOP_REQUIRE_TOOLS=1` (it installs every tool) this fails the test,
/// so a run without a tool never looks like one with it; elsewhere the test
/// says it skipped.
#[track_caller]
pub fn missing_tool(what: &str, installed_by: &str) {
    let message = format!("{what} is not installed ({installed_by} installs it)");
    if std::env::var("BACKSTOP_REQUIRE_TOOLS").is_ok_and(|v| v == "1") {
        panic!("{message}, and BACKSTOP_REQUIRE_TOOLS=1 requires every tool");
    }
    eprintln!("skipped: {message}");
}

pub fn tools_dir() -> PathBuf {
    match std::env::var_os("BACKSTOP_TOOLS") {
        Some(t) => PathBuf::from(t),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
            .join(".cache/backstop-tools"),
    }
}

/// The program `name`, from PATH or the tools cache.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> =
        std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect()).unwrap_or_default();
    dirs.push(tools_dir().join("bin"));
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

/// The program `name`, from PATH or the tools cache; `None` (with the
/// reason printed, or a failure where every tool is required) when it is
/// not installed.
#[track_caller]
pub fn program(name: &str, installed_by: &str) -> Option<PathBuf> {
    let found = find_program(name);
    if found.is_none() {
        missing_tool(name, installed_by);
    }
    found
}

/// Runs a third-party program and asserts that it succeeded, showing its
/// output when it did not.
#[track_caller]
pub fn run_program(cmd: &mut std::process::Command) -> String {
    let out = cmd.output().expect("the tool starts");
    assert!(
        out.status.success(),
        "{cmd:?} failed\n--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A copy of folder `src` at `dst`, with everything under it.
pub fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let to = dst.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &to);
        } else {
            std::fs::copy(entry.path(), to).unwrap();
        }
    }
}

/// A fixture under `tests/fixtures`.
pub fn fixture_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(rel)
}

/// The first file under `dir` whose path contains `needle`.
pub fn find_file(dir: &Path, needle: &str) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()? {
        let path = entry.ok()?.path();
        if path.is_dir() {
            if let Some(found) = find_file(&path, needle) {
                return Some(found);
            }
        } else if path.display().to_string().contains(needle) {
            return Some(path);
        }
    }
    None
}
