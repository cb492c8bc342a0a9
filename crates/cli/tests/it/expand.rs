//! `backstop migrate --expand`, `--contract` and `rollback` of an open
//! expand through the real binary: the new shape is served beside the old
//! one, each writes and sees the other's rows, rollback keeps every row,
//! contract makes the new shape the real one, and a statement with no
//! expand form is refused with its place, changing nothing.

use std::time::Duration;

use crate::common::{DbExt, Project};

const NEW: &str = "public_20240102000000";

fn columns(p: &Project) -> Vec<String> {
    p.client().texts(
        "select attname::text from pg_attribute where attrelid = 'users'::regclass \
         and attnum > 0 and not attisdropped order by attnum",
    )
}

#[test]
fn expand_serves_both_shapes_rollback_keeps_every_row_and_contract_makes_it_real() {
    let p = Project::new("expand_cli");
    p.migration(
        "20240101000000_users",
        "CREATE TABLE users (id bigserial PRIMARY KEY, name text NOT NULL, score int);\n\
         INSERT INTO users (name, score) VALUES ('ann', 7);\n",
        None,
    );
    p.run(&["migrate"]).expect_code(0);
    p.migration(
        "20240102000000_profile",
        "ALTER TABLE users RENAME COLUMN name TO full_name;\nALTER TABLE users ADD COLUMN bio text;\n\
         ALTER TABLE users ALTER COLUMN score TYPE bigint;\n",
        None,
    );

    p.run(&["check"])
        .expect_output("expand: the pending migrations can be served")
        .expect_output("BS302");
    // The rename and the type change are not true of the expand: set apart.
    p.run(&["migrate", "--expand"])
        .expect_code(0)
        .expect_output("set apart, not true of this step")
        .expect_output("BS206, BS302")
        .expect_output(NEW)
        .expect_output("users.score shown as bigint (was integer) through twin _backstop_new_score")
        .expect_output("backfilled users.score: 1 rows");
    assert!(p.client().exists(&format!("{NEW}.users")), "the new shape is served");
    p.run(&["status"])
        .expect_code(0)
        .expect_output(&format!("expand in progress: 20240102000000 served in schema {NEW}"));
    let shown: serde_json::Value =
        serde_json::from_str(&p.run(&["status", "--format", "json"]).stdout).unwrap();
    assert_eq!(shown["expand"]["new_schema"], NEW);
    assert_eq!(shown["expand"]["versions"], serde_json::json!(["20240102000000"]));
    // The shape flag: off (every instance on the old shape) until enabled or ramped.
    let flags = p.run(&["flags", "list", "--format", "json"]).expect_code(0).json();
    let flag = flags.as_array().unwrap().iter().find(|f| f["key"] == "shape_public");
    let flag = flag.unwrap_or_else(|| panic!("no shape flag: {flags}"));
    assert_eq!(flag["release"], NEW, "{flag}");
    assert_eq!(flag["variants"]["new"], format!("{NEW}, public"), "{flag}");
    p.run(&["flags", "enable", "shape_public", "--percent", "10", "--reason", "a tenth"])
        .expect_code(0);
    let mut new_app = p.client();
    new_app.batch_execute(&format!("SET search_path = {NEW}, public")).unwrap();
    new_app
        .execute("INSERT INTO users (full_name, bio, score) VALUES ('bea', 'hi', 8)", &[])
        .unwrap();
    p.client().execute("INSERT INTO users (name) VALUES ('cal')", &[]).unwrap();
    let seen = new_app.query("SELECT full_name FROM users ORDER BY id", &[]).unwrap();
    let seen: Vec<String> = seen.iter().map(|r| r.get(0)).collect();
    assert_eq!(seen, ["ann", "bea", "cal"], "the new shape sees the old shape's rows");
    assert_eq!(p.client().texts("SELECT name FROM users ORDER BY id"), ["ann", "bea", "cal"]);
    assert_eq!(p.client().applied(), ["20240101000000"], "nothing applied before contract");
    // Run again on the same migrations, the expand finishes its backfill (a
    // stopped one resumes) and changes nothing else.
    p.run(&["migrate", "--expand"]).expect_code(0).expect_output("what runs after it is done");
    assert_eq!(p.client().count("backstop.expands"), 1);
    drop(new_app);

    p.run(&["rollback"]).expect_code(0).expect_output("every row kept");
    let flags = p.run(&["flags", "list", "--format", "json"]).expect_code(0).json();
    assert!(!flags.to_string().contains("shape_public"), "the rollback deletes the flag: {flags}");
    assert_eq!(p.client().count("users"), 3);
    assert_eq!(columns(&p), ["id", "name", "score"], "the added columns go with the expand");
    assert!(!p.client().exists(&format!("{NEW}.users")));

    p.run(&["migrate", "--expand"]).expect_code(0);
    p.run(&["migrate", "--contract"]).expect_code(0);
    assert_eq!(columns(&p), ["id", "full_name", "bio", "score"]);
    assert_eq!(p.client().count("users"), 3);
    let scores = p.client().texts(
        "SELECT coalesce(score::text, '-') || ' ' || pg_typeof(score) FROM users ORDER BY id",
    );
    assert_eq!(scores, ["7 bigint", "8 bigint", "- bigint"], "every value kept, the new type real");
    assert_eq!(p.client().applied(), ["20240101000000", "20240102000000"]);
    assert!(!p.client().exists(&format!("{NEW}.users")));
}

