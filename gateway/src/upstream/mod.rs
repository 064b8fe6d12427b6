//! Upstream calls and the one mapping of upstream failures onto catalog codes.
//!
//! Who is at fault decides the code: the upstream's 4xx is the caller's problem
//! (`upstream_bad_request`, its status 1:1), quota answers are `model_quota_exhausted` (or the
//! OpenRouter-specific code for pinned aliases), 5xx/garbage is `upstream_error`, and transport
//! failures are `upstream_timeout` / `upstream_unavailable`. Messages are sanitised here.

use crate::checks::memory::{MemoryHold, Refused, ANSWER_READ_FACTOR};
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

    /// [`Usage::from_json`] of a `usage` value's text, without building its tree: only the
    /// three counts are read (the last of a repeated key, as in a parsed map); everything
    /// else, however large, is skipped.
    pub fn from_raw(raw: &str) -> Usage {
        use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
        struct Counts;
        impl<'de> Visitor<'de> for Counts {
            type Value = [Option<u64>; 3];
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a usage object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                let mut counts = [None; 3];
                while let Some(Slot(slot)) = a.next_key::<Slot>()? {
                    match slot {
                        Some(i) => counts[i] = a.next_value::<Count>()?.0,
                        None => {
                            a.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(counts)
            }
        }
        /// Which count a key names, read without copying it (serde's `Cow<str>` always
        /// allocates; an escaped key is unescaped by serde_json and still compared).
        struct Slot(Option<usize>);
        impl<'de> serde::Deserialize<'de> for Slot {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct K;
                impl Visitor<'_> for K {
                    type Value = Slot;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        f.write_str("a key")
                    }
                    fn visit_str<E>(self, k: &str) -> Result<Slot, E> {
                        Ok(Slot(
                            ["prompt_tokens", "completion_tokens", "total_tokens"]
                                .iter()
                                .position(|n| *n == k),
                        ))
                    }
                }
                d.deserialize_str(K)
            }
        }
        /// A count as `Value::as_u64` reads it: a non-negative integer, else none.
        struct Count(Option<u64>);
        impl<'de> serde::Deserialize<'de> for Count {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = Count;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        f.write_str("any value")
                    }
                    fn visit_u64<E>(self, n: u64) -> Result<Count, E> {
                        Ok(Count(Some(n)))
                    }
                    fn visit_i64<E>(self, _: i64) -> Result<Count, E> {
                        Ok(Count(None))
                    }
                    fn visit_f64<E>(self, _: f64) -> Result<Count, E> {
                        Ok(Count(None))
                    }
                    fn visit_bool<E>(self, _: bool) -> Result<Count, E> {
                        Ok(Count(None))
                    }
                    fn visit_str<E>(self, _: &str) -> Result<Count, E> {
                        Ok(Count(None))
                    }
                    fn visit_unit<E>(self) -> Result<Count, E> {
                        Ok(Count(None))
                    }
                    fn visit_seq<A: serde::de::SeqAccess<'de>>(
                        self,
                        mut a: A,
                    ) -> Result<Count, A::Error> {
                        while a.next_element::<IgnoredAny>()?.is_some() {}
                        Ok(Count(None))
                    }
                    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Count, A::Error> {
                        while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                        Ok(Count(None))
                    }
                }
                d.deserialize_any(V)
            }
        }
        let mut de = serde_json::Deserializer::from_str(raw);
        let Ok(counts) = de.deserialize_map(Counts) else {
            return Usage::from_json(None);
        };
        Usage::from_counts(counts)
    }

    /// The usage of `prompt_tokens`, `completion_tokens` and `total_tokens` as read (each a
    /// non-negative integer or none), as [`Usage::from_json`] makes it.
    pub(crate) fn from_counts([prompt, completion, total]: [Option<u64>; 3]) -> Usage {
        let (prompt, completion) = (prompt.unwrap_or(0), completion.unwrap_or(0));
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
) -> Result<UpstreamResponse, ApiError> {
    let upstream = &state.config.upstreams[model.upstream];
    // The caller's bytes with `model` spliced when the tree still matches them; else the
    // tree, serialised.
    let outbound = match body.raw_outbound(&model.upstream_model) {
        Some(bytes) => bytes,
        None => serde_json::to_vec(&Outbound {
            model: &model.upstream_model,
            body,
        })
        .map_err(|_| ApiError::new(Code::InternalError, "the request could not be serialised"))?,
    };
    let Some(Some(target)) = state.chat_targets.get(model.upstream) else {
        return Err(errors::failed_before_answer());
    };
    let started = Instant::now();
    let result = state
        .upstream()
        .post_json(target, outbound, state.config.http_total_timeout)
        .await;
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
        Err(err) => {
            state
                .metrics
                .upstream(&upstream.name, outcome(&err), elapsed);
            Err(err)
        }
    }
}

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

/// Non-streaming chat: the upstream's `chat.completion` object and its usage. `hold` (on the
/// answer budget, `MAX_ANSWER_MEMORY_BYTES`) pays for the answer's bytes while they arrive and
/// for its tree before it is built; the caller keeps it as long as the tree lives.
pub(crate) async fn chat(
    state: &AppState,
    model: &Model,
    body: &ChatBody,
    hold: &mut MemoryHold,
) -> Result<(Map<String, Value>, Usage), ApiError> {
    let bytes = answer_bytes(state, model, body, hold).await?;
    completion(state, model, &bytes, hold)
}

