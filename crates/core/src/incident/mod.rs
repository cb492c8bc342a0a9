//! Incidents, each one record (`backstop.incidents`): opened by the first
//! rollback decision or method, closed when its triggers have been clear
//! for a while or a person closes it. Its texts (the incident report, the
//! Slack messages as it goes, the status-page update, the users' e-mail)
//! are minijinja templates filled from that incident's own events only,
//! and say only what was done: a step that failed or never ran is never
//! told as done. Users can override any template with a file of the same
//! name in `[notify] templates`.

mod mail;
mod notify;
mod slack;
mod story;
mod texts;

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use mail::{message, send_mail};
pub use notify::{Notifier, NotifyError, Stage};
pub use slack::{post_slack, slack_payload, split_sections, SECTION_LIMIT};
pub use story::{ExposedTable, Exposure, MethodRun, Restored};
pub use texts::{render, TEMPLATES};

use crate::schema::{events, incidents};

/// `[notify]` in backstop.toml.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifySection {
    /// A Slack incoming-webhook URL (`${ENV}` is filled in when posting);
    /// the incident's messages go there as it goes.
    pub slack_webhook: Option<String>,
    /// A folder whose templates (`report.md`, `slack_*.md`,
    /// `status_page.txt`, `user_email.txt`) replace the built-in ones.
    pub templates: Option<PathBuf>,
    /// The product's name in the texts.
    pub product: Option<String>,
    /// The team's addresses: reports meant for the team (a drill's) are
    /// mailed there. Never users: their e-mail is written, not sent.
    pub team_email: Vec<String>,
    /// The `From:` of those e-mails (default: what the mailer puts).
    pub email_from: Option<String>,
    /// The mailer, given the message on its standard input with its
    /// recipients in the headers (`sendmail -t` and its kin: msmtp, ssmtp).
    pub sendmail: Vec<String>,
}

impl Default for NotifySection {
    fn default() -> Self {
        NotifySection {
            slack_webhook: None,
            templates: None,
            product: None,
            team_email: Vec::new(),
            email_from: None,
            sendmail: vec!["sendmail".into(), "-t".into(), "-i".into()],
        }
    }
}

