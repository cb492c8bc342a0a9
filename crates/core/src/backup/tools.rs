//! Finding and running the real `pg_dump` and `pg_restore`: of the
//! server's major version ([`crate::pg::bins`]), with the
//! password in the environment (never on a command line), files created
//! 0600, and the child killed with us if we die.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use std::io::{BufRead, BufReader};

use super::{BackupError, Note, Progress};
use crate::pg::bins::{major_of_num, BinDir, Kit, Match, Miss, Origin, Search};

/// The client tools a backup needs, and their version.
#[derive(Debug, Clone)]
pub struct Tools {
    pub dir: PathBuf,
    /// `15.8`, from `pg_dump --version`.
    pub version: String,
    pub major: u32,
    /// Where the search found them.
    pub origin: Origin,
    /// Whether this pg_dump was built with zstd (16 and later may be built
    /// without it): asked of pg_dump on first use.
    zstd: std::sync::OnceLock<bool>,
}

/// How pg_dump compresses: the best codec the local pg_dump has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// zstd, from pg_dump 16 on.
    Zstd,
    /// gzip at level 1 before 16: the default level 6 costs about three
    /// times the CPU for files a tenth smaller.
    Gzip,
}

impl Compression {
    pub fn name(self) -> &'static str {
        match self {
            Compression::Zstd => "zstd",
            Compression::Gzip => "gzip",
        }
    }

    fn arg(self) -> &'static str {
        match self {
            Compression::Zstd => "--compress=zstd",
            Compression::Gzip => "--compress=1",
        }
    }
}

impl Tools {
    /// The first `pg_dump` and `pg_restore` of the search
    /// ([`crate::pg::bins`]), before the server is known; [`Tools::fit`]
    /// then picks those of the server's major.
    pub fn find() -> Result<Tools, BackupError> {
        let search = Search::new();
        match search.first(Kit::Client) {
            Ok(b) => Ok(Tools::at(b)),
            Err(miss) => Err(Tools::missing(&search, &miss)),
        }
    }

    /// The tools for a server of `server_version_num`: of its major, else
    /// of the nearest newer major (PostgreSQL's tools read older servers,
    /// never newer ones). Refuses when only older tools are found.
    pub fn for_server(server_version_num: i32) -> Result<Tools, BackupError> {
        Tools::search_for(&Search::new(), server_version_num, None)
    }

    /// [`Tools::for_server`], keeping these tools when their major is the
    /// server's.
    pub fn fit(&self, server_version_num: i32) -> Result<Tools, BackupError> {
        if self.major == major_of_num(server_version_num) {
            return Ok(self.clone());
        }
        Tools::search_for(&Search::new(), server_version_num, Some(self))
    }

    fn search_for(
        search: &Search,
        server_version_num: i32,
        had: Option<&Tools>,
    ) -> Result<Tools, BackupError> {
        let server_major = major_of_num(server_version_num);
        match search.for_major(Kit::Client, server_major, Match::OrNewer) {
            Ok(b) => Ok(Tools::at(b)),
            Err(Miss::Major { found, .. }) => {
                let newest = found.iter().max_by_key(|b| b.major).map(|b| b.version.clone());
                Err(BackupError::ToolTooOld {
                    tool: "pg_dump",
                    tool_version: newest.or(had.map(|t| t.version.clone())).unwrap_or_default(),
                    server_version: version_text(server_version_num),
                    server_major,
                })
            }
            Err(miss) => Err(Tools::missing(search, &miss)),
        }
    }

    fn missing(search: &Search, miss: &Miss) -> BackupError {
        let searched = match miss {
            Miss::None { searched } | Miss::Major { searched, .. } => searched.clone(),
        };
        let tool = match search.lacking(Kit::Client) {
            Some((_, tool)) if search.is_exclusive() => tool,
            _ => "pg_dump",
        };
        BackupError::ToolMissing { tool, searched }
    }

    fn at(b: BinDir) -> Tools {
        Tools {
            dir: b.dir,
            version: b.version,
            major: b.major,
            origin: b.origin,
            zstd: std::sync::OnceLock::new(),
        }
    }

    pub fn pg_dump(&self) -> PathBuf {
        self.dir.join("pg_dump")
    }

    pub fn pg_restore(&self) -> PathBuf {
        self.dir.join("pg_restore")
    }

    /// The codec this pg_dump supports best.
    pub fn compression(&self) -> Compression {
        let zstd = *self.zstd.get_or_init(|| self.major >= 16 && supports_zstd(&self.pg_dump()));
        if zstd {
            Compression::Zstd
        } else {
            Compression::Gzip
        }
    }

