//! `backstop backup drill` on the demo's application (Supabase-style auth and
//! RLS, release flags, a release v3 that adds a column and a table): every
//! step passes within its target and the target is left as it was but
//! for the drill's record; a target of 1 ms makes method B slow; a down
//! that leaves a column fails method C by name; `--due` fails once the
//! last passed drill is older than `every`; two drills take turns; a drill
//! killed at any step leaves no cluster, no process and no workspace, and
//! the next drill reports it.

use std::time::Duration;

use backstop_core::pg::cluster::Cluster;

use crate::common::{DbExt, Project, Run};

const V1: &str = include_str!("../../src/commands/demo/v1.sql");
const V2_UP: &str = include_str!("../../src/commands/demo/v2_up.sql");
const V2_DOWN: &str = include_str!("../../src/commands/demo/v2_down.sql");

/// What Supabase has before any migration: the roles its API uses, with
/// their rights on what the migrations create.
const PLATFORM: &str = r#"
DO $$ BEGIN CREATE ROLE authenticated NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;
DO $$ BEGIN CREATE ROLE service_role NOLOGIN BYPASSRLS;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;
GRANT USAGE ON SCHEMA public TO authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
  GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
  GRANT USAGE, SELECT ON SEQUENCES TO authenticated, service_role;
"#;

/// The release drilled: archiving clients, and tags on them.
const V3_UP: &str = r#"ALTER TABLE clients ADD COLUMN archived_at timestamptz;
CREATE TABLE client_tags (
  id bigserial PRIMARY KEY,
  user_id bigint NOT NULL REFERENCES users (id),
  client_id bigint NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
  tag text NOT NULL
);
ALTER TABLE client_tags ENABLE ROW LEVEL SECURITY;
CREATE POLICY client_tags_own ON client_tags
  USING (user_id = (SELECT id FROM users WHERE clerk_id = auth.uid()));
"#;
const V3_DOWN: &str = "DROP TABLE client_tags;\nALTER TABLE clients DROP COLUMN archived_at;\n";
/// The planted defect: the down forgets the column.
const V3_DOWN_LEAVES_A_COLUMN: &str = "DROP TABLE client_tags;\n";

fn config(drill: &str) -> String {
    format!(
        r#"[database]
url = "${{DATABASE_URL}}"

[migrations]
dir = "migrations"
protected_tables = ["users", "ai_usage_tracking", "usage_alerts"]

[backup]
dir = "backups"
jobs = 2

[[flags]]
key = "client_cards"
release = "v2"

[[flags]]
key = "client_tags"
release = "v3"

[[verify.checks]]
name = "database connection OK"
kind = "connection"

[[verify.checks]]
name = "Epic 1 tables exist"
kind = "tables"
tables = ["users", "ai_usage_tracking", "usage_alerts", "clients"]

[[verify.checks]]
name = "clients are private"
kind = "rls_isolation"
table = "clients"
owner_column = "user_id"
identity = {{ table = "users", column = "clerk_id" }}

[[verify.checks]]
name = "protected tables kept every row"
kind = "row_counts"
tables = ["users", "ai_usage_tracking", "usage_alerts"]

[[verify.checks]]
name = "no orphan rows"
kind = "foreign_keys"

[drill]
{drill}
"#
    )
}

const TARGETS: &str = "method_a = \"5m\"\nmethod_b = \"20m\"\nmethod_c = \"1h\"\nevery = \"90d\"\n";

