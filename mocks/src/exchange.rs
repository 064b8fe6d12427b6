//! Answering one exchange: the frames of a streamed answer (or the body of a complete one) for
//! each kind of step, framed by the request's dialect through `Wire`.

use axum::body::Bytes;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rand::rngs::SmallRng;
use rand::Rng;

use crate::personality::{
    Delta, Dialect, ErrorReply, FunctionDelta, StreamBreak, ToolCallDelta, ToolCallOut, Usage, Wire,
};
use crate::record::{Outcome, OutcomeGuard};
use crate::script::{Shape, StepUsage, Tear};
use crate::server::RequestInfo;
use crate::stream::{play, sleep_ms, tear, Frame};
use crate::MockConfig;

pub(crate) fn json_response(status: u16, body: Vec<u8>) -> Response {
    typed_response(status, "application/json", body)
}

fn typed_response(status: u16, content_type: &'static str, body: Vec<u8>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body,
    )
        .into_response()
}

pub(crate) fn error_response(reply: ErrorReply) -> Response {
    let mut response = typed_response(reply.status, reply.content_type, reply.body);
    for (name, value) in reply.headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

/// `text` cut into `n` pieces on char boundaries (fewer if the text is shorter).
pub(crate) fn split_text(text: &str, n: usize) -> Vec<&str> {
    let total = text.chars().count();
    let n = n.clamp(1, total.max(1));
    let mut pieces = Vec::with_capacity(n);
    let mut rest = text;
    for i in 0..n {
        let remaining_pieces = n - i;
        let remaining_chars = rest.chars().count();
        let take = remaining_chars.div_ceil(remaining_pieces);
        let cut = rest
            .char_indices()
            .nth(take)
            .map(|(idx, _)| idx)
            .unwrap_or(rest.len());
        pieces.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    pieces
}

/// Numbered content pieces used by the failure steps, so tests can tell how far a stream got.
/// Streams of events an ordinary answer would not hold (`interject`, `events`).
mod odd;

fn numbered(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("chunk-{i} ")).collect()
}

/// One exchange being answered.
pub(crate) struct Exchange<'a> {
    pub wire: Wire<'a>,
    pub dialect: &'a dyn Dialect,
    pub config: &'a MockConfig,
    pub rng: SmallRng,
    pub info: &'a RequestInfo,
    /// The step's scripted usage, reported instead of the estimate below.
    pub usage: Option<StepUsage>,
    /// How the step's SSE events are cut on the wire.
    pub tear: Option<Tear>,
}

