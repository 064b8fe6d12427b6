//! The error catalog: every stable code the gateway can answer with, in ONE table.
//!
//! `GET /errors`, `GET /docs/errors`, the OpenAPI error schemas, the metrics labels and every
//! error response are derived from the rows below. Codes are never renamed or reused: a code
//! that is no longer emitted is marked `retired` (it stays listed, so clients compiled against
//! it keep parsing, and `tests/tidy.rs` fails if gateway code still constructs it).

use serde::Serialize;

/// The `type` field of the envelope: the category a client can branch on coarsely.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorType {
    AuthenticationError,
    PermissionError,
    RateLimitError,
    InvalidRequestError,
    NotFoundError,
    UpstreamError,
    InternalError,
    /// Not an error: the HTTP-200 diagnostic markers of the tool loop.
    ToolLoopStatus,
}

impl ErrorType {
    /// Every type, in envelope-schema order (the OpenAPI enum is built from this).
    pub const ALL: [ErrorType; 8] = [
        ErrorType::AuthenticationError,
        ErrorType::PermissionError,
        ErrorType::RateLimitError,
        ErrorType::InvalidRequestError,
        ErrorType::NotFoundError,
        ErrorType::UpstreamError,
        ErrorType::InternalError,
        ErrorType::ToolLoopStatus,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::AuthenticationError => "authentication_error",
            Self::PermissionError => "permission_error",
            Self::RateLimitError => "rate_limit_error",
            Self::InvalidRequestError => "invalid_request_error",
            Self::NotFoundError => "not_found_error",
            Self::UpstreamError => "upstream_error",
            Self::InternalError => "internal_error",
            Self::ToolLoopStatus => "tool_loop_status",
        }
    }
}

/// Section of `/docs/errors` a code is listed under, in page order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Group {
    Authentication,
    Permission,
    RateLimit,
    ToolLoop,
    InvalidRequest,
    NotFound,
    Upstream,
    Internal,
}

impl Group {
    pub const ALL: [Group; 8] = [
        Group::Authentication,
        Group::Permission,
        Group::RateLimit,
        Group::ToolLoop,
        Group::InvalidRequest,
        Group::NotFound,
        Group::Upstream,
        Group::Internal,
    ];

    pub const fn heading(self) -> &'static str {
        match self {
            Group::Authentication => "Authentication errors (401)",
            Group::Permission => "Permission (403)",
            Group::RateLimit => "Rate-limit / Quota (429)",
            Group::ToolLoop => "Tool-loop status codes (HTTP 200)",
            Group::InvalidRequest => "Invalid request (4xx)",
            Group::NotFound => "Not found (404)",
            Group::Upstream => "Upstream (5xx)",
            Group::Internal => "Internal (500)",
        }
    }
}

/// Whether a code is still emitted. A retired code is listed (marked `"retired": true`) and
/// documented, never emitted, and its name is never given to another condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Active,
    Retired,
}

/// One row of the catalog, exactly what `GET /errors` lists.
#[derive(Debug, Serialize)]
pub struct Entry {
    pub code: &'static str,
    #[serde(rename = "type")]
    pub error_type: ErrorType,
    pub http_status: u16,
    pub title: &'static str,
    pub description: &'static str,
    pub remediation: &'static str,
    pub typical_param: Option<&'static str>,
    pub retryable: bool,
    /// Only present (and `true`) on retired codes.
    #[serde(skip_serializing_if = "is_active", serialize_with = "as_retired_flag")]
    pub retired: State,
    #[serde(skip)]
    pub group: Group,
}

fn is_active(s: &State) -> bool {
    *s == State::Active
}

fn as_retired_flag<S: serde::Serializer>(s: &State, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_bool(*s == State::Retired)
}

impl Entry {
    pub fn docs_url(&self) -> String {
        format!("/docs/errors#{}", self.code)
    }

    pub fn is_retired(&self) -> bool {
        self.retired == State::Retired
    }
}

/// The human texts of one code (the second table, keyed by the code's variant).
struct Texts {
    title: &'static str,
    description: &'static str,
    remediation: &'static str,
}

