//! Seed 003's OwnLLM as a gateway double: the OpenAI error envelope with OwnLLM's own `type`s
//! and `code`s, `Retry-After` on every 429, `key_malformed` for a credential that is not
//! `Bearer sk-ownllm-…`.
//!
//! Written from `/work/shared/seeds/003_6544126e8a7e1d29.txt`: the envelope
//! `{"error": {"type", "code", "message"}}` and its six types (§ Errors); § 400 (`model_required`,
//! `messages_required`, `context_length_exceeded`), § 401 (`key_invalid`, `key_malformed`),
//! § 403 (`scope_required`: "The key isn't scoped for the requested model", which is what an
//! unknown model is to it), § 429 (`concurrency_limit`, `budget_exceeded`, `tenant_qps_limit`;
//! "The standard Retry-After header is set on 429 responses"), § 503 (`agent_offline`) and
//! § 500 (`internal_error`). A 400 the seed gives no code for (bad JSON, a wrong type, an
//! oversize body) carries its type as the code. Successful answers are relayed in the OpenAI
//! shape of the upstream behind it (vLLM's).

use serde_json::{json, Value};

use super::vllm::Vllm;
use super::{Delta, Dialect, ErrorReply, Fault, HealthRoute, Ids, Invalid, Usage};

#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct OwnLlm;

/// Success shapes come from the upstream behind the gateway.
const UPSTREAM: Vllm = Vllm::DEFAULT;

/// § 401 key_malformed: "The Authorization header doesn't match Bearer sk-ownllm-...".
const KEY_PREFIX: &str = "sk-ownllm-";

const MODEL_REQUIRED: &str = "Request is missing model.";
const MESSAGES_REQUIRED: &str = "Request is missing messages or it's empty.";
const CONTEXT_PREFIX: &str = "Request token count";

/// Whole seconds a client waits after a 429 (§ 429: Retry-After on every 429).
const RETRY_AFTER_S: &str = "1";

const HEALTH: &[HealthRoute] = &[HealthRoute {
    path: "/health",
    body: None,
}];

impl OwnLlm {
    pub(super) const DEFAULT: OwnLlm = OwnLlm;

    /// § Errors: "type is one of invalid_request_error, authentication_error,
    /// permission_error, rate_limit_exceeded, agent_unavailable, internal_error".
    fn error_type(status: u16) -> &'static str {
        match status {
            401 => "authentication_error",
            403 => "permission_error",
            429 => "rate_limit_exceeded",
            503 => "agent_unavailable",
            s if s >= 500 => "internal_error",
            _ => "invalid_request_error",
        }
    }

    /// The code of one of its own messages, else the status's usual one.
    fn code_for(status: u16, message: &str) -> &'static str {
        match (status, message) {
            (_, MODEL_REQUIRED) => "model_required",
            (_, MESSAGES_REQUIRED) => "messages_required",
            (_, m) if m.starts_with(CONTEXT_PREFIX) => "context_length_exceeded",
            (401, _) => "key_invalid",
            (403, _) => "scope_required",
            (429, _) => "concurrency_limit",
            (503, _) => "agent_offline",
            (s, _) if s >= 500 => "internal_error",
            _ => "invalid_request_error",
        }
    }

    fn envelope(status: u16, code: &str, message: &str) -> Value {
        json!({"error": {"type": OwnLlm::error_type(status), "code": code, "message": message}})
    }

    fn reply(&self, status: u16, code: &str, message: &str) -> ErrorReply {
        let reply = ErrorReply::json(self, status, &OwnLlm::envelope(status, code, message));
        if status == 429 {
            reply.with_header("retry-after", RETRY_AFTER_S)
        } else {
            reply
        }
    }
}

impl Dialect for OwnLlm {
    fn name(&self) -> &'static str {
        "ownllm"
    }

    fn api_prefix(&self) -> &'static str {
        "/v1"
    }

    fn chat_paths(&self) -> &'static [&'static str] {
        &["/v1/chat/completions"]
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
        OwnLlm::envelope(404, "invalid_request_error", "Unknown route.")
    }

    success_wire_of!(UPSTREAM);

    fn error_body(&self, status: u16, message: &str, _error_type: Option<&str>) -> Value {
        OwnLlm::envelope(status, OwnLlm::code_for(status, message), message)
    }

    fn stream_error(&self, _ids: &Ids, _status: u16, _message: &str) -> Value {
        OwnLlm::envelope(503, "agent_offline", "The paired GPU machine isn't reachable.")
    }

    fn unauthorized_body(&self, key_present: bool) -> Value {
        if key_present {
            OwnLlm::envelope(401, "key_invalid", "The API key doesn't exist or has been revoked.")
        } else {
            OwnLlm::envelope(401, "key_malformed", "The Authorization header doesn't match Bearer sk-ownllm-....")
        }
    }

    fn unauthorized_for(&self, presented: Option<&str>) -> Value {
        // § 401: anything but `Bearer sk-ownllm-…` is malformed, a missing header included.
        let well_formed = presented
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|k| k.trim().starts_with(KEY_PREFIX));
        self.unauthorized_body(well_formed)
    }

    fn invalid_request(&self, what: Invalid) -> &'static str {
        match what {
            Invalid::Json => "The request body is not valid JSON.",
            Invalid::Model => MODEL_REQUIRED,
            Invalid::Messages => MESSAGES_REQUIRED,
        }
    }

    fn quota_exhausted(&self) -> ErrorReply {
        self.reply(429, "budget_exceeded", "The key's monthly budget cap is hit.")
    }

    fn daily_limit(&self, _now_ms: u64) -> ErrorReply {
        self.reply(429, "tenant_qps_limit", "The tenant's overall QPS limit is hit.")
    }

    fn rate_window(&self, _now_ms: u64) -> ErrorReply {
        self.reply(429, "concurrency_limit", "Too many in-flight requests for this key. Back off.")
    }

    fn context_length_message(&self, max: u64, requested: u64, _prompt: u64, _completion: u64) -> String {
        format!("{CONTEXT_PREFIX} {requested} exceeds the model's context_window {max}. Trim the messages.")
    }

    fn max_tokens_message(&self, min: u64) -> String {
        format!("max_tokens must be at least {min}.")
    }

    fn gateway_fault(&self, fault: Fault<'_>) -> Option<ErrorReply> {
        Some(match fault {
            Fault::WrongType(field) => self.reply(
                400,
                "invalid_request_error",
                &format!("`{field}` has the wrong type."),
            ),
            Fault::UnknownModel(_) => self.reply(
                403,
                "scope_required",
                "The key isn't scoped for the requested model. Edit the key or pick another model.",
            ),
            Fault::BodyTooLarge(cap) => self.reply(
                400,
                "invalid_request_error",
                &format!("The request body is over the {cap}-byte limit."),
            ),
            Fault::RateLimited => self.rate_window(0),
            Fault::ContextLength(message) => self.reply(400, "context_length_exceeded", message),
            Fault::Upstream(500) => self.reply(
                500,
                "internal_error",
                "Generic 500. Sentry has the details on our side.",
            ),
            Fault::Upstream(429) => self.rate_window(0),
            Fault::Upstream(s) if s >= 500 => {
                self.reply(503, "agent_offline", "The paired GPU machine isn't reachable.")
            }
            Fault::Upstream(_) => self.reply(400, "invalid_request_error", "The model rejected the request."),
        })
    }
}
