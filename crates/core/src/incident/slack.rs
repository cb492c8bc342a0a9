//! Posting to a Slack incoming webhook: Block Kit sections under Slack's
//! 3,000-character limit, retried on 429 (after its Retry-After) and 5xx,
//! the webhook's URL never shown.

use std::time::Duration;

use serde_json::{json, Value};

use super::IncidentError;

/// Slack's limit on a section's text.
pub const SECTION_LIMIT: usize = 3000;

/// `text` cut into pieces of at most `limit` bytes, at line ends where it can.
pub fn split_sections(text: &str, limit: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let mut line = line.to_string();
        while line.len() > limit {
            let mut cut = limit;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            out.push(line[..cut].to_string());
            line = line[cut..].to_string();
        }
        if current.len() + line.len() + 1 > limit && !current.is_empty() {
            out.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push('\n');
        }
        current.push_str(&line);
    }
    if !current.trim().is_empty() {
        out.push(current);
    }
    out
}

/// The Block Kit message: a header and the text in sections.
pub fn slack_payload(title: &str, text: &str) -> Value {
    let mut blocks = vec![
        json!({ "type": "header", "text": { "type": "plain_text", "text": title.chars().take(150).collect::<String>() } }),
    ];
    for s in split_sections(text, SECTION_LIMIT) {
        blocks.push(json!({ "type": "section", "text": { "type": "mrkdwn", "text": s } }));
    }
    json!({ "text": title, "blocks": blocks })
}

/// Posts to a Slack webhook; retries on 429 (after its Retry-After) and
/// 5xx with backoff, up to 4 attempts. The URL is never shown.
pub fn post_slack(webhook: &str, title: &str, text: &str) -> Result<u32, IncidentError> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(false)
        .build()
        .into();
    let body = slack_payload(title, text).to_string();
    let mut last = String::new();
    let mut wait = Duration::from_millis(500);
    for attempt in 1..=4u32 {
        match agent.post(webhook).header("Content-Type", "application/json").send(body.as_str()) {
            Ok(r) if r.status().is_success() => return Ok(attempt),
            Ok(r) if r.status().as_u16() == 429 || r.status().is_server_error() => {
                last = format!("Slack answered {}", r.status().as_u16());
                if let Some(after) = r
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                {
                    wait = Duration::from_secs(after.min(30));
                }
            }
            Ok(r) => {
                return Err(IncidentError::Slack {
                    attempts: attempt,
                    last: format!("Slack answered {} (not retried)", r.status().as_u16()),
                })
            }
            // Transport errors can carry the URL, and with it the webhook's secret.
            Err(_) => last = "the webhook could not be reached".into(),
        }
        if attempt < 4 {
            std::thread::sleep(wait);
            wait = (wait * 2).min(Duration::from_secs(30));
        }
    }
    Err(IncidentError::Slack { attempts: 4, last })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_stay_under_the_limit_and_keep_every_character() {
        let text: String =
            (0..400).map(|i| format!("line {i}: {}\n", "é".repeat(i % 40))).collect();
        let long = format!("{text}{}", "x".repeat(7000));
        let parts = split_sections(&long, SECTION_LIMIT);
        assert!(parts.len() > 3);
        assert!(parts.iter().all(|p| p.len() <= SECTION_LIMIT));
        let joined: String = parts.concat().chars().filter(|c| *c != '\n').collect();
        let original: String = long.chars().filter(|c| *c != '\n').collect();
        assert_eq!(joined, original);
    }
}
