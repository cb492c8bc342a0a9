//! Throwaway copies of the database under rehearsal. On the same server a
//! copy is `CREATE DATABASE ... TEMPLATE source` (with `STRATEGY FILE_COPY`
//! on 15+), used only when the role may create databases and nobody else is
//! connected to the source; otherwise the source is dumped once into a
//! throwaway cluster (or sampled, see `sample.rs`, or a backup restored
//! there), and copies are made from that. The source is only read. Copies
//! carry a marker (owner host and pid) so a rehearsal killed mid-way leaves
//! nothing the next one does not remove.

use postgres::Client;
use serde::Serialize;

use super::dump::{
    carry_settings, connect_source, connect_to, copy_history, db_err, left_out_args, pipe_dump,
    prepare_cluster, source_dbname,
};
use super::runs_as::RunsAs;
use super::sample::{sample_into, SampleInfo};
use super::{CopyError, Copying};
use crate::backup::{self, Store};
use crate::migrate::Settings;
use crate::pg::bins::Match;
use crate::pg::cluster::{Cluster, PgBin};
use crate::pg::conn::LibpqTarget;
use crate::pg::preload::Preload;
use crate::pg::{quote_ident, redact};

const PREFIX: &str = "backstop_rehearsal_";
const MARKER: &str = "backstop rehearsal copy; owner ";
/// The database a throwaway cluster's copy is restored into.
const BASE: &str = "rehearsal_base";

/// How the copies were made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// `CREATE DATABASE ... TEMPLATE` on the source's own server.
    Template,
    /// `pg_dump | pg_restore` into a throwaway cluster.
    Dump,
    /// A subset of the source, foreign keys kept, in a throwaway cluster.
    Sample,
    /// A backup restored into a throwaway cluster (or, for a database
    /// snapshot, copied by template on its server).
    Backup,
}

/// What the copy is, for the report.
#[derive(Debug, Clone, Serialize)]
pub struct CopyInfo {
    pub method: Method,
    /// The source, password masked.
    pub source: String,
    pub source_size_bytes: i64,
    pub schema_only: bool,
    /// Why the faster template copy was not used, if it was not.
    pub fallback_reason: Option<String>,
    /// The backup rehearsed on, with `--from-backup`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup_id: Option<String>,
    /// What a `--sample` copy holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample: Option<SampleInfo>,
}

impl CopyInfo {
    /// One line on how the copy was made, for the report and the terminal.
    pub fn describe(&self) -> String {
        let why = self.fallback_reason.as_ref().map(|w| format!(" ({w})")).unwrap_or_default();
        match self.method {
            Method::Template => "template copy on the source's server".to_string(),
            Method::Dump => format!("dump into a throwaway cluster{why}"),
            Method::Sample => match &self.sample {
                Some(s) => format!(
                    "{}% sample into a throwaway cluster: {} rows, foreign keys kept{}",
                    s.percent,
                    s.rows,
                    if s.whole_tables.is_empty() {
                        String::new()
                    } else {
                        format!("; copied whole: {}", s.whole_tables.join(", "))
                    }
                ),
                None => "sample into a throwaway cluster".to_string(),
            },
            Method::Backup => format!(
                "backup {} restored into a throwaway cluster{why}",
                self.backup_id.as_deref().unwrap_or("?")
            ),
        }
    }
}

/// One copy: a database on the server of `server_url`.
#[derive(Debug, Clone)]
pub struct CopyDb {
    pub server_url: String,
    pub dbname: String,
    /// The role its sessions work as, where not the one they log in as
    /// (see [`RunsAs`]).
    pub role: Option<String>,
}

