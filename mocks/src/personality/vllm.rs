//! vLLM's OpenAI-compatible server (`vllm serve`): its paths, chunks, bodies and error words.
//!
//! Errors follow current vLLM (`ErrorResponse { error: ErrorInfo }`); `legacy_errors` gives the
//! flat `{"object":"error",...}` of vLLM ≤ 0.10.0 (`--vllm-legacy-errors`).

use serde_json::{json, Value};

use super::{reason_phrase, Delta, Dialect, ErrorReply, Fault, HealthRoute, Ids, Invalid, Usage};

#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Vllm {
    /// Answer errors in the flat pre-0.10 shape instead of nested under `"error"`.
    pub legacy_errors: bool,
}

impl Vllm {
    pub(super) const DEFAULT: Vllm = Vllm {
        legacy_errors: false,
    };
    pub(super) const LEGACY: Vllm = Vllm {
        legacy_errors: true,
    };

    /// vLLM's error `type`: the exception class for engine errors, the HTTP phrase otherwise.
    fn error_type(status: u16) -> String {
        match status {
            400 => "BadRequestError".to_owned(),
            404 => "NotFoundError".to_owned(),
            500 => "InternalServerError".to_owned(),
            501 => "NotImplementedError".to_owned(),
            _ => reason_phrase(status).to_owned(),
        }
    }

    fn error_info(&self, status: u16, message: &str, kind: &str) -> Value {
        if self.legacy_errors {
            json!({"object": "error", "message": message, "type": kind, "param": null, "code": status})
        } else {
            json!({"message": message, "type": kind, "param": null, "code": status})
        }
    }

    /// vLLM has no notion of budgets or daily limits; a plain 429 is all a quota-enforcing
    /// front adds.
    fn too_many(&self) -> ErrorReply {
        (self as &dyn Dialect).error_reply(429, "Too Many Requests", None)
    }
}

const HEALTH: &[HealthRoute] = &[HealthRoute {
    path: "/health",
    body: None,
}];

impl Dialect for Vllm {
    fn name(&self) -> &'static str {
        "vllm"
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
        json!({
            "object": "list",
            "data": [{
                "id": "mock-model",
                "object": "model",
                "created": created,
                "owned_by": "vllm",
                "root": "mock-model",
                "parent": null,
                "max_model_len": 8192,
                "permission": [{
                    "id": "modelperm-mock",
                    "object": "model_permission",
                    "created": created,
                    "allow_create_engine": false,
                    "allow_sampling": true,
                    "allow_logprobs": true,
                    "allow_search_indices": false,
                    "allow_view": true,
                    "allow_fine_tuning": false,
                    "organization": "*",
                    "group": null,
                    "is_blocking": false,
                }],
            }],
        })
    }

    fn not_found_body(&self) -> Value {
        // FastAPI's default 404.
        json!({"detail": "Not Found"})
    }

    fn response_id(&self, _created: u64, a: u64, b: u64) -> String {
        format!("chatcmpl-{a:016x}{b:016x}")
    }

    fn tool_call_id(&self, a: u64, b: u64) -> String {
        format!("chatcmpl-tool-{a:016x}{b:016x}")
    }

    fn chunk_head(&self, id_json: &str, created: u64, model_json: &str) -> String {
        format!(
            r#"{{"id":{id_json},"object":"chat.completion.chunk","created":{created},"model":{model_json},"#
        )
    }

    fn sse_content_type(&self) -> &'static str {
        "text/event-stream; charset=utf-8"
    }

    fn choice_tail(&self, buf: &mut Vec<u8>, finish: &str, finished: bool) {
        buf.extend_from_slice(br#","logprobs":null,"finish_reason":"#);
        buf.extend_from_slice(finish.as_bytes());
        if finished {
            buf.extend_from_slice(br#","stop_reason":null"#);
        }
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
        json!({
            "id": ids.id,
            "object": "chat.completion",
            "created": ids.created,
            "model": ids.model,
            "choices": [{
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": content,
                    "tool_calls": calls,
                    "reasoning_content": null,
                },
                "logprobs": null,
                "finish_reason": finish_reason,
                "stop_reason": null,
            }],
            "usage": usage,
            "prompt_logprobs": null,
        })
    }

    fn error_body(&self, status: u16, message: &str, error_type: Option<&str>) -> Value {
        let kind = error_type
            .map(str::to_owned)
            .unwrap_or_else(|| Vllm::error_type(status));
        let info = self.error_info(status, message, &kind);
        if self.legacy_errors {
            info
        } else {
            json!({ "error": info })
        }
    }

    fn stream_error(&self, _ids: &Ids, status: u16, message: &str) -> Value {
        // `create_streaming_error_response` dumps an ErrorResponse; since ErrorResponse became
        // `{"error": ErrorInfo}` that is `{"error": {...}}`, and before that the flat object was
        // wrapped in `{"error": ...}` by hand, so both shapes nest under "error".
        json!({"error": self.error_info(status, message, &Vllm::error_type(status))})
    }

    fn unauthorized_body(&self, _key_present: bool) -> Value {
        // The --api-key middleware answers a bare `{"error": "Unauthorized"}`.
        json!({"error": "Unauthorized"})
    }

    fn invalid_request(&self, what: Invalid) -> &'static str {
        match what {
            Invalid::Json => "JSON decode error",
            Invalid::Model => {
                "[{'type': 'missing', 'loc': ('body', 'model'), 'msg': 'Field required'}]"
            }
            Invalid::Messages => {
                "[{'type': 'missing', 'loc': ('body', 'messages'), 'msg': 'Field required'}]"
            }
        }
    }

    fn quota_exhausted(&self) -> ErrorReply {
        self.too_many()
    }

    fn daily_limit(&self, _now_ms: u64) -> ErrorReply {
        self.too_many()
    }

    fn context_length_message(&self, max: u64, requested: u64, prompt: u64, completion: u64) -> String {
        format!(
            "This model's maximum context length is {max} tokens. However, you requested {requested} tokens ({prompt} in the messages, {completion} in the completion). Please reduce the length of the messages or completion."
        )
    }

    fn max_tokens_message(&self, min: u64) -> String {
        format!("max_tokens must be at least {min} for this model.")
    }

    fn gateway_fault(&self, fault: Fault<'_>) -> Option<ErrorReply> {
        let d = self as &dyn Dialect;
        match fault {
            // vllm/entrypoints/openai/serving_engine.py `_check_model`: 404 NotFoundError.
            Fault::UnknownModel(model) => Some(d.error_reply(
                404,
                &format!("The model `{model}` does not exist."),
                None,
            )),
            _ => None,
        }
    }
}
