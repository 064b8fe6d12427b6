//! The LiteLLM proxy 1.106.2 (`num_retries: 0`) in front of an OpenAI-compatible upstream
//! (vLLM): its paths (with and without `/v1`), chunks, bodies and error words.
//!
//! Errors are `{"error":{"message","type","param","code":"<status as string>"}}`. A scripted
//! upstream error reaches the caller the way the real proxy relays it (peers/WIRE_FACTS.md L1,
//! L4, L5, L7-L10, L18; pinned in `tests/formats.rs`): class prefixes and `OpenAIException - `
//! before the upstream's sentence, router text after it, upstream headers renamed
//! `llm_provider-<name>`, and stream breaks turned into a final error object without `[DONE]`.

use serde_json::{json, Value};

use super::{Delta, Dialect, ErrorReply, HealthRoute, Ids, Invalid, StreamBreak, Usage};

/// Appended to every relayed non-stream error (L5; `litellm/router_utils/common_utils.py:106-114`).
fn router_text(model: &str) -> String {
    format!("\n\nLiteLLM: model group '{model}' failed with the error above. No fallback was attempted.")
}

/// The message head for an upstream `status`: `str(exception)` of the class LiteLLM raises
/// (`litellm/litellm_core_utils/exception_mapping_utils.py:424-500`, `litellm/exceptions.py`).
fn relay_head(status: u16) -> &'static str {
    match status {
        400 | 422 => "litellm.BadRequestError: ",
        401 => "litellm.AuthenticationError: AuthenticationError: ",
        404 => "litellm.NotFoundError: NotFoundError: ",
        408 | 504 => "litellm.Timeout: Timeout Error: ",
        429 => "litellm.RateLimitError: RateLimitError: ",
        500 => "litellm.InternalServerError: InternalServerError: ",
        502 => "litellm.BadGatewayError: BadGatewayError: ",
        503 => "litellm.ServiceUnavailableError: ServiceUnavailableError: ",
        _ => "litellm.APIError: ",
    }
}

/// `error.type` of a relayed error (L10): the exception's own type, else by status
/// (`litellm/proxy/common_utils/openai_error_payload.py:16-51`).
fn relay_type(status: u16) -> &'static str {
    match status {
        400 | 422 => "BadRequestError",
        401 => "authentication_error",
        403 => "permission_error",
        429 => "throttling_error",
        s if s >= 500 => "internal_server_error",
        _ => "invalid_request_error",
    }
}

#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Litellm;

impl Litellm {
    pub(super) const DEFAULT: Litellm = Litellm;

    fn error_type(status: u16) -> &'static str {
        match status {
            400 | 413 | 422 => "invalid_request_error",
            401 | 403 => "auth_error",
            404 => "not_found_error",
            408 => "timeout",
            429 => "rate_limit_error",
            _ => "None",
        }
    }
}

fn liveliness() -> Value {
    // FastAPI serialises the returned str as a JSON string.
    Value::from("I'm alive!")
}

fn readiness() -> Value {
    json!({
        "status": "healthy",
        "db": "Not connected",
        "cache": null,
        "litellm_version": "mock",
        "success_callbacks": [],
    })
}

const HEALTH: &[HealthRoute] = &[
    HealthRoute {
        path: "/health/liveliness",
        body: Some(liveliness),
    },
    HealthRoute {
        path: "/health/readiness",
        body: Some(readiness),
    },
];

