//! `backstop check`, `backstop explain` and the check gate of `migrate`,
//! run as the real binary: static findings, live facts from a throwaway
//! cluster, the four output formats on the demo's v2 migration, and what
//! `migrate` refuses, accepts and audits.

use crate::common::{event, DbExt, Project, Run, DEFAULT_CONFIG};
use serde_json::Value;

const V1: &str = include_str!("../../src/commands/demo/v1.sql");
const V2_UP: &str = include_str!("../../src/commands/demo/v2_up.sql");
const V2_DOWN: &str = include_str!("../../src/commands/demo/v2_down.sql");

const PROTECTED: &str = r#"[database]
url = "${DATABASE_URL}"

[migrations]
dir = "migrations"
protected_tables = ["users", "ai_usage_tracking", "usage_alerts"]
"#;

/// A project holding the demo's v2 migration (with its down) and the
/// demo's protected tables.
fn demo_v2(label: &str) -> Project {
    let p = Project::new(label);
    p.config(PROTECTED);
    p.migration("20260107120000_v2", V2_UP, Some(V2_DOWN));
    p
}

fn codes(json: &Value) -> Vec<String> {
    json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_string())
        .collect()
}

fn finding<'a>(json: &'a Value, code: &str) -> &'a Value {
    json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == code)
        .unwrap_or_else(|| panic!("no {code} in {json:#}"))
}

// ---------------------------------------------------------------- explain

#[test]
fn explain_lists_every_rule_one_per_line_starting_with_its_code() {
    let p = Project::new("explain_list");
    let run = p.run(&["explain"]);
    run.expect_code(0);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(lines.len() >= 30, "{}", run.stdout);
    for line in &lines {
        let code = line.split_whitespace().next().unwrap();
        let (letters, digits) = code.split_at(code.find(|c: char| c.is_ascii_digit()).unwrap());
        assert!(!letters.is_empty() && letters.chars().all(|c| c.is_ascii_uppercase()), "{line}");
        assert!(!digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()), "{line}");
    }
    for code in ["BS100", "BS101", "BS201", "BS501", "BS601", "BS701"] {
        assert!(lines.iter().any(|l| l.starts_with(code)), "{code} missing");
    }
}

#[test]
fn explain_code_prints_docs_and_both_examples_and_unknown_codes_are_usage_errors() {
    let p = Project::new("explain_one");
    let run = p.run(&["explain", "BS201"]);
    run.expect_code(0)
        .expect_output("index-without-concurrently")
        .expect_output("What it finds")
        .expect_output("Why it hurts")
        .expect_output("Instead")
        .expect_output("CREATE INDEX IF NOT EXISTS users_email_idx ON users (email);")
        .expect_output("CREATE INDEX CONCURRENTLY");
    p.run(&["explain", "drop-table"]).expect_code(0).expect_output("BS101 drop-table");
    p.run(&["explain", "BS999"]).expect_code(2).expect_output("unknown rule");
}

// ------------------------------------------------------ snapshots (static)

fn snapshot_of(format: &str) -> String {
    let p = demo_v2(&format!("snap_{format}"));
    let run = p.run(&["check", "--offline", "--format", format, "migrations/20260107120000_v2"]);
    run.expect_code(0);
    run.stdout
}

#[test]
fn text_output_of_the_demo_v2_migration() {
    insta::assert_snapshot!("check_text_v2", snapshot_of("text"));
}

#[test]
fn markdown_output_of_the_demo_v2_migration() {
    insta::assert_snapshot!("check_markdown_v2", snapshot_of("markdown"));
}

#[test]
fn json_output_of_the_demo_v2_migration_keeps_the_contract() {
    let out = snapshot_of("json");
    let json: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["verdict"], "CONDITIONAL GO");
    for f in json["findings"].as_array().unwrap() {
        for key in ["code", "severity", "file", "line", "message"] {
            assert!(!f[key].is_null(), "finding lacks {key}: {f}");
        }
    }
    insta::assert_snapshot!("check_json_v2", out);
}

