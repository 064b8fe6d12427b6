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
