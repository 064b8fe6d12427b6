//! openrouter.ai: `/api/v1` paths, `gen-…` ids, `provider` in bodies, the `: OPENROUTER
//! PROCESSING` keep-alive, and `{"error":{"code":<int>,"message","metadata"}}` errors.

use serde_json::{json, Value};

use super::{Delta, Dialect, ErrorReply, HealthRoute, Ids, Invalid, Usage};

/// The upstream provider name OpenRouter reports in `provider`.
const PROVIDER: &str = "OpenAI";

#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct OpenRouter;

impl OpenRouter {
    pub(super) const DEFAULT: OpenRouter = OpenRouter;
}

fn alnum20(a: u64, b: u64) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(20);
    let (mut x, mut y) = (a, b);
    for i in 0..20 {
        let src = if i < 10 { &mut x } else { &mut y };
        out.push(char::from(ALPHABET[(*src % 62) as usize]));
        *src /= 62;
    }
    out
}

impl Dialect for OpenRouter {
    fn name(&self) -> &'static str {
        "openrouter"
    }

    fn api_prefix(&self) -> &'static str {
        "/api/v1"
    }

    fn chat_paths(&self) -> &'static [&'static str] {
        &["/api/v1/chat/completions"]
    }

    fn models_paths(&self) -> &'static [&'static str] {
        &["/api/v1/models"]
    }

    fn models_public(&self) -> bool {
        true
    }

    fn health_routes(&self) -> &'static [HealthRoute] {
        &[]
    }

    /// No health route: the public model list stands in, as for a real deployment.
    fn health_path(&self) -> &'static str {
        "/api/v1/models"
    }

    fn models_body(&self, created: u64) -> Value {
        json!({
            "data": [
                {
                    "id": "openai/gpt-4o-mini",
                    "name": "OpenAI: GPT-4o-mini",
                    "created": created,
                    "description": "Mock model",
                    "context_length": 128000,
                    "pricing": {"prompt": "0.00000015", "completion": "0.0000006"},
                },
                {
                    "id": "meta-llama/llama-3.3-8b-instruct:free",
                    "name": "Meta: Llama 3.3 8B Instruct (free)",
                    "created": created,
                    "description": "Mock free model",
                    "context_length": 128000,
                    "pricing": {"prompt": "0", "completion": "0"},
                },
            ],
        })
    }

    fn not_found_body(&self) -> Value {
        json!({"error": {"code": 404, "message": "Not Found"}})
    }

    fn response_id(&self, created: u64, a: u64, b: u64) -> String {
        format!("gen-{created}-{}", alnum20(a, b))
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
            r#"{{"id":{id_json},"provider":"{PROVIDER}","model":{model_json},"object":"chat.completion.chunk","created":{created},"#
        )
    }

    fn sse_prelude(&self) -> Option<&'static [u8]> {
        Some(b": OPENROUTER PROCESSING\n\n")
    }

    fn role_in_every_delta(&self) -> bool {
        true
    }

    fn choice_tail(&self, buf: &mut Vec<u8>, finish: &str, _finished: bool) {
        buf.extend_from_slice(br#","finish_reason":"#);
        buf.extend_from_slice(finish.as_bytes());
        buf.extend_from_slice(br#","native_finish_reason":"#);
        buf.extend_from_slice(finish.as_bytes());
        buf.extend_from_slice(br#","logprobs":null"#);
    }

    fn finish_delta(&self) -> Delta<'static> {
        Delta {
            content: Some(""),
            ..Delta::default()
        }
    }

    fn completion(
        &self,
        ids: &Ids,
        content: Option<&str>,
        calls: Vec<Value>,
        finish_reason: &str,
        usage: Usage,
    ) -> Value {
        let mut message = json!({
            "role": "assistant",
            "content": content.unwrap_or(""),
            "refusal": null,
            "reasoning": null,
        });
        if !calls.is_empty() {
            message["tool_calls"] = Value::Array(calls);
        }
        json!({
            "id": ids.id,
            "provider": PROVIDER,
            "model": ids.model,
            "object": "chat.completion",
            "created": ids.created,
            "choices": [{
                "logprobs": null,
                "finish_reason": finish_reason,
                "native_finish_reason": finish_reason,
                "index": 0,
                "message": message,
            }],
            "usage": usage,
        })
    }

    fn error_body(&self, status: u16, message: &str, error_type: Option<&str>) -> Value {
        let mut metadata = json!({"provider_name": null});
        if let Some(kind) = error_type {
            metadata["error_type"] = Value::from(kind);
        }
        json!({"error": {"code": status, "message": message, "metadata": metadata}})
    }

    fn stream_error(&self, ids: &Ids, status: u16, message: &str) -> Value {
        // A chunk with a top-level `error` and finish_reason "error".
        json!({
            "id": ids.id,
            "provider": PROVIDER,
            "model": ids.model,
            "object": "chat.completion.chunk",
            "created": ids.created,
            "error": {"code": status, "message": message},
            "choices": [{
                "index": 0,
                "delta": {"content": ""},
                "finish_reason": "error",
                "native_finish_reason": "error",
            }],
        })
    }

    fn unauthorized_body(&self, key_present: bool) -> Value {
        let message = if key_present {
            "User not found."
        } else {
            "No auth credentials found"
        };
        json!({"error": {"message": message, "code": 401}})
    }

    fn invalid_request(&self, what: Invalid) -> &'static str {
        match what {
            Invalid::Json => "Invalid JSON in request body",
            Invalid::Model => "No model specified",
            Invalid::Messages => "Input required: specify \"prompt\" or \"messages\"",
        }
    }

    fn quota_exhausted(&self) -> ErrorReply {
        ErrorReply::json(
            self,
            402,
            &json!({
                "error": {
                    "code": 402,
                    "message": "Insufficient credits. Add more using https://openrouter.ai/credits",
                    "metadata": {"provider_name": null},
                },
                "user_id": "user_mock",
            }),
        )
    }

    fn daily_limit(&self, now_ms: u64) -> ErrorReply {
        const DAY_MS: u64 = 86_400_000;
        // The limit resets at the next 00:00 UTC, in ms.
        let reset = ((now_ms / DAY_MS + 1) * DAY_MS).to_string();
        ErrorReply::json(
            self,
            429,
            &json!({
                "error": {
                    "message": "Rate limit exceeded: free-models-per-day. Add 10 credits to unlock 1000 free model requests per day",
                    "code": 429,
                    "metadata": {
                        "headers": {
                            "X-RateLimit-Limit": "50",
                            "X-RateLimit-Remaining": "0",
                            "X-RateLimit-Reset": reset,
                        },
                        "provider_name": null,
                    },
                },
                "user_id": "user_mock",
            }),
        )
        .with_header("x-ratelimit-limit", "50")
        .with_header("x-ratelimit-remaining", "0")
        .with_header("x-ratelimit-reset", reset)
    }

    /// The per-minute free-model window, with the `Retry-After` a client should honour.
    fn rate_window(&self, _now_ms: u64) -> ErrorReply {
        (self as &dyn Dialect)
            .error_reply(429, "Rate limit exceeded: free-models-per-min. ", None)
            .with_header("retry-after", "20")
    }

    fn context_length_message(&self, max: u64, requested: u64, prompt: u64, completion: u64) -> String {
        format!(
            "This endpoint's maximum context length is {max} tokens. However, you requested about {requested} tokens ({prompt} of text input, {completion} in the output). Please reduce the length of either one, or use the \"middle-out\" transform to compress your prompt automatically."
        )
    }

    fn max_tokens_message(&self, min: u64) -> String {
        format!("max_tokens must be at least {min} for this model")
    }
}
