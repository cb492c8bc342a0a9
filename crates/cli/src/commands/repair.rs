//! `backstop history repair VERSION`: accept an applied migration's edited file.

use std::path::Path;
use std::process::ExitCode;

use backstop_core::migrate;

use super::{print, Context};
use crate::render::StderrProgress;
use crate::Connection;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The applied migration whose current file is accepted.
    #[arg(value_name = "VERSION")]
    migration: String,
    #[command(flatten)]
    conn: Connection,
}

pub fn run(args: Args, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let ctx = Context::load(config, &args.conn)?;
    let mut client = ctx.connect_session("backstop repair")?;
    let r = migrate::repair(
        &mut client,
        &ctx.migrations,
        &ctx.settings,
        &args.migration,
        &mut StderrProgress,
    )?;
    if r.changed {
        print(&format!(
            "repaired {}: checksum {} -> {} (recorded in backstop.events)\n",
            r.version,
            &r.old_checksum[..12.min(r.old_checksum.len())],
            &r.new_checksum[..12.min(r.new_checksum.len())]
        ))?;
    } else {
        print(&format!("{} already matches its file; nothing to repair\n", r.version))?;
    }
    Ok(ExitCode::SUCCESS)
}