/// `retry` / `final` in the table: the `retryable` flag.
macro_rules! retryable {
    (retry) => {
        true
    };
    (final) => {
        false
    };
}

/// `active` / `retired` in the table.
macro_rules! state {
    (active) => {
        State::Active
    };
    (retired) => {
        State::Retired
    };
}

/// The main table: one line per code with everything but the texts.
macro_rules! catalog {
    ($( $variant:ident $code:literal $status:literal $kind:ident $group:ident
        $retry:ident $state:ident $param:expr; )*) => {
        /// A stable error code. `Code::X.entry()` is its catalog row.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Code { $($variant),* }

        /// The catalog rows in publication order (`GET /errors` lists them in this order).
        pub static ENTRIES: &[Entry] = &[$(Entry {
            code: $code,
            error_type: ErrorType::$kind,
            http_status: $status,
            title: texts(Code::$variant).title,
            description: texts(Code::$variant).description,
            remediation: texts(Code::$variant).remediation,
            typical_param: $param,
            retryable: retryable!($retry),
            retired: state!($state),
            group: Group::$group,
        }),*];

        impl Code {
            pub const ALL: &'static [Code] = &[$(Code::$variant),*];
        }
    };
}

/// The texts table; the `match` is exhaustive, so a code without texts does not compile.
macro_rules! texts {
    ($( $variant:ident {
        title: $title:literal,
        description: $desc:literal,
        remediation: $rem:literal $(,)?
    } )*) => {
        const fn texts(code: Code) -> Texts {
            match code {
                $(Code::$variant => Texts { title: $title, description: $desc, remediation: $rem },)*
            }
        }
    };
}

impl Code {
    pub fn entry(self) -> &'static Entry {
        // `ALL` and `ENTRIES` are generated from the same rows in the same order.
        &ENTRIES[self as usize]
    }

    pub fn as_str(self) -> &'static str {
        self.entry().code
    }

    pub fn from_code(code: &str) -> Option<Code> {
        Code::ALL.iter().copied().find(|c| c.as_str() == code)
    }
}

