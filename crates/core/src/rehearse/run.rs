//! The run driver: copy the target, snapshot the copy, choose the pending
//! migrations, round-trip each on the copy with its locks traced, run the
//! `[verify]` suite on the migrated copy, play the failure scenarios on
//! fresh copies, and gather it all into one [`Rehearsal`].

use std::borrow::Cow;
use std::time::Instant;

use postgres::Client;

use super::gate::key_of;
use super::locks::Tracing;
use super::outcome::{passed, Rehearsal, Rehearsed, Step};
use super::snapshot::{track, Snapshot};
use super::trips::{OnCopy, Stages};
use super::{lossy, ms, Options, RehearseError};
use crate::copies::clone::Workspace;
use crate::copies::dump::db_err;
use crate::downs::made::Makers;
use crate::migrate::{self, ApplyError, Note, Progress, Settings};
use crate::pg::Prepared;
use crate::source::Migration;

/// Which of `migrations` are pending on the copy, within `range`.
fn pending<'m>(
    client: &mut Client,
    migrations: &'m [Migration],
    range: &Option<(String, String)>,
) -> Result<Vec<&'m Migration>, RehearseError> {
    let status = migrate::status(client, migrations)?;
    if !status.drifted.is_empty() {
        return Err(ApplyError::Drift(status.drifted).into());
    }
    let versions: Vec<&str> = status.pending.iter().map(|p| p.version.as_str()).collect();
    Ok(within(migrations, &versions, range))
}

/// The migrations whose versions are in `pending`, in folder order, and
/// within the inclusive `range` of folder positions. A bound that names
/// no migration of the folder leaves that side open.
fn within<'m>(
    migrations: &'m [Migration],
    pending: &[&str],
    range: &Option<(String, String)>,
) -> Vec<&'m Migration> {
    let order = crate::source::Order::of(migrations);
    let bounds = range.as_ref().map(|(a, b)| (order.position(a), order.position(b)));
    migrations
        .iter()
        .enumerate()
        .filter(|(_, m)| pending.contains(&m.version.as_str()))
        .filter(|(i, _)| match bounds {
            Some((a, b)) => a.is_none_or(|a| *i >= a) && b.is_none_or(|b| *i <= b),
            None => true,
        })
        .map(|(_, m)| m)
        .collect()
}

/// Why the copy must be in a throwaway cluster, when a migration the
/// rehearsal may run (a pending one, up or down) changes what the whole
/// server shares: a copy on the source's server would change production
/// (a role, `ALTER SYSTEM`, a role's settings). A statement that cannot
/// be rehearsed anywhere without reaching outside (a tablespace's
/// directory, a subscription) is refused before anything runs. Also the
/// extensions those migrations create (a down that creates one: its up
/// dropped it).
fn server_reach(
    source_url: &str,
    migrations: &[Migration],
    options: &Options,
) -> Result<(Option<String>, Vec<String>), RehearseError> {
    use backstop_sql::refs::Reach;
    let mut source = crate::copies::dump::connect_source(source_url)?;
    let applied = if crate::schema::exists(&mut source).map_err(db_err("reading the history"))? {
        crate::schema::applied::versions(&mut source).map_err(db_err("reading the history"))?
    } else {
        Vec::new()
    };
    drop(source);
    // The pending migrations before a range are applied to the copy too
    // (`before_range`): every one up to the range's end counts.
    let order = crate::source::Order::of(migrations);
    let in_range = |m: &Migration| match &options.range {
        Some((_, b)) => match (order.position(&m.version), order.position(b)) {
            (Some(at), Some(end)) => at <= end,
            _ => true,
        },
        None => true,
    };
    let mut isolate = None;
    let mut refs = backstop_sql::refs::Refs::default();
    for m in migrations.iter().filter(|m| !applied.contains(&m.version) && in_range(m)) {
        for file in std::iter::once(&m.up).chain(m.down.as_ref()) {
            for s in &file.statements {
                refs.add(&s.sql);
                let place = || format!("{}:{}", file.path.display(), s.position.line);
                match backstop_sql::refs::reach(&s.sql) {
                    Some(Reach::Outside(why)) => {
                        return Err(RehearseError::Unsafe { place: place(), why })
                    }
                    Some(Reach::Server(what)) if isolate.is_none() => {
                        isolate = Some(format!(
                            "{what} at {} changes what the whole server shares: rehearsed where it \
                             cannot reach production",
                            place()
                        ))
                    }
                    _ => {}
                }
            }
        }
    }
    let extensions =
        refs.created_extensions.into_iter().chain(refs.maybe_created_extensions).collect();
    Ok((isolate, extensions))
}

