//! Wire formats of the three upstreams: paths, success bodies, SSE chunks and error bodies.
//!
//! Everything a gateway could parse lives here, so that a change in what "vLLM looks like"
//! is a change in one file. The facts pinned here, with where they came from, are listed in
//! `tests/formats.rs`.

use std::fmt;
use std::str::FromStr;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Which real server the mock imitates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Personality {
    /// vLLM's OpenAI-compatible server (`vllm serve`).
    #[default]
    Vllm,
    /// The LiteLLM proxy.
    Litellm,
    /// openrouter.ai.
    OpenRouter,
}

impl Personality {
    /// Every personality, for tests and help texts.
    pub const ALL: [Personality; 3] = [
        Personality::Vllm,
        Personality::Litellm,
        Personality::OpenRouter,
    ];

    /// The chat completions path.
    pub fn chat_path(self) -> &'static str {
        match self {
            Personality::Vllm | Personality::Litellm => "/v1/chat/completions",
            Personality::OpenRouter => "/api/v1/chat/completions",
        }
    }

    /// The path a gateway's readiness probe should hit. OpenRouter has no health route, so its
    /// public model list stands in, as it would for a real deployment.
    pub fn health_path(self) -> &'static str {
        match self {
            Personality::Vllm => "/health",
            Personality::Litellm => "/health/liveliness",
            Personality::OpenRouter => "/api/v1/models",
        }
    }

    /// What an OpenAI SDK would use as `base_url` (after the host).
    pub fn api_prefix(self) -> &'static str {
        match self {
            Personality::Vllm | Personality::Litellm => "/v1",
            Personality::OpenRouter => "/api/v1",
        }
    }

    /// The models path.
    pub fn models_path(self) -> &'static str {
        match self {
            Personality::Vllm | Personality::Litellm => "/v1/models",
            Personality::OpenRouter => "/api/v1/models",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Personality::Vllm => "vllm",
            Personality::Litellm => "litellm",
            Personality::OpenRouter => "openrouter",
        }
    }
}

impl fmt::Display for Personality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A personality name that is not one of `vllm`, `litellm`, `openrouter`.
#[derive(Debug, thiserror::Error)]
#[error("unknown personality `{0}` (expected vllm, litellm or openrouter)")]
pub struct UnknownPersonality(pub String);

impl FromStr for Personality {
    type Err = UnknownPersonality;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "vllm" => Ok(Personality::Vllm),
            "litellm" => Ok(Personality::Litellm),
            "openrouter" => Ok(Personality::OpenRouter),
            _ => Err(UnknownPersonality(s.to_owned())),
        }
    }
}

/// Token counts as every personality reports them.
#[derive(Clone, Copy, Debug, Serialize)]
pub(crate) struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
}

impl Usage {
    pub fn new(prompt_tokens: u64, completion_tokens: u64) -> Usage {
        Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
        }
    }
}

/// One `delta` object of a `chat.completion.chunk`. Borrowed so a chunk costs one buffer.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub(crate) struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<[ToolCallDelta<'a>; 1]>,
}

/// A streamed tool-call fragment: the first carries id, type and name; later ones only the
/// index and a piece of `arguments`, which is how vLLM, LiteLLM and OpenRouter all stream them.
#[derive(Clone, Copy, Debug, Serialize)]
pub(crate) struct ToolCallDelta<'a> {
    pub index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'a str>,
    pub function: FunctionDelta<'a>,
}

#[derive(Clone, Copy, Debug, Serialize)]
pub(crate) struct FunctionDelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    pub arguments: &'a str,
}

