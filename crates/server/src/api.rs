//! The routes. Reads: health, flagd's `/flags.json`, OFREP evaluation and
//! its event stream, metrics and the status page (all behind the token
//! when `[serve] private`). Writes: a flag on or off, a release killed;
//! they need the token always, and run the same core functions as
//! `backstop flags`, so they are audited and announced the same way.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use backstop_core::flags::{self, eval::ErrorCode, Evaluation};
use serde_json::{json, Value};

use crate::{Auth, Shared};

type Ctx = State<Arc<Shared>>;

/// Bodies above this are refused with 413 before they are read.
pub(crate) const BODY_LIMIT: usize = 64 * 1024;

/// How often the stream sends a heartbeat comment.
const HEARTBEAT: Duration = Duration::from_secs(15);

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let reads = Router::new()
        .route("/", get(page))
        .route(
            "/status.css",
            get(|| async { asset("text/css; charset=utf-8", crate::page::STYLE) }),
        )
        .route(
            "/status.js",
            get(|| async { asset("text/javascript; charset=utf-8", crate::page::SCRIPT) }),
        )
        .route("/flags.json", get(flags_json))
        .route("/ofrep/v1/configuration", get(configuration))
        .route("/ofrep/v1/evaluate/flags", post(bulk))
        .route("/ofrep/v1/evaluate/flags/{key}", post(single))
        .route("/ofrep/v1/events", get(events))
        .route("/metrics", get(metrics))
        .route_layer(middleware::from_fn_with_state(shared.clone(), private_reads));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/api/flags/{key}", post(set_flag))
        .route("/api/releases/{release}/kill", post(kill))
        .merge(reads)
        .fallback(|| async { error(StatusCode::NOT_FOUND, "GENERAL", "no such route".into()) })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(
            tower_http::trace::TraceLayer::new_for_http()
                .make_span_with(
                    tower_http::trace::DefaultMakeSpan::new().level(tracing::Level::INFO),
                )
                .on_response(
                    tower_http::trace::DefaultOnResponse::new().level(tracing::Level::INFO),
                ),
        )
        .with_state(shared)
}

/// An OFREP-shaped error body (`errorCode`, `errorDetails`).
fn error(status: StatusCode, code: &str, details: String) -> Response {
    (status, Json(json!({ "errorCode": code, "errorDetails": details }))).into_response()
}

/// A request refused before any work: its status, OFREP error code and why.
struct Problem(StatusCode, &'static str, String);

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        error(self.0, self.1, self.2)
    }
}

/// The refusal for a request without the right token, or `None` to go on.
fn refusal(shared: &Shared, headers: &HeaderMap, write: bool) -> Option<Response> {
    who(shared, headers, write).err().map(|r| *r)
}

/// The name of the token a request carries (`None` where reads need none),
/// or the refusal.
fn who(shared: &Shared, headers: &HeaderMap, write: bool) -> Result<Option<String>, Box<Response>> {
    let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let refused = match shared.authorized(given) {
        Auth::Ok(name) => return Ok(Some(name)),
        Auth::WritesOff if !write => return Ok(None),
        Auth::WritesOff => error(
            StatusCode::FORBIDDEN,
            "GENERAL",
            "writes are off: set [serve] token (for example token = \"${BACKSTOP_SERVE_TOKEN}\") to allow them".into(),
        ),
        Auth::Missing => (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                Json(json!({
                    "errorCode": "GENERAL",
                    "errorDetails": "this needs Authorization: Bearer <token> ([serve] token)"
                })),
            )
                .into_response(),
        Auth::Wrong => error(StatusCode::FORBIDDEN, "GENERAL", "the token is not right".into()),
    };
    Err(Box::new(refused))
}

async fn private_reads(State(shared): Ctx, request: Request, next: Next) -> Response {
    if shared.options.private {
        if let Some(refused) = refusal(&shared, request.headers(), false) {
            return refused;
        }
    }
    next.run(request).await
}

async fn readyz(State(shared): Ctx) -> Response {
    let unavailable = |text: String| (StatusCode::SERVICE_UNAVAILABLE, text).into_response();
    if !shared.loaded.load(Ordering::SeqCst) {
        return unavailable(
            "not ready: the flags have not been read from the database yet\n".into(),
        );
    }
    match shared.stale() {
        Some(since) => unavailable(format!(
            "serving the last known flags, read before {}: the database is not reachable\n",
            since.to_rfc3339()
        )),
        None if shared.ready.load(Ordering::SeqCst) => "ready\n".into_response(),
        None => unavailable("the database is not reachable\n".into()),
    }
}

