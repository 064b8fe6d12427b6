//! Upstream dialects: everything that makes the mock look like vLLM, LiteLLM or OpenRouter.
//!
//! One file per upstream (`vllm.rs`, `litellm.rs`, `openrouter.rs`), each implementing the one
//! [`Dialect`] trait: routes and health paths, ids, chunk framing and SSE content type,
//! completion bodies, every error body and its wording (quota, credits, daily limit, rate
//! window, context length, max-tokens floor, invalid request, 401). `wire.rs` holds the
//! dialect-neutral plumbing (delta types, the per-response `Wire` that frames chunks by asking
//! the dialect). `server.rs` never matches on a personality; it asks the dialect.
//!
//! # Adding an upstream (TGI, Ollama, …)
//! Write one file here, say `tgi.rs`, with a unit struct `Tgi` that implements [`Dialect`] and
//! has `const DEFAULT: Tgi`, then add ONE line to the `registry!` call below
//! (`Tgi => tgi::Tgi,`). The macro declares the module, the `Personality` variant (serde and
//! CLI name: the lowercased variant), `Personality::ALL`, parsing and the dialect lookup.
//! Document its wire facts, with sources, in `tests/formats.rs`.
//!
//! Two dialects are not upstreams but gateway doubles for seed systems with no instance here
//! (`llm_gateway_api.rs`: seed 002, `ownllm.rs`: seed 003): with `MockConfig::gateway` the
//! server runs its gateway stage (`gateway.rs`) and asks them for [`Fault`] answers.
//!
//! The facts pinned by the dialects, with where they came from, are listed in
//! `tests/formats.rs`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

mod wire;

pub(crate) use wire::{
    to_vec, Delta, ErrorReply, FunctionDelta, Ids, ToolCallDelta, ToolCallOut, Usage, Wire,
};

/// Declares every dialect: its module, its `Personality` variant and its lookup.
/// Inside a gateway double's `impl Dialect`: the success wire format (ids, chunk framing,
/// completions) is that of the upstream dialect `$upstream` it stands in front of, since a
/// double only changes how errors and credentials look.
macro_rules! success_wire_of {
    ($upstream:expr) => {
        fn response_id(&self, created: u64, a: u64, b: u64) -> String {
            $upstream.response_id(created, a, b)
        }

        fn tool_call_id(&self, a: u64, b: u64) -> String {
            $upstream.tool_call_id(a, b)
        }

        fn chunk_head(&self, id_json: &str, created: u64, model_json: &str) -> String {
            $upstream.chunk_head(id_json, created, model_json)
        }

        fn choice_tail(&self, buf: &mut Vec<u8>, finish: &str, finished: bool) {
            $upstream.choice_tail(buf, finish, finished);
        }

        fn finish_delta(&self) -> Delta<'static> {
            $upstream.finish_delta()
        }

        fn completion(
            &self,
            ids: &Ids,
            content: Option<&str>,
            calls: Vec<Value>,
            finish_reason: &str,
            usage: Usage,
        ) -> Value {
            $upstream.completion(ids, content, calls, finish_reason, usage)
        }
    };
}

