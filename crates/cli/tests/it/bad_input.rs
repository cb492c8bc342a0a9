//! Bad input gets a clear error with the right exit code (2 usage or
//! config, 3 environment), changes nothing in the database, and never
//! shows a password.

use crate::common::{DbExt, Project, Run, CLUSTER, DEFAULT_CONFIG};

/// A project with one valid pending migration, so that any change to the
/// database would show.
fn project(label: &str) -> Project {
    let p = Project::new(label);
    p.migration("1_a", "CREATE TABLE a (id int);\n", Some("DROP TABLE a;\n"));
    p
}

#[track_caller]
fn assert_untouched(p: &Project, case: &str) {
    let mut db = p.client();
    assert_eq!(db.user_relations(), Vec::<String>::new(), "{case}: the database changed");
    assert!(!db.history_schema_exists(), "{case}: the backstop schema was created");
}

#[test]
fn config_errors_exit_2_and_name_file_and_line() {
    let p = project("config_errors");
    let with_migrations = |extra: &str| {
        format!("[database]\nurl = \"${{DATABASE_URL}}\"\n\n[migrations]\ndir = \"migrations\"\n{extra}")
    };

    p.config(&with_migrations("lock_timout = \"5s\"\n"));
    p.run(&["migrate"])
        .expect_code(2)
        .expect_output("backstop.toml:6:")
        .expect_output("lock_timout");
    assert_untouched(&p, "unknown key");

    p.config(&with_migrations("protected_tables = \"users\"\n"));
    p.run(&["migrate"]).expect_code(2).expect_output("backstop.toml:6:");
    assert_untouched(&p, "wrong type");

    p.config(&with_migrations("statement_timeout = \"15 parsecs\"\n"));
    p.run(&["status"]).expect_code(2).expect_output("backstop.toml:6:").expect_output("duration");
    assert_untouched(&p, "bad duration");

    p.config("[database\nurl = \"${DATABASE_URL}\"\n");
    p.run(&["migrate"]).expect_code(2).expect_output("backstop.toml:1:");
    assert_untouched(&p, "malformed TOML");

    p.config(DEFAULT_CONFIG);
    p.run(&["--config", "missing.toml", "migrate"])
        .expect_code(2)
        .expect_output("missing.toml not found");
    assert_untouched(&p, "--config of a missing file");

    // `${VAR}` in the URL with VAR unset, and nothing overriding it.
    let run =
        Run::from_output(p.cmd().env_remove("DATABASE_URL").args(["migrate"]).output().unwrap());
    run.expect_code(2).expect_output("backstop.toml:2:").expect_output("DATABASE_URL");
    assert_untouched(&p, "unset variable in the URL");

    // `${VAR}` filled in from the environment when no override is given.
    p.config("[database]\nurl = \"${BACKSTOP_TEST_DB_URL}\"\n");
    let run = Run::from_output(
        p.cmd()
            .env_remove("DATABASE_URL")
            .env("BACKSTOP_TEST_DB_URL", &p.url)
            .args(["status"])
            .output()
            .unwrap(),
    );
    run.expect_code(0).expect_output("pending (1)");

    // The same config under another name, passed explicitly, works.
    p.write("conf/other.toml", "[migrations]\ndir = \"../migrations\"\n");
    p.run(&["--config", "conf/other.toml", "status"]).expect_code(0).expect_output("1_a");
}

#[test]
fn migration_folder_errors_exit_2_before_the_database_is_touched() {
    let p = project("source_errors");
    let reset = |p: &Project| {
        let dir = p.path().join("migrations");
        if dir.exists() {
            std::fs::remove_dir_all(dir).unwrap();
        }
        p.migration("1_a", "CREATE TABLE a (id int);\n", None);
    };

    std::fs::remove_dir_all(p.path().join("migrations")).unwrap();
    p.run(&["migrate"])
        .expect_code(2)
        .expect_output("migrations dir")
        .expect_output("does not exist");
    assert_untouched(&p, "missing migrations dir");

    reset(&p);
    p.migration("1_b", "CREATE TABLE b (id int);\n", None);
    p.run(&["migrate"])
        .expect_code(2)
        .expect_output("duplicate migration version")
        .expect_output("1_b/up.sql");
    assert_untouched(&p, "duplicate versions");

    reset(&p);
    p.write("migrations/2_b.up.sql", "CREATE TABLE b (id int);\n");
    p.run(&["migrate"])
        .expect_code(2)
        .expect_output("mixes two layouts")
        .expect_output("2_b.up.sql");
    assert_untouched(&p, "mixed layouts");

    reset(&p);
    p.migration("2_b", "CREATE TABLE b (id int);\n\nCREATE TABEL c (id int);\n", None);
    let run = p.run(&["migrate"]);
    run.expect_code(2).expect_output("2_b/up.sql:3:8: syntax error at or near \"TABEL\"");
    assert_untouched(&p, "syntax error");

    reset(&p);
    p.migration("2_b", "BEGIN;\nCREATE TABLE b (id int);\nCOMMIT;\n", None);
    p.run(&["migrate"]).expect_code(2).expect_output("2_b/up.sql:1:").expect_output("BEGIN");
    assert_untouched(&p, "transaction control");

    reset(&p);
    p.migration("2_b", "-- to be written\n", None);
    p.run(&["migrate"]).expect_code(2).expect_output("empty migration");
    assert_untouched(&p, "empty migration");

    reset(&p);
    std::fs::create_dir_all(p.path().join("migrations/2_b")).unwrap();
    std::fs::write(p.path().join("migrations/2_b/up.sql"), b"SELECT '\xff';\n").unwrap();
    p.run(&["migrate"]).expect_code(2).expect_output("not valid UTF-8");
    assert_untouched(&p, "non-UTF-8 file");

    reset(&p);
    p.run(&["migrate", "--to", "999"]).expect_code(2).expect_output("999");
    assert_untouched(&p, "migrate --to an unknown version");

    // And with the folder fixed, the same project migrates.
    p.run(&["migrate"]).expect_code(0);
    assert!(p.client().exists("a"));
}

