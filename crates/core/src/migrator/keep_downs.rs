//! The last gate before the first statement: every pending migration's
//! down proved (its author's, or the one worked out), reused where a kept
//! proof covers it, with the picture each must bring back kept for the
//! rollback's own check; and what the operator is told of it.

use crate::backup::gate::BackedUp;
use crate::kit::error::chain;
use crate::migrate::{self, DefectiveDowns, Gate};
use crate::source::Migration;

/// The last step before the first statement: the down of every pending
/// migration proved, its author's or worked out where it has none, reused
/// from a kept proof where one covers the migration on the schema it
/// starts from and proved now on a throwaway copy of the target's schema
/// for the rest; the worked-out ones kept with their records. It refuses
/// only a migration whose own down does not bring the schema back where a
/// proved one exists ([`DefectiveDowns::Refuse`]): a down that cannot be
/// proved, or a copy that cannot be made, is said and the run goes on (a
/// rollback through it then needs a restore).
pub(super) struct KeepDowns<'a> {
    pub(super) url: &'a str,
    pub(super) migrations: &'a [Migration],
    pub(super) settings: &'a migrate::Settings,
    pub(super) proofs: &'a std::path::Path,
    pub(super) note: &'a mut dyn FnMut(&str),
    /// The schema of the backup the backup gate took in this run, if it
    /// took one: the target as the first down starts from it, read in the
    /// backup's snapshot moments before.
    pub(super) backed_up: BackedUp,
    /// What a migration whose own down does not hold gets.
    pub(super) defective: DefectiveDowns,
    /// What the check gate's run on a copy proved of these very
    /// migrations, taken as it is rather than proved again.
    pub(super) handed: crate::check::on_copy::Handed,
}

impl Gate for KeepDowns<'_> {
    fn name(&self) -> &str {
        "keep_downs"
    }

    fn check(
        &mut self,
        client: &mut postgres::Client,
        pending: &[&Migration],
        dry_run: bool,
    ) -> Result<migrate::GatePass, migrate::GateRefusal> {
        // Every down is proved before it is needed, whoever wrote it: a
        // migration's own down after its up on a copy, and where there is
        // none, or it does not hold, the down worked out from the schema.
        let versions: Vec<String> =
            pending.iter().filter(|m| !m.repeatable).map(|m| m.version.clone()).collect();
        if dry_run || versions.is_empty() {
            return Ok(migrate::GatePass::default());
        }
        let kept = match self.handed.borrow_mut().take() {
            Some(kept) => Ok(kept),
            None => {
                let mut store = crate::downs::proofs::Store::open(self.proofs);
                crate::downs::keep::keep(
                    (client, self.backed_up.borrow_mut().take()),
                    self.url,
                    self.migrations,
                    self.settings,
                    pending,
                    (&versions, true),
                    &mut store,
                )
            }
        };
        let mut kept = match kept {
            Ok(kept) => kept,
            Err(e) => {
                (self.note)(&format!(
                    "warning: the downs could not be proved ({}); a rollback of these \
                     migrations needs `backstop downs --write` or a restore",
                    chain(&e)
                ));
                return Ok(migrate::GatePass::default());
            }
        };
        // A bootstrap (nothing of the project applied yet) is not stopped
        // by old downs nobody runs, unless the project asks for it.
        let bootstrap = self.defective == DefectiveDowns::RefuseAfterBootstrap
            && !kept.defective.is_empty()
            && bootstrap(client);
        let defective = match self.defective {
            DefectiveDowns::RefuseAfterBootstrap if bootstrap => DefectiveDowns::KeepProved,
            DefectiveDowns::RefuseAfterBootstrap => DefectiveDowns::Refuse,
            other => other,
        };
        for line in kept_lines(&kept, bootstrap) {
            (self.note)(&line);
        }
        let fixes = kept.fixes();
        if !fixes.is_empty() && defective == DefectiveDowns::Refuse {
            return Err(migrate::GateRefusal {
                gate: "keep_downs".into(),
                reason: refusal(&kept),
                exit_code: 1,
            });
        }
        if defective == DefectiveDowns::KeepProved {
            kept.downs.extend(fixes);
        }
        let detail = serde_json::json!({
            "kept": kept.downs.len(),
            "reused": kept.reused,
            "proved_now": kept.proved_now.iter().map(|m| &m.version).collect::<Vec<_>>(),
            "unproved": kept.unproved,
            "defective": kept.defective.iter().map(|d| &d.version).collect::<Vec<_>>(),
            "together": kept.chain.as_ref().map(|c| c.failed.as_deref().unwrap_or("proved")),
            "together_versions": kept.chain.as_ref().map(|c| &c.versions),
            "together_stops_at": kept.chain.as_ref().and_then(|c| c.stops_at.as_ref()),
        });
        let undo_to = kept.undo.iter().map(|(v, e)| (v.clone(), e.to_json())).collect();
        Ok(migrate::GatePass { detail, kept_downs: kept.downs, undo_to, ..Default::default() })
    }
}

