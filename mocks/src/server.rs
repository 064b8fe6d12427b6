//! The HTTP face of the mock: the dialect's routes, and turning a step into a response.
//!
//! A chat request goes: parse → record (if it carries a marker) → auth → validate → pick the
//! scripted step (or the default reply) → wait `delay_ms` → answer, either at once (JSON) or
//! as a planned SSE body played by `stream.rs` (frames built in `exchange.rs`). Every wire
//! fact comes from the personality's [`Dialect`]; nothing here matches on a personality.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use parking_lot::RwLock;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use tokio::sync::watch;

use crate::exchange::{error_response, json_response, split_text, Exchange};
use crate::gateway::{self, Buckets};
use crate::personality::{self, Dialect, ErrorReply, Fault, Invalid, ToolCallOut, Wire};
use crate::record::{Outcome, OutcomeGuard, RecordStore, Recorded};
pub(crate) use crate::request::RequestInfo;
use crate::script::{find_marker, Action, ScriptStore, Step};
use crate::stream::sleep_ms;
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
    /// The wire format; replaced only by `set_vllm_legacy_errors` (a field of the vLLM dialect).
    dialect: RwLock<&'static dyn Dialect>,
    /// Flips to true on shutdown: ends hanging requests and the accept loop.
    shutdown: watch::Sender<bool>,
    /// The limited keys' token buckets (gateway doubles).
    buckets: Buckets,
}

