//! The incident texts, written from what really happened: the timeline in
//! `backstop.events` (the decision and its evidence, each step of the
//! method with its time, the restore, the flags turned off) rendered with
//! minijinja templates: the incident report, the Slack alert and
//! resolution, the status-page update and the users' e-mail. Users can
//! override any template with a file of the same name in
//! `[notify] templates`. And the Slack webhook itself: Block Kit sections
//! under Slack's 3,000-character limit, retried on 429 and 5xx.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use minijinja::{context, Environment};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// `[notify]` in backstop.toml.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifySection {
    /// A Slack incoming-webhook URL (`${ENV}` is filled in when posting);
    /// alerts go there when a method starts and ends.
    pub slack_webhook: Option<String>,
    /// A folder whose `report.md`, `slack_alert.md`, `slack_resolved.md`,
    /// `status_page.txt` or `user_email.txt` replace the built-in ones.
    pub templates: Option<PathBuf>,
    /// The product's name in the texts.
    pub product: Option<String>,
}

/// Why an incident text could not be made or sent.
#[derive(Debug, thiserror::Error)]
pub enum IncidentError {
    #[error("template {name}: {message}")]
    Template { name: String, message: String },
    #[error("reading backstop.events")]
    Db(#[from] postgres::Error),
    #[error("posting to Slack failed after {attempts} attempt(s): {last}")]
    Slack { attempts: u32, last: String },
}

impl IncidentError {
    /// 2 for a template the user wrote wrong, 3 for the database or Slack.
    pub fn exit_code(&self) -> u8 {
        match self {
            IncidentError::Template { .. } => 2,
            IncidentError::Db(_) | IncidentError::Slack { .. } => 3,
        }
    }
}

/// One entry of the timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    pub at: DateTime<Utc>,
    pub kind: String,
    pub outcome: String,
    pub actor: String,
    /// One line saying what happened.
    pub summary: String,
}

/// What the texts are made from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Incident {
    pub product: String,
    pub database: String,
    pub started: Option<DateTime<Utc>>,
    pub ended: Option<DateTime<Utc>>,
    pub minutes: i64,
    /// The decision that started it, in words.
    pub trigger: Option<String>,
    /// The values the decision rested on, oldest first.
    pub evidence: Vec<String>,
    /// The methods carried out (`A`, `B`), with their outcome.
    pub methods: Vec<(String, String)>,
    pub flags_off: Vec<String>,
    /// What the restore said, when there was one.
    pub restore: Option<String>,
    /// Whether every method finished.
    pub resolved: bool,
    pub timeline: Vec<Entry>,
}

