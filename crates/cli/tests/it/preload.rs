//! Copies carry what the target's server preloads: a Supabase CLI history
//! of 90 migrations on a database named `postgres` whose server preloads
//! pg_cron, which creates the extension, schedules named jobs, stores
//! Vault secrets and calls pg_net, is rehearsed and its downs proved in
//! throwaway clusters that preload pg_cron too (each pointing
//! `cron.database_name` at its copy), and rolled back to its first
//! migration with `cron.job` as it was. A library the target preloads and
//! this machine lacks is named with how to provide it, before anything
//! runs (exit 3). pg_cron comes from Debian (`.ci/tools/pg-cron.sh`);
//! Vault and pg_net are stand-ins over tables shaped as theirs.

use std::sync::LazyLock;

use backstop_core::pg::cluster::{Cluster, PgBin};
use backstop_core::pg::preload::Preload;

use crate::common::{missing_tool, Project, Run, DEFAULT_CONFIG};
use crate::platform_history::history;

/// The pg_cron of the local PostgreSQL; `None` (skipped, or failed where
/// every tool is required) when it is not installed.
fn pg_cron() -> Option<PgBin> {
    let bin = PgBin::find().expect("PostgreSQL's server binaries");
    if Preload::of(&["pg_cron"]).missing(&bin.dir).is_empty() {
        return Some(bin);
    }
    missing_tool(&format!("pg_cron for PostgreSQL {}", bin.major), ".ci/tools/pg-cron.sh");
    None
}

/// A server that preloads pg_cron for its database `postgres`, as
/// Supabase's does: this module's alone (the platform's roles are the
/// whole cluster's).
static CRON: LazyLock<Cluster> = LazyLock::new(|| {
    let bin = PgBin::find().expect("PostgreSQL's server binaries");
    Cluster::start_preloaded(bin, 256 << 20, &Preload::of(&["pg_cron"]), "postgres")
        .expect("a cluster preloading pg_cron starts")
});

/// What the platform has besides the fixture: Vault's secrets and pg_net's
/// `http_post`, which fails anywhere but in the target's own database (a
/// copy that ran it would fail).
const STAND_INS: &str = "
    CREATE SCHEMA vault;
    CREATE TABLE vault.secrets (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), name text UNIQUE,
                                secret text, description text);
    CREATE FUNCTION vault.create_secret(new_secret text, new_name text DEFAULT NULL,
                                        new_description text DEFAULT '')
        RETURNS uuid LANGUAGE sql AS $$ INSERT INTO vault.secrets (secret, name, description)
                                        VALUES (new_secret, new_name, new_description) RETURNING id $$;
    CREATE SCHEMA net;
    CREATE TABLE net.sent (url text, body jsonb);
    CREATE FUNCTION net.http_post(url text, body jsonb DEFAULT '{}') RETURNS bigint
        LANGUAGE plpgsql AS $$
    BEGIN
      IF current_database() <> 'postgres' THEN
        RAISE EXCEPTION 'a request reached outside the database from a copy: %', url;
      END IF;
      INSERT INTO net.sent VALUES (url, body);
      RETURN 1;
    END $$;";

