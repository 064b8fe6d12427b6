//! The server-side tool loop (SPEC §4), non-streaming and streaming.
//!
//! Each round offers the configured server-side tools (plus the caller's own) to the model.
//! Server-side calls run here and the model is called again; calls to the caller's tools are
//! returned to the caller untouched. The loop ends with a final answer, or with ONE synthesis
//! call (`tools: []`) when MAX_TOOL_ITERATIONS rounds have run (`tool_loop_max_iterations`) or
//! the same call signature came twice in a row (`tool_loop_anti_loop_synthesised`).
//! Upstream calls: rounds + (1 if synthesised); at most max_tool_iterations + 1.

use axum::body::{Body, Bytes};
use axum::response::Response;
use serde_json::{json, Map, Value};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::catalog::Code;
use crate::config::Model;
use crate::error::ApiError;
use crate::state::AppState;
use crate::stream::{self, Piece, UpstreamEvents};
use crate::tools;
use crate::upstream::{self, Usage};

/// One tool call as the model made it.
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

/// Name + canonical arguments of every call of a round: equal signatures in consecutive
/// rounds mean the model is looping.
pub fn signature(calls: &[Call]) -> Vec<(String, String)> {
    calls
        .iter()
        .map(|c| {
            let canon = serde_json::from_str::<Value>(&c.arguments)
                .map(|v| canonical(&v))
                .unwrap_or_else(|_| c.arguments.trim().to_owned());
            (c.name.clone(), canon)
        })
        .collect()
}

/// JSON with object keys sorted at every level, whatever map order serde_json was built with.
pub fn canonical(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let inner: Vec<String> = keys
                .iter()
                .map(|k| format!("{}:{}", Value::String((*k).clone()), canonical(&m[*k])))
                .collect();
            format!("{{{}}}", inner.join(","))
        }
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(canonical).collect::<Vec<_>>().join(",")
        ),
        other => other.to_string(),
    }
}

