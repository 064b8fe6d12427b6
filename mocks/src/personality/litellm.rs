//! The LiteLLM proxy: its paths (with and without `/v1`), chunks, bodies and error words.
//!
//! Errors are `{"error":{"message","type","param","code":"<status as string>"}}`.

use serde_json::{json, Value};

use super::{Delta, Dialect, ErrorReply, HealthRoute, Ids, Invalid, Usage};

#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Litellm;

impl Litellm {
    pub const DEFAULT: Litellm = Litellm;

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
        json!({
            "id": ids.id,
            "created": ids.created,
            "model": ids.model,
            "object": "chat.completion",
            "system_fingerprint": null,
            "choices": [{
                "finish_reason": finish_reason,
                "index": 0,
                "message": {
                    "content": content,
                    "role": "assistant",
                    "tool_calls": if calls.is_empty() { Value::Null } else { Value::Array(calls) },
                    "function_call": null,
                },
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

    fn stream_error(&self, _ids: &Ids, status: u16, message: &str) -> Value {
        // The proxy yields `data: {"error": ProxyException.to_dict()}`.
        self.error_body(status, message, None)
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
