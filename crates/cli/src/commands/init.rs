//! `backstop init`: a commented backstop.toml and an empty migrations folder.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;

use super::{print, UsageError};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory to set up (default: the current one).
    #[arg(default_value = ".")]
    dir: PathBuf,
}

const TEMPLATE: &str = r#"# Backstop configuration. Unknown keys are errors, so typos cannot hide.

[database]
# The database to migrate. ${VAR} is read from the environment;
# --database-url and DATABASE_URL override this line.
url = "${DATABASE_URL}"

[migrations]
# Folder of migrations: VERSION_name/{up,down,verify}.sql (as `backstop new`
# writes them) or VERSION_name.up.sql / VERSION_name.down.sql.
dir = "migrations"
# Tables no migration or rollback may drop, truncate or delete rows from.
protected_tables = []
# Every migration transaction runs with these (SET LOCAL).
lock_timeout = "5s"
statement_timeout = "15min"
# How long to wait for another run's migration lock before giving up.
lock_wait = "10min"
# How often a migration that hit lock_timeout is retried, with backoff.
lock_retries = 3

[check]
# `backstop migrate` runs the risk check first and refuses a NO-GO unless
# --accept-risk CODE names each critical finding (recorded in the audit log).
required = true
# `backstop check` exits 1 from this severity up: critical, high, medium, low.
fail_on = "critical"
# A new table with one of these columns needs row level security.
owner_columns = ["user_id", "tenant_id", "owner_id"]
# Rules this project turns off, by code or name (`backstop explain` lists them).
skip = []

[backup]
# migrate takes a verified backup first (pg_dump, checksummed manifest).
# Where backups go, relative to this file (keep it out of version control).
dir = ".backstop/backups"
# migrate reuses a verified backup of this database younger than this.
max_age = "1h"
# `backstop backup prune` removes older backups, keeping the newest keep_min.
retention = "30d"
keep_min = 3
# "checksums", or "restore" to require a test restore before migrating.
verified = "checksums"
"#;

pub fn run(args: Args, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let file = config.map(Path::to_path_buf).unwrap_or_else(|| args.dir.join("backstop.toml"));
    if file.exists() {
        return Err(UsageError(format!(
            "{} already exists; edit it, or remove it to start over",
            file.display()
        ))
        .into());
    }
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let migrations = args.dir.join("migrations");
    std::fs::create_dir_all(&migrations)
        .with_context(|| format!("creating {}", migrations.display()))?;
    std::fs::write(&file, TEMPLATE).with_context(|| format!("writing {}", file.display()))?;
    print(&format!(
        "wrote {} and {}/\nnext: `backstop new <name>` to write a migration, then `backstop migrate`\n",
        file.display(),
        migrations.display()
    ))?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_template_is_a_valid_config() {
        let cfg = backstop_core::config::Config::parse(
            super::TEMPLATE,
            std::path::Path::new("backstop.toml"),
        );
        assert!(cfg.is_ok(), "{cfg:?}");
    }
}
