//! `[verify]` in backstop.toml: the checks of the suite. Each
//! `[[verify.checks]]` entry has the common keys (`name`, `kind`,
//! `severity`, `timeout`, `after`) and the keys of its kind; a key its kind
//! does not know is an error naming file and line.

mod kinds;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::kit::env::{interpolate, Interpolation};
use crate::kit::text::Located;

use kinds::KINDS;
pub use kinds::{
    ChecksumsCheck, ColumnsCheck, ConnectionCheck, ExplainCheck, ExtensionsCheck, ForeignKeysCheck,
    HttpCheck, IdentityLookup, IndexesCheck, Kind, PolicyCommand, RecentRowsCheck, RlsCheck,
    RlsIsolationCheck, RowCountsCheck, SqlCheck, TableName, TablesCheck, Tolerance,
    SUPABASE_IMPERSONATION,
};

/// `[verify]` exactly as written, before each check is typed by its kind.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSection {
    #[serde(default)]
    after_migrate: bool,
    concurrency: Option<usize>,
    #[serde(default)]
    checks: Vec<toml::Spanned<toml::Table>>,
}

/// `[verify]`: the suite `backstop verify` runs, and whether `migrate` and
/// `rollback` run it afterwards.
#[derive(Debug, Clone)]
pub struct VerifySection {
    /// Run the suite after every `migrate` and `rollback` that changed something.
    pub after_migrate: bool,
    /// How many checks run at once (each database check has its own session).
    pub concurrency: usize,
    pub checks: Vec<CheckSpec>,
}

impl Default for VerifySection {
    fn default() -> Self {
        VerifySection { after_migrate: false, concurrency: DEFAULT_CONCURRENCY, checks: Vec::new() }
    }
}

const DEFAULT_CONCURRENCY: usize = 4;
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How much a failing check matters: a critical failure fails the suite
/// (exit 1); a warning is reported and does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    Warning,
}

/// After which run a check belongs in the suite that `migrate` or
/// `rollback` runs (`backstop verify` runs every check).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Migrate,
    Rollback,
}

/// One configured check.
#[derive(Debug, Clone)]
pub struct CheckSpec {
    pub name: String,
    pub severity: Severity,
    pub timeout: Duration,
    /// The runs after which `migrate`/`rollback` include this check.
    pub after: Vec<Phase>,
    pub kind: Kind,
    /// Where the entry starts in backstop.toml, for messages.
    pub line: usize,
}

/// The keys every check has, whatever its kind.
const COMMON: [&str; 4] = ["name", "severity", "timeout", "after"];

impl VerifySection {
    /// Types each check by its kind; errors name the file and line.
    pub(crate) fn from_raw(
        raw: RawSection,
        text: &str,
        path: &Path,
    ) -> Result<VerifySection, Located> {
        let mut checks: Vec<CheckSpec> = Vec::with_capacity(raw.checks.len());
        for entry in raw.checks {
            let span = entry.span();
            let check = typed(entry.into_inner(), text, span.clone(), path)?;
            if let Some(first) = checks.iter().find(|c| c.name == check.name) {
                return Err(invalid(
                    path,
                    text,
                    span.start,
                    format!(
                        "two checks are named {:?} (the first at line {}); names must be unique so --only and reports can tell them apart",
                        check.name, first.line
                    ),
                ));
            }
            checks.push(check);
        }
        let concurrency = raw.concurrency.unwrap_or(DEFAULT_CONCURRENCY);
        if concurrency == 0 {
            let at = find_key(text, 0..text.len(), "concurrency").unwrap_or(0);
            return Err(invalid(path, text, at, "concurrency must be at least 1".into()));
        }
        Ok(VerifySection { after_migrate: raw.after_migrate, concurrency, checks })
    }

    /// The `${ENV}` values of every http check's headers, resolved now so
    /// that a missing variable stops the run before anything happens.
    pub fn resolve_headers(&self, path: &Path) -> Result<ResolvedHeaders, Located> {
        let mut out = ResolvedHeaders::default();
        for check in &self.checks {
            let Kind::Http(http) = &check.kind else { continue };
            let mut headers = Vec::new();
            for (name, raw) in &http.headers {
                let from_env = std::cell::RefCell::new(Vec::new());
                let lookup = |var: &str| {
                    let value = std::env::var(var).ok();
                    from_env.borrow_mut().extend(value.clone().filter(|v| !v.is_empty()));
                    value
                };
                let value = interpolate(raw, lookup).map_err(|e| {
                    let message = match e {
                        Interpolation::Missing(var) => format!(
                            "header {name:?} of check {:?} uses `${{{var}}}`, which is not set in the environment; export {var}",
                            check.name
                        ),
                        Interpolation::Unterminated => format!(
                            "header {name:?} of check {:?} has an unterminated `${{`; write `${{NAME}}`",
                            check.name
                        ),
                    };
                    Located { path: path.to_path_buf(), line: check.line, column: 1, message }
                })?;
                out.secrets.extend(from_env.into_inner());
                headers.push((name.clone(), value));
            }
            out.by_check.insert(check.name.clone(), headers);
        }
        Ok(out)
    }
}

