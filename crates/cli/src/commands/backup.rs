//! `backstop backup create|list|verify|prune` (the group's `restore`,
//! `freeze`, `unfreeze` and `drill` have modules of their own, which read
//! this one), and what the backup commands share: the backup dir from config, a progress bar
//! on a terminal, and the backup gate `migrate` composes.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

use backstop_core::backup::manifest::Kind;
use backstop_core::backup::VerifyLevel;
use backstop_core::backup::{self, CreateOptions, Manifest, Note, Store, Tools};
use backstop_core::config::Config;
use chrono::Utc;
use indicatif::{ProgressBar, ProgressStyle};

use super::{print, print_json};
use crate::{Connection, Format, Output};

/// The backups' own commands (the group `backup` adds the commands that
/// use a backup: [`super::groups::Backup`]).
#[derive(Debug, clap::Subcommand)]
pub enum Sub {
    /// Take a backup now: pg_dump (directory format, parallel) with a manifest.
    Create(CreateArgs),
    /// List the backups in the backup dir.
    List(ListArgs),
    /// Check a backup's checksums; with --restore, restore it into a throwaway cluster.
    Verify(VerifyArgs),
    /// Remove backups older than [backup] retention, keeping the newest keep_min.
    Prune(PruneArgs),
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    #[command(flatten)]
    conn: Connection,
    #[command(flatten)]
    output: Output,
    /// A label to remember the backup by.
    #[arg(long, value_name = "LABEL")]
    label: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    output: Output,
}

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    output: Output,
    /// The backup to verify (from `backstop backup list`).
    id: String,
    /// Also restore it into a throwaway cluster and compare rows and schema.
    #[arg(long)]
    restore: bool,
}

#[derive(Debug, clap::Args)]
pub struct PruneArgs {
    #[command(flatten)]
    conn: Connection,
    #[command(flatten)]
    output: Output,
    /// List what would be removed and remove nothing.
    #[arg(long)]
    dry_run: bool,
    /// Remove what retention lets go. On a terminal, without it, prune
    /// only lists (as --dry-run); a script that passes neither still
    /// removes, this release, and is told to add it.
    #[arg(long, conflicts_with = "dry_run")]
    yes: bool,
}

pub fn run(command: Sub, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let config = super::config(config)?;
    let store = Store::new(&config.backup.dir);
    match command {
        Sub::Create(a) => create(a, &config, &store),
        Sub::List(a) => list(a, &store),
        Sub::Verify(a) => verify(a, &config, &store),
        Sub::Prune(a) => prune(a, &config, &store),
    }
}

/// `[backup] jobs`, or the number of cores.
pub fn jobs(config: &Config) -> usize {
    config.backup.jobs.unwrap_or_else(backup::create::default_jobs)
}

fn create(args: CreateArgs, config: &Config, store: &Store) -> anyhow::Result<ExitCode> {
    let url = super::url_of(config, &args.conn)?;
    drop(super::connect_session(&url, "backstop backup create")?);
    let tools = Tools::find()?;
    let mut progress = Bar::new(args.output.format);
    let options =
        CreateOptions { label: args.label, jobs: jobs(config), lock_wait: config.backup.lock_wait };
    let m = backup::create(&url, store, &tools, &options, &mut progress)?;
    drop(progress);
    match args.output.format {
        Format::Json => print_json(&m)?,
        Format::Text => print(&format!(
            "✓ backup {} of {}: {}, {} table(s), {} row(s), schema {} ({:.1}s)\n  {}\n",
            m.id,
            m.database,
            backstop_core::kit::size::human(m.size_bytes),
            m.row_counts.len(),
            m.row_counts.values().sum::<i64>(),
            m.schema_fingerprint,
            m.duration_ms as f64 / 1000.0,
            store.path(&m.id).display()
        ))?,
    }
    Ok(ExitCode::SUCCESS)
}

/// One backup in `backup list --format json`.
#[derive(Debug, serde::Serialize)]
struct Listed<'a> {
    id: &'a str,
    kind: Kind,
    /// `pg_dump` or `pgbackrest`.
    engine: &'static str,
    label: Option<&'a str>,
    database: &'a str,
    created_at: chrono::DateTime<Utc>,
    age_seconds: i64,
    size_bytes: u64,
    verified: bool,
    verified_by: Option<VerifyLevel>,
    guards: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    snapshot_database: Option<&'a str>,
    /// For pgBackRest: the named restore point, its LSN and WAL segment,
    /// the stanza and the backup a restore starts from.
    #[serde(skip_serializing_if = "Option::is_none")]
    restore_point: Option<&'a backstop_core::backup::manifest::RestorePoint>,
    path: String,
}

