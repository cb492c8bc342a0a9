//! The check's Markdown as one comment on the pull request (GitHub) or
//! merge request (GitLab) a CI job runs for, where the reviewer reads it:
//! posted on the first run, updated in place on the next (the comment
//! carries a marker of its own, [`MARKER`]), never a second one. What to
//! post to comes from the CI's own environment (`GITHUB_*`, `CI_*`); the
//! token is sent as a header and never shown, not even in an error.

use std::time::Duration;

use serde_json::Value;

/// The hidden line that tells Backstop's comment among the others.
pub const MARKER: &str = "<!-- backstop:check -->";

/// Where the comment goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A GitHub pull request: the API's base, `owner/name`, its number.
    GitHub { api: String, repo: String, number: u64, token: String },
    /// A GitLab merge request: the API's base (`…/api/v4`), the project's
    /// id, the request's iid.
    GitLab { api: String, project: String, iid: u64, token: String },
}

impl Target {
    /// The pull or merge request, as the messages name it.
    pub fn describe(&self) -> String {
        match self {
            Target::GitHub { repo, number, .. } => format!("pull request {repo}#{number}"),
            Target::GitLab { project, iid, .. } => {
                format!("merge request !{iid} of project {project}")
            }
        }
    }
}

/// What was done with the comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Posted {
    Created(u64),
    Updated(u64),
}

/// Why the comment was not posted. Nothing was posted in any case.
#[derive(Debug, thiserror::Error)]
pub enum CommentError {
    #[error(
        "--post-comment needs a CI job of a pull request: {missing}; in GitHub Actions pass \
         `GITHUB_TOKEN: ${{{{ secrets.GITHUB_TOKEN }}}}` in the step's env (with `pull-requests: \
         write`), in GitLab CI set GITLAB_TOKEN to a token with the api scope"
    )]
    Environment { missing: String },
    #[error("--post-comment: {0}")]
    NoRequest(String),
    #[error("{what} answered HTTP {status}{said}; the comment was not posted")]
    Api { what: String, status: u16, said: String },
    #[error("{what} could not be reached; the comment was not posted")]
    Unreachable { what: String },
}

/// The target the CI job's environment (`var`) names: GitHub Actions
/// (`GITHUB_ACTIONS`, `GITHUB_REPOSITORY`, the event's pull request,
/// `GITHUB_TOKEN`), or GitLab CI (`GITLAB_CI`, `CI_API_V4_URL`,
/// `CI_PROJECT_ID`, `CI_MERGE_REQUEST_IID`, `GITLAB_TOKEN`).
pub fn target(var: &dyn Fn(&str) -> Option<String>) -> Result<Target, CommentError> {
    let set = |name: &str| var(name).filter(|v| !v.trim().is_empty());
    let missing = |names: &[&str]| CommentError::Environment {
        missing: format!("{} not set", names.join(", ")),
    };
    if set("GITHUB_ACTIONS").is_some() {
        let absent: Vec<&str> = ["GITHUB_REPOSITORY", "GITHUB_TOKEN"]
            .into_iter()
            .filter(|n| set(n).is_none())
            .collect();
        if !absent.is_empty() {
            return Err(missing(&absent));
        }
        let number = github_number(&set).ok_or_else(|| {
            CommentError::NoRequest(
                "this GitHub Actions run is not for a pull request (no pull_request in \
                 GITHUB_EVENT_PATH's event, GITHUB_REF is not refs/pull/N/…): run the job on \
                 pull_request events"
                    .into(),
            )
        })?;
        return Ok(Target::GitHub {
            api: set("GITHUB_API_URL").unwrap_or_else(|| "https://api.github.com".into()),
            repo: set("GITHUB_REPOSITORY").unwrap_or_default(),
            number,
            token: set("GITHUB_TOKEN").unwrap_or_default(),
        });
    }
    if set("GITLAB_CI").is_some() {
        let absent: Vec<&str> = ["CI_API_V4_URL", "CI_PROJECT_ID", "GITLAB_TOKEN"]
            .into_iter()
            .filter(|n| set(n).is_none())
            .collect();
        if !absent.is_empty() {
            return Err(missing(&absent));
        }
        let iid =
            set("CI_MERGE_REQUEST_IID").and_then(|v| v.trim().parse().ok()).ok_or_else(|| {
                CommentError::NoRequest(
                "this GitLab CI job is not a merge request pipeline (CI_MERGE_REQUEST_IID is not \
                 set): add `rules: - if: $CI_PIPELINE_SOURCE == \"merge_request_event\"`"
                    .into(),
            )
            })?;
        return Ok(Target::GitLab {
            api: set("CI_API_V4_URL").unwrap_or_default(),
            project: set("CI_PROJECT_ID").unwrap_or_default(),
            iid,
            token: set("GITLAB_TOKEN").unwrap_or_default(),
        });
    }
    Err(missing(&["GITHUB_ACTIONS (GitHub Actions) or GITLAB_CI (GitLab CI)"]))
}

