//! Response bodies played frame by frame: each frame waits its delay, then is sent.
//!
//! A whole exchange is planned up front (bytes and delays), so playing it is a loop of sleeps
//! and writes with no locks and no JSON work left. An `Abort` frame makes the body stream
//! return an error, which hyper answers by cutting the connection without the final chunk:
//! the client sees an incomplete chunked body, which is what a crashed upstream looks like.

use std::io;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;

use serde::{Deserialize, Serialize};

use crate::record::{Outcome, OutcomeGuard};

#[derive(Debug)]
pub(crate) enum Frame {
    /// Wait `delay_ms`, then send `bytes`.
    Data { delay_ms: u64, bytes: Bytes },
    /// Wait `delay_ms`, then abort the connection.
    Abort { delay_ms: u64 },
}

impl Frame {
    pub(crate) fn now(bytes: Bytes) -> Frame {
        Frame::Data { delay_ms: 0, bytes }
    }

    pub(crate) fn after(delay_ms: u64, bytes: Bytes) -> Frame {
        Frame::Data { delay_ms, bytes }
    }
}

struct Player {
    frames: std::vec::IntoIter<Frame>,
    guard: OutcomeGuard,
    ended: bool,
}

pub(crate) async fn sleep_ms(ms: u64) {
    if ms > 0 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

/// How a streamed answer's SSE events are cut on the wire. The WHATWG event-stream parser
/// (HTML Living Standard, "Interpreting an event stream") works on the byte stream: an event
/// may arrive in any number of reads, and its data may span several `data:` lines, which the
/// client joins with LF. A real upstream's TCP segments cut events anywhere; these two cuts
/// let a scenario check that a gateway reads them as the standard says. A non-streamed answer
/// with a tear of 2 or more pieces is sent in that many writes with chunked framing and no
/// Content-Length (as a proxy that streams bodies through sends it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tear {
    /// Each event is written in this many pieces, `piece_ms` apart (1: whole).
    #[serde(default = "one")]
    pub pieces: usize,
    #[serde(default)]
    pub piece_ms: u64,
    /// Each JSON event's data is sent on two `data:` lines, cut after a comma near its middle
    /// (JSON allows the LF the client puts between them).
    #[serde(default)]
    pub two_data_lines: bool,
}

fn one() -> usize {
    1
}

/// `frames` cut on the wire as `tear` says: each data frame's JSON events on two `data:`
/// lines, then each data frame in `pieces` writes (the first keeps the frame's delay, the
/// others wait `piece_ms`). Without a tear the frames are unchanged.
pub(crate) fn tear(frames: Vec<Frame>, tear: Option<Tear>) -> Vec<Frame> {
    let Some(t) = tear else {
        return frames;
    };
    let pieces = t.pieces.max(1);
    let mut out = Vec::with_capacity(frames.len() * pieces);
    for f in frames {
        let Frame::Data { delay_ms, bytes } = f else {
            out.push(f);
            continue;
        };
        let bytes = if t.two_data_lines {
            Bytes::from(two_data_lines(&bytes))
        } else {
            bytes
        };
        let size = bytes.len().div_ceil(pieces).max(1);
        let mut at = 0;
        while at < bytes.len() {
            let end = (at + size).min(bytes.len());
            let delay = if at == 0 { delay_ms } else { t.piece_ms };
            out.push(Frame::after(delay, bytes.slice(at..end)));
            at = end;
        }
    }
    out
}

/// Every `data: {…}` line of `frame` cut after the structural comma nearest its middle
/// (never one inside a string), the rest on a second `data:` line.
fn two_data_lines(frame: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(frame.len() + 16);
    for line in frame.split_inclusive(|&b| b == b'\n') {
        if !line.starts_with(b"data: {") {
            out.extend_from_slice(line);
            continue;
        }
        let json = &line[6..];
        let (mut in_str, mut esc, mut best) = (false, false, None::<usize>);
        let mid = json.len() / 2;
        for (i, &b) in json.iter().enumerate() {
            match (in_str, esc, b) {
                (true, true, _) => esc = false,
                (true, false, b'\\') => esc = true,
                (true, false, b'"') => in_str = false,
                (false, _, b'"') => in_str = true,
                (false, _, b',') if best.is_none_or(|c| c.abs_diff(mid) > i.abs_diff(mid)) => {
                    best = Some(i);
                }
                _ => {}
            }
        }
        match best {
            Some(c) => {
                out.extend_from_slice(b"data: ");
                out.extend_from_slice(&json[..=c]);
                out.extend_from_slice(b"\ndata: ");
                out.extend_from_slice(&json[c + 1..]);
            }
            None => out.extend_from_slice(line),
        }
    }
    out
}