fn list(args: ListArgs, store: &Store) -> anyhow::Result<ExitCode> {
    let (backups, problems) = store.list()?;
    for p in &problems {
        eprintln!("warning: {}", backstop_core::kit::error::chain(p));
    }
    let now = Utc::now();
    match args.output.format {
        Format::Json => {
            let items: Vec<Listed> = backups
                .iter()
                .rev()
                .map(|m| Listed {
                    id: &m.id,
                    kind: m.kind,
                    engine: m.kind.engine(),
                    label: m.label.as_deref(),
                    database: &m.database,
                    created_at: m.created_at,
                    age_seconds: m.age(now).num_seconds(),
                    size_bytes: m.size_bytes,
                    verified: m.verified().is_some(),
                    verified_by: m.verified(),
                    guards: &m.guards,
                    snapshot_database: m.snapshot_database.as_deref(),
                    restore_point: m.restore_point.as_ref(),
                    path: store.path(&m.id).display().to_string(),
                })
                .collect();
            print_json(&items)?;
        }
        Format::Text => print(&render_list(&backups, store, now))?,
    }
    Ok(ExitCode::SUCCESS)
}

fn render_list(backups: &[Manifest], store: &Store, now: chrono::DateTime<Utc>) -> String {
    let mut out = String::new();
    if backups.is_empty() {
        let _ = writeln!(
            out,
            "no backups in {}; `backstop backup create` takes one",
            store.dir().display()
        );
        return out;
    }
    let rows: Vec<[String; 7]> = backups
        .iter()
        .rev()
        .map(|m| {
            let verified = match (m.kind, m.verified()) {
                (Kind::Database, _) => "snapshot".to_string(),
                (Kind::RestorePoint, _) => "archived".to_string(),
                (Kind::DataDirectory, _) => "kept".to_string(),
                (_, Some(VerifyLevel::Restore)) => "restore".to_string(),
                (_, Some(VerifyLevel::Checksums)) => "checksums".to_string(),
                (_, None) => "NO".to_string(),
            };
            let what = match m.kind {
                Kind::Dump => format!("dump of {}", m.database),
                Kind::Database => {
                    format!("database {}", m.snapshot_database.as_deref().unwrap_or("?"))
                }
                Kind::RestorePoint => match &m.restore_point {
                    Some(p) => format!(
                        "pgBackRest restore point {} of {} (stanza {}, LSN {})",
                        p.name, m.database, p.stanza, p.lsn
                    ),
                    None => format!("pgBackRest restore point of {}", m.database),
                },
                Kind::DataDirectory => match &m.kept_data_dir {
                    Some(k) => format!("data directory {}", k.path.display()),
                    None => "a kept data directory".to_string(),
                },
            };
            [
                m.id.clone(),
                backstop_core::kit::duration::age(m.age(now)),
                backstop_core::kit::size::human(m.size_bytes),
                verified,
                m.label.clone().unwrap_or_else(|| "-".into()),
                what,
                if m.guards.is_empty() { "-".into() } else { m.guards.join(",") },
            ]
        })
        .collect();
    let header = ["ID", "AGE", "SIZE", "VERIFIED", "LABEL", "WHAT", "GUARDS"];
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter().map(|r| r[i].chars().count()).chain([header[i].len()]).max().unwrap_or(0)
        })
        .collect();
    let line = |cells: &[&str]| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                l.push_str(c);
            } else {
                let _ = write!(l, "{c:<w$}  ", w = widths[i]);
            }
        }
        l.trim_end().to_string()
    };
    let _ = writeln!(out, "{}", line(&header));
    for r in &rows {
        let cells: Vec<&str> = r.iter().map(String::as_str).collect();
        let _ = writeln!(out, "{}", line(&cells));
    }
    out
}

