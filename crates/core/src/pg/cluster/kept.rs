//! A throwaway cluster kept after use: stopped cleanly and its data
//! directory moved beside the clusters (the same file system, so moving
//! costs nothing) under a key that says what it holds (see
//! `downs::kept`), so that the next run needing the same copy moves it in
//! and starts it instead of restoring a schema into a new one.

use std::os::unix::fs::MetadataExt;
use std::process::Stdio;

use super::{chown_tree, Cluster, ClusterError, PgBin};
use crate::pg::preload::Preload;

impl Cluster {
    /// A cluster started from the copy kept under `key`, with the
    /// preload `preload` pointed at `database`; `None` when none is kept.
    pub fn start_kept(
        bin: PgBin,
        bytes: u64,
        preload: &Preload,
        database: &str,
        key: &str,
    ) -> Result<Option<Cluster>, ClusterError> {
        let preload = (!preload.is_empty()).then(|| (preload.clone(), database.to_string()));
        let mut cluster = Cluster::unstarted(bin, false, Some(bytes), preload.as_ref())?;
        let data = cluster.data_dir();
        let Some(base) = cluster.dir.parent() else { return Ok(None) };
        if !crate::pg::template::take_kept_copy(base, key, cluster.bin.major, &data) {
            return Ok(None);
        }
        // Kept by a cluster that ran as the same account, as a rule.
        let owner = std::fs::metadata(&data).map(|m| m.uid()).ok();
        if let Some(who) = cluster.run_as.filter(|w| owner != Some(w.uid.as_raw())) {
            chown_tree(&data, (who.uid.as_raw(), who.gid.as_raw()))
                .map_err(|e| cluster.dir_err(e))?;
        }
        cluster.write_settings()?;
        cluster.start_as_made(preload, None)?;
        Ok(Some(cluster))
    }

    /// Stops the server cleanly and keeps its data directory under `key`
    /// for [`Cluster::start_kept`]; the cluster is gone after, as on drop.
    /// Best effort: a copy that cannot be kept is only not kept.
    pub fn stop_and_keep(mut self, key: &str) {
        if self.stop_server(true).is_err() {
            return;
        }
        let mut cmd = self.command("pg_controldata");
        cmd.arg(self.data_dir()).env("LC_ALL", "C").stdin(Stdio::null());
        let Ok(out) = cmd.output() else { return };
        let text = String::from_utf8_lossy(&out.stdout);
        let wal = text
            .lines()
            .find_map(|l| l.strip_prefix("Latest checkpoint's REDO WAL file:"))
            .map(str::trim)
            .filter(|w| !w.is_empty());
        if let (true, Some(wal), Some(base)) = (out.status.success(), wal, self.dir.parent()) {
            crate::pg::template::keep_copy(&self.data_dir(), base, key, self.bin.major, wal);
        }
    }
}