macro_rules! registry {
    ($( $(#[$attr:meta])* $variant:ident => $module:ident :: $ty:ident, )*) => {
        $( mod $module; )*

        /// Which real server the mock imitates.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum Personality {
            $( $(#[$attr])* $variant, )*
        }

        impl Personality {
            /// Every personality, for tests and help texts.
            pub const ALL: [Personality; 0 $( + registry!(@one $variant) )*] =
                [$( Personality::$variant ),*];

            /// This personality's wire format with its default options.
            pub(crate) fn dialect(self) -> &'static dyn Dialect {
                match self {
                    $( Personality::$variant => &$module::$ty::DEFAULT, )*
                }
            }
        }
    };
    (@one $variant:ident) => { 1 };
}

registry! {
    /// vLLM's OpenAI-compatible server (`vllm serve`).
    #[default]
    Vllm => vllm::Vllm,
    /// The LiteLLM proxy.
    Litellm => litellm::Litellm,
    /// openrouter.ai.
    OpenRouter => openrouter::OpenRouter,
    /// Seed 002's "LLM Gateway API" as a gateway double (`X-API-Key`, `{"detail": …}`).
    #[serde(rename = "llm-gateway-api")]
    LlmGatewayApi => llm_gateway_api::LlmGatewayApi,
    /// Seed 003's OwnLLM as a gateway double (its types, codes, `key_malformed`).
    OwnLlm => ownllm::OwnLlm,
}

/// vLLM's dialect with the legacy flat error shape switched on or off (`--vllm-legacy-errors`).
pub(crate) fn vllm_dialect(legacy_errors: bool) -> &'static dyn Dialect {
    if legacy_errors {
        &vllm::Vllm::LEGACY
    } else {
        &vllm::Vllm::DEFAULT
    }
}

/// A health route: its path and its 200 body (`None` = empty body, no content type).
#[derive(Clone, Copy, Debug)]
pub(crate) struct HealthRoute {
    pub path: &'static str,
    pub body: Option<fn() -> Value>,
}

/// The three request faults every upstream words in its own way.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Invalid {
    /// The body is not a JSON object.
    Json,
    /// No `model`.
    Model,
    /// No `messages`.
    Messages,
}

