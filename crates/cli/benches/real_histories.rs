//! Long histories as their tools leave them, measured on the default path
//! a user runs (no `backstop.toml`: the check gate, the verified backup
//! and the kept downs all on), each figure against its reference in the
//! same run on one throwaway cluster, for the 810-migration Prisma history
//! of `bench/prisma_history.rs` and the 300-migration drizzle history of
//! `bench/drizzle_history.rs`:
//!
//! 1. one plain apply (`backstop migrate` with gates and kept downs off)
//!    against `psql -f` per file, the way a history is applied by hand;
//! 2. the first `migrate` of the whole history, every default gate on and
//!    nothing rehearsed (a down proved for each migration): goal no slower
//!    than psql per file;
//! 3. `rehearse` of the whole history, every down worked out and
//!    round-tripped: goal at most 3 times one plain apply;
//! 4. `migrate` after that rehearsal (every down's proof reused): goal at
//!    most 1.5 times one plain apply;
//! 5. the deploy of one new migration on top of the history, after a
//!    rehearsal of it and with nothing rehearsed: goal at most 1 s plus
//!    the backup gate's own time (printed beside).
//!
//! Then a generated diesel-style history of 250 with authored downs
//! (`bench/history.rs`: views on views, plpgsql, data backfills):
//! `rehearse` against one plain apply, goal at most 3 times.
//!
//! Run: `cargo bench -p backstop-cli --bench real_histories` (BENCH_BLOCKS
//! sets the Prisma history's length in blocks of 10, default 81;
//! BENCH_ONLY=prisma|drizzle|diesel runs one part; BENCH_WRITE=DIR only
//! writes each history's project under DIR, to profile one command by
//! hand).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use backstop_core::pg::cluster::Cluster;

mod common;
#[allow(dead_code)]
#[path = "../../../bench/drizzle_history.rs"]
mod drizzle_history;
#[allow(dead_code)]
#[path = "../../../bench/history.rs"]
mod history;
#[allow(dead_code)] // the test names the data changes
#[path = "../../../bench/prisma_history.rs"]
mod prisma_history;

/// Gates and kept downs off: the apply alone.
const GATES_OFF: &str = "[migrations]\nkeep_downs = false\n\n[check]\nrequired = false\n\n\
                         [backup]\nrequired = false\n";

fn main() -> std::process::ExitCode {
    common::exit("real_histories", run())
}

/// One tool's history written in a project folder as the tool leaves it.
struct History {
    label: &'static str,
    /// Where the migration files are, relative to the project.
    folder: &'static str,
    /// Writes the history into a project; returns each file to run with
    /// psql, in order.
    write: fn(&Path, usize) -> Vec<PathBuf>,
    /// Writes one more migration after the history; returns its file.
    more: fn(&Path, usize) -> PathBuf,
    blocks: usize,
}

fn prisma_write(project: &Path, blocks: usize) -> Vec<PathBuf> {
    let dir = project.join("prisma/migrations");
    let names = prisma_history::write(&dir, blocks);
    names.iter().map(|n| dir.join(n).join("migration.sql")).collect()
}

fn prisma_more(project: &Path, blocks: usize) -> PathBuf {
    let stamp = prisma_history::stamp(blocks * prisma_history::PER_BLOCK + 1);
    let dir = project.join(format!("prisma/migrations/{stamp}_deploy_notes"));
    std::fs::create_dir_all(&dir).expect("the folder is made");
    let file = dir.join("migration.sql");
    std::fs::write(
        &file,
        "-- AlterTable\nALTER TABLE \"Item_1\" ADD COLUMN \"deployNote\" TEXT;\n\n\
         -- CreateIndex\nCREATE INDEX \"Item_1_deployNote_idx\" ON \"Item_1\"(\"deployNote\");\n",
    )
    .expect("the migration is written");
    file
}

fn drizzle_write(project: &Path, blocks: usize) -> Vec<PathBuf> {
    let dir = project.join("drizzle");
    let tags = drizzle_history::write(&dir, blocks, None);
    tags.iter().map(|t| dir.join(format!("{t}.sql"))).collect()
}

fn drizzle_more(project: &Path, blocks: usize) -> PathBuf {
    let dir = project.join("drizzle");
    let mut tags = drizzle_history::write(&dir, blocks, None);
    let tag = format!("{:04}_deploy_notes", tags.len());
    let file = dir.join(format!("{tag}.sql"));
    std::fs::write(
        &file,
        "ALTER TABLE \"events_1\" ADD COLUMN \"deploy_note\" text;--> statement-breakpoint\n\
         CREATE INDEX \"events_1_deploy_note_idx\" ON \"events_1\" USING btree (\"deploy_note\");",
    )
    .expect("the migration is written");
    tags.push(tag);
    let n = tags.len();
    std::fs::write(dir.join("meta/_journal.json"), drizzle_history::journal(&tags, n))
        .expect("the journal is written");
    file
}

