//! `backstop flags list|enable|disable|kill|ramp|history|sync` (the
//! group's `serve` has a module of its own): the release
//! flags in the database, the kill switch of Method A. Every change is
//! audited with its reason and reaches every `backstop flags serve` at once.
//! `flags ramp` is in [`super::ramp`].

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use backstop_core::flags::{self, Flag, FlagChange};

use super::{print, print_json};
use crate::render::terminal_safe;
use crate::{Connection, Format, Output};

/// The flags' own commands (the group `flags` adds `serve`:
/// [`super::groups::Flags`]).
#[derive(Debug, clap::Subcommand)]
pub enum Sub {
    /// The flags, their releases and states.
    List(Common),
    /// Turn a flag on (or every flag of a release, --release), for everyone
    /// or a share of targeting keys.
    Enable(Enable),
    /// Turn a flag off: applications fall back to their code's default.
    Disable(Change),
    /// Turn every flag of a release off, in one transaction (Method A).
    Kill(Kill),
    /// Raise a release's share step by step, judged by the [[triggers]]
    /// between steps and killed at a breach; --status, --abort.
    Ramp(super::ramp::Args),
    /// Every recorded change of a flag.
    History(History),
    /// Create the flags [[flags]] declares (off); report those it no longer does.
    Sync(Common),
}

#[derive(Debug, clap::Args)]
pub struct Common {
    #[command(flatten)]
    conn: Connection,
    #[command(flatten)]
    output: Output,
}

#[derive(Debug, clap::Args)]
pub struct Change {
    /// The flag's key.
    key: String,
    /// Why, for the audit log.
    #[arg(long, value_name = "TEXT")]
    reason: String,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, clap::Args)]
pub struct Enable {
    /// The flag's key.
    #[arg(required_unless_present = "release", conflicts_with = "release")]
    key: Option<String>,
    /// Turn every flag of this release on, in one transaction.
    #[arg(long, value_name = "RELEASE", value_parser = super::release_name)]
    release: Option<String>,
    /// Why, for the audit log.
    #[arg(long, value_name = "TEXT")]
    reason: String,
    /// Serve the flag's variant to this share of targeting keys (0-100),
    /// split the way flagd splits.
    #[arg(long, value_name = "PERCENT", value_parser = clap::value_parser!(u32).range(0..=100))]
    percent: Option<u32>,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, clap::Args)]
pub struct Kill {
    /// The release whose flags go off.
    #[arg(long, value_name = "RELEASE", value_parser = super::release_name)]
    release: String,
    /// Why, for the audit log.
    #[arg(long, value_name = "TEXT")]
    reason: String,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, clap::Args)]
pub struct History {
    key: String,
    #[command(flatten)]
    common: Common,
}

fn connect(
    config: Option<&Path>,
    common: &Common,
) -> anyhow::Result<(backstop_core::config::Config, postgres::Client)> {
    let (config, url) = super::target(config, &common.conn)?;
    let client = backstop_core::pg::connect(&url, "backstop flags")?;
    Ok((config, client))
}

