//! Taking one sample of a trigger's source: a Prometheus instant query, a
//! read-only SQL query, a number at a JSON path of an HTTP answer, or a
//! command's output. Anything that is not clearly one number (an error, a
//! timeout, an HTML page, several series, an empty result) is a sample
//! without a value, with the reason kept: a verdict never rests on it.

use std::time::Duration;

use serde::Serialize;

use super::{parse_number, Sample, Source, Trigger};
use crate::kit::jsonpath::JsonPath;

/// How much of a raw answer the evidence keeps.
const RAW_LIMIT: usize = 600;

/// One sample with what it came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reading {
    pub sample: Sample,
    /// The source's answer, truncated.
    pub raw: String,
    /// Why there is no value, when there is none.
    pub error: Option<String>,
}

/// Samples triggers; holds the database session the SQL sources share and
/// the HTTP agent (its kept-alive connections) of the Prometheus and http
/// sources.
pub struct Sampler {
    url: String,
    prometheus: Option<String>,
    client: Option<postgres::Client>,
    agent: ureq::Agent,
}

impl Sampler {
    /// `url` is the database's; `prometheus` the base URL of `[decide]`.
    pub fn new(url: &str, prometheus: Option<&str>) -> Sampler {
        Sampler {
            url: url.to_string(),
            prometheus: prometheus.map(|p| p.trim_end_matches('/').to_string()),
            client: None,
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .user_agent("backstop-watch")
                .build()
                .into(),
        }
    }

    pub fn sample(&mut self, t: &Trigger) -> Reading {
        let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
        let got = match &t.source {
            Source::Prometheus { query } => self.prometheus(query, t.timeout),
            Source::Sql { sql } => self.sql(sql, t.timeout),
            Source::Http { url, json_path } => http(&self.agent, url, json_path, t.timeout),
            Source::Command { command } => command_output(command, t.timeout),
        };
        match got {
            Ok((value, raw)) => Reading {
                sample: Sample { t: now, value: value.filter(|v| !v.is_nan()) },
                raw: crate::shell::truncated(&raw, RAW_LIMIT),
                error: match value {
                    None => Some("no data in the answer".into()),
                    Some(v) if v.is_nan() => Some("NaN (no traffic?)".into()),
                    Some(_) => None,
                },
            },
            Err((error, raw)) => Reading {
                sample: Sample { t: now, value: None },
                raw: crate::shell::truncated(&raw, RAW_LIMIT),
                error: Some(error),
            },
        }
    }

    fn prometheus(
        &self,
        query: &str,
        timeout: Duration,
    ) -> Result<(Option<f64>, String), (String, String)> {
        let Some(base) = &self.prometheus else {
            return Err((
                "no Prometheus to ask: set [decide] prometheus_url".into(),
                String::new(),
            ));
        };
        let body =
            get_json(&self.agent, &format!("{base}/api/v1/query"), &[("query", query)], timeout)?;
        let raw = body.to_string();
        if body["status"] != "success" {
            let why = body["error"].as_str().unwrap_or("the query failed");
            return Err((format!("Prometheus: {why}"), raw));
        }
        let result = &body["data"]["result"];
        let value = match body["data"]["resultType"].as_str() {
            Some("scalar") => result.get(1),
            Some("vector") => match result.as_array().map(Vec::len) {
                Some(0) => return Ok((None, raw)),
                Some(1) => result[0]["value"].get(1),
                Some(n) => {
                    return Err((
                        format!(
                            "the query returns {n} series; aggregate it to one (e.g. sum(...))"
                        ),
                        raw,
                    ))
                }
                None => None,
            },
            other => {
                return Err((
                    format!("the query returns a {}, not one number", other.unwrap_or("nothing")),
                    raw,
                ))
            }
        };
        // Prometheus writes sample values as strings ("0.05", "NaN", "+Inf").
        match value.and_then(|v| v.as_str()).and_then(parse_number) {
            Some(v) => Ok((Some(v), raw)),
            None => Err(("the answer holds no sample value".into(), raw)),
        }
    }

