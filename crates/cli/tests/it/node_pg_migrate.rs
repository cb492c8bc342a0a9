//! node-pg-migrate's SQL migrations, read as node-pg-migrate (from npm)
//! reads them: one file per migration, `-- Up Migration` and `-- Down
//! Migration` sections, its `pgmigrations` table kept in step. Before,
//! such a folder was read as sqlx's and both sections ran as the up: the
//! deploy created the table and dropped it again, and said ✓ applied.

use std::process::Command;

use crate::common::{program, run_program, DbExt, Project};

const USERS: &str =
    "-- Up Migration\ncreate table users (id bigint primary key, email text not null);\n\n\
                     -- Down Migration\ndrop table users;\n";
const POSTS: &str = "--  up migration\ncreate table posts (id bigint primary key, author bigint references users);\n\
                     create index posts_author on posts (author);\n\
                     -- Down Migration\ndrop table posts;\n";

/// A project as `node-pg-migrate create --migration-file-language sql`
/// leaves it: package.json naming the tool, SQL files in `migrations/`.
fn project(label: &str) -> Project {
    let p = Project::bare(label);
    p.write(
        "package.json",
        "{\n  \"name\": \"shop\",\n  \"scripts\": { \"migrate\": \"node-pg-migrate\" },\n  \
         \"devDependencies\": { \"node-pg-migrate\": \"^8.0.0\", \"pg\": \"^8.11.0\" }\n}\n",
    );
    p.write("migrations/1700000000000_users.sql", USERS);
    p.write("migrations/1700000100000_posts.sql", POSTS);
    p
}

fn names(p: &Project) -> Vec<String> {
    p.client().texts("select name::text from public.pgmigrations order by run_on, id")
}

#[test]
fn sections_run_as_node_pg_migrate_runs_them_and_its_table_follows() {
    let p = project("npm_sections");
    p.run(&["status"]).expect_code(0).expect_output("node-pg-migrate");
    p.run(&["migrate"]).expect_code(0);
    let mut db = p.client();
    assert!(db.exists("public.users") && db.exists("public.posts"), "the ups ran, not the downs");
    assert_eq!(db.applied().len(), 2);
    assert_eq!(names(&p), ["1700000000000_users", "1700000100000_posts"]);
    // The down section is the down: proved at the deploy, run by rollback.
    p.run(&["rollback", "--yes"]).expect_code(0).expect_output("✓ the schema is the one before");
    assert!(!p.client().exists("public.posts") && p.client().exists("public.users"));
    assert_eq!(names(&p), ["1700000000000_users"]);
    // A down section with no up marker before it: node-pg-migrate would
    // run the whole file, down and all, as the up. Refused, nothing runs.
    p.write(
        "migrations/1700000200000_tags.sql",
        "create table tags (id int);\n-- Down Migration\ndrop table tags;\n",
    );
    p.run(&["migrate"])
        .expect_code(2)
        .expect_output("1700000200000_tags.sql:2")
        .expect_output("add `-- Up Migration`");
    assert!(!p.client().exists("public.tags") && !p.client().exists("public.posts"));
}

/// Beside node-pg-migrate itself on the same database: what Backstop ran
/// node-pg-migrate does not run again, and what node-pg-migrate ran
/// Backstop adopts.
#[test]
fn node_pg_migrate_and_backstop_take_each_others_runs() {
    let Some(tool) = program("node-pg-migrate", ".ci/tools/node-pg-migrate.sh") else { return };
    let p = project("npm_beside");
    let tool_up = |p: &Project| {
        run_program(
            Command::new(&tool)
                .args(["up", "-m", "migrations"])
                .current_dir(p.path())
                .env("DATABASE_URL", &p.url),
        )
    };
    p.run(&["migrate"]).expect_code(0);
    let said = tool_up(&p);
    assert!(said.contains("No migrations to run"), "{said}");
    assert_eq!(names(&p), ["1700000000000_users", "1700000100000_posts"]);
    // The tool runs a third one itself; Backstop takes it over.
    p.write(
        "migrations/1700000200000_tags.sql",
        "-- Up Migration\ncreate table tags (id int primary key);\n-- Down Migration\ndrop table tags;\n",
    );
    tool_up(&p);
    assert!(p.client().exists("public.tags"));
    p.run(&["adopt", "--yes"]).expect_code(0);
    assert_eq!(p.client().applied().len(), 3);
    p.run(&["migrate"]).expect_code(0).expect_output("nothing to migrate");
}

/// The table a script names (`--migrations-table`, `--migrations-schema`)
/// is the one kept in step, as node-pg-migrate run with the script's
/// flags reads it. Before, Backstop wrote `pgmigrations` and the tool ran
/// every migration again.
#[test]
fn the_history_table_a_script_names_is_the_one_kept_in_step() {
    let Some(tool) = program("node-pg-migrate", ".ci/tools/node-pg-migrate.sh") else { return };
    let p = project("npm_named_table");
    let flags =
        ["-m", "migrations", "--migrations-table", "npm_history", "--migrations-schema", "ops"];
    p.write(
        "package.json",
        &format!(
            "{{\n  \"name\": \"shop\",\n  \"scripts\": {{\n    \"test\": \"vitest\",\n    \
             \"migrate\": \"node-pg-migrate {}\"\n  }},\n  \
             \"devDependencies\": {{ \"node-pg-migrate\": \"^8.0.0\" }}\n}}\n",
            flags.join(" ")
        ),
    );
    kept_in_ops_npm_history(&p, &tool, &flags);
}

/// Backstop's migrate writes `ops.npm_history`, not the default table,
/// and node-pg-migrate run `up` with `args` finds nothing to run.
fn kept_in_ops_npm_history(p: &Project, tool: &std::path::Path, args: &[&str]) {
    p.client().batch_execute("create schema ops").unwrap();
    p.run(&["migrate"]).expect_code(0);
    let rows = p.client().texts("select name::text from ops.npm_history order by run_on, id");
    assert_eq!(rows, ["1700000000000_users", "1700000100000_posts"]);
    assert!(!p.client().exists("public.pgmigrations"), "the default table is not written");
    let said = run_program(
        Command::new(tool).arg("up").args(args).current_dir(p.path()).env("DATABASE_URL", &p.url),
    );
    assert!(said.contains("No migrations to run"), "{said}");
}

/// The table a config file names (`-f`, as node-pg-migrate reads it over
/// the script's flags) is the one kept in step. Before, only a script's
/// flags were read: Backstop wrote `pgmigrations` and the tool, run with
/// its config file, ran every migration again.
#[test]
fn the_history_table_a_config_file_names_is_the_one_kept_in_step() {
    let Some(tool) = program("node-pg-migrate", ".ci/tools/node-pg-migrate.sh") else { return };
    let p = project("npm_config_file");
    p.write(
        "package.json",
        "{\n  \"name\": \"shop\",\n  \"scripts\": { \"migrate\": \"node-pg-migrate -f db/migrate.json\" },\n  \
         \"devDependencies\": { \"node-pg-migrate\": \"^8.0.0\" }\n}\n",
    );
    p.write(
        "db/migrate.json",
        "{\n  \"migrations-table\": \"npm_history\",\n  \"migrations-schema\": \"ops\"\n}\n",
    );
    kept_in_ops_npm_history(&p, &tool, &["-f", "db/migrate.json"]);
}
