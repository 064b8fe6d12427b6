//! The server-side tool loop (SPEC §4), non-streaming and streaming.
//!
//! Each round offers the configured server-side tools (plus the caller's own) to the model.
//! Server-side calls run here and the model is called again; calls to the caller's tools are
//! returned to the caller untouched. The loop ends with a final answer, or with ONE synthesis
//! call (`tools: []`) when MAX_TOOL_ITERATIONS rounds have run (`tool_loop_max_iterations`) or
//! the same call signature came twice in a row (`tool_loop_anti_loop_synthesised`).
//! Upstream calls: rounds + (1 if synthesised); at most max_tool_iterations + 1.
//!
//! Budgets: the request's own reservation (made before its first call, in check order)
//! covers the first call. Every further call reserves its own prompt estimate (the grown
//! conversation) plus the output cap before it is sent, is refused with `model_quota_exhausted`
//! when that does not fit, and settles with the call's reported usage ([`CallBudget`]). What
//! the loop hands back to settle the request's reservation is the first call's usage only.
//!
//! Memory: each round's answer is paid for from `MAX_ANSWER_MEMORY_BYTES` while it lives (the
//! final one until it was written), and so is everything the loop adds to the conversation
//! (the assistant turns, the tool results, the collected results and the synthesis digest),
//! on the loop's own hold. The synthesis request is the loop's body cut back to the caller's
//! messages, not a copy of them. A refusal is the answer budget's (`answer_memory_refusal`).

use crate::checks::ChatBody;
use axum::body::{Body, Bytes};
use axum::response::Response;
use serde_json::{json, Map, Value};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::catalog::Code;
use crate::checks::memory::{MemoryHold, Refused};
use crate::config::Model;
use crate::error::ApiError;
use crate::state::AppState;
use crate::upstream::sse::{self as sse, Piece, UpstreamEvents};

use crate::upstream::{self, Usage};

/// What a tool-loop call beyond the first reserves against: the request's tenant and alias,
/// and the request's output cap.
#[derive(Clone, Debug)]
pub(crate) struct CallBudget {
    pub tenant: crate::config::Tenant,
    pub alias: String,
    pub output_cap: u64,
}

/// State carried across rounds, shared by both modes.
struct Loop<'a> {
    state: &'a AppState,
    body: ChatBody,
    /// How many of `body`'s messages are the caller's (the rest the loop appended).
    original_len: usize,
    /// What the loop built so far holds of the answer budget.
    hold: MemoryHold,
    budget: CallBudget,
    /// Upstream calls begun so far.
    calls: u32,
    /// Tokens of the calls settled on their own reservation (all but the first).
    settled: u64,
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
    /// The answer budget cannot take what this round added.
    Refused(ApiError),
}

impl<'a> Loop<'a> {
    fn new(state: &'a AppState, mut body: ChatBody, budget: CallBudget) -> Self {
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
        let original_len = body
            .get("messages")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        Loop {
            state,
            body,
            original_len,
            hold: state.answer_memory.hold(),
            budget,
            calls: 0,
            settled: 0,
            caller_tools,
            iterations: 0,
            previous: None,
            collected: Vec::new(),
            usage: Usage::default(),
        }
    }

    /// Before an upstream call of `body`: `None` for the first (the request's reservation
    /// covers it), else this call's own reservation of its prompt estimate plus the output cap.
    async fn reserve_call(
        state: &AppState,
        calls: &mut u32,
        budget: &CallBudget,
        body: &ChatBody,
    ) -> Result<Option<crate::admission::Reservation>, ApiError> {
        *calls += 1;
        if *calls == 1 {
            return Ok(None);
        }
        let estimate = crate::admission::budget::prompt_estimate(body);
        state
            .reserve(&budget.tenant, &budget.alias, estimate, budget.output_cap)
            .await
            .map(Some)
    }

