//! Safe at the speed of plain: what every default gate costs on long
//! histories shaped like real ones, each figure against a plain apply of
//! the same history (`backstop migrate` with the gates and kept downs
//! off, the median of three) measured in the same run on one throwaway
//! cluster. No `backstop.toml` anywhere else: the path a new user runs.
//!
//! For each history:
//!
//! 1. `check` of the whole pending history on an empty database (every
//!    up run on a copy): goal at most 2x the plain apply;
//! 2. the first `migrate` of the whole history, every gate on, nothing
//!    rehearsed (every down proved, the authored ones too): goal at most
//!    4x the plain apply; beside it its floor, what any round trip costs
//!    (a throwaway copy of the target's schema made as a proof's is, and
//!    each statement three times: three plain applies);
//! 3. the deploy of one new migration (with an authored down where the
//!    layout keeps downs) on top of it: goal at most 1 s beside the
//!    backup gate's own time;
//! 4. the rollback of that one migration, with its check before COMMIT:
//!    goal at most 0.5 s.
//!
//! The histories: 300 golang-migrate pairs with about 8 % wrong old downs
//! (`bench/golang_history.rs`), the 300-migration drizzle history with
//! DO blocks (`bench/drizzle_history.rs`), the 90-migration Supabase
//! history on the platform's schemas (`bench/supabase_history.rs`), and
//! the Prisma history (`bench/prisma_history.rs`, 200 migrations by
//! default); and the Supabase history again on the platform as it is
//! hosted (`supabase_hosted`, on a cluster of its own): the database's
//! owner `postgres` no superuser, the platform made by its own superuser
//! `supabase_admin`, every command run as `postgres`.
//!
//! Run: `cargo bench -p backstop-cli --bench safe_speed`
//! (`BENCH_ONLY=golang|drizzle|supabase|supabase_hosted|prisma` runs one;
//! `BENCH_BLOCKS` sets the Prisma history's blocks of 10, default 20;
//! `BENCH_WRITE=DIR` only writes the projects under DIR).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use backstop_core::pg::cluster::{Cluster, PgBin};

mod common;
#[allow(dead_code)]
#[path = "../../../bench/drizzle_history.rs"]
mod drizzle_history;
#[allow(dead_code)]
#[path = "../../../bench/golang_history.rs"]
mod golang_history;
#[allow(dead_code)]
#[path = "../../../bench/history.rs"]
mod history;
#[allow(dead_code)]
#[path = "../../../bench/prisma_history.rs"]
mod prisma_history;
#[allow(dead_code)]
#[path = "../../../bench/supabase_history.rs"]
mod supabase_history;

/// Gates and kept downs off: the apply alone.
const GATES_OFF: &str = "[migrations]\nkeep_downs = false\n\n[check]\nrequired = false\n\n\
                         [backup]\nrequired = false\n";

const GOLANG_PAIRS: usize = 300;
const DRIZZLE_BLOCKS: usize = 30;
const SUPABASE_MIGRATIONS: usize = 90;

fn main() -> std::process::ExitCode {
    common::exit("safe_speed", run())
}

/// Writes a history into a project; returns each file psql would run.
type Write = Box<dyn Fn(&Path) -> Vec<PathBuf>>;

/// One tool's history as the tool leaves it in a project.
struct History {
    label: &'static str,
    /// Writes the history into a project; returns each file psql would run.
    write: Write,
    /// Writes one more migration after it.
    more: Box<dyn Fn(&Path)>,
    /// SQL that makes the database the history is written on (a platform).
    platform: Option<&'static str>,
    /// The platform as it is hosted: made by `supabase_admin`, the
    /// database given to `postgres`, no superuser, which runs everything.
    hosted: bool,
}

/// The password of the hosted platform's owner, `postgres`.
const OWNER_PW: &str = "owner-pw";

