//! Reference LLM chat gateway implementing the DGX error contract (SPEC §2–§6).
//!
//! Layout (one file per stage of a request, in the order a request meets them):
//! - [`edge`]: request id, panic capture, access log, metrics.
//! - [`auth`]: bearer → tenant, rate-limit admission ([`limits`]).
//! - [`routes`]: the handlers; [`validate`] and [`images`] check bodies in SPEC order.
//! - [`upstream`] calls the model server and maps its failures; [`stream`] relays SSE.
//! - [`catalog`] is the one table of error codes; [`error`] renders it; [`openapi`] and
//!   `routes::discovery` publish it.
//! - [`config`] is the only reader of the environment and the configuration files.

pub mod auth;
pub mod catalog;
pub mod config;
pub mod edge;
pub mod error;
pub mod images;
pub mod ledger;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod routes;
pub mod shared;
pub mod state;
pub mod store;
pub mod stream;
pub mod toolloop;
pub mod tools;
pub mod upstream;
pub mod validate;

pub mod testing;

use std::future::Future;
use std::net::SocketAddr;

use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;

pub use config::Config;
pub use state::AppState;

/// The whole HTTP surface. Unknown paths and methods answer `route_not_found` before auth.
pub fn app(state: AppState) -> Router {
    let bearer = Router::new()
        .route("/v1/chat/completions", post(routes::chat::v1))
        .route("/v1/models", get(routes::models::list))
        .route("/v1/info", get(routes::models::info))
        .route("/c1/chat/completions", post(routes::chat::c1))
        .route("/c1/conversations", get(routes::conversations::list))
        .route(
            "/c1/conversations/{id}",
            get(routes::conversations::get).delete(routes::conversations::delete),
        )
        .route_layer(from_fn_with_state(state.clone(), auth::require));
    let public = Router::new()
        .route("/errors", get(routes::discovery::errors))
        .route("/docs/errors", get(routes::discovery::docs))
        .route("/openapi.json", get(routes::discovery::openapi))
        .route_layer(from_fn_with_state(state.clone(), auth::public_limit));
    let ops = Router::new()
        .route("/healthz", get(routes::health::healthz))
        .route("/readyz", get(routes::health::readyz))
        .route("/metrics", get(routes::health::metrics));
    Router::new()
        .merge(bearer)
        .merge(public)
        .merge(ops)
        .fallback(edge::route_not_found)
        .method_not_allowed_fallback(edge::route_not_found)
        .layer(from_fn_with_state(state.clone(), edge::edge))
        .with_state(state)
}

/// Serves `state` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limiters = state.limiters.clone();
    // Idle buckets are dropped once a minute so that many distinct keys cannot pile up.
    let sweeper = tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            tick.tick().await;
            limiters.retain_recent();
        }
    });
    // Without TCP_NODELAY each small SSE write waits for the client's delayed ACK (~40 ms
    // between chunks, measured by the load run).
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::trace!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    let result = axum::serve(
        listener,
        app(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await;
    sweeper.abort();
    result
}

/// A gateway serving on a background task (tests, the conformance harness, load tests).
#[derive(Debug)]
pub struct Running {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // Open streams could hold a graceful shutdown forever; bound it.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), &mut self.task).await;
        self.task.abort();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Binds `addr` (use port 0 in tests) and serves in the background.
pub async fn spawn(state: AppState, addr: SocketAddr) -> std::io::Result<Running> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, state, async move {
        let _ = rx.await;
    }));
    Ok(Running {
        addr,
        stop: Some(tx),
        task,
    })
}
