//! `[compare]`: the policy that turns a comparison into pass or fail (the
//! preset, the row-count tolerance, the criteria that count), the parsing of
//! its values, and the judgement itself.

use serde::Serialize;

use super::tolerance::{Tolerances, PRECISIONS};
use super::Comparison;

/// `[compare]`: what makes a comparison fail.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompareSection {
    /// `exact` (the default: any difference fails) or `runbook` (the
    /// cutover runbook's matrix: row counts within 1 %, content checksums
    /// and foreign keys fail it; schema differences are reported).
    pub preset: Preset,
    /// How far a table's row count may be from the source's, as a share of
    /// the source's rows: `"1%"`. Default: the preset's.
    #[serde(deserialize_with = "percent")]
    pub row_count_tolerance: Option<f64>,
    /// Which criteria fail the verdict. Default: the preset's.
    pub fail_on: Option<Vec<Criterion>>,
    /// numeric, real and double precision values at most this far apart
    /// count as equal: `"0.01"`. Default: exactly.
    #[serde(deserialize_with = "tolerance")]
    pub numeric_tolerance: Option<String>,
    /// Timestamps and times count as equal once rounded to this precision
    /// (`"1s"`, `"100ms"`, `"10ms"`, `"1ms"`, `"100us"`, `"10us"`,
    /// `"1us"`), as a column of that precision stores them. Default: to
    /// the microsecond.
    #[serde(deserialize_with = "precision")]
    pub timestamp_precision: Option<u8>,
}

/// `numeric_tolerance`: a positive decimal, as a string or a number.
fn tolerance<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Written {
        Text(String),
        Integer(i64),
        Float(f64),
    }
    let text = match <Option<Written> as serde::Deserialize>::deserialize(d)? {
        None => return Ok(None),
        Some(Written::Text(t)) => t.trim().to_string(),
        Some(Written::Integer(i)) => i.to_string(),
        Some(Written::Float(f)) => f.to_string(),
    };
    let digits = |p: &str| p.chars().all(|c| c.is_ascii_digit());
    let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
    let well_formed = !text.is_empty()
        && digits(whole)
        && digits(fraction)
        && !(whole.is_empty() && fraction.is_empty())
        && text.chars().any(|c| ('1'..='9').contains(&c))
        && text.len() <= 40;
    if !well_formed {
        return Err(serde::de::Error::custom(format!(
            "numeric_tolerance = {text:?}: write how far apart two values may be and still count as equal, a positive decimal such as \"0.01\""
        )));
    }
    Ok(Some(text))
}

/// `timestamp_precision`: one of [`PRECISIONS`], as fractional digits.
fn precision<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u8>, D::Error> {
    let Some(text) = <Option<String> as serde::Deserialize>::deserialize(d)? else {
        return Ok(None);
    };
    let wanted = text.trim().replace('µ', "u");
    PRECISIONS.iter().position(|p| *p == wanted).map(|d| Some(d as u8)).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "timestamp_precision = {text:?}: write one of {}",
            PRECISIONS.map(|p| format!("\"{p}\"")).join(", ")
        ))
    })
}

/// The policy a `[compare]` section starts from: its tolerance and the
/// criteria that fail the verdict, unless the section sets them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    #[default]
    Exact,
    Runbook,
}

/// One thing a comparison can fail on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Criterion {
    /// Row counts, within `row_count_tolerance`; a table on one side only.
    Rows,
    /// The content of tables whose counts agree: checksums and rows.
    Content,
    /// Orphaned rows under the target's foreign keys.
    ForeignKeys,
    /// Schema differences in behaviour.
    Schema,
}

fn percent<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    let text = <Option<String> as serde::Deserialize>::deserialize(d)?;
    let Some(text) = text else { return Ok(None) };
    text.trim()
        .strip_suffix('%')
        .and_then(|n| n.trim().parse::<f64>().ok())
        .filter(|n| n.is_finite() && (0.0..=100.0).contains(n))
        .map(Some)
        .ok_or_else(|| {
            serde::de::Error::custom(format!(
                "row_count_tolerance = {text:?}: write a share of the rows from \"0%\" to \"100%\", e.g. \"1%\""
            ))
        })
}

