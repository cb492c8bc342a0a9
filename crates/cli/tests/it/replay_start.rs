//! Where a replay or a rehearsal copy starts: a schema dump file as the
//! start of `downs` (and one that does not restore, refused with its
//! place), a platform schema the connecting role may not read (named,
//! with what to grant), and the database's own settings carried into
//! every copy (an unqualified function found through `ALTER DATABASE …
//! SET search_path`, as Supabase finds `uuid_generate_v4()`).

use serde_json::Value;

use crate::common::{unique_name, DbExt, Project, CLUSTER};

#[test]
fn a_schema_dump_file_is_a_start_and_one_that_does_not_restore_is_refused() {
    let p = Project::new("start_file");
    p.migration(
        "1_notes",
        "CREATE TABLE item_notes (id int PRIMARY KEY, item_id int REFERENCES app_base.items (id));",
        None,
    );
    // The target lacks what the history is written on: the replay says so.
    let down: Value = p.run(&["downs", "--format", "json"]).expect_code(1).json();
    assert_eq!(down[0]["status"], "unprovable", "{down:#}");
    assert!(down[0]["notes"].to_string().contains("pass --start"), "{down:#}");

    p.write(
        "base.sql",
        "CREATE SCHEMA app_base;\nCREATE TABLE app_base.items (id int PRIMARY KEY);\n",
    );
    let down: Value =
        p.run(&["downs", "--start", "base.sql", "--format", "json"]).expect_code(0).json();
    assert_eq!(down[0]["status"], "computed", "{down:#}");
    assert!(down[0]["sql"].as_str().unwrap().contains("DROP TABLE IF EXISTS public.item_notes"));

    p.write("broken.sql", "CREATE SCHEMA app_base;\nCREATE TABEL app_base.items (id int);\n");
    let run = p.run(&["downs", "--start", "broken.sql"]);
    run.expect_code(2).expect_output("broken.sql does not restore as the start of the replay");
    run.expect_output("syntax error").expect_output("supabase db dump");
    assert!(!p.client().history_schema_exists(), "the target was touched");
}

#[test]
fn a_start_that_lacks_what_the_history_needs_is_named_not_asked_for_again() {
    let p = Project::new("start_given");
    p.migration(
        "1_notes",
        "CREATE TABLE item_notes (id int PRIMARY KEY, item_id int REFERENCES app_base.items (id));",
        None,
    );
    // A database given as the start, that lacks app_base too.
    let start = unique_name("bare_start");
    CLUSTER.create_database(&start, None).unwrap();
    let down: Value =
        p.run(&["downs", "--start", &start, "--format", "json"]).expect_code(1).json();
    let notes = down[0]["notes"].to_string();
    assert!(notes.contains(&format!("the start given with --start, database {start}")), "{notes}");
    assert!(!notes.contains("pass --start"), "--start was given: {notes}");
    // A schema dump file given as the start, the same.
    p.write("base.sql", "CREATE SCHEMA other_base;\n");
    let down: Value =
        p.run(&["downs", "--start", "base.sql", "--format", "json"]).expect_code(1).json();
    let notes = down[0]["notes"].to_string();
    assert!(notes.contains("the start given with --start, the schema dump base.sql"), "{notes}");
    assert!(!notes.contains("pass --start"), "--start was given: {notes}");
}

#[test]
fn a_platform_schema_the_role_cannot_read_is_named_with_what_to_grant() {
    let role = unique_name("app");
    let db = unique_name("locked_platform");
    let mut admin = CLUSTER.connect("postgres").unwrap();
    admin
        .batch_execute(&format!("CREATE ROLE {role} LOGIN PASSWORD 'app-pw' NOSUPERUSER"))
        .unwrap();
    admin.batch_execute(&format!("CREATE DATABASE {db} OWNER {role}")).unwrap();
    CLUSTER
        .connect(&db)
        .unwrap()
        .batch_execute(
            "CREATE SCHEMA auth; CREATE TABLE auth.users (id uuid PRIMARY KEY);
             REVOKE ALL ON SCHEMA auth FROM PUBLIC;",
        )
        .unwrap();
    let url = format!("postgres://{role}:app-pw@127.0.0.1:{}/{db}", CLUSTER.port());
    let p = Project::new("locked_platform_project");
    p.migration(
        "1_profiles",
        "CREATE TABLE profiles (id uuid PRIMARY KEY REFERENCES auth.users (id));",
        None,
    );
    let run = p.run_with_url(&url, &["downs"]);
    run.expect_code(3).expect_output("cannot copy the platform's schemas auth");
    run.expect_output("grant the role Backstop connects as USAGE on those schemas");
    assert!(!run.all().contains("app-pw"), "the password was shown");
}

