//! The contract's header and event names (SPEC §2–§5), in one place: every module that
//! writes or reads one of them names it from here.

use axum::http::HeaderName;

/// The request id, kept from the caller when sane, else minted (edge).
pub(crate) const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// The tenant a caller claims; must match the token's tenant (auth).
pub(crate) const TENANT_ID: &str = "x-tenant-id";
/// The conversation of a /c1 exchange.
pub(crate) const CONVERSATION_ID: HeaderName = HeaderName::from_static("x-conversation-id");
/// Set when the gateway silently raised `max_tokens` to the model's minimum.
pub(crate) const SPASS_APPLIED: HeaderName = HeaderName::from_static("spass-applied");
/// The legacy name of [`SPASS_APPLIED`], sent alongside it.
pub(crate) const RUST_API_APPLIED: HeaderName = HeaderName::from_static("x-rust-api-applied");
/// OpenAI-style rate-limit headers on every admitted bearer answer.
pub(crate) const RATELIMIT_LIMIT: HeaderName =
    HeaderName::from_static("x-ratelimit-limit-requests");
pub(crate) const RATELIMIT_REMAINING: HeaderName =
    HeaderName::from_static("x-ratelimit-remaining-requests");
pub(crate) const RATELIMIT_RESET: HeaderName =
    HeaderName::from_static("x-ratelimit-reset-requests");
/// Honoured only with GATEWAY_FAULT_INJECTION=1: `panic` or `storage`.
pub(crate) const FAULT_HEADER: &str = "x-gateway-fault";

/// SSE event before a synthesised answer when the loop hit MAX_TOOL_ITERATIONS.
pub(crate) const EVENT_TOOL_CAP: &str = "spass.tool-cap";
/// SSE event before a synthesised answer when the model repeated its call signature.
pub(crate) const EVENT_TOOL_ANTI_LOOP: &str = "spass.tool-anti-loop";
/// SSE event carrying an error envelope after the 200 header went out.
pub(crate) const EVENT_ERROR: &str = "error";