    /// [`Self::reserve_call`] for the loop's own body, or for `other` (the synthesis body).
    async fn reserve(
        &mut self,
        other: Option<&ChatBody>,
    ) -> Result<Option<crate::admission::Reservation>, ApiError> {
        let body = other.unwrap_or(&self.body);
        Self::reserve_call(self.state, &mut self.calls, &self.budget, body).await
    }

    /// After a call: its reservation (if it had one) settles with the call's usage.
    async fn settle_call(&mut self, r: Option<crate::admission::Reservation>, tokens: u64) {
        if let Some(r) = r {
            r.settle(tokens).await;
            self.settled = self.settled.saturating_add(tokens);
        }
    }

    /// Settles a non-streamed call's reservation: its usage, or 0 when the call failed (as the
    /// request's own reservation is settled for a failed first call).
    async fn settled_answer(
        &mut self,
        held: Option<crate::admission::Reservation>,
        answer: Result<(Map<String, Value>, Usage), ApiError>,
    ) -> Result<(Map<String, Value>, Usage), ApiError> {
        let tokens = answer.as_ref().map_or(0, |(_, u)| u.total_tokens);
        self.settle_call(held, tokens).await;
        answer
    }

    /// The usage the request's own reservation settles with: what no call reservation took.
    fn unsettled(&self) -> Usage {
        let mut u = self.usage;
        u.total_tokens = u.total_tokens.saturating_sub(self.settled);
        u
    }

    fn is_server_tool(&self, name: &str) -> bool {
        !self.caller_tools.iter().any(|c| c == name)
            && self.state.config.tools.iter().any(|t| t.name == name)
    }

