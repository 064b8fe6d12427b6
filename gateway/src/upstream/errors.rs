//! The ONE mapping of upstream answers, transport failures and stream failures onto catalog
//! codes; messages are sanitised here.

use super::*;

pub(crate) fn transport_error(e: reqwest::Error) -> ApiError {
    let err = if e.is_timeout() {
        answer_timeout()
    } else {
        unanswered(e.is_connect())
    };
    err.caused_by(e)
}

/// A chat request that got no answer (`upstream::client`): `upstream_unavailable` when no
/// connection could be made (refused, unreachable, or not within the connect timeout), else
/// `upstream_error`.
pub(crate) fn request_error(e: hyper_util::client::legacy::Error) -> ApiError {
    unanswered(e.is_connect()).caused_by(e)
}

/// No answer: no connection at all (`upstream_unavailable`), or one that failed first.
fn unanswered(no_connection: bool) -> ApiError {
    if no_connection {
        ApiError::new(
            Code::UpstreamUnavailable,
            "could not connect to the upstream",
        )
    } else {
        failed_before_answer()
    }
}

/// A connection that failed before a complete answer; also what an upstream whose
/// `chat_url` is not a URI gets (start-up validation refuses one), as a transport error.
pub(crate) fn failed_before_answer() -> ApiError {
    ApiError::new(
        Code::UpstreamError,
        "the upstream connection failed before a complete answer",
    )
}

/// A transport failure after the stream had started: the connection existed, so it is never
/// `upstream_unavailable` (a timeout stays `upstream_timeout`).
pub(crate) fn stream_transport_error(e: reqwest::Error) -> ApiError {
    let mut err = transport_error(e);
    if err.code == Code::UpstreamUnavailable {
        err.code = Code::UpstreamError;
    }
    err.message = "the upstream connection broke off mid-stream".into();
    err
}

/// How an upstream event stream failed (each is `upstream_error` or `upstream_timeout`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StreamFailure {
    /// No event arrived before the request's deadline.
    Stalled,
    /// The stream ended without `data: [DONE]`.
    EndedWithoutDone,
    /// The stream ended (cleanly) before its first chunk.
    EndedBeforeFirstChunk,
    /// The bytes were not an event stream.
    Malformed,
    /// An event's data was not a JSON object.
    ChunkNotObject,
    /// A streamed tool round's text, needed for the next round, passed
    /// UPSTREAM_MAX_BODY_BYTES (the bound of a non-streamed answer).
    RoundTooLarge,
}

/// The error of a failed upstream event stream.
pub(crate) fn stream_failure(kind: StreamFailure) -> ApiError {
    // A connection that broke off mid-stream had connected: never `upstream_unavailable`.
    let (code, message) = match kind {
        StreamFailure::Stalled => (
            Code::UpstreamTimeout,
            "the upstream stream stalled past HTTP_TOTAL_TIMEOUT_SECS",
        ),
        StreamFailure::EndedWithoutDone => (
            Code::UpstreamError,
            "the upstream stream ended without data: [DONE]",
        ),
        StreamFailure::EndedBeforeFirstChunk => (
            Code::UpstreamError,
            "the upstream stream ended before its first chunk",
        ),
        StreamFailure::Malformed => (
            Code::UpstreamError,
            "the upstream sent a malformed event stream",
        ),
        StreamFailure::ChunkNotObject => (
            Code::UpstreamError,
            "the upstream sent a chunk that is not a JSON object",
        ),
        StreamFailure::RoundTooLarge => (
            Code::UpstreamError,
            "the upstream's answer before its tool calls exceeds UPSTREAM_MAX_BODY_BYTES",
        ),
    };
    ApiError::new(code, message)
}

/// The alias's upstream has its `max_in_flight` requests and no slot freed within
/// `queue_wait_ms` (seed 004: "503 when it cannot accept new requests").
pub(crate) fn upstream_saturated(alias: &str) -> ApiError {
    ApiError::new(
        Code::UpstreamOverloaded,
        format!(
            "the upstream of `{alias}` already has its maximum of requests in flight; retry shortly"
        ),
    )
    .retry_after(1)
}

/// Request bodies in flight hold all of MAX_BODY_MEMORY_BYTES: like [`gateway_saturated`], an
/// overload the client retries shortly.
pub(crate) fn bodies_saturated() -> ApiError {
    ApiError::new(
        Code::UpstreamOverloaded,
        "the gateway holds its maximum of request bodies in memory; retry shortly",
    )
    .retry_after(1)
}

