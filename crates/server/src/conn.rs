//! Accepting connections with limits that keep the kill switch up under
//! load. At most `max_connections` are open at once; when every one is
//! taken, a new client takes the place of the connection that has waited
//! longest for a request (one still trickling its headers, or idle between
//! requests), so slow clients cannot keep new ones out however many they
//! are. Only when every connection has a request in progress do new ones
//! wait in the listen queue. A client that does not send its request's
//! headers within `header_timeout` is disconnected, and so is a new
//! connection that has sent no request by then (an HTTP/2 preface
//! trickled). On shutdown the server stops accepting and lets the
//! connections it has finish.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::waiting::Room;

/// How many connections, and how patient with each.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
}

/// How long connections get to finish once the server stops.
const DRAIN: Duration = Duration::from_secs(10);

/// File descriptors beyond the connections: the one accepted while room
/// is made for it, the database sessions, logs.
const SPARE_FILES: u64 = 256;

/// Connections the kernel completes and queues before they are accepted
/// (it caps this at `net.core.somaxconn`). The 128 most listeners get
/// drops new clients' SYNs under a burst: each drop costs them a second.
const LISTEN_BACKLOG: u32 = 4096;

/// Listens on `addr` with a listen queue long enough for bursts.
pub(crate) fn bind(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

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
    let room = Arc::new(Room::default());
    let graceful = GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    let service = TowerToHyperService::new(app);
    tokio::pin!(signal);
    loop {
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
        let slot = tokio::select! {
            slot = slot(&slots, &room) => match slot {
                Some(slot) => slot,
                None => break,
            },
            () = &mut signal => break,
        };
        let _ = stream.set_nodelay(true);
        let guest = room.enter();
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), guest.service(service.clone()));
        let connection = graceful.watch(connection.into_owned());
        let header_timeout = limits.header_timeout;
        tokio::spawn(async move {
            // No first request in time: only a deadline for its headers
            // once HTTP/1 is known, none for an HTTP/2 preface.
            let silent = async {
                tokio::time::sleep(header_timeout).await;
                if guest.served() {
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                _ = connection => {}
                () = guest.chosen() => tracing::debug!("closed a connection waiting for a request to make room"),
                () = silent => tracing::debug!("closed a connection that sent no request"),
            }
            drop(guest);
            drop(slot);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(DRAIN) => {}
    }
}

/// A connection's place: a free one, or that of the connection that has
/// waited longest for a request; while every connection is busy with
/// one, the first to finish or to start waiting. `None` once closed.
async fn slot(slots: &Arc<Semaphore>, room: &Room) -> Option<OwnedSemaphorePermit> {
    loop {
        if let Ok(slot) = slots.clone().try_acquire_owned() {
            return Some(slot);
        }
        if room.make_room() {
            return slots.clone().acquire_owned().await.ok();
        }
        tokio::select! {
            slot = slots.clone().acquire_owned() => return slot.ok(),
            () = room.someone_waits() => {}
        }
    }
}