    /// Decides what a round's assistant message means, running server-side tools if needed.
    /// `alongside`: what this request holds of the answer budget besides the loop's own hold
    /// (the round's answer), so that a loop which could never fit is told so, not to retry.
    async fn after_round(&mut self, message: &Value, alongside: usize) -> Next {
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
                Some(t) => {
                    let max = self.state.config.reads.tool_max_answer_bytes;
                    let memory = &self.state.answer_memory;
                    tools::execute(self.state.http(), t, &c.arguments, max, memory).await
                }
                None => json!({"error": "unknown tool"}).to_string(),
            };
            self.collected
                .push((c.name.clone(), c.arguments.clone(), out.clone()));
            results.push(json!({"role": "tool", "tool_call_id": c.id, "content": out}));
        }
        // What stays: the turns appended to the body, and the collected copy of each result
        // (name, arguments, answer).
        let added = results
            .iter()
            .chain(std::iter::once(&assistant))
            .map(crate::checks::lazy::value_cost)
            .chain(
                self.collected[self.collected.len() - server.len()..]
                    .iter()
                    .map(|(n, a, o)| (n.len() + a.len() + o.len()) as u64),
            )
            .fold(0u64, u64::saturating_add);
        let added = usize::try_from(added).unwrap_or(usize::MAX);
        if let Err(r) = self.hold.grow(added) {
            // `Busy` means others hold the rest; but when this request's own holds alone pass
            // the budget, no retry can fit it.
            let own = self
                .hold
                .bytes()
                .saturating_add(added)
                .saturating_add(alongside);
            let r = if own > self.hold.budget_max() {
                Refused::TooLarge
            } else {
                r
            };
            return Next::Refused(upstream::answer_memory_refusal(r, self.hold.budget_max()));
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
    /// The loop's body is cut back to the caller's messages and moved into it (the loop makes
    /// no further call with its own body); only the digest is new, paid for first.
    fn synthesis_body(&mut self) -> Result<ChatBody, ApiError> {
        let mut digest = String::from(
            "Tool results collected so far (the tool loop was stopped; do not call tools):\n",
        );
        for (name, args, out) in &self.collected {
            digest.push_str(&format!("- {name}({args}) -> {out}\n"));
        }
        digest.push_str("Answer the user's request now, in prose, using these results.");
        self.hold
            .grow(digest.len())
            .map_err(|r| upstream::answer_memory_refusal(r, self.hold.budget_max()))?;
        let mut body = self.body.take();
        let mut msgs = match body.remove("messages") {
            Some(Value::Array(m)) => m,
            _ => Vec::new(),
        };
        msgs.truncate(self.original_len);
        msgs.push(json!({"role": "user", "content": digest}));
        body.insert("messages".into(), Value::Array(msgs));
        body.insert("tools".into(), Value::Array(Vec::new()));
        body.remove("tool_choice");
        body.remove("parallel_tool_calls");
        Ok(body)
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

    /// The synthesis tail of both modes: the final assistant message from the synthesis
    /// call's message, never empty. The second value is the fallback text when the call came
    /// back empty (the streaming driver sends it as one more chunk).
    fn synthesised(&self, message: Option<&Value>) -> (Value, Option<String>) {
        let text = message
            .and_then(|m| m.get("content"))
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty());
        let (text, fallback) = match text {
            Some(t) => (t.to_owned(), None),
            None => {
                let f = self.fallback_text();
                (f.clone(), Some(f))
            }
        };
        (json!({"role": "assistant", "content": text}), fallback)
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

pub(crate) fn event_name(code: Code) -> &'static str {
    if code == Code::ToolLoopMaxIterations {
        crate::contract::EVENT_TOOL_CAP
    } else {
        crate::contract::EVENT_TOOL_ANTI_LOOP
    }
}

/// Non-streaming loop: returns the completion to send (usage summed over every call), the
/// usage the request's reservation settles with ([`Loop::unsettled`]) and the completion's
/// share of the answer budget.
pub(crate) async fn run(
    state: &AppState,
    model: &Model,
    body: ChatBody,
    budget: CallBudget,
) -> Result<(Map<String, Value>, Usage, MemoryHold), ApiError> {
    let mut lp = Loop::new(state, body, budget);
    loop {
        let held = lp.reserve(None).await?;
        // This round's answer: its share is given back when the next round starts.
        let mut round = state.answer_memory.hold();
        let answer = upstream::chat(state, model, &lp.body, &mut round).await;
        let (mut completion, usage) = lp.settled_answer(held, answer).await?;
        lp.usage.add(usage);
        let message = completion
            .get("choices")
            .and_then(|c| c.pointer("/0/message"))
            .cloned()
            .unwrap_or(Value::Null);
        match lp.after_round(&message, round.bytes()).await {
            Next::Again => continue,
            Next::Refused(e) => return Err(e),
            Next::Final => {
                if let Some(m) = completion
                    .get_mut("choices")
                    .and_then(|c| c.pointer_mut("/0/message"))
                {
                    lp.finish_message(m);
                }
                completion.insert("usage".into(), lp.usage.to_json());
                // The fallback text (if any) is a copy of the collected results.
                round.absorb(&mut lp.hold);
                return Ok((completion, lp.unsettled(), round));
            }
            Next::Synthesise(code) => {
                drop(round);
                let synth = lp.synthesis_body()?;
                let held = lp.reserve(Some(&synth)).await?;
                let mut round = state.answer_memory.hold();
                let answer = upstream::chat(state, model, &synth, &mut round).await;
                let (mut completion, usage) = lp.settled_answer(held, answer).await?;
                lp.usage.add(usage);
                let (message, _) = lp.synthesised(
                    completion
                        .get("choices")
                        .and_then(|c| c.pointer("/0/message")),
                );
                completion.insert(
                    "choices".into(),
                    json!([{"index": 0, "message": message, "finish_reason": "stop"}]),
                );
                completion.insert("usage".into(), lp.usage.to_json());
                completion.insert("dgx_code".into(), Value::String(code.as_str().to_owned()));
                round.absorb(&mut lp.hold);
                return Ok((completion, lp.unsettled(), round));
            }
        }
    }
}

mod signature;
mod streaming;
pub(crate) mod tools;

use signature::calls_of;
pub(crate) use signature::{signature, Call};
pub(crate) use streaming::stream;

#[cfg(test)]
mod tests;