fn verify(args: VerifyArgs, config: &Config, store: &Store) -> anyhow::Result<ExitCode> {
    let tools = Tools::find()?;
    let mut progress = Bar::new(args.output.format);
    let report =
        backup::verify(store, &tools, &args.id, args.restore, jobs(config), &mut progress)?;
    drop(progress);
    match args.output.format {
        Format::Json => print_json(&report)?,
        Format::Text => {
            let mut out = format!("✓ checksums: {}\n", report.checksums.detail);
            if let Some(r) = &report.restore {
                let _ = writeln!(out, "✓ test restore: {}", r.detail);
            }
            let _ = writeln!(out, "backup {} is verified (recorded in its manifest)", report.id);
            print(&out)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn prune(args: PruneArgs, config: &Config, store: &Store) -> anyhow::Result<ExitCode> {
    // `--dry-run` shows, `--yes` does. Scripts written before --yes
    // (a nightly prune) still remove, and are told.
    let terminal = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    let dry_run = args.dry_run || (!args.yes && terminal);
    if !args.yes && !args.dry_run && !terminal {
        eprintln!(
            "note: `backstop backup prune` removes without --yes only for scripts written \
             before it: add --yes (a later release will only list, as --dry-run does)"
        );
    }
    let url = config.database_url(args.conn.database_url.as_deref()).ok();
    let mut drop_database = |m: &Manifest| -> Result<(), backup::BackupError> {
        let url = url.as_deref().ok_or_else(|| {
            backup::BackupError::Refused(
                "a database snapshot can only be pruned with a database URL; pass --database-url"
                    .into(),
            )
        })?;
        backup::restore::drop_snapshot(url, m)
    };
    let report = backup::prune(
        store,
        config.backup.retention,
        config.backup.keep_min,
        Utc::now(),
        dry_run,
        &mut drop_database,
    )?;
    // Databases that crashed or killed restores left behind.
    if let (Some(url), false) = (url.as_deref(), dry_run) {
        for name in backup::restore::drop_leftovers(url, store)? {
            eprintln!("dropped {name}, left by an earlier restore");
        }
    }
    match args.output.format {
        Format::Json => print_json(&report)?,
        Format::Text => {
            let mut out = String::new();
            let verb = if report.dry_run { "would remove" } else { "removed" };
            for p in &report.removed {
                let _ = writeln!(
                    out,
                    "{verb} {} ({}, {} old, {})",
                    p.id,
                    match p.kind {
                        Kind::Database => "database snapshot",
                        Kind::RestorePoint => "pgBackRest restore point record",
                        Kind::DataDirectory => "kept data directory",
                        Kind::Dump => "dump",
                    },
                    backstop_core::kit::duration::age(Utc::now() - p.created_at),
                    backstop_core::kit::size::human(p.size_bytes)
                );
            }
            for p in &report.partials {
                let what = if report.dry_run { "would clean" } else { "cleaned" };
                let _ = writeln!(out, "{what} {} (left by a run that died)", p.display());
            }
            for p in &report.failed {
                let _ = writeln!(
                    out,
                    "✗ could not remove {}: {}",
                    p.id,
                    p.error.as_deref().unwrap_or("?")
                );
            }
            let _ = writeln!(
                out,
                "kept {} backup(s) (retention {}, keep_min {})",
                report.kept.len(),
                backstop_core::kit::duration::human(config.backup.retention),
                config.backup.keep_min
            );
            if dry_run && !args.dry_run && !report.removed.is_empty() {
                out.push_str("nothing was removed; run again with --yes to remove them\n");
            }
            print(&out)?;
        }
    }
    Ok(if report.failed.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// Progress of backups and restores on stderr: steps as lines in text
/// mode, and a bar (tables done / total, bytes) only on a terminal.
pub struct Bar {
    text: bool,
    tty: bool,
    bar: Option<ProgressBar>,
}

impl Bar {
    pub fn new(format: Format) -> Bar {
        let text = format == Format::Text;
        Bar { text, tty: text && std::io::stderr().is_terminal(), bar: None }
    }

    fn bar(&mut self) -> Option<&ProgressBar> {
        if !self.tty {
            return None;
        }
        if self.bar.is_none() {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template("  [{bar:30}] {pos}/{len} tables {msg} {elapsed}")
                    .expect("a valid template")
                    .progress_chars("=> "),
            );
            self.bar = Some(bar);
        }
        self.bar.as_ref()
    }

    fn clear(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.clear();
    }
}

impl backup::Progress for Bar {
    fn note(&mut self, note: Note) {
        match note {
            Note::Step(s) | Note::Info(s) => {
                self.clear();
                if self.text {
                    eprintln!("{s}");
                }
            }
            Note::Tables { done, total } => {
                if let Some(bar) = self.bar() {
                    bar.set_length(total);
                    bar.set_position(done);
                }
            }
            Note::Bytes(b) => {
                if let Some(bar) = self.bar() {
                    bar.set_message(format!("({} written)", backstop_core::kit::size::human(b)));
                }
            }
            Note::Finished => self.clear(),
            Note::Warning(s) => {
                self.clear();
                eprintln!("warning: {s}");
            }
        }
    }
}
