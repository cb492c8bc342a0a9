//! `backup verify`: every file matches its BLAKE3 checksum and
//! `pg_restore --list` reads the archive; with a test restore, the backup is
//! restored into a throwaway cluster (its roles created first, NOLOGIN) and
//! the row counts and schema fingerprint compared with the manifest. The
//! result is recorded in the manifest either way.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Stdio;

use chrono::Utc;

use super::manifest::{self, Check, Kind, Manifest};
use super::tools::{self, run_verbose, tail, Tools};
use super::{BackupError, Note, Progress, Store};
use crate::pg::bins::Match;
use crate::pg::cluster::{Cluster, ClusterError, PgBin};
use crate::pg::extension_owners;
use crate::pg::fingerprint::{row_counts, Schema};
use crate::pg::quote_ident;

/// What a verification found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VerifyReport {
    pub id: String,
    pub checksums: Check,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restore: Option<Check>,
}

/// The archive's table of contents from `pg_restore --list`: `Ok(Err(text))`
/// when pg_restore cannot read it.
pub fn toc(tools: &Tools, dump_dir: &Path) -> Result<Result<String, String>, BackupError> {
    let mut cmd = std::process::Command::new(tools.pg_restore());
    crate::shell::die_with_parent(&mut cmd);
    let out = cmd.arg("--list").arg(dump_dir).stdin(Stdio::null()).output().map_err(|source| {
        BackupError::Spawn { tool: tools.pg_restore().display().to_string(), source }
    })?;
    if out.status.success() {
        Ok(Ok(String::from_utf8_lossy(&out.stdout).to_string()))
    } else {
        Ok(Err(tail(&String::from_utf8_lossy(&out.stderr))))
    }
}

/// The number of entries `pg_restore --list` reads from a fresh dump.
pub(crate) fn list_archive(tools: &Tools, dump_dir: &Path) -> Result<usize, BackupError> {
    match toc(tools, dump_dir)? {
        Ok(list) => Ok(toc_entries(&list)),
        Err(output) => Err(BackupError::DumpFailed {
            output: format!("pg_restore --list cannot read the new dump: {output}"),
        }),
    }
}

fn toc_entries(list: &str) -> usize {
    list.lines().filter(|l| !l.starts_with(';') && !l.trim().is_empty()).count()
}

/// Checks the files of backup `m` against its manifest and has pg_restore
/// read the archive. Returns the problems found (empty: intact).
pub fn check_files(store: &Store, tools: &Tools, m: &Manifest) -> Result<Vec<String>, BackupError> {
    let mut problems = manifest::compare_files(&store.path(&m.id), &m.files);
    if problems.is_empty() {
        // A pg_restore older than the pg_dump that wrote the archive cannot
        // read it: take one of that major or newer when there is one.
        let fitted = tools.fit(m.written_by_num()).unwrap_or_else(|_| tools.clone());
        if let Err(output) = toc(&fitted, &store.dump_dir(&m.id))? {
            problems.push(format!("pg_restore --list cannot read it: {output}"));
        }
    }
    Ok(problems)
}

/// Verifies checksums, records the result, and fails with
/// [`BackupError::Corrupt`] when they do not match.
pub fn verify_checksums(
    store: &Store,
    tools: &Tools,
    m: &mut Manifest,
) -> Result<Check, BackupError> {
    let problems = check_files(store, tools, m)?;
    let check = Check {
        at: Utc::now(),
        ok: problems.is_empty(),
        detail: if problems.is_empty() {
            format!(
                "{} file(s) match their BLAKE3 checksums; pg_restore --list reads the archive",
                m.files.len()
            )
        } else {
            problems.join("; ")
        },
    };
    m.verification.checksums = Some(check.clone());
    store.save(m)?;
    if !problems.is_empty() {
        return Err(BackupError::Corrupt { id: m.id.clone(), problems });
    }
    Ok(check)
}