#[test]
fn a_rehearsal_copy_keeps_the_databases_own_settings() {
    let p = Project::new("copy_settings");
    let mut db = p.client();
    db.batch_execute(&format!(
        "CREATE SCHEMA util;
         CREATE FUNCTION util.tag() RETURNS text LANGUAGE sql AS $$ SELECT 'tagged' $$;
         ALTER DATABASE {} SET search_path = \"$user\", public, util;",
        p.db
    ))
    .unwrap();
    p.migration(
        "1_items",
        "CREATE TABLE items (id int PRIMARY KEY, tag text DEFAULT tag());\nINSERT INTO items (id) VALUES (1);",
        Some("DROP TABLE items;"),
    );
    // On a template copy, and on a dump into a throwaway cluster.
    let json = p.run(&["rehearse", "--format", "json"]).expect_code(0).json();
    assert_eq!(json["round_trip"]["migrations"][0]["class"], "ok", "{json:#}");
    p.run(&["rehearse", "--schema-only"]).expect_code(0);
    p.run(&["migrate"]).expect_code(0);
    assert_eq!(db.texts("select tag from items"), ["tagged"]);
}

#[test]
fn a_function_found_through_the_databases_search_path_is_in_the_replay_start() {
    let p = Project::new("path_start");
    let mut db = p.client();
    // As Supabase has it: `extensions` on the database's search_path, and
    // a function there the history calls unqualified (here a plain SQL
    // function, no extension needed). The history never names the schema.
    db.batch_execute(&format!(
        "CREATE SCHEMA extensions;
         CREATE FUNCTION extensions.uuid_generate_v4() RETURNS uuid LANGUAGE sql
             AS $$ SELECT gen_random_uuid() $$;
         ALTER DATABASE {} SET search_path = \"$user\", public, extensions;",
        p.db
    ))
    .unwrap();
    p.migration(
        "1_items",
        "CREATE TABLE items (id uuid PRIMARY KEY DEFAULT uuid_generate_v4(), name text);\n\
         INSERT INTO items (name) VALUES ('first');",
        None,
    );
    p.migration(
        "2_tags",
        "ALTER TABLE items ADD COLUMN tag uuid DEFAULT uuid_generate_v4();",
        None,
    );
    let downs: Value = p.run(&["downs", "--format", "json"]).expect_code(0).json();
    let statuses: Vec<&str> =
        downs.as_array().unwrap().iter().map(|d| d["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["computed", "computed"], "{downs:#}");
    assert!(downs[1]["sql"].as_str().unwrap().contains("DROP COLUMN"), "{downs:#}");
    p.run(&["rehearse"]).expect_code(0);
    p.run(&["rehearse", "--schema-only"]).expect_code(0);
    assert!(!db.exists("items"), "a copy's migration reached the target");
}

#[test]
fn a_schema_only_copy_knows_what_the_source_has_applied() {
    let p = Project::new("schema_only_history");
    p.migration("1_items", "CREATE TABLE items (id int PRIMARY KEY);", Some("DROP TABLE items;"));
    p.run(&["migrate"]).expect_code(0);
    p.migration(
        "2_notes",
        "CREATE TABLE notes (id int PRIMARY KEY, item int REFERENCES items (id));",
        Some("DROP TABLE notes;"),
    );
    // The copy holds no rows, the history's neither: without them the
    // applied 1_items would be played again on a schema that has items.
    let json = p.run(&["rehearse", "--schema-only", "--format", "json"]).expect_code(0).json();
    let trips = json["round_trip"]["migrations"].as_array().unwrap();
    let versions: Vec<&str> = trips.iter().map(|t| t["version"].as_str().unwrap()).collect();
    assert_eq!(versions, ["2"], "{json:#}");
    assert_eq!(trips[0]["class"], "ok", "{json:#}");
}
