//! `backup create`: pg_dump in directory format with parallel jobs, from a
//! snapshot exported by a transaction that also counts every table's rows
//! and reads the schema fingerprint, so the manifest describes exactly
//! what the dump holds. Written to `<id>.partial/`, renamed when complete.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::Utc;
use postgres::Client;

pub use super::identity::{source_of, Source};
use super::manifest::{self, Check, DbState, Extension, Kind, Manifest, Verification};
use super::store::{PartialGuard, Store};
use super::tools::{self, dir_size, run_verbose_with, tail, Tools};
use super::{verify, BackupError, Note, Progress};
use crate::pg::fingerprint::{row_counts, Schema};
use crate::pg::unreadable::{self, Unreadable};

/// Options of one backup.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    pub label: Option<String>,
    /// pg_dump's `--jobs`.
    pub jobs: usize,
    /// pg_dump's `--lock-wait-timeout`, and the row counts' `lock_timeout`.
    pub lock_wait: Duration,
}

/// The number of parallel jobs when `[backup] jobs` is not set: the cores.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
}

/// What the snapshot says about the database, beside the dump.
pub(crate) struct Facts {
    pub row_counts: BTreeMap<String, i64>,
    pub fingerprint: String,
    pub fingerprints: std::collections::BTreeMap<String, String>,
    pub roles: Vec<String>,
    pub extensions: Vec<Extension>,
    /// The database's own settings (see `Manifest::database_settings`).
    pub database_settings: Vec<String>,
    /// Versions in `backstop.applied`.
    pub applied: Vec<String>,
    /// The picture the fingerprints come from.
    pub schema: Schema,
}

/// The write counters and the storage hash of the user tables (see
/// [`DbState`]), with the statistics read afresh.
pub(crate) fn write_marks(
    client: &mut impl postgres::GenericClient,
) -> Result<(i64, String), postgres::Error> {
    client.batch_execute("select pg_stat_clear_snapshot()")?;
    let row = client.query_one(
        "select coalesce(sum(s.n_tup_ins + s.n_tup_upd + s.n_tup_del), 0)::int8,
                md5(coalesce(string_agg(c.oid::text || ':' || c.relfilenode::text, ',' order by c.oid), ''))
           from pg_class c join pg_namespace n on n.oid = c.relnamespace
           left join pg_stat_user_tables s on s.relid = c.oid
          where c.relkind in ('r', 'm')
            and n.nspname not in ('pg_catalog', 'information_schema', 'pg_toast', 'backstop')
            and n.nspname not like 'pg_temp%'",
        &[],
    )?;
    Ok((row.get(0), row.get(1)))
}

/// A hash of where every user sequence stands (`last_value`, or `-` for
/// one never used or not readable by this role), as older manifests
/// record it.
pub(crate) fn sequence_marks(
    client: &mut impl postgres::GenericClient,
) -> Result<String, postgres::Error> {
    let row = client.query_one(
        "select md5(coalesce(string_agg(quote_ident(schemaname) || '.' || quote_ident(sequencename)
                    || '=' || coalesce(last_value::text, '-'), ',' order by schemaname, sequencename), ''))
           from pg_sequences
          where schemaname not in ('pg_catalog', 'information_schema', 'backstop')",
        &[],
    )?;
    Ok(row.get(0))
}

