//! Where the incident's messages go as it goes, and what the texts call
//! things: the `[notify]` section with its webhook resolved (or why it
//! could not be), and the database's and product's names. Slack follows
//! the incident's state: started (or escalated), each method done or
//! stopped, resolved only when the incident is closed.

use std::path::PathBuf;

use super::{gather, post_slack, render, Incident, IncidentError, NotifySection};

/// A moment of the incident that Slack hears about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// A method began: the incident started, or escalated when a method
    /// came before this one.
    Begun,
    /// A method finished, or stopped at a step.
    Ended,
    /// The incident was closed: its triggers cleared, or a person closed it.
    Resolved,
}

/// Where the messages go, and the names the texts use.
#[derive(Debug, Clone)]
pub struct Notifier {
    url: String,
    templates: Option<PathBuf>,
    /// The webhook, `None` when none is set, or why it could not be read.
    webhook: Result<Option<String>, String>,
    /// The team's addresses and how mail reaches them.
    team_email: Vec<String>,
    email_from: Option<String>,
    sendmail: Vec<String>,
    pub product: String,
    pub database: String,
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
            team_email: notify.team_email.clone(),
            email_from: notify.email_from.clone(),
            sendmail: notify.sendmail.clone(),
            product: notify.product.clone().unwrap_or_else(|| database.clone()),
            database,
        }
    }

    /// Incident `id` (default: the latest), from its own events.
    pub fn gather(&self, id: Option<i64>) -> Result<Incident, NotifyError> {
        let mut client = crate::pg::connect(&self.url, "backstop incident")?;
        Ok(gather(&mut client, id, &self.product, &self.database)?)
    }

    /// Renders template `name` for `incident`, the user's version first.
    pub fn render(&self, name: &str, incident: &Incident) -> Result<String, IncidentError> {
        render(name, incident, self.templates.as_deref())
    }

    /// Posts the message of `stage` for the latest incident. `Ok` when no
    /// webhook is set; a failure to post never stops a method: the caller
    /// says it as a warning.
    pub fn announce(&self, stage: Stage) -> Result<(), String> {
        let webhook = match &self.webhook {
            Ok(Some(w)) => w,
            Ok(None) => return Ok(()),
            Err(e) => return Err(format!("not posting to Slack: {e}")),
        };
        let posted = self.gather(None).and_then(|i| {
            let id = i.id.map(|n| format!("incident {n}")).unwrap_or_else(|| "incident".into());
            let m = i.last_method().map(|m| m.method.clone()).unwrap_or_default();
            let (name, title) = match stage {
                Stage::Begun if i.methods.len() > 1 => {
                    ("slack_escalated.md", format!("{}: {id} escalated to method {m}", i.product))
                }
                Stage::Begun => {
                    ("slack_alert.md", format!("{}: {id}, rollback started", i.product))
                }
                Stage::Ended => {
                    let how = if i.last_method().is_some_and(|m| m.outcome == "ok") {
                        "done"
                    } else {
                        "stopped"
                    };
                    ("slack_method.md", format!("{}: {id}, method {m} {how}", i.product))
                }
                Stage::Resolved => ("slack_resolved.md", format!("{}: {id} resolved", i.product)),
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

    /// A notifier that tells no one: for work on a throwaway copy, whose
    /// methods must not alert anyone as if production were hit.
    pub fn silent(url: &str) -> Notifier {
        let quiet = NotifySection { team_email: Vec::new(), ..NotifySection::default() };
        Notifier::new(url, &quiet, Ok(None))
    }

    /// Posts a text for the team under `title` to Slack: `Ok(false)` when
    /// no webhook is set.
    pub fn post_to_team(&self, title: &str, text: &str) -> Result<bool, String> {
        match &self.webhook {
            Ok(None) => Ok(false),
            Err(e) => Err(format!("not posting to Slack: {e}")),
            Ok(Some(w)) => {
                post_slack(w, title, text).map(|_| true).map_err(|e| crate::kit::error::chain(&e))
            }
        }
    }

    /// Mails a text to `[notify] team_email`: `Ok(false)` when no address
    /// is set.
    pub fn mail_team(&self, subject: &str, text: &str) -> Result<bool, String> {
        if self.team_email.is_empty() {
            return Ok(false);
        }
        let m = super::message(self.email_from.as_deref(), &self.team_email, subject, text);
        super::send_mail(&self.sendmail, &m).map(|()| true)
    }
}
