//! The ONE route table: it builds the router (with each route's stage of admission) and the
//! OpenAPI route docs, and gives metrics and logs their bounded route labels.

use std::sync::OnceLock;

use axum::http::header;
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, MethodRouter};
use axum::Router;

use crate::catalog::Code;
use crate::openapi::RouteDoc;
use crate::routes;
use crate::state::AppState;

/// Which layers a route sits behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// Bearer auth, then admission (rate limit), then fault extraction.
    Bearer,
    /// Unauthenticated catalog routes: a per-client-IP limit.
    Public,
    /// Liveness: no auth, no limit (it must answer while the gateway is saturated).
    Ops,
    /// Readiness and metrics: no auth, the per-client-IP limit of [`Access::Public`]; with
    /// METRICS_BIND_ADDR set, `/metrics` is served only there.
    OpsLimited,
}

/// One served and documented route.
pub(crate) struct Route {
    pub access: Access,
    pub serve: fn() -> MethodRouter<AppState>,
    pub doc: RouteDoc,
}

const AUTH: [Code; 3] = [
    Code::MissingAuthorization,
    Code::InvalidAuthorization,
    Code::RateLimitExceeded,
];

const CHAT_CODES: &[Code] = &[
    Code::MissingAuthorization,
    Code::InvalidAuthorization,
    Code::RateLimitExceeded,
    Code::ModelQuotaExhausted,
    Code::OpenrouterDailyQuotaExhausted,
    Code::BodyTooLarge,
    Code::InvalidJson,
    Code::MissingField,
    Code::InvalidField,
    Code::ModelNotInAllowlist,
    Code::MaxTokensBelowMinimum,
    Code::ImageUrlNotSupported,
    Code::ImageDecodeError,
    Code::ImageBase64Invalid,
    Code::ToolCallArgumentsInvalid,
    Code::UpstreamBadRequest,
    Code::UpstreamError,
    Code::UpstreamTimeout,
    Code::UpstreamUnavailable,
    Code::InternalError,
    Code::KeyExpired,
    Code::TenantDisabled,
    Code::TenantRateLimitExceeded,
    Code::ConcurrencyLimitExceeded,
    Code::ModelDoesNotSupportTools,
    Code::ModelDoesNotSupportVision,
    Code::ContextLengthExceeded,
    Code::ModelLoading,
    Code::UpstreamOverloaded,
];

/// What /c1 adds to the /v1 chat codes.
const CONVERSATION_CODES: &[Code] = &[Code::ConversationNotFound, Code::StorageError];

const CONV_CODES: &[Code] = &[
    AUTH[0],
    AUTH[1],
    AUTH[2],
    Code::MissingField,
    Code::InvalidField,
    Code::ConversationNotFound,
    Code::InternalError,
    Code::StorageError,
    Code::KeyExpired,
    Code::TenantDisabled,
    Code::TenantRateLimitExceeded,
    Code::ConcurrencyLimitExceeded,
];

const INFO_CODES: &[Code] = &[
    AUTH[0],
    AUTH[1],
    AUTH[2],
    Code::InternalError,
    Code::KeyExpired,
    Code::TenantDisabled,
    Code::TenantRateLimitExceeded,
    Code::ConcurrencyLimitExceeded,
];
const PUBLIC_CODES: &[Code] = &[Code::RateLimitExceeded, Code::InternalError];
const OPS_CODES: &[Code] = &[Code::InternalError];

