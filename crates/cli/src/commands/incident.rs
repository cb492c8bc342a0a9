//! `backstop incident report`: the incident document, the Slack message,
//! the status-page update and the users' e-mail, from the real timeline in
//! `backstop.events`, posted to Slack with `--post`.

use std::path::Path;
use std::process::ExitCode;

use chrono::{DateTime, Utc};

use super::{print, print_json, UsageError};
use crate::{Connection, Format, Output};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(Debug, clap::Subcommand)]
enum Sub {
    /// The incident's texts from the timeline in backstop.events.
    Report(Report),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Text {
    All,
    Report,
    Slack,
    Status,
    Email,
}

#[derive(Debug, clap::Args)]
struct Report {
    #[command(flatten)]
    conn: Connection,
    /// From when: an RFC 3339 time, or a duration ago ("2h"). Default: the
    /// first rollback decision or method of the last 24 hours.
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Which text.
    #[arg(long, value_enum, default_value_t = Text::All)]
    text: Text,
    /// Also post the resolution to [notify] slack_webhook.
    #[arg(long)]
    post: bool,
    #[command(flatten)]
    output: Output,
}

fn since(text: &str) -> Result<DateTime<Utc>, UsageError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    humantime::parse_duration(text)
        .ok()
        .and_then(|d| chrono::Duration::from_std(d).ok())
        .map(|d| Utc::now() - d)
        .ok_or_else(|| {
            UsageError(format!(
                "--since {text:?}: write a time like 2026-01-07T14:20:00Z or a duration ago like 2h"
            ))
        })
}

pub fn run(args: Args, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let Sub::Report(r) = args.command;
    let (config, url, _) = super::backup::load(config, &r.conn)?;
    let from = r.since.as_deref().map(since).transpose()?;
    let notifier = config.notifier(&url);
    let incident = notifier.gather(from)?;
    let wanted: &[(&str, &str)] = match r.text {
        Text::All => &[
            ("report", "report.md"),
            ("slack", "slack_resolved.md"),
            ("status_page", "status_page.txt"),
            ("user_email", "user_email.txt"),
        ],
        Text::Report => &[("report", "report.md")],
        Text::Slack => &[("slack", "slack_resolved.md")],
        Text::Status => &[("status_page", "status_page.txt")],
        Text::Email => &[("user_email", "user_email.txt")],
    };
    let mut texts = serde_json::Map::new();
    for (key, name) in wanted {
        texts.insert(key.to_string(), notifier.render(name, &incident)?.into());
    }
    match r.output.format {
        Format::Json => print_json(&serde_json::json!({ "incident": incident, "texts": texts }))?,
        Format::Text => {
            let mut out = String::new();
            for (key, text) in &texts {
                if texts.len() > 1 {
                    out.push_str(&format!("===== {key} =====\n"));
                }
                out.push_str(text.as_str().unwrap_or(""));
                out.push('\n');
            }
            print(&out)?;
        }
    }
    if r.post {
        if config.notify.slack_webhook.is_none() {
            return Err(UsageError("--post needs [notify] slack_webhook".into()).into());
        }
        if let Err(e) = notifier.announce(false) {
            eprintln!("warning: {e}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
