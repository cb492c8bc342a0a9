//! `backstop backup unfreeze`: lift a write freeze (one an interrupted restore
//! left behind, or one kept on purpose), audited.

use std::path::Path;
use std::process::ExitCode;

use backstop_core::freeze;
use backstop_core::pg::lock::MigrationLock;
use chrono::Utc;

use super::{print, print_json};
use crate::{Connection, Format, Output};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Give a frozen role its write grants back (instead of the database's freeze).
    #[arg(long, value_name = "ROLE", value_parser = super::role_name)]
    role: Option<String>,
    #[command(flatten)]
    conn: Connection,
    #[command(flatten)]
    output: Output,
}

pub fn run(args: Args, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let (config, url) = super::target(config, &args.conn)?;
    let store = backstop_core::backup::Store::new(&config.backup.dir);
    // A restore that stopped in its swap may have left the database closed
    // to sessions.
    backstop_core::backup::restore::reopen(&url, &store)?;
    let mut client = backstop_core::pg::connect(&url, "backstop")?;
    if let Some(role) = &args.role {
        let mut lock = super::freeze::locked(&mut client, &config)?;
        let done = freeze::unfreeze_role(&mut lock, role)?;
        drop(lock);
        match args.output.format {
            Format::Json => print_json(&serde_json::json!({
                "role": done.as_ref().map_or(role.as_str(), |d| d.role.as_str()),
                "frozen_as": done.as_ref().map(|d| &d.frozen_as),
                "dropped": done.as_ref().map(|d| d.dropped),
                "granted": done.as_ref().map(|d| &d.granted),
                "gone": done.as_ref().map(|d| &d.gone),
            }))?,
            Format::Text => print(&match &done {
                Some(d) => role_unfrozen(d),
                None => format!(
                    "{} is not frozen; nothing changed\n",
                    crate::render::terminal_safe(role)
                ),
            })?,
        }
        return Ok(ExitCode::SUCCESS);
    }
    // A running restore holds the migration lock; wait for it like migrate does.
    let mut lock = MigrationLock::acquire(&mut client, config.migrations.lock_wait, |holder| {
        if let Some(h) = holder {
            eprintln!("waiting for the migration lock held by {h}");
        }
    })
    .map_err(backstop_core::migrate::ApplyError::from)?;
    let lifted = freeze::unfreeze(&mut lock)?;
    drop(lock);
    // What earlier restores left behind and no unfinished one needs.
    use backstop_core::backup::restore;
    for name in restore::drop_leftovers(&url, &store)? {
        eprintln!("dropped {name}, left by an earlier restore");
    }
    if let Some(j) = restore::journal(&store)? {
        let kept = j
            .temp_database
            .as_deref()
            .map(|d| format!("its copy {d} is kept for it; "))
            .unwrap_or_default();
        eprintln!(
            "warning: the restore of backup {} is unfinished ({}): {kept}`backstop backup restore {} --resume` \
             finishes it, `backstop backup restore --abandon` gives it up",
            j.backup_id, j.step, j.backup_id
        );
    }
    match args.output.format {
        Format::Json => print_json(&serde_json::json!({ "lifted": lifted }))?,
        Format::Text => print(&match &lifted {
            Some(s) => format!(
                "lifted the write freeze on {} (set {} ago by {}: {})\n",
                s.database,
                backstop_core::kit::duration::age(Utc::now() - s.since),
                s.actor,
                s.reason
            ),
            None => "no write freeze to lift\n".to_string(),
        })?,
    }
    Ok(ExitCode::SUCCESS)
}

/// What `unfreeze --role` did, naming the role as it is now and as it was
/// frozen when it has been renamed since.
fn role_unfrozen(d: &freeze::RoleUnfreeze) -> String {
    use crate::render::terminal_safe;
    let (role, was) = (terminal_safe(&d.role), terminal_safe(&d.frozen_as));
    if d.dropped {
        return format!(
            "unfroze {was}: the role was dropped during its freeze, so none of its {} write \
             grant(s) could be given back; its freeze record is removed\n",
            d.gone.len()
        );
    }
    let renamed = if d.role == d.frozen_as {
        String::new()
    } else {
        format!(" (frozen as {was}, renamed since)")
    };
    let mut out = format!(
        "unfroze {role}{renamed}: granted back the {} write grant(s) its freeze revoked\n",
        d.granted.len()
    );
    for g in &d.gone {
        out.push_str(&format!(
            "  not granted: {} on {}.{}{}: dropped during the freeze\n",
            g.privilege,
            terminal_safe(&g.schema),
            terminal_safe(&g.table),
            g.column.as_deref().map(|c| format!(" ({})", terminal_safe(c))).unwrap_or_default()
        ));
    }
    out
}