/// Method C while an expand is open: the open expand is the release, and
/// it is dropped first, as `rollback` drops it, with no down run after it
/// (the migration before it stays). Before, method C was refused: its
/// downs' plan met the open expand.
#[test]
fn method_c_drops_an_open_expand_first_as_every_rollback_does() {
    let p = Project::new("expand_method_c");
    p.migration(
        "20240101000000_users",
        "CREATE TABLE users (id bigserial PRIMARY KEY, name text NOT NULL);\n\
         INSERT INTO users (name) VALUES ('ann');\n",
        None,
    );
    p.run(&["migrate"]).expect_code(0);
    p.migration("20240102000000_bio", "ALTER TABLE users ADD COLUMN bio text;\n", None);
    p.run(&["migrate", "--expand"]).expect_code(0).expect_output(NEW);
    // Its plan says what it does: the one reading of what C reverts.
    p.run(&["respond", "method", "C"])
        .expect_code(0)
        .expect_output("drop the open expand of 20240102000000");
    // A value written through the new shape is exported before it goes,
    // and the outcome's `kept` says so, as for the downs' exports.
    p.client().execute(&format!("UPDATE {NEW}.users SET bio = 'hello'"), &[]).unwrap();
    let run =
        p.run(&["respond", "method", "C", "--yes", "--reason", "bad release", "--format", "json"]);
    let out = run.expect_code(0).json();
    let steps = out["steps"].to_string();
    assert!(steps.contains("open expand dropped") && steps.contains("no down ran"), "{out:#}");
    let kept = &out["kept"][0];
    assert_eq!((&kept["column"], &kept["rows"]), (&"bio".into(), &1.into()), "{out:#}");
    assert!(!p.client().exists(&format!("{NEW}.users")), "the new shape is gone");
    assert_eq!(columns(&p), ["id", "name"], "the added column went with the expand");
    assert_eq!(p.client().applied(), ["20240101000000"], "the migration before it stays");
    assert_eq!(p.client().count("users"), 1, "every row kept");
    let status = p.run(&["status"]);
    assert!(!status.expect_code(0).all().contains("expand in progress"), "{}", status.all());
}

#[test]
fn a_statement_with_no_expand_form_is_refused_at_its_place_and_nothing_changes() {
    let p = Project::new("expand_refused");
    p.migration("20240101000000_users", "CREATE TABLE users (id int PRIMARY KEY);\n", None);
    p.run(&["migrate"]).expect_code(0);
    p.migration(
        "20240102000000_drop",
        "ALTER TABLE users ADD COLUMN note text;\nDROP TABLE users;\n",
        None,
    );
    p.run(&["check"]).expect_output("expand: not possible for the pending migrations: ");
    let run = p.run(&["migrate", "--expand"]);
    run.expect_code(2).expect_output("up.sql:2");
    assert_eq!(columns(&p), ["id"]);
    assert!(!p.client().exists(&format!("{NEW}.users")));
    assert_eq!(p.client().applied(), ["20240101000000"]);
}

