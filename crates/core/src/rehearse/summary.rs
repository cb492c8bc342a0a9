//! What a person reads first about a rehearsal: the migrations that fail
//! their round trip, each with a short why, in run order (the details
//! follow in that order), the cosmetic notes and lossy downs summed up.
//! The text output and the Markdown report both read from here, so they
//! list the same things in the same order.

use super::lossy::{LossKind, Lossy};
use super::outcome::{MigrationTrip, Rehearsal, TripClass};

/// The marker `judge` writes before a failing up after a defective down.
const RE_UP: &str = "; the up after it fails too: ";
/// The marker before the fix a round trip names.
const FIX: &str = "; `backstop downs ";

/// `text` cut to `max` characters, with an ellipsis when cut.
pub fn cut(text: &str, max: usize) -> String {
    let text = text.lines().next().unwrap_or_default();
    if text.chars().count() <= max {
        text.to_string()
    } else {
        format!("{}…", text.chars().take(max.saturating_sub(1)).collect::<String>())
    }
}

impl MigrationTrip {
    /// `VERSION_name`, as the output names a migration.
    pub fn label(&self) -> String {
        if self.name.is_empty() || self.name == self.version {
            self.version.clone()
        } else {
            format!("{}_{}", self.version, self.name)
        }
    }

    /// The detail without the fix and the failing up after a defect.
    pub fn failure(&self) -> &str {
        let end = [RE_UP, FIX].iter().filter_map(|m| self.detail.find(m)).min();
        &self.detail[..end.unwrap_or(self.detail.len())]
    }

    /// Why the up failed after a defective down, if it did.
    pub fn re_up(&self) -> Option<&str> {
        let (_, rest) = self.detail.split_once(RE_UP)?;
        Some(rest.split(FIX).next().unwrap_or(rest))
    }

    /// The command that computes a fix, as the trip names it.
    pub fn fix(&self) -> Option<String> {
        let (_, rest) = self.detail.split_once(FIX)?;
        Some(format!("`backstop downs {rest}"))
    }

    /// One short line: why this round trip is not ok.
    pub fn why(&self) -> String {
        match (self.class, self.differences.as_slice()) {
            (TripClass::Defect, [first, rest @ ..]) => {
                let more = if rest.is_empty() {
                    String::new()
                } else {
                    format!(" (+{} more)", rest.len())
                };
                format!("{}{more}", cut(&first.message, 110))
            }
            _ => cut(self.failure(), 120),
        }
    }
}

/// The round trips that fail the rehearsal, in run order.
pub fn failing(r: &Rehearsal) -> Vec<&MigrationTrip> {
    let rt = &r.round_trip;
    rt.migrations.iter().filter(|t| t.class.is_error(rt.require_down)).collect()
}

/// What failed the rehearsal, counted the way the lines before the verdict
/// count it: `1 of 2 migration(s) fail the round trip`, `scenario B
/// fails`, `the verify suite fails`. Empty when it passed.
pub fn failures(r: &Rehearsal) -> Vec<String> {
    let mut out = Vec::new();
    let trips = failing(r).len();
    if trips > 0 {
        out.push(format!(
            "{trips} of {} migration(s) fail the round trip",
            r.round_trip.migrations.len().max(trips)
        ));
    }
    let other_steps = r.steps.iter().filter(|s| !s.ok && !s.name.starts_with("round trip"));
    out.extend(other_steps.map(|s| match s.name.as_str() {
        "not rehearsed" => {
            "a file cannot run as written: what follows it is not rehearsed".to_string()
        }
        name => format!("the {name} fails"),
    }));
    let scenarios = r.scenarios.iter().filter(|s| !s.ok && !s.skipped);
    out.extend(scenarios.map(|s| format!("scenario {} fails", s.name)));
    out
}

