//! `backstop status`: applied, pending and drifted migrations.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;

use backstop_core::migrate;
use backstop_core::overview::{FileProblem, Overview};
use backstop_core::source::{Ignored, Layout, Stray};

use super::{print, print_json, Context};
use crate::render::terminal_safe;
use crate::{Connection, Format, Output};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    conn: Connection,
    #[command(flatten)]
    output: Output,
    /// Also list the files of the migrations folder that are not migrations,
    /// and which PostgreSQL programs serve this server.
    #[arg(long, short)]
    verbose: bool,
}

pub fn run(args: Args, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let ctx = match Context::load(config, &args.conn) {
        Ok(ctx) => ctx,
        Err(e) => {
            // A freeze or an unfinished restore is said even when the
            // migrations folder cannot be read: it may be why a person looks.
            if e.downcast_ref::<backstop_core::source::SourceError>().is_some() {
                holds_without_folder(config, &args.conn);
            }
            return Err(e);
        }
    };
    // Shown before connecting: an interrupted restore may be why that fails.
    let store = backstop_core::backup::Store::new(&ctx.config.backup.dir);
    let unfinished = backstop_core::backup::restore::journal(&store)?;
    if let Some(j) = &unfinished {
        eprintln!("{}", restore_line(&ctx.url, j));
    }
    let mut client = ctx.connect()?;
    let o = Overview::read(&mut client, &ctx.migrations, &ctx.strays, unfinished)?;
    let attention = o.needs_a_person();
    let now = chrono::Utc::now();
    let drill = backstop_core::drill::due(&mut client, ctx.config.drill.every, now)?;
    match args.output.format {
        Format::Json => print_json(&Shown {
            drill: drill.last.as_ref().map(|_| &drill),
            interrupted: &o.interrupted,
            layout: ctx.layout,
            status: &o.status,
            problems: &o.problems,
            ignored: &ctx.ignored,
            strays: &o.strays,
            frozen: &o.frozen,
            frozen_roles: &o.frozen_roles,
            unfinished_restore: &o.unfinished_restore,
            rehearsal_copies: &o.rehearsal_copies,
            unadopted: &o.unadopted,
            expand: &o.expand,
        })?,
        Format::Text => {
            let mut out = text(&ctx, &o, args.verbose);
            if let Some(line) = drill.status_line(now) {
                let _ = writeln!(out, "{}", terminal_safe(&line));
            }
            if args.verbose {
                let num = backstop_core::pg::server_version_num(&mut client)
                    .context("reading the server's version")?;
                out.push_str(&programs(num));
            }
            print(&out)?
        }
    }
    Ok(if attention { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// `status` for people: the folder, the migrations, and what else holds
/// the database.
fn text(ctx: &Context, o: &Overview, verbose: bool) -> String {
    let mut text = format!(
        "{} ({} layout, {} migration(s))\n",
        ctx.dir.display(),
        ctx.layout,
        ctx.migrations.len()
    );
    let store = backstop_core::backup::Store::new(&ctx.config.backup.dir);
    text.push_str(&render(&o.status, &|id| guarded_by(&store, id)));
    if !o.problems.is_empty() {
        let _ = writeln!(text, "cannot run as written ({}):", o.problems.len());
        for p in &o.problems {
            let _ = writeln!(
                text,
                "  {} {}: {} ({})",
                p.version,
                p.problem.part,
                terminal_safe(&p.problem.to_string()),
                p.blocks()
            );
        }
    }
    for run in &o.interrupted {
        let _ = writeln!(
            text,
            "interrupted: {} started {} by {} and recorded no outcome (killed, or \
             its server went away); a transaction it had open was rolled back{}; next: {}",
            terminal_safe(&run.what()),
            run.at.format("%Y-%m-%d %H:%M:%S UTC"),
            terminal_safe(&run.actor),
            if o.interrupted_no_transaction {
                ", but a no-transaction migration commits statement by statement: check \
                 what it left before migrating again"
            } else {
                ""
            },
            run.next()
        );
    }
    if !o.status.half_applied.is_empty() {
        let _ = writeln!(text, "half-applied ({}):", o.status.half_applied.len());
        for h in &o.status.half_applied {
            let _ = writeln!(
                text,
                "  {} stopped at statement {}/{} on {} ({}); statements 1-{} stay committed: \
                 finish or undo them by hand, then run `backstop migrate`",
                h.version,
                h.statement,
                h.statements,
                h.at.format("%Y-%m-%d %H:%M:%S UTC"),
                terminal_safe(&h.message),
                h.statement.saturating_sub(1)
            );
        }
    }
    if !o.strays.is_empty() {
        let _ = writeln!(text, "never run by {} ({}):", ctx.layout, o.strays.len());
        for s in &o.strays {
            let _ = writeln!(text, "  {}", terminal_safe(&s.to_string()));
        }
    }
    for u in &o.unadopted {
        text.push_str(&unadopted_lines(u));
    }
    if let Some(e) = &o.expand {
        let _ = writeln!(text, "{}", terminal_safe(&e.line()));
    }
    if verbose && !ctx.ignored.is_empty() {
        let _ = writeln!(text, "not migrations ({}):", ctx.ignored.len());
        for i in &ctx.ignored {
            let _ = writeln!(text, "  {}: {}", terminal_safe(&i.path.display().to_string()), i.why);
        }
    }
    if let Some(f) = &o.frozen {
        let _ = writeln!(text, "{}", frozen_line(f));
    }
    for r in &o.frozen_roles {
        let _ = writeln!(text, "{}", frozen_role_line(r));
    }
    for c in &o.rehearsal_copies {
        let _ = writeln!(
            text,
            "left by a rehearsal that was stopped: database {} ({}); the next `backstop \
             rehearse` on this host drops it, or drop it by hand",
            terminal_safe(&c.database),
            terminal_safe(&c.owner)
        );
    }
    if let Some(j) = &o.unfinished_restore {
        let _ = writeln!(text, "{}", restore_line(&ctx.url, j));
    }
    text
}

/// Another tool's history that Backstop has not taken over.
fn unadopted_lines(u: &backstop_core::adopt::Unadopted) -> String {
    let list = |versions: &[String]| {
        let mut named: Vec<String> =
            versions.iter().take(5).map(|v| terminal_safe(v).into_owned()).collect();
        if versions.len() > 5 {
            named.push(format!("and {} more", versions.len() - 5));
        }
        named.join(", ")
    };
    let mut out = String::new();
    if !u.applied.is_empty() {
        let _ = writeln!(
            out,
            "not adopted: {} ({}'s history) records {} pending migration(s) as applied: {}; \
             `backstop migrate` would run them again and fail: take the history over with `{}`",
            terminal_safe(&u.table),
            u.tool,
            u.applied.len(),
            list(&u.applied),
            terminal_safe(&u.command())
        );
    }
    if !u.failed.is_empty() {
        let _ = writeln!(
            out,
            "  {} left {} failed: finish or undo {} with {} before adopting",
            u.tool,
            list(&u.failed),
            if u.failed.len() == 1 { "it" } else { "them" },
            u.tool
        );
    }
    if !u.unknown.is_empty() {
        let _ = writeln!(
            out,
            "{} ({}'s history) records {} version(s) no migration of the folder has: {}; if \
             they are this project's, restore their files, then `{}`",
            terminal_safe(&u.table),
            u.tool,
            u.unknown.len(),
            list(&u.unknown),
            terminal_safe(&u.command())
        );
    }
    out
}

/// Which of PostgreSQL's programs Backstop runs for this server.
fn programs(server_version_num: i32) -> String {
    let mut out = format!(
        "PostgreSQL {} server; programs used for it:\n",
        backstop_core::backup::tools::version_text(server_version_num)
    );
    for c in backstop_core::pg::bins::choices_for(server_version_num) {
        let found = match &c.found {
            Ok(b) => b.to_string(),
            Err(miss) => format!("{miss}; {} cannot run", c.used_for),
        };
        let _ = writeln!(out, "  {}: {}", c.kit, terminal_safe(&found));
    }
    out
}

/// What holds the database, for `status` without a readable migrations
/// folder: a freeze of it or of roles, an unfinished restore. Best effort:
/// what cannot be read is left out, and the folder's error follows.
fn holds_without_folder(config: Option<&Path>, conn: &crate::Connection) {
    let Ok(config) = super::config(config) else { return };
    let store = backstop_core::backup::Store::new(&config.backup.dir);
    let url = config.database_url(conn.database_url.as_deref());
    if let Ok(Some(j)) = backstop_core::backup::restore::journal(&store) {
        // Without a URL no server is asked: the journal alone says.
        eprintln!("{}", restore_line(url.as_deref().unwrap_or(""), &j));
    }
    let Ok(url) = url else { return };
    let Ok(mut client) = backstop_core::pg::connect(&url, "backstop status") else { return };
    if let Ok(Some(f)) = backstop_core::freeze::current(&mut client) {
        eprintln!("{}", frozen_line(&f));
    }
    for r in backstop_core::freeze::frozen_roles(&mut client).unwrap_or_default() {
        eprintln!("{}", frozen_role_line(&r));
    }
}

/// `status --format json`: the migration status, and what else holds the database.
#[derive(serde::Serialize)]
struct Shown<'a> {
    /// The last drill and when the next is due, once a drill ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    drill: Option<&'a backstop_core::drill::Due>,
    /// Runs that started and recorded no outcome.
    interrupted: &'a [backstop_core::schema::events::Interrupted],
    layout: Layout,
    #[serde(flatten)]
    status: &'a migrate::Status,
    problems: &'a [FileProblem],
    ignored: &'a [Ignored],
    /// Files that look like migrations and that their tool would not run.
    strays: &'a [Stray],
    frozen: &'a Option<backstop_core::freeze::FreezeState>,
    frozen_roles: &'a [backstop_core::freeze::FrozenRole],
    unfinished_restore: &'a Option<backstop_core::backup::restore::Journal>,
    rehearsal_copies: &'a [backstop_core::rehearse::LeftCopy],
    /// Other tools' histories holding versions Backstop has not recorded.
    unadopted: &'a [backstop_core::adopt::Unadopted],
    /// An expand in progress.
    expand: &'a Option<backstop_core::expand::Open>,
}

fn frozen_line(f: &backstop_core::freeze::FreezeState) -> String {
    format!(
        "frozen: writes to {} are frozen since {} by {} ({}){}; lift with `backstop backup unfreeze`",
        f.database,
        f.since.format("%Y-%m-%d %H:%M:%S UTC"),
        f.actor,
        f.reason,
        if f.read_only_set { "" } else { " but not enforced (no right to ALTER DATABASE)" }
    )
}

fn frozen_role_line(r: &backstop_core::freeze::FrozenRole) -> String {
    let was = if r.frozen_as == r.role {
        String::new()
    } else {
        format!(" (frozen as {})", terminal_safe(&r.frozen_as))
    };
    let role = terminal_safe(&r.role);
    format!(
        "frozen: role {role}{was} may not write since {} by {} ({}); lift with `backstop backup unfreeze --role {role}`",
        r.since.format("%Y-%m-%d %H:%M:%S UTC"),
        r.actor,
        terminal_safe(&r.reason)
    )
}

/// An unfinished restore, and both ways out of it: finishing it, or giving
/// it up while it has not changed the database yet (else why not).
fn restore_line(url: &str, j: &backstop_core::backup::restore::Journal) -> String {
    let give_up = if backstop_core::backup::restore::abandonable(url, j) {
        ", or give it up with `backstop backup restore --abandon` (the database stays as it was)"
            .to_string()
    } else {
        let back = j
            .snapshot_id
            .as_deref()
            .map(|s| format!(", or restore its pre-restore backup {s} to go back"))
            .unwrap_or_default();
        format!(" (it has begun to change the database, so `backstop backup restore --abandon` refuses it){back}")
    };
    format!(
        "restore unfinished: backup {} into {} stopped at \"{}\" ({}); finish it with `backstop backup restore {} --resume`{give_up}",
        j.backup_id,
        j.database,
        j.step,
        j.updated_at.format("%Y-%m-%d %H:%M:%S UTC"),
        j.backup_id
    )
}

/// What guarded a migration, by its backup id: a pgBackRest restore point
/// says so with its name.
fn guarded_by(store: &backstop_core::backup::Store, id: &str) -> String {
    match store.load(id) {
        Ok(m) => match &m.restore_point {
            Some(p) => format!("restore point {} (pgBackRest, stanza {})", p.name, p.stanza),
            None => format!("backup {id}"),
        },
        Err(_) => format!("backup {id}"),
    }
}

fn render(s: &migrate::Status, guard: &dyn Fn(&str) -> String) -> String {
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
        let backup = e.backup_id.as_deref().map(|b| format!("  {}", guard(b))).unwrap_or_default();
        let _ = writeln!(
            out,
            "  {}_{}  {at}  by {}{backup}{mark}",
            terminal_safe(&e.version),
            terminal_safe(&e.name),
            terminal_safe(e.applied_by.as_deref().unwrap_or("?"))
        );
    }
    let _ = writeln!(out, "pending ({}):", s.pending.len());
    for e in &s.pending {
        let nt = if e.no_transaction { "  (no-transaction)" } else { "" };
        let _ = writeln!(out, "  {}_{}{nt}", terminal_safe(&e.version), terminal_safe(&e.name));
    }
    if !s.drifted.is_empty() {
        let _ = writeln!(out, "drifted ({}):", s.drifted.len());
        for d in &s.drifted {
            let _ = writeln!(out, "  {}", terminal_safe(&d.to_string()));
        }
        let _ = writeln!(
            out,
            "restore the files, or accept the change with `backstop history repair VERSION`"
        );
    }
    out
}