/// Non-streaming chat relayed as bytes (the /v1 route without server-side tools): the same
/// checks and errors as [`chat`], without a `Value` round trip when the answer is ordinary.
/// `hold` covers the raw answer and the copy returned; see [`MemoryHold::into_bytes`].
pub(crate) async fn chat_bytes(
    state: &AppState,
    model: &Model,
    body: &ChatBody,
    hold: &mut MemoryHold,
) -> Result<(Vec<u8>, Usage), ApiError> {
    let bytes = answer_bytes(state, model, body, hold).await?;
    if let Some(done) = answer::swap_model(&bytes, &model.alias) {
        return Ok(done);
    }
    let (obj, usage) = completion(state, model, &bytes, hold)?;
    let out = serde_json::to_vec(&obj)
        .map_err(|_| ApiError::new(Code::InternalError, "the answer could not be serialised"))?;
    Ok((out, usage))
}

/// The upstream's successful answer, read within UPSTREAM_MAX_BODY_BYTES and paid for from
/// the answer budget ([`ANSWER_READ_FACTOR`] × its bytes) as it arrives.
async fn answer_bytes(
    state: &AppState,
    model: &Model,
    body: &ChatBody,
    hold: &mut MemoryHold,
) -> Result<Vec<u8>, ApiError> {
    let resp = send(state, model, body).await?;
    let max = state.config.reads.upstream_max_body_bytes;
    match read_capped(resp, max, hold, ANSWER_READ_FACTOR).await {
        Ok(Capped::Whole(b)) => Ok(b),
        Ok(Capped::Cut(_)) => Err(errors::answer_too_large(max)),
        Err(ReadFail::Memory(r)) => Err(errors::answer_memory_refusal(r, hold.budget_max())),
        Err(ReadFail::Transport(e)) => Err(transport_error(e)),
    }
}

/// A successful answer's body as a `chat.completion` (model swapped for the alias), or the
/// error it stands for. The tree is costed first and `hold` grows by twice that (the tree,
/// and what is copied out of it: /c1's stored message, the serialised answer) before it is
/// built; an answer that is not JSON is never parsed into a tree at all.
fn completion(
    state: &AppState,
    model: &Model,
    bytes: &[u8],
    hold: &mut MemoryHold,
) -> Result<(Map<String, Value>, Usage), ApiError> {
    let cost = match crate::checks::lazy::json_cost(bytes) {
        Ok(c) => usize::try_from(c).unwrap_or(usize::MAX),
        Err(e) => return Err(not_a_completion().caused_by(e)),
    };
    hold.grow(cost.saturating_mul(2))
        .map_err(|r| errors::answer_memory_refusal(r, hold.budget_max()))?;
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

/// Why a capped read failed.
#[derive(Debug)]
pub(crate) enum ReadFail {
    Transport(reqwest::Error),
    /// The memory budget could not take the next bytes (nothing more is read).
    Memory(Refused),
}

/// An upstream answer as the hyper client hands it on, its body in reqwest's `Body` (whose
/// transport errors the readers map). Not a `reqwest::Response`: building one parses a
/// placeholder URL per answer (2.5 % of a plain request's instructions under callgrind).
pub(crate) type UpstreamResponse = axum::http::Response<reqwest::Body>;

/// The answer's declared length (hyper's body knows it exactly from Content-Length).
fn content_length(resp: &UpstreamResponse) -> Option<u64> {
    hyper::body::Body::size_hint(resp.body()).exact()
}

/// The next data frame of the answer's body (trailers skipped); `None` at its end.
async fn next_chunk(resp: &mut UpstreamResponse) -> Result<Option<bytes::Bytes>, reqwest::Error> {
    use http_body_util::BodyExt as _;
    while let Some(frame) = resp.body_mut().frame().await {
        if let Ok(data) = frame?.into_data() {
            return Ok(Some(data));
        }
    }
    Ok(None)
}

/// Reads at most `max` bytes of `resp`: a declared Content-Length over the cap reads nothing,
/// and a chunked body stops as soon as it passes the cap, so no more than `max` bytes (plus
/// one network chunk, cut off) are ever held. Every byte kept is first taken from `hold`,
/// `factor` times (a declared length at once, else chunk by chunk).
pub(crate) async fn read_capped(
    mut resp: UpstreamResponse,
    max: usize,
    hold: &mut MemoryHold,
    factor: usize,
) -> Result<Capped, ReadFail> {
    let length = content_length(&resp);
    if length.is_some_and(|n| n > max as u64) {
        return Ok(Capped::Cut(Vec::new()));
    }
    let declared = length.map_or(0, |n| n as usize);
    hold.grow(declared.saturating_mul(factor))
        .map_err(ReadFail::Memory)?;
    let mut paid = declared;
    let mut buf = Vec::with_capacity(declared.max(8 * 1024).min(max));
    while let Some(chunk) = next_chunk(&mut resp).await.map_err(ReadFail::Transport)? {
        let room = max - buf.len();
        let keep = chunk.len().min(room);
        let beyond = (buf.len() + keep).saturating_sub(paid);
        hold.grow(beyond.saturating_mul(factor))
            .map_err(ReadFail::Memory)?;
        paid += beyond;
        if chunk.len() > room {
            buf.extend_from_slice(&chunk[..room]);
            return Ok(Capped::Cut(buf));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Capped::Whole(buf))
}

mod answer;
mod assembler;
pub(crate) mod client;
mod errors;
pub(crate) mod litellm;
mod sanitize;
pub(crate) mod sse;
mod sse_reader;
pub(crate) mod sse_scan;
pub(crate) mod sse_splice;

pub(crate) use errors::*;
pub(crate) use sanitize::sanitize;

#[cfg(test)]
mod tests;