/// A cluster shaped as a hosted platform's server: its superuser's name
/// freed, the platform's superuser `supabase_admin`, the project's owner
/// `postgres` no superuser.
fn hosted_cluster() -> anyhow::Result<Cluster> {
    let mut cluster = Cluster::start()?;
    cluster.free_role_name("postgres")?;
    cluster.connect("postgres")?.batch_execute(&format!(
        "CREATE ROLE supabase_admin SUPERUSER LOGIN CREATEROLE CREATEDB REPLICATION BYPASSRLS;
         CREATE ROLE postgres LOGIN PASSWORD '{OWNER_PW}' NOSUPERUSER CREATEDB CREATEROLE BYPASSRLS;"
    ))?;
    Ok(cluster)
}

/// Makes database `db` of a [`hosted_cluster`] the platform `platform`
/// as its superuser makes it, owned by `postgres`; the owner's URL.
fn hosted_db(cluster: &Cluster, db: &str, platform: &str) -> anyhow::Result<String> {
    let mut admin = cluster.connect(db)?;
    admin.batch_execute(&format!(
        "ALTER DATABASE {db} OWNER TO postgres; SET SESSION AUTHORIZATION supabase_admin;"
    ))?;
    admin.batch_execute(platform).context("making the platform")?;
    admin.batch_execute(
        "ALTER SCHEMA public OWNER TO postgres;
         ALTER PUBLICATION supabase_realtime OWNER TO postgres;
         DO $$ DECLARE s text; BEGIN
           FOR s IN SELECT nspname FROM pg_namespace
                     WHERE left(nspname, 3) <> 'pg_' AND nspname <> 'information_schema' LOOP
             EXECUTE format('GRANT USAGE ON SCHEMA %I TO postgres', s);
             EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO postgres', s);
             EXECUTE format('GRANT SELECT ON ALL SEQUENCES IN SCHEMA %I TO postgres', s);
           END LOOP;
         END $$;
         GRANT SELECT, REFERENCES, TRIGGER ON auth.users TO postgres;
         RESET SESSION AUTHORIZATION;",
    )?;
    Ok(format!("postgres://postgres:{OWNER_PW}@127.0.0.1:{}/{db}", cluster.port()))
}

fn histories(prisma_blocks: usize) -> Vec<History> {
    vec![
        History {
            label: "golang",
            write: Box::new(|p| golang_history::write(p, GOLANG_PAIRS)),
            more: Box::new(|p| {
                golang_history::more(p, GOLANG_PAIRS);
            }),
            platform: None,
            hosted: false,
        },
        History {
            label: "drizzle",
            write: Box::new(|p| {
                let dir = p.join("drizzle");
                let tags = drizzle_history::write(&dir, DRIZZLE_BLOCKS, None);
                tags.iter().map(|t| dir.join(format!("{t}.sql"))).collect()
            }),
            more: Box::new(|p| drizzle_more(p, DRIZZLE_BLOCKS)),
            platform: None,
            hosted: false,
        },
        History {
            label: "supabase",
            write: Box::new(supabase_files),
            more: Box::new(supabase_more),
            platform: Some(supabase_history::PLATFORM),
            hosted: false,
        },
        History {
            label: "supabase_hosted",
            write: Box::new(supabase_files),
            more: Box::new(supabase_more),
            platform: Some(supabase_history::PLATFORM),
            hosted: true,
        },
        History {
            label: "prisma",
            write: Box::new(move |p| {
                let dir = p.join("prisma/migrations");
                let names = prisma_history::write(&dir, prisma_blocks);
                names.iter().map(|n| dir.join(n).join("migration.sql")).collect()
            }),
            more: Box::new(move |p| {
                let n = prisma_blocks * prisma_history::PER_BLOCK + 1;
                let dir =
                    p.join(format!("prisma/migrations/{}_deploy_notes", prisma_history::stamp(n)));
                std::fs::create_dir_all(&dir).expect("the folder is made");
                std::fs::write(
                    dir.join("migration.sql"),
                    "-- AlterTable\nALTER TABLE \"Item_1\" ADD COLUMN \"deployNote\" TEXT;\n",
                )
                .expect("the migration is written");
            }),
            platform: None,
            hosted: false,
        },
    ]
}

