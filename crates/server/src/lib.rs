//! `backstop flags serve`: the release flags served to applications, thin over
//! `backstop-core`. flagd's flag-definition JSON (`/flags.json`, with ETag)
//! for flagd and its providers to sync from; the OpenFeature Remote
//! Evaluation Protocol (`/ofrep/v1/evaluate/flags[/{key}]`) with a
//! server-sent event stream (`/ofrep/v1/events`) that tells clients to
//! refetch the moment a change commits (PostgreSQL LISTEN/NOTIFY, so a flip
//! by any `backstop` on any host reaches every `serve`); flagd's gRPC sync
//! (`flagd.sync.v1`) on the same port, pushing each change to flagd and its
//! in-process providers; health, a status page and Prometheus metrics. Writes need the bearer token.

mod api;
mod conn;
mod listen;
mod metrics;
mod page;
mod sync;
mod waiting;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use backstop_core::flags::Evaluator;
use tokio::sync::{broadcast, watch};

/// What `backstop flags serve` needs to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub listen: String,
    /// The database's name, for the status page's title.
    pub database: String,
    /// The database URL (never shown; see `backstop_core::pg::redact`).
    pub url: String,
    /// The bearer tokens writes need, each with the name a change made with
    /// it is recorded under; none turns writes off.
    pub tokens: Vec<(String, String)>,
    /// Reads need the token too.
    pub private: bool,
    pub max_evaluations_per_second: u32,
    /// Connections open at once; a new client takes the place of the one
    /// that has waited longest for a request (see `conn`).
    pub max_connections: usize,
    /// How long a client may take to send a request's headers.
    pub header_timeout: Duration,
    pub lock_wait: Duration,
    /// Where backups are, for the status page and the metrics.
    pub backup_dir: PathBuf,
    /// The migrations folder's migrations, for the status page.
    pub migrations: Vec<backstop_core::source::Migration>,
    /// `[drill] every`: how old the last passed drill may be.
    pub drill_every: Duration,
    /// The control database of `[rollout]`, whose current rollout the
    /// status page shows (never shown itself).
    pub rollout_control: Option<String>,
}

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: the address is in use (another backstop serve?); pass --listen with a free port")]
    PortInUse { addr: String },
    #[error("cannot listen on {addr}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("--listen {addr:?} is not an address; write it like 127.0.0.1:8750")]
    BadAddress { addr: String },
}

impl ServeError {
    pub fn exit_code(&self) -> u8 {
        match self {
            ServeError::BadAddress { .. } => 2,
            _ => 3,
        }
    }
}

/// A change the stream announces.
#[derive(Debug, Clone)]
pub(crate) struct Change {
    pub etag: String,
}

/// What the status page and the metrics show besides the flags, read from
/// the database with the flags.
#[derive(Debug, Clone, Default)]
pub(crate) struct Overview {
    pub applied: Vec<(String, String, chrono::DateTime<chrono::Utc>)>,
    pub pending: Vec<String>,
    pub backups: Vec<backstop_core::backup::Manifest>,
    pub rehearsal: Option<(chrono::DateTime<chrono::Utc>, bool, Option<String>)>,
    pub events: Vec<(chrono::DateTime<chrono::Utc>, String, String, String)>,
    /// The open incident, if any: first on the page.
    pub incident: Option<backstop_core::schema::incidents::Record>,
    /// The latest rollback method started and not yet ended: its event
    /// (when, what it said), first on the page with the incident.
    pub running: Option<(chrono::DateTime<chrono::Utc>, String)>,
    pub last_decision: Option<chrono::DateTime<chrono::Utc>>,
    /// The latest decision's details as recorded (verdict, method, evidence).
    pub decision: Option<serde_json::Value>,
    /// The newest heartbeat of a running `watch`: when it last sampled.
    pub watching: Option<backstop_core::schema::watching::Beat>,
    /// The last drill and when the next is due.
    pub drill: Option<backstop_core::drill::Due>,
    /// The release ramps running, with whether a process carries them on.
    pub ramps: Vec<backstop_core::flags::ramp::RampStatus>,
    /// The latest rollout in the control database, when one is configured.
    pub rollout: Option<backstop_core::rollout::Record>,
    /// An expand in progress: which shapes are served where.
    pub expand: Option<backstop_core::expand::Open>,
}

