//! `backstop new NAME`: a migration folder with up, down and verify files.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use backstop_core::config::Config;

use super::{print, UsageError};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// What the migration does, in lower_snake_case (e.g. add_clients).
    name: String,
}

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
    let config = Config::load(config)?;
    let dir = &config.migrations.dir;
    if !dir.is_dir() {
        return Err(UsageError(format!(
            "migrations dir {} does not exist; run `backstop init` first",
            dir.display()
        ))
        .into());
    }
    let version = chrono::Utc::now().format("%Y%m%d%H%M%S");
    let folder = dir.join(format!("{version}_{}", args.name));
    if folder.exists() {
        return Err(UsageError(format!(
            "{} already exists; wait a second and retry",
            folder.display()
        ))
        .into());
    }
    std::fs::create_dir(&folder).with_context(|| format!("creating {}", folder.display()))?;
    let files = [
        (
            "up.sql",
            format!(
                "-- {}: the change. Runs in one transaction with the other pending migrations.\n",
                args.name
            ),
        ),
        ("down.sql", "-- Undo up.sql exactly; `backstop rollback` runs this.\n".to_string()),
        (
            "verify.sql",
            "-- Assertions run after up.sql, inside its transaction: a statement that fails\n\
             -- (e.g. DO $$ BEGIN ... RAISE EXCEPTION ... END $$) rolls the migration back.\n"
                .to_string(),
        ),
    ];
    for (name, text) in files {
        let path = folder.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    print(&format!("created {}/{{up,down,verify}}.sql\n", folder.display()))?;
    Ok(ExitCode::SUCCESS)
}
