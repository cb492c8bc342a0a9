//! What a rehearsal found, as `--format json` prints it and the report
//! shows it: the timed steps, each migration's round trip and how it is
//! judged, the failure scenarios, the locks, and the verdict over them.

use std::path::PathBuf;

use serde::Serialize;

use super::lossy::Lossy;
use crate::copies::clone::CopyInfo;
use crate::downs::Verdict;

/// A way the copy differs from a snapshot, named by object.
#[derive(Debug, Clone, Serialize)]
pub struct Difference {
    /// The migration whose down did not restore, if one is to blame.
    pub version: Option<String>,
    pub object: String,
    pub message: String,
}

/// Whether a relation a down misses is gone or new after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    /// There before the up, missing after the down.
    Gone,
    /// Missing before the up, there after the down.
    New,
}

/// A relation (table, view, sequence, ...) a down leaves gone or new,
/// reported once: its columns, indexes, constraints, triggers and policies
/// went or came with it and are counted, not listed.
#[derive(Debug, Clone, Serialize)]
pub struct RelationChange {
    /// `public.orders`.
    pub relation: String,
    /// `table`, `view`, `materialized view`, `sequence`, ...
    pub kind: String,
    pub presence: Presence,
    /// Rows, where the relation holds any (before the up when gone, after
    /// the down when new).
    pub rows: Option<i64>,
    /// Bytes on disk with its indexes and TOAST, where it could be measured.
    pub bytes: Option<i64>,
    /// What went or came with it: (what, how many), e.g. `("column", 12)`.
    pub parts: Vec<(String, usize)>,
}

/// A view or function the down does not put back as it was: its
/// definition before the up and after the down, as a unified diff.
#[derive(Debug, Clone, Serialize)]
pub struct DefinitionDiff {
    /// `view public.active_users`, `function public.touch()`.
    pub object: String,
    pub diff: String,
}

/// One timed step of the rehearsal.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub name: String,
    pub ok: bool,
    pub duration_ms: u64,
    pub detail: String,
}

impl Step {
    /// The step a migration's round trip takes in the list of steps: it
    /// fails exactly when the trip's outcome is an error, so the steps
    /// alone tell whether the rehearsal passed.
    pub(super) fn of_trip(label: &str, trip: &MigrationTrip, require_down: bool) -> Step {
        Step {
            name: format!("round trip {label}"),
            ok: !trip.class.is_error(require_down),
            duration_ms: trip.duration_ms,
            detail: format!("{}: {}", trip.class.label(), trip.detail),
        }
    }
}

/// The up → down → up check.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RoundTrip {
    pub ok: bool,
    /// Every migration's round trip, in order: one run reports them all.
    pub migrations: Vec<MigrationTrip>,
    pub differences: Vec<Difference>,
    /// Differences that change no behaviour, each naming its kind.
    pub cosmetic: Vec<Difference>,
    /// Whether a migration without a down fails it (`[rehearse]
    /// require_down`).
    #[serde(default)]
    pub require_down: bool,
    /// How long the round trips took from the first to the last (two
    /// halves side by side count once); 0 in records older than it.
    #[serde(default)]
    pub duration_ms: u64,
}

impl RoundTrip {
    /// How long the round trips took, from `steps` (theirs) where the
    /// record does not say.
    pub fn took_ms<'s>(&self, steps: impl Iterator<Item = &'s Step>) -> u64 {
        match self.duration_ms {
            0 => steps.map(|s| s.duration_ms).sum(),
            d => d,
        }
    }

    /// Adds one migration's trip; its differences are also gathered for
    /// the whole run, so the report lists what every down misses in one
    /// place.
    pub(super) fn record(&mut self, mut trip: MigrationTrip) {
        trip.verdict = trip.class.verdict();
        self.differences.extend(trip.differences.iter().cloned());
        self.cosmetic.extend(trip.cosmetic.iter().cloned());
        self.migrations.push(trip);
    }

    /// Whether no migration's outcome is an error.
    pub(super) fn passes(&self, require_down: bool) -> bool {
        self.migrations.iter().all(|t| !t.class.is_error(require_down))
    }
}