/// The demo's application on `cluster`: v1 and v2 applied, then release
/// v3 behind the backup `migrate` takes, its flag on, and rows written
/// since (clients of v2, tags of v3).
fn app(label: &str, cluster: &Cluster, v3_down: &str, drill: &str) -> Project {
    let p = Project::on(cluster, label);
    p.config(&config(drill));
    cluster.connect(&p.db).unwrap().batch_execute(PLATFORM).unwrap();
    p.migration("20260101000000_v1", V1, None);
    p.migration("20260102000000_v2", V2_UP, Some(V2_DOWN));
    p.run(&["migrate"]).expect_code(0);
    p.run(&["flags", "sync"]).expect_code(0);
    p.run(&["flags", "enable", "--release", "v2", "--reason", "launch"]).expect_code(0);
    let mut db = cluster.connect(&p.db).unwrap();
    db.batch_execute(
        "INSERT INTO clients (user_id, name, company)
         SELECT 1 + i % 20, 'client ' || i, 'co ' || i FROM generate_series(1, 40) i;",
    )
    .unwrap();
    p.migration("20260103000000_v3", V3_UP, Some(v3_down));
    if v3_down == V3_DOWN_LEAVES_A_COLUMN {
        // The project deploys it as it is, the deploy's warning notwithstanding.
        let deploy = "dir = \"migrations\"\ndefective_downs = \"deploy\"\n";
        p.config(&config(drill).replacen("dir = \"migrations\"\n", deploy, 1));
        p.run(&["migrate"]).expect_code(0).expect_output("warning: the down of 20260103000000_v3");
    } else {
        p.run(&["migrate"]).expect_code(0);
    }
    p.run(&["flags", "sync"]).expect_code(0);
    p.run(&["flags", "disable", "client_cards", "--reason", "v3 replaces it"]).expect_code(0);
    p.run(&["flags", "enable", "--release", "v3", "--reason", "launch"]).expect_code(0);
    // Written after the backup taken before v3.
    db.batch_execute(
        "INSERT INTO clients (user_id, name) VALUES (1, 'late client');
         INSERT INTO client_tags (user_id, client_id, tag) SELECT user_id, id, 'vip' FROM clients WHERE id <= 5;",
    )
    .unwrap();
    p
}

/// Everything of the target a drill must not change: the schema, every
/// row of every table, the roles of the server, its databases, and
/// Backstop's own tables but `drills`.
fn everything(cluster: &Cluster, db: &str) -> Vec<String> {
    let mut c = cluster.connect(db).unwrap();
    let mut out = vec![backstop_core::pg::fingerprint::Schema::read(&mut c).unwrap().fingerprint()];
    let tables = c.texts(
        "select format('%I.%I', n.nspname, c.relname) from pg_class c
           join pg_namespace n on n.oid = c.relnamespace
          where c.relkind = 'r' and n.nspname not in ('pg_catalog', 'information_schema')
            and not (n.nspname = 'backstop' and c.relname = 'drills')
          order by 1",
    );
    for t in tables {
        let rows: String = c
            .query_one(
                &format!(
                    "select '{}: ' || count(*) || ' ' || coalesce(md5(string_agg(x::text, ',' order by x::text)), '') from {t} x",
                    t.replace('\'', "''")
                ),
                &[],
            )
            .unwrap()
            .get(0);
        out.push(rows);
    }
    out.extend(c.texts(
        "select concat_ws(' ', rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb,
                rolcanlogin, rolreplication, rolbypassrls, rolconfig::text)
           from pg_roles order by 1",
    ));
    out.extend(c.texts("select datname::text from pg_database order by 1"));
    out
}

