//! The streaming driver of the tool loop: rounds streamed, server-side calls held back, the
//! final answer relayed live.

use super::*;
use crate::checks::memory::MemoryHold;
use crate::checks::ChatBody;
use crate::upstream::sse::Assembler;

/// Removes the tool-call deltas with the given indices from a chunk.
fn strip_deltas(chunk: &mut Map<String, Value>, indices: &[u64]) {
    if indices.is_empty() {
        return;
    }
    let delta = chunk
        .get_mut("choices")
        .and_then(|c| c.pointer_mut("/0/delta/tool_calls"));
    if let Some(Value::Array(calls)) = delta {
        calls.retain(|tc| {
            let i = tc.get("index").and_then(Value::as_u64).unwrap_or(0);
            !indices.contains(&i)
        });
    }
}

fn has_content(chunk: &Map<String, Value>) -> bool {
    chunk
        .get("choices")
        .and_then(|c| c.get(0))
        .and_then(|c| c.pointer("/delta/content"))
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty())
}

fn has_tool_calls(chunk: &Map<String, Value>) -> bool {
    chunk
        .get("choices")
        .and_then(|c| c.get(0))
        .and_then(|c| c.pointer("/delta/tool_calls"))
        .is_some_and(|t| t.as_array().is_some_and(|a| !a.is_empty()))
}

/// The one chunk that carries the fallback text when the final answer came back empty; it
/// repeats the `id` and `created` of the stream's chunks (`last`), as every chunk must.
fn fallback_chunk(
    model: &Model,
    text: String,
    last: Option<&Map<String, Value>>,
) -> Map<String, Value> {
    let delta = json!({"index": 0, "delta": {"content": text}, "finish_reason": "stop"});
    let mut c = Map::new();
    for key in ["id", "created"] {
        if let Some(v) = last.and_then(|l| l.get(key)) {
            c.insert(key.into(), v.clone());
        }
    }
    c.insert("object".into(), Value::from("chat.completion.chunk"));
    c.insert("model".into(), Value::String(model.alias.clone()));
    c.insert("choices".into(), Value::Array(vec![delta]));
    c
}

/// Where the streaming driver writes: the 200 header is released by the first byte, and a
/// failure before it travels back as an ordinary error response.
struct Out {
    /// A caller that stops reading cannot hold the upstream (or a conversation lock) past it.
    deadline: Instant,
    tx: mpsc::Sender<Bytes>,
    start: Option<oneshot::Sender<Result<(), ApiError>>>,
    hooks: sse::Hooks,
    /// Content bytes handed to the caller (a counter, not a copy): a caller that hangs up
    /// is charged them, as in the plain relay (issue 15 item 3).
    streamed_bytes: u64,
}

impl Out {
    async fn emit(&mut self, b: Bytes) -> bool {
        if let Some(s) = self.start.take() {
            if s.send(Ok(())).is_err() {
                return false;
            }
        }
        matches!(
            tokio::time::timeout_at(self.deadline, self.tx.send(b)).await,
            Ok(Ok(()))
        )
    }

    async fn fail(&mut self, e: ApiError) {
        match self.start.take() {
            Some(s) => {
                let _ = s.send(Err(e));
            }
            None => {
                let _ = self.tx.send(sse::error_event(&e)).await;
            }
        }
    }

    async fn chunk(&mut self, c: &Map<String, Value>) -> bool {
        self.chunk_held(c, MemoryHold::none()).await
    }

    /// [`Self::chunk`] whose bytes carry `share` (the chunk's part of the answer budget) until
    /// they are written: the channel to the caller holds up to 64 frames.
    async fn chunk_held(&mut self, c: &Map<String, Value>, share: MemoryHold) -> bool {
        let mut c = c.clone();
        match self.hooks.chunk_bytes(&mut c) {
            Some(b) => {
                let sent = self.emit(share.attach(b)).await;
                if sent {
                    self.streamed_bytes = self.streamed_bytes.saturating_add(sse::delta_bytes(&c));
                }
                sent
            }
            None => true,
        }
    }
}

/// How a streamed round went.
enum Round {
    /// The assembled message, and the chunks not yet sent to the caller.
    Complete {
        message: Value,
        buffered: Vec<Map<String, Value>>,
        /// What `buffered` and `last` hold of the answer budget.
        kept: MemoryHold,
        last: Option<Map<String, Value>>,
        /// The message's text is not whole (see [`Assembler::capped`]).
        content_cut: bool,
    },
    /// Failure already reported, or the caller left.
    Over,
}

