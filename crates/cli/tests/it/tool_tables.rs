//! In step from the first migrate: on a fresh database, `backstop migrate`
//! makes the history table of the tool the project runs and writes it as
//! that tool does, so that the tool (run by the application at its start)
//! finds nothing to run. The real sqlx-cli, diesel_cli and dbmate are asked
//! afterwards; goose's, golang-migrate's and Flyway's tables (no registry
//! this project reaches has those tools) are compared with the shape the
//! tools make.

use std::process::Command;

use crate::adopt::project_from;
use crate::common::{program, run_program, DbExt, Project};

fn migrated(layout: &str, label: &str, manifest: Option<(&str, &str)>) -> Project {
    let p = project_from(layout, label);
    if let Some((name, text)) = manifest {
        p.write(name, text);
    }
    p.run(&["migrate"]).expect_code(0);
    p
}

#[test]
fn sqlx_and_diesel_find_nothing_to_run_where_the_project_requires_them() {
    let sqlx_toml = "[package]\nname = \"app\"\n\n[dependencies]\nsqlx = { version = \"0.8\" }\n";
    let p = migrated("sqlx", "in_step_sqlx", Some(("Cargo.toml", sqlx_toml)));
    let mut db = p.client();
    assert_eq!(db.count("_sqlx_migrations"), 3);
    if let Some(sqlx) = program("sqlx", ".ci/tools/sqlx-cli.sh") {
        let args = ["--source", "migrations", "--database-url", &p.url];
        let info = run_program(
            Command::new(&sqlx).args(["migrate", "info"]).args(args).current_dir(p.path()),
        );
        assert_eq!(info.matches("/installed").count(), 3, "{info}");
        assert!(!info.contains("pending") && !info.contains("checksum"), "{info}");
        run_program(Command::new(&sqlx).args(["migrate", "run"]).args(args).current_dir(p.path()));
        assert_eq!(db.count("_sqlx_migrations"), 3, "sqlx ran nothing again");
    }
    // The same pairs in a project that does not require sqlx: no table.
    let p = migrated("sqlx", "in_step_no_sqlx", None);
    assert!(!p.client().exists("_sqlx_migrations"));

    let p = migrated("diesel", "in_step_diesel", Some(("diesel.toml", "[print_schema]\n")));
    let mut db = p.client();
    assert_eq!(db.count("__diesel_schema_migrations"), 3);
    if let Some(diesel) = program("diesel", ".ci/tools/diesel-cli.sh") {
        let args = ["--migration-dir", "migrations", "--database-url", &p.url];
        let list = run_program(
            Command::new(&diesel).args(["migration", "list"]).args(args).current_dir(p.path()),
        );
        assert_eq!(list.matches("[X]").count(), 3, "{list}");
        assert!(!list.contains("[ ]"), "{list}");
        run_program(
            Command::new(&diesel).args(["migration", "run"]).args(args).current_dir(p.path()),
        );
        assert_eq!(db.count("__diesel_schema_migrations"), 3, "diesel ran nothing again");
    }
    // Backstop's own folder (no diesel.toml): no diesel table.
    let p = migrated("diesel", "in_step_backstop_own", None);
    assert!(!p.client().exists("__diesel_schema_migrations"));
}