/// One criterion's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Judged {
    pub criterion: Criterion,
    /// Whether it fails the verdict when not met.
    pub counts: bool,
    pub ok: bool,
    pub detail: String,
}

/// The verdict under `[compare]`.
#[derive(Debug, Clone, Serialize)]
pub struct Judgement {
    /// `pass`, `fail` or `error` (something could not be compared).
    pub verdict: &'static str,
    pub preset: Preset,
    pub row_count_tolerance: f64,
    pub criteria: Vec<Judged>,
}

impl CompareSection {
    /// The tolerances rows are compared with.
    pub fn tolerances(&self) -> Tolerances {
        Tolerances {
            numeric: self.numeric_tolerance.clone(),
            timestamp_digits: self.timestamp_precision,
        }
    }

    /// The tolerance and failing criteria in force.
    fn policy(&self) -> (f64, Vec<Criterion>) {
        use Criterion::*;
        let (tolerance, fail_on) = match self.preset {
            Preset::Exact => (0.0, vec![Rows, Content, ForeignKeys, Schema]),
            Preset::Runbook => (1.0, vec![Rows, Content, ForeignKeys]),
        };
        (self.row_count_tolerance.unwrap_or(tolerance), self.fail_on.clone().unwrap_or(fail_on))
    }

    /// Judges `c` by the policy: every criterion with what it found.
    pub fn judge(&self, c: &Comparison) -> Judgement {
        let (tolerance, fail_on) = self.policy();
        let mut criteria = Vec::new();
        let mut add = |criterion, ok, detail: String| {
            criteria.push(Judged { criterion, counts: fail_on.contains(&criterion), ok, detail })
        };

        let mut off = Vec::new();
        for t in &c.tables {
            match (t.source_rows, t.target_rows, t.status) {
                (_, _, "only_in_source") => off.push(format!("{} only in the source", t.table)),
                (_, _, "only_in_target") => off.push(format!("{} only in the target", t.table)),
                (Some(a), Some(b), _) => {
                    let share = (a - b).abs() as f64 * 100.0 / a.max(1) as f64;
                    if share > tolerance {
                        off.push(format!("{}: {a} → {b} ({share:.2}%)", t.table));
                    }
                }
                _ => {}
            }
        }
        let detail = if off.is_empty() {
            format!("every table's row count within {tolerance}% of the source's")
        } else {
            off.join("; ")
        };
        add(Criterion::Rows, off.is_empty(), detail);

        let differ: Vec<String> = c
            .tables
            .iter()
            .filter(|t| t.status == "differ")
            .map(|t| match &t.note {
                Some(note) => format!("{} ({note})", t.table),
                None => format!(
                    "{}: {} missing, {} extra, {} different",
                    t.table, t.missing, t.extra, t.different
                ),
            })
            .collect();
        let detail = match (differ.is_empty(), c.tolerances.describe()) {
            (true, None) => "checksums equal".to_string(),
            (true, Some(within)) => format!("equal within the tolerances: {within}"),
            (false, _) => differ.join("; "),
        };
        add(Criterion::Content, differ.is_empty(), detail);

        let orphans: i64 = c.foreign_keys.iter().map(|f| f.orphans).sum();
        let detail = match (&c.foreign_key_error, orphans) {
            (Some(e), _) => format!("not checked: {e}"),
            (None, 0) => "no orphaned rows in the target".to_string(),
            (None, n) => format!("{n} orphaned row(s) under {} key(s)", c.foreign_keys.len()),
        };
        add(Criterion::ForeignKeys, orphans == 0 && c.foreign_key_error.is_none(), detail);

        let detail = match (&c.schema_error, c.schema.len()) {
            (Some(e), _) => format!("not compared: {e}"),
            (None, 0) => "the same".to_string(),
            (None, n) => format!("{n} difference(s)"),
        };
        add(Criterion::Schema, c.schema.is_empty() && c.schema_error.is_none(), detail);

        let verdict = if c.verdict == "error" {
            "error"
        } else if criteria.iter().any(|j| j.counts && !j.ok) {
            "fail"
        } else {
            "pass"
        };
        Judgement { verdict, preset: self.preset, row_count_tolerance: tolerance, criteria }
    }
}
