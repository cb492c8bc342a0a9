//! `backstop status`: applied, pending and drifted migrations.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use backstop_core::migrate;

use super::{print, print_json, Context};
use crate::{Connection, Format, Output};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    conn: Connection,
    #[command(flatten)]
    output: Output,
}

pub fn run(args: Args, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let ctx = Context::load(config, &args.conn)?;
    let mut client = ctx.connect()?;
    let status = migrate::status(&mut client, &ctx.migrations)?;
    match args.output.format {
        Format::Json => print_json(&status)?,
        Format::Text => print(&render(&status))?,
    }
    Ok(if status.drifted.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn render(s: &migrate::Status) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "applied ({}):", s.applied.len());
    for e in &s.applied {
        let drift = s.drifted.iter().find(|d| d.version == e.version);
        let mark = match drift.map(|d| d.kind) {
            Some("missing") => "  ! file missing",
            Some(_) => "  ! changed since applied",
            None => "",
        };
        let at =
            e.applied_at.map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string()).unwrap_or_default();
        let _ = writeln!(
            out,
            "  {}_{}  {at}  by {}{mark}",
            e.version,
            e.name,
            e.applied_by.as_deref().unwrap_or("?")
        );
    }
    let _ = writeln!(out, "pending ({}):", s.pending.len());
    for e in &s.pending {
        let nt = if e.no_transaction { "  (no-transaction)" } else { "" };
        let _ = writeln!(out, "  {}_{}{nt}", e.version, e.name);
    }
    if !s.drifted.is_empty() {
        let _ = writeln!(out, "drifted ({}):", s.drifted.len());
        for d in &s.drifted {
            let _ = writeln!(out, "  {d}");
        }
        let _ =
            writeln!(out, "restore the files, or accept the change with `backstop repair VERSION`");
    }
    out
}
