//! The backup gate `migrate` composes under the migration lock: reuse the
//! newest verified backup of the same database younger than `max_age`, or
//! take one; `--backup ID` names one (`--no-backup REASON` replaces the
//! gate with a [`crate::migrate::Waived`] one, audited). The id is stamped into
//! `backstop.applied.backup_id`, and the manifest records the migrations it
//! guards.

use chrono::Utc;
use postgres::Client;
use serde_json::json;

use super::config::{BackupSection, Engine, VerifyLevel};
use super::create::{create_read, source_of, CreateOptions, Source};
use super::manifest::{Kind, Manifest};
use super::pgbackrest;
use super::verify::{verify, verify_checksums};
use super::{BackupError, Note, Progress, Store, Tools};
use crate::kit::duration;
use crate::kit::error::chain;
use crate::kit::size::human as size;
use crate::migrate::{Gate, GatePass, GateRefusal};
use crate::pg::fingerprint::Schema;
use crate::source::Migration;

/// Where the backup gate leaves the picture of the schema of a backup it
/// took, for the gates after it.
pub type BackedUp = std::rc::Rc<std::cell::RefCell<Option<Schema>>>;

/// What the operator asked of the gate.
#[derive(Debug, Clone)]
pub enum GateMode {
    /// Reuse a recent verified backup, or take one.
    Take,
    /// Use this backup (`--backup ID`); it must be recent and verified.
    Use(String),
}

/// The backup gate.
pub struct BackupGate<'a> {
    pub url: String,
    pub store: Store,
    pub policy: BackupSection,
    pub mode: GateMode,
    /// `[migrations] protected_tables`: a restore point records their
    /// exact state.
    pub protected: Vec<String>,
    pub progress: &'a mut dyn Progress,
    /// Where a backup taken here leaves the picture of the schema it
    /// holds, read in its dump's snapshot, for the gates after this one
    /// (the downs `migrate` keeps are keyed by it).
    pub schema: Option<BackedUp>,
}

impl Gate for BackupGate<'_> {
    fn name(&self) -> &str {
        "backup"
    }

    fn check(
        &mut self,
        client: &mut Client,
        pending: &[&Migration],
        dry_run: bool,
    ) -> Result<GatePass, GateRefusal> {
        self.run(client, pending, dry_run).map_err(|e| GateRefusal {
            gate: "backup".into(),
            reason: chain(&e),
            exit_code: e.exit_code(),
        })
    }
}

