//! The connection edge: our own accept loop over hyper's HTTP/1 server, so that every wait
//! and every connection is bounded (issue 15 items 1, 6, 7, 17).
//!
//! - connections: a global semaphore (`MAX_CONNECTIONS`) and a per-client-IP count
//!   (`MAX_CONNECTIONS_PER_IP`) taken in the accept loop; past either the socket is closed at
//!   once; accept errors (EMFILE…) are logged and retried after a short pause;
//! - hyper's timer bounds the request head (`HEADER_READ_TIMEOUT_SECS`), its read buffer the
//!   head's size (`MAX_HEADER_BYTES`); [`Polled`] bounds each pause while a body arrives
//!   (`BODY_READ_TIMEOUT_SECS`);
//! - a per-connection watchdog closes a connection idle with no request in flight
//!   (`IDLE_TIMEOUT_SECS`) and one whose write has been blocked too long
//!   (`SEND_TIMEOUT_SECS`: a caller that stopped reading; dropping the connection drops the
//!   response body, which releases the upstream, the /c1 lock and settles the reservation);
//! - an answer to a request whose body was not read to its end closes the connection by
//!   lingering (`LINGER_SECS`, [`super::socket`]), so a caller still sending that body reads
//!   the answer instead of a reset;
//! - hyper's own 400/414/431 answers are rewritten on the way out into the catalog envelope
//!   with an `x-request-id` ([`super::socket`]);
//! - shutdown: stop accepting, ask each connection to finish, end open streams with
//!   `event: error` ([`guard`]), and give up after `SHUTDOWN_GRACE_SECS`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::{header, StatusCode};
use axum::response::Response;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::config::ServerLimits;
use crate::state::AppState;

use super::socket::{watchdog, Activity, Busy, Watched};
use super::workers::Workers;

/// The parts of the edge every request can reach through [`AppState`].
#[derive(Debug)]
pub struct EdgeShared {
    in_flight: Arc<Semaphore>,
    max_in_flight: usize,
    shutdown: watch::Sender<bool>,
    /// `/readyz`: the last answer and when it was computed.
    pub ready_cache: tokio::sync::Mutex<Option<(Instant, StatusCode, serde_json::Value)>>,
}

impl EdgeShared {
    pub fn new(limits: &ServerLimits) -> Self {
        EdgeShared {
            in_flight: Arc::new(Semaphore::new(limits.max_in_flight)),
            max_in_flight: limits.max_in_flight,
            shutdown: watch::channel(false).0,
            ready_cache: tokio::sync::Mutex::new(None),
        }
    }