/// A finished tool call, for non-streaming bodies.
#[derive(Clone, Debug)]
pub(crate) struct ToolCallOut {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

/// An error answered before any header was sent: status, extra headers, body.
#[derive(Clone, Debug)]
pub(crate) struct ErrorReply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

/// The upstream provider name OpenRouter reports in `provider`.
const OPENROUTER_PROVIDER: &str = "OpenAI";

/// Per-response wire context: the id, timestamp and model that every chunk repeats, with the
/// JSON prefix of a chunk rendered once so each chunk is a few `extend_from_slice` calls.
#[derive(Debug)]
pub(crate) struct Wire {
    personality: Personality,
    id: String,
    created: u64,
    model: String,
    /// `{"id":...,"model":...,` up to (not including) `"choices"`.
    head: String,
    legacy_vllm_errors: bool,
}

impl Wire {
    pub fn new(
        personality: Personality,
        id: String,
        created: u64,
        model: &str,
        legacy_vllm_errors: bool,
    ) -> Wire {
        let model_json = json_str(model);
        let id_json = json_str(&id);
        let head = match personality {
            Personality::Vllm => format!(
                r#"{{"id":{id_json},"object":"chat.completion.chunk","created":{created},"model":{model_json},"#
            ),
            Personality::Litellm => format!(
                r#"{{"id":{id_json},"created":{created},"model":{model_json},"object":"chat.completion.chunk","system_fingerprint":null,"#
            ),
            Personality::OpenRouter => format!(
                r#"{{"id":{id_json},"provider":"{OPENROUTER_PROVIDER}","model":{model_json},"object":"chat.completion.chunk","created":{created},"#
            ),
        };
        Wire {
            personality,
            id,
            created,
            model: model.to_owned(),
            head,
            legacy_vllm_errors,
        }
    }

    /// OpenRouter opens its streams with an SSE comment keep-alive.
    pub fn sse_prelude(&self) -> Option<Bytes> {
        match self.personality {
            Personality::OpenRouter => Some(Bytes::from_static(b": OPENROUTER PROCESSING\n\n")),
            _ => None,
        }
    }

