//! Scripts: what the mock does for the 1st, 2nd, … request carrying a marker.
//!
//! A `Step` is public JSON (the same in Rust and over the control API), so a test in another
//! language can script a standalone mock exactly as an in-process test does.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

pub use crate::stream::Tear;
pub use crate::tool_call::ToolCallSpec;

/// One scripted answer. `delay_ms` is waited before any header is sent; `usage`, when set,
/// is the token count the answer reports instead of the mock's own estimate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Step {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub delay_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<StepUsage>,
    /// How a streamed answer's events (or a whole answer's body) are cut on the wire
    /// (default: one write per event, a whole answer with its Content-Length).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tear: Option<Tear>,
    #[serde(flatten)]
    pub action: Action,
}

/// The `usage` a step reports (`total_tokens` is their sum), so that a test can tell what the
/// gateway did with the counts (summed over tool rounds, settled against a token budget).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepUsage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

fn default_arg_splits() -> usize {
    3
}

fn default_max_tokens_floor() -> u64 {
    256
}

fn default_stream_error_status() -> u16 {
    500
}

/// What a step does. Tagged by `kind` in JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    /// A text reply, streamed in several content deltas when the request asked `stream: true`.
    Reply { content: String },
    /// A text reply of `a`s, as long as makes the non-streamed answer's body exactly `bytes`
    /// bytes (in this personality's format; never shorter than the same answer with empty
    /// content). Streamed, the same text in one content delta. For a gateway's byte cap on
    /// upstream answers (SPEC §5: "byte caps on every upstream and tool read").
    Sized { bytes: usize },
    /// These content deltas, `interval_ms` apart; joined into one reply for a non-streaming request.
    Stream {
        chunks: Vec<String>,
        #[serde(default)]
        interval_ms: u64,
    },
    /// Tool calls with `finish_reason: "tool_calls"`; streamed arguments are split in `arg_splits` pieces.
    /// `content_after`, when set, is text the model sends after its tool calls (streamed: one
    /// content delta behind the tool-call deltas; JSON: the message's `content`), as models
    /// that narrate their calls do.
    ToolCalls {
        calls: Vec<ToolCallSpec>,
        #[serde(default = "default_arg_splits")]
        arg_splits: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content_after: Option<String>,
    },
    /// An error status with the personality's error body. `{model}` in `message` stands for
    /// the model the request named: real upstreams name it in their sentences (vLLM's 404 is
    /// "The model `<name>` does not exist.", `vllm/entrypoints/openai/serving_engine.py`
    /// `_check_model`), and a gateway must not pass its upstream's model name on.
    Error {
        status: u16,
        message: String,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        headers: BTreeMap<String, String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error_type: Option<String>,
    },
    /// Budget / credit / quota exhaustion in the personality's own words.
    QuotaExhausted,
    /// OpenRouter's daily free-model limit (a plain rate-limit 429 elsewhere).
    DailyLimit,
    /// A per-minute rate-window 429 in the personality's words (OpenRouter's
    /// `free-models-per-min` with `Retry-After`; the rate-limit 429 of `daily_limit` elsewhere).
    RateWindow,
    /// The 400 for a prompt longer than the model's context window.
    ContextLength { max: u64, requested: u64 },
    /// The 400 for a `max_tokens` below the model's floor `min`, in the personality's words.
    MaxTokens {
        #[serde(default = "default_max_tokens_floor")]
        min: u64,
    },
    /// `chunks` good content chunks, then the connection is aborted (no `[DONE]`).
    Drop {
        chunks: usize,
        #[serde(default)]
        interval_ms: u64,
    },
    /// After `after` good chunks, `data: {not json`, then the stream finishes normally.
    Malformed { after: usize },
    /// `before` content chunks, one event whose data is `data` exactly, `after` more content
    /// chunks, then the stream finishes normally (JSON to a non-streaming request: the text of
    /// all the chunks). For events a relay has nothing to change in, such as `{}`.
    Interject {
        before: usize,
        data: String,
        after: usize,
    },
    /// Only these events' data, then `data: [DONE]` (no role or finish chunk).
    Events { events: Vec<String> },
    /// After `after` chunks (0 = before any), an error object inside the 200 stream, then `[DONE]`.
    StreamError {
        after: usize,
        message: String,
        #[serde(default = "default_stream_error_status")]
        status: u16,
    },
    /// A complete stream (with its finish chunk) that never sends `data: [DONE]`.
    NoDone { chunks: usize },
    /// After `after` chunks, wait `ms`, then continue.
    Stall { after: usize, ms: u64 },
    /// Never send headers; wait until the client leaves.
    Hang,
    /// A 200 answer whose `choices` list is empty (streamed: only a usage chunk, then
    /// `[DONE]`): a completion with nothing in it.
    EmptyChoices,
    /// A 200 text completion with one top-level irregularity, as JSON even to a stream.
    Reshaped { content: String, shape: Shape },
}