impl CopyDb {
    /// A session on the copy. Its commits do not wait for the WAL flush:
    /// a copy is thrown away, and a crash loses it whole anyway.
    pub fn connect(&self) -> Result<Client, CopyError> {
        let mut client =
            crate::pg::conn::connect_db(&self.server_url, Some(&self.dbname), "backstop rehearse")
                .map_err(CopyError::Connect)?;
        let role = self.role.as_deref().map(|r| format!("; SET ROLE {}", quote_ident(r)));
        client
            .batch_execute(&format!("SET synchronous_commit = off{}", role.unwrap_or_default()))
            .map_err(db_err("setting up the session on the copy"))?;
        Ok(client)
    }

    /// A `key=value` connection string for the copy, password included, for
    /// code that takes a database URL (backup, restore). Never shown: the
    /// redaction of connection strings masks `password=`.
    pub fn conninfo(&self) -> Result<String, CopyError> {
        let target = LibpqTarget::from_url(&self.server_url, Some(&self.dbname))
            .map_err(CopyError::Connect)?;
        Ok(match target.password {
            Some(p) => format!(
                "{} password='{}'",
                target.conninfo,
                p.replace('\\', "\\\\").replace('\'', "\\'")
            ),
            None => target.conninfo,
        })
    }
}

/// Where copies are made; drops every copy it made when dropped.
pub struct Workspace {
    /// A URL to the server the copies live on, database part replaced per copy.
    server_url: String,
    template: String,
    /// Every database made here, dropped with the workspace (a lock: a
    /// scenario played beside the round trips adopts what it restores).
    made: std::sync::Mutex<Vec<String>>,
    cluster: Option<Cluster>,
    run_id: String,
    /// The database copies are marked as copies of (for `status`).
    of: String,
    pub info: CopyInfo,
    /// Set when the migrations change what the whole server shares: roles
    /// a copy's migrations made would be in the next copy's way, so every
    /// copy after the first gets a throwaway cluster of its own, its roles
    /// from this source.
    isolated_from: Option<String>,
    /// Those clusters.
    more: Vec<Cluster>,
    /// The role sessions on copies in a throwaway cluster work as.
    runs_as: Option<RunsAs>,
}

/// A throwaway cluster for copies of the source at `source_url` (see
/// [`copy_cluster`]), and the role the source's sessions are where it is
/// no superuser, its name freed in the cluster ([`RunsAs`]).
fn cluster_for(
    source_url: &str,
    (major, bytes, preload): (u32, u64, &Preload),
) -> Result<(Cluster, Option<RunsAs>), CopyError> {
    let mut cluster = copy_cluster(major, bytes, preload)?;
    let runs_as = RunsAs::of(&mut connect_source(source_url)?)?;
    if let Some(runs_as) = &runs_as {
        runs_as.free_name(&mut cluster)?;
    }
    Ok((cluster, runs_as))
}

/// A connection to a maintenance database of the server `url` points at.
fn admin(url: &str) -> Result<Client, CopyError> {
    connect_to(url, "postgres").or_else(|_| connect_to(url, "template1"))
}

/// The comment a copy carries: who made it (`host pid`) and of what.
fn owner_marker(of: &str) -> String {
    let host =
        nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_default();
    format!("{MARKER}{host} {}{OF}{of}", std::process::id())
}

/// Where the copied database's name starts in the comment.
const OF: &str = "; of ";

/// Whether process `pid` of this host is gone.
fn dead(pid: &str) -> bool {
    pid.parse::<i32>().is_ok_and(|pid| {
        matches!(
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
            Err(nix::errno::Errno::ESRCH)
        )
    })
}

/// The name every rehearsal temp dir starts with; the owner's pid follows
/// the kind: `backstop-rehearsal-backups-<pid>-<random>`.
const TEMP_PREFIX: &str = "backstop-rehearsal-";

