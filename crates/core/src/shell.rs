//! Running a user's shell command (a trigger's `command`, a hook) with a
//! time limit that holds: the command runs in a process group of its own,
//! and at the deadline the whole group is killed, children included, and
//! its pipes are no longer waited on; so are the descendants that left the
//! group (`setsid`, a daemonising script), found by the mark each of its
//! processes inherits in its environment. Output is read while it runs so
//! a chatty command never blocks on a full pipe. And the tie that makes a
//! child program (pg_dump, pg_restore) die with Backstop.

use std::os::unix::process::CommandExt as _;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a command did.
#[derive(Debug, Clone)]
pub struct Ran {
    /// `Err` says why it did not succeed (exit status, timeout, spawn).
    pub outcome: Result<(), String>,
    pub stdout: String,
    pub stderr: String,
}

/// How long output is still read after the command itself exited: a
/// child it left behind may hold the pipes open.
const DRAIN: Duration = Duration::from_millis(200);

/// A pipe read into a buffer by a thread of its own; what was read so far
/// can be taken whenever the caller stops waiting.
struct Drain {
    buffer: Arc<Mutex<Vec<u8>>>,
    done: std::sync::mpsc::Receiver<()>,
}

impl Drain {
    fn start(pipe: Option<impl std::io::Read + Send + 'static>) -> Drain {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let (tx, done) = std::sync::mpsc::channel();
        let into = buffer.clone();
        std::thread::spawn(move || {
            if let Some(mut p) = pipe {
                let mut chunk = [0u8; 8192];
                while let Ok(n) = p.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    into.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(&chunk[..n]);
                }
            }
            let _ = tx.send(());
        });
        Drain { buffer, done }
    }

    /// What was read, after waiting at most until `until` for the end.
    fn take(self, until: Instant) -> String {
        let _ = self.done.recv_timeout(until.saturating_duration_since(Instant::now()));
        let bytes = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// Kills every process of the group `pgid` (the command and its children).
fn kill_group(pgid: u32) {
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pgid as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
}

/// The environment variable every process of a run inherits, naming the
/// run: a descendant that left the process group still carries it.
const RUN_MARK: &str = "BACKSTOP_RUN";

/// A mark no other run of any Backstop process shares.
fn new_mark() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{}-{n}-{nanos}", std::process::id())
}

/// The processes (other than this one) whose environment holds
/// `RUN_MARK=mark`; those of other users cannot be read, and are none of
/// ours.
fn marked(mark: &str) -> Vec<nix::unistd::Pid> {
    let entry = format!("{RUN_MARK}={mark}\0");
    let inner = format!("\0{entry}");
    let holds = |env: &[u8], needle: &[u8]| env.windows(needle.len()).any(|w| w == needle);
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.starts_with(entry.as_bytes()) || holds(&env, inner.as_bytes()))
        })
        .map(|pid| nix::unistd::Pid::from_raw(pid as i32))
        .collect()
}

/// Kills the processes that carry the run's mark: stopped first, so that
/// none forks another in between, then killed; again until none is left
/// (a bounded number of rounds).
fn kill_marked(mark: &str) {
    use nix::sys::signal::{kill, Signal};
    for _ in 0..20 {
        let found = marked(mark);
        if found.is_empty() {
            return;
        }
        for pid in &found {
            let _ = kill(*pid, Signal::SIGSTOP);
        }
        for pid in &found {
            let _ = kill(*pid, Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs `sh -c command` in a process group of its own, stopped after
/// `timeout`: the whole group, and the descendants that left it.
pub fn run(command: &str, timeout: Duration) -> Ran {
    let mark = new_mark();
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(command)
        .env(RUN_MARK, &mark)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    die_with_parent(&mut cmd);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return Ran {
                outcome: Err(format!("cannot run it: {e}")),
                stdout: String::new(),
                stderr: String::new(),
            }
        }
    };
    let pgid = child.id();
    let out = Drain::start(child.stdout.take());
    let err = Drain::start(child.stderr.take());
    let started = Instant::now();
    let outcome = loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => break Ok(()),
            Ok(Some(status)) => break Err(format!("it exited with {status}")),
            Ok(None) if started.elapsed() > timeout => {
                kill_group(pgid);
                kill_marked(&mark);
                let _ = child.wait();
                break Err(format!(
                    "it did not finish within {}; stopped, with its children",
                    crate::kit::duration::human(timeout)
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => break Err(format!("waiting for it: {e}")),
        }
    };
    // Children the command left running keep its pipes open: what they
    // wrote in a moment is kept, and they are not waited for.
    let until = Instant::now() + DRAIN;
    Ran { outcome, stdout: out.take(until), stderr: err.take(until) }
}

/// Makes the child of `cmd` die when Backstop does, however it ends (a
/// SIGKILL included): the kernel sends it SIGKILL when its parent goes.
pub fn die_with_parent(cmd: &mut Command) {
    tie(cmd, false);
}

/// As [`die_with_parent`], and the files the child creates are readable
/// by their owner only (a dump, a restore's work files).
pub fn die_with_parent_privately(cmd: &mut Command) {
    tie(cmd, true);
}

/// A command for `program` whose own children (a parallel `pg_dump`'s or
/// `pg_restore`'s workers) die with Backstop too: it runs under `sh` as
/// the leader of a process group of its own, and when Backstop goes (a
/// SIGKILL included) the kernel sends that shell SIGTERM, on which it
/// kills the whole group. Its exit status is the program's; files it
/// creates are readable by their owner only.
pub fn group_dying_with_parent(program: &std::path::Path) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("trap 'kill -KILL 0' TERM; \"$0\" \"$@\" <&0 & wait $!")
        .arg(program)
        .process_group(0);
    tie_with(&mut cmd, true, nix::sys::signal::Signal::SIGTERM);
    cmd
}

fn tie(cmd: &mut Command, private: bool) {
    tie_with(cmd, private, nix::sys::signal::Signal::SIGKILL);
}

fn tie_with(cmd: &mut Command, private: bool, signal: nix::sys::signal::Signal) {
    let parent = std::process::id();
    // SAFETY: umask, prctl, getppid and _exit are async-signal-safe system
    // calls with no allocation; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if private {
                nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
            }
            let _ = nix::sys::prctl::set_pdeathsig(signal);
            // The parent may have died before the tie was made.
            if nix::unistd::getppid().as_raw() as u32 != parent {
                nix::libc::_exit(1);
            }
            Ok(())
        });
    }
}