/// How one migration's round trip came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TripClass {
    /// The down restores schema and data, and the up applies again.
    Ok,
    /// After the down only cosmetic differences remain.
    CosmeticOnly,
    /// There is no down (an error only with `[rehearse] require_down`).
    NoDown,
    /// The down runs but does not restore: what it misses, by object.
    Defect,
    /// The down errors, times out, or cannot run as written.
    DownFails,
    /// The down restores, but the up does not apply again after it.
    ReUpFails,
    /// The up itself fails: the migrations after it are not rehearsed.
    UpFails,
    /// Not rehearsed, because an earlier migration's up failed.
    NotRehearsed,
    /// The schema round trips, but the up changed rows that were there in
    /// a way no SQL puts back (`UPDATE`, `DELETE`, `INSERT … SELECT`, a
    /// `DO` block's): only the backup holds them. An error until accepted
    /// with a reason.
    DataIrreversible,
    /// [`TripClass::DataIrreversible`], accepted with a recorded reason.
    DataAccepted,
    /// It had no down: one was computed from the schema before and after
    /// its up, and proved (up, down, schema as before) on the copy; kept
    /// for `migrate` to reuse (`downs::proofs`).
    Proved,
    /// Its down, computed or its author's, is proved for the schema, but
    /// the up dropped columns that held values: the down adds them back
    /// empty (or with their default), and the detail names the values
    /// only the backup holds. The same class `downs`, `migrate` and
    /// `rollback` name.
    ProvedLosing,
    /// It had no down, and none could be proved: the detail says why. An
    /// error only with `--require-downs` (`[rehearse] require_down`).
    Unprovable,
    /// It had no down: the one computed puts the schema back, but rows
    /// the up changed only the backup taken before it holds. An error
    /// only with `--require-downs`, until accepted with a reason.
    Irreversible,
}

impl TripClass {
    /// Every class, in the order the summary counts them.
    const ORDER: [TripClass; 14] = [
        TripClass::Ok,
        TripClass::Proved,
        TripClass::ProvedLosing,
        TripClass::CosmeticOnly,
        TripClass::NoDown,
        TripClass::Unprovable,
        TripClass::Irreversible,
        TripClass::DataAccepted,
        TripClass::DataIrreversible,
        TripClass::Defect,
        TripClass::DownFails,
        TripClass::ReUpFails,
        TripClass::UpFails,
        TripClass::NotRehearsed,
    ];

    /// Whether this outcome fails the rehearsal.
    pub fn is_error(self, require_down: bool) -> bool {
        match self {
            TripClass::Ok | TripClass::CosmeticOnly | TripClass::DataAccepted => false,
            TripClass::Proved | TripClass::ProvedLosing => false,
            TripClass::NoDown | TripClass::Unprovable | TripClass::Irreversible => require_down,
            _ => true,
        }
    }

    /// What the trip says of the migration's down, in the words `downs`
    /// uses for the same down; `None` where no down was tried (there is
    /// none, or its up failed or was not reached).
    pub fn verdict(self) -> Option<Verdict> {
        Some(match self {
            TripClass::Ok | TripClass::CosmeticOnly | TripClass::Proved => Verdict::Proved,
            TripClass::ProvedLosing
            | TripClass::DataIrreversible
            | TripClass::DataAccepted
            | TripClass::Irreversible => Verdict::ProvedLosing,
            TripClass::Defect | TripClass::DownFails | TripClass::ReUpFails => Verdict::Defective,
            TripClass::Unprovable => Verdict::Unprovable,
            TripClass::NoDown | TripClass::UpFails | TripClass::NotRehearsed => return None,
        })
    }

    /// As the summary table writes it.
    pub fn label(self) -> &'static str {
        match self {
            TripClass::Ok => "ok",
            TripClass::CosmeticOnly => "cosmetic only",
            TripClass::NoDown => "no down",
            TripClass::Defect => "defect",
            TripClass::DownFails => "down fails",
            TripClass::ReUpFails => "re-up fails",
            TripClass::UpFails => "up fails",
            TripClass::NotRehearsed => "not rehearsed",
            TripClass::DataIrreversible => "losing values only the backup holds",
            TripClass::DataAccepted => "losing values only the backup holds (accepted)",
            TripClass::Proved => "down computed and proved",
            TripClass::ProvedLosing => "proved, losing named values only the backup holds",
            TripClass::Unprovable => "unprovable down",
            TripClass::Irreversible => "irreversible: losing values only the backup holds",
        }
    }
}