    /// The pg_dump argument for [`Tools::compression`].
    pub fn compression_arg(&self) -> &'static str {
        self.compression().arg()
    }

    /// A command for `tool` (`pg_dump`, `pg_restore`) against `target`:
    /// the password goes in the environment, files are created 0600 and
    /// the child dies with this process, with the parallel workers of a
    /// `pg_dump` or `pg_restore` (its own children).
    pub fn command(&self, tool: &str, target: &Target) -> Command {
        let parallel = matches!(tool, "pg_dump" | "pg_restore");
        let mut cmd = if parallel {
            crate::shell::group_dying_with_parent(&self.dir.join(tool))
        } else {
            Command::new(self.dir.join(tool))
        };
        // The URL's TLS settings are in the conninfo; the environment's must not add to them.
        for var in [
            "PGPASSWORD",
            "PGPASSFILE",
            "PGSERVICE",
            "PGOPTIONS",
            "PGDATABASE",
            "PGSSLROOTCERT",
            "PGSSLCERT",
            "PGSSLKEY",
        ] {
            cmd.env_remove(var);
        }
        if let Some(pw) = &target.password {
            cmd.env("PGPASSWORD", pw);
        }
        // Backstop's own sessions that write are exempt from a write
        // freeze. pg_dump only reads, and a pooler (PgBouncer, even in
        // session mode) refuses a startup with options.
        if tool != "pg_dump" {
            cmd.env("PGOPTIONS", "-c default_transaction_read_only=off");
        }
        cmd.stdin(Stdio::null());
        if !parallel {
            crate::shell::die_with_parent_privately(&mut cmd);
        }
        cmd
    }
}

/// Whether `pg_dump` takes `--compress=zstd`: a build without zstd refuses
/// the option before it connects anywhere, and one with it goes on to fail
/// connecting to a socket that is not there.
fn supports_zstd(pg_dump: &Path) -> bool {
    let out = Command::new(pg_dump)
        .args(["--compress=zstd", "--schema-only", "--file=/dev/null"])
        .arg("--dbname=host=/nonexistent/backstop-probe dbname=probe connect_timeout=1")
        .stdin(Stdio::null())
        .env_remove("PGPASSWORD")
        .output();
    match out {
        Ok(out) => !String::from_utf8_lossy(&out.stderr).contains("does not support compression"),
        Err(_) => false,
    }
}

/// `150008` -> `15.8`.
pub fn version_text(num: i32) -> String {
    format!("{}.{}", num / 10_000, num % 10_000)
}

/// Where a child tool connects: a keyword/value connection string without
/// the password, and the password apart (for `PGPASSWORD`).
pub type Target = crate::pg::conn::LibpqTarget;

/// [`Target`] for Backstop's backup tools, which name themselves to the
/// server.
pub fn target(url: &str, dbname: Option<&str>) -> Result<Target, BackupError> {
    let mut target = Target::from_url(url, dbname)?;
    target.conninfo.push_str(" application_name='backstop'");
    Ok(target)
}

/// The size of every file under `dir`, added up (best effort: a file that
/// vanishes while we look counts 0).
pub fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            Ok(_) => e.metadata().map(|m| m.len()).unwrap_or(0),
            Err(_) => 0,
        })
        .sum()
}

/// Runs a pg_dump or pg_restore started with `--verbose`, turning its
/// "finished table" lines into [`Note::Tables`] (of `tables`) and keeping
/// the rest of its stderr for messages. Returns (success, stderr).
/// The signal (SIGINT, SIGTERM) that asked this process to stop while a
/// tool ran, 0 when none did. Set by the command's signal handler; a tool
/// that handles the signal itself (parallel pg_restore exits 1 on Ctrl-C)
/// does not show it in its exit status.
pub static INTERRUPTED_BY: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

pub fn run_verbose(
    cmd: Command,
    tool: &str,
    tables: u64,
    progress: &mut dyn Progress,
) -> Result<(bool, String), BackupError> {
    run_verbose_with(cmd, tool, tables, progress, |_| {})
}