    /// Open streams end with `event: error`; connections finish their current request.
    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// Resolves once shutdown began (never, if the state is dropped first).
    pub fn stopping(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.shutdown.subscribe();
        async move {
            if rx.wait_for(|v| *v).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

/// The global in-flight cap, taken by [`super::edge`] on the main router (every route but
/// `/healthz`, which must answer while the gateway is saturated): `Ok(None)` for
/// `/healthz`, `Err` with the saturation answer when the cap is reached.
pub(super) fn in_flight(
    state: &AppState,
    path: &str,
) -> Result<Option<OwnedSemaphorePermit>, crate::error::ApiError> {
    if path == "/healthz" {
        return Ok(None);
    }
    match state.edge.in_flight.clone().try_acquire_owned() {
        Ok(permit) => Ok(Some(permit)),
        Err(_) => Err(crate::upstream::gateway_saturated(state.edge.max_in_flight)),
    }
}

/// Holds the in-flight `permit` until the response body has ended, and gives SSE streams
/// their shutdown end (`event: error` when the gateway stops).
pub(super) fn guarded(state: &AppState, resp: Response, permit: OwnedSemaphorePermit) -> Response {
    let is_sse = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let stop = is_sse.then(|| Box::pin(state.edge.stopping()) as Stopping);
    resp.map(|inner| {
        Body::new(EdgeBody {
            inner,
            guard: Some(Box::new(permit)),
            stop,
        })
    })
}

type Stopping = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A response body that holds a guard until it is dropped and, for streams, ends with
/// `event: error` when the gateway shuts down.
struct EdgeBody {
    inner: Body,
    guard: Option<Box<dyn Send + Sync>>,
    stop: Option<Stopping>,
}

impl HttpBody for EdgeBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        if let Some(stop) = this.stop.as_mut() {
            if stop.as_mut().poll(cx).is_ready() {
                this.stop = None;
                // Dropping the relay now releases the upstream and settles what was sent.
                this.inner = Body::empty();
                let e = crate::upstream::shutting_down();
                return Poll::Ready(Some(Ok(Frame::data(crate::upstream::sse::error_event(&e)))));
            }
        }
        let r = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(None) = r {
            this.guard = None;
            this.stop = None;
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.stop.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        if self.stop.is_some() {
            SizeHint::default()
        } else {
            self.inner.size_hint()
        }
    }
}

/// How far the handler read a request body ([`Polled`]).
const BODY_UNTOUCHED: u8 = 0;
const BODY_STARTED: u8 = 1;
const BODY_ENDED: u8 = 2;

/// A request body that records how far the handler read it, and bounds each pause while it
/// arrives (`BODY_READ_TIMEOUT_SECS`): a read that has waited that long since the last frame
/// fails. The timer is armed only when a read has to wait; tower-http's `TimeoutBody`, used
/// before, armed one on every read, a timer-wheel entry per request even when the whole body
/// came with the head (about 3 % of a plain request's instructions, callgrind, README "The
/// cost of one hop").
struct Polled<B> {
    inner: B,
    read: Arc<AtomicU8>,
    timeout: Duration,
    pause: Option<Pin<Box<tokio::time::Sleep>>>,
}

/// The error of a body read that waited [`ServerLimits::body_read_timeout`].
#[derive(Debug)]
struct BodyPaused;

impl std::fmt::Display for BodyPaused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body paused longer than BODY_READ_TIMEOUT_SECS")
    }
}

impl std::error::Error for BodyPaused {}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<B> HttpBody for Polled<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let r = match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(r) => {
                this.pause = None;
                Poll::Ready(r.map(|frame| frame.map_err(Into::into)))
            }
            Poll::Pending => {
                let timeout = this.timeout;
                let pause = this
                    .pause
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match pause.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(BoxError::from(BodyPaused)))),
                    Poll::Pending => Poll::Pending,
                }
            }
        };
        let now = match &r {
            Poll::Ready(None) => BODY_ENDED,
            _ if this.inner.is_end_stream() => BODY_ENDED,
            _ => BODY_STARTED,
        };
        this.read.fetch_max(now, Ordering::Relaxed);
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Connections per client address, bounded.
#[derive(Default)]
struct PerIp(parking_lot::Mutex<HashMap<IpAddr, usize>>);

struct IpSlot(Arc<PerIp>, IpAddr);

impl PerIp {
    fn take(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<IpSlot> {
        let mut m = self.0.lock();
        let n = m.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(IpSlot(self.clone(), ip))
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut m = (self.0).0.lock();
        if let Some(n) = m.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.1);
            }
        }
    }
}

/// Warn at most once a second about refused connections: a flood must not flood the log.
fn warn_refused(last: &AtomicU64, started: Instant, peer: SocketAddr, why: &str) {
    let now = started.elapsed().as_secs() + 1;
    if last.swap(now, Ordering::Relaxed) != now {
        tracing::warn!(%peer, why, "connection refused");
    } else {
        tracing::debug!(%peer, why, "connection refused");
    }
}

