//! Reading an HTTP answer as it arrives: a Server-Sent-Events parser that keeps each event's
//! name, data and arrival time, so steps can check order, content and pacing.

use std::time::Instant;

use serde_json::Value;

/// One dispatched SSE event.
#[derive(Clone, Debug)]
pub struct Event {
    /// `event:` field; None for plain `data:` events.
    pub name: Option<String>,
    pub data: String,
    pub at: Instant,
}

impl Event {
    /// A plain data event carrying a JSON chunk (not `[DONE]`, not a named event).
    pub fn chunk(&self) -> Option<Value> {
        if self.name.is_some() || self.is_done() {
            return None;
        }
        serde_json::from_str(&self.data).ok()
    }

    pub fn is_done(&self) -> bool {
        self.name.is_none() && self.data.trim() == "[DONE]"
    }
}

/// Incremental parser: feed bytes, take complete events.
#[derive(Debug, Default)]
pub struct Parser {
    pending: Vec<u8>,
    name: Option<String>,
    data: Vec<String>,
    pub events: Vec<Event>,
}

impl Parser {
    pub fn feed(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
        while let Some(pos) = self.pending.iter().position(|b| *b == b'\n') {
            let mut line: Vec<u8> = self.pending.drain(..=pos).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8_lossy(&line).into_owned();
            self.line(&line);
        }
    }

    fn line(&mut self, line: &str) {
        if line.is_empty() {
            if !self.data.is_empty() || self.name.is_some() {
                self.events.push(Event {
                    name: self.name.take(),
                    data: self.data.join("\n"),
                    at: Instant::now(),
                });
                self.data.clear();
            }
            return;
        }
        if line.starts_with(':') {
            return; // comment (e.g. OpenRouter's keep-alive)
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => self.name = Some(value.to_owned()),
            "data" => self.data.push(value.to_owned()),
            _ => {}
        }
    }

    /// Number of JSON chunk events so far.
    pub fn chunks(&self) -> usize {
        self.events.iter().filter(|e| e.chunk().is_some()).count()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn events_are_split_named_and_joined() {
        let mut p = Parser::default();
        p.feed(b": OPENROUTER PROCESSING\n\ndata: {\"a\":1}\n\nevent: spass.tool-cap\r\ndata: {\"code\":");
        assert_eq!(p.events.len(), 1);
        p.feed(b"\"x\"}\n\ndata: [DONE]\n\n");
        assert_eq!(p.events.len(), 3);
        assert_eq!(p.events[1].name.as_deref(), Some("spass.tool-cap"));
        assert!(p.events[2].is_done());
        assert_eq!(p.chunks(), 1);
    }
}
