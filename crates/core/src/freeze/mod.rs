//! The one write freeze, in two scopes. [`database`]: the whole database
//! read-only (`ALTER DATABASE … SET default_transaction_read_only = on`),
//! which restore, cutover and rollback use. [`role`]: one role's write
//! grants revoked and recorded exactly, so that lifting gives back exactly
//! those. Both are recorded in `backstop` (shown by `status`, lifted by
//! `backstop backup unfreeze`) and audited; Backstop's own sessions are exempt.
//!
//! Without the right to alter the database or terminate sessions (managed
//! PostgreSQL without superuser) a freeze says what it could not do and
//! goes on with what it could.

pub mod database;
pub mod role;

pub(crate) use crate::pg::db;
use serde::Deserialize;

pub use crate::schema::exempt;
pub use crate::schema::freeze::{FreezeState, FrozenRole};
pub use database::{current, freeze, terminate_others, unfreeze, FreezeGate, FreezeGuard, Frozen};
pub use role::{freeze_role, frozen_roles, unfreeze_role, Grant, RoleFreeze, RoleUnfreeze};

/// `[freeze]`: how writes are stopped during a restore.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FreezeSection {
    /// Terminate other sessions of the database when freezing, so none
    /// keeps writing in a transaction opened before the freeze.
    pub terminate_sessions: bool,
    /// Only terminate sessions of these roles (empty: every role).
    pub roles: Vec<String>,
}

impl Default for FreezeSection {
    fn default() -> Self {
        FreezeSection { terminate_sessions: true, roles: Vec::new() }
    }
}

/// Why a freeze could not be set or lifted.
#[derive(Debug, thiserror::Error)]
pub enum FreezeError {
    #[error(transparent)]
    Db(#[from] crate::pg::DbError),
    #[error(transparent)]
    Connect(#[from] crate::pg::ConnectError),
    #[error("there is no role {role}; `\\du` in psql lists them")]
    NoRole { role: String },
}

impl FreezeError {
    /// Exit code: a database failure is an environment error.
    pub fn exit_code(&self) -> u8 {
        match self {
            FreezeError::NoRole { .. } => 2,
            FreezeError::Connect(e) => e.exit_code(),
            FreezeError::Db(_) => 3,
        }
    }
}
