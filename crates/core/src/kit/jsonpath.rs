//! The one JSON path dialect of Backstop, used by `[[triggers]]` http
//! sources and `[verify]` http checks alike, and checked when the config
//! loads: `$.data.items[0].id`, `data.items.0.id` and `$["a key"]` (the
//! `$` and its dot are optional). A step of digits after a dot indexes an
//! array and names a key of an object, so paths written for either older
//! form keep working.

use serde_json::Value;

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// `.name` or `["name"]`; digits (`.0`) also index an array.
    Key(String),
    /// `[0]`.
    Index(usize),
}

/// A parsed JSON path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPath {
    text: String,
    steps: Vec<Step>,
}

impl JsonPath {
    /// Parses a path; the error says what is wrong and how to write it.
    pub fn parse(text: &str) -> Result<JsonPath, String> {
        let bad = |why: &str| {
            format!("json_path {text:?} {why}; write it like \"$.data.items[0].id\" or \"data.items.0.id\"")
        };
        let mut rest = text.trim();
        if rest.is_empty() {
            return Err(bad("is empty"));
        }
        rest = rest.strip_prefix('$').unwrap_or(rest);
        let mut steps = Vec::new();
        let mut first = true;
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix('[') {
                let end = r.find(']').ok_or_else(|| bad("has an unclosed ["))?;
                let inner = r[..end].trim();
                if let Some(key) = inner.strip_prefix('"').and_then(|k| k.strip_suffix('"')) {
                    steps.push(Step::Key(key.to_string()));
                } else {
                    let n = inner.parse().map_err(|_| bad("has a non-numeric index"))?;
                    steps.push(Step::Index(n));
                }
                rest = &r[end + 1..];
            } else {
                let r = match rest.strip_prefix('.') {
                    Some(r) => r,
                    None if first => rest,
                    None => return Err(bad("needs . or [ between steps")),
                };
                let end = r.find(['.', '[']).unwrap_or(r.len());
                if end == 0 {
                    return Err(bad("has an empty key"));
                }
                if r[..end].contains(']') {
                    return Err(bad("has a ] without its ["));
                }
                steps.push(Step::Key(r[..end].to_string()));
                rest = &r[end..];
            }
            first = false;
        }
        Ok(JsonPath { text: text.trim().to_string(), steps })
    }

    /// The value at this path, if there is one.
    pub fn find<'v>(&self, mut value: &'v Value) -> Option<&'v Value> {
        for step in &self.steps {
            value = match (step, value) {
                (Step::Index(i), v) => v.get(*i)?,
                (Step::Key(k), Value::Array(items)) => items.get(k.parse::<usize>().ok()?)?,
                (Step::Key(k), v) => v.get(k)?,
            };
        }
        Some(value)
    }
}

impl serde::Serialize for JsonPath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl std::fmt::Display for JsonPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_older_forms_find_the_same_values() {
        let v: Value = serde_json::json!({
            "data": {"series": [{"rate": 0.08}], "a key": true, "0": "zero"}
        });
        let find = |p: &str| JsonPath::parse(p).unwrap().find(&v).cloned();
        for path in ["data.series.0.rate", "$.data.series.0.rate", "$.data.series[0].rate"] {
            assert_eq!(find(path), Some(serde_json::json!(0.08)), "{path}");
        }
        assert_eq!(find("$.data[\"a key\"]"), Some(serde_json::json!(true)));
        // Digits name a key of an object.
        assert_eq!(find("data.0"), Some(serde_json::json!("zero")));
        assert_eq!(find("$.data.series[3]"), None);
        assert_eq!(find("data.series.1.rate"), None);
    }

    #[test]
    fn malformed_paths_say_how_to_write_one() {
        for bad in ["$.a[", "$.a..b", "$.a[x]", "", "a]b"] {
            let err = JsonPath::parse(bad).unwrap_err();
            assert!(err.contains("write it like"), "{bad}: {err}");
        }
    }
}
