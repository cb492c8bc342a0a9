//! Text rendering shared by the commands: live progress on stderr and the
//! failure report that says which migration, statement and line failed.

use std::fmt::Write as _;
use std::io::Write as _;
use std::time::Duration;

use backstop_core::migrate::{
    Direction, EnumValueRule, Failure, Note, PlannedGroup, Progress, Report, Stage, Standing,
};

/// `text` with control characters escaped (`\n`, `\x1b`), so that a file or
/// object name holding a newline or a terminal escape cannot forge or hide
/// a line of output.
pub fn terminal_safe(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Prints progress notes to stderr (text mode only).
pub struct StderrProgress;

fn first_line(sql: &str, width: usize) -> String {
    let line = sql.lines().next().unwrap_or_default().trim();
    if line.chars().count() > width || sql.lines().nth(1).is_some() {
        let cut: String = line.chars().take(width).collect();
        format!("{cut}…")
    } else {
        line.to_string()
    }
}

/// The name serde gives a unit enum value (`breach`, `rollback`, `runbook`).
pub fn label(value: &impl serde::Serialize) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

pub use backstop_core::kit::duration::human;

impl Progress for StderrProgress {
    fn note(&mut self, note: Note<'_>) {
        let _ = writeln!(std::io::stderr(), "{}", note_line(note));
    }
}

/// A progress note as one line of text.
pub fn note_line(note: Note<'_>) -> String {
    {
        match note {
            Note::WaitingForLock { holder } => match holder {
                Some(h) => format!("waiting for the migration lock held by {h}"),
                None => "waiting for the migration lock".to_string(),
            },
            Note::GroupStarted { group } => {
                let verb = match group.direction {
                    Direction::Up => "applying",
                    Direction::Down => "reverting",
                };
                let how = if group.transactional {
                    "in one transaction"
                } else {
                    "without a transaction (no-transaction migration)"
                };
                format!("{verb} {} {how}", terminal_safe(&group.versions().join(", ")))
            }
            Note::Statement { version, direction, index, total, sql, elapsed, .. } => {
                let file = if direction == Direction::Up { "up" } else { "down" };
                format!(
                    "  {} {file} step {}/{total} {} ({})",
                    terminal_safe(version),
                    index + 1,
                    terminal_safe(&first_line(sql, 60)),
                    human(elapsed)
                )
            }
            Note::Verified { version, checks } => {
                format!("  {} verify.sql: {checks} assertion(s) passed", terminal_safe(version))
            }
            Note::Retrying { attempt, of, wait } => {
                format!("lock_timeout hit; retry {attempt}/{of} in {}", human(wait))
            }
            Note::Kept { kept, folder } => format!(
                "  kept {} in {} before the downs ran",
                terminal_safe(&kept.to_string()),
                terminal_safe(&folder.join(&kept.file).display().to_string())
            ),
            Note::Plan { groups, enum_values } => {
                let mut text = String::new();
                if groups.len() > 1 {
                    let _ = writeln!(
                        text,
                        "plan: {} groups, not one transaction; a failure leaves the groups before it committed",
                        groups.len()
                    );
                }
                text.push_str(&plan(groups, enum_values, false));
                text.trim_end().to_string()
            }
            Note::Stage { index, total: 0, name } => format!("[{index}/?] {}", terminal_safe(name)),
            Note::Stage { index, total, name } => {
                format!("[{index}/{total}] {}", terminal_safe(name))
            }
        }
    }
}

/// The failure report: migration, statement, place, SQL, PostgreSQL's
/// words, and where the run leaves the database.
pub fn failure(f: &Failure, standing: Option<&Standing>) -> String {
    let mut out = String::new();
    let what = match f.direction {
        Direction::Up => "migration",
        Direction::Down => "rollback of",
    };
    let stage = match f.stage {
        Stage::PreFlight => "pre-flight check failed".to_string(),
        Stage::ProtectedTable => match (f.statement, f.statements) {
            (Some(i), Some(n)) => format!("statement {i}/{n} damaged a protected table"),
            _ => "protected table check failed".to_string(),
        },
        Stage::Compared => "its check before COMMIT found the schema differs".to_string(),
        Stage::Statement | Stage::Verify => {
            let file = if f.stage == Stage::Verify { "verify.sql " } else { "" };
            format!(
                "{file}statement {}/{} failed",
                f.statement.unwrap_or(0),
                f.statements.unwrap_or(0)
            )
        }
    };
    let safe = |t: &str| terminal_safe(t).into_owned();
    let _ = writeln!(out, "✗ {what} {}_{}: {stage}", safe(&f.version), safe(&f.name));
    if let (Some(file), Some(line)) = (&f.file, f.line) {
        let _ = writeln!(
            out,
            "  at {}:{}:{}",
            safe(&file.display().to_string()),
            line,
            f.column.unwrap_or(1)
        );
    }
    if let Some(sql) = &f.sql {
        for l in sql.lines().take(8) {
            let _ = writeln!(out, "    | {}", safe(l));
        }
        if sql.lines().count() > 8 {
            let _ = writeln!(out, "    | …");
        }
    }
    match &f.sqlstate {
        Some(code) => {
            let _ = writeln!(out, "  error {code}: {}", safe(&f.message));
        }
        None => {
            let _ = writeln!(out, "  error: {}", safe(&f.message));
        }
    }
    if let Some(detail) = &f.detail {
        let _ = writeln!(out, "  detail: {}", safe(detail));
    }
    for b in &f.blockers {
        let _ = writeln!(out, "  blocked by: {}", safe(b));
    }
    if let Some(hint) = &f.hint {
        let _ = writeln!(out, "  hint: {}", safe(hint));
    }
    outcome(&mut out, f, standing);
    out
}

/// A list of versions, shortened in the middle when long.
fn versions(list: &[String]) -> String {
    let shown = if list.len() <= 8 {
        list.join(", ")
    } else {
        format!(
            "{} … {} ({} in all)",
            list[..3].join(", "),
            list[list.len() - 2..].join(", "),
            list.len()
        )
    };
    terminal_safe(&shown).into_owned()
}

/// What the failure left: rolled back, still committed, never run, and the
/// way back. "As it was" only when the run committed nothing.
fn outcome(out: &mut String, f: &Failure, standing: Option<&Standing>) {
    let committed = standing.map_or(&[][..], |s| s.committed.as_slice());
    let group = versions(&f.group);
    if !f.rolled_back {
        let _ = writeln!(
            out,
            "  NOT rolled back: {} statement(s) of this migration ran outside its failed transaction, \
             were committed and stay; fix the cause, undo them by hand if needed, then run it again",
            f.committed_statements
        );
    } else if committed.is_empty() {
        let _ = writeln!(
            out,
            "  rolled back: nothing of {group} was committed; the database is as it was"
        );
    } else {
        let n = standing.map_or(0, |s| s.failed_group);
        let _ = writeln!(out, "  rolled back: group {n} ({group}); nothing of it was committed");
    }
    let Some(s) = standing else { return };
    if !committed.is_empty() {
        let groups = match s.failed_group {
            2 => "group 1".to_string(),
            n => format!("groups 1–{}", n - 1),
        };
        let verb = if f.direction == Direction::Up { "applied" } else { "reverted" };
        let _ = writeln!(
            out,
            "  still committed: {groups} of this run {verb} {} migration(s), which stay {verb}: {}",
            committed.len(),
            versions(committed)
        );
    }
    if !s.not_run.is_empty() {
        let _ = writeln!(out, "  not run: {}", versions(&s.not_run));
    }
    if let Some(undo) = &s.undo {
        let what = if f.direction == Direction::Up {
            "undo what stays applied"
        } else {
            "apply again what was reverted"
        };
        let _ = writeln!(out, "  to {what}: {}", terminal_safe(undo));
    }
}

/// The groups of a run, each with why it is apart, and the rule each added
/// enum value fell under. `full` lists every version of a group (the dry
/// run); otherwise a long group is shortened in the middle.
pub fn plan(groups: &[PlannedGroup], enum_values: &[EnumValueRule], full: bool) -> String {
    let mut out = String::new();
    for (i, g) in groups.iter().enumerate() {
        let how = if g.transactional { "transaction" } else { "no transaction" };
        let list = if full {
            terminal_safe(&g.versions.join(", ")).into_owned()
        } else {
            versions(&g.versions)
        };
        let _ = writeln!(out, "group {} ({how}, {} statement(s)): {list}", i + 1, g.statements,);
        if let Some(split) = &g.split {
            let _ = writeln!(out, "  apart: {}", terminal_safe(&split.to_string()));
        }
    }
    for rule in enum_values {
        let _ = writeln!(out, "enum value {}", terminal_safe(&rule.to_string()));
    }
    out
}

/// The text summary of a migrate or rollback report.
/// A rollback's migrations whose ups changed rows the downs do not put
/// back, each with the backup that holds them.
fn not_put_back(r: &Report) -> String {
    let mut out = String::new();
    if let Some(label) = &r.stopped_before {
        let _ = writeln!(
            out,
            "! stopped before {}: it has no down (`backstop downs --write` computes and proves one); it and the migrations before it stay applied",
            terminal_safe(label)
        );
    }
    if !r.not_put_back.is_empty() {
        let _ = writeln!(
            out,
            "! the downs do not put back what these ups changed (only a restore can):"
        );
        for n in &r.not_put_back {
            let _ = writeln!(out, "  - {}", terminal_safe(&n.to_string()));
        }
    }
    out
}

pub fn report(r: &Report, verb_done: &str, nothing: &str) -> String {
    let mut out = String::new();
    if r.dry_run {
        if r.groups.is_empty() {
            let _ = writeln!(out, "{nothing}");
        }
        out.push_str(&plan(&r.groups, &r.enum_values, true));
        if r.groups.len() > 1 {
            let instead = if verb_done == "applied" {
                " ([migrations] all_or_nothing = true refuses such a run instead)"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "not one transaction: a failure in a group leaves the groups before it committed{instead}"
            );
        }
        out.push_str(&not_put_back(r));
        if let Some(together) = &r.together {
            let _ = writeln!(out, "{}", terminal_safe(together));
        }
        let _ = writeln!(out, "dry run: nothing was changed");
        return out;
    }
    // A rollback's ✓ is its check before COMMIT; where nothing could be
    // compared, the downs ran and no more is said of them.
    let (mark, verb_done) = match &r.compared {
        Some(c) if c.equal || c.drift || (c.passed() && c.touched > 0) => ("✓", verb_done),
        Some(_) => ("↩", "ran the down of"),
        None => ("✓", verb_done),
    };
    for d in &r.done {
        let _ = writeln!(
            out,
            "{mark} {verb_done} {}_{} ({})",
            terminal_safe(&d.version),
            terminal_safe(&d.name),
            human(Duration::from_millis(d.duration_ms))
        );
    }
    if let Some(c) = r.compared.as_ref().filter(|c| c.passed() && !r.done.is_empty()) {
        let mark = if mark == "✓" { "✓" } else { "!" };
        let _ = writeln!(out, "{mark} {}", terminal_safe(&c.said()));
    }
    if let (false, Some(folder)) = (r.kept.is_empty(), &r.kept_in) {
        let what: Vec<String> = r.kept.iter().map(|k| k.to_string()).collect();
        // Where the downs were rolled back they removed nothing: the
        // export stands, and the values are in the database too.
        let said = match &r.failure {
            None => "✓ kept before the downs removed them",
            Some(_) => {
                "- exported before the downs ran, which were rolled back (the values are \
                        still in the database too)"
            }
        };
        let _ = writeln!(
            out,
            "{said}: {} (CSV and manifest.json in {})",
            terminal_safe(&what.join(", ")),
            terminal_safe(&folder.display().to_string())
        );
    }
    if r.failure.is_none() {
        out.push_str(&not_put_back(r));
    }
    if let Some(f) = &r.failure {
        out.push_str(&failure(f, r.standing.as_ref()));
    } else if r.done.is_empty() {
        let _ = writeln!(out, "{nothing}");
    }
    out
}

/// One finished step of a rollback method, as a line: `✓ flags off (3 ms): ...`.
pub fn step_line(s: &backstop_core::respond::Step) -> String {
    let mark = if s.ok { "✓" } else { "✗" };
    format!("{mark} {} ({} ms): {}", s.name, s.took_ms, terminal_safe(&s.detail))
}

/// `50% at 12:10:00 UTC`: a ramp's next step, or none at its last.
pub fn next_step(r: &backstop_core::flags::ramp::Ramp) -> Option<String> {
    let share = r.next_share()?;
    let at = r.next_at?;
    Some(format!("{share}% at {}", at.format("%H:%M:%S UTC")))
}

/// What happened to a ramp a watch carries on, as a line.
pub fn ramp_news(news: &backstop_core::watch::RampNews) -> String {
    use backstop_core::watch::RampNews;
    let of = |r: &backstop_core::flags::ramp::Ramp| {
        format!("ramp of {} ({} of {})", terminal_safe(&r.release), r.step + 1, r.steps.len())
    };
    let next = |r: &backstop_core::flags::ramp::Ramp| {
        next_step(r).map(|n| format!("; next {n} if the triggers are clear")).unwrap_or_default()
    };
    match news {
        RampNews::Carried(r) => {
            format!("{} carried on here at {}%{}\n", of(r), r.share(), next(r))
        }
        RampNews::Elsewhere(r) => format!(
            "{} is carried on by {}; left to it\n",
            of(r),
            terminal_safe(r.driven_by.as_deref().unwrap_or("another process"))
        ),
        RampNews::Stepped(r) => format!("✓ {}: {}% served{}\n", of(r), r.share(), next(r)),
        RampNews::Holding { ramp, reason } => {
            format!("{} holds at {}%: {}\n", of(ramp), ramp.share(), terminal_safe(reason))
        }
        RampNews::Done(r) => format!("✓ {} done at {}%\n", of(r), r.share()),
        RampNews::Killed(r) => {
            format!("✗ {} killed at {}%: the release is off\n", of(r), r.share())
        }
        RampNews::Ended(r) => format!(
            "{} {} by {}: {}\n",
            of(r),
            label(&r.state),
            terminal_safe(r.ended_by.as_deref().unwrap_or("another process")),
            terminal_safe(r.end_note.as_deref().unwrap_or(""))
        ),
    }
}

/// What `migrate --expand`, `migrate --contract` or `rollback` of an
/// expand (`what`: `expand`, `contract`, `rollback`) did.
pub fn expanded(e: &backstop_core::expand::Expanded, what: &str) -> String {
    let versions: Vec<&str> = e.plan.migrations.iter().map(|m| m.version.as_str()).collect();
    let versions = versions.join(", ");
    let mut out = match what {
        "expand" if e.resumed => format!(
            "the expand of {versions} was open on these migrations: what runs after it is \
             done (backfills, validations, index builds), the new shape is served in schema {}\n",
            e.new_schema
        ),
        "expand" => format!(
            "expanded {versions}: the old shape stays in schema {}, the new one is served in schema {}\n",
            e.schema, e.new_schema
        ),
        "contract" => format!(
            "contracted {versions}: the new shape is the real one in schema {}, schema {} dropped, \
             recorded as applied\n",
            e.schema, e.new_schema
        ),
        _ => format!(
            "rolled back the expand of {versions}: schema {} dropped with what the expand made \
             (added columns, tables, indexes, twins of retyped columns), every row kept\n",
            e.new_schema
        ),
    };
    for line in &e.unmapped {
        out.push_str(&format!("  ! {}\n", terminal_safe(line)));
    }
    for k in &e.kept {
        out.push_str(&format!("  kept {k}\n"));
    }
    for f in &e.backfill {
        out.push_str(&format!(
            "  backfilled {}: {} rows in {:.1} s\n",
            f.column, f.rows, f.seconds
        ));
    }
    out.push_str(&lock_lines(&e.locks));
    if !e.unsettled.is_empty() {
        out.push_str(
            "  ! not settled; the contract refuses until these are mended (then run the expand \
             again, or contract):\n",
        );
        for line in &e.unsettled {
            out.push_str(&format!("      {}\n", terminal_safe(line)));
        }
    }
    if what == "expand" && !e.resumed {
        out.push_str(&shape_lines(&e.plan));
        out.push_str(&format!(
            "the new application connects with search_path = {}, {}; finish with \
             `backstop migrate --contract`, undo with `backstop rollback`\n",
            e.new_schema, e.schema
        ));
    }
    out
}

/// The lock trace in a line or two: the longest hold that blocks writes,
/// and the batches of the backfill.
fn lock_lines(locks: &backstop_core::expand::trace::LockTrace) -> String {
    let mut out = String::new();
    if let Some(h) = locks.longest_blocking() {
        out.push_str(&format!(
            "  locks: the longest that blocks writes: {} on {}, {:.0} ms ({})\n",
            h.mode, h.relation, h.longest_ms, h.step
        ));
    }
    let batches: Vec<_> = locks.held.iter().filter(|h| h.step == "backfill").collect();
    if let Some(longest) = batches.iter().map(|h| h.longest_ms).reduce(f64::max) {
        let n = batches.iter().map(|h| h.transactions).max().unwrap_or(0);
        let how = match locks.blocks_writes("backfill") {
            true => "some blocking writes",
            false => "none blocking writes",
        };
        out.push_str(&format!(
            "  locks: the backfill's {n} transaction(s), {how}, the longest {longest:.0} ms\n"
        ));
    }
    out
}

/// What the new shape shows differently, one line a change.
fn shape_lines(plan: &backstop_core::expand::Plan) -> String {
    let mut out = String::new();
    for t in &plan.tables {
        if t.made {
            out.push_str(&format!("  {} made\n", t.name));
        } else if let Some(to) = &t.shown_name {
            out.push_str(&format!("  {} shown as {to}\n", t.name));
        }
        for c in t.columns.iter().filter(|c| c.hidden) {
            out.push_str(&format!("  {}.{} hidden, dropped at contract\n", t.name, c.real));
        }
    }
    for (t, from, to) in plan.renamed() {
        out.push_str(&format!("  {t}.{from} shown as {to}\n"));
    }
    let filled =
        |t: &str, c: &str| plan.fills.iter().any(|f| f.table == t && f.column == c && !f.by_rows);
    for (t, c) in plan.added().filter(|(t, c)| !filled(t, c)) {
        out.push_str(&format!("  {t}.{c} added\n"));
    }
    for r in &plan.retyped {
        out.push_str(&format!(
            "  {}.{} shown as {} (was {}) through twin {}, kept in step both ways{}\n",
            r.table,
            r.named,
            r.new_type,
            r.old_type,
            r.twin,
            r.loses.as_deref().map(|l| format!("; {l}")).unwrap_or_default()
        ));
    }
    for f in &plan.fills {
        let rule = f.filter.as_deref().map(|w| format!(" where {w}")).unwrap_or_default();
        out.push_str(&match f.by_rows {
            true => format!(
                "  {}.{} filled with {}{rule}: the rows there in batches, the old shape's by a \
                 trigger\n",
                f.table, f.column, f.value
            ),
            false => format!(
                "  {}.{} added, its default {} filling the rows there in batches\n",
                f.table, f.column, f.value
            ),
        });
    }
    for i in &plan.indexes {
        let how = match plan.concurrent.iter().any(|c| &c.index == i) {
            true => "built concurrently after the expand",
            false => "built",
        };
        out.push_str(&format!("  index {i} {how}\n"));
    }
    for c in &plan.constraints {
        let how = if c.validate { "added NOT VALID, then validated" } else { "added NOT VALID" };
        out.push_str(&format!("  constraint {} of {} {how}\n", c.name, c.table));
    }
    for n in &plan.not_null {
        out.push_str(&format!("  {}.{} made NOT NULL at contract\n", n.table, n.column));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_for_the_terminal() {
        assert_eq!(terminal_safe("20260101_ok"), "20260101_ok");
        assert_eq!(terminal_safe("a\n\u{1b}[32m✓ applied"), "a\\n\\x1b[32m✓ applied");
    }
}
