//! Upstream calls and the one mapping of upstream failures onto catalog codes.
//!
//! Who is at fault decides the code: the upstream's 4xx is the caller's problem
//! (`upstream_bad_request`, its status 1:1), quota answers are `model_quota_exhausted` (or the
//! OpenRouter-specific code for pinned aliases), 5xx/garbage is `upstream_error`, and transport
//! failures are `upstream_timeout` / `upstream_unavailable`. Messages are sanitised here.

use std::time::Instant;

use axum::http::{HeaderMap, StatusCode};
use serde_json::{Map, Value};

use crate::catalog::Code;
use crate::config::{Model, Upstream, UpstreamKind};
use crate::error::ApiError;
use crate::state::{secs_to_utc_midnight, AppState};

/// Token counts reported by the upstream, summed over a request's calls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
}

impl Usage {
    pub fn from_json(v: Option<&Value>) -> Usage {
        let get = |k: &str| {
            v.and_then(|u| u.get(k))
                .and_then(Value::as_u64)
                .unwrap_or(0)
        };
        let prompt = get("prompt_tokens");
        let completion = get("completion_tokens");
        let total = v
            .and_then(|u| u.get("total_tokens"))
            .and_then(Value::as_u64);
        Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: total.unwrap_or(prompt.saturating_add(completion)),
        }
    }

    pub fn add(&mut self, other: Usage) {
        // Saturating: absurd numbers from an upstream must not panic a request.
        self.prompt_tokens = self.prompt_tokens.saturating_add(other.prompt_tokens);
        self.completion_tokens = self
            .completion_tokens
            .saturating_add(other.completion_tokens);
        self.total_tokens = self.total_tokens.saturating_add(other.total_tokens);
    }

    pub fn to_json(self) -> Value {
        serde_json::json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        })
    }
}

/// The client's body with `model` swapped for the upstream's name, serialised without
/// copying the body (which may hold megabytes of inline images).
struct Outbound<'a> {
    model: &'a str,
    body: &'a Map<String, Value>,
}

impl serde::Serialize for Outbound<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.body.len()))?;
        m.serialize_entry("model", self.model)?;
        for (k, v) in self.body.iter().filter(|(k, _)| k.as_str() != "model") {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// Sends one chat request upstream and returns the response once its headers arrived.
/// `body` is the client's body (already validated); `model` is replaced by the upstream's.
pub async fn send(
    state: &AppState,
    model: &Model,
    body: &Map<String, Value>,
) -> Result<reqwest::Response, ApiError> {
    let upstream = &state.config.upstreams[model.upstream];
    let outbound = serde_json::to_vec(&Outbound {
        model: &model.upstream_model,
        body,
    })
    .map_err(|_| ApiError::new(Code::InternalError, "the request could not be serialised"))?;
    let mut req = state
        .http
        .post(&upstream.chat_url)
        .timeout(state.config.http_total_timeout)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(outbound);
    if let Some(key) = &upstream.api_key {
        req = req.bearer_auth(key);
    }
    let started = Instant::now();
    let result = req.send().await;
    let elapsed = started.elapsed().as_secs_f64();
    match result {
        Ok(resp) => {
            let outcome = if resp.status().is_success() {
                "ok"
            } else {
                "http_error"
            };
            state.metrics.upstream(&upstream.name, outcome, elapsed);
            if resp.status().is_success() {
                Ok(resp)
            } else {
                Err(error_from_response(state, model, upstream, body, resp).await)
            }
        }
        Err(e) => {
            let err = transport_error(&e);
            let outcome = match err.code {
                Code::UpstreamTimeout => "timeout",
                Code::UpstreamUnavailable => "unavailable",
                _ => "failed",
            };
            state.metrics.upstream(&upstream.name, outcome, elapsed);
            tracing::warn!(upstream = %upstream.name, error = %e, "upstream call failed");
            Err(err)
        }
    }
}

/// Non-streaming chat: the upstream's `chat.completion` object and its usage.
pub async fn chat(
    state: &AppState,
    model: &Model,
    body: &Map<String, Value>,
) -> Result<(Map<String, Value>, Usage), ApiError> {
    let resp = send(state, model, body).await?;
    let bytes = resp.bytes().await.map_err(|e| transport_error(&e))?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(mut obj))
            if obj
                .get("choices")
                .and_then(Value::as_array)
                .is_some_and(|c| !c.is_empty()) =>
        {
            let usage = Usage::from_json(obj.get("usage"));
            // The caller asked for an alias; the upstream's model name is an internal detail.
            obj.insert("model".into(), Value::String(model.alias.clone()));
            Ok((obj, usage))
        }
        Ok(Value::Object(obj)) if obj.contains_key("error") => {
            // Some servers answer 200 with an error object.
            let upstream = &state.config.upstreams[model.upstream];
            let msg = extract_message(&Value::Object(obj)).unwrap_or_default();
            Err(ApiError::new(
                Code::UpstreamError,
                format!("upstream error: {}", sanitize(&msg, upstream)),
            ))
        }
        _ => Err(ApiError::new(
            Code::UpstreamError,
            "the upstream returned a response that is not a chat completion",
        )),
    }
}

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

