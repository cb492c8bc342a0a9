//! A migration certain to fail is NO-GO before anything runs: `check`
//! and `migrate`'s gate run the pending migrations on a copy of the
//! database's schema first, and a statement that fails there is a
//! critical BS405 with the server's own error, file and line.

use crate::common::{DbExt, Project};
use serde_json::Value;

fn bs405(json: &Value) -> Vec<&Value> {
    json["findings"].as_array().unwrap().iter().filter(|f| f["code"] == "BS405").collect()
}

#[test]
fn a_statement_that_fails_on_the_copy_is_no_go_before_the_backup() {
    let p = Project::new("certain_fk");
    p.migration(
        "1_users",
        "CREATE TABLE users (id bigint PRIMARY KEY);\n",
        Some("DROP TABLE users;\n"),
    );
    p.run(&["migrate"]).expect_code(0);
    p.migration(
        "2_posts",
        "CREATE TABLE posts (id bigint PRIMARY KEY);\n\
         ALTER TABLE posts ADD COLUMN author_uuid uuid REFERENCES users (uuid);\n",
        Some("DROP TABLE posts;\n"),
    );
    let run = p.run(&["check", "--format", "json"]);
    run.expect_code(1);
    let json = run.json();
    assert_eq!(json["verdict"], "NO-GO", "{json:#}");
    let found = bs405(&json);
    assert_eq!(found.len(), 1, "{json:#}");
    assert_eq!(found[0]["severity"], "critical");
    assert!(found[0]["file"].as_str().unwrap().ends_with("2_posts/up.sql"), "{json:#}");
    assert_eq!(found[0]["line"], 2, "{json:#}");
    let message = found[0]["message"].as_str().unwrap();
    assert!(
        message.contains("2_posts fails on a copy of the database, at statement 2 of 2:"),
        "{message}"
    );
    assert!(message.contains("\"uuid\""), "the server's own words: {message}");
    // Nothing ran on the database itself.
    assert!(!p.client().exists("public.posts"));
    // migrate refuses at its check gate, before any backup is taken.
    let refused = p.run(&["migrate"]);
    refused.expect_code(1).expect_output("BS405");
    assert!(!refused.all().contains("backup "), "no backup before the refusal: {}", refused.all());
    assert!(!p.client().exists("public.posts"));
    // Fixed, it runs on the copy, and the deploy reuses what the copy proved.
    p.migration(
        "2_posts",
        "CREATE TABLE posts (id bigint PRIMARY KEY, author_id bigint REFERENCES users (id));\n",
        Some("DROP TABLE posts;\n"),
    );
    p.run(&["check"]).expect_code(0).expect_output(
        "ran the 1 pending migration(s) on a copy of the database's schema: every statement runs",
    );
    p.run(&["migrate"]).expect_code(0).expect_output("reused the kept proof of 1 down(s)");
}

#[test]
fn a_table_the_database_has_or_the_run_made_is_not_created_again() {
    let p = Project::new("certain_twice");
    p.client().execute("CREATE TABLE users (id int)", &[]).unwrap();
    p.migration(
        "1_users",
        "CREATE TABLE users (id bigint PRIMARY KEY);\n",
        Some("DROP TABLE users;\n"),
    );
    let json = p.run(&["check", "--format", "json"]).json();
    let found = bs405(&json);
    assert_eq!(found.len(), 1, "{json:#}");
    assert!(found[0]["message"].as_str().unwrap().contains("already exists"), "{json:#}");
    // Offline, the history's own model finds a table its run creates twice.
    p.migration("2_users_again", "CREATE TABLE users (id bigint, name text);\n", None);
    let json = p.run(&["check", "--offline", "--format", "json"]).json();
    let found = bs405(&json);
    assert_eq!(found.len(), 1, "{json:#}");
    assert!(found[0]["file"].as_str().unwrap().ends_with("2_users_again/up.sql"), "{json:#}");
}