/// The pull request's number: from the event file GitHub Actions writes,
/// else from `refs/pull/N/merge`.
fn github_number(set: &dyn Fn(&str) -> Option<String>) -> Option<u64> {
    let from_event = set("GITHUB_EVENT_PATH")
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|e| {
            e.pointer("/pull_request/number")
                .or_else(|| e.pointer("/number"))
                .and_then(Value::as_u64)
        });
    from_event.or_else(|| {
        let r = set("GITHUB_REF")?;
        r.strip_prefix("refs/pull/")?.split('/').next()?.parse().ok()
    })
}

/// The comment's body: the marker, then `markdown`.
pub fn body(markdown: &str) -> String {
    format!("{MARKER}\n{markdown}")
}

/// Posts `markdown` as the one Backstop comment of `target`: updates the
/// comment that carries the marker, or creates it.
pub fn post(target: &Target, markdown: &str) -> Result<Posted, CommentError> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(20)))
        .http_status_as_error(false)
        .build()
        .into();
    let body = body(markdown);
    match target {
        Target::GitHub { api, repo, number, token } => {
            let api = api.trim_end_matches('/');
            let auth = format!("Bearer {token}");
            let list = format!("{api}/repos/{repo}/issues/{number}/comments?per_page=100");
            let found = find(&agent, &list, &auth, "Authorization", "body")?;
            let payload = serde_json::json!({ "body": body }).to_string();
            let (method, url) = match found {
                Some(id) => ("PATCH", format!("{api}/repos/{repo}/issues/comments/{id}")),
                None => ("POST", format!("{api}/repos/{repo}/issues/{number}/comments")),
            };
            let id = send(&agent, (method, &url), ("Authorization", &auth), &payload)?;
            Ok(if found.is_some() { Posted::Updated(id) } else { Posted::Created(id) })
        }
        Target::GitLab { api, project, iid, token } => {
            let api = api.trim_end_matches('/');
            let notes = format!("{api}/projects/{project}/merge_requests/{iid}/notes");
            let found =
                find(&agent, &format!("{notes}?per_page=100"), token, "PRIVATE-TOKEN", "body")?;
            let payload = serde_json::json!({ "body": body }).to_string();
            let (method, url) = match found {
                Some(id) => ("PUT", format!("{notes}/{id}")),
                None => ("POST", notes.clone()),
            };
            let id = send(&agent, (method, &url), ("PRIVATE-TOKEN", token), &payload)?;
            Ok(if found.is_some() { Posted::Updated(id) } else { Posted::Created(id) })
        }
    }
}

/// The id of the first comment whose `field` holds the marker, reading
/// every page the `Link` header names.
fn find(
    agent: &ureq::Agent,
    first: &str,
    secret: &str,
    header: &str,
    field: &str,
) -> Result<Option<u64>, CommentError> {
    let mut next = Some(first.to_string());
    while let Some(url) = next.take() {
        let what = shown(&url);
        let mut response = agent
            .get(&url)
            .header(header, secret)
            .header("Accept", "application/json")
            .header("User-Agent", "backstop")
            .call()
            .map_err(|_| CommentError::Unreachable { what: what.clone() })?;
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        if !(200..300).contains(&status) {
            return Err(api_error(what, status, &text));
        }
        let comments: Vec<Value> = serde_json::from_str(&text).unwrap_or_default();
        let mine = comments
            .iter()
            .find(|c| c.get(field).and_then(Value::as_str).is_some_and(|b| b.starts_with(MARKER)));
        if let Some(id) = mine.and_then(|c| c.get("id")).and_then(Value::as_u64) {
            return Ok(Some(id));
        }
        next = response.headers().get("link").and_then(|l| l.to_str().ok()).and_then(next_page);
    }
    Ok(None)
}

