//! The ONE mapping of upstream answers, transport failures and stream failures onto catalog
//! codes; messages are sanitised here.

use super::*;

pub fn transport_error(e: &reqwest::Error) -> ApiError {
    if e.is_timeout() {
        ApiError::new(
            Code::UpstreamTimeout,
            "the upstream did not answer within HTTP_TOTAL_TIMEOUT_SECS",
        )
    } else if e.is_connect() {
        ApiError::new(
            Code::UpstreamUnavailable,
            "could not connect to the upstream",
        )
    } else {
        ApiError::new(
            Code::UpstreamError,
            "the upstream connection failed before a complete answer",
        )
    }
}

pub(super) async fn error_from_response(
    state: &AppState,
    model: &Model,
    upstream: &Upstream,
    body: &Map<String, Value>,
    resp: reqwest::Response,
) -> ApiError {
    let status = resp.status();
    let headers = resp.headers().clone();
    // Bounded read: an error body is a diagnostic, not something worth megabytes.
    let text = match tokio::time::timeout(std::time::Duration::from_secs(5), resp.bytes()).await {
        Ok(Ok(b)) => String::from_utf8_lossy(&b[..b.len().min(16 * 1024)]).into_owned(),
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
pub fn limit_param(body: &Map<String, Value>) -> Option<&'static str> {
    if body.contains_key("max_tokens") {
        Some("/max_tokens")
    } else if body.contains_key("max_completion_tokens") {
        Some("/max_completion_tokens")
    } else {
        None
    }
}

/// The pure part of the mapping (unit-tested without sockets).
pub fn map_status(
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
    let raw_msg = litellm::upstream_sentence(&raw_msg, &model.upstream_model, &model.alias);
    let lower = raw_msg.to_ascii_lowercase();
    let upstream_retry = litellm::retry_after(headers);

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

/// The human message of any of the upstream error shapes (vLLM, LiteLLM, OpenRouter, OpenAI,
/// FastAPI `detail`).
pub fn extract_message(v: &Value) -> Option<String> {
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

/// Provider names: the caller talks to this gateway's aliases, not to a vendor.
const PROVIDERS: [&str; 5] = ["litellm", "openrouter", "vllm", "openai", "anthropic"];

/// Removes what a client must never see: URLs, the upstream's host and key, bearer-like
/// secrets, provider names. Also bounds the length.
pub fn sanitize(msg: &str, upstream: &Upstream) -> String {
    let mut out = String::with_capacity(msg.len().min(512));
    for word in msg.split_inclusive(char::is_whitespace) {
        // Quotes and brackets around a key or URL must not hide it.
        let trimmed = word.trim().trim_matches(|c: char| !c.is_alphanumeric());
        let lower = trimmed.to_ascii_lowercase();
        let secret = PROVIDERS.iter().any(|p| lower.contains(p))
            || lower.contains("http://")
            || lower.contains("https://")
            || lower.starts_with("sk-")
            || lower.starts_with("bearer")
            || (!upstream.host.is_empty() && lower.contains(&upstream.host.to_ascii_lowercase()))
            || upstream
                .api_key
                .as_deref()
                .is_some_and(|k| !k.is_empty() && trimmed.contains(k));
        if secret {
            out.push_str("[redacted]");
            if word.ends_with(char::is_whitespace) {
                out.push(' ');
            }
        } else {
            out.push_str(word);
        }
        if out.len() > 500 {
            out.truncate(
                out.char_indices()
                    .take_while(|(i, _)| *i < 500)
                    .last()
                    .map_or(0, |(i, c)| i + c.len_utf8()),
            );
            out.push('…');
            break;
        }
    }
    let out = out.trim().to_owned();
    if out.is_empty() {
        "no message".to_owned()
    } else {
        out
    }
}