/// A temp dir of this rehearsal, made mode 0700 at once (it holds dumps of the copy):
/// its name carries this process's pid, so that if the rehearsal is killed
/// the next one removes it.
pub(crate) fn owned_temp_dir(kind: &str) -> Result<tempfile::TempDir, CopyError> {
    use std::os::unix::fs::PermissionsExt as _;
    let io = |source| CopyError::Io {
        action: "create a temp dir in",
        path: std::env::temp_dir(),
        source,
    };
    let dir = tempfile::Builder::new()
        .prefix(&format!("{TEMP_PREFIX}{kind}-{}-", std::process::id()))
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir()
        .map_err(io)?;
    Ok(dir)
}

/// Removes temp dirs of rehearsals whose process is gone.
pub(crate) fn remove_stale_temp_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(rest) = name.strip_prefix(TEMP_PREFIX) else { continue };
        let parts: Vec<&str> = rest.split('-').collect();
        let Some(pid) = parts.len().checked_sub(2).map(|i| parts[i]) else { continue };
        if dead(pid) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// A copy of the database a rehearsal made on the source's own server and
/// left there (its process was killed): `status` lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeftCopy {
    pub database: String,
    /// `host pid` of the rehearsal that made it.
    pub owner: String,
    /// Whether that rehearsal still runs (on this host).
    pub running: bool,
}

/// The rehearsal copies of the database `client` is connected to, on its
/// server.
pub fn left_copies(client: &mut Client) -> Result<Vec<LeftCopy>, postgres::Error> {
    let this: String = client.query_one("select current_database()::text", &[])?.get(0);
    let host =
        nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_default();
    let rows = client.query(
        "select d.datname::text, coalesce(shobj_description(d.oid, 'pg_database'), '')
           from pg_database d where d.datname like $1 order by 1",
        &[&format!("{PREFIX}%")],
    )?;
    Ok(rows
        .iter()
        .filter_map(|row| {
            let (name, comment): (String, String) = (row.get(0), row.get(1));
            let (owner, of) = comment.strip_prefix(MARKER)?.split_once(OF)?;
            if of != this {
                return None;
            }
            let owner = owner.to_string();
            let running = owner.rsplit_once(' ').is_some_and(|(h, pid)| h == host && !dead(pid));
            Some(LeftCopy { database: name, owner, running })
        })
        .collect())
}

/// Drops copies left by rehearsals on this host whose process is gone.
fn drop_stale_copies(admin: &mut Client) -> Result<(), CopyError> {
    let host =
        nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_default();
    let rows = admin
        .query(
            "select d.datname::text, coalesce(shobj_description(d.oid, 'pg_database'), '')
               from pg_database d where d.datname like $1",
            &[&format!("{PREFIX}%")],
        )
        .map_err(db_err("listing earlier rehearsal copies"))?;
    for row in rows {
        let (name, comment): (String, String) = (row.get(0), row.get(1));
        let Some(owner) = comment.strip_prefix(MARKER) else { continue };
        // Older copies carry no `; of <database>`.
        let owner = owner.split_once(OF).map_or(owner, |(o, _)| o);
        let Some((owner_host, pid)) = owner.rsplit_once(' ') else { continue };
        if owner_host == host && dead(pid) {
            admin
                .batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    quote_ident(&name)
                ))
                .map_err(db_err("dropping a stale rehearsal copy"))?;
        }
    }
    Ok(())
}

/// The source server's major version.
fn server_major(admin: &mut Client) -> Result<u32, CopyError> {
    crate::pg::server_version_num(admin)
        .map(crate::pg::bins::major_of_num)
        .map_err(db_err("reading the server version"))
}

/// A throwaway cluster for a copy of a PostgreSQL `major` database: of
/// that very major, so the copy accepts and refuses what the source does,
/// and loading what the source's server `preload`s.
/// `bytes`: about what the copy holds; the rehearsal makes several copies
/// of it there (the round trip, the scenarios, scenario B's backup).
fn copy_cluster(major: u32, bytes: u64, preload: &Preload) -> Result<Cluster, CopyError> {
    let bin = PgBin::for_major(major, Match::Exact).map_err(CopyError::Cluster)?;
    Cluster::start_preloaded(bin, bytes.saturating_mul(6), preload, BASE)
        .map_err(CopyError::Cluster)
}

