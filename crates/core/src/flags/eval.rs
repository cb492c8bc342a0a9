//! Evaluating a flag for a context, the way flagd does: a disabled flag
//! gives no value (the application's own default applies: the kill
//! switch); without targeting the default variant is served (STATIC);
//! targeting is JsonLogic with flagd's `fractional`, `sem_ver`,
//! `starts_with` and `ends_with`, run by the datalogic engine, whose
//! `fractional` buckets with MurmurHash3 like flagd's own evaluators.
//! The context gains `$flagd.flagKey` and `$flagd.timestamp`, and
//! `fractional` buckets by flag key and `targetingKey`. Pure: no IO.

use std::collections::HashMap;

use datalogic_rs::{Engine, Logic};
use serde::Serialize;
use serde_json::{Map, Value};

use super::{etag, Flag};

/// Why a flag has the value it has (OpenFeature's reasons).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Reason {
    /// No targeting: the default variant.
    Static,
    /// Targeting chose the variant.
    TargetingMatch,
    /// A fractional split chose the variant.
    Split,
    /// Targeting matched nothing: the default variant.
    Default,
    /// The flag is off: no value, the application's default applies.
    Disabled,
    Error,
}

/// OpenFeature's error codes, as OFREP answers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    FlagNotFound,
    ParseError,
    TargetingKeyMissing,
    InvalidContext,
    General,
}

/// One flag evaluated for one context.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    pub key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    pub reason: Reason,
    #[serde(rename = "errorCode", skip_serializing_if = "Option::is_none")]
    pub error_code: Option<ErrorCode>,
    #[serde(rename = "errorDetails", skip_serializing_if = "Option::is_none")]
    pub error_details: Option<String>,
}

impl Evaluation {
    fn error(key: &str, code: ErrorCode, details: String) -> Evaluation {
        Evaluation {
            key: key.to_string(),
            value: None,
            variant: None,
            reason: Reason::Error,
            error_code: Some(code),
            error_details: Some(details),
        }
    }
}

/// A set of flags ready to evaluate: targeting compiled once.
pub struct Evaluator {
    engine: Engine,
    flags: HashMap<String, (Flag, Option<Result<Logic, String>>)>,
    order: Vec<String>,
    etag: String,
}

impl Evaluator {
    pub fn new(flags: Vec<Flag>) -> Evaluator {
        let engine = Engine::new();
        let etag = etag(&flags);
        let order = flags.iter().map(|f| f.key.clone()).collect();
        let flags = flags
            .into_iter()
            .map(|f| {
                let compiled = f
                    .targeting
                    .as_ref()
                    .map(|t| engine.compile(&t.to_string()).map_err(|e| format!("{e:?}")));
                (f.key.clone(), (f, compiled))
            })
            .collect();
        Evaluator { engine, flags, order, etag }
    }

    /// The ETag of the flags this evaluator serves.
    pub fn etag(&self) -> &str {
        &self.etag
    }

    /// The flags, in key order.
    pub fn flags(&self) -> impl Iterator<Item = &Flag> {
        self.order.iter().filter_map(|k| self.flags.get(k).map(|(f, _)| f))
    }

    /// Evaluates `key` for `context` (a JSON object).
    pub fn evaluate(&self, key: &str, context: &Value) -> Evaluation {
        let Some((flag, compiled)) = self.flags.get(key) else {
            return Evaluation::error(key, ErrorCode::FlagNotFound, format!("no flag {key}"));
        };
        let Value::Object(context) = context else {
            return Evaluation::error(
                key,
                ErrorCode::InvalidContext,
                "the context must be a JSON object".into(),
            );
        };
        if !flag.enabled() {
            return Evaluation {
                key: key.to_string(),
                value: None,
                variant: None,
                reason: Reason::Disabled,
                error_code: None,
                error_details: None,
            };
        }
        let served = |variant: &str, reason: Reason| match flag.variants.get(variant) {
            Some(value) => Evaluation {
                key: key.to_string(),
                value: Some(value.clone()),
                variant: Some(variant.to_string()),
                reason,
                error_code: None,
                error_details: None,
            },
            None => Evaluation::error(
                key,
                ErrorCode::General,
                format!("variant {variant:?} is not one of the flag's variants"),
            ),
        };
        let Some(compiled) = compiled else {
            return served(&flag.default_variant, Reason::Static);
        };
        let compiled = match compiled {
            Ok(c) => c,
            Err(e) => {
                return Evaluation::error(key, ErrorCode::ParseError, format!("targeting: {e}"))
            }
        };
        let split = flag.targeting.as_ref().and_then(|t| t.get("fractional")).is_some();
        let has_key =
            context.get("targetingKey").is_some_and(|k| k.as_str().is_some_and(|s| !s.is_empty()));
        if split && !has_key {
            return Evaluation::error(
                key,
                ErrorCode::TargetingKeyMissing,
                "this flag splits by targetingKey, and the context has none".into(),
            );
        }
        let mut data: Map<String, Value> = context.clone();
        let timestamp = chrono::Utc::now().timestamp();
        data.insert("$flagd".into(), serde_json::json!({ "flagKey": key, "timestamp": timestamp }));
        let mut session = self.engine.session();
        let result = session.eval_str(compiled, &Value::Object(data).to_string());
        let result: Value = match result.map(|r| serde_json::from_str(&r)) {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => return Evaluation::error(key, ErrorCode::General, e.to_string()),
            Err(e) => return Evaluation::error(key, ErrorCode::General, format!("{e:?}")),
        };
        let reason = if split { Reason::Split } else { Reason::TargetingMatch };
        match result {
            Value::Null => served(&flag.default_variant, Reason::Default),
            Value::String(v) => served(&v, reason),
            Value::Bool(b) => served(if b { "true" } else { "false" }, reason),
            other => Evaluation::error(
                key,
                ErrorCode::General,
                format!("targeting gave {other}, not a variant name"),
            ),
        }
    }

