//! Upstream SSE: parsed events ([`Piece`]), the bytes we frame, the per-request [`Hooks`] and
//! the [`Assembler`] that rebuilds one message from deltas.
//!
//! The 200 header goes out only once the upstream's first chunk is in hand, so every failure
//! before it is an ordinary catalog error with its real status. After it, a failure becomes
//! `event: error` with the envelope, and the stream ends. Every wait is bounded by the
//! request's deadline (HTTP_TOTAL_TIMEOUT_SECS from the start of the request).

use std::future::Future;
use std::pin::Pin;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value};
use tokio::time::Instant;

use crate::config::Model;
use crate::error::ApiError;
use crate::state::AppState;
use crate::upstream::sse_reader::{ReadError, SseReader};
use crate::upstream::sse_splice::RawChunk;
use crate::upstream::{self, stream_failure, StreamFailure, Usage};
use serde_json::json;

/// One parsed item of an upstream stream.
#[derive(Debug)]
pub enum Piece {
    Chunk(Map<String, Value>),
    Done,
    Failed(ApiError),
}

/// One item for the plain relay ([`UpstreamEvents::next_relayed`]): a chunk as bytes where
/// the fast path decides, else as a `Value` map, like [`Piece`].
#[derive(Debug)]
pub enum Relayed {
    Raw(RawChunk),
    Chunk(Map<String, Value>),
    Done,
    Failed(ApiError),
}

/// The upstream's SSE, parsed and bounded by a deadline.
pub struct UpstreamEvents {
    inner: SseReader,
    /// The request's deadline, one timer for the whole stream (a `timeout_at` per event
    /// would register and cancel a timer per event).
    deadline: Pin<Box<tokio::time::Sleep>>,
    /// What an error object inside the stream is mapped with, like any upstream error.
    state: AppState,
    model: Model,
    limit_param: Option<&'static str>,
    finished: bool,
    /// Chunks may come as [`RawChunk`] from `next_relayed` (set by a relay that changes
    /// nothing but `model`).
    as_bytes: bool,
    /// A chunk with a choice arrived: `[DONE]` before one (only usage, or nothing) answered
    /// nothing, an upstream failure (SPEC §5), decided here for relay and tool loop alike.
    answered: bool,
}

impl UpstreamEvents {
    pub fn new(
        resp: reqwest::Response,
        deadline: Instant,
        state: &AppState,
        model: &Model,
        body: &Map<String, Value>,
    ) -> Self {
        UpstreamEvents {
            inner: SseReader::new(
                Box::pin(resp.bytes_stream()),
                state.config.reads.sse_max_line_bytes,
            ),
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
            state: state.clone(),
            model: model.clone(),
            limit_param: upstream::limit_param(body),
            finished: false,
            as_bytes: false,
            answered: false,
        }
    }

    /// Lets [`Self::next_relayed`] hand out chunks as bytes with `model` spliced: for a relay
    /// that adds no field and keeps no copy of the message.
    pub fn relay_as_bytes(mut self) -> Self {
        self.as_bytes = true;
        self
    }

    /// The next piece; after `Done` or `Failed` it keeps returning `Done`.
    pub async fn next(&mut self) -> Piece {
        let data = match self.next_data().await {
            Ok(data) => data,
            Err(end) => return end,
        };
        self.parsed(&data)
    }

    /// As [`Self::next`], for the plain relay: after [`Self::relay_as_bytes`] an ordinary
    /// chunk comes as [`Relayed::Raw`]; whatever the fast path does not decide is parsed and
    /// decided by the `Value` path as in `next`. Cancel-safe like `next`.
    pub async fn next_relayed(&mut self) -> Relayed {
        let data = match self.next_data().await {
            Ok(data) => data,
            Err(end) => return Relayed::from(end),
        };
        let data = if self.as_bytes && !is_done(&data) {
            match RawChunk::parse(data) {
                Ok(raw) => {
                    self.answered |= !raw.usage_only;
                    return Relayed::Raw(raw);
                }
                Err(data) => data,
            }
        } else {
            data
        };
        Relayed::from(self.parsed(&data))
    }

    /// The next event's data; `Err` with the piece that ends the stream (every later call
    /// returns `Done`).
    async fn next_data(&mut self) -> Result<String, Piece> {
        if self.finished {
            return Err(Piece::Done);
        }
        let raced = {
            let (inner, deadline) = (&mut self.inner, &mut self.deadline);
            let read = inner.next_data();
            tokio::pin!(read);
            // The read first, as `timeout` does: an event already there wins over the deadline.
            std::future::poll_fn(|cx| {
                if let std::task::Poll::Ready(v) = read.as_mut().poll(cx) {
                    return std::task::Poll::Ready(Ok(v));
                }
                deadline.as_mut().poll(cx).map(Err)
            })
            .await
        };
        let failure = match raced {
            Ok(Some(Ok(data))) => return Ok(data),
            Err(()) => stream_failure(StreamFailure::Stalled),
            Ok(None) => stream_failure(StreamFailure::EndedWithoutDone),
            Ok(Some(Err(ReadError::Transport(e)))) => upstream::stream_transport_error(e),
            Ok(Some(Err(ReadError::TooLong))) => upstream::event_too_long(self.inner.max_line),
            Ok(Some(Err(ReadError::Malformed))) => stream_failure(StreamFailure::Malformed),
        };
        self.finished = true;
        Err(Piece::Failed(failure))
    }

