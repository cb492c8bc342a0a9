//! `backstop downs`: downs computed for migrations that have none, fixes
//! for downs that do not put the schema back, each proved on a replayed
//! copy before it is offered; `--write` saves them where the layout keeps
//! downs.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use backstop_core::downs::{self, Down, Options, Status};
use backstop_core::migrate::{Note, Progress};

use super::{print, print_json, Context};
use crate::{Connection, Format, Output};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    conn: Connection,
    #[command(flatten)]
    output: Output,
    /// Only these versions (default: every migration without a down, and
    /// every one whose down does not put the schema back).
    #[arg(value_name = "VERSION")]
    versions: Vec<String>,
    /// Save each proved down where the layout keeps downs.
    #[arg(long)]
    write: bool,
    /// With --write: replace hand-written downs too (the old text is kept
    /// beside, as .orig).
    #[arg(long, requires = "write")]
    force: bool,
    /// A database on the target's server to replay the history on top of
    /// (one holding a platform's schemas and roles); default: an empty one.
    #[arg(long, value_name = "DATABASE")]
    start: Option<String>,
}

/// Says which migration the replay is at, one line each.
struct Stages;

impl Progress for Stages {
    fn note(&mut self, note: Note<'_>) {
        if let Note::Stage { name, .. } = note {
            eprintln!("{}", crate::render::terminal_safe(name));
        }
    }
}

struct Silent;

impl Progress for Silent {
    fn note(&mut self, _: Note<'_>) {}
}

pub fn run(args: Args, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let ctx = Context::load(config, &args.conn)?;
    let options = Options {
        versions: args.versions.clone(),
        start: args.start.clone(),
        from_target: false,
        target_fingerprint: None,
        lock_wait: None,
    };
    let mut progress: Box<dyn Progress> = match args.output.format {
        Format::Text => Box::new(Stages),
        Format::Json => Box::new(Silent),
    };
    let computed =
        downs::compute(&ctx.url, &ctx.migrations, &ctx.settings, &options, progress.as_mut())?;
    if args.output.format == Format::Text {
        for note in &computed.start {
            eprintln!("start: {note}");
        }
    }
    // What was proved here serves the next `migrate` as a rehearsal's does.
    let mut store = downs::proofs::Store::open(&ctx.config.rehearse.proofs);
    if let Some(why) = store.note.take() {
        eprintln!("note: {why}");
    }
    if let Err(e) = downs::keep::keep_computed(&ctx.migrations, &computed, "downs", &mut store) {
        eprintln!("warning: the proofs made now were not kept: {e}");
    }
    let found = computed.downs;
    // By default only what needs a person is shown: a down that holds is
    // listed only when asked for by version.
    let shown: Vec<&Down> =
        found.iter().filter(|d| !args.versions.is_empty() || d.status != Status::Ok).collect();
    let mut written = Vec::new();
    let mut refused = Vec::new();
    if args.write {
        let dir = &ctx.dir;
        let flyway_undo = ctx.migrations.iter().any(|m| {
            m.down.as_ref().is_some_and(|d| {
                d.path.file_name().and_then(|f| f.to_str()).is_some_and(|f| f.starts_with('U'))
            })
        });
        let savable = |d: &&&Down| {
            matches!(d.status, Status::Computed | Status::Fixed)
                || (d.status == Status::Irreversible && d.proved)
        };
        for d in shown.iter().filter(savable) {
            let Some(m) = ctx.migrations.iter().find(|m| m.version == d.version) else { continue };
            match downs::write::save(dir, m, d, flyway_undo, args.force) {
                Ok(path) => written.push((d.version.clone(), path)),
                Err(e) => refused.push(e),
            }
        }
    }
    match args.output.format {
        Format::Json => print_json(&shown.iter().map(|d| d.shown()).collect::<Vec<_>>())?,
        Format::Text => print(&render(&shown, &written, &refused))?,
    }
    let unproved = shown.iter().any(|d| d.status == Status::Unprovable);
    Ok(if unproved || !refused.is_empty() { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

fn render(
    shown: &[&Down],
    written: &[(String, std::path::PathBuf)],
    refused: &[downs::write::WriteError],
) -> String {
    let mut out = String::new();
    for d in shown {
        let mark = match d.status {
            Status::Ok | Status::Computed | Status::Fixed if d.proved => "✓",
            _ => "✗",
        };
        let what = match d.status {
            Status::Computed => "a down computed",
            Status::Fixed if d.replaces => "its down fails: a replacement computed and proved",
            Status::Fixed => "its down misses something: fix computed and proved",
            Status::Ok => "its own down puts the schema back",
            Status::Unprovable => "no down could be proved",
            Status::Irreversible => {
                "its data cannot be put back by SQL (the schema part is proved): only the backup \
                 taken before it holds the rows"
            }
        };
        // The verdict `rehearse` gives the same down, in the same words.
        let verdict = d.verdict().label();
        let _ = writeln!(out, "{mark} {}_{}: {verdict}: {what}", d.version, d.name);
        for l in &d.loses {
            let _ = writeln!(out, "    loses: {l}");
        }
        for n in &d.notes {
            let _ = writeln!(out, "    note: {n}");
        }
        if !written.is_empty() {
            continue;
        }
        if let Some(sql) = &d.sql {
            for line in sql.lines() {
                let _ = writeln!(out, "    {line}");
            }
        }
    }
    for (version, path) in written {
        let _ = writeln!(out, "wrote {}: {version}", path.display());
    }
    for e in refused {
        let _ = writeln!(out, "✗ not written: {e}");
    }
    let count = |s: Status| shown.iter().filter(|d| d.status == s).count();
    let _ = writeln!(
        out,
        "downs: {} computed, {} fixed, {} unprovable{}{}",
        count(Status::Computed),
        count(Status::Fixed),
        count(Status::Unprovable),
        match count(Status::Irreversible) {
            0 => String::new(),
            n => format!(", {n} losing values only the backup holds"),
        },
        if count(Status::Ok) > 0 { format!(", {} ok", count(Status::Ok)) } else { String::new() }
    );
    if written.is_empty() && (count(Status::Computed) + count(Status::Fixed)) > 0 {
        let _ = writeln!(
            out,
            "save them with `backstop downs --write` (hand-written downs need --force)"
        );
    }
    out
}
