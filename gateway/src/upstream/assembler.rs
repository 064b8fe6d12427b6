//! The [`Assembler`]: one assistant message rebuilt from a stream's deltas, its text kept
//! whole or up to a cap, and paid for from the answer budget where it is kept.

use serde_json::{json, Map, Value};

use crate::checks::memory::MemoryHold;
use crate::error::ApiError;
use crate::upstream;

/// Reassembles a streamed round into one assistant message (content + tool calls whose
/// `arguments` arrive split across deltas).
#[derive(Debug, Default)]
pub(crate) struct Assembler {
    pub content: String,
    pub calls: Vec<(String, String, String)>,
    pub finish_reason: Option<String>,
    /// At most this many content bytes are kept (`None`: all). A /v1 stream through the tool
    /// loop stores nothing, and needs a round's text only when the round turns out to be a
    /// tool round (it goes upstream again): kept up to UPSTREAM_MAX_BODY_BYTES, the bound of a
    /// non-streamed answer, never the whole stream (issue 15 item 16).
    content_cap: Option<usize>,
    /// Content arrived beyond `content_cap` and was not kept.
    pub content_cut: bool,
}

impl Assembler {
    /// An assembler that keeps at most `max` bytes of content (tool calls whole).
    pub(crate) fn capped(max: usize) -> Self {
        Assembler {
            content_cap: Some(max),
            ..Assembler::default()
        }
    }

    fn push_content(&mut self, t: &str) {
        if self.content_cut {
            // Kept text stays one prefix of what arrived, never a patchwork.
            return;
        }
        match self.content_cap {
            Some(cap) if self.content.len().saturating_add(t.len()) > cap => {
                self.content_cut = true;
                let mut end = cap.saturating_sub(self.content.len()).min(t.len());
                while !t.is_char_boundary(end) {
                    end -= 1;
                }
                self.content.push_str(&t[..end]);
            }
            _ => self.content.push_str(t),
        }
    }

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
            self.push_content(t);
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

    /// Bytes of text assembled so far (what keeping it costs beyond the chunks).
    pub(crate) fn text_bytes(&self) -> usize {
        self.calls
            .iter()
            .map(|(a, b, c)| a.len() + b.len() + c.len())
            .fold(self.content.len(), usize::saturating_add)
    }

    /// [`Self::add`] with the text it keeps paid for from `hold`. The chunk's own share covers
    /// a copy of its text while it is processed, so the growth is taken right after; a refusal
    /// ends the stream before the next chunk.
    pub(crate) fn add_held(
        &mut self,
        chunk: &Map<String, Value>,
        hold: &mut MemoryHold,
    ) -> Result<(), ApiError> {
        let before = self.text_bytes();
        self.add(chunk);
        let grown = self.text_bytes().saturating_sub(before);
        hold.grow(grown)
            .map_err(|r| upstream::answer_memory_refusal(r, hold.budget_max()))
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