    fn sql(
        &mut self,
        sql: &str,
        timeout: Duration,
    ) -> Result<(Option<f64>, String), (String, String)> {
        if self.client.as_ref().is_none_or(|c| c.is_closed()) {
            let c = crate::pg::connect(&self.url, "backstop watch")
                .map_err(|e| (e.to_string(), String::new()))?;
            self.client = Some(c);
        }
        let client = self.client.as_mut().expect("connected above");
        // Read only, and bounded: sampling must never change or hold up the database.
        let script = format!(
            "BEGIN READ ONLY; SET LOCAL statement_timeout = {}; {sql}; ROLLBACK",
            timeout.as_millis().max(1)
        );
        let messages = match client.simple_query(&script) {
            Ok(m) => m,
            Err(e) => {
                let _ = client.batch_execute("ROLLBACK");
                let why =
                    e.as_db_error().map_or_else(|| e.to_string(), |d| d.message().to_string());
                return Err((format!("the query failed: {why}"), String::new()));
            }
        };
        let first = messages.iter().find_map(|m| match m {
            postgres::SimpleQueryMessage::Row(r) => Some(r.get(0).map(str::to_string)),
            _ => None,
        });
        match first {
            None => Ok((None, "(no rows)".into())),
            Some(None) => Ok((None, "NULL".into())),
            Some(Some(text)) => match parse_number(&text) {
                Some(v) => Ok((Some(v), text)),
                None => Err((format!("the query returned {text:?}, not a number"), text)),
            },
        }
    }
}

fn get_json(
    agent: &ureq::Agent,
    url: &str,
    query: &[(&str, &str)],
    timeout: Duration,
) -> Result<serde_json::Value, (String, String)> {
    let mut req = agent.get(url).config().timeout_global(Some(timeout)).build();
    for (k, v) in query {
        req = req.query(*k, *v);
    }
    let mut resp = req.call().map_err(|e| (format!("GET {url}: {e}"), String::new()))?;
    let status = resp.status().as_u16();
    let kind =
        resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let text = resp
        .body_mut()
        .with_config()
        .limit(1 << 20)
        .read_to_string()
        .map_err(|e| (format!("GET {url}: reading the answer: {e}"), String::new()))?;
    if !(200..300).contains(&status) && !text.trim_start().starts_with('{') {
        return Err((format!("GET {url} answered {status}"), text));
    }
    serde_json::from_str(&text).map_err(|_| {
        let what = if kind.contains("html") || text.trim_start().starts_with('<') {
            "an HTML page".to_string()
        } else {
            format!("{} that is not JSON", if kind.is_empty() { "an answer" } else { &kind })
        };
        (format!("GET {url} answered {status} with {what}"), text)
    })
}

fn http(
    agent: &ureq::Agent,
    url: &str,
    path: &JsonPath,
    timeout: Duration,
) -> Result<(Option<f64>, String), (String, String)> {
    let body = get_json(agent, url, &[], timeout)?;
    let raw = body.to_string();
    match path.find(&body) {
        None => Err((format!("the answer has nothing at {path}"), raw)),
        Some(serde_json::Value::Null) => Ok((None, raw)),
        Some(serde_json::Value::Number(n)) => Ok((n.as_f64(), raw)),
        Some(serde_json::Value::String(s)) => match parse_number(s) {
            Some(v) => Ok((Some(v), raw)),
            None => Err((format!("{path} is {s:?}, not a number"), raw)),
        },
        Some(other) => Err((format!("{path} is {other}, not a number"), raw)),
    }
}

/// Runs `sh -c command`; its last line of output is the number.
fn command_output(
    command: &str,
    timeout: Duration,
) -> Result<(Option<f64>, String), (String, String)> {
    let ran = crate::shell::run(command, timeout);
    if let Err(why) = ran.outcome {
        return Err((
            format!("the command failed: {why}"),
            format!("{}{}", ran.stdout, ran.stderr),
        ));
    }
    let last =
        ran.stdout.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_string();
    match parse_number(&last) {
        Some(v) => Ok((Some(v), ran.stdout)),
        None if last.is_empty() => Ok((None, ran.stdout)),
        None => Err((format!("the command printed {last:?}, not a number"), ran.stdout)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trigger_path_in_the_checks_bracket_form_finds_its_value() {
        // Regression: triggers read `a.0.b` only, checks `a[0].b` only; a
        // path written for one gave "no value" forever in the other.
        let v = serde_json::json!({ "data": { "series": [{ "rate": 0.08 }] } });
        for path in ["data.series.0.rate", "$.data.series[0].rate"] {
            let path = JsonPath::parse(path).unwrap();
            assert_eq!(path.find(&v), Some(&serde_json::json!(0.08)), "{path}");
        }
    }

    #[test]
    fn commands_give_their_last_line_or_say_why_not() {
        let t = Duration::from_secs(5);
        assert_eq!(command_output("echo warming up; echo 0.08", t).unwrap().0, Some(0.08));
        assert!(command_output("echo high", t).unwrap_err().0.contains("not a number"));
        assert!(command_output("exit 3", t).unwrap_err().0.contains("failed"));
        let slow = command_output("sleep 5", Duration::from_millis(200)).unwrap_err();
        assert!(slow.0.contains("did not finish"), "{}", slow.0);
    }
}