/// Where every user sequence stands, by `schema.name`: its `last_value`,
/// none for one never used or not readable by this role.
pub(crate) fn sequence_values(
    client: &mut impl postgres::GenericClient,
) -> Result<BTreeMap<String, Option<i64>>, postgres::Error> {
    let rows = client.query(
        "select quote_ident(schemaname) || '.' || quote_ident(sequencename), last_value
           from pg_sequences
          where schemaname not in ('pg_catalog', 'information_schema', 'backstop')",
        &[],
    )?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// The versions in `backstop.applied`, sorted; none without the schema.
pub(crate) fn applied_versions(
    client: &mut impl postgres::GenericClient,
) -> Result<Vec<String>, postgres::Error> {
    crate::schema::applied::versions(client)
}

/// The connected database's own settings (`ALTER DATABASE … SET`, for
/// every role), as `name=value`, sorted.
pub(crate) fn database_settings(
    client: &mut impl postgres::GenericClient,
) -> Result<Vec<String>, postgres::Error> {
    let rows = client.query(
        "select c from pg_db_role_setting s cross join lateral unnest(s.setconfig) c
          where s.setrole = 0
            and s.setdatabase = (select oid from pg_database where datname = current_database())
          order by 1",
        &[],
    )?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Row counts, schema fingerprint, roles and extensions as the connected
/// session sees them (in the dump's snapshot when called inside it).
pub(crate) fn facts(client: &mut Client) -> Result<Facts, postgres::Error> {
    let schema = Schema::read(client)?;
    let counts = row_counts(client)?;
    let roles = client
        .query("select rolname::text from pg_roles where rolname !~ '^pg_' order by 1", &[])?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut owners = crate::pg::extension_owners::read(client)?;
    let extensions = client
        .query("select extname::text, extversion from pg_extension order by 1", &[])?
        .iter()
        .map(|r| {
            let name: String = r.get(0);
            Extension { owner: owners.remove(&name), name, version: r.get(1) }
        })
        .collect();
    Ok(Facts {
        row_counts: counts.into_iter().collect(),
        fingerprint: schema.fingerprint(),
        fingerprints: schema.fingerprints_by_schema(),
        roles,
        extensions,
        database_settings: database_settings(client)?,
        applied: applied_versions(client)?,
        schema,
    })
}

/// Takes a backup of the database at `url` into `store`.
pub fn create(
    url: &str,
    store: &Store,
    tools: &Tools,
    options: &CreateOptions,
    progress: &mut dyn Progress,
) -> Result<Manifest, BackupError> {
    create_read(url, store, tools, options, progress).map(|(manifest, _)| manifest)
}

/// [`create`], with the picture of the schema the manifest's fingerprints
/// come from, read in the dump's own snapshot: the database as the backup
/// holds it.
pub fn create_read(
    url: &str,
    store: &Store,
    tools: &Tools,
    options: &CreateOptions,
    progress: &mut dyn Progress,
) -> Result<(Manifest, Schema), BackupError> {
    let started = Instant::now();
    store.clean_partials();
    let mut client = crate::pg::connect(url, "backstop")?;
    let source = source_of(&mut client)?;
    let tools = &tools.fit(source.server_version_num)?;
    let created_at = Utc::now();
    let (id, partial) = store.begin_new(created_at)?;
    let mut guard = PartialGuard { path: Some(partial.clone()) };

    // Read before the snapshot: a write in between is in the dump but not
    // in the counters, which then differ later, and the backup is not
    // reused: the safe side.
    let (writes, storage) =
        write_marks(&mut client).map_err(BackupError::db("reading the write counters"))?;
    let sequences =
        sequence_values(&mut client).map_err(BackupError::db("reading the sequences"))?;
    let last_event = crate::schema::events::newest_id(&mut client)
        .map_err(BackupError::db("reading backstop.events"))?;
    let (snapshot, tables, bytes) = export_snapshot(&mut client, options.lock_wait)?;
    let left_out = left_out(&mut client)?;
    let jobs = jobs_for(options.jobs, bytes, tables);
    progress.note(Note::Step(format!(
        "dumping {} with {jobs} job(s), {} compression",
        source.database,
        tools.compression().name()
    )));
    if !left_out.is_empty() {
        let names: Vec<String> = left_out.iter().map(Unreadable::qualified).collect();
        progress.note(Note::Info(format!(
            "the backup leaves out {} table(s) and sequence(s) the role may not read, nor \
             change: {} (a restore leaves them as they are)",
            names.len(),
            names.join(", ")
        )));
    }

    let (status, stderr, facts) = run_pg_dump(
        &mut client,
        url,
        tools,
        &partial,
        (jobs, options.lock_wait),
        (&snapshot, &left_out),
        tables as u64,
        progress,
    )?;
    let _ = client.batch_execute("COMMIT");
    progress.note(Note::Finished);
    if !status {
        return Err(dump_failure(&stderr, store, options.lock_wait));
    }
    let facts = facts.map_err(|e| facts_failure(e, options.lock_wait))?;

    let files = manifest::checksum_files(&partial, manifest::DUMP_DIR)?;
    let entries = verify::list_archive(tools, &partial.join(manifest::DUMP_DIR))?;
    let size_bytes = files.iter().map(|f| f.size).sum();
    let manifest = Manifest {
        format: 1,
        id: id.clone(),
        kind: Kind::Dump,
        label: options.label.clone(),
        created_at,
        database: source.database,
        system_identifier: source.system_identifier,
        server_version: source.server_version,
        server_version_num: source.server_version_num,
        encoding: source.encoding,
        pg_dump_version: Some(tools.version.clone()),
        compression: Some(tools.compression().name().to_string()),
        jobs: Some(jobs),
        size_bytes,
        verification: Verification {
            checksums: Some(Check {
                at: Utc::now(),
                ok: true,
                detail: format!(
                    "{} file(s) checksummed as written; pg_restore --list reads {entries} entries",
                    files.len()
                ),
            }),
            restore: None,
        },
        files,
        row_counts: facts.row_counts,
        schema_fingerprint: facts.fingerprint,
        schema_fingerprints: facts.fingerprints,
        left_out: left_out.iter().map(Unreadable::qualified).collect(),
        roles: facts.roles,
        extensions: facts.extensions,
        database_settings: facts.database_settings,
        duration_ms: started.elapsed().as_millis() as u64,
        guards: Vec::new(),
        state: Some(DbState {
            applied: facts.applied,
            writes,
            storage,
            sequences: None,
            sequence_values: Some(sequences),
            last_event: Some(last_event),
        }),
        snapshot_database: None,
        restore_point: None,
        kept_data_dir: None,
    };
    manifest.write(&partial)?;
    store.commit(&id, &partial)?;
    guard.path = None;
    Ok((manifest, facts.schema))
}

/// The table data worth one more job of pg_dump. A worker costs its own
/// process, connection and catalog reads (a small database's dump took
/// 213 ms of CPU with two jobs against 172 ms with one); 16 MB takes a
/// few tenths of a second to copy and compress, enough to share out.
const DATA_PER_JOB: i64 = 16 * 1024 * 1024;

/// The jobs a dump of `tables` tables holding `bytes` uses: at most
/// `most`, no more than the tables, one more for each [`DATA_PER_JOB`].
/// A small database is dumped by one process: a tenant's backup in a
/// rollout is mostly what pg_dump pays per connection.
fn jobs_for(most: usize, bytes: i64, tables: i64) -> usize {
    let by_size = usize::try_from(bytes / DATA_PER_JOB).unwrap_or(0).saturating_add(1);
    let by_tables = usize::try_from(tables).unwrap_or(0).max(1);
    most.min(by_size).min(by_tables).max(1)
}

/// Opens the dump's transaction (repeatable read, so the facts read in it
/// describe what pg_dump dumps) and exports its snapshot for pg_dump.
/// Returns the snapshot's name, the number of tables (for progress) and
/// about the bytes they hold (for the jobs). The transaction stays open:
/// the snapshot lives only as long as it.
fn export_snapshot(
    client: &mut Client,
    lock_wait: Duration,
) -> Result<(String, i64, i64), BackupError> {
    let db = BackupError::db("exporting the dump's snapshot");
    client
        .batch_execute(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET LOCAL lock_timeout = '{}ms'",
            lock_wait.as_millis()
        ))
        .map_err(BackupError::db("starting the snapshot transaction"))?;
    let row = client
        .query_one(
            // The size the planner knows (VACUUM, ANALYZE and CREATE INDEX
            // set it): the files' own size would wait for the lock of a
            // table another session holds, as the dump does later with a
            // clear error.
            "select pg_export_snapshot(), count(*),
                    (coalesce(sum(c.relpages::int8 + coalesce(t.relpages, 0)), 0)
                      * current_setting('block_size')::int8)::int8
               from pg_class c join pg_namespace n on n.oid = c.relnamespace
               left join pg_class t on t.oid = c.reltoastrelid
              where c.relkind in ('r', 'm')
                and n.nspname not in ('pg_catalog', 'information_schema', 'pg_toast')",
            &[],
        )
        .map_err(db)?;
    Ok((row.get(0), row.get(1), row.get(2)))
}

/// The tables the dump leaves out (`pg::unreadable`), or why it cannot
/// be taken: a table the role may not read (or not whole: row level
/// security filters its rows) and a migration run as it could still change.
fn left_out(client: &mut Client) -> Result<Vec<Unreadable>, BackupError> {
    unreadable::for_dump(client)
        .map_err(BackupError::db("reading which tables the role may read"))?
        .map_err(BackupError::Refused)
}

/// What a failed pg_dump says, as the error that tells the operator what to
/// do: a full disk and a table lock held too long each have their own.
fn dump_failure(stderr: &str, store: &Store, lock_wait: Duration) -> BackupError {
    if stderr.contains("No space left on device") {
        BackupError::DiskFull { path: store.dir().to_path_buf() }
    } else if ["lock timeout", "could not obtain lock", "statement timeout"]
        .iter()
        .any(|m| stderr.contains(m))
    {
        // pg_dump's --lock-wait-timeout is a statement_timeout on its LOCK TABLE.
        BackupError::LockWait {
            waited: crate::kit::duration::human(lock_wait),
            output: tail(stderr),
        }
    } else {
        BackupError::DumpFailed { output: tail(stderr) }
    }
}

/// Why the facts could not be read in the dump's snapshot: the row counts
/// wait for table locks as pg_dump does, and say so in the same words.
fn facts_failure(e: postgres::Error, lock_wait: Duration) -> BackupError {
    if e.code() == Some(&postgres::error::SqlState::LOCK_NOT_AVAILABLE) {
        BackupError::LockWait {
            waited: crate::kit::duration::human(lock_wait),
            output: e.as_db_error().map_or_else(|| e.to_string(), |d| d.message().to_string()),
        }
    } else {
        BackupError::db("counting rows in the dump's snapshot")(e)
    }
}

/// Runs pg_dump from `snapshot` while `client` (inside the exporting
/// transaction) gathers the [`Facts`]; reports progress from pg_dump's
/// verbose output and the size written. Returns (success, stderr, facts).
#[allow(clippy::too_many_arguments)]
fn run_pg_dump(
    client: &mut Client,
    url: &str,
    tools: &Tools,
    partial: &Path,
    (jobs, lock_wait): (usize, Duration),
    (snapshot, left_out): (&str, &[Unreadable]),
    tables: u64,
    progress: &mut dyn Progress,
) -> Result<(bool, String, Result<Facts, postgres::Error>), BackupError> {
    let target = tools::target(url, None)?;
    let mut cmd = tools.command("pg_dump", &target);
    cmd.args(["--format=directory", "--verbose"])
        .arg(format!("--jobs={jobs}"))
        .arg(format!("--snapshot={snapshot}"))
        .arg(format!("--lock-wait-timeout={}ms", lock_wait.as_millis().max(1)))
        .args(unreadable::exclude_args(left_out))
        .arg(tools.compression_arg())
        .arg("--file")
        .arg(partial.join(manifest::DUMP_DIR))
        .arg(format!("--dbname={}", target.conninfo));
    let dump_dir = partial.join(manifest::DUMP_DIR);
    let tool = tools.pg_dump().display().to_string();
    std::thread::scope(|s| {
        let facts = s.spawn(move || facts(client));
        let run = run_verbose_with(cmd, &tool, tables, progress, |p| {
            p.note(Note::Bytes(dir_size(&dump_dir)))
        });
        let facts = facts.join().expect("the facts thread does not panic");
        let (ok, text) = run?;
        Ok((ok, text, facts))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_jobs_is_at_least_one() {
        assert!(default_jobs() >= 1);
    }

    #[test]
    fn a_dump_shares_out_only_data_worth_a_job() {
        const MB: i64 = 1024 * 1024;
        // A tenant's few tables of kilobytes: one process.
        assert_eq!(jobs_for(8, 80 * 1024, 3), 1);
        assert_eq!(jobs_for(8, 0, 0), 1);
        // One more job for each 16 MB, up to the most asked for...
        assert_eq!(jobs_for(8, 20 * MB, 10), 2);
        assert_eq!(jobs_for(2, 900 * MB, 10), 2);
        // ...and never more than the tables to share out.
        assert_eq!(jobs_for(8, 900 * MB, 3), 3);
        // A configured `jobs = 1` stays one.
        assert_eq!(jobs_for(1, 900 * MB, 10), 1);
        assert_eq!(jobs_for(0, 900 * MB, 10), 1);
    }
}
