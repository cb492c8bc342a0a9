//! `backstop init`: a commented backstop.toml; the project's migrations
//! where its tool keeps them, or else an empty migrations folder; and
//! `.backstop/` in the project's `.gitignore`.

mod gitignore;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;

use backstop_core::source;

use super::{print, UsageError};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory to set up (default: the current one).
    #[arg(default_value = ".")]
    dir: PathBuf,
}

const TEMPLATE: &str = r##"# Backstop configuration. Unknown keys are errors, so typos cannot hide.

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
# Pending migrations run in one transaction, except that Backstop commits
# before a no-transaction migration and before the first use of an enum
# value added earlier in the run, and says so. true: refuse such a batch
# before anything runs instead.
all_or_nothing = false

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
# `backstop backup prune --yes` removes older backups, keeping the newest keep_min.
retention = "30d"
keep_min = 3
# "checksums", or "restore" to require a test restore before migrating.
verified = "checksums"

[rollback]
# Before a down migration drops a table, a column, an enum value in use or
# rows, their values are exported (key and values, CSV, checksummed).
export_dropped = true
dir = ".backstop/exports"

# What follows is off until you uncomment it: remove the "# " before each
# line of a section you want. Every key is explained in docs/config.md.

# [rehearse]
# # migrate refuses migrations without a passing rehearsal this recent.
# required = true
# max_age = "7d"
# report_dir = ".backstop/rehearsals"

# [verify]
# # The suite of checks; migrate and rollback run it afterwards.
# after_migrate = true
#
# [[verify.checks]]
# name = "the database answers"
# kind = "connection"

# [[flags]]
# # A release's flags: `backstop flags sync` creates them (off).
# key = "new_checkout"
# release = "v2"
# description = "the new checkout page"
# default = false

# [serve]
# # `backstop flags serve`: flags over flagd's JSON and OFREP, a status page.
# listen = "127.0.0.1:8750"
# # Writes need a token; a named one is recorded as who made the change.
# tokens = { ops = "${BACKSTOP_OPS_TOKEN}" }
# max_connections = 1000
# header_timeout = "10s"

# [[triggers]]
# # What `backstop respond watch` samples, and the method a breach calls for.
# name = "error rate"
# source = "sql"
# query = "select 0.0"
# above = 0.05
# for = "5m"
# interval = "30s"
# method = "A"

# [decide]
# # After method A, still breaching this long: method B.
# escalate_after = "2m"

# [hooks]
# # Shell commands the methods run at their steps.
# after_kill = "./deploy.sh --redeploy"
# stop_writes = "./maintenance.sh on"
# resume_writes = "./maintenance.sh off"
# timeout = "2m"

# [notify]
# # Where the incident's texts go, and the product's name in them.
# slack_webhook = "${SLACK_WEBHOOK_URL}"
# product = "Acme"

# [compare]
# # "exact" (any difference fails) or "runbook" (the cutover runbook's matrix).
# preset = "exact"

# [drill]
# # `backstop backup drill`: the runbook's targets per method, and how often a
# # drill must pass (`backstop backup drill --due` fails after that).
# method_a = "5m"
# method_b = "20m"
# method_c = "1h"
# every = "90d"
"##;

/// Writes the config and, where no tool keeps them, the migrations
/// folder; then keeps `.backstop/` out of git.
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
    let (wrote, next) = if let Some(place) = source::project::find(&args.dir, None)? {
        // The project's tool keeps its migrations: found, not created.
        let text = TEMPLATE.replacen(FOLDER_LINES, &found_lines(&args.dir, &place), 1);
        std::fs::write(&file, text).with_context(|| format!("writing {}", file.display()))?;
        let layout = place.layout.map(|l| format!(" ({l} layout)")).unwrap_or_default();
        let wrote = format!(
            "wrote {}\nfound the migrations in {}{layout}: {}",
            file.display(),
            place.dir.display(),
            place.why
        );
        (wrote, "`backstop status`, then `backstop check` and `backstop migrate`")
    } else {
        let migrations = args.dir.join("migrations");
        std::fs::create_dir_all(&migrations)
            .with_context(|| format!("creating {}", migrations.display()))?;
        std::fs::write(&file, TEMPLATE).with_context(|| format!("writing {}", file.display()))?;
        let wrote = format!("wrote {} and {}/", file.display(), migrations.display());
        (wrote, "`backstop new <name>` to write a migration, then `backstop migrate`")
    };
    let ignored = gitignore::ensure(&args.dir)?;
    let local = gitignore::local_folder(&args.dir)?;
    print(&format!("{wrote}\n{}\n{local}\nnext: {next}\n", ignored.said()))?;
    Ok(ExitCode::SUCCESS)
}

/// The template's lines that name the migrations folder.
const FOLDER_LINES: &str =
    "# Folder of migrations: VERSION_name/{up,down,verify}.sql (as `backstop new`
# writes them) or VERSION_name.up.sql / VERSION_name.down.sql.
dir = \"migrations\"
";

/// What `init` says of a folder it found: where, what said so, and the
/// lines that would pin it, commented (Backstop finds it on every run).
fn found_lines(root: &Path, place: &source::Place) -> String {
    let dir = place.dir.strip_prefix(root).unwrap_or(&place.dir);
    let dir = dir.to_string_lossy().trim_start_matches("./").to_string();
    let mut text = format!(
        "# Found by `backstop init`: {dir} ({}).\n\
         # Backstop finds it again on every run; uncomment to pin it.\n# dir = {}\n",
        place.why,
        toml_string(&dir)
    );
    if let Some(layout) = place.layout {
        text.push_str(&format!("# layout = \"{}\"\n", layout.name()));
    }
    text
}

/// `s` as a TOML basic string.
fn toml_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_commented_section_of_the_template_is_valid_when_uncommented() {
        // Regression: init wrote no [[flags]], [serve], [[triggers]],
        // [decide], [hooks], [notify] or [compare] at all.
        let all: String = super::TEMPLATE
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(rest)
                    if rest.starts_with('[') || rest.contains(" = ") || rest.starts_with('#') =>
                {
                    rest
                }
                _ if l == "#" => "",
                _ => l,
            })
            .collect::<Vec<_>>()
            .join("\n");
        for section in [
            "[[flags]]",
            "[serve]",
            "[[triggers]]",
            "[decide]",
            "[hooks]",
            "[notify]",
            "[compare]",
            "[rollback]",
        ] {
            assert!(all.contains(section), "{section} is missing");
        }
        // SAFETY of the test's environment: the variables named are set for it.
        let all = all
            .replace("${BACKSTOP_OPS_TOKEN}", "t0ken")
            .replace("${SLACK_WEBHOOK_URL}", "https://hooks.example.com/x");
        let cfg = backstop_core::config::Config::parse(&all, std::path::Path::new("backstop.toml"));
        assert!(cfg.is_ok(), "{cfg:?}\n{all}");
        let cfg = cfg.unwrap();
        assert_eq!(cfg.flags.len(), 1);
        assert_eq!(cfg.triggers.len(), 1);
        assert!(cfg.hooks.after_kill.is_some());
    }

    #[test]
    fn the_template_is_a_valid_config() {
        let cfg = backstop_core::config::Config::parse(
            super::TEMPLATE,
            std::path::Path::new("backstop.toml"),
        );
        assert!(cfg.is_ok(), "{cfg:?}");
    }
}