/// The line that says how many downs were reused and proved now.
fn proofs_line(output: &str) -> String {
    let reused = output.lines().find(|l| l.starts_with("reused the kept proof"));
    let proved = output.lines().find(|l| l.starts_with("proved "));
    let cut = |l: &str| l.split(':').next().unwrap_or(l).to_string();
    let kept = output
        .lines()
        .any(|l| l.starts_with("note: the downs were proved on the copy of the target"))
        .then(|| "on the copy the last migrate kept".to_string());
    [reused.map(cut), proved.map(cut), kept].into_iter().flatten().collect::<Vec<_>>().join("; ")
}

fn measure(cluster: &Cluster, root: &Path, h: &History) -> anyhow::Result<()> {
    let project = |name: &str, config: Option<&str>| -> anyhow::Result<(PathBuf, Vec<PathBuf>)> {
        let dir = root.join(format!("{}_{name}", h.label));
        std::fs::create_dir_all(&dir)?;
        let files = (h.write)(&dir, h.blocks);
        if let Some(config) = config {
            std::fs::write(dir.join("backstop.toml"), config)?;
        }
        Ok((dir, files))
    };
    let db = |name: &str| -> anyhow::Result<String> {
        let db = format!("{}_{name}", h.label);
        cluster.create_database(&db, None)?;
        Ok(cluster.url(&db))
    };
    let (_, files) = project("psql", None)?;
    println!("history: {} {} migrations under {}", files.len(), h.label, h.folder);
    db("psql")?;
    let psql = common::psql_files(cluster, &format!("{}_psql", h.label), &files)?;
    // The two figures the 1.5x goal compares are a few seconds each and
    // move with the machine's load: each is the median of three runs.
    let (plain_dir, _) = project("plain", Some(GATES_OFF))?;
    let mut plains = Vec::new();
    for run in ["plain", "plain_2", "plain_3"] {
        plains.push(common::backstop_said(&plain_dir, &db(run)?, &["migrate"])?.0);
    }
    let plain = common::median(plains);
    println!(
        "  one plain apply (gates and downs off): {} (median of 3); psql -f per file {}",
        common::secs(plain),
        common::secs(psql)
    );

    // Nothing rehearsed: every down proved by migrate itself.
    let (first_dir, _) = project("first", None)?;
    let first_url = db("first")?;
    let (first, out) = common::backstop_said(&first_dir, &first_url, &["migrate"])?;
    println!(
        "  first migrate, every default gate on, nothing rehearsed: {} = {:.2}x psql per file \
         (goal <= 1x: {}); {}",
        common::secs(first),
        common::ratio(first, psql),
        common::met(first <= psql),
        proofs_line(&out)
    );

    // Rehearsed first: the deploy reuses every proof.
    let (rehearsed_dir, _) = project("rehearsed", None)?;
    let rehearsed_url = db("rehearsed")?;
    let (rehearse, out) = common::backstop_said(&rehearsed_dir, &rehearsed_url, &["rehearse"])?;
    let verdict = out.lines().rfind(|l| l.starts_with("rehearsal ")).unwrap_or_default();
    let trips = out.lines().find(|l| l.contains("round trips of")).unwrap_or_default();
    println!(
        "  rehearse, every down round-tripped: {} = {:.2}x one plain apply (goal <= 3x: {}); {}; {}",
        common::secs(rehearse),
         common::ratio(rehearse, plain),
        common::met(common::ratio(rehearse, plain) <= 3.0),
        trips.trim(),
        verdict
    );
    let (after, out) = common::backstop_said(&rehearsed_dir, &rehearsed_url, &["migrate"])?;
    // Two more databases in the state the rehearsal started from: the
    // same proofs cover them.
    let mut afters = vec![after];
    for run in ["after_2", "after_3"] {
        afters.push(common::backstop_said(&rehearsed_dir, &db(run)?, &["migrate"])?.0);
    }
    let after = common::median(afters);
    println!(
        "  migrate after that rehearsal: {} (median of 3) = {:.2}x one plain apply (goal <= 1.5x: \
         {}); {}",
        common::secs(after),
        common::ratio(after, plain),
        common::met(common::ratio(after, plain) <= 1.5),
        proofs_line(&out)
    );

    // One new migration on top of the history.
    let one = (h.more)(&rehearsed_dir, h.blocks);
    (h.more)(&first_dir, h.blocks);
    let one_psql = common::psql_files(cluster, &format!("{}_psql", h.label), &[one])?;
    let (_, _) = common::backstop_said(&rehearsed_dir, &rehearsed_url, &["rehearse"])?;
    for (how, dir, url) in [
        ("after a rehearsal of it", &rehearsed_dir, &rehearsed_url),
        ("nothing rehearsed", &first_dir, &first_url),
    ] {
        let (deploy, out) = common::backstop_said(dir, url, &["migrate"])?;
        let backup = common::backup_time(&out);
        let own = deploy.saturating_sub(backup);
        println!(
            "  deploy of one new migration, {how}: {} with the backup gate's {} = {} beside the \
             backup (goal <= 1s: {}); psql -f of the file {}; {}",
            common::secs(deploy),
            common::secs(backup),
            common::secs(own),
            common::met(own <= Duration::from_secs(1)),
            common::secs(one_psql),
            proofs_line(&out)
        );
    }
    Ok(())
}

