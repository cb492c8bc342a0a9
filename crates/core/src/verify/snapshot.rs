//! Snapshots that `row_counts` and `checksums` compare with: per-table row
//! counts and content checksums, taken in one consistent read, kept in
//! `backstop.snapshots` (Backstop's own schema, never part of a checksum).
//!
//! Where a snapshot comes from: `backstop verify --snapshot save NAME`
//! takes one, `migrate` and `rollback` take one just before they run, and
//! `backup:latest` (or `backup:ID`) reads the row counts in a backup's
//! manifest, which come from the dump's own snapshot.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use postgres::{Client, GenericClient};
use serde::{Deserialize, Serialize};

use super::config::{Kind, TableName, VerifySection};
use super::VerifyError;
use crate::pg::checksum;
use crate::schema::snapshots;

/// One table's state in a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableState {
    pub rows: i64,
    /// Present for the tables a `checksums` check covers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
}

/// Row counts (and checksums) of a database's tables at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub name: String,
    pub taken_at: DateTime<Utc>,
    /// [`checksum::METHOD_COLUMN_HASH`] or [`checksum::METHOD_TEXT_HASH`];
    /// empty when the snapshot holds counts only.
    pub method: String,
    /// By `schema.table`.
    pub tables: BTreeMap<String, TableState>,
}

/// Which tables a snapshot checksums (counting is cheap, every table is counted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChecksumScope {
    None,
    All,
    Tables(Vec<TableName>),
}

impl ChecksumScope {
    /// What the configured `checksums` checks need.
    pub fn for_suite(section: &VerifySection) -> ChecksumScope {
        let mut tables = Vec::new();
        for check in &section.checks {
            if let Kind::Checksums(c) = &check.kind {
                match &c.tables {
                    None => return ChecksumScope::All,
                    Some(t) => tables.extend(t.iter().cloned()),
                }
            }
        }
        if tables.is_empty() {
            ChecksumScope::None
        } else {
            ChecksumScope::Tables(tables)
        }
    }

    fn covers(&self, schema: &str, name: &str) -> bool {
        match self {
            ChecksumScope::None => false,
            ChecksumScope::All => true,
            ChecksumScope::Tables(list) => list
                .iter()
                .any(|t| t.name == name && t.schema.as_deref().is_none_or(|s| s == schema)),
        }
    }
}

impl Snapshot {
    /// A snapshot of row counts only, e.g. from a backup's manifest.
    pub fn from_counts(
        name: &str,
        taken_at: DateTime<Utc>,
        counts: impl IntoIterator<Item = (String, i64)>,
    ) -> Snapshot {
        Snapshot {
            name: name.to_string(),
            taken_at,
            method: String::new(),
            tables: counts
                .into_iter()
                .map(|(t, rows)| (t, TableState { rows, checksum: None }))
                .collect(),
        }
    }

    /// Counts every user table and checksums those in `scope`, all in one
    /// repeatable-read transaction so the tables agree with each other.
    pub fn take(
        client: &mut Client,
        name: &str,
        scope: &ChecksumScope,
    ) -> Result<Snapshot, VerifyError> {
        let db = |context: &'static str| {
            move |source| VerifyError::Db(crate::pg::DbError::new(context, source))
        };
        let mut tx =
            crate::pg::one_moment(client).map_err(db("starting a repeatable-read transaction"))?;
        let method = checksum::method(&mut tx).map_err(db("reading the server version"))?;
        let taken_at: DateTime<Utc> =
            tx.query_one("select now()", &[]).map_err(db("reading the time"))?.get(0);
        let mut counts = Vec::new();
        let mut sums = BTreeMap::new();
        for (schema, table) in checksum::user_tables(&mut tx).map_err(db("listing tables"))? {
            let key = format!("{schema}.{table}");
            if scope.covers(&schema, &table) {
                let c = checksum::table_checksum(&mut tx, &schema, &table)
                    .map_err(db("checksumming a table"))?;
                counts.push((key.clone(), c.rows));
                sums.insert(key, c.checksum);
            } else {
                let sql = format!(
                    "select count(*) from only {}",
                    crate::pg::quote_qualified(Some(&schema), &table)
                );
                let rows: i64 =
                    tx.query_one(sql.as_str(), &[]).map_err(db("counting rows"))?.get(0);
                counts.push((key, rows));
            }
        }
        tx.commit().map_err(db("ending the snapshot's transaction"))?;
        let mut snapshot = Snapshot::from_counts(name, taken_at, counts);
        if !sums.is_empty() {
            snapshot.method = method.to_string();
            for (key, sum) in sums {
                if let Some(state) = snapshot.tables.get_mut(&key) {
                    state.checksum = Some(sum);
                }
            }
        }
        Ok(snapshot)
    }

    /// Total rows over every table.
    pub fn total_rows(&self) -> i64 {
        self.tables.values().map(|t| t.rows).sum()
    }

    /// The key of `table` in this snapshot: exact when qualified, else the
    /// one table of that name (in `public` if several schemas have one).
    pub fn key_for(&self, table: &TableName) -> Option<String> {
        match &table.schema {
            Some(schema) => {
                let key = format!("{schema}.{}", table.name);
                self.tables.contains_key(&key).then_some(key)
            }
            None => {
                let matching: Vec<&String> = self
                    .tables
                    .keys()
                    .filter(|k| k.rsplit_once('.').is_some_and(|(_, n)| n == table.name))
                    .collect();
                match matching.as_slice() {
                    [one] => Some((*one).clone()),
                    _ => {
                        let public = format!("public.{}", table.name);
                        self.tables.contains_key(&public).then_some(public)
                    }
                }
            }
        }
    }
}

