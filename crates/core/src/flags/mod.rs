//! Release flags: the kill switch of Method A. Flags live in
//! `backstop.flags`; every change writes its event to `backstop.events`
//! and sends `NOTIFY backstop_flags` with the new ETag, in the same
//! transaction, so every `backstop flags serve` on any host pushes it to its
//! clients the moment it commits. Evaluation ([`eval`]) is pure and follows
//! flagd's semantics, so flagd-compatible clients agree with it. A release
//! ramp ([`ramp`]) raises a release's share step by step.

pub mod eval;
pub mod ramp;
pub mod shape;
mod store;

use serde::Deserialize;
use serde_json::{Map, Value};

pub use eval::{Evaluation, Evaluator, Reason};
pub use store::{
    disable, enable, enable_release, history, kill_release, list, sync, FlagChange, FlagEvent,
    SyncReport,
};

pub use crate::schema::flags::{Flag, State, CHANNEL};

/// The key of the release flag an expand of `schema` makes ([`shape`]).
pub fn shape_key(schema: &str) -> String {
    format!("shape_{schema}")
}

/// Why a flag operation could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum FlagsError {
    #[error("no flag {key}; `backstop flags list` shows them (declare it under [[flags]] and run `backstop flags sync`)")]
    UnknownFlag { key: String },
    #[error("no flag belongs to release {release}; `backstop flags list` shows the releases")]
    UnknownRelease { release: String },
    #[error("--percent {percent}: write a share from 0 to 100")]
    BadPercent { percent: u32 },
    #[error("a reason is needed (--reason \"...\"): every flag change is audited")]
    NoReason,
    #[error(transparent)]
    Db(#[from] crate::pg::DbError),
    #[error(transparent)]
    Lock(#[from] crate::pg::lock::LockError),
}

impl FlagsError {
    /// 2 for what the operator asked wrongly, 3 for the database.
    pub fn exit_code(&self) -> u8 {
        match self {
            FlagsError::Db(_) | FlagsError::Lock(_) => 3,
            _ => 2,
        }
    }
}

impl Flag {
    pub fn enabled(&self) -> bool {
        self.state == State::Enabled
    }

    /// The flag in flagd's flag-definition schema.
    pub fn flagd(&self) -> Value {
        let mut metadata = Map::new();
        metadata.insert("release".into(), Value::String(self.release.clone()));
        if !self.description.is_empty() {
            metadata.insert("description".into(), Value::String(self.description.clone()));
        }
        if let Some(owner) = &self.owner {
            metadata.insert("owner".into(), Value::String(owner.clone()));
        }
        let mut out = serde_json::json!({
            "state": self.state.as_str(),
            "variants": self.variants,
            "defaultVariant": self.default_variant,
            "metadata": metadata,
        });
        if let Some(t) = &self.targeting {
            out["targeting"] = t.clone();
        }
        out
    }
}

/// The flags as flagd's flag-definition document (`{"flags": {...}}`).
pub fn flagd_document(flags: &[Flag]) -> Value {
    let map: Map<String, Value> = flags.iter().map(|f| (f.key.clone(), f.flagd())).collect();
    serde_json::json!({ "flags": map })
}

/// A short hash of what the flags serve: changes with any state, variant or
/// targeting, and nothing else.
pub fn etag(flags: &[Flag]) -> String {
    let doc = flagd_document(flags);
    let text = serde_json::to_string(&doc).expect("a JSON value serializes");
    format!("\"{}\"", &blake3::hash(text.as_bytes()).to_hex()[..20])
}

/// `[[flags]]` in backstop.toml: a flag of a release.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FlagDecl {
    pub key: String,
    pub release: String,
    #[serde(default)]
    pub description: String,
    pub owner: Option<String>,
    /// The value the application's code uses when the flag is off.
    pub default: Option<Value>,
    /// Variant name → value; `{on = true, off = false}` when not given.
    pub variants: Option<Map<String, Value>>,
    /// The variant served when enabled (default `on`).
    pub default_variant: Option<String>,
}

impl FlagDecl {
    /// Refuses keys and variants that clients could not use.
    pub fn check(&self) -> Result<(), String> {
        let ok_key = !self.key.is_empty()
            && self.key.chars().all(|c| c.is_ascii_alphanumeric() || "_-.:/".contains(c));
        if !ok_key {
            return Err(format!(
                "flag key {:?}: use letters, digits and _ - . : / (no spaces)",
                self.key
            ));
        }
        if self.release.trim().is_empty() {
            return Err(format!("flag {}: release must not be empty", self.key));
        }
        let variants = self.variants();
        let default = self.default_variant();
        if !variants.contains_key(&default) {
            return Err(format!(
                "flag {}: default_variant {default:?} is not one of its variants ({})",
                self.key,
                variants.keys().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        Ok(())
    }

    pub fn variants(&self) -> Map<String, Value> {
        self.variants.clone().unwrap_or_else(|| {
            let mut m = Map::new();
            m.insert("on".into(), Value::Bool(true));
            m.insert("off".into(), Value::Bool(false));
            m
        })
    }

    pub fn default_variant(&self) -> String {
        self.default_variant.clone().unwrap_or_else(|| "on".into())
    }
}

/// The targeting that serves the default variant to `percent` % of
/// targeting keys and another variant to the rest, with flagd's
/// `fractional` (bucketed by flag key and targeting key).
pub fn rollout(flag: &Flag, percent: u32) -> Result<Option<Value>, FlagsError> {
    if percent > 100 {
        return Err(FlagsError::BadPercent { percent });
    }
    if percent == 100 {
        return Ok(None);
    }
    let rest = flag
        .variants
        .keys()
        .find(|v| **v != flag.default_variant)
        .cloned()
        .unwrap_or_else(|| flag.default_variant.clone());
    Ok(Some(serde_json::json!({
        "fractional": [[flag.default_variant, percent], [rest, 100 - percent]]
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declarations_are_checked_and_get_boolean_variants_by_default() {
        let d = FlagDecl {
            key: "client_cards".into(),
            release: "v2".into(),
            description: String::new(),
            owner: None,
            default: Some(Value::Bool(false)),
            variants: None,
            default_variant: None,
        };
        assert!(d.check().is_ok());
        assert_eq!(d.variants()["on"], Value::Bool(true));
        let bad = FlagDecl { key: "has space".into(), ..d.clone() };
        assert!(bad.check().unwrap_err().contains("no spaces"));
        let bad = FlagDecl { default_variant: Some("maybe".into()), ..d };
        assert!(bad.check().unwrap_err().contains("not one of its variants"));
    }
}
