//! The rule codes, listed once. [`with_rules!`] holds the list of every
//! rule (its code and the file that implements it); the [`Code`] enum and
//! its examples are made from it here, and the dispatch to each rule's
//! check and metadata in [`crate::rules`], so a rule is named in one place.

/// Calls `$callback!` with every rule as `CODE module,`.
macro_rules! with_rules {
    ($callback:ident) => {
        $callback! {
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
        BS210 drop_index_without_concurrently,
        BS211 domain_constraint_added,
        BS212 exclusion_constraint,
        BS301 rename_table,
        BS302 rename_column,
        BS303 drop_not_null,
        BS304 enum_value_without_position,
        BS305 needs_newer_server,
        BS401 missing_if_exists,
        BS402 transaction_control,
        BS403 missing_down,
        BS404 not_null_column_without_default,
        BS405 fails_on_database,
        BS406 identifier_too_long,
        BS407 domain_with_constraint,
        BS501 rls_missing,
        BS502 policy_name_collision,
        BS503 grant_to_public,
        BS504 security_definer_search_path,
        BS505 rls_without_policy,
        BS506 policy_admits_all,
        BS507 policy_dropped,
        BS508 rls_disabled,
        BS509 rls_not_forced,
        BS601 fk_without_index,
        BS701 create_extension,
        BS702 platform_dependency,
        BS801 char_column,
        BS802 varchar_column,
        BS803 int_key,
        BS804 serial_column,
        BS805 timestamp_without_time_zone,
        BS806 table_without_schema,
            }
    };
}
pub(crate) use with_rules;

macro_rules! define_codes {
    ($($code:ident $module:ident,)+) => {
        /// A rule's stable code: letters then digits. The hundreds say the
        /// family: 0 suppression, 1 data loss, 2 locks, 3 compatibility,
        /// 4 robustness, 5 security, 6 performance, 7 extensions, 8 preferences
        /// (opt-in).
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

            /// The rule's source, from which its docs are read.
            pub(crate) fn source(self) -> &'static str {
                match self {
                    $(Code::$code => include_str!(concat!("rules/", stringify!($module), ".rs")),)+
                }
            }

            /// `fixtures/<CODE>/bad.sql`: SQL the rule reports.
            pub fn bad_example(self) -> &'static str {
                match self {
                    $(Code::$code => include_str!(concat!(
                        "../fixtures/", stringify!($code), "/bad.sql"
                    )),)+
                }
            }

            /// `fixtures/<CODE>/good.sql`: the safe way, which it does not report.
            pub fn good_example(self) -> &'static str {
                match self {
                    $(Code::$code => include_str!(concat!(
                        "../fixtures/", stringify!($code), "/good.sql"
                    )),)+
                }
            }
        }
    };
}

with_rules!(define_codes);

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
