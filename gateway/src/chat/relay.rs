//! Plain SSE relay (no server-side tools): upstream chunks forwarded as they arrive.

use axum::body::{Body, Bytes};
use axum::response::Response;
use futures_util::StreamExt;
use serde_json::{Map, Value};
use tokio::time::Instant;

use crate::config::Model;
use crate::error::ApiError;
use crate::upstream::sse::{
    error_event, is_usage_only, request_usage, sse_response, Assembler, Hooks, Piece,
    UpstreamEvents,
};
use crate::upstream::{self, Usage};

/// Plain relay (no server-side tools): waits for the first chunk, then forwards each chunk as
/// it arrives.
pub(crate) async fn relay(
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
            return Err(upstream::stream_failure(
                upstream::StreamFailure::EndedBeforeFirstChunk,
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
        asm: hooks.keep_message.then(Assembler::default),
        hooks,
        ended: false,
        streamed_bytes: 0,
    };
    let first_bytes = st.forward(first);
    let rest = futures_util::stream::unfold(st, |mut st| async move {
        if st.ended {
            return None;
        }
        loop {
            match st.events.next().await {
                Piece::Chunk(c) => {
                    if let Some(b) = st.forward(c) {
                        return Some((Ok::<Bytes, std::io::Error>(b), st));
                    }
                }
                Piece::Done => {
                    st.ended = true;
                    let message = st.asm.as_ref().map_or(Value::Null, Assembler::message);
                    let end = st.hooks.complete(st.usage, message).await;
                    return Some((Ok(end), st));
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
                    st.ended = true;
                    st.hooks.abandon(st.usage);
                    return Some((Ok(error_event(&e)), st));
                }
            }
        }
    });
    let head = futures_util::stream::iter(first_bytes.map(Ok));
    Ok(sse_response(Body::from_stream(head.chain(rest))))
}

struct RelayState {
    events: UpstreamEvents,
    wants_usage: bool,
    usage: Usage,
    /// What the caller has received so far, for the /c1 store (`None` on /v1).
    asm: Option<Assembler>,
    hooks: Hooks,
    ended: bool,
    /// Content bytes forwarded (a counter, not a copy): an abandoned stream is charged them.
    streamed_bytes: u64,
}

impl RelayState {
    fn forward(&mut self, mut chunk: Map<String, Value>) -> Option<Bytes> {
        if let Some(u) = chunk.get("usage").filter(|u| u.is_object()) {
            self.usage = Usage::from_json(Some(u));
        }
        if is_usage_only(&chunk) && !self.wants_usage {
            return None;
        }
        let delta = chunk
            .get("choices")
            .and_then(|c| c.pointer("/0/delta"))
            .map_or(0, |d| {
                let text = d.get("content").and_then(Value::as_str).map_or(0, str::len);
                let args = d.get("tool_calls").map_or(0, |t| t.to_string().len());
                text + args
            });
        self.streamed_bytes = self.streamed_bytes.saturating_add(delta as u64);
        if let Some(asm) = &mut self.asm {
            asm.add(&chunk);
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