/// A fault a gateway double finds itself (`MockConfig::gateway`), answered in its own words.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Fault<'a> {
    /// A known field has the wrong JSON type (its name).
    WrongType(&'static str),
    /// The model is not one of the double's models.
    UnknownModel(&'a str),
    /// The body is over the cap (bytes).
    BodyTooLarge(usize),
    /// The key's bucket is empty.
    RateLimited,
    /// The upstream refused a prompt over the context window (the message, in the double's
    /// words): seed 004 § Context length limit, the OpenAI `invalid_request_error`.
    ContextLength(&'a str),
    /// The scripted upstream failed with this status: a gateway answers in its own words
    /// and does not relay the upstream's message (it may name hosts and keys).
    Upstream(u16),
}

/// One upstream's wire format. Implemented once per file in this folder.
pub(crate) trait Dialect: Send + Sync + fmt::Debug + 'static {
    /// Its name on the command line and in the default reply (`vllm`).
    fn name(&self) -> &'static str;

    // --- routes -----------------------------------------------------------------------------
    /// What an OpenAI SDK would use as `base_url` (after the host).
    fn api_prefix(&self) -> &'static str;
    /// Chat completions paths; the first is the canonical one.
    fn chat_paths(&self) -> &'static [&'static str];
    /// Model-list paths; the first is the canonical one.
    fn models_paths(&self) -> &'static [&'static str];
    /// Whether the model list is served without the API key.
    fn models_public(&self) -> bool {
        false
    }
    /// The health routes the server has.
    fn health_routes(&self) -> &'static [HealthRoute];
    /// The path a gateway's readiness probe should hit.
    fn health_path(&self) -> &'static str;
    /// The model list body.
    fn models_body(&self, created: u64) -> Value;
    /// The body of a route the server does not have (404).
    fn not_found_body(&self) -> Value;

    // --- ids --------------------------------------------------------------------------------
    /// A fresh response id in the server's own style.
    fn response_id(&self, created: u64, a: u64, b: u64) -> String;
    /// A fresh tool-call id in the server's own style.
    fn tool_call_id(&self, a: u64, b: u64) -> String;

    // --- success bodies and chunk framing ---------------------------------------------------
    /// `{"id":...,"model":...,` of a chunk, up to (not including) `"choices"`. Arguments are
    /// already JSON-encoded.
    fn chunk_head(&self, id_json: &str, created: u64, model_json: &str) -> String;
    /// Bytes sent before the first chunk (an SSE comment keep-alive), if any.
    fn sse_prelude(&self) -> Option<&'static [u8]> {
        None
    }
    /// The `Content-Type` of a stream.
    fn sse_content_type(&self) -> &'static str {
        "text/event-stream"
    }
    /// Whether every delta repeats `"role":"assistant"`.
    fn role_in_every_delta(&self) -> bool {
        false
    }
    /// The fields of a streamed choice after `delta`; `finish` is JSON (`null` or a string).
    fn choice_tail(&self, buf: &mut Vec<u8>, finish: &str, finished: bool);
    /// The delta of the finish chunk.
    fn finish_delta(&self) -> Delta<'static>;
    /// A non-streaming `chat.completion` body.
    fn completion(
        &self,
        ids: &Ids,
        content: Option<&str>,
        calls: Vec<Value>,
        finish_reason: &str,
        usage: Usage,
    ) -> Value;

    // --- errors -----------------------------------------------------------------------------
    /// The `Content-Type` of an error answer.
    fn error_content_type(&self) -> &'static str {
        "application/json"
    }
    /// The error body for `status` with `message` (and an optional vendor error type).
    fn error_body(&self, status: u16, message: &str, error_type: Option<&str>) -> Value;
    /// An error object inside a 200 stream, as the server emits one mid-stream.
    fn stream_error(&self, ids: &Ids, status: u16, message: &str) -> Value;
    /// The 401 body for a missing (`key_present` false) or wrong API key.
    fn unauthorized_body(&self, key_present: bool) -> Value;
    /// The server's words for a body it cannot take.
    fn invalid_request(&self, what: Invalid) -> &'static str;
    /// Budget / credit / quota exhaustion in the server's own words.
    fn quota_exhausted(&self) -> ErrorReply;
    /// A daily request limit (OpenRouter's free-model limit; a rate-limit 429 elsewhere).
    fn daily_limit(&self, now_ms: u64) -> ErrorReply;
    /// A per-minute rate-window 429 (the same as the daily limit unless the server differs).
    fn rate_window(&self, now_ms: u64) -> ErrorReply {
        self.daily_limit(now_ms)
    }
    /// The message of the 400 for a prompt longer than the window; `prompt + completion` is
    /// `requested`.
    fn context_length_message(
        &self,
        max: u64,
        requested: u64,
        prompt: u64,
        completion: u64,
    ) -> String;
    /// The message of the 400 for a `max_tokens` below the model's floor `min`.
    fn max_tokens_message(&self, min: u64) -> String;

    // --- as a gateway double (`MockConfig::gateway`) ----------------------------------------
    /// The header that carries the caller's key (lowercase), and whether its value is
    /// `Bearer <key>`.
    fn credential_header(&self) -> (&'static str, bool) {
        ("authorization", true)
    }
    /// The 401 for what was presented (`None`: no credential header at all).
    fn unauthorized_for(&self, presented: Option<&str>) -> Value {
        self.unauthorized_body(presented.is_some_and(|k| !k.is_empty()))
    }
    /// The double's own answer to `fault`; `None` = the generic one (`fault_reply`).
    fn gateway_fault(&self, _fault: Fault<'_>) -> Option<ErrorReply> {
        None
    }
    // --- a proxy in front of the upstream (LiteLLM) --------------------------------------------
    /// How a proxy relays an upstream's error: the message the caller sees and its error type
    /// (`model`: what the request named). A server answering for itself keeps the message.
    fn relayed_error(
        &self,
        _status: u16,
        message: &str,
        _model: &str,
    ) -> (String, Option<&'static str>) {
        (message.to_owned(), None)
    }
    /// The name under which an upstream's response header reaches the caller.
    fn relayed_header(&self, name: &str) -> String {
        name.to_owned()
    }
    /// The message of the error object a proxy sends in place of a broken upstream stream;
    /// `None`: the break reaches the caller as it is.
    fn stream_break_message(&self, _what: StreamBreak) -> Option<&'static str> {
        None
    }
    /// Whether `data: [DONE]` follows an error object inside a stream.
    fn done_after_stream_error(&self) -> bool {
        true
    }
}

/// How an upstream stream breaks (what a proxy in front of it turns into an error object).
#[derive(Clone, Copy, Debug)]
pub(crate) enum StreamBreak {
    /// The connection is cut mid-stream.
    Drop,
    /// A chunk that is not JSON.
    Malformed,
}

impl dyn Dialect {
    /// An ordinary error answer in this dialect.
    pub(crate) fn error_reply(
        &self,
        status: u16,
        message: &str,
        error_type: Option<&str>,
    ) -> ErrorReply {
        ErrorReply::json(self, status, &self.error_body(status, message, error_type))
    }

