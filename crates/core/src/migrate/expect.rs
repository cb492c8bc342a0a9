//! What a rollback must bring back, and the check that it did: the one
//! seam that owns both. `migrate` keeps with each migration's row the
//! picture its down must bring back ([`Expected`]: the fingerprint of the
//! schema before its up and after it, and what the up touched, read on
//! the copy its down was proved on); `rollback` reads the database after
//! its downs, inside their transaction, and commits only when it is that
//! schema again ([`Check`]). Where something else changed the database
//! since the migrate (drift), what the migrations touched and what the
//! downs changed are compared, and the rest is said to be left out.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use postgres::GenericClient;
use serde::{Deserialize, Serialize};

use super::{ApplyError, Group};
use super::{Failure, Stage};
use crate::adopt::keyed::{Digest, ToolHistory, Touched};
use crate::pg::fingerprint::Schema;
use crate::source::Migration;

/// The picture a migration's down must bring back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expected {
    /// The fingerprint (as `adopt::keyed` counts it) of the schema
    /// before the up.
    pub before: String,
    /// And after it, where it was read.
    #[serde(default)]
    pub after: Option<String>,
    /// What the up touched, each with what it was before.
    #[serde(default)]
    pub touched: Vec<Touched>,
}

impl Expected {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// What a rollback's check found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Checked {
    /// The version the rollback goes back to the state before of.
    pub before: String,
    /// The whole schema (less the tool's history and what the role may
    /// not read) is the one before it.
    pub equal: bool,
    /// How many objects the reverted ups touched, compared one by one.
    pub touched: usize,
    /// What differs from the schema before, each named: the check failed.
    pub differences: Vec<String>,
    /// The schema differs only in objects no reverted up touched and no
    /// down changed: something else changed them since (drift).
    pub drift: bool,
    /// Reverted migrations recorded without the picture (applied before
    /// Backstop kept one, or with `[migrations] keep_downs = false`).
    pub unrecorded: Vec<String>,
    /// What the check itself took: the reads before and after the downs
    /// and the comparison.
    pub took_ms: u64,
}

impl Checked {
    /// Whether the rollback may commit.
    pub fn passed(&self) -> bool {
        self.differences.is_empty()
    }

    /// What was compared, as a line after the reverted migrations.
    pub fn said(&self) -> String {
        let unrecorded = |list: &[String]| {
            format!(
                "no picture of the schema before {} was kept when it was applied (applied before \
                 Backstop kept one, or with [migrations] keep_downs = false)",
                list.join(", ")
            )
        };
        match (self.equal, self.drift, self.unrecorded.is_empty()) {
            (true, _, _) => format!(
                "the schema is the one before {}: compared on the database before COMMIT \
                 (schema, settings and privileges; {} object(s) the migrations touched; compared \
                 in {} ms)",
                self.before, self.touched, self.took_ms
            ),
            (false, true, true) => format!(
                "what the migrations touched is as it was before {} ({} object(s), compared \
                 before COMMIT); the rest of the schema changed since the migrate by something \
                 else (drift) and was not compared",
                self.before, self.touched
            ),
            (false, _, false) if self.touched > 0 => format!(
                "compared only what the recorded migrations touched ({} object(s)), equal: {}",
                self.touched,
                unrecorded(&self.unrecorded)
            ),
            _ => format!("not compared: {}", unrecorded(&self.unrecorded)),
        }
    }
}

/// The check a rollback runs before its COMMIT.
pub struct Check {
    history: ToolHistory,
    /// The records of the reverted migrations, oldest first (`None`: none
    /// kept).
    records: Vec<(String, Option<Expected>)>,
    /// The picture before the downs ran.
    start: Digest,
    /// What reading it took.
    took: std::time::Duration,
    checked: RefCell<Option<Checked>>,
}