#[test]
fn dbmate_goose_golang_migrate_and_flyway_get_their_tables_as_the_tools_make_them() {
    let p = migrated("dbmate", "in_step_dbmate", None);
    assert_eq!(p.client().count("schema_migrations"), 3);
    if let Some(dbmate) = program("dbmate", ".ci/tools/dbmate.sh") {
        let url = format!("{}?sslmode=disable", p.url);
        let dbmate = |args: &[&str]| {
            let mut cmd = Command::new(&dbmate);
            cmd.args(["--url", &url, "--migrations-dir", "migrations", "--no-dump-schema"]);
            run_program(cmd.args(args).current_dir(p.path()))
        };
        let status = dbmate(&["status", "--exit-code"]);
        assert!(status.contains("Applied: 3") && status.contains("Pending: 0"), "{status}");
        dbmate(&["up"]);
        assert_eq!(p.client().count("schema_migrations"), 3, "dbmate ran nothing again");
    }

    let p = migrated("goose", "in_step_goose", None);
    let rows: Vec<(i64, bool)> = p
        .client()
        .query("select version_id, is_applied from goose_db_version order by id", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(rows, [(0, true), (1, true), (2, true), (3, true)], "goose's row 0 first");
    // The rollback's check before COMMIT compares goose's history too.
    p.run(&["rollback", "--steps", "1"])
        .expect_code(0)
        .expect_output("settings and privileges, and goose's history (goose_db_version)");
    assert_eq!(p.client().count("goose_db_version"), 3, "goose's own down takes its row out");

    let p = migrated("golang-migrate", "in_step_golang", None);
    let row = p.client().query_one("select version, dirty from schema_migrations", &[]).unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, bool>(1)), (3, false));

    let p = migrated("flyway", "in_step_flyway", None);
    let mut db = p.client();
    let rows: Vec<(i32, Option<String>, String)> = db
        .query("select installed_rank, version, script from flyway_schema_history order by 1", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let expected = [
        (1, Some("1"), "V1__users.sql"),
        (2, Some("1.1"), "V1.1__users_email_idx.sql"),
        (3, Some("2"), "V2__posts.sql"),
        (4, None, "R__recent_users.sql"),
    ]
    .map(|(r, v, s)| (r, v.map(str::to_string), s.to_string()));
    assert_eq!(rows, expected);
    let named: Vec<String> = db
        .query(
            "select conname::text from pg_constraint where conrelid = 'flyway_schema_history'::regclass and contype <> 'n'
              union all select relname::text from pg_class c join pg_index i on i.indexrelid = c.oid
              where i.indrelid = 'flyway_schema_history'::regclass order by 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        named,
        ["flyway_schema_history_pk", "flyway_schema_history_pk", "flyway_schema_history_s_idx"]
    );
}

#[test]
fn no_table_is_made_in_the_middle_of_a_history_nor_where_the_project_says_not_to() {
    // Backstop migrated the first one before the table was kept: made now,
    // goose's table would lack 1, which goose would run again.
    let p = project_from("goose", "in_step_middle");
    p.run(&["migrate", "--to", "00001"]).expect_code(0);
    p.client().batch_execute("drop table goose_db_version").unwrap();
    p.run(&["migrate"]).expect_code(0);
    assert!(!p.client().exists("goose_db_version"));

    let p = project_from("dbmate", "in_step_existing");
    p.write(
        "backstop.toml",
        "[database]\nurl = \"${DATABASE_URL}\"\n\n[migrations]\ndir = \"migrations\"\ntool_history = \"existing\"\n",
    );
    p.run(&["migrate"]).expect_code(0);
    assert!(!p.client().exists("schema_migrations"));
    p.write(
        "backstop.toml",
        "[database]\nurl = \"${DATABASE_URL}\"\n\n[migrations]\ndir = \"migrations\"\ntool_history = \"sometimes\"\n",
    );
    p.run(&["status"])
        .expect_code(2)
        .expect_output("backstop.toml:6:16: unknown variant `sometimes`");
}

/// A rollback whose tool's history would still record the reverted
/// migration (a rule on the table swallows the delete, as a trigger or a
/// policy could) is refused by its own check before COMMIT, nothing
/// changed: dbmate would never run the migration again.
#[test]
fn a_rollback_that_leaves_the_tools_row_is_refused_by_its_check() {
    let p = migrated("dbmate", "in_step_rule", None);
    let mut db = p.client();
    db.batch_execute("create rule keep_rows as on delete to schema_migrations do instead nothing")
        .unwrap();
    p.run(&["rollback", "--steps", "1"]).expect_code(1).expect_output(
        "dbmate's history (schema_migrations) still records 20200103000000 as applied",
    );
    assert!(db.exists("posts"), "the rollback was rolled back");
    assert_eq!(db.applied().len(), 3);
}