/// What a copy of a database of `size` bytes holds: a schema-only copy
/// holds the catalog of an empty database and the schema's empty files.
fn copy_bytes(size: i64, schema_only: bool, sample: Option<f64>) -> u64 {
    let size = size.max(0) as u64;
    match (schema_only, sample) {
        (true, _) => (16 << 20) + size / 50,
        (false, Some(percent)) => (size as f64 * percent / 100.0) as u64 + (16 << 20),
        (false, None) => size,
    }
}

impl Workspace {
    /// Prepares copies of the database `source_url` names, or of the
    /// backup or sample `options` asks for.
    /// `isolate`: why the copy must not be on the source's server (the
    /// migrations change what the whole server shares), if it must not.
    /// `extensions`: those the migrations create or drop.
    pub fn open(
        source_url: &str,
        options: &Copying<'_>,
        isolate: Option<String>,
        extensions: &[String],
    ) -> Result<Workspace, CopyError> {
        let source_db = source_dbname(source_url)?;
        let mut admin = admin(source_url)?;
        let _ = drop_stale_copies(&mut admin);
        remove_stale_temp_dirs();
        let run_id = format!("{:x}", rand::random::<u32>());
        if let Some(from) = options.from_backup {
            drop(admin);
            return Workspace::from_backup(source_url, from, run_id);
        }
        let size: i64 = admin
            .query_one("select pg_database_size($1)", &[&source_db])
            .map_err(db_err("reading the source's size"))?
            .get(0);
        let source_major = server_major(&mut admin)?;
        let preload = Preload::read(&mut admin)
            .map_err(db_err("reading what the source's server preloads"))?;
        let mut info = CopyInfo {
            method: Method::Template,
            source: redact(source_url),
            source_size_bytes: size,
            schema_only: options.schema_only,
            fallback_reason: None,
            backup_id: None,
            sample: None,
        };
        if let Some(percent) = options.sample {
            drop(admin);
            let bytes = copy_bytes(size, false, Some(percent));
            let (cluster, runs_as) = cluster_for(source_url, (source_major, bytes, &preload))?;
            info.method = Method::Sample;
            info.sample = Some(sample_into(source_url, &cluster, BASE, percent)?);
            let mut w = Workspace::new(cluster.url(BASE), BASE, Some(cluster), run_id, info);
            w.work_as(runs_as)?;
            return Ok(w);
        }
        let isolated = isolate.is_some();
        let refusal = if let Some(why) = isolate {
            Some(why)
        } else if options.schema_only {
            Some("a schema-only copy is dumped".to_string())
        } else if let Some(why) = citus_refusal(&mut admin, source_url)? {
            Some(why)
        } else if let Some(why) = bound_refusal(&preload, extensions) {
            Some(why)
        } else {
            template_refusal(&mut admin, &source_db)?
        };
        drop(admin);
        let Some(why) = refusal else {
            return Ok(Workspace::new(source_url.to_string(), &source_db, None, run_id, info));
        };
        let bytes = copy_bytes(size, options.schema_only, None);
        let (cluster, runs_as) = cluster_for(source_url, (source_major, bytes, &preload))?;
        info.method = Method::Dump;
        info.fallback_reason = Some(why);
        dump_into(source_url, &cluster, BASE, (options.schema_only, None))?;
        let mut w = Workspace::new(cluster.url(BASE), BASE, Some(cluster), run_id, info);
        w.work_as(runs_as)?;
        if isolated {
            w.isolated_from = Some(source_url.to_string());
        }
        Ok(w)
    }

    fn new(
        server_url: String,
        template: &str,
        cluster: Option<Cluster>,
        run_id: String,
        info: CopyInfo,
    ) -> Workspace {
        Workspace {
            server_url,
            template: template.to_string(),
            of: template.to_string(),
            made: std::sync::Mutex::new(Vec::new()),
            cluster,
            run_id,
            info,
            isolated_from: None,
            more: Vec::new(),
            runs_as: None,
        }
    }