/// An upstream or tool answer the answer budget (`MAX_ANSWER_MEMORY_BYTES`) cannot take.
///
/// Not now (other answers hold it): the same retryable overload as [`bodies_saturated`], a 503
/// with `Retry-After` — the gateway's own capacity is full for a moment, and the same request
/// a second later fits. Never (this one answer, parsed, would need more than the whole
/// budget): the upstream sent something the gateway cannot relay, an `upstream_error` 502
/// like an answer over UPSTREAM_MAX_BODY_BYTES ([`answer_too_large`]); retrying will not help.
pub(crate) fn answer_memory_refusal(r: Refused, budget: usize) -> ApiError {
    match r {
        Refused::Busy => ApiError::new(
            Code::UpstreamOverloaded,
            "the gateway holds its maximum of upstream answers in memory (MAX_ANSWER_MEMORY_BYTES); retry shortly",
        )
        .retry_after(1),
        Refused::TooLarge => ApiError::new(
            Code::UpstreamError,
            format!(
                "the upstream's answer would need more than MAX_ANSWER_MEMORY_BYTES ({budget} bytes) once parsed"
            ),
        ),
    }
}

/// The gateway itself has MAX_IN_FLIGHT requests: it cannot accept more work right now, which
/// a client handles exactly like an overloaded upstream (503, retry shortly).
pub(crate) fn gateway_saturated(max_in_flight: usize) -> ApiError {
    ApiError::new(
        Code::UpstreamOverloaded,
        format!(
            "the gateway is handling its maximum of {max_in_flight} requests (MAX_IN_FLIGHT); retry shortly"
        ),
    )
    .retry_after(1)
}

/// A stream cut by the shutdown drain: the work can be retried on another replica.
pub(crate) fn shutting_down() -> ApiError {
    ApiError::new(
        Code::UpstreamUnavailable,
        "the gateway is shutting down; retry the request",
    )
}

/// A non-streamed upstream answer over UPSTREAM_MAX_BODY_BYTES (the rest is never read).
pub(crate) fn answer_too_large(max: usize) -> ApiError {
    ApiError::new(
        Code::UpstreamError,
        format!("the upstream's answer exceeds UPSTREAM_MAX_BODY_BYTES ({max} bytes)"),
    )
}

/// One upstream SSE event over SSE_MAX_LINE_BYTES: the stream fails there.
pub(crate) fn event_too_long(max: usize) -> ApiError {
    ApiError::new(
        Code::UpstreamError,
        format!("an upstream event exceeds SSE_MAX_LINE_BYTES ({max} bytes)"),
    )
}

/// The request's deadline passed before the upstream answered (a call or a streamed round).
pub(crate) fn answer_timeout() -> ApiError {
    ApiError::new(
        Code::UpstreamTimeout,
        "the upstream did not answer within HTTP_TOTAL_TIMEOUT_SECS",
    )
}

/// The request's deadline passed during the upstream work (every round of the tool loop).
pub(crate) fn work_timeout() -> ApiError {
    ApiError::new(
        Code::UpstreamTimeout,
        "the upstream work did not finish within HTTP_TOTAL_TIMEOUT_SECS",
    )
}

/// A 200 whose body is an error object (some servers answer so).
pub(crate) fn error_in_success(msg: &str, upstream: &Upstream) -> ApiError {
    ApiError::new(
        Code::UpstreamError,
        format!("upstream error: {}", sanitize(msg, upstream)),
    )
}

/// A 200 whose body is not a chat completion (no `choices`, not JSON).
pub(crate) fn not_a_completion() -> ApiError {
    ApiError::new(
        Code::UpstreamError,
        "the upstream returned a response that is not a chat completion",
    )
}

/// The metrics outcome label of a failed upstream call.
pub(crate) fn outcome(err: &ApiError) -> &'static str {
    match err.code {
        Code::UpstreamTimeout => "timeout",
        Code::UpstreamUnavailable => "unavailable",
        _ => "failed",
    }
}