impl BackupGate<'_> {
    fn run(
        &mut self,
        client: &mut Client,
        pending: &[&Migration],
        dry_run: bool,
    ) -> Result<GatePass, BackupError> {
        let source = source_of(client)?;
        if self.policy.engine == Engine::PgBackRest {
            return self.restore_point(client, &source, pending, dry_run);
        }
        let tools = Tools::for_server(source.server_version_num)?;
        let (mut m, reused) = match self.mode.clone() {
            GateMode::Use(id) => (self.named(&tools, &source, &id)?, true),
            GateMode::Take => match self.reusable(client, &tools, &source)? {
                Some(m) => (m, true),
                None if dry_run => {
                    return Ok(GatePass {
                        detail: json!({ "would_take": true }),
                        ..Default::default()
                    })
                }
                None => (self.take(&tools)?, false),
            },
        };
        if self.policy.verified == VerifyLevel::Restore
            && m.verified() != Some(VerifyLevel::Restore)
            && !dry_run
        {
            let jobs = self.jobs();
            verify(&self.store, &tools, &m.id, true, jobs, self.progress)?;
            m = self.store.load(&m.id)?;
        }
        if !dry_run {
            for p in pending {
                if !m.guards.contains(&p.version) {
                    m.guards.push(p.version.clone());
                }
            }
            self.store.save(&m)?;
        }
        Ok(GatePass {
            detail: json!({
                "id": m.id,
                "reused": reused,
                "created_at": m.created_at,
                "size_bytes": m.size_bytes,
                "verified": m.verified(),
            }),
            backup_id: Some(m.id),
            ..Default::default()
        })
    }

    fn jobs(&self) -> usize {
        self.policy.jobs.unwrap_or_else(super::create::default_jobs)
    }

    /// `--backup ID`: the backup must be of this database, recent, big
    /// enough and intact.
    fn named(&mut self, tools: &Tools, source: &Source, id: &str) -> Result<Manifest, BackupError> {
        let mut m = self.store.load(id)?;
        if m.kind != Kind::Dump {
            return Err(BackupError::Refused(format!(
                "backup {id} is a database snapshot, not a dump; name a dump (`backstop backup list`)"
            )));
        }
        if !m.same_database(source.system_identifier.as_deref(), &source.database) {
            return Err(BackupError::wrong_database(id, &m, source));
        }
        self.fits(&m)?;
        verify_checksums(&self.store, tools, &mut m)?;
        self.progress.note(Note::Info(format!(
            "using backup {id} ({} old, {})",
            duration::age(m.age(Utc::now())),
            size(m.size_bytes)
        )));
        Ok(m)
    }

    fn fits(&self, m: &Manifest) -> Result<(), BackupError> {
        let age = m.age(Utc::now());
        let max_age =
            chrono::Duration::from_std(self.policy.max_age).unwrap_or(chrono::Duration::MAX);
        if age > max_age {
            return Err(BackupError::Stale {
                id: m.id.clone(),
                age: duration::age(age),
                max_age: crate::kit::duration::human(self.policy.max_age),
            });
        }
        if m.size_bytes < self.policy.min_size {
            return Err(BackupError::TooSmall {
                id: m.id.clone(),
                size: size(m.size_bytes),
                min_size: size(self.policy.min_size),
            });
        }
        Ok(())
    }

    /// The newest verified backup of this database younger than max_age
    /// whose files still match their checksums, and which still holds the
    /// database as it is: no migration applied or reverted since, the same
    /// schema, and nothing written since (the user tables' insert, update
    /// and delete counters and their storage files as they were). Anything
    /// else would record the migration as guarded by an older state.
    fn reusable(
        &mut self,
        client: &mut Client,
        tools: &Tools,
        source: &Source,
    ) -> Result<Option<Manifest>, BackupError> {
        let (backups, _) = self.store.list()?;
        let mut candidates: Vec<Manifest> = backups
            .into_iter()
            .filter(|m| m.kind == Kind::Dump)
            .filter(|m| m.same_database(source.system_identifier.as_deref(), &source.database))
            .filter(|m| m.verified().is_some_and(|v| v >= self.policy.verified))
            .filter(|m| self.fits(m).is_ok())
            .collect();
        let Some(newest) = candidates.last() else { return Ok(None) };
        if let Some(why) = changed_since(client, newest)? {
            self.progress.note(Note::Info(format!(
                "not reusing backup {}: {why}; taking a new one",
                newest.id
            )));
            return Ok(None);
        }
        // Older candidates describe even older states.
        candidates.drain(..candidates.len() - 1);
        while let Some(mut m) = candidates.pop() {
            match verify_checksums(&self.store, tools, &mut m) {
                Ok(_) => {
                    self.progress.note(Note::Info(format!(
                        "reusing backup {} ({} old, {}, verified by {})",
                        m.id,
                        duration::age(m.age(Utc::now())),
                        size(m.size_bytes),
                        match m.verified() {
                            Some(VerifyLevel::Restore) => "a test restore",
                            _ => "checksums",
                        }
                    )));
                    return Ok(Some(m));
                }
                Err(BackupError::Corrupt { id, problems }) => {
                    self.progress.note(Note::Warning(format!(
                        "not reusing backup {id}: {}",
                        problems.join("; ")
                    )));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// The gate with pgBackRest: a healthy stanza with a recent backup and
    /// a restore point made now, archived, recorded in the store.
    fn restore_point(
        &mut self,
        client: &mut Client,
        source: &Source,
        pending: &[&Migration],
        dry_run: bool,
    ) -> Result<GatePass, BackupError> {
        let at = pgbackrest::Site { source, url: &self.url, protected: &self.protected };
        let mut m = pgbackrest::guard(client, &at, &self.policy, dry_run, self.progress)?;
        let Some(point) = m.restore_point.clone() else {
            return Ok(GatePass {
                detail: json!({ "engine": "pgbackrest", "would_create_restore_point": true }),
                ..Default::default()
            });
        };
        m.guards = pending.iter().map(|p| p.version.clone()).collect();
        let partial = self.store.begin(&m.id)?;
        m.write(&partial)?;
        self.store.commit(&m.id, &partial)?;
        self.progress.note(Note::Info(format!(
            "restore point {} archived (WAL {}, LSN {}); pgBackRest backup {} in {:.1}s",
            point.name,
            point.wal_file,
            point.lsn,
            point.backup_label,
            m.duration_ms as f64 / 1000.0
        )));
        Ok(GatePass {
            detail: json!({
                "id": m.id,
                "engine": "pgbackrest",
                "restore_point": point.name,
                "lsn": point.lsn,
                "backup_label": point.backup_label,
            }),
            backup_id: Some(m.id),
            ..Default::default()
        })
    }

    fn take(&mut self, tools: &Tools) -> Result<Manifest, BackupError> {
        let options = CreateOptions {
            label: Some("pre-migrate".into()),
            jobs: self.jobs(),
            lock_wait: self.policy.lock_wait,
        };
        let (m, schema) = create_read(&self.url, &self.store, tools, &options, self.progress)?;
        if let Some(slot) = &self.schema {
            *slot.borrow_mut() = Some(schema);
        }
        self.progress.note(Note::Info(format!(
            "backup {} taken: {}, {} table(s), {} row(s) in {:.1}s",
            m.id,
            size(m.size_bytes),
            m.row_counts.len(),
            m.row_counts.values().sum::<i64>(),
            m.duration_ms as f64 / 1000.0
        )));
        if m.size_bytes < self.policy.min_size {
            return Err(BackupError::TooSmall {
                id: m.id.clone(),
                size: size(m.size_bytes),
                min_size: size(self.policy.min_size),
            });
        }
        Ok(m)
    }
}

/// What happened to the database since `m` was taken, if anything.
fn changed_since(client: &mut Client, m: &Manifest) -> Result<Option<String>, BackupError> {
    let Some(then) = &m.state else {
        return Ok(Some("it does not record the state it was taken in".into()));
    };
    let applied = super::create::applied_versions(client)
        .map_err(BackupError::db("reading backstop.applied"))?;
    if applied != then.applied {
        let newer = applied.iter().filter(|v| !then.applied.contains(v)).count();
        let gone = then.applied.iter().filter(|v| !applied.contains(v)).count();
        return Ok(Some(format!(
            "{newer} migration(s) applied and {gone} reverted since it was taken"
        )));
    }
    // Applied and reverted again: the history, the schema and the counters
    // may all be back where they were, and the rows written meanwhile are
    // not in the backup. The log says what ran.
    let runs = crate::schema::events::changes_after(client, then.last_event, m.created_at)
        .map_err(BackupError::db("reading backstop.events"))?;
    if !runs.is_empty() {
        let runs: Vec<String> = runs.iter().map(|(kind, n)| format!("{n} {kind}")).collect();
        return Ok(Some(format!(
            "the database was changed since it was taken: backstop.events records {} after it",
            runs.join(" and ")
        )));
    }
    let schema = crate::pg::fingerprint::Schema::read(client)
        .map_err(BackupError::db("reading the schema"))?
        .fingerprint();
    if schema != m.schema_fingerprint {
        return Ok(Some("the schema changed since it was taken".into()));
    }
    let (writes, storage) = super::create::write_marks(client)
        .map_err(BackupError::db("reading the write counters"))?;
    if writes != then.writes {
        return Ok(Some(format!(
            "the database was written since it was taken ({} row change(s) counted by pg_stat_user_tables)",
            writes - then.writes
        )));
    }
    if storage != then.storage {
        return Ok(Some("a table was truncated or rewritten since it was taken".into()));
    }
    match (&then.sequence_values, &then.sequences) {
        (Some(then), _) => {
            let now = super::create::sequence_values(client)
                .map_err(BackupError::db("reading the sequences"))?;
            Ok(sequence_moved(then, &now))
        }
        (None, Some(hash)) => {
            let now = super::create::sequence_marks(client)
                .map_err(BackupError::db("reading the sequences"))?;
            Ok((*hash != now).then(|| "a sequence moved since it was taken".into()))
        }
        (None, None) => Ok(Some("it does not record where the sequences stood".into())),
    }
}

/// How the first sequence that moved between `then` and `now` moved, if
/// any did: advanced (`nextval()` writes no row, and a restore would hand
/// its ids out again) or set back (`setval`, `RESTART`: a restore would
/// put it ahead again).
fn sequence_moved(
    then: &std::collections::BTreeMap<String, Option<i64>>,
    now: &std::collections::BTreeMap<String, Option<i64>>,
) -> Option<String> {
    let names = then.keys().chain(now.keys().filter(|k| !then.contains_key(*k)));
    for name in names {
        let (before, after) = (then.get(name), now.get(name));
        if before == after {
            continue;
        }
        let shown = |v: Option<&Option<i64>>| match v {
            Some(Some(n)) => n.to_string(),
            Some(None) => "unused".to_string(),
            None => "absent".to_string(),
        };
        let moved = format!("{name}: {} to {}", shown(before), shown(after));
        let set_back = format!(
            "a sequence was set back since it was taken ({moved}; a restore would put it ahead \
             again)"
        );
        let advanced = format!(
            "a sequence advanced since it was taken ({moved}; nextval() writes no row, and a \
             restore would hand out its ids again)"
        );
        return Some(match (before, after) {
            (Some(before), Some(after)) => match (before, after) {
                (Some(b), Some(a)) if a < b => set_back,
                (Some(_), None) => set_back,
                _ => advanced,
            },
            _ => format!("a sequence was created or dropped since it was taken ({moved})"),
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::sequence_moved;
    use std::collections::BTreeMap;

    fn at(values: &[(&str, Option<i64>)]) -> BTreeMap<String, Option<i64>> {
        values.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    /// Regression: a sequence set lower was said to have "advanced".
    #[test]
    fn a_sequence_set_lower_is_said_to_be_set_back() {
        let then = at(&[("public.a", Some(120)), ("public.b", Some(7))]);
        assert_eq!(sequence_moved(&then, &then), None);
        let lowered = sequence_moved(&then, &at(&[("public.a", Some(5)), ("public.b", Some(7))]));
        assert!(lowered.as_deref().unwrap().starts_with("a sequence was set back"), "{lowered:?}");
        assert!(lowered.unwrap().contains("public.a: 120 to 5"));
        let restarted = sequence_moved(&then, &at(&[("public.a", None), ("public.b", Some(7))]));
        assert!(restarted.unwrap().contains("set back"));
        let advanced =
            sequence_moved(&then, &at(&[("public.a", Some(120)), ("public.b", Some(9))]));
        assert!(advanced.unwrap().starts_with("a sequence advanced"));
        let first_use = sequence_moved(&at(&[("public.c", None)]), &at(&[("public.c", Some(1))]));
        assert!(first_use.unwrap().starts_with("a sequence advanced"));
        let created = sequence_moved(&then, &at(&[("public.a", Some(120))]));
        assert!(created.unwrap().contains("created or dropped"));
    }
}