    /// Every flag evaluated for `context`, in key order.
    pub fn evaluate_all(&self, context: &Value) -> Vec<Evaluation> {
        self.order.iter().map(|k| self.evaluate(k, context)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flags::State;
    use serde_json::json;

    fn flag(key: &str, state: State, targeting: Option<Value>) -> Flag {
        let mut variants = Map::new();
        variants.insert("on".into(), json!(true));
        variants.insert("off".into(), json!(false));
        Flag {
            key: key.into(),
            state,
            variants,
            default_variant: "on".into(),
            targeting,
            description: String::new(),
            owner: None,
            release: "v2".into(),
            code_default: None,
            updated_at: chrono::Utc::now(),
            updated_by: "test".into(),
        }
    }

    #[test]
    fn reasons_follow_flagd() {
        let e = Evaluator::new(vec![
            flag("plain", State::Enabled, None),
            flag("off", State::Disabled, None),
            flag(
                "admins",
                State::Enabled,
                Some(
                    json!({"if": [{"ends_with": [{"var": "email"}, "@example.com"]}, "on", "off"]}),
                ),
            ),
            flag(
                "nobody",
                State::Enabled,
                Some(json!({"if": [{"==": [{"var": "plan"}, "gold"]}, "on", null]})),
            ),
            flag("split", State::Enabled, Some(json!({"fractional": [["on", 50], ["off", 50]]}))),
            flag(
                "semver",
                State::Enabled,
                Some(json!({"if": [{"sem_ver": [{"var": "app"}, ">=", "2.0.0"]}, "on", "off"]})),
            ),
        ]);
        let ctx = json!({"targetingKey": "user-1", "email": "a@example.com", "app": "10.1.0"});
        let r = e.evaluate("plain", &ctx);
        assert_eq!((r.value, r.reason), (Some(json!(true)), Reason::Static));
        let r = e.evaluate("off", &ctx);
        assert_eq!((r.value, r.reason), (None, Reason::Disabled));
        let r = e.evaluate("admins", &ctx);
        assert_eq!((r.variant.as_deref(), r.reason), (Some("on"), Reason::TargetingMatch));
        let r = e.evaluate("nobody", &ctx);
        assert_eq!((r.variant.as_deref(), r.reason), (Some("on"), Reason::Default));
        assert_eq!(e.evaluate("split", &ctx).reason, Reason::Split);
        assert_eq!(
            e.evaluate("semver", &ctx).variant.as_deref(),
            Some("on"),
            "10.1.0 >= 2.0.0 as versions"
        );
        assert_eq!(e.evaluate("nope", &ctx).error_code, Some(ErrorCode::FlagNotFound));
        assert_eq!(e.evaluate("plain", &json!([1])).error_code, Some(ErrorCode::InvalidContext));
        assert_eq!(
            e.evaluate("split", &json!({})).error_code,
            Some(ErrorCode::TargetingKeyMissing)
        );
    }

    #[test]
    fn a_ten_percent_split_gives_about_ten_percent_and_the_same_key_the_same_variant() {
        let e = Evaluator::new(vec![flag(
            "cards",
            State::Enabled,
            Some(json!({"fractional": [["on", 10], ["off", 90]]})),
        )]);
        let on = (0..10_000)
            .filter(|i| {
                e.evaluate("cards", &json!({"targetingKey": format!("user-{i}")}))
                    .variant
                    .as_deref()
                    == Some("on")
            })
            .count();
        assert!((800..1200).contains(&on), "{on} of 10000 on");
        let a = e.evaluate("cards", &json!({"targetingKey": "user-42"}));
        let b = e.evaluate("cards", &json!({"targetingKey": "user-42"}));
        assert_eq!(a.variant, b.variant);
    }
}
