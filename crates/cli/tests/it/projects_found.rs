//! Projects found as their tools keep them, with no configuration.
//! Hasura's: `hasura/config.yaml` version 3 with a folder per database
//! under `hasura/migrations`, from the repository's root, from `hasura/`
//! and with `dir` naming the migrations folder; version 2 with the
//! migrations directly in it. Before: from the root "no migrations
//! found", from `hasura/` "0 migrations" and GO over every pending
//! migration. Flyway's vendor folders in a Java module, with the history
//! table a `*-defaults.properties` names. Before: "duplicate migration
//! version ... give one of them a new version".

use crate::common::{DbExt, Project, Run};

const CONFIG_V3: &str = "version: 3\nendpoint: http://localhost:8080\nadmin_secret: s3cret\n\
    metadata_directory: metadata\nactions:\n  kind: synchronous\n  handler_webhook_baseurl: http://localhost:3000\n";

/// A Hasura history of `n` migrations of database `db`, shaped as the
/// console writes them: tables, a column added, a view, an index, and
/// downs the console could not generate (its comment only).
fn history(p: &Project, base: &str, n: usize) {
    for i in 0..n {
        let version = 1_612_345_678_000u64 + i as u64 * 1000;
        let (name, up, down) = match i % 4 {
            0 => (
                format!("create_table_public_t{i}"),
                format!("CREATE TABLE \"public\".\"t{i}\" (\"id\" serial NOT NULL, \"name\" text, PRIMARY KEY (\"id\"));"),
                format!("DROP TABLE \"public\".\"t{i}\";"),
            ),
            1 => (
                format!("alter_table_public_t{}_add_column_note", i - 1),
                format!("alter table \"public\".\"t{}\" add column \"note\" text null;", i - 1),
                "-- Could not auto-generate a down migration.\n-- Please write an appropriate down migration for the SQL below:\n-- alter table add column note;".to_string(),
            ),
            2 => (
                format!("create_view_v{i}"),
                format!("CREATE OR REPLACE VIEW \"public\".\"v{i}\" AS SELECT id, name FROM t{};", i - 2),
                format!("DROP VIEW \"public\".\"v{i}\";"),
            ),
            _ => (
                format!("create_index_t{}_name", i - 3),
                format!("CREATE INDEX \"t{0}_name\" on \"public\".\"t{0}\" using btree (\"name\");", i - 3),
                format!("DROP INDEX IF EXISTS \"public\".\"t{}_name\";", i - 3),
            ),
        };
        p.write(&format!("{base}/{version}_{name}/up.sql"), &format!("{up}\n"));
        p.write(&format!("{base}/{version}_{name}/down.sql"), &format!("{down}\n"));
    }
}

fn run_in(p: &Project, sub: &str, args: &[&str]) -> Run {
    Run::from_output(p.cmd().current_dir(p.path().join(sub)).args(args).output().unwrap())
}

