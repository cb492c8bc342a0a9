//! `[[triggers]]` and `[decide]` in backstop.toml, checked when the config
//! is loaded: a trigger that could not be sampled or could never decide is
//! a config error naming the trigger, not a silent pass at 3 a.m.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

/// The rollback methods of the runbooks, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Method {
    /// Flags off: the release's code paths go dark.
    A,
    /// A, then the database restored from the migration's backup.
    B,
    /// Full rollback with forensics and user notification.
    C,
}

impl Method {
    /// The method to escalate to.
    pub fn next(self) -> Method {
        match self {
            Method::A => Method::B,
            Method::B | Method::C => Method::C,
        }
    }

    pub fn parse(text: &str) -> Option<Method> {
        match text.trim().to_ascii_uppercase().as_str() {
            "A" => Some(Method::A),
            "B" => Some(Method::B),
            "C" => Some(Method::C),
            _ => None,
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Method::A => "A",
            Method::B => "B",
            Method::C => "C",
        })
    }
}

/// What a breach calls for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Method(Method),
    /// One flag off (a narrow Method A: "AI cost > $10/hour → disable the
    /// pgvector flag").
    KillFlag(String),
}

impl Action {
    pub fn method(&self) -> Method {
        match self {
            Action::Method(m) => *m,
            Action::KillFlag(_) => Method::A,
        }
    }

    pub fn flag(&self) -> Option<&str> {
        match self {
            Action::KillFlag(f) => Some(f),
            Action::Method(_) => None,
        }
    }
}

/// Where a trigger's numbers come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Source {
    /// An instant query on Prometheus' HTTP API (`[decide] prometheus_url`).
    Prometheus { query: String },
    /// A query on the database that returns one number.
    Sql { sql: String },
    /// A number at a JSON path (`a.b.0.c`) in an HTTP response.
    Http { url: String, json_path: crate::kit::jsonpath::JsonPath },
    /// A shell command that prints one number.
    Command { command: String },
}

impl Source {
    pub fn kind(&self) -> &'static str {
        match self {
            Source::Prometheus { .. } => "prometheus",
            Source::Sql { .. } => "sql",
            Source::Http { .. } => "http",
            Source::Command { .. } => "command",
        }
    }

    /// What is sampled, as shown in evidence.
    pub fn text(&self) -> String {
        match self {
            Source::Prometheus { query } => query.clone(),
            Source::Sql { sql } => sql.clone(),
            Source::Http { url, json_path } => format!("{url} → {json_path}"),
            Source::Command { command } => command.clone(),
        }
    }
}

/// What a missing sample counts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnMissing {
    /// No decision on it: the verdict holds for a person.
    #[default]
    Hold,
    /// A breach (for sources whose silence means trouble).
    Breach,
    /// Dropped, as if never sampled.
    Ignore,
}

/// One trigger, checked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trigger {
    pub name: String,
    pub source: Source,
    pub above: Option<f64>,
    pub below: Option<f64>,
    /// How long consecutive samples must cross.
    #[serde(rename = "for")]
    pub for_: Option<Duration>,
    /// Or: k of the last n samples.
    pub k_of_n: Option<(u32, u32)>,
    pub interval: Duration,
    /// Fewer samples with data than this: inconclusive.
    pub min_samples: usize,
    /// The companion trigger that measures traffic (e.g. requests per
    /// second), and the least traffic below which this trigger's verdict is
    /// inconclusive: an error rate over 3 requests proves nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traffic: Option<(String, f64)>,
    pub on_missing: OnMissing,
    /// Sampled and shown, decides nothing.
    pub dry_run: bool,
    /// This many last samples, each better than the one before, hold a
    /// breach (0 turns the guard off).
    pub declining: usize,
    pub action: Action,
    /// How long one sample may take.
    pub timeout: Duration,
}

