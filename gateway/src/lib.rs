//! Reference LLM chat gateway implementing the DGX error contract (SPEC §2–§6).
//!
//! # Layout
//!
//! Folders follow a request, in the order it meets them:
//!
//! - [`edge`]: request id, panic capture, access log and request metrics, fault extraction,
//!   and [`edge::routes`], the ONE route table that builds the router and the OpenAPI route
//!   docs.
//! - [`admission`]: bearer → tenant ([`admission::auth`]), then admission as its own stage:
//!   rate limits ([`admission::rate`]), budgets ([`admission::budget`]), both shared through
//!   Redis ([`admission::redis`]) when configured, Redis-then-local policy and `Reservation`.
//! - [`checks`]: the body cap and JSON ([`checks::body`]), fields in SPEC §3 order, images
//!   ([`checks::images`]), the silent `max_tokens` floor.
//! - [`chat`]: the `/v1` and `/c1` handlers with their shared prologue, and the plain SSE relay.
//! - [`toolloop`]: the server-side tool loop (non-streaming and streaming driver), call
//!   signatures, the built-in tools.
//! - [`upstream`]: the call to the model server, [`upstream::errors`] (the ONE mapping of
//!   upstream answers, transport and stream failures onto codes), [`upstream::sse`] (events,
//!   pieces, the assembler, stream hooks).
//! - [`routes`]: the other handlers (models, conversations, discovery, health).
//!
//! Beside the path: [`catalog`] (the one table of error codes), [`error`] (its rendering),
//! [`contract`] (header and event names), [`fault`] (the per-request injected fault), [`config`] (the only reader of the environment and
//! the configuration files), [`store`] (conversations in SQLite), [`metrics`], [`openapi`],
//! [`state`] (the container every stage reads).

// `pub` inside the private modules is only for what the crate exports. Checked where the
// `testing` re-exports exist (every workspace build and test run enables the feature):
// without them, the items that only tests and benches reach would count as unreachable.
#![cfg_attr(any(test, feature = "testing"), warn(unreachable_pub))]

// Stage modules are private: what other crates use is re-exported below, in `catalog` and
// `config` (public as whole modules: the code table and the configuration model are the
// API), or, for tests and benches only, in `testing`. Private modules let the compiler report
// dead code.
mod edge;

mod admission;
mod chat;
mod checks;
mod toolloop;
mod upstream;

mod routes;

pub mod catalog;
pub mod config;
mod contract;
mod error;
mod fault;
pub mod logging;
mod metrics;
mod openapi;
mod state;
mod store;

/// Test configurations and helpers, for this crate's tests, bench/ and load/ (cargo feature
/// `testing`; not in a production build).
#[cfg(any(test, feature = "testing"))]
pub mod testing;

use std::future::Future;
use std::net::SocketAddr;

use tokio::net::TcpListener;

pub use config::Config;
pub use state::{AppState, StartError};

/// The whole HTTP surface, built from the route table in [`edge::routes`].
pub fn app(state: AppState) -> axum::Router {
    edge::routes::router(state)
}

/// Serves `state` on `listener` until `shutdown` resolves, then drains for at most
/// SHUTDOWN_GRACE_SECS. `/metrics` is served on `metrics` instead when METRICS_BIND_ADDR is
/// set (the caller binds it).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with_metrics(listener, None, state, shutdown).await
}

/// [`serve`] with the separate metrics listener of METRICS_BIND_ADDR.
pub async fn serve_with_metrics(
    listener: TcpListener,
    metrics: Option<TcpListener>,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // The main listener's connections go to the connection workers (WORKER_THREADS);
    // `/metrics` on its own listener stays on this runtime.
    let workers = match state.config.limits.workers {
        0 => None,
        n => Some(edge::workers::Workers::start(
            n,
            state.config.limits.shutdown_grace,
        )?),
    };
    let limiters = state.limiters.clone();
    // Idle buckets are dropped once a minute so that many distinct keys cannot pile up.
    let sweeper = tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            tick.tick().await;
            limiters.retain_recent();
        }
    });
    let limits = state.config.limits.clone();
    let edge = state.edge.clone();
    let metrics_task = metrics.map(|l| {
        let router = edge::routes::metrics_router(state.clone());
        tokio::spawn(edge::serve::serve_router(
            l,
            router,
            edge.clone(),
            limits.clone(),
            None,
            edge.stopping(),
        ))
    });
    let result = edge::serve::serve_router(
        listener,
        app(state),
        edge,
        limits,
        workers.as_ref(),
        shutdown,
    )
    .await;
    if let Some(w) = workers {
        w.stop().await;
    }
    if let Some(t) = metrics_task {
        let _ = t.await;
    }
    sweeper.abort();
    result
}

/// A gateway serving on a background task (tests, the conformance harness, load tests).
#[derive(Debug)]
pub struct Running {
    pub addr: SocketAddr,
    /// Where `/metrics` is served when METRICS_BIND_ADDR is set.
    pub metrics_addr: Option<SocketAddr>,
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
        // serve() bounds its drain by SHUTDOWN_GRACE_SECS; this bounds a misconfigured one.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(30), &mut self.task).await;
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
    let metrics = match state.config.limits.metrics_bind {
        Some(m) => Some(TcpListener::bind(m).await?),
        None => None,
    };
    let metrics_addr = metrics.as_ref().map(|l| l.local_addr()).transpose()?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve_with_metrics(listener, metrics, state, async move {
        let _ = rx.await;
    }));
    Ok(Running {
        addr,
        metrics_addr,
        stop: Some(tx),
        task,
    })
}
