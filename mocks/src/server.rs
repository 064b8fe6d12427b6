//! The HTTP face of the mock: per-personality routes, and turning a step into a response.
//!
//! A chat request goes: parse → record (if it carries a marker) → auth → validate → pick the
//! scripted step (or the default reply) → wait `delay_ms` → answer, either at once (JSON) or
//! as a planned SSE body played by `stream.rs`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use tokio::sync::watch;

use crate::personality::{
    self, Delta, ErrorReply, FunctionDelta, ToolCallDelta, ToolCallOut, Usage, Wire,
};
use crate::record::{Outcome, OutcomeGuard, RecordStore, Recorded};
use crate::script::{find_marker, Action, ScriptStore, Step};
use crate::stream::{play, sleep_ms, Frame};
use crate::{control, MockConfig, Personality};

/// Bodies up to this size are accepted; gateways forward images inline.
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Content pieces of the default streamed reply when `default_chunks` is 0.
const DEFAULT_CHUNKS: usize = 4;

/// Everything one mock instance knows. Cheap to clone; no global state, so instances in one
/// process never see each other's scripts.
#[derive(Clone, Debug)]
pub struct MockState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: MockConfig,
    scripts: ScriptStore,
    records: RecordStore,
    /// Feeds the per-request RNG so ids and jitter are deterministic for a given seed.
    requests: AtomicU64,
    /// vLLM before ErrorResponse was nested under "error" (flat `{"object":"error",...}`).
    legacy_vllm_errors: AtomicBool,
    /// Flips to true on shutdown: ends hanging requests and the accept loop.
    shutdown: watch::Sender<bool>,
}

impl MockState {
    pub fn new(config: MockConfig) -> MockState {
        let (shutdown, _) = watch::channel(false);
        MockState {
            inner: Arc::new(Inner {
                config,
                scripts: ScriptStore::default(),
                records: RecordStore::default(),
                requests: AtomicU64::new(0),
                legacy_vllm_errors: AtomicBool::new(false),
                shutdown,
            }),
        }
    }

    pub fn config(&self) -> &MockConfig {
        &self.inner.config
    }

    pub fn personality(&self) -> Personality {
        self.inner.config.personality
    }

    /// Replace the script for `marker`; its steps apply to the next requests carrying it.
    pub fn script(&self, marker: &str, steps: Vec<Step>) {
        self.inner.scripts.set(marker, steps);
    }

    pub fn unscript(&self, marker: &str) -> bool {
        self.inner.scripts.remove(marker)
    }

    pub fn records(&self, marker: &str) -> Vec<Recorded> {
        self.inner.records.get(marker)
    }

    /// Forget every script and record.
    pub fn reset(&self) {
        self.inner.scripts.clear();
        self.inner.records.clear();
    }

    /// Answer vLLM errors in the flat pre-0.10 shape `{"object":"error","message",…,"code"}`
    /// instead of the current `{"error":{…}}`. No effect on other personalities.
    pub fn set_vllm_legacy_errors(&self, legacy: bool) {
        self.inner
            .legacy_vllm_errors
            .store(legacy, Ordering::Relaxed);
    }

    fn legacy(&self) -> bool {
        self.inner.legacy_vllm_errors.load(Ordering::Relaxed)
    }

    /// Ask the server (and every hanging request) to stop.
    pub fn trigger_shutdown(&self) {
        self.inner.shutdown.send_replace(true);
    }

    /// Resolves once shutdown was triggered.
    pub fn shutdown_signal(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.inner.shutdown.subscribe();
        async move {
            // An error means the sender is gone, which is also the end.
            let _ = rx.wait_for(|stop| *stop).await;
        }
    }
}