/// `backup verify ID [--restore]`.
pub fn verify(
    store: &Store,
    tools: &Tools,
    id: &str,
    restore: bool,
    jobs: usize,
    progress: &mut dyn Progress,
) -> Result<VerifyReport, BackupError> {
    let mut m = store.load(id)?;
    if m.kind == Kind::RestorePoint {
        let (checks, restored) = super::pgbackrest::verify_point(&m, restore, progress)?;
        progress.note(Note::Finished);
        m.verification.checksums = Some(checks.clone());
        if restored.is_some() {
            m.verification.restore = restored.clone();
        }
        store.save(&m)?;
        let failed: Vec<String> = [Some(&checks), restored.as_ref()]
            .into_iter()
            .flatten()
            .filter(|c| !c.ok)
            .map(|c| c.detail.clone())
            .collect();
        if !failed.is_empty() {
            return Err(BackupError::Corrupt { id: id.to_string(), problems: failed });
        }
        return Ok(VerifyReport { id: id.to_string(), checksums: checks, restore: restored });
    }
    if let (Kind::DataDirectory, Some(kept)) = (m.kind, &m.kept_data_dir) {
        return Err(BackupError::Refused(format!(
            "backup {id} is the data directory {} a restore replaced, kept whole; `backstop \
             restore {id}` swaps it back",
            kept.path.display()
        )));
    }
    if m.kind == Kind::Database {
        return Err(BackupError::Refused(format!(
            "backup {id} is a database snapshot (database {} on the server), not files to check; \
             `backstop backup restore {id}` brings it back",
            m.snapshot_database.as_deref().unwrap_or("?")
        )));
    }
    progress.note(Note::Step(format!("checking {} file(s) of backup {id}", m.files.len())));
    let checksums = verify_checksums(store, tools, &mut m)?;
    let restore = if restore {
        let result = test_restore(store, tools, &m, jobs, progress);
        progress.note(Note::Finished);
        let check = Check {
            at: Utc::now(),
            ok: result.is_ok(),
            detail: match &result {
                Ok(detail) => detail.clone(),
                Err(e) => crate::kit::error::chain(e),
            },
        };
        // Only a verdict on the backup is recorded; a missing local
        // extension or binary says nothing about the backup itself.
        if matches!(
            result,
            Ok(_) | Err(BackupError::Mismatch { .. }) | Err(BackupError::RestoreFailed { .. })
        ) {
            m.verification.restore = Some(check.clone());
            store.save(&m)?;
        }
        result?;
        Some(check)
    } else {
        None
    };
    Ok(VerifyReport { id: id.to_string(), checksums, restore })
}

/// Restores `m` into a throwaway cluster and compares it with the manifest.
fn test_restore(
    store: &Store,
    tools: &Tools,
    m: &Manifest,
    jobs: usize,
    progress: &mut dyn Progress,
) -> Result<String, BackupError> {
    let cluster = restore_throwaway(store, tools, m, jobs, progress)?;
    let mut restored = cluster.connect(&m.database)?;
    let differences = compare(&mut restored, m)?;
    if !differences.is_empty() {
        return Err(BackupError::Mismatch { id: m.id.clone(), differences });
    }
    let schema = if m.left_out.is_empty() || m.schema_fingerprints.is_empty() {
        format!("schema fingerprint {}", m.schema_fingerprint)
    } else {
        format!(
            "the fingerprint of each schema but those holding what it left out ({})",
            m.left_out.join(", ")
        )
    };
    Ok(format!(
        "restored into a throwaway PostgreSQL {} cluster: {} table(s), {} row(s) and {schema} \
         equal to the manifest",
        cluster.bin().major,
        m.row_counts.len(),
        m.row_counts.values().sum::<i64>(),
    ))
}

/// Restores the files of backup `m` into a new throwaway cluster, as
/// database `m.database`, the source's roles created NOLOGIN first. The
/// cluster (and the restore) is gone when the returned handle is dropped.
pub fn restore_throwaway(
    store: &Store,
    tools: &Tools,
    m: &Manifest,
    jobs: usize,
    progress: &mut dyn Progress,
) -> Result<Cluster, BackupError> {
    let backup_major = crate::pg::bins::major_of_num(m.server_version_num);
    // The backup's own major, else the nearest newer one: a restore into an
    // older server is refused.
    let bin = match PgBin::for_major(backup_major, Match::OrNewer) {
        Ok(bin) => bin,
        Err(ClusterError::NoMajor { .. }) => {
            return Err(BackupError::LocalTooOld {
                id: m.id.clone(),
                backup_major,
                local_major: PgBin::find()?.major,
            })
        }
        Err(e) => return Err(e.into()),
    };
    progress.note(Note::Step(format!("starting a throwaway PostgreSQL {} cluster", bin.major)));
    // The libraries the backup's extensions need preloaded (pg_cron's
    // CREATE EXTENSION fails on a server that did not load it).
    let preload =
        crate::pg::preload::Preload::for_extensions(m.extensions.iter().map(|e| e.name.as_str()));
    let cluster = Cluster::start_with_preload(bin, &preload, &m.database)?;
    restore_into(&cluster, store, tools, m, jobs, progress)?;
    Ok(cluster)
}

