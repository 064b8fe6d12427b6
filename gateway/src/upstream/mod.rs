//! Upstream calls and the one mapping of upstream failures onto catalog codes.
//!
//! Who is at fault decides the code: the upstream's 4xx is the caller's problem
//! (`upstream_bad_request`, its status 1:1), quota answers are `model_quota_exhausted` (or the
//! OpenRouter-specific code for pinned aliases), 5xx/garbage is `upstream_error`, and transport
//! failures are `upstream_timeout` / `upstream_unavailable`. Messages are sanitised here.

use crate::checks::ChatBody;
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
    body: &'a ChatBody,
}

impl serde::Serialize for Outbound<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("model", self.model)?;
        for (k, v) in self.body.iter().filter(|(k, _)| k.as_str() != "model") {
            m.serialize_entry(k, v)?;
        }
        // The fields the gateway does not read, straight from the caller's bytes.
        self.body.serialize_unknown(&mut m)?;
        m.end()
    }
}

/// Sends one chat request upstream and returns the response once its headers arrived.
/// `body` is the client's body (already validated); `model` is replaced by the upstream's.
pub(crate) async fn send(
    state: &AppState,
    model: &Model,
    body: &ChatBody,
) -> Result<reqwest::Response, ApiError> {
    let upstream = &state.config.upstreams[model.upstream];
    let outbound = serde_json::to_vec(&Outbound {
        model: &model.upstream_model,
        body,
    })
    .map_err(|_| ApiError::new(Code::InternalError, "the request could not be serialised"))?;
    let parsed = state.chat_urls.get(model.upstream).cloned().flatten();
    let req = match parsed {
        Some(url) => state.http.post(url),
        None => state.http.post(&upstream.chat_url),
    };
    let mut req = req
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
            let err = transport_error(e);
            state
                .metrics
                .upstream(&upstream.name, outcome(&err), elapsed);
            Err(err)
        }
    }
}

/// Non-streaming chat: the upstream's `chat.completion` object and its usage.
/// Takes one of the alias's upstream in-flight slots (`max_in_flight`), waiting at most the
/// upstream's `queue_wait_ms`; `None` when the upstream has no cap. Held for the whole request
/// (every tool-loop round, a stream until it ends).
pub(crate) async fn in_flight_slot(
    state: &AppState,
    model: &Model,
) -> Result<Option<tokio::sync::OwnedSemaphorePermit>, ApiError> {
    let Some(Some(sem)) = state.upstream_slots.get(model.upstream) else {
        return Ok(None);
    };
    let wait = state.config.upstreams[model.upstream].queue_wait;
    match tokio::time::timeout(wait, sem.clone().acquire_owned()).await {
        Ok(Ok(permit)) => Ok(Some(permit)),
        // Timed out, or (never: the semaphore is never closed) closed.
        _ => Err(errors::upstream_saturated(&model.alias)),
    }
}

pub(crate) async fn chat(
    state: &AppState,
    model: &Model,
    body: &ChatBody,
) -> Result<(Map<String, Value>, Usage), ApiError> {
    let bytes = answer_bytes(state, model, body).await?;
    completion(state, model, &bytes)
}

/// Non-streaming chat relayed as bytes (the /v1 route without server-side tools): the same
/// checks and errors as [`chat`], without a `Value` round trip when the answer is ordinary.
pub(crate) async fn chat_bytes(
    state: &AppState,
    model: &Model,
    body: &ChatBody,
) -> Result<(Vec<u8>, Usage), ApiError> {
    let bytes = answer_bytes(state, model, body).await?;
    if let Some(done) = answer::swap_model(&bytes, &model.alias) {
        return Ok(done);
    }
    let (obj, usage) = completion(state, model, &bytes)?;
    let out = serde_json::to_vec(&obj)
        .map_err(|_| ApiError::new(Code::InternalError, "the answer could not be serialised"))?;
    Ok((out, usage))
}

/// The upstream's successful answer, read within UPSTREAM_MAX_BODY_BYTES.
async fn answer_bytes(
    state: &AppState,
    model: &Model,
    body: &ChatBody,
) -> Result<Vec<u8>, ApiError> {
    let resp = send(state, model, body).await?;
    let max = state.config.reads.upstream_max_body_bytes;
    match read_capped(resp, max).await {
        Ok(Capped::Whole(b)) => Ok(b),
        Ok(Capped::Cut(_)) => Err(errors::answer_too_large(max)),
        Err(e) => Err(transport_error(e)),
    }
}

/// A successful answer's body as a `chat.completion` (model swapped for the alias), or the
/// error it stands for.
fn completion(
    state: &AppState,
    model: &Model,
    bytes: &[u8],
) -> Result<(Map<String, Value>, Usage), ApiError> {
    match serde_json::from_slice::<Value>(bytes) {
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
            Err(error_in_success(&msg, upstream))
        }
        Ok(_) => Err(not_a_completion()),
        Err(e) => Err(not_a_completion().caused_by(e)),
    }
}

/// A body read with a byte ceiling.
pub(crate) enum Capped {
    /// The whole body, within the cap.
    Whole(Vec<u8>),
    /// The first `max` bytes; the rest was never read (the connection is dropped).
    Cut(Vec<u8>),
}

/// Reads at most `max` bytes of `resp`: a declared Content-Length over the cap reads nothing,
/// and a chunked body stops as soon as it passes the cap, so no more than `max` bytes (plus
/// one network chunk, cut off) are ever held.
pub(crate) async fn read_capped(
    mut resp: reqwest::Response,
    max: usize,
) -> Result<Capped, reqwest::Error> {
    if resp.content_length().is_some_and(|n| n > max as u64) {
        return Ok(Capped::Cut(Vec::new()));
    }
    let mut buf = Vec::with_capacity(
        resp.content_length()
            .map_or(8 * 1024, |n| n as usize)
            .min(max),
    );
    while let Some(chunk) = resp.chunk().await? {
        let room = max - buf.len();
        if chunk.len() > room {
            buf.extend_from_slice(&chunk[..room]);
            return Ok(Capped::Cut(buf));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Capped::Whole(buf))
}

mod answer;
mod errors;
pub(crate) mod litellm;
mod sanitize;
pub(crate) mod sse;
mod sse_reader;
pub(crate) mod sse_splice;

pub(crate) use errors::*;
pub(crate) use sanitize::sanitize;

#[cfg(test)]
mod tests;
