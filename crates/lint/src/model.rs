//! The risk model of a check: probability × impact = severity, findings
//! with their place in the file, and the go/no-go verdict they add up to.

use std::cell::Cell;
use std::ops::Range;

use serde::Serialize;

use crate::codes::Code;
pub use crate::risk::{Impact, Probability, Severity};
use backstop_sql::facts::RelationName;
pub use backstop_sql::types::TypeSpec;

/// Where the object a statement names came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// It existed before the batch; the live database knows it as `table`
    /// (and `column`), which may differ from the name the statement uses.
    Live { table: RelationName, column: Option<String> },
    /// An earlier statement of the batch made it, at `at` (file:line).
    Created { at: String },
    /// An earlier statement of the batch removed it, at `at`, and none made
    /// it again: the statement that names it fails.
    Dropped { at: String },
}

/// One ignore comment.
#[derive(Debug)]
pub struct Ignore {
    /// The comment's byte range.
    pub span: Range<usize>,
    /// The line of the first code after the comment: what it applies to.
    pub target_line: Option<usize>,
    pub codes: Vec<Code>,
    pub reason: String,
    /// What is wrong with the comment, if anything; such a comment
    /// suppresses nothing.
    pub problem: Option<String>,
    /// Whether it suppressed (or tried to suppress) a finding.
    pub used: Cell<bool>,
}

/// What a finding is about, so that a check against the live database can
/// look it up and raise or lower the risk from facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A table the statement drops, truncates, locks or rewrites.
    /// `missing_ok` when the statement says IF EXISTS.
    Table { table: RelationName, missing_ok: bool },
    /// A column whose type changes, with the new type as written.
    ColumnType { table: RelationName, column: String, new_type: TypeSpec },
    /// A column that becomes NOT NULL.
    NotNull { table: RelationName, column: String },
    /// The index a `PRIMARY KEY USING INDEX` takes over, and its columns
    /// where the run made it (empty: the database's index says): a
    /// nullable one is made NOT NULL with a scan.
    KeyIndex { table: RelationName, index: String, columns: Vec<String> },
    /// An extension the migration creates; `if_not_exists` when the
    /// statement says IF NOT EXISTS (an installed one is then a no-op).
    Extension { name: String, if_not_exists: bool },
    /// A policy the migration creates on an existing table.
    Policy { table: RelationName, name: String },
    /// A foreign key on an existing table whose columns may lack an index.
    ForeignKey { table: RelationName, columns: Vec<String> },
    /// Functions of a default whose volatility only the database knows.
    Functions { table: RelationName, names: Vec<String> },
    /// A table with an owner column but no row level security, in a run
    /// that enables RLS nowhere: only the database can say whether the
    /// project uses RLS at all.
    RowSecurity { table: RelationName },
    /// A table whose row level security or policies the statement
    /// changes: the database says who owns it, whether RLS is on and
    /// which policies it keeps.
    RowPolicies { table: RelationName },
    /// A table a policy admits every row of, whose owner column only the
    /// database may show (it is not created in the run).
    OwnerColumns { table: RelationName, columns: Vec<String> },
    /// Something a platform (Supabase) creates before any migration: a
    /// `role`, a `schema`, a `function` (`auth.uid`) or a `publication`.
    Platform { kind: &'static str, name: String },
}

impl Subject {
    /// The table the subject is on, as the statement names it.
    pub fn table(&self) -> Option<&RelationName> {
        match self {
            Subject::Table { table, .. }
            | Subject::ColumnType { table, .. }
            | Subject::NotNull { table, .. }
            | Subject::KeyIndex { table, .. }
            | Subject::Policy { table, .. }
            | Subject::ForeignKey { table, .. }
            | Subject::Functions { table, .. }
            | Subject::RowSecurity { table }
            | Subject::RowPolicies { table }
            | Subject::OwnerColumns { table, .. } => Some(table),
            Subject::Extension { .. } | Subject::Platform { .. } => None,
        }
    }
}