/// The project's own migrations around the generated ones: the first
/// enables pg_cron and schedules a job; the last ten schedule, store
/// secrets and call pg_net.
fn own(i: usize) -> Option<(&'static str, &'static str)> {
    Some(match i {
        0 => (
            "enable_cron",
            "create extension pg_cron with schema pg_catalog;\n\
             select cron.schedule('nightly-vacuum', '0 3 * * *', 'vacuum analyze');\n",
        ),
        81 => (
            "purge_job",
            "select cron.schedule('purge-sessions', '*/30 * * * *', $$select 1$$);\n",
        ),
        82 => ("stripe_secret", "select vault.create_secret('sk_live_123', 'stripe_key', 'payments');\n"),
        83 => (
            "deploy_hook",
            "select net.http_post(url := 'https://hooks.example.com/deploy', body := '{\"v\": 1}');\n",
        ),
        84 => (
            "ping_job",
            "select cron.schedule('ping-hook', '*/5 * * * *',\n  \
             $$select net.http_post(url := 'https://hooks.example.com/ping')$$);\n",
        ),
        85 => ("mail_secret", "select vault.create_secret('re_456', 'resend_key');\n"),
        86 => (
            "job_runs",
            "create table public.job_runs (id bigint generated always as identity primary key,\n  \
             at timestamptz not null default now());\n\
             select cron.schedule('log-run', '* * * * *', $$insert into public.job_runs default values$$);\n",
        ),
        87 => ("job_runs_note", "alter table public.job_runs add column note text;\n"),
        88 => ("job_runs_at", "create index job_runs_at on public.job_runs (at);\n"),
        89 => (
            "weekly_report",
            "select cron.schedule('weekly-report', '0 8 * * 1', $$select count(*) from public.job_runs$$);\n",
        ),
        _ => return None,
    })
}

