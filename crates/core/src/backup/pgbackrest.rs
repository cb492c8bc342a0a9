//! pgBackRest as the backup engine: for databases too big to dump before
//! every migration, the team's physical backups with continuous WAL
//! archiving are the safety net. The gate proves that net holds (the
//! stanza is healthy, archiving works, the latest backup is complete and
//! recent) and then marks the moment before the migration with a named
//! restore point whose WAL is archived: recovery to that name brings the
//! cluster back to exactly that moment. The record is a manifest in the
//! same store as dumps, of kind [`Kind::RestorePoint`].

use std::process::Command;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use postgres::Client;
use serde::Deserialize;

use super::config::BackupSection;
use super::identity::Source;
use super::manifest::{Check, Kind, Manifest, RestorePoint, Verification};
use super::store::new_id;
use super::{BackupError, Note, Progress};
use crate::kit::duration;

/// How to run pgBackRest for one stanza.
#[derive(Debug, Clone)]
pub struct PgBackRest {
    command: Vec<String>,
    stanza: String,
    config: Option<std::path::PathBuf>,
}

impl PgBackRest {
    /// pgBackRest as it was run for a restore point.
    pub fn of_point(point: &RestorePoint) -> PgBackRest {
        let command = if point.command.is_empty() {
            vec!["pgbackrest".into()]
        } else {
            point.command.clone()
        };
        PgBackRest { command, stanza: point.stanza.clone(), config: point.config.clone() }
    }

    /// pgBackRest as `[backup]` says to run it; `None` for another engine.
    pub fn of(policy: &BackupSection) -> Option<PgBackRest> {
        Some(PgBackRest {
            command: policy.pgbackrest_command.clone(),
            stanza: policy.stanza.clone()?,
            config: policy.config.clone(),
        })
    }

    /// Runs `pgbackrest <args>` for the stanza; its standard output, or why
    /// it failed (its ERROR lines).
    fn run(&self, args: &[&str]) -> Result<String, BackupError> {
        let (program, first) = self.command.split_first().expect("checked when the config loads");
        let mut cmd = Command::new(program);
        cmd.args(first).arg(format!("--stanza={}", self.stanza));
        if let Some(config) = &self.config {
            cmd.arg(format!("--config={}", config.display()));
        }
        cmd.args(args).stdin(std::process::Stdio::null());
        crate::shell::die_with_parent(&mut cmd);
        let shown = format!("pgbackrest {}", args.join(" "));
        let out = cmd.output().map_err(|e| BackupError::PgBackRest {
            what: format!("could not run {program}: {e}"),
            fix: "install pgBackRest (`apt-get install pgbackrest`) or set [backup] \
                  pgbackrest_command"
                .into(),
        })?;
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        let text = String::from_utf8_lossy(&out.stderr).into_owned()
            + &String::from_utf8_lossy(&out.stdout);
        let errors: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("ERROR") || l.starts_with("HINT") || l.starts_with("WARN"))
            .collect();
        let said = if errors.is_empty() { text.trim().to_string() } else { errors.join(" ") };
        Err(BackupError::PgBackRest {
            what: format!(
                "`{shown}` for stanza {} failed ({}): {}",
                self.stanza,
                out.status,
                crate::shell::truncated(&said, 600)
            ),
            fix: String::new(),
        })
    }

    /// What `pgbackrest info` says of the stanzas.
    fn info(&self) -> Result<Vec<Stanza>, BackupError> {
        let json = self.run(&["--output=json", "info"])?;
        serde_json::from_str(&json).map_err(|e| BackupError::PgBackRest {
            what: format!("`pgbackrest info` printed JSON Backstop cannot read: {e}"),
            fix: "check the pgBackRest version (2.x) Backstop runs".into(),
        })
    }

    /// The stanza's latest complete backup, from `pgbackrest info`, after
    /// checking the stanza is this cluster's and healthy.
    fn latest_backup(&self, source: &Source) -> Result<Backup, BackupError> {
        let stanzas = self.info()?;
        let refuse = |what: String, fix: String| BackupError::PgBackRest { what, fix };
        let Some(stanza) = stanzas.into_iter().find(|s| s.name == self.stanza) else {
            return Err(refuse(
                format!("`pgbackrest info` lists no stanza {}", self.stanza),
                "check [backup] stanza and config".into(),
            ));
        };
        if stanza.status.code != 0 {
            let fix = if stanza.status.code == 1 {
                format!("create it: `pgbackrest --stanza={} stanza-create`", self.stanza)
            } else {
                format!("see `pgbackrest --stanza={} info`", self.stanza)
            };
            return Err(refuse(
                format!("stanza {} is not usable: {}", self.stanza, stanza.status.message),
                fix,
            ));
        }
        if let (Some(mine), Some(db)) = (&source.system_identifier, stanza.db.last()) {
            if mine != &db.system_id.to_string() {
                return Err(refuse(
                    format!(
                        "stanza {} backs up another cluster (system identifier {}, this server's is {mine})",
                        self.stanza, db.system_id
                    ),
                    "set [backup] stanza to this cluster's stanza".into(),
                ));
            }
        }
        stanza.backup.into_iter().rev().find(|b| !b.error.unwrap_or(false)).ok_or_else(|| {
            refuse(
                format!("stanza {} holds no complete backup", self.stanza),
                format!("take one: `pgbackrest --stanza={} backup`", self.stanza),
            )
        })
    }
}