/// The answer to an evaluation asked before the flags were ever read:
/// nothing is said as if it were known (not even "not found").
fn not_loaded(shared: &Shared) -> Option<Response> {
    if shared.loaded.load(Ordering::SeqCst) {
        return None;
    }
    let mut r = error(
        StatusCode::SERVICE_UNAVAILABLE,
        "GENERAL",
        "the flags have not been read from the database yet; retry in a second".into(),
    );
    r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    Some(r)
}

/// Marks an answer made from the last known flags while the database is
/// out of reach: `X-Backstop-Stale: <since>`.
fn marked(shared: &Shared, mut response: Response) -> Response {
    if let Some(since) = shared.stale() {
        if let Ok(v) = HeaderValue::from_str(&since.to_rfc3339()) {
            response.headers_mut().insert(STALE, v);
        }
    }
    response
}

/// The header that says the flags served are the last known ones.
const STALE: &str = "x-backstop-stale";

/// Whether the request's `If-None-Match` names `etag`.
fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
}

fn with_etag(mut response: Response, etag: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(etag) {
        response.headers_mut().insert(header::ETAG, v);
    }
    response
}

async fn flags_json(State(shared): Ctx, headers: HeaderMap) -> Response {
    if let Some(r) = not_loaded(&shared) {
        return r;
    }
    let evaluator = shared.evaluator();
    let etag = evaluator.etag().to_string();
    if not_modified(&headers, &etag) {
        return with_etag(StatusCode::NOT_MODIFIED.into_response(), &etag);
    }
    let list: Vec<_> = evaluator.flags().cloned().collect();
    marked(&shared, with_etag(Json(flags::flagd_document(&list)).into_response(), &etag))
}

async fn configuration() -> Json<Value> {
    Json(json!({
        "name": "backstop",
        "capabilities": {
            "cacheInvalidation": { "polling": { "enabled": true, "minPollingIntervalMs": 1000 } },
            "flagEvaluation": { "unsupportedTypes": [] }
        }
    }))
}

/// The evaluation context of an OFREP request body; an error response when
/// the body is not JSON or the context not an object.
fn context(body: &Bytes) -> Result<Value, Problem> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    let parsed: Value = serde_json::from_slice(body).map_err(|e| {
        Problem(StatusCode::BAD_REQUEST, "PARSE_ERROR", format!("the body is not JSON: {e}"))
    })?;
    let Value::Object(mut body) = parsed else {
        return Err(Problem(
            StatusCode::BAD_REQUEST,
            "INVALID_CONTEXT",
            "the body must be an object: {\"context\": {...}}".into(),
        ));
    };
    match body.remove("context") {
        None | Some(Value::Null) => Ok(json!({})),
        Some(c @ Value::Object(_)) => Ok(c),
        Some(_) => Err(Problem(
            StatusCode::BAD_REQUEST,
            "INVALID_CONTEXT",
            "\"context\" must be an object".into(),
        )),
    }
}

