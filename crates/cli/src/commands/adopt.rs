//! `backstop history adopt [--from TOOL]`: take over the history another
//! migration tool kept in the database, so Backstop knows what is applied
//! without running anything again (without `--from`, the one `status`
//! names). A dry run unless `--yes`.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use backstop_core::adopt::{self, Plan};
use backstop_core::source::{HistoryTable, Layout};

use super::{print, print_json, Context};
use crate::render::terminal_safe;
use crate::{Connection, Format, Output};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The tool whose history table to adopt: diesel, sqlx, dbmate,
    /// golang-migrate, goose, flyway, sqitch, supabase, prisma or drizzle.
    /// Without it, the one tool's history that `status` names as not
    /// adopted.
    #[arg(long, value_name = "TOOL", value_parser = tool)]
    from: Option<Layout>,
    /// The tool's history table, when it is not the one the tool uses by
    /// default or its settings name (drizzle.config's migrations.table):
    /// `SCHEMA.NAME`, or `NAME` in the search path. Without it, both are
    /// looked for and the one holding rows is read.
    #[arg(long, value_name = "SCHEMA.NAME", value_parser = table)]
    table: Option<HistoryTable>,
    /// Write the adopted history (without it, only show what would be written).
    #[arg(long)]
    yes: bool,
    /// Say what would be written and change nothing (as without --yes).
    #[arg(long, conflicts_with = "yes")]
    dry_run: bool,
    #[command(flatten)]
    conn: Connection,
    #[command(flatten)]
    output: Output,
}

fn tool(text: &str) -> Result<Layout, String> {
    Layout::lookup(text).filter(|_| !text.eq_ignore_ascii_case("backstop")).ok_or_else(|| {
        let names: Vec<&str> = Layout::ALL.iter().map(|l| l.name()).collect();
        format!("unknown tool {text:?}; use one of: {}", names.join(", "))
    })
}

fn table(text: &str) -> Result<HistoryTable, String> {
    HistoryTable::parse(text)
        .ok_or_else(|| format!("{text:?} is no table name; write SCHEMA.NAME or NAME"))
}

pub fn run(args: Args, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    // `--dry-run` conflicts with `--yes`: either way nothing is written then.
    let yes = args.yes && !args.dry_run;
    let ctx = Context::load(config, &args.conn)?;
    let mut client =
        if yes { ctx.connect_session("backstop adopt --yes")? } else { ctx.connect()? };
    let (from, table) = match args.from {
        Some(from) => (from, args.table),
        None => {
            let (from, found) = adopt::the_unadopted(&mut client, &ctx.migrations)?;
            (from, Some(args.table.unwrap_or(found)))
        }
    };
    let project = adopt::scope(from, &ctx.dir);
    let plan = if yes {
        adopt::apply(
            &mut client,
            from,
            &ctx.migrations,
            project.as_deref(),
            table.as_ref(),
            ctx.settings.lock_wait,
        )?
    } else {
        adopt::prepare(&mut client, from, &ctx.migrations, project.as_deref(), table.as_ref())?
    };
    let written = yes && plan.ok();
    match args.output.format {
        Format::Json => print_json(&serde_json::json!({
            "dry_run": !yes,
            "written": written,
            "plan": plan,
        }))?,
        Format::Text => print(&render(&plan, yes, &ctx))?,
    }
    Ok(if plan.ok() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn render(plan: &Plan, yes: bool, ctx: &Context) -> String {
    let mut out = String::new();
    let label = |version: &str| {
        ctx.migrations
            .iter()
            .find(|m| m.version == version)
            .map_or(version.to_string(), |m| terminal_safe(&m.label()).into_owned())
    };
    let _ = writeln!(out, "{} history in {}", plan.tool.name(), plan.table);
    if !plan.findings.is_empty() {
        let _ = writeln!(out, "✗ cannot adopt: {} finding(s)", plan.findings.len());
        for f in &plan.findings {
            let _ = writeln!(out, "  {} ({}): {}", f.version, f.kind, terminal_safe(&f.message));
        }
        let _ = writeln!(
            out,
            "nothing was adopted; resolve these, then run `backstop history adopt` again"
        );
        return out;
    }
    let list = |versions: Vec<String>| {
        let mut shown: Vec<String> = versions.iter().take(8).map(|v| label(v)).collect();
        if versions.len() > 8 {
            shown.push(format!("… and {} more", versions.len() - 8));
        }
        shown.join(", ")
    };
    if !plan.already.is_empty() {
        let _ = writeln!(out, "already in Backstop's history: {}", plan.already.len());
    }
    let verb = if yes { "✓ adopted" } else { "would adopt" };
    let versions: Vec<String> = plan.adopt.iter().map(|a| a.version.clone()).collect();
    let _ = writeln!(out, "{verb} {} migration(s): {}", plan.adopt.len(), list(versions));
    let _ = writeln!(
        out,
        "pending afterwards ({}): {}",
        plan.pending.len(),
        list(plan.pending.clone())
    );
    if yes {
        let _ = writeln!(
            out,
            "recorded in backstop.applied and backstop.events; {} is left as it was",
            plan.table
        );
    } else {
        let _ = writeln!(out, "dry run: nothing was written; run with --yes to adopt");
    }
    out
}