pub(super) async fn error_from_response(
    state: &AppState,
    model: &Model,
    upstream: &Upstream,
    body: &Map<String, Value>,
    resp: super::UpstreamResponse,
) -> ApiError {
    let status = resp.status();
    let headers = resp.headers().clone();
    // Bounded read: an error body is a diagnostic, not something worth megabytes. At most
    // UPSTREAM_MAX_ERROR_BYTES are read, then the connection is dropped.
    let max = state.config.reads.upstream_max_error_bytes;
    // Paid for like any answer (refused: mapped from the status alone, without its text).
    let mut hold = state.answer_memory.hold();
    let read = super::read_capped(resp, max, &mut hold, 1);
    let text = match tokio::time::timeout(std::time::Duration::from_secs(5), read).await {
        Ok(Ok(super::Capped::Whole(b) | super::Capped::Cut(b))) => {
            String::from_utf8_lossy(&b).into_owned()
        }
        _ => String::new(),
    };
    map_status(
        state,
        model,
        upstream,
        limit_param(body),
        status,
        &headers,
        &text,
    )
}

/// Which token-limit field the request sent, for `max_tokens_below_minimum`'s `param`.
pub(crate) fn limit_param(body: &Map<String, Value>) -> Option<&'static str> {
    if body.contains_key("max_tokens") {
        Some("/max_tokens")
    } else if body.contains_key("max_completion_tokens") {
        Some("/max_completion_tokens")
    } else {
        None
    }
}

/// The pure part of the mapping (unit-tested without sockets).
pub(crate) fn map_status(
    state: &AppState,
    model: &Model,
    upstream: &Upstream,
    limit_param: Option<&'static str>,
    status: StatusCode,
    headers: &HeaderMap,
    text: &str,
) -> ApiError {
    let parsed: Option<Value> = serde_json::from_str(text).ok();
    let raw_msg = parsed
        .as_ref()
        .and_then(extract_message)
        .unwrap_or_else(|| text.chars().take(300).collect());
    // Read before LiteLLM's class prefixes go: `ContextWindowExceededError` is one of them, and
    // for a provider whose sentence is not vLLM's (Anthropic's "prompt is too long") it is
    // the only sign of a context-window refusal.
    let context_window = is_context_length(
        parsed
            .as_ref()
            .and_then(|v| v.pointer("/error/code"))
            .and_then(Value::as_str)
            .unwrap_or_default(),
        &raw_msg.to_ascii_lowercase(),
    );
    let raw_msg = litellm::upstream_sentence(&raw_msg, &model.upstream_model, &model.alias);
    let lower = raw_msg.to_ascii_lowercase();
    let upstream_retry = litellm::retry_after(headers);

    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        // The upstream refused the GATEWAY's own credentials (a revoked or wrong key): relayed
        // 1:1 the caller would think its own token is bad. This is the operator's to fix.
        tracing::error!(
            upstream = %upstream.name,
            status = status.as_u16(),
            "the upstream refused the gateway's credentials; check api_key_env of this upstream"
        );
        return ApiError::new(
            Code::UpstreamError,
            format!(
                "the upstream refused the gateway's own credentials (HTTP {}); this is not a problem with your token: the gateway operator must check the upstream API key",
                status.as_u16()
            ),
        );
    }
    if status.is_client_error() && context_window {
        return ApiError::new(
            Code::ContextLengthExceeded,
            format!(
                "the prompt does not fit the context window of `{}`; shorten the messages or lower max_tokens",
                model.alias
            ),
        )
        .param("/messages");
    }
    if let Some(code) = not_ready(status, &lower) {
        let retry = upstream_retry
            .or_else(|| {
                parsed
                    .as_ref()
                    .and_then(|v| v.get("estimated_time"))
                    .and_then(Value::as_f64)
                    .map(|s| s.ceil().clamp(1.0, 600.0) as u64)
            })
            .unwrap_or(if code == Code::ModelLoading { 5 } else { 1 });
        let message = if code == Code::ModelLoading {
            format!(
                "the model `{}` is still loading upstream; retry in {retry} s",
                model.alias
            )
        } else {
            format!(
                "the upstream of `{}` cannot take more requests now; retry in {retry} s",
                model.alias
            )
        };
        return ApiError::new(code, message).retry_after(retry);
    }

    if status.is_client_error() {
        let quota_words = ["budget", "quota", "credit", "insufficient", "exceeded your"];
        let is_quota = status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::PAYMENT_REQUIRED
            || quota_words.iter().any(|w| lower.contains(w));
        if is_quota {
            // SPEC: only the daily limit is OpenRouter-specific; credit exhaustion (402) is a
            // provider-agnostic `model_quota_exhausted` like any other budget.
            let daily = status == StatusCode::TOO_MANY_REQUESTS
                && (lower.contains("per-day")
                    || lower.contains("per day")
                    || lower.contains("daily"));
            if upstream.kind == UpstreamKind::Openrouter && daily {
                let secs = secs_to_utc_midnight(state.clock.now_unix());
                let mut e = ApiError::new(
                    Code::OpenrouterDailyQuotaExhausted,
                    format!(
                        "the OpenRouter daily limit for `{}` is used up; it resets at 00:00 UTC; available fallbacks: {}",
                        model.alias,
                        if model.fallbacks.is_empty() { "none".to_owned() } else { model.fallbacks.join(", ") }
                    ),
                )
                .retry_after(secs);
                e.fallbacks = Some(model.fallbacks.clone());
                return e;
            }
            return ApiError::new(
                Code::ModelQuotaExhausted,
                format!(
                    "the model `{}` is temporarily out of quota for this tenant; pick another model or retry later",
                    model.alias
                ),
            )
            .param("/model")
            .retry_after(upstream_retry.unwrap_or(60));
        }
        let mentions_limit = [
            "max_tokens",
            "max_completion_tokens",
            "max_output_tokens",
            "max tokens",
        ]
        .iter()
        .any(|w| lower.contains(w));
        if let (true, Some(param)) = (
            mentions_limit && !lower.contains("context length"),
            limit_param,
        ) {
            return ApiError::new(
                Code::MaxTokensBelowMinimum,
                format!(
                    "the upstream rejected the token limit even after the gateway's floor: {}",
                    sanitize(&raw_msg, upstream)
                ),
            )
            .param(param);
        }
        return ApiError::new(
            Code::UpstreamBadRequest,
            format!(
                "the upstream rejected the request: {}",
                sanitize(&raw_msg, upstream)
            ),
        )
        .with_status(status);
    }
    ApiError::new(
        Code::UpstreamError,
        format!(
            "the upstream failed with status {}: {}",
            status.as_u16(),
            sanitize(&raw_msg, upstream)
        ),
    )
}