/// Whether the database holds no migration of the project yet: a
/// bootstrap (a laptop, CI, a new tenant). A history that cannot be read
/// is no bootstrap.
fn bootstrap(client: &mut postgres::Client) -> bool {
    crate::schema::applied::all(client).is_ok_and(|applied| applied.is_empty())
}

/// Why a run is refused for its defective downs: each named with what it
/// leaves behind, and the fix.
fn refusal(kept: &crate::downs::keep::Kept) -> String {
    let named: Vec<String> = kept
        .defective
        .iter()
        .filter(|d| d.fix.is_some())
        .map(|d| format!("{} ({})", d.label, d.path.display()))
        .collect();
    format!(
        "the down of {} does not bring the schema back, and a proved down that does exists; \
         `backstop downs --write --force {}` puts it in the file (the old text kept as .orig), \
         or set [migrations] defective_downs = \"keep_proved\" to deploy and keep the proved \
         down with the record for `rollback` (\"deploy\": keep the file's); nothing ran",
        named.join(", "),
        kept.defective
            .iter()
            .filter(|d| d.fix.is_some())
            .map(|d| d.version.as_str())
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// What the operator is told about the kept downs: which came from a kept
/// proof, which were proved now and why no proof covered them, which
/// could not be proved, and each migration's own down that does not hold
/// (on a `bootstrap` where the proved ones are kept instead, named once).
fn kept_lines(kept: &crate::downs::keep::Kept, bootstrap: bool) -> Vec<String> {
    let mut lines = kept.notes.clone();
    if !kept.reused.is_empty() {
        lines.push(format!(
            "reused the kept proof of {} down(s): {}",
            kept.reused.len(),
            listed(&kept.reused)
        ));
    }
    if !kept.proved_now.is_empty() {
        let why = first_of(&kept.proved_now, 5);
        lines.push(format!("proved {} down(s) now: {why}", kept.proved_now.len()));
        // The cost of what no proof covered, beside the notes on how the
        // replay ran (in two halves, or in one piece and why).
        if let Some(took) = kept.proving {
            let reading = match kept.reading {
                Some(r) if !r.is_zero() => format!(
                    " (of it, reading the schema each proof compares, after each up and each \
                     down: {})",
                    crate::kit::duration::human(r)
                ),
                _ => String::new(),
            };
            lines.push(format!(
                "proving them took {} on a throwaway copy, before anything ran here{reading}",
                crate::kit::duration::human(took)
            ));
        }
    }
    if !kept.uncovered.is_empty() {
        lines.push(format!(
            "no kept proof covers the down of {} migration(s): {}; `backstop rehearse` proves \
             and keeps them, `backstop downs --write` writes them",
            kept.uncovered.len(),
            first_of(&kept.uncovered, 3)
        ));
    }
    let count = kept.downs.len();
    if count > 0 {
        lines.push(format!(
            "kept a proved down for {count} migration(s) with their records: `backstop rollback` runs them"
        ));
    }
    if bootstrap {
        lines.extend(defective_once(&kept.defective));
    }
    for d in kept.defective.iter().filter(|_| !bootstrap) {
        let shown: Vec<&str> = d.differences.iter().take(5).map(String::as_str).collect();
        let more = d.differences.len().saturating_sub(shown.len());
        let more = if more > 0 { format!("; and {more} more") } else { String::new() };
        let fix = match d.fix {
            Some(_) => format!(
                "a proved down that does: `backstop downs --write --force {}`",
                d.version
            ),
            None => "no down that does could be proved: a rollback through it needs a restore (method B)".into(),
        };
        lines.push(format!(
            "warning: the down of {} ({}) does not bring the schema back: {}{more}; {fix}",
            d.label,
            d.path.display(),
            shown.join("; ")
        ));
    }
    if !kept.not_tried.is_empty() {
        lines.push(format!(
            "warning: the down of {} migration(s) is not proved: {}",
            kept.not_tried.len(),
            first_of(&kept.not_tried, 3)
        ));
    }
    for (version, loses) in kept.losing.iter().take(5) {
        lines.push(format!(
            "the proved down of {version} loses values only the backup holds: {}",
            loses.join("; ")
        ));
    }
    if kept.losing.len() > 5 {
        lines.push(format!("… and {} more that lose values", kept.losing.len() - 5));
    }
    match &kept.chain {
        Some(c) if c.failed.is_none() => lines.push(format!(
            "proved the downs of {} together: a rollback of them all brings the schema back",
            listed(&c.versions)
        )),
        Some(c) => lines.push(format!(
            "warning: the downs of {}, each proved alone, do not bring the schema back together: \
             {}; a rollback of them all would be refused by its own check",
            listed(&c.versions),
            c.failed.as_deref().unwrap_or_default()
        )),
        None => {}
    }
    let unproved: Vec<&String> =
        kept.unproved.iter().filter(|v| !kept.defective.iter().any(|d| &d.version == *v)).collect();
    if !unproved.is_empty() {
        lines.push(format!(
            "warning: no down could be proved for {} (`backstop downs` says why); a rollback through them needs a restore (method B)",
            unproved.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
        ));
    }
    lines
}

/// The defective authored downs of a bootstrap, named once: those a
/// proved down replaces (kept with their records), then those none does.
fn defective_once(defective: &[crate::downs::keep::Defect]) -> Vec<String> {
    let files = |of: &[&crate::downs::keep::Defect]| {
        let shown: Vec<String> = of.iter().take(8).map(|d| d.path.display().to_string()).collect();
        match of.len().saturating_sub(shown.len()) {
            0 => shown.join(", "),
            n => format!("{} and {n} more", shown.join(", ")),
        }
    };
    let (fixed, unfixed): (Vec<_>, Vec<_>) = defective.iter().partition(|d| d.fix.is_some());
    let mut lines = Vec::new();
    if !fixed.is_empty() {
        lines.push(format!(
            "warning: {} authored down(s) do not bring the schema back: {}; this is a \
             bootstrap (no migration of the project was applied here), so each one's proved \
             down is kept with its record instead and `rollback` runs that; `backstop downs` \
             shows what each file leaves, `backstop downs --write --force` fixes the files (set \
             [migrations] defective_downs = \"refuse\" to refuse a bootstrap for them too)",
            fixed.len(),
            files(&fixed)
        ));
    }
    if !unfixed.is_empty() {
        lines.push(format!(
            "warning: {} authored down(s) do not bring the schema back and no down that does \
             could be proved: {}; a rollback through them needs a restore (method B); \
             `backstop downs` says what each leaves",
            unfixed.len(),
            files(&unfixed)
        ));
    }
    lines
}

/// The first `n` of `misses`, each with why, and how many more.
fn first_of(misses: &[crate::downs::proofs::Miss], n: usize) -> String {
    let why: Vec<String> = misses.iter().take(n).map(|m| m.to_string()).collect();
    match misses.len().saturating_sub(n) {
        0 => why.join("; "),
        more => format!("{}; and {more} more", why.join("; ")),
    }
}

/// Versions in a line: all of a few, the first and last of many.
fn listed(versions: &[String]) -> String {
    match versions {
        [] => String::new(),
        [one] => one.clone(),
        v if v.len() <= 4 => v.join(", "),
        v => format!("{} … {}", v[0], v[v.len() - 1]),
    }
}
