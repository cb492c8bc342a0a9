//! The risk check as one comment on the pull request, as a CI job posts
//! it: against a stand-in of GitHub's REST API the test starts on
//! 127.0.0.1 (the only stand-in allowed: a SaaS endpoint). The first run
//! lists the request's comments and creates one, the next updates that
//! same one (told by its marker); the token is sent and never shown; an
//! API error or a missing environment is said, nothing is half-posted,
//! and the exit code stays the verdict's.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use crate::common::Project;

const TOKEN: &str = "ghs_S3CRETtoken";

/// A request the stand-in took: method, path (with query), the
/// Authorization header, the body.
type Seen = (String, String, String, Value);

/// A stand-in for GitHub's issue comments API on `acme/shop`: keeps the
/// comments, answers `fail` to every request with that status where set.
fn github(fail: Option<u16>) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", server.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        let mut comments: Vec<(u64, String)> = vec![(11, "LGTM".into())];
        for s in server.incoming().flatten() {
            let mut r = BufReader::new(s);
            let mut first = String::new();
            let _ = r.read_line(&mut first);
            let (mut length, mut auth) = (0usize, String::new());
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                if lower.starts_with("authorization:") {
                    auth = line["authorization:".len()..].trim().to_string();
                }
            }
            let mut body = vec![0u8; length];
            let _ = r.read_exact(&mut body);
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let mut parts = first.split_whitespace();
            let (method, path) =
                (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string());
            log.lock().unwrap().push((method.clone(), path.clone(), auth, body.clone()));
            let (status, answer) = match (fail, method.as_str()) {
                (Some(status), _) => {
                    (status, json!({ "message": "Resource not accessible by integration" }))
                }
                (None, "GET") => (
                    200,
                    Value::Array(
                        comments.iter().map(|(id, b)| json!({ "id": id, "body": b })).collect(),
                    ),
                ),
                (None, "POST") => {
                    let id = 1000 + comments.len() as u64;
                    comments.push((id, body["body"].as_str().unwrap_or("").to_string()));
                    (201, json!({ "id": id }))
                }
                (None, _) => {
                    let id: u64 = path.rsplit('/').next().and_then(|i| i.parse().ok()).unwrap_or(0);
                    if let Some(c) = comments.iter_mut().find(|(i, _)| *i == id) {
                        c.1 = body["body"].as_str().unwrap_or("").to_string();
                    }
                    (200, json!({ "id": id }))
                }
            };
            let text = answer.to_string();
            let _ = write!(
                r.get_mut(),
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                text.len()
            );
        }
    });
    (base, seen)
}

fn ci_env(api: &str, event: &std::path::Path) -> Vec<(&'static str, String)> {
    vec![
        ("GITHUB_ACTIONS", "true".into()),
        ("GITHUB_REPOSITORY", "acme/shop".into()),
        ("GITHUB_API_URL", api.into()),
        ("GITHUB_EVENT_PATH", event.display().to_string()),
        ("GITHUB_TOKEN", TOKEN.into()),
    ]
}

fn check(p: &Project, env: &[(&'static str, String)]) -> (Option<i32>, String) {
    let mut cmd = p.std_cmd(&["check", "--post-comment"]);
    for var in ["GITHUB_ACTIONS", "GITLAB_CI", "GITHUB_TOKEN", "GITHUB_REF"] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let all =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code(), all)
}

#[test]
fn the_check_is_one_comment_on_the_pull_request_posted_then_updated() {
    let p = Project::new("pr_comment");
    p.migration("1_users", "CREATE TABLE users (id bigint PRIMARY KEY, email text);\n", None);
    p.run(&["migrate"]).expect_code(0);
    // Certain to fail on the database: NO-GO, and the exit code stays 1
    // when the comment is posted.
    p.migration("2_broken", "ALTER TABLE missing ADD COLUMN x int;\n", None);
    let event = p.path().join("event.json");
    std::fs::write(
        &event,
        r#"{"action": "synchronize", "number": 7, "pull_request": {"number": 7}}"#,
    )
    .unwrap();
    let (api, seen) = github(None);
    let env = ci_env(&api, &event);

    let (code, said) = check(&p, &env);
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains("posted the check as comment 1001 on pull request acme/shop#7"),
        "{said}"
    );
    assert!(!said.contains(TOKEN), "the token is never shown: {said}");
    let (code, said) = check(&p, &env);
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains("updated the check's comment 1001 on pull request acme/shop#7"),
        "{said}"
    );

    let seen = seen.lock().unwrap();
    let calls: Vec<(&str, &str)> =
        seen.iter().map(|(m, p, _, _)| (m.as_str(), p.as_str())).collect();
    assert_eq!(
        calls,
        [
            ("GET", "/repos/acme/shop/issues/7/comments?per_page=100"),
            ("POST", "/repos/acme/shop/issues/7/comments"),
            ("GET", "/repos/acme/shop/issues/7/comments?per_page=100"),
            ("PATCH", "/repos/acme/shop/issues/comments/1001"),
        ]
    );
    assert!(seen.iter().all(|(_, _, auth, _)| auth == &format!("Bearer {TOKEN}")));
    let posted = seen[1].3["body"].as_str().unwrap();
    assert!(posted.starts_with("<!-- backstop:check -->\n"), "{posted}");
    assert!(posted.contains("NO-GO") && posted.contains("BS405"), "{posted}");
}

#[test]
fn without_its_environment_or_past_an_api_error_nothing_is_posted_and_the_verdict_stands() {
    let p = Project::new("pr_comment_bad");
    p.migration("1_users", "CREATE TABLE users (id bigint PRIMARY KEY);\n", None);
    // Not in a CI job: said, with what is missing; the check's own code (0: GO).
    let (code, said) = check(&p, &[]);
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("warning: --post-comment needs a CI job of a pull request"), "{said}");
    // No token.
    let (code, said) =
        check(&p, &[("GITHUB_ACTIONS", "true".into()), ("GITHUB_REPOSITORY", "acme/shop".into())]);
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("GITHUB_TOKEN not set"), "{said}");
    // A push, no pull request.
    let (api, seen) = github(None);
    let mut env = ci_env(&api, &p.path().join("no-such-event.json"));
    env.push(("GITHUB_REF", "refs/heads/main".into()));
    let (code, said) = check(&p, &env);
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("not for a pull request"), "{said}");
    assert!(seen.lock().unwrap().is_empty(), "nothing was sent");
    // The API refuses: said with its message, nothing half-posted, no token.
    let (api, seen) = github(Some(403));
    let event = p.path().join("event.json");
    std::fs::write(&event, r#"{"pull_request": {"number": 9}}"#).unwrap();
    let (code, said) = check(&p, &ci_env(&api, &event));
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("answered HTTP 403: Resource not accessible by integration"), "{said}");
    assert!(!said.contains(TOKEN), "{said}");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1, "only the list was asked for: {seen:?}");
    assert_eq!(seen[0].0, "GET");
}