fn summary(kind: &str, outcome: &str, d: &Value) -> String {
    match kind {
        "decide" => format!(
            "decision: {outcome}{}: {}",
            d["method"].as_str().map(|m| format!(", method {m}")).unwrap_or_default(),
            d["reason"].as_str().unwrap_or("")
        ),
        "method" => {
            let m = d["method"].as_str().unwrap_or("?");
            match outcome {
                "started" => format!("method {m} started: {}", d["reason"].as_str().unwrap_or("")),
                _ => {
                    let steps: Vec<String> = d["steps"]
                        .as_array()
                        .map(|s| {
                            s.iter()
                                .map(|s| {
                                    format!(
                                        "{} {} ({} ms)",
                                        if s["ok"] == true { "✓" } else { "✗" },
                                        s["name"].as_str().unwrap_or(""),
                                        s["took_ms"]
                                    )
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    format!("method {m} {outcome}: {}", steps.join(", "))
                }
            }
        }
        "flag" => format!(
            "flag {} {} → {}: {}",
            d["key"].as_str().unwrap_or("?"),
            d["from"].as_str().unwrap_or("?"),
            d["to"].as_str().unwrap_or("?"),
            d["reason"].as_str().unwrap_or("")
        ),
        "restore" => format!(
            "restore {outcome}: backup {} ({} table(s), {} row(s) checked)",
            d["backup_id"].as_str().unwrap_or("?"),
            d["tables"],
            d["rows"]
        ),
        other => format!("{other} {outcome}"),
    }
}

/// Reads the timeline since `since` (default: the first rollback decision
/// or method start of the last 24 hours) and sums it up.
pub fn gather(
    client: &mut postgres::Client,
    since: Option<DateTime<Utc>>,
    product: &str,
    database: &str,
) -> Result<Incident, IncidentError> {
    let exists = crate::schema::events::logged(client)?;
    let mut incident = Incident {
        product: product.to_string(),
        database: database.to_string(),
        started: None,
        ended: None,
        minutes: 0,
        trigger: None,
        evidence: Vec::new(),
        methods: Vec::new(),
        flags_off: Vec::new(),
        restore: None,
        resolved: false,
        timeline: Vec::new(),
    };
    if !exists {
        return Ok(incident);
    }
    let since: DateTime<Utc> = match since {
        Some(s) => s,
        None => crate::schema::events::first_rollback_since(
            client,
            Utc::now() - chrono::Duration::hours(24),
        )?,
    };
    let rows = crate::schema::events::since(
        client,
        since,
        &["decide", "method", "flag", "restore", "verify", "freeze"],
    )?;
    let mut open = 0i32;
    for r in rows {
        let (at, kind, outcome, actor, d) = (r.at, r.kind, r.outcome, r.actor, r.details);
        if kind == "decide" && outcome == "ok" {
            continue;
        }
        if outcome == "started" && kind != "method" {
            continue;
        }
        incident.started.get_or_insert(at);
        incident.ended = Some(at);
        match (kind.as_str(), outcome.as_str()) {
            ("decide", "rollback") if incident.trigger.is_none() => {
                incident.trigger = d["reason"].as_str().map(str::to_string);
                if let Some(ev) = d["evidence"].as_array() {
                    for e in
                        ev.iter().filter(|e| e["state"] == "breach" || e["state"] == "escalate")
                    {
                        let values: Vec<String> = e["samples"]
                            .as_array()
                            .map(|s| s.iter().map(|s| s["value"].to_string()).collect())
                            .unwrap_or_default();
                        incident.evidence.push(format!(
                            "{} ({} {}): {}",
                            e["trigger"].as_str().unwrap_or("?"),
                            e["source"].as_str().unwrap_or("?"),
                            e["rule"].as_str().unwrap_or(""),
                            values.join(", ")
                        ));
                    }
                }
            }
            ("method", "started") => open += 1,
            ("method", o) => {
                open -= 1;
                incident
                    .methods
                    .push((d["method"].as_str().unwrap_or("?").to_string(), o.to_string()));
            }
            ("flag", _) if d["to"] == "DISABLED" => {
                if let Some(k) = d["key"].as_str() {
                    if !incident.flags_off.iter().any(|f| f == k) {
                        incident.flags_off.push(k.to_string());
                    }
                }
            }
            ("restore", "ok") => incident.restore = Some(summary(&kind, &outcome, &d)),
            _ => {}
        }
        incident.timeline.push(Entry {
            at,
            summary: summary(&kind, &outcome, &d),
            kind,
            outcome,
            actor,
        });
    }
    incident.resolved = open <= 0
        && !incident.methods.is_empty()
        && incident.methods.iter().all(|(_, o)| o == "ok");
    if let (Some(a), Some(b)) = (incident.started, incident.ended) {
        incident.minutes = (b - a).num_minutes();
    }
    Ok(incident)
}

/// The built-in templates, by name.
pub const TEMPLATES: [(&str, &str); 5] = [
    ("report.md", include_str!("incident/report.md")),
    ("slack_alert.md", include_str!("incident/slack_alert.md")),
    ("slack_resolved.md", include_str!("incident/slack_resolved.md")),
    ("status_page.txt", include_str!("incident/status_page.txt")),
    ("user_email.txt", include_str!("incident/user_email.txt")),
];

/// Renders template `name` for `incident`, the user's version from `dir`
/// when it has one.
pub fn render(
    name: &str,
    incident: &Incident,
    dir: Option<&Path>,
) -> Result<String, IncidentError> {
    let err = |e: minijinja::Error| IncidentError::Template {
        name: name.to_string(),
        message: e.to_string(),
    };
    let source = match dir.map(|d| d.join(name)).filter(|p| p.is_file()) {
        Some(path) => std::fs::read_to_string(&path).map_err(|e| IncidentError::Template {
            name: path.display().to_string(),
            message: e.to_string(),
        })?,
        None => TEMPLATES.iter().find(|(n, _)| *n == name).map(|(_, t)| t.to_string()).ok_or_else(
            || IncidentError::Template { name: name.into(), message: "no such template".into() },
        )?,
    };
    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.add_template_owned(name.to_string(), source).map_err(err)?;
    let fmt = |t: &Option<DateTime<Utc>>| {
        t.map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string()).unwrap_or_default()
    };
    let timeline: Vec<Value> = incident
        .timeline
        .iter()
        .map(|e| json!({ "at": e.at.format("%H:%M:%S").to_string(), "kind": e.kind, "summary": e.summary, "actor": e.actor }))
        .collect();
    env.get_template(name)
        .map_err(err)?
        .render(context! {
            i => incident,
            started => fmt(&incident.started),
            ended => fmt(&incident.ended),
            timeline => timeline,
        })
        .map_err(err)
}

/// Where a method's alerts go and what the texts call things: the
/// `[notify]` section with its webhook resolved (or why it could not be),
/// and the database's and product's names.
#[derive(Debug, Clone)]
pub struct Notifier {
    url: String,
    templates: Option<PathBuf>,
    /// The webhook, `None` when none is set, or why it could not be read.
    webhook: Result<Option<String>, String>,
    pub product: String,
    pub database: String,
}

impl Notifier {
    /// A notifier for the database at `url`.
    pub fn new(url: &str, notify: &NotifySection, webhook: Result<Option<String>, String>) -> Self {
        let database = url
            .parse::<postgres::Config>()
            .ok()
            .and_then(|c| c.get_dbname().map(str::to_string))
            .unwrap_or_else(|| "database".into());
        Notifier {
            url: url.to_string(),
            templates: notify.templates.clone(),
            webhook,
            product: notify.product.clone().unwrap_or_else(|| database.clone()),
            database,
        }
    }

    /// The incident since `from` (default: the latest), from the timeline.
    pub fn gather(&self, from: Option<DateTime<Utc>>) -> Result<Incident, NotifyError> {
        let mut client = crate::pg::connect(&self.url, "backstop incident")?;
        Ok(gather(&mut client, from, &self.product, &self.database)?)
    }

    /// Renders template `name` for `incident`, the user's version first.
    pub fn render(&self, name: &str, incident: &Incident) -> Result<String, IncidentError> {
        render(name, incident, self.templates.as_deref())
    }

    /// Posts the Slack alert (`started`) or the resolution. `Ok` when no
    /// webhook is set; a failure to post never stops a method: the caller
    /// says it as a warning.
    pub fn announce(&self, started: bool) -> Result<(), String> {
        let webhook = match &self.webhook {
            Ok(Some(w)) => w,
            Ok(None) => return Ok(()),
            Err(e) => return Err(format!("not posting to Slack: {e}")),
        };
        let posted = self.gather(None).and_then(|i| {
            let (name, title) = if started {
                ("slack_alert.md", format!("Rollback in progress: {}", i.product))
            } else if i.resolved {
                ("slack_resolved.md", format!("Rollback complete: {}", i.product))
            } else {
                ("slack_resolved.md", format!("Rollback stopped: {}", i.product))
            };
            let text = self.render(name, &i)?;
            Ok(post_slack(webhook, &title, &text)?)
        });
        posted.map(|_| ()).map_err(|e| crate::kit::error::chain(&e))
    }

    /// Whether a webhook is configured.
    pub fn posts(&self) -> bool {
        !matches!(self.webhook, Ok(None))
    }
}

/// Why an incident could not be gathered.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error(transparent)]
    Connect(#[from] crate::pg::ConnectError),
    #[error(transparent)]
    Incident(#[from] IncidentError),
}

impl NotifyError {
    /// 2 or 3, as the cause says.
    pub fn exit_code(&self) -> u8 {
        match self {
            NotifyError::Connect(e) => e.exit_code(),
            NotifyError::Incident(e) => e.exit_code(),
        }
    }
}

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