/// Restores the files of backup `m` into the throwaway `cluster` (which
/// must never be production), as database `m.database`: the backup's
/// extensions checked first, its roles that the cluster lacks created
/// NOLOGIN (a caller that copied the source's roles with their
/// attributes has them already), the database made with its encoding.
pub fn restore_into(
    cluster: &Cluster,
    store: &Store,
    tools: &Tools,
    m: &Manifest,
    jobs: usize,
    progress: &mut dyn Progress,
) -> Result<(), BackupError> {
    let major = cluster.bin().major;
    let fitted = tools.fit((major * 10_000) as i32)?;
    let tools = &fitted;
    let mut admin = cluster.connect("postgres")?;
    let db = BackupError::db("preparing the throwaway cluster");
    let available: Vec<String> = admin
        .query("select name::text from pg_available_extensions", &[])
        .map_err(BackupError::db("listing the local extensions"))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let missing: Vec<String> = m
        .extensions
        .iter()
        .filter(|e| !available.contains(&e.name))
        .map(|e| e.name.clone())
        .collect();
    if !missing.is_empty() {
        return Err(BackupError::MissingExtension { id: m.id.clone(), missing, major });
    }
    let existing: Vec<String> = admin
        .query("select rolname::text from pg_roles", &[])
        .map_err(BackupError::db("listing roles"))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    // More memory for index builds: the cluster is ours alone.
    admin.batch_execute("ALTER SYSTEM SET maintenance_work_mem = '256MB'").map_err(db)?;
    admin
        .batch_execute("SELECT pg_reload_conf()")
        .map_err(BackupError::db("reloading settings"))?;
    let mut setup = String::new();
    for role in m.roles.iter().filter(|r| !existing.contains(r)) {
        setup.push_str(&format!("CREATE ROLE {} NOLOGIN;\n", quote_ident(role)));
    }
    admin.batch_execute(&setup).map_err(BackupError::db("creating the source's roles"))?;
    ensure_database(&mut admin, m)?;
    let mut copy = arm(cluster, m, &m.database)?;

    progress.note(Note::Step(format!(
        "restoring backup {} into the throwaway cluster with {jobs} job(s)",
        m.id
    )));
    let target = tools::target(&cluster.url(&m.database), None)?;
    let mut cmd = tools.command("pg_restore", &target);
    cmd.args(["--verbose", "--no-tablespaces", "--exit-on-error"])
        .arg(format!("--jobs={}", jobs.max(1)))
        .arg(format!("--dbname={}", target.conninfo))
        .arg(store.dump_dir(&m.id));
    let (ok, stderr) = run_verbose(cmd, "pg_restore", m.row_counts.len() as u64, progress)?;
    if !ok {
        return Err(BackupError::RestoreFailed { id: m.id.clone(), output: tail(&stderr) });
    }
    extension_owners::disarm(&mut copy)
        .map_err(BackupError::db("taking the extension owners' trigger off the copy"))
}

/// Readies database `dbname` of the throwaway `cluster` for a restore of
/// backup `m`: what an extension makes there goes to the role that owned
/// it where the backup was taken (`pg::extension_owners`). The session
/// that [`extension_owners::disarm`]s it after.
pub(crate) fn arm(
    cluster: &Cluster,
    m: &Manifest,
    dbname: &str,
) -> Result<postgres::Client, BackupError> {
    let owners: extension_owners::Owners =
        m.extensions.iter().filter_map(|e| Some((e.name.clone(), e.owner.clone()?))).collect();
    let mut copy = cluster.connect(dbname)?;
    extension_owners::arm(&mut copy, &owners).map_err(BackupError::db(
        "readying the copy to give extensions' objects to their owners",
    ))?;
    Ok(copy)
}

/// Makes the database backup `m` restores into on a throwaway cluster
/// (`admin`: its superuser's session), where it is not there already: a
/// backup of a database named `postgres` goes into the cluster's own.
pub(crate) fn ensure_database(
    admin: &mut postgres::Client,
    m: &Manifest,
) -> Result<(), BackupError> {
    let exists: bool = admin
        .query_one("select exists (select from pg_database where datname = $1)", &[&m.database])
        .map_err(BackupError::db("looking for the database to restore into"))?
        .get(0);
    if !exists {
        admin
            .batch_execute(&format!(
                "CREATE DATABASE {} TEMPLATE template0 ENCODING '{}'",
                quote_ident(&m.database),
                m.encoding.replace('\'', "")
            ))
            .map_err(BackupError::db("creating the database to restore into"))?;
    }
    Ok(())
}

