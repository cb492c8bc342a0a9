//! Never a false all-clear: a folder whose `.sql` files no layout reads is
//! refused by name, never read as an empty history.

use crate::common::{DbExt, Project};

/// A folder of a hand-rolled runner's files (`001-users.sql`: no layout
/// names them so). Before: `status` said 0 migrations, `check` GO, and
/// `migrate` "the database is up to date" after creating the `backstop`
/// schema on it. (Graphile Migrate's folders, the first case found, are
/// now read: tests/it/graphile.rs.)
#[test]
fn sql_files_no_layout_reads_are_refused_and_nothing_is_created() {
    let p = Project::bare("unclaimed_runner");
    for (i, table) in ["users", "posts", "tags"].iter().enumerate() {
        p.write(
            &format!("migrations/{:03}-{table}.sql", i + 1),
            &format!("create table {table} (id int);\n"),
        );
    }
    p.write("migrations/README.md", "Run these in order with psql.\n");
    for args in [&["status"][..], &["check"], &["migrate"]] {
        p.run(args)
            .expect_code(2)
            .expect_output("holds 3 migration file(s) no layout Backstop reads")
            .expect_output("001-users.sql")
            .expect_output("nothing was run or created");
    }
    assert!(!p.client().history_schema_exists(), "migrate created the backstop schema");
    // An empty folder, as `init` leaves it, is still an empty history.
    let q = Project::new("unclaimed_empty");
    q.run(&["status"]).expect_code(0);
}

/// Another tool's migrations in its own language, where `dir` names
/// them, are refused naming the tool, never taken for an empty history:
/// a Rails project's `db/migrate/*.rb`, and a Liquibase changelog of
/// formatted SQL. Before: the Rails folder gave exit 0 "nothing to
/// migrate: the database is up to date", and Liquibase went unnamed.
#[test]
fn another_tools_migrations_where_dir_points_are_refused_by_the_tools_name() {
    let p = Project::bare("unclaimed_rails");
    p.write(
        "db/migrate/20240101000000_create_users.rb",
        "class CreateUsers < ActiveRecord::Migration[7.1]\n  def change\n    create_table :users\n  end\nend\n",
    );
    p.write("backstop.toml", "[migrations]\ndir = \"db/migrate\"\n");
    for args in [&["status"][..], &["check"], &["migrate"]] {
        p.run(args)
            .expect_code(2)
            .expect_output("holds 1 migration file(s) no layout Backstop reads")
            .expect_output("Rails's Active Record migrations (Ruby)");
    }
    assert!(!p.client().history_schema_exists(), "migrate created the backstop schema");
    let q = Project::bare("unclaimed_liquibase");
    q.write(
        "db/changelog/001-users.sql",
        "--liquibase formatted sql\n\n--changeset alice:1\ncreate table users (id int);\n--rollback drop table users;\n",
    );
    q.write("backstop.toml", "[migrations]\ndir = \"db/changelog\"\n");
    q.run(&["migrate"]).expect_code(2).expect_output("Liquibase's changelog");
    assert!(!q.client().history_schema_exists());
}