/// Sends `payload` with `method` to `url`: the id of the comment it made
/// or changed.
fn send(
    agent: &ureq::Agent,
    (method, url): (&str, &str),
    (header, secret): (&str, &str),
    payload: &str,
) -> Result<u64, CommentError> {
    let what = format!("{method} {}", shown(url));
    let request = match method {
        "POST" => agent.post(url),
        "PATCH" => agent.patch(url),
        _ => agent.put(url),
    };
    let mut response = request
        .header(header, secret)
        .header("Accept", "application/json")
        .header("Content-Type", "application/json")
        .header("User-Agent", "backstop")
        .send(payload)
        .map_err(|_| CommentError::Unreachable { what: what.clone() })?;
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    if !(200..300).contains(&status) {
        return Err(api_error(what, status, &text));
    }
    let made: Value = serde_json::from_str(&text).unwrap_or_default();
    Ok(made.get("id").and_then(Value::as_u64).unwrap_or_default())
}

/// The URL of the next page in a `Link` header, if it names one.
fn next_page(link: &str) -> Option<String> {
    link.split(',').find(|part| part.contains("rel=\"next\"")).and_then(|part| {
        let start = part.find('<')? + 1;
        let end = part.find('>')?;
        Some(part[start..end].to_string())
    })
}

/// A URL as messages show it: without its query.
fn shown(url: &str) -> String {
    url.split('?').next().unwrap_or(url).to_string()
}

/// An API's refusal, with what it said (its `message`, cut short).
fn api_error(what: String, status: u16, text: &str) -> CommentError {
    let message = serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string));
    let said = match message {
        Some(m) => format!(": {}", m.chars().take(200).collect::<String>()),
        None => String::new(),
    };
    CommentError::Api { what, status, said }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let owned: Vec<(String, String)> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| owned.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    #[test]
    fn the_target_comes_from_the_ci_jobs_environment() {
        let github = env(&[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_REPOSITORY", "acme/shop"),
            ("GITHUB_REF", "refs/pull/42/merge"),
            ("GITHUB_TOKEN", "ghs_secret"),
        ]);
        let t = target(&github).unwrap();
        assert_eq!(t.describe(), "pull request acme/shop#42");
        // A push, not a pull request: said, with the fix.
        let push = env(&[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_REPOSITORY", "acme/shop"),
            ("GITHUB_REF", "refs/heads/main"),
            ("GITHUB_TOKEN", "ghs_secret"),
        ]);
        let e = target(&push).unwrap_err().to_string();
        assert!(e.contains("not for a pull request"), "{e}");
        // No token: named, and nothing else is asked.
        let e = target(&env(&[("GITHUB_ACTIONS", "true"), ("GITHUB_REPOSITORY", "a/b")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("GITHUB_TOKEN not set"), "{e}");
        let gitlab = env(&[
            ("GITLAB_CI", "true"),
            ("CI_API_V4_URL", "https://gitlab.example.com/api/v4"),
            ("CI_PROJECT_ID", "7"),
            ("CI_MERGE_REQUEST_IID", "3"),
            ("GITLAB_TOKEN", "glpat-secret"),
        ]);
        assert_eq!(target(&gitlab).unwrap().describe(), "merge request !3 of project 7");
        let e = target(&env(&[])).unwrap_err().to_string();
        assert!(e.contains("GITHUB_ACTIONS"), "{e}");
    }

    #[test]
    fn the_next_page_is_read_from_the_link_header() {
        let link = "<https://api.github.com/x?page=2>; rel=\"next\", <https://api.github.com/x?page=5>; rel=\"last\"";
        assert_eq!(next_page(link).as_deref(), Some("https://api.github.com/x?page=2"));
        assert_eq!(next_page("<https://x?page=1>; rel=\"prev\""), None);
    }
}
