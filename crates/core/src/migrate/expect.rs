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
use crate::adopt::in_step::{recorded_by_tool, ToolRecord};
use crate::adopt::keyed::{is_cosmetic, Digest, ToolHistory, Touched};
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
    /// Column order and comments that differ from before, each named:
    /// said apart, never a reason to refuse (they change no behaviour).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cosmetic: Vec<String>,
    /// The schema differs only in objects no reverted up touched and no
    /// down changed: something else changed them since (drift).
    pub drift: bool,
    /// An object the migrations touched is back written otherwise but the
    /// same as read (see `Touched::also`): the whole schema's fingerprint,
    /// which holds definitions as written, then tells nothing of the rest.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub written_otherwise: bool,
    /// Reverted migrations recorded without the picture (applied before
    /// Backstop kept one, or with `[migrations] keep_downs = false`).
    pub unrecorded: Vec<String>,
    /// What the check itself took: the reads before and after the downs
    /// and the comparison.
    pub took_ms: u64,
    /// The history of the project's own tool, compared too (`golang-migrate's
    /// history (schema_migrations)`): it must record as applied what it
    /// did before the downs, less the reverted migrations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
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
        let said = match (self.equal, self.drift, self.unrecorded.is_empty()) {
            (true, _, _) => format!(
                "the schema is the one before {}: compared on the database before COMMIT \
                 (schema, settings and privileges{}; {} object(s) the migrations touched; compared \
                 in {} ms)",
                self.before,
                self.tool.as_ref().map(|t| format!(", and {t}")).unwrap_or_default(),
                self.touched,
                self.took_ms
            ),
            (false, true, true) if self.written_otherwise => format!(
                "what the migrations touched is as it was before {} ({} object(s), compared \
                 before COMMIT; some made again written otherwise, the same as read); the rest \
                 of the schema was not compared (its fingerprint holds definitions as written)",
                self.before, self.touched
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
        };
        if self.cosmetic.is_empty() {
            return said;
        }
        format!(
            "{said}; cosmetic, said apart (no behaviour changes with them): {}",
            self.cosmetic.join("; ")
        )
    }
}

/// The savepoint a rollback's transaction takes before its downs, so that
/// its check can read the schema as it was before them only where it
/// needs to (see [`Check::run`]).
pub(super) const BEFORE_DOWNS: &str = "SAVEPOINT backstop_before_downs";

/// What a rollback does after its check.
pub(super) enum Verdict {
    /// The schema is as it must be: commit.
    Commit,
    /// It is not: roll back, with this failure.
    Refuse(Box<Failure>),
    /// It is, where the migrations touched it and the downs changed it;
    /// the rest changed since the migrate (drift). To read the schema
    /// before the downs, the check went back to before them: run the
    /// downs again and commit.
    Again,
}

/// The check a rollback runs before its COMMIT.
pub struct Check {
    history: ToolHistory,
    /// The project's own tool's history before the downs, and the folder
    /// it is read against; `None` where no tool's table is kept in step.
    tool: Option<(ToolRecord, Vec<Migration>)>,
    /// The records of the reverted migrations, oldest first (`None`: none
    /// kept).
    records: Vec<(String, Option<Expected>)>,
    /// What reading the records took.
    took: std::time::Duration,
    checked: RefCell<Option<Checked>>,
}

/// The records of `versions` (what a rollback of each must bring back),
/// by version; one recorded without it, or unreadable, is absent.
pub fn records(
    client: &mut impl GenericClient,
    versions: &[String],
) -> Result<BTreeMap<String, Expected>, postgres::Error> {
    Ok(crate::schema::applied::undo_to(client, versions)?
        .into_iter()
        .filter_map(|(v, json)| Some((v, serde_json::from_str(&json).ok()?)))
        .collect())
}

impl Check {
    /// Reads the records of `reverting` (newest first, as a rollback runs
    /// them).
    pub fn prepare(
        client: &mut impl GenericClient,
        migrations: &[Migration],
        reverting: &[&Migration],
        in_step: bool,
    ) -> Result<Check, postgres::Error> {
        let t = std::time::Instant::now();
        let versions: Vec<String> = reverting.iter().map(|m| m.version.clone()).collect();
        let mut kept = records(client, &versions)?;
        let records =
            reverting.iter().rev().map(|m| (m.version.clone(), kept.remove(&m.version))).collect();
        let history = ToolHistory::of(migrations).leaving_out(client)?;
        // A tool's table that cannot be read here is not compared (the
        // line the check says then does not name it).
        let tool = match in_step {
            true => recorded_by_tool(client, migrations).ok().flatten(),
            false => None,
        };
        let tool = tool.map(|r| (r, migrations.to_vec()));
        Ok(Check { history, tool, records, took: t.elapsed(), checked: RefCell::new(None) })
    }

    /// What the check found, once it ran.
    pub fn checked(&self) -> Option<Checked> {
        self.checked.borrow().clone()
    }