/// Everything the handlers share.
pub(crate) struct Shared {
    pub options: Options,
    pub evaluator: RwLock<Arc<Evaluator>>,
    pub overview: RwLock<Overview>,
    /// The listener's session is up and the flags are fresh.
    pub ready: AtomicBool,
    /// The flags were read from the database at least once: before that,
    /// nothing is answered as if it were known.
    pub loaded: AtomicBool,
    /// Since when the flags served are the last known ones, the database
    /// being out of reach.
    pub stale_since: Mutex<Option<chrono::DateTime<chrono::Utc>>>,
    pub changes: broadcast::Sender<Change>,
    pub shutdown: watch::Receiver<bool>,
    pub metrics: metrics::Metrics,
    pub stream_clients: AtomicI64,
    /// Clients connected to the gRPC flag sync.
    pub sync_clients: AtomicI64,
    rate: Mutex<(f64, Instant)>,
}

impl Shared {
    pub fn evaluator(&self) -> Arc<Evaluator> {
        self.evaluator.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Takes one evaluation from the per-second budget; `false` when spent.
    pub fn admit(&self, n: usize) -> bool {
        let limit = f64::from(self.options.max_evaluations_per_second.max(1));
        let mut guard = self.rate.lock().unwrap_or_else(|e| e.into_inner());
        let (tokens, last) = &mut *guard;
        let now = Instant::now();
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * limit).min(limit);
        *last = now;
        if *tokens >= n as f64 {
            *tokens -= n as f64;
            true
        } else {
            false
        }
    }

    /// Whether `header` (the request's `Authorization`) carries one of the
    /// tokens, and which: each compared in constant time, all of them.
    pub fn authorized(&self, header: Option<&str>) -> Auth {
        if self.options.tokens.is_empty() {
            return Auth::WritesOff;
        }
        let Some(given) = header.and_then(|h| h.strip_prefix("Bearer ")) else {
            return Auth::Missing;
        };
        use subtle::ConstantTimeEq as _;
        let given = blake3::hash(given.trim().as_bytes());
        let mut found = None;
        for (name, token) in &self.options.tokens {
            let known = blake3::hash(token.as_bytes());
            if bool::from(given.as_bytes().ct_eq(known.as_bytes())) {
                found = Some(name.clone());
            }
        }
        found.map_or(Auth::Wrong, Auth::Ok)
    }

    /// `Some(since)` while the flags served are the last known ones.
    pub fn stale(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        *self.stale_since.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The outcome of checking a request's token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Auth {
    /// A token of this name.
    Ok(String),
    Missing,
    Wrong,
    /// No token is configured: nothing may be written.
    WritesOff,
}

/// Runs the server until SIGTERM or Ctrl-C; then stops taking requests,
/// ends the event streams and returns.
pub async fn serve(options: Options) -> Result<(), ServeError> {
    let addr: SocketAddr = options
        .listen
        .parse()
        .map_err(|_| ServeError::BadAddress { addr: options.listen.clone() })?;
    let listener = conn::bind(addr).map_err(|source| {
        if source.kind() == std::io::ErrorKind::AddrInUse {
            ServeError::PortInUse { addr: addr.to_string() }
        } else {
            ServeError::Bind { addr: addr.to_string(), source }
        }
    })?;
    let local = listener
        .local_addr()
        .map_err(|source| ServeError::Bind { addr: addr.to_string(), source })?;
    let (changes, _) = broadcast::channel(64);
    let (stop, shutdown) = watch::channel(false);
    let shared = Arc::new(Shared {
        evaluator: RwLock::new(Arc::new(Evaluator::new(Vec::new()))),
        overview: RwLock::new(Overview::default()),
        ready: AtomicBool::new(false),
        loaded: AtomicBool::new(false),
        stale_since: Mutex::new(None),
        changes,
        shutdown,
        metrics: metrics::Metrics::default(),
        stream_clients: AtomicI64::new(0),
        sync_clients: AtomicI64::new(0),
        rate: Mutex::new((f64::from(options.max_evaluations_per_second.max(1)), Instant::now())),
        options,
    });
    listen::start(shared.clone());
    let app = api::router(shared.clone()).merge(sync::routes(shared.clone()));
    tracing::info!(address = %local, "backstop serve listening");
    eprintln!("backstop serve: listening on http://{local}");
    if !local.ip().is_loopback() {
        eprintln!(
            "warning: listening on {local}, beyond this host: tokens and flags travel in clear \
             unless TLS is in front (a reverse proxy that terminates it)"
        );
    }
    let limits = conn::Limits {
        max_connections: shared.options.max_connections,
        header_timeout: shared.options.header_timeout,
    };
    let signal = async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        let _ = stop.send(true);
    };
    conn::run(listener, app, limits, signal).await;
    shared.ready.store(false, Ordering::SeqCst);
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
