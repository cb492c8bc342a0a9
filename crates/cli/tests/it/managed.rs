//! Conditions of real deployments: a database owner without superuser (as
//! on managed PostgreSQL), and enum values that must be committed before use.

use crate::common::{owned_database, unique_name, DbExt, Project, CLUSTER};

#[test]
fn a_non_superuser_database_owner_can_migrate_guard_and_roll_back() {
    let (url, role, db) = owned_database("owned");

    let project = Project::new("owner_project");
    project.config("[database]\nurl = \"${DATABASE_URL}\"\n\n[migrations]\ndir = \"migrations\"\nprotected_tables = [\"users\"]\n");
    project.migration(
        "1_users",
        "CREATE TABLE users (id int PRIMARY KEY, email text);\nINSERT INTO users SELECT i, 'u' || i FROM generate_series(1, 10) i;",
        Some("DROP TABLE users;"),
    );
    project.migration(
        "2_clients",
        "CREATE TABLE clients (id int, user_id int REFERENCES users);",
        Some("DROP TABLE clients;"),
    );
    project.run_with_url(&url, &["migrate"]).expect_code(0);

    project.migration("3_cleanup", "DELETE FROM users WHERE id > 5;", Some("SELECT 1;"));
    // Past the check gate (accepted), the guard must still hold as a non-superuser.
    project
        .run_with_url(&url, &["migrate", "--accept-risk", "BS100"])
        .expect_code(1)
        .expect_output("protected table users had 5 row(s) deleted");
    project.run_with_url(&url, &["rollback", "--to", "1"]).expect_code(0);

    let mut client = CLUSTER.connect(&db).unwrap();
    assert_eq!(client.applied(), ["1"]);
    assert_eq!(client.count("users"), 10);
    assert!(!client.exists("clients"));
    let owner: String = client
        .query_one(
            "select pg_get_userbyid(nspowner)::text from pg_namespace where nspname = 'backstop'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(owner, role, "the history schema belongs to the migrating role");
}

#[test]
fn an_enum_value_added_and_used_later_is_committed_in_between() {
    let project = Project::new("enum_split");
    project.migration("1_mood", "CREATE TYPE mood AS ENUM ('ok');\nCREATE TABLE people (id int, mood mood);\nINSERT INTO people VALUES (1, 'ok'), (2, NULL);", None);
    project.run(&["migrate"]).expect_code(0);
    project.migration("2_add_meh", "ALTER TYPE mood ADD VALUE 'meh';", None);
    project.migration("3_use_meh", "UPDATE people SET mood = 'meh' WHERE mood IS NULL;", None);
    project
        .run(&["migrate", "--dry-run"])
        .expect_code(0)
        .expect_output("group 1 (transaction, 1 statement(s)): 2\n")
        .expect_output("group 2 (transaction, 1 statement(s)): 3\n");
    project.run(&["migrate"]).expect_code(0);
    let mut client = project.client();
    assert_eq!(client.applied(), ["1", "2", "3"]);
    let meh: i64 =
        client.query_one("select count(*) from people where mood = 'meh'", &[]).unwrap().get(0);
    assert_eq!(meh, 1);
}

#[test]
fn using_a_new_enum_value_in_the_same_migration_fails_with_advice() {
    let project = Project::new("enum_same");
    project.migration(
        "1_mood",
        "CREATE TYPE mood AS ENUM ('ok');\nCREATE TABLE people (id int, mood mood);",
        None,
    );
    project.run(&["migrate", "--accept-risk", "BS405"]).expect_code(0);
    project.migration(
        "2_add_and_use",
        "ALTER TYPE mood ADD VALUE 'meh';\nINSERT INTO people VALUES (1, 'meh');",
        None,
    );
    project
        .run(&["migrate", "--accept-risk", "BS405"])
        .expect_code(1)
        .expect_output("error 55P04")
        .expect_output("move the statements that use the new value into a later migration");
    let mut client = project.client();
    let labels: i64 = client
        .query_one("select count(*) from pg_enum where enumtypid = 'mood'::regtype", &[])
        .unwrap()
        .get(0);
    assert_eq!(labels, 1, "the rolled-back ADD VALUE left no label behind");
}

#[test]
fn a_password_written_in_a_migration_is_never_shown_or_logged() {
    let project = Project::new("secret_sql");
    let role = unique_name("app_login");
    project.migration(
        "1_role",
        &format!(
            "CREATE ROLE {role} LOGIN PASSWORD 'hunter2-first';\n\
             CREATE ROLE {role}_b PASSWORD 'hunter2-second' IN ROLE no_such_role_at_all;"
        ),
        None,
    );
    let run = project.run(&["migrate", "--accept-risk", "BS405"]);
    run.expect_code(1).expect_output("PASSWORD '****'");
    assert!(!run.all().contains("hunter2"), "{}", run.all());
    let json = project.run(&["migrate", "--accept-risk", "BS405", "--format", "json"]);
    assert!(!json.all().contains("hunter2"), "{}", json.all());
    let mut client = project.client();
    let logged: String = client
        .query_one("select string_agg(details::text, ' ') from backstop.events", &[])
        .unwrap()
        .get(0);
    assert!(logged.contains("PASSWORD '****'"), "{logged}");
    assert!(!logged.contains("hunter2"), "{logged}");
}

#[test]
fn a_no_transaction_migration_runs_its_verify_sql_before_it_is_recorded() {
    let project = Project::new("nt_verify");
    project.migration("1_t", "CREATE TABLE t (id int);", None);
    project.run(&["migrate", "--accept-risk", "BS405"]).expect_code(0);
    project.migration(
        "2_index",
        "-- backstop:no-transaction\nCREATE INDEX CONCURRENTLY t_id_idx ON t (id);",
        None,
    );
    project.write(
        "migrations/2_index/verify.sql",
        "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_indexes WHERE indexname = 't_id_unique') THEN\n  RAISE EXCEPTION 'unique index missing';\nEND IF; END $$;",
    );
    project
        .run(&["migrate", "--accept-risk", "BS405"])
        .expect_code(1)
        .expect_output("verify.sql statement 1/1 failed")
        .expect_output("unique index missing")
        .expect_output("NOT rolled back: 1 statement(s)");
    let mut client = project.client();
    assert!(client.exists("t_id_idx"), "the committed index stays, as the report says");
    assert_eq!(client.applied(), ["1"], "a migration whose verify failed is not recorded");
}

/// An application's role on a managed server: it owns its schema but may
/// not create schemas in the database (its owner is another role), and
/// `public` is closed to it (PostgreSQL 15 and later). Backstop's own
/// schema is made for it by the owner, as the first run's error says;
/// then migrate runs, a rehearsal on a copy `pg_dump` made writes its late
/// writes where the role may and passes, and its proof serves the deploy
/// though the copy lacks a table of the owner's that the role may not read.
#[test]
fn an_application_role_without_create_on_the_database_uses_the_schema_made_for_it() {
    let (owner_url, owner, db) = owned_database("app_role");
    let app = unique_name("app");
    let mut admin = CLUSTER.connect("postgres").unwrap();
    admin.batch_execute(&format!("CREATE ROLE {app} LOGIN PASSWORD 'app-pw'")).unwrap();
    let mut owned = CLUSTER.connect(&db).unwrap();
    // The owner's own table, which the application's role may neither
    // read nor change: a copy made by pg_dump leaves it out.
    owned
        .batch_execute(&format!(
            "CREATE SCHEMA shop AUTHORIZATION {app}; ALTER ROLE {app} SET search_path = shop;
             CREATE TABLE public.audit (id int PRIMARY KEY); ALTER TABLE public.audit OWNER TO {owner};"
        ))
        .unwrap();
    let url = owner_url.replace(&format!("{owner}:owner-pw"), &format!("{app}:app-pw"));
    let project = Project::new("app_role_project");
    project.migration("1_items", "CREATE TABLE shop.items (id int PRIMARY KEY);", None);
    let refused = project.run_with_url(&url, &["migrate"]);
    refused
        .expect_code(3)
        .expect_output(&format!("role {app} may not create the schema backstop in database {db}"))
        .expect_output(&format!("CREATE SCHEMA backstop AUTHORIZATION {app}"));
    assert!(!owned.exists("shop.items"), "nothing ran");

    owned.batch_execute(&format!("CREATE SCHEMA backstop AUTHORIZATION {app}")).unwrap();
    project.run_with_url(&url, &["migrate"]).expect_code(0);
    assert_eq!(owned.applied(), ["1"]);
    project.migration("2_name", "ALTER TABLE shop.items ADD COLUMN name text;", None);
    project.run_with_url(&url, &["rehearse"]).expect_code(0).expect_output("25 late writes kept");
    // The rehearsal's copy was dumped without the owner's table; its proof
    // still serves the target, which has it.
    project
        .run_with_url(&url, &["migrate"])
        .expect_code(0)
        .expect_output("reused the kept proof of 1 down(s): 2");
    project.run_with_url(&url, &["rollback", "--yes"]).expect_code(0);
    assert_eq!(owned.applied(), ["1"]);
    let name: i64 = owned
        .query_one(
            "select count(*) from information_schema.columns \
             where table_schema = 'shop' and table_name = 'items' and column_name = 'name'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(name, 0, "the kept down ran");
}

/// A superuser's run first (a rehearsal, a migrate by an administrator)
/// makes Backstop's schema as the database's owner, so the owner's own
/// `migrate` afterwards has every right on its history.
#[test]
fn backstops_schema_belongs_to_the_database_owner_whoever_made_it() {
    let (owner_url, role, db) = owned_database("keeper");
    let admin_url = CLUSTER.url(&db);
    let p = Project::new("keeper_project");
    // A migration that makes nothing of the application's (a superuser's
    // tables would be its own, as PostgreSQL makes them).
    p.migration("1_a", "COMMENT ON DATABASE CURRENT_DATABASE IS 'app';", Some("SELECT 1;"));
    // The superuser migrates first: the schema and its tables go to the owner.
    p.run_with_url(&admin_url, &["status"]).expect_code(0);
    p.run_with_url(&admin_url, &["migrate"]).expect_code(0);
    let mut client = CLUSTER.connect(&db).unwrap();
    let owners: Vec<String> = client
        .query(
            "select distinct pg_get_userbyid(relowner)::text from pg_class
              where relnamespace = 'backstop'::regnamespace
             union select pg_get_userbyid(nspowner)::text from pg_namespace where nspname = 'backstop'",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(owners, [role], "the schema and its objects belong to the database owner");
    // The owner goes on with the history the superuser started.
    p.migration("2_b", "CREATE TABLE b (id int);", Some("DROP TABLE b;"));
    p.run_with_url(&owner_url, &["migrate"]).expect_code(0);
    p.run_with_url(&owner_url, &["rollback", "--to", "1"]).expect_code(0);
    assert_eq!(client.applied(), ["1"]);
}