/// Streaming with server-side tools: tool rounds run first; the final answer is relayed as
/// it arrives, preceded by the named event when the loop had to synthesise.
pub(crate) async fn stream(
    state: AppState,
    model: Model,
    body: ChatBody,
    deadline: Instant,
    hooks: sse::Hooks,
    budget: super::CallBudget,
) -> Result<Response, ApiError> {
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let (start_tx, start_rx) = oneshot::channel();
    tokio::spawn(async move {
        let closed = tx.clone();
        let mut out = Out {
            deadline,
            tx,
            start: Some(start_tx),
            hooks,
            streamed_bytes: 0,
        };
        let usage = std::sync::Arc::new(parking_lot::Mutex::new(Usage::default()));
        let seen = usage.clone();
        let left = tokio::select! {
            // The caller went away: dropping the driver drops the upstream request with it.
            _ = closed.closed() => true,
            _ = drive(&state, &model, body, budget, deadline, &mut out, &seen) => false,
        };
        // Settles a reservation when the stream did not complete (no-op after completion).
        let used = *usage.lock();
        if left {
            out.hooks.caller_left(used, out.streamed_bytes);
        } else {
            out.hooks.abandon(used);
        }
    });
    match start_rx.await {
        Ok(Ok(())) => {
            let body = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv()
                    .await
                    .map(|b| (Ok::<Bytes, std::io::Error>(b), rx))
            });
            Ok(sse::sse_response(Body::from_stream(body)))
        }
        Ok(Err(e)) => Err(e),
        Err(_) => Err(ApiError::new(
            Code::InternalError,
            "the stream driver stopped before answering",
        )),
    }
}

async fn drive(
    state: &AppState,
    model: &Model,
    mut body: ChatBody,
    budget: super::CallBudget,
    deadline: Instant,
    out: &mut Out,
    seen: &parking_lot::Mutex<Usage>,
) {
    let wants_usage = sse::request_usage(&mut body);
    let mut lp = Loop::new(state, body, budget);
    let mut last_chunk: Option<Map<String, Value>> = None;
    let final_message;
    loop {
        let held = match lp.reserve(None).await {
            Ok(h) => h,
            Err(e) => return out.fail(e).await,
        };
        let before = lp.usage.total_tokens;
        let round = stream_round(state, model, &lp.body, deadline, out, &mut lp.usage, true).await;
        lp.settle_call(held, lp.usage.total_tokens - before).await;
        *seen.lock() = lp.unsettled();
        let Round::Complete {
            message,
            buffered,
            kept,
            last,
            content_cut,
        } = round
        else {
            return;
        };
        // The buffered chunks stay paid for (`kept`, to the end of this round) until they were
        // sent (or dropped).
        // A tool round's text goes upstream again with the tool results: only whole.
        if content_cut && !lp.server_indices(&message).is_empty() {
            let e = upstream::stream_failure(upstream::StreamFailure::RoundTooLarge);
            return out.fail(e).await;
        }
        if last.is_some() {
            last_chunk = last;
        }
        match lp.after_round(&message, kept.bytes()).await {
            Next::Again => continue,
            Next::Refused(e) => return out.fail(e).await,
            Next::Final => {
                // Not relayed: the whole round is here. Relayed: only the held tool-call
                // deltas are (calls to the caller's own tools after some content). Deltas of
                // server-side calls never reach the caller.
                let server = lp.server_indices(&message);
                for mut c in buffered {
                    strip_deltas(&mut c, &server);
                    if !out.chunk(&c).await {
                        return;
                    }
                }
                let mut finished = message.clone();
                lp.finish_message(&mut finished);
                if finished.get("content") != message.get("content") {
                    let text = lp.fallback_text();
                    out.chunk(&fallback_chunk(model, text, last_chunk.as_ref()))
                        .await;
                }
                final_message = finished;
                break;
            }
            Next::Synthesise(code) => {
                let payload = lp.event_payload(code);
                if !out.emit(sse::sse_event(event_name(code), &payload)).await {
                    return;
                }
                let synth = match lp.synthesis_body() {
                    Ok(b) => b,
                    Err(e) => return out.fail(e).await,
                };
                let held = match lp.reserve(Some(&synth)).await {
                    Ok(h) => h,
                    Err(e) => return out.fail(e).await,
                };
                let before = lp.usage.total_tokens;
                let round =
                    stream_round(state, model, &synth, deadline, out, &mut lp.usage, false).await;
                lp.settle_call(held, lp.usage.total_tokens - before).await;
                *seen.lock() = lp.unsettled();
                let Round::Complete { message, last, .. } = round else {
                    return;
                };
                if last.is_some() {
                    last_chunk = last;
                }
                let (finished, fallback) = lp.synthesised(Some(&message));
                if let Some(text) = fallback {
                    out.chunk(&fallback_chunk(model, text, last_chunk.as_ref()))
                        .await;
                }
                final_message = finished;
                break;
            }
        }
    }
    if wants_usage {
        let mut u = last_chunk.unwrap_or_default();
        u.insert("choices".into(), Value::Array(Vec::new()));
        u.insert("usage".into(), lp.usage.to_json());
        out.chunk(&u).await;
    }
    // The request's reservation settles what the per-call reservations did not.
    let end = out.hooks.complete(lp.unsettled(), final_message).await;
    out.emit(end).await;
}

