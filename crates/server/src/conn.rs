//! Accepting connections with limits that keep the kill switch up under
//! load: at most `max_connections` served at once (the rest wait in the
//! listen queue instead of exhausting file descriptors), and a client that
//! does not send its request's headers within `header_timeout` is
//! disconnected, so slow clients cannot hold every slot. On shutdown the
//! server stops accepting and lets the connections it has finish.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// How many connections, and how patient with each.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
}

/// How long connections get to finish once the server stops.
const DRAIN: Duration = Duration::from_secs(10);

/// File descriptors beyond the connections: the database sessions, logs.
const SPARE_FILES: u64 = 256;

/// Raises this process's open-file limit as far as the connections need
/// and the hard limit allows; says so when it cannot be raised enough.
fn raise_file_limit(connections: usize) {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else { return };
    let want = connections as u64 + SPARE_FILES;
    if soft >= want {
        return;
    }
    let new = want.min(hard);
    let _ = setrlimit(Resource::RLIMIT_NOFILE, new, hard);
    if new < want {
        eprintln!(
            "warning: [serve] max_connections = {connections} needs about {want} open files and \
             this process may open {new}; lower max_connections or raise the hard limit (ulimit -Hn)"
        );
    }
}

/// Serves `app` on `listener` until `signal` completes.
pub(crate) async fn run(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    signal: impl Future<Output = ()>,
) {
    raise_file_limit(limits.max_connections);
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    let service = TowerToHyperService::new(app);
    tokio::pin!(signal);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut signal => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors or a client gone at once:
                    // wait a moment rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut signal => break,
        };
        let _ = stream.set_nodelay(true);
        let connection =
            builder.serve_connection_with_upgrades(TokioIo::new(stream), service.clone());
        let connection = graceful.watch(connection.into_owned());
        tokio::spawn(async move {
            let _ = connection.await;
            drop(slot);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(DRAIN) => {}
    }
}
