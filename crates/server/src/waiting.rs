//! Which open connections are waiting for a request, oldest first, so
//! that a new client can take the place of one when every connection is
//! taken. A connection waits from the moment it opens until its request's
//! headers are in, and again from the moment its last answer is sent (an
//! idle keep-alive connection). One with a request in progress, an event
//! stream or a gRPC sync among them, is never chosen.
//!
//! The count of requests in progress rides on each answer's body: it ends
//! when hyper has sent the body whole, or drops it because the client left.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use axum::http;
use hyper::body::Incoming;
use hyper::service::Service;
use hyper_util::service::TowerToHyperService;
use tokio::sync::Notify;

/// The connections of one server.
#[derive(Default)]
pub(crate) struct Room {
    inner: Mutex<Inner>,
    /// Told when a connection starts waiting: the acceptor, held up while
    /// every connection is busy, may make room now.
    someone_waits: Notify,
}

#[derive(Default)]
struct Inner {
    /// The next connection's id, and the next position in the queue.
    next_id: u64,
    next_turn: u64,
    open: HashMap<u64, Open>,
    /// Connections waiting for a request, by when they started to.
    waiting: BTreeMap<u64, u64>,
}

struct Open {
    in_progress: usize,
    /// Its place in `waiting`, while it is there.
    turn: Option<u64>,
    /// It has sent at least one whole request.
    served: bool,
    closing: Arc<Notify>,
}

impl Inner {
    fn start_waiting(&mut self, id: u64) {
        let turn = self.next_turn;
        self.next_turn += 1;
        if let Some(open) = self.open.get_mut(&id) {
            open.turn = Some(turn);
            self.waiting.insert(turn, id);
        }
    }
}

impl Room {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes in a connection just accepted: it waits for its first request.
    pub fn enter(self: &Arc<Self>) -> Guest {
        let closing = Arc::new(Notify::new());
        let mut inner = self.lock();
        let id = inner.next_id;
        inner.next_id += 1;
        let open = Open { in_progress: 0, turn: None, served: false, closing: closing.clone() };
        inner.open.insert(id, open);
        inner.start_waiting(id);
        drop(inner);
        self.someone_waits.notify_one();
        Guest { room: self.clone(), id, closing }
    }

    /// Closes the connection that has waited longest for a request;
    /// `false` when none is waiting (every one is busy).
    pub fn make_room(&self) -> bool {
        let mut inner = self.lock();
        let Some((_, id)) = inner.waiting.pop_first() else { return false };
        let Some(open) = inner.open.get_mut(&id) else { return false };
        open.turn = None;
        // A permit is kept if the connection's task is not listening yet.
        open.closing.notify_one();
        true
    }

    /// Resolves when a connection may have started waiting since the last
    /// call (a missed turn is kept, so none is lost).
    pub async fn someone_waits(&self) {
        self.someone_waits.notified().await
    }

    fn begin(&self, id: u64) {
        let mut inner = self.lock();
        let Some(open) = inner.open.get_mut(&id) else { return };
        open.in_progress += 1;
        open.served = true;
        if let Some(turn) = open.turn.take() {
            inner.waiting.remove(&turn);
        }
    }

    fn end(&self, id: u64) {
        let mut inner = self.lock();
        let Some(open) = inner.open.get_mut(&id) else { return };
        open.in_progress = open.in_progress.saturating_sub(1);
        if open.in_progress == 0 {
            inner.start_waiting(id);
            drop(inner);
            self.someone_waits.notify_one();
        }
    }
}

/// One connection's place in the room; leaving it (on drop) frees it.
pub(crate) struct Guest {
    room: Arc<Room>,
    id: u64,
    closing: Arc<Notify>,
}

impl Guest {
    /// Resolves when the connection is chosen to make room.
    pub async fn chosen(&self) {
        self.closing.notified().await
    }

    /// Whether it has sent a whole request yet.
    pub fn served(&self) -> bool {
        self.room.lock().open.get(&self.id).is_some_and(|o| o.served)
    }

    /// The application as this connection serves it: each request counted
    /// in progress until its answer is sent.
    pub fn service(&self, app: TowerToHyperService<axum::Router>) -> Counted {
        Counted { app, room: self.room.clone(), id: self.id }
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        let mut inner = self.room.lock();
        if let Some(Open { turn: Some(turn), .. }) = inner.open.remove(&self.id) {
            inner.waiting.remove(&turn);
        }
    }
}

/// A request in progress on connection `id`, until dropped.
struct InProgress {
    room: Arc<Room>,
    id: u64,
}

impl InProgress {
    fn start(room: Arc<Room>, id: u64) -> InProgress {
        room.begin(id);
        InProgress { room, id }
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        self.room.end(self.id);
    }
}

/// The application, counting the requests of one connection.
#[derive(Clone)]
pub(crate) struct Counted {
    app: TowerToHyperService<axum::Router>,
    room: Arc<Room>,
    id: u64,
}

type Answer = Result<http::Response<CountedBody>, std::convert::Infallible>;

impl Service<http::Request<Incoming>> for Counted {
    type Response = http::Response<CountedBody>;
    type Error = std::convert::Infallible;
    type Future = Pin<Box<dyn Future<Output = Answer> + Send>>;

    fn call(&self, request: http::Request<Incoming>) -> Self::Future {
        let in_progress = InProgress::start(self.room.clone(), self.id);
        let answer = self.app.call(request);
        Box::pin(async move {
            let response = answer.await?;
            Ok(response.map(|body| CountedBody { body, _in_progress: in_progress }))
        })
    }
}

/// An answer's body, which keeps its request in progress until it is sent.
pub(crate) struct CountedBody {
    body: Body,
    _in_progress: InProgress,
}

impl HttpBody for CountedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_that_waited_longest_makes_room_and_a_busy_one_never_does() {
        let room = Arc::new(Room::default());
        let (a, b, c) = (room.enter(), room.enter(), room.enter());
        let busy = InProgress::start(room.clone(), a.id);
        assert!(room.make_room(), "b waited longest of those waiting");
        assert!(b.closing.notified().now_or_never_ready());
        // a's answer is sent: it waits again, now after c.
        drop(busy);
        assert!(room.make_room());
        assert!(c.closing.notified().now_or_never_ready());
        assert!(room.make_room());
        assert!(a.closing.notified().now_or_never_ready());
        assert!(!room.make_room(), "nobody is left waiting");
        assert!(a.served() && !c.served());
        drop((a, b, c));
        assert!(room.lock().open.is_empty() && room.lock().waiting.is_empty());
    }

    trait Ready {
        fn now_or_never_ready(self) -> bool;
    }

    impl<F: Future> Ready for F {
        /// Whether the future is ready at its first poll.
        fn now_or_never_ready(self) -> bool {
            let mut f = std::pin::pin!(self);
            let mut cx = Context::from_waker(std::task::Waker::noop());
            f.as_mut().poll(&mut cx).is_ready()
        }
    }
}