/// `240 ok, 3 cosmetic only, 12 defect`: how many round trips of each kind.
pub fn trip_counts(trips: &[MigrationTrip]) -> String {
    TripClass::ORDER
        .iter()
        .map(|c| (c, trips.iter().filter(|t| t.class == *c).count()))
        .filter(|(_, n)| *n > 0)
        .map(|(c, n)| format!("{n} {}", c.label()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One migration's round trip.
#[derive(Debug, Clone, Serialize)]
pub struct MigrationTrip {
    pub version: String,
    pub name: String,
    pub class: TripClass,
    /// What the class says of the down, as `downs` says it (set as the
    /// trip is recorded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    pub detail: String,
    /// What the down fails to restore (a `defect`), one line per object;
    /// a relation gone or new is one line with what went with it.
    pub differences: Vec<Difference>,
    /// The relations among `differences` that are gone or new.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub relations: Vec<RelationChange>,
    /// The views and functions among `differences` that changed, as diffs.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub definitions: Vec<DefinitionDiff>,
    pub cosmetic: Vec<Difference>,
    /// Rows the down adds to a table it writes (an audit row): said
    /// apart and not judged, as `backstop downs` does not judge them.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub added: Vec<Difference>,
    pub duration_ms: u64,
}

/// A failure scenario played on a fresh copy.
#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    /// `A`, `B` or `C`.
    pub name: String,
    pub ok: bool,
    /// Not played (scenario C without a protected table to damage): it
    /// times nothing, so "Time to roll back" leaves it out.
    #[serde(default)]
    pub skipped: bool,
    pub duration_ms: u64,
    pub detail: String,
    /// Scenario A: where the batch cannot run as one transaction.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub splits: Vec<Split>,
    /// Scenario B restored in place: how the copy differs from the start
    /// outside the schemas the restore put back (the platform's schemas,
    /// an extension pg_catalog holds, a policy on `storage.objects`),
    /// which a restore in place leaves as they are by design. A note,
    /// never a failure.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub left_in_place: Vec<String>,
}

/// A place where the batch commits before its end, so a failure after it
/// cannot roll back what came before.
#[derive(Debug, Clone, Serialize)]
pub struct Split {
    /// The version the new transaction (or the lone migration) starts at.
    pub at: String,
    /// Which statement forces it, in words.
    pub why: String,
    /// How the project avoids it; `None` when it cannot (a notice, not a
    /// failure).
    pub fix: Option<String>,
}

impl Scenario {
    /// A scenario played, with nothing split and nothing left in place.
    pub(super) fn played(name: &str, ok: bool, duration_ms: u64, detail: String) -> Scenario {
        Scenario {
            name: name.into(),
            ok,
            skipped: false,
            duration_ms,
            detail,
            splits: Vec::new(),
            left_in_place: Vec::new(),
        }
    }

    /// The rollback method the scenario times, as "Time to roll back"
    /// names it.
    pub fn method(&self) -> &'static str {
        match self.name.as_str() {
            "A" => "automatic transaction rollback",
            "B" => "restore of the pre-migration backup",
            "C" => "full rollback (export, down, restore)",
            "expand" => "rollback of an expand (the new shape dropped)",
            _ => "scenario",
        }
    }
}

/// A lock a migration statement took, and for how long it was held.
#[derive(Debug, Clone, Serialize)]
pub struct LockRow {
    pub version: String,
    pub statement: usize,
    pub sql: String,
    pub relation: String,
    pub mode: String,
    pub blocks_reads: bool,
    pub blocks_writes: bool,
    pub rewritten: bool,
    /// From the statement's start to the transaction's end.
    pub held_ms: u64,
}

impl LockRow {
    /// What the lock keeps others from doing, as the report's column says.
    pub fn blocks(&self) -> &'static str {
        match (self.blocks_reads, self.blocks_writes) {
            (true, _) => "reads and writes",
            (false, true) => "writes",
            _ => "-",
        }
    }
}

/// A migration as rehearsed.
#[derive(Debug, Clone, Serialize)]
pub struct Rehearsed {
    pub version: String,
    pub name: String,
    pub checksum: String,
}

/// The result of a rehearsal: what `--format json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct Rehearsal {
    pub id: String,
    pub ok: bool,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub duration_ms: u64,
    pub copy: CopyInfo,
    pub tables: usize,
    pub rows: i64,
    pub migrations: Vec<Rehearsed>,
    /// The key the gate matches: ordered (version, checksum) pairs, hashed.
    pub key: String,
    pub steps: Vec<Step>,
    pub round_trip: RoundTrip,
    pub scenarios: Vec<Scenario>,
    pub lossy: Vec<Lossy>,
    pub locks: Vec<LockRow>,
    /// The Markdown report, once written.
    pub report: Option<PathBuf>,
    /// The log of every statement run on the copies, where one was kept.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub statements: Option<PathBuf>,
}

