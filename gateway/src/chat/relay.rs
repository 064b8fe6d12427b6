//! Plain SSE relay (no server-side tools): upstream chunks forwarded as they arrive, the ones
//! that arrived together in one write.

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
    error_event, is_usage_only, request_usage, sse_response, Assembler, Hooks, Piece,
    UpstreamEvents,
};
use crate::upstream::{self, Usage};

/// Plain relay (no server-side tools): waits for the first chunk, sends it, then forwards the
/// rest as they arrive, joining the events already there into one frame
/// (`RELAY_COALESCE_BYTES`).
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
    // A usage report with empty `choices` is no answer yet: the 200 waits for a chunk with a
    // choice (a stream that ends without one fails in `UpstreamEvents`, before the 200). Only
    // the last such report is kept (usage is cumulative), so a flood of them holds no memory.
    let mut early: Option<Map<String, Value>> = None;
    // The kept report's memory share (the replaced ones' shares are given back).
    let mut early_share = events.take_share();
    let first = loop {
        let early_usage = || {
            Usage::from_json(
                early
                    .as_ref()
                    .and_then(|c| c.get("usage"))
                    .filter(|u| u.is_object()),
            )
        };
        match events.next().await {
            Piece::Chunk(c) if is_usage_only(&c) => {
                early = Some(c);
                early_share = events.take_share();
            }
            Piece::Chunk(c) => break c,
            Piece::Done => {
                hooks.abandon(early_usage());
                return Err(upstream::stream_failure(
                    upstream::StreamFailure::EndedBeforeFirstChunk,
                ));
            }
            Piece::Failed(e) => {
                hooks.abandon(early_usage());
                return Err(e);
            }
        }
    };
    let mut st = RelayState {
        events,
        wants_usage,
        usage: Usage::default(),
        asm: hooks.keep_message.then(Assembler::default),
        asm_hold: state.answer_memory.hold(),
        refused: None,
        hooks,
        ended: false,
        streamed_bytes: 0,
    };
    let mut first_bytes = early.and_then(|c| st.forward(c)).map(BytesMut::from);
    if let Some(b) = st.forward(first) {
        first_bytes
            .get_or_insert_with(BytesMut::new)
            .extend_from_slice(&b);
    }
    let mut share = st.events.take_share();
    share.absorb(&mut early_share);
    let first_bytes = first_bytes.map(|b| share.attach(b.freeze()));
    let coalesce = state.config.reads.relay_coalesce_bytes;
    let rest = futures_util::stream::unfold(st, move |mut st| async move {
        if st.ended {
            return None;
        }
        let frame = st.next_frame(coalesce).await;
        Some((Ok::<Bytes, std::io::Error>(frame), st))
    });
    // The first chunk goes out alone and at once: TTFT never waits for a yield.
    let head = futures_util::stream::iter(first_bytes.map(Ok));
    Ok(sse_response(Body::from_stream(head.chain(rest))))
}

/// Yields to the upstream connection task before a frame is sent as it is: hyper's client
/// hands a body over one frame per run of its connection task (measured: the next event is
/// there after the second yield), so a frame waits at most this many scheduler turns, never
/// for the network.
const RELAY_YIELDS: usize = 3;

struct RelayState {
    events: UpstreamEvents,
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
    /// The next body frame: the next event (waited for), then every event that has already
    /// arrived, joined, up to `coalesce` bytes. Each event is still parsed, checked and
    /// alias-swapped on its own; only the write is shared (one syscall instead of one per
    /// event, as nginx writes what it read). Ends with `[DONE]` / `event: error` when the
    /// stream does.
    async fn next_frame(&mut self, coalesce: usize) -> Bytes {
        let mut out = BytesMut::new();
        loop {
            let piece = if out.is_empty() {
                self.events.next().await
            } else if out.len() >= coalesce {
                break;
            } else {
                match self.ready_piece().await {
                    Some(p) => p,
                    None => break,
                }
            };
            let piece = match piece {
                Piece::Chunk(c) => {
                    if let Some(b) = self.forward(c) {
                        out.extend_from_slice(&b);
                    }
                    match self.refused.take() {
                        Some(e) => Piece::Failed(e),
                        None => continue,
                    }
                }
                other => other,
            };
            match piece {
                Piece::Chunk(_) => {}
                Piece::Done => {
                    self.ended = true;
                    let message = self.asm.as_ref().map_or(Value::Null, Assembler::message);
                    let end = self.hooks.complete(self.usage, message).await;
                    out.extend_from_slice(&end);
                    break;
                }
                Piece::Failed(e) => {
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
    async fn ready_piece(&mut self) -> Option<Piece> {
        for turn in 0..=RELAY_YIELDS {
            if turn > 0 {
                tokio::task::yield_now().await;
            }
            if let Some(p) = self.events.next().now_or_never() {
                return Some(p);
            }
        }
        None
    }

    fn forward(&mut self, mut chunk: Map<String, Value>) -> Option<Bytes> {
        if let Some(u) = chunk.get("usage").filter(|u| u.is_object()) {
            self.usage = Usage::from_json(Some(u));
        }
        if is_usage_only(&chunk) && !self.wants_usage {
            return None;
        }
        self.streamed_bytes = self
            .streamed_bytes
            .saturating_add(upstream::sse::delta_bytes(&chunk));
        if let Some(asm) = &mut self.asm {
            if let Err(e) = asm.add_held(&chunk, &mut self.asm_hold) {
                self.refused = Some(e);
            }
        }
        self.hooks.chunk_bytes(&mut chunk)
    }
}

impl Drop for RelayState {
    fn drop(&mut self) {
        // A caller that went away is charged what was sent and what it received so far
        // (no-op when the stream already ended).
        self.hooks.caller_left(self.usage, self.streamed_bytes);
    }
}