/// Rehearses the pending migrations of the database at `source_url`; the
/// downs of those that have none are worked out and proved by `makers`,
/// where they are given (otherwise their trip is `no down`).
pub fn rehearse(
    source_url: &str,
    migrations: &[Migration],
    settings: &Settings,
    options: &Options,
    makers: Option<Makers<'_>>,
    progress: &mut dyn Progress,
) -> Result<Rehearsal, RehearseError> {
    // The copy is thrown away: its tools' histories are not kept in step.
    let settings = &settings.on_copy(migrations);
    // Nor does a copy send what production would: a call that reaches
    // outside the database (pg_net, dblink) is not run there.
    let database = crate::copies::dump::source_dbname(source_url)?;
    let (replayed, outside) = crate::copies::held_back::replayed(migrations, &database);
    let migrations: &[Migration] = &replayed;
    let started = Instant::now();
    let started_at = chrono::Utc::now();
    let id = format!("{}-{:04x}", started_at.format("%Y%m%d-%H%M%S"), rand::random::<u16>());
    let mut steps = Vec::new();

    let t = Instant::now();
    progress.note(Note::Stage { index: 1, total: 0, name: "copying the database" });
    let (isolate, extensions) = server_reach(source_url, migrations, options)?;
    let isolated = isolate.is_some();
    let mut workspace = Workspace::open(source_url, &options.copying(), isolate, &extensions)?;
    let settings = &workspace.settings_for(settings);
    let main_copy = workspace.copy("round_trip")?;
    steps.push(Step {
        name: "copy".into(),
        ok: true,
        duration_ms: ms(t.elapsed()),
        detail: workspace.info.describe(),
    });

    let mut client = main_copy.connect()?;
    let mut prepared = Prepared::default();
    let todo: Vec<Migration> =
        pending(&mut client, migrations, &options.range)?.into_iter().cloned().collect();
    steps.extend(not_replayed(&outside, &todo));
    let (todo, unrunnable) = up_to_unrunnable(todo);
    // What is not rehearsed is not applied to the copies either.
    let migrations = &*without(migrations, unrunnable.as_ref());
    steps.extend(unrunnable.map(|u| u.step));
    let todo = match before_range(&mut client, migrations, settings, options, &todo, progress)? {
        Some(step) if !step.ok => {
            steps.push(step);
            Vec::new()
        }
        Some(step) => {
            steps.push(step);
            todo
        }
        None => todo,
    };
    let mut stages = Stages::new(todo.len(), options.verifies(), options.expand.is_some());
    stages.next(progress, "snapshot of the copy");
    let t = Instant::now();
    let mut tracked = track(&mut client, &mut prepared)?;
    let start = Snapshot { schema: tracked.schema(), tables: tracked.tables() };
    steps.push(Step {
        name: "snapshot".into(),
        ok: true,
        duration_ms: ms(t.elapsed()),
        detail: format!("schema {} and {} tables", start.schema.fingerprint(), start.tables.len()),
    });

    let baseline = verify_baseline(&mut client, options)?;
    let mut tracing = Tracing::new(progress);
    let main = OnCopy {
        client: &mut client,
        copy: &main_copy,
        prepared: &mut prepared,
        tracked: &mut tracked,
    };
    let played = super::plays::play(
        &mut workspace,
        main,
        (migrations, &todo),
        (settings, options),
        isolated,
        (&mut stages, &mut tracing),
        makers,
        (baseline, &start.schema),
    )?;
    drop(client);
    let (trips, scenarios) = played;
    steps.extend(trips.steps);
    let lossy = lossy::find(&todo);
    let ok = passed(&steps, &trips.round_trip, &scenarios);
    Ok(Rehearsal {
        id,
        ok,
        started_at,
        duration_ms: ms(started.elapsed()),
        copy: workspace.info.clone(),
        tables: start.tables.len(),
        rows: start.tables.iter().map(|t| t.rows).sum(),
        key: key_of(todo.iter()),
        migrations: todo.iter().map(rehearsed).collect(),
        steps,
        round_trip: trips.round_trip,
        scenarios,
        lossy,
        locks: trips.locks,
        report: None,
        statements: None,
    })
}

fn rehearsed(m: &Migration) -> Rehearsed {
    Rehearsed { version: m.version.clone(), name: m.name.clone(), checksum: m.checksum.clone() }
}

/// The step that names the calls reaching outside the database that the
/// copies run the migrations of `todo` without.
fn not_replayed(outside: &[(String, String)], todo: &[Migration]) -> Option<Step> {
    let calls: Vec<&str> = outside
        .iter()
        .filter(|(version, _)| todo.iter().any(|t| &t.version == version))
        .map(|(_, call)| call.as_str())
        .collect();
    (!calls.is_empty()).then(|| Step {
        name: "not replayed".into(),
        ok: true,
        duration_ms: 0,
        detail: format!(
            "{}: reaches outside the database, so the copies run the migration without it",
            calls.join(", ")
        ),
    })
}

/// The pending migrations from the first that cannot run as written: the
/// step that names them, and their versions.
struct Unrunnable {
    step: Step,
    skipped: Vec<String>,
}

/// `migrations` without those `unrunnable` names.
fn without<'m>(
    migrations: &'m [Migration],
    unrunnable: Option<&Unrunnable>,
) -> Cow<'m, [Migration]> {
    match unrunnable {
        Some(u) => migrations.iter().filter(|m| !u.skipped.contains(&m.version)).cloned().collect(),
        None => Cow::Borrowed(migrations),
    }
}