fn drizzle_more(project: &Path, blocks: usize) {
    let dir = project.join("drizzle");
    let mut tags = drizzle_history::write(&dir, blocks, None);
    let tag = format!("{:04}_deploy_notes", tags.len());
    std::fs::write(
        dir.join(format!("{tag}.sql")),
        "ALTER TABLE \"events_1\" ADD COLUMN \"deploy_note\" text;",
    )
    .expect("the migration is written");
    tags.push(tag);
    std::fs::write(dir.join("meta/_journal.json"), drizzle_history::journal(&tags, tags.len()))
        .expect("the journal is written");
}

/// The lines of `output` that start with one of `starts`, joined.
fn lines_of(output: &str, starts: &[&str]) -> String {
    let found: Vec<&str> =
        output.lines().filter(|l| starts.iter().any(|s| l.trim_start().starts_with(s))).collect();
    found.join(" | ")
}

/// Writes the Supabase history; returns its files in order.
fn supabase_files(p: &Path) -> Vec<PathBuf> {
    let shape = supabase_history::Platform { uuid_ossp: false, vector: false };
    supabase_history::write(p, supabase_history::Layout::Supabase, SUPABASE_MIGRATIONS, shape);
    let mut files: Vec<PathBuf> = std::fs::read_dir(p.join("supabase/migrations"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

/// One more Supabase migration.
fn supabase_more(p: &Path) {
    let stamp = supabase_history::stamp(SUPABASE_MIGRATIONS + 1);
    let file = p.join(format!("supabase/migrations/{stamp}_deploy_notes.sql"));
    std::fs::write(file, "alter table public.plans add column deploy_note text;\n")
        .expect("the migration is written");
}

fn measure(cluster: &Cluster, root: &Path, h: &History) -> anyhow::Result<()> {
    let project = |name: &str, config: Option<&str>| -> anyhow::Result<(PathBuf, Vec<PathBuf>)> {
        let dir = root.join(format!("{}_{name}", h.label));
        std::fs::create_dir_all(&dir)?;
        let files = (h.write)(&dir);
        if let Some(config) = config {
            std::fs::write(dir.join("backstop.toml"), config)?;
        }
        Ok((dir, files))
    };
    let db = |name: &str| -> anyhow::Result<String> {
        let db = format!("{}_{name}", h.label);
        cluster.create_database(&db, None)?;
        if let (Some(platform), true) = (h.platform, h.hosted) {
            return hosted_db(cluster, &db, platform);
        }
        if let Some(platform) = h.platform {
            cluster.connect(&db)?.batch_execute(platform).context("making the platform")?;
        }
        Ok(cluster.url(&db))
    };
    let (plain_dir, files) = project("plain", Some(GATES_OFF))?;
    println!("history: {} {} migrations", files.len(), h.label);
    let mut plains = Vec::new();
    for run in ["plain", "plain_2", "plain_3"] {
        plains.push(common::backstop_said(&plain_dir, &db(run)?, &["migrate"])?.0);
    }
    let plain = common::median(plains);
    println!("  one plain apply (gates and downs off): {} (median of 3)", common::secs(plain));

    // Each figure a few seconds that moves with the machine's load: the
    // median of three, each run from a project folder and a database of
    // its own (nothing kept by the one before); the last goes on.
    let (mut checks, mut firsts, mut copies) = (Vec::new(), Vec::new(), Vec::new());
    let mut readings = Vec::new();
    let (mut dir, mut url) = (PathBuf::new(), String::new());
    let (mut check_said, mut first_said, mut code) = (String::new(), String::new(), 0);
    for run in ["first", "first_2", "first_3"] {
        dir = project(run, None)?.0;
        url = db(run)?;
        copies.push(copy_cost(&url)?);
        let (took, out, _) = common::backstop_answered(&dir, &url, &["check"])?;
        checks.push(took);
        check_said = out;
        let (took, out, exit) = common::backstop_answered(&dir, &url, &["migrate"])?;
        firsts.push(took);
        readings.push(reading_of(&out));
        (first_said, code) = (out, exit);
    }
    let (check, first) = (common::median(checks), common::median(firsts));
    let verdict = lines_of(&check_said, &["verdict", "ran the", "not run on a copy"]);
    println!(
        "  check of the whole history on an empty database: {} (median of 3) = {:.2}x a plain \
         apply (goal <= 2x: {}); {verdict}",
        common::secs(check),
        common::ratio(check, plain),
        common::met(common::ratio(check, plain) <= 2.0)
    );
    let said = lines_of(
        &first_said,
        &["proved ", "reused ", "warning: the down", "applied", "nothing ran"],
    );
    let said: String = said.chars().take(600).collect();
    println!(
        "  first migrate, every default gate on: {} (median of 3) = {:.2}x a plain apply (goal \
         <= 4x: {}); {said}",
        common::secs(first),
        common::ratio(first, plain),
        common::met(common::ratio(first, plain) <= 4.0)
    );
    // What the round trips cannot do without, whoever proves them: a copy
    // of the target's schema to prove on, and each statement run three
    // times (the up and the down there, the up here).
    let copy = common::median(copies);
    let floor = copy + plain * 3;
    println!(
        "  its floor: a throwaway copy of the target's schema {} (a cluster started, pg_dump -s | \
         pg_restore; median of 3) + each statement three times (3 plain applies) = {} = {:.2}x a \
         plain apply; the first migrate is {:.2}x its floor",
        common::secs(copy),
        common::secs(floor),
        common::ratio(floor, plain),
        common::ratio(first, floor)
    );
    // A proof compares the schema after its up and after its down: the
    // replay's reads of it, as the first migrate said them (of the slower
    // half where it ran in two), on top of that floor.
    let reading = common::median(readings);
    let read_floor = floor + reading;
    println!(
        "  with the proof's reads of the schema (after each up and each down; {} in the first \
         migrate, median of 3): {} = {:.2}x a plain apply; the first migrate is {:.2}x it",
        common::secs(reading),
        common::secs(read_floor),
        common::ratio(read_floor, plain),
        common::ratio(first, read_floor)
    );
    if code != 0 {
        println!("  the first migrate was refused (exit {code}): no deploy or rollback to time");
        return Ok(());
    }
    (h.more)(&dir);
    let (deploy, out) = common::backstop_said(&dir, &url, &["migrate"])?;
    let backup = common::backup_time(&out);
    let own = deploy.saturating_sub(backup);
    println!(
        "  deploy of one new migration: {} with the backup gate's {} = {} beside the backup \
         (goal <= 1s: {})",
        common::secs(deploy),
        common::secs(backup),
        common::secs(own),
        common::met(own <= Duration::from_secs(1))
    );
    let (rollback, out) =
        common::backstop_said(&dir, &url, &["rollback", "--steps", "1", "--reason", "bench"])?;
    let said = lines_of(&out, &["✓", "rolled back", "reverted"]);
    println!(
        "  rollback of it, with its check before COMMIT: {} (goal <= 0.5s: {}); {said}",
        common::secs(rollback),
        common::met(rollback <= Duration::from_millis(500))
    );
    Ok(())
}

/// A throwaway cluster started and the schema of the database at `url`
/// copied into it with its roles, as a proof's copy is made: how long
/// that takes.
fn copy_cost(url: &str) -> anyhow::Result<Duration> {
    use std::process::{Command, Stdio};
    let started = std::time::Instant::now();
    // Sized as a proof's copy is: on a memory filesystem where there is room.
    let copy = Cluster::start_sized(PgBin::find()?, 64 << 20)?;
    copy.create_database("copy", None)?;
    let roles = Command::new(copy.bin().tool("pg_dumpall"))
        .args(["--roles-only", "--no-role-passwords", "--no-password", &format!("--dbname={url}")])
        .output()
        .context("running pg_dumpall")?;
    let roles = common::check(roles, "pg_dumpall --roles-only")?.stdout;
    // One statement a line, but those about the copy's own superuser
    // (its password is the copy's); a role already there fails alone.
    let mut client = copy.connect("copy")?;
    let me: String = client.query_one("select current_user::text", &[])?.get(0);
    let own = [format!("CREATE ROLE {me};"), format!("ALTER ROLE {me} ")];
    for line in String::from_utf8_lossy(&roles).lines().filter(|l| l.ends_with(';')) {
        if !own.iter().any(|o| line.starts_with(o.as_str())) {
            let _ = client.batch_execute(line);
        }
    }
    let mut dump = Command::new(copy.bin().tool("pg_dump"))
        .args(["--schema-only", "--format=custom", "--no-password", &format!("--dbname={url}")])
        .stdout(Stdio::piped())
        .spawn()
        .context("starting pg_dump")?;
    let stdout = dump.stdout.take().context("pg_dump's output")?;
    let restore = Command::new(copy.bin().tool("pg_restore"))
        .args(["--no-password", "--exit-on-error", &format!("--dbname={}", copy.url("copy"))])
        .stdin(stdout)
        .output()
        .context("running pg_restore")?;
    common::check(restore, "pg_restore of the schema")?;
    anyhow::ensure!(dump.wait()?.success(), "pg_dump of {url} failed");
    Ok(started.elapsed())
}

fn run() -> anyhow::Result<()> {
    let prisma_blocks = match std::env::var("BENCH_BLOCKS") {
        Ok(b) => b.trim().parse::<usize>().ok().filter(|n| *n > 0).with_context(|| {
            format!("BENCH_BLOCKS={b:?} is not a positive whole number; unset it or set e.g. 20")
        })?,
        Err(_) => 20,
    };
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let all = histories(prisma_blocks);
    if !only.is_empty() && !all.iter().any(|h| h.label == only) {
        anyhow::bail!(
            "BENCH_ONLY={only:?}: say golang, drizzle, supabase, supabase_hosted or prisma, or \
             unset it"
        );
    }
    let chosen: Vec<&History> = all.iter().filter(|h| only.is_empty() || h.label == only).collect();
    if let Ok(dir) = std::env::var("BENCH_WRITE") {
        for h in &chosen {
            (h.write)(&PathBuf::from(&dir).join(h.label));
        }
        println!("wrote the projects under {dir}");
        return Ok(());
    }
    let cluster = Cluster::start()?;
    let root = tempfile::tempdir()?;
    println!(
        "PostgreSQL {}, every figure from one run on one throwaway cluster",
        cluster.bin().version
    );
    let mut hosted = None;
    for h in chosen {
        let on = match h.hosted {
            true => &*hosted.insert(hosted_cluster()?),
            false => &cluster,
        };
        measure(on, root.path(), h)?;
    }
    Ok(())
}

/// How long the first migrate said its replay's reads of the schema took
/// ("… after each up and each down: 571 ms"); zero where it said none.
fn reading_of(said: &str) -> Duration {
    let Some((_, rest)) = said.split_once("after each up and each down: ") else {
        return Duration::ZERO;
    };
    let mut words = rest.split([' ', ')']);
    let number: f64 = words.next().and_then(|n| n.parse().ok()).unwrap_or(0.0);
    match words.next() {
        Some("ms") => Duration::from_secs_f64(number / 1000.0),
        Some("s") => Duration::from_secs_f64(number),
        _ => Duration::ZERO,
    }
}
