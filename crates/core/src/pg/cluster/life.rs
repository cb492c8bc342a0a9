//! Starting and stopping a throwaway cluster's server without `pg_ctl`'s
//! waits: `pg_ctl start -W`, or a signal to the postmaster to stop, then
//! the postmaster's own status file (`postmaster.pid`) watched every few
//! milliseconds. `pg_ctl -w` looks a tenth of a second apart, and a small
//! cluster starts or stops in a fraction of that: every copy paid about
//! 0.1 s at each end for nothing.

use std::fs;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::{process_alive, Cluster, ClusterError};

const POLL: Duration = Duration::from_millis(5);

impl Cluster {
    /// The postmaster's pid and status (`ready`, `starting`, …), as its
    /// `postmaster.pid` says.
    fn postmaster(&self) -> Option<(i32, String)> {
        let text = fs::read_to_string(self.data_dir().join("postmaster.pid")).ok()?;
        let mut lines = text.lines();
        let pid = lines.next()?.trim().parse().ok()?;
        let status = lines.nth(6).unwrap_or_default().trim().to_string();
        Some((pid, status))
    }

    /// The server log's length, to read what a start adds to it.
    pub(super) fn log_len(&self) -> u64 {
        fs::metadata(self.dir.join("server.log")).map(|m| m.len()).unwrap_or(0)
    }

    /// What the server log says from byte `from` on.
    fn log_since(&self, from: u64) -> String {
        let log = fs::read(self.dir.join("server.log")).unwrap_or_default();
        String::from_utf8_lossy(log.get(from as usize..).unwrap_or_default()).into_owned()
    }

    /// Waits until the server `pg_ctl start -W` started takes connections;
    /// the log from `from` on says why when it does not.
    pub(super) fn wait_ready(&self, from: u64, timeout: Duration) -> Result<(), ClusterError> {
        let deadline = Instant::now() + timeout;
        loop {
            let failed = || {
                let log = self.log_since(from);
                (log.contains("FATAL:") || log.contains("PANIC:")).then_some(log)
            };
            let stopped = match self.postmaster() {
                Some((_, status)) if status == "ready" => return Ok(()),
                Some((pid, _)) if !process_alive(pid) => failed(),
                None => failed(),
                Some(_) => None,
            };
            let late = Instant::now() >= deadline;
            if stopped.is_some() || late {
                let log = stopped.unwrap_or_else(|| self.log_since(from));
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                let why = if late { "not ready in time" } else { "the server did not start" };
                return Err(ClusterError::Tool {
                    tool: "pg_ctl start".into(),
                    output: format!("{why}\n{}", tail.join("\n")),
                });
            }
            std::thread::sleep(POLL);
        }
    }

    /// Stops the server, `fast` (sessions ended, a checkpoint) or at once
    /// as a crash would, and waits until it is gone; `pg_ctl stop` where
    /// the postmaster cannot be read.
    pub(super) fn stop_server(&mut self, fast: bool) -> Result<(), ClusterError> {
        let Some((pid, _)) = self.postmaster().filter(|(pid, _)| process_alive(*pid)) else {
            let mut cmd = self.command("pg_ctl");
            let mode = if fast { "fast" } else { "immediate" };
            cmd.arg("stop").arg("-D").arg(self.data_dir()).args(["-m", mode, "-w"]);
            self.run(cmd, "pg_ctl stop")?;
            self.running = false;
            return Ok(());
        };
        let signal = if fast { Signal::SIGINT } else { Signal::SIGQUIT };
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
        // The postmaster removes its pid file as it exits; a process that
        // ended may linger unreaped for a while, so the file is the sign.
        let pid_file = self.data_dir().join("postmaster.pid");
        let deadline = Instant::now() + Duration::from_secs(60);
        while pid_file.exists() && process_alive(pid) {
            if Instant::now() >= deadline {
                return Err(ClusterError::Tool {
                    tool: "pg_ctl stop".into(),
                    output: format!("the server (pid {pid}) did not stop within 60 s"),
                });
            }
            std::thread::sleep(POLL);
        }
        self.running = false;
        Ok(())
    }
}