impl MockState {
    pub fn new(config: MockConfig) -> MockState {
        let (shutdown, _) = watch::channel(false);
        let dialect = config.personality.dialect();
        MockState {
            inner: Arc::new(Inner {
                config,
                scripts: ScriptStore::default(),
                records: RecordStore::default(),
                requests: AtomicU64::new(0),
                dialect: RwLock::new(dialect),
                shutdown,
                buckets: Buckets::default(),
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
        if self.personality() == Personality::Vllm {
            *self.inner.dialect.write() = personality::vllm_dialect(legacy);
        }
    }

    /// The current wire format (one lock read per request).
    fn dialect(&self) -> &'static dyn Dialect {
        *self.inner.dialect.read()
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

/// The dialect's routes plus the control API, on `state`.
pub fn router(state: MockState) -> Router {
    let dialect = state.personality().dialect();
    let cap = state.config().max_body_bytes.unwrap_or(MAX_BODY_BYTES);
    let mut routes = Router::new();
    for path in dialect.chat_paths() {
        routes = routes.route(path, post(chat));
    }
    for path in dialect.models_paths() {
        routes = routes.route(path, get(models));
    }
    for health in dialect.health_routes() {
        let body = health.body;
        routes = routes.route(
            health.path,
            get(move || async move {
                match body {
                    Some(body) => json_response(200, personality::to_vec(&body())),
                    None => StatusCode::OK.into_response(),
                }
            }),
        );
    }
    routes
        .merge(control::routes())
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(cap))
        .with_state(state)
}

async fn not_found(State(state): State<MockState>) -> Response {
    let dialect = state.dialect();
    json_response(404, personality::to_vec(&dialect.not_found_body()))
}

async fn models(State(state): State<MockState>, headers: HeaderMap) -> Response {
    let dialect = state.dialect();
    if !dialect.models_public() {
        if let Err(reply) = check_auth(&state, dialect, &headers) {
            return error_response(reply);
        }
    }
    json_response(200, personality::to_vec(&dialect.models_body(unix_secs())))
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

/// The presented key when it is accepted, else the dialect's 401. Upstreams read
/// `Authorization: Bearer`; a gateway double reads its dialect's credential header.
fn check_auth<'h>(
    state: &MockState,
    dialect: &dyn Dialect,
    headers: &'h HeaderMap,
) -> Result<Option<&'h str>, ErrorReply> {
    let config = state.config();
    let Some(key) = config.api_key.as_deref() else {
        return Ok(None);
    };
    let (name, bearer) = if config.gateway {
        dialect.credential_header()
    } else {
        ("authorization", true)
    };
    let raw = headers.get(name).and_then(|v| v.to_str().ok());
    // An upstream mock is lenient (a bare key passes); a double wants its exact scheme.
    let presented = raw.and_then(|v| match (bearer, config.gateway) {
        (true, true) => v.strip_prefix("Bearer ").map(str::trim),
        (true, false) => Some(v.strip_prefix("Bearer ").unwrap_or(v).trim()),
        (false, _) => Some(v.trim()),
    });
    match presented {
        Some(k)
            if k == key
                || config.keys.iter().any(|x| x == k)
                || config.limited_keys.iter().any(|x| x == k) =>
        {
            Ok(Some(k))
        }
        _ => Err(ErrorReply::json(
            dialect,
            401,
            &dialect.unauthorized_for(raw),
        )),
    }
}

/// A gateway double's own checks, in the order its seed gives (seed 002 § Error Response
/// From Source: authentication, then the rate limit), then types and models.
fn gateway_checks(
    state: &MockState,
    d: &dyn Dialect,
    key: Option<&str>,
    wrong_field: Option<&'static str>,
    info: &RequestInfo,
) -> Option<ErrorReply> {
    if let Some(key) = key {
        let limited = state.config().limited_keys.iter().any(|k| k == key);
        if limited && !state.inner.buckets.allow(key) {
            return Some(d.fault_reply(Fault::RateLimited));
        }
    }
    if let Some(field) = wrong_field {
        return Some(d.fault_reply(Fault::WrongType(field)));
    }
    match info.model.as_deref() {
        Some(model) if !gateway::known_model(d, &state.config().served_models, model) => {
            Some(d.fault_reply(Fault::UnknownModel(model)))
        }
        _ => None,
    }
}

async fn chat(
    State(state): State<MockState>,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let d = state.dialect();
    let body = match body {
        Ok(body) => body,
        Err(rejection) if state.config().gateway => {
            let cap = state.config().max_body_bytes.unwrap_or(MAX_BODY_BYTES);
            tracing::debug!(%rejection, "body refused");
            return error_response(d.fault_reply(Fault::BodyTooLarge(cap)));
        }
        Err(rejection) => return rejection.into_response(),
    };
    let value: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            let msg = d.invalid_request(Invalid::Json);
            return error_response(d.error_reply(400, msg, None));
        }
    };
    let info = RequestInfo::extract(&value);
    let wrong_field = gateway::wrong_type(&value);
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
        state.inner.records.record(
            m,
            uri.path().to_owned(),
            headers,
            value,
            crate::record::repeated_top_level_keys(&body),
        )
    });
    let mut guard = OutcomeGuard::new(entry);

    let key = match check_auth(&state, d, &headers) {
        Ok(key) => key,
        Err(reply) => {
            guard.finish(Outcome::Completed);
            return error_response(reply);
        }
    };
    if state.config().gateway || state.config().strict {
        if let Some(reply) = gateway_checks(&state, d, key, wrong_field, &info) {
            guard.finish(Outcome::Completed);
            return error_response(reply);
        }
    }
    let invalid = match (&info.model, info.has_messages) {
        (None, _) => Some(Invalid::Model),
        (_, false) => Some(Invalid::Messages),
        _ => None,
    };
    if let Some(what) = invalid {
        guard.finish(Outcome::Completed);
        return error_response(d.error_reply(400, d.invalid_request(what), None));
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
    let id = d.response_id(created, rng.gen(), rng.gen());
    let model = info.model.as_deref().unwrap_or_default();
    let mut ex = Exchange {
        wire: Wire::new(d, id, created, model),
        dialect: d,
        config,
        rng,
        info: &info,
        usage: step.and_then(|s| s.usage),
        tear: step.and_then(|s| s.tear),
    };

    match step.map(|s| &s.action) {
        None => {
            let text = format!("Mock {} reply: {}", d.name(), info.echo);
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
        Some(Action::Sized { bytes }) => ex.sized(*bytes, guard).await,
        Some(Action::Stream {
            chunks,
            interval_ms,
        }) => {
            let pieces: Vec<&str> = chunks.iter().map(String::as_str).collect();
            ex.text(&pieces, *interval_ms, guard).await
        }
        Some(Action::ToolCalls {
            calls,
            arg_splits,
            content_after,
        }) => {
            let calls: Vec<ToolCallOut> = calls
                .iter()
                .map(|c| ToolCallOut {
                    id: c.id.clone().unwrap_or_else(|| {
                        let (a, b) = (ex.rng.gen(), ex.rng.gen());
                        d.tool_call_id(a, b)
                    }),
                    name: c.name.clone(),
                    arguments: c.arguments.clone(),
                })
                .collect();
            ex.tools(
                &calls,
                content_after.as_deref(),
                (*arg_splits).max(1),
                guard,
            )
            .await
        }
        Some(Action::Error {
            status,
            message,
            headers,
            error_type,
        }) => {
            guard.finish(Outcome::Completed);
            if config.gateway {
                // The scripted error is the upstream's; the double answers in its own words.
                return error_response(d.fault_reply(Fault::Upstream(*status)));
            }
            let message = message.replace("{model}", model);
            let (message, relayed_type) = d.relayed_error(*status, &message, model);
            let reply = d.error_reply(*status, &message, error_type.as_deref().or(relayed_type));
            let mut response = error_response(reply);
            for (name, value) in headers {
                if let (Ok(name), Ok(value)) = (
                    header::HeaderName::from_bytes(d.relayed_header(name).as_bytes()),
                    HeaderValue::from_str(value),
                ) {
                    response.headers_mut().insert(name, value);
                }
            }
            response
        }
        Some(Action::QuotaExhausted) => {
            guard.finish(Outcome::Completed);
            error_response(d.quota_exhausted())
        }
        Some(Action::DailyLimit) => {
            guard.finish(Outcome::Completed);
            error_response(d.daily_limit(unix_millis()))
        }
        Some(Action::RateWindow) => {
            guard.finish(Outcome::Completed);
            error_response(d.rate_window(unix_millis()))
        }
        Some(Action::MaxTokens { min }) => {
            guard.finish(Outcome::Completed);
            error_response(d.max_tokens(*min))
        }
        Some(Action::ContextLength { max, requested }) => {
            guard.finish(Outcome::Completed);
            let completion = info.max_tokens.unwrap_or(0);
            if config.gateway {
                let completion = completion.min(*requested);
                let message =
                    d.context_length_message(*max, *requested, *requested - completion, completion);
                return error_response(d.fault_reply(Fault::ContextLength(&message)));
            }
            error_response(d.context_length(*max, *requested, completion, model))
        }
        Some(Action::Drop {
            chunks,
            interval_ms,
        }) => ex.drop_after(*chunks, *interval_ms, guard),
        Some(Action::Malformed { after }) => ex.malformed(*after, guard).await,
        Some(Action::Interject {
            before,
            data,
            after,
        }) => ex.interject(*before, data, *after, guard).await,
        Some(Action::Events { events }) => ex.events(events, guard).await,
        Some(Action::StreamError {
            after,
            message,
            status,
        }) => ex.stream_error(*after, *status, message, guard).await,
        Some(Action::NoDone { chunks }) => ex.no_done(*chunks, guard).await,
        Some(Action::Stall { after, ms }) => ex.stall(*after, *ms, guard).await,
        Some(Action::EmptyChoices) => ex.empty_choices(guard).await,
        Some(Action::Reshaped { content, shape }) => ex.reshaped(content, *shape, guard).await,
        Some(Action::Hang) => {
            // Never answer; hyper drops this future when the client leaves, and the guard
            // records that. Shutdown ends the wait so the server can stop.
            state.shutdown_signal().await;
            guard.finish(Outcome::Completed);
            json_response(503, Vec::new())
        }
    }
}