    /// The 400 for a prompt longer than the model's window.
    pub(crate) fn context_length(
        &self,
        max: u64,
        requested: u64,
        completion: u64,
        model: &str,
    ) -> ErrorReply {
        let completion = completion.min(requested);
        let message =
            self.context_length_message(max, requested, requested - completion, completion);
        let (message, error_type) = self.relayed_error(400, &message, model);
        self.error_reply(400, &message, error_type)
    }

    /// A gateway double's answer to a fault it found: the dialect's own words, else a
    /// generic error in the dialect's body shape.
    pub(crate) fn fault_reply(&self, fault: Fault<'_>) -> ErrorReply {
        if let Some(reply) = self.gateway_fault(fault) {
            return reply;
        }
        match fault {
            Fault::WrongType(field) => {
                self.error_reply(400, &format!("`{field}` has the wrong type"), None)
            }
            Fault::UnknownModel(model) => {
                self.error_reply(404, &format!("The model `{model}` does not exist"), None)
            }
            Fault::BodyTooLarge(cap) => self.error_reply(
                413,
                &format!("The request body is over the {cap}-byte limit"),
                None,
            ),
            Fault::RateLimited => self
                .error_reply(429, "Too Many Requests", None)
                .with_header("retry-after", "1"),
            Fault::ContextLength(message) => {
                self.error_reply(400, message, Some("invalid_request_error"))
            }
            Fault::Upstream(status) => self.error_reply(status, reason_phrase(status), None),
        }
    }

    /// The 400 for a `max_tokens` below the model's floor.
    pub(crate) fn max_tokens(&self, min: u64) -> ErrorReply {
        self.error_reply(400, &self.max_tokens_message(min), None)
    }
}

impl Personality {
    /// The upstream servers (what a gateway sits in front of).
    pub const UPSTREAMS: [Personality; 3] = [
        Personality::Vllm,
        Personality::Litellm,
        Personality::OpenRouter,
    ];

    /// The gateway doubles of seed systems (run them with `MockConfig::gateway`).
    pub const DOUBLES: [Personality; 2] = [Personality::LlmGatewayApi, Personality::OwnLlm];

    /// The chat completions path.
    pub fn chat_path(self) -> &'static str {
        self.dialect().chat_paths()[0]
    }

    /// The path a gateway's readiness probe should hit. OpenRouter has no health route, so its
    /// public model list stands in, as it would for a real deployment.
    pub fn health_path(self) -> &'static str {
        self.dialect().health_path()
    }

    /// What an OpenAI SDK would use as `base_url` (after the host).
    pub fn api_prefix(self) -> &'static str {
        self.dialect().api_prefix()
    }

    /// The models path.
    pub fn models_path(self) -> &'static str {
        self.dialect().models_paths()[0]
    }

    pub fn as_str(self) -> &'static str {
        self.dialect().name()
    }
}

impl fmt::Display for Personality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A personality name that is not one of the registered dialects.
#[derive(Debug, thiserror::Error)]
#[error("unknown personality `{0}` (expected {names})", names = names())]
pub struct UnknownPersonality(pub String);

fn names() -> String {
    let names: Vec<&str> = Personality::ALL.iter().map(|p| p.as_str()).collect();
    names.join(", ")
}

impl FromStr for Personality {
    type Err = UnknownPersonality;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Personality::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownPersonality(s.to_owned()))
    }
}

/// The canonical reason phrase of `status` ("Too Many Requests").
pub(crate) fn reason_phrase(status: u16) -> &'static str {
    axum::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_match_serde() {
        for p in Personality::ALL {
            assert_eq!(p.as_str().parse::<Personality>().ok(), Some(p));
            let serde_name = serde_json::to_value(p).ok();
            assert_eq!(serde_name, Some(Value::from(p.as_str())), "{p}");
            assert_eq!(p.chat_path(), p.dialect().chat_paths()[0]);
        }
        assert!("tgi".parse::<Personality>().is_err());
    }
}
