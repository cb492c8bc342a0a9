//! A project tried as a new user tries it: from its root, with no
//! `backstop.toml`, the database from `DATABASE_URL`. The migrations are
//! found where the project's tool keeps them (the Supabase CLI's folder,
//! Prisma's beside the schema `package.json` names, drizzle-kit's `out`);
//! `init` writes what it found and creates no folder; every documented
//! form of `dir` behaves the same, `downs --write` included; a setting
//! that names a missing folder and a root holding two tools' folders are
//! refused with the place and the fix, before the database is touched.

use crate::common::{DbExt, Project};

const USERS: &str = "CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL);\n";
const POSTS: &str =
    "CREATE TABLE posts (id bigint PRIMARY KEY, user_id bigint REFERENCES users (id), body text);\n";

#[test]
fn a_supabase_project_with_no_config_is_found_and_migrated_from_its_root() {
    let p = Project::bare("zero_supabase");
    p.write("supabase/config.toml", "project_id = \"app\"\n");
    p.write("supabase/seed.sql", "insert into users values (1, 'a@x');\n");
    p.write("supabase/migrations/20240101000000_users.sql", USERS);
    p.write("supabase/migrations/20240102000000_posts.sql", POSTS);
    let status = p.run(&["status"]);
    status.expect_code(0).expect_output("supabase layout, 2 migration(s)");
    status.expect_output("pending (2)");
    p.run(&["migrate"]).expect_code(0);
    assert_eq!(p.client().applied(), ["20240101000000", "20240102000000"]);
    // The seed is not a migration: nothing of it ran.
    assert_eq!(p.client().count("users"), 0);
    // What the run wrote (its backup, its proofs) is in .backstop/, which
    // ignores itself though no init told git about it.
    assert!(p.path().join(".backstop/proofs.json").is_file());
    let ignore = std::fs::read_to_string(p.path().join(".backstop/.gitignore")).unwrap();
    assert!(ignore.lines().any(|l| l == "*"), "{ignore}");
    assert!(!p.path().join(".gitignore").exists(), "the project's own .gitignore is not written");
}

#[test]
fn init_in_a_drizzle_project_writes_what_it_found_and_creates_no_folder() {
    let p = Project::bare("zero_drizzle_init");
    p.write(
        "drizzle.config.ts",
        "import { defineConfig } from 'drizzle-kit';\n\nexport default defineConfig({\n  \
         dialect: 'postgresql',\n  schema: './src/db/schema.ts',\n  out: './src/db/drizzle',\n});\n",
    );
    p.write("src/db/drizzle/0000_users.sql", USERS);
    p.write(
        "src/db/drizzle/meta/_journal.json",
        r#"{"version": "7", "dialect": "postgresql", "entries": [
  {"idx": 0, "version": "7", "when": 1704067200000, "tag": "0000_users", "breakpoints": true}
]}"#,
    );
    let init = p.run(&["init"]);
    init.expect_code(0).expect_output("drizzle.config.ts (out)");
    let config = std::fs::read_to_string(p.path().join("backstop.toml")).unwrap();
    assert!(config.contains("# dir = \"src/db/drizzle\""), "{config}");
    assert!(config.contains("# layout = \"drizzle\""), "{config}");
    assert!(!p.path().join("migrations").exists(), "init created a migrations folder");
    p.run(&["status"]).expect_code(0).expect_output("drizzle layout, 1 migration(s)");
}

#[test]
fn init_where_nothing_is_found_creates_the_folder_as_before() {
    let p = Project::bare("zero_init_empty");
    p.run(&["init"]).expect_code(0);
    assert!(p.path().join("migrations").is_dir());
    let config = std::fs::read_to_string(p.path().join("backstop.toml")).unwrap();
    assert!(config.contains("\ndir = \"migrations\""), "{config}");
}

