//! Reverting applied migrations with their downs, newest first, in one
//! transaction under the same guards as `migrate`, and committing only
//! when the schema is the one before them again ([`super::expect`]).

use postgres::Client;

use super::*;

/// Which applied migrations a rollback reverts.
#[derive(Debug, Clone)]
pub enum RollbackTarget {
    /// The last N applied.
    Steps(usize),
    /// Everything applied after this version (which stays applied).
    To(String),
    /// Everything applied, newest first, down to the first migration that
    /// has no down (`--to start`).
    Start,
}

/// Reverts applied migrations with their down files, newest first, in one
/// transaction, under the same guards.
pub fn rollback(
    client: &mut Client,
    migrations: &[Migration],
    settings: &Settings,
    target: &RollbackTarget,
    dry_run: bool,
    progress: &mut dyn Progress,
) -> Result<Report, ApplyError> {
    with_lock(client, settings, progress, |client, progress| {
        audit::not_expanded(client, "rollback")?;
        let status = status(client, migrations)?;
        // Repeatable migrations have no down; a rollback passes them by.
        let repeatable = |v: &str| migrations.iter().any(|m| m.version == v && m.repeatable);
        let mut applied: Vec<&Entry> =
            status.applied.iter().filter(|e| !repeatable(&e.version)).collect();
        applied.reverse();
        let mut chosen: Vec<&Entry> = match target {
            RollbackTarget::Steps(n) => applied.into_iter().take(*n).collect(),
            RollbackTarget::Start => applied,
            RollbackTarget::To(v) => {
                if !applied.iter().any(|e| &e.version == v) {
                    return Err(ApplyError::NotApplied(v.clone()));
                }
                applied.into_iter().take_while(|e| &e.version != v).collect()
            }
        };
        let drifted: Vec<Drift> = status
            .drifted
            .iter()
            .filter(|d| chosen.iter().any(|c| c.version == d.version))
            .cloned()
            .collect();
        if !drifted.is_empty() {
            return Err(refused(client, "rollback", ApplyError::Drift(drifted)));
        }
        audit::not_beneath(client, migrations, settings, &chosen)?;
        let targets: Vec<&Migration> = chosen
            .iter()
            .filter_map(|e| migrations.iter().find(|m| m.version == e.version))
            .collect();
        let kept = status::with_kept_downs(client, &targets)?;
        let mut targets: Vec<&Migration> = targets
            .into_iter()
            .map(|m| kept.iter().find(|k| k.version == m.version).unwrap_or(m))
            .collect();
        // To the start: as far as the downs reach.
        let mut stopped_before = None;
        if let (RollbackTarget::Start, Some(at)) =
            (target, targets.iter().position(|m| m.down.is_none()).filter(|&at| at > 0))
        {
            stopped_before = Some(targets[at].label());
            targets.truncate(at);
            chosen.retain(|e| targets.iter().any(|m| m.version == e.version));
        }
        if !dry_run && !chosen.is_empty() {
            let versions = chosen.iter().map(|e| e.version.clone()).collect();
            started(client, "rollback", versions, settings.reason.as_deref())?;
        }
        let missing: Vec<String> =
            targets.iter().filter(|m| m.down.is_none()).map(missing_down).collect();
        if !missing.is_empty() {
            return Err(refused(client, "rollback", ApplyError::MissingDown(missing)));
        }
        let mut problems = problems_of(&targets, &[Part::Down]);
        if problems.is_empty() {
            let server = crate::pg::server_version_num(client).map_err(|source| {
                ApplyError::Db(crate::pg::DbError::new("reading the server version", source))
            })?;
            let server = crate::pg::bins::major_of_num(server);
            problems.extend(targets.iter().filter_map(|m| m.needs_newer_server(server)));
        }
        if !problems.is_empty() {
            return Err(refused(client, "rollback", ApplyError::Unrunnable(problems)));
        }
        let blocks = rows_block::check(client, &targets).map_err(|source| {
            ApplyError::Db(crate::pg::DbError::new("reading the rows the downs meet", source))
        })?;
        if !blocks.is_empty() {
            return Err(refused(client, "rollback", ApplyError::RowsBlock(blocks)));
        }
        let plan = plan_down(&targets);
        // What the downs must bring back, and the schema before them.
        let check = match dry_run {
            true => None,
            false => {
                let in_step = settings.tool_history.writes();
                Some(expect::Check::prepare(client, migrations, &targets, in_step).map_err(
                    |source| {
                        ApplyError::Db(crate::pg::DbError::new(
                            "reading the schema before the downs",
                            source,
                        ))
                    },
                )?)
            }
        };
        let run = Run {
            kind: "rollback",
            dry_run,
            stamp: &Stamp::default(),
            gates: Default::default(),
            before: None,
            check: check.as_ref(),
        };
        let mut report = run_groups(client, settings, &plan, &run, progress)?;
        report.compared = check.and_then(|c| c.checked());
        report.not_put_back = lost::of(&targets, &chosen);
        report.stopped_before = stopped_before;
        if dry_run {
            report.together = together(client, &chosen)?;
        }
        Ok(report)
    })
}