    /// Has the copies of a throwaway cluster worked on as `runs_as`, the
    /// role the source's sessions are where it is no superuser
    /// ([`RunsAs::of`]). To be called before the first copy is made.
    pub fn work_as(&mut self, runs_as: Option<RunsAs>) -> Result<(), CopyError> {
        let (Some(cluster), Some(mut runs_as)) = (&self.cluster, runs_as) else { return Ok(()) };
        let mut admin = cluster.connect(&self.template).map_err(CopyError::Cluster)?;
        runs_as.ready(&mut admin, &self.template)?;
        self.runs_as = Some(runs_as);
        Ok(())
    }

    /// `settings` for the copies of this workspace: where they are worked
    /// on as the source's role, its statements on extensions run as the
    /// copy's superuser ([`Settings::extensions_as_superuser`]).
    pub fn settings_for(&self, settings: &Settings) -> Settings {
        Settings {
            extensions_as_superuser: self.runs_as.as_ref().map(|r| r.role.clone()),
            ..settings.clone()
        }
    }

    /// A copy named `dbname` on `server_url`, worked on as the role.
    fn copy_db(&self, server_url: String, dbname: String) -> CopyDb {
        CopyDb { server_url, dbname, role: self.runs_as.as_ref().map(|r| r.role.clone()) }
    }

    /// Copies of a backup: a dump is checked against its checksums and
    /// restored into a throwaway cluster; a database snapshot on the
    /// source's server is copied there by template.
    fn from_backup(
        source_url: &str,
        from: &super::FromBackup,
        run_id: String,
    ) -> Result<Workspace, CopyError> {
        let store = Store::new(&from.dir);
        let refused =
            |e: backup::BackupError| CopyError::Clone { reason: crate::kit::error::chain(&e) };
        let m = store.pick(&mut connect_source(source_url)?, &from.id).map_err(refused)?;
        let mut info = CopyInfo {
            method: Method::Backup,
            source: format!(
                "backup {} of {} ({})",
                m.id,
                m.database,
                m.created_at.format("%Y-%m-%d %H:%M UTC")
            ),
            source_size_bytes: m.size_bytes as i64,
            schema_only: false,
            fallback_reason: None,
            backup_id: Some(m.id.clone()),
            sample: None,
        };
        if m.kind == backup::Kind::Database {
            let snapshot = m.snapshot_database.clone().unwrap_or_default();
            let mut admin = admin(source_url)?;
            if let Some(why) = template_refusal(&mut admin, &snapshot)? {
                return Err(CopyError::Clone {
                    reason: format!(
                        "backup {} is database {snapshot} on the server, and {why}",
                        m.id
                    ),
                });
            }
            info.fallback_reason =
                Some(format!("a database snapshot, copied by template from {snapshot}"));
            return Ok(Workspace::new(source_url.to_string(), &snapshot, None, run_id, info));
        }
        if m.kind == backup::Kind::DataDirectory {
            return Err(CopyError::Clone {
                reason: format!(
                    "backup {} is a data directory a restore replaced, on the production server; \
                     rehearse from a restore point or a dump",
                    m.id
                ),
            });
        }
        if m.kind == backup::Kind::RestorePoint {
            // Recovered on this machine from the stanza's repository: the
            // production server is not touched.
            let cluster = backup::pgbackrest::recover(&m, &mut backup::Quiet).map_err(refused)?;
            info.fallback_reason =
                Some("a point-in-time recovery of a pgBackRest restore point".into());
            let url = cluster.socket_url(&m.database);
            return Ok(Workspace::new(url, &m.database, Some(cluster), run_id, info));
        }
        let tools = backup::tools::Tools::find().map_err(refused)?;
        let problems = backup::verify::check_files(&store, &tools, &m).map_err(refused)?;
        if !problems.is_empty() {
            return Err(refused(backup::BackupError::Corrupt { id: m.id.clone(), problems }));
        }
        let jobs = backup::create::default_jobs();
        let cluster =
            backup::verify::restore_throwaway(&store, &tools, &m, jobs, &mut backup::Quiet)
                .map_err(refused)?;
        Ok(Workspace::new(cluster.url(&m.database), &m.database, Some(cluster), run_id, info))
    }

