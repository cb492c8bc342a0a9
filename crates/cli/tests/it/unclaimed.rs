//! Never a false all-clear: a folder whose `.sql` files no layout reads is
//! refused by name, never read as an empty history.

use crate::common::{DbExt, Project};

/// A Graphile Migrate project (`.gmrc`, `migrations/committed/000001.sql`
/// … with `--! Previous:` headers, `migrations/current.sql`). Before:
/// `status` said 0 migrations, `check` GO, and `migrate` "the database is
/// up to date" after creating the `backstop` schema on it.
#[test]
fn sql_files_no_layout_reads_are_refused_and_nothing_is_created() {
    let p = Project::bare("unclaimed_graphile");
    p.write(".gmrc", "{\n  \"connectionString\": \"postgres:///app\"\n}\n");
    let mut previous = "-".to_string();
    for (i, table) in ["users", "posts", "tags"].iter().enumerate() {
        let hash = format!("sha1:{i:040}");
        p.write(
            &format!("migrations/committed/{:06}.sql", i + 1),
            &format!(
                "--! Previous: {previous}\n--! Hash: {hash}\n\ncreate table {table} (id int);\n"
            ),
        );
        previous = hash;
    }
    p.write("migrations/current.sql", "-- Enter migration here\n");
    for args in [&["status"][..], &["check"], &["migrate"]] {
        p.run(args)
            .expect_code(2)
            .expect_output("holds 4 .sql file(s) no layout Backstop reads")
            .expect_output("000001.sql")
            .expect_output("they look like Graphile Migrate's")
            .expect_output("nothing was run or created");
    }
    assert!(!p.client().history_schema_exists(), "migrate created the backstop schema");
    // An empty folder, as `init` leaves it, is still an empty history.
    let q = Project::new("unclaimed_empty");
    q.run(&["status"]).expect_code(0);
}
