//! Certain failures, found where they cannot harm: the pending migrations
//! run as `migrate` runs them on a copy of the target's schema (never the
//! target itself). `check` runs the ups alone there (`downs::ups`): it
//! proves no down, so it costs about a plain apply of what is pending,
//! on every layout, up-only or not. `migrate`'s check gate, whose deploy
//! proves the downs anyway, runs them on the copy its keep gate proves
//! on (`downs::keep`) and hands it the proofs, so nothing runs twice. A
//! statement that fails on the copy is a critical BS405 with the server's
//! own error, the statement and its place: `migrate`'s check gate then
//! refuses before any backup is taken.

use std::path::PathBuf;

use backstop_lint::{Code, Finding, Position};
use postgres::Client;

use crate::kit::duration::human;
use crate::migrate::{self, Failure, Progress, Stage};
use crate::source::Migration;

/// What running the pending migrations on a copy needs.
pub struct OnCopy {
    /// The target's URL: the copy is made of its schema.
    pub url: String,
    /// Every migration of the folder.
    pub migrations: Vec<Migration>,
    pub settings: migrate::Settings,
    /// The store of proofs the deploy reads (`[rehearse] proofs`).
    pub proofs: PathBuf,
    /// Where a deploy's gate that keeps the downs takes what this run
    /// proved, instead of proving it again (`migrator`'s keep gate).
    pub hand_to: Option<Handed>,
}

/// What the run on the copy proved, handed to the deploy's keep gate.
pub type Handed = std::rc::Rc<std::cell::RefCell<Option<crate::downs::keep::Kept>>>;

/// What the run on the copy found: the findings, and the line that says
/// what was run (or why nothing was).
pub struct Ran {
    pub findings: Vec<Finding>,
    pub said: String,
}

/// The live findings about `pending` as a whole, added to `findings`:
/// migrations another tool already applied (BS003: they fail, and the
/// finding says how to take them over), else the run on the copy `on`
/// (BS405), where one is asked for. What the copy run said, if it ran.
pub fn findings_of_pending(
    client: &mut Client,
    findings: &mut Vec<Finding>,
    settings: &super::Settings,
    pending: &[&Migration],
    (on, progress): (Option<&OnCopy>, &mut dyn Progress),
) -> Result<Option<String>, super::CheckError> {
    let skip = |code| settings.lint.skip.contains(&code);
    let unadopted =
        if skip(Code::BS003) { Vec::new() } else { super::unadopted::findings(client, pending)? };
    let mut said = None;
    if let (Some(on), true, false) = (on, unadopted.is_empty(), skip(Code::BS405)) {
        let ran = run(client, on, pending, progress);
        add(findings, ran.findings);
        said = (!ran.said.is_empty()).then_some(ran.said);
    }
    findings.extend(unadopted);
    Ok(said)
}

/// Runs `pending` on the copy; their failures as findings.
pub fn run(
    client: &mut Client,
    on: &OnCopy,
    pending: &[&Migration],
    progress: &mut dyn Progress,
) -> Ran {
    let versions: Vec<String> =
        pending.iter().filter(|m| !m.repeatable).map(|m| m.version.clone()).collect();
    if versions.is_empty() {
        return Ran { findings: Vec::new(), said: String::new() };
    }
    match &on.hand_to {
        Some(hand) => with_downs(client, on, pending, &versions, hand),
        // The ups alone use no session of the target's: pg_dump waits for
        // a lock no longer than a migration would.
        None => ups_only(on, pending, progress),
    }
}

/// What is said where a guard the target itself fails (a protected table
/// it lacks) stopped the copy's run before any statement: its own finding
/// (BS100) says it; it is no migration's failure.
fn stopped_by_guard(f: &Failure) -> Ran {
    let said = format!(
        "not run on a copy: {} (migrate's pre-flight refuses the same on the database)",
        f.message
    );
    Ran { findings: Vec::new(), said }
}