pub fn run(command: Sub, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let actor = backstop_core::schema::actor();
    match command {
        Sub::List(c) => {
            let (_, mut client) = connect(config, &c)?;
            let flags = flags::list(&mut client)?;
            match c.output.format {
                Format::Json => print_json(&flags.iter().map(listed).collect::<Vec<_>>())?,
                Format::Text => print(&list_text(&flags))?,
            }
        }
        Sub::Enable(e) => {
            let (config, mut client) = connect(config, &e.common)?;
            let lock_wait = config.migrations.lock_wait;
            let changes = match (&e.key, &e.release) {
                (Some(key), _) => {
                    vec![flags::enable(&mut client, key, e.percent, &actor, &e.reason, lock_wait)?]
                }
                (None, release) => flags::enable_release(
                    &mut client,
                    release.as_deref().unwrap_or_default(),
                    e.percent,
                    &actor,
                    &e.reason,
                    lock_wait,
                )?,
            };
            show(e.common.output.format, &changes)?;
        }
        Sub::Disable(d) => {
            let (config, mut client) = connect(config, &d.common)?;
            let change = flags::disable(
                &mut client,
                &d.key,
                &actor,
                &d.reason,
                config.migrations.lock_wait,
            )?;
            show(d.common.output.format, &[change])?;
        }
        Sub::Kill(k) => {
            let (config, mut client) = connect(config, &k.common)?;
            let changes = flags::kill_release(
                &mut client,
                &k.release,
                &actor,
                &k.reason,
                config.migrations.lock_wait,
            )?;
            show(k.common.output.format, &changes)?;
        }
        Sub::Ramp(r) => return super::ramp::run(r, config),
        Sub::History(h) => {
            let (_, mut client) = connect(config, &h.common)?;
            let events = flags::history(&mut client, &h.key)?;
            match h.common.output.format {
                Format::Json => print_json(&events)?,
                Format::Text => {
                    let mut out = String::new();
                    if events.is_empty() {
                        let _ = writeln!(out, "no recorded change of {}", terminal_safe(&h.key));
                    }
                    for e in &events {
                        let d = &e.details;
                        let _ = writeln!(
                            out,
                            "{}  {} -> {}{}  by {}: {}",
                            e.at.format("%Y-%m-%d %H:%M:%S UTC"),
                            d["from"].as_str().unwrap_or("?"),
                            d["to"].as_str().unwrap_or("?"),
                            d["percent"].as_u64().map(|p| format!(" ({p}%)")).unwrap_or_default(),
                            terminal_safe(&e.actor),
                            terminal_safe(d["reason"].as_str().unwrap_or_default())
                        );
                    }
                    print(&out)?;
                }
            }
        }
        Sub::Sync(c) => {
            let (config, mut client) = connect(config, &c)?;
            let report =
                flags::sync(&mut client, &config.flags, &actor, config.migrations.lock_wait)?;
            match c.output.format {
                Format::Json => print_json(&report)?,
                Format::Text => {
                    let mut out = String::new();
                    let _ = writeln!(
                        out,
                        "created (off): {}",
                        if report.created.is_empty() {
                            "none".into()
                        } else {
                            report.created.join(", ")
                        }
                    );
                    let _ = writeln!(out, "kept as they are: {}", report.kept.len());
                    if !report.undeclared.is_empty() {
                        let _ = writeln!(
                            out,
                            "in the database but no longer in backstop.toml: {} (left as they are)",
                            report.undeclared.join(", ")
                        );
                    }
                    print(&out)?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `flags list --format json`: one object per flag.
fn listed(f: &Flag) -> serde_json::Value {
    serde_json::json!({
        "key": f.key,
        "release": f.release,
        "enabled": f.enabled(),
        "state": f.state,
        "percent": percent(f),
        "variants": f.variants,
        "default_variant": f.default_variant,
        "targeting": f.targeting,
        "description": f.description,
        "owner": f.owner,
        "updated_at": f.updated_at,
        "updated_by": f.updated_by,
    })
}

/// The share of a rollout made by `enable --percent`.
fn percent(f: &Flag) -> Option<u64> {
    let split = f.targeting.as_ref()?.get("fractional")?.as_array()?;
    split.iter().find(|p| p[0] == f.default_variant.as_str()).and_then(|p| p[1].as_u64())
}

fn list_text(flags: &[Flag]) -> String {
    let mut out = String::new();
    if flags.is_empty() {
        let _ =
            writeln!(out, "no flags; declare them under [[flags]] and run `backstop flags sync`");
    }
    for f in flags {
        let state = match (f.enabled(), percent(f)) {
            (false, _) => "off".to_string(),
            (true, Some(p)) => format!("on for {p}%"),
            (true, None) if f.targeting.is_some() => "on, targeted".to_string(),
            (true, None) => "on".to_string(),
        };
        let _ = writeln!(
            out,
            "{:<28} {:<10} {:<14} {}  by {}{}",
            terminal_safe(&f.key),
            terminal_safe(&f.release),
            state,
            f.updated_at.format("%Y-%m-%d %H:%M:%S UTC"),
            terminal_safe(&f.updated_by),
            if f.description.is_empty() {
                String::new()
            } else {
                format!("  {}", terminal_safe(&f.description))
            }
        );
    }
    out
}

fn show(format: Format, changes: &[FlagChange]) -> anyhow::Result<()> {
    match format {
        Format::Json => print_json(&changes),
        Format::Text => {
            let mut out = String::new();
            for c in changes {
                let to = match (c.to, c.percent) {
                    (flags::State::Enabled, Some(p)) => format!("on for {p}%"),
                    (flags::State::Enabled, None) => "on".into(),
                    (flags::State::Disabled, _) => "off".into(),
                };
                let _ = writeln!(
                    out,
                    "✓ {} {to} (release {})",
                    terminal_safe(&c.key),
                    terminal_safe(&c.release)
                );
            }
            if let Some(c) = changes.first() {
                let _ = writeln!(
                    out,
                    "recorded in backstop.events; every backstop serve pushes it now (etag {})",
                    c.etag
                );
            }
            print(&out)
        }
    }
}