/// `text` cut to about `limit` bytes on a character boundary, saying so.
pub fn truncated(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_string();
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &text[..end], text.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeout_stops_the_children_too_and_does_not_wait_for_them() {
        // Regression: only `sh` was killed, and reading its pipes waited
        // for `sleep 20` to end.
        let started = Instant::now();
        let ran = run("sleep 20; echo 0.5", Duration::from_millis(300));
        assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
        assert!(ran.outcome.unwrap_err().contains("did not finish"));
        assert_eq!(ran.stdout, "");
    }

    #[test]
    fn a_child_left_in_the_background_does_not_hold_the_command() {
        let started = Instant::now();
        let ran = run("sleep 20 & echo 0.5", Duration::from_secs(10));
        assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
        assert_eq!(ran.outcome, Ok(()));
        assert_eq!(ran.stdout.trim(), "0.5");
    }

    /// Whether process `pid` is gone (or only a zombie waiting for its reaper).
    fn gone(pid: i32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(stat) => {
                stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z'))
            }
        }
    }

    #[test]
    fn a_timeout_stops_a_grandchild_that_left_the_group_with_setsid() {
        // Regression: `setsid` puts the grandchild in a session and group
        // of its own, out of reach of the group kill, and it outlived the
        // hook's timeout.
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let command = format!(
            "setsid sh -c 'echo $$ > {0}.tmp; mv {0}.tmp {0}; exec sleep 300' & sleep 60",
            pidfile.display()
        );
        let ran = run(&command, Duration::from_millis(500));
        assert!(ran.outcome.unwrap_err().contains("did not finish"));
        let pid: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !gone(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let alive = !gone(pid);
        if alive {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        assert!(!alive, "the setsid grandchild {pid} outlived the timeout");
    }

    /// A parallel pg_dump's workers are its children: when the thread
    /// that started it ends (as when Backstop is killed), the whole group
    /// goes, grandchildren included, and the exit status is the program's.
    #[test]
    fn a_group_dying_with_its_parent_takes_the_programs_children_along() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let script =
            format!("sleep 300 & echo $! > {0}.tmp; mv {0}.tmp {0}; wait", pidfile.display());
        let started = std::thread::spawn(move || {
            let mut cmd = group_dying_with_parent(std::path::Path::new("/bin/sh"));
            let mut child = cmd.arg("-c").arg(script).spawn().unwrap();
            let deadline = Instant::now() + Duration::from_secs(5);
            while !pidfile.exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            let pid: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
            std::thread::spawn(move || child.wait());
            pid
        });
        let worker = started.join().unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !gone(worker) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let alive = !gone(worker);
        if alive {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(worker),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        assert!(!alive, "the program's child {worker} outlived the thread that started it");
        let status = group_dying_with_parent(std::path::Path::new("/bin/sh"))
            .args(["-c", "exit 7"])
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(7));
    }

    #[test]
    fn output_and_exit_status_are_kept() {
        let ran = run("echo out; echo err >&2; exit 3", Duration::from_secs(10));
        assert_eq!(ran.stdout, "out\n");
        assert_eq!(ran.stderr, "err\n");
        assert!(ran.outcome.unwrap_err().contains("exit status: 3"));
    }
}