    /// An event's data through the `Value` path, with the stream's bookkeeping.
    fn parsed(&mut self, data: &str) -> Piece {
        let piece = self.parse(data);
        if let Piece::Chunk(c) = &piece {
            self.answered |= !is_usage_only(c);
        } else {
            self.finished = true;
        }
        piece
    }

    /// vLLM and others report failures as an error object inside a 200 stream; it is mapped
    /// (and sanitised) exactly as the same error with its status would be.
    fn in_stream_error(&self, err: &Value) -> ApiError {
        let status = err
            .get("code")
            .and_then(|c| {
                c.as_u64()
                    .or_else(|| c.as_str().and_then(|s| s.parse().ok()))
            })
            .and_then(|c| u16::try_from(c).ok())
            .and_then(|c| StatusCode::from_u16(c).ok())
            .filter(|s| s.is_client_error() || s.is_server_error())
            .unwrap_or(StatusCode::BAD_GATEWAY);
        let upstream = &self.state.config.upstreams[self.model.upstream];
        let text = serde_json::json!({ "error": err }).to_string();
        upstream::map_status(
            &self.state,
            &self.model,
            upstream,
            self.limit_param,
            status,
            &axum::http::HeaderMap::new(),
            &text,
        )
    }

    fn parse(&self, data: &str) -> Piece {
        if is_done(data) && !self.answered {
            return Piece::Failed(stream_failure(StreamFailure::EndedBeforeFirstChunk));
        } else if is_done(data) {
            return Piece::Done;
        }
        match serde_json::from_str::<Value>(data) {
            Ok(Value::Object(mut obj)) => {
                if let Some(err) = obj.get("error") {
                    return Piece::Failed(self.in_stream_error(err));
                }
                if obj.get("model").is_some() {
                    obj.insert("model".into(), Value::String(self.model.alias.clone()));
                }
                Piece::Chunk(obj)
            }
            _ => Piece::Failed(stream_failure(StreamFailure::ChunkNotObject)),
        }
    }
}

fn is_done(data: &str) -> bool {
    data.trim() == "[DONE]"
}

impl From<Piece> for Relayed {
    fn from(p: Piece) -> Self {
        match p {
            Piece::Chunk(c) => Relayed::Chunk(c),
            Piece::Done => Relayed::Done,
            Piece::Failed(e) => Relayed::Failed(e),
        }
    }
}

pub fn sse_data(json: &str) -> Bytes {
    let mut s = String::with_capacity(json.len() + 8);
    s.push_str("data: ");
    s.push_str(json);
    s.push_str("\n\n");
    Bytes::from(s)
}

pub(crate) fn sse_event(name: &str, json: &str) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {json}\n\n"))
}

pub fn done() -> Bytes {
    Bytes::from_static(b"data: [DONE]\n\n")
}

pub(crate) fn error_event(e: &ApiError) -> Bytes {
    sse_event(crate::contract::EVENT_ERROR, &e.body_json())
}

/// Whether a chunk is the usage-only chunk of `stream_options.include_usage`.
pub(crate) fn is_usage_only(chunk: &Map<String, Value>) -> bool {
    chunk.get("usage").is_some_and(Value::is_object)
        && chunk
            .get("choices")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty)
}

/// Content bytes of `choices[0].delta` (content and serialised `tool_calls`), the `Value`
/// path's count (the raw path counts the same, `sse_splice::delta_bytes`).
pub(crate) fn value_delta_bytes(chunk: &Map<String, Value>) -> u64 {
    chunk
        .get("choices")
        .and_then(|c| c.pointer("/0/delta"))
        .map_or(0, |d| {
            let text = d.get("content").and_then(Value::as_str).map_or(0, str::len);
            let args = d.get("tool_calls").map_or(0, |t| t.to_string().len());
            (text + args) as u64
        })
}

pub(crate) fn sse_response(body: Body) -> Response {
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    resp
}

/// Prepares a body for an upstream stream: always ask for the usage chunk (budgets count it);
/// returns whether the caller itself asked for it.
pub(crate) fn request_usage(body: &mut Map<String, Value>) -> bool {
    let wanted = body
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    body.insert("stream".into(), Value::Bool(true));
    let opts = body
        .entry("stream_options")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(o) = opts {
        o.insert("include_usage".into(), Value::Bool(true));
    }
    wanted
}