/// One risk found in one place.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub code: Code,
    /// The rule's kebab-case name.
    pub rule: &'static str,
    pub severity: Severity,
    pub probability: Probability,
    pub impact: Impact,
    /// The file as it was given (relative paths stay relative).
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub end_line: usize,
    pub end_column: usize,
    pub message: String,
    /// What to do instead, for this statement.
    pub help: String,
    /// The mitigation that goes into the risk matrix and checklist.
    pub mitigation: String,
    /// Facts read from the live database that changed this finding.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub facts: Vec<String>,
    /// The reason given in a `-- backstop:ignore` comment, if it was suppressed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suppressed: Option<String>,
    /// 1-based statement number in the file, when it is about a statement.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statement: Option<usize>,
    /// Byte range in the file that the finding points at.
    #[serde(skip)]
    pub span: std::ops::Range<usize>,
    #[serde(skip)]
    pub subject: Option<Subject>,
    /// Where the subject came from as the batch reaches this statement
    /// (made, renamed or dropped by an earlier statement, or live), for the
    /// live check to ask the database the right question.
    #[serde(skip)]
    pub origin: Option<Origin>,
}

impl Finding {
    /// A finding that no statement made: e.g. a live fact about the
    /// configuration (a protected table missing on the server).
    pub fn new(
        code: Code,
        file: impl Into<String>,
        line: usize,
        message: impl Into<String>,
        help: impl Into<String>,
    ) -> Finding {
        let meta = code.meta();
        Finding {
            code,
            rule: meta.name,
            severity: Severity::of(meta.probability, meta.impact),
            probability: meta.probability,
            impact: meta.impact,
            file: file.into(),
            line,
            column: 1,
            end_line: line,
            end_column: 1,
            message: message.into(),
            help: help.into(),
            mitigation: meta.mitigation.to_string(),
            facts: Vec::new(),
            suppressed: None,
            statement: None,
            span: 0..0,
            subject: None,
            origin: None,
        }
    }

    /// Sets probability and impact and the severity that follows from them.
    pub fn rate(&mut self, probability: Probability, impact: Impact) {
        self.probability = probability;
        self.impact = impact;
        self.severity = Severity::of(probability, impact);
    }
}

/// The go/no-go decision, as DESIGN.md settles it: critical → NO-GO, high →
/// CONDITIONAL GO with its conditions, medium and low → GO with notes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Verdict {
    #[serde(rename = "GO")]
    Go,
    #[serde(rename = "CONDITIONAL GO")]
    ConditionalGo,
    #[serde(rename = "NO-GO")]
    NoGo,
}

impl Verdict {
    /// The verdict of the findings that count (suppressed ones do not).
    pub fn of<'a>(findings: impl IntoIterator<Item = &'a Finding>) -> Verdict {
        let worst =
            findings.into_iter().filter(|f| f.suppressed.is_none()).map(|f| f.severity).max();
        match worst {
            Some(Severity::Critical) => Verdict::NoGo,
            Some(Severity::High) => Verdict::ConditionalGo,
            _ => Verdict::Go,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Go => "GO",
            Verdict::ConditionalGo => "CONDITIONAL GO",
            Verdict::NoGo => "NO-GO",
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The conditions of a CONDITIONAL GO: the mitigation of every high
/// finding, each once, in the order they were found.
pub fn conditions<'a>(findings: impl IntoIterator<Item = &'a Finding>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for f in findings {
        if f.suppressed.is_none() && f.severity == Severity::High && !out.contains(&f.mitigation) {
            out.push(f.mitigation.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_is_probability_times_impact_as_in_the_runbook_matrix() {
        // The hand-written assessment's rows: Medium × CRITICAL = HIGH, Low ×
        // MEDIUM = MEDIUM, High × HIGH = HIGH, Low × LOW = LOW.
        assert_eq!(Severity::of(Probability::Medium, Impact::Critical), Severity::High);
        assert_eq!(Severity::of(Probability::Low, Impact::Medium), Severity::Medium);
        assert_eq!(Severity::of(Probability::High, Impact::High), Severity::High);
        assert_eq!(Severity::of(Probability::High, Impact::Medium), Severity::High);
        assert_eq!(Severity::of(Probability::Low, Impact::Low), Severity::Low);
        assert_eq!(Severity::of(Probability::Certain, Impact::Critical), Severity::Critical);
        assert_eq!(Severity::of(Probability::Certain, Impact::High), Severity::Critical);
    }

    #[test]
    fn severities_parse_and_order() {
        assert_eq!("HIGH".parse::<Severity>(), Ok(Severity::High));
        assert!("urgent".parse::<Severity>().is_err());
        assert!(Severity::Critical > Severity::High && Severity::Medium > Severity::Low);
    }
}