#[test]
fn sarif_output_of_the_demo_v2_migration_is_sarif_2_1_0() {
    let out = snapshot_of("sarif");
    let sarif: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    let run = &sarif["runs"][0];
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    for result in run["results"].as_array().unwrap() {
        let index = result["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[index]["id"], result["ruleId"]);
        assert!(["error", "warning", "note"].contains(&result["level"].as_str().unwrap()));
        let loc = &result["locations"][0]["physicalLocation"];
        let uri = loc["artifactLocation"]["uri"].as_str().unwrap();
        assert!(!uri.starts_with('/') && !uri.contains('\\'), "{uri}");
        assert!(loc["region"]["startLine"].as_u64().unwrap() >= 1);
        assert!(!result["message"]["text"].as_str().unwrap().is_empty());
    }
    insta::assert_snapshot!("check_sarif_v2", out);
}

// ------------------------------------------------------- static behaviour

#[test]
fn without_paths_and_without_a_database_every_migration_in_the_folder_is_checked() {
    let p = demo_v2("all_offline");
    p.migration("20260105090000_v1", V1, None);
    let run = p.run(&["check", "--offline", "--format", "json"]);
    run.expect_code(0);
    let json = run.json();
    assert_eq!(json["files"].as_array().unwrap().len(), 2);
    // v1 has no down.
    assert!(codes(&json).contains(&"BS403".to_string()), "{json:#}");
}

#[test]
fn a_folder_checked_offline_runs_from_its_first_migration_on_an_empty_database() {
    let p = Project::new("offline_from_empty");
    p.config("[migrations]\ndir = \"migrations\"\n");
    p.migration("20240101000000_make", "DROP TABLE IF EXISTS items CASCADE;\nCREATE TABLE items (id int PRIMARY KEY, name text);\n", None);
    p.migration(
        "20240102000000_grow",
        "CREATE INDEX items_name ON items (name);\nALTER TABLE items ALTER COLUMN id TYPE bigint;\nCREATE TABLE work (id int);\n",
        None,
    );
    p.migration("20240103000000_tidy", "DROP TABLE work;\n", None);
    let json = p.run(&["check", "--offline", "--format", "json"]).json();
    let found = codes(&json);
    for code in ["BS101", "BS201", "BS107"] {
        assert!(
            !found.contains(&code.to_string()),
            "{code} on an empty database's history: {json:#}"
        );
    }
    // The same file named alone is judged without the history before it.
    let json = p
        .run(&["check", "--offline", "--format", "json", "migrations/20240102000000_grow/up.sql"])
        .json();
    assert!(codes(&json).contains(&"BS201".to_string()), "{json:#}");
}

#[test]
fn fail_on_lowers_the_bar_and_config_sets_it() {
    let p = demo_v2("fail_on");
    let path = "migrations/20260107120000_v2";
    p.run(&["check", "--offline", path]).expect_code(0).expect_output("CONDITIONAL GO");
    p.run(&["check", "--offline", "--fail-on", "high", path]).expect_code(1);
    p.config(&format!("{PROTECTED}\n[check]\nfail_on = \"medium\"\n"));
    p.run(&["check", "--offline", path]).expect_code(1);
    p.run(&["check", "--offline", "--fail-on", "critical", path]).expect_code(0);
}

#[test]
fn a_protected_table_drop_is_no_go_and_cannot_be_ignored_with_a_comment() {
    let p = demo_v2("no_go_static");
    p.write(
        "drop_users.sql",
        "-- backstop:ignore BS100 we really mean it\nDROP TABLE users CASCADE;\n",
    );
    let run = p.run(&["check", "--offline", "drop_users.sql"]);
    run.expect_code(1)
        .expect_output("critical[BS100]: DROP TABLE removes protected table users")
        .expect_output("drop_users.sql:2:12")
        .expect_output("cannot be ignored with a comment")
        .expect_output("verdict: NO-GO")
        .expect_output("--accept-risk BS100");
}

#[test]
fn ignores_with_a_reason_suppress_and_are_listed_apart() {
    let p = Project::new("ignores");
    p.write(
        "m.sql",
        "-- backstop:ignore BS101 archived to meetings.csv on 2026-01-05\nDROP TABLE IF EXISTS meetings;\n\
         -- backstop:ignore BS205 nothing to suppress here\nSELECT 1;\n",
    );
    let json = p.run(&["check", "--offline", "--format", "json", "m.sql"]).json();
    assert_eq!(json["verdict"], "GO");
    assert_eq!(codes(&json), ["BS001"]);
    assert_eq!(json["suppressed"][0]["code"], "BS101");
    assert_eq!(json["suppressed"][0]["suppressed"], "archived to meetings.csv on 2026-01-05");
}

#[test]
fn syntax_errors_are_findings_and_missing_paths_usage_errors_with_the_place() {
    let p = Project::new("check_bad_input");
    p.write("bad.sql", "SELECT 1;\nCREATE TABEL t (id int);\n");
    p.run(&["check", "--offline", "bad.sql"])
        .expect_code(1)
        .expect_output("critical[BS003]: syntax error at or near \"TABEL\"")
        .expect_output("--> bad.sql:2:8")
        .expect_output("NO-GO");
    p.run(&["check", "--offline", "nope.sql"])
        .expect_code(2)
        .expect_output("nope.sql: no such file");
    p.write("latin1.sql", "");
    std::fs::write(p.path().join("latin1.sql"), b"SELECT '\xe9';").unwrap();
    p.run(&["check", "--offline", "latin1.sql"]).expect_code(2).expect_output("not valid UTF-8");
    p.config("[check]\nfail_on = \"sometimes\"\n");
    p.run(&["check", "--offline", "bad.sql"]).expect_code(2).expect_output("backstop.toml:2:");
}

#[test]
fn begin_and_concurrently_in_a_migration_are_findings_not_load_errors() {
    let p = Project::new("check_tx");
    p.migration(
        "1_tx",
        "BEGIN;\nCREATE TABLE IF NOT EXISTS t (id int);\nCOMMIT;\n",
        Some("DROP TABLE t;"),
    );
    p.migration(
        "2_idx",
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS t_id ON t (id);\n",
        Some("DROP INDEX t_id;"),
    );
    let run = p.run(&["check", "--offline", "--format", "json"]);
    run.expect_code(1);
    let json = run.json();
    assert_eq!(json["verdict"], "NO-GO");
    let found = codes(&json);
    assert!(
        found.contains(&"BS402".to_string()) && found.contains(&"BS202".to_string()),
        "{found:?}"
    );
}

// ------------------------------------------------------------ live facts

/// The demo's v1 schema and data in the project's database.
fn with_v1(p: &Project) -> postgres::Client {
    let mut db = p.client();
    db.batch_execute(V1).unwrap();
    db
}

#[test]
fn live_check_counts_rows_of_dropped_tables_and_only_checks_pending_migrations() {
    let p = demo_v2("live_rows");
    let mut db = with_v1(&p);
    db.batch_execute("CREATE TABLE empty_one (id int); CREATE TABLE big (id int);").unwrap();
    p.write(
        "drops.sql",
        "DROP TABLE IF EXISTS empty_one;\nDROP TABLE IF EXISTS never_was;\nTRUNCATE messages;\n",
    );
    let json = p.run(&["check", "--format", "json", "drops.sql"]).json();
    let truncate = finding(&json, "BS104");
    assert_eq!(truncate["severity"], "high");
    assert_eq!(truncate["facts"][0], "messages holds 3000 row(s)");
    assert_eq!(truncate["mitigation"], "Export or archive the 3000 row(s) of messages first");
    // An empty table is a note (rows may arrive before the migration
    // runs); a table that is not there, dropped IF EXISTS, is no finding.
    let drops: Vec<&Value> =
        json["findings"].as_array().unwrap().iter().filter(|f| f["code"] == "BS101").collect();
    assert_eq!(drops.len(), 1, "{drops:#?}");
    assert_eq!(drops[0]["severity"], "low");
    assert!(drops[0]["facts"][0].as_str().unwrap().starts_with("empty_one is empty today"));
    assert!(json["live"]["database"].as_str().unwrap().starts_with("postgres"));

    // Without paths, only what is pending: v2 is, and its drops lose rows.
    let run = p.run(&["check"]);
    run.expect_code(0)
        .expect_output("live: meetings holds 300 row(s)")
        .expect_output("live: messages holds 3000 row(s)")
        .expect_output("checked 1 file(s)");
}

#[test]
fn live_check_makes_an_unavailable_extension_no_go_with_a_hint() {
    let p = Project::new("live_extension");
    p.write("ext.sql", "CREATE EXTENSION IF NOT EXISTS vector;\n");
    let run = p.run(&["check", "ext.sql"]);
    run.expect_code(1)
        .expect_output("critical[BS701]")
        .expect_output("vector is not in pg_available_extensions")
        .expect_output("pgvector")
        .expect_output("verdict: NO-GO");
    // plpgsql is always there, and installed: IF NOT EXISTS makes it no
    // finding (check_cleared has the rest).
    p.write("ext.sql", "CREATE EXTENSION IF NOT EXISTS plpgsql;\n");
    let json = p.run(&["check", "--format", "json", "ext.sql"]).json();
    assert_eq!(json["verdict"], "GO");
    assert!(!codes(&json).contains(&"BS701".to_string()), "{json:#}");
}

#[test]
fn live_check_finds_a_policy_name_already_taken_on_the_table() {
    let p = Project::new("live_policy");
    let mut db = p.client();
    db.batch_execute(
        "CREATE TABLE clients (id int, user_id int);
         ALTER TABLE clients ENABLE ROW LEVEL SECURITY;
         CREATE POLICY clients_own ON clients USING (user_id = 1);",
    )
    .unwrap();
    p.write("p.sql", "CREATE POLICY clients_own ON clients FOR SELECT USING (user_id = 2);\n");
    let run = p.run(&["check", "p.sql"]);
    run.expect_code(1)
        .expect_output("critical[BS502]: policy clients_own already exists on clients")
        .expect_output("live: pg_policy already has clients_own on clients");
    // The usual idiom drops it first, and a new name is fine.
    p.write(
        "p.sql",
        "DROP POLICY IF EXISTS clients_own ON clients;\nCREATE POLICY clients_own ON clients USING (user_id = 2);\nCREATE POLICY clients_select_own ON clients FOR SELECT USING (true);\n",
    );
    let json = p.run(&["check", "--format", "json", "p.sql"]).json();
    assert!(!codes(&json).contains(&"BS502".to_string()), "{json:#}");
}

#[test]
fn live_check_raises_a_not_null_column_on_a_table_with_rows_and_lowers_locks_on_small_tables() {
    let p = Project::new("live_not_null");
    let mut db = p.client();
    db.batch_execute(
        "CREATE TABLE users (id int PRIMARY KEY, email text);
         INSERT INTO users SELECT g, 'u' || g FROM generate_series(1, 50) g;
         CREATE TABLE empty_users (id int);",
    )
    .unwrap();
    p.write(
        "m.sql",
        "ALTER TABLE users ADD COLUMN plan text NOT NULL;\nALTER TABLE empty_users ADD COLUMN plan text NOT NULL;\nCREATE INDEX IF NOT EXISTS users_email_idx ON users (email);\n",
    );
    let json = p.run(&["check", "--format", "json", "m.sql"]).json();
    assert_eq!(json["verdict"], "NO-GO");
    let not_null: Vec<&Value> =
        json["findings"].as_array().unwrap().iter().filter(|f| f["code"] == "BS404").collect();
    assert_eq!(not_null[0]["severity"], "critical");
    assert!(not_null[0]["facts"][0].as_str().unwrap().contains("holds 50 row(s)"));
    assert_eq!(not_null[1]["severity"], "low");
    let index = finding(&json, "BS201");
    assert_eq!(index["severity"], "low");
    assert!(index["facts"][0].as_str().unwrap().contains("is small"), "{index}");
}

#[test]
fn live_check_reports_a_missing_protected_table_and_a_covered_foreign_key_is_dropped() {
    let p = Project::new("live_protected");
    p.config(PROTECTED);
    let mut db = p.client();
    db.batch_execute(
        "CREATE TABLE users (id int PRIMARY KEY); CREATE TABLE usage_alerts (id int);
         CREATE TABLE orders (id int, user_id int); CREATE INDEX orders_user_idx ON orders (user_id);",
    )
    .unwrap();
    p.write(
        "m.sql",
        "ALTER TABLE orders ADD CONSTRAINT orders_user_fk FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;\n",
    );
    let run = p.run(&["check", "m.sql"]);
    run.expect_code(1)
        .expect_output(
            "critical[BS100]: protected table ai_usage_tracking does not exist on the server",
        )
        .expect_output("backstop.toml:6:1");
    assert!(
        !run.stdout.contains("BS601"),
        "the existing index covers the foreign key:\n{}",
        run.stdout
    );
}

#[test]
fn an_unreachable_database_is_exit_3_unless_the_check_is_offline() {
    let p = demo_v2("unreachable");
    let url = "postgres://nobody:secret@127.0.0.1:1/none";
    let run = p.run_with_url(url, &["check", "migrations/20260107120000_v2"]);
    run.expect_code(3).expect_output("could not connect").expect_output("--offline");
    assert!(!run.all().contains("secret"), "{}", run.all());
    let run = p.run_with_url(url, &["check", "--offline", "migrations/20260107120000_v2"]);
    run.expect_code(0).expect_output("static analysis only");
}

// ------------------------------------------------------------- the gate

#[test]
fn migrate_refuses_no_go_audits_the_refusal_and_changes_nothing() {
    let p = Project::new("gate_refuses");
    p.write("migrations/1_ext/up.sql", "CREATE TABLE IF NOT EXISTS side_effect (id int);\nCREATE EXTENSION IF NOT EXISTS vector;\n");
    let run = p.run(&["migrate"]);
    run.expect_code(1)
        .expect_output("check gate refused the migration: NO-GO, 1 critical finding(s):\n  BS701 ")
        .expect_output("--accept-risk BS701");
    let mut db = p.client();
    assert!(!db.exists("side_effect"));
    assert!(db.applied().is_empty());
    assert_eq!(db.events(), [event("migrate", "refused", &[])]);
}

#[test]
fn accepted_risks_pass_the_gate_and_are_audited_and_the_guard_still_stands() {
    let p = Project::new("gate_accepts");
    p.config(&PROTECTED.replace(", \"ai_usage_tracking\", \"usage_alerts\"", ""));
    let mut db = p.client();
    db.batch_execute(
        "CREATE TABLE users (id int PRIMARY KEY); INSERT INTO users SELECT generate_series(1, 5);",
    )
    .unwrap();
    // Deletes nothing: the guard lets it through once the risk is accepted.
    p.migration("1_cleanup", "DELETE FROM users WHERE id < 0;\n", Some("SELECT 1;"));
    p.run(&["migrate"]).expect_code(1).expect_output("NO-GO, 1 critical finding(s):\n  BS100 ");
    // A reason without a waiver to give it to is a usage error.
    p.run(&["migrate", "--reason", "cleanup"]).expect_code(2).expect_output("--accept-risk");
    let run = p.run(&["migrate", "--accept-risk", "BS100", "--reason", "deletes no row: id < 0"]);
    run.expect_code(0)
        .expect_output("risk accepted with --accept-risk")
        .expect_output("applied 1_cleanup");
    assert!(!run.stderr.contains("say why"), "asked for a reason it was given: {}", run.stderr);
    let details: Value = db
        .query_one(
            "select details from backstop.events where kind = 'migrate' and outcome = 'ok'",
            &[],
        )
        .unwrap()
        .get(0);
    let check = &details["gates"]["check"];
    assert_eq!(check["verdict"], "NO-GO");
    assert_eq!(check["accepted_risks"][0]["code"], "BS100");
    assert!(check["accepted_risks"][0]["message"].as_str().unwrap().contains("users"));
    assert_eq!(check["accepted_because"], "deletes no row: id < 0");

    // Accepting does not switch the guard off: deleting rows is still rolled back.
    p.migration("2_purge", "DELETE FROM users WHERE id > 3;\n", Some("SELECT 1;"));
    // The old form, with no reason, still answers and says what to add.
    p.run(&["migrate", "--accept-risk", "BS100"])
        .expect_code(1)
        .expect_output("say why the risks are accepted with --reason")
        .expect_output("protected table users had 2 row(s) deleted");
    assert_eq!(db.count("users"), 5);
    p.run(&["migrate", "--accept-risk", "BS9"]).expect_code(2).expect_output("unknown rule");
}

#[test]
fn the_gate_can_be_switched_off_in_config() {
    let p = Project::new("gate_off");
    p.config(&format!("{}\n[check]\nrequired = false\n", crate::common::DEFAULT_CONFIG));
    p.migration("1_ext", "CREATE EXTENSION IF NOT EXISTS vector;\n", None);
    // Nothing stops it before PostgreSQL does.
    p.run(&["migrate"]).expect_code(1).expect_output("rolled back").expect_output("vector");
    let events = p.client().events();
    assert_eq!(events, [event("migrate", "rolled_back", &["1"])]);
}

#[test]
fn live_check_reads_column_types_check_constraints_and_function_volatility() {
    let p = Project::new("live_types");
    let mut db = p.client();
    db.batch_execute(
        "CREATE TABLE notes (id int, title varchar(50), body varchar(100), n integer, email text);
         ALTER TABLE notes ADD CONSTRAINT notes_email_not_null CHECK (email IS NOT NULL);
         CREATE FUNCTION pick_colour() RETURNS text LANGUAGE sql VOLATILE AS $$ SELECT 'red' $$;
         CREATE FUNCTION fixed_colour() RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT 'red' $$;",
    )
    .unwrap();
    p.write(
        "m.sql",
        "ALTER TABLE notes ALTER COLUMN title TYPE text;\n\
         ALTER TABLE notes ALTER COLUMN body TYPE varchar(20);\n\
         ALTER TABLE notes ALTER COLUMN n TYPE bigint;\n\
         ALTER TABLE notes ALTER COLUMN email SET NOT NULL;\n\
         ALTER TABLE notes ADD COLUMN colour text DEFAULT pick_colour();\n\
         ALTER TABLE notes ADD COLUMN shade text DEFAULT fixed_colour();\n\
         ALTER TABLE notes ADD COLUMN tone text DEFAULT no_such_colour();\n",
    );
    let json = p.run(&["check", "--format", "json", "m.sql"]).json();
    let at = |code: &str, line: u64| -> &Value {
        json["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["code"] == code && f["line"] == line)
            .unwrap_or_else(|| panic!("no {code} on line {line} in {json:#}"))
    };
    let facts = |f: &Value| f["facts"].to_string();
    let none_at = |code: &str, line: u64| {
        let found = json["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["code"] == code && f["line"] == line);
        assert!(found.is_none(), "{code} on line {line}: {found:#?}");
    };
    // varchar(50) -> text: binary-coercible, no rewrite: no finding.
    none_at("BS206", 1);
    // varchar(100) -> varchar(20) can cut values.
    assert_eq!(at("BS107", 2)["severity"], "high");
    // integer -> bigint rewrites; the table is small, so the lock is short.
    assert!(facts(at("BS206", 3)).contains("integer today"), "{}", facts(at("BS206", 3)));
    // A validated CHECK (email IS NOT NULL) lets SET NOT NULL skip its scan.
    none_at("BS204", 4);
    // Only the volatile function's default rewrites the table.
    assert!(facts(at("BS205", 5)).contains("pick_colour() is volatile"));
    assert!(!json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["code"] == "BS205" && f["line"] == 6));
    // A function neither the file nor the database defines is said so.
    assert!(facts(at("BS205", 7)).contains("pg_proc has no function no_such_colour()"));
}

#[test]
fn check_with_a_wrong_password_exits_3_instead_of_passing_on_the_sql_alone() {
    let p = demo_v2("check_wrong_password");
    let wrong = {
        // postgres://postgres:PASSWORD@host → a password that is not it.
        let (head, tail) = p.url.split_once('@').unwrap();
        let (user, _) = head.rsplit_once(':').unwrap();
        format!("{user}:wrong-password@{tail}")
    };
    let run = p.run_with_url(&wrong, &["check"]);
    run.expect_code(3).expect_output("password authentication failed").expect_output("--offline");
    assert!(!run.all().contains("verdict"), "no verdict without the live facts:\n{}", run.all());
    // An unset ${VAR} in the configured URL is refused too, not checked without it.
    let run =
        Run::from_output(p.cmd().env_remove("DATABASE_URL").args(["check"]).output().unwrap());
    run.expect_code(2).expect_output("DATABASE_URL").expect_output("--offline");
    // --offline is the one way to check without the database, and it says so.
    p.run_with_url(&wrong, &["check", "--offline"])
        .expect_output("static analysis only (--offline: live facts not checked)")
        .expect_output("without live facts");
    let json = p.run_with_url(&wrong, &["check", "--offline", "--format", "json"]).json();
    assert_eq!(json["static_only"], "--offline: live facts not checked");
}

// ------------------------------------------------- the batch, followed

fn renames_history(label: &str) -> Project {
    let p = Project::new(label);
    let dir = p.path().join("migrations");
    std::fs::remove_dir_all(&dir).unwrap();
    let src =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/histories/renames");
    for entry in std::fs::read_dir(&src).unwrap() {
        let entry = entry.unwrap();
        let to = dir.join(entry.file_name());
        std::fs::create_dir_all(&to).unwrap();
        for file in std::fs::read_dir(entry.path()).unwrap() {
            let file = file.unwrap();
            std::fs::copy(file.path(), to.join(file.file_name())).unwrap();
        }
    }
    p
}

fn findings(json: &Value) -> Vec<&Value> {
    json["findings"].as_array().unwrap().iter().collect()
}

#[test]
fn bootstrapping_an_empty_database_from_a_history_of_renames_has_no_false_criticals() {
    let p = renames_history("batch_empty");
    let run = p.run(&["check", "--format", "json"]);
    let json = run.json();
    let critical: Vec<_> =
        findings(&json).into_iter().filter(|f| f["severity"] == "critical").collect();
    assert!(critical.is_empty(), "false alarms: {critical:#?}");
    assert_ne!(json["verdict"], "NO-GO");
    // A column of a table the batch made (then renamed) loses nothing.
    let drops: Vec<_> = findings(&json).into_iter().filter(|f| f["code"] == "BS102").collect();
    assert!(drops.is_empty(), "{drops:#?}");
    // Nor does a NOT NULL column without a default on it fail: it is empty.
    assert!(!findings(&json).into_iter().any(|f| f["code"] == "BS404"), "{json:#}");
    // Two of its authored downs do not bring the schema back (a view's
    // column cannot be dropped by CREATE OR REPLACE; a foreign key and an
    // index a dropped column took are not made again): a project that
    // refuses them on a bootstrap too is told each, with what it leaves;
    // by default the bootstrap runs, with the check gate on, naming them
    // once and keeping the proved downs instead.
    p.config(&format!("{DEFAULT_CONFIG}defective_downs = \"refuse\"\n"));
    let refused = p.run(&["migrate"]);
    refused.expect_code(1).expect_output("cannot drop columns from view");
    refused.expect_output("constraint archive.community.community_creator_id_fkey is gone");
    p.config(DEFAULT_CONFIG);
    p.run(&["migrate"])
        .expect_code(0)
        .expect_output("warning: 2 authored down(s) do not bring the schema back");
    let mut db = p.client();
    assert!(db.exists("person") && db.exists("archive.communities") && db.exists("person_view"));
}

#[test]
fn a_rename_of_a_live_table_asks_the_database_about_its_old_name() {
    let p = renames_history("batch_live");
    p.run(&["migrate", "--to", "20200103000000"]).expect_code(0);
    p.client()
        .batch_execute(
            "INSERT INTO user_ (name, email, legacy_flags) VALUES ('a', 'a@x', 'f'), ('b', 'b@x', NULL), ('c', 'c@x', 'g');",
        )
        .unwrap();
    let json = p.run(&["check", "--format", "json"]).json();
    let drop = findings(&json)
        .into_iter()
        .find(|f| f["code"] == "BS102" && f["message"].as_str().unwrap().contains("legacy_flags"))
        .expect("the DROP COLUMN finding")
        .clone();
    let facts = drop["facts"].to_string();
    assert!(
        facts.contains("person is user_ on the database (renamed earlier in this batch)"),
        "{facts}"
    );
    assert!(facts.contains("user_ holds 3 row(s)"), "{facts}");
    // A NOT NULL column without a default on the renamed table, which has
    // rows before the batch: a true NO-GO, with the live count.
    let not_null = findings(&json)
        .into_iter()
        .find(|f| f["code"] == "BS404")
        .expect("the ADD COLUMN NOT NULL finding")
        .clone();
    assert_eq!(not_null["severity"], "critical", "{not_null:#}");
    assert!(not_null["facts"].to_string().contains("user_ holds 3 row(s)"), "{not_null:#}");
    assert_eq!(json["verdict"], "NO-GO");
}

#[test]
fn a_table_the_batch_already_dropped_is_a_true_critical() {
    let p = renames_history("batch_dropped_twice");
    p.migration("20200113000000_drop_again", "DROP TABLE person_ban;\n", None);
    let json = p.run(&["check", "--format", "json"]).json();
    let again: Vec<_> =
        findings(&json).into_iter().filter(|f| f["severity"] == "critical").collect();
    assert_eq!(again.len(), 1, "{again:#?}");
    assert!(again[0]["file"].as_str().unwrap().contains("drop_again"), "{:#}", again[0]);
    let facts = again[0]["facts"].to_string();
    assert!(
        facts.contains("dropped earlier in this batch")
            && facts.contains("drop_person_ban/up.sql:1"),
        "{facts}"
    );
    let run = p.run(&["migrate"]);
    run.expect_code(1).expect_output("NO-GO, 1 critical finding(s):\n  BS101 ");
}
