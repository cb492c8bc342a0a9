//! The CLI's integration tests, one binary: the real `backstop` binary
//! against one throwaway cluster (a fresh database and project folder per
//! test), and real third-party programs where a test names one. One binary
//! links the parser and the core once, not once per file.

mod common;

mod adopt;
mod authors_transactions;
mod backup;
mod bad_input;
mod check;
mod check_cleared;
mod check_noise;
mod commands;
mod comments;
mod compare;
mod conventions;
mod crashes;
mod decide;
mod demo;
mod downs;
mod drill;
mod expand;
mod flags;
mod floors;
mod freeze;
mod history_table;
mod incident;
mod kill_switch;
mod layouts;
mod managed;
mod memory;
mod migrate_groups;
mod openfeature;
mod pg_versions;
mod pgbackrest;
mod pgbackrest_restore;
mod platform_history;
mod platform_proofs;
mod platform_restore;
mod preload;
mod proofs;
mod ramps;
mod real_histories;
mod rehearse;
mod rehearse_history;
mod replay_start;
mod restore_steps;
mod rollback_options;
mod rollout;
mod rollout_expand;
mod rollout_input;
mod row_security;
mod secrets;
mod serve;
mod throwaway;
mod tls;
mod undo;
mod unreadable;
mod up_only;
mod up_only_adopt;
mod up_only_history;
mod up_only_in_step;
mod up_only_platform;
mod verify;
mod watch;
mod zero_config;
