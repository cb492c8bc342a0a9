//! `backstop check`: the risk assessment of pending migrations, with a
//! go/no-go verdict. Static analysis of the SQL, plus live facts when the
//! database is reachable. Also builds the gate `migrate` runs.

mod markdown;
mod sarif;
mod text;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use backstop_core::check::{self, Assessment, LiveInfo, Source};
use backstop_core::config::{Config, ConfigError};
use backstop_core::migrate;
use backstop_core::pg;
use backstop_core::source;
use backstop_lint::{Code, Severity};

use super::{print, print_json, UsageError};
use crate::Connection;

/// Output formats of `backstop check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CheckFormat {
    /// Like a compiler: file:line:column, the SQL underlined, help.
    Text,
    /// One JSON object: verdict, conditions, findings.
    Json,
    /// The risk assessment document for a pull request.
    Markdown,
    /// SARIF 2.1.0, for GitHub code scanning.
    Sarif,
}

/// Severities for `--fail-on`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FailOn {
    Critical,
    High,
    Medium,
    Low,
}

impl From<FailOn> for Severity {
    fn from(f: FailOn) -> Severity {
        match f {
            FailOn::Critical => Severity::Critical,
            FailOn::High => Severity::High,
            FailOn::Medium => Severity::Medium,
            FailOn::Low => Severity::Low,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Migration files or folders to check (default: the pending
    /// migrations when the database is reachable, else every migration in
    /// the configured folder).
    #[arg(value_name = "PATH")]
    paths: Vec<PathBuf>,
    #[command(flatten)]
    conn: Connection,
    /// Output format.
    #[arg(long, value_enum, default_value_t = CheckFormat::Text)]
    format: CheckFormat,
    /// Exit 1 when a finding is at least this severe (default: [check]
    /// fail_on, which defaults to critical: exit 1 on NO-GO only).
    #[arg(long, value_enum, value_name = "SEVERITY")]
    fail_on: Option<FailOn>,
    /// Do not connect to the database: static analysis only.
    #[arg(long)]
    offline: bool,
    /// Count the findings per rule instead of listing them (text and json).
    #[arg(long)]
    statistics: bool,
    /// Also post the assessment's Markdown as one comment on the pull
    /// request this CI job runs for (GitHub Actions: GITHUB_TOKEN; GitLab
    /// CI: GITLAB_TOKEN), updating the same comment on the next run. The
    /// exit code stays the verdict's.
    #[arg(long)]
    post_comment: bool,
}

/// Parses a rule code or name for `--accept-risk`.
pub fn parse_code(text: &str) -> Result<Code, String> {
    Code::lookup(text)
        .ok_or_else(|| format!("unknown rule {text:?}; `backstop explain` lists the codes"))
}

/// Tells the operator something on stderr, in text mode only.
fn note(format: CheckFormat, text: &str) {
    if format == CheckFormat::Text {
        eprintln!("{text}");
    }
}

/// The files to check when PATHs are given: SQL files, migration folders
/// (with `up.sql`), or migrations folders.
fn sources_from_paths(paths: &[PathBuf]) -> anyhow::Result<Vec<Source>> {
    let mut out = Vec::new();
    for path in paths {
        if path.is_file() {
            out.push(Source::read(path)?);
        } else if path.join("up.sql").is_file() {
            out.push(Source::read(&path.join("up.sql"))?);
        } else if path.is_dir() {
            let folder = source::load_for_check(path, None, true)?;
            out.extend(folder.migrations.iter().map(Source::of_migration));
        } else {
            return Err(UsageError(format!(
                "{}: no such file or folder; pass SQL files, migration folders or a migrations folder",
                path.display()
            ))
            .into());
        }
    }
    Ok(out)
}

/// The database to look at, if any: `None` when none is configured at
/// all. A configured one whose `${VAR}` is unset is an error: a CI job
/// with a missing secret must not pass the gate on the SQL alone.
fn database_url(config: &Config, conn: &Connection) -> anyhow::Result<Option<String>> {
    match config.database_url(conn.database_url.as_deref()) {
        Ok(url) => {
            pg::conn::parse_url(&url)?;
            Ok(Some(url))
        }
        Err(ConfigError::NoDatabase) => Ok(None),
        Err(e) => Err(anyhow::Error::from(e)
            .context("the database for the check's live facts is not set; `backstop check --offline` checks the SQL alone")),
    }
}

pub fn run(args: Args, config_path: Option<&Path>) -> anyhow::Result<ExitCode> {
    if args.statistics && !matches!(args.format, CheckFormat::Text | CheckFormat::Json) {
        return Err(UsageError(
            "--statistics counts findings per rule in text or json; drop it for --format markdown or sarif"
                .into(),
        )
        .into());
    }
    let config = super::config(config_path)?;
    let settings = config.check_settings();
    let url = if args.offline { None } else { database_url(&config, &args.conn)? };
    // A configured database that cannot be reached is an error (exit 3),
    // never a quiet fallback to the SQL alone: with a wrong password the
    // check would pass what the live facts refuse.
    let mut client = match &url {
        Some(url) => Some(pg::connect(url, "backstop check").context(
            "the check needs the database for its live facts; fix the URL or the password, or \
             run `backstop check --offline` to check the SQL alone",
        )?),
        None => None,
    };
    // The server's version judges the SQL: the live server's, else
    // `[check] server_version`.
    let mut settings = match client.as_mut() {
        Some(client) => settings.for_server(client)?,
        None => settings,
    };
    let server = settings.lint.server_major;
    let static_only = match (&url, args.offline) {
        (_, true) => Some("--offline: live facts not checked".to_string()),
        (None, false) => Some("no database configured: live facts not checked".to_string()),
        _ => None,
    };
    let mut strays = Vec::new();
    let mut folder = None;
    // Every migration of the folder, where the pending ones run on a copy.
    let mut history = Vec::new();
    let sources = if args.paths.is_empty() {
        // The pending ones are told by the checksums; without a database
        // every file is checked, and parsed once, by the check.
        let loaded = match client {
            Some(_) => config.migrations.load()?,
            None => config.migrations.load_for_check()?,
        };
        strays = loaded.strays.clone();
        let folder = folder.insert(loaded);
        match client.as_mut() {
            Some(client) => {
                history = folder.migrations.clone();
                let status = migrate::status(client, &folder.migrations)?;
                folder.migrations.retain(|m| status.pending.iter().any(|p| p.version == m.version));
                folder.migrations.iter().map(|m| Source::of_migration_on(m, server)).collect()
            }
            None => {
                note(
                    args.format,
                    "note: no database reachable; checking every migration in the folder, in order, as on an empty database",
                );
                folder.migrations.iter().map(|m| Source::of_migration_on(m, server)).collect()
            }
        }
    } else {
        sources_from_paths(&args.paths)?
    };
    // The pending migrations run as one sequence, and so does a folder
    // checked offline: from its first migration, on an empty database.
    // Files named on the command line are judged one by one.
    settings.lint.sequential = args.paths.is_empty();
    let mut report = check::analyze(&sources, &settings);
    if args.paths.is_empty() && client.is_none() {
        check::from_empty(&mut report);
    }
    if !settings.lint.skip.contains(&Code::BS003) {
        report.findings.extend(check::stray_findings(&strays));
    }
    let live = match (client.as_mut(), &url) {
        (Some(client), Some(url)) => {
            let pending = folder.as_ref().map(|f| (f.migrations.as_slice(), history));
            let format = args.format;
            Some(live_facts(client, url, (&config, &settings), &mut report, (pending, format))?)
        }
        _ => None,
    };
    let mut assessment = Assessment::new(sources, report, live);
    assessment.static_only = static_only;
    if let (Some(client), Some(folder)) = (client.as_mut(), &folder) {
        let pending: Vec<&source::Migration> = folder.migrations.iter().collect();
        if !pending.is_empty() {
            // The schema the statements name their tables in, else public.
            let schema = backstop_core::expand::plan::schema_named(&pending);
            let schema = schema.as_deref().unwrap_or("public");
            assessment.expand =
                Some(backstop_core::expand::Expandable::read(client, &pending, schema)?);
        }
    }
    match args.format {
        CheckFormat::Text => print(&text::render(&assessment, args.statistics))?,
        CheckFormat::Json if args.statistics => print_json(&serde_json::json!({
            "verdict": assessment.verdict,
            "conditions": assessment.conditions,
            "summary": assessment.summary,
            "statistics": assessment.statistics(),
        }))?,
        CheckFormat::Json => print_json(&assessment)?,
        CheckFormat::Markdown => {
            print(&markdown::render(&assessment).context("rendering the Markdown assessment")?)?
        }
        CheckFormat::Sarif => print_json(&sarif::render(&assessment))?,
    }
    if args.post_comment {
        post_comment(&assessment)?;
    }
    let fail_on = args.fail_on.map(Severity::from).unwrap_or(settings.fail_on);
    Ok(if assessment.fails_at(fail_on) { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// The pending migrations, and the whole history they come after.
type Pending<'m> = (&'m [source::Migration], Vec<source::Migration>);

/// The live facts of the check at `url`: the catalog's, and, where the
/// folder's `pending` migrations (with its whole `history`) are checked,
/// those of another tool's history and of their run on a copy (the ups
/// alone, on every layout: the check proves no down).
fn live_facts(
    client: &mut postgres::Client,
    url: &str,
    (config, settings): (&Config, &check::Settings),
    report: &mut backstop_lint::Report,
    (pending, format): (Option<Pending<'_>>, CheckFormat),
) -> anyhow::Result<LiveInfo> {
    check::live::assess(client, report, settings)?;
    let mut copy = None;
    if let Some((pending, history)) = pending {
        let on = check::on_copy::OnCopy {
            url: url.to_string(),
            migrations: history,
            settings: migrate::Settings::from(&config.migrations),
            proofs: config.rehearse.proofs.clone(),
            hand_to: None,
        };
        let pending: Vec<&source::Migration> = pending.iter().collect();
        let mut progress = OnCopyProgress::new(format, pending.len());
        let findings = &mut report.findings;
        let on = (Some(&on), &mut progress as &mut dyn migrate::Progress);
        copy = check::on_copy::findings_of_pending(client, findings, settings, &pending, on)?;
        progress.finish();
    }
    let server_version: String =
        client.query_one("select current_setting('server_version')", &[])?.get(0);
    Ok(LiveInfo { database: pg::redact(url), server_version, copy })
}

/// The run on a copy as it goes, on a terminal in text mode only: how
/// many of the pending migrations ran, and which runs now.
struct OnCopyProgress {
    bar: Option<indicatif::ProgressBar>,
    last: String,
}

impl OnCopyProgress {
    fn new(format: CheckFormat, pending: usize) -> OnCopyProgress {
        use std::io::IsTerminal as _;
        let shown = format == CheckFormat::Text && std::io::stderr().is_terminal() && pending > 1;
        let bar = shown.then(|| {
            let bar = indicatif::ProgressBar::new(pending as u64);
            let style = indicatif::ProgressStyle::with_template(
                "running the pending migrations on a copy {bar:30} {pos}/{len} {msg} ({elapsed})",
            );
            if let Ok(style) = style {
                bar.set_style(style);
            }
            bar
        });
        OnCopyProgress { bar, last: String::new() }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl migrate::Progress for OnCopyProgress {
    fn note(&mut self, note: migrate::Note<'_>) {
        let (Some(bar), migrate::Note::Statement { version, .. }) = (&self.bar, note) else {
            return;
        };
        if version != self.last {
            if !self.last.is_empty() {
                bar.inc(1);
            }
            self.last = version.to_string();
            bar.set_message(crate::render::terminal_safe(version).into_owned());
        }
    }
}

/// Posts the assessment's Markdown on the pull request the CI job runs
/// for, or says on stderr why it did not (nothing is half-posted, and the
/// check's own exit code stands).
fn post_comment(assessment: &Assessment) -> anyhow::Result<()> {
    use check::comment::{self, Posted};
    let markdown = markdown::render(assessment).context("rendering the Markdown assessment")?;
    let env = |name: &str| std::env::var(name).ok();
    let posted = comment::target(&env).and_then(|t| comment::post(&t, &markdown).map(|p| (t, p)));
    match posted {
        Ok((t, Posted::Created(id))) => {
            eprintln!("posted the check as comment {id} on {}", t.describe())
        }
        Ok((t, Posted::Updated(id))) => {
            eprintln!("updated the check's comment {id} on {}", t.describe())
        }
        Err(e) => eprintln!("warning: {e}"),
    }
    Ok(())
}

/// The check gate's summary as `migrate` prints it before applying.
pub fn gate_summary(a: &Assessment, accepted: &[Code]) -> String {
    text::gate_summary(a, accepted)
}