/// Header values of the http checks with `${ENV}` filled in. The values
/// that came from the environment are secrets: reports mask them.
#[derive(Debug, Clone, Default)]
pub struct ResolvedHeaders {
    pub by_check: BTreeMap<String, Vec<(String, String)>>,
    pub secrets: Vec<String>,
}

fn typed(
    mut table: toml::Table,
    text: &str,
    span: std::ops::Range<usize>,
    path: &Path,
) -> Result<CheckSpec, Located> {
    let at_key = |key: &str| find_key(text, span.clone(), key).unwrap_or(span.start);
    let name = match table.remove("name") {
        Some(toml::Value::String(s)) if !s.trim().is_empty() => s,
        Some(_) => {
            return Err(invalid(
                path,
                text,
                at_key("name"),
                "name must be a non-empty string".into(),
            ))
        }
        None => {
            return Err(invalid(
                path,
                text,
                span.start,
                "a check needs a name: add name = \"...\" to this [[verify.checks]] entry".into(),
            ))
        }
    };
    let severity = match table.remove("severity") {
        None => Severity::Critical,
        Some(v) => v.try_into().map_err(|_| {
            invalid(
                path,
                text,
                at_key("severity"),
                format!("check {name:?}: severity must be \"critical\" or \"warning\""),
            )
        })?,
    };
    let timeout = match table.remove("timeout") {
        None => DEFAULT_TIMEOUT,
        Some(v) => {
            let parsed = match &v {
                toml::Value::String(s) => humantime::parse_duration(s).ok(),
                _ => None,
            };
            match parsed {
                Some(d) if !d.is_zero() => d,
                _ => {
                    return Err(invalid(
                        path,
                        text,
                        at_key("timeout"),
                        format!(
                        "check {name:?}: invalid timeout {v}; write it like \"10s\" or \"2min\""
                    ),
                    ))
                }
            }
        }
    };
    let after = match table.remove("after") {
        None => vec![Phase::Migrate, Phase::Rollback],
        Some(v) => v.try_into().map_err(|_| {
            invalid(
                path,
                text,
                at_key("after"),
                format!("check {name:?}: after must be a list of \"migrate\" and \"rollback\""),
            )
        })?,
    };
    if !table.contains_key("kind") {
        return Err(invalid(
            path,
            text,
            span.start,
            format!("check {name:?} has no kind; add kind = \"tables\" (or {})", KINDS.join(", ")),
        ));
    }
    let kind: Kind = toml::Value::Table(table).try_into().map_err(|e: toml::de::Error| {
        let message = e.message().trim().to_string();
        let key = quoted_key(&message);
        let at = key.and_then(|k| find_key(text, span.clone(), k)).unwrap_or_else(|| {
            if message.contains("variant") {
                at_key("kind")
            } else {
                span.start
            }
        });
        let hint = if message.starts_with("unknown field") {
            format!(" (the common keys are {})", COMMON.join(", "))
        } else {
            String::new()
        };
        invalid(path, text, at, format!("check {name:?}: {message}{hint}"))
    })?;
    let line = crate::kit::text::line_col(text, span.start).0;
    let spec = CheckSpec { name, severity, timeout, after, kind, line };
    validate(&spec).map_err(|(key, message)| {
        let at = key.and_then(|k| find_key(text, span.clone(), k)).unwrap_or(span.start);
        invalid(path, text, at, format!("check {:?}: {message}", spec.name))
    })?;
    Ok(spec)
}

/// What serde cannot see: values that parse but make no sense.
fn validate(spec: &CheckSpec) -> Result<(), (Option<&'static str>, String)> {
    match &spec.kind {
        Kind::Tables(c) if c.tables.is_empty() => {
            Err((Some("tables"), "tables is empty; name at least one table".into()))
        }
        Kind::Columns(c) if c.columns.is_empty() => {
            Err((Some("columns"), "columns is empty; name at least one column".into()))
        }
        Kind::Extensions(c) if c.extensions.is_empty() => {
            Err((Some("extensions"), "extensions is empty; name at least one".into()))
        }
        Kind::Indexes(c) if c.indexes.is_empty() => {
            Err((Some("indexes"), "indexes is empty; name at least one index".into()))
        }
        Kind::Rls(c) if c.tables.is_empty() => {
            Err((Some("tables"), "tables is empty; name at least one table".into()))
        }
        Kind::RlsIsolation(c) if !c.impersonate.contains("{user}") => Err((
            Some("impersonate"),
            "impersonate must contain {user}, where the test identity goes".into(),
        )),
        Kind::RlsIsolation(c) if c.insert.as_deref().is_some_and(|s| !s.contains("$1")) => {
            Err((Some("insert"), "insert must use $1 for the owner value of the test row".into()))
        }
        Kind::RecentRows(c) if c.min_rows < 1 => {
            Err((Some("min_rows"), "min_rows must be at least 1".into()))
        }
        Kind::Sql(c) if c.expect.is_some() && c.expect_rows.is_some() => {
            Err((Some("expect_rows"), "give expect or expect_rows, not both".into()))
        }
        Kind::Sql(c) if c.query.trim().is_empty() => Err((Some("query"), "query is empty".into())),
        Kind::Explain(c) if c.query.trim().is_empty() => {
            Err((Some("query"), "query is empty".into()))
        }
        Kind::Http(c) => validate_http(c),
        _ => Ok(()),
    }
}