catalog! {
    // variant                     code                               status type                 group           retry  state   typical param
    MissingAuthorization          "missing_authorization"            401  AuthenticationError  Authentication  final  active  Some("headers.authorization");
    InvalidAuthorization          "invalid_authorization"            401  AuthenticationError  Authentication  final  active  Some("headers.authorization");
    RateLimitExceeded             "rate_limit_exceeded"              429  RateLimitError       RateLimit       retry  active  None;
    ModelQuotaExhausted           "model_quota_exhausted"            429  RateLimitError       RateLimit       retry  active  Some("/model");
    OpenrouterDailyQuotaExhausted "openrouter_daily_quota_exhausted" 429  RateLimitError       RateLimit       retry  active  Some("/model");
    ToolLoopMaxIterations         "tool_loop_max_iterations"         200  ToolLoopStatus       ToolLoop        final  active  None;
    ToolLoopAntiLoopSynthesised   "tool_loop_anti_loop_synthesised"  200  ToolLoopStatus       ToolLoop        final  active  None;
    BodyTooLarge                  "body_too_large"                   413  InvalidRequestError  InvalidRequest  final  active  None;
    InvalidJson                   "invalid_json"                     400  InvalidRequestError  InvalidRequest  final  active  None;
    MissingField                  "missing_field"                    400  InvalidRequestError  InvalidRequest  final  active  Some("/model");
    InvalidField                  "invalid_field"                    400  InvalidRequestError  InvalidRequest  final  active  Some("/temperature");
    ModelNotInAllowlist           "model_not_in_allowlist"           400  InvalidRequestError  InvalidRequest  final  active  Some("/model");
    MaxTokensBelowMinimum         "max_tokens_below_minimum"         400  InvalidRequestError  InvalidRequest  final  active  Some("/max_tokens");
    ImageUrlNotSupported          "image_url_not_supported"          400  InvalidRequestError  InvalidRequest  final  active  Some("/messages/0/content/1/image_url/url");
    ImageDecodeError              "image_decode_error"               400  InvalidRequestError  InvalidRequest  final  active  Some("/messages/0/content/1/image_url/url");
    ImageBase64Invalid            "image_base64_invalid"             400  InvalidRequestError  InvalidRequest  final  active  Some("/messages/0/content/1/image_url/url");
    ToolCallArgumentsInvalid      "tool_call_arguments_invalid"      400  InvalidRequestError  InvalidRequest  final  active  Some("/messages/1/tool_calls/0/function/arguments");
    UpstreamBadRequest            "upstream_bad_request"             400  InvalidRequestError  InvalidRequest  final  active  None;
    ConversationNotFound          "conversation_not_found"           404  NotFoundError        NotFound        final  active  Some("/conversation_id");
    RouteNotFound                 "route_not_found"                  404  NotFoundError        NotFound        final  active  None;
    UpstreamError                 "upstream_error"                   502  UpstreamError        Upstream        retry  active  None;
    UpstreamTimeout               "upstream_timeout"                 504  UpstreamError        Upstream        retry  active  None;
    UpstreamUnavailable           "upstream_unavailable"             503  UpstreamError        Upstream        retry  active  None;
    InternalError                 "internal_error"                   500  InternalError        Internal        retry  active  None;
    StorageError                  "storage_error"                    500  InternalError        Internal        retry  active  None;
    KeyExpired                    "key_expired"                      401  AuthenticationError  Authentication  final  active  Some("headers.authorization");
    TenantDisabled                "tenant_disabled"                  403  PermissionError      Permission      final  active  None;
    ConcurrencyLimitExceeded      "concurrency_limit_exceeded"       429  RateLimitError       RateLimit       retry  active  None;
    TenantRateLimitExceeded       "tenant_rate_limit_exceeded"       429  RateLimitError       RateLimit       retry  active  None;
    ModelDoesNotSupportTools      "model_does_not_support_tools"     400  InvalidRequestError  InvalidRequest  final  active  Some("/tools");
    ModelDoesNotSupportVision     "model_does_not_support_vision"    400  InvalidRequestError  InvalidRequest  final  active  Some("/messages/0/content/1");
    ContextLengthExceeded         "context_length_exceeded"          400  InvalidRequestError  InvalidRequest  final  active  Some("/messages");
    ModelLoading                  "model_loading"                    503  UpstreamError        Upstream        retry  active  None;
    UpstreamOverloaded            "upstream_overloaded"              503  UpstreamError        Upstream        retry  active  None;
}