    /// One `data: {chat.completion.chunk}\n\n` frame.
    pub fn chunk(&self, mut delta: Delta<'_>, finish_reason: Option<&str>) -> Bytes {
        if self.personality == Personality::OpenRouter && delta.role.is_none() {
            // OpenRouter repeats the role in every delta.
            delta.role = Some("assistant");
        }
        let mut buf = Vec::with_capacity(self.head.len() + 160);
        buf.extend_from_slice(b"data: ");
        buf.extend_from_slice(self.head.as_bytes());
        buf.extend_from_slice(br#""choices":[{"index":0,"delta":"#);
        write_json(&mut buf, &delta);
        let finish = finish_reason.map(json_str);
        let finish = finish.as_deref().unwrap_or("null");
        match self.personality {
            Personality::Vllm => {
                buf.extend_from_slice(br#","logprobs":null,"finish_reason":"#);
                buf.extend_from_slice(finish.as_bytes());
                if finish_reason.is_some() {
                    buf.extend_from_slice(br#","stop_reason":null"#);
                }
            }
            Personality::Litellm => {
                buf.extend_from_slice(br#","finish_reason":"#);
                buf.extend_from_slice(finish.as_bytes());
            }
            Personality::OpenRouter => {
                buf.extend_from_slice(br#","finish_reason":"#);
                buf.extend_from_slice(finish.as_bytes());
                buf.extend_from_slice(br#","native_finish_reason":"#);
                buf.extend_from_slice(finish.as_bytes());
                buf.extend_from_slice(br#","logprobs":null"#);
            }
        }
        buf.extend_from_slice(b"}]}\n\n");
        Bytes::from(buf)
    }

    /// The delta of the finish chunk, which differs a little between servers.
    pub fn finish_delta(&self) -> Delta<'static> {
        match self.personality {
            Personality::Vllm | Personality::OpenRouter => Delta {
                content: Some(""),
                ..Delta::default()
            },
            Personality::Litellm => Delta::default(),
        }
    }

    /// The trailing usage chunk sent when `stream_options.include_usage` is true.
    pub fn usage_chunk(&self, usage: Usage) -> Bytes {
        let mut buf = Vec::with_capacity(self.head.len() + 120);
        buf.extend_from_slice(b"data: ");
        buf.extend_from_slice(self.head.as_bytes());
        buf.extend_from_slice(br#""choices":[],"usage":"#);
        write_json(&mut buf, &usage);
        buf.extend_from_slice(b"}\n\n");
        Bytes::from(buf)
    }

    pub fn done() -> Bytes {
        Bytes::from_static(b"data: [DONE]\n\n")
    }

    /// A non-streaming `chat.completion` body.
    pub fn completion(
        &self,
        content: Option<&str>,
        tool_calls: &[ToolCallOut],
        finish_reason: &str,
        usage: Usage,
    ) -> Vec<u8> {
        let calls: Vec<Value> = tool_calls
            .iter()
            .map(|c| {
                json!({
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                })
            })
            .collect();
        let body = match self.personality {
            Personality::Vllm => json!({
                "id": self.id,
                "object": "chat.completion",
                "created": self.created,
                "model": self.model,
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
            }),
            Personality::Litellm => json!({
                "id": self.id,
                "created": self.created,
                "model": self.model,
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
            }),
            Personality::OpenRouter => {
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
                    "id": self.id,
                    "provider": OPENROUTER_PROVIDER,
                    "model": self.model,
                    "object": "chat.completion",
                    "created": self.created,
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
        };
        to_vec(&body)
    }

    /// An error object inside a 200 stream, the way each server emits one mid-stream.
    pub fn stream_error(&self, status: u16, message: &str) -> Bytes {
        let obj = match self.personality {
            // vLLM's `create_streaming_error_response` dumps an ErrorResponse; since ErrorResponse
            // became `{"error": ErrorInfo}` that is `{"error": {...}}`, and before that the flat
            // object was wrapped in `{"error": ...}` by hand, so both shapes nest under "error".
            Personality::Vllm => json!({"error": vllm_error_info(
                status, message, &vllm_type(status), None, self.legacy_vllm_errors)}),
            // LiteLLM's proxy yields `data: {"error": ProxyException.to_dict()}`.
            Personality::Litellm => json!({"error": {
                "message": message,
                "type": litellm_type(status),
                "param": null,
                "code": status.to_string(),
            }}),
            // OpenRouter sends a chunk with a top-level `error` and finish_reason "error".
            Personality::OpenRouter => json!({
                "id": self.id,
                "provider": OPENROUTER_PROVIDER,
                "model": self.model,
                "object": "chat.completion.chunk",
                "created": self.created,
                "error": {"code": status, "message": message},
                "choices": [{
                    "index": 0,
                    "delta": {"content": ""},
                    "finish_reason": "error",
                    "native_finish_reason": "error",
                }],
            }),
        };
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(b"data: ");
        write_json(&mut buf, &obj);
        buf.extend_from_slice(b"\n\n");
        Bytes::from(buf)
    }

    /// A fresh tool-call id in the server's own style.
    pub fn tool_call_id(personality: Personality, a: u64, b: u64) -> String {
        match personality {
            Personality::Vllm => format!("chatcmpl-tool-{a:016x}{b:016x}"),
            Personality::Litellm | Personality::OpenRouter => {
                format!(
                    "call_{:012x}{:012x}",
                    a & 0xffff_ffff_ffff,
                    b & 0xffff_ffff_ffff
                )
            }
        }
    }

    /// A fresh response id in the server's own style (`chatcmpl-…`, OpenRouter's `gen-…`).
    pub fn response_id(personality: Personality, created: u64, a: u64, b: u64) -> String {
        match personality {
            Personality::Vllm => format!("chatcmpl-{a:016x}{b:016x}"),
            Personality::Litellm => format!(
                "chatcmpl-{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
                a >> 32,
                (a >> 16) & 0xffff,
                a & 0xffff,
                b >> 48,
                b & 0xffff_ffff_ffff
            ),
            Personality::OpenRouter => {
                format!("gen-{created}-{}", alnum20(a, b))
            }
        }
    }
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

fn json_str(s: &str) -> String {
    // Serialising a &str cannot fail; the fallback keeps the output valid JSON regardless.
    serde_json::to_string(s).unwrap_or_else(|_| String::from("\"\""))
}

fn write_json<T: Serialize>(buf: &mut Vec<u8>, value: &T) {
    if serde_json::to_writer(&mut *buf, value).is_err() {
        buf.extend_from_slice(b"null");
    }
}

fn to_vec<T: Serialize>(value: &T) -> Vec<u8> {
    let mut buf = Vec::with_capacity(512);
    write_json(&mut buf, value);
    buf
}

/// vLLM's error `type`: the exception class for engine errors, the HTTP phrase otherwise.
fn vllm_type(status: u16) -> String {
    match status {
        400 => "BadRequestError".to_owned(),
        404 => "NotFoundError".to_owned(),
        500 => "InternalServerError".to_owned(),
        501 => "NotImplementedError".to_owned(),
        _ => reason_phrase(status).to_owned(),
    }
}

fn litellm_type(status: u16) -> &'static str {
    match status {
        400 | 413 | 422 => "invalid_request_error",
        401 | 403 => "auth_error",
        404 => "not_found_error",
        408 => "timeout",
        429 => "rate_limit_error",
        _ => "None",
    }
}

fn reason_phrase(status: u16) -> &'static str {
    axum::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error")
}

fn vllm_error_info(
    status: u16,
    message: &str,
    kind: &str,
    param: Option<&str>,
    legacy: bool,
) -> Value {
    if legacy {
        json!({"object": "error", "message": message, "type": kind, "param": param, "code": status})
    } else {
        json!({"message": message, "type": kind, "param": param, "code": status})
    }
}

/// The personality's error body for `status` with `message`.
pub(crate) fn error_body(
    personality: Personality,
    status: u16,
    message: &str,
    error_type: Option<&str>,
    legacy_vllm_errors: bool,
) -> Vec<u8> {
    let body = match personality {
        Personality::Vllm => {
            let kind = error_type
                .map(str::to_owned)
                .unwrap_or_else(|| vllm_type(status));
            let info = vllm_error_info(status, message, &kind, None, legacy_vllm_errors);
            if legacy_vllm_errors {
                info
            } else {
                json!({ "error": info })
            }
        }
        Personality::Litellm => json!({"error": {
            "message": message,
            "type": error_type.unwrap_or(litellm_type(status)),
            "param": null,
            "code": status.to_string(),
        }}),
        Personality::OpenRouter => {
            let mut metadata = json!({"provider_name": null});
            if let Some(kind) = error_type {
                metadata["error_type"] = Value::from(kind);
            }
            json!({"error": {"code": status, "message": message, "metadata": metadata}})
        }
    };
    to_vec(&body)
}

pub(crate) fn error_reply(
    personality: Personality,
    status: u16,
    message: &str,
    error_type: Option<&str>,
    legacy: bool,
) -> ErrorReply {
    ErrorReply {
        status,
        headers: Vec::new(),
        body: error_body(personality, status, message, error_type, legacy),
    }
}

/// A 400 for a request the server could not take (not JSON, missing fields).
pub(crate) fn bad_request(personality: Personality, message: &str, legacy: bool) -> ErrorReply {
    error_reply(personality, 400, message, None, legacy)
}

/// The 401 each server answers when its API key is missing or wrong.
pub(crate) fn unauthorized(personality: Personality, key_present: bool) -> ErrorReply {
    let body = match personality {
        // vLLM's --api-key middleware answers a bare `{"error": "Unauthorized"}`.
        Personality::Vllm => json!({"error": "Unauthorized"}),
        Personality::Litellm => {
            let message = if key_present {
                "Authentication Error, Invalid proxy server token passed. Unable to find token in cache or `LiteLLM_VerificationTokenTable`"
            } else {
                "Authentication Error, No api key passed in."
            };
            json!({"error": {"message": message, "type": "auth_error", "param": "None", "code": "401"}})
        }
        Personality::OpenRouter => {
            let message = if key_present {
                "User not found."
            } else {
                "No auth credentials found"
            };
            json!({"error": {"message": message, "code": 401}})
        }
    };
    ErrorReply {
        status: 401,
        headers: Vec::new(),
        body: to_vec(&body),
    }
}

/// Budget / credit / quota exhaustion in the server's own words.
pub(crate) fn quota_exhausted(personality: Personality, legacy: bool) -> ErrorReply {
    match personality {
        // vLLM has no notion of budgets; a plain 429 is all a quota-enforcing front adds.
        Personality::Vllm => error_reply(personality, 429, "Too Many Requests", None, legacy),
        // litellm.BudgetExceededError (status 400) surfaced by the proxy as a ProxyException.
        Personality::Litellm => ErrorReply {
            status: 400,
            headers: Vec::new(),
            body: to_vec(&json!({"error": {
                "message": "Budget has been exceeded! Current cost: 10.0042, Max budget: 10.0",
                "type": "budget_exceeded",
                "param": null,
                "code": "400",
            }})),
        },
        Personality::OpenRouter => ErrorReply {
            status: 402,
            headers: Vec::new(),
            body: to_vec(&json!({
                "error": {
                    "code": 402,
                    "message": "Insufficient credits. Add more using https://openrouter.ai/credits",
                    "metadata": {"provider_name": null},
                },
                "user_id": "user_mock",
            })),
        },
    }
}

/// OpenRouter's daily free-model limit; a rate-limit 429 in the others' format.
pub(crate) fn daily_limit(personality: Personality, legacy: bool, now_ms: u64) -> ErrorReply {
    match personality {
        Personality::Vllm => error_reply(personality, 429, "Too Many Requests", None, legacy),
        Personality::Litellm => ErrorReply {
            status: 429,
            headers: Vec::new(),
            body: to_vec(&json!({"error": {
                "message": "LiteLLM Rate Limit Handler for rate limit type = key. Crossed TPM / RPM / Max Parallel Request Limit. current rpm: 1, rpm limit: 1, current tpm: 348, tpm limit: 9223372036854775807, current max_parallel_requests: 0, max_parallel_requests: 9223372036854775807",
                "type": "None",
                "param": "None",
                "code": "429",
            }})),
        },
        Personality::OpenRouter => {
            const DAY_MS: u64 = 86_400_000;
            let reset = (now_ms / DAY_MS + 1) * DAY_MS;
            let reset = reset.to_string();
            let headers = vec![
                ("x-ratelimit-limit", "50".to_owned()),
                ("x-ratelimit-remaining", "0".to_owned()),
                ("x-ratelimit-reset", reset.clone()),
            ];
            ErrorReply {
                status: 429,
                headers,
                body: to_vec(&json!({
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
                })),
            }
        }
    }
}

/// The 400 for a prompt longer than the model's window.
pub(crate) fn context_length(
    personality: Personality,
    max: u64,
    requested: u64,
    completion: u64,
    legacy: bool,
) -> ErrorReply {
    let completion = completion.min(requested);
    let prompt = requested - completion;
    let message = match personality {
        Personality::Vllm => format!(
            "This model's maximum context length is {max} tokens. However, you requested {requested} tokens ({prompt} in the messages, {completion} in the completion). Please reduce the length of the messages or completion."
        ),
        Personality::Litellm => format!(
            "litellm.ContextWindowExceededError: litellm.BadRequestError: ContextWindowExceededError: OpenAIException - This model's maximum context length is {max} tokens. However, you requested {requested} tokens ({prompt} in the messages, {completion} in the completion). Please reduce the length of the messages or completion."
        ),
        Personality::OpenRouter => format!(
            "This endpoint's maximum context length is {max} tokens. However, you requested about {requested} tokens ({prompt} of text input, {completion} in the output). Please reduce the length of either one, or use the \"middle-out\" transform to compress your prompt automatically."
        ),
    };
    error_reply(personality, 400, &message, None, legacy)
}

/// The model list each server answers on its models path.
pub(crate) fn models_body(personality: Personality, created: u64) -> Vec<u8> {
    let body = match personality {
        Personality::Vllm => json!({
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
        }),
        Personality::Litellm => json!({
            "data": [
                {"id": "mock-model", "object": "model", "created": 1677610602, "owned_by": "openai"},
                {"id": "mock-model-large", "object": "model", "created": 1677610602, "owned_by": "openai"},
            ],
            "object": "list",
        }),
        Personality::OpenRouter => json!({
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
        }),
    };
    to_vec(&body)
}

/// LiteLLM's readiness answer.
pub(crate) fn litellm_readiness() -> Vec<u8> {
    to_vec(&json!({
        "status": "healthy",
        "db": "Not connected",
        "cache": null,
        "litellm_version": "mock",
        "success_callbacks": [],
    }))
}

/// The body a route the server does not have gets (FastAPI's for vLLM and LiteLLM).
pub(crate) fn not_found(personality: Personality) -> Vec<u8> {
    match personality {
        Personality::Vllm | Personality::Litellm => to_vec(&json!({"detail": "Not Found"})),
        Personality::OpenRouter => to_vec(&json!({"error": {"code": 404, "message": "Not Found"}})),
    }
}
