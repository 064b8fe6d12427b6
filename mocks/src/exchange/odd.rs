//! Streams with events an ordinary answer would not hold: one odd event among content chunks,
//! or nothing but the scripted events (not even the role chunk).

use axum::body::Bytes;
use axum::response::Response;

use super::{numbered, Exchange};
use crate::personality::Wire;
use crate::record::OutcomeGuard;
use crate::stream::Frame;

impl Exchange<'_> {
    pub(crate) async fn interject(
        &mut self,
        before: usize,
        data: &str,
        after: usize,
        guard: OutcomeGuard,
    ) -> Response {
        let pieces = numbered(before + after);
        let interval = self.config.inter_chunk_ms;
        if !self.info.stream {
            return self
                .complete_text(&pieces.concat(), pieces.len(), interval, guard)
                .await;
        }
        let mut frames = Vec::with_capacity(pieces.len() + 6);
        self.open(&mut frames);
        self.contents(&mut frames, &pieces[..before], interval);
        let event = Bytes::from(format!("data: {data}\n\n"));
        frames.push(Frame::after(interval, event));
        self.contents(&mut frames, &pieces[before..], interval);
        self.close(&mut frames, "stop", pieces.len(), true);
        self.sse(frames, guard)
    }

    /// Exactly these events' data, `data: <text>` each, then `data: [DONE]`: no role chunk, no
    /// finish chunk (a non-streaming request gets an empty text answer).
    pub(crate) async fn events(&mut self, events: &[String], guard: OutcomeGuard) -> Response {
        let interval = self.config.inter_chunk_ms;
        if !self.info.stream {
            return self.complete_text("", 1, interval, guard).await;
        }
        let mut frames = Vec::with_capacity(events.len() + 2);
        if let Some(prelude) = self.wire.sse_prelude() {
            frames.push(Frame::now(prelude));
        }
        for (i, data) in events.iter().enumerate() {
            let delay = if i == 0 { self.ttft() } else { interval };
            frames.push(Frame::after(
                delay,
                Bytes::from(format!("data: {data}\n\n")),
            ));
        }
        frames.push(Frame::now(Wire::done()));
        self.sse(frames, guard)
    }
}