async fn error_from_response(
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
    let lower = raw_msg.to_ascii_lowercase();
    let upstream_retry = headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;

    fn upstream(kind: UpstreamKind) -> Upstream {
        Upstream {
            name: "u".into(),
            kind,
            base_url: "http://llm.internal.example:8000/v1".into(),
            chat_url: String::new(),
            health_url: String::new(),
            api_key: Some("sk-secret-123".into()),
            host: "llm.internal.example".into(),
        }
    }

    fn map(kind: UpstreamKind, status: u16, body: &str, with_max: bool) -> ApiError {
        let state = testing::state_at(1_778_943_600);
        let mut model = state.config.models[0].clone();
        model.fallbacks = vec!["b".into(), "c".into()];
        let mut req = Map::new();
        if with_max {
            req.insert("max_tokens".into(), Value::from(16));
        }
        map_status(
            &state,
            &model,
            &upstream(kind),
            limit_param(&req),
            StatusCode::from_u16(status).unwrap(),
            &HeaderMap::new(),
            body,
        )
    }

    #[test]
    fn four_xx_keeps_its_status_and_five_xx_is_502() {
        let e = map(
            UpstreamKind::Vllm,
            422,
            r#"{"object":"error","message":"bad schema","type":"BadRequestError","param":null,"code":422}"#,
            false,
        );
        assert_eq!(
            (e.code, e.status_code().as_u16()),
            (Code::UpstreamBadRequest, 422)
        );
        assert!(e.message.contains("bad schema"));
        let e = map(
            UpstreamKind::Litellm,
            500,
            r#"{"error":{"message":"boom at http://llm.internal.example:8000/x key sk-secret-123","type":"None","param":"None","code":"500"}}"#,
            false,
        );
        assert_eq!(
            (e.code, e.status_code().as_u16()),
            (Code::UpstreamError, 502)
        );
        assert!(
            !e.message.contains("llm.internal.example") && !e.message.contains("sk-secret"),
            "{}",
            e.message
        );
    }

    #[test]
    fn quota_answers_become_provider_agnostic_429() {
        let e = map(
            UpstreamKind::Litellm,
            400,
            r#"{"error":{"message":"Budget has been exceeded! Current cost: 1.2, Max budget: 1.0","type":"budget_exceeded","param":null,"code":"400"}}"#,
            false,
        );
        assert_eq!(e.code, Code::ModelQuotaExhausted);
        assert!(!e.message.to_lowercase().contains("litellm") && !e.message.contains("1.2"));
        assert_eq!(e.retry_after, Some(60));
    }

    #[test]
    fn openrouter_daily_limit_names_fallbacks_and_midnight() {
        let e = map(
            UpstreamKind::Openrouter,
            429,
            r#"{"error":{"code":429,"message":"Rate limit exceeded: free-models-per-day","metadata":{}}}"#,
            false,
        );
        assert_eq!(e.code, Code::OpenrouterDailyQuotaExhausted);
        assert_eq!(e.retry_after, Some(32_400));
        assert_eq!(
            e.fallbacks.as_deref(),
            Some(&["b".to_owned(), "c".to_owned()][..])
        );
        let e = map(
            UpstreamKind::Openrouter,
            402,
            r#"{"error":{"code":402,"message":"Insufficient credits"}}"#,
            false,
        );
        // SPEC: credit exhaustion is the provider-agnostic code, even on a pinned alias.
        assert_eq!(e.code, Code::ModelQuotaExhausted);
    }

    #[test]
    fn max_tokens_rejection_after_the_floor() {
        let body = r#"{"object":"error","message":"max_tokens must be at least 50, got 16.","type":"BadRequestError","param":null,"code":400}"#;
        let e = map(UpstreamKind::Vllm, 400, body, true);
        assert_eq!(
            (e.code, e.param.as_deref()),
            (Code::MaxTokensBelowMinimum, Some("/max_tokens"))
        );
        // without a max_tokens in the request it is an ordinary upstream 400
        assert_eq!(
            map(UpstreamKind::Vllm, 400, body, false).code,
            Code::UpstreamBadRequest
        );
    }
}
