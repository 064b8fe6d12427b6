//! Admission: who is calling ([`auth`]), then whether they may (rate limits in [`rate`],
//! budgets in [`budget`], both shared by replicas through [`redis`] when configured; the
//! Redis-then-local policy and the budget [`Reservation`] in [`policy`]).
//!
//! The 2×2 at a glance: rate limits or budgets, in-process ([`rate`], [`budget`]) or in Redis
//! ([`redis`]); [`policy`] picks Redis first and falls back per `REDIS_FAIL_MODE`.

pub(crate) mod auth;
pub(crate) mod budget;
pub(crate) mod concurrency;
mod policy;
pub(crate) mod rate;
pub(crate) mod redis;
mod redis_scripts;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::state::AppState;
pub(crate) use auth::Principal;
pub(crate) use concurrency::hold_while_streaming;
pub(crate) use policy::Reservation;

/// The ONE layer of the bearer routes, in SPEC §3 order: authenticate ([`auth::principal`]),
/// then the tenant-wide bucket, the token's bucket, then the token's concurrency slot (held
/// until the response, a stream included, has ended), then fault extraction
/// ([`crate::fault::apply`]); the token bucket's rate-limit headers go on whatever the
/// route answers. One layer rather than three: each `from_fn` layer clones and boxes the
/// inner service and its future per request.
pub(crate) async fn bearer(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let principal = match auth::principal(&state, req.headers()) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    req.extensions_mut().insert(principal);
    let tenant = &state.config.tenants[principal.tenant];
    if let Some(rate) = tenant.tenant_rate_limit {
        // One bucket for the whole tenant, keyed apart from every token's own bucket.
        let key = crate::config::sha256(&format!("tenant\0{}", tenant.id));
        let d = state.admit(&key, rate).await;
        if !d.allowed {
            let secs = rate::ceil_secs(d.retry_after);
            let mut e = d.into_error();
            e.code = crate::catalog::Code::TenantRateLimitExceeded;
            e.message = format!(
                "the tenant-wide rate limit (shared by all of the tenant's tokens) is exhausted; retry in {secs} s"
            );
            return e.into_response();
        }
    }
    let rate = tenant.rate_limit.unwrap_or(state.config.rate_limit);
    let decision = state.admit(&principal.key, rate).await;
    if !decision.allowed {
        return decision.into_error().into_response();
    }
    let slot = match tenant.token_rule(principal.token).max_concurrent {
        Some(max) => match state.acquire_slot(&principal.key, max).await {
            Some(slot) => Some(slot),
            None => {
                let mut e = crate::error::ApiError::new(
                    crate::catalog::Code::ConcurrencyLimitExceeded,
                    format!("this token already has its maximum of {max} requests in flight; retry when one has finished"),
                )
                .retry_after(1);
                e.headers = decision.headers();
                return e.into_response();
            }
        },
        None => None,
    };
    crate::fault::apply(&state, &mut req);
    let mut resp = next.run(req).await;
    decision.insert_headers(resp.headers_mut());
    match slot {
        Some(slot) => hold_while_streaming(resp, slot),
        None => resp,
    }
}

/// Per-client-IP admission for the unauthenticated catalog routes.
pub(crate) async fn public_limit(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
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
