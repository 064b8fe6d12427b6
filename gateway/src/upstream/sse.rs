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

use crate::checks::memory::MemoryHold;
use crate::config::Model;
use crate::error::ApiError;
use crate::state::AppState;
use crate::upstream::sse_reader::{ReadError, SseReader};
use crate::upstream::sse_splice::RawChunk;
use crate::upstream::{self, stream_failure, StreamFailure, Usage};

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
    /// The answer-budget shares of the chunks parsed and not yet handed on with the bytes made
    /// from them ([`Self::take_share`]).
    pending: MemoryHold,
    /// Chunks may come as [`RawChunk`] from `next_relayed` (set by a relay that changes
    /// nothing but `model`).
    as_bytes: bool,
    /// A chunk with a choice arrived ([`has_choice`]): `[DONE]` before one (only usage, or `{}`) answered
    /// nothing, an upstream failure (SPEC §5), decided here for relay and tool loop alike.
    answered: bool,
}

impl UpstreamEvents {
    pub fn new(
        resp: upstream::UpstreamResponse,
        deadline: Instant,
        state: &AppState,
        model: &Model,
        body: &Map<String, Value>,
    ) -> Self {
        UpstreamEvents {
            inner: SseReader::new(
                Box::pin(http_body_util::BodyDataStream::new(resp.into_body())),
                state.config.reads.sse_max_line_bytes,
            ),
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
            state: state.clone(),
            model: model.clone(),
            limit_param: upstream::limit_param(body),
            finished: false,
            pending: state.answer_memory.hold(),
            as_bytes: false,
            answered: false,
        }
    }

    /// The shares of the chunks returned since the last call: whoever sends the bytes made from
    /// them attaches this ([`MemoryHold::attach`]), so they are paid for until written.
    pub fn take_share(&mut self) -> MemoryHold {
        let fresh = self.state.answer_memory.hold();
        std::mem::replace(&mut self.pending, fresh)
    }

    /// Puts a share taken with [`Self::take_share`] back with the pending ones, to be handed
    /// on with the next bytes (the relay's kept usage report, sent in the first frame).
    pub fn give_back_share(&mut self, share: &mut MemoryHold) {
        self.pending.absorb(share);
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
        if !self.as_bytes || is_done(&data) {
            return Relayed::from(self.parsed(&data));
        }
        // Paid for first, exactly as the `Value` path pays ([`Self::charge`]): the raw path
        // builds no tree, but the budget must not tell the two paths apart (a stream the
        // `Value` path would refuse is refused here with the same error, at the same event).
        // One pass gives the cost and the relay's decisions ([`super::sse_scan`]).
        let paid = match super::sse_scan::scan(&data) {
            Ok(scan) => self.pay(scan.cost, data.len()).map(|()| scan),
            Err(_) => Err(stream_failure(StreamFailure::ChunkNotObject)),
        };
        match paid {
            Err(e) => {
                self.finished = true;
                Relayed::Failed(e)
            }
            Ok(scan) if !scan.fallback => {
                let raw = RawChunk::scanned(data, scan);
                self.answered |= raw.has_choice;
                Relayed::Raw(raw)
            }
            // Already paid for: only built.
            Ok(_) => {
                let piece = self.build(&data);
                Relayed::from(self.settled(piece))
            }
        }
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
        self.settled(piece)
    }

    /// The stream's bookkeeping for a piece of the `Value` path.
    fn settled(&mut self, piece: Piece) -> Piece {
        if let Piece::Chunk(c) = &piece {
            self.answered |= has_choice(c);
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

    /// A chunk is paid for before it is built ([`Self::charge`]).
    fn parse(&mut self, data: &str) -> Piece {
        if is_done(data) && !self.answered {
            return Piece::Failed(stream_failure(StreamFailure::EndedBeforeFirstChunk));
        } else if is_done(data) {
            return Piece::Done;
        }
        if let Err(e) = self.charge(data) {
            return Piece::Failed(e);
        }
        self.build(data)
    }

    /// Pays for one event from the answer budget: its tree's cost, its text and the bytes
    /// serialised from it (`MAX_ANSWER_MEMORY_BYTES`; one event is at most SSE_MAX_LINE_BYTES,
    /// but its tree can be 30 times that). The same charge whichever path relays the event
    /// (a raw chunk's text is held as long, and is what the tree's cost bounds); the share
    /// waits in `pending` until [`Self::take_share`] hands it on with the bytes.
    fn charge(&mut self, data: &str) -> Result<(), ApiError> {
        let Ok(cost) = crate::checks::lazy::json_cost(data.as_bytes()) else {
            return Err(stream_failure(StreamFailure::ChunkNotObject));
        };
        self.pay(cost, data.len())
    }

    /// [`Self::charge`] of an event whose tree would cost `cost`, its data `len` bytes.
    fn pay(&mut self, cost: u64, len: usize) -> Result<(), ApiError> {
        let need = usize::try_from(cost)
            .unwrap_or(usize::MAX)
            .saturating_add(2 * len);
        let mut share = self.state.answer_memory.hold();
        if let Err(r) = share.grow(need) {
            return Err(upstream::answer_memory_refusal(r, share.budget_max()));
        }
        self.pending.absorb(&mut share);
        Ok(())
    }

    /// A paid-for event's `Value` chunk (`model` swapped), or why it is none.
    fn build(&self, data: &str) -> Piece {
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

/// One `data:` event (for tests and benches: the relay serialises in place, `Hooks::chunk_bytes`).
#[cfg(any(test, feature = "testing"))]
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

/// Content bytes a chunk carries to the caller (text plus tool-call deltas): what an abandoned
/// stream is charged for, counted rather than copied (the plain relay and the tool loop alike;
/// a raw chunk counts the same, `sse_splice::delta_bytes`).
pub(crate) fn delta_bytes(chunk: &Map<String, Value>) -> u64 {
    chunk
        .get("choices")
        .and_then(|c| c.pointer("/0/delta"))
        .map_or(0, |d| {
            let text = d.get("content").and_then(Value::as_str).map_or(0, str::len);
            let args = d.get("tool_calls").map_or(0, |t| t.to_string().len());
            (text + args) as u64
        })
}

/// Whether a chunk carries a choice (a non-empty `choices` array): what makes a stream an
/// answer. A chunk of only usage, or of nothing (`{}`), does not.
pub(crate) fn has_choice(chunk: &Map<String, Value>) -> bool {
    chunk
        .get("choices")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
}

/// Whether a chunk is the usage-only chunk of `stream_options.include_usage`.
pub(crate) fn is_usage_only(chunk: &Map<String, Value>) -> bool {
    chunk.get("usage").is_some_and(Value::is_object)
        && chunk
            .get("choices")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty)
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

pub(crate) use super::assembler::Assembler;

#[cfg(test)]
#[path = "sse_tests.rs"]
mod tests;