/// Why an incident text could not be made or sent.
#[derive(Debug, thiserror::Error)]
pub enum IncidentError {
    #[error("template {name}: {message}")]
    Template { name: String, message: String },
    #[error("reading the incident from backstop")]
    Db(#[from] postgres::Error),
    #[error("posting to Slack failed after {attempts} attempt(s): {last}")]
    Slack { attempts: u32, last: String },
    #[error("there is no incident {0}; `backstop respond incident list` shows them")]
    NoSuchIncident(i64),
}

impl IncidentError {
    /// 2 for a template the user wrote wrong or an incident that is not
    /// there, 3 for the database or Slack.
    pub fn exit_code(&self) -> u8 {
        match self {
            IncidentError::Template { .. } | IncidentError::NoSuchIncident(_) => 2,
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

/// What kind of harm the incident did, which decides what users are told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Users' data may have been visible to other users.
    Exposure,
    /// Something did not work.
    Outage,
}

/// What the texts are made from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Incident {
    /// The record's id; `None` where nothing was ever recorded.
    pub id: Option<i64>,
    pub product: String,
    pub database: String,
    pub opened_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    /// Open until its triggers clear for a while or a person closes it.
    pub open: bool,
    pub closed_by: Option<String>,
    pub close_note: Option<String>,
    /// How long it has lasted (to its close, or to now), for people.
    pub lasted: String,
    pub kind: Kind,
    /// What opened it, in words (internal).
    pub opened_by: String,
    /// The decision that called for a rollback, in words, if one did.
    pub trigger: Option<String>,
    /// The values that decision rested on.
    pub evidence: Vec<String>,
    /// The latest decision among its events (`ok`, `hold`, `rollback`):
    /// `ok` when every trigger was within its threshold. `None` when watch
    /// decided nothing while it was open.
    pub latest_decision: Option<String>,
    pub methods: Vec<MethodRun>,
    /// More than one method: the first did not settle it.
    pub escalated: bool,
    pub exposure: Option<Exposure>,
    pub restored: Option<Restored>,
    /// The flags turned off (internal names; never on the status page).
    pub flags_off: Vec<String>,
    pub timeline: Vec<Entry>,
}

fn summary(e: &events::Logged) -> String {
    let d = &e.details;
    let text = |k: &str| d[k].as_str().unwrap_or("").to_string();
    match (e.kind.as_str(), e.outcome.as_str()) {
        ("decide", o) => format!(
            "decision: {o}{}: {}",
            d["method"].as_str().map(|m| format!(", method {m}")).unwrap_or_default(),
            text("reason")
        ),
        ("method", "started") => format!("method {} started: {}", text("method"), text("reason")),
        ("method", o) => format!("method {} {o}", text("method")),
        ("flag", _) => format!("flag {} {} → {}", text("key"), text("from"), text("to")),
        ("restore", o) => format!("restore {o}: backup {}", text("backup_id")),
        ("incident", o) => format!("incident {o}: {}", text("note")),
        (kind, o) => format!("{kind} {o}"),
    }
}

impl Incident {
    fn empty(product: &str, database: &str) -> Incident {
        Incident {
            id: None,
            product: product.to_string(),
            database: database.to_string(),
            opened_at: None,
            closed_at: None,
            open: false,
            closed_by: None,
            close_note: None,
            lasted: String::new(),
            kind: Kind::Outage,
            opened_by: String::new(),
            trigger: None,
            evidence: Vec::new(),
            latest_decision: None,
            methods: Vec::new(),
            escalated: false,
            exposure: None,
            restored: None,
            flags_off: Vec::new(),
            timeline: Vec::new(),
        }
    }

    /// Whether every method carried out finished.
    pub fn methods_ok(&self) -> bool {
        !self.methods.is_empty() && self.methods.iter().all(|m| m.outcome == "ok")
    }

    /// Whether the methods are done and the triggers have been found clear
    /// since: what "Monitoring" may be said on. A method that finished
    /// while errors still breach has not settled the incident.
    pub fn settled(&self) -> bool {
        self.methods_ok() && self.latest_decision.as_deref() == Some("ok")
    }

