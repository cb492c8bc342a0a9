//! `backstop rehearse`: the whole migration path on a throwaway copy of the
//! target, timed, with a Markdown report and a recorded pass.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use backstop_core::migrate::{Progress, Quiet};
use backstop_core::rehearse::{self, record, FromBackup, Options, Rehearsal, VerifyPlan};

use super::{print, print_json, Context, UsageError};
use crate::render::{human, StderrProgress};
use crate::{Connection, Format, Output};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    conn: Connection,
    #[command(flatten)]
    output: Output,
    /// What to copy: `production` (the configured database) or a database URL.
    #[arg(long, value_name = "production|URL", default_value = "production")]
    from: String,
    /// Copy the schema only: quick, but does not satisfy the rehearsal gate
    /// unless `accept_schema_only = true`.
    #[arg(long, conflicts_with_all = ["sample", "from_backup"])]
    schema_only: bool,
    /// Copy this percentage of each table's rows (e.g. 5 or 0.5), plus the
    /// rows they refer to, so every foreign key still holds.
    #[arg(long, value_name = "PERCENT", value_parser = percent, conflicts_with = "from_backup")]
    sample: Option<f64>,
    /// Rehearse on a backup (an id from `backstop backup list`, or
    /// `latest`) instead of a copy of the live database.
    #[arg(long, value_name = "ID")]
    from_backup: Option<String>,
    /// Only the pending migrations in this inclusive version range, `A..B`.
    #[arg(long, value_name = "A..B")]
    migrations: Option<String>,
    /// Where to write the report (default: [rehearse] report_dir).
    #[arg(long, value_name = "DIR")]
    report_dir: Option<PathBuf>,
}

fn percent(text: &str) -> Result<f64, String> {
    let number = text.strip_suffix('%').unwrap_or(text).trim();
    match number.parse::<f64>() {
        Ok(p) if p > 0.0 && p <= 100.0 => Ok(p),
        _ => Err(format!(
            "{text:?} is not a percentage above 0 and at most 100; write e.g. --sample 10 or --sample 0.5"
        )),
    }
}

fn range(text: &str, ctx: &Context) -> anyhow::Result<(String, String)> {
    let (a, b) = match text.split_once("..") {
        Some((a, b)) if !a.is_empty() && !b.is_empty() => (a.to_string(), b.to_string()),
        _ => {
            return Err(UsageError(format!(
            "--migrations {text:?}: write a version range as FIRST..LAST, e.g. 20260101000000..20260107120000"
        ))
            .into())
        }
    };
    for bound in [&a, &b] {
        if !ctx.migrations.iter().any(|m| &m.version == bound) {
            return Err(UsageError(format!(
                "--migrations {text:?}: {bound} is not a migration of {}; `backstop status` lists the versions",
                ctx.config.migrations.dir.display()
            ))
            .into());
        }
    }
    Ok((a, b))
}

pub fn run(args: Args, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let ctx = Context::load(config, &args.conn)?;
    let source = if args.from == "production" { ctx.url.clone() } else { args.from.clone() };
    backstop_core::pg::conn::parse_url(&source)?;
    let verify = &ctx.config.verify;
    let plan = if verify.checks.is_empty() {
        None
    } else {
        Some(VerifyPlan {
            section: verify.clone(),
            headers: ctx.config.verify_headers()?,
            backups: ctx.config.backup.dir.clone(),
        })
    };
    let options = Options {
        verify: plan,
        schema_only: args.schema_only,
        range: args.migrations.as_deref().map(|r| range(r, &ctx)).transpose()?,
        sample: args.sample,
        from_backup: args
            .from_backup
            .map(|id| FromBackup { dir: ctx.config.backup.dir.clone(), id }),
        require_down: ctx.config.rehearse.require_down,
    };
    let mut progress: Box<dyn Progress> = match args.output.format {
        Format::Text => Box::new(StderrProgress),
        Format::Json => Box::new(Quiet),
    };
    let mut r =
        rehearse::rehearse(&source, &ctx.migrations, &ctx.settings, &options, progress.as_mut())?;
    let dir = args.report_dir.unwrap_or_else(|| ctx.config.rehearse.report_dir.clone());
    record::write_files(&dir, &mut r).context("writing the rehearsal report")?;
    // The pass is recorded in the target when it can be reached; the JSON
    // beside the report holds it either way.
    let recorded = backstop_core::pg::connect(&source, "backstop rehearse")
        .map_err(anyhow::Error::from)
        .and_then(|mut c| Ok(record::record(&mut c, &r, ctx.settings.lock_wait)?));
    if let Err(e) = &recorded {
        eprintln!("warning: the rehearsal was not recorded in the target: {e:#}");
    }
    match args.output.format {
        Format::Json => print_json(&r)?,
        Format::Text => print(&render(&r))?,
    }
    Ok(if r.ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn render(r: &Rehearsal) -> String {
    let ms = |v: u64| human(std::time::Duration::from_millis(v));
    let mark = |ok: bool| if ok { "✓" } else { "✗" };
    let mut out = String::new();
    for s in &r.steps {
        let _ = writeln!(out, "{} {}: {} ({})", mark(s.ok), s.name, s.detail, ms(s.duration_ms));
    }
    for s in &r.scenarios {
        let _ = writeln!(
            out,
            "{} scenario {}: {} ({})",
            mark(s.ok),
            s.name,
            s.detail,
            ms(s.duration_ms)
        );
    }
    for d in &r.round_trip.differences {
        let _ = writeln!(out, "✗ {}", d.message);
    }
    let fixable: Vec<&str> = r
        .round_trip
        .migrations
        .iter()
        .filter(|t| matches!(t.class, rehearse::TripClass::Defect | rehearse::TripClass::DownFails))
        .map(|t| t.version.as_str())
        .collect();
    if !fixable.is_empty() {
        let _ = writeln!(
            out,
            "fix available: `backstop downs {}` computes a proved fix for each defective down",
            fixable.join(" ")
        );
    }
    for d in &r.round_trip.cosmetic {
        let _ = writeln!(out, "note: {}", d.message);
    }
    if !r.round_trip.migrations.is_empty() {
        let _ = writeln!(out, "round trips: {}", rehearse::trip_counts(&r.round_trip.migrations));
    }
    for l in rehearse::lossy_summary(&r.lossy) {
        let _ = writeln!(out, "⚠ {l}");
    }
    let blocking = r.locks.iter().filter(|l| l.blocks_writes).count();
    if blocking > 0 {
        let _ = writeln!(out, "{blocking} lock(s) block writes; see the report's lock table");
    }
    if let Some(path) = &r.report {
        let _ = writeln!(out, "report: {}", path.display());
    }
    let _ = writeln!(
        out,
        "rehearsal {}: {} migration(s), {} in {}",
        if r.ok { "passed" } else { "FAILED" },
        r.migrations.len(),
        match r.copy.method {
            rehearse::Method::Template => "template copy",
            rehearse::Method::Dump => "dumped copy",
            rehearse::Method::Sample => "sampled copy",
            rehearse::Method::Backup => "copy of a backup",
        },
        ms(r.duration_ms)
    );
    out
}