/// A refusal for the context window: OpenAI's `code`, vLLM's and OpenRouter's sentence
/// ("maximum context length"), LiteLLM's `ContextWindowExceededError` class name (its message
/// keeps vLLM's sentence, WIRE_FACTS L7).
fn is_context_length(code: &str, lower: &str) -> bool {
    code == "context_length_exceeded"
        || lower.contains("maximum context length")
        || lower.contains("contextwindowexceedederror")
        || lower.contains("context_length_exceeded")
}

/// An upstream that is not ready (`model_loading`) or full (`upstream_overloaded`).
/// Loading: LiteLLM passes the upstream's 503 "model is loading" (WIRE_FACTS L9); Hugging Face
/// TGI / Inference endpoints "Model … is currently loading" with `estimated_time`; llama.cpp's
/// server "Loading model". Overloaded: Ollama's ErrMaxQueue "server busy, please try again.
/// maximum pending requests exceeded" (503); TGI's "Model is overloaded"; OpenAI's "The engine
/// is currently overloaded"; Anthropic-style 529 `overloaded_error`.
fn not_ready(status: StatusCode, lower: &str) -> Option<Code> {
    let server_side = status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS;
    if !server_side {
        return None;
    }
    let loading = [
        "is loading",
        "currently loading",
        "loading model",
        "model is not ready",
        "not ready yet",
    ];
    if status.is_server_error() && loading.iter().any(|w| lower.contains(w)) {
        return Some(Code::ModelLoading);
    }
    let overloaded = ["overloaded", "server busy", "maximum pending requests"];
    if status.as_u16() == 529 || overloaded.iter().any(|w| lower.contains(w)) {
        return Some(Code::UpstreamOverloaded);
    }
    None
}

/// The human message of any of the upstream error shapes (vLLM, LiteLLM, OpenRouter, OpenAI,
/// FastAPI `detail`).
pub(crate) fn extract_message(v: &Value) -> Option<String> {
    let s = v
        .pointer("/error/message")
        .or_else(|| v.get("message"))
        .or_else(|| v.get("detail"))
        .or_else(|| v.get("error"))?;
    match s {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}
