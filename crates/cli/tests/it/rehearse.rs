//! `backstop rehearse` on real copies: round trips that catch broken downs,
//! lossy downs, scenario A, the source left untouched, stale copies
//! removed, the dump fallback, and the rehearsal gate of `migrate`.

use crate::common::{DbExt, Project};
use backstop_core::pg::checksum::table_checksums;
use backstop_core::pg::fingerprint::Schema;

const BASE: &str = "CREATE TABLE users (id int PRIMARY KEY, email text NOT NULL);
INSERT INTO users SELECT i, 'u' || i || '@example.com' FROM generate_series(1, 50) i;";

fn project(label: &str) -> Project {
    let p = Project::new(label);
    p.migration("1_users", BASE, Some("DROP TABLE users;"));
    p.run(&["migrate"]).expect_code(0);
    p
}

fn source_state(p: &Project) -> (String, Vec<(String, i64, String)>) {
    let mut c = p.client();
    let schema = Schema::read(&mut c).unwrap().fingerprint();
    let data = table_checksums(&mut c)
        .unwrap()
        .into_iter()
        .map(|t| (t.table, t.rows, t.checksum))
        .collect();
    (schema, data)
}

#[test]
fn a_correct_down_passes_and_the_source_is_unchanged() {
    let p = project("rh_good");
    p.migration(
        "2_plan",
        "ALTER TABLE users ADD COLUMN plan text NOT NULL DEFAULT 'free';\nCREATE INDEX users_plan_idx ON users (plan);",
        Some("DROP INDEX users_plan_idx;\nALTER TABLE users DROP COLUMN plan;"),
    );
    p.config(
        &crate::common::DEFAULT_CONFIG.replace(
            "dir = \"migrations\"",
            "dir = \"migrations\"\nprotected_tables = [\"users\"]",
        ),
    );
    let before = source_state(&p);
    let run = p.run(&["rehearse", "--format", "json"]);
    run.expect_code(0);
    let json = run.json();
    assert_eq!(json["ok"], true, "{json:#}");
    assert_eq!(json["round_trip"]["ok"], true);
    assert_eq!(json["round_trip"]["differences"].as_array().unwrap().len(), 0);
    let scenarios = json["scenarios"].as_array().unwrap();
    assert_eq!(scenarios[0]["name"], "A");
    assert_eq!(scenarios[0]["ok"], true);
    assert!(scenarios[0]["duration_ms"].is_u64());
    assert_eq!(scenarios[1]["name"], "B");
    assert_eq!(scenarios[1]["ok"], true, "{:#}", scenarios[1]);
    assert!(scenarios[1]["detail"].as_str().unwrap().contains("25 late writes kept"));
    assert_eq!(scenarios[2]["name"], "C");
    assert_eq!(scenarios[2]["ok"], true, "{:#}", scenarios[2]);
    let c = scenarios[2]["detail"].as_str().unwrap();
    assert!(c.contains("5 of 50 rows deleted from public.users detected"), "{c}");
    assert!(c.contains("copy identical to the start"), "{c}");
    // The lock trace sees the ADD COLUMN's lock on the existing table.
    let locks = json["locks"].as_array().unwrap();
    assert!(
        locks.iter().any(|l| l["relation"] == "public.users" && l["mode"] == "AccessExclusiveLock"),
        "{locks:#?}"
    );
    // Only the up's: the down and the up after it are tried untraced.
    assert!(locks.iter().all(|l| l["sql"].as_str().is_some_and(|s| !s.starts_with("DROP"))));
    let report = json["report"].as_str().unwrap();
    let text = std::fs::read_to_string(p.path().join(report)).unwrap();
    assert!(text.contains("# Rehearsal") && text.contains("PASSED"), "{text}");
    assert!(text.contains("automatic transaction rollback (scenario A)"), "{text}");
    assert!(text.contains("restore of the pre-migration backup (scenario B)"), "{text}");
    assert!(text.contains("full rollback (export, down, restore) (scenario C)"), "{text}");
    assert_eq!(source_state(&p), before, "the source was changed by the rehearsal");
    assert_eq!(p.client().applied(), ["1"], "nothing was applied to the source");
}