#[test]
fn rollback_to_an_unknown_version_exits_2_and_reverts_nothing() {
    let p = project("rollback_unknown");
    p.run(&["migrate"]).expect_code(0);
    p.run(&["rollback", "--to", "42"]).expect_code(2).expect_output("42");
    let mut db = p.client();
    assert!(db.exists("a"));
    assert_eq!(db.applied(), ["1"]);
}

/// Connection strings that cannot work, the exit code each calls for, and
/// the secret that must never be printed.
fn bad_connections(db: &str) -> Vec<(&'static str, String, i32, Vec<&'static str>)> {
    let port = CLUSTER.port();
    vec![
        (
            "malformed URL",
            "postgres://postgres:S3cretBadUrl@127.0.0.1:notaport/x".to_string(),
            2,
            vec!["S3cretBadUrl"],
        ),
        (
            "unreachable server",
            "postgres://postgres:S3cretUnreachable@127.0.0.1:1/x".to_string(),
            3,
            vec!["S3cretUnreachable"],
        ),
        (
            "wrong password",
            format!("postgres://postgres:Wr0ng%40S3cret@127.0.0.1:{port}/{db}"),
            3,
            vec!["Wr0ng%40S3cret", "Wr0ng@S3cret", "S3cret"],
        ),
        (
            "wrong password in a keyword string",
            format!("host=127.0.0.1 port={port} user=postgres password=KwS3cret dbname={db}"),
            3,
            vec!["KwS3cret"],
        ),
    ]
}

#[test]
fn bad_urls_exit_2_unreachable_and_wrong_passwords_exit_3_and_no_password_is_printed() {
    let p = project("connections");
    for (case, url, code, secrets) in bad_connections(&p.db) {
        for args in [
            &["status"][..],
            &["migrate"],
            &["migrate", "--format", "json"],
            &["rollback"],
            &["repair", "1"],
        ] {
            let run = p.run_with_url(&url, args);
            let what = format!("{case}, backstop {}", args.join(" "));
            assert_eq!(run.code, Some(code), "{what}\n{}", run.all());
            for secret in &secrets {
                assert!(!run.all().contains(secret), "{what} printed {secret:?}:\n{}", run.all());
            }
            if code == 3 {
                assert!(run.stderr.contains("could not connect"), "{what}: {}", run.stderr);
            }
        }
        // The flag leaks no more than the variable does.
        let run = Run::from_output(
            p.cmd()
                .env_remove("DATABASE_URL")
                .args(["migrate", "--database-url", &url])
                .output()
                .unwrap(),
        );
        assert_eq!(run.code, Some(code), "{case}, --database-url\n{}", run.all());
        for secret in &secrets {
            assert!(!run.all().contains(secret), "{case} --database-url printed {secret:?}");
        }
    }
    // A password written into backstop.toml itself is not shown either.
    p.config(&format!(
        "[database]\nurl = \"postgres://postgres:TomlS3cret@127.0.0.1:{}/{}\"\n",
        CLUSTER.port(),
        p.db
    ));
    let run =
        Run::from_output(p.cmd().env_remove("DATABASE_URL").args(["migrate"]).output().unwrap());
    run.expect_code(3).expect_output("password authentication failed");
    assert!(!run.all().contains("TomlS3cret"), "{}", run.all());

    let run = p.run_with_url(&bad_connections(&p.db)[2].1, &["status"]);
    run.expect_output("password authentication failed").expect_output("postgres:****@");
    assert_untouched(&p, "bad connections");
}

