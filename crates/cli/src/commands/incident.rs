//! `backstop respond incident report|close|list`: an incident's texts (the report,
//! the Slack message of its state, the status-page update, the users'
//! e-mail) from its own events; closing it when it is over; the list.

use std::path::Path;
use std::process::ExitCode;

use backstop_core::incident::{self, Stage};

use super::{print, print_json, UsageError};
use crate::render::terminal_safe;
use crate::{Connection, Format, Output};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(Debug, clap::Subcommand)]
enum Sub {
    /// An incident's texts, from its own events (default: the latest incident).
    Report(Report),
    /// Close the open incident (or --incident ID) when it is over; Slack
    /// hears it is resolved.
    Close(Close),
    /// The incidents, newest first: when each opened and closed, and why.
    List(List),
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
    /// The incident (`backstop respond incident list` shows them); default: the latest.
    #[arg(long, value_name = "ID")]
    incident: Option<i64>,
    /// Which text.
    #[arg(long, value_enum, default_value_t = Text::All)]
    text: Text,
    #[command(flatten)]
    output: Output,
}

#[derive(Debug, clap::Args)]
struct Close {
    #[command(flatten)]
    conn: Connection,
    /// The incident to close; default: the open one.
    #[arg(long, value_name = "ID")]
    incident: Option<i64>,
    /// What settled it, for the report and the audit log.
    #[arg(long, value_name = "TEXT")]
    note: String,
}

#[derive(Debug, clap::Args)]
struct List {
    #[command(flatten)]
    conn: Connection,
    #[command(flatten)]
    output: Output,
}

pub fn run(args: Args, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    match args.command {
        Sub::Report(r) => report(r, config),
        Sub::Close(c) => close(c, config),
        Sub::List(l) => list(l, config),
    }
}

fn report(r: Report, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let (config, url) = super::target(config, &r.conn)?;
    let notifier = config.notifier(&url);
    let incident = notifier.gather(r.incident)?;
    if incident.id.is_none() {
        print("no incident is on record: one opens with the first rollback decision or method\n")?;
        return Ok(ExitCode::SUCCESS);
    }
    let slack = match incident.last_method() {
        _ if !incident.open => "slack_resolved.md",
        Some(_) => "slack_method.md",
        None => "slack_alert.md",
    };
    let wanted: Vec<(&str, &str)> = match r.text {
        Text::All => vec![
            ("report", "report.md"),
            ("slack", slack),
            ("status_page", "status_page.txt"),
            ("user_email", "user_email.txt"),
        ],
        Text::Report => vec![("report", "report.md")],
        Text::Slack => vec![("slack", slack)],
        Text::Status => vec![("status_page", "status_page.txt")],
        Text::Email => vec![("user_email", "user_email.txt")],
    };
    let mut texts = serde_json::Map::new();
    for (key, name) in &wanted {
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
    Ok(ExitCode::SUCCESS)
}

fn close(c: Close, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    if c.note.trim().is_empty() {
        return Err(UsageError("--note needs what settled it, for the report".into()).into());
    }
    let (config, url) = super::target(config, &c.conn)?;
    let mut client = backstop_core::pg::connect(&url, "backstop incident")?;
    let by = backstop_core::schema::actor();
    match incident::close(&mut client, c.incident, &by, &c.note)? {
        Some(id) => {
            if let Err(e) = config.notifier(&url).announce(Stage::Resolved) {
                eprintln!("warning: {e}");
            }
            print(&format!("✓ incident {id} closed: {}\n", c.note))?;
        }
        None => print("no incident is open: nothing to close\n")?,
    }
    Ok(ExitCode::SUCCESS)
}

fn list(l: List, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let (_, url) = super::target(config, &l.conn)?;
    let mut client = backstop_core::pg::connect(&url, "backstop incident")?;
    let all = incident::list(&mut client)?;
    match l.output.format {
        Format::Json => print_json(&all)?,
        Format::Text => {
            let mut out = String::new();
            if all.is_empty() {
                out.push_str("no incident is on record\n");
            }
            for r in &all {
                let state = match (&r.closed_at, &r.closed_by) {
                    (Some(at), by) => format!(
                        "closed {} by {}: {}",
                        at.format("%Y-%m-%d %H:%M UTC"),
                        by.as_deref().unwrap_or("?"),
                        terminal_safe(r.close_note.as_deref().unwrap_or(""))
                    ),
                    (None, _) => "OPEN".to_string(),
                };
                out.push_str(&format!(
                    "{:>4}  opened {}  {state}\n      {}\n",
                    r.id,
                    r.opened_at.format("%Y-%m-%d %H:%M UTC"),
                    terminal_safe(&r.opened_by)
                ));
            }
            print(&out)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
