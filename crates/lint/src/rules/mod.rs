//! The rules, listed once. The `registry!` list below is the only place a
//! rule is named: the [`Code`] enum, lookup by code or name, dispatch, the
//! docs that `backstop explain` prints (the rule file's own `///` comment)
//! and its fixtures all come from it.

use crate::analyze::{Cx, Hit};
use crate::model::{Impact, Probability};

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

macro_rules! registry {
    ($($code:ident $module:ident,)+) => {
        $(pub mod $module;)+

        /// A rule's stable code: letters then digits. The hundreds say the
        /// family: 0 suppression, 1 data loss, 2 locks, 3 compatibility,
        /// 4 robustness, 5 security, 6 performance, 7 extensions.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Code {
            $($code,)+
        }

        impl Code {
            /// Every rule, in code order.
            pub const ALL: &'static [Code] = &[$(Code::$code,)+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$code => stringify!($code),)+
                }
            }

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

            /// The rule's source, from which its docs are read.
            fn source(self) -> &'static str {
                match self {
                    $(Code::$code => include_str!(concat!(stringify!($module), ".rs")),)+
                }
            }

            /// `fixtures/<CODE>/bad.sql`: SQL the rule reports.
            pub fn bad_example(self) -> &'static str {
                match self {
                    $(Code::$code => include_str!(concat!(
                        "../../fixtures/", stringify!($code), "/bad.sql"
                    )),)+
                }
            }

            /// `fixtures/<CODE>/good.sql`: the safe way, which it does not report.
            pub fn good_example(self) -> &'static str {
                match self {
                    $(Code::$code => include_str!(concat!(
                        "../../fixtures/", stringify!($code), "/good.sql"
                    )),)+
                }
            }
        }
    };
}

registry! {
    BS001 unused_ignore,
    BS002 invalid_ignore,
    BS003 unrunnable_file,
    BS100 protected_table,
    BS101 drop_table,
    BS102 drop_column,
    BS103 drop_schema,
    BS104 truncate,
    BS105 delete_without_where,
    BS106 update_without_where,
    BS107 narrowing_type,
    BS201 index_without_concurrently,
    BS202 concurrently_in_transaction,
    BS203 constraint_without_not_valid,
    BS204 set_not_null,
    BS205 volatile_default,
    BS206 type_change_rewrite,
    BS207 unique_without_index,
    BS208 vacuum_full_or_cluster,
    BS209 missing_lock_timeout,
    BS301 rename_table,
    BS302 rename_column,
    BS303 drop_not_null,
    BS304 enum_value_without_position,
    BS401 missing_if_exists,
    BS402 transaction_control,
    BS403 missing_down,
    BS404 not_null_column_without_default,
    BS501 rls_missing,
    BS502 policy_name_collision,
    BS503 grant_to_public,
    BS504 security_definer_search_path,
    BS601 fk_without_index,
    BS701 create_extension,
}

impl Code {
    pub fn name(self) -> &'static str {
        self.meta().name
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

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
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