/// Regression: `mysql://…` was read as a `key=value` string and answered
/// "unexpected EOF". Another database's URL is named by its scheme, with
/// the fix, exit 2, and its password never shown.
#[test]
fn another_databases_url_is_refused_naming_its_scheme() {
    let p = project("other_scheme");
    for url in ["mysql://app:MyS3cret@db.example:3306/shop", "postgress://app:MyS3cret@h/shop"] {
        let run = p.run_with_url(url, &["status"]);
        run.expect_code(2).expect_output("postgres://user:password@host:port/database");
        let scheme = url.split("://").next().unwrap();
        run.expect_output(&format!("{scheme}://"));
        assert!(!run.all().contains("unexpected EOF"), "{}", run.all());
        assert!(!run.all().contains("MyS3cret"), "{}", run.all());
    }
    // A keyword string is still a connection string.
    let url: postgres::Config = p.url.parse().unwrap();
    let password = String::from_utf8(url.get_password().unwrap_or_default().to_vec()).unwrap();
    let keywords = format!(
        "host=127.0.0.1 port={} user={} password={password} dbname={}",
        CLUSTER.port(),
        url.get_user().unwrap_or("postgres"),
        p.db
    );
    p.run_with_url(&keywords, &["status"]).expect_code(0);
    assert_untouched(&p, "another database's URL");
}

/// Regression: `backstop --database-url URL status` was refused: the
/// option was known only after the subcommand.
#[test]
fn the_database_url_may_come_before_the_subcommand() {
    let p = project("url_first");
    let run = Run::from_output(
        p.cmd()
            .env_remove("DATABASE_URL")
            .args(["--database-url", &p.url, "status"])
            .output()
            .unwrap(),
    );
    run.expect_code(0).expect_output("1_a");
    // Before the subcommand it wins over the environment, as after it.
    let run =
        p.run_with_url("postgres://nobody@127.0.0.1:1/x", &["--database-url", &p.url, "status"]);
    run.expect_code(0).expect_output("1_a");
    assert_untouched(&p, "--database-url before the subcommand");
}

/// Regression: `--role ""` went on with a blank role and answered with
/// hints that named nobody. A blank name is a usage error that says what
/// to write instead.
#[test]
fn a_blank_role_or_release_name_is_refused_with_the_fix() {
    let p = project("blank_names");
    for (args, says) in [
        (&["unfreeze", "--role", ""][..], "backstop status"),
        (&["unfreeze", "--role", "  "], "backstop status"),
        (&["freeze", "--role", "", "--reason", "x"], "backstop status"),
        (&["rollback", "--method", "A", "--release", "", "--yes"], "backstop flags list"),
        (&["flags", "kill", "--release", "", "--reason", "x"], "backstop flags list"),
    ] {
        let run = p.run(args);
        let what = args.join(" ");
        assert_eq!(run.code, Some(2), "{what}\n{}", run.all());
        assert!(run.stderr.contains(says), "{what}: {}", run.stderr);
        assert!(run.stderr.contains("blank"), "{what}: {}", run.stderr);
    }
    assert_untouched(&p, "blank names");
}

/// Every command asked for JSON prints one JSON document even when it
/// fails before it starts (here: nothing listens at the URL's port), with
/// the error, its exit code unchanged, and no password.
#[test]
fn a_command_asked_for_json_prints_one_json_document_when_it_fails() {
    let p = project("json_errors");
    let refused = "postgres://app:hunter2secret@127.0.0.1:1/app";
    for args in [
        &["status"][..],
        &["check"],
        &["migrate"],
        &["rollback"],
        &["rehearse"],
        &["downs"],
        &["compare", "--to", refused],
        &["backup", "create"],
        &["verify"],
        &["clear", "--yes"],
    ] {
        let mut with = args.to_vec();
        with.extend(["--format", "json"]);
        let run = p.run_with_url(refused, &with);
        let case = args.join(" ");
        let code = run.code.unwrap_or_else(|| panic!("{case}: killed"));
        assert_ne!(code, 0, "{case}: {run:?}");
        let json = run.json();
        assert_eq!(json["error"]["exit_code"], code, "{case}: {json:#}");
        let message = json["error"]["message"].as_str().unwrap_or_default();
        assert!(!message.is_empty(), "{case}: {json:#}");
        assert!(!run.all().contains("hunter2secret"), "{case} shows the password: {run:?}");
    }
    // A usage error too, and a successful command still prints its own
    // document only.
    let run = p.run(&["status", "--format", "json", "--no-such-flag"]);
    run.expect_code(2);
    assert_eq!(run.json()["error"]["exit_code"], 2);
    let run = p.run(&["check", "--offline", "--format", "json"]);
    assert!(run.json().get("error").is_none(), "{run:?}");
}
