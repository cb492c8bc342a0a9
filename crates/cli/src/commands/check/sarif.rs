//! SARIF 2.1.0 for GitHub code scanning: every rule in the driver, each
//! finding a result with its region.

use std::path::Path;

use backstop_core::check::Assessment;
use backstop_lint::{Code, Family, Severity};
use serde_json::{json, Value};

fn level(s: Severity) -> &'static str {
    match s {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low => "note",
    }
}

/// Paths relative to the working directory, with `/`, as code scanning
/// wants them.
fn uri(path: &str) -> String {
    let p = Path::new(path);
    let rel = std::env::current_dir()
        .ok()
        .and_then(|cwd| p.strip_prefix(&cwd).ok().map(Path::to_path_buf))
        .unwrap_or_else(|| p.to_path_buf());
    let text = rel.to_string_lossy().replace('\\', "/");
    text.strip_prefix("./").map(str::to_string).unwrap_or(text)
}

fn rule(code: Code) -> Value {
    let meta = code.meta();
    let severity = Severity::of(meta.probability, meta.impact);
    let docs = code.docs();
    let what = docs
        .split("\n\n")
        .next()
        .unwrap_or_default()
        .replace("**What it finds:** ", "")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let mut properties = json!({ "tags": [meta.family.as_str()], "severity": severity });
    if meta.family == Family::Security {
        // GitHub shows security-severity as critical/high/medium/low.
        let score = match severity {
            Severity::Critical => "9.5",
            Severity::High => "8.0",
            Severity::Medium => "5.0",
            Severity::Low => "2.0",
        };
        // Its family's tag is already "security", the one GitHub reads.
        properties["security-severity"] = json!(score);
    }
    json!({
        "id": code.as_str(),
        "name": meta.name,
        "shortDescription": { "text": meta.risk },
        "fullDescription": { "text": what },
        "help": { "text": docs.replace("**", ""), "markdown": docs },
        // An opt-in rule is off unless the project's [check] enable names it.
        "defaultConfiguration": { "level": level(severity), "enabled": !code.opt_in() },
        "properties": properties,
    })
}

pub fn render(a: &Assessment) -> Value {
    let rules: Vec<Value> = Code::ALL.iter().map(|c| rule(*c)).collect();
    let results: Vec<Value> = a
        .findings
        .iter()
        .chain(&a.suppressed)
        .map(|f| {
            let mut text = format!("{} ({} severity). {}", f.message, f.severity, f.help);
            for fact in &f.facts {
                text.push_str(&format!(" Live: {fact}."));
            }
            let mut result = json!({
                "ruleId": f.code.as_str(),
                "ruleIndex": Code::ALL.iter().position(|c| *c == f.code).unwrap_or(0),
                "level": level(f.severity),
                "message": { "text": text },
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": { "uri": uri(&f.file) },
                        "region": {
                            "startLine": f.line,
                            "startColumn": f.column,
                            "endLine": f.end_line.max(f.line),
                            "endColumn": if f.end_line > f.line { f.end_column } else { f.end_column.max(f.column + 1) },
                        }
                    }
                }],
                "properties": {
                    "severity": f.severity,
                    "probability": f.probability,
                    "impact": f.impact,
                },
            });
            if let Some(reason) = &f.suppressed {
                result["suppressions"] = json!([{ "kind": "inSource", "justification": reason }]);
            }
            result
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {
                "driver": {
                    "name": "backstop",
                    "semanticVersion": env!("CARGO_PKG_VERSION"),
                    "rules": rules,
                }
            },
            "columnKind": "unicodeCodePoints",
            "results": results,
            "properties": { "verdict": a.verdict },
        }]
    })
}