#[test]
fn prisma_migrations_beside_the_schema_package_json_names() {
    let p = Project::bare("zero_prisma_pkg");
    p.write(
        "package.json",
        "{\n  \"name\": \"app\",\n  \"prisma\": {\n    \"schema\": \"db/schema.prisma\"\n  }\n}\n",
    );
    p.write("db/schema.prisma", "datasource db {\n  provider = \"postgresql\"\n}\n");
    p.write("db/migrations/migration_lock.toml", "provider = \"postgresql\"\n");
    p.write("db/migrations/20240101000000_init/migration.sql", USERS);
    p.run(&["status"]).expect_code(0).expect_output("prisma layout, 1 migration(s)");
    p.run(&["check", "--offline"]).expect_code(0);
}

#[test]
fn a_setting_naming_a_missing_folder_is_refused_at_its_line_before_the_database() {
    let p = Project::bare("zero_drizzle_missing");
    p.write(
        "drizzle.config.ts",
        "export default {\n  dialect: 'postgresql',\n  out: './drizzle/sql',\n};\n",
    );
    for cmd in [&["status"][..], &["migrate"], &["check"]] {
        let run = p.run(cmd);
        run.expect_code(2).expect_output("drizzle.config.ts:3: out names");
        run.expect_output("drizzle/sql");
    }
    assert!(!p.client().history_schema_exists(), "the database was touched");
}

#[test]
fn two_tools_folders_in_one_root_are_named_with_the_fix() {
    let p = Project::bare("zero_two_tools");
    p.write("supabase/migrations/20240101000000_users.sql", USERS);
    p.write("prisma/migrations/20240101000000_init/migration.sql", USERS);
    let run = p.run(&["status"]);
    run.expect_code(2).expect_output("supabase/migrations");
    run.expect_output("prisma/migrations").expect_output("set [migrations] dir");
    // Naming the layout picks one.
    p.config("[migrations]\nlayout = \"prisma\"\n");
    p.run(&["status"]).expect_code(0).expect_output("prisma layout, 1 migration(s)");
}

#[test]
fn nothing_found_says_where_it_looked_and_how_to_start() {
    let p = Project::bare("zero_nothing");
    let run = p.run(&["status"]);
    run.expect_code(2).expect_output("no migrations found in");
    run.expect_output("backstop init");
}

#[test]
fn downs_written_with_dir_dot_are_where_rollback_reads_them() {
    let p = Project::bare("zero_downs_dot");
    p.config("[database]\nurl = \"${DATABASE_URL}\"\n\n[migrations]\ndir = \".\"\n");
    p.write("supabase/migrations/20240101000000_users.sql", USERS);
    p.write("supabase/migrations/20240102000000_posts.sql", POSTS);
    p.run(&["downs", "--write"]).expect_code(0).expect_output("20240102000000");
    p.run(&["migrate"]).expect_code(0);
    p.run(&["rollback", "--to", "20240101000000"]).expect_code(0);
    let mut db = p.client();
    assert!(db.exists("public.users") && !db.exists("public.posts"));
    assert_eq!(db.applied(), ["20240101000000"]);
}

#[test]
fn migrate_keeps_a_proved_down_for_each_migration_of_an_up_only_layout_and_rollback_runs_it() {
    let p = Project::bare("zero_kept_downs");
    p.write("supabase/migrations/20240101000000_users.sql", USERS);
    p.run(&["migrate"]).expect_code(0);
    p.write("supabase/migrations/20240102000000_posts.sql", POSTS);
    p.write(
        "supabase/migrations/20240103000000_plans.sql",
        "CREATE TABLE plans (id text PRIMARY KEY, price int);\nINSERT INTO plans VALUES ('free', 0);\n",
    );
    p.run(&["migrate"]).expect_code(0).expect_output("kept a proved down for 2 migration(s)");
    let kept = p
        .client()
        .texts("select version from backstop.applied where kept_down is not null order by version");
    assert_eq!(kept, ["20240101000000", "20240102000000", "20240103000000"]);
    // No `downs --write`, no file: the rollback runs the kept downs.
    assert!(!p.path().join("supabase/backstop").exists());
    p.run(&["rollback", "--to", "20240101000000"]).expect_code(0);
    let mut db = p.client();
    assert!(db.exists("public.users") && !db.exists("public.posts") && !db.exists("public.plans"));
    assert_eq!(db.applied(), ["20240101000000"]);
    p.run(&["rollback"]).expect_code(0);
    assert!(!p.client().exists("public.users"));
    // Switched off, nothing is kept, and a rollback says what to do.
    p.config("[migrations]\nkeep_downs = false\n");
    p.run(&["migrate"]).expect_code(0);
    p.run(&["rollback"]).expect_code(1).expect_output("backstop downs --write");
}

