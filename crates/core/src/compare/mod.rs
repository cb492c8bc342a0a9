//! Comparing two databases table by table, every column, exactly, with
//! the row hash of `pg::checksum` (the same on both sides). Rows are put in
//! buckets that both sides agree on whatever their collations or key
//! order: ranges of the key when it is one integer column, otherwise a
//! hash of the key (of its text in the C collation, or a uuid's own
//! hash). Each side gives every bucket's row count and hash sum; buckets
//! that differ are split again (level by level, one query per side for all
//! the buckets of a level) and rows are fetched only for small buckets
//! (at most [`FETCH_LIMIT`] rows, four times that for hash buckets).
//! Range buckets need no checksum first: their first split costs little
//! more, proves a match as well, and a differing bucket's rows are found
//! through the key's index. Hash buckets come after the checksum, which
//! proves most tables the same in one scan, since finding a hash bucket's
//! rows takes a scan.
//! A table that could not be compared makes the verdict an error: a match
//! is only ever reported when it was proved.
//! The schemas are compared too, with the semantic picture rehearsals use:
//! behaviour differences count, cosmetic ones are reported apart.
//!
//! This file holds the results, the comparison of all the tables (one
//! after another or over several connections) and the verdict; the rooms
//! below hold the rest: `buckets` (how rows are put in buckets and read),
//! `table` (one table's comparison), `catalog` (a table's key), `diff`
//! (rows against rows), `tolerance`, `orphans` (foreign keys) and
//! `config` (`[compare]` and its judgement).

mod buckets;
mod catalog;
mod config;
mod diff;
mod orphans;
mod table;
mod tolerance;

use std::collections::{BTreeMap, BTreeSet};

use postgres::Client;
use serde::Serialize;
use serde_json::Value;

pub(crate) use catalog::primary_key;
pub use config::{CompareSection, Criterion, Judged, Judgement, Preset};
pub use orphans::orphans;
pub use tolerance::Tolerances;

use crate::pg::checksum;
use table::table;

/// Buckets per split.
const FANOUT: i64 = 256;
/// A bucket with at most this many rows on each side is fetched.
pub const FETCH_LIMIT: i64 = 256;
/// Rows a first-level range bucket holds, about.
const RANGE_ROWS: f64 = 4096.0;
/// Rows a first-level hash bucket holds, about: few enough buckets to
/// group them in memory cheaply, small enough to read a differing one.
const HASH_ROWS: f64 = 512.0;
/// Rows fetched by one query at most (roughly: whole buckets are fetched).
const FETCH_BATCH: i64 = 50_000;
/// How many differing rows a table's result lists.
pub const SHOWN: usize = 100;

/// One row that is not the same on both sides, named by its key.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RowDiff {
    /// The primary key's values, as JSON.
    pub key: Value,
    /// `missing` (in the target), `extra` (in the target) or `different`.
    pub kind: &'static str,
    /// For `different`: column → [source value, target value].
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub columns: BTreeMap<String, [Value; 2]>,
    /// The whole source row (`to_jsonb`), for `missing` and `different`;
    /// kept only when the caller asks for every row (sync).
    #[serde(skip)]
    pub source_row: Option<Value>,
}

/// One table's comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableResult {
    /// `schema.table`, for reading.
    pub table: String,
    /// The schema and the table, as names (either may hold a dot).
    #[serde(skip)]
    pub schema: String,
    #[serde(skip)]
    pub name: String,
    /// `match`, `differ`, `only_in_source`, `only_in_target`, `error`, or
    /// `not_readable`: there on both sides, and the role may read it on
    /// neither (not compared, and no difference).
    pub status: &'static str,
    pub source_rows: Option<i64>,
    pub target_rows: Option<i64>,
    /// Rows missing, extra and different, counted in full.
    pub missing: usize,
    pub extra: usize,
    pub different: usize,
    /// The first [`SHOWN`] differing rows.
    pub rows: Vec<RowDiff>,
    /// What else the reader must know (no primary key, the error).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Columns one side has and the other does not: the rows are compared
    /// on the columns both have, and these are listed apart.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub columns_only_in_source: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub columns_only_in_target: Vec<String>,
}