    /// The latest method, if any.
    pub fn last_method(&self) -> Option<&MethodRun> {
        self.methods.last()
    }
}

/// The first rollback decision's reason and the values it rested on.
fn decision(d: &serde_json::Value) -> (Option<String>, Vec<String>) {
    let mut evidence = Vec::new();
    for e in d["evidence"].as_array().into_iter().flatten() {
        if e["state"] != "breach" && e["state"] != "escalate" {
            continue;
        }
        let values: Vec<String> = e["samples"]
            .as_array()
            .map(|s| s.iter().map(|s| s["value"].to_string()).collect())
            .unwrap_or_default();
        evidence.push(format!(
            "{} ({} {}): {}",
            e["trigger"].as_str().unwrap_or("?"),
            e["source"].as_str().unwrap_or("?"),
            e["rule"].as_str().unwrap_or(""),
            values.join(", ")
        ));
    }
    (d["reason"].as_str().map(str::to_string), evidence)
}

/// Each method start's outcome event, by index: an outcome belongs to the
/// latest start of the same method that has none yet (a start without one
/// was interrupted).
fn outcomes(rows: &[events::Logged]) -> std::collections::BTreeMap<usize, usize> {
    let mut open: Vec<(usize, String)> = Vec::new();
    let mut out = std::collections::BTreeMap::new();
    for (i, e) in rows.iter().enumerate().filter(|(_, e)| e.kind == "method") {
        let method = e.details["method"].as_str().unwrap_or("?").to_string();
        if e.outcome == "started" {
            open.push((i, method));
        } else if let Some(at) = open.iter().rposition(|(_, m)| *m == method) {
            out.insert(open.remove(at).0, i);
        }
    }
    out
}

/// Incident `id` (default: the latest) read from its own events.
pub fn gather(
    client: &mut postgres::Client,
    id: Option<i64>,
    product: &str,
    database: &str,
) -> Result<Incident, IncidentError> {
    let mut out = Incident::empty(product, database);
    let Some(record) = incidents::get(client, id)? else {
        return match id {
            Some(id) => Err(IncidentError::NoSuchIncident(id)),
            None => Ok(out),
        };
    };
    let rows = events::of_incident(client, record.id)?;
    out.id = Some(record.id);
    out.opened_at = Some(record.opened_at);
    out.closed_at = record.closed_at;
    out.open = record.closed_at.is_none();
    out.closed_by = record.closed_by.clone();
    out.close_note = record.close_note.clone();
    out.opened_by = record.opened_by.clone();
    let end = record.closed_at.unwrap_or_else(Utc::now);
    out.lasted = crate::kit::duration::age(end - record.opened_at);
    let ends = outcomes(&rows);
    for (i, e) in rows.iter().enumerate() {
        match (e.kind.as_str(), e.outcome.as_str()) {
            ("decide", verdict) => {
                if verdict == "rollback" && out.trigger.is_none() {
                    (out.trigger, out.evidence) = decision(&e.details);
                }
                out.latest_decision = Some(verdict.to_string());
            }
            ("method", "started") => {
                let end = ends.get(&i).map(|&j| &rows[j]);
                let run = story::method_run(e, end);
                if let Some(end) = end.filter(|o| o.outcome == "ok") {
                    if run.method == "C" {
                        out.exposure = story::exposure(end);
                    }
                    if run.method == "B" {
                        out.restored = story::restored(end);
                    }
                }
                out.methods.push(run);
            }
            ("flag", _) if e.details["to"] == "DISABLED" => {
                if let Some(k) = e.details["key"].as_str() {
                    if !out.flags_off.iter().any(|f| f == k) {
                        out.flags_off.push(k.to_string());
                    }
                }
            }
            _ => {}
        }
        if e.kind != "sample" && !(e.kind == "decide" && e.outcome == "ok") {
            out.timeline.push(Entry {
                at: e.at,
                kind: e.kind.clone(),
                outcome: e.outcome.clone(),
                actor: e.actor.clone(),
                summary: summary(e),
            });
        }
    }
    out.escalated = out.methods.len() > 1;
    if out.exposure.as_ref().is_some_and(|x| x.open && x.rows > 0) {
        out.kind = Kind::Exposure;
    }
    Ok(out)
}

/// Closes incident `id` (default: the open one) by a person, with
/// `note`; its closing is audited. `None` when none was open.
pub fn close(
    client: &mut postgres::Client,
    id: Option<i64>,
    by: &str,
    note: &str,
) -> Result<Option<i64>, IncidentError> {
    let target = match id {
        Some(id) => incidents::get(client, Some(id))?.ok_or(IncidentError::NoSuchIncident(id))?,
        None => match incidents::current(client)? {
            Some(open) => open,
            None => return Ok(None),
        },
    };
    if target.closed_at.is_some() {
        return Ok(None);
    }
    // The event first, while the incident is open, so it belongs to it.
    let event = events::Event {
        kind: "incident",
        outcome: "closed",
        versions: Vec::new(),
        details: serde_json::json!({ "note": note, "incident": target.id }),
    };
    let mut tx = client.transaction()?;
    events::record_as(&mut tx, &event, by)?;
    incidents::close(&mut tx, target.id, by, note)?;
    tx.commit()?;
    Ok(Some(target.id))
}

/// The incidents, newest first.
pub fn list(client: &mut postgres::Client) -> Result<Vec<incidents::Record>, IncidentError> {
    Ok(incidents::all(client)?)
}
