//! `http`: a request (method, URL, headers with `${ENV}`, body) and what
//! its response must be: a status, a body substring, a value at a JSON
//! path. With `repeat = N` it is sent N times, `expect_status_after = {
//! 10 = 429 }` says from which request on the status changes (a rate
//! limiter), and `max_p95` bounds the 95th percentile latency. Header
//! values are never shown; the suite masks them in every detail.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::Outcome;
use crate::kit::jsonpath::JsonPath;
use crate::verify::config::HttpCheck;
use crate::verify::VerifyError;

/// Bodies larger than this are not read in full.
const BODY_LIMIT: u64 = 1 << 20;

pub(crate) fn run(
    c: &HttpCheck,
    headers: &[(String, String)],
    timeout: Duration,
) -> Result<Outcome, VerifyError> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .max_redirects(0)
        .user_agent("backstop-verify")
        .build()
        .into();
    let method = ureq::http::Method::from_bytes(c.method.to_ascii_uppercase().as_bytes())
        .map_err(|_| VerifyError::Http(format!("{} is not an HTTP method", c.method)))?;
    let mut latencies = Vec::with_capacity(c.repeat as usize);
    let mut statuses: Vec<u16> = Vec::with_capacity(c.repeat as usize);
    let mut first_body = None;
    for i in 1..=c.repeat {
        let mut request = ureq::http::Request::builder().method(method.clone()).uri(&c.url);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let started = Instant::now();
        let sent = match &c.body {
            Some(body) => request.body(body.clone()).map(|r| agent.run(r)),
            None => request.body(()).map(|r| agent.run(r)),
        };
        let mut response = match sent {
            Err(e) => return Ok(Outcome::Fail(format!("cannot build the request: {e}"))),
            Ok(Err(e)) if c.repeat == 1 => {
                return Ok(Outcome::Fail(format!("{} {} failed: {e}", c.method, c.url)))
            }
            Ok(Err(e)) => {
                return Ok(Outcome::Fail(format!(
                    "request {i} of {} to {} {} failed: {e}",
                    c.repeat, c.method, c.url
                )))
            }
            Ok(Ok(r)) => r,
        };
        let status = response.status().as_u16();
        if i == 1 {
            first_body = Some(
                response
                    .body_mut()
                    .with_config()
                    .limit(BODY_LIMIT)
                    .read_to_string()
                    .unwrap_or_default(),
            );
        }
        latencies.push(started.elapsed());
        statuses.push(status);
    }
    Ok(judge(c, &statuses, &latencies, first_body.as_deref().unwrap_or_default()))
}

/// The verdict over every response's status and latency and the first
/// response's body.
fn judge(c: &HttpCheck, statuses: &[u16], latencies: &[Duration], body: &str) -> Outcome {
    let seen = runs(statuses);
    let n = statuses.len();
    for (i, &status) in statuses.iter().enumerate() {
        let want = c.expected_status(i as u32 + 1);
        if status == want {
            continue;
        }
        let limiter = if want == 429 && !statuses.contains(&429) {
            " (the rate limiter never said 429)"
        } else {
            ""
        };
        return Outcome::Fail(if n == 1 {
            format!("{} {} answered {status}, expected {want}", c.method, c.url)
        } else {
            format!(
                "request {} of {n} answered {status}, expected {want}{limiter}; the statuses were {seen}",
                i + 1
            )
        });
    }
    if let Some(needle) = &c.body_contains {
        if !body.contains(needle.as_str()) {
            return Outcome::Fail(format!(
                "the body does not contain {needle:?}; it begins {:?}",
                excerpt(body)
            ));
        }
    }
    let mut found = Vec::new();
    if let Some(path) = &c.json_path {
        let Ok(json) = serde_json::from_str::<Value>(body) else {
            return Outcome::Fail(format!("the body is not JSON; it begins {:?}", excerpt(body)));
        };
        let parsed = JsonPath::parse(path).ok();
        match (parsed.as_ref().and_then(|p| p.find(&json)), &c.json_equals) {
            (None | Some(Value::Null), _) => {
                return Outcome::Fail(format!("the JSON has no value at {path}"));
            }
            (Some(v), Some(want)) => {
                let want = serde_json::to_value(want).unwrap_or(Value::Null);
                if *v != want {
                    return Outcome::Fail(format!("{path} is {v}, expected {want}"));
                }
                found.push(format!("{path} = {v}"));
            }
            (Some(v), None) => found.push(format!("{path} = {v}")),
        }
    }
    let p95 = p95(latencies);
    if let Some(max) = c.max_p95 {
        if p95 > max {
            return Outcome::Fail(format!(
                "p95 latency {} over {n} request(s) is above max_p95 {} ({seen})",
                ms(p95),
                ms(max)
            ));
        }
    }
    let mut detail = if n == 1 {
        format!("{} {} answered {}", c.method, c.url, statuses[0])
    } else {
        format!("{n} requests answered {seen} as expected")
    };
    if c.body_contains.is_some() {
        detail.push_str(", body as expected");
    }
    for f in found {
        detail.push_str(&format!(", {f}"));
    }
    detail.push_str(&format!(", p95 {}", ms(p95)));
    Outcome::Pass(detail)
}

/// `200×10, 429×5`: the statuses in order, runs collapsed.
fn runs(statuses: &[u16]) -> String {
    let mut out: Vec<(u16, usize)> = Vec::new();
    for &s in statuses {
        match out.last_mut() {
            Some((last, n)) if *last == s => *n += 1,
            _ => out.push((s, 1)),
        }
    }
    out.iter()
        .map(|(s, n)| if *n == 1 { s.to_string() } else { format!("{s}×{n}") })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The nearest-rank 95th percentile.
fn p95(latencies: &[Duration]) -> Duration {
    let mut sorted = latencies.to_vec();
    sorted.sort();
    let rank = ((sorted.len() as f64) * 0.95).ceil() as usize;
    sorted.get(rank.saturating_sub(1)).copied().unwrap_or_default()
}

fn ms(d: Duration) -> String {
    crate::kit::duration::human(d)
}

fn excerpt(body: &str) -> String {
    body.chars().take(120).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_collapse_and_p95_is_nearest_rank() {
        assert_eq!(runs(&[200, 200, 429, 429, 429, 200]), "200×2, 429×3, 200");
        let l: Vec<Duration> = (1..=20).map(Duration::from_millis).collect();
        assert_eq!(p95(&l), Duration::from_millis(19));
        assert_eq!(p95(&[]), Duration::ZERO);
    }
}