    /// Copies made in `cluster` (a throwaway one, which nothing of the
    /// source's server shares) from its database `base`, marked as copies
    /// of `of`; `source` says what `base` holds, for the report.
    pub fn in_cluster(cluster: Cluster, base: &str, of: &str, source: String) -> Workspace {
        let info = CopyInfo {
            method: Method::Dump,
            source,
            source_size_bytes: 0,
            schema_only: true,
            fallback_reason: None,
            backup_id: None,
            sample: None,
        };
        let run_id = format!("{:x}", rand::random::<u32>());
        let mut w = Workspace::new(cluster.url(base), base, Some(cluster), run_id, info);
        w.of = of.to_string();
        w
    }

    /// Whether sessions may work on copies side by side: not where the
    /// cluster preloads a library that works in one database only
    /// (pg_cron), which follows the copy made last and restarts the
    /// server for it.
    pub fn side_by_side(&self) -> bool {
        self.cluster.as_ref().is_none_or(|c| !c.preload().names_database())
    }

    /// The throwaway cluster the copies are made in, if they are.
    pub fn cluster(&self) -> Option<&Cluster> {
        self.cluster.as_ref()
    }

    /// The database copies are made from, to work on as a copy itself,
    /// where it is a database of this workspace's own throwaway cluster
    /// (never a database of the source's server). What is done to it is
    /// done to every copy made after.
    pub fn base_in_cluster(&self) -> Option<CopyDb> {
        self.cluster.as_ref()?;
        Some(self.copy_db(self.server_url.clone(), self.template.clone()))
    }

    /// That cluster taken out with every copy in it: the caller owns it
    /// and its databases from then on.
    pub fn into_cluster(mut self) -> Option<Cluster> {
        self.made_mut().clear();
        self.cluster.take()
    }

    /// Takes over cleaning up a database made from a copy (e.g. the
    /// pre-restore snapshot a restore leaves beside it).
    pub fn adopt(&self, dbname: &str) {
        self.made.lock().unwrap_or_else(|e| e.into_inner()).push(dbname.to_string());
    }

