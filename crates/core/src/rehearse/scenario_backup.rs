//! The backup scenarios B and C take of their copy's start, in a
//! temporary store that goes with it, and its restore over the copy.

use super::RehearseError;
use crate::copies::clone;
use crate::migrate::Settings;

/// A backup of a copy, in a temp store that goes with it.
pub(super) struct BackedUp {
    _dir: tempfile::TempDir,
    store: crate::backup::Store,
    tools: crate::backup::Tools,
    pub(super) manifest: crate::backup::manifest::Manifest,
}

impl BackedUp {
    /// Backs up the copy; `Ok(Err(why))` when the backup itself failed,
    /// which fails the scenario rather than the rehearsal.
    pub(super) fn take(
        conninfo: &str,
        settings: &Settings,
    ) -> Result<Result<BackedUp, String>, RehearseError> {
        use crate::backup::{create, Quiet, Store, Tools};
        use crate::kit::error::chain;
        let dir = clone::owned_temp_dir("backups")?;
        let store = Store::new(dir.path());
        let tools = match Tools::find() {
            Ok(tools) => tools,
            Err(e) => return Ok(Err(format!("no pg_dump to back up with: {}", chain(&e)))),
        };
        let options = create::CreateOptions {
            label: Some("rehearsal".into()),
            jobs: create::default_jobs(),
            lock_wait: settings.lock_wait,
        };
        Ok(match create::create(conninfo, &store, &tools, &options, &mut Quiet) {
            Ok(manifest) => Ok(BackedUp { _dir: dir, store, tools, manifest }),
            Err(e) => Err(format!("the pre-migration backup failed: {}", chain(&e))),
        })
    }

    /// Restores the backup over the copy with the restore command's machinery.
    pub(super) fn restore(
        &self,
        conninfo: &str,
        settings: &Settings,
    ) -> Result<crate::backup::restore::RestoreReport, String> {
        use crate::backup::{create, restore, Quiet};
        use crate::kit::error::chain;
        let options = restore::RestoreOptions {
            jobs: create::default_jobs(),
            resume: false,
            lock_wait: settings.lock_wait,
            whole_cluster: false,
            server: Default::default(),
            mode: Default::default(),
            schemas: Vec::new(),
        };
        restore::restore(
            conninfo,
            &self.store,
            &self.tools,
            &self.manifest.id,
            &options,
            &Default::default(),
            &mut Quiet,
        )
        .map_err(|e| format!("the restore failed: {}", chain(&e)))
    }
}