/// What a `reshaped` step changes in an ordinary text completion.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    /// No top-level `model` member (OpenAI's schema requires one; some servers omit it).
    NoModel,
    /// `choices` is the first choice object itself instead of a list holding it.
    ChoicesObject,
    /// A vendor's top-level `x_extra`: `count` tiny members, a tree many times its bytes.
    ExtraMembers { count: usize },
}

impl From<Action> for Step {
    fn from(action: Action) -> Step {
        Step {
            delay_ms: 0,
            usage: None,
            tear: None,
            action,
        }
    }
}

impl Step {
    pub fn reply(content: impl Into<String>) -> Step {
        Action::Reply {
            content: content.into(),
        }
        .into()
    }

    /// A reply whose non-streamed body is exactly `bytes` long ([`Action::Sized`]).
    pub fn sized(bytes: usize) -> Step {
        Action::Sized { bytes }.into()
    }

    pub fn stream<S: Into<String>>(chunks: impl IntoIterator<Item = S>, interval_ms: u64) -> Step {
        Action::Stream {
            chunks: chunks.into_iter().map(Into::into).collect(),
            interval_ms,
        }
        .into()
    }

    /// One tool call; `arguments` is the JSON string the model would emit.
    pub fn tool_call(name: impl Into<String>, arguments: impl Into<String>) -> Step {
        Step::tool_calls(vec![ToolCallSpec::new(name, arguments)])
    }

    pub fn tool_calls(calls: Vec<ToolCallSpec>) -> Step {
        Action::ToolCalls {
            calls,
            arg_splits: default_arg_splits(),
            content_after: None,
        }
        .into()
    }

    /// Tool calls followed by this text (see [`Action::ToolCalls`]).
    pub fn tool_calls_then_text(calls: Vec<ToolCallSpec>, text: impl Into<String>) -> Step {
        Action::ToolCalls {
            calls,
            arg_splits: default_arg_splits(),
            content_after: Some(text.into()),
        }
        .into()
    }

    pub fn error(status: u16, message: impl Into<String>) -> Step {
        Action::Error {
            status,
            message: message.into(),
            headers: BTreeMap::new(),
            error_type: None,
        }
        .into()
    }

    /// An error with extra response headers, e.g. `[("retry-after", "7")]`.
    pub fn error_with_headers<K: Into<String>, V: Into<String>>(
        status: u16,
        message: impl Into<String>,
        headers: impl IntoIterator<Item = (K, V)>,
    ) -> Step {
        Action::Error {
            status,
            message: message.into(),
            headers: headers
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            error_type: None,
        }
        .into()
    }

    pub fn quota_exhausted() -> Step {
        Action::QuotaExhausted.into()
    }

    pub fn daily_limit() -> Step {
        Action::DailyLimit.into()
    }

    pub fn rate_window() -> Step {
        Action::RateWindow.into()
    }

    /// `max_tokens` below the model's floor of `min` tokens.
    pub fn max_tokens(min: u64) -> Step {
        Action::MaxTokens { min }.into()
    }

    pub fn context_length(max: u64, requested: u64) -> Step {
        Action::ContextLength { max, requested }.into()
    }

    /// `chunks` good chunks, then the connection is aborted.
    pub fn drop_after(chunks: usize, interval_ms: u64) -> Step {
        Action::Drop {
            chunks,
            interval_ms,
        }
        .into()
    }

    pub fn malformed(after: usize) -> Step {
        Action::Malformed { after }.into()
    }

    pub fn interject(before: usize, data: impl Into<String>, after: usize) -> Step {
        Action::Interject {
            before,
            data: data.into(),
            after,
        }
        .into()
    }

    pub fn stream_error(after: usize, status: u16, message: impl Into<String>) -> Step {
        Action::StreamError {
            after,
            message: message.into(),
            status,
        }
        .into()
    }

    pub fn no_done(chunks: usize) -> Step {
        Action::NoDone { chunks }.into()
    }

    pub fn stall(after: usize, ms: u64) -> Step {
        Action::Stall { after, ms }.into()
    }

    pub fn hang() -> Step {
        Action::Hang.into()
    }

    pub fn empty_choices() -> Step {
        Action::EmptyChoices.into()
    }

    pub fn reshaped(content: impl Into<String>, shape: Shape) -> Step {
        Action::Reshaped {
            content: content.into(),
            shape,
        }
        .into()
    }

    /// Report these token counts instead of the mock's estimate.
    pub fn with_usage(mut self, prompt_tokens: u64, completion_tokens: u64) -> Step {
        self.usage = Some(StepUsage {
            prompt_tokens,
            completion_tokens,
        });
        self
    }