/// One stanza of `pgbackrest info --output=json`: what the gate reads.
#[derive(Debug, Deserialize)]
struct Stanza {
    name: String,
    status: Status,
    #[serde(default)]
    db: Vec<StanzaDb>,
    #[serde(default)]
    backup: Vec<Backup>,
    #[serde(default)]
    archive: Vec<Archive>,
}

#[derive(Debug, Deserialize)]
struct Archive {
    #[serde(default)]
    max: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Status {
    code: i64,
    message: String,
}

#[derive(Debug, Deserialize)]
struct StanzaDb {
    #[serde(rename = "system-id")]
    system_id: u64,
}

#[derive(Debug, Deserialize)]
struct Backup {
    label: String,
    #[serde(default)]
    error: Option<bool>,
    timestamp: Stamps,
}

#[derive(Debug, Deserialize)]
struct Stamps {
    stop: i64,
}

/// Where the gate runs: the database, how to open a second session on
/// it, and the tables the point must hold exactly.
pub struct Site<'a> {
    pub source: &'a Source,
    pub url: &'a str,
    pub protected: &'a [String],
}

/// The gate with pgBackRest: the latest backup is recent, archiving works,
/// and a restore point made now is archived. Returns the record of it.
pub fn guard(
    client: &mut Client,
    at: &Site<'_>,
    policy: &BackupSection,
    dry_run: bool,
    progress: &mut dyn Progress,
) -> Result<Manifest, BackupError> {
    let source = at.source;
    let started = Instant::now();
    let engine = PgBackRest::of(policy).expect("the config requires a stanza");
    progress.note(Note::Step(format!("checking pgBackRest stanza {}", engine.stanza)));
    let latest = engine.latest_backup(source)?;
    let stopped = Utc.timestamp_opt(latest.timestamp.stop, 0).single().unwrap_or_default();
    let age = Utc::now() - stopped;
    if age.to_std().unwrap_or_default() > policy.max_age {
        return Err(BackupError::PgBackRest {
            what: format!(
                "the latest pgBackRest backup of stanza {} ({}) finished {} ago, longer ago than \
                 [backup] max_age ({})",
                engine.stanza,
                latest.label,
                duration::age(age),
                duration::human(policy.max_age)
            ),
            fix: format!(
                "take one: `pgbackrest --stanza={} backup` (or raise max_age)",
                engine.stanza
            ),
        });
    }
    // Archiving works: pgBackRest switches the WAL and waits for it.
    engine.run(&["check"]).map_err(|e| match e {
        BackupError::PgBackRest { what, .. } => BackupError::PgBackRest {
            what: format!("WAL archiving does not work: {what}"),
            fix: "fix archive_command (see the server's log) before migrating".into(),
        },
        e => e,
    })?;
    let mut record = record_of(source, &latest, stopped);
    if dry_run {
        return Ok(record);
    }
    let id = new_id(Utc::now());
    let name = format!("backstop-{id}");
    progress.note(Note::Step(format!("creating restore point {name}")));
    let marked = super::point::mark(client, at.url, &name, at.protected, policy.lock_wait)?;
    if marked.state.locked_ms > 0 {
        progress.note(Note::Info(format!(
            "restore point {name}: writes to the {} protected table(s) waited {} ms for it",
            marked.state.protected.len(),
            marked.state.locked_ms
        )));
    }
    let (lsn, wal_file) = (marked.lsn, marked.wal_file);
    archived(client, &name, &wal_file, policy.archive_wait)?;
    record.row_counts = marked.state.protected.iter().map(|t| (t.table.clone(), t.rows)).collect();
    record.schema_fingerprint = crate::pg::fingerprint::Schema::read(client)
        .map_err(BackupError::db("reading the schema at the restore point"))?
        .fingerprint();
    record.verification.checksums = Some(Check {
        at: Utc::now(),
        ok: true,
        detail: format!(
            "WAL segment {wal_file} holding the point archived; backup {} complete in stanza {}",
            latest.label, engine.stanza
        ),
    });
    record.id = id;
    record.created_at = Utc::now();
    record.duration_ms = started.elapsed().as_millis() as u64;
    record.restore_point = Some(RestorePoint {
        name,
        lsn,
        wal_file,
        stanza: engine.stanza.clone(),
        backup_label: latest.label,
        backup_stopped_at: stopped,
        command: engine.command.clone(),
        config: engine.config.clone(),
        state: Some(marked.state),
    });
    Ok(record)
}