impl TableResult {
    /// A result with nothing compared (yet): counts unknown, no rows.
    fn empty(schema: &str, name: &str, status: &'static str) -> TableResult {
        TableResult {
            table: format!("{schema}.{name}"),
            schema: schema.to_string(),
            name: name.to_string(),
            status,
            source_rows: None,
            target_rows: None,
            missing: 0,
            extra: 0,
            different: 0,
            rows: Vec::new(),
            note: None,
            columns_only_in_source: Vec::new(),
            columns_only_in_target: Vec::new(),
        }
    }
}

/// One foreign key of the target, checked row by row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ForeignKey {
    pub table: String,
    pub constraint: String,
    /// Declared `NOT VALID`: PostgreSQL never checked the rows that were there.
    pub not_valid: bool,
    /// Rows whose key has no parent row.
    pub orphans: i64,
}

/// The comparison of two databases.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// `match`, `differ` or `error`.
    pub verdict: &'static str,
    pub tables: Vec<TableResult>,
    /// The target's foreign keys with orphaned rows (all checked).
    pub foreign_keys: Vec<ForeignKey>,
    /// Why the foreign keys could not be checked, when they could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub foreign_key_error: Option<String>,
    /// How the schemas differ in behaviour (tables, columns and their
    /// types and collations, constraints, indexes, functions, policies):
    /// the target against the source.
    pub schema: Vec<String>,
    /// Differences that change nothing (column order, a function body
    /// written differently), reported apart, never a failure.
    pub schema_cosmetic: Vec<String>,
    /// Why the schemas could not be compared, when they could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema_error: Option<String>,
    /// Privileges left out of the schema comparison, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub acl_left_out: Vec<String>,
    /// The tolerances the rows were compared with (none: exactly).
    #[serde(skip_serializing_if = "Tolerances::is_exact")]
    pub tolerances: Tolerances,
}

/// Where a table's comparison is, for progress bars.
#[derive(Debug, Clone, Copy)]
pub enum Progress<'a> {
    Started(&'a str),
    /// A table's comparison moves on: (table, what it does now).
    Step(&'a str, &'a str),
    Finished(&'a TableResult),
}

/// What each table's comparison is asked for.
struct Job<'a> {
    /// How many differing rows to list (every one, with its source row,
    /// at `usize::MAX`: sync).
    keep: usize,
    tolerances: &'a Tolerances,
    progress: &'a (dyn Fn(Progress<'_>) + Sync),
}

/// Why a comparison could not start.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error(transparent)]
    Connect(#[from] crate::pg::conn::ConnectError),
    #[error("database error while listing the tables")]
    Db(#[from] postgres::Error),
}

fn message(e: &postgres::Error) -> String {
    e.as_db_error().map_or_else(|| e.to_string(), |d| d.message().to_string())
}

/// Whether one side has a table, and whether its role may read it there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Has {
    No,
    Readable,
    /// There, but the role may not read it, nor change it (`pg::unreadable`).
    Unreadable,
    /// There, and the role may not read it but may change it; or may read
    /// it only in part: row level security filters its rows for the role.
    Changeable {
        filtered: bool,
    },
}

/// A table to compare: (schema, name), and how the source and the target have it.
type Listed = ((String, String), Has, Has);