/// Names that refer to a backup's manifest instead of `backstop.snapshots`.
pub const BACKUP_PREFIX: &str = "backup:";

/// The row counts of a backup in `dir`: `latest` is the newest verified
/// backup of this database (system identifier and name), else an id.
pub fn from_backup(
    client: &mut Client,
    dir: &std::path::Path,
    which: &str,
) -> Result<Snapshot, VerifyError> {
    let store = crate::backup::Store::new(dir);
    let backup = |e: crate::backup::BackupError| VerifyError::Backup(crate::kit::error::chain(&e));
    let manifest = store.pick(client, which).map_err(backup)?;
    Ok(Snapshot::from_counts(
        &format!("{BACKUP_PREFIX}{}", manifest.id),
        manifest.created_at,
        manifest.row_counts,
    ))
}

/// Stores `snapshot` under its name. A name is never overwritten: the
/// older snapshot may be the only record of how things were.
pub fn save(client: &mut Client, snapshot: &Snapshot) -> Result<(), VerifyError> {
    let db = |context: &'static str| {
        move |source| VerifyError::Db(crate::pg::DbError::new(context, source))
    };
    let stored = snapshots::Stored {
        name: snapshot.name.clone(),
        taken_at: snapshot.taken_at,
        method: snapshot.method.clone(),
        tables: serde_json::to_value(&snapshot.tables).unwrap_or_default(),
    };
    match snapshots::save(client, &stored).map_err(db("saving the snapshot"))? {
        Ok(()) => Ok(()),
        Err(taken_at) => Err(VerifyError::SnapshotExists { name: snapshot.name.clone(), taken_at }),
    }
}

/// Loads the snapshot called `name`.
pub fn load(client: &mut impl GenericClient, name: &str) -> Result<Snapshot, VerifyError> {
    let db = |context: &'static str| {
        move |source| VerifyError::Db(crate::pg::DbError::new(context, source))
    };
    let Some(stored) = snapshots::load(client, name).map_err(db("loading the snapshot"))? else {
        let known = snapshots::names(client, 10).map_err(db("listing snapshots"))?;
        return Err(VerifyError::SnapshotNotFound { name: name.to_string(), known });
    };
    let tables = serde_json::from_value(stored.tables).map_err(|e| {
        VerifyError::SnapshotCorrupt { name: name.to_string(), reason: e.to_string() }
    })?;
    Ok(Snapshot { name: stored.name, taken_at: stored.taken_at, method: stored.method, tables })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unqualified_names_find_their_table() {
        let s = Snapshot::from_counts(
            "s",
            Utc::now(),
            [
                ("public.users".to_string(), 1),
                ("auth.users".to_string(), 2),
                ("app.clients".to_string(), 3),
            ],
        );
        let name = |t: &str| TableName::parse(t).unwrap();
        assert_eq!(s.key_for(&name("users")).as_deref(), Some("public.users"));
        assert_eq!(s.key_for(&name("clients")).as_deref(), Some("app.clients"));
        assert_eq!(s.key_for(&name("auth.users")).as_deref(), Some("auth.users"));
        assert_eq!(s.key_for(&name("nope")), None);
        assert_eq!(s.total_rows(), 6);
    }
}