fn too_many() -> Response {
    let mut r = error(
        StatusCode::TOO_MANY_REQUESTS,
        "GENERAL",
        "over [serve] max_evaluations_per_second; retry after a second".into(),
    );
    r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

/// The value a disabled flag is answered with, so that every provider
/// takes the answer as a value (the npm one calls a 200 without `value`
/// malformed, the Go and Java ones the same): the application's own code
/// default when `[[flags]]` declares it, else the `off` variant's value,
/// else `false` for a flag of booleans; otherwise none, and clients fall
/// back to their default.
fn disabled_value(flag: Option<&flags::Flag>) -> Option<Value> {
    let flag = flag?;
    if let Some(v) = flag.code_default.clone().filter(|v| !v.is_null()) {
        return Some(v);
    }
    if let Some(v) = flag.variants.get("off") {
        return Some(v.clone());
    }
    flag.variants.values().all(Value::is_boolean).then_some(Value::Bool(false))
}

/// One evaluation as OFREP answers it.
fn answer(e: &Evaluation, flag: Option<&flags::Flag>, metadata: &Value) -> Value {
    match e.error_code {
        Some(code) => json!({
            "key": e.key,
            "errorCode": code,
            "errorDetails": e.error_details,
        }),
        None => {
            let mut out = json!({ "key": e.key, "reason": e.reason, "metadata": metadata });
            if let Some(v) = e.value.clone().or_else(|| disabled_value(flag)) {
                out["value"] = v;
            }
            match &e.variant {
                Some(v) => out["variant"] = json!(v),
                // Off: no variant. It is still named (null) because the
                // official Python provider reads it unconditionally.
                None => out["variant"] = Value::Null,
            }
            out
        }
    }
}

fn metadata(shared: &Shared, flag: Option<&flags::Flag>) -> Value {
    let mut out = flag.map(|f| json!({ "release": f.release })).unwrap_or_else(|| json!({}));
    if let Some(since) = shared.stale() {
        out["stale"] = json!(since.to_rfc3339());
    }
    out
}

async fn single(State(shared): Ctx, Path(key): Path<String>, body: Bytes) -> Response {
    if let Some(r) = not_loaded(&shared) {
        return r;
    }
    let context = match context(&body) {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    if !shared.admit(1) {
        return too_many();
    }
    let evaluator = shared.evaluator();
    let e = evaluator.evaluate(&key, &context);
    shared.metrics.evaluated(std::slice::from_ref(&e));
    let status = match e.error_code {
        None => StatusCode::OK,
        Some(ErrorCode::FlagNotFound) => StatusCode::NOT_FOUND,
        Some(_) => StatusCode::BAD_REQUEST,
    };
    let flag = evaluator.flags().find(|f| f.key == key);
    marked(&shared, (status, Json(answer(&e, flag, &metadata(&shared, flag)))).into_response())
}

async fn bulk(State(shared): Ctx, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(r) = not_loaded(&shared) {
        return r;
    }
    let context = match context(&body) {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    let evaluator = shared.evaluator();
    // The answer depends on the flags and on the context: both make the tag.
    let etag = format!(
        "\"{}\"",
        &blake3::hash(format!("{}{}", evaluator.etag(), context).as_bytes()).to_hex()[..20]
    );
    if not_modified(&headers, &etag) {
        return with_etag(StatusCode::NOT_MODIFIED.into_response(), &etag);
    }
    let n = evaluator.flags().count().max(1);
    if !shared.admit(n) {
        return too_many();
    }
    let all = evaluator.evaluate_all(&context);
    shared.metrics.evaluated(&all);
    let flags: Vec<Value> = all
        .iter()
        .map(|e| {
            let flag = evaluator.flags().find(|f| f.key == e.key);
            answer(e, flag, &metadata(&shared, flag))
        })
        .collect();
    let mut body = json!({
        "flags": flags,
        "metadata": { "refreshConnections": true },
        "eventStreams": [{ "type": "sse", "url": "/ofrep/v1/events" }],
    });
    if let Some(since) = shared.stale() {
        body["metadata"]["stale"] = json!(since.to_rfc3339());
    }
    marked(&shared, with_etag(Json(body).into_response(), &etag))
}

/// Counts a stream client while it is connected.
struct Client(Arc<Shared>);

impl Drop for Client {
    fn drop(&mut self) {
        self.0.stream_clients.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn events(
    State(shared): Ctx,
) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>> {
    shared.stream_clients.fetch_add(1, Ordering::SeqCst);
    let changes = shared.changes.subscribe();
    let shutdown = shared.shutdown.clone();
    let hello = Event::default().comment("connected");
    let state = (Client(shared), changes, shutdown, Some(hello));
    let stream = futures_util::stream::unfold(
        state,
        |(client, mut changes, mut shutdown, hello)| async move {
            if let Some(hello) = hello {
                return Some((Ok(hello), (client, changes, shutdown, None)));
            }
            if *shutdown.borrow() {
                return None;
            }
            let etag = tokio::select! {
                change = changes.recv() => match change {
                    Ok(change) => change.etag,
                    // Missed some: one refetch covers them all.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        client.0.evaluator().etag().to_string()
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                },
                _ = shutdown.changed() => return None,
            };
            let data = json!({ "type": "refetchEvaluation", "etag": etag });
            Some((Ok(Event::default().data(data.to_string())), (client, changes, shutdown, None)))
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::new().interval(HEARTBEAT).text("heartbeat"))
}

async fn metrics(State(shared): Ctx) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        crate::metrics::render(&shared),
    )
        .into_response()
}

async fn page(State(shared): Ctx) -> Response {
    match crate::page::render(&shared, &shared.options.database) {
        Ok(html) => secured(Html(html).into_response()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "GENERAL", format!("the page: {e}")),
    }
}

/// The page's script or style.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    secured(([(header::CONTENT_TYPE, content_type)], body).into_response())
}

fn secured(mut response: Response) -> Response {
    for (name, value) in crate::page::SECURITY_HEADERS {
        response.headers_mut().insert(name, HeaderValue::from_static(value));
    }
    response
}

/// The body of a write: what to do and why.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SetFlag {
    enabled: bool,
    percent: Option<u32>,
    reason: String,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Kill {
    reason: String,
}

fn parse<T: serde::de::DeserializeOwned>(body: &Bytes, shape: &str) -> Result<T, Problem> {
    serde_json::from_slice(body)
        .map_err(|e| Problem(StatusCode::BAD_REQUEST, "PARSE_ERROR", format!("{e}; send {shape}")))
}

/// Runs a flag change on its own connection, off the async workers,
/// recorded as made by the named token `by`.
async fn write<T: serde::Serialize + Send + 'static>(
    shared: &Arc<Shared>,
    by: String,
    change: impl FnOnce(&mut postgres::Client, &str, Duration) -> Result<T, flags::FlagsError>
        + Send
        + 'static,
) -> Response {
    let url = shared.options.url.clone();
    let lock_wait = shared.options.lock_wait;
    let done = tokio::task::spawn_blocking(move || {
        let mut client = backstop_core::pg::connect(&url, "backstop serve")
            .map_err(|e| (StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
        let actor = format!("{by} (backstop serve token)");
        change(&mut client, &actor, lock_wait).map_err(|e| {
            let status = match e.exit_code() {
                2 if matches!(
                    e,
                    flags::FlagsError::UnknownFlag { .. }
                        | flags::FlagsError::UnknownRelease { .. }
                ) =>
                {
                    StatusCode::NOT_FOUND
                }
                2 => StatusCode::BAD_REQUEST,
                _ => StatusCode::SERVICE_UNAVAILABLE,
            };
            (status, backstop_core::kit::error::chain(&e))
        })
    })
    .await;
    match done {
        Ok(Ok(changed)) => Json(changed).into_response(),
        Ok(Err((status, message))) => error(status, "GENERAL", message),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "GENERAL", e.to_string()),
    }
}

async fn set_flag(
    State(shared): Ctx,
    Path(key): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let by = match who(&shared, &headers, true) {
        Ok(by) => by.unwrap_or_default(),
        Err(refused) => return *refused,
    };
    let req: SetFlag = match parse(
        &body,
        r#"{"enabled": true|false, "percent": 0-100 (optional), "reason": "..."}"#,
    ) {
        Ok(r) => r,
        Err(r) => return r.into_response(),
    };
    write(&shared, by, move |client, actor, wait| {
        if req.enabled {
            flags::enable(client, &key, req.percent, actor, &req.reason, wait)
        } else {
            flags::disable(client, &key, actor, &req.reason, wait)
        }
        .map(|c| vec![c])
    })
    .await
}

async fn kill(
    State(shared): Ctx,
    Path(release): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let by = match who(&shared, &headers, true) {
        Ok(by) => by.unwrap_or_default(),
        Err(refused) => return *refused,
    };
    let req: Kill = match parse(&body, r#"{"reason": "..."}"#) {
        Ok(r) => r,
        Err(r) => return r.into_response(),
    };
    write(&shared, by, move |client, actor, wait| {
        flags::kill_release(client, &release, actor, &req.reason, wait)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_become_contexts_or_the_right_errors() {
        let ok = |s: &str| context(&Bytes::from(s.to_string())).ok();
        assert_eq!(ok(""), Some(json!({})));
        assert_eq!(
            ok(r#"{"context": {"targetingKey": "u1"}}"#),
            Some(json!({"targetingKey": "u1"}))
        );
        assert_eq!(ok(r#"{}"#), Some(json!({})));
        let status = |s: &str| context(&Bytes::from(s.to_string())).err().map(|r| r.0);
        assert_eq!(status("{not json"), Some(StatusCode::BAD_REQUEST));
        assert_eq!(status(r#"{"context": 3}"#), Some(StatusCode::BAD_REQUEST));
        assert_eq!(status("[1]"), Some(StatusCode::BAD_REQUEST));
    }

    #[test]
    fn if_none_match_lists_are_understood() {
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"a\", \"b\""));
        assert!(not_modified(&h, "\"b\""));
        assert!(!not_modified(&h, "\"c\""));
    }
}
