//! `backstop demo`: the v1 -> v2 migration story from a real runbook, played
//! on a throwaway cluster. A migration that fails half-way, one that drops a
//! protected table, the good one and its verification suite (which catches
//! a leaky policy planted afterwards), and the rollback; then the incident
//! after COMMIT, decided and rolled back by `backstop respond watch` (methods A and
//! B) and method C ([`incident`]). Each expectation is checked against the
//! database.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use backstop_core::migrate::{
    self, MigrateOptions, Quiet, Report, RollbackTarget, Settings, Stage,
};
use backstop_core::pg::cluster::Cluster;
use backstop_core::pg::fingerprint::{row_counts, Schema};
use backstop_core::pg::{self, redact};
use backstop_core::source::{self, Migration};
use backstop_core::verify::{
    self, ChecksumScope, ResolvedHeaders, Selection, Status, Suite, VerifySection,
};

use crate::render::human;

mod incident;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Leave the cluster running afterwards and print how to reach it.
    #[arg(long)]
    keep: bool,
}

const V1: &str = include_str!("demo/v1.sql");
const V2_HALF_WAY: &str = include_str!("demo/v2_half_way.sql");
const V2_WRONG_TABLE: &str = include_str!("demo/v2_wrong_table.sql");
const V2_UP: &str = include_str!("demo/v2_up.sql");
const V2_DOWN: &str = include_str!("demo/v2_down.sql");
const V2_VERIFY: &str = include_str!("demo/v2_verify.sql");
const SUPABASE_ROLES: &str = include_str!("demo/supabase_roles.sql");
const VERIFY_SUITE: &str = include_str!("demo/verify.toml");

const PROTECTED: [&str; 3] = ["users", "ai_usage_tracking", "usage_alerts"];
const V1_DIR: &str = "20260101000000_v1_video_platform";
const V2_DIR: &str = "20260107120000_v2_client_memory";

/// The expectations, printed as they are checked.
struct Story {
    started: Instant,
    held: usize,
    failed: usize,
}

impl Story {
    fn check(&mut self, title: &str, f: impl FnOnce() -> anyhow::Result<Result<String, String>>) {
        let t = Instant::now();
        let (mark, text) = match f() {
            Ok(Ok(detail)) => {
                self.held += 1;
                ("✓", format!("{title}: {detail}"))
            }
            Ok(Err(why)) => {
                self.failed += 1;
                ("✗", format!("{title}: expected, but {why}"))
            }
            Err(e) => {
                self.failed += 1;
                ("✗", format!("{title}: {e:#}"))
            }
        };
        let _ = writeln!(std::io::stdout(), "{mark} {text} ({})", human(t.elapsed()));
    }
}

fn write_set(
    root: &Path,
    name: &str,
    v2: Option<(&str, Option<&str>, Option<&str>)>,
) -> anyhow::Result<Vec<Migration>> {
    let dir = root.join(name);
    let v1 = dir.join(V1_DIR);
    std::fs::create_dir_all(&v1)?;
    std::fs::write(v1.join("up.sql"), V1)?;
    if let Some((up, down, verify)) = v2 {
        let v2 = dir.join(V2_DIR);
        std::fs::create_dir_all(&v2)?;
        std::fs::write(v2.join("up.sql"), up)?;
        if let Some(down) = down {
            std::fs::write(v2.join("down.sql"), down)?;
        }
        if let Some(verify) = verify {
            std::fs::write(v2.join("verify.sql"), verify)?;
        }
    }
    Ok(source::load(&dir, None)?.migrations)
}

/// The database as the demo compares it: schema and every table's rows.
struct Snapshot {
    schema: Schema,
    counts: Vec<(String, i64)>,
}

fn snapshot(client: &mut postgres::Client) -> anyhow::Result<Snapshot> {
    Ok(Snapshot { schema: Schema::read(client)?, counts: row_counts(client)? })
}

