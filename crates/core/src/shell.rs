//! Running a user's shell command (a trigger's `command`, a hook) with a
//! time limit that holds: the command runs in a process group of its own,
//! and at the deadline the whole group is killed, children included, and
//! its pipes are no longer waited on. Output is read while it runs so a
//! chatty command never blocks on a full pipe. And the tie that makes a
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

/// Runs `sh -c command` in a process group of its own, stopped (the whole
/// group) after `timeout`.
pub fn run(command: &str, timeout: Duration) -> Ran {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(command)
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

fn tie(cmd: &mut Command, private: bool) {
    let parent = std::process::id();
    // SAFETY: umask, prctl, getppid and _exit are async-signal-safe system
    // calls with no allocation; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if private {
                nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
            }
            let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
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

    #[test]
    fn output_and_exit_status_are_kept() {
        let ran = run("echo out; echo err >&2; exit 3", Duration::from_secs(10));
        assert_eq!(ran.stdout, "out\n");
        assert_eq!(ran.stderr, "err\n");
        assert!(ran.outcome.unwrap_err().contains("exit status: 3"));
    }
}
