//! What runs on a data directory, as this host sees it: the server its
//! `postmaster.pid` names (a live process whose working directory is that
//! directory), or one still starting that has not written the file yet,
//! found by its command line (`postgres -D <dir>`, `pg_ctl start -D
//! <dir>`, or the shell `pg_ctl` starts it through). A physical restore
//! looks here before it starts or stops a server, so that a run resumed
//! after a kill never races the start the killed run left going.

use std::path::{Path, PathBuf};

/// A server process on a data directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Postmaster {
    pub pid: i32,
    /// Its `postmaster.pid` names it (so `pg_ctl stop` reaches it).
    pub recorded: bool,
    /// Its `postmaster.pid` says it takes sessions (`ready` or `standby`).
    pub ready: bool,
}

/// The server running or starting on `dir`, if any.
pub(super) fn on(dir: &Path) -> Option<Postmaster> {
    let dir = canonical(dir);
    let file = std::fs::read_to_string(dir.join("postmaster.pid")).unwrap_or_default();
    let lines: Vec<&str> = file.lines().collect();
    // Negative: a single-user server, which holds the directory as well.
    let recorded = lines.first().and_then(|l| l.trim().parse::<i32>().ok()).map(i32::abs);
    if let Some(pid) = recorded.filter(|&pid| pid > 0 && alive(pid) && belongs(pid, &dir)) {
        // pg_ctl reads the same line to know when the server is up.
        let status = lines.get(7).map(|l| l.trim()).unwrap_or_default();
        let ready = matches!(status, "ready" | "standby");
        return Some(Postmaster { pid, recorded: true, ready });
    }
    starting(&dir).map(|pid| Postmaster { pid, recorded: false, ready: false })
}

fn canonical(dir: &Path) -> PathBuf {
    std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf())
}

/// Whether process `pid` exists and is not a zombie waiting to be reaped
/// (an orphaned server's new parent may be slow to reap it).
fn alive(pid: i32) -> bool {
    use nix::errno::Errno;
    let exists = match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) | Err(Errno::EPERM) => true,
        Err(_) => false,
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next());
    exists && !matches!(state, Some('Z' | 'X'))
}

/// Whether process `pid` is a server of `dir`: a server changes into its
/// data directory, and one that has not yet names it on its command line.
fn belongs(pid: i32, dir: &Path) -> bool {
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd"));
    cwd.is_ok_and(|cwd| cwd == dir) || argv(pid).is_some_and(|a| starts_server(&a, dir))
}

/// A process other than this one that starts a server on `dir`.
fn starting(dir: &Path) -> Option<i32> {
    let me = std::process::id() as i32;
    std::fs::read_dir("/proc")
        .ok()?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != me)
        .find(|&pid| argv(pid).is_some_and(|a| starts_server(&a, dir)) && alive(pid))
}

/// The command line of process `pid`.
fn argv(pid: i32) -> Option<Vec<String>> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        raw.split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect(),
    )
}

/// Whether a command line starts a server on `dir`: `postgres -D <dir>`,
/// `pg_ctl start -D <dir>`, or the shell pg_ctl runs the server through
/// (`sh -c 'exec "…/postgres" -D "<dir>" …'`).
fn starts_server(argv: &[String], dir: &Path) -> bool {
    let Some((program, args)) = argv.split_first() else { return false };
    let names = |d: &str| canonical(Path::new(d)) == dir;
    match Path::new(program).file_name().and_then(|n| n.to_str()).unwrap_or_default() {
        "postgres" | "postmaster" => data_dirs(args).any(names),
        "pg_ctl" => args.iter().any(|a| a == "start") && data_dirs(args).any(names),
        "sh" | "bash" | "dash" => match args {
            [c, script, ..] if c == "-c" && script.starts_with("exec ") => script
                .split("-D \"")
                .skip(1)
                .filter_map(|rest| rest.split_once('"').map(|(d, _)| d))
                .any(names),
            _ => false,
        },
        _ => false,
    }
}