/// What a finished (or abandoned) stream reports to its owner.
#[derive(Debug, Default)]
pub struct Outcome {
    pub usage: Usage,
    /// The assistant message the caller received (content and the caller's own tool calls),
    /// `Null` when the stream did not complete.
    pub message: Value,
    /// True only when the stream reached `[DONE]`.
    pub completed: bool,
    /// The caller went away before the end (not an upstream failure): the request is charged.
    pub caller_left: bool,
    /// Content bytes relayed to the caller (for the charge of an abandoned stream).
    pub streamed_bytes: u64,
}

pub(crate) type FinishFuture =
    Pin<Box<dyn std::future::Future<Output = Result<(), ApiError>> + Send>>;
pub(crate) type Finish = Box<dyn FnOnce(Outcome) -> FinishFuture + Send>;

/// Per-request additions to a relayed stream.
#[derive(Default)]
pub struct Hooks {
    /// A top-level field added to every chunk (`conversation_id` on /c1).
    pub field: Option<(String, Value)>,
    /// Runs before `[DONE]` is sent (its error replaces `[DONE]` with `event: error`), or,
    /// with `completed: false`, when the stream fails or the caller leaves.
    pub finish: Option<Finish>,
    /// Whether the finish hook needs the assembled message (/c1 stores it). Off on /v1: a
    /// relayed stream then holds no copy of its content, only the chunk in flight.
    pub keep_message: bool,
}

impl Hooks {
    pub fn chunk_bytes(&self, chunk: &mut Map<String, Value>) -> Option<Bytes> {
        if let Some((k, v)) = &self.field {
            chunk.insert(k.clone(), v.clone());
        }
        // Serialised in place after the `data: ` prefix (no second copy of the JSON).
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(b"data: ");
        serde_json::to_writer(&mut out, chunk).ok()?;
        out.extend_from_slice(b"\n\n");
        Some(Bytes::from(out))
    }

    /// Settles a stream the upstream failed, without blocking the caller.
    pub fn abandon(&mut self, usage: Usage) {
        self.unfinished(usage, false, 0);
    }

    /// Settles a stream whose caller went away (`RelayState` calls it on drop) after
    /// `streamed_bytes` of content reached it.
    pub fn caller_left(&mut self, usage: Usage, streamed_bytes: u64) {
        self.unfinished(usage, true, streamed_bytes);
    }

    fn unfinished(&mut self, usage: Usage, caller_left: bool, streamed_bytes: u64) {
        if let Some(f) = self.finish.take() {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(f(Outcome {
                    usage,
                    message: Value::Null,
                    completed: false,
                    caller_left,
                    streamed_bytes,
                }));
            }
        }
    }

    /// Runs the finish hook for a completed stream; returns the bytes that end it.
    pub async fn complete(&mut self, usage: Usage, message: Value) -> Bytes {
        if let Some(f) = self.finish.take() {
            if let Err(e) = f(Outcome {
                usage,
                message,
                completed: true,
                caller_left: false,
                streamed_bytes: 0,
            })
            .await
            {
                return error_event(&e);
            }
        }
        done()
    }
}

/// Reassembles a streamed round into one assistant message (content + tool calls whose
/// `arguments` arrive split across deltas).
#[derive(Debug, Default)]
pub(crate) struct Assembler {
    pub content: String,
    pub calls: Vec<(String, String, String)>,
    pub finish_reason: Option<String>,
}

impl Assembler {
    pub(crate) fn add(&mut self, chunk: &Map<String, Value>) {
        let Some(choice) = chunk.get("choices").and_then(|c| c.get(0)) else {
            return;
        };
        if let Some(f) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish_reason = Some(f.to_owned());
        }
        let Some(delta) = choice.get("delta") else {
            return;
        };
        if let Some(t) = delta.get("content").and_then(Value::as_str) {
            self.content.push_str(t);
        }
        for tc in delta
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let idx = tc.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
            if idx > 128 {
                continue;
            }
            while self.calls.len() <= idx {
                self.calls.push(Default::default());
            }
            let slot = &mut self.calls[idx];
            if let Some(id) = tc.get("id").and_then(Value::as_str) {
                slot.0 = id.to_owned();
            }
            if let Some(n) = tc.pointer("/function/name").and_then(Value::as_str) {
                slot.1.push_str(n);
            }
            if let Some(a) = tc.pointer("/function/arguments").and_then(Value::as_str) {
                slot.2.push_str(a);
            }
        }
    }

    pub(crate) fn message(&self) -> Value {
        let mut m = json!({"role": "assistant", "content": self.content});
        if !self.calls.is_empty() {
            m["tool_calls"] = Value::Array(
                self.calls
                    .iter()
                    .map(|(id, name, args)| json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}}))
                    .collect(),
            );
        }
        m
    }
}