fn calls_of(message: &Value) -> Vec<Call> {
    message
        .get("tool_calls")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|c| Call {
                    id: c
                        .get("id")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    name: c
                        .pointer("/function/name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    arguments: c
                        .pointer("/function/arguments")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// State carried across rounds, shared by both modes.
struct Loop<'a> {
    state: &'a AppState,
    body: Map<String, Value>,
    caller_tools: Vec<String>,
    iterations: u32,
    previous: Option<Vec<(String, String)>>,
    collected: Vec<(String, String, String)>,
    usage: Usage,
}

enum Next {
    /// The model answered (or called the caller's tools): hand this round to the caller.
    Final,
    /// Server-side calls ran; call the model again.
    Again,
    Synthesise(Code),
}

impl<'a> Loop<'a> {
    fn new(state: &'a AppState, mut body: Map<String, Value>) -> Self {
        let caller_tools: Vec<String> = body
            .get("tools")
            .and_then(Value::as_array)
            .map(|l| {
                l.iter()
                    .filter_map(|t| {
                        t.pointer("/function/name")
                            .and_then(Value::as_str)
                            .map(str::to_owned)
                    })
                    .collect()
            })
            .unwrap_or_default();
        // The caller's own tools win a name clash: its tool is the one it will execute.
        let mut offered: Vec<Value> = body
            .get("tools")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        offered.extend(
            tools::definitions(&state.config.tools)
                .into_iter()
                .filter(|d| {
                    let n = d
                        .pointer("/function/name")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    !caller_tools.iter().any(|c| c == n)
                }),
        );
        body.insert("tools".into(), Value::Array(offered));
        Loop {
            state,
            body,
            caller_tools,
            iterations: 0,
            previous: None,
            collected: Vec::new(),
            usage: Usage::default(),
        }
    }

    fn is_server_tool(&self, name: &str) -> bool {
        !self.caller_tools.iter().any(|c| c == name)
            && self.state.config.tools.iter().any(|t| t.name == name)
    }

    /// Decides what a round's assistant message means, running server-side tools if needed.
    async fn after_round(&mut self, message: &Value) -> Next {
        let calls = calls_of(message);
        let server: Vec<Call> = calls
            .iter()
            .filter(|c| self.is_server_tool(&c.name))
            .cloned()
            .collect();
        if server.is_empty() || server.len() != calls.len() {
            // No tools, or the caller's tools are involved: the caller gets this round.
            return Next::Final;
        }
        let sig = signature(&server);
        if self.previous.as_ref() == Some(&sig) {
            return Next::Synthesise(Code::ToolLoopAntiLoopSynthesised);
        }
        self.previous = Some(sig);
        let mut assistant = json!({"role": "assistant", "content": message.get("content").cloned().unwrap_or(Value::Null)});
        assistant["tool_calls"] = Value::Array(
            server
                .iter()
                .map(|c| json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}))
                .collect(),
        );
        let mut results = Vec::with_capacity(server.len());
        for c in &server {
            let tool = self.state.config.tools.iter().find(|t| t.name == c.name);
            let out = match tool {
                Some(t) => tools::execute(&self.state.http, t, &c.arguments).await,
                None => json!({"error": "unknown tool"}).to_string(),
            };
            self.collected
                .push((c.name.clone(), c.arguments.clone(), out.clone()));
            results.push(json!({"role": "tool", "tool_call_id": c.id, "content": out}));
        }
        if let Some(Value::Array(msgs)) = self.body.get_mut("messages") {
            msgs.push(assistant);
            msgs.extend(results);
        }
        self.iterations += 1;
        if self.iterations >= self.state.config.max_tool_iterations {
            Next::Synthesise(Code::ToolLoopMaxIterations)
        } else {
            Next::Again
        }
    }

    /// The synthesis request: the original conversation, the collected results, no tools.
    fn synthesis_body(&self, original_messages: &[Value]) -> Map<String, Value> {
        let mut body = self.body.clone();
        let mut digest = String::from(
            "Tool results collected so far (the tool loop was stopped; do not call tools):\n",
        );
        for (name, args, out) in &self.collected {
            digest.push_str(&format!("- {name}({args}) -> {out}\n"));
        }
        digest.push_str("Answer the user's request now, in prose, using these results.");
        let mut msgs = original_messages.to_vec();
        msgs.push(json!({"role": "user", "content": digest}));
        body.insert("messages".into(), Value::Array(msgs));
        body.insert("tools".into(), Value::Array(Vec::new()));
        body.remove("tool_choice");
        body.remove("parallel_tool_calls");
        body
    }

    /// Text the caller gets if even the synthesis call came back empty: never an empty answer.
    fn fallback_text(&self) -> String {
        let mut s = String::from("The tools returned: ");
        let parts: Vec<String> = self
            .collected
            .iter()
            .map(|(n, _, o)| format!("{n}: {o}"))
            .collect();
        s.push_str(&parts.join("; "));
        s
    }

    /// A final message never carries raw server-side calls (only the caller's own), and after
    /// tool rounds it is never empty.
    fn finish_message(&self, message: &mut Value) {
        if let Some(Value::Array(calls)) = message.get_mut("tool_calls") {
            calls.retain(|c| {
                let name = c
                    .pointer("/function/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                !self.is_server_tool(name)
            });
        }
        let has_calls = message
            .get("tool_calls")
            .and_then(Value::as_array)
            .is_some_and(|c| !c.is_empty());
        let empty = message
            .get("content")
            .and_then(Value::as_str)
            .is_none_or(|s| s.trim().is_empty());
        if self.iterations > 0 && empty && !has_calls {
            message["content"] = Value::String(self.fallback_text());
        }
    }

    /// Indices (in the streamed `tool_calls`) of the server-side calls of a round.
    fn server_indices(&self, message: &Value) -> Vec<u64> {
        calls_of(message)
            .iter()
            .enumerate()
            .filter(|(_, c)| self.is_server_tool(&c.name))
            .map(|(i, _)| i as u64)
            .collect()
    }

    fn event_payload(&self, code: Code) -> String {
        json!({"code": code.as_str(), "iterations": self.iterations, "synth_called": true})
            .to_string()
    }
}

pub fn event_name(code: Code) -> &'static str {
    if code == Code::ToolLoopMaxIterations {
        "spass.tool-cap"
    } else {
        "spass.tool-anti-loop"
    }
}