/// A body that plays `frames`; the guard records how the exchange ended.
pub(crate) fn play(frames: Vec<Frame>, guard: OutcomeGuard) -> Body {
    let player = Player {
        frames: frames.into_iter(),
        guard,
        ended: false,
    };
    let stream = futures_util::stream::unfold(player, |mut player| async move {
        if player.ended {
            return None;
        }
        match player.frames.next() {
            None => {
                player.guard.finish(Outcome::Completed);
                None
            }
            Some(Frame::Data { delay_ms, bytes }) => {
                sleep_ms(delay_ms).await;
                player.guard.sent();
                Some((Ok(bytes), player))
            }
            Some(Frame::Abort { delay_ms }) => {
                sleep_ms(delay_ms).await;
                // Hyper flushes what it has (headers included) when the body is pending;
                // yielding once makes sure the good part reaches the client before the cut.
                tokio::task::yield_now().await;
                player.guard.finish(Outcome::DroppedByMock);
                player.ended = true;
                let err = io::Error::new(io::ErrorKind::ConnectionAborted, "dropped by mock");
                Some((Err(err), player))
            }
        }
    });
    Body::from_stream(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_of(frames: &[Frame]) -> (Vec<u8>, usize) {
        let mut all = Vec::new();
        for f in frames {
            if let Frame::Data { bytes, .. } = f {
                all.extend_from_slice(bytes);
            }
        }
        (all, frames.len())
    }

    #[test]
    fn a_torn_frame_keeps_its_bytes_and_order() {
        let ev = Bytes::from_static(b"data: {\"a\":1,\"b\":\"x, y\"}\n\n");
        let frames = vec![Frame::after(5, ev.clone()), Frame::now(ev.clone())];
        let t = Tear {
            pieces: 3,
            piece_ms: 2,
            two_data_lines: false,
        };
        let out = tear(frames, Some(t));
        let (all, n) = bytes_of(&out);
        assert_eq!(n, 6);
        assert_eq!(all, [&ev[..], &ev[..]].concat());
        // The first piece keeps the frame's delay, the others wait piece_ms.
        let delays: Vec<u64> = out
            .iter()
            .map(|f| match f {
                Frame::Data { delay_ms, .. } | Frame::Abort { delay_ms } => *delay_ms,
            })
            .collect();
        assert_eq!(delays, [5, 2, 2, 0, 2, 2]);
    }

    #[test]
    fn two_data_lines_cut_at_a_structural_comma_and_join_back_to_the_same_json() {
        let ev = b"data: {\"id\":\"c, 1\",\"choices\":[{\"delta\":{\"content\":\"a,b\\\",c\"}}],\"model\":\"m\"}\n\ndata: [DONE]\n\n";
        let out = two_data_lines(ev);
        let text = String::from_utf8(out).expect("utf-8");
        let mut events = text.split("\n\n").filter(|e| !e.is_empty());
        let first = events.next().expect("an event");
        let lines: Vec<&str> = first.lines().collect();
        assert_eq!(lines.len(), 2, "{first}");
        // What an SSE client dispatches: the data lines joined with LF.
        let data: Vec<&str> = lines
            .iter()
            .map(|l| l.strip_prefix("data: ").expect("a data line"))
            .collect();
        let joined = data.join("\n");
        let v: serde_json::Value = serde_json::from_str(&joined).expect("still JSON");
        assert_eq!(v["choices"][0]["delta"]["content"], "a,b\",c");
        assert_eq!(v["id"], "c, 1");
        assert_eq!(events.next(), Some("data: [DONE]"));
    }
}