/// The tables of one side: those the role may read, those it may neither
/// read nor change, those it may not read but may change, and of those
/// the ones whose rows row level security filters for it.
fn side(client: &mut Client) -> Result<[BTreeSet<(String, String)>; 4], postgres::Error> {
    let readable = checksum::user_tables(client)?.into_iter().collect();
    let (mut unreadable, mut changeable, mut filtered) =
        (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    for t in crate::pg::unreadable::tables(client)?.into_iter().filter(|t| !t.sequence) {
        if t.policies && t.changeable.is_some() {
            filtered.insert((t.schema.clone(), t.name.clone()));
        }
        let set = if t.changeable.is_some() { &mut changeable } else { &mut unreadable };
        set.insert((t.schema, t.name));
    }
    Ok([readable, unreadable, changeable, filtered])
}

/// The tables of both sides that `only` chooses (`schema.table` or
/// `table`; empty: all), and how each side has each.
fn tables_of(
    source: &mut Client,
    target: &mut Client,
    only: &[String],
) -> Result<Vec<Listed>, postgres::Error> {
    let (a, b) = (side(source)?, side(target)?);
    let has = |[readable, unreadable, changeable, filtered]: &[BTreeSet<(String, String)>; 4],
               t| {
        if readable.contains(t) {
            Has::Readable
        } else if unreadable.contains(t) {
            Has::Unreadable
        } else if changeable.contains(t) {
            Has::Changeable { filtered: filtered.contains(t) }
        } else {
            Has::No
        }
    };
    let wanted = |t: &(String, String)| {
        only.is_empty() || only.iter().any(|o| *o == format!("{}.{}", t.0, t.1) || *o == t.1)
    };
    let all: BTreeSet<&(String, String)> = a.iter().chain(&b).flatten().collect();
    Ok(all.into_iter().filter(|t| wanted(t)).map(|t| (t.clone(), has(&a, t), has(&b, t))).collect())
}

/// One table's result, whatever happens: an error is a result too.
fn one(
    source: &mut Client,
    target: &mut Client,
    t: &(String, String),
    in_a: Has,
    in_b: Has,
    job: &Job<'_>,
) -> TableResult {
    let empty = |status| TableResult::empty(&t.0, &t.1, status);
    let noted = |status, note: &str| TableResult { note: Some(note.into()), ..empty(status) };
    let filtered = |side: &str| {
        format!(
            "row level security shows the role only some of its rows in the {side} \
             (a role with BYPASSRLS reads them all)"
        )
    };
    match (in_a, in_b) {
        (_, Has::No) => empty("only_in_source"),
        (Has::No, _) => empty("only_in_target"),
        // Neither side lets the role read it, nor (`pg::unreadable`)
        // change it: apart, never an error.
        (Has::Unreadable, Has::Unreadable) => {
            noted("not_readable", "the role may not read it on either side")
        }
        (Has::Changeable { filtered: true }, _) => noted("error", &filtered("source")),
        (Has::Unreadable | Has::Changeable { .. }, _) => {
            noted("error", "the role may not read it in the source")
        }
        (_, Has::Changeable { filtered: true }) => noted("error", &filtered("target")),
        (_, Has::Unreadable | Has::Changeable { .. }) => {
            noted("error", "the role may not read it in the target")
        }
        _ => match table(source, target, &t.0, &t.1, job) {
            Ok(r) => r,
            Err(e) => {
                // Whatever broke, this table was not shown to match.
                for c in [&mut *source, &mut *target] {
                    let _ = c.batch_execute("rollback");
                }
                let mut r = empty("error");
                r.note = Some(message(&e));
                r
            }
        },
    }
}

/// The target's foreign keys, the schemas, and the verdict over it all.
fn conclude(
    source: &mut Client,
    target: &mut Client,
    tables: Vec<TableResult>,
    tolerances: &Tolerances,
    ignore_acl: bool,
) -> Comparison {
    // An FK check that fails is an error of the whole comparison.
    let (foreign_keys, foreign_key_error) = match orphans(target) {
        Ok(f) => (f, None),
        Err(e) => (Vec::new(), Some(message(&e))),
    };
    // The grants a role freeze of Backstop's revoked are no difference; nor
    // any grant when asked to leave them out.
    let frozen: Vec<String> = [&mut *source, &mut *target]
        .into_iter()
        .flat_map(|c| crate::schema::freeze::frozen_roles(c).unwrap_or_default())
        .map(|r| r.role)
        .collect();
    let mut acl_left_out = Vec::new();
    if ignore_acl {
        acl_left_out.push("every relation's privileges (--ignore acl)".to_string());
    } else if !frozen.is_empty() {
        acl_left_out.push(format!(
            "the privileges of role(s) {} (frozen by backstop freeze)",
            frozen.join(", ")
        ));
    }
    // MAINTAIN came with 17: where only one side has it, it is left out.
    let majors = [&mut *source, &mut *target]
        .map(|c| crate::pg::server_version_num(c).map(crate::pg::bins::major_of_num).unwrap_or(0));
    let maintain_on_one_side = (majors[0] >= 17) != (majors[1] >= 17) && !ignore_acl;
    if maintain_on_one_side {
        acl_left_out.push(format!(
            "the MAINTAIN privilege, which PostgreSQL {} has and {} has not",
            majors[0].max(majors[1]),
            majors[0].min(majors[1])
        ));
    }
    let masked = |mut s: crate::pg::fingerprint::Schema| {
        match (ignore_acl, frozen.is_empty()) {
            (true, _) => s.mask_acl(None),
            (false, false) => s.mask_acl(Some(&frozen)),
            (false, true) => {}
        }
        if maintain_on_one_side {
            s.drop_privilege('m');
        }
        s
    };
    let (schema, schema_cosmetic, schema_error) = match (
        crate::pg::fingerprint::Schema::read(source).map(masked),
        crate::pg::fingerprint::Schema::read(target).map(masked),
    ) {
        (Ok(a), Ok(b)) => (a.differences(&b), a.cosmetic_differences(&b), None),
        (Err(e), _) | (_, Err(e)) => (Vec::new(), Vec::new(), Some(message(&e))),
    };
    let broken = foreign_key_error.is_some() || schema_error.is_some();
    let verdict = if broken || tables.iter().any(|t| t.status == "error") {
        "error"
    } else if tables.iter().all(|t| ["match", "not_readable"].contains(&t.status))
        && foreign_keys.is_empty()
        && schema.is_empty()
    {
        "match"
    } else {
        "differ"
    };
    Comparison {
        verdict,
        tables,
        foreign_keys,
        foreign_key_error,
        schema,
        schema_cosmetic,
        schema_error,
        acl_left_out,
        tolerances: tolerances.clone(),
    }
}

/// Compares every user table (or those named `schema.table` in `only`).
pub fn compare(
    source: &mut Client,
    target: &mut Client,
    only: &[String],
) -> Result<Comparison, postgres::Error> {
    compare_keeping(source, target, only, SHOWN, &Tolerances::default())
}

/// [`compare`], listing the first `keep` differing rows of each table
/// (every one, with its source row, when `keep` is `usize::MAX`: sync).
pub(crate) fn compare_keeping(
    source: &mut Client,
    target: &mut Client,
    only: &[String],
    keep: usize,
    tolerances: &Tolerances,
) -> Result<Comparison, postgres::Error> {
    let job = Job { keep, tolerances, progress: &|_| {} };
    let mut tables = Vec::new();
    for (t, in_a, in_b) in tables_of(source, target, only)? {
        tables.push(one(source, target, &t, in_a, in_b, &job));
    }
    Ok(conclude(source, target, tables, tolerances, false))
}

/// [`compare`] over connections of its own, `jobs` tables at a time (each
/// worker with a session on each side), telling `progress` as tables start
/// and finish. Results keep the tables' order.
#[allow(clippy::too_many_arguments)]
pub fn compare_parallel(
    source_url: &str,
    target_url: &str,
    only: &[String],
    jobs: usize,
    tolerances: &Tolerances,
    ignore_acl: bool,
    progress: &(dyn Fn(Progress<'_>) + Sync),
) -> Result<Comparison, CompareError> {
    let connect = || -> Result<(Client, Client), CompareError> {
        Ok((
            crate::pg::connect(source_url, "backstop compare")?,
            crate::pg::connect(target_url, "backstop compare")?,
        ))
    };
    let (mut source, mut target) = connect()?;
    let work = tables_of(&mut source, &mut target, only)?;
    let job = Job { keep: SHOWN, tolerances, progress };
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: std::sync::Mutex<Vec<Option<TableResult>>> =
        std::sync::Mutex::new(vec![None; work.len()]);
    let run = |source: &mut Client, target: &mut Client| loop {
        let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let Some((t, in_a, in_b)) = work.get(i) else { break };
        let name = format!("{}.{}", t.0, t.1);
        progress(Progress::Started(&name));
        let r = one(source, target, t, *in_a, *in_b, &job);
        progress(Progress::Finished(&r));
        results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(r);
    };
    let workers = jobs.clamp(1, work.len().max(1));
    std::thread::scope(|scope| -> Result<(), CompareError> {
        let mut handles = Vec::new();
        for _ in 1..workers {
            let (mut s, mut t) = connect()?;
            handles.push(scope.spawn(move || run(&mut s, &mut t)));
        }
        run(&mut source, &mut target);
        for h in handles {
            let _ = h.join();
        }
        Ok(())
    })?;
    let tables: Vec<TableResult> = results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .zip(&work)
        .map(|(r, (t, _, _))| {
            r.unwrap_or_else(|| {
                let mut r = TableResult::empty(&t.0, &t.1, "error");
                r.note = Some("its worker stopped before comparing it".into());
                r
            })
        })
        .collect();
    Ok(conclude(&mut source, &mut target, tables, tolerances, ignore_acl))
}
