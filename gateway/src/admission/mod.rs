//! Admission: who is calling ([`auth`]), then whether they may (rate limits in [`rate`],
//! budgets in [`budget`], both shared by replicas through [`redis`] when configured; the
//! Redis-then-local policy and the budget [`Reservation`] in [`policy`]).
//!
//! The 2×2 at a glance: rate limits or budgets, in-process ([`rate`], [`budget`]) or in Redis
//! ([`redis`]); [`policy`] picks Redis first and falls back per `REDIS_FAIL_MODE`.

pub mod auth;
pub mod budget;
mod policy;
pub mod rate;
pub mod redis;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::state::AppState;
pub use auth::Principal;
pub use policy::Reservation;

/// Middleware after [`auth::require`]: admit through the token's bucket, and put the
/// rate-limit headers on whatever the route answers.
pub async fn admit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(principal) = req.extensions().get::<Principal>().copied() else {
        // Only reachable if the route table forgot `auth::require` before this stage.
        return crate::error::ApiError::new(
            crate::catalog::Code::InternalError,
            "admission ran without an authenticated caller",
        )
        .into_response();
    };
    let rate = state.config.tenants[principal.tenant]
        .rate_limit
        .unwrap_or(state.config.rate_limit);
    let decision = state.admit(&principal.key, rate).await;
    if !decision.allowed {
        return decision.into_error().into_response();
    }
    let mut resp = next.run(req).await;
    resp.headers_mut().extend(decision.headers());
    resp
}

/// Per-client-IP admission for the unauthenticated catalog routes.
pub async fn public_limit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let ip = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
    let decision = state.limiters.check_ip(ip);
    if !decision.allowed {
        let mut e = decision.into_error();
        e.message = format!(
            "too many requests from this address; retry in {} s",
            e.retry_after.unwrap_or(1)
        );
        return e.into_response();
    }
    next.run(req).await
}