    /// Reads the database after the downs of `group` (in their
    /// transaction, which took [`BEFORE_DOWNS`] before them) and compares
    /// it with the records. The schema before the downs is read only
    /// where the whole schema differs from the records' (going back to
    /// the savepoint): to tell drift (commit) from what the downs changed
    /// that no up touched (refuse, naming it).
    pub(super) fn run(
        &self,
        tx: &mut postgres::Transaction<'_>,
        group: &Group<'_>,
    ) -> Result<Verdict, ApplyError> {
        let db = |what: &'static str| {
            move |source| ApplyError::Db(crate::pg::DbError::new(what, source))
        };
        let t = std::time::Instant::now();
        let tool = self.tool_differences(tx)?;
        let mut prepared = crate::pg::Prepared::default();
        let now = picture(tx, &mut prepared).map_err(db("reading the schema after the downs"))?;
        let (fingerprint, now) = now.digest(&self.history);
        let mut checked = compared(&self.records, None, &fingerprint, &now);
        let mut again = false;
        // Not the whole schema as recorded: what the downs changed, read
        // against the schema before them, says whether it is drift, and
        // names every difference where it is not.
        if !checked.equal && checked.unrecorded.is_empty() {
            tx.batch_execute("ROLLBACK TO SAVEPOINT backstop_before_downs")
                .map_err(db("going back to before the downs"))?;
            let start =
                picture(tx, &mut prepared).map_err(db("reading the schema before the downs"))?;
            let (_, start) = start.digest(&self.history);
            checked = compared(&self.records, Some(&start), &fingerprint, &now);
            again = checked.passed();
        }
        if let Some((said, differences)) = tool {
            checked.tool = Some(said);
            checked.differences.extend(differences);
        }
        checked.took_ms = (self.took + t.elapsed()).as_millis().try_into().unwrap_or(u64::MAX);
        let verdict = match (checked.passed(), again) {
            (false, _) => Verdict::Refuse(Box::new(failure(group, &checked))),
            (true, true) => Verdict::Again,
            (true, false) => Verdict::Commit,
        };
        *self.checked.borrow_mut() = Some(checked);
        Ok(verdict)
    }
}

impl Check {
    /// The tool's history after the downs (in their transaction, after
    /// its rows were taken out) against the one before them: what is
    /// said of it, and every difference.
    fn tool_differences(
        &self,
        tx: &mut postgres::Transaction<'_>,
    ) -> Result<Option<(String, Vec<String>)>, ApplyError> {
        let Some((before, migrations)) = &self.tool else { return Ok(None) };
        let after = recorded_by_tool(tx, migrations).map_err(ApplyError::ToolHistory)?;
        let reverted: Vec<String> = self.records.iter().map(|(v, _)| v.clone()).collect();
        let said = format!("{}'s history ({})", before.tool, before.table);
        let differences = match after {
            Some(after) => after.differences(before, &reverted),
            None => vec![format!("{said} is gone after the downs")],
        };
        Ok(Some((said, differences)))
    }
}

/// The schema's objects and the database's own settings, as a proof's
/// key counts them, and its cosmetic objects apart.
pub(crate) struct Picture {
    objects: Vec<crate::pg::fingerprint::Object>,
    cosmetic: Vec<crate::pg::fingerprint::Object>,
}

impl Picture {
    /// Its fingerprint (of the objects) and digest (of both).
    pub(crate) fn digest(&self, history: &ToolHistory) -> (String, Digest) {
        history.digest_apart(&self.objects, &self.cosmetic)
    }
}

/// Reads the [`Picture`] of the database `client` is connected to.
pub(crate) fn picture(
    client: &mut impl GenericClient,
    prepared: &mut crate::pg::Prepared,
) -> Result<Picture, postgres::Error> {
    let Schema { mut objects, cosmetic } = Schema::read_probed(client, prepared)?;
    objects.extend(crate::adopt::keyed::settings(client)?);
    Ok(Picture { objects, cosmetic })
}

