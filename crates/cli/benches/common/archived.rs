//! A throwaway cluster archiving its WAL into a pgBackRest repository of
//! its own, with one full backup: shared by the pgBackRest tests and the
//! benchmark, which run pgBackRest's real binary.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context as _};
use backstop_core::pg::cluster::Cluster;

/// A cluster archiving into a pgBackRest repository (stanza `main`).
pub struct Archived {
    pub cluster: Cluster,
    /// Holds pgBackRest's config, repository, logs and locks.
    pub home: tempfile::TempDir,
}

impl Archived {
    /// pgBackRest's config file.
    pub fn config(&self) -> PathBuf {
        self.home.path().join("pgbackrest.conf")
    }

    /// pgBackRest for stanza `main`, as the cluster's owner (`postgres`
    /// when run as root), as its archive_command runs.
    pub fn pgbackrest(&self, args: &[&str]) -> Command {
        let mut cmd = if nix::unistd::Uid::effective().is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", "pgbackrest"]);
            c
        } else {
            Command::new("pgbackrest")
        };
        cmd.arg(format!("--config={}", self.config().display())).arg("--stanza=main").args(args);
        cmd
    }

    /// Runs pgBackRest; its standard output.
    pub fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self.pgbackrest(args).output().context("running pgbackrest")?;
        if !out.status.success() {
            bail!(
                "pgbackrest {args:?} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Starts a cluster, lets `fill` put data in it, turns WAL archiving
    /// into a new stanza on, and takes a full backup.
    pub fn start(fill: impl FnOnce(&Cluster) -> anyhow::Result<()>) -> anyhow::Result<Archived> {
        let mut cluster = Cluster::start().context("starting a throwaway cluster")?;
        fill(&cluster)?;
        let home = tempfile::Builder::new().prefix("backstop-pgbackrest-").tempdir()?;
        for sub in ["repo", "log", "lock"] {
            std::fs::create_dir(home.path().join(sub))?;
        }
        let data = cluster.dir().join("data");
        let p = |s: &str| home.path().join(s).display().to_string();
        std::fs::write(
            home.path().join("pgbackrest.conf"),
            format!(
                "[global]\nrepo1-path={}\nrepo1-retention-full=2\nlog-path={}\nlock-path={}\n\
                 log-level-console=warn\nlog-level-file=off\nstart-fast=y\narchive-timeout=20\n\
                 compress-type=lz4\nprocess-max=2\n\n\
                 [main]\npg1-path={}\npg1-port={}\npg1-socket-path={}\npg1-user=postgres\n",
                p("repo"),
                p("log"),
                p("lock"),
                data.display(),
                cluster.port(),
                cluster.dir().display()
            ),
        )?;
        if nix::unistd::Uid::effective().is_root() {
            let status =
                Command::new("chown").args(["-R", "postgres"]).arg(home.path()).status()?;
            if !status.success() {
                bail!("chown of {} failed", home.path().display());
            }
        }
        // The throwaway cluster commits asynchronously: without a
        // checkpoint the immediate stop loses what `fill` just committed.
        cluster.connect("postgres")?.batch_execute("CHECKPOINT")?;
        cluster.stop_immediate()?;
        let conf = data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf)?;
        text.push_str(&format!(
            "archive_mode = on\nwal_level = replica\n\
             archive_command = 'pgbackrest --config={} --stanza=main archive-push %p'\n",
            home.path().join("pgbackrest.conf").display()
        ));
        std::fs::write(&conf, text)?;
        cluster.restart()?;
        let archived = Archived { cluster, home };
        archived.run(&["stanza-create"])?;
        archived.run(&["--type=full", "backup"])?;
        Ok(archived)
    }
}