texts! {
    MissingAuthorization {
        title: "Authorization header is missing",
        description: "All `/v1/*` and `/c1/*` endpoints require a Bearer token.",
        remediation: "Add `Authorization: Bearer <RUST_API_BEARER>` to the request.",
    }
    InvalidAuthorization {
        title: "Bearer token is not valid",
        description: "The Bearer token did not match any token in the multi-tenant catalog (the comparison is constant-time), or an `X-Tenant-Id` header names a tenant the matched token is not bound to.",
        remediation: "Verify the token matches one configured on the server, and that `X-Tenant-Id` (if sent) is the token's own tenant.",
    }
    RateLimitExceeded {
        title: "Per-token rate limit exceeded",
        description: "Per-token rate limits (default 1 request/sec, burst 30). The bucket is keyed on SHA-256 of the bearer, not on the client IP.",
        remediation: "Back off for `Retry-After` seconds and retry; operators tune RATE_LIMIT_RPS / RATE_LIMIT_BURST or the tenant's override.",
    }
    ModelQuotaExhausted {
        title: "Model temporarily out of quota",
        description: "The chosen model is temporarily unavailable for this tenant because a budget (token quota, daily credit limit or rate window) has been used up, in the gateway's ledger or upstream. The body is intentionally provider-agnostic: no upstream name, no token counts, no billing URL.",
        remediation: "Pick a different model alias or wait `Retry-After` seconds for the budget window to reset. Operators raise the tenant's budget in tokens.yaml or top up with the upstream provider.",
    }
    OpenrouterDailyQuotaExhausted {
        title: "OpenRouter daily limit reached for this alias",
        description: "An OpenRouter-pinned alias has used up its OpenRouter daily limit or credits. Unlike `model_quota_exhausted` the provider is named, because the alias is pinned to it. The body carries top-level `dgx_code` and `available_fallbacks`; `Retry-After` counts the seconds to the next 00:00 UTC.",
        remediation: "Switch to one of `available_fallbacks`, or retry after `Retry-After` seconds (next 00:00 UTC).",
    }
    ToolLoopMaxIterations {
        title: "Tool loop reached its iteration cap",
        description: "The server-side tool loop reached MAX_TOOL_ITERATIONS without a final answer; the gateway made one synthesis call with `tools: []` and the collected tool results and answers with that text (`finish_reason: stop`). Appears as `dgx_code` in a 200 body, and as `event: spass.tool-cap` when streaming.",
        remediation: "Nothing to fix: the answer is complete. Narrow the request if the tools were expected to converge sooner.",
    }
    ToolLoopAntiLoopSynthesised {
        title: "Repeated tool call broken by synthesis",
        description: "The model issued the same tool call (name and canonicalised arguments) twice in a row; the gateway stopped the loop and made a synthesis call with `tools: []`. Appears as `dgx_code` in a 200 body, and as `event: spass.tool-anti-loop` when streaming.",
        remediation: "Nothing to fix: the answer is complete. Rephrase the request if the model misunderstood the tool.",
    }
    BodyTooLarge {
        title: "Request body too large",
        description: "The body exceeds MAX_BODY_BYTES (default 32 MiB). The cap is enforced while the body is read, never after buffering it. Most often hit with large base64 images.",
        remediation: "Send a smaller body: downscale or recompress images; see `max_body_bytes` in /v1/info.",
    }
    InvalidJson {
        title: "Body is not a JSON object",
        description: "The body could not be parsed as JSON, or is JSON but not an object.",
        remediation: "Send a JSON object; validate it against /openapi.json.",
    }
    MissingField {
        title: "Required field absent",
        description: "A required field is absent. `param` is the JSON pointer of the missing field (`/model`, `/messages`, `/messages/0/role`, `/user_id` on /c1, or `query.user_id`).",
        remediation: "Add the field named by `param`.",
    }
    InvalidField {
        title: "Field value has the wrong type, range or enum",
        description: "A field's value did not match its expected type, range or enum (e.g. `/temperature` outside 0..2, `/messages/1/role` unknown, `max_tokens` <= 0). `param` points at it.",
        remediation: "Fix the field named by `param`; see /openapi.json for the accepted values.",
    }
    ModelNotInAllowlist {
        title: "Model is not allowed",
        description: "The model is not a configured alias, or this tenant is not allowed to use it.",
        remediation: "Use one of the aliases listed by /v1/models or /v1/info for your token.",
    }
    MaxTokensBelowMinimum {
        title: "max_tokens rejected even after the floor",
        description: "The gateway silently raises `max_tokens` to the model's `min_max_tokens` (reported in `spass-applied` and `x-rust-api-applied`); this error surfaces only when the upstream still rejected the token limit.",
        remediation: "Read `constraints.min_max_tokens` and `max_output_tokens` from /v1/info and pick a value inside them.",
    }
    ImageUrlNotSupported {
        title: "Remote image URLs are not supported by this model",
        description: "An `image_url.url` is http(s):// and the model's `constraints.accepts_image_url` is false. Checked before forwarding so the caller gets a precise `param`.",
        remediation: "Send the image inline as `data:image/<jpeg|png|webp|gif>;base64,<data>`.",
    }
    ImageDecodeError {
        title: "Image data URI could not be decoded",
        description: "The data URI is malformed, its MIME type is missing or not one of image/jpeg, image/png, image/webp, image/gif, or the decoded bytes are not a valid image of that type.",
        remediation: "Use `data:image/<jpeg|png|webp|gif>;base64,<data>` with the MIME type of the actual bytes; re-encode with `base64 -w 0`.",
    }
    ImageBase64Invalid {
        title: "Inline base64 payload is not valid base64",
        description: "The payload of a `data:image/...;base64,` URI is not `[A-Za-z0-9+/]+={0,2}` with valid padding. A common cause is passing a UTF-8 string through `btoa`, or line-wrapped output.",
        remediation: "Encode the raw bytes (a Uint8Array in JS) with standard, padded, unwrapped base64 (`base64 -w 0`).",
    }
    ToolCallArgumentsInvalid {
        title: "Tool-call arguments are not valid JSON",
        description: "A `messages[i].tool_calls[j].function.arguments` string is not parseable JSON. OpenAI encodes arguments as a JSON string, e.g. \"{\\\"key\\\":\\\"value\\\"}\".",
        remediation: "Send `function.arguments` as a string holding valid JSON (serialise the object once).",
    }
    UpstreamBadRequest {
        title: "Upstream rejected the request",
        description: "The upstream answered 4xx for a reason the gateway's pre-flight checks did not cover. The gateway returns the upstream's status code 1:1 (so 400, 404, 422 … are possible) with its sanitised message, instead of an opaque 502.",
        remediation: "Fix the request as the message says; this is client-side fixable, not an outage.",
    }
    ConversationNotFound {
        title: "Conversation not found",
        description: "The `conversation_id` was never stored, was deleted, or belongs to another `user_id` or tenant.",
        remediation: "Omit `conversation_id` to start a new conversation, or list yours with GET /c1/conversations?user_id=….",
    }
    RouteNotFound {
        title: "Route not found",
        description: "The path, or the method on that path, does not exist on this server.",
        remediation: "Check /openapi.json for the routes and methods this gateway serves.",
    }
    UpstreamError {
        title: "Upstream failed",
        description: "The upstream answered 5xx or an unusable response. The sanitised upstream message is inlined in `message` (never upstream keys, host names or URLs).",
        remediation: "Retry with backoff; if it persists, the upstream is having an outage.",
    }
    UpstreamTimeout {
        title: "Upstream timed out",
        description: "HTTP_TOTAL_TIMEOUT_SECS (default 600 s) elapsed before the upstream answered.",
        remediation: "Retry later; check `constraints.typical_response_seconds` in /v1/info and set your client timeout above it.",
    }
    UpstreamUnavailable {
        title: "Upstream unreachable",
        description: "The TCP or TLS connection to the upstream could not be established.",
        remediation: "Retry with backoff; operators check /readyz for the failing upstream.",
    }
    InternalError {
        title: "Internal error",
        description: "A bug or panic in the gateway, caught at the edge. The message carries the request id.",
        remediation: "Retry; report the `x-request-id` so operators can find the server log.",
    }
    StorageError {
        title: "Conversation storage failed",
        description: "A SQLite read or write of the /c1 conversation store failed; nothing was half-written.",
        remediation: "Retry; operators check that SQLITE_PATH is writable (see /readyz).",
    }
    KeyExpired {
        title: "Token has expired",
        description: "The bearer token matched a token of tokens.yaml whose `expires_at` has passed (seed 003 `key_expired`). Checked right after authentication, before any limit.",
        remediation: "Ask the operator for a new token; operators extend `expires_at` or issue a new token in tokens.yaml.",
    }
    TenantDisabled {
        title: "Tenant is disabled",
        description: "The token is valid but its tenant is marked `disabled: true` in tokens.yaml (seed 003: a suspended tenant). No request of the tenant reaches an upstream.",
        remediation: "Contact the operator; the tenant must be re-enabled in tokens.yaml.",
    }
    ConcurrencyLimitExceeded {
        title: "Too many requests in flight for this token",
        description: "The token already has its `max_concurrent` requests in flight (seed 003 `concurrency_limit`); a stream counts until it ends or the caller disconnects. Shared by replicas through Redis when REDIS_URL is set.",
        remediation: "Wait for one of your running requests to finish (retry after `Retry-After` seconds), or lower your client's parallelism.",
    }
    TenantRateLimitExceeded {
        title: "Tenant-wide rate limit exceeded",
        description: "The tenant's own bucket (`tenant_rate_limit` in tokens.yaml), shared by all of its tokens, is empty (seed 003 `tenant_qps_limit`). Checked before the per-token bucket.",
        remediation: "Back off for `Retry-After` seconds; all tokens of the tenant share this limit.",
    }
    ModelDoesNotSupportTools {
        title: "Model does not support tools",
        description: "The request has `tools` and the model's `capabilities.tools` is false (seed 003). Checked before content checks, so the request is never forwarded.",
        remediation: "Remove `tools`, or pick a model whose /v1/info `capabilities.tools` is true.",
    }
    ModelDoesNotSupportVision {
        title: "Model does not support images",
        description: "A message holds an `image_url` part and the model's `capabilities.vision` is false (seed 003). `param` points at the first image part. Checked before the image checks.",
        remediation: "Send text only, or pick a model whose /v1/info `capabilities.vision` is true.",
    }
    ContextLengthExceeded {
        title: "Prompt exceeds the model's context window",
        description: "The upstream refused the prompt for its context window (vLLM's \"maximum context length\" sentence, OpenAI's `context_length_exceeded`, LiteLLM's `ContextWindowExceededError`), or `max_tokens` alone exceeds the model's `context_window` (seeds 003, 004).",
        remediation: "Shorten `messages` or lower `max_tokens`; read `constraints.context_window` in /v1/info.",
    }
    ModelLoading {
        title: "Model is still loading",
        description: "The upstream answered that the model is not ready yet (vLLM, TGI, Ollama wordings; seed 003). Nothing was generated.",
        remediation: "Retry after `Retry-After` seconds; the model becomes available once loaded.",
    }
    UpstreamOverloaded {
        title: "Upstream cannot take more requests",
        description: "The alias's upstream already has its `max_in_flight` requests from this gateway and the bounded wait (`queue_wait_ms`) for a slot ran out, or the upstream itself answered that it is overloaded (seed 004: \"503 when it cannot accept new requests\").",
        remediation: "Retry after `Retry-After` seconds with backoff, or use another model alias.",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn rows_and_variants_line_up() {
        assert_eq!(Code::ALL.len(), ENTRIES.len());
        for (i, code) in Code::ALL.iter().enumerate() {
            assert_eq!(*code as usize, i);
            assert_eq!(Code::from_code(code.as_str()), Some(*code));
        }
    }

    #[test]
    fn the_catalog_has_the_34_codes_of_the_spec() {
        assert_eq!(ENTRIES.len(), 34);
        let unique: HashSet<_> = ENTRIES.iter().map(|e| e.code).collect();
        assert_eq!(unique.len(), 34, "codes must be unique");
        assert_eq!(ENTRIES[0].code, "missing_authorization");
    }

    #[test]
    fn a_retired_row_is_listed_with_its_marker_and_an_active_one_without() {
        let row = |retired| Entry {
            code: "old_code",
            error_type: ErrorType::UpstreamError,
            http_status: 502,
            title: "t",
            description: "d",
            remediation: "r",
            typical_param: None,
            retryable: false,
            retired,
            group: Group::Upstream,
        };
        let v = serde_json::to_value(row(State::Retired)).unwrap();
        assert_eq!(v["retired"], true);
        let v = serde_json::to_value(row(State::Active)).unwrap();
        assert!(v.get("retired").is_none());
    }

    #[test]
    fn error_type_all_lists_each_type_once() {
        let names: HashSet<_> = ErrorType::ALL.iter().map(|t| t.as_str()).collect();
        assert_eq!(names.len(), ErrorType::ALL.len());
        for e in ENTRIES {
            assert!(ErrorType::ALL.contains(&e.error_type));
        }
    }

    #[test]
    fn every_row_is_documented() {
        for e in ENTRIES {
            assert!(!e.title.is_empty() && !e.description.is_empty() && !e.remediation.is_empty());
            assert!(e
                .code
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'));
            let status_ok = match e.error_type {
                ErrorType::ToolLoopStatus => e.http_status == 200,
                _ => (400..600).contains(&e.http_status),
            };
            assert!(status_ok, "{} has status {}", e.code, e.http_status);
        }
    }
}
