//! A throwaway cluster whose data directory a physical backup wrote
//! (pgBackRest's restore): its own configuration put in place of the
//! production's, started once its recovery ends.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::{chown_tree, fresh_dir, Cluster, ClusterError, PgBin};

impl Cluster {
    /// A cluster whose data directory `restore` writes (a physical
    /// backup restored into it, with its recovery settings), started
    /// once recovery ends: reachable only over its private socket (its
    /// roles' passwords are the production's), with nothing archived.
    /// `restore` gets the data directory and the account the server runs
    /// as; the files it leaves are handed to that account.
    pub fn start_restored(
        bin: PgBin,
        restore: impl FnOnce(&Path, Option<u32>) -> Result<(), String>,
    ) -> Result<Cluster, ClusterError> {
        let (run_as, dir) = fresh_dir(None)?;
        let mut cluster = Cluster {
            bin,
            dir,
            port: 0,
            password: String::new(),
            run_as,
            watcher: None,
            running: false,
            tls_only: true,
            recovering: true,
            preload: None,
            superuser: super::SUPERUSER.to_string(),
        };
        cluster.prepare()?;
        cluster.spawn_watcher()?;
        let data = cluster.data_dir();
        restore(&data, run_as.map(|w| w.uid.as_raw()))
            .map_err(|output| ClusterError::Tool { tool: "restore".into(), output })?;
        cluster.own_restored(&data)?;
        cluster.start_server()?;
        cluster.wait_recovered()?;
        Ok(cluster)
    }

    /// Waits until a restored cluster ends its recovery and takes
    /// connections; a recovery that fails stops the server, and its log
    /// says why.
    fn wait_recovered(&self) -> Result<(), ClusterError> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3600);
        loop {
            let e = match self.connect("postgres") {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            let text = match &e {
                ClusterError::Connect(pe) => {
                    pe.as_db_error().map_or_else(|| pe.to_string(), |d| d.message().to_string())
                }
                other => other.to_string(),
            };
            let recovering = text.contains("not accepting connections")
                || text.contains("starting up")
                || text.contains("in recovery");
            if !recovering || std::time::Instant::now() >= deadline {
                let log = fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(8).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                return Err(ClusterError::Tool {
                    tool: "recovery".into(),
                    output: format!("{text}\n{}", tail.join("\n")),
                });
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// Makes a restored data directory a throwaway cluster's: owned by
    /// the server's account, its own config (the production's kept beside
    /// as `postgresql.conf.restored`; its recovery settings stay in
    /// `postgresql.auto.conf`), the socket only, no archiving.
    fn own_restored(&self, data: &Path) -> Result<(), ClusterError> {
        let conf = data.join("postgresql.conf");
        if conf.exists() {
            fs::rename(&conf, data.join("postgresql.conf.restored"))
                .map_err(|e| self.dir_err(e))?;
        }
        let settings = format!(
            "# backstop throwaway cluster, restored from a backup\nlisten_addresses = ''\n\
             unix_socket_directories = '{}'\narchive_mode = off\nhot_standby = off\n\
             fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 200\n\
             log_min_messages = warning\nhba_file = '{}'\nident_file = '{}'\n",
            self.dir.display(),
            data.join("pg_hba.conf").display(),
            data.join("pg_ident.conf").display()
        );
        fs::write(&conf, settings).map_err(|e| self.dir_err(e))?;
        fs::write(data.join("pg_hba.conf"), "local all all trust\n")
            .map_err(|e| self.dir_err(e))?;
        fs::write(data.join("pg_ident.conf"), "").map_err(|e| self.dir_err(e))?;
        fs::set_permissions(data, fs::Permissions::from_mode(0o700))
            .map_err(|e| self.dir_err(e))?;
        if let Some(who) = self.run_as {
            chown_tree(data, (who.uid.as_raw(), who.gid.as_raw())).map_err(|e| self.dir_err(e))?;
        }
        Ok(())
    }
}
