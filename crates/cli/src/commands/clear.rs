//! `backstop data clear --target URL`: empties every table of a database (or
//! those named), e.g. the new database of a cutover that is rolled back
//! before it is copied again, after a verified backup of it. Without
//! `--yes` it shows the tables in foreign-key order with their rows.

use std::path::Path;
use std::process::ExitCode;

use backstop_core::backup::{self, store::Store, tools::Tools};
use backstop_core::clear;
use backstop_core::pg::{self, redact};

use super::{print, print_json};
use crate::render::terminal_safe;
use crate::{Format, Output};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The database to empty.
    #[arg(long, value_name = "URL")]
    target: String,
    /// Only these tables (`schema.table` or `table`, comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "TABLE,...")]
    tables: Vec<String>,
    /// Empty them (without it: say what would be emptied).
    #[arg(long)]
    yes: bool,
    /// Say what would be emptied and change nothing (as without --yes).
    #[arg(long, conflicts_with = "yes")]
    dry_run: bool,
    #[command(flatten)]
    output: Output,
}

pub fn run(args: Args, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let config = super::config(config)?;
    pg::conn::parse_url(&args.target)?;
    let mut client = pg::connect(&args.target, "backstop clear")?;
    let plan = clear::plan(&mut client, &args.tables)?;
    let shown = redact(&args.target);
    if !args.yes || args.dry_run {
        if args.output.format == Format::Json {
            print_json(&serde_json::json!({ "target": shown, "plan": plan, "cleared": false }))?;
        } else {
            let mut out = format!(
                "clear would empty {} table(s) of {}, {} row(s), referring tables first:\n",
                plan.tables.len(),
                terminal_safe(&shown),
                plan.tables.iter().map(|t| t.rows).sum::<i64>()
            );
            for t in &plan.tables {
                out.push_str(&format!("  {} ({} row(s))\n", terminal_safe(&t.table), t.rows));
            }
            if !plan.cycles.is_empty() {
                out.push_str(&format!(
                    "  on a foreign-key cycle (emptied together in one TRUNCATE): {}\n",
                    terminal_safe(&plan.cycles.join(", "))
                ));
            }
            for o in &plan.outside {
                out.push_str(&format!("  ✗ referred to from outside: {}\n", terminal_safe(o)));
            }
            if !plan.kept_histories.is_empty() {
                out.push_str(&format!(
                    "  kept: {} (a migration tool's history: emptied, the tool would run its \
                     migrations again on the schema that stays; name it in --tables to empty it)\n",
                    terminal_safe(&plan.kept_histories.join(", "))
                ));
            }
            out.push_str("a verified backup is taken first; nothing changed; run again with --yes to empty them\n");
            print(&out)?;
        }
        return Ok(if plan.outside.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) });
    }
    if !plan.outside.is_empty() {
        return Err(clear::ClearError::ReferredFromOutside(plan.outside).into());
    }
    // The backup first, checked against its checksums, on the configured store.
    let store = Store::new(&config.backup.dir);
    let tools = Tools::find()?;
    let options = backup::create::CreateOptions {
        label: Some("before clear".into()),
        jobs: super::backup::jobs(&config),
        lock_wait: config.backup.lock_wait,
    };
    let taken = backup::create(&args.target, &store, &tools, &options, &mut backup::Quiet)?;
    backup::verify::verify(&store, &tools, &taken.id, false, 1, &mut backup::Quiet)?;
    let rows = clear::clear(&mut client, &plan, config.migrations.lock_wait)?;
    // Where the backup is, said whole: with no backstop.toml the folder is
    // relative to where clear ran.
    let folder = store.path(&taken.id);
    let folder = std::fs::canonicalize(&folder).unwrap_or(folder);
    match args.output.format {
        Format::Json => print_json(&serde_json::json!({
            "target": shown,
            "plan": plan,
            "cleared": true,
            "rows": rows,
            "backup": taken.id,
            "backup_path": folder,
        }))?,
        Format::Text => print(&format!(
            "✓ backup {} of {} ({}, in {}), verified\n✓ emptied {} table(s), {rows} row(s) removed in one transaction; `backstop backup restore {}` brings them back\n",
            taken.id,
            terminal_safe(&shown),
            backstop_core::kit::size::human(taken.size_bytes),
            terminal_safe(&folder.display().to_string()),
            plan.tables.len(),
            taken.id
        ))?,
    }
    Ok(ExitCode::SUCCESS)
}