/// Regression: the downs to keep were worked out before the gates ran, so
/// a history the check refused cost a replay of every pending migration
/// first (minutes on a long history) and only then the refusal.
#[test]
fn a_run_the_check_gate_refuses_works_out_no_down_first() {
    let p = Project::bare("zero_refused_no_downs");
    p.write("supabase/migrations/20240101000000_users.sql", USERS);
    p.write("supabase/migrations/20240102000000_ext.sql", "CREATE EXTENSION no_such_extension;\n");
    let run = p.run(&["migrate"]);
    run.expect_code(1).expect_output("check gate refused the migration");
    assert!(!run.all().contains("kept a proved down"), "{}", run.all());
    assert!(p.client().applied().is_empty());
}

/// Issue 43: a Go module that requires golang-migrate keeps its pairs of
/// `*.up.sql` files anywhere in it; found with no config and read as
/// golang-migrate (not as sqlx), and so also with `dir` set.
#[test]
fn a_go_modules_golang_migrate_folder_is_found_anywhere_in_it() {
    let p = Project::bare("zero_go");
    p.write("go.mod", "module example.com/app\n\ngo 1.22\n\nrequire github.com/golang-migrate/migrate/v4 v4.17.1\n");
    p.write("internal/store/migrations/000001_users.up.sql", USERS);
    p.write("internal/store/migrations/000001_users.down.sql", "DROP TABLE users;\n");
    p.write("internal/store/migrations/000002_posts.up.sql", POSTS);
    p.write("internal/store/migrations/000002_posts.down.sql", "DROP TABLE posts;\n");
    let json = p.run(&["status", "--format", "json"]).expect_code(0).json();
    assert_eq!(json["layout"], "golang-migrate", "{json:#}");
    assert_eq!(json["pending"].as_array().unwrap().len(), 2, "{json:#}");
    p.config("[migrations]\ndir = \"internal/store/migrations\"\n");
    let json = p.run(&["status", "--format", "json"]).expect_code(0).json();
    assert_eq!(json["layout"], "golang-migrate", "{json:#}");
}

/// Issue 43: a monorepo holding several tools' folders names every
/// candidate with its tool and count and asks for `dir` (it took the
/// root's drizzle folder beside a package's Prisma history unasked).
#[test]
fn a_monorepos_folders_are_each_named_with_their_tool_and_count() {
    let p = Project::bare("zero_monorepo");
    p.write("drizzle/0000_users.sql", USERS);
    p.write(
        "drizzle/meta/_journal.json",
        r#"{"version":"7","dialect":"postgresql","entries":[{"idx":0,"version":"7","when":1700000000000,"tag":"0000_users","breakpoints":true}]}"#,
    );
    p.write("packages/db/prisma/migrations/migration_lock.toml", "provider = \"postgresql\"\n");
    p.write("packages/db/prisma/migrations/20240101000000_users/migration.sql", USERS);
    p.write("packages/db/prisma/migrations/20240102000000_posts/migration.sql", POSTS);
    let run = p.run(&["status"]);
    run.expect_code(2).expect_output("holds the migrations of 2 projects");
    run.expect_output("drizzle, 1 migration(s)").expect_output("prisma, 2 migration(s)");
    run.expect_output("set [migrations] dir");
    assert!(!p.client().history_schema_exists(), "nothing was written");
}

