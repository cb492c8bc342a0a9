//! A migration that calls a volatile function changes data: pg_cron's
//! `schedule` is undone by `unschedule` of the job's name, Vault's
//! `create_secret` by deleting the secret; pg_net's `http_post` is never
//! replayed and named as reaching outside; any other volatile call is named
//! as a change the down cannot put back. pg_cron, Vault and pg_net are not
//! installed here: the test makes stand-ins of their functions over tables
//! shaped as theirs, as the platform the history is written on.

use serde_json::Value;

use crate::common::Project;

/// The platform's stand-ins. `net.http_post` fails wherever `net.allowed`
/// has no row: in every copy the replay makes (schema only), so a replay
/// that ran it would fail.
const PLATFORM: &str = "
    CREATE SCHEMA cron;
    CREATE TABLE cron.job (jobid bigserial PRIMARY KEY, jobname text UNIQUE, schedule text, command text);
    CREATE FUNCTION cron.schedule(job_name text, schedule text, command text) RETURNS bigint
        LANGUAGE sql AS $$ INSERT INTO cron.job (jobname, schedule, command) VALUES (job_name, schedule, command)
                           ON CONFLICT (jobname) DO UPDATE SET schedule = excluded.schedule, command = excluded.command
                           RETURNING jobid $$;
    CREATE FUNCTION cron.unschedule(job_name text) RETURNS boolean
        LANGUAGE sql AS $$ DELETE FROM cron.job WHERE jobname = job_name RETURNING true $$;
    CREATE SCHEMA vault;
    CREATE TABLE vault.secrets (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), name text UNIQUE, secret text, description text);
    CREATE FUNCTION vault.create_secret(new_secret text, new_name text DEFAULT NULL, new_description text DEFAULT '')
        RETURNS uuid LANGUAGE sql AS $$ INSERT INTO vault.secrets (secret, name, description)
                                        VALUES (new_secret, new_name, new_description) RETURNING id $$;
    CREATE SCHEMA net;
    CREATE TABLE net.allowed (ok boolean);
    CREATE TABLE net.sent (url text);
    CREATE FUNCTION net.http_post(url text) RETURNS bigint LANGUAGE plpgsql AS $$
    BEGIN
      IF NOT EXISTS (SELECT FROM net.allowed) THEN
        RAISE EXCEPTION 'a request reached outside the database: %', url;
      END IF;
      INSERT INTO net.sent VALUES (url);
      RETURN 1;
    END $$;
    INSERT INTO net.allowed VALUES (true);";

#[test]
fn volatile_calls_are_undone_by_their_pair_or_named_and_pg_net_is_never_replayed() {
    let p = Project::new("downs_calls");
    p.client().batch_execute(PLATFORM).unwrap();
    p.migration(
        "2024-07-01-000001_app",
        "CREATE SCHEMA app;
         CREATE TABLE app.log (at timestamptz DEFAULT now());
         CREATE FUNCTION app.note() RETURNS void LANGUAGE sql AS $$ INSERT INTO app.log DEFAULT VALUES $$;",
        None,
    );
    p.migration(
        "2024-07-01-000002_cron",
        "select cron.schedule('nightly-clean', '0 3 * * *', $$ delete from app.log $$);",
        None,
    );
    p.migration(
        "2024-07-01-000003_vault",
        "select vault.create_secret('s3cret', 'stripe_key', 'for payments');",
        None,
    );
    p.migration(
        "2024-07-01-000004_hook",
        "select net.http_post(url := 'https://hooks.example.com/deploy');",
        None,
    );
    p.migration("2024-07-01-000005_note", "select app.note();", None);

    let downs: Value = p.run(&["downs", "--format", "json"]).expect_code(0).json();
    let of =
        |v: &str| downs.as_array().unwrap().iter().find(|d| d["version"] == v).cloned().unwrap();
    let cron = of("2024-07-01-000002");
    assert_eq!((cron["status"].as_str(), cron["proved"].as_bool()), (Some("computed"), Some(true)));
    assert!(cron["sql"].as_str().unwrap().contains("SELECT cron.unschedule('nightly-clean')"));
    let vault = of("2024-07-01-000003");
    assert_eq!(vault["status"], "computed", "{vault:#}");
    assert!(
        vault["sql"]
            .as_str()
            .unwrap()
            .contains("DELETE FROM vault.secrets WHERE name = 'stripe_key'"),
        "{vault:#}"
    );
    // Never replayed (the stand-in would have failed the up), and named.
    let hook = of("2024-07-01-000004");
    assert_eq!(hook["status"], "irreversible", "{hook:#}");
    let loses = hook["loses"].to_string();
    assert!(loses.contains("net.http_post") && loses.contains("reaches outside"), "{loses}");
    assert!(loses.contains("the replay did not run it"), "{loses}");
    let note = of("2024-07-01-000005");
    assert_eq!(note["status"], "irreversible", "{note:#}");
    assert!(note["loses"].to_string().contains("app.note"), "{note:#}");

    p.run(&["downs", "--write"]).expect_code(0);
    // The check gate's run on a copy did not send it either, and says so.
    p.run(&["migrate"])
        .expect_code(0)
        .expect_output("1 statement(s) reaching outside the database (net.http_post");
    let mut db = p.client();
    let count =
        |db: &mut postgres::Client, sql: &str| -> i64 { db.query_one(sql, &[]).unwrap().get(0) };
    assert_eq!(count(&mut db, "select count(*) from cron.job"), 1);
    assert_eq!(count(&mut db, "select count(*) from vault.secrets"), 1);
    assert_eq!(count(&mut db, "select count(*) from net.sent"), 1, "migrate runs it for real");
    p.run(&["rollback", "--to", "2024-07-01-000001"]).expect_code(0);
    assert_eq!(count(&mut db, "select count(*) from cron.job"), 0, "the job is unscheduled");
    assert_eq!(count(&mut db, "select count(*) from vault.secrets"), 0, "the secret is gone");
    assert_eq!(count(&mut db, "select count(*) from net.sent"), 1, "what was sent stays sent");
}