/// The jobs as the test compares them.
fn jobs(db: &mut postgres::Client) -> Vec<(i64, String, String, String)> {
    db.query("select jobid, jobname, schedule, command from cron.job order by jobid", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect()
}

fn one(db: &mut postgres::Client, sql: &str) -> i64 {
    db.query_one(sql, &[]).unwrap().get(0)
}

/// The project on `CRON`'s database `postgres`: no backstop.toml, the
/// Supabase CLI's folder.
fn project() -> Project {
    let dir = tempfile::Builder::new().prefix("backstop-cli-test-").tempdir().unwrap();
    Project { dir, db: "postgres".into(), url: CRON.url("postgres") }
}

#[test]
fn a_pg_cron_history_is_rehearsed_proved_and_rolled_back_in_copies_that_preload_it() {
    if pg_cron().is_none() {
        return;
    }
    let p = project();
    let mut db = CRON.connect("postgres").unwrap();
    db.batch_execute(history::PLATFORM).expect("the platform fixture is made");
    db.batch_execute(STAND_INS).unwrap();
    let platform = history::Platform::of(&mut db);
    let mut versions = Vec::new();
    for i in 0..90 {
        let (name, sql) = match own(i) {
            Some((name, sql)) => (name.to_string(), format!("-- {name}\n{sql}")),
            None => {
                let s = history::migration(i - 1, platform);
                let sql = format!("-- {}\n{};\n", s.name, s.statements.join(";\n\n"));
                (s.name, sql)
            }
        };
        let stamp = history::stamp(i);
        p.write(&format!("supabase/migrations/{stamp}_{name}.sql"), &sql);
        versions.push(stamp);
    }
    p.write("supabase/config.toml", "project_id = \"cron-history\"\n");
    // A protected table holding rows before the history, so that scenario
    // C runs too: it damages the table, exports, runs the downs this very
    // rehearsal proves (none is written) and restores.
    db.batch_execute(
        "create table public.accounts (id int primary key, name text);
         insert into public.accounts values (1, 'a'), (2, 'b'), (3, 'c')",
    )
    .unwrap();
    p.write("backstop.toml", "[migrations]\nprotected_tables = [\"accounts\"]\n");

    // Rehearsed before anything is applied: the history creates pg_cron,
    // which its server lets `postgres` alone hold, so the copies are in a
    // throwaway cluster that preloads it for each copy.
    let rehearse = p.run_long(&["rehearse", "--format", "json"]);
    let json: serde_json::Value = serde_json::from_str(&rehearse.stdout)
        .unwrap_or_else(|e| panic!("{e}\n{}", rehearse.all()));
    assert!(
        json["copy"]["fallback_reason"].to_string().contains("extension pg_cron"),
        "{:#}",
        json["copy"]
    );
    let failed: Vec<&serde_json::Value> =
        json["steps"].as_array().unwrap().iter().filter(|s| s["ok"] != true).collect();
    assert!(failed.is_empty(), "steps failed: {failed:#?}");
    let scenario = |name: &str| {
        json["scenarios"].as_array().unwrap().iter().find(|s| s["name"] == name).unwrap().clone()
    };
    assert_eq!(scenario("A")["ok"], true, "{:#}", scenario("A"));
    let c = scenario("C");
    assert_eq!((&c["ok"], &c["skipped"]), (&true.into(), &false.into()), "{c:#}");
    let detail = c["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("rows deleted from public.accounts detected"), "{c:#}");
    assert!(detail.contains("downs ran"), "{c:#}");
    // Scenario B restores in place (the copy holds the platform's schemas,
    // owned by other roles): the project's schemas are the backup's and
    // are what B checks. What the migrations made outside them (pg_cron's
    // extension and its `cron` schema) stays, as a restore in place leaves
    // it: a note naming each, never a failure.
    let b = scenario("B");
    assert_eq!(b["ok"], true, "{b:#}");
    let detail = b["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("restored schema(s) public identical to the start"), "{b:#}");
    let left = b["left_in_place"].to_string();
    assert!(left.contains("extension pg_cron is new"), "{b:#}");
    assert!(!left.contains(" public."), "the project's schema is noted, not checked: {b:#}");
    rehearse.expect_code(0);
    assert!(jobs_table_absent(&mut db), "a copy's migration reached the target");
    assert_eq!(one(&mut db, "select count(*) from net.sent"), 0, "a copy sent a request");

    let downs = p.run_long(&["downs", "--write", "--format", "json"]);
    let list: serde_json::Value =
        serde_json::from_str(&downs.stdout).unwrap_or_else(|e| panic!("{e}\n{}", downs.all()));
    let of = |v: &str| list.as_array().unwrap().iter().find(|d| d["version"] == v).unwrap();
    let unproved: Vec<&serde_json::Value> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["status"] == "unprovable" || d["status"] == "failed")
        .collect();
    assert!(unproved.is_empty(), "downs not proved: {unproved:#?}");
    downs.expect_code(0);
    assert!(
        of(&versions[0])["sql"].to_string().contains("DROP EXTENSION"),
        "{:#}",
        of(&versions[0])
    );
    for (i, job) in
        [(81, "purge-sessions"), (84, "ping-hook"), (86, "log-run"), (89, "weekly-report")]
    {
        let sql = of(&versions[i])["sql"].to_string();
        assert!(sql.contains(&format!("cron.unschedule('{job}')")), "{i}: {sql}");
    }
    let secret = of(&versions[82])["sql"].to_string();
    assert!(secret.contains("DELETE FROM vault.secrets WHERE name = 'stripe_key'"), "{secret}");
    let hook = of(&versions[83]);
    assert_eq!(hook["status"], "irreversible", "{hook:#}");
    assert!(hook["loses"].to_string().contains("net.http_post"), "{hook:#}");

    p.run_long(&["migrate", "--to", &versions[0]]).expect_code(0);
    let before = jobs(&mut db);
    assert_eq!(before.len(), 1, "{before:?}");
    // The rehearsal's proofs serve, though `downs --write` saved its own
    // downs as files since (before: 83 of 89 proved again, as each such
    // file was taken for an author's down never proved).
    let migrate = p.run_long(&["migrate"]);
    migrate.expect_code(0).expect_output("reused the kept proof of 89 down(s)");
    assert!(!migrate.all().contains("down(s) now"), "{}", migrate.all());
    assert_eq!(jobs(&mut db).len(), 5);
    assert_eq!(one(&mut db, "select count(*) from vault.secrets"), 2);
    assert_eq!(one(&mut db, "select count(*) from net.sent"), 1, "migrate sends it for real");

    let rollback = p.run_long(&["rollback", "--to", &versions[0]]);
    rollback.expect_code(0);
    assert_eq!(jobs(&mut db), before, "cron.job holds what it held before\n{}", rollback.all());
    assert_eq!(one(&mut db, "select count(*) from vault.secrets"), 0, "the secrets are gone");
    assert_eq!(one(&mut db, "select count(*) from net.sent"), 1, "what was sent stays sent");
}

fn jobs_table_absent(db: &mut postgres::Client) -> bool {
    db.query_one("select to_regclass('cron.job') is null", &[]).unwrap().get(0)
}

#[test]
fn a_library_the_target_preloads_and_this_machine_lacks_is_named_before_anything_runs() {
    let bin = PgBin::find().unwrap();
    let libdir = std::process::Command::new(bin.tool("pg_config")).arg("--pkglibdir").output();
    let libdir = String::from_utf8_lossy(&libdir.unwrap().stdout).trim().to_string();
    // The target's server loads a library by its path; the file is gone
    // once it runs, as on a machine that never had it.
    let own = tempfile::Builder::new().prefix("backstop-preload-").tempdir().unwrap();
    std::fs::set_permissions(own.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .unwrap();
    std::fs::copy(format!("{libdir}/auto_explain.so"), own.path().join("auto_explain.so")).unwrap();
    let library = own.path().join("auto_explain").display().to_string();
    let target = Cluster::start_preloaded(bin, 64 << 20, &Preload::of(&[&library]), "postgres")
        .expect("a cluster preloading auto_explain by its path starts");
    std::fs::remove_file(own.path().join("auto_explain.so")).unwrap();
    let db = crate::common::unique_name("preload_missing");
    target.create_database(&db, None).unwrap();
    let dir = tempfile::Builder::new().prefix("backstop-cli-test-").tempdir().unwrap();
    let p = Project { dir, db: db.clone(), url: target.url(&db) };
    p.write("backstop.toml", DEFAULT_CONFIG);
    p.migration("1_items", "CREATE TABLE items (id int PRIMARY KEY);", None);

    let said = |run: &Run| {
        run.expect_code(3)
            .expect_output("the target's server preloads")
            .expect_output(&library)
            .expect_output("nothing ran");
    };
    said(&p.run(&["downs"]));
    said(&p.run(&["rehearse", "--schema-only"]));
    // A template copy on the target's own server has what it preloads.
    p.run(&["rehearse"]).expect_code(0);
    let mut client = target.connect(&db).unwrap();
    assert!(jobs_table_absent(&mut client));
    let items: bool = client.query_one("select to_regclass('items') is null", &[]).unwrap().get(0);
    assert!(items, "a copy's migration reached the target");
}

/// A backup of a database holding pg_cron is restored for its check into
/// a throwaway cluster that preloads pg_cron (read from the extensions the
/// backup holds): before, `backup verify --restore` failed there and
/// advised taking a new backup.
#[test]
fn a_backup_of_a_database_holding_pg_cron_is_verified_by_a_restore_that_preloads_it() {
    let Some(bin) = pg_cron() else { return };
    let db = crate::common::unique_name("cron_backup");
    let target = Cluster::start_preloaded(bin, 64 << 20, &Preload::of(&["pg_cron"]), &db)
        .expect("a cluster preloading pg_cron starts");
    target.create_database(&db, None).unwrap();
    let mut client = target.connect(&db).unwrap();
    client
        .batch_execute(
            "create extension pg_cron;
             create table items (id int primary key);
             select cron.schedule('nightly', '0 3 * * *', 'delete from items');",
        )
        .unwrap();
    let dir = tempfile::Builder::new().prefix("backstop-cli-test-").tempdir().unwrap();
    let p = Project { dir, db: db.clone(), url: target.url(&db) };
    p.write("backstop.toml", DEFAULT_CONFIG);
    let created = p.run(&["backup", "create", "--format", "json"]);
    created.expect_code(0);
    let id = created.json()["id"].as_str().unwrap().to_string();
    let run = p.run(&["backup", "verify", &id, "--restore"]);
    run.expect_code(0).expect_output("restored into a throwaway PostgreSQL");
}

/// A throwaway cluster preloading pg_cron, with a database of its own
/// named after `label`.
fn cron_cluster(bin: PgBin, label: &str) -> (Cluster, String) {
    let db = crate::common::unique_name(label);
    let target = Cluster::start_preloaded(bin, 64 << 20, &Preload::of(&["pg_cron"]), &db)
        .expect("a cluster preloading pg_cron starts");
    (target, db)
}

/// A project on `url` restoring in place, with a release that schedules
/// a job after the table it purges; both migrated.
fn scheduled_release(db: &str, url: String) -> Project {
    let dir = tempfile::Builder::new().prefix("backstop-cli-test-").tempdir().unwrap();
    let p = Project { dir, db: db.to_string(), url };
    p.write("backstop.toml", &format!("{DEFAULT_CONFIG}\n[backup]\nrestore = \"in-place\"\n"));
    p.migration("1_items", "CREATE TABLE items (id int PRIMARY KEY);", None);
    p.run(&["migrate"]).expect_code(0);
    p.migration(
        "2_purge",
        "SELECT cron.schedule('purge_items', '0 4 * * *', 'DELETE FROM items');",
        Some("SELECT cron.unschedule('purge_items');"),
    );
    p.run(&["migrate"]).expect_code(0);
    p
}

fn count(target: &Cluster, db: &str, sql: &str) -> i64 {
    target.connect(db).unwrap().query_one(sql, &[]).unwrap().get(0)
}

/// A restore in place that puts pg_cron's schema back (here the role
/// that runs Backstop owns it) takes a job the release scheduled back with
/// it, and claims nothing was left running; a database setting made after
/// the backup is named as left in place.
#[test]
fn a_restore_in_place_that_puts_cron_back_claims_no_job_left_running() {
    let Some(bin) = pg_cron() else { return };
    let (target, db) = cron_cluster(bin, "cron_in_place");
    target.create_database(&db, None).unwrap();
    target.connect(&db).unwrap().batch_execute("create extension pg_cron;").unwrap();
    let p = scheduled_release(&db, target.url(&db));
    // A setting of the database's own, made after the backup: no dump
    // holds it, so the restore in place leaves it, and says so.
    let mut client = target.connect(&db).unwrap();
    client.batch_execute(&format!("alter database {db} set work_mem = '64MB'")).unwrap();
    let run = p.run(&["rollback", "--method", "B", "--yes"]);
    run.expect_code(0).expect_output(
        "the database's setting work_mem=64MB, set after the backup (ALTER DATABASE … RESET work_mem)",
    );
    let jobs = count(&target, &db, "select count(*) from cron.job");
    assert_eq!(jobs, 0, "the restore put cron.job back as the backup had it");
    assert!(!run.all().contains("still runs"), "{}", run.all());
}

/// The platform's way: pg_cron made by the server's superuser, its
/// `cron` schema theirs, the project's role the database's owner with
/// the right to schedule. Method B restores in place what the role owns
/// and leaves `cron` as it is: a job the release scheduled goes on
/// running, and the texts say so with the way to stop it. Before: the
/// restore failed on `COMMENT ON EXTENSION pg_cron` (made in `public`,
/// the role's, by another role), and the texts had no word for the job.
#[test]
fn a_restore_in_place_names_the_jobs_a_platforms_cron_still_runs() {
    let Some(bin) = pg_cron() else { return };
    let (target, db) = cron_cluster(bin, "cron_platform");
    let mut admin = target.connect("postgres").unwrap();
    admin.batch_execute("create role app_owner login password 'owner-pw' nosuperuser").unwrap();
    admin.batch_execute(&format!("create database {db} owner app_owner")).unwrap();
    let platform = "create extension pg_cron;
         grant usage on schema cron to app_owner;
         grant all on all tables in schema cron to app_owner;";
    target.connect(&db).unwrap().batch_execute(platform).unwrap();
    let url = format!("postgres://app_owner:owner-pw@127.0.0.1:{}/{db}", target.port());
    let p = scheduled_release(&db, url);
    let run = p.run(&["rollback", "--method", "B", "--yes"]);
    run.expect_code(0).expect_output("pg_cron still runs 1 job(s) (purge_items)");
    let jobs = count(&target, &db, "select count(*) from cron.job where jobname = 'purge_items'");
    assert_eq!(jobs, 1, "the platform's cron stays as it was, its job with it");
}
