//! The edge of the service: request ids, panic capture, access log and request metrics;
//! the route table ([`routes`]) and the connection edge
//! ([`serve`]: accept loop, timeouts, connection and in-flight caps, shutdown) and its
//! connection workers ([`workers`]: one single-threaded runtime per core).

use std::panic::AssertUnwindSafe;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt;

use crate::catalog::Code;
use crate::error::{ApiError, ErrorCause};
use crate::state::AppState;

pub(crate) mod routes;
pub(crate) mod serve;
mod socket;
pub(crate) mod workers;

pub(crate) use crate::contract::REQUEST_ID;

/// A caller's id is kept when it is short and plain; anything else gets a fresh UUID.
fn sane(id: &HeaderValue) -> Option<String> {
    let s = id.to_str().ok()?;
    let ok = !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=".contains(&b));
    ok.then(|| s.to_owned())
}

/// The outer layer of the main router: request id, panic capture, access log and metrics,
/// and the global in-flight cap ([`serve::in_flight`]) with its hold on the response body.
/// One layer, not two: each `from_fn` layer clones and boxes the inner service and its
/// future per request.
pub(crate) async fn edge_guarded(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    edge_with(state, req, next, true).await
}

/// [`edge_guarded`] without the in-flight cap: the METRICS_BIND_ADDR listener.
pub(crate) async fn edge(State(state): State<AppState>, req: Request, next: Next) -> Response {
    edge_with(state, req, next, false).await
}

async fn edge_with(state: AppState, req: Request, next: Next, guard: bool) -> Response {
    let started = Instant::now();
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(sane)
        .unwrap_or_else(|| {
            // Encoded into a stack buffer: `to_string` goes through the formatting machinery.
            let mut buf = uuid::Uuid::encode_buffer();
            uuid::Uuid::new_v4()
                .hyphenated()
                .encode_lower(&mut buf)
                .to_owned()
        });
    let method = req.method().clone();
    // Bounded label values for metrics and logs: a documented template, never the raw path.
    let route = routes::route_template(req.uri().path()).unwrap_or("unmatched");
    let permit = if guard {
        serve::in_flight(&state, req.uri().path())
    } else {
        Ok(None)
    };
    let mut resp = match permit {
        Err(saturated) => saturated.into_response(),
        Ok(permit) => {
            let resp = match AssertUnwindSafe(next.run(req)).catch_unwind().await {
                Ok(resp) => resp,
                Err(panic) => {
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    tracing::error!(request_id = %id, panic = %what, "handler panicked");
                    ApiError::new(
                        Code::InternalError,
                        format!("internal error; quote request id {id} when reporting it"),
                    )
                    .into_response()
                }
            };
            match permit {
                Some(permit) => serve::guarded(&state, resp, permit),
                None => resp,
            }
        }
    };
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(REQUEST_ID, v);
    }
    let code = resp.extensions().get::<Code>().map_or("", |c| c.as_str());
    let status = resp.status().as_u16();
    state.metrics.request(route, status, code);
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    // The ONE place an error's cause is logged: here, with the request id.
    match resp.extensions_mut().remove::<ErrorCause>() {
        Some(cause) => tracing::warn!(
            request_id = %id,
            method = %method,
            route,
            status,
            code,
            elapsed_ms,
            cause = %cause,
            "request"
        ),
        None => tracing::info!(
            request_id = %id,
            method = %method,
            route,
            status,
            code,
            elapsed_ms,
            "request"
        ),
    }
    resp
}

pub(crate) async fn route_not_found() -> ApiError {
    ApiError::new(
        Code::RouteNotFound,
        "no such route or method; see /openapi.json",
    )
}