#[test]
fn scenario_b_restores_the_start_after_scenario_a_applied_the_batch_before_its_last_transaction() {
    // A and B share a copy: A leaves the transactions before the last one
    // applied, and B must still have backed up, and restore, the start.
    let p = project("rh_a_then_b");
    p.migration(
        "2_orders",
        "CREATE TABLE orders (id int PRIMARY KEY, user_id int);",
        Some("DROP TABLE orders;"),
    );
    p.migration(
        "3_orders_user",
        "-- backstop:no-transaction\nCREATE INDEX CONCURRENTLY orders_user_idx ON orders (user_id);",
        Some("-- backstop:no-transaction\nDROP INDEX CONCURRENTLY orders_user_idx;"),
    );
    p.migration("4_notes", "CREATE TABLE notes (id int);", Some("DROP TABLE notes;"));
    let json = p.run(&["rehearse", "--format", "json"]).json();
    let scenarios = json["scenarios"].as_array().unwrap();
    assert_eq!(scenarios[0]["ok"], true, "{:#}", scenarios[0]);
    let a = scenarios[0]["detail"].as_str().unwrap();
    assert!(a.contains("the ones before it stay committed"), "{a}");
    assert_eq!(scenarios[1]["ok"], true, "{:#}", scenarios[1]);
    let b = scenarios[1]["detail"].as_str().unwrap();
    assert!(b.contains("copy identical to the start"), "{b}");
}

#[test]
fn a_down_that_misses_a_column_is_caught_with_the_column_named() {
    let p = project("rh_broken");
    p.migration(
        "2_two_columns",
        "ALTER TABLE users ADD COLUMN plan text;\nALTER TABLE users ADD COLUMN seats int;",
        Some("ALTER TABLE users DROP COLUMN plan;"),
    );
    let run = p.run(&["rehearse", "--format", "json"]);
    run.expect_code(1);
    let json = run.json();
    assert_eq!(json["ok"], false);
    let diffs = json["round_trip"]["differences"].as_array().unwrap();
    assert!(
        diffs.iter().any(|d| d["version"] == "2"
            && d["message"] == "the down leaves column public.users.seats, which the up added"
            && d["object"] == "column public.users.seats"),
        "{diffs:#?}"
    );
    let run = p.run(&["rehearse"]);
    run.expect_code(1)
        .expect_output("the down leaves column public.users.seats, which the up added")
        .expect_output("[3/6] round trip 2_two_columns");
    // Regression: "1 migration(s) fail the round trip" above, then
    // "rehearsal FAILED: 2 migration(s)": the count rehearsed read as the
    // count failing. The verdict counts as the list does.
    p.migration("3_plans", "CREATE TABLE plans (id int);", Some("DROP TABLE plans;"));
    let two = p.run(&["rehearse"]);
    two.expect_code(1)
        .expect_output("1 migration(s) fail the round trip:")
        .expect_output("rehearsal FAILED: 1 of 2 migration(s) fail the round trip, ");
    std::fs::remove_dir_all(p.path().join("migrations/3_plans")).unwrap();
    // The statements go to the log beside the report, not the terminal.
    let echo = "2 up step 2/2 ALTER TABLE users ADD COLUMN seats int";
    assert!(!run.all().contains(echo), "{}", run.all());
    let log = run
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("statements run: "))
        .unwrap_or_else(|| panic!("the run says where its statement log is: {}", run.stdout));
    assert!(log.starts_with(".backstop/rehearsals/") && log.ends_with(".log"), "{log}");
    let logged = std::fs::read_to_string(p.path().join(log)).unwrap();
    assert!(logged.contains(echo), "{logged}");
    assert!(!logged.contains("[3/6]"), "stages stay on the terminal: {logged}");
    p.run(&["rehearse", "--verbose"]).expect_code(1).expect_output(echo);
}

#[test]
fn a_down_that_throws_away_written_data_is_flagged() {
    let p = project("rh_lossy");
    p.migration(
        "2_nickname",
        "ALTER TABLE users ADD COLUMN nickname text;\nUPDATE users SET nickname = 'n' || id;",
        Some("ALTER TABLE users DROP COLUMN nickname;"),
    );
    let run = p.run(&["rehearse", "--format", "json"]);
    let json = run.json();
    let lossy = json["lossy"].as_array().unwrap();
    assert!(
        lossy.iter().any(|l| l["object"] == "column users.nickname"
            && l["message"].as_str().unwrap().contains("loses data written after the migration")),
        "{lossy:#?}"
    );
    run.expect_code(0);
}

