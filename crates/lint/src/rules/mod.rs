//! The rules: one file each, dispatched from the one list in
//! [`crate::codes`]. A rule's check, its metadata, the lookup by code or
//! name and the docs that `backstop explain` prints (the rule file's own
//! `///` comment) all come from that list.

use crate::codes::with_rules;
pub use crate::codes::Code;
use crate::context::{Cx, Hit};
use crate::risk::{Impact, Probability};

/// Where a rule belongs in the risk assessment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    /// About `-- backstop:ignore` comments themselves.
    Suppression,
    DataLoss,
    /// Locks and table rewrites: the statement blocks the application.
    Locks,
    /// The running application breaks against the new schema.
    Compatibility,
    /// The migration fails, or cannot be re-run or undone.
    Robustness,
    Security,
    Performance,
    Extensions,
    /// Type and naming preferences: off unless `[check] enable` names them.
    Style,
}

impl Family {
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Suppression => "suppression",
            Family::DataLoss => "data loss",
            Family::Locks => "locks and rewrites",
            Family::Compatibility => "compatibility",
            Family::Robustness => "robustness",
            Family::Security => "security",
            Family::Performance => "performance",
            Family::Extensions => "extensions",
            Family::Style => "preferences",
        }
    }
}

/// When a rule runs: most look at statements; the unused-ignore rule can
/// only tell after every other rule has had its say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Statements,
    AfterSuppression,
}

/// What a rule file declares about itself besides its check.
#[derive(Debug)]
pub struct Meta {
    /// Stable kebab-case name, usable instead of the code in ignores.
    pub name: &'static str,
    pub family: Family,
    /// Default probability and impact, before live facts.
    pub probability: Probability,
    pub impact: Impact,
    /// The risk in a few words, for the matrix: "table dropped with its rows".
    pub risk: &'static str,
    /// The mitigation for the matrix and the checklist.
    pub mitigation: &'static str,
    pub phase: Phase,
}

macro_rules! define_rules {
    ($($code:ident $module:ident,)+) => {
        $(pub mod $module;)+

        impl Code {
            pub fn meta(self) -> &'static Meta {
                match self {
                    $(Code::$code => &$module::META,)+
                }
            }

            pub(crate) fn check(self, cx: &Cx<'_>, out: &mut Vec<Hit>) {
                match self {
                    $(Code::$code => $module::check(cx, out),)+
                }
            }
        }
    };
}

with_rules!(define_rules);

impl Code {
    pub fn name(self) -> &'static str {
        self.meta().name
    }

    /// An opt-in rule: a preference of style or types, off unless a
    /// project turns it on (`[check] enable`).
    pub fn opt_in(self) -> bool {
        self.meta().family == Family::Style
    }

    /// Finds a rule by code (`BS101`, any case) or name (`drop-table`).
    pub fn lookup(text: &str) -> Option<Code> {
        let text = text.trim();
        Code::ALL
            .iter()
            .copied()
            .find(|c| c.as_str().eq_ignore_ascii_case(text) || c.name().eq_ignore_ascii_case(text))
    }

    /// The rule's documentation: the `///` comment on its `META` in the
    /// rule file, in three parts (What it finds / Why it hurts / Instead).
    pub fn docs(self) -> String {
        let mut lines = Vec::new();
        let mut started = false;
        for line in self.source().lines() {
            let trimmed = line.trim_start();
            if let Some(doc) = trimmed.strip_prefix("///") {
                started = true;
                lines.push(doc.strip_prefix(' ').unwrap_or(doc));
            } else if started {
                break;
            }
        }
        lines.join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_letters_then_digits_and_names_are_kebab_case_and_unique() {
        let mut names = std::collections::HashSet::new();
        for code in Code::ALL {
            let s = code.as_str();
            assert!(
                s.len() == 5 && s.starts_with("BS") && s[2..].chars().all(|c| c.is_ascii_digit())
            );
            let name = code.name();
            assert!(
                name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{name}"
            );
            assert!(names.insert(name), "duplicate name {name}");
            assert_eq!(Code::lookup(s), Some(*code));
            assert_eq!(Code::lookup(name), Some(*code));
        }
    }

    #[test]
    fn every_rule_documents_what_why_and_instead() {
        for code in Code::ALL {
            let docs = code.docs();
            for part in ["What it finds", "Why it hurts", "Instead"] {
                assert!(docs.contains(part), "{code} docs lack {part:?}:\n{docs}");
            }
        }
    }
}