fn validate_http(c: &HttpCheck) -> Result<(), (Option<&'static str>, String)> {
    match c.url.parse::<ureq::http::Uri>() {
        Ok(u) if matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some() => {}
        _ => {
            return Err((Some("url"), format!("url {:?} is not an http:// or https:// URL", c.url)))
        }
    }
    if c.method.is_empty() || !c.method.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err((Some("method"), format!("method {:?} is not an HTTP method", c.method)));
    }
    if c.repeat == 0 {
        return Err((Some("repeat"), "repeat must be at least 1".into()));
    }
    for status in std::iter::once(&c.expect_status).chain(c.expect_status_after.values()) {
        if !(100..=599).contains(status) {
            return Err((Some("expect_status"), format!("{status} is not an HTTP status")));
        }
    }
    for after in c.expect_status_after.keys() {
        match after.parse::<u32>() {
            Ok(n) if n < c.repeat => {}
            Ok(n) => {
                return Err((
                    Some("expect_status_after"),
                    format!(
                        "expect_status_after {{ {n} = ... }} needs repeat above {n} (it is {})",
                        c.repeat
                    ),
                ))
            }
            Err(_) => {
                return Err((
                    Some("expect_status_after"),
                    format!(
                        "expect_status_after keys are request counts, like {{ 10 = 429 }}; {after:?} is not"
                    ),
                ))
            }
        }
    }
    if let Some(p) = &c.json_path {
        crate::kit::jsonpath::JsonPath::parse(p).map_err(|e| (Some("json_path"), e))?;
    }
    if c.json_equals.is_some() && c.json_path.is_none() {
        return Err((Some("json_equals"), "json_equals needs json_path".into()));
    }
    for name in c.headers.keys() {
        if name.is_empty()
            || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err((Some("headers"), format!("{name:?} is not a header name")));
        }
    }
    Ok(())
}

/// The key a serde message is about: "unknown field `x`" → `x`.
fn quoted_key(message: &str) -> Option<&str> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(&message[start..start + len])
}

/// The offset of the line that sets `key` within `span`.
fn find_key(text: &str, span: std::ops::Range<usize>, key: &str) -> Option<usize> {
    let end = span.end.min(text.len());
    let start = span.start.min(end);
    let mut offset = start;
    for line in text[start..end].split_inclusive('\n') {
        let trimmed = line.trim_start();
        let bare = trimmed.strip_prefix(key).or_else(|| {
            trimmed
                .strip_prefix('"')
                .and_then(|t| t.strip_prefix(key))
                .and_then(|t| t.strip_prefix('"'))
        });
        if bare.is_some_and(|rest| rest.trim_start().starts_with('=')) {
            return Some(offset + (line.len() - trimmed.len()));
        }
        offset += line.len();
    }
    None
}

