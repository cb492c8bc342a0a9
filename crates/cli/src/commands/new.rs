//! `backstop new NAME`: a new migration in the folder's own layout (a
//! backstop/diesel folder with up, down and verify files; sqlx or
//! golang-migrate file pairs; a dbmate or goose file with its sections; a
//! Flyway script pair; a sqitch plan line with its three scripts; a
//! Supabase `<timestamp>_name.sql`; a Prisma `<timestamp>_name/migration.sql`;
//! a Drizzle `NNNN_name.sql` with its entry in `meta/_journal.json`; a
//! Hasura `<milliseconds>_name/` with up and down), with
//! a version later than every one already there.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use backstop_core::source::{self, Layout, Migration};
use chrono::Timelike as _;

use super::{print, UsageError};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// What the migration does, in lower_snake_case (e.g. add_clients).
    name: String,
}

const UP_NOTE: &str = "the change. Runs in one transaction with the other pending migrations.";
const DOWN_NOTE: &str = "Undo the up exactly; `backstop rollback` runs this.";
const UP_ONLY_NOTE: &str = "No down file: this layout's tool keeps none.";
const VERIFY_NOTE: &str =
    "Assertions run after the up, inside its transaction: a statement that fails\n\
     -- (e.g. DO $$ BEGIN ... RAISE EXCEPTION ... END $$) rolls the migration back.";

pub fn run(args: Args, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let valid = !args.name.is_empty()
        && args.name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !valid {
        return Err(UsageError(format!(
            "migration name {:?} must be lower_snake_case letters, digits and _ (e.g. add_clients)",
            args.name
        ))
        .into());
    }
    let config = super::config(config)?;
    let (dir, _) = config.migrations.resolve()?;
    let dir = &dir;
    // Two `new` at once would both take the same next version: the folder
    // is locked (flock on the directory itself) from reading it to writing.
    let _locked = lock_folder(dir)?;
    let folder = source::load(dir, config.migrations.layout)?;
    let now = chrono::Utc::now();
    let version = next_version(&folder.migrations, folder.layout, now);
    let files = files_of(&folder, &version, &args.name)?;
    let mut created = String::new();
    for (path, _) in &files {
        if path.exists() {
            return Err(UsageError(format!("{} already exists", path.display())).into());
        }
    }
    for (path, text) in &files {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
        let _ = writeln!(created, "created {}", path.display());
    }
    if folder.layout == Layout::Drizzle {
        // The file runs only once the journal lists it.
        let tag = format!("{version}_{}", args.name);
        match source::drizzle::append_to_journal(&folder.dir, &tag, now.timestamp_millis()) {
            Ok(entry) => {
                let journal = folder.dir.join(source::drizzle::JOURNAL);
                let _ =
                    writeln!(created, "added {tag} (when {}) to {}", entry.when, journal.display());
            }
            Err(e) => {
                for (path, _) in &files {
                    let _ = std::fs::remove_file(path);
                }
                return Err(e.into());
            }
        }
    }
    print(&created)?;
    Ok(ExitCode::SUCCESS)
}

/// The files of a new migration `name` at `version` in the folder's layout.
fn files_of(
    folder: &source::Folder,
    version: &str,
    name: &str,
) -> anyhow::Result<Vec<(PathBuf, String)>> {
    let dir = &folder.dir;
    let up = format!("-- {name}: {UP_NOTE}\n");
    Ok(match folder.layout {
        Layout::Diesel => {
            let d = dir.join(format!("{version}_{name}"));
            vec![
                (d.join("up.sql"), up),
                (d.join("down.sql"), format!("-- {DOWN_NOTE}\n")),
                (d.join("verify.sql"), format!("-- {VERIFY_NOTE}\n")),
            ]
        }
        Layout::Hasura => {
            let d = dir.join(format!("{version}_{name}"));
            vec![(d.join("up.sql"), up), (d.join("down.sql"), format!("-- {DOWN_NOTE}\n"))]
        }
        Layout::Sqlx | Layout::GolangMigrate => vec![
            (dir.join(format!("{version}_{name}.up.sql")), up),
            (dir.join(format!("{version}_{name}.down.sql")), format!("-- {DOWN_NOTE}\n")),
        ],
        Layout::Dbmate => vec![(
            dir.join(format!("{version}_{name}.sql")),
            format!("-- migrate:up\n{up}\n-- migrate:down\n-- {DOWN_NOTE}\n"),
        )],
        Layout::Goose => vec![(
            dir.join(format!("{version}_{name}.sql")),
            format!("-- +goose Up\n{up}\n-- +goose Down\n-- {DOWN_NOTE}\n"),
        )],
        Layout::NodePgMigrate => vec![(
            dir.join(format!("{version}_{name}.sql")),
            format!("-- Up Migration\n{up}\n-- Down Migration\n-- {DOWN_NOTE}\n"),
        )],
        Layout::Flyway => vec![
            (dir.join(format!("V{version}__{name}.sql")), up),
            (dir.join(format!("U{version}__{name}.sql")), format!("-- {DOWN_NOTE}\n")),
        ],
        Layout::Sqitch => {
            if folder.migrations.iter().any(|m| m.tool_version == *name) {
                return Err(UsageError(format!(
                    "sqitch.plan has a change {name} already; pick another name (reworking a \
                     change needs a tag first)"
                ))
                .into());
            }
            append_to_plan(&dir.join("sqitch.plan"), name)?;
            ["deploy", "revert", "verify"]
                .iter()
                .map(|kind| {
                    let note = match *kind {
                        "deploy" => format!("-- {name}: the change."),
                        "revert" => format!("-- {DOWN_NOTE}"),
                        _ => format!("-- {VERIFY_NOTE}"),
                    };
                    (dir.join(kind).join(format!("{name}.sql")), format!("{note}\n"))
                })
                .collect()
        }
        // The up-only layouts: the tool has no down file.
        Layout::Supabase | Layout::Drizzle => {
            vec![(dir.join(format!("{version}_{name}.sql")), format!("{up}-- {UP_ONLY_NOTE}\n"))]
        }
        Layout::Prisma => vec![(
            dir.join(format!("{version}_{name}")).join("migration.sql"),
            format!("{up}-- {UP_ONLY_NOTE}\n"),
        )],
        // Atlas checks every file against atlas.sum: a new file is one
        // more line there, which its own tool writes.
        Layout::Atlas => anyhow::bail!(
            "Atlas keeps the folder's sums in {}: write the migration with `atlas migrate new` \
             (or `atlas migrate diff`), which updates them",
            dir.join("atlas.sum").display()
        ),
        // A committed file carries the hash of the one before it: only the
        // tool makes one, from current.sql.
        Layout::GraphileMigrate => anyhow::bail!(
            "graphile-migrate makes its committed migrations itself (each carries the hash of \
             the one before): write the migration in {}, then run `graphile-migrate commit`",
            dir.join("current.sql").display()
        ),
    })
}

