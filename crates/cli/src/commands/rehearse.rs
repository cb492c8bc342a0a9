//! `backstop rehearse`: the whole migration path on a throwaway copy of the
//! target, timed, with a Markdown report and a recorded pass.

mod text;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use backstop_core::downs::proofs;
use backstop_core::migrate::{Note, Progress};
use backstop_core::rehearse::{record, FromBackup, Options, VerifyPlan};

use super::{print, print_json, Context, UsageError};
use crate::render::note_line;
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
    /// Also echo every statement run on the copies on stderr (they always
    /// go to the statement log beside the report), and list every round
    /// trip, cosmetic note and lossy down.
    #[arg(long, short)]
    verbose: bool,
    /// A migration whose data changes no SQL can put back (an UPDATE of
    /// rows that were there, a DO block's), accepted so the rehearsal can
    /// pass; needs --reason, which is recorded. Repeat for several.
    #[arg(long, value_name = "VERSION", requires = "reason")]
    accept_irreversible: Vec<String>,
    /// Why the migrations of --accept-irreversible may go ahead (recorded
    /// in the report and the audit log).
    #[arg(long, value_name = "TEXT", requires = "accept_irreversible")]
    reason: Option<String>,
    /// A migration whose down is missing or cannot be proved fails the
    /// rehearsal (as `[rehearse] require_down = true`).
    #[arg(long)]
    require_downs: bool,
    /// Also rehearse the pending migrations as an expand on a fresh copy:
    /// expand (its backfills on the copy's rows), a write through each
    /// shape, rollback compared with the start, expand again and contract
    /// compared with a plain migrate; see docs/expand.md.
    #[arg(long)]
    expand: bool,
    /// The schema whose tables the expand serves.
    #[arg(long, value_name = "SCHEMA", default_value = "public", requires = "expand")]
    schema: String,
}

/// Where a rehearsal's progress goes: the stages on stderr (text output
/// only), every statement into the log beside the report, and on stderr
/// too with `--verbose`.
struct RehearseProgress {
    log: Option<std::io::BufWriter<std::fs::File>>,
    stages: bool,
    echo: bool,
    /// The statement lines of work done beside the rehearsal's own (a
    /// second copy), kept until it rejoins: the log reads copy by copy.
    beside: Vec<Arc<Mutex<Vec<String>>>>,
}

/// The progress of work beside a rehearsal's own: its statement lines, kept.
struct Beside(Arc<Mutex<Vec<String>>>);

impl Progress for Beside {
    fn note(&mut self, note: Note<'_>) {
        if !matches!(note, Note::Stage { .. }) {
            self.0.lock().unwrap_or_else(|e| e.into_inner()).push(note_line(note));
        }
    }
}

impl Progress for RehearseProgress {
    fn note(&mut self, note: Note<'_>) {
        let stage = matches!(note, Note::Stage { .. });
        let line = note_line(note);
        if let (false, Some(log)) = (stage, self.log.as_mut()) {
            let _ = writeln!(log, "{line}");
        }
        if (stage && self.stages) || (!stage && self.echo) {
            let _ = writeln!(std::io::stderr(), "{line}");
        }
    }

    fn beside(&mut self) -> Box<dyn Progress + Send> {
        let lines = Arc::default();
        self.beside.push(Arc::clone(&lines));
        Box::new(Beside(lines))
    }

    fn rejoin(&mut self) {
        for lines in std::mem::take(&mut self.beside) {
            for line in std::mem::take(&mut *lines.lock().unwrap_or_else(|e| e.into_inner())) {
                if let Some(log) = self.log.as_mut() {
                    let _ = writeln!(log, "{line}");
                }
                if self.echo {
                    let _ = writeln!(std::io::stderr(), "{line}");
                }
            }
        }
    }
}

/// `--accept-irreversible` checked: versions of the folder, a reason that
/// says something.
fn accepted(
    versions: &[String],
    reason: Option<&str>,
    ctx: &Context,
) -> anyhow::Result<Vec<(String, String)>> {
    let reason = reason.map(str::trim).unwrap_or_default();
    if !versions.is_empty() && reason.is_empty() {
        return Err(UsageError(
            "--reason is empty; say why the data of these migrations may go without a way back \
             but the backup (it is recorded)"
                .into(),
        )
        .into());
    }
    for v in versions {
        if !ctx.migrations.iter().any(|m| &m.version == v) {
            return Err(UsageError(format!(
                "--accept-irreversible {v}: no migration of {} has this version; `backstop status` \
                 lists them",
                ctx.dir.display()
            ))
            .into());
        }
    }
    Ok(versions.iter().map(|v| (v.clone(), reason.to_string())).collect())
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
                ctx.dir.display()
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
        require_down: ctx.config.rehearse.require_down || args.require_downs,
        expand: args.expand.then(|| args.schema.clone()),
        accept_irreversible: accepted(&args.accept_irreversible, args.reason.as_deref(), &ctx)?,
    };
    let dir = args.report_dir.unwrap_or_else(|| ctx.config.rehearse.report_dir.clone());
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("creating the report folder {}", dir.display()))?;
    // Named after the run once its id is known.
    let running_log = dir.join(format!("rehearsal-{}.log.partial", std::process::id()));
    let log = std::fs::File::create(&running_log)
        .with_context(|| format!("creating the statement log {}", running_log.display()))?;
    let text = args.output.format == Format::Text;
    let mut progress = RehearseProgress {
        log: Some(std::io::BufWriter::new(log)),
        stages: text,
        echo: text && args.verbose,
        beside: Vec::new(),
    };
    let mut store = proofs::Store::open(&ctx.config.rehearse.proofs);
    let rehearsed = backstop_core::rehearse::with_downs::rehearse(
        &source,
        &ctx.migrations,
        &ctx.settings,
        &options,
        &mut store,
        &mut progress,
    );
    if let Some(mut log) = progress.log.take() {
        let _ = log.flush();
    }
    let mut r = match rehearsed {
        Ok((r, notes)) => {
            for note in notes.iter().filter(|_| text) {
                eprintln!("{note}");
            }
            r
        }
        Err(e) => {
            eprintln!("the statements run so far are in {}", running_log.display());
            return Err(e.into());
        }
    };
    let log = dir.join(format!("{}.log", record::stem(&r)));
    match std::fs::rename(&running_log, &log) {
        Ok(()) => r.statements = Some(log),
        Err(e) => eprintln!("warning: the statement log stays at {}: {e}", running_log.display()),
    }
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
        Format::Text => print(&text::render(&r, args.verbose))?,
    }
    Ok(if r.ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