#[test]
fn a_version_3_project_is_found_from_the_root_and_from_hasura_and_migrated() {
    let p = Project::bare("hasura_v3");
    p.write("hasura/config.yaml", CONFIG_V3);
    p.write("hasura/metadata/databases/databases.yaml", "- name: default\n  kind: postgres\n");
    p.write("hasura/seeds/default/1612345678000_users.sql", "insert into t0 values (1, 'a');\n");
    history(&p, "hasura/migrations/default", 24);
    let found = "hasura/migrations/default (hasura layout";
    p.run(&["status"]).expect_code(0).expect_output("24 migration(s)").expect_output(found);
    run_in(&p, "hasura", &["status"]).expect_code(0).expect_output("pending (24)");
    p.write(
        "backstop.toml",
        "[database]\nurl = \"${DATABASE_URL}\"\n\n[migrations]\ndir = \"hasura/migrations\"\n",
    );
    p.run(&["status"]).expect_code(0).expect_output("pending (24)");
    std::fs::remove_file(p.path().join("backstop.toml")).unwrap();

    // The Hasura server's catalog, its CLI having applied the first two.
    let mut db = p.client();
    db.batch_execute(&format!("{CATALOG}; {}; {}", first_ups(&p, 2), state_of(&["default"])))
        .unwrap();
    db.batch_execute(
        "update hdb_catalog.hdb_version set cli_state = jsonb_set(cli_state, '{migrations,default}',
            '{\"1612345678000\": false, \"1612345679000\": false}')",
    )
    .unwrap();
    p.run(&["migrate"]).expect_code(1).expect_output("backstop history adopt");
    p.run(&["adopt", "--yes"]).expect_code(0);
    p.run(&["migrate"]).expect_code(0);
    assert_eq!(db.applied().len(), 24);
    // What `hasura migrate status` reads: every version, none dirty, the
    // CLI's other settings kept.
    assert_eq!(cli_state(&mut db, "default"), (24, 0));
    let mode: String = db
        .query_one(
            "select cli_state #>> '{settings,migration_mode}' from hdb_catalog.hdb_version",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(mode, "true");
    assert!(db.exists("v22") && db.exists("t20"));
    assert_eq!(db.count("t0"), 0, "a seed is no migration");
    // The last down the console could not write is no down: Backstop's
    // proved one takes the column out, and says it compared.
    p.run(&["rollback", "--steps", "3"]).expect_code(0).expect_output("compared");
    let note: i64 = db
        .query_one(
            "select count(*) from information_schema.columns where table_name = 't20' and column_name = 'note'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(note, 0, "the column the up added is gone");
    assert_eq!(db.applied().len(), 21);
    assert_eq!(cli_state(&mut db, "default"), (21, 0), "the CLI's state follows the rollback");
}

/// `hdb_catalog.hdb_version` as the Hasura server makes it, with its row.
const CATALOG: &str = "create schema hdb_catalog;
    create table hdb_catalog.hdb_version (hasura_uuid uuid primary key default gen_random_uuid(),
        version text not null, upgraded_on timestamptz not null default now(),
        cli_state jsonb not null default '{}', console_state jsonb not null default '{}')";

/// The server's row with the CLI's state holding `databases`, none applied.
fn state_of(databases: &[&str]) -> String {
    let maps: Vec<String> = databases.iter().map(|d| format!("\"{d}\": {{}}")).collect();
    format!(
        "insert into hdb_catalog.hdb_version (version, cli_state) values ('48',
            '{{\"settings\": {{\"migration_mode\": \"true\"}}, \"migrations\": {{{}}},
              \"isStateCopyCompleted\": true}}')",
        maps.join(", ")
    )
}

/// The ups of the first `n` migrations of the history, as one script.
fn first_ups(p: &Project, n: usize) -> String {
    (0..n)
        .map(|i| {
            let dir = p.path().join("hasura/migrations/default");
            let version = (1_612_345_678_000u64 + i as u64 * 1000).to_string();
            let entry = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .find(|d| d.file_name().unwrap().to_string_lossy().starts_with(&version))
                .unwrap();
            std::fs::read_to_string(entry.join("up.sql")).unwrap()
        })
        .collect()
}

/// How many versions the CLI's state holds for `database`, and how many
/// of them are dirty.
fn cli_state(db: &mut postgres::Client, database: &str) -> (i64, i64) {
    let row = db
        .query_one(
            "select count(*), count(*) filter (where m.value = 'true'::jsonb)
               from hdb_catalog.hdb_version, jsonb_each(cli_state -> 'migrations' -> $1::text) m",
            &[&database],
        )
        .unwrap();
    (row.get(0), row.get(1))
}

#[test]
fn several_databases_are_named_and_one_is_chosen_by_dir_and_version_2_is_read_too() {
    let p = Project::bare("hasura_databases");
    p.write("hasura/config.yaml", CONFIG_V3);
    history(&p, "hasura/migrations/default", 3);
    history(&p, "hasura/migrations/analytics", 5);
    p.run(&["status"])
        .expect_code(2)
        .expect_output("Hasura's migrations of database analytics")
        .expect_output("Hasura's migrations of database default")
        .expect_output("set [migrations] dir");
    assert!(!p.client().history_schema_exists());
    p.write(
        "backstop.toml",
        "[database]\nurl = \"${DATABASE_URL}\"\n\n[migrations]\ndir = \"hasura/migrations/analytics\"\n",
    );
    let mut db = p.client();
    db.batch_execute(&format!("{CATALOG}; {}", state_of(&["default", "analytics"]))).unwrap();
    p.run(&["migrate"]).expect_code(0);
    assert_eq!(db.applied().len(), 5);
    assert_eq!(cli_state(&mut db, "analytics"), (5, 0));
    assert_eq!(cli_state(&mut db, "default"), (0, 0), "another database's state is its own");

    let q = Project::bare("hasura_v2");
    q.write("hasura/config.yaml", "version: 2\nendpoint: http://localhost:8080\n");
    history(&q, "hasura/migrations", 4);
    q.run(&["status"])
        .expect_code(0)
        .expect_output("pending (4)")
        .expect_output("hasura/migrations (");
    // Version 2's CLI keeps its own table beside the server's catalog.
    let mut db = q.client();
    db.batch_execute(&format!(
        "{CATALOG}; {}; create table hdb_catalog.schema_migrations
            (version bigint not null primary key, dirty boolean not null)",
        state_of(&[])
    ))
    .unwrap();
    q.run(&["migrate"]).expect_code(0);
    let rows: i64 = db
        .query_one("select count(*) from hdb_catalog.schema_migrations where not dirty", &[])
        .unwrap()
        .get(0);
    assert_eq!(rows, 4);
    assert_eq!(cli_state(&mut db, "default"), (0, 0));
}

#[test]
fn flyways_vendor_folders_give_postgresqls_scripts_and_its_named_history_table() {
    let p = Project::bare("flyway_vendors");
    p.write("service/pom.xml", "<project/>\n");
    let res = "service/src/main/resources";
    p.write(&format!("{res}/application.properties"), "spring.application.name=service\n");
    p.write(
        &format!("{res}/service-defaults.properties"),
        "spring.flyway.locations=classpath:db/migration/{vendor}\nspring.flyway.table=service_schema_history\n",
    );
    for (version, sql) in [
        ("1.0.0", "CREATE TABLE accounts (id bigint PRIMARY KEY, owner text NOT NULL);"),
        ("1.0.1", "ALTER TABLE accounts ADD COLUMN opened_on date;"),
        ("1.1.0", "CREATE INDEX accounts_owner ON accounts (owner);"),
    ] {
        p.write(
            &format!("{res}/db/migration/postgresql/V{version}__step.sql"),
            &format!("{sql}\n"),
        );
        p.write(
            &format!("{res}/db/migration/h2/V{version}__step.sql"),
            "CREATE MEMORY TABLE x (id int);\n",
        );
        p.write(
            &format!("{res}/db/migration/mysql/V{version}__step.sql"),
            "CREATE TABLE x (id int) ENGINE=InnoDB;\n",
        );
    }
    let status = p.run(&["status"]);
    status.expect_code(0).expect_output("flyway layout, 3 migration(s)");
    status.expect_output("db/migration/postgresql (flyway layout");
    p.run(&["migrate"]).expect_code(0);
    let mut db = p.client();
    assert!(db.exists("accounts"));
    // Flyway's table, under the name the defaults file gives it.
    let scripts: Vec<String> = db
        .query("select script from service_schema_history order by installed_rank", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(scripts, ["V1.0.0__step.sql", "V1.0.1__step.sql", "V1.1.0__step.sql"]);
    assert!(!db.exists("flyway_schema_history"));

    // The folder named by hand: the same choice, and two folders of one
    // database with the same version are told apart from a typo.
    p.write("backstop.toml", &format!("[database]\nurl = \"${{DATABASE_URL}}\"\n\n[migrations]\ndir = \"{res}/db/migration\"\nlayout = \"flyway\"\n"));
    p.run(&["status"]).expect_code(0).expect_output("3 migration(s)");
    p.write(&format!("{res}/db/migration/postgresql/extra/V1.0.1__again.sql"), "SELECT 1;\n");
    p.run(&["status"])
        .expect_code(2)
        .expect_output("in two folders")
        .expect_output("set [migrations] dir to PostgreSQL's");
}

#[test]
fn flyway_scripts_with_a_suffix_of_their_own_are_found_and_migrated() {
    // Before: "no migrations found" (suffixes not ending in `.sql` were
    // left out), though Flyway runs these.
    let p = Project::bare("flyway_pgsql");
    p.write("api/build.gradle", "plugins { id 'java' }\n");
    let res = "api/src/main/resources";
    p.write(
        &format!("{res}/application.yml"),
        "spring:\n  flyway:\n    sql-migration-suffixes: .pgsql\n",
    );
    p.write(&format!("{res}/db/migration/V1__users.pgsql"), "CREATE TABLE users (id int);\n");
    p.write(&format!("{res}/db/migration/V1__users.pgsql.conf"), "executeInTransaction=false\n");
    p.write(&format!("{res}/db/migration/V2__email.pgsql"), "ALTER TABLE users ADD email text;\n");
    p.write(&format!("{res}/db/migration/V2__old_copy.sql"), "SELECT 1;\n");
    let status = p.run(&["status", "-v"]);
    status.expect_code(0).expect_output("flyway layout, 2 migration(s)");
    status.expect_output("not named with a suffix application.yml:3");
    p.run(&["migrate"]).expect_code(0);
    let mut db = p.client();
    let scripts: Vec<String> = db
        .query("select script from flyway_schema_history order by installed_rank", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(scripts, ["V1__users.pgsql", "V2__email.pgsql"]);
}

#[test]
fn a_hasura_servers_catalog_is_no_history_of_another_tools_project() {
    let p = Project::new("hasura_beside");
    p.migration("20240101000000_users", "CREATE TABLE users (id int PRIMARY KEY);\n", None);
    let mut db = p.client();
    db.batch_execute(&format!("{CATALOG}; {}", state_of(&["default"]))).unwrap();
    db.batch_execute(
        "update hdb_catalog.hdb_version set cli_state = jsonb_set(cli_state, '{migrations,default}',
            '{\"1612345678000\": false}')",
    )
    .unwrap();
    let run = p.run(&["migrate"]);
    run.expect_code(0);
    assert!(
        !run.all().contains("hdb_catalog"),
        "no word of another tool's history:\n{}",
        run.all()
    );
    assert_eq!(db.applied().len(), 1);
    assert_eq!(cli_state(&mut db, "default"), (1, 0), "the server's catalog is left as it was");
    p.run(&["status"]).expect_code(0).expect_output("applied (1)");
    for args in [&["check"][..], &["adopt"], &["status", "--format", "json"]] {
        let run = p.run(args);
        assert!(!run.all().contains("hdb_catalog"), "{args:?}:\n{}", run.all());
    }
}