/// What is said where the copy could not be made or run on.
fn not_run(e: &dyn std::error::Error) -> Ran {
    let why = crate::kit::error::chain(e);
    let said = format!(
        "not run on a copy ({why}): a statement that fails on the database is found only when \
         migrate runs it"
    );
    Ran { findings: Vec::new(), said }
}

/// `check`'s run: the ups alone, on a copy of the target's schema.
fn ups_only(on: &OnCopy, pending: &[&Migration], progress: &mut dyn Progress) -> Ran {
    let wait = Some(on.settings.lock_timeout).filter(|t| !t.is_zero());
    let ran =
        match crate::downs::ups::run_ups(&on.url, &on.migrations, &on.settings, wait, progress) {
            Ok(ran) => ran,
            Err(e) => return not_run(&e),
        };
    if let Some(f) = ran.failure.as_ref().filter(|f| f.stage == Stage::PreFlight) {
        return stopped_by_guard(f);
    }
    let findings: Vec<Finding> = ran.failure.iter().map(|f| finding(f, pending)).collect();
    let took = human(ran.took);
    let not_run = ran.not_run.len();
    let mut said = match (&ran.failure, &ran.unrunnable) {
        (Some(f), _) => format!(
            "ran the pending migrations on a copy of the database's schema in {took}: {} fails \
             there; the {} migration(s) from it on were not run",
            f.version, not_run
        ),
        (None, Some((label, _))) if ran.ran.is_empty() => format!(
            "not run on a copy: the first pending migration, {label}, cannot run as written (see \
             its finding); none of the {not_run} pending migration(s) ran there"
        ),
        (None, Some((label, _))) => format!(
            "ran {} pending migration(s) on a copy of the database's schema in {took}: every \
             statement of those runs; {label} cannot run as written (see its finding), so the \
             {not_run} from it on were not run",
            ran.ran.len()
        ),
        (None, None) => format!(
            "ran the {} pending migration(s) on a copy of the database's schema in {took}: \
             every statement runs",
            ran.ran.len()
        ),
    };
    if !ran.left_out.is_empty() {
        said.push_str(&format!("; {}", outside_said(&ran.left_out)));
    }
    for note in &ran.notes {
        said.push_str(&format!("; {note}"));
    }
    Ran { findings, said }
}

/// `migrate`'s check gate: the ups run where the deploy proves its
/// downs, and what was proved handed to the keep gate.
fn with_downs(
    client: &mut Client,
    on: &OnCopy,
    pending: &[&Migration],
    versions: &[String],
    hand: &Handed,
) -> Ran {
    let mut store = crate::downs::proofs::Store::open(&on.proofs);
    // Reading the database's schema waits no longer for a lock another
    // session holds than a migration would.
    let waits = bounded_lock_wait(client, on.settings.lock_timeout);
    let kept = crate::downs::keep::keep(
        (client, None),
        &on.url,
        &on.migrations,
        &on.settings,
        pending,
        (versions, true),
        &mut store,
    );
    if let Some(before) = waits {
        let _ = client.execute("select set_config('lock_timeout', $1, false)", &[&before]);
    }
    let kept = match kept {
        Ok(kept) => kept,
        Err(e) => return not_run(&e),
    };
    let guard = kept.up_failed.iter().find(|f| f.stage == Stage::PreFlight).map(stopped_by_guard);
    let failed = kept.up_failed.iter().filter(|f| f.stage != Stage::PreFlight);
    let findings: Vec<Finding> = failed.map(|f| finding(f, pending)).collect();
    let reused = kept.reused.len();
    let failed: Vec<String> = kept.up_failed.iter().map(|f| f.version.clone()).collect();
    *hand.borrow_mut() = Some(kept);
    if let Some(guard) = guard {
        return Ran { findings, ..guard };
    }
    // A call that reaches outside the database is never run on a copy.
    let outside: Vec<String> = pending
        .iter()
        .flat_map(|m| &m.up.statements)
        .filter_map(|s| backstop_sql::calls::reaches_outside(&s.sql))
        .collect();
    let said = match (findings.is_empty(), reused) {
        (true, 0) => format!(
            "ran the {} pending migration(s) on a copy of the database's schema: every \
             statement runs",
            versions.len()
        ),
        (true, _) => format!(
            "ran the {} pending migration(s) on a copy of the database's schema: every \
             statement runs ({reused} of them by the proof an earlier run kept on this very \
             schema)",
            versions.len()
        ),
        (false, _) => {
            format!(
                "ran the pending migrations on a copy of the database's schema: {} fail(s) \
                 there; the migrations after a failure were not run",
                failed.join(", ")
            )
        }
    };
    let said = match outside.is_empty() {
        false => format!("{said}; {}", outside_said(&outside)),
        true => said,
    };
    Ran { findings, said }
}

