//! SSE streaming: relay of upstream `chat.completion.chunk` events, chunk by chunk.
//!
//! The 200 header goes out only once the upstream's first chunk is in hand, so every failure
//! before it is an ordinary catalog error with its real status. After it, a failure becomes
//! `event: error` with the envelope, and the stream ends. Every wait is bounded by the
//! request's deadline (HTTP_TOTAL_TIMEOUT_SECS from the start of the request).

use std::pin::Pin;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::BytesMut;
use eventsource_stream::{EventStreamError, Eventsource};
use futures_util::{FutureExt, Stream, StreamExt};
use serde_json::{Map, Value};
use tokio::time::Instant;

use crate::catalog::Code;
use crate::config::Model;
use crate::error::ApiError;
use crate::state::AppState;
use crate::toolloop::Assembler;
use crate::upstream::{self, Usage};

type EventStream = Pin<
    Box<
        dyn Stream<Item = Result<eventsource_stream::Event, EventStreamError<reqwest::Error>>>
            + Send,
    >,
>;

/// One parsed item of an upstream stream.
#[derive(Debug)]
pub enum Piece {
    Chunk(Map<String, Value>),
    Done,
    Failed(ApiError),
}

/// The upstream's SSE, parsed and bounded by a deadline.
pub struct UpstreamEvents {
    inner: EventStream,
    deadline: Instant,
    /// What an error object inside the stream is mapped with, like any upstream error.
    state: AppState,
    model: Model,
    limit_param: Option<&'static str>,
    finished: bool,
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
            inner: Box::pin(resp.bytes_stream().eventsource()),
            deadline,
            state: state.clone(),
            model: model.clone(),
            limit_param: upstream::limit_param(body),
            finished: false,
        }
    }

    /// The next piece; after `Done` or `Failed` it keeps returning `Done`.
    pub async fn next(&mut self) -> Piece {
        if self.finished {
            return Piece::Done;
        }
        let piece = match tokio::time::timeout_at(self.deadline, self.inner.next()).await {
            Err(_) => Piece::Failed(ApiError::new(
                Code::UpstreamTimeout,
                "the upstream stream stalled past HTTP_TOTAL_TIMEOUT_SECS",
            )),
            Ok(None) => Piece::Failed(ApiError::new(
                Code::UpstreamError,
                "the upstream stream ended without data: [DONE]",
            )),
            Ok(Some(Err(EventStreamError::Transport(e)))) => {
                let mut err = upstream::transport_error(&e);
                if err.code == Code::UpstreamUnavailable {
                    err.code = Code::UpstreamError;
                }
                err.message = "the upstream connection broke off mid-stream".into();
                Piece::Failed(err)
            }
            Ok(Some(Err(_))) => Piece::Failed(ApiError::new(
                Code::UpstreamError,
                "the upstream sent a malformed event stream",
            )),
            Ok(Some(Ok(event))) => self.parse(&event.data),
        };
        if !matches!(piece, Piece::Chunk(_)) {
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
        if data.trim() == "[DONE]" {
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
            _ => Piece::Failed(ApiError::new(
                Code::UpstreamError,
                "the upstream sent a chunk that is not a JSON object",
            )),
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

pub fn sse_event(name: &str, json: &str) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {json}\n\n"))
}

pub fn done() -> Bytes {
    Bytes::from_static(b"data: [DONE]\n\n")
}

pub fn error_event(e: &ApiError) -> Bytes {
    sse_event("error", &e.body_json())
}

/// Whether a chunk is the usage-only chunk of `stream_options.include_usage`.
pub fn is_usage_only(chunk: &Map<String, Value>) -> bool {
    chunk.get("usage").is_some_and(Value::is_object)
        && chunk
            .get("choices")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty)
}

pub fn sse_response(body: Body) -> Response {
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
pub fn request_usage(body: &mut Map<String, Value>) -> bool {
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
}

pub type FinishFuture = Pin<Box<dyn std::future::Future<Output = Result<(), ApiError>> + Send>>;
pub type Finish = Box<dyn FnOnce(Outcome) -> FinishFuture + Send>;

/// Per-request additions to a relayed stream.
#[derive(Default)]
pub struct Hooks {
    /// A top-level field added to every chunk (`conversation_id` on /c1).
    pub field: Option<(String, Value)>,
    /// Runs before `[DONE]` is sent (its error replaces `[DONE]` with `event: error`), or,
    /// with `completed: false`, when the stream fails or the caller leaves.
    pub finish: Option<Finish>,
}

impl Hooks {
    pub fn chunk_bytes(&self, chunk: &mut Map<String, Value>) -> Option<Bytes> {
        if let Some((k, v)) = &self.field {
            chunk.insert(k.clone(), v.clone());
        }
        serde_json::to_string(chunk).ok().map(|s| sse_data(&s))
    }

    /// Settles an unfinished stream without blocking the caller (`RelayState` calls it on drop).
    pub fn abandon(&mut self, usage: Usage) {
        if let Some(f) = self.finish.take() {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(f(Outcome {
                    usage,
                    message: Value::Null,
                    completed: false,
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
            })
            .await
            {
                return error_event(&e);
            }
        }
        done()
    }
}

/// Plain relay (no server-side tools): waits for the first chunk, then forwards each chunk as
/// it arrives.
pub async fn relay(
    state: &crate::state::AppState,
    model: &Model,
    mut body: Map<String, Value>,
    deadline: Instant,
    mut hooks: Hooks,
) -> Result<Response, ApiError> {
    let wants_usage = request_usage(&mut body);
    let resp = match upstream::send(state, model, &body).await {
        Ok(r) => r,
        Err(e) => {
            hooks.abandon(Usage::default());
            return Err(e);
        }
    };
    let mut events = UpstreamEvents::new(resp, deadline, state, model, &body);
    let first = match events.next().await {
        Piece::Chunk(c) => c,
        Piece::Done => {
            hooks.abandon(Usage::default());
            return Err(ApiError::new(
                Code::UpstreamError,
                "the upstream stream ended before its first chunk",
            ));
        }
        Piece::Failed(e) => {
            hooks.abandon(Usage::default());
            return Err(e);
        }
    };
    let mut st = RelayState {
        events,
        wants_usage,
        usage: Usage::default(),
        asm: Assembler::default(),
        hooks,
        ended: false,
    };
    let first_bytes = st.forward(first);
    let body =
        futures_util::stream::unfold((st, first_bytes), |(mut st, mut pending)| async move {
            if st.ended {
                return None;
            }
            // Events the upstream already delivered go out in one write: each is still parsed,
            // checked and re-serialised on its own, but one body frame (and one syscall) carries
            // them all instead of one per event. Only the first piece of a frame is waited for;
            // the rest are taken while they are ready (after at most RELAY_YIELDS yields
            // each), up to RELAY_COALESCE_BYTES, so latency grows by microseconds at most.
            let mut out = BytesMut::new();
            if let Some(b) = pending.take() {
                // The first chunk goes out at once: TTFT never waits for a yield.
                return Some((Ok::<Bytes, std::io::Error>(b), (st, None)));
            }
            loop {
                let piece = if out.is_empty() {
                    st.events.next().await
                } else if out.len() >= RELAY_COALESCE_BYTES {
                    break;
                } else {
                    match st.events.next().now_or_never() {
                        Some(p) => p,
                        None => {
                            // hyper hands a body over one frame per run of its connection task
                            // (measured: the next frame is there after the second yield): let
                            // it run a few times before deciding nothing else has arrived.
                            let mut got = None;
                            for _ in 0..RELAY_YIELDS {
                                tokio::task::yield_now().await;
                                if let Some(p) = st.events.next().now_or_never() {
                                    got = Some(p);
                                    break;
                                }
                            }
                            match got {
                                Some(p) => p,
                                None => break,
                            }
                        }
                    }
                };
                match piece {
                    Piece::Chunk(c) => {
                        if let Some(b) = st.forward(c) {
                            out.extend_from_slice(&b);
                        }
                    }
                    Piece::Done => {
                        st.ended = true;
                        let message = st.asm.message();
                        let end = st.hooks.complete(st.usage, message).await;
                        out.extend_from_slice(&end);
                        break;
                    }
                    Piece::Failed(e) => {
                        tracing::warn!(
                            code = e.code.as_str(),
                            "stream failed after the 200 header"
                        );
                        st.ended = true;
                        st.hooks.abandon(st.usage);
                        out.extend_from_slice(&error_event(&e));
                        break;
                    }
                }
            }
            Some((Ok::<Bytes, std::io::Error>(out.freeze()), (st, None)))
        });
    Ok(sse_response(Body::from_stream(body)))
}

/// At most this many bytes of already-arrived events are joined into one body frame.
pub const RELAY_COALESCE_BYTES: usize = 64 * 1024;

/// Yields to the upstream connection task before a frame is sent as it is.
const RELAY_YIELDS: usize = 3;

struct RelayState {
    events: UpstreamEvents,
    wants_usage: bool,
    usage: Usage,
    /// What the caller has received so far, for the /c1 store.
    asm: Assembler,
    hooks: Hooks,
    ended: bool,
}

impl RelayState {
    fn forward(&mut self, mut chunk: Map<String, Value>) -> Option<Bytes> {
        if let Some(u) = chunk.get("usage").filter(|u| u.is_object()) {
            self.usage = Usage::from_json(Some(u));
        }
        if is_usage_only(&chunk) && !self.wants_usage {
            return None;
        }
        self.asm.add(&chunk);
        self.hooks.chunk_bytes(&mut chunk)
    }
}

impl Drop for RelayState {
    fn drop(&mut self) {
        // A caller that went away still consumed what the upstream reported so far.
        self.hooks.abandon(self.usage);
    }
}