/// `todo` up to the first migration whose up (or verify) cannot run as
/// written, as `migrate --to` would apply it, and the failed step that
/// names that file and the migrations after it, which are not rehearsed.
fn up_to_unrunnable(mut todo: Vec<Migration>) -> (Vec<Migration>, Option<Unrunnable>) {
    use crate::source::Part;
    let broken = |m: &Migration| !m.runnable(Part::Up) || !m.runnable(Part::Verify);
    let Some(at) = todo.iter().position(broken) else { return (todo, None) };
    let rest: Vec<Migration> = todo.split_off(at);
    let problems: Vec<String> = rest[0]
        .problems
        .iter()
        .filter(|p| matches!(p.part, Part::Up | Part::Verify))
        .map(|p| p.to_string())
        .collect();
    let after: Vec<String> = rest[1..].iter().map(Migration::label).collect();
    let mut detail = format!(
        "{} cannot run as written ({}): rehearsed up to the migration before it",
        rest[0].label(),
        problems.join("; ")
    );
    if !after.is_empty() {
        detail.push_str(&format!("; not rehearsed after it: {}", after.join(", ")));
    }
    let step = Step { name: "not rehearsed".into(), ok: false, duration_ms: 0, detail };
    (todo, Some(Unrunnable { step, skipped: rest.iter().map(|m| m.version.clone()).collect() }))
}

/// With a range, the pending migrations before it are applied to the copy
/// first, not rehearsed: the rehearsed ones start where they will. The
/// step that says so; `None` when there are none.
fn before_range(
    client: &mut Client,
    migrations: &[Migration],
    settings: &Settings,
    options: &Options,
    todo: &[Migration],
    progress: &mut dyn Progress,
) -> Result<Option<Step>, RehearseError> {
    let (Some(_), Some(first)) = (&options.range, todo.first()) else { return Ok(None) };
    let order = crate::source::Order::of(migrations);
    let at = order.position(&first.version);
    let earlier: Vec<&Migration> = pending(client, migrations, &None)?
        .into_iter()
        .filter(|m| order.position(&m.version) < at)
        .collect();
    let Some(last) = earlier.last() else { return Ok(None) };
    let t = Instant::now();
    let options = migrate::MigrateOptions {
        to: Some(last.version.clone()),
        allow_out_of_order: true,
        ..Default::default()
    };
    let report = migrate::migrate(client, migrations, settings, &options, &mut [], progress)?;
    let (ok, detail) = match report.failure {
        None => (
            true,
            format!(
                "{} pending migration(s) before the range applied first, not rehearsed",
                earlier.len()
            ),
        ),
        Some(f) => (
            false,
            format!(
                "{} before the range fails, so the range cannot be rehearsed: {}",
                f.version, f.message
            ),
        ),
    };
    Ok(Some(Step { name: "before the range".into(), ok, duration_ms: ms(t.elapsed()), detail }))
}

/// Checks that compare with a snapshot compare with the copy's start.
fn verify_baseline(
    client: &mut Client,
    options: &Options,
) -> Result<Option<crate::verify::Snapshot>, RehearseError> {
    Ok(match &options.verify {
        Some(plan) if !plan.section.checks.is_empty() => {
            let scope = crate::verify::ChecksumScope::for_suite(&plan.section);
            Some(crate::verify::Snapshot::take(client, "rehearsal start", &scope).map_err(|e| {
                RehearseError::Copy(crate::copies::CopyError::Clone {
                    reason: format!("could not take the verify baseline: {e}"),
                })
            })?)
        }
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder() -> Vec<Migration> {
        let tmp = tempfile::tempdir().unwrap();
        for v in ["1_a", "2_b", "3_c", "4_d"] {
            let p = tmp.path().join(v).join("up.sql");
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "SELECT 1;").unwrap();
        }
        crate::source::load(tmp.path(), None).unwrap().migrations
    }

    fn versions(ms: Vec<&Migration>) -> Vec<&str> {
        ms.into_iter().map(|m| m.version.as_str()).collect()
    }

    #[test]
    fn the_range_bounds_the_pending_migrations_by_folder_position() {
        let ms = folder();
        let range = |a: &str, b: &str| Some((a.to_string(), b.to_string()));
        assert_eq!(versions(within(&ms, &["4", "2", "3"], &None)), ["2", "3", "4"]);
        assert_eq!(versions(within(&ms, &["2", "3", "4"], &range("1", "3"))), ["2", "3"]);
        assert_eq!(versions(within(&ms, &["1", "2", "3", "4"], &range("2", "2"))), ["2"]);
        assert_eq!(
            versions(within(&ms, &["1", "2", "3", "4"], &range("3", "9"))),
            ["3", "4"],
            "an unknown bound leaves its side open"
        );
        assert!(within(&ms, &["1"], &range("2", "4")).is_empty());
    }
}
