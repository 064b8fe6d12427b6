//! Seed 002's "LLM Gateway API" as a gateway double: a FastAPI gateway that takes the caller's
//! key in `X-API-Key` and answers every error as `{"detail": "<message>"}`.
//!
//! Written from `/work/shared/seeds/002_f3e41d36928e3b5f.txt`: § Error Response Schema (every
//! error is `{"detail": …}`), § 401 Unauthorized and § Error Response From Source,
//! Authentication Check (one text, "Invalid or missing API Key", for a missing and a wrong
//! key), § 429 Too Many Requests (a token bucket per API key), § 500 Internal Server Error
//! ("Downstream LLM provider is unavailable" is a 500 with the generic text). What the seed
//! does not document (bad bodies, unknown models, the body cap) gets FastAPI's usual statuses
//! (422 for a body it cannot validate, 404, 413) in the seed's body shape. Successful answers
//! are relayed in the OpenAI shape of the upstream behind it (vLLM's).

use serde_json::{json, Value};

use super::vllm::Vllm;
use super::{Delta, Dialect, ErrorReply, Fault, HealthRoute, Ids, Invalid, Usage};

#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct LlmGatewayApi;

/// § 401 / § Error Response From Source, Authentication Check.
const UNAUTHORIZED: &str = "Invalid or missing API Key";
/// § 429 / § Error Response From Source, Rate Limit Check.
const TOO_MANY: &str = "Too many requests. Please wait before trying again.";
/// § 500, its "Response" example.
const INTERNAL: &str = "Internal server error occurred while processing your request";

/// Success shapes come from the upstream behind the gateway.
const UPSTREAM: Vllm = Vllm::DEFAULT;

const HEALTH: &[HealthRoute] = &[HealthRoute {
    path: "/health",
    body: None,
}];

impl LlmGatewayApi {
    pub(super) const DEFAULT: LlmGatewayApi = LlmGatewayApi;

    fn detail(&self, status: u16, message: &str) -> ErrorReply {
        ErrorReply::json(self, status, &json!({ "detail": message }))
    }
}

impl Dialect for LlmGatewayApi {
    fn name(&self) -> &'static str {
        "llm-gateway-api"
    }

    fn api_prefix(&self) -> &'static str {
        "/v1"
    }

    fn chat_paths(&self) -> &'static [&'static str] {
        // The seed's retry example posts to `/v1/chat`; OpenAI clients use the long form.
        &["/v1/chat/completions", "/v1/chat"]
    }

    fn models_paths(&self) -> &'static [&'static str] {
        &["/v1/models"]
    }

    fn health_routes(&self) -> &'static [HealthRoute] {
        HEALTH
    }

    fn health_path(&self) -> &'static str {
        "/health"
    }

    fn models_body(&self, created: u64) -> Value {
        UPSTREAM.models_body(created)
    }

    fn not_found_body(&self) -> Value {
        // FastAPI's default 404.
        json!({"detail": "Not Found"})
    }

    success_wire_of!(UPSTREAM);

    fn error_body(&self, _status: u16, message: &str, _error_type: Option<&str>) -> Value {
        json!({ "detail": message })
    }

    fn stream_error(&self, _ids: &Ids, _status: u16, _message: &str) -> Value {
        json!({ "detail": INTERNAL })
    }

    fn unauthorized_body(&self, _key_present: bool) -> Value {
        json!({ "detail": UNAUTHORIZED })
    }

    fn invalid_request(&self, what: Invalid) -> &'static str {
        match what {
            Invalid::Json => "The request body is not valid JSON",
            Invalid::Model => "Field required: model",
            Invalid::Messages => "Field required: messages",
        }
    }

    fn quota_exhausted(&self) -> ErrorReply {
        self.detail(429, TOO_MANY)
    }

    fn daily_limit(&self, _now_ms: u64) -> ErrorReply {
        self.detail(429, TOO_MANY)
    }

    fn context_length_message(&self, max: u64, requested: u64, _prompt: u64, _completion: u64) -> String {
        format!("The request needs {requested} tokens; the model's context is {max} tokens")
    }

    fn max_tokens_message(&self, min: u64) -> String {
        format!("max_tokens must be at least {min}")
    }

    fn credential_header(&self) -> (&'static str, bool) {
        // § 401: "Always include your API key in the X-API-Key header of your requests."
        ("x-api-key", false)
    }

    fn gateway_fault(&self, fault: Fault<'_>) -> Option<ErrorReply> {
        Some(match fault {
            Fault::WrongType(field) => self.detail(422, &format!("Input should be valid: {field}")),
            Fault::UnknownModel(_) => self.detail(404, "Model not found"),
            Fault::BodyTooLarge(_) => self.detail(413, "Request body too large"),
            Fault::RateLimited => self.detail(429, TOO_MANY),
            Fault::ContextLength(message) => self.detail(400, message),
            // § 500: "Downstream LLM provider is unavailable" is one of the 500's causes; the
            // provider's own message is not passed on.
            Fault::Upstream(status) if status >= 500 => self.detail(500, INTERNAL),
            Fault::Upstream(status) => self.detail(status, "The LLM provider rejected the request"),
        })
    }
}