#[test]
fn expand_and_contract_pass_the_gates_migrate_has() {
    let p = Project::new("expand_gates");
    p.config(&format!("{}\n[rehearse]\nrequired = true\n", crate::common::DEFAULT_CONFIG));
    p.migration("20240101000000_users", "CREATE TABLE users (id int PRIMARY KEY);\n", None);
    p.run(&["migrate", "--skip-rehearsal", "the first table"]).expect_code(0);
    p.migration("20240102000000_note", "ALTER TABLE users ADD COLUMN note text;\n", None);

    // No rehearsal: the rehearsal gate refuses, audited, and nothing changes.
    p.run(&["migrate", "--expand"]).expect_code(1).expect_output("run `backstop rehearse` first");
    assert_eq!(columns(&p), ["id"]);
    assert!(!p.client().exists(&format!("{NEW}.users")));
    let refused = p.client().texts(
        "select kind from backstop.events where outcome = 'refused' order by id desc limit 1",
    );
    assert_eq!(refused, ["expand"]);

    // Waived: the check ran, a backup was taken, both recorded with the expand.
    p.run(&["migrate", "--expand", "--skip-rehearsal", "tried on staging"])
        .expect_code(0)
        .expect_output("check: GO")
        .expect_output(" taken: ");
    let gates = p.client().texts(
        "select details->'gates'->'rehearsal'->>'waived' || ' ' || (details->>'backup_id' is not null)::text \
         from backstop.events where kind = 'expand' and outcome = 'ok'",
    );
    assert_eq!(gates, ["tried on staging true"]);

    // The contract takes its own backup and stamps it on the migrations it records.
    p.run(&["migrate", "--contract", "--skip-rehearsal", "tried on staging"])
        .expect_code(0)
        .expect_output(" taken: ");
    let stamped = p.client().texts(
        "select version from backstop.applied where backup_id is not null and version = '20240102000000'",
    );
    assert_eq!(stamped, ["20240102000000"]);
    assert_eq!(columns(&p), ["id", "note"]);
}

#[test]
fn a_contract_records_the_migrations_in_the_projects_own_tool_too() {
    // A Supabase CLI project as a new user has it: no backstop.toml.
    let p = Project::bare("expand_supabase");
    p.write(
        "supabase/migrations/20240101000000_users.sql",
        "create table users (id int primary key);\n",
    );
    p.run(&["migrate"]).expect_code(0);
    p.write(
        "supabase/migrations/20240102000000_note.sql",
        "alter table users add column note text;\n",
    );
    p.run(&["migrate", "--expand"]).expect_code(0);
    let tool = "select version from supabase_migrations.schema_migrations order by 1";
    assert_eq!(p.client().texts(tool), ["20240101000000"], "an expand applies nothing yet");
    p.run(&["migrate", "--contract"]).expect_code(0);
    assert_eq!(p.client().texts(tool), ["20240101000000", "20240102000000"]);
}

#[test]
fn rehearse_expand_plays_the_expand_its_rollback_and_its_contract_on_a_copy() {
    let p = Project::new("expand_rehearse");
    p.migration(
        "20240101000000_users",
        "CREATE TABLE users (id bigserial PRIMARY KEY, name text NOT NULL, score int, code text);\n\
         INSERT INTO users (name, score, code) SELECT 'u' || n, n, n::text FROM generate_series(1, 50) n;\n",
        None,
    );
    p.run(&["migrate"]).expect_code(0);
    p.migration(
        "20240102000000_profile",
        "ALTER TABLE users RENAME COLUMN name TO full_name;\n\
         ALTER TABLE users ALTER COLUMN score TYPE bigint;\n\
         ALTER TABLE users ALTER COLUMN code TYPE integer USING code::integer;\n\
         ALTER TABLE users ADD COLUMN seen_at timestamptz NOT NULL DEFAULT clock_timestamp();\n",
        None,
    );
    let expand = |run: &crate::common::Run| -> serde_json::Value {
        let out: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        let found = out["scenarios"].as_array().unwrap().iter().find(|s| s["name"] == "expand");
        found.cloned().unwrap_or_else(|| panic!("no expand scenario: {}", run.stdout))
    };
    let run = p.run(&["rehearse", "--expand", "--format", "json"]);
    run.expect_code(0);
    let played = expand(&run);
    assert_eq!(played["ok"], true, "{played}");
    let detail = played["detail"].as_str().unwrap();
    assert!(detail.contains("rolled back to the copy's start exactly"), "{detail}");
    assert!(detail.contains("contracted to the schema a plain migrate gives"), "{detail}");
    assert!(!p.client().exists(&format!("{NEW}.users")), "the rehearsal ran on a copy");

    // A value the new type cannot take fails it on the copy, by row, before production sees it.
    p.client().execute("UPDATE users SET code = 'x7' WHERE id = 7", &[]).unwrap();
    let run = p.run(&["rehearse", "--expand", "--format", "json"]);
    assert_ne!(run.code, Some(0));
    let played = expand(&run);
    assert_eq!(played["ok"], false);
    let detail = played["detail"].as_str().unwrap();
    assert!(detail.contains("users.code: row (7)"), "{detail}");
}

