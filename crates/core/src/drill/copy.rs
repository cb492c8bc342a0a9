//! The copy a drill works on: the backup restored into a throwaway cluster
//! of the target's major, the target's roles (attributes, memberships,
//! settings; never a password or a login) and the database's own settings
//! made there first, the restore checked against the backup's manifest.
//! The target is only read. Also the schema a release started from, when
//! only the release's own backup still holds it.

use postgres::Client;

use crate::backup::{self, Kind, Manifest, Store, Tools};
use crate::copies::globals;
use crate::kit::error::chain;
use crate::pg::cluster::{Cluster, PgBin};
use crate::pg::fingerprint::Schema;

/// The restored copy: its cluster (stopped and removed when dropped) and
/// the database in it.
pub(super) struct Copy {
    pub cluster: Cluster,
    /// A URL of the copy's database, password included: never shown.
    pub url: String,
}

impl Copy {
    /// A session on the copy, exempt from the write freeze a restore sets.
    pub fn connect(&self) -> Result<Client, String> {
        let mut client = crate::pg::connect(&self.url, "backstop drill").map_err(|e| chain(&e))?;
        crate::freeze::exempt(&mut client).map_err(|e| chain(&e))?;
        Ok(client)
    }
}

/// A throwaway cluster for backup `m`: a dump's, of the target's major
/// (`bin`); a restore point's, recovered from its repository.
pub(super) fn start(bin: &PgBin, m: &Manifest) -> Result<Copy, String> {
    let cluster = match m.kind {
        Kind::RestorePoint => {
            backup::pgbackrest::recover(m, &mut backup::Quiet).map_err(|e| chain(&e))?
        }
        _ => {
            // What the backup's extensions need preloaded (pg_cron).
            let names = m.extensions.iter().map(|e| e.name.as_str());
            let preload = crate::pg::preload::Preload::for_extensions(names);
            Cluster::start_with_preload(bin.clone(), &preload, &m.database)
                .map_err(|e| chain(&e))?
        }
    };
    let url = match m.kind {
        Kind::RestorePoint => cluster.socket_url(&m.database),
        _ => cluster.url(&m.database),
    };
    Ok(Copy { cluster, url })
}

/// Fills the copy with backup `m` (a dump: its checksums checked first;
/// a restore point is recovered already) and checks it against the
/// manifest. What it did, in a line, or why it failed.
pub(super) fn fill(
    copy: &Copy,
    target: &mut Client,
    store: &Store,
    tools: &Tools,
    m: &Manifest,
    jobs: usize,
) -> Result<String, String> {
    let age = crate::kit::duration::age(m.age(chrono::Utc::now()));
    let size = crate::kit::size::human(m.size_bytes);
    if m.kind == Kind::Dump {
        let problems = backup::verify::check_files(store, tools, m).map_err(|e| chain(&e))?;
        if !problems.is_empty() {
            return Err(format!("backup {} failed its checksums: {}", m.id, problems.join("; ")));
        }
        let mut admin = copy.cluster.connect("postgres").map_err(|e| chain(&e))?;
        globals::copy_roles(target, &mut admin)
            .map_err(|e| format!("copying the target's roles: {}", chain(&e)))?;
        backup::verify::ensure_database(&mut admin, m)
            .map_err(|e| format!("creating the copy's database: {}", chain(&e)))?;
        let settings = globals::database_settings(target, &m.database)
            .map_err(|e| format!("reading the database's settings: {}", chain(&e)))?;
        let refused = globals::apply_database_settings(&mut admin, &m.database, &settings);
        drop(admin);
        backup::verify::restore_into(&copy.cluster, store, tools, m, jobs, &mut backup::Quiet)
            .map_err(|e| chain(&e))?;
        if !refused.is_empty() {
            return Err(format!(
                "the copy refused the database's settings: {}",
                refused.join("; ")
            ));
        }
    }
    let mut client = copy.connect()?;
    let checked = if m.row_counts.is_empty() {
        "(the restore point records no row counts to check)".to_string()
    } else {
        let differences = backup::verify::compare(&mut client, m).map_err(|e| chain(&e))?;
        if !differences.is_empty() {
            return Err(format!(
                "backup {} restored, but it does not match its manifest: {}",
                m.id,
                differences.join("; ")
            ));
        }
        format!(
            "{} table(s), {} row(s) and the schema match its manifest",
            m.row_counts.len(),
            m.row_counts.values().sum::<i64>()
        )
    };
    Ok(format!(
        "backup {} ({age} old, {size}) restored into a throwaway PostgreSQL {} cluster: {checked}",
        m.id,
        copy.cluster.bin().major
    ))
}

/// The schema before a release, from the release's own backup `id`
/// (restored without its rows into a second database of the copy's
/// cluster): what method C must bring the copy back to.
pub(super) fn schema_of_backup(
    copy: &Copy,
    store: &Store,
    tools: &Tools,
    id: &str,
) -> Result<Schema, String> {
    let m = store.load(id).map_err(|e| chain(&e))?;
    if m.kind != Kind::Dump {
        return Err(format!("backup {id} is a {:?} backup, not a dump", m.kind).to_lowercase());
    }
    let problems = backup::verify::check_files(store, tools, &m).map_err(|e| chain(&e))?;
    if !problems.is_empty() {
        return Err(format!("backup {id} failed its checksums: {}", problems.join("; ")));
    }
    const REFERENCE: &str = "drill_schema_before_the_release";
    copy.cluster.create_database(REFERENCE, None).map_err(|e| chain(&e))?;
    let mut reference = backup::verify::arm(&copy.cluster, &m, REFERENCE).map_err(|e| chain(&e))?;
    let tools = tools.fit(m.written_by_num()).map_err(|e| chain(&e))?;
    let target =
        backup::tools::target(&copy.cluster.url(REFERENCE), None).map_err(|e| chain(&e))?;
    let mut cmd = tools.command("pg_restore", &target);
    cmd.args(["--schema-only", "--no-tablespaces", "--exit-on-error"])
        .arg(format!("--dbname={}", target.conninfo))
        .arg(store.dump_dir(id));
    let out = cmd.output().map_err(|e| format!("running pg_restore: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "pg_restore --schema-only of backup {id}: {}",
            backup::tools::tail(&String::from_utf8_lossy(&out.stderr))
        ));
    }
    crate::pg::extension_owners::disarm(&mut reference).map_err(|e| chain(&e))?;
    Schema::read(&mut reference).map_err(|e| chain(&e))
}