/// Whether a rehearsal passed: every step, every round trip and every
/// scenario must.
pub(super) fn passed(steps: &[Step], round_trip: &RoundTrip, scenarios: &[Scenario]) -> bool {
    steps.iter().all(|s| s.ok) && round_trip.ok && scenarios.iter().all(|s| s.ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trip(version: &str, class: TripClass) -> MigrationTrip {
        MigrationTrip {
            version: version.into(),
            name: "m".into(),
            class,
            verdict: None,
            detail: "why".into(),
            differences: vec![Difference {
                version: Some(version.into()),
                object: "table t".into(),
                message: format!("down.sql of {version} does not restore: table t"),
            }],
            relations: Vec::new(),
            definitions: Vec::new(),
            cosmetic: Vec::new(),
            added: Vec::new(),
            duration_ms: 7,
        }
    }

    fn scenario(name: &str, ok: bool) -> Scenario {
        Scenario {
            name: name.into(),
            ok,
            skipped: false,
            duration_ms: 1,
            detail: String::new(),
            splits: Vec::new(),
            left_in_place: Vec::new(),
        }
    }

    #[test]
    fn only_real_failures_are_errors_and_no_down_only_when_required() {
        for c in TripClass::ORDER {
            let expected = !matches!(
                c,
                TripClass::Ok
                    | TripClass::CosmeticOnly
                    | TripClass::NoDown
                    | TripClass::DataAccepted
                    | TripClass::Proved
                    | TripClass::ProvedLosing
                    | TripClass::Unprovable
                    | TripClass::Irreversible
            );
            assert_eq!(c.is_error(false), expected, "{c:?}");
        }
        assert!(TripClass::NoDown.is_error(true));
        assert!(TripClass::Unprovable.is_error(true));
        assert!(TripClass::Irreversible.is_error(true));
        assert!(!TripClass::Proved.is_error(true));
        assert!(!TripClass::CosmeticOnly.is_error(true));
    }

    #[test]
    fn counts_follow_the_class_order_and_skip_empty_classes() {
        let trips = [
            trip("1", TripClass::Defect),
            trip("2", TripClass::Ok),
            trip("3", TripClass::Defect),
            trip("4", TripClass::NotRehearsed),
        ];
        assert_eq!(trip_counts(&trips), "1 ok, 2 defect, 1 not rehearsed");
        assert_eq!(trip_counts(&[]), "");
    }

    #[test]
    fn a_trip_step_carries_the_class_and_fails_with_it() {
        let t = trip("1", TripClass::NoDown);
        let lenient = Step::of_trip("1_add", &t, false);
        assert_eq!(lenient.name, "round trip 1_add");
        assert_eq!(lenient.detail, "no down: why");
        assert_eq!(lenient.duration_ms, 7);
        assert!(lenient.ok);
        assert!(!Step::of_trip("1_add", &t, true).ok);
    }

    #[test]
    fn recording_trips_gathers_their_differences_and_judges_them() {
        let mut rt = RoundTrip::default();
        rt.record(trip("1", TripClass::Ok));
        rt.record(trip("2", TripClass::NoDown));
        assert_eq!(rt.migrations.len(), 2);
        assert_eq!(rt.differences.len(), 2);
        assert_eq!(rt.differences[1].version.as_deref(), Some("2"));
        assert!(rt.passes(false));
        assert!(!rt.passes(true));
    }

    #[test]
    fn a_rehearsal_passes_only_when_everything_does() {
        let ok_step = Step { name: "copy".into(), ok: true, duration_ms: 0, detail: String::new() };
        let rt = RoundTrip { ok: true, ..Default::default() };
        let scenarios = [scenario("A", true), scenario("B", true)];
        let steps = [ok_step.clone()];
        assert!(passed(&steps, &rt, &scenarios));
        assert!(!passed(&steps, &rt, &[scenario("A", true), scenario("C", false)]));
        assert!(!passed(&steps, &RoundTrip::default(), &scenarios));
        let failed = Step { ok: false, ..ok_step };
        assert!(!passed(&[failed], &rt, &scenarios));
    }

    #[test]
    fn scenarios_name_the_method_they_time() {
        assert_eq!(scenario("A", true).method(), "automatic transaction rollback");
        assert_eq!(scenario("B", true).method(), "restore of the pre-migration backup");
        assert_eq!(scenario("C", true).method(), "full rollback (export, down, restore)");
        assert_eq!(scenario("Z", true).method(), "scenario");
    }

    #[test]
    fn a_lock_says_what_it_blocks() {
        let row = |reads, writes| LockRow {
            version: "1".into(),
            statement: 1,
            sql: String::new(),
            relation: "public.t".into(),
            mode: String::new(),
            blocks_reads: reads,
            blocks_writes: writes,
            rewritten: false,
            held_ms: 0,
        };
        assert_eq!(row(true, true).blocks(), "reads and writes");
        assert_eq!(row(true, false).blocks(), "reads and writes");
        assert_eq!(row(false, true).blocks(), "writes");
        assert_eq!(row(false, false).blocks(), "-");
    }
}
