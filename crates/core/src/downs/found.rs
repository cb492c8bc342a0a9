//! What the full way of working out a down found for one migration (its
//! plan and how its proof went), and the down reported from it.

use super::picture::{Plan, State};
use super::{Down, Status};
use crate::source::Migration;

/// How a down fared on the copy.
pub(super) enum Proof {
    /// The schema equals the one before; the cosmetic differences left,
    /// and what it left written otherwise but the same as read
    /// (`Down::also`).
    Holds(Vec<String>, Vec<(String, String)>),
    /// It ran, and left these differences.
    Differs(Vec<String>),
    /// It failed.
    Fails(String),
}

/// A down worked out and how its proof went.
pub(super) struct Found {
    pub(super) plan: Plan,
    pub(super) proof: Proof,
    /// The picture the down was worked out from, renames not undone.
    pub(super) after_up: Option<State>,
    /// The up changed rows that were there in a way no SQL puts back.
    pub(super) irreversible: bool,
}

/// Why a hand-written down that runs is replaced whole: the rows it took.
pub(super) const ROWS_TAKEN: &str = "deletes rows that were there before its up";

/// Why a hand-written down that runs is replaced whole: nothing added
/// after it brought the schema back.
pub(super) const NO_FIX: &str =
    "does not bring the schema back, and no statements added after it did";

/// What is worked out for a migration.
pub(super) enum Mode {
    /// It has no down: the whole down.
    Compute,
    /// Its down runs but misses something: the statements to add.
    AddTo,
    /// Its down fails (why): a whole down to use instead.
    Replace(String),
}

/// The report of one migration from what was worked out.
pub(super) fn found_down(m: &Migration, found: Found, mode: Mode) -> Down {
    let Found { plan, proof, irreversible, .. } = found;
    let also = match &proof {
        Proof::Holds(_, also) => also.clone(),
        _ => Vec::new(),
    };
    let mut notes = plan.notes;
    // A kind the schema picture cannot hold: its proof proves nothing.
    let proved = matches!(proof, Proof::Holds(..)) && plan.unheld.is_empty();
    for u in &plan.unheld {
        notes.insert(
            0,
            format!(
                "not proved: {u}: Backstop cannot yet work out or compare objects of this kind; \
                 write this part of the down by hand"
            ),
        );
    }
    let status = match (&proof, &mode) {
        _ if !plan.unheld.is_empty() => Status::Unprovable,
        (Proof::Holds(..), _) if irreversible => Status::Irreversible,
        (Proof::Holds(..), Mode::Compute) => Status::Computed,
        (Proof::Holds(..), _) => Status::Fixed,
        _ => Status::Unprovable,
    };
    match &proof {
        Proof::Holds(cosmetic, _) => {
            notes.extend(cosmetic.iter().map(|c| format!("cosmetic: {c}")))
        }
        Proof::Differs(diffs) => {
            notes.push(format!("not proved: after it, {} difference(s) remain", diffs.len()));
            notes.extend(diffs.iter().take(10).cloned());
        }
        Proof::Fails(why) => notes.push(format!("not proved: it fails on the copy: {why}")),
    }
    if irreversible && proved {
        notes.insert(
            0,
            "the schema part is proved, but rows the up changed cannot be put back by SQL: only \
             the backup taken before the migration holds them (`backstop backup list`, `backstop \
             restore`)"
                .into(),
        );
    }
    if let Mode::Replace(why) = &mode {
        let how = if [ROWS_TAKEN, NO_FIX].contains(&why.as_str()) { "" } else { "fails: " };
        notes.insert(0, format!("the hand-written down {how}{why}; this down replaces it"));
    }
    let adds = matches!(mode, Mode::AddTo);
    let body = super::write::render(m, &plan.statements, &plan.loses, proved, adds);
    let fixes = proved && !matches!(mode, Mode::Compute);
    let replacement = match (fixes, &m.down, adds) {
        (true, Some(down), true) => Some(format!("{}\n\n{body}", down.text.trim_end())),
        (true, _, false) => Some(body.clone()),
        _ => None,
    };
    Down {
        version: m.version.clone(),
        name: m.name.clone(),
        status,
        sql: Some(body),
        proved,
        replaces: matches!(mode, Mode::Replace(_)) && status == Status::Fixed,
        loses: plan.loses,
        notes,
        replacement,
        start: None,
        end: None,
        own: None,
        touched: Vec::new(),
        up_failed: None,
        also,
    }
}