const DIESEL_MIGRATIONS: usize = 250;
const DIESEL_CONFIG: &str = "[migrations]\ndir = \"migrations\"\n";

/// Writes the diesel-style project (a folder per migration, `up.sql` and
/// `down.sql`) with its config.
fn diesel_write(dir: &Path, config: &str) -> anyhow::Result<PathBuf> {
    for i in 0..DIESEL_MIGRATIONS {
        let (up, down) = history::migration(i);
        let folder = dir.join(format!("migrations/{:04}_m{i}", i + 1));
        std::fs::create_dir_all(&folder)?;
        std::fs::write(folder.join("up.sql"), up)?;
        std::fs::write(folder.join("down.sql"), down)?;
    }
    std::fs::write(dir.join("backstop.toml"), config)?;
    Ok(dir.to_path_buf())
}

/// The diesel-style history with authored downs: rehearse against one
/// plain apply.
fn authored(cluster: &Cluster, root: &Path) -> anyhow::Result<()> {
    let n = DIESEL_MIGRATIONS;
    let write = |name: &str, config: &str| diesel_write(&root.join(name), config);
    let config = DIESEL_CONFIG;
    let gates_off = GATES_OFF.replace("[migrations]\n", config);
    let plain_dir = write("diesel_plain", &gates_off)?;
    // Both figures are a second or two and move with the machine's load:
    // each is the median of three runs, each rehearsal from a project
    // folder of its own (nothing kept by the one before).
    let (mut plains, mut rehearsals, mut out) = (Vec::new(), Vec::new(), String::new());
    for run in ["", "_2", "_3"] {
        let db = format!("diesel_plain{run}");
        cluster.create_database(&db, None)?;
        plains.push(common::backstop_said(&plain_dir, &cluster.url(&db), &["migrate"])?.0);
        let name = format!("diesel_rehearsed{run}");
        let dir = write(&name, config)?;
        cluster.create_database(&name, None)?;
        let (took, said) = common::backstop_said(&dir, &cluster.url(&name), &["rehearse"])?;
        rehearsals.push(took);
        out = said;
    }
    let (plain, rehearse) = (common::median(plains), common::median(rehearsals));
    let verdict = out.lines().rfind(|l| l.starts_with("rehearsal ")).unwrap_or_default();
    println!("history: {n} diesel-style migrations with authored downs");
    println!(
        "  rehearse: {} against one plain apply {} (medians of 3): {:.2}x (goal <= 3x: {}); \
         {verdict}",
        common::secs(rehearse),
        common::secs(plain),
        common::ratio(rehearse, plain),
        common::met(common::ratio(rehearse, plain) <= 3.0)
    );
    Ok(())
}

fn run() -> anyhow::Result<()> {
    let blocks = match std::env::var("BENCH_BLOCKS") {
        Ok(b) => b.trim().parse::<usize>().ok().filter(|n| *n > 0).with_context(|| {
            format!("BENCH_BLOCKS={b:?} is not a positive whole number; unset it or set e.g. 81")
        })?,
        Err(_) => 81,
    };
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    if !["", "prisma", "drizzle", "diesel"].contains(&only.as_str()) {
        anyhow::bail!("BENCH_ONLY={only:?}: say prisma, drizzle or diesel, or unset it");
    }
    if let Ok(dir) = std::env::var("BENCH_WRITE") {
        let dir = PathBuf::from(dir);
        prisma_write(&dir.join("prisma"), blocks);
        drizzle_write(&dir.join("drizzle"), 30);
        diesel_write(&dir.join("diesel"), DIESEL_CONFIG)?;
        println!("wrote the prisma, drizzle and diesel projects under {}", dir.display());
        return Ok(());
    }
    let cluster = Cluster::start()?;
    let root = tempfile::tempdir()?;
    println!(
        "PostgreSQL {}, every figure from one run on one throwaway cluster",
        cluster.bin().version
    );
    let histories = [
        History {
            label: "prisma",
            folder: "prisma/migrations",
            write: prisma_write,
            more: prisma_more,
            blocks,
        },
        History {
            label: "drizzle",
            folder: "drizzle",
            write: drizzle_write,
            more: drizzle_more,
            blocks: 30,
        },
    ];
    for h in histories.iter().filter(|h| only.is_empty() || only == h.label) {
        measure(&cluster, root.path(), h)?;
    }
    if only.is_empty() || only == "diesel" {
        authored(&cluster, root.path())?;
    }
    Ok(())
}