/// The data directories a server's or pg_ctl's arguments name (`-D dir`,
/// `-Ddir`, `--pgdata=dir`, `--pgdata dir`).
fn data_dirs(args: &[String]) -> impl Iterator<Item = &str> {
    args.iter().enumerate().filter_map(|(i, a)| {
        let next = || args.get(i + 1).map(String::as_str);
        match a.as_str() {
            "-D" | "--pgdata" => next(),
            a => a
                .strip_prefix("--pgdata=")
                .or_else(|| a.strip_prefix("-D"))
                .filter(|d| !d.is_empty()),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(line: &[&str]) -> Vec<String> {
        line.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn a_server_starting_on_a_directory_is_known_by_its_command_line() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = canonical(tmp.path());
        let d = dir.display().to_string();
        let other = tempfile::tempdir().unwrap();
        let o = other.path().display().to_string();
        assert!(starts_server(&argv(&["/usr/lib/postgresql/16/bin/postgres", "-D", &d]), &dir));
        assert!(starts_server(&argv(&["postgres", "-p", "5433", &format!("-D{d}")]), &dir));
        assert!(starts_server(&argv(&["pg_ctl", "start", "-W", "-D", &d, "-l", "x"]), &dir));
        let script = format!("exec \"/usr/bin/postgres\" -D \"{d}\" -p 5433 < \"/dev/null\"");
        assert!(starts_server(&argv(&["/bin/sh", "-c", &script]), &dir));
        // Not this directory, not starting, not a server.
        assert!(!starts_server(&argv(&["postgres", "-D", &o]), &dir));
        assert!(!starts_server(&argv(&["pg_ctl", "stop", "-D", &d]), &dir));
        assert!(!starts_server(&argv(&["tail", "-f", &format!("{d}/log")]), &dir));
        assert!(!starts_server(&argv(&["postgres: checkpointer"]), &dir));
    }

    /// A server started a moment ago has no postmaster.pid yet: it is
    /// found by its process all the same, and gone once that process is.
    #[test]
    fn a_server_that_wrote_no_postmaster_pid_yet_is_found_by_its_process() {
        use std::os::unix::process::CommandExt as _;
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(on(tmp.path()), None);
        // A process whose command line is a server's on the directory. It
        // waits on its input with the shell's own `read`: a child it forked
        // (`sleep`) bears its command line until it has executed, and under
        // load could still be found after the shell is gone.
        let mut fake = std::process::Command::new("sh")
            .arg0("postgres")
            .args(["-c", "read line", "postgres", "-D"])
            .arg(tmp.path())
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Until it has executed its program, the child is this test's copy.
        let mut found = None;
        for _ in 0..50 {
            found = on(tmp.path());
            if found.is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = fake.kill();
        let _ = fake.wait();
        let pid = fake.id() as i32;
        assert_eq!(found, Some(Postmaster { pid, recorded: false, ready: false }));
        assert_eq!(on(tmp.path()), None);
    }

    #[test]
    fn a_running_server_is_found_by_its_postmaster_pid() {
        let cluster = crate::pg::cluster::Cluster::start().unwrap();
        let found = on(&cluster.dir().join("data")).expect("the cluster's server");
        assert!(found.recorded && found.ready, "{found:?}");
        assert_eq!(on(cluster.dir()), None, "nothing runs on its parent directory");
    }

    #[test]
    fn a_stale_postmaster_pid_is_no_server() {
        let tmp = tempfile::tempdir().unwrap();
        // This test's own pid: alive, but it is no server of the directory.
        let me = std::process::id();
        std::fs::write(tmp.path().join("postmaster.pid"), format!("{me}\n/x\n")).unwrap();
        assert_eq!(on(tmp.path()), None);
        // A process that exited.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let gone = child.id();
        child.wait().unwrap();
        std::fs::write(tmp.path().join("postmaster.pid"), format!("{gone}\n")).unwrap();
        assert_eq!(on(tmp.path()), None);
    }
}
