//! `backstop verify` against real databases: every check passes on a good
//! database and fails with a clear reason on a broken one; HTTP checks go
//! to a small server this test starts on 127.0.0.1.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use crate::common::{DbExt, Project};

/// A v2-like schema: users with Clerk ids, clients and meetings owned
/// through users.id, notes owned by an auth.users uuid (Supabase's way),
/// RLS everywhere, the `authenticated` and `service_role` roles.
const SCHEMA: &str = r#"
DO $$ BEGIN CREATE ROLE authenticated NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;
DO $$ BEGIN CREATE ROLE service_role NOLOGIN BYPASSRLS;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;
-- tables
CREATE SCHEMA auth;
CREATE FUNCTION auth.uid() RETURNS text LANGUAGE sql STABLE AS $f$
  SELECT nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'
$f$;
CREATE TABLE auth.users (id uuid PRIMARY KEY, email text);
GRANT USAGE ON SCHEMA auth, public TO authenticated, service_role;

CREATE TABLE users (
  id bigserial PRIMARY KEY,
  clerk_id text NOT NULL UNIQUE,
  email text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE users ENABLE ROW LEVEL SECURITY;
CREATE POLICY users_own ON users USING (clerk_id = auth.uid());

CREATE TABLE clients (
  id bigserial PRIMARY KEY,
  user_id bigint NOT NULL REFERENCES users (id),
  name text NOT NULL,
  notes jsonb,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX clients_user_id_idx ON clients (user_id);
ALTER TABLE clients ENABLE ROW LEVEL SECURITY;
CREATE POLICY clients_own ON clients
  USING (user_id = (SELECT id FROM users WHERE clerk_id = auth.uid()));

CREATE TABLE meetings (
  id bigserial PRIMARY KEY,
  user_id bigint NOT NULL REFERENCES users (id),
  client_id bigint NOT NULL REFERENCES clients (id),
  title text NOT NULL,
  meeting_date date NOT NULL
);
ALTER TABLE meetings ENABLE ROW LEVEL SECURITY;
CREATE POLICY meetings_own ON meetings
  USING (user_id = (SELECT id FROM users WHERE clerk_id = auth.uid()));

CREATE TABLE notes (
  id bigserial PRIMARY KEY,
  owner uuid NOT NULL REFERENCES auth.users (id),
  body text NOT NULL
);
ALTER TABLE notes ENABLE ROW LEVEL SECURITY;
CREATE POLICY notes_own ON notes USING (owner = auth.uid()::uuid);

GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO authenticated, service_role;

INSERT INTO users (clerk_id, email) SELECT 'user_' || i, 'u' || i || '@example.com' FROM generate_series(1, 50) i;
INSERT INTO clients (user_id, name, notes)
  SELECT 1 + i % 50, 'client ' || i, jsonb_build_object('n', i) FROM generate_series(1, 200) i;
INSERT INTO meetings (user_id, client_id, title, meeting_date)
  SELECT c.user_id, c.id, 'meeting ' || c.id, current_date FROM clients c;
"#;

/// The checks of a good v2 database, one or more of each kind. `{port}`
/// is the HTTP server's, `{run}` keeps rate-limiter counters apart.
const CHECKS: &str = r#"
[[verify.checks]]
name = "database answers"
kind = "connection"

[[verify.checks]]
name = "v2 tables exist"
kind = "tables"
tables = ["clients", "meetings"]

[[verify.checks]]
name = "v1 tables are gone"
kind = "tables"
tables = ["participants"]
absent = true

[[verify.checks]]
name = "clients have their columns"
kind = "columns"
table = "clients"
columns = ["id", "user_id", "name"]

[[verify.checks]]
name = "plpgsql installed"
kind = "extensions"
extensions = ["plpgsql"]

[[verify.checks]]
name = "owner index exists"
kind = "indexes"
indexes = ["clients_user_id_idx"]

[[verify.checks]]
name = "RLS policies active"
kind = "rls"
tables = ["clients", "meetings", "notes"]
commands = ["select", "update", "delete"]

[[verify.checks]]
name = "clients are private"
kind = "rls_isolation"
table = "clients"
owner_column = "user_id"
identity = { table = "users", column = "clerk_id" }

[[verify.checks]]
name = "meetings are private"
kind = "rls_isolation"
table = "meetings"
owner_column = "user_id"
identity = { table = "users", column = "clerk_id" }

[[verify.checks]]
name = "notes are private"
kind = "rls_isolation"
table = "notes"
owner_column = "owner"

[[verify.checks]]
name = "no orphan rows"
kind = "foreign_keys"

[[verify.checks]]
name = "clients still written"
kind = "recent_rows"
table = "clients"
column = "created_at"
within = "1h"

[[verify.checks]]
name = "every client has an owner"
kind = "sql"
query = "SELECT count(*) FROM clients WHERE user_id NOT IN (SELECT id FROM users)"
expect = "0"

[[verify.checks]]
name = "clients by user use the index"
kind = "explain"
query = "SELECT * FROM clients WHERE user_id = 7"
table = "clients"
index = "clients_user_id_idx"
disable_seqscan = true

[[verify.checks]]
name = "row counts unchanged"
kind = "row_counts"

[[verify.checks]]
name = "content unchanged"
kind = "checksums"

[[verify.checks]]
name = "auth endpoint responding"
kind = "http"
url = "http://127.0.0.1:{port}/health"
json_path = "$.status"
json_equals = "ok"

[[verify.checks]]
name = "rate limiting functional"
kind = "http"
url = "http://127.0.0.1:{port}/limited/{run}"
repeat = 15
expect_status_after = { 10 = 429 }
max_p95 = "5s"
"#;

/// A small HTTP server: `/health` answers JSON; `/limited/...` answers 200
/// ten times per path, then 429; `/unlimited` always 200; `/echo` puts the
/// Authorization header in its body, as a careless endpoint might. It serves until the test ends.
fn http_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let counts: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let counts = counts.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                reader.read_line(&mut request_line).unwrap_or(0);
                let path = request_line.split(' ').nth(1).unwrap_or("/").to_string();
                let mut auth = String::new();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line
                        .strip_prefix("authorization: ")
                        .or(line.strip_prefix("Authorization: "))
                    {
                        auth = v.trim().to_string();
                    }
                }
                let (status, body) = if path == "/health" {
                    (200, r#"{"status":"ok","db":{"ok":true}}"#.to_string())
                } else if path.starts_with("/limited") {
                    let mut counts = counts.lock().unwrap();
                    let n = counts.entry(path).or_insert(0);
                    *n += 1;
                    if *n > 10 {
                        (429, "slow down".into())
                    } else {
                        (200, "ok".into())
                    }
                } else if path == "/unlimited" {
                    (200, "ok".to_string())
                } else if path == "/echo" {
                    (200, format!("hello {auth}"))
                } else {
                    (404, "not found".to_string())
                };
                let reason = match status {
                    200 => "OK",
                    401 => "Unauthorized",
                    429 => "Too Many Requests",
                    _ => "Not Found",
                };
                let mut stream = stream;
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    port
}

/// A project whose database has [`SCHEMA`] and whose config has `checks`.
fn project(label: &str, checks: &str) -> Project {
    let p = Project::new(label);
    p.client().batch_execute(SCHEMA).unwrap();
    p.config(&format!(
        "[database]\nurl = \"${{DATABASE_URL}}\"\n\n[migrations]\ndir = \"migrations\"\n{checks}"
    ));
    p
}

fn checks(port: u16, run: &str) -> String {
    CHECKS.replace("{port}", &port.to_string()).replace("{run}", run)
}

fn statuses(json: &serde_json::Value) -> Vec<(String, String, String)> {
    json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["status"].as_str().unwrap().to_string(),
                c["detail"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[track_caller]
fn detail_of(json: &serde_json::Value, name: &str) -> (String, String) {
    statuses(json)
        .into_iter()
        .find(|(n, _, _)| n == name)
        .map(|(_, s, d)| (s, d))
        .unwrap_or_else(|| panic!("no check {name:?} in {json}"))
}

#[test]
fn a_good_database_passes_every_check_of_every_kind() {
    let port = http_server();
    let p = project("verify_good", &checks(port, "good"));
    p.run(&["verify", "--snapshot", "save", "before"])
        .expect_code(0)
        .expect_output("snapshot before saved: 5 table(s), 450 rows, checksums of 5 table(s)");
    let run = p.run(&["verify", "--snapshot", "before", "--format", "json"]);
    let json = run.json();
    let failed: Vec<_> = statuses(&json).into_iter().filter(|(_, s, _)| s != "pass").collect();
    assert!(failed.is_empty(), "{failed:#?}");
    run.expect_code(0);
    assert_eq!(json["checks"].as_array().unwrap().len(), 18);
    let kinds: std::collections::BTreeSet<&str> =
        json["checks"].as_array().unwrap().iter().map(|c| c["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.len(), 14, "{kinds:?}");
    let (_, detail) = detail_of(&json, "clients are private");
    assert!(
        detail.contains("users A and B (as role authenticated) each see only their own row"),
        "{detail}"
    );
    assert!(detail.contains("service_role sees all"), "{detail}");
    let (_, detail) = detail_of(&json, "rate limiting functional");
    assert!(detail.starts_with("15 requests answered 200×10, 429×5 as expected"), "{detail}");
    let (_, detail) = detail_of(&json, "clients by user use the index");
    assert!(detail.contains("using clients_user_id_idx on clients"), "{detail}");

    // Text: one ✅ line per check, then the summary.
    let text =
        p.run(&["verify", "--snapshot", "before", "--only", "v2 tables exist,no orphan rows"]);
    text.expect_code(0);
    assert_eq!(text.stdout.lines().filter(|l| l.starts_with("✅ ")).count(), 2, "{}", text.stdout);
    assert!(
        text.stdout.contains("✅ v2 tables exist: clients and meetings exist ("),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout.ends_with("verify passed: 2/2 checks in ")
            || text.stdout.contains("verify passed: 2/2 checks in "),
        "{}",
        text.stdout
    );
}

#[test]
fn rls_disabled_and_a_leaky_policy_are_caught_with_row_counts() {
    let p = project("verify_rls", &checks(0, "rls"));
    let only = [
        "verify",
        "--only",
        "RLS policies active,clients are private,meetings are private",
        "--format",
        "json",
    ];

    p.client()
        .batch_execute("CREATE POLICY clients_debug ON clients FOR SELECT USING (true)")
        .unwrap();
    let run = p.run(&only);
    run.expect_code(1);
    let json = run.json();
    let (status, detail) = detail_of(&json, "clients are private");
    assert_eq!(status, "fail");
    assert!(detail.contains("user A can read 1 row(s) of user B's"), "{detail}");
    assert!(detail.contains("user A can read 200 more row(s) of other owners"), "{detail}");
    assert!(!detail.contains("can update"), "the leak is read-only: {detail}");
    assert_eq!(detail_of(&json, "meetings are private").0, "pass");

    p.client()
        .batch_execute(
            "DROP POLICY clients_debug ON clients; ALTER TABLE meetings DISABLE ROW LEVEL SECURITY",
        )
        .unwrap();
    let json = p.run(&only).json();
    let (status, detail) = detail_of(&json, "RLS policies active");
    assert_eq!(status, "fail");
    assert!(detail.contains("meetings: row level security is disabled"), "{detail}");
    let (status, detail) = detail_of(&json, "meetings are private");
    assert_eq!(status, "fail");
    assert!(
        detail.starts_with(
            "row level security is disabled on meetings: user A can read 1 row(s) of user B's"
        ),
        "{detail}"
    );
    assert!(
        detail.contains("can update 1 row(s)") && detail.contains("can delete 1 row(s)"),
        "{detail}"
    );
    assert_eq!(detail_of(&json, "clients are private").0, "pass");
}

#[test]
fn rls_isolation_leaves_no_rows_or_roles_behind() {
    let p = project("verify_nothing_left", &checks(0, "left"));
    let mut client = p.client();
    let state = |c: &mut postgres::Client| {
        let roles: i64 = c.query_one("select count(*) from pg_roles", &[]).unwrap().get(0);
        let rows: Vec<i64> = ["users", "clients", "meetings", "notes", "auth.users"]
            .iter()
            .map(|t| c.count(t))
            .collect();
        (roles, rows)
    };
    let before = state(&mut client);
    p.run(&["verify", "--only", "clients are private,meetings are private,notes are private"])
        .expect_code(0);
    assert_eq!(state(&mut client), before);
    // Also when the test finds a leak and stops half-way.
    client.batch_execute("ALTER TABLE notes DISABLE ROW LEVEL SECURITY").unwrap();
    let before = state(&mut client);
    p.run(&["verify", "--only", "notes are private"]).expect_code(1);
    assert_eq!(state(&mut client), before);
}

#[test]
fn an_impersonation_that_bypasses_rls_or_matches_nothing_proves_nothing() {
    let bypass = r#"
[[verify.checks]]
name = "as superuser"
kind = "rls_isolation"
table = "clients"
owner_column = "user_id"
identity = { table = "users", column = "clerk_id" }
impersonate = "SET LOCAL request.jwt.claims = '{\"sub\":\"{user}\"}'"

[[verify.checks]]
name = "wrong identity"
kind = "rls_isolation"
table = "clients"
owner_column = "user_id"
"#;
    let p = project("verify_bypass", bypass);
    let json = p.run(&["verify", "--format", "json"]).json();
    let (status, detail) = detail_of(&json, "as superuser");
    assert_eq!(status, "fail");
    assert!(detail.contains("which is a superuser and bypasses row level security"), "{detail}");
    let (status, detail) = detail_of(&json, "wrong identity");
    assert_eq!(status, "fail");
    assert!(detail.contains("cannot see its own test row"), "{detail}");
    assert!(detail.contains("set identity = { table = \"users\""), "{detail}");
}

#[test]
fn a_missing_table_a_changed_row_and_a_deleted_row_are_named() {
    let p = project("verify_changed", &checks(0, "changed"));
    p.run(&["verify", "--snapshot", "save", "before"]).expect_code(0);
    p.client()
        .batch_execute(
            "UPDATE clients SET name = 'renamed' WHERE id = 17;
             DELETE FROM meetings WHERE id = 3;
             ALTER TABLE notes RENAME TO notes_old;",
        )
        .unwrap();
    let run = p.run(&[
        "verify",
        "--snapshot",
        "before",
        "--only",
        "v2 tables exist,row counts unchanged,content unchanged,RLS policies active",
        "--format",
        "json",
    ]);
    run.expect_code(1);
    let json = run.json();
    assert_eq!(detail_of(&json, "v2 tables exist").0, "pass");
    let (status, detail) = detail_of(&json, "row counts unchanged");
    assert_eq!(status, "fail");
    assert!(detail.contains("meetings: 200 → 199 rows (-1)"), "{detail}");
    assert!(detail.contains("notes is gone (it had 0 rows)"), "{detail}");
    let (status, detail) = detail_of(&json, "content unchanged");
    assert_eq!(status, "fail");
    assert!(detail.contains("clients: content changed with the same 200 rows"), "{detail}");
    assert!(detail.contains("meetings: content changed (200 → 199 rows"), "{detail}");
    assert!(!detail.contains("users"), "users did not change: {detail}");
    let (_, detail) = detail_of(&json, "RLS policies active");
    assert!(detail.contains("table notes does not exist"), "{detail}");

    // The tables check names what is missing.
    p.client().batch_execute("DROP TABLE meetings").unwrap();
    let run = p.run(&["verify", "--only", "v2 tables exist"]);
    run.expect_code(1).expect_output("❌ v2 tables exist: meetings missing (");
    run.expect_output("verify FAILED: 1 critical check(s) failed, 0/1 passed in ");
}

#[test]
fn an_orphan_row_behind_a_not_valid_foreign_key_is_found() {
    let p = project("verify_orphan", &checks(0, "orphan"));
    p.client()
        .batch_execute(
            "ALTER TABLE meetings DROP CONSTRAINT meetings_client_id_fkey;
             INSERT INTO meetings (user_id, client_id, title, meeting_date) VALUES (1, 999999, 'lost', current_date);
             ALTER TABLE meetings ADD CONSTRAINT meetings_client_id_fkey
               FOREIGN KEY (client_id) REFERENCES clients (id) NOT VALID;",
        )
        .unwrap();
    let run = p.run(&["verify", "--only", "no orphan rows", "--format", "json"]);
    run.expect_code(1);
    let (status, detail) = detail_of(&run.json(), "no orphan rows");
    assert_eq!(status, "fail");
    assert_eq!(
        detail,
        "meetings.client_id → clients.id (meetings_client_id_fkey, NOT VALID): 1 orphan row(s), e.g. client_id=999999"
    );
}

#[test]
fn a_rate_limiter_that_never_says_429_fails_and_warnings_do_not_fail_the_run() {
    let port = http_server();
    let config = format!(
        r#"
[[verify.checks]]
name = "rate limiting functional"
kind = "http"
url = "http://127.0.0.1:{port}/unlimited"
repeat = 12
expect_status_after = {{ 10 = 429 }}

[[verify.checks]]
name = "status page"
kind = "http"
severity = "warning"
url = "http://127.0.0.1:{port}/nope"

[[verify.checks]]
name = "health body"
kind = "http"
url = "http://127.0.0.1:{port}/health"
body_contains = "degraded"
"#
    );
    let p = project("verify_http", &config);
    let run = p.run(&["verify"]);
    run.expect_code(1);
    run.expect_output(
        "❌ rate limiting functional: request 11 of 12 answered 200, expected 429 (the rate limiter never said 429); the statuses were 200×12",
    );
    run.expect_output(&format!(
        "⚠ status page: GET http://127.0.0.1:{port}/nope answered 404, expected 200"
    ));
    run.expect_output("❌ health body: the body does not contain \"degraded\"; it begins \"{\\\"status\\\":\\\"ok\\\"");
    run.expect_output("verify FAILED: 2 critical check(s) failed, 0/3 passed, 1 warning in ");

    let run = p.run(&["verify", "--only", "status page"]);
    run.expect_code(0).expect_output("verify passed: 0/1 checks, 1 warning");
}

#[test]
fn header_secrets_from_the_environment_are_never_printed() {
    let port = http_server();
    let config = format!(
        r#"
[[verify.checks]]
name = "authorized"
kind = "http"
url = "http://127.0.0.1:{port}/echo"
headers = {{ Authorization = "Bearer ${{BACKSTOP_TEST_API_TOKEN}}" }}
body_contains = "welcome"
"#
    );
    let p = project("verify_secret", &config);
    let run = p.run(&["verify"]);
    run.expect_code(2).expect_output("BACKSTOP_TEST_API_TOKEN");
    let out = p
        .cmd()
        .env("BACKSTOP_TEST_API_TOKEN", "sk-live-abc123")
        .args(["verify", "--format", "junit"])
        .output()
        .unwrap();
    let all =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(!all.contains("sk-live-abc123"), "{all}");
    assert!(all.contains("it begins &quot;hello Bearer ****&quot;"), "{all}");
}

#[test]
fn junit_and_markdown_are_well_formed() {
    let p = project("verify_formats", &checks(0, "formats"));
    p.client().batch_execute("DROP TABLE meetings").unwrap();
    let only = "v2 tables exist,clients have their columns";
    let run = p.run(&["verify", "--only", only, "--format", "junit"]);
    run.expect_code(1);
    let xml = &run.stdout;
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"backstop verify\" tests=\"2\" failures=\"1\""), "{xml}");
    assert!(
        xml.contains("<testcase name=\"v2 tables exist\" classname=\"backstop.verify.tables\""),
        "{xml}"
    );
    assert!(
        xml.contains(
            "<failure message=\"meetings missing\" type=\"critical\">meetings missing</failure>"
        ),
        "{xml}"
    );
    assert!(xml.trim_end().ends_with("</testsuites>"), "{xml}");
    let md = p.run(&["verify", "--only", only, "--format", "markdown"]).stdout;
    assert!(
        md.starts_with("### verify FAILED: 1 critical check(s) failed, 1/2 passed in "),
        "{md}"
    );
    assert!(md.contains("| ❌ | v2 tables exist | `tables` | meetings missing |"), "{md}");
}

#[test]
fn bad_input_is_refused_with_place_and_fix_before_touching_the_database() {
    let p = project("verify_bad_input", &checks(0, "bad"));
    p.run(&["verify", "--only", "nope"])
        .expect_code(2)
        .expect_output("no check is named \"nope\"; the configured checks are: database answers,");
    p.run(&["verify", "--only", "row counts unchanged"])
        .expect_code(2)
        .expect_output("compares with a snapshot, but none was named");
    p.run(&["verify", "--snapshot", "never-taken"])
        .expect_code(2)
        .expect_output("no snapshot named \"never-taken\" (there are none yet)");
    p.run(&["verify", "--snapshot", "save"])
        .expect_code(2)
        .expect_output("--snapshot save needs a name");
    p.run(&["verify", "--snapshot", "save", "s1"]).expect_code(0);
    p.run(&["verify", "--snapshot", "save", "s1"])
        .expect_code(2)
        .expect_output("a snapshot named \"s1\" exists already");

    p.config("[[verify.checks]]\nname = \"t\"\nkind = \"tables\"\ntables = [\"clients\"]\nowner_column = \"user_id\"\n");
    p.run(&["verify"])
        .expect_code(2)
        .expect_output("backstop.toml:5:1: check \"t\": unknown field `owner_column`");

    p.config("");
    p.run(&["verify"]).expect_code(2).expect_output("no checks to run");

    p.config("[database]\nurl = \"postgres://nobody:s3cret@127.0.0.1:1/nowhere\"\n\n[[verify.checks]]\nname = \"c\"\nkind = \"connection\"\n");
    let run = p.cmd().env_remove("DATABASE_URL").arg("verify").output().unwrap();
    let run = crate::common::Run::from_output(run);
    run.expect_code(3);
    assert!(!run.all().contains("s3cret"), "{}", run.all());
}

#[test]
fn hostile_names_stay_names() {
    let hostile = r#"
[[verify.checks]]
name = "hostile table"
kind = "tables"
tables = ['x"; DROP TABLE users; --']

[[verify.checks]]
name = "hostile isolation"
kind = "rls_isolation"
table = 'we"ird'
owner_column = 'own"er'

[[verify.checks]]
name = "hostile content"
kind = "checksums"
"#;
    let p = project("verify_hostile", hostile);
    p.client()
        .batch_execute(
            r#"CREATE TABLE "we""ird" ("own""er" text NOT NULL, "na;me" text NOT NULL);
               ALTER TABLE "we""ird" ENABLE ROW LEVEL SECURITY;
               CREATE POLICY own ON "we""ird" USING ("own""er" = auth.uid());
               GRANT ALL ON "we""ird" TO authenticated, service_role;
               INSERT INTO "we""ird" VALUES ('user_1', 'x');"#,
        )
        .unwrap();
    p.run(&["verify", "--snapshot", "save", "s"]).expect_code(0);
    let run = p.run(&["verify", "--snapshot", "s", "--format", "json"]);
    let json = run.json();
    assert_eq!(detail_of(&json, "hostile table").0, "fail");
    let (status, detail) = detail_of(&json, "hostile isolation");
    assert_eq!(status, "pass", "{detail}");
    assert_eq!(detail_of(&json, "hostile content").0, "pass");
    assert!(p.client().exists("users"));
}

#[test]
fn migrate_runs_the_suite_afterwards_and_reports_applied_verification_failed() {
    let config = r#"
[verify]
after_migrate = true

[[verify.checks]]
name = "clients are private"
kind = "rls_isolation"
table = "clients"
owner_column = "user_id"
identity = { table = "users", column = "clerk_id" }
after = ["migrate"]

[[verify.checks]]
name = "users kept their rows"
kind = "row_counts"
tables = ["users"]
"#;
    let p = project("verify_after_migrate", config);
    p.migration(
        "1_notes",
        "ALTER TABLE clients ADD COLUMN phone text;",
        Some("ALTER TABLE clients DROP COLUMN phone;"),
    );
    let run = p.run(&["migrate"]);
    run.expect_code(0).expect_output("verifying after the migrate:\n✅ clients are private: ");
    run.expect_output(
        "✅ users kept their rows: 1 table(s), 50 rows, equal to snapshot before this migrate",
    );

    p.migration(
        "2_debug",
        "CREATE POLICY clients_debug ON clients FOR SELECT USING (true);",
        Some("DROP POLICY clients_debug ON clients;"),
    );
    let run = p.run(&["migrate"]);
    run.expect_code(1);
    run.expect_output("❌ clients are private: user A can read 1 row(s) of user B's");
    run.expect_output(
        "✗ applied, verification failed: 2_debug committed, 1 critical check(s) failed",
    );
    run.expect_output("choices: undo with `backstop rollback --steps 1`");
    let mut client = p.client();
    assert_eq!(client.applied(), ["1", "2"], "the migration stays committed");
    let events = client.events();
    assert_eq!(events.last().unwrap(), &crate::common::event("verify", "failed", &["2"]));

    // The rollback's suite leaves out the check meant for after a migrate.
    let run = p.run(&["rollback", "--format", "json"]);
    run.expect_code(0);
    let json = run.json();
    let names: Vec<&str> = json["verify"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["users kept their rows"]);
}

/// On managed PostgreSQL the suite runs as the database owner, not a
/// superuser: impersonation needs membership in the roles it sets.
#[test]
fn a_non_superuser_database_owner_can_run_the_whole_suite() {
    let role = crate::common::unique_name("verify_owner");
    let db = crate::common::unique_name("verify_owned");
    let mut admin = crate::common::CLUSTER.connect("postgres").unwrap();
    let (roles, tables) = SCHEMA.split_once("-- tables").unwrap();
    admin.batch_execute(roles).unwrap();
    admin
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN PASSWORD 'owner-pw' NOSUPERUSER NOCREATEDB NOCREATEROLE;
             GRANT authenticated, service_role TO {role};"
        ))
        .unwrap();
    admin.batch_execute(&format!("CREATE DATABASE {db} OWNER {role}")).unwrap();
    let url =
        format!("postgres://{role}:owner-pw@127.0.0.1:{}/{db}", crate::common::CLUSTER.port());
    let mut owner = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    owner.batch_execute(tables).unwrap();

    let p = Project::new("verify_owner_project");
    p.config(&format!(
        "[database]\nurl = \"${{DATABASE_URL}}\"\n\n[migrations]\ndir = \"migrations\"\n{}",
        checks(http_server(), "owner")
    ));
    p.run_with_url(&url, &["verify", "--snapshot", "save", "before"]).expect_code(0);
    let run = p.run_with_url(&url, &["verify", "--snapshot", "before", "--format", "json"]);
    let failed: Vec<_> =
        statuses(&run.json()).into_iter().filter(|(_, s, _)| s != "pass").collect();
    assert!(failed.is_empty(), "{failed:#?}");
    run.expect_code(0);
    assert!(!run.all().contains("owner-pw"));
}

#[test]
fn row_counts_compare_with_the_latest_backups_manifest() {
    let p = project("verify_backup", &checks(0, "backup"));
    let id = p.run(&["backup", "create", "--format", "json"]).expect_code(0).json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    p.client().batch_execute("DELETE FROM meetings WHERE id = 5").unwrap();
    let run = p.run(&["verify", "--snapshot", "backup:latest", "--only", "row counts unchanged"]);
    run.expect_code(1);
    run.expect_output(&format!("❌ row counts unchanged: differs from snapshot backup:{id} ("));
    run.expect_output("meetings: 200 → 199 rows (-1)");
    p.run(&["verify", "--snapshot", &format!("backup:{id}"), "--only", "row counts unchanged"])
        .expect_code(1);
    p.run(&["verify", "--snapshot", "backup:no-such-backup", "--only", "row counts unchanged"])
        .expect_code(2);
}
