//! flagd's sync protocol over gRPC (`flagd.sync.v1.FlagSyncService`) on
//! the same port as the HTTP routes: flagd and its in-process providers
//! get the whole flag configuration when they connect and again the moment
//! a change commits, instead of polling `/flags.json`. Reads need the token
//! when `[serve] private`; before the flags were first read from the
//! database the answer is UNAVAILABLE (clients retry), never an empty set.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use backstop_core::flags;
use futures_util::Stream;
use tokio::sync::broadcast::error::RecvError;
use tonic::{Request, Response, Status};

use crate::{Auth, Shared};

mod proto {
    tonic::include_proto!("flagd.sync.v1");
}

use proto::flag_sync_service_server::{FlagSyncService, FlagSyncServiceServer};
use proto::{FetchAllFlagsRequest, FetchAllFlagsResponse, SyncFlagsRequest, SyncFlagsResponse};

/// The gRPC routes, to be merged into the HTTP router.
pub(crate) fn routes(shared: Arc<Shared>) -> axum::Router {
    use tonic::server::NamedService as _;
    type Server = FlagSyncServiceServer<Sync>;
    let path = format!("/{}/{{*call}}", Server::NAME);
    axum::Router::new().route_service(&path, Server::new(Sync { shared }))
}

struct Sync {
    shared: Arc<Shared>,
}

/// The flag configuration now, with its ETag.
fn document(shared: &Shared) -> (String, String) {
    let evaluator = shared.evaluator();
    let list: Vec<_> = evaluator.flags().cloned().collect();
    (evaluator.etag().to_string(), flags::flagd_document(&list).to_string())
}

/// Refuses a call without the token where reads need one, or one made
/// before the flags were read at all.
fn admit<T>(shared: &Shared, request: &Request<T>) -> Result<(), Status> {
    if shared.options.private {
        let given = request.metadata().get("authorization").and_then(|v| v.to_str().ok());
        match shared.authorized(given) {
            Auth::Ok(_) | Auth::WritesOff => {}
            Auth::Missing => {
                return Err(Status::unauthenticated(
                    "this needs the metadata authorization: Bearer <token> ([serve] token)",
                ))
            }
            Auth::Wrong => return Err(Status::permission_denied("the token is not right")),
        }
    }
    if !shared.loaded.load(Ordering::SeqCst) {
        return Err(Status::unavailable(
            "the flags have not been read from the database yet; retry in a second",
        ));
    }
    Ok(())
}

/// Counts a sync client while its stream is open.
struct Client(Arc<Shared>);

impl Drop for Client {
    fn drop(&mut self) {
        self.0.sync_clients.fetch_sub(1, Ordering::SeqCst);
    }
}

type Updates = Pin<Box<dyn Stream<Item = Result<SyncFlagsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl FlagSyncService for Sync {
    type SyncFlagsStream = Updates;

    async fn sync_flags(
        &self,
        request: Request<SyncFlagsRequest>,
    ) -> Result<Response<Self::SyncFlagsStream>, Status> {
        admit(&self.shared, &request)?;
        let shared = self.shared.clone();
        shared.sync_clients.fetch_add(1, Ordering::SeqCst);
        // Subscribe before reading the first document, so no change made
        // in between is missed.
        let changes = shared.changes.subscribe();
        let shutdown = shared.shutdown.clone();
        let state = (Client(shared), changes, shutdown, None::<String>);
        let stream = futures_util::stream::unfold(
            state,
            |(client, mut changes, mut shutdown, sent)| async move {
                loop {
                    if sent.is_some() {
                        if *shutdown.borrow() {
                            return None;
                        }
                        tokio::select! {
                            change = changes.recv() => match change {
                                // A missed change is covered by sending what is there now.
                                Ok(_) | Err(RecvError::Lagged(_)) => {}
                                Err(RecvError::Closed) => return None,
                            },
                            _ = shutdown.changed() => return None,
                        }
                    }
                    let (etag, text) = document(&client.0);
                    if sent.as_deref() == Some(etag.as_str()) {
                        continue;
                    }
                    let message = SyncFlagsResponse { flag_configuration: text };
                    return Some((Ok(message), (client, changes, shutdown, Some(etag))));
                }
            },
        );
        Ok(Response::new(Box::pin(stream)))
    }

    async fn fetch_all_flags(
        &self,
        request: Request<FetchAllFlagsRequest>,
    ) -> Result<Response<FetchAllFlagsResponse>, Status> {
        admit(&self.shared, &request)?;
        let (_, text) = document(&self.shared);
        Ok(Response::new(FetchAllFlagsResponse { flag_configuration: text }))
    }
}