fn invalid(path: &Path, text: &str, offset: usize, message: String) -> Located {
    let (line, column) = crate::kit::text::line_col(text, offset);
    Located { path: path.to_path_buf(), line, column, message }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn parse(text: &str) -> Result<VerifySection, String> {
        Config::parse(text, Path::new("backstop.toml")).map(|c| c.verify).map_err(|e| e.to_string())
    }

    const CONTRACT: &str = r#"[verify]
after_migrate = true

[[verify.checks]]
name = "v2 tables exist"
kind = "tables"
tables = ["clients", "meetings"]

[[verify.checks]]
name = "clients are private"
kind = "rls_isolation"
table = "clients"
owner_column = "user_id"
"#;

    #[test]
    fn the_issue_contract_parses() {
        let v = parse(CONTRACT).unwrap();
        assert!(v.after_migrate);
        assert_eq!(v.checks.len(), 2);
        assert_eq!(v.checks[0].kind.name(), "tables");
        assert_eq!(v.checks[0].line, 4);
        assert_eq!(v.checks[1].severity, Severity::Critical);
        assert_eq!(v.checks[1].timeout, DEFAULT_TIMEOUT);
        match &v.checks[1].kind {
            Kind::RlsIsolation(c) => {
                assert_eq!(c.impersonate, SUPABASE_IMPERSONATION);
                assert_eq!(c.table, TableName { schema: None, name: "clients".into() });
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_key_unknown_to_the_kind_names_its_line() {
        let text = "[[verify.checks]]\nname = \"t\"\nkind = \"tables\"\ntables = [\"a\"]\nowner_column = \"x\"\n";
        let err = parse(text).unwrap_err();
        assert!(err.starts_with("backstop.toml:5:1:"), "{err}");
        assert!(err.contains("unknown field `owner_column`"), "{err}");
    }

    #[test]
    fn unknown_kind_missing_keys_and_duplicates_are_located() {
        let err = parse("[[verify.checks]]\nname = \"t\"\nkind = \"tabels\"\n").unwrap_err();
        assert!(err.starts_with("backstop.toml:3:") && err.contains("tabels"), "{err}");
        let err = parse("[[verify.checks]]\nname = \"t\"\nkind = \"tables\"\n").unwrap_err();
        assert!(
            err.starts_with("backstop.toml:1:") && err.contains("missing field `tables`"),
            "{err}"
        );
        let err = parse("[[verify.checks]]\nkind = \"tables\"\ntables = [\"a\"]\n").unwrap_err();
        assert!(err.contains("needs a name"), "{err}");
        let dup = "[[verify.checks]]\nname = \"t\"\nkind = \"connection\"\n\n[[verify.checks]]\nname = \"t\"\nkind = \"connection\"\n";
        let err = parse(dup).unwrap_err();
        assert!(err.starts_with("backstop.toml:5:") && err.contains("first at line 1"), "{err}");
        let err = parse("[verify]\nafter_migrat = true\n").unwrap_err();
        assert!(err.starts_with("backstop.toml:2:"), "{err}");
    }

    #[test]
    fn values_that_make_no_sense_are_refused() {
        let http = |extra: &str| {
            parse(&format!(
                "[[verify.checks]]\nname = \"h\"\nkind = \"http\"\nurl = \"http://127.0.0.1/x\"\n{extra}\n"
            ))
        };
        assert!(http("repeat = 15\nexpect_status_after = { 10 = 429 }").is_ok());
        let err = http("expect_status_after = { 10 = 429 }").unwrap_err();
        assert!(
            err.starts_with("backstop.toml:5:") && err.contains("needs repeat above 10"),
            "{err}"
        );
        let err = http("json_path = \"$.a[\"").unwrap_err();
        assert!(err.contains("json_path"), "{err}");
        let err = http("timeout = \"soon\"").unwrap_err();
        assert!(err.starts_with("backstop.toml:5:") && err.contains("invalid timeout"), "{err}");
        let err =
            parse("[[verify.checks]]\nname = \"r\"\nkind = \"row_counts\"\ntolerance = \"lots\"\n")
                .unwrap_err();
        assert!(err.contains("invalid tolerance"), "{err}");
        let err = parse("[[verify.checks]]\nname = \"r\"\nkind = \"rls_isolation\"\ntable = \"a.b.c\"\nowner_column = \"u\"\n")
            .unwrap_err();
        assert!(err.contains("not a table name"), "{err}");
    }

    #[test]
    fn status_after_picks_the_latest_threshold() {
        let text = "[[verify.checks]]\nname = \"h\"\nkind = \"http\"\nurl = \"http://x/\"\nrepeat = 30\nexpect_status_after = { 10 = 429, 20 = 503 }\n";
        let v = parse(text).unwrap();
        let Kind::Http(h) = &v.checks[0].kind else { panic!() };
        assert_eq!(h.expected_status(10), 200);
        assert_eq!(h.expected_status(11), 429);
        assert_eq!(h.expected_status(21), 503);
    }

    #[test]
    fn header_env_is_resolved_and_remembered_as_secret() {
        let text = "[[verify.checks]]\nname = \"h\"\nkind = \"http\"\nurl = \"http://x/\"\nheaders = { Authorization = \"Bearer ${BACKSTOP_TEST_TOKEN_SET}\", Accept = \"text/plain\" }\n";
        let v = parse(text).unwrap();
        std::env::set_var("BACKSTOP_TEST_TOKEN_SET", "t0ken");
        let resolved = v.resolve_headers(Path::new("backstop.toml")).unwrap();
        assert_eq!(resolved.secrets, ["t0ken"]);
        let missing = text.replace("BACKSTOP_TEST_TOKEN_SET", "BACKSTOP_TEST_SURELY_UNSET");
        let err = parse(&missing)
            .unwrap()
            .resolve_headers(Path::new("backstop.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("backstop.toml:1:") && err.contains("BACKSTOP_TEST_SURELY_UNSET"),
            "{err}"
        );
    }
}
