//! A Supabase project run where the platform is not: on a database without
//! the platform's roles, `auth.uid()` or the realtime publication, `check`
//! names each use with its file:line as NO-GO and `migrate`'s check gate
//! refuses before anything runs, instead of a raw PostgreSQL error half-way
//! through. Roles belong to a cluster, and other tests create Supabase's on
//! the shared one: this module has a cluster of its own.

use std::sync::LazyLock;

use backstop_core::pg::cluster::Cluster;

use crate::common::{copy_dir, fixture_path, DbExt, Project};
use crate::up_only::supabase_platform;

/// A cluster no test gives the platform's roles.
static BARE: LazyLock<Cluster> =
    LazyLock::new(|| Cluster::start().expect("a second cluster starts"));

#[test]
fn supabase_migrations_on_a_database_without_the_platform_name_what_is_missing() {
    let p = Project::on(&BARE, "platform_missing");
    let dir = p.path().join("migrations");
    std::fs::remove_dir_all(&dir).unwrap();
    copy_dir(&fixture_path("layouts/supabase"), &dir);
    p.write(
        "migrations/supabase/migrations/20240104000000_realtime.sql",
        "alter publication supabase_realtime add table public.posts;\n",
    );

    let run = p.run(&["check", "--format", "json"]);
    run.expect_code(1);
    let json = run.json();
    let platform: Vec<(String, u64, String)> = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "BS702")
        .map(|f| {
            assert_eq!(f["severity"], "critical", "{f}");
            let file = f["file"].as_str().unwrap().rsplit('/').next().unwrap().to_string();
            (file, f["line"].as_u64().unwrap(), f["message"].as_str().unwrap().to_string())
        })
        .collect();
    let has = |file: &str, line: u64, what: &str| {
        platform.iter().any(|(f, l, m)| f == file && *l == line && m.contains(what))
    };
    assert!(
        has(
            "20240103000000_posts.sql",
            4,
            "function auth.uid(), which this database does not have"
        ),
        "{platform:#?}"
    );
    assert!(has("20240103000000_posts.sql", 12, "role authenticated"), "{platform:#?}");
    assert!(has("20240103000000_posts.sql", 16, "role anon"), "{platform:#?}");
    assert!(
        has("20240104000000_realtime.sql", 1, "publication supabase_realtime"),
        "{platform:#?}"
    );

    p.run(&["migrate"]).expect_code(1).expect_output("NO-GO").expect_output(
        "20240103000000_posts.sql:4: uses the Supabase platform's function auth.uid()",
    );
    assert!(!BARE.connect(&p.db).unwrap().exists("public.users"), "nothing ran");

    // With the platform's objects in place, the same folder checks and runs.
    supabase_platform(&mut BARE.connect(&p.db).unwrap());
    let json = p.run(&["check", "--format", "json"]).json();
    assert!(!json["findings"].as_array().unwrap().iter().any(|f| f["code"] == "BS702"), "{json}");
    p.run(&["migrate"]).expect_code(0);
    assert!(BARE.connect(&p.db).unwrap().exists("public.posts"));
}

#[test]
fn a_reference_to_auth_users_is_a_table_and_a_projects_own_auth_table_is_no_platform_use() {
    // On the shared cluster: this test creates no role, and the roles of
    // this module's own cluster must stay missing for the test above.
    let p = Project::new("platform_table_refs");
    p.migration(
        "20240101000000_profiles",
        "create table profiles (id uuid primary key references auth.users(id), name text);\n",
        None,
    );
    p.migration(
        "20240102000000_own_auth",
        "create table auth_log (email text);\ncreate table auth (email text, user_id int);\n\
         create view auth_emails as select auth.email from auth where auth.user_id > 0;\n",
        None,
    );
    // Without auth.users: NO-GO, and what is missing is a table.
    let json = p.run(&["check", "--format", "json"]).json();
    let platform: Vec<&serde_json::Value> =
        json["findings"].as_array().unwrap().iter().filter(|f| f["code"] == "BS702").collect();
    assert_eq!(platform.len(), 1, "{platform:#?}");
    let message = platform[0]["message"].as_str().unwrap();
    assert!(message.contains("table auth.users, which this database does not have"), "{message}");
    assert!(!message.contains("function"), "{message}");

    // With the platform's auth.users: no finding at all, and GO.
    p.client()
        .batch_execute(
            "create schema auth; create table auth.users (id uuid primary key, email text)",
        )
        .unwrap();
    let run = p.run(&["check", "--format", "json"]);
    let json = run.json();
    assert!(!json["findings"].as_array().unwrap().iter().any(|f| f["code"] == "BS702"), "{json}");
    run.expect_code(0);
    p.run(&["migrate"]).expect_code(0);
}
