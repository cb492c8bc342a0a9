//! `[rehearse]`: the rehearsal gate and where reports go.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// `[rehearse]`: the rehearsal gate and where reports go.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RehearseSection {
    /// `migrate` refuses migrations without a recent passing rehearsal.
    pub required: bool,
    /// How recent that rehearsal must be.
    #[serde(deserialize_with = "crate::kit::duration::de")]
    pub max_age: Duration,
    /// Whether a schema-only rehearsal satisfies the gate.
    pub accept_schema_only: bool,
    /// Where reports are written, relative to the config file; under
    /// `.backstop/` with the project's other local files, which `backstop
    /// init` keeps out of version control.
    pub report_dir: PathBuf,
    /// A migration without a down fails the round trip; by default it is
    /// reported as `no down` (old histories often have some).
    pub require_down: bool,
    /// Where proved downs are kept for `migrate` to reuse, relative to
    /// the config file (`downs::proofs`).
    pub proofs: PathBuf,
}

impl Default for RehearseSection {
    fn default() -> Self {
        RehearseSection {
            required: false,
            max_age: Duration::from_secs(7 * 24 * 3600),
            accept_schema_only: false,
            report_dir: PathBuf::from(".backstop/rehearsals"),
            require_down: false,
            proofs: PathBuf::from(".backstop/proofs.json"),
        }
    }
}
