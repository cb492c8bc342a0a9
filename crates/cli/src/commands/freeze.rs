//! `backstop backup freeze --role ROLE`: the role's write grants on the schema's
//! tables revoked, exactly which recorded, so `backstop backup unfreeze --role`
//! gives back those and nothing more (a cutover's "make V1 read-only").
//! `backstop backup freeze --database`: the whole database read-only, the freeze
//! a restore takes (`backstop backup unfreeze` lifts it). One mechanism, two scopes.

use std::path::Path;
use std::process::ExitCode;

use backstop_core::freeze;
use backstop_core::pg::lock::MigrationLock;

use super::{print, print_json};
use crate::render::terminal_safe;
use crate::{Connection, Format, Output};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The role whose writes stop.
    #[arg(
        long,
        value_name = "ROLE",
        required_unless_present = "database",
        value_parser = super::role_name
    )]
    role: Option<String>,
    /// Instead: make the whole database read-only for every session but
    /// Backstop's (other sessions are ended so none keeps writing).
    #[arg(long, conflicts_with_all = ["role", "schema"])]
    database: bool,
    /// The schemas whose tables it may no longer write (default: public).
    #[arg(long, value_delimiter = ',', value_name = "SCHEMA,...", default_value = "public")]
    schema: Vec<String>,
    /// Why, for the audit log.
    #[arg(long, value_name = "TEXT")]
    reason: String,
    #[command(flatten)]
    conn: Connection,
    #[command(flatten)]
    output: Output,
}

/// The migration lock, with the backstop schema in place.
pub fn locked<'a>(
    client: &'a mut postgres::Client,
    config: &backstop_core::config::Config,
) -> anyhow::Result<MigrationLock<'a>> {
    let mut lock = MigrationLock::acquire(client, config.migrations.lock_wait, |holder| {
        if let Some(h) = holder {
            eprintln!("waiting for the migration lock held by {h}");
        }
    })
    .map_err(backstop_core::migrate::ApplyError::from)?;
    backstop_core::schema::ensure(&mut lock)?;
    Ok(lock)
}

/// `word` as a shell would need it to stay one argument.
fn shell_word(word: &str) -> String {
    if !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c)) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

pub fn run(args: Args, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    if args.reason.trim().is_empty() {
        return Err(super::UsageError(
            "a reason is needed (--reason \"...\"): freezes are audited".into(),
        )
        .into());
    }
    let (config, url) = super::target(config, &args.conn)?;
    let mut client = backstop_core::pg::connect(&url, "backstop")?;
    let Some(role) = args.role.as_deref() else {
        return database(&mut client, &config, &args);
    };
    let mut lock = locked(&mut client, &config)?;
    let done = freeze::freeze_role(&mut lock, role, &args.schema, &args.reason)?;
    drop(lock);
    match args.output.format {
        Format::Json => print_json(&done)?,
        Format::Text => {
            let role = terminal_safe(&done.role);
            let mut out = if done.already {
                let was = match done.frozen_as.as_deref() {
                    Some(was) if was != done.role => format!(" (as {})", terminal_safe(was)),
                    _ => String::new(),
                };
                format!(
                    "{role} was already frozen{was} ({} grant(s) recorded); nothing changed\n",
                    done.grants.len()
                )
            } else {
                format!(
                    "froze {role}: revoked {} write grant(s) on {}; `backstop backup unfreeze --role {}` gives exactly these back\n",
                    done.grants.len(),
                    args.schema.join(", "),
                    terminal_safe(&shell_word(&done.role))
                )
            };
            for way in &done.still_writes_through {
                out.push_str(&format!(
                    "  warning: {role} may still write: {}\n",
                    terminal_safe(way)
                ));
            }
            print(&out)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `freeze --database`: the freeze a restore takes, on purpose.
fn database(
    client: &mut postgres::Client,
    config: &backstop_core::config::Config,
    args: &Args,
) -> anyhow::Result<ExitCode> {
    let mut lock = locked(client, config)?;
    let done = freeze::freeze(&mut lock, &args.reason, &config.freeze)?;
    drop(lock);
    match args.output.format {
        Format::Json => print_json(&serde_json::json!({
            "database": done.state.database,
            "since": done.state.since,
            "reason": done.state.reason,
            "terminated": done.terminated,
            "warnings": done.warnings,
        }))?,
        Format::Text => {
            let mut out = format!(
                "froze writes to database {}: read-only for every session but Backstop's ({} session(s) ended); `backstop backup unfreeze` lifts it\n",
                terminal_safe(&done.state.database),
                done.terminated
            );
            for w in &done.warnings {
                out.push_str(&format!("  warning: {}\n", terminal_safe(w)));
            }
            print(&out)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
