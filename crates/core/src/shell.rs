//! Running a user's shell command (a trigger's `command`, a hook) with a
//! time limit, its output read while it runs so a chatty command never
//! blocks on a full pipe.

use std::io::Read as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What a command did.
#[derive(Debug, Clone)]
pub struct Ran {
    /// `Err` says why it did not succeed (exit status, timeout, spawn).
    pub outcome: Result<(), String>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `sh -c command`, stopped after `timeout`.
pub fn run(command: &str, timeout: Duration) -> Ran {
    let mut child = match Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            return Ran {
                outcome: Err(format!("cannot run it: {e}")),
                stdout: String::new(),
                stderr: String::new(),
            }
        }
    };
    let reader = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_string(&mut s);
            }
            s
        })
    };
    let out = reader(child.stdout.take().map(|p| Box::new(p) as Box<dyn std::io::Read + Send>));
    let err = reader(child.stderr.take().map(|p| Box::new(p) as Box<dyn std::io::Read + Send>));
    let started = Instant::now();
    let outcome = loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => break Ok(()),
            Ok(Some(status)) => break Err(format!("it exited with {status}")),
            Ok(None) if started.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                break Err(format!(
                    "it did not finish within {}; stopped",
                    crate::kit::duration::human(timeout)
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => break Err(format!("waiting for it: {e}")),
        }
    };
    Ran { outcome, stdout: out.join().unwrap_or_default(), stderr: err.join().unwrap_or_default() }
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