fn unchanged(
    client: &mut postgres::Client,
    before: &Snapshot,
) -> anyhow::Result<Result<String, String>> {
    let now = snapshot(client)?;
    let diff = before.schema.differences(&now.schema);
    if !diff.is_empty() {
        return Ok(Err(format!("the schema changed: {}", diff.join("; "))));
    }
    if now.counts != before.counts {
        return Ok(Err(format!("row counts changed: {:?} -> {:?}", before.counts, now.counts)));
    }
    let rows: i64 = now.counts.iter().map(|(_, n)| n).sum();
    Ok(Ok(format!(
        "schema fingerprint {} and {} rows in {} tables equal to before",
        now.schema.fingerprint(),
        rows,
        now.counts.len()
    )))
}

fn protected_counts(counts: &[(String, i64)]) -> Vec<(String, i64)> {
    counts
        .iter()
        .filter(|(t, _)| PROTECTED.iter().any(|p| t == &format!("public.{p}")))
        .cloned()
        .collect()
}

fn expect_failure(report: &Report, stage: Stage) -> Result<String, String> {
    match &report.failure {
        Some(f) if f.stage == stage && f.rolled_back => {
            let at = match (f.statement, f.statements, &f.sqlstate) {
                (Some(i), Some(n), Some(code)) => {
                    format!("statement {i}/{n} failed ({code}: {}), ", f.message)
                }
                _ => format!("{}, ", f.message),
            };
            Ok(format!("{at}rolled back"))
        }
        Some(f) => Err(format!("it failed differently: {:?} {}", f.stage, f.message)),
        None => Err(format!("it was applied ({} migration(s))", report.done.len())),
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut story = Story { started: Instant::now(), held: 0, failed: 0 };
    let t = Instant::now();
    let cluster = Cluster::start().context("starting a throwaway PostgreSQL cluster")?;
    println!(
        "✓ throwaway PostgreSQL {} cluster on port {} ({})",
        cluster.bin().major,
        cluster.port(),
        human(t.elapsed())
    );
    cluster.create_database("meetsolis", None)?;
    let url = cluster.url("meetsolis");
    let mut client = pg::connect(&url, "backstop demo")?;
    client.batch_execute(SUPABASE_ROLES).context("creating Supabase's roles")?;
    let suite =
        backstop_core::config::Config::parse(VERIFY_SUITE, Path::new("demo/verify.toml"))?.verify;
    let work = tempfile::tempdir().context("creating a temp dir for the demo's migrations")?;
    let settings = Settings {
        protected_tables: PROTECTED.iter().map(|s| s.to_string()).collect(),
        lock_timeout: Duration::from_secs(5),
        statement_timeout: Duration::from_secs(60),
        lock_wait: Duration::from_secs(10),
        lock_retries: 0,
        keep: None,
        tool_history: backstop_core::migrate::InStep::Auto,
        reason: None,
        protected_made: Vec::new(),
        extensions_as_superuser: None,
    };
    let opts = MigrateOptions::default();
    let mut stage =
        Act { client: &mut client, settings: &settings, opts: &opts, work: work.path() };
    let v1 = write_set(stage.work, "v1", None)?;
    story.check("v1 schema with data applied (users, ai_usage_tracking, usage_alerts, meetings, participants, messages)", || {
        let r = migrate::migrate(&mut *stage.client, &v1, stage.settings, stage.opts, &mut [], &mut Quiet)?;
        Ok(match &r.failure {
            None => {
                let counts = row_counts(&mut *stage.client)?;
                let total: i64 = counts.iter().map(|(_, n)| n).sum();
                Ok(format!("{total} rows in {} tables", counts.len()))
            }
            Some(f) => Err(format!("it failed: {}", f.message)),
        })
    });
    // Supabase lets its API roles into the auth schema that v1 made.
    stage
        .client
        .batch_execute("GRANT USAGE ON SCHEMA auth TO authenticated, service_role")
        .context("granting Supabase's roles the auth schema")?;
    let before = snapshot(&mut *stage.client)?;
    let v1_snapshot =
        verify::Snapshot::take(&mut *stage.client, "v1", &ChecksumScope::for_suite(&suite))?;
    failures_change_nothing(&mut story, &mut stage, &before)?;
    let good = good_v2_is_verified(&mut story, &mut stage, &url, &suite, &before, &v1_snapshot)?;
    rollback_restores_v1(&mut story, &mut stage, &good, &before);
    // The restore of the last act replaces the database: no session of
    // the demo may hold on to it.
    drop(client);
    incident::play(&mut story, &url, work.path(), &before.schema)?;

    let total = story.held + story.failed;
    let mut summary = String::new();
    let _ = write!(
        summary,
        "{}: {}/{total} expectations held in {}",
        if story.failed == 0 { "demo passed" } else { "demo FAILED" },
        story.held,
        human(story.started.elapsed())
    );
    if args.keep {
        let dir = cluster.dir().to_path_buf();
        let port = cluster.port();
        println!("cluster kept running: {}", redact(&url));
        println!("  connect: psql -h {} -p {port} -U postgres meetsolis", dir.display());
        println!(
            "  stop:    pg_ctl stop -D {}/data  (as the postgres user when root)",
            dir.display()
        );
        cluster.keep();
    }
    println!("{summary}");
    std::io::stdout().flush().context("writing to stdout")?;
    Ok(if story.failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// What every act of the first part works with.
struct Act<'a> {
    client: &'a mut postgres::Client,
    settings: &'a Settings,
    opts: &'a MigrateOptions,
    /// Where the acts write their migration folders.
    work: &'a Path,
}

/// Act two: a v2 that fails half-way, and one that drops a protected
/// table, each leave the database as it was.
fn failures_change_nothing(
    story: &mut Story,
    stage: &mut Act<'_>,
    before: &Snapshot,
) -> anyhow::Result<()> {
    let Act { client, settings, opts, work } = stage;
    let (settings, opts) = (*settings, *opts);
    let client: &mut postgres::Client = client;
    let half_way = write_set(work, "half_way", Some((V2_HALF_WAY, None, None)))?;
    story.check("v2 that fails half-way is rolled back", || {
        let r = migrate::migrate(&mut *client, &half_way, settings, opts, &mut [], &mut Quiet)?;
        Ok(expect_failure(&r, Stage::Statement))
    });
    story.check("database unchanged", || unchanged(&mut *client, before));

    let wrong = write_set(work, "wrong_table", Some((V2_WRONG_TABLE, None, None)))?;
    story.check("v2 that drops protected table users is refused", || {
        let r = migrate::migrate(&mut *client, &wrong, settings, opts, &mut [], &mut Quiet)?;
        Ok(expect_failure(&r, Stage::ProtectedTable).map(|_| {
            r.failure.as_ref().map_or(String::new(), |f| format!("{}, rolled back", f.message))
        }))
    });
    story.check("database unchanged", || unchanged(&mut *client, before));

    Ok(())
}

/// Act three: the good v2 is applied, passes the verification suite, a
/// leak planted afterwards is caught, and the protected rows stay.
fn good_v2_is_verified(
    story: &mut Story,
    stage: &mut Act<'_>,
    url: &str,
    suite: &VerifySection,
    before: &Snapshot,
    v1_snapshot: &verify::Snapshot,
) -> anyhow::Result<Vec<Migration>> {
    let Act { client, settings, opts, work } = stage;
    let (settings, opts) = (*settings, *opts);
    let client: &mut postgres::Client = client;
    let good = write_set(work, "good", Some((V2_UP, Some(V2_DOWN), Some(V2_VERIFY))))?;
    story.check("good v2 applied: clients, meetings, action_items with RLS, policies, indexes, verify.sql passed", || {
        let r = migrate::migrate(&mut *client, &good, settings, opts, &mut [], &mut Quiet)?;
        Ok(match (&r.failure, r.done.first()) {
            (None, Some(d)) => Ok(format!("{} in {}", d.version, human(Duration::from_millis(d.duration_ms)))),
            (Some(f), _) => Err(format!("it failed: {}", f.message)),
            (None, None) => Err("nothing was applied".into()),
        })
    });
    let mut lines = String::new();
    story.check("v2 passes the verification suite", || {
        let report = run_suite(&mut *client, url, suite, Vec::new(), v1_snapshot)?;
        for line in report.text().lines().filter(|l| !l.starts_with("verify ")) {
            let _ = writeln!(lines, "    {line}");
        }
        Ok(if report.ok() {
            Ok(format!("{}/{} checks passed", report.passed, report.checks.len()))
        } else {
            Err(report.summary())
        })
    });
    print!("{lines}");
    story.check("a leaky policy planted afterwards is caught", || {
        client.batch_execute("CREATE POLICY clients_debug ON clients FOR SELECT USING (true)")?;
        let only = vec!["clients are private".to_string()];
        let report = run_suite(&mut *client, url, suite, only, v1_snapshot);
        client.batch_execute("DROP POLICY clients_debug ON clients")?;
        Ok(match report?.checks.first() {
            Some(c) if c.status == Status::Fail => {
                Ok(format!("{} {}: {}", c.status.mark(), c.name, c.detail))
            }
            Some(c) => Err(format!("the check said {}: {}", c.status.mark(), c.detail)),
            None => Err("no check ran".to_string()),
        })
    });
    story.check("protected tables kept every row through v2", || {
        let now = protected_counts(&row_counts(&mut *client)?);
        let was = protected_counts(&before.counts);
        Ok(if now == was { Ok(describe(&now)) } else { Err(format!("{was:?} became {now:?}")) })
    });
    Ok(good)
}

/// Act four: rolling v2 back gives the v1 schema and every protected row.
fn rollback_restores_v1(
    story: &mut Story,
    stage: &mut Act<'_>,
    good: &[Migration],
    before: &Snapshot,
) {
    let Act { client, settings, .. } = stage;
    let settings = *settings;
    let client: &mut postgres::Client = client;
    story.check("rollback restores the v1 schema", || {
        let r = migrate::rollback(
            &mut *client,
            good,
            settings,
            &RollbackTarget::Steps(1),
            false,
            &mut Quiet,
        )?;
        if let Some(f) = &r.failure {
            return Ok(Err(format!("the rollback failed: {}", f.message)));
        }
        let now = snapshot(&mut *client)?;
        let diff = before.schema.differences(&now.schema);
        if !diff.is_empty() {
            return Ok(Err(format!("the schema differs from v1: {}", diff.join("; "))));
        }
        let protected_now = protected_counts(&now.counts);
        if protected_now != protected_counts(&before.counts) {
            return Ok(Err(format!("protected rows changed: {protected_now:?}")));
        }
        Ok(Ok(format!(
            "schema fingerprint {} equal to v1, {}",
            now.schema.fingerprint(),
            describe(&protected_now)
        )))
    });
}

fn describe(counts: &[(String, i64)]) -> String {
    counts
        .iter()
        .map(|(t, n)| format!("{} {n}", t.trim_start_matches("public.")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs the demo's suite (or the `only` checks of it); row counts and
/// checksums compare with the v1 snapshot.
fn run_suite(
    client: &mut postgres::Client,
    url: &str,
    suite: &VerifySection,
    only: Vec<String>,
    v1: &verify::Snapshot,
) -> anyhow::Result<verify::SuiteReport> {
    // The checks that hold after v2's migrate (`after` in verify.toml).
    let selection = Selection { only, phase: Some(verify::Phase::Migrate), ..Default::default() };
    let prepared = Suite::prepare(
        client,
        url,
        suite,
        &selection,
        Some(v1.clone()),
        &ResolvedHeaders::default(),
    )?;
    Ok(prepared.run())
}