impl Trigger {
    /// The rule in words: `above 0.05 for 5m`.
    pub fn rule(&self) -> String {
        let mut out = match (self.above, self.below) {
            (Some(a), _) => format!("above {a}"),
            (_, Some(b)) => format!("below {b}"),
            _ => String::new(),
        };
        if let Some((k, n)) = self.k_of_n {
            out.push_str(&format!(" in {k} of the last {n} samples"));
        } else if let Some(d) = self.for_ {
            out.push_str(&format!(" for {}", crate::kit::duration::human(d)));
        }
        out
    }
}

/// `[decide]`: the decision tree's settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecideSection {
    /// After a method, how long the trigger has to clear before the next
    /// method is called for.
    #[serde(deserialize_with = "crate::kit::duration::de")]
    pub escalate_after: Duration,
    /// Prometheus' base URL for `source = "prometheus"`.
    pub prometheus_url: Option<String>,
    /// How long every trigger must be clear before `watch` closes the
    /// incident (and Slack hears it is resolved).
    #[serde(deserialize_with = "crate::kit::duration::de")]
    pub close_after: Duration,
}

impl Default for DecideSection {
    fn default() -> Self {
        DecideSection {
            escalate_after: Duration::from_secs(120),
            prometheus_url: None,
            close_after: Duration::from_secs(300),
        }
    }
}

/// `[[triggers]]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTrigger {
    name: String,
    source: String,
    query: Option<String>,
    sql: Option<String>,
    url: Option<String>,
    json_path: Option<String>,
    command: Option<String>,
    above: Option<f64>,
    below: Option<f64>,
    #[serde(rename = "for")]
    for_: Option<String>,
    k_of_n: Option<String>,
    interval: Option<String>,
    #[serde(default)]
    min_samples: usize,
    traffic: Option<String>,
    min_traffic: Option<f64>,
    #[serde(default)]
    on_missing: OnMissing,
    #[serde(default)]
    dry_run: bool,
    declining: Option<usize>,
    method: Option<String>,
    kill_flag: Option<String>,
    timeout: Option<String>,
}