impl Check {
    /// Reads the records of `reverting` (newest first, as a rollback runs
    /// them) and the picture before the downs.
    pub fn prepare(
        client: &mut impl GenericClient,
        migrations: &[Migration],
        reverting: &[&Migration],
    ) -> Result<Check, postgres::Error> {
        let t = std::time::Instant::now();
        let versions: Vec<String> = reverting.iter().map(|m| m.version.clone()).collect();
        let kept = crate::schema::applied::undo_to(client, &versions)?;
        let records = reverting
            .iter()
            .rev()
            .map(|m| {
                let record = kept.get(&m.version).and_then(|t| serde_json::from_str(t).ok());
                (m.version.clone(), record)
            })
            .collect();
        let history = ToolHistory::of(migrations).leaving_out(client)?;
        let (_, start) = history.digest(&picture(client)?);
        Ok(Check { history, records, start, took: t.elapsed(), checked: RefCell::new(None) })
    }

    /// What the check found, once it ran.
    pub fn checked(&self) -> Option<Checked> {
        self.checked.borrow().clone()
    }

    /// Reads the database after the downs of `group` (in their
    /// transaction) and compares it: the failure that keeps the rollback
    /// from committing, if it differs.
    pub(super) fn run(
        &self,
        tx: &mut postgres::Transaction<'_>,
        group: &Group<'_>,
    ) -> Result<Option<Failure>, ApplyError> {
        let t = std::time::Instant::now();
        let now = picture(tx).map_err(|source| {
            ApplyError::Db(crate::pg::DbError::new("reading the schema after the downs", source))
        })?;
        let (fingerprint, now) = self.history.digest(&now);
        let mut checked = compared(&self.records, &self.start, &fingerprint, &now);
        checked.took_ms = (self.took + t.elapsed()).as_millis().try_into().unwrap_or(u64::MAX);
        let failure = (!checked.passed()).then(|| failure(group, &checked));
        *self.checked.borrow_mut() = Some(checked);
        Ok(failure)
    }
}

/// The schema's objects and the database's own settings, as a proof's
/// key counts them.
pub(crate) fn picture(
    client: &mut impl GenericClient,
) -> Result<Vec<crate::pg::fingerprint::Object>, postgres::Error> {
    let mut objects = Schema::read(client)?.objects;
    objects.extend(crate::adopt::keyed::settings(client)?);
    Ok(objects)
}

/// Compares the picture after the downs (`fingerprint`, `now`) with what
/// the records say it must be; `start` is the picture before the downs.
pub(crate) fn compared(
    records: &[(String, Option<Expected>)],
    start: &Digest,
    fingerprint: &str,
    now: &Digest,
) -> Checked {
    let before = records.first().map(|(v, _)| v.clone()).unwrap_or_default();
    let unrecorded: Vec<String> =
        records.iter().filter(|(_, r)| r.is_none()).map(|(v, _)| v.clone()).collect();
    // Each object as the earliest reverted up that touched it found it.
    let mut expected: BTreeMap<&str, Option<&str>> = BTreeMap::new();
    for t in records.iter().filter_map(|(_, r)| r.as_ref()).flat_map(|r| &r.touched) {
        expected.entry(t.key.as_str()).or_insert(t.before.as_deref());
    }
    let whole = records.first().and_then(|(_, r)| r.as_ref()).map(|r| r.before.as_str());
    let mut checked = Checked {
        before,
        touched: expected.len(),
        unrecorded,
        equal: whole == Some(fingerprint),
        ..Default::default()
    };
    if checked.equal || (whole.is_none() && expected.is_empty()) {
        return checked;
    }
    for (key, was) in &expected {
        match (was, now.get(key)) {
            (None, Some(_)) => checked
                .differences
                .push(format!("{key}: still there (the up made it, the down left it)")),
            (Some(_), None) => checked.differences.push(format!(
                "{key}: gone (it was there before the up, the down did not make it again)"
            )),
            (Some(was), Some(is)) if was != &is => {
                checked.differences.push(format!("{key}: not as it was before the up"))
            }
            _ => {}
        }
    }
    let touched: BTreeSet<&str> = expected.keys().copied().collect();
    for key in now.changed_from(start) {
        if !touched.contains(key.as_str()) {
            checked
                .differences
                .push(format!("{key}: changed by the downs, though no reverted up touched it"));
        }
    }
    // Equal in all the migrations touched and all the downs changed: the
    // rest was changed by something else since.
    checked.drift = checked.differences.is_empty() && checked.unrecorded.is_empty();
    checked
}

