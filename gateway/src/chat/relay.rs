//! Plain SSE relay (no server-side tools): upstream chunks forwarded as they arrive, the ones
//! that arrived together in one write. On /v1 an ordinary chunk is relayed as the upstream's
//! bytes with `model` spliced (`upstream/sse_splice.rs`); /c1 (which adds `conversation_id`
//! and stores the message) and anything unusual take the `Value` path.

use crate::checks::ChatBody;
use axum::body::{Body, Bytes};
use axum::response::Response;
use bytes::BytesMut;
use futures_util::{FutureExt, StreamExt};
use serde_json::{Map, Value};
use tokio::time::Instant;

use crate::config::Model;
use crate::error::ApiError;
use crate::upstream::sse::{
    error_event, is_usage_only, request_usage, sse_response, Assembler, Hooks, Relayed,
    UpstreamEvents,
};
use crate::upstream::sse_splice::RawChunk;
use crate::upstream::{self, Usage};

/// Plain relay (no server-side tools): waits for the first chunk, sends it with the events
/// already behind it, then forwards the rest as they arrive, joining the events already there
/// into one frame (`RELAY_COALESCE_BYTES`).
pub(crate) async fn relay(
    state: &crate::state::AppState,
    model: &Model,
    mut body: ChatBody,
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
    // Bytes only where nothing but `model` changes: no field added, no copy kept.
    if hooks.field.is_none() && !hooks.keep_message {
        events = events.relay_as_bytes();
    }
    // A usage report with empty `choices` is no answer yet: the 200 waits for a chunk with a
    // choice (a stream that ends without one fails in `UpstreamEvents`, before the 200). Only
    // the last such report is kept (usage is cumulative), so a flood of them holds no memory.
    let mut early: Option<Chunk> = None;
    // The kept report's memory share (the replaced ones' shares are given back).
    let mut early_share = events.take_share();
    let first = loop {
        let early_usage = || early.as_ref().and_then(Chunk::usage).unwrap_or_default();
        let chunk = match events.next_relayed().await {
            Relayed::Raw(c) => Chunk::Raw(c),
            Relayed::Chunk(c) => Chunk::Value(c),
            Relayed::Done => {
                hooks.abandon(early_usage());
                return Err(upstream::stream_failure(
                    upstream::StreamFailure::EndedBeforeFirstChunk,
                ));
            }
            Relayed::Failed(e) => {
                hooks.abandon(early_usage());
                return Err(e);
            }
        };
        if chunk.usage_only() {
            early = Some(chunk);
            early_share = events.take_share();
        } else {
            break chunk;
        }
    };
    let mut st = RelayState {
        events,
        alias_json: serde_json::to_string(&model.alias).unwrap_or_else(|_| "\"\"".into()),
        wants_usage,
        usage: Usage::default(),
        asm: hooks.keep_message.then(Assembler::default),
        asm_hold: state.answer_memory.hold(),
        refused: None,
        hooks,
        ended: false,
        streamed_bytes: 0,
    };
    let mut first_bytes = BytesMut::with_capacity(FRAME_CAPACITY);
    if let Some(c) = early {
        st.forward(c, &mut first_bytes);
    }
    st.forward(first, &mut first_bytes);
    // The kept report goes out in the first frame: its share goes with the frame's.
    st.events.give_back_share(&mut early_share);
    let coalesce = state.config.reads.relay_coalesce_bytes;
    // The first frame takes what has already arrived too (at most RELAY_YIELDS scheduler
    // turns per event, never a network wait), so that a short answer that came in one go
    // leaves in one write with the header, as nginx sends what it read.
    let first_frame = if first_bytes.is_empty() {
        None
    } else {
        Some(st.next_frame(first_bytes, coalesce).await)
    };
    let rest = futures_util::stream::unfold(st, move |mut st| async move {
        if st.ended {
            return None;
        }
        let frame = st
            .next_frame(BytesMut::with_capacity(FRAME_CAPACITY), coalesce)
            .await;
        Some((Ok::<Bytes, std::io::Error>(frame), st))
    });
    let head = futures_util::stream::iter(first_frame.map(Ok));
    Ok(sse_response(Body::from_stream(head.chain(rest))))
}

/// Yields to the upstream connection task before a frame is sent as it is: hyper's client
/// hands a body over one frame per run of its connection task (measured: the next event is
/// there after the second yield), so a frame waits at most this many scheduler turns, never
/// for the network.
const RELAY_YIELDS: usize = 3;

/// Initial capacity of one body frame: a few ordinary chunks (about 250 bytes each) fit
/// without regrowing; a bigger frame grows as needed (up to `RELAY_COALESCE_BYTES` and the
/// last event).
const FRAME_CAPACITY: usize = 1024;

/// A chunk the relay forwards: the upstream's bytes, or a parsed map.
enum Chunk {
    Raw(RawChunk),
    Value(Map<String, Value>),
}

impl Chunk {
    fn usage_only(&self) -> bool {
        match self {
            Chunk::Raw(c) => c.usage_only,
            Chunk::Value(c) => is_usage_only(c),
        }
    }