pub(crate) const ROUTES: &[Route] = &[
    Route {
        access: Access::Bearer,
        serve: || post(crate::chat::v1),
        doc: RouteDoc {
        method: "post",
        path: "/v1/chat/completions",
        summary:
            "OpenAI-compatible chat completion; `stream: true` answers SSE; server-side tool loop",
        auth: true,
        ok: (
            200,
            "chat.completion, or text/event-stream of chat.completion.chunk",
            Some("ChatCompletion"),
        ),
        request: Some("ChatCompletionRequest"),
        codes: &[CHAT_CODES],
        user_id_query: false,
        paged: false,
    },
    },
    Route {
        access: Access::Bearer,
        serve: || get(routes::models::list),
        doc: RouteDoc {
        method: "get",
        path: "/v1/models",
        summary: "Model aliases this token may use (OpenAI list format)",
        auth: true,
        ok: (200, "model list", None),
        request: None,
        codes: &[INFO_CODES],
        user_id_query: false,
        paged: false,
    },
    },
    Route {
        access: Access::Bearer,
        serve: || get(routes::models::info),
        doc: RouteDoc {
        method: "get",
        path: "/v1/info",
        summary: "Models with capabilities and constraints, the token's limits, gateway version",
        auth: true,
        ok: (200, "gateway info", None),
        request: None,
        codes: &[INFO_CODES],
        user_id_query: false,
        paged: false,
    },
    },
    Route {
        access: Access::Bearer,
        serve: || post(crate::chat::c1),
        doc: RouteDoc {
        method: "post",
        path: "/c1/chat/completions",
        summary: "Chat with server-side conversation history (SQLite)",
        auth: true,
        ok: (
            200,
            "chat.completion with conversation_id, or SSE",
            Some("ChatCompletion"),
        ),
        request: Some("C1ChatCompletionRequest"),
        codes: &[CHAT_CODES, CONVERSATION_CODES],
        user_id_query: false,
        paged: false,
    },
    },
    Route {
        access: Access::Bearer,
        serve: || get(routes::conversations::list),
        doc: RouteDoc {
        method: "get",
        path: "/c1/conversations",
        summary: "The user's conversations",
        auth: true,
        ok: (200, "conversation list", Some("ConversationList")),
        request: None,
        codes: &[CONV_CODES],
        user_id_query: true,
        paged: true,
    },
    },
    Route {
        access: Access::Bearer,
        serve: || get(routes::conversations::get),
        doc: RouteDoc {
        method: "get",
        path: "/c1/conversations/{id}",
        summary: "One conversation with its messages",
        auth: true,
        ok: (200, "conversation", None),
        request: None,
        codes: &[CONV_CODES],
        user_id_query: true,
        paged: false,
    },
    },
    Route {
        access: Access::Bearer,
        serve: || delete(routes::conversations::delete),
        doc: RouteDoc {
        method: "delete",
        path: "/c1/conversations/{id}",
        summary: "Delete a conversation",
        auth: true,
        ok: (204, "deleted", None),
        request: None,
        codes: &[CONV_CODES],
        user_id_query: true,
        paged: false,
    },
    },
    Route {
        access: Access::Public,
        serve: || get(routes::discovery::errors),
        doc: RouteDoc {
        method: "get",
        path: "/errors",
        summary: "Machine-readable error catalog",
        auth: false,
        ok: (200, "catalog", Some("Catalog")),
        request: None,
        codes: &[PUBLIC_CODES],
        user_id_query: false,
        paged: false,
    },
    },
    Route {
        access: Access::Public,
        serve: || get(routes::discovery::docs),
        doc: RouteDoc {
        method: "get",
        path: "/docs/errors",
        summary: "Error catalog as HTML, one `#<code>` anchor per code",
        auth: false,
        ok: (200, "text/html", None),
        request: None,
        codes: &[PUBLIC_CODES],
        user_id_query: false,
        paged: false,
    },
    },
    Route {
        access: Access::Public,
        serve: || get(openapi_json),
        doc: RouteDoc {
        method: "get",
        path: "/openapi.json",
        summary: "This document",
        auth: false,
        ok: (200, "OpenAPI 3.1", None),
        request: None,
        codes: &[PUBLIC_CODES],
        user_id_query: false,
        paged: false,
    },
    },
    Route {
        access: Access::Ops,
        serve: || get(routes::health::healthz),
        doc: RouteDoc {
        method: "get",
        path: "/healthz",
        summary: "Liveness",
        auth: false,
        ok: (200, "alive", None),
        request: None,
        codes: &[OPS_CODES],
        user_id_query: false,
        paged: false,
    },
    },
    Route {
        access: Access::OpsLimited,
        serve: || get(routes::health::readyz),
        doc: RouteDoc {
        method: "get",
        path: "/readyz",
        summary: "Readiness: each dependency with detail; 503 when one is down",
        auth: false,
        ok: (200, "ready (503 with the same body when not)", None),
        request: None,
        codes: &[PUBLIC_CODES],
        user_id_query: false,
        paged: false,
    },
    },
    Route {
        access: Access::OpsLimited,
        serve: || get(routes::health::metrics),
        doc: RouteDoc {
        method: "get",
        path: "/metrics",
        summary: "Prometheus metrics",
        auth: false,
        ok: (200, "OpenMetrics text", None),
        request: None,
        codes: &[PUBLIC_CODES],
        user_id_query: false,
        paged: false,
    },
    },
];

