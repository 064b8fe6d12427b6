//! The bounded reader of an upstream's SSE body: the `data` of each event, every byte
//! scanned once, a line or an event's data over SSE_MAX_LINE_BYTES failing the stream.

use std::pin::Pin;

use axum::body::Bytes;
use futures_util::{Stream, StreamExt};

pub(super) type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, reqwest::Error>> + Send>>;

/// Why an upstream event could not be read.
#[derive(Debug)]
pub(super) enum ReadError {
    Transport(reqwest::Error),
    /// One line (or one event's data) passed SSE_MAX_LINE_BYTES.
    TooLong,
    /// A line that is not UTF-8.
    Malformed,
}

/// A bounded SSE reader (the `data` of each event, per the WHATWG event-stream rules the
/// gateway needs: `data:` lines joined by LF, comments and other fields ignored, a blank line
/// dispatches). It replaces `eventsource-stream` on the upstream side because that parser
/// re-scans its whole buffer for every network chunk (quadratic in a long line) and has no
/// cap: here every byte is scanned once, and a line or an event's data over `max_line` fails
/// the stream before more is buffered.
pub(super) struct SseReader {
    body: ByteStream,
    buf: Vec<u8>,
    /// Start of the unconsumed part of `buf`.
    start: usize,
    /// Bytes of `buf` from `start` already searched for a line end.
    scanned: usize,
    data: String,
    has_data: bool,
    pub(super) max_line: usize,
}

impl SseReader {
    pub(super) fn new(body: ByteStream, max_line: usize) -> Self {
        SseReader {
            body,
            buf: Vec::new(),
            start: 0,
            scanned: 0,
            data: String::new(),
            has_data: false,
            max_line,
        }
    }

    /// The data of the next event; `None` at the end of the body (an unfinished event is
    /// dropped, as the SSE rules say).
    pub(super) async fn next_data(&mut self) -> Option<Result<String, ReadError>> {
        loop {
            while let Some(pos) = self.buf[self.start + self.scanned..]
                .iter()
                .position(|&b| b == b'\n')
            {
                let end = self.start + self.scanned + pos;
                let mut line = &self.buf[self.start..end];
                if let [rest @ .., b'\r'] = line {
                    line = rest;
                }
                let event = EventData {
                    data: &mut self.data,
                    has_data: &mut self.has_data,
                    max_line: self.max_line,
                };
                let dispatched = match event.take_line(line) {
                    Ok(d) => d,
                    Err(e) => return Some(Err(e)),
                };
                self.start = end + 1;
                self.scanned = 0;
                if let Some(data) = dispatched {
                    return Some(Ok(data));
                }
            }
            self.scanned = self.buf.len() - self.start;
            if self.scanned > self.max_line {
                return Some(Err(ReadError::TooLong));
            }
            match self.body.next().await {
                None => return None,
                Some(Err(e)) => return Some(Err(ReadError::Transport(e))),
                Some(Ok(chunk)) => {
                    // Compact once per network chunk, not once per line.
                    self.buf.drain(..self.start);
                    self.start = 0;
                    self.buf.extend_from_slice(&chunk);
                }
            }
        }
    }
}

/// The event being built (borrowed apart from the buffer its lines come from).
struct EventData<'a> {
    data: &'a mut String,
    has_data: &'a mut bool,
    max_line: usize,
}

impl EventData<'_> {
    /// Applies one line; returns an event's data when the line dispatches one.
    fn take_line(self, line: &[u8]) -> Result<Option<String>, ReadError> {
        if line.is_empty() {
            if !*self.has_data {
                return Ok(None);
            }
            *self.has_data = false;
            let mut data = std::mem::take(self.data);
            if data.ends_with('\n') {
                data.pop();
            }
            return Ok(Some(data));
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(0) => return Ok(None), // a comment (`: OPENROUTER PROCESSING`)
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        if field != b"data" {
            return Ok(None);
        }
        let value = std::str::from_utf8(value).map_err(|_| ReadError::Malformed)?;
        if self.data.len() + value.len() + 1 > self.max_line {
            return Err(ReadError::TooLong);
        }
        // One allocation for a one-line event (push_str then push would grow it twice).
        self.data.reserve(value.len() + 1);
        self.data.push_str(value);
        self.data.push('\n');
        *self.has_data = true;
        Ok(None)
    }
}