#[test]
fn the_gate_wants_a_passing_rehearsal_of_exactly_these_migrations() {
    let p = project("rh_gate");
    p.config(&format!("{}\n[rehearse]\nrequired = true\n", crate::common::DEFAULT_CONFIG));
    p.migration("2_t", "CREATE TABLE t (id int);", Some("DROP TABLE t;"));
    p.run(&["migrate"]).expect_code(1).expect_output("run `backstop rehearse` first");
    assert_eq!(p.client().applied(), ["1"]);

    p.run(&["rehearse"]).expect_code(0);
    // Edited after the rehearsal: its checksum no longer matches.
    p.migration("2_t", "CREATE TABLE t (id bigint);", Some("DROP TABLE t;"));
    p.run(&["migrate"]).expect_code(1).expect_output("no passing rehearsal");

    p.run(&["rehearse"]).expect_code(0);
    p.run(&["migrate"]).expect_code(0);
    let mut c = p.client();
    let id: Option<String> = c
        .query_one("select rehearsal_id from backstop.applied where version = '2'", &[])
        .unwrap()
        .get(0);
    assert!(id.is_some(), "the rehearsal that covered the run is stamped on it");
}

#[test]
fn waiving_the_gate_is_audited() {
    let p = project("rh_waive");
    p.config(&format!("{}\n[rehearse]\nrequired = true\n", crate::common::DEFAULT_CONFIG));
    p.migration("2_t", "CREATE TABLE t (id int);", None);
    p.run(&["migrate", "--skip-rehearsal", "hotfix for incident 42"]).expect_code(0);
    let detail: serde_json::Value = p
        .client()
        .query_one(
            "select details->'gates'->'rehearsal' from backstop.events where kind = 'migrate' and outcome = 'ok' order by id desc limit 1",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(detail["waived"], "hotfix for incident 42");
}

#[test]
fn another_session_on_the_source_forces_a_dumped_copy_that_still_works() {
    let p = project("rh_dump");
    p.migration("2_t", "CREATE TABLE t (id int);", Some("DROP TABLE t;"));
    let _busy = p.client(); // someone else is connected: no template copy
    let run = p.run(&["rehearse", "--format", "json"]);
    run.expect_code(0);
    let json = run.json();
    assert_eq!(json["copy"]["method"], "dump", "{json:#}");
    assert!(json["copy"]["fallback_reason"].as_str().unwrap().contains("other session"));
}

#[test]
fn copies_of_a_killed_rehearsal_are_removed_by_the_next_one() {
    let p = project("rh_stale");
    // The sleep outlasts any wait below: the run is killed while it sleeps.
    p.migration("2_slow", "CREATE TABLE t (id int);\nSELECT pg_sleep(600);", Some("DROP TABLE t;"));
    let mut child = p.std_cmd(&["rehearse"]).spawn().unwrap();
    let child_pid = child.id();
    let mut admin = crate::common::CLUSTER.connect("postgres").unwrap();
    // Other tests rehearse at the same time: only this run's copies count,
    // and they are named after the database they copy only via their marker.
    let copies = |admin: &mut postgres::Client| -> Vec<String> {
        admin
            .query(
                "select datname::text from pg_database
                  where datname like 'backstop_rehearsal_%'
                    and shobj_description(oid, 'pg_database') like $1",
                &[&format!("% {}; of %", child_pid)],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    };
    crate::common::poll_until(
        "the rehearsal makes a copy",
        1200,
        std::time::Duration::from_millis(50),
        || !copies(&mut admin).is_empty(),
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child_pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    child.wait().unwrap();
    let left = copies(&mut admin);
    assert!(!left.is_empty(), "a killed rehearsal cannot clean up after itself");
    // Regression: status said nothing of the copies left on the server.
    let status = p.run(&["status"]).all();
    assert!(
        status.contains(&format!("left by a rehearsal that was stopped: database {}", left[0])),
        "{status}"
    );
    p.migration("2_slow", "CREATE TABLE t (id int);", Some("DROP TABLE t;"));
    p.run(&["rehearse"]).expect_code(0);
    assert!(copies(&mut admin).is_empty(), "stale copies {left:?} are left behind");
}

#[test]
fn the_verify_suite_runs_on_the_migrated_copy() {
    let p = project("rh_verify");
    p.migration("2_t", "CREATE TABLE t (id int);", Some("DROP TABLE t;"));
    let config = |tables: &str| {
        format!(
            "{}\n[[verify.checks]]\nname = \"new tables exist\"\nkind = \"tables\"\ntables = [{tables}]\n",
            crate::common::DEFAULT_CONFIG
        )
    };
    p.config(&config("\"t\""));
    let run = p.run(&["rehearse", "--format", "json"]);
    run.expect_code(0);
    let json = run.json();
    let step = json["steps"].as_array().unwrap().iter().find(|s| s["name"] == "verify suite");
    assert_eq!(step.map(|s| s["ok"].clone()), Some(serde_json::json!(true)), "{json:#}");

    p.config(&config("\"t\", \"never_created\""));
    let run = p.run(&["rehearse", "--format", "json"]);
    run.expect_code(1);
    let json = run.json();
    let step =
        json["steps"].as_array().unwrap().iter().find(|s| s["name"] == "verify suite").cloned();
    let step = step.expect("a verify step");
    assert_eq!(step["ok"], false);
    assert!(step["detail"].as_str().unwrap().contains("never_created"), "{step:#}");
}

#[test]
fn every_scenario_passes_on_the_demos_v2_migration_and_is_timed_in_the_report() {
    let p = Project::new("rh_demo");
    p.config(&crate::common::DEFAULT_CONFIG.replace(
        "dir = \"migrations\"",
        "dir = \"migrations\"\nprotected_tables = [\"users\", \"ai_usage_tracking\", \"usage_alerts\"]",
    ));
    p.migration("20260101000000_v1", include_str!("../../src/commands/demo/v1.sql"), None);
    p.run(&["migrate"]).expect_code(0);
    p.migration(
        "20260107120000_v2",
        include_str!("../../src/commands/demo/v2_up.sql"),
        Some(include_str!("../../src/commands/demo/v2_down.sql")),
    );
    let run = p.run(&["rehearse", "--format", "json"]);
    // v2's down recreates the v1 video tables empty: the round trip says so.
    run.expect_code(1);
    let json = run.json();
    let diffs = json["round_trip"]["differences"].as_array().unwrap();
    assert!(diffs.iter().any(|d| d["object"] == "table public.meetings"), "{diffs:#?}");
    let scenarios = json["scenarios"].as_array().unwrap();
    let names: Vec<&str> = scenarios.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["A", "B", "C"]);
    for s in scenarios {
        assert_eq!(s["ok"], true, "{s:#}");
    }
    let report = std::fs::read_to_string(p.path().join(json["report"].as_str().unwrap())).unwrap();
    for line in ["(scenario A): ", "(scenario B): ", "(scenario C): "] {
        assert!(report.contains(line), "{line} missing in\n{report}");
    }
}

/// Shapes a sample must keep whole: lookups, chains, a table without a
/// key, a self-reference, generated and identity columns.
const SHOP: &str = "CREATE TABLE currencies (code text PRIMARY KEY);
INSERT INTO currencies VALUES ('EUR'), ('USD'), ('JPY');
CREATE TABLE customers (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text NOT NULL);
INSERT INTO customers (name) SELECT 'c' || i FROM generate_series(1, 1000) i;
CREATE TABLE orders (
    id bigserial PRIMARY KEY,
    customer_id int NOT NULL REFERENCES customers,
    currency text REFERENCES currencies,
    cents int NOT NULL,
    euros numeric GENERATED ALWAYS AS (cents / 100.0) STORED
);
INSERT INTO orders (customer_id, currency, cents)
SELECT 1 + (i * 7919) % 1000, (ARRAY['EUR', 'USD', 'JPY', NULL])[1 + i % 4], i FROM generate_series(1, 3000) i;
CREATE TABLE items (order_id bigint NOT NULL REFERENCES orders ON DELETE CASCADE, sku text NOT NULL);
INSERT INTO items SELECT 1 + (i * 104729) % 3000, 'sku-' || i FROM generate_series(1, 6000) i;
CREATE TABLE staff (id int PRIMARY KEY, manager_id int REFERENCES staff);
INSERT INTO staff SELECT i, nullif(i / 10, 0) FROM generate_series(1, 100) i;";

#[test]
fn a_sample_keeps_every_foreign_key_and_copies_cycles_whole() {
    let p = Project::new("rh_sample");
    p.migration("1_shop", SHOP, None);
    p.run(&["migrate"]).expect_code(0);
    p.migration(
        "2_note",
        "ALTER TABLE orders ADD COLUMN note text;",
        Some("ALTER TABLE orders DROP COLUMN note;"),
    );
    let before = source_state(&p);
    let run = p.run(&["rehearse", "--sample", "10%", "--format", "json"]);
    run.expect_code(0);
    let json = run.json();
    assert_eq!(json["ok"], true, "{json:#}");
    let copy = &json["copy"];
    assert_eq!(copy["method"], "sample", "{copy:#}");
    assert_eq!(copy["sample"]["percent"], 10.0);
    let whole: Vec<&str> = copy["sample"]["whole_tables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(whole, ["public.staff (on a foreign-key cycle)"]);
    // The foreign keys were added after the rows and validated, so the
    // copy succeeding proves them; the subset is a real subset.
    let total = 3 + 1000 + 3000 + 6000 + 100;
    let rows = json["rows"].as_i64().unwrap();
    assert!(rows > total / 20 && rows < total / 2, "{rows} of {total} rows copied");
    assert_eq!(json["migrations"][0]["version"], "2");
    assert_eq!(source_state(&p), before, "the source was changed by the rehearsal");
}

#[test]
fn a_bad_sample_percentage_is_refused_before_anything_runs() {
    let p = project("rh_sample_bad");
    for (args, needle) in [
        (&["rehearse", "--sample", "0"][..], "above 0 and at most 100"),
        (&["rehearse", "--sample", "150%"][..], "above 0 and at most 100"),
        (&["rehearse", "--sample", "ten"][..], "--sample 10"),
        (&["rehearse", "--sample", "5", "--schema-only"][..], "cannot be used with"),
    ] {
        p.run(args).expect_code(2).expect_output(needle);
    }
}

#[test]
fn a_rehearsal_can_run_on_a_backup_instead_of_the_live_database() {
    let p = project("rh_from_backup");
    let id = p.run(&["backup", "create", "--format", "json"]).expect_code(0).json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Written after the backup: the rehearsal must not see these.
    p.client()
        .batch_execute("INSERT INTO users SELECT i, 'late' || i FROM generate_series(51, 57) i")
        .unwrap();
    p.migration("2_t", "CREATE TABLE t (id int);", Some("DROP TABLE t;"));
    let run = p.run(&["rehearse", "--from-backup", &id, "--format", "json"]);
    run.expect_code(0);
    let json = run.json();
    assert_eq!(json["ok"], true, "{json:#}");
    assert_eq!(json["copy"]["method"], "backup");
    assert_eq!(json["copy"]["backup_id"], id.as_str());
    assert_eq!(json["rows"], 50, "the backup's rows, not the live ones");

    p.run(&["rehearse", "--from-backup", "20200101-000000-nope"])
        .expect_code(3)
        .expect_output("20200101-000000-nope");
}

// --------------------------------------------- every migration, one run

/// A history where each migration's down fails in its own way, with
/// healthy migrations between them: one run must report every one.
fn every_kind_of_down(p: &Project) {
    p.migration(
        "2_items",
        "CREATE TABLE items (id int PRIMARY KEY, name text, price numeric(10, 2) NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
INSERT INTO items SELECT i, 'item ' || i, i * 1.5, now() FROM generate_series(1, 20) i;
CREATE FUNCTION price_with_tax(p numeric) RETURNS numeric LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN p * 1.2;
END
$$;",
        Some("DROP FUNCTION price_with_tax(numeric);\nDROP TABLE items;"),
    );
    // defect: the down forgets the default it changed.
    p.migration(
        "3_price_default",
        "ALTER TABLE items ADD COLUMN sku text;\nALTER TABLE items ALTER COLUMN price SET DEFAULT 0;",
        Some("ALTER TABLE items DROP COLUMN sku;"),
    );
    // down fails: a typo in the index name.
    p.migration(
        "4_name_idx",
        "CREATE INDEX items_name_idx ON items (name);",
        Some("DROP INDEX items_nmae_idx;"),
    );
    // re-up fails: the down restores every table but leaves the role.
    p.migration(
        "5_reporting",
        "CREATE ROLE rehearse_reporting_role NOLOGIN;\nGRANT SELECT ON items TO rehearse_reporting_role;",
        Some("REVOKE SELECT ON items FROM rehearse_reporting_role;"),
    );
    // no down: one is computed and proved.
    p.migration(
        "6_note",
        "ALTER TABLE items ADD COLUMN note text;\nCREATE VIEW items_all AS SELECT * FROM items;",
        None,
    );
    // cosmetic only: the down puts back a column (now last), the view over
    // SELECT * (its columns now in that order), and the function with its
    // body written differently.
    p.migration(
        "7_drop_name",
        "DROP VIEW items_all;
ALTER TABLE items DROP COLUMN name;
CREATE VIEW items_all AS SELECT * FROM items;
CREATE OR REPLACE FUNCTION price_with_tax(p numeric) RETURNS numeric LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN round(p * 1.2, 2);
END
$$;",
        Some("DROP VIEW items_all;
ALTER TABLE items ADD COLUMN name text;
UPDATE items SET name = 'item ' || id;
CREATE INDEX items_name_idx ON items (name);
CREATE VIEW items_all AS SELECT * FROM items;
CREATE OR REPLACE FUNCTION price_with_tax(p numeric) RETURNS numeric LANGUAGE plpgsql IMMUTABLE AS $$ begin return p * 1.2; end $$;"),
    );
    // cosmetic only: a view that froze the time it was created.
    p.migration(
        "8_recent",
        "CREATE VIEW items_before_now AS SELECT id FROM items WHERE created_at <= 'now'::timestamptz;",
        Some("DROP VIEW items_before_now;"),
    );
    p.migration(
        "9_recent_v2",
        "DROP VIEW items_before_now;\nCREATE VIEW items_before_now AS SELECT id, price FROM items WHERE created_at <= 'now'::timestamptz;",
        Some("DROP VIEW items_before_now;\nCREATE VIEW items_before_now AS SELECT id FROM items WHERE created_at <= 'now'::timestamptz;"),
    );
    // down fails: it hangs, and the statement timeout ends it.
    p.migration(
        "10_slow",
        "ALTER TABLE items ADD COLUMN slow int;",
        Some("SELECT pg_sleep(60);\nALTER TABLE items DROP COLUMN slow;"),
    );
    // ok, after all of them.
    p.migration("11_last", "CREATE TABLE tail (id int);", Some("DROP TABLE tail;"));
}

#[test]
fn one_run_reports_every_migrations_round_trip_past_every_failure() {
    let p = project("rh_every_kind");
    every_kind_of_down(&p);
    p.config(
        &crate::common::DEFAULT_CONFIG
            .replace("dir = \"migrations\"", "dir = \"migrations\"\nstatement_timeout = \"2s\""),
    );
    let run = p.run(&["rehearse", "--format", "json"]);
    run.expect_code(1);
    let json = run.json();
    let classes: Vec<(String, String)> = json["round_trip"]["migrations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (t["version"].as_str().unwrap().to_string(), t["class"].as_str().unwrap().to_string())
        })
        .collect();
    let expect = [
        ("2", "ok"),
        ("3", "defect"),
        ("4", "down_fails"),
        ("5", "re_up_fails"),
        ("6", "proved"),
        ("7", "cosmetic_only"),
        ("8", "ok"),
        ("9", "cosmetic_only"),
        ("10", "down_fails"),
        ("11", "ok"),
    ];
    let expect: Vec<(String, String)> =
        expect.iter().map(|(v, c)| (v.to_string(), c.to_string())).collect();
    assert_eq!(classes, expect, "{:#}", json["round_trip"]);
    let trip = |v: &str| {
        json["round_trip"]["migrations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["version"] == v)
            .unwrap()
            .clone()
    };
    assert!(
        trip("3")["detail"].as_str().unwrap().contains("column public.items.price"),
        "{:#}",
        trip("3")
    );
    assert!(trip("4")["detail"].as_str().unwrap().contains("items_nmae_idx"), "{:#}", trip("4"));
    // Regression: "down fails: down fails: ...", the class written twice.
    for s in json["steps"].as_array().unwrap() {
        let detail = s["detail"].as_str().unwrap();
        for class in ["down fails", "up fails", "not rehearsed", "no down"] {
            assert!(!detail.contains(&format!("{class}: {class}")), "{detail}");
        }
    }
    let step =
        json["steps"].as_array().unwrap().iter().find(|s| s["name"] == "round trip 4_name_idx");
    let detail = step.unwrap()["detail"].as_str().unwrap();
    assert!(detail.starts_with("down fails: index \"items_nmae_idx\" does not exist"), "{detail}");
    assert!(trip("5")["detail"].as_str().unwrap().contains("already exists"), "{:#}", trip("5"));
    assert!(
        trip("10")["detail"].as_str().unwrap().contains("statement_timeout 2 s"),
        "{:#}",
        trip("10")
    );
    let cosmetic = json["round_trip"]["cosmetic"].to_string();
    for kind in [
        "column order public.items",
        "columns come in another order",
        "body differs only in whitespace",
        "date frozen into it",
    ] {
        assert!(cosmetic.contains(kind), "{kind} not in {cosmetic}");
    }
    // The cosmetic ones are no errors: only 3, 4, 5 and 10 fail the run.
    let errors: Vec<&str> = json["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["ok"] == false)
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        errors,
        [
            "round trip 3_price_default",
            "round trip 4_name_idx",
            "round trip 5_reporting",
            "round trip 10_slow"
        ]
    );
    let report = std::fs::read_to_string(p.path().join(json["report"].as_str().unwrap())).unwrap();
    assert!(report.contains("| 3 | price_default | defect |"), "{report}");
    assert!(
        report.contains(
            "3 ok, 1 down computed and proved, 2 cosmetic only, 1 defect, 2 down fails, 1 re-up fails"
        ),
        "{report}"
    );
    // A down only a backup can undo is an error only when the project
    // says so.
    p.migration("12_backfill", "UPDATE items SET id = id;", None);
    let json = p.run(&["rehearse", "--format", "json", "--migrations", "12..12"]).json();
    assert_eq!(json["round_trip"]["ok"], true, "{:#}", json["round_trip"]);
    assert_eq!(json["round_trip"]["migrations"][0]["class"], "irreversible");
    assert_eq!(json["steps"][1]["name"], "before the range", "{:#}", json["steps"]);
    p.config(&crate::common::DEFAULT_CONFIG.replace(
        "dir = \"migrations\"",
        "dir = \"migrations\"\nstatement_timeout = \"2s\"\n\n[rehearse]\nrequire_down = true",
    ));
    let json = p.run(&["rehearse", "--format", "json", "--migrations", "12..12"]).json();
    assert_eq!(json["round_trip"]["ok"], false, "{:#}", json["steps"]);
    let _ = p.client().batch_execute("DROP ROLE IF EXISTS rehearse_reporting_role");
}

#[test]
fn the_backup_dir_of_a_rehearsal_killed_in_scenario_b_is_removed_by_the_next_one() {
    use std::os::unix::fs::PermissionsExt as _;
    let p = project("rh_stale_backups");
    p.migration("2_slow", "CREATE TABLE t (id int);\nSELECT pg_sleep(1);", Some("DROP TABLE t;"));
    let mut child = p.std_cmd(&["rehearse"]).stderr(std::process::Stdio::null()).spawn().unwrap();
    let prefix = format!("backstop-rehearsal-backups-{}-", child.id());
    let dirs = || -> Vec<std::path::PathBuf> {
        std::fs::read_dir(std::env::temp_dir())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            .map(|e| e.path())
            .collect()
    };
    crate::common::poll_until(
        "scenario B backs up the copy",
        600,
        std::time::Duration::from_millis(50),
        || !dirs().is_empty(),
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    child.wait().unwrap();
    let left = dirs();
    assert_eq!(left.len(), 1, "{left:?}");
    let mode = std::fs::metadata(&left[0]).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "a dump of the copy is readable by others");
    p.migration("2_slow", "CREATE TABLE t (id int);", Some("DROP TABLE t;"));
    p.run(&["rehearse"]).expect_code(0);
    assert!(!left[0].exists(), "{left:?} is left behind");
}

#[test]
fn a_down_in_postgresql_18s_syntax_passes_on_18_and_fails_before() {
    // Run once per major by CI: on 18 the down is right; before 18 the same
    // file is a syntax error there, and the round trip says so.
    let p = project("rh_pg18_down");
    p.migration(
        "2_email_optional",
        "ALTER TABLE users ALTER COLUMN email DROP NOT NULL;",
        Some("ALTER TABLE users ADD CONSTRAINT users_email_not_null NOT NULL email;"),
    );
    let json = p.run(&["rehearse", "--format", "json"]).json();
    let trip = &json["round_trip"];
    if crate::common::CLUSTER.bin().major >= 18 {
        assert_eq!(trip["ok"], true, "{json:#}");
        assert_eq!(json["ok"], true, "{json:#}");
    } else {
        assert_eq!(trip["ok"], false, "{json:#}");
        let text = trip.to_string();
        assert!(text.contains("syntax error"), "{text}");
    }
}

#[test]
fn data_no_sql_puts_back_is_named_alike_by_downs_and_rehearse_and_passes_only_when_accepted() {
    let p = project("rh_irreversible");
    p.config(&format!("{}\n[rehearse]\nrequired = true\n", crate::common::DEFAULT_CONFIG));
    p.migration("2_upper", "UPDATE users SET email = upper(email) WHERE id <= 10;", None);
    let downs = p.run(&["downs", "--format", "json"]).expect_code(0).json();
    assert_eq!(downs[0]["status"], "irreversible", "{downs:#}");
    p.run(&["downs", "--write"]).expect_code(0);

    let run = p.run(&["rehearse", "--format", "json"]);
    run.expect_code(1);
    let json = run.json();
    let trip = &json["round_trip"]["migrations"][0];
    assert_eq!(trip["class"], "data_irreversible", "{trip:#}");
    let detail = trip["detail"].as_str().unwrap();
    assert!(detail.contains("UPDATE users"), "{detail}");
    assert!(detail.contains("--accept-irreversible 2"), "{detail}");
    assert!(!detail.contains("backstop downs"), "no loop back to downs: {detail}");
    p.run(&["migrate"]).expect_code(1).expect_output("no passing rehearsal");

    p.run(&["rehearse", "--accept-irreversible", "2"]).expect_code(2);
    p.run(&["rehearse", "--accept-irreversible", "9", "--reason", "x"]).expect_code(2);
    p.run(&["rehearse", "--accept-irreversible", "2", "--reason", "emails are re-derived nightly"])
        .expect_code(0);
    let accepted: serde_json::Value = p
        .client()
        .query_one(
            "select details->'accepted_irreversible' from backstop.events where kind = 'rehearse' order by id desc limit 1",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(accepted.to_string().contains("emails are re-derived nightly"), "{accepted}");
    p.run(&["migrate"]).expect_code(0);
}

/// Regression (issue 42): a history that sets something on its own
/// database by name (`alter database postgres set …` on Supabase) failed
/// in every copy, whose database has another name. The copy's database is
/// the one altered, and the target's settings stay as they were.
#[test]
fn alter_database_of_the_targets_name_alters_the_copys_database() {
    let p = project("rh_alter_db");
    let db = &p.db;
    p.migration(
        "2_settings",
        &format!("ALTER DATABASE {db} SET app.greeting TO 'hello';\nALTER TABLE users ADD COLUMN greeting text;"),
        Some(&format!("ALTER TABLE users DROP COLUMN greeting;\nALTER DATABASE {db} RESET app.greeting;")),
    );
    let json = p.run(&["rehearse", "--format", "json"]).json();
    assert_eq!(json["round_trip"]["ok"], true, "{json:#}");
    let settings: Vec<String> = p
        .client()
        .query(
            "select unnest(setconfig) from pg_db_role_setting where setdatabase = (select oid from pg_database where datname = current_database())",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        !settings.iter().any(|s| s.starts_with("app.greeting")),
        "the target was changed: {settings:?}"
    );
}

/// Issue 43: a history with a file that cannot run is rehearsed up to the
/// migration before it; that file and those after it are named, never
/// applied to a copy, and the rehearsal does not pass.
#[test]
fn a_file_that_cannot_run_stops_the_rehearsal_there_and_is_named_with_the_rest() {
    let p = project("rh_broken");
    p.migration(
        "2_plan",
        "ALTER TABLE users ADD COLUMN plan text;",
        Some("ALTER TABLE users DROP COLUMN plan;"),
    );
    p.migration("3_broken", "CREATE TABLE b (id int;", Some("DROP TABLE b;"));
    p.migration("4_after", "CREATE TABLE c (id int);", Some("DROP TABLE c;"));
    let run = p.run(&["rehearse", "--format", "json"]);
    run.expect_code(1);
    let json = run.json();
    let trips: Vec<&str> = json["round_trip"]["migrations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["version"].as_str().unwrap())
        .collect();
    assert_eq!(trips, ["2"], "{json:#}");
    assert_eq!(json["round_trip"]["ok"], true, "{json:#}");
    let step =
        json["steps"].as_array().unwrap().iter().find(|s| s["name"] == "not rehearsed").unwrap();
    let detail = step["detail"].as_str().unwrap();
    assert!(
        detail.contains("3_broken cannot run as written") && detail.contains("3_broken/up.sql:1:"),
        "{detail}"
    );
    assert!(detail.contains("not rehearsed after it: 4_after"), "{detail}");
    assert_eq!(p.client().applied(), ["1"], "nothing was applied to the source");
}