/// Adds the findings of a run on the copy to `findings`: where another
/// critical finding is already about the same statement (an extension
/// the server lacks, a NOT NULL column for rows that are there), the
/// copy's error is added to it as the fact that confirms it, not said
/// twice.
pub fn add(findings: &mut Vec<Finding>, ran: Vec<Finding>) {
    for f in ran {
        let same = findings.iter_mut().find(|e| {
            e.severity == backstop_lint::Severity::Critical
                && e.file == f.file
                && e.statement.is_some()
                && e.statement == f.statement
        });
        match same {
            Some(e) => e.facts.push(format!("a copy of the database confirms it: {}", f.message)),
            None => findings.push(f),
        }
    }
}

/// Sets the session's `lock_timeout` to `wait` (where it is not zero);
/// the setting before, to put back.
fn bounded_lock_wait(client: &mut Client, wait: std::time::Duration) -> Option<String> {
    if wait.is_zero() {
        return None;
    }
    let before: String =
        client.query_one("select current_setting('lock_timeout')", &[]).ok()?.get(0);
    let ms = format!("{}ms", wait.as_millis());
    client.execute("select set_config('lock_timeout', $1, false)", &[&ms]).ok()?;
    Some(before)
}

/// The finding for an up that failed on the copy.
fn finding(f: &Failure, pending: &[&Migration]) -> Finding {
    let m = pending.iter().find(|m| m.version == f.version);
    let path = f
        .file
        .as_ref()
        .or_else(|| m.map(|m| &m.up.path))
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let at = Position { line: f.line.unwrap_or(1), column: f.column.unwrap_or(1) };
    let statement = match (f.statement, f.statements) {
        (Some(i), Some(n)) => format!(", at statement {i} of {n}"),
        _ => String::new(),
    };
    let code = f.sqlstate.as_deref().map(|s| format!(" ({s})")).unwrap_or_default();
    let mut message = format!(
        "{} fails on a copy of the database{statement}: {}{code}",
        m.map_or_else(|| f.version.clone(), |m| m.label()),
        f.message
    );
    if let Some(detail) = &f.detail {
        message.push_str(&format!("; {detail}"));
    }
    let mut help = "fix it so that it runs on the database as it is; migrate would stop here \
                    after its backup"
        .to_string();
    if let Some(hint) = &f.hint {
        help = format!("{hint}; {help}");
    }
    let mut finding = backstop_lint::analyze::file_finding(Code::BS405, &path, at, message, &help);
    finding.statement = f.statement;
    if let Some(sql) = &f.sql {
        finding.facts.push(format!("the statement: {}", one_line(sql)));
    }
    finding
}

/// A statement on one line, cut at 200 characters.
fn one_line(sql: &str) -> String {
    let flat = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(200) {
        Some((at, _)) => format!("{}…", &flat[..at]),
        None => flat,
    }
}

/// The statements a copy did not run for reaching outside the database,
/// the first three named with their places.
fn outside_said(calls: &[String]) -> String {
    const NAMED: usize = 3;
    let mut named = calls.iter().take(NAMED).cloned().collect::<Vec<_>>().join(", ");
    if calls.len() > NAMED {
        named.push_str(&format!(", and {} more", calls.len() - NAMED));
    }
    format!(
        "{} statement(s) reaching outside the database ({named}) were not run there",
        calls.len()
    )
}