/// What a dry run says of the downs of `chosen` (newest first) run as one
/// chain: the deploy that proved them together (all of them, or a run
/// they are part of; the run that applied them as they are now, not an
/// earlier one) and how it went, or that none did.
fn together(client: &mut Client, entries: &[&Entry]) -> Result<Option<String>, ApplyError> {
    if entries.len() < 2 {
        return Ok(None);
    }
    let chosen: Vec<&str> = entries.iter().map(|e| e.version.as_str()).collect();
    let newest = entries.iter().filter_map(|e| e.applied_at).max();
    let chains = crate::schema::events::chains(client).map_err(|source| {
        ApplyError::Db(crate::pg::DbError::new(
            "reading the deploys' proofs of their downs",
            source,
        ))
    })?;
    let mut listed: Vec<&str> = chosen.to_vec();
    listed.reverse();
    let these = listed.join(", ");
    let covering = chains.iter().find(|(event, versions, _, _)| {
        newest.is_none_or(|n| event.at >= n)
            && chosen.iter().all(|v| versions.iter().any(|w| w == v))
    });
    let Some((event, versions, how, stops_at)) = covering else {
        return Ok(Some(format!(
            "no deploy's record proves the downs of {these} together as one chain; the \
             rollback's own check before COMMIT compares the result and refuses a difference"
        )));
    };
    let at = event.at.format("%Y-%m-%d %H:%M UTC");
    // Downs run newest first: one that failed among these is where this
    // rollback stops too.
    if let Some(v) = stops_at.as_deref().filter(|v| chosen.contains(v)) {
        return Ok(Some(format!(
            "warning: this rollback would stop at the down of {v}, refused with nothing \
             committed: at the deploy of {at} the downs of {}, run as a rollback runs them, \
             failed there ({how})",
            versions.join(", ")
        )));
    }
    Ok(Some(match (how.as_str(), versions.len() == chosen.len()) {
        ("proved", true) => format!("the downs of {these} were proved together at the deploy of {at}: run as this rollback runs them, they bring the schema back"),
        ("proved", false) => format!("the downs of {these} were proved together, with the ones before them, at the deploy of {at}"),
        (why, true) => format!("warning: the downs of {these} were proved at the deploy of {at} not to bring the schema back together: {why}; this rollback would be refused by its own check before COMMIT"),
        (why, false) => format!("warning: at the deploy of {at} the downs of {} did not bring the schema back together ({why}); these are the newest of them, not proved as a chain of their own; the rollback's own check before COMMIT compares the result", versions.join(", ")),
    }))
}

/// A migration without a down, as a rollback's refusal names it: with
/// its down file where that holds only comments or blanks.
fn missing_down(m: &&Migration) -> String {
    match &m.empty_down {
        Some(path) => format!("{} ({} holds only comments or blanks)", m.label(), path.display()),
        None => m.label(),
    }
}