/// An exclusive lock on the migrations folder, held until dropped.
fn lock_folder(dir: &Path) -> anyhow::Result<nix::fcntl::Flock<std::fs::File>> {
    let handle = std::fs::File::open(dir).with_context(|| format!("opening {}", dir.display()))?;
    nix::fcntl::Flock::lock(handle, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| anyhow::anyhow!("locking {}: {e}", dir.display()))
}

/// A version after every one in the folder: the current UTC time as
/// `YYYYMMDDHHMMSS` where the folder uses timestamps (one second after the
/// latest if that is not later, so two runs in the same second differ),
/// the next number where it counts (`000042` after `000041`, Flyway `8`
/// after `7.2`).
fn next_version(
    migrations: &[Migration],
    layout: Layout,
    now: chrono::DateTime<chrono::Utc>,
) -> String {
    const STAMP: &str = "%Y%m%d%H%M%S";
    let versioned: Vec<&Migration> = migrations.iter().filter(|m| !m.repeatable).collect();
    if layout == Layout::Sqitch {
        return String::new();
    }
    // The Supabase CLI and Prisma name migrations by their UTC time.
    if matches!(layout, Layout::Supabase | Layout::Prisma) {
        return later_stamp(&versioned, now, STAMP);
    }
    // The Hasura CLI and node-pg-migrate name a migration by its time in
    // milliseconds.
    if matches!(layout, Layout::Hasura | Layout::NodePgMigrate) {
        let latest = versioned.iter().filter_map(|m| m.version.parse::<i64>().ok()).max();
        let now = now.timestamp_millis();
        return latest.filter(|l| *l >= now).map_or(now, |l| l + 1).to_string();
    }
    // drizzle-kit numbers from 0000.
    if layout == Layout::Drizzle && versioned.is_empty() {
        return "0000".to_string();
    }
    if layout == Layout::Flyway {
        let major = versioned
            .iter()
            .filter_map(|m| m.version.split('.').next()?.parse::<u128>().ok())
            .max();
        return match major {
            // Timestamps as versions: keep to them.
            Some(m) if m >= 19_000_000_000_000 => later_stamp(&versioned, now, STAMP),
            Some(m) => (m + 1).to_string(),
            None => "1".to_string(),
        };
    }
    // Sequential numbers (golang-migrate's and goose's `-seq`), kept at their width.
    let digits: Vec<&str> = versioned
        .iter()
        .map(|m| m.version.as_str())
        .filter(|v| v.chars().all(|c| c.is_ascii_digit()))
        .collect();
    if !digits.is_empty() && digits.iter().all(|v| v.len() < 10) {
        let width = digits.iter().map(|v| v.len()).max().unwrap_or(1);
        let next = digits.iter().filter_map(|v| v.parse::<u64>().ok()).max().unwrap_or(0) + 1;
        return format!("{next:0width$}");
    }
    later_stamp(&versioned, now, STAMP)
}

fn later_stamp(
    versioned: &[&Migration],
    now: chrono::DateTime<chrono::Utc>,
    format: &str,
) -> String {
    let latest = versioned
        .iter()
        .filter_map(|m| {
            let digits: String = m.version.chars().filter(char::is_ascii_digit).take(14).collect();
            chrono::NaiveDateTime::parse_from_str(&digits, format).ok()
        })
        .max();
    // Whole seconds, as the version shows them.
    let now = now.naive_utc().with_nanosecond(0).unwrap_or(now.naive_utc());
    let version = match latest {
        Some(l) if l >= now => l + chrono::Duration::seconds(1),
        _ => now,
    };
    version.format(format).to_string()
}

/// Adds a change line to the end of sqitch.plan, as `sqitch add` would.
fn append_to_plan(plan: &Path, name: &str) -> anyhow::Result<()> {
    let mut text =
        std::fs::read_to_string(plan).with_context(|| format!("reading {}", plan.display()))?;
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    let actor = backstop_core::schema::actor();
    let user = actor.split('@').next().unwrap_or("backstop");
    let _ = writeln!(
        text,
        "{name} {} {user} <{actor}> # {name}",
        chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ")
    );
    std::fs::write(plan, text).with_context(|| format!("writing {}", plan.display()))
}