/// The cosmetic differences summed up in one line, by kind; `None` when
/// there are none.
pub fn cosmetic_line(r: &Rehearsal) -> Option<String> {
    let trips: Vec<&MigrationTrip> =
        r.round_trip.migrations.iter().filter(|t| !t.cosmetic.is_empty()).collect();
    if trips.is_empty() {
        return None;
    }
    let kinds = [
        ("its columns come in another order", "view columns following their table's order"),
        ("column order", "column order"),
        ("body differs only", "function body written differently"),
        ("date frozen", "view with a date frozen into it"),
    ];
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for d in trips.iter().flat_map(|t| &t.cosmetic) {
        let kind = kinds.iter().find(|(k, _)| d.message.contains(k)).map_or("other", |(_, n)| n);
        match counts.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, n)) => *n += 1,
            None => counts.push((kind, 1)),
        }
    }
    let total: usize = counts.iter().map(|(_, n)| n).sum();
    let kinds: Vec<String> = counts.iter().map(|(k, n)| format!("{k}: {n}")).collect();
    Some(format!(
        "{total} cosmetic difference(s) after the downs of {} migration(s) ({}); they change no behaviour",
        trips.len(),
        kinds.join(", ")
    ))
}

/// The lossy downs in at most `max` lines: the count of downs that drop
/// what their ups made, then those that destroy older data, the rest
/// counted.
pub fn lossy_lines(lossy: &[Lossy], max: usize) -> Vec<String> {
    let all = super::lossy::summary(lossy);
    let older = lossy.iter().filter(|l| l.kind == LossKind::PreExisting).count();
    if all.len() <= max {
        return all;
    }
    let mut out: Vec<String> = all.into_iter().take(max.saturating_sub(1)).collect();
    let shown = out.len() - usize::from(lossy.iter().any(|l| l.kind == LossKind::CreatedByUp));
    out.push(format!(
        "… and {} more down(s) that destroy data older than their up, listed in the report",
        older - shown
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rehearse::Difference;

    fn trip(class: TripClass, detail: &str, diffs: &[&str]) -> MigrationTrip {
        MigrationTrip {
            version: "7".into(),
            name: "orders".into(),
            class,
            verdict: None,
            detail: detail.into(),
            differences: diffs
                .iter()
                .map(|m| Difference {
                    version: Some("7".into()),
                    object: String::new(),
                    message: m.to_string(),
                })
                .collect(),
            relations: Vec::new(),
            definitions: Vec::new(),
            cosmetic: Vec::new(),
            added: Vec::new(),
            duration_ms: 1,
        }
    }

    #[test]
    fn a_trip_says_why_in_one_short_line_and_keeps_its_parts_apart() {
        let t = trip(
            TripClass::Defect,
            "2 difference(s) after the down: a, b; the up after it fails too: boom; `backstop downs 7` computes a proved fix",
            &["the down leaves column public.t.a, which the up added", "data of table public.t differs"],
        );
        assert_eq!(t.label(), "7_orders");
        assert_eq!(t.why(), "the down leaves column public.t.a, which the up added (+1 more)");
        assert_eq!(t.failure(), "2 difference(s) after the down: a, b");
        assert_eq!(t.re_up(), Some("boom"));
        assert_eq!(t.fix().as_deref(), Some("`backstop downs 7` computes a proved fix"));
        let long = trip(TripClass::DownFails, &"x".repeat(300), &[]);
        assert_eq!(long.why().chars().count(), 120);
        assert!(long.why().ends_with('…'));
        assert_eq!(long.re_up(), None);
    }

    #[test]
    fn lossy_lines_are_capped_and_count_the_rest() {
        let lossy: Vec<Lossy> = (0..9)
            .map(|i| Lossy {
                version: i.to_string(),
                kind: if i == 0 { LossKind::CreatedByUp } else { LossKind::PreExisting },
                object: "table t".into(),
                message: format!("rolling back {i} destroys data"),
            })
            .collect();
        let lines = lossy_lines(&lossy, 4);
        assert_eq!(lines.len(), 4, "{lines:?}");
        assert!(lines[0].starts_with("1 migration(s) create tables or columns"));
        assert_eq!(
            lines[3],
            "… and 6 more down(s) that destroy data older than their up, listed in the report"
        );
        assert_eq!(lossy_lines(&lossy[..2], 4).len(), 2);
    }
}