/// Serves `app` on `listener` with the bounds of `limits` until `shutdown` resolves; then
/// drains for at most `limits.shutdown_grace`. With `workers`, each connection is served
/// whole on one of them ([`super::workers`]); without, on the caller's runtime.
pub(crate) async fn serve_router(
    listener: TcpListener,
    app: axum::Router,
    edge: Arc<EdgeShared>,
    limits: ServerLimits,
    workers: Option<&Workers>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let conns = Arc::new(Semaphore::new(limits.max_connections));
    let per_ip = Arc::new(PerIp::default());
    let started = Instant::now();
    let last_warn = AtomicU64::new(0);
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: log, pause, keep serving the open connections.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(global) = conns.clone().try_acquire_owned() else {
            warn_refused(&last_warn, started, peer, "MAX_CONNECTIONS reached");
            continue;
        };
        let Some(slot) = per_ip.take(peer.ip(), limits.max_connections_per_ip) else {
            warn_refused(&last_warn, started, peer, "MAX_CONNECTIONS_PER_IP reached");
            continue;
        };
        // Without TCP_NODELAY each small SSE write waits for the client's delayed ACK.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::trace!(error = %e, "cannot set TCP_NODELAY");
        }
        let stop = edge.stopping();
        let slots = (global, slot);
        match workers.and_then(Workers::pick) {
            None => {
                tasks.spawn(connection(
                    tcp,
                    peer,
                    app.clone(),
                    limits.clone(),
                    stop,
                    slots,
                ));
            }
            Some((worker, open)) => {
                // The socket leaves this runtime's reactor and joins the worker's, so that
                // its readiness wakes the worker's thread and no other.
                let tcp = match tcp.into_std() {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "cannot hand the connection over");
                        continue;
                    }
                };
                let (app, limits) = (app.clone(), limits.clone());
                tasks.spawn_on(
                    async move {
                        let _open = open;
                        match TcpStream::from_std(tcp) {
                            Ok(tcp) => connection(tcp, peer, app, limits, stop, slots).await,
                            Err(e) => {
                                tracing::debug!(%peer, error = %e, "cannot register the connection")
                            }
                        }
                    },
                    worker,
                );
            }
        }
    }
    edge.begin_shutdown();
    drop(listener);
    let open = tasks.len();
    let drained = tokio::time::timeout(limits.shutdown_grace, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = tasks.len(),
            of = open,
            "SHUTDOWN_GRACE_SECS passed; closing the remaining connections"
        );
        tasks.abort_all();
    }
    Ok(())
}

async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    app: axum::Router,
    limits: ServerLimits,
    stop: impl Future<Output = ()>,
    _slots: (OwnedSemaphorePermit, IpSlot),
) {
    let act = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        inner: tcp,
        act: act.clone(),
        rewrite: None,
        lingering: false,
    });
    let body_timeout = limits.body_read_timeout;
    let svc_act = act.clone();
    let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let app = app.clone();
        let busy = Busy::new(svc_act.clone());
        let read = Arc::new(AtomicU8::new(if req.body().is_end_stream() {
            BODY_ENDED
        } else {
            BODY_UNTOUCHED
        }));
        let body_read = read.clone();
        let mut req = req.map(|b| {
            Body::new(Polled {
                inner: b,
                read: body_read,
                timeout: body_timeout,
                pause: None,
            })
        });
        req.extensions_mut().insert(ConnectInfo(peer));
        let act = svc_act.clone();
        async move {
            let mut resp = match app.oneshot(req).await {
                Ok(r) => r,
                Err(never) => match never {},
            };
            // Refused before the body was read at all (401, 429, a Content-Length over the
            // cap): hyper then reads the rest of the body only if it has already arrived, and
            // otherwise closes the connection after the answer, without saying so. A client
            // that was told nothing pools the connection, and its next request there fails
            // with "connection closed before message completed". So say it (RFC 9112 §9.6).
            // A body read in part (over the cap while reading) is left to hyper as before.
            // Either way the close lingers ([`Watched`]): the caller may still be sending.
            let read = read.load(Ordering::Relaxed);
            if read == BODY_UNTOUCHED {
                resp.headers_mut().insert(
                    header::CONNECTION,
                    header::HeaderValue::from_static("close"),
                );
            }
            act.set_unread_body(read != BODY_ENDED);
            Ok::<_, Infallible>(resp.map(|inner| EdgeBody {
                inner,
                guard: Some(Box::new(busy)),
                stop: None,
            }))
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes)
        .max_header_size(limits.max_header_bytes)
        .keep_alive(true);
    let conn = builder.serve_connection(io, svc);
    tokio::pin!(conn);
    tokio::pin!(stop);
    let mut draining = false;
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            _ = &mut stop, if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
            why = watchdog(&act, &limits) => {
                tracing::debug!(%peer, why, "closing connection");
                return;
            }
        }
    }
}