/// The personality's routes plus the control API, on `state`.
pub fn router(state: MockState) -> Router {
    let p = state.personality();
    let routes = match p {
        Personality::Vllm => Router::new()
            .route("/v1/chat/completions", post(chat))
            .route("/v1/models", get(models))
            .route("/health", get(|| async { StatusCode::OK })),
        Personality::Litellm => Router::new()
            .route("/v1/chat/completions", post(chat))
            .route("/chat/completions", post(chat))
            .route("/v1/models", get(models))
            .route("/models", get(models))
            .route("/health/liveliness", get(litellm_liveliness))
            .route("/health/readiness", get(litellm_readiness)),
        Personality::OpenRouter => Router::new()
            .route("/api/v1/chat/completions", post(chat))
            .route("/api/v1/models", get(models)),
    };
    routes
        .merge(control::routes())
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

fn json_response(status: u16, body: Vec<u8>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

fn error_response(reply: ErrorReply) -> Response {
    let mut response = json_response(reply.status, reply.body);
    for (name, value) in reply.headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

async fn not_found(State(state): State<MockState>) -> Response {
    json_response(404, personality::not_found(state.personality()))
}

async fn litellm_liveliness() -> Response {
    // FastAPI serialises the returned str as a JSON string.
    json_response(200, br#""I'm alive!""#.to_vec())
}

async fn litellm_readiness() -> Response {
    json_response(200, personality::litellm_readiness())
}

async fn models(State(state): State<MockState>, headers: HeaderMap) -> Response {
    let p = state.personality();
    // OpenRouter's model list is public; the others guard it with the API key.
    if p != Personality::OpenRouter {
        if let Err(reply) = check_auth(&state, &headers) {
            return error_response(reply);
        }
    }
    json_response(200, personality::models_body(p, unix_secs()))
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn check_auth(state: &MockState, headers: &HeaderMap) -> Result<(), ErrorReply> {
    let Some(key) = state.config().api_key.as_deref() else {
        return Ok(());
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.strip_prefix("Bearer ").unwrap_or(v).trim());
    match presented {
        Some(k) if k == key => Ok(()),
        other => Err(personality::unauthorized(
            state.personality(),
            other.is_some_and(|k| !k.is_empty()),
        )),
    }
}

/// What the mock needs from a chat request, pulled out before the body is moved into a record.
struct RequestInfo {
    stream: bool,
    include_usage: bool,
    model: Option<String>,
    has_messages: bool,
    /// Up to 60 chars of the last user message, echoed by the default reply.
    echo: String,
    prompt_tokens: u64,
    max_tokens: Option<u64>,
}

impl RequestInfo {
    fn extract(body: &Value) -> RequestInfo {
        let messages = body.get("messages").and_then(Value::as_array);
        let mut chars = 0usize;
        let mut echo = String::new();
        for message in messages.into_iter().flatten() {
            let is_user = message.get("role").and_then(Value::as_str) == Some("user");
            let mut text = String::new();
            match message.get("content") {
                Some(Value::String(s)) => {
                    chars += s.chars().count();
                    if is_user {
                        text.push_str(s);
                    }
                }
                Some(Value::Array(parts)) => {
                    for t in parts
                        .iter()
                        .filter_map(|p| p.get("text").and_then(Value::as_str))
                    {
                        chars += t.chars().count();
                        if is_user {
                            text.push_str(t);
                        }
                    }
                }
                _ => {}
            }
            if is_user {
                echo = text.chars().take(60).collect();
            }
        }
        RequestInfo {
            stream: body.get("stream").and_then(Value::as_bool).unwrap_or(false),
            include_usage: body
                .get("stream_options")
                .and_then(|o| o.get("include_usage"))
                .and_then(Value::as_bool)
                .unwrap_or(false),
            model: body.get("model").and_then(Value::as_str).map(str::to_owned),
            has_messages: messages.is_some(),
            echo,
            prompt_tokens: (chars as u64).div_ceil(4) + 1,
            max_tokens: body
                .get("max_completion_tokens")
                .or_else(|| body.get("max_tokens"))
                .and_then(Value::as_u64),
        }
    }
}

/// The personality's words for a body it cannot take.
fn invalid_request(p: Personality, what: Invalid) -> &'static str {
    match (p, what) {
        (Personality::Vllm, Invalid::Json) => "JSON decode error",
        (Personality::Vllm, Invalid::Model) => {
            "[{'type': 'missing', 'loc': ('body', 'model'), 'msg': 'Field required'}]"
        }
        (Personality::Vllm, Invalid::Messages) => {
            "[{'type': 'missing', 'loc': ('body', 'messages'), 'msg': 'Field required'}]"
        }
        (Personality::Litellm, Invalid::Json) => "Invalid JSON payload",
        (Personality::Litellm, Invalid::Model) => {
            "Invalid model name passed in model=None. Call `/v1/models` to view available models for your key."
        }
        (Personality::Litellm, Invalid::Messages) => {
            "litellm.BadRequestError: Missing required parameter: 'messages'"
        }
        (Personality::OpenRouter, Invalid::Json) => "Invalid JSON in request body",
        (Personality::OpenRouter, Invalid::Model) => "No model specified",
        (Personality::OpenRouter, Invalid::Messages) => {
            "Input required: specify \"prompt\" or \"messages\""
        }
    }
}

#[derive(Clone, Copy)]
enum Invalid {
    Json,
    Model,
    Messages,
}

async fn chat(
    State(state): State<MockState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = state.personality();
    let legacy = state.legacy();
    let value: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            let msg = invalid_request(p, Invalid::Json);
            return error_response(personality::bad_request(p, msg, legacy));
        }
    };
    let info = RequestInfo::extract(&value);
    let marker = find_marker(&value).map(str::to_owned);
    let entry = marker.as_deref().map(|m| {
        let headers = headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        state
            .inner
            .records
            .record(m, uri.path().to_owned(), headers, value)
    });
    let mut guard = OutcomeGuard::new(entry);

    if let Err(reply) = check_auth(&state, &headers) {
        guard.finish(Outcome::Completed);
        return error_response(reply);
    }
    let invalid = match (&info.model, info.has_messages) {
        (None, _) => Some(Invalid::Model),
        (_, false) => Some(Invalid::Messages),
        _ => None,
    };
    if let Some(what) = invalid {
        guard.finish(Outcome::Completed);
        return error_response(personality::bad_request(
            p,
            invalid_request(p, what),
            legacy,
        ));
    }

    let picked = marker.as_deref().and_then(|m| state.inner.scripts.next(m));
    let step = picked.as_ref().and_then(|p| p.step());
    if let Some(step) = step {
        sleep_ms(step.delay_ms).await;
    }

    let n = state.inner.requests.fetch_add(1, Ordering::Relaxed);
    let config = state.config();
    let mut rng = SmallRng::seed_from_u64(
        config
            .seed
            .wrapping_add(n.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
    );
    let created = unix_secs();
    let id = Wire::response_id(p, created, rng.gen(), rng.gen());
    let model = info.model.as_deref().unwrap_or_default();
    let mut ex = Exchange {
        wire: Wire::new(p, id, created, model, legacy),
        p,
        legacy,
        config,
        rng,
        info: &info,
    };

    match step.map(|s| &s.action) {
        None => {
            let text = format!("Mock {p} reply: {}", info.echo);
            let n = if config.default_chunks == 0 {
                DEFAULT_CHUNKS
            } else {
                config.default_chunks
            };
            let pieces = split_text(&text, n);
            ex.text(&pieces, config.inter_chunk_ms, guard).await
        }
        Some(Action::Reply { content }) => {
            let pieces = split_text(content, DEFAULT_CHUNKS.max(config.default_chunks));
            ex.text(&pieces, config.inter_chunk_ms, guard).await
        }
        Some(Action::Stream {
            chunks,
            interval_ms,
        }) => {
            let pieces: Vec<&str> = chunks.iter().map(String::as_str).collect();
            ex.text(&pieces, *interval_ms, guard).await
        }
        Some(Action::ToolCalls { calls, arg_splits }) => {
            let calls: Vec<ToolCallOut> = calls
                .iter()
                .map(|c| ToolCallOut {
                    id: c.id.clone().unwrap_or_else(|| {
                        let (a, b) = (ex.rng.gen(), ex.rng.gen());
                        Wire::tool_call_id(p, a, b)
                    }),
                    name: c.name.clone(),
                    arguments: c.arguments.clone(),
                })
                .collect();
            ex.tools(&calls, (*arg_splits).max(1), guard).await
        }
        Some(Action::Error {
            status,
            message,
            headers,
            error_type,
        }) => {
            guard.finish(Outcome::Completed);
            let reply =
                personality::error_reply(p, *status, message, error_type.as_deref(), legacy);
            let mut response = error_response(reply);
            for (name, value) in headers {
                if let (Ok(name), Ok(value)) = (
                    header::HeaderName::from_bytes(name.as_bytes()),
                    HeaderValue::from_str(value),
                ) {
                    response.headers_mut().insert(name, value);
                }
            }
            response
        }
        Some(Action::QuotaExhausted) => {
            guard.finish(Outcome::Completed);
            error_response(personality::quota_exhausted(p, legacy))
        }
        Some(Action::DailyLimit) => {
            guard.finish(Outcome::Completed);
            error_response(personality::daily_limit(p, legacy, unix_millis()))
        }
        Some(Action::ContextLength { max, requested }) => {
            guard.finish(Outcome::Completed);
            let completion = info.max_tokens.unwrap_or(0);
            error_response(personality::context_length(
                p, *max, *requested, completion, legacy,
            ))
        }
        Some(Action::Drop {
            chunks,
            interval_ms,
        }) => ex.drop_after(*chunks, *interval_ms, guard),
        Some(Action::Malformed { after }) => ex.malformed(*after, guard).await,
        Some(Action::StreamError {
            after,
            message,
            status,
        }) => ex.stream_error(*after, *status, message, guard).await,
        Some(Action::NoDone { chunks }) => ex.no_done(*chunks, guard).await,
        Some(Action::Stall { after, ms }) => ex.stall(*after, *ms, guard).await,
        Some(Action::Hang) => {
            // Never answer; hyper drops this future when the client leaves, and the guard
            // records that. Shutdown ends the wait so the server can stop.
            state.shutdown_signal().await;
            guard.finish(Outcome::Completed);
            json_response(503, Vec::new())
        }
    }
}

/// `text` cut into `n` pieces on char boundaries (fewer if the text is shorter).
fn split_text(text: &str, n: usize) -> Vec<&str> {
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
fn numbered(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("chunk-{i} ")).collect()
}

/// One exchange being answered.
struct Exchange<'a> {
    wire: Wire,
    p: Personality,
    legacy: bool,
    config: &'a MockConfig,
    rng: SmallRng,
    info: &'a RequestInfo,
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
        Usage::new(self.info.prompt_tokens, completion_tokens as u64)
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
        let content_type = match self.p {
            Personality::Vllm => "text/event-stream; charset=utf-8",
            Personality::Litellm | Personality::OpenRouter => "text/event-stream",
        };
        Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, content_type)
            .header(header::CACHE_CONTROL, "no-cache")
            .body(play(frames, guard))
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
    }

    /// A complete non-streaming text answer, after the time streaming it would have taken.
    async fn complete_text(
        &mut self,
        content: &str,
        pieces: usize,
        interval: u64,
        mut guard: OutcomeGuard,
    ) -> Response {
        let wait = self.ttft() + interval * (pieces.saturating_sub(1) as u64);
        sleep_ms(wait).await;
        let body = self
            .wire
            .completion(Some(content), &[], "stop", self.usage(pieces));
        guard.finish(Outcome::Completed);
        json_response(200, body)
    }

    async fn text<S: AsRef<str>>(
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

    async fn tools(
        &mut self,
        calls: &[ToolCallOut],
        splits: usize,
        mut guard: OutcomeGuard,
    ) -> Response {
        let interval = self.config.inter_chunk_ms;
        if !self.info.stream {
            sleep_ms(self.ttft()).await;
            let body =
                self.wire
                    .completion(None, calls, "tool_calls", self.usage(calls.len() * splits));
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
        self.close(&mut frames, "tool_calls", calls.len() * splits, true);
        self.sse(frames, guard)
    }

    fn drop_after(&mut self, chunks: usize, interval: u64, guard: OutcomeGuard) -> Response {
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
        frames.push(Frame::Abort { delay_ms: interval });
        self.sse(frames, guard)
    }

    async fn malformed(&mut self, after: usize, mut guard: OutcomeGuard) -> Response {
        if !self.info.stream {
            guard.finish(Outcome::Completed);
            return json_response(200, b"{not json".to_vec());
        }
        let pieces = numbered(after);
        let interval = self.config.inter_chunk_ms;
        let mut frames = Vec::with_capacity(after + 6);
        self.open(&mut frames);
        self.contents(&mut frames, &pieces, interval);
        frames.push(Frame::after(
            interval,
            Bytes::from_static(b"data: {not json\n\n"),
        ));
        self.close(&mut frames, "stop", after, true);
        self.sse(frames, guard)
    }

    async fn stream_error(
        &mut self,
        after: usize,
        status: u16,
        message: &str,
        mut guard: OutcomeGuard,
    ) -> Response {
        if !self.info.stream {
            guard.finish(Outcome::Completed);
            return error_response(personality::error_reply(
                self.p,
                status,
                message,
                None,
                self.legacy,
            ));
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
        frames.push(Frame::now(Wire::done()));
        self.sse(frames, guard)
    }

    async fn no_done(&mut self, chunks: usize, guard: OutcomeGuard) -> Response {
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

    async fn stall(&mut self, after: usize, ms: u64, guard: OutcomeGuard) -> Response {
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