/// What differs between the connected database and the manifest: row
/// counts per table, and the schema fingerprint. A dump that left tables
/// out (`Manifest::left_out`) is compared schema by schema, but for the
/// schemas holding them, which it does not hold whole.
pub fn compare(client: &mut postgres::Client, m: &Manifest) -> Result<Vec<String>, BackupError> {
    // A table the dump left out may be there again (an extension's, made
    // by CREATE EXTENSION), readable by the restore's superuser.
    let counts: BTreeMap<String, i64> = row_counts(client)
        .map_err(BackupError::db("counting restored rows"))?
        .into_iter()
        .filter(|(t, _)| !m.left_out.contains(t))
        .collect();
    let schema = Schema::read(client).map_err(BackupError::db("reading the restored schema"))?;
    if m.left_out.is_empty() || m.schema_fingerprints.is_empty() {
        return Ok(differences(
            &m.row_counts,
            &counts,
            &m.schema_fingerprint,
            &schema.fingerprint(),
        ));
    }
    let found = schema.fingerprints_by_schema();
    let partial = |s: &String| m.left_out.iter().any(|t| t.starts_with(&format!("{s}.")));
    let schemas: BTreeSet<&String> =
        m.schema_fingerprints.keys().chain(found.keys()).filter(|s| !partial(s)).collect();
    let mut out = differences(&m.row_counts, &counts, "", "");
    out.extend(schema_differences(m, &found, schemas));
    Ok(out)
}

/// How a restore of `schemas` in place differs from what manifest `m`
/// says of them: each of their tables' rows, and each schema's part of
/// the picture where the manifest recorded it. The rest of the database
/// (the platform's schemas, written since) is not the backup's to judge.
pub fn compare_schemas(
    client: &mut postgres::Client,
    m: &Manifest,
    schemas: &[String],
) -> Result<Vec<String>, BackupError> {
    let ours = |table: &String| schemas.iter().any(|s| table.starts_with(&format!("{s}.")));
    let counts: BTreeMap<String, i64> = row_counts(client)
        .map_err(BackupError::db("counting restored rows"))?
        .into_iter()
        .filter(|(t, _)| ours(t) && !m.left_out.contains(t))
        .collect();
    let expected: BTreeMap<String, i64> =
        m.row_counts.iter().filter(|(t, _)| ours(t)).map(|(t, n)| (t.clone(), *n)).collect();
    let mut out = differences(&expected, &counts, "", "");
    if !m.schema_fingerprints.is_empty() {
        let found = Schema::read(client)
            .map_err(BackupError::db("reading the restored schema"))?
            .fingerprints_by_schema();
        out.extend(schema_differences(m, &found, schemas));
    }
    Ok(out)
}

/// Each of `schemas` whose part of the picture `found` differs from the
/// manifest's.
fn schema_differences<'a>(
    m: &Manifest,
    found: &BTreeMap<String, String>,
    schemas: impl IntoIterator<Item = &'a String>,
) -> Vec<String> {
    let mut out = Vec::new();
    for s in schemas {
        let (want, got) = (m.schema_fingerprints.get(s), found.get(s));
        if want != got {
            out.push(format!(
                "schema {s}'s fingerprint {} differs from the manifest's {}",
                got.map_or("(none)", String::as_str),
                want.map_or("(none)", String::as_str)
            ));
        }
    }
    out
}

fn differences(
    expected: &BTreeMap<String, i64>,
    found: &BTreeMap<String, i64>,
    expected_fp: &str,
    found_fp: &str,
) -> Vec<String> {
    let mut out = Vec::new();
    for (table, n) in expected {
        match found.get(table) {
            None => out.push(format!("table {table} is missing")),
            Some(m) if m != n => {
                out.push(format!("table {table} has {m} row(s), the manifest says {n}"))
            }
            Some(_) => {}
        }
    }
    for table in found.keys().filter(|t| !expected.contains_key(*t)) {
        out.push(format!("table {table} is not in the manifest"));
    }
    if expected_fp != found_fp {
        out.push(format!(
            "schema fingerprint {found_fp} differs from the manifest's {expected_fp}"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_name_the_table_and_both_counts() {
        let a: BTreeMap<String, i64> = [("public.a".into(), 3), ("public.b".into(), 1)].into();
        let b: BTreeMap<String, i64> = [("public.a".into(), 2), ("public.c".into(), 0)].into();
        assert_eq!(
            differences(&a, &b, "x", "y"),
            [
                "table public.a has 2 row(s), the manifest says 3",
                "table public.b is missing",
                "table public.c is not in the manifest",
                "schema fingerprint y differs from the manifest's x",
            ]
        );
        assert!(differences(&a, &a, "x", "x").is_empty());
        assert_eq!(
            toc_entries(";\n; Archive\n1; 2 3 TABLE public a u\n\n2; 4 5 TABLE DATA public a u\n"),
            2
        );
    }
}