/// Every documented route as (method, path template); a test checks the router serves each.
#[cfg(any(test, feature = "testing"))]
pub fn routes() -> impl Iterator<Item = (&'static str, &'static str)> {
    ROUTES.iter().map(|r| (r.doc.method, r.doc.path))
}

/// The documented template a request path belongs to (`{…}` matches one segment): the
/// bounded route label of metrics and logs, from the same table as the documentation.
pub(crate) fn route_template(path: &str) -> Option<&'static str> {
    // A template without parameters is matched whole first (the chat routes, every request):
    // the segment walk below cost about 1 % of a plain request's instructions.
    if let Some(r) = ROUTES.iter().find(|r| r.doc.path == path) {
        return Some(r.doc.path);
    }
    ROUTES.iter().map(|r| r.doc.path).find(|template| {
        let mut got = path.split('/');
        let mut want = template.split('/');
        loop {
            match (got.next(), want.next()) {
                (None, None) => return true,
                (Some(g), Some(w)) if w.starts_with('{') => {
                    if g.is_empty() {
                        return false;
                    }
                }
                (Some(g), Some(w)) if g == w => {}
                _ => return false,
            }
        }
    })
}

/// The whole HTTP surface from [`ROUTES`]. Unknown paths and methods answer
/// `route_not_found` before auth.
pub(crate) fn router(state: AppState) -> Router {
    let group = |access: Access| {
        ROUTES
            .iter()
            .filter(|r| r.access == access)
            .fold(Router::new(), |router, r| {
                router.route(r.doc.path, (r.serve)())
            })
    };
    // One layer for the bearer routes: auth, admission, then fault extraction.
    let bearer = group(Access::Bearer)
        .route_layer(from_fn_with_state(state.clone(), crate::admission::bearer));
    let public = group(Access::Public).route_layer(from_fn_with_state(
        state.clone(),
        crate::admission::public_limit,
    ));
    let metrics_elsewhere = state.config.limits.metrics_bind.is_some();
    let ops_limited = ROUTES
        .iter()
        .filter(|r| r.access == Access::OpsLimited)
        .filter(|r| !(metrics_elsewhere && r.doc.path == "/metrics"))
        .fold(Router::new(), |router, r| {
            router.route(r.doc.path, (r.serve)())
        })
        .route_layer(from_fn_with_state(
            state.clone(),
            crate::admission::public_limit,
        ));
    Router::new()
        .merge(bearer)
        .merge(public)
        .merge(group(Access::Ops))
        .merge(ops_limited)
        .fallback(super::route_not_found)
        .method_not_allowed_fallback(super::route_not_found)
        .layer(from_fn_with_state(state.clone(), super::edge_guarded))
        .with_state(state)
}

/// `/metrics` alone, for METRICS_BIND_ADDR (same edge layer: request id, access log).
pub(crate) fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(routes::health::metrics))
        .fallback(super::route_not_found)
        .layer(from_fn_with_state(state.clone(), super::edge))
        .with_state(state)
}

/// The OpenAPI document of [`ROUTES`], rendered once.
pub(crate) fn openapi_json_text() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| crate::openapi::json(ROUTES.iter().map(|r| &r.doc)))
}

async fn openapi_json() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        openapi_json_text(),
    )
        .into_response()
}

#[cfg(test)]
mod tests;