    /// Cut the streamed answer's events on the wire this way.
    pub fn with_tear(mut self, tear: Tear) -> Step {
        self.tear = Some(tear);
        self
    }

    /// Wait `ms` before sending headers.
    pub fn with_delay(mut self, ms: u64) -> Step {
        self.delay_ms = ms;
        self
    }

    /// Split streamed tool-call arguments in `n` pieces (tool_calls steps only).
    pub fn with_arg_splits(mut self, n: usize) -> Step {
        if let Action::ToolCalls { arg_splits, .. } = &mut self.action {
            *arg_splits = n;
        }
        self
    }
}

/// The body of `PUT /__mock/scripts/{marker}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ScriptBody {
    pub steps: Vec<Step>,
}

/// A script and how far it has been played.
#[derive(Debug)]
struct Cursor {
    steps: Arc<[Step]>,
    next: usize,
}

/// Scripts by marker. The lock is held only to pick the next step, never across an await.
#[derive(Debug, Default)]
pub(crate) struct ScriptStore {
    scripts: Mutex<HashMap<String, Cursor>>,
}

/// The step picked for one request: a shared script and the index in it.
#[derive(Clone, Debug)]
pub(crate) struct Picked {
    steps: Arc<[Step]>,
    index: usize,
}

impl Picked {
    pub(crate) fn step(&self) -> Option<&Step> {
        self.steps.get(self.index)
    }
}

impl ScriptStore {
    pub(crate) fn set(&self, marker: &str, steps: Vec<Step>) {
        let cursor = Cursor {
            steps: steps.into(),
            next: 0,
        };
        self.scripts.lock().insert(marker.to_owned(), cursor);
    }

    pub(crate) fn remove(&self, marker: &str) -> bool {
        self.scripts.lock().remove(marker).is_some()
    }

    pub(crate) fn clear(&self) {
        self.scripts.lock().clear();
    }

    /// The step for the next request carrying `marker`, or None once the script is played out.
    pub(crate) fn next(&self, marker: &str) -> Option<Picked> {
        let mut scripts = self.scripts.lock();
        let cursor = scripts.get_mut(marker)?;
        if cursor.next >= cursor.steps.len() {
            return None;
        }
        let index = cursor.next;
        cursor.next += 1;
        Some(Picked {
            steps: Arc::clone(&cursor.steps),
            index,
        })
    }
}

/// Whether `marker` is a valid marker name: `[A-Za-z0-9_.-]+`.
pub fn is_marker_name(marker: &str) -> bool {
    !marker.is_empty() && marker.bytes().all(is_marker_byte)
}

fn is_marker_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')
}

/// The first `mock:<name>` in `text`, if any.
pub fn find_marker_in(text: &str) -> Option<&str> {
    let mut rest = text;
    while let Some(pos) = rest.find("mock:") {
        let after = &rest[pos + 5..];
        let len = after.bytes().take_while(|b| is_marker_byte(*b)).count();
        if len > 0 {
            return Some(&after[..len]);
        }
        rest = after;
    }
    None
}

/// The first marker in any message content (string content or text parts) of a request body.
pub fn find_marker(body: &serde_json::Value) -> Option<&str> {
    let messages = body.get("messages")?.as_array()?;
    for message in messages {
        match message.get("content") {
            Some(serde_json::Value::String(s)) => {
                if let Some(m) = find_marker_in(s) {
                    return Some(m);
                }
            }
            Some(serde_json::Value::Array(parts)) => {
                for part in parts {
                    if let Some(m) = part
                        .get("text")
                        .and_then(|t| t.as_str())
                        .and_then(find_marker_in)
                    {
                        return Some(m);
                    }
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_is_first_valid_occurrence() {
        assert_eq!(
            find_marker_in("hi mock:auth-17 and mock:x"),
            Some("auth-17")
        );
        assert_eq!(find_marker_in("mock: mock:a.b_c"), Some("a.b_c"));
        assert_eq!(find_marker_in("no marker"), None);
        assert_eq!(find_marker_in("mock:"), None);
    }

    #[test]
    fn step_json_round_trips() {
        let steps = vec![
            Step::reply("hi").with_delay(5),
            Step::tool_call("f", "{}"),
            Step::hang(),
            Step::error_with_headers(429, "slow", [("retry-after", "7")]),
            Step::empty_choices().with_usage(11, 3),
        ];
        let text = serde_json::to_string(&steps).unwrap_or_default();
        let back: Vec<Step> = serde_json::from_str(&text).unwrap_or_default();
        assert_eq!(back, steps);
        let hang: Step = serde_json::from_str(r#"{"kind":"hang","delay_ms":3}"#)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(hang, Step::hang().with_delay(3));
    }
}