impl Dialect for Litellm {
    fn name(&self) -> &'static str {
        "litellm"
    }

    fn api_prefix(&self) -> &'static str {
        "/v1"
    }

    fn chat_paths(&self) -> &'static [&'static str] {
        &["/v1/chat/completions", "/chat/completions"]
    }

    fn models_paths(&self) -> &'static [&'static str] {
        &["/v1/models", "/models"]
    }

    fn health_routes(&self) -> &'static [HealthRoute] {
        HEALTH
    }

    fn health_path(&self) -> &'static str {
        "/health/liveliness"
    }

    fn models_body(&self, _created: u64) -> Value {
        json!({
            "data": [
                {"id": "mock-model", "object": "model", "created": 1677610602, "owned_by": "openai"},
                {"id": "mock-model-large", "object": "model", "created": 1677610602, "owned_by": "openai"},
            ],
            "object": "list",
        })
    }

    fn not_found_body(&self) -> Value {
        // FastAPI's default 404.
        json!({"detail": "Not Found"})
    }

    fn response_id(&self, _created: u64, a: u64, b: u64) -> String {
        format!(
            "chatcmpl-{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xffff,
            b >> 48,
            b & 0xffff_ffff_ffff
        )
    }

    fn tool_call_id(&self, a: u64, b: u64) -> String {
        format!(
            "call_{:012x}{:012x}",
            a & 0xffff_ffff_ffff,
            b & 0xffff_ffff_ffff
        )
    }

    fn chunk_head(&self, id_json: &str, created: u64, model_json: &str) -> String {
        format!(
            r#"{{"id":{id_json},"created":{created},"model":{model_json},"object":"chat.completion.chunk","system_fingerprint":null,"#
        )
    }

    fn choice_tail(&self, buf: &mut Vec<u8>, finish: &str, _finished: bool) {
        buf.extend_from_slice(br#","finish_reason":"#);
        buf.extend_from_slice(finish.as_bytes());
    }

    fn finish_delta(&self) -> Delta<'static> {
        Delta::default()
    }

    fn completion(
        &self,
        ids: &Ids,
        content: Option<&str>,
        calls: Vec<Value>,
        finish_reason: &str,
        usage: Usage,
    ) -> Value {
        // As LiteLLM proxy 1.106.2 answers (peers/fixtures/litellm-1.106.2/success.http): no
        // `system_fingerprint`, no `tool_calls` / `function_call` member when the model called
        // nothing, and its `provider_specific_fields` on the message and the choice.
        let mut message = json!({
            "content": content,
            "role": "assistant",
            "provider_specific_fields": {"refusal": null},
        });
        if !calls.is_empty() {
            message["tool_calls"] = Value::Array(calls);
        }
        json!({
            "id": ids.id,
            "created": ids.created,
            "model": ids.model,
            "object": "chat.completion",
            "choices": [{
                "finish_reason": finish_reason,
                "index": 0,
                "message": message,
                "provider_specific_fields": {"stop_reason": null},
            }],
            "usage": usage,
        })
    }

    fn error_body(&self, status: u16, message: &str, error_type: Option<&str>) -> Value {
        json!({"error": {
            "message": message,
            "type": error_type.unwrap_or(Litellm::error_type(status)),
            "param": null,
            "code": status.to_string(),
        }})
    }

    fn stream_error(&self, _ids: &Ids, _status: u16, message: &str) -> Value {
        // L18: `data: {"error": ProxyException.to_dict()}` of the APIConnectionError the SDK's
        // failure becomes: its status is 500 whatever the upstream said, its type null.
        json!({"error": {
            "message": format!("litellm.APIConnectionError: APIConnectionError: OpenAIException - {message}"),
            "type": null,
            "param": null,
            "code": "500",
        }})
    }

    fn unauthorized_body(&self, key_present: bool) -> Value {
        let message = if key_present {
            "Authentication Error, Invalid proxy server token passed. Unable to find token in cache or `LiteLLM_VerificationTokenTable`"
        } else {
            "Authentication Error, No api key passed in."
        };
        json!({"error": {"message": message, "type": "auth_error", "param": "None", "code": "401"}})
    }

    fn invalid_request(&self, what: Invalid) -> &'static str {
        match what {
            Invalid::Json => "Invalid JSON payload",
            Invalid::Model => {
                "Invalid model name passed in model=None. Call `/v1/models` to view available models for your key."
            }
            Invalid::Messages => "litellm.BadRequestError: Missing required parameter: 'messages'",
        }
    }

    fn quota_exhausted(&self) -> ErrorReply {
        // litellm.BudgetExceededError (status 400) surfaced by the proxy as a ProxyException.
        ErrorReply::json(
            self,
            400,
            &json!({"error": {
                "message": "Budget has been exceeded! Current cost: 10.0042, Max budget: 10.0",
                "type": "budget_exceeded",
                "param": null,
                "code": "400",
            }}),
        )
    }

    fn daily_limit(&self, _now_ms: u64) -> ErrorReply {
        ErrorReply::json(
            self,
            429,
            &json!({"error": {
                "message": "LiteLLM Rate Limit Handler for rate limit type = key. Crossed TPM / RPM / Max Parallel Request Limit. current rpm: 1, rpm limit: 1, current tpm: 348, tpm limit: 9223372036854775807, current max_parallel_requests: 0, max_parallel_requests: 9223372036854775807",
                "type": "None",
                "param": "None",
                "code": "429",
            }}),
        )
    }

    fn context_length_message(&self, max: u64, requested: u64, prompt: u64, completion: u64) -> String {
        format!(
            "litellm.ContextWindowExceededError: litellm.BadRequestError: ContextWindowExceededError: OpenAIException - This model's maximum context length is {max} tokens. However, you requested {requested} tokens ({prompt} in the messages, {completion} in the completion). Please reduce the length of the messages or completion."
        )
    }

    fn relayed_error(&self, status: u16, message: &str, model: &str) -> (String, Option<&'static str>) {
        if message.starts_with("litellm.ContextWindowExceededError: ") {
            // L7, L8: the router adds its context-window note, then the usual text.
            let text = format!(
                "{message}\nmodel={model}. context_window_fallbacks=None. fallbacks=None.\n\nSet 'context_window_fallback' - https://docs.litellm.ai/docs/routing#fallbacks{}",
                router_text(model)
            );
            return (text, Some("invalid_request_error"));
        }
        let text = format!(
            "{}OpenAIException - {message}{}",
            relay_head(status),
            router_text(model)
        );
        (text, Some(relay_type(status)))
    }

    fn relayed_header(&self, name: &str) -> String {
        // L1: every upstream header name without `llm_provider` gets the prefix
        // (`litellm/litellm_core_utils/llm_response_utils/get_headers.py:51-64`).
        if name.to_ascii_lowercase().starts_with("llm_provider") {
            name.to_owned()
        } else {
            format!("llm_provider-{name}")
        }
    }

    fn stream_break_message(&self, what: StreamBreak) -> Option<&'static str> {
        // L18: aiohttp's and json's words, as the OpenAI SDK inside LiteLLM raises them.
        Some(match what {
            StreamBreak::Drop => "Response payload is not completed: <TransferEncodingError: 400, message='Not enough data to satisfy transfer length header.'>",
            StreamBreak::Malformed => "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
        })
    }

    fn done_after_stream_error(&self) -> bool {
        // L18: the generator yields the error object and stops (`proxy_server.py:10357-10365`).
        false
    }

    fn max_tokens_message(&self, min: u64) -> String {
        format!(
            "litellm.BadRequestError: OpenAIException - Invalid 'max_tokens': integer below minimum value. Expected a value >= {min}."
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::wire::to_vec;
    use super::*;

    #[test]
    fn liveliness_is_a_json_string() {
        assert_eq!(to_vec(&liveliness()), br#""I'm alive!""#.to_vec());
    }
}