    fn made_mut(&mut self) -> &mut Vec<String> {
        self.made.get_mut().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes a new copy.
    pub fn copy(&mut self, label: &str) -> Result<CopyDb, CopyError> {
        let made = self.made_mut().len();
        let name = self.copy_name(made, label);
        if let (Some(source), Some(first), false) = (&self.isolated_from, &self.cluster, made == 0)
        {
            // The first copy's migrations may have made roles: the next
            // copy starts in a cluster of its own, from the untouched base.
            let bytes = copy_bytes(self.info.source_size_bytes, self.info.schema_only, None);
            let (bin, preload) = (first.bin().clone(), first.preload());
            let mut cluster =
                Cluster::start_preloaded(bin, bytes.saturating_mul(2), &preload, &name)
                    .map_err(CopyError::Cluster)?;
            if let Some(runs_as) = &self.runs_as {
                runs_as.free_name(&mut cluster)?;
            }
            prepare_cluster(source, &cluster)?;
            cluster.create_database(&name, None).map_err(CopyError::Cluster)?;
            let mut base = admin(&self.server_url)?;
            let settings = super::globals::database_settings(&mut base, &self.template)
                .map_err(db_err("reading the database's settings"))?;
            let mut there = cluster.connect("postgres").map_err(CopyError::Cluster)?;
            let _ = super::globals::apply_database_settings(&mut there, &name, &settings);
            pipe_dump(cluster.bin(), &first.url(&self.template), &cluster.url(&name), &[])?;
            if let Some(runs_as) = &mut self.runs_as {
                let mut admin = cluster.connect(&name).map_err(CopyError::Cluster)?;
                runs_as.ready(&mut admin, &name)?;
            }
            self.made_mut().push(name.clone());
            let copy = self.copy_db(cluster.url(&name), name);
            self.more.push(cluster);
            return Ok(copy);
        }
        // A library that works in one database of the server (pg_cron)
        // works in this copy; its worker leaves the template first.
        if let Some(cluster) = self.cluster.as_mut() {
            cluster.preload_for(&name).map_err(CopyError::Cluster)?;
        }
        self.template_copy(name)
    }

    /// Makes a copy for each of `labels`, at once where the copies are
    /// made beside one another on one server (a `CREATE DATABASE` waits
    /// on checkpoints, and two wait together: about 0.3 s for two, against
    /// 0.35 to 0.5 s one after the other); one after the other elsewhere.
    pub fn copies(&mut self, labels: &[&str]) -> Result<Vec<CopyDb>, CopyError> {
        if self.isolated_from.is_some() || !self.side_by_side() || labels.len() < 2 {
            return labels.iter().map(|label| self.copy(label)).collect();
        }
        let first = self.made_mut().len();
        let names = labels.iter().enumerate().map(|(i, label)| self.copy_name(first + i, label));
        let this = &*self;
        std::thread::scope(|s| {
            let made: Vec<_> =
                names.map(|name| s.spawn(move || this.template_copy(name))).collect();
            made.into_iter().map(|m| m.join().expect("making a copy does not panic")).collect()
        })
    }

    /// The name of the copy made `index`th in this workspace, under `label`.
    fn copy_name(&self, index: usize, label: &str) -> String {
        format!("{PREFIX}{}_{index}_{label}", self.run_id)
    }

    /// Makes the copy `name` of the template on the workspace's server.
    fn template_copy(&self, name: String) -> Result<CopyDb, CopyError> {
        let mut admin = admin(&self.server_url)?;
        let strategy: i32 = admin
            .query_one("select current_setting('server_version_num')::int", &[])
            .map_err(db_err("reading the server version"))?
            .get(0);
        let strategy = if strategy >= 150000 { " STRATEGY FILE_COPY" } else { "" };
        let owner = self.runs_as.as_ref().map(RunsAs::owner_clause).unwrap_or_default();
        admin
            .batch_execute(&format!(
                "CREATE DATABASE {} TEMPLATE {}{strategy}{owner}",
                quote_ident(&name),
                quote_ident(&self.template)
            ))
            .map_err(|source| {
                CopyError::Db(crate::pg::DbError::new("copying the database", source))
            })?;
        self.adopt(&name);
        // A template copy does not carry the database's own settings.
        let settings = super::globals::database_settings(&mut admin, &self.template)
            .map_err(db_err("reading the database's settings"))?;
        let _ = super::globals::apply_database_settings(&mut admin, &name, &settings);
        admin
            .batch_execute(&format!(
                "COMMENT ON DATABASE {} IS '{}'",
                quote_ident(&name),
                owner_marker(&self.of).replace('\'', "''")
            ))
            .map_err(db_err("marking the rehearsal copy"))?;
        Ok(self.copy_db(self.server_url.clone(), name))
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        let made = std::mem::take(self.made_mut());
        if self.cluster.is_some() || made.is_empty() {
            return; // a cluster takes its databases with it
        }
        if let Ok(mut admin) = admin(&self.server_url) {
            for name in &made {
                let _ = admin.batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    quote_ident(name)
                ));
            }
        }
    }
}