/// Non-streaming loop: returns the completion to send (usage summed over every call).
pub async fn run(
    state: &AppState,
    model: &Model,
    body: Map<String, Value>,
) -> Result<(Map<String, Value>, Usage), ApiError> {
    let original: Vec<Value> = body
        .get("messages")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut lp = Loop::new(state, body);
    loop {
        let (mut completion, usage) = upstream::chat(state, model, &lp.body).await?;
        lp.usage.add(usage);
        let message = completion
            .get("choices")
            .and_then(|c| c.pointer("/0/message"))
            .cloned()
            .unwrap_or(Value::Null);
        match lp.after_round(&message).await {
            Next::Again => continue,
            Next::Final => {
                if let Some(m) = completion
                    .get_mut("choices")
                    .and_then(|c| c.pointer_mut("/0/message"))
                {
                    lp.finish_message(m);
                }
                completion.insert("usage".into(), lp.usage.to_json());
                return Ok((completion, lp.usage));
            }
            Next::Synthesise(code) => {
                let synth = lp.synthesis_body(&original);
                let (mut completion, usage) = upstream::chat(state, model, &synth).await?;
                lp.usage.add(usage);
                let text = completion
                    .get("choices")
                    .and_then(|c| c.pointer("/0/message/content"))
                    .and_then(Value::as_str)
                    .filter(|s| !s.trim().is_empty())
                    .map(str::to_owned)
                    .unwrap_or_else(|| lp.fallback_text());
                completion.insert(
                    "choices".into(),
                    json!([{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]),
                );
                completion.insert("usage".into(), lp.usage.to_json());
                completion.insert("dgx_code".into(), Value::String(code.as_str().to_owned()));
                return Ok((completion, lp.usage));
            }
        }
    }
}

/// Reassembles a streamed round into one assistant message (content + tool calls whose
/// `arguments` arrive split across deltas).
#[derive(Debug, Default)]
pub struct Assembler {
    pub content: String,
    pub calls: Vec<(String, String, String)>,
    pub finish_reason: Option<String>,
}

impl Assembler {
    pub fn add(&mut self, chunk: &Map<String, Value>) {
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

    pub fn message(&self) -> Value {
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

/// Where the streaming driver writes: the 200 header is released by the first byte, and a
/// failure before it travels back as an ordinary error response.
struct Out {
    /// A caller that stops reading cannot hold the upstream (or a conversation lock) past it.
    deadline: Instant,
    tx: mpsc::Sender<Bytes>,
    start: Option<oneshot::Sender<Result<(), ApiError>>>,
    hooks: stream::Hooks,
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
                let _ = self.tx.send(stream::error_event(&e)).await;
            }
        }
    }

    async fn chunk(&mut self, c: &Map<String, Value>) -> bool {
        let mut c = c.clone();
        match self.hooks.chunk_bytes(&mut c) {
            Some(b) => self.emit(b).await,
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
        last: Option<Map<String, Value>>,
    },
    /// Failure already reported, or the caller left.
    Over,
}

/// Streaming with server-side tools: tool rounds run first; the final answer is relayed as
/// it arrives, preceded by the named event when the loop had to synthesise.
pub async fn stream(
    state: AppState,
    model: Model,
    body: Map<String, Value>,
    deadline: Instant,
    hooks: stream::Hooks,
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
        };
        let usage = std::sync::Arc::new(parking_lot::Mutex::new(Usage::default()));
        let seen = usage.clone();
        tokio::select! {
            // The caller went away: dropping the driver drops the upstream request with it.
            _ = closed.closed() => {}
            _ = drive(&state, &model, body, deadline, &mut out, &seen) => {}
        };
        // Settles a reservation when the stream did not complete (no-op after completion).
        let used = *usage.lock();
        out.hooks.abandon(used);
    });
    match start_rx.await {
        Ok(Ok(())) => {
            let body = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv()
                    .await
                    .map(|b| (Ok::<Bytes, std::io::Error>(b), rx))
            });
            Ok(stream::sse_response(Body::from_stream(body)))
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
    mut body: Map<String, Value>,
    deadline: Instant,
    out: &mut Out,
    seen: &parking_lot::Mutex<Usage>,
) {
    let wants_usage = stream::request_usage(&mut body);
    let original: Vec<Value> = body
        .get("messages")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut lp = Loop::new(state, body);
    let mut last_chunk: Option<Map<String, Value>> = None;
    let final_message;
    loop {
        let round = stream_round(state, model, &lp.body, deadline, out, &mut lp.usage, true).await;
        *seen.lock() = lp.usage;
        let Round::Complete {
            message,
            buffered,
            last,
        } = round
        else {
            return;
        };
        if last.is_some() {
            last_chunk = last;
        }
        match lp.after_round(&message).await {
            Next::Again => continue,
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
                    let c = json!({"object": "chat.completion.chunk", "model": model.alias, "choices": [{"index": 0, "delta": {"content": lp.fallback_text()}, "finish_reason": "stop"}]});
                    if let Value::Object(c) = c {
                        out.chunk(&c).await;
                    }
                }
                final_message = finished;
                break;
            }
            Next::Synthesise(code) => {
                let payload = lp.event_payload(code);
                if !out
                    .emit(stream::sse_event(event_name(code), &payload))
                    .await
                {
                    return;
                }
                let synth = lp.synthesis_body(&original);
                let round =
                    stream_round(state, model, &synth, deadline, out, &mut lp.usage, false).await;
                *seen.lock() = lp.usage;
                let Round::Complete { message, last, .. } = round else {
                    return;
                };
                if last.is_some() {
                    last_chunk = last;
                }
                let mut final_text = message
                    .get("content")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                if final_text.trim().is_empty() {
                    final_text = lp.fallback_text();
                    let c = json!({"object": "chat.completion.chunk", "model": model.alias, "choices": [{"index": 0, "delta": {"content": final_text}, "finish_reason": "stop"}]});
                    if let Value::Object(c) = c {
                        out.chunk(&c).await;
                    }
                }
                final_message = json!({"role": "assistant", "content": final_text});
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
    let end = out.hooks.complete(lp.usage, final_message).await;
    out.emit(end).await;
}

/// Runs one streamed upstream call. With `hold_tools`, deltas are held back until the round
/// shows content (then relayed live) or tool calls (then buffered whole).
async fn stream_round(
    state: &AppState,
    model: &Model,
    body: &Map<String, Value>,
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
            out.fail(ApiError::new(
                Code::UpstreamTimeout,
                "the upstream did not answer within HTTP_TOTAL_TIMEOUT_SECS",
            ))
            .await;
            return Round::Over;
        }
    };
    let mut events = UpstreamEvents::new(resp, deadline, state, model, body);
    let mut asm = Assembler::default();
    let mut live = !hold_tools;
    let mut tool_round = false;
    let mut buffered = Vec::new();
    let mut last = None;
    // Some servers repeat cumulative usage on every chunk: the round's last report counts.
    let mut round_usage = Usage::default();
    loop {
        match events.next().await {
            Piece::Chunk(c) => {
                if let Some(u) = c.get("usage").filter(|u| u.is_object()) {
                    round_usage = Usage::from_json(Some(u));
                }
                if stream::is_usage_only(&c) {
                    last = Some(c);
                    continue;
                }
                asm.add(&c);
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
                if live && !(hold_tools && held) {
                    if !out.chunk(&c).await {
                        return Round::Over;
                    }
                } else {
                    buffered.push(c.clone());
                }
                last = Some(c);
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
    Round::Complete {
        message: asm.message(),
        buffered,
        last,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_ignore_key_order_and_whitespace() {
        let a = [Call {
            id: "1".into(),
            name: "f".into(),
            arguments: r#"{"b":1,"a":{"y":2,"x":[1,2]}}"#.into(),
        }];
        let b = [Call {
            id: "2".into(),
            name: "f".into(),
            arguments: r#"{ "a": {"x":[1,2],"y":2}, "b":1 }"#.into(),
        }];
        assert_eq!(signature(&a), signature(&b));
        let c = [Call {
            id: "3".into(),
            name: "f".into(),
            arguments: r#"{"b":2}"#.into(),
        }];
        assert_ne!(signature(&a), signature(&c));
    }

    #[test]
    fn assembler_joins_split_arguments_exactly() {
        let mut asm = Assembler::default();
        let chunks = [
            json!({"choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "lookup_weather", "arguments": ""}}]}}]}),
            json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{\"ci"}}]}}]}),
            json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "ty\":\"Oslo\"}"}}]}}]}),
            json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
        ];
        for c in chunks {
            asm.add(c.as_object().unwrap());
        }
        let m = asm.message();
        assert_eq!(
            m["tool_calls"][0]["function"]["arguments"],
            "{\"city\":\"Oslo\"}"
        );
        assert_eq!(m["tool_calls"][0]["id"], "call_1");
        assert_eq!(asm.finish_reason.as_deref(), Some("tool_calls"));
    }
}