/// Runs one streamed upstream call. With `hold_tools`, deltas are held back until the round
/// shows content (then relayed live) or tool calls (then buffered whole).
async fn stream_round(
    state: &AppState,
    model: &Model,
    body: &ChatBody,
    deadline: Instant,
    out: &mut Out,
    usage: &mut Usage,
    hold_tools: bool,
) -> Round {
    let sent = tokio::time::timeout_at(deadline, upstream::send(state, model, body)).await;
    let resp = match sent {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            out.fail(e).await;
            return Round::Over;
        }
        Err(_) => {
            out.fail(upstream::answer_timeout()).await;
            return Round::Over;
        }
    };
    let mut events = UpstreamEvents::new(resp, deadline, state, model, body);
    // /c1 stores the whole message; /v1 keeps the text only as far as a tool round needs it.
    let mut asm = if out.hooks.keep_message {
        Assembler::default()
    } else {
        Assembler::capped(state.config.reads.upstream_max_body_bytes)
    };
    let mut live = !hold_tools;
    let mut tool_round = false;
    let mut buffered = Vec::new();
    // `last` keeps a chunk's fields but its choices (what the usage and fallback chunks copy).
    let mut last: Option<Map<String, Value>> = None;
    let mut kept = state.answer_memory.hold();
    let mut last_share = MemoryHold::none();
    // Some servers repeat cumulative usage on every chunk: the round's last report counts.
    let mut round_usage = Usage::default();
    loop {
        match events.next().await {
            Piece::Chunk(c) => {
                let mut share = events.take_share();
                if let Some(u) = c.get("usage").filter(|u| u.is_object()) {
                    round_usage = Usage::from_json(Some(u));
                }
                if sse::is_usage_only(&c) {
                    last = Some(c);
                    last_share = share;
                    continue;
                }
                if let Err(e) = asm.add_held(&c, &mut kept) {
                    out.fail(e).await;
                    return Round::Over;
                }
                if !live && !tool_round {
                    if has_tool_calls(&c) {
                        tool_round = true;
                    } else if has_content(&c) {
                        live = true;
                        for b in buffered.drain(..) {
                            if !out.chunk(&b).await {
                                return Round::Over;
                            }
                        }
                    }
                }
                let held = has_tool_calls(&c)
                    || c.get("choices")
                        .and_then(|x| x.pointer("/0/finish_reason"))
                        .and_then(Value::as_str)
                        == Some("tool_calls");
                // Tool-call deltas are never relayed live, not even in the synthesis round
                // (`hold_tools` false): a model that calls a server-side tool there anyway
                // must not leak it (SPEC §4); that round's buffer is dropped.
                let mut slim = c.clone();
                slim.remove("choices");
                let slim_cost = crate::checks::lazy::value_cost(&Value::Object(slim.clone()));
                let mut slim_share = state.answer_memory.hold();
                if let Err(r) = slim_share.grow(usize::try_from(slim_cost).unwrap_or(usize::MAX)) {
                    out.fail(upstream::answer_memory_refusal(r, slim_share.budget_max()))
                        .await;
                    return Round::Over;
                }
                last = Some(slim);
                last_share = slim_share;
                if live && !held {
                    if !out.chunk_held(&c, share).await {
                        return Round::Over;
                    }
                } else {
                    kept.absorb(&mut share);
                    buffered.push(c);
                }
            }
            Piece::Done => break,
            Piece::Failed(e) => {
                usage.add(round_usage);
                out.fail(e).await;
                return Round::Over;
            }
        }
    }
    usage.add(round_usage);
    kept.absorb(&mut last_share);
    Round::Complete {
        message: asm.message(),
        buffered,
        kept,
        last,
        content_cut: asm.content_cut,
    }
}