impl Exchange<'_> {
    fn jitter(&mut self) -> u64 {
        if self.config.jitter_ms == 0 {
            0
        } else {
            self.rng.gen_range(0..=self.config.jitter_ms)
        }
    }

    /// Delay before the first chunk.
    fn ttft(&mut self) -> u64 {
        self.config.ttft_ms + self.jitter()
    }

    fn usage(&self, completion_tokens: usize) -> Usage {
        match self.usage {
            Some(u) => Usage::new(u.prompt_tokens, u.completion_tokens),
            None => Usage::new(self.info.prompt_tokens, completion_tokens as u64),
        }
    }

    /// Opening frames: OpenRouter's keep-alive comment and the role delta after TTFT.
    fn open(&mut self, frames: &mut Vec<Frame>) {
        if let Some(prelude) = self.wire.sse_prelude() {
            frames.push(Frame::now(prelude));
        }
        let role = Delta {
            role: Some("assistant"),
            content: Some(""),
            tool_calls: None,
        };
        let ttft = self.ttft();
        frames.push(Frame::after(ttft, self.wire.chunk(role, None)));
    }

    /// Content frames; the first right after the role chunk, the rest `interval` apart.
    fn contents<S: AsRef<str>>(&mut self, frames: &mut Vec<Frame>, pieces: &[S], interval: u64) {
        for (i, piece) in pieces.iter().enumerate() {
            let delay = if i == 0 { 0 } else { interval + self.jitter() };
            let delta = Delta {
                content: Some(piece.as_ref()),
                ..Delta::default()
            };
            frames.push(Frame::after(delay, self.wire.chunk(delta, None)));
        }
    }

    /// Finish chunk, optional usage chunk, and `[DONE]` unless `done` is false.
    fn close(&self, frames: &mut Vec<Frame>, finish: &str, completion_tokens: usize, done: bool) {
        frames.push(Frame::now(
            self.wire.chunk(self.wire.finish_delta(), Some(finish)),
        ));
        if self.info.include_usage {
            frames.push(Frame::now(
                self.wire.usage_chunk(self.usage(completion_tokens)),
            ));
        }
        if done {
            frames.push(Frame::now(Wire::done()));
        }
    }

    fn sse(&self, frames: Vec<Frame>, guard: OutcomeGuard) -> Response {
        let content_type = self.dialect.sse_content_type();
        Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, content_type)
            .header(header::CACHE_CONTROL, "no-cache")
            .body(play(tear(frames, self.tear), guard))
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
    }

    /// A complete non-streaming text answer, after the time streaming it would have taken.
    async fn complete_text(
        &mut self,
        content: &str,
        pieces: usize,
        interval: u64,
        guard: OutcomeGuard,
    ) -> Response {
        let wait = self.ttft() + interval * (pieces.saturating_sub(1) as u64);
        sleep_ms(wait).await;
        let body = self
            .wire
            .completion(Some(content), &[], "stop", self.usage(pieces));
        self.whole(body, guard)
    }

    /// A complete JSON answer: with its Content-Length, or, when the step tears it, in that
    /// many writes with chunked framing and no length (as a proxy that streams bodies sends it).
    fn whole(&self, body: Vec<u8>, mut guard: OutcomeGuard) -> Response {
        match self.tear.filter(|t| t.pieces > 1) {
            None => {
                guard.finish(Outcome::Completed);
                json_response(200, body)
            }
            Some(t) => Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "application/json")
                .body(play(
                    tear(vec![Frame::now(Bytes::from(body))], Some(t)),
                    guard,
                ))
                .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()),
        }
    }

    /// [`crate::script::Action::Sized`]: `a`s padding the answer to exactly `bytes`.
    pub(crate) async fn sized(&mut self, bytes: usize, guard: OutcomeGuard) -> Response {
        let empty = self
            .wire
            .completion(Some(""), &[], "stop", self.usage(1))
            .len();
        let content = "a".repeat(bytes.saturating_sub(empty));
        self.text(&[content.as_str()], 0, guard).await
    }

    pub(crate) async fn text<S: AsRef<str>>(
        &mut self,
        pieces: &[S],
        interval: u64,
        guard: OutcomeGuard,
    ) -> Response {
        if !self.info.stream {
            let joined: String = pieces.iter().map(AsRef::as_ref).collect();
            return self
                .complete_text(&joined, pieces.len(), interval, guard)
                .await;
        }
        let mut frames = Vec::with_capacity(pieces.len() + 5);
        self.open(&mut frames);
        self.contents(&mut frames, pieces, interval);
        self.close(&mut frames, "stop", pieces.len(), true);
        self.sse(frames, guard)
    }

    pub(crate) async fn tools(
        &mut self,
        calls: &[ToolCallOut],
        content_after: Option<&str>,
        splits: usize,
        mut guard: OutcomeGuard,
    ) -> Response {
        let interval = self.config.inter_chunk_ms;
        if !self.info.stream {
            sleep_ms(self.ttft()).await;
            let usage = self.usage(calls.len() * splits);
            let body = self
                .wire
                .completion(content_after, calls, "tool_calls", usage);
            guard.finish(Outcome::Completed);
            return json_response(200, body);
        }
        let mut frames = Vec::with_capacity(calls.len() * (splits + 1) + 5);
        self.open(&mut frames);
        for (index, call) in calls.iter().enumerate() {
            let head = Delta {
                tool_calls: Some([ToolCallDelta {
                    index,
                    id: Some(&call.id),
                    kind: Some("function"),
                    function: FunctionDelta {
                        name: Some(&call.name),
                        arguments: "",
                    },
                }]),
                ..Delta::default()
            };
            frames.push(Frame::now(self.wire.chunk(head, None)));
            for piece in split_text(&call.arguments, splits) {
                if piece.is_empty() {
                    continue;
                }
                let delta = Delta {
                    tool_calls: Some([ToolCallDelta {
                        index,
                        id: None,
                        kind: None,
                        function: FunctionDelta {
                            name: None,
                            arguments: piece,
                        },
                    }]),
                    ..Delta::default()
                };
                let delay = interval + self.jitter();
                frames.push(Frame::after(delay, self.wire.chunk(delta, None)));
            }
        }
        if let Some(text) = content_after {
            self.contents(&mut frames, &[text], interval);
        }
        self.close(&mut frames, "tool_calls", calls.len() * splits, true);
        self.sse(frames, guard)
    }

    pub(crate) fn drop_after(
        &mut self,
        chunks: usize,
        interval: u64,
        guard: OutcomeGuard,
    ) -> Response {
        let pieces = numbered(chunks);
        if !self.info.stream {
            // Headers and half a JSON body, then the connection is cut.
            let partial = format!(
                r#"{{"id":"{}","object":"chat.completion","choices":[{{"index":0,"message":{{"role":"assistant","content":"{}"#,
                "partial",
                pieces.concat()
            );
            let frames = vec![
                Frame::now(Bytes::from(partial)),
                Frame::Abort { delay_ms: interval },
            ];
            return Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "application/json")
                .body(play(frames, guard))
                .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
        }
        let mut frames = Vec::with_capacity(chunks + 4);
        self.open(&mut frames);
        self.contents(&mut frames, &pieces, interval);
        if let Some(message) = self.dialect.stream_break_message(StreamBreak::Drop) {
            // A proxy in front reads the cut and ends the stream with its error object.
            frames.push(Frame::after(interval, self.wire.stream_error(500, message)));
            return self.sse(frames, guard);
        }
        frames.push(Frame::Abort { delay_ms: interval });
        self.sse(frames, guard)
    }

    pub(crate) async fn malformed(&mut self, after: usize, mut guard: OutcomeGuard) -> Response {
        if !self.info.stream {
            guard.finish(Outcome::Completed);
            return json_response(200, b"{not json".to_vec());
        }
        let pieces = numbered(after);
        let interval = self.config.inter_chunk_ms;
        let mut frames = Vec::with_capacity(after + 6);
        self.open(&mut frames);
        self.contents(&mut frames, &pieces, interval);
        if let Some(message) = self.dialect.stream_break_message(StreamBreak::Malformed) {
            frames.push(Frame::after(interval, self.wire.stream_error(500, message)));
            return self.sse(frames, guard);
        }
        frames.push(Frame::after(
            interval,
            Bytes::from_static(b"data: {not json\n\n"),
        ));
        self.close(&mut frames, "stop", after, true);
        self.sse(frames, guard)
    }

    pub(crate) async fn stream_error(
        &mut self,
        after: usize,
        status: u16,
        message: &str,
        mut guard: OutcomeGuard,
    ) -> Response {
        if !self.info.stream {
            guard.finish(Outcome::Completed);
            return error_response(self.dialect.error_reply(status, message, None));
        }
        let interval = self.config.inter_chunk_ms;
        let mut frames = Vec::with_capacity(after + 4);
        if after == 0 {
            // The error is the first event: nothing, not even the role chunk, precedes it.
            if let Some(prelude) = self.wire.sse_prelude() {
                frames.push(Frame::now(prelude));
            }
            let ttft = self.ttft();
            frames.push(Frame::after(ttft, self.wire.stream_error(status, message)));
        } else {
            self.open(&mut frames);
            self.contents(&mut frames, &numbered(after), interval);
            frames.push(Frame::after(
                interval,
                self.wire.stream_error(status, message),
            ));
        }
        if self.dialect.done_after_stream_error() {
            frames.push(Frame::now(Wire::done()));
        }
        self.sse(frames, guard)
    }

    pub(crate) async fn no_done(&mut self, chunks: usize, guard: OutcomeGuard) -> Response {
        let pieces = numbered(chunks);
        let interval = self.config.inter_chunk_ms;
        if !self.info.stream {
            return self.text(&pieces, interval, guard).await;
        }
        let mut frames = Vec::with_capacity(chunks + 4);
        self.open(&mut frames);
        self.contents(&mut frames, &pieces, interval);
        self.close(&mut frames, "stop", chunks, false);
        self.sse(frames, guard)
    }

    /// A 200 completion with nothing in it: `"choices": []` (streamed: the usage chunk alone).
    pub(crate) async fn empty_choices(&mut self, mut guard: OutcomeGuard) -> Response {
        sleep_ms(self.ttft()).await;
        if !self.info.stream {
            let body = self.wire.empty_completion(self.usage(0));
            guard.finish(Outcome::Completed);
            return json_response(200, body);
        }
        let mut frames = Vec::with_capacity(3);
        if let Some(prelude) = self.wire.sse_prelude() {
            frames.push(Frame::now(prelude));
        }
        frames.push(Frame::now(self.wire.usage_chunk(self.usage(0))));
        frames.push(Frame::now(Wire::done()));
        self.sse(frames, guard)
    }

    /// A text completion with `shape` applied to its top level (always JSON: the shapes are
    /// those of a complete answer).
    pub(crate) async fn reshaped(
        &mut self,
        content: &str,
        shape: Shape,
        mut guard: OutcomeGuard,
    ) -> Response {
        sleep_ms(self.ttft()).await;
        let body = self
            .wire
            .completion(Some(content), &[], "stop", self.usage(1));
        let mut v: serde_json::Value = match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(_) => return json_response(500, b"{}".to_vec()),
        };
        if let Some(obj) = v.as_object_mut() {
            match shape {
                Shape::NoModel => {
                    obj.remove("model");
                }
                Shape::ChoicesObject => {
                    if let Some(first) = obj.get("choices").and_then(|c| c.get(0)).cloned() {
                        obj.insert("choices".into(), first);
                    }
                }
                Shape::ExtraMembers { count } => {
                    let extra: serde_json::Map<String, serde_json::Value> = (0..count)
                        .map(|i| (format!("m{i}"), serde_json::Value::from(0)))
                        .collect();
                    obj.insert("x_extra".into(), serde_json::Value::Object(extra));
                }
            }
        }
        guard.finish(Outcome::Completed);
        json_response(200, serde_json::to_vec(&v).unwrap_or(body))
    }

    pub(crate) async fn stall(&mut self, after: usize, ms: u64, guard: OutcomeGuard) -> Response {
        let pieces = numbered(after + 2);
        let interval = self.config.inter_chunk_ms;
        if !self.info.stream {
            sleep_ms(ms).await;
            return self.text(&pieces, interval, guard).await;
        }
        let mut frames = Vec::with_capacity(after + 6);
        self.open(&mut frames);
        self.contents(&mut frames, &pieces[..after], interval);
        let resume = &pieces[after..];
        for (i, piece) in resume.iter().enumerate() {
            let delay = if i == 0 { ms } else { interval };
            let delta = Delta {
                content: Some(piece),
                ..Delta::default()
            };
            frames.push(Frame::after(delay, self.wire.chunk(delta, None)));
        }
        self.close(&mut frames, "stop", pieces.len(), true);
        self.sse(frames, guard)
    }
}

#[cfg(test)]
mod tests {
    use super::split_text;

    #[test]
    fn split_text_keeps_every_char() {
        for n in 1..8 {
            let pieces = split_text("héllo wörld", n);
            assert_eq!(pieces.concat(), "héllo wörld");
            assert_eq!(pieces.len(), n);
        }
        assert_eq!(split_text("ab", 5), vec!["a", "b"]);
        assert_eq!(split_text("", 3), vec![""]);
    }
}