/// The record of a restore point before it is made (`restore_point` is
/// filled once it is).
fn record_of(source: &Source, latest: &Backup, stopped: DateTime<Utc>) -> Manifest {
    Manifest {
        format: 1,
        id: String::new(),
        kind: Kind::RestorePoint,
        label: Some(format!("pre-migrate, pgBackRest backup {}", latest.label)),
        created_at: stopped,
        database: source.database.clone(),
        system_identifier: source.system_identifier.clone(),
        server_version: source.server_version.clone(),
        server_version_num: source.server_version_num,
        encoding: source.encoding.clone(),
        pg_dump_version: None,
        compression: None,
        jobs: None,
        size_bytes: 0,
        files: Vec::new(),
        row_counts: Default::default(),
        // The whole cluster comes back, its settings with it.
        database_settings: Vec::new(),
        schema_fingerprint: String::new(),
        schema_fingerprints: Default::default(),
        left_out: Vec::new(),
        roles: Vec::new(),
        extensions: Vec::new(),
        duration_ms: 0,
        guards: Vec::new(),
        state: None,
        snapshot_database: None,
        restore_point: None,
        kept_data_dir: None,
        verification: Verification::default(),
    }
}

/// Switches to a new WAL segment so that `wal_file`, holding the restore
/// point `name`, can be archived, and waits up to `wait` until it is.
fn archived(
    client: &mut Client,
    name: &str,
    wal_file: &str,
    wait: Duration,
) -> Result<(), BackupError> {
    client
        .query_one("select pg_switch_wal()", &[])
        .map_err(BackupError::db("switching the WAL segment"))?;
    let deadline = Instant::now() + wait;
    loop {
        let row = client
            .query_one(
                "select coalesce(last_archived_wal, ''), coalesce(last_failed_wal, ''),
                        coalesce(last_failed_time::text, '')
                   from pg_stat_archiver",
                &[],
            )
            .map_err(BackupError::db("reading pg_stat_archiver"))?;
        let (archived, failed, failed_at): (String, String, String) =
            (row.get(0), row.get(1), row.get(2));
        // Segment names of one timeline sort in WAL order.
        if archived.len() == wal_file.len() && archived.as_str() >= wal_file {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let failed = if failed.is_empty() {
                String::new()
            } else {
                format!("; the last failure was {failed} at {failed_at}")
            };
            return Err(BackupError::PgBackRest {
                what: format!(
                    "WAL segment {wal_file} holding restore point {name} was not archived within \
                     {} (last archived: {}){failed}",
                    duration::human(wait),
                    if archived.is_empty() { "none" } else { &archived }
                ),
                fix: "check archive_command and the server's log, or raise [backup] archive_wait"
                    .into(),
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Verifies a restore point: the repository still holds the backup it
/// starts from and the WAL up to it (`pgbackrest info`); with `restore`,
/// a point-in-time recovery to it in a throwaway cluster (never the
/// production server), whose schema must be the one recorded at the point.
pub fn verify_point(
    m: &Manifest,
    restore: bool,
    progress: &mut dyn Progress,
) -> Result<(Check, Option<Check>), BackupError> {
    let point = point_of(m)?;
    let engine = PgBackRest::of_point(point);
    progress.note(Note::Step(format!(
        "checking stanza {} for restore point {}",
        point.stanza, point.name
    )));
    let stanzas = engine.info()?;
    let stanza = stanzas.iter().find(|s| s.name == point.stanza);
    let held = stanza.is_some_and(|s| s.backup.iter().any(|b| b.label == point.backup_label));
    let archived_to = stanza
        .and_then(|s| s.archive.iter().filter_map(|a| a.max.clone()).max())
        .unwrap_or_default();
    let covered = archived_to.len() == point.wal_file.len() && archived_to >= point.wal_file;
    let checks = Check {
        at: Utc::now(),
        ok: held && covered,
        detail: match (held, covered) {
            (true, true) => format!(
                "stanza {} holds backup {} and WAL up to {archived_to}, past {} (the point's)",
                point.stanza, point.backup_label, point.wal_file
            ),
            (false, _) => format!(
                "stanza {} no longer holds backup {}: the point cannot be restored from it",
                point.stanza, point.backup_label
            ),
            (true, false) => format!(
                "stanza {} holds WAL up to {} only; the point is in {}",
                point.stanza,
                if archived_to.is_empty() { "none" } else { &archived_to },
                point.wal_file
            ),
        },
    };
    if !checks.ok || !restore {
        return Ok((checks, None));
    }
    Ok((checks, Some(recover_throwaway(m, point, progress))))
}

/// The restore point an entry of kind `restore_point` records.
pub(crate) fn point_of(m: &Manifest) -> Result<&RestorePoint, BackupError> {
    m.restore_point
        .as_ref()
        .ok_or_else(|| BackupError::Refused(format!("backup {} records no restore point", m.id)))
}

/// A point-in-time recovery of the restore point `m` in a throwaway
/// cluster on this machine, running once the recovery reached the point.
pub fn recover(
    m: &Manifest,
    progress: &mut dyn Progress,
) -> Result<crate::pg::cluster::Cluster, BackupError> {
    let point = point_of(m)?;
    progress.note(Note::Step(format!(
        "restoring backup {} and the WAL up to {} into a throwaway cluster",
        point.backup_label, point.name
    )));
    // A physical backup starts only under its own major.
    let major = crate::pg::bins::major_of_num(m.server_version_num);
    let bin = crate::pg::cluster::PgBin::for_major(major, crate::pg::bins::Match::Exact)?;
    Ok(crate::pg::cluster::Cluster::start_restored(bin, |data, _| {
        std::fs::create_dir_all(data).map_err(|e| e.to_string())?;
        restore_to(point, data).map_err(|e| crate::kit::error::chain(&e))
    })?)
}

/// Restores the backup the point starts from into the empty directory
/// `data`, set to recover to the point and promote there. The recovery
/// follows the point's own timeline (its WAL segment's name begins with
/// it), not the newest in the archive: after a restore swapped back, the
/// newest timeline may have forked before the point.
pub(crate) fn restore_to(point: &RestorePoint, data: &std::path::Path) -> Result<(), BackupError> {
    let target = format!("--target={}", point.name);
    let set = format!("--set={}", point.backup_label);
    let pg1 = format!("--pg1-path={}", data.display());
    let mut args = vec!["--type=name", &target, "--target-action=promote", &set, &pg1];
    let timeline = timeline_of(&point.wal_file).map(|t| format!("--target-timeline={t}"));
    if let Some(t) = &timeline {
        args.push(t);
    }
    args.push("restore");
    PgBackRest::of_point(point).run(&args).map(|_| ())
}

/// The timeline of a WAL segment name (its first eight hex digits).
fn timeline_of(wal_file: &str) -> Option<u32> {
    wal_file.get(..8).and_then(|t| u32::from_str_radix(t, 16).ok()).filter(|t| *t > 0)
}

/// A point-in-time recovery of `point` in a throwaway cluster, compared
/// with the schema recorded at the point.
fn recover_throwaway(m: &Manifest, point: &RestorePoint, progress: &mut dyn Progress) -> Check {
    let started = Instant::now();
    let result = (|| -> Result<String, BackupError> {
        let cluster = recover(m, progress)?;
        let mut client = cluster.connect(&m.database)?;
        let fingerprint = crate::pg::fingerprint::Schema::read(&mut client)
            .map_err(BackupError::db("reading the restored schema"))?
            .fingerprint();
        if fingerprint != m.schema_fingerprint {
            return Err(BackupError::Mismatch {
                id: m.id.clone(),
                differences: vec![format!(
                    "schema fingerprint {fingerprint}, recorded at the point {}",
                    m.schema_fingerprint
                )],
            });
        }
        Ok(format!(
            "recovered to {} in a throwaway PostgreSQL {} cluster in {:.1}s: schema fingerprint \
             {fingerprint} as recorded at the point",
            point.name,
            cluster.bin().major,
            started.elapsed().as_secs_f64()
        ))
    })();
    Check {
        at: Utc::now(),
        ok: result.is_ok(),
        detail: result.unwrap_or_else(|e| crate::kit::error::chain(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_point_is_recovered_on_the_timeline_of_its_segment() {
        assert_eq!(timeline_of("000000020000000000000005"), Some(2));
        assert_eq!(timeline_of("0000000A00000001000000FF"), Some(10));
        assert_eq!(timeline_of(""), None);
    }
}