/// Why a Citus database is never copied by template (its metadata would
/// point the copy at the same shards), when the source is one. The
/// session that asks is gone before this returns: a template copy needs
/// the source to itself.
fn citus_refusal(admin: &mut Client, source_url: &str) -> Result<Option<String>, CopyError> {
    let mut source = connect_source(source_url)?;
    let pid: i32 = source
        .query_one("select pg_backend_pid()", &[])
        .map_err(db_err("reading the source's extensions"))?
        .get(0);
    let facts = crate::rollout::citus::facts(&mut source)
        .map_err(db_err("reading the source's extensions"))?;
    drop(source);
    // A closed session leaves within a millisecond or two, most often
    // before the first look: pauses from 2 ms, as a swap's wait.
    let mut backoff = crate::kit::duration::Backoff::up_to(std::time::Duration::from_millis(20));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while std::time::Instant::now() < deadline {
        let gone: bool = admin
            .query_one("select not exists (select from pg_stat_activity where pid = $1)", &[&pid])
            .map_err(db_err("checking for other sessions"))?
            .get(0);
        if gone {
            break;
        }
        backoff.pause();
    }
    Ok(crate::rollout::citus::template_copy_refusal(&facts))
}

/// Why a copy on the source's server could not run the migrations, when
/// they create or drop an extension that its server lets one database
/// hold only (pg_cron, in the database `cron.database_name` names).
fn bound_refusal(preload: &Preload, extensions: &[String]) -> Option<String> {
    let (extension, database) = preload.bound_extension()?;
    extensions.iter().any(|e| e == extension).then(|| {
        format!(
            "the migrations create or drop extension {extension}, which the source's server \
             lets database {database} hold only (cron.database_name); the copy's cluster lets \
             the copy hold it"
        )
    })
}

/// Why a template copy on the source's server is not possible, if it is not.
fn template_refusal(admin: &mut Client, source_db: &str) -> Result<Option<String>, CopyError> {
    let can: bool = admin
        .query_one(
            "select rolsuper or (rolcreatedb and exists (
                 select 1 from pg_database d where d.datname = $1
                    and (d.datistemplate or pg_has_role(d.datdba, 'MEMBER'))))
               from pg_roles where rolname = current_user",
            &[&source_db],
        )
        .map_err(db_err("checking the right to create databases"))?
        .get(0);
    if !can {
        return Ok(Some(
            "the role may not create databases from the source (needs CREATEDB and ownership)"
                .into(),
        ));
    }
    let others: i64 = admin
        .query_one(
            "select count(*) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()",
            &[&source_db],
        )
        .map_err(db_err("checking for other sessions"))?
        .get(0);
    if others > 0 {
        return Ok(Some(format!(
            "{others} other session(s) are connected to the source; a template copy would need them gone"
        )));
    }
    Ok(None)
}

/// `pg_dump -Fc source | pg_restore -d cluster/base`, the cluster readied
/// first (the source's roles) and the database's own settings carried;
/// pg_dump waits `lock_wait` at most for a table's lock.
pub fn dump_into(
    source_url: &str,
    cluster: &Cluster,
    base: &str,
    (schema_only, lock_wait): (bool, Option<std::time::Duration>),
) -> Result<(), CopyError> {
    // First: a table the dump cannot hold stops it before anything is made.
    let mut extra = left_out_args(&mut connect_source(source_url)?, !schema_only)?;
    if let Some(wait) = lock_wait {
        extra.push(format!("--lock-wait-timeout={}ms", wait.as_millis().max(1)));
    }
    prepare_cluster(source_url, cluster)?;
    cluster.create_database(base, None).map_err(CopyError::Cluster)?;
    carry_settings(source_url, cluster, base)?;
    if schema_only {
        extra.push("--schema-only".into());
    }
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    pipe_dump(cluster.bin(), source_url, &cluster.url(base), &extra)?;
    if schema_only {
        copy_history(source_url, cluster, base)?;
    }
    Ok(())
}
