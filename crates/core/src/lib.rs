//! The Backstop engine: throwaway clusters, configuration, migration
//! sources, history and guarded apply/rollback. The `backstop` binary is a
//! thin layer over this crate.

pub mod adopt;
pub mod backup;
pub mod check;
pub mod clear;
pub mod compare;
pub mod config;
pub mod copies;
pub mod decide;
pub mod downs;
pub mod drill;
pub mod exit;
pub mod expand;
pub mod flags;
pub mod freeze;
pub mod incident;
pub mod kit;
pub mod migrate;
pub mod migrator;
pub mod overview;
pub mod pg;
pub mod rehearse;
pub mod respond;
pub mod rollout;
pub mod schema;
pub mod shell;
pub mod source;
pub mod sync;
pub mod undo;
pub mod verify;
pub mod watch;