/// The failure of a rollback whose check found the schema differs.
fn failure(group: &Group<'_>, checked: &Checked) -> Failure {
    let last = group.migrations.last().copied();
    let shown: Vec<&str> = checked.differences.iter().take(20).map(String::as_str).collect();
    let more = checked.differences.len() - shown.len();
    let mut message = format!(
        "after the downs the schema is not the one before {}: {} difference(s): {}",
        checked.before,
        checked.differences.len(),
        shown.join("; ")
    );
    if more > 0 {
        message.push_str(&format!("; and {more} more"));
    }
    Failure {
        version: last.map(|m| m.version.clone()).unwrap_or_default(),
        name: last.map(|m| m.name.clone()).unwrap_or_default(),
        direction: super::Direction::Down,
        stage: Stage::Compared,
        file: None,
        statement: None,
        statements: None,
        line: None,
        column: None,
        sql: None,
        sqlstate: None,
        message,
        detail: None,
        hint: Some(
            "nothing was changed; a down that leaves this behind is defective: `backstop downs \
             VERSION` proves it and shows the one that holds, `backstop downs --write --force \
             VERSION` puts it in the file"
                .into(),
        ),
        rolled_back: true,
        committed_statements: 0,
        group: group.versions(),
        blockers: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg::fingerprint::Object;

    fn digest(objects: &[(&str, &str)]) -> (String, Digest) {
        let objects: Vec<Object> = objects
            .iter()
            .map(|(k, d)| Object { key: k.to_string(), definition: d.to_string() })
            .collect();
        ToolHistory::of(&[]).digest(&objects)
    }

    #[test]
    fn a_down_that_leaves_the_table_is_named_and_one_that_does_not_passes() {
        let (fp0, d0) = digest(&[("relation public.a", "r")]);
        let (fp1, d1) = digest(&[("relation public.a", "r"), ("relation public.t", "r")]);
        let record =
            Expected { before: fp0.clone(), after: Some(fp1), touched: d1.touched_since(&d0) };
        let records = vec![("2".to_string(), Some(record))];
        // The down changed nothing: the table the up made is still there.
        let c = compared(
            &records,
            &d1,
            &digest(&[("relation public.a", "r"), ("relation public.t", "r")]).0,
            &d1,
        );
        assert!(!c.passed());
        assert_eq!(
            c.differences,
            ["relation public.t: still there (the up made it, the down left it)"]
        );
        // It dropped it: equal, whole.
        let c = compared(&records, &d1, &fp0, &d0);
        assert!(c.passed() && c.equal, "{c:?}");
        // It dropped it and another table nobody touched.
        let (fp2, d2) = digest(&[]);
        let c = compared(&records, &d1, &fp2, &d2);
        assert_eq!(
            c.differences,
            ["relation public.a: changed by the downs, though no reverted up touched it"]
        );
    }

    #[test]
    fn drift_elsewhere_leaves_what_the_migrations_touched_compared() {
        let (fp0, d0) = digest(&[("relation public.a", "r")]);
        let (_, d1) = digest(&[("relation public.a", "r"), ("column public.a.x", "int")]);
        let touched = d1.touched_since(&d0);
        let records = vec![("2".to_string(), Some(Expected { before: fp0, after: None, touched }))];
        // Someone added a table by hand after the migrate.
        let (_, start) = digest(&[
            ("relation public.a", "r"),
            ("column public.a.x", "int"),
            ("relation public.hand", "r"),
        ]);
        let (fp, now) = digest(&[("relation public.a", "r"), ("relation public.hand", "r")]);
        let c = compared(&records, &start, &fp, &now);
        assert!(c.passed() && !c.equal && c.drift, "{c:?}");
        assert_eq!(c.touched, 1);
        assert!(c.said().contains("drift"), "{}", c.said());
    }
}