fn drills(p: &Project) -> Vec<(String, Option<String>)> {
    p.client()
        .query("select outcome, step from backstop.drills order by id", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[test]
fn a_drill_of_the_demo_passes_every_step_and_changes_nothing_but_its_record() {
    let cluster = Cluster::start().unwrap();
    let hooks = format!("{TARGETS}\n[hooks]\nafter_kill = \"touch hook-ran\"\n");
    let p = app("drill_demo", &cluster, V3_DOWN, &hooks);
    let before = everything(&cluster, &p.db);
    let run = p.run(&["drill"]);
    run.expect_code(0);
    for line in [
        "✓ restore",
        "✓ release",
        "20260103000000 applied again (the backup predates it)",
        "✓ method A",
        "flags of release v3 off",
        "✓ method C",
        "20260103000000 reverted; the schema is the one the release started from",
        "✓ method B",
        "clients are private",
        "public.client_tags +5",
        "method C keeps them but those of the tables the release created (public.client_tags +5)",
        "drill passed",
        "[hooks] after_kill not run (not marked safe: [drill] hooks)",
    ] {
        run.expect_output(line);
    }
    assert!(!p.path().join("hook-ran").exists(), "a hook not marked safe ran in a drill");
    assert_eq!(everything(&cluster, &p.db), before, "the drill changed the target:\n{}", run.all());
    let mut db = cluster.connect(&p.db).unwrap();
    let recorded: Vec<(String, Option<String>, Option<String>)> = db
        .query("select outcome, release, backup_id from backstop.drills", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert_eq!(recorded[0].0, "passed");
    assert_eq!(recorded[0].1.as_deref(), Some("v3"));

    let list = p.run(&["drill", "--list"]);
    list.expect_code(0).expect_output("passed");
    let md = p.run(&["drill", "--list", "--format", "markdown"]);
    md.expect_code(0).expect_output("| Drill | Started | Outcome |");
    p.run(&["drill", "--due"]).expect_code(0).expect_output("drill passed");
    p.run(&["status"]).expect_code(0).expect_output("last drill: passed");
    let json = p.run(&["status", "--format", "json"]).expect_code(0).json();
    assert_eq!(json["drill"]["overdue"], false, "{json:#}");
    let server = crate::common::server::Server::start(&p);
    let (_, metrics, _) = server.get("/metrics", None);
    for line in [
        "backstop_drill_age_seconds ",
        "backstop_drill_due 0",
        "backstop_drill_last_passed 1",
        "backstop_drill_step{step=\"method C\",outcome=\"passed\"} 1",
        "backstop_drill_step_target_seconds{step=\"method B\"} 1200.000",
    ] {
        assert!(metrics.contains(line), "{line} not in\n{metrics}");
    }
    drop(server);
    p.config(&config("every = \"1s\"\n"));
    std::thread::sleep(Duration::from_millis(1100));
    let due = p.run(&["drill", "--due"]);
    due.expect_code(1).expect_output("drill overdue: the last passed drill ran");
}

#[test]
fn a_target_of_one_millisecond_makes_method_b_slow_and_the_drill_fail() {
    let drill = "method_b = \"1ms\"\nhooks = [\"after_kill\"]\n\n[hooks]\nafter_kill = \"echo drill=$BACKSTOP_DRILL >> hook.txt\"\n";
    let p = app("drill_slow", &crate::common::CLUSTER, V3_DOWN, drill);
    let run = p.run(&["drill", "--format", "json"]);
    run.expect_code(1);
    let json = run.json();
    let b = json["steps"].as_array().unwrap().iter().find(|s| s["name"] == "method B").unwrap();
    assert_eq!(b["outcome"], "slow", "{json:#}");
    assert_eq!(b["target_ms"], 1);
    assert!(json["issues"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["problem"].as_str().unwrap().contains("over its target of 1 ms")));
    for step in ["restore", "release", "method A", "method C"] {
        let s = json["steps"].as_array().unwrap().iter().find(|s| s["name"] == step).unwrap();
        assert_eq!(s["outcome"], "passed", "{step}: {json:#}");
    }
    assert_eq!(drills(&p), [("failed".to_string(), None)]);
    // The hook marked safe ran after each method's kill, told it is a drill.
    let hook = std::fs::read_to_string(p.path().join("hook.txt")).unwrap();
    assert_eq!(hook, "drill=1\ndrill=1\ndrill=1\n");
    p.run(&["status"]).expect_code(0).expect_output("last drill: failed");
    let server = crate::common::server::Server::start(&p);
    let (_, metrics, _) = server.get("/metrics", None);
    assert!(
        metrics.contains("backstop_drill_step{step=\"method B\",outcome=\"slow\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("backstop_drill_due 1"), "no drill passed: {metrics}");
    assert!(!metrics.contains("backstop_drill_age_seconds"), "{metrics}");
    let (_, page, _) = server.get("/", None);
    assert!(page.contains("<h2>Last drill</h2>") && page.contains(">slow</td>"), "{page}");
    drop(server);
    let md = p.run(&["drill", "--format", "markdown"]);
    md.expect_code(1).expect_output("## Last tested").expect_output("| method B | ⚠ slow |");
}

#[test]
fn a_down_that_leaves_a_column_fails_method_c_and_names_the_column() {
    let p = app("drill_defect", &crate::common::CLUSTER, V3_DOWN_LEAVES_A_COLUMN, TARGETS);
    let run: Run = p.run(&["drill"]);
    run.expect_code(1)
        .expect_output("✗ method C")
        .expect_output("column public.clients.archived_at is still there (the downs leave it)")
        .expect_output("✓ method B")
        .expect_output("drill failed: 1 step(s) failed (method C)");
}

#[test]
fn the_report_goes_to_the_teams_slack_and_mail_and_no_user_text_goes_anywhere() {
    let (webhook, posted) = crate::incident::slack(vec![]);
    let p = app("drill_notify", &crate::common::CLUSTER, V3_DOWN, TARGETS);
    let mail = p.path().join("mail.txt");
    p.config(&format!(
        "{}\n[notify]\nslack_webhook = \"{webhook}\"\nproduct = \"MeetSolis\"\n\
         team_email = [\"oncall@example.com\"]\nsendmail = [\"sh\", \"-c\", \"cat > '{}'\"]\n",
        config(TARGETS),
        mail.display()
    ));
    p.run(&["drill"]).expect_code(0).expect_output("report sent to the team: Slack, e-mail");
    let posted = posted.lock().unwrap().clone();
    assert_eq!(posted.len(), 1, "only the report, no alert of the copy's methods: {posted:#?}");
    let text = posted[0].to_string();
    assert!(text.contains("MeetSolis: rollback drill passed"), "{text}");
    assert!(text.contains("method B"), "{text}");
    assert!(!text.contains("some of your data"), "a user text went to Slack: {text}");
    let mail = std::fs::read_to_string(&mail).unwrap();
    assert!(
        mail.starts_with("To: oncall@example.com\nSubject: MeetSolis: rollback drill passed\n"),
        "{mail}"
    );
    assert!(mail.contains("✓ method C"), "{mail}");
    assert!(!mail.contains("some of your data"), "{mail}");
}

#[test]
fn a_backup_that_holds_the_release_is_drilled_against_the_releases_own_backup() {
    let p = app("drill_holds", &crate::common::CLUSTER, V3_DOWN_LEAVES_A_COLUMN, TARGETS);
    p.run(&["backup", "create"]).expect_code(0);
    let run = p.run(&["drill"]);
    run.expect_code(1)
        .expect_output("the backup holds the release (20260103000000)")
        .expect_output(
            "column public.clients.archived_at: still there (the up made it, the down left it)",
        )
        .expect_output("the downs of the release leave the schema other than before it")
        .expect_output("✓ method B");
    // The release's own backup pruned: production's method B has nothing
    // to restore, and the drill cannot compare C's outcome with it; the
    // rollback's own check, from what the migrate recorded, still does.
    let release_backup: String = p
        .client()
        .query_one("select backup_id from backstop.applied where version = '20260103000000'", &[])
        .unwrap()
        .get(0);
    std::fs::remove_dir_all(p.path().join("backups").join(&release_backup)).unwrap();
    let run = p.run(&["drill"]);
    run.expect_code(1)
        .expect_output(&format!("the release's backup {release_backup}, which production's method B restores, is not in"))
        .expect_output("the schema before the release is not known")
        .expect_output("✗ method C")
        .expect_output("column public.clients.archived_at: still there");
}

#[test]
fn two_drills_at_once_take_turns() {
    let p = app("drill_turns", &crate::common::CLUSTER, V3_DOWN, TARGETS);
    let first = p
        .std_cmd(&["drill"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    crate::common::poll_until("the first drill runs", 600, Duration::from_millis(50), || {
        p.client().exists("backstop.drills") && !drills(&p).is_empty()
    });
    let second = p
        .std_cmd(&["drill"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let first = Run::from_output(first.wait_with_output().unwrap());
    let second = Run::from_output(second.wait_with_output().unwrap());
    first.expect_code(0);
    second.expect_code(0).expect_output("waiting for the drill lock: another drill runs");
    let mut db = p.client();
    let rows =
        db.query("select started_at, finished_at from backstop.drills order by id", &[]).unwrap();
    assert_eq!(rows.len(), 2);
    let first_done: chrono::DateTime<chrono::Utc> = rows[0].get(1);
    let second_began: chrono::DateTime<chrono::Utc> = rows[1].get(0);
    assert!(second_began >= first_done, "the drills overlapped: {first_done} > {second_began}");
}

/// Whether a process of this machine names `path` in its command line.
fn process_naming(path: &str) -> Option<String> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(path) {
            return Some(format!("{}: {cmdline}", entry.file_name().to_string_lossy()));
        }
    }
    None
}

#[test]
fn a_drill_killed_at_any_step_leaves_nothing_and_the_next_says_what_it_cleaned() {
    let p = app("drill_killed", &crate::common::CLUSTER, V3_DOWN, TARGETS);
    let steps = ["restore", "release", "method A", "method C", "method B", "record"];
    let mut before: Option<&str> = None;
    for step in steps {
        let killed = Run::from_output(
            p.std_cmd(&["drill"]).env("BACKSTOP_TEST_DRILL_KILL", step).output().unwrap(),
        );
        assert_eq!(killed.code, None, "not killed at {step}: {killed:?}");
        if let Some(earlier) = before {
            killed.expect_output(&format!(
                "was interrupted at step {earlier}; its record now says so"
            ));
        }
        let (at, dirs): (Option<String>, Vec<String>) = {
            let row = p
                .client()
                .query_one(
                    "select step, work_dirs from backstop.drills order by id desc limit 1",
                    &[],
                )
                .unwrap();
            (row.get(0), row.get(1))
        };
        assert_eq!(at.as_deref(), Some(step));
        assert_eq!(dirs.len(), 2, "the workspace and the cluster are on record: {dirs:?}");
        for dir in &dirs {
            crate::common::poll_until(
                &format!("{dir} is removed"),
                300,
                Duration::from_millis(100),
                || !std::path::Path::new(dir).exists(),
            );
            // The watcher that removed it ends just after.
            crate::common::poll_until(
                &format!(
                    "no process of the killed drill names {dir} (left: {:?})",
                    process_naming(dir)
                ),
                100,
                Duration::from_millis(100),
                || process_naming(dir).is_none(),
            );
        }
        p.run(&["drill", "--list"]).expect_code(0).expect_output(&format!("interrupted at {step}"));
        before = Some(step);
    }
    // And from outside, while method B's restore runs (pg_restore and all).
    let mut child = p
        .std_cmd(&["drill"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    crate::common::poll_until("the drill is at method B", 1200, Duration::from_millis(50), || {
        drills(&p).last().is_some_and(|(o, at)| o == "running" && at.as_deref() == Some("method B"))
    });
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    let dirs: Vec<String> = p
        .client()
        .query_one("select work_dirs from backstop.drills order by id desc limit 1", &[])
        .unwrap()
        .get(0);
    for dir in &dirs {
        crate::common::poll_until(
            &format!("{dir} is removed"),
            300,
            Duration::from_millis(100),
            || !std::path::Path::new(dir).exists() && process_naming(dir).is_none(),
        );
    }
    let last = p.run(&["drill"]);
    last.expect_code(0).expect_output("was interrupted at step method B; its record now says so");
    let outcomes: Vec<String> = drills(&p).into_iter().map(|(o, _)| o).collect();
    assert_eq!(outcomes.len(), 8, "{outcomes:?}");
    assert!(outcomes[..7].iter().all(|o| o == "interrupted"), "{outcomes:?}");
    assert_eq!(outcomes[7], "passed");
}

#[test]
fn what_cannot_be_drilled_is_refused_before_anything_is_written() {
    let p = Project::new("drill_refused");
    p.config(&config(TARGETS));
    p.run(&["drill"]).expect_code(2).expect_output("no verified backup of database");
    p.run(&["drill", "--from-backup", "20990101T000000Z-0000"])
        .expect_code(2)
        .expect_output("no backup 20990101T000000Z-0000");
    p.run(&["drill", "--from-backup", ""]).expect_code(2).expect_output("it is blank");
    p.config(&config("hooks = [\"stop_writes\"]\n"));
    let line = config("").lines().position(|l| l == "[drill]").unwrap() + 2;
    p.run(&["drill"])
        .expect_code(2)
        .expect_output(&format!("backstop.toml:{line}:"))
        .expect_output("stops or starts production's writes");
    assert!(!p.client().history_schema_exists(), "a refused drill wrote to the target");
    p.config(&config(TARGETS));
    p.run(&["drill", "--due"])
        .expect_code(1)
        .expect_output("drill overdue: no drill ever ran (one is asked every 90 d)");
    p.run(&["drill", "--list"]).expect_code(0).expect_output("no drill recorded yet");
}

/// The demo's own suite (`demo/verify.toml`), as a project that uses it.
const DEMO_SUITE: &str = include_str!("../../src/commands/demo/verify.toml");

/// Regression (issue 42): the demo's own v2 release failed its drill:
/// method C ran every rls_isolation check whatever its `after`, on a table
/// the rollback removes, and method B said "clients are private: table
/// clients does not exist". Every release of the demo passes its drill.
#[test]
fn the_demos_own_release_passes_its_drill_with_the_demos_suite() {
    let cluster = Cluster::start().unwrap();
    let p = Project::on(&cluster, "drill_demo_v2");
    p.config(&format!(
        "[database]\nurl = \"${{DATABASE_URL}}\"\n\n[migrations]\ndir = \"migrations\"\n\
         protected_tables = [\"users\", \"ai_usage_tracking\", \"usage_alerts\"]\n\n\
         [backup]\ndir = \"backups\"\njobs = 2\n\n[[flags]]\nkey = \"client_cards\"\nrelease = \"v2\"\n\n\
         [drill]\n{TARGETS}\n{DEMO_SUITE}"
    ));
    cluster.connect(&p.db).unwrap().batch_execute(PLATFORM).unwrap();
    p.migration("20260101000000_v1", V1, None);
    p.run(&["migrate"]).expect_code(0);
    p.migration("20260107120000_v2", V2_UP, Some(V2_DOWN));
    p.run(&["migrate"]).expect_code(0);
    p.run(&["flags", "sync"]).expect_code(0);
    p.run(&["flags", "enable", "--release", "v2", "--reason", "launch"]).expect_code(0);
    let run = p.run(&["drill"]);
    run.expect_code(0).expect_output("drill passed");
    assert!(!run.all().contains("does not exist"), "{}", run.all());
}

/// A project that declares no flags has no kill switch: method A is not
/// used, and the drill passes on B and C; one that declares flags but
/// none for the release still fails A; `[drill] methods` chooses.
#[test]
fn a_method_the_project_does_not_use_is_not_held_against_its_drill() {
    let cluster = Cluster::start().unwrap();
    let p = app("drill_no_flags", &cluster, V3_DOWN, TARGETS);
    let without_flags: String = config(TARGETS)
        .split("[[flags]]")
        .enumerate()
        .map(|(i, part)| {
            if i == 0 {
                part.to_string()
            } else {
                part.split_once("\n\n").map_or("", |x| x.1).to_string()
            }
        })
        .collect();
    assert!(!without_flags.contains("[[flags]]"), "{without_flags}");
    p.config(&without_flags);
    let run = p.run(&["drill"]);
    run.expect_code(0).expect_output("drill passed");
    run.expect_output("method A").expect_output("not used: the project declares no [[flags]]");
    // Only B, by the project's word.
    p.config(&without_flags.replace("[drill]\n", "[drill]\nmethods = [\"B\"]\n"));
    let run = p.run(&["drill"]);
    run.expect_code(0).expect_output("not used: method C is not among [drill] methods");
}