/// `"4/5"` → (4, 5).
pub fn parse_k_of_n(text: &str) -> Result<(u32, u32), String> {
    let bad = || format!("k_of_n = {text:?}: write it like \"4/5\" (4 of the last 5 samples)");
    let (k, n) = text.split_once('/').ok_or_else(bad)?;
    let (k, n): (u32, u32) =
        (k.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
    if k == 0 || n == 0 || k > n {
        return Err(bad());
    }
    Ok((k, n))
}

fn parse_duration(name: &str, key: &str, text: &str) -> Result<Duration, String> {
    let d =
        crate::kit::duration::parse(text).map_err(|e| format!("trigger {name:?}: {key}: {e}"))?;
    if d.is_zero() && key != "for" {
        return Err(format!("trigger {name:?}: {key} must be more than zero"));
    }
    Ok(d)
}

impl RawTrigger {
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn check(self) -> Result<Trigger, String> {
        let name = self.name.trim().to_string();
        if name.is_empty() {
            return Err("a trigger needs a name".into());
        }
        let need = |field: Option<String>, key: &str| {
            field.filter(|v| !v.trim().is_empty()).ok_or_else(|| {
                format!("trigger {name:?}: source = {:?} needs {key} = \"...\"", self.source)
            })
        };
        let source = match self.source.as_str() {
            "prometheus" => Source::Prometheus { query: need(self.query.clone(), "query")? },
            "sql" => Source::Sql { sql: need(self.sql.clone().or(self.query.clone()), "sql")? },
            "http" => {
                let url = need(self.url.clone(), "url")?;
                url.parse::<ureq::http::Uri>()
                    .ok()
                    .filter(|u| matches!(u.scheme_str(), Some("http" | "https")))
                    .ok_or_else(|| {
                        format!("trigger {name:?}: url {url:?} is not an http(s) URL")
                    })?;
                let path = need(self.json_path.clone(), "json_path")?;
                let json_path = crate::kit::jsonpath::JsonPath::parse(&path)
                    .map_err(|e| format!("trigger {name:?}: {e}"))?;
                Source::Http { url, json_path }
            }
            "command" => Source::Command { command: need(self.command.clone(), "command")? },
            other => {
                return Err(format!(
                "trigger {name:?}: unknown source {other:?}; use prometheus, sql, http or command"
            ))
            }
        };
        let (above, below) = match (self.above, self.below) {
            (Some(_), Some(_)) => {
                return Err(format!("trigger {name:?}: give above or below, not both"))
            }
            (None, None) => return Err(format!("trigger {name:?}: needs above = N or below = N")),
            (a, b) if a.is_some_and(|v| !v.is_finite()) || b.is_some_and(|v| !v.is_finite()) => {
                return Err(format!("trigger {name:?}: the threshold must be a finite number"))
            }
            ab => ab,
        };
        let for_ = self.for_.as_deref().map(|t| parse_duration(&name, "for", t)).transpose()?;
        let k_of_n = self
            .k_of_n
            .as_deref()
            .map(|t| parse_k_of_n(t).map_err(|e| format!("trigger {name:?}: {e}")))
            .transpose()?;
        if for_.is_some() && k_of_n.is_some() {
            return Err(format!("trigger {name:?}: give for or k_of_n, not both"));
        }
        let interval =
            parse_duration(&name, "interval", self.interval.as_deref().unwrap_or("30s"))?;
        let timeout = parse_duration(&name, "timeout", self.timeout.as_deref().unwrap_or("10s"))?;
        let action = match (self.method.as_deref(), self.kill_flag) {
            (Some(_), Some(_)) => {
                return Err(format!("trigger {name:?}: give method or kill_flag, not both"))
            }
            (Some(m), None) => Action::Method(Method::parse(m).ok_or_else(|| {
                format!("trigger {name:?}: method = {m:?}; use \"A\", \"B\" or \"C\"")
            })?),
            (None, Some(f)) => Action::KillFlag(f),
            (None, None) => {
                return Err(format!(
                    "trigger {name:?}: needs method = \"A\"|\"B\"|\"C\" or kill_flag = \"KEY\""
                ))
            }
        };
        let traffic = match (self.traffic, self.min_traffic) {
            (Some(t), Some(n)) if n.is_finite() && n >= 0.0 && t.trim() != name => Some((t, n)),
            (Some(t), Some(_)) if t.trim() == name => {
                return Err(format!("trigger {name:?}: traffic must name another trigger"))
            }
            (None, None) => None,
            _ => {
                return Err(format!(
                    "trigger {name:?}: give traffic = \"<trigger that counts requests>\" and min_traffic = N together (N a number from 0)"
                ))
            }
        };
        Ok(Trigger {
            name,
            source,
            above,
            below,
            for_,
            k_of_n,
            interval,
            min_samples: self.min_samples,
            traffic,
            on_missing: self.on_missing,
            dry_run: self.dry_run,
            declining: self.declining.unwrap_or(3),
            action,
            timeout,
        })
    }
}

/// A sample's value as recorded: a number, `null`, or the strings
/// Prometheus writes (`"NaN"`, `"+Inf"`, `"-Inf"`, `"0.05"`).
pub(crate) fn lenient_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    match v {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::Number(n) => Ok(n.as_f64()),
        serde_json::Value::String(s) => parse_number(&s)
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom(format!("{s:?} is not a number"))),
        other => Err(serde::de::Error::custom(format!("{other} is not a number"))),
    }
}

/// A number as sources print it, with Prometheus' `NaN`, `+Inf`, `-Inf`.
pub fn parse_number(text: &str) -> Option<f64> {
    match text.trim() {
        "NaN" | "nan" => Some(f64::NAN),
        "+Inf" | "Inf" | "inf" | "+inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        t => t.parse().ok(),
    }
}
