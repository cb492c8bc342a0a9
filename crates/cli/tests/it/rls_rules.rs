//! The row level security rules (BS505–BS509) against a real database:
//! what the server says about each table decides, and each true finding
//! names its fix.

use crate::common::{Project, DEFAULT_CONFIG};
use serde_json::Value;

/// `(code, line)` of every row level security finding, sorted.
fn found(json: &Value) -> Vec<(String, u64)> {
    let all = json["findings"].as_array().unwrap().iter();
    let rls = all.filter(|f| {
        let code = f["code"].as_str().unwrap();
        ("BS505".."BS510").contains(&code)
    });
    let mut found: Vec<(String, u64)> = rls
        .map(|f| (f["code"].as_str().unwrap().to_string(), f["line"].as_u64().unwrap()))
        .collect();
    found.sort();
    found
}

fn at(code: &str, line: u64) -> (String, u64) {
    (code.to_string(), line)
}

#[test]
fn what_the_database_says_decides_each_row_level_security_finding() {
    let p = Project::new("check_rls");
    p.client()
        .batch_execute(
            "CREATE ROLE rls_app LOGIN;
             CREATE TABLE notes (id int, user_id int);
             ALTER TABLE notes ENABLE ROW LEVEL SECURITY;
             CREATE POLICY notes_own ON notes USING (user_id = 1);
             CREATE TABLE files (id int, owner_id int);
             CREATE TABLE tags (id int, name text);
             CREATE TABLE plain (id int);
             CREATE TABLE docs (id int, user_id int);
             ALTER TABLE docs OWNER TO rls_app;",
        )
        .unwrap();
    let pending = [
        "ALTER TABLE plain ENABLE ROW LEVEL SECURITY;", // 1 BS505: no policy here or there
        "CREATE POLICY files_read ON files FOR SELECT USING (true);", // 2 BS506: files has owner_id
        "CREATE POLICY tags_read ON tags FOR SELECT USING (true);", // 3 public by design
        "DROP POLICY notes_own ON notes;",              // 4 BS507: its last policy
        "DROP POLICY IF EXISTS ghost ON notes;",        // 5 not on the server
        "ALTER TABLE files DISABLE ROW LEVEL SECURITY;", // 6 already off
        "ALTER TABLE notes DISABLE ROW LEVEL SECURITY;", // 7 BS508
        "ALTER TABLE docs ENABLE ROW LEVEL SECURITY;",  // 8 BS509 with application_roles
        "CREATE POLICY docs_own ON docs USING (user_id = 1);",
    ];
    p.write("p.sql", &(pending.join("\n") + "\n"));
    let json = p.run(&["check", "--format", "json", "p.sql"]).json();
    assert_eq!(
        found(&json),
        [at("BS505", 1), at("BS506", 2), at("BS507", 4), at("BS508", 7)],
        "{json:#}"
    );
    let dropped = json["findings"].as_array().unwrap().iter().find(|f| f["code"] == "BS507");
    let dropped = dropped.unwrap();
    assert_eq!(dropped["severity"], "high", "{dropped:#}");
    assert!(dropped.to_string().contains("notes keeps no other policy"), "{dropped:#}");
    // Offline, the existing tables' facts are unknown: what only they
    // could clear stays, and what only they could confirm is not said.
    let offline = p.run(&["check", "--offline", "--format", "json", "p.sql"]).json();
    assert_eq!(
        found(&offline),
        [at("BS505", 1), at("BS507", 4), at("BS507", 5), at("BS508", 6), at("BS508", 7)],
        "{offline:#}"
    );
    // The application connects as the owner of docs: its policies never
    // apply to it without FORCE.
    p.config(&format!("{DEFAULT_CONFIG}\n[check]\napplication_roles = [\"rls_app\"]\n"));
    let json = p.run(&["check", "--format", "json", "p.sql"]).json();
    assert!(found(&json).contains(&at("BS509", 8)), "{json:#}");
    p.write("p.sql", &(pending.join("\n") + "\nALTER TABLE docs FORCE ROW LEVEL SECURITY;\n"));
    let json = p.run(&["check", "--format", "json", "p.sql"]).json();
    assert!(!found(&json).iter().any(|(c, _)| c == "BS509"), "{json:#}");
}