    /// The usage it reports (`usage` when an object).
    fn usage(&self) -> Option<Usage> {
        match self {
            Chunk::Raw(c) => c.usage,
            Chunk::Value(c) => c
                .get("usage")
                .filter(|u| u.is_object())
                .map(|u| Usage::from_json(Some(u))),
        }
    }
}

struct RelayState {
    events: UpstreamEvents,
    /// The alias as a JSON string, spliced into raw chunks in place of `model`.
    alias_json: String,
    wants_usage: bool,
    usage: Usage,
    /// What the caller has received so far, for the /c1 store (`None` on /v1).
    asm: Option<Assembler>,
    /// What the assembled message holds of the answer budget (/c1 keeps the whole answer).
    asm_hold: crate::checks::memory::MemoryHold,
    /// The answer budget refused the assembled message's growth: the stream ends with it.
    refused: Option<ApiError>,
    hooks: Hooks,
    ended: bool,
    /// Content bytes forwarded (a counter, not a copy): an abandoned stream is charged them.
    streamed_bytes: u64,
}

impl RelayState {
    /// The next body frame: `out` as given, or the next event (waited for) when it is empty,
    /// then every event that has already arrived, joined, up to `coalesce` bytes. Each event
    /// is still checked, paid for and alias-swapped on its own; only the write is shared (one syscall instead of one per
    /// event, as nginx writes what it read). Ends with `[DONE]` / `event: error` when the
    /// stream does.
    async fn next_frame(&mut self, mut out: BytesMut, coalesce: usize) -> Bytes {
        loop {
            // A refusal of the assembled message's growth ends the stream after the chunk
            // that caused it (that chunk is relayed, as the caller's copy is not the store's).
            let piece = if let Some(e) = self.refused.take() {
                Relayed::Failed(e)
            } else if out.is_empty() {
                self.events.next_relayed().await
            } else if out.len() >= coalesce {
                break;
            } else {
                match self.ready_piece().await {
                    Some(p) => p,
                    None => break,
                }
            };
            match piece {
                Relayed::Raw(c) => self.forward(Chunk::Raw(c), &mut out),
                Relayed::Chunk(c) => self.forward(Chunk::Value(c), &mut out),
                Relayed::Done => {
                    self.ended = true;
                    let message = self.asm.as_ref().map_or(Value::Null, Assembler::message);
                    let end = self.hooks.complete(self.usage, message).await;
                    out.extend_from_slice(&end);
                    break;
                }
                Relayed::Failed(e) => {
                    // After the 200 the edge has logged its line already: a mid-stream
                    // failure's cause is logged here, the one other place.
                    let cause = e.cause.clone().map(crate::error::ErrorCause);
                    tracing::warn!(
                        code = e.code.as_str(),
                        cause = cause.as_ref().map(ToString::to_string),
                        "stream failed after the 200 header"
                    );
                    self.ended = true;
                    self.hooks.abandon(self.usage);
                    out.extend_from_slice(&error_event(&e));
                    break;
                }
            }
        }
        // The frame carries the memory shares of the chunks in it until hyper has written it.
        self.events.take_share().attach(out.freeze())
    }

    /// The next piece if it is ready now or after at most [`RELAY_YIELDS`] yields; `None`
    /// when nothing more has arrived. `UpstreamEvents::next` is cancel-safe (its only await
    /// is the body's next network chunk, taken whole), so a poll that finds nothing loses
    /// nothing.
    async fn ready_piece(&mut self) -> Option<Relayed> {
        for turn in 0..=RELAY_YIELDS {
            if turn > 0 {
                tokio::task::yield_now().await;
            }
            if let Some(p) = self.events.next_relayed().now_or_never() {
                return Some(p);
            }
        }
        None
    }

    /// Appends one chunk's event to `out` (nothing for a usage report the caller did not
    /// ask for), after counting its usage and content.
    fn forward(&mut self, chunk: Chunk, out: &mut BytesMut) {
        match chunk {
            Chunk::Raw(c) => {
                if let Some(u) = c.usage {
                    self.usage = u;
                }
                if c.usage_only && !self.wants_usage {
                    return;
                }
                self.streamed_bytes = self.streamed_bytes.saturating_add(c.delta_bytes);
                c.write_sse(&self.alias_json, out);
            }
            Chunk::Value(mut chunk) => {
                if let Some(u) = chunk.get("usage").filter(|u| u.is_object()) {
                    self.usage = Usage::from_json(Some(u));
                }
                if is_usage_only(&chunk) && !self.wants_usage {
                    return;
                }
                self.streamed_bytes = self
                    .streamed_bytes
                    .saturating_add(upstream::sse::delta_bytes(&chunk));
                if let Some(asm) = &mut self.asm {
                    if let Err(e) = asm.add_held(&chunk, &mut self.asm_hold) {
                        self.refused = Some(e);
                    }
                }
                if let Some(b) = self.hooks.chunk_bytes(&mut chunk) {
                    out.extend_from_slice(&b);
                }
            }
        }
    }
}

impl Drop for RelayState {
    fn drop(&mut self) {
        // A caller that went away is charged what was sent and what it received so far
        // (no-op when the stream already ended).
        self.hooks.caller_left(self.usage, self.streamed_bytes);
    }
}