/// Issue 43: a tool's history table under a name no setting gives is
/// known by its shape: `status` says it is not adopted, instead of
/// planning every migration again.
#[test]
fn a_history_table_under_any_name_is_known_by_its_shape() {
    let p = Project::bare("zero_shape");
    p.write("drizzle/0000_users.sql", USERS);
    p.write(
        "drizzle/meta/_journal.json",
        r#"{"version":"7","dialect":"postgresql","entries":[{"idx":0,"version":"7","when":1700000000000,"tag":"0000_users","breakpoints":true}]}"#,
    );
    let mut db = p.client();
    db.batch_execute(&format!(
        "{USERS}
         create table public.app_history (id serial primary key, hash text not null, created_at bigint);
         insert into public.app_history (hash, created_at) values ('x', 1700000000000);"
    ))
    .unwrap();
    let run = p.run(&["status"]);
    run.expect_code(1).expect_output("not adopted: public.app_history (drizzle's history)");
    // A table of the application's with those columns but no migration's
    // row is no history.
    db.batch_execute("update public.app_history set created_at = 42").unwrap();
    let run = p.run(&["status"]);
    assert!(!run.all().contains("app_history"), "{}", run.all());
    p.run(&["adopt", "--yes"]).expect_code(2).expect_output("nothing to adopt");
    // `adopt` without --from takes the one history `status` names.
    // With the hash drizzle takes of the file's text.
    db.execute(
        "update public.app_history set created_at = 1700000000000,
                hash = encode(sha256(convert_to($1, 'UTF8')), 'hex')",
        &[&USERS],
    )
    .unwrap();
    p.run(&["adopt", "--yes"]).expect_code(0).expect_output("adopted 1 migration(s)");
    assert_eq!(db.applied().len(), 1);
    p.run(&["status"]).expect_code(0);
}

/// Issue 43: a multi-module Java project's Flyway scripts are found with
/// no config where Flyway looks: here the locations a module's Spring
/// `application.yml` names, `{vendor}` as `postgresql`. A second module
/// on Flyway's default place makes two candidates, each named with its
/// count (exit 2); a flyway.conf naming a folder that does not exist is
/// refused at its line, before the database is touched.
#[test]
fn a_java_modules_flyway_scripts_are_found_where_flyway_looks() {
    let p = Project::bare("zero_flyway");
    p.write("pom.xml", "<project><modules><module>app</module></modules></project>\n");
    p.write("app/pom.xml", "<project/>\n");
    p.write(
        "app/src/main/resources/application.yml",
        "spring:\n  datasource:\n    url: jdbc:postgresql://localhost/app\n  flyway:\n    \
         locations:\n      - classpath:db/changes/{vendor}\n",
    );
    p.write("app/src/main/resources/db/changes/postgresql/V1__users.sql", USERS);
    p.write("app/src/main/resources/db/changes/postgresql/V1.1__posts.sql", POSTS);
    p.write("app/src/main/resources/db/migration/V9__not_read.sql", "SELECT 1;\n");
    let json = p.run(&["status", "--format", "json"]).expect_code(0).json();
    assert_eq!(json["layout"], "flyway", "{json:#}");
    let pending: Vec<&str> = json["pending"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["version"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(pending, ["1", "1.1"], "{json:#}");

    p.write(
        "billing/src/main/resources/db/migration/V1__plans.sql",
        "CREATE TABLE plans (id int);\n",
    );
    let run = p.run(&["status"]);
    run.expect_code(2).expect_output("holds the migrations of 2 projects");
    run.expect_output("application.yml:5 (spring.flyway.locations)");
    run.expect_output("flyway, 2 migration(s)").expect_output("flyway, 1 migration(s)");
    run.expect_output("set [migrations] dir");
    std::fs::remove_dir_all(p.path().join("billing")).unwrap();

    p.write(
        "flyway.conf",
        "flyway.url=jdbc:postgresql://localhost/app\nflyway.locations=filesystem:sql/pg\n",
    );
    let run = p.run(&["status"]);
    run.expect_code(2).expect_output("flyway.conf:2: flyway.locations names");
    run.expect_output("sql/pg");
    assert!(!p.client().history_schema_exists(), "the database was touched");
}