#[test]
fn an_expand_killed_mid_backfill_resumes_where_it_stopped() {
    let p = Project::new("expand_killed");
    p.migration(
        "20240101000000_events",
        "CREATE TABLE events (id bigserial PRIMARY KEY, value int);\n",
        None,
    );
    p.run(&["migrate"]).expect_code(0);
    p.client()
        .batch_execute("INSERT INTO events (value) SELECT n FROM generate_series(1, 200000) n")
        .unwrap();
    p.migration(
        "20240102000000_wide",
        "ALTER TABLE events ALTER COLUMN value TYPE bigint;\n",
        None,
    );
    let mut child = p
        .std_cmd(&["migrate", "--expand", "--no-backup", "a test"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut db = p.client();
    let filled = |db: &mut postgres::Client| -> i64 {
        db.query_one("select count(*) from events where _backstop_new_value is not null", &[])
            .map(|r| r.get(0))
            .unwrap_or(0)
    };
    crate::common::poll_until("the backfill is under way", 600, Duration::from_millis(20), || {
        filled(&mut db) > 0
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let halfway = filled(&mut db);
    assert!(halfway > 0 && halfway < 200_000, "killed mid-backfill: {halfway} filled");

    // The expand stays open and served; running it again finishes the backfill.
    p.run(&["status"]).expect_output("expand in progress");
    let run = p.run(&["migrate", "--expand", "--no-backup", "a test", "--format", "json"]);
    run.expect_code(0);
    let done = run.json();
    assert_eq!(done["resumed"], true, "{done}");
    let rows = done["backfill"][0]["rows"].as_u64().unwrap();
    assert!(rows < 200_000 && rows as i64 >= 200_000 - halfway, "{rows} left after {halfway}");
    assert_eq!(filled(&mut db), 200_000, "every row has its twin");
    p.run(&["migrate", "--contract", "--no-backup", "a test"]).expect_code(0);
    assert_eq!(p.client().count("events"), 200_000);
}

#[test]
fn a_prisma_migration_with_quoted_mixed_case_names_expands_and_contracts_with_no_config() {
    // A Prisma project as a new user has it: no backstop.toml.
    let p = Project::bare("expand_prisma");
    p.write("prisma/migrations/migration_lock.toml", "provider = \"postgresql\"\n");
    p.write(
        "prisma/migrations/20240101000000_init/migration.sql",
        "-- CreateTable\nCREATE TABLE \"User\" (\n    \"id\" SERIAL NOT NULL,\n    \"fullName\" TEXT NOT NULL,\n    \
         \"loginCount\" INTEGER NOT NULL DEFAULT 0,\n    CONSTRAINT \"User_pkey\" PRIMARY KEY (\"id\")\n);\n\n\
         -- CreateTable\nCREATE TABLE \"Post\" (\n    \"id\" SERIAL NOT NULL,\n    \"authorId\" INTEGER NOT NULL,\n    \
         CONSTRAINT \"Post_pkey\" PRIMARY KEY (\"id\")\n);\n",
    );
    p.run(&["migrate"]).expect_code(0);
    p.client()
        .batch_execute(
            "INSERT INTO \"User\" (\"fullName\", \"loginCount\") VALUES ('Ann', 3), ('Bob', 5);
             INSERT INTO \"Post\" (\"authorId\") VALUES (1), (2);",
        )
        .unwrap();
    p.write(
        "prisma/migrations/20240102000000_profile/migration.sql",
        "-- AlterTable\nALTER TABLE \"User\" ADD COLUMN \"bio\" TEXT,\nADD COLUMN \"seenAt\" TIMESTAMP(3);\n\n\
         -- AlterTable\nALTER TABLE \"User\" ALTER COLUMN \"loginCount\" SET DATA TYPE BIGINT;\n\n\
         -- AddForeignKey\nALTER TABLE \"Post\" ADD CONSTRAINT \"Post_authorId_fkey\" FOREIGN KEY (\"authorId\") \
         REFERENCES \"User\"(\"id\") ON DELETE RESTRICT ON UPDATE CASCADE;\n",
    );
    p.run(&["migrate", "--expand"]).expect_code(0).expect_output("User.loginCount shown as");
    let mut new_app = p.client();
    new_app.batch_execute(&format!("SET search_path = {NEW}, public")).unwrap();
    // A value the old shape's NOT NULL column cannot hold fails, saying why.
    let insert =
        "INSERT INTO \"User\" (\"fullName\", \"loginCount\", \"bio\") VALUES ('Cat', $1, 'hi')";
    let e = new_app.execute(insert, &[&9_000_000_000i64]).unwrap_err();
    assert!(format!("{e:?}").contains("no value in the old shape's NOT NULL column"), "{e:?}");
    new_app.execute(insert, &[&9i64]).unwrap();
    let e = new_app.execute("INSERT INTO \"Post\" (\"authorId\") VALUES (99)", &[]).unwrap_err();
    assert!(
        format!("{e:?}").contains("Post_authorId_fkey"),
        "the key holds through the view: {e:?}"
    );
    p.client()
        .execute("UPDATE \"User\" SET \"loginCount\" = 4 WHERE \"fullName\" = 'Ann'", &[])
        .unwrap();
    let seen: i64 = new_app
        .query_one("SELECT \"loginCount\" FROM \"User\" WHERE \"fullName\" = 'Ann'", &[])
        .unwrap()
        .get(0);
    assert_eq!(seen, 4, "the old shape's write reaches the new shape's twin");

    p.run(&["migrate", "--contract"]).expect_code(0);
    let counts = p
        .client()
        .texts("SELECT \"fullName\" || ':' || \"loginCount\" FROM \"User\" ORDER BY \"id\"");
    assert_eq!(counts, ["Ann:4", "Bob:5", "Cat:9"]);
    let prisma = p.client().texts(
        "SELECT migration_name FROM _prisma_migrations WHERE finished_at IS NOT NULL ORDER BY 1",
    );
    assert_eq!(prisma, ["20240101000000_init", "20240102000000_profile"]);
}

#[test]
fn a_database_owner_that_is_not_a_superuser_expands_backfills_and_contracts() {
    let (url, _, _) = crate::common::owned_database("expanded");
    let p = Project::new("expand_owner");
    p.config("[database]\nurl = \"${DATABASE_URL}\"\n\n[migrations]\ndir = \"migrations\"\n");
    p.migration(
        "20240101000000_users",
        "CREATE TABLE users (id bigserial PRIMARY KEY, name text NOT NULL, score int);\n\
         INSERT INTO users (name, score) SELECT 'u' || n, n FROM generate_series(1, 300) n;\n",
        None,
    );
    p.run_with_url(&url, &["migrate"]).expect_code(0);
    p.migration(
        "20240102000000_profile",
        "ALTER TABLE users RENAME COLUMN name TO full_name;\n\
         ALTER TABLE users ALTER COLUMN score TYPE bigint;\n\
         ALTER TABLE users ADD COLUMN slug text;\n\
         UPDATE users SET slug = lower(full_name);\n\
         ALTER TABLE users ALTER COLUMN slug SET NOT NULL;\n",
        None,
    );
    p.run_with_url(&url, &["migrate", "--expand"]).expect_code(0).expect_output("backfilled");
    let mut owner = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    owner.batch_execute("INSERT INTO users (name, score) VALUES ('Zed', 7)").unwrap();
    p.run_with_url(&url, &["migrate", "--contract"]).expect_code(0);
    let rows = owner
        .query("SELECT slug || ':' || score FROM users WHERE id IN (1, 301) ORDER BY id", &[])
        .unwrap();
    let rows: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(rows, ["u1:1", "zed:7"], "the backfill and the old shape's row, both filled");
    let not_null: bool = owner
        .query_one(
            "SELECT attnotnull FROM pg_attribute WHERE attrelid = 'users'::regclass AND attname = 'slug'",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(not_null);
}