/// Compares the picture after the downs (`fingerprint`, `now`) with what
/// the records say it must be. `start`, the picture before the downs,
/// tells what the downs changed; without it the whole schema is compared
/// with the records' and what the migrations touched, and a difference
/// beyond those is left to be told with it (`drift` is false then).
pub(crate) fn compared(
    records: &[(String, Option<Expected>)],
    start: Option<&Digest>,
    fingerprint: &str,
    now: &Digest,
) -> Checked {
    let before = records.first().map(|(v, _)| v.clone()).unwrap_or_default();
    let unrecorded: Vec<String> =
        records.iter().filter(|(_, r)| r.is_none()).map(|(v, _)| v.clone()).collect();
    // Each object as the earliest reverted up that touched it found it,
    // with what its down was proved to leave where that is written
    // otherwise but the same as read.
    let mut expected: BTreeMap<&str, (Option<&str>, Option<&str>)> = BTreeMap::new();
    for t in records.iter().filter_map(|(_, r)| r.as_ref()).flat_map(|r| &r.touched) {
        expected.entry(t.key.as_str()).or_insert((t.before.as_deref(), t.also.as_deref()));
    }
    let whole = records.first().and_then(|(_, r)| r.as_ref()).map(|r| r.before.as_str());
    // Column order and comments the ups touched are said apart and never
    // refuse the rollback; the whole schema's fingerprint leaves them out.
    let all_touched: BTreeSet<&str> = expected.keys().copied().collect();
    let (cosmetic, expected): (BTreeMap<_, _>, BTreeMap<_, _>) =
        expected.into_iter().partition(|(key, _)| is_cosmetic(key));
    let mut checked = Checked {
        before,
        touched: expected.len(),
        unrecorded,
        equal: whole == Some(fingerprint),
        cosmetic: cosmetic
            .iter()
            .filter_map(|(key, (was, _))| differs(key, *was, now.get(key)))
            .collect(),
        ..Default::default()
    };
    if checked.equal || (whole.is_none() && expected.is_empty()) {
        return checked;
    }
    for (key, (was, also)) in &expected {
        let is = now.get(key);
        match differs(key, *was, is) {
            Some(_) if also.is_some() && is == *also => {
                checked.written_otherwise = true;
                checked.cosmetic.push(format!(
                    "{key}: made again written otherwise (spacing, case, parentheses that \
                     group nothing, or its privileges listed in another order), the same as \
                     PostgreSQL reads it, as its down was proved to"
                ));
            }
            differs => checked.differences.extend(differs),
        }
    }
    // What the downs changed must be what the ups touched: told only
    // where every reverted migration has its record (an unrecorded one's
    // down changes what no record names).
    let Some(start) = start.filter(|_| checked.unrecorded.is_empty()) else { return checked };
    for key in now.changed_from(start) {
        if !all_touched.contains(key.as_str()) {
            let said = untouched(&key, start.get(&key), now.get(&key));
            match is_cosmetic(&key) {
                true => checked.cosmetic.push(said),
                false => checked.differences.push(said),
            }
        }
    }
    // Equal in all the migrations touched and all the downs changed: the
    // rest was changed by something else since.
    checked.drift = checked.differences.is_empty();
    checked
}

/// What the downs did to an object no reverted up touched (`was`: before
/// the downs, `is`: after them): said as what it is, an object made or
/// changed since the migrate by something else that the downs took with
/// them (a hand-made index on a column a down drops), not as the down's
/// mistake alone.
fn untouched(key: &str, was: Option<&str>, is: Option<&str>) -> String {
    match (was, is) {
        (Some(_), None) => format!(
            "{key}: removed by the downs, though none of the reverted ups made it: it was made \
             since the migrate by hand or by another tool (drop it first, or make it again \
             after the rollback), or a down removes what it should not"
        ),
        (None, Some(_)) => {
            format!("{key}: made by the downs, though none of the reverted ups removed it")
        }
        _ => format!(
            "{key}: changed by the downs, though no reverted up touched it: it was changed \
             since the migrate by hand or by another tool, or a down changes what it should not"
        ),
    }
}

/// How an object the ups touched differs after the downs from what it was
/// before them (`was`: its hash, `None` where the up made it; `is`: now).
fn differs(key: &str, was: Option<&str>, is: Option<&str>) -> Option<String> {
    match (was, is) {
        (None, Some(_)) => Some(format!("{key}: still there (the up made it, the down left it)")),
        (Some(_), None) => Some(format!(
            "{key}: gone (it was there before the up, the down did not make it again)"
        )),
        (Some(was), Some(is)) if was != is => Some(format!("{key}: not as it was before the up")),
        _ => None,
    }
}

/// The failure of a rollback whose check found the schema differs.
fn failure(group: &Group<'_>, checked: &Checked) -> Failure {
    let last = group.migrations.last().copied().expect("a group holds a migration");
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
    let hint = "nothing was changed; a down that leaves this behind is defective: `backstop downs \
                VERSION` proves it and shows the one that holds, `backstop downs --write --force \
                VERSION` puts it in the file";
    Failure::of_group(group, last, Stage::Compared, message, hint)
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
            Some(&d1),
            &digest(&[("relation public.a", "r"), ("relation public.t", "r")]).0,
            &d1,
        );
        assert!(!c.passed());
        assert_eq!(
            c.differences,
            ["relation public.t: still there (the up made it, the down left it)"]
        );
        // It dropped it: equal, whole.
        let c = compared(&records, Some(&d1), &fp0, &d0);
        assert!(c.passed() && c.equal, "{c:?}");
        // It dropped it and another table nobody touched.
        let (fp2, d2) = digest(&[]);
        let c = compared(&records, Some(&d1), &fp2, &d2);
        assert_eq!(c.differences.len(), 1, "{c:?}");
        assert!(
            c.differences[0].starts_with(
                "relation public.a: removed by the downs, though none of the reverted ups made it"
            ),
            "{c:?}"
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
        let c = compared(&records, Some(&start), &fp, &now);
        assert!(c.passed() && !c.equal && c.drift, "{c:?}");
        assert_eq!(c.touched, 1);
        assert!(c.said().contains("drift"), "{}", c.said());
    }
}