/// [`run_verbose`], also calling `tick` at every poll (e.g. to report the
/// bytes written so far).
pub fn run_verbose_with(
    mut cmd: Command,
    tool: &str,
    tables: u64,
    progress: &mut dyn Progress,
    mut tick: impl FnMut(&mut dyn Progress),
) -> Result<(bool, String), BackupError> {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| BackupError::Spawn { tool: tool.to_string(), source })?;
    let stderr = child.stderr.take().expect("stderr is piped");
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if is_table_done(&line) {
                let _ = tx.send(());
            } else if !is_chatter(&line) {
                text.push_str(&line);
                text.push('\n');
            }
        }
        text
    });
    let mut done = 0u64;
    let spawn = |source| BackupError::Spawn { tool: tool.to_string(), source };
    let status = loop {
        progress.note(Note::Tables { done: done.min(tables), total: tables });
        tick(progress);
        if let Some(status) = child.try_wait().map_err(spawn)? {
            break status;
        }
        // Woken by a finished table, or at once when the tool closes its
        // stderr as it exits (a sleep here cost a deploy up to its length
        // after a small dump was already done).
        match rx.recv_timeout(std::time::Duration::from_millis(150)) {
            Ok(()) => done += 1,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                break child.wait().map_err(spawn)?;
            }
        }
    };
    let text = reader.join().unwrap_or_default();
    // Ended by a signal (Ctrl-C reaches the whole process group) is not a
    // failure of the tool, and is not reported as one.
    let asked = INTERRUPTED_BY.load(std::sync::atomic::Ordering::SeqCst);
    let by_signal = std::os::unix::process::ExitStatusExt::signal(&status);
    if let Some(signal) = by_signal.or((asked != 0).then_some(asked)) {
        let signal = nix::sys::signal::Signal::try_from(signal)
            .map_or_else(|_| format!("signal {signal}"), |s| s.as_str().to_string());
        return Err(BackupError::Interrupted {
            tool: tool.to_string(),
            signal,
            then: String::new(),
        });
    }
    Ok((status.success(), text))
}

/// A `--verbose` line of pg_dump or pg_restore for a finished table:
/// `finished item N TABLE DATA t` with --jobs above 1, `dumping contents of
/// table "s.t"` / `processing data for table "s.t"` otherwise.
pub fn is_table_done(line: &str) -> bool {
    (line.contains("finished item") && line.contains("TABLE DATA"))
        || line.contains("dumping contents of table")
        || line.contains("processing data for table")
}

/// Routine `--verbose` chatter, left out of error messages.
pub fn is_chatter(line: &str) -> bool {
    let l = line.to_ascii_lowercase();
    (l.starts_with("pg_dump: ") || l.starts_with("pg_restore: "))
        && !(l.contains("error")
            || l.contains("warning")
            || l.contains("fatal")
            || l.contains("detail")
            || l.contains("hint"))
}

/// The last lines of a tool's stderr worth showing: its errors and
/// warnings, else its last few lines.
pub fn tail(stderr: &str) -> String {
    let relevant: Vec<&str> = stderr
        .lines()
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            l.contains("error") || l.contains("warning") || l.contains("fatal")
        })
        .collect();
    let lines: Vec<&str> = if relevant.is_empty() {
        let all: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        all[all.len().saturating_sub(5)..].to_vec()
    } else {
        relevant[relevant.len().saturating_sub(10)..].to_vec()
    };
    let text = lines.join("\n");
    if text.is_empty() {
        "(no output)".into()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_stays_out_of_the_connection_string() {
        let t = target("postgres://app:s3cr'et@db.example:6432/prod", None).unwrap();
        assert!(!t.conninfo.contains("s3cr"), "{}", t.conninfo);
        assert_eq!(t.password.as_deref(), Some("s3cr'et"));
        assert!(t.conninfo.contains("host='db.example'"), "{}", t.conninfo);
        assert!(t.conninfo.contains("port='6432'"), "{}", t.conninfo);
        assert!(t.conninfo.contains("dbname='prod'"), "{}", t.conninfo);
        let other = target("host=h user=u password=pw dbname=a", Some("it's")).unwrap();
        assert!(other.conninfo.contains("dbname='it\\'s'"), "{}", other.conninfo);
        assert!(!format!("{other:?}").contains("pw"));
    }

    #[test]
    fn verbose_lines_that_count_as_a_table() {
        assert!(is_table_done("pg_dump: finished item 3219 TABLE DATA pgbench_accounts"));
        assert!(is_table_done("pg_dump: dumping contents of table \"public.users\""));
        assert!(is_table_done("pg_restore: processing data for table \"public.users\""));
        assert!(!is_table_done("pg_dump: reading tables"));
        assert!(is_chatter("pg_dump: reading extensions"));
        assert!(!is_chatter("pg_dump: error: query failed"));
        assert!(!is_chatter("some other line"));
    }

    #[test]
    fn versions_and_tails_read_well() {
        assert_eq!(version_text(150008), "15.8");
        assert_eq!(version_text(160002), "16.2");
        let stderr = "pg_dump: dumping contents of table a\npg_dump: error: could not write: No space left on device\n";
        assert_eq!(tail(stderr), "pg_dump: error: could not write: No space left on device");
    }
}
