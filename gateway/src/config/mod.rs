//! Configuration: the environment names of SPEC §6, `tokens.yaml` and the gateway file.
//!
//! This is the only module that reads the environment. Files are read raw (unknown fields
//! rejected), then validated into typed [`Config`]; any problem stops start-up with ONE
//! message naming the file, the field path and the problem.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Every environment variable the gateway reads, in one place.
pub(crate) mod vars {
    pub(crate) const RUST_API_BEARER: &str = "RUST_API_BEARER";
    pub(crate) const TOKENS_FILE: &str = "TOKENS_FILE";
    pub(crate) const GATEWAY_CONFIG: &str = "GATEWAY_CONFIG";
    pub(crate) const RATE_LIMIT_RPS: &str = "RATE_LIMIT_RPS";
    pub(crate) const RATE_LIMIT_BURST: &str = "RATE_LIMIT_BURST";
    pub(crate) const MAX_BODY_BYTES: &str = "MAX_BODY_BYTES";
    pub(crate) const HTTP_TOTAL_TIMEOUT_SECS: &str = "HTTP_TOTAL_TIMEOUT_SECS";
    pub(crate) const MAX_TOOL_ITERATIONS: &str = "MAX_TOOL_ITERATIONS";
    pub(crate) const SQLITE_PATH: &str = "SQLITE_PATH";
    pub(crate) const REDIS_URL: &str = "REDIS_URL";
    /// `open` (default): when Redis fails, fall back to per-process limits; `closed`: refuse.
    pub(crate) const REDIS_FAIL_MODE: &str = "REDIS_FAIL_MODE";
    /// Bound of one Redis call (and of a connect): see [`super::RedisLimits`].
    pub(crate) const REDIS_TIMEOUT_MS: &str = "REDIS_TIMEOUT_MS";
    /// While the Redis breaker is open, how often a background probe tries Redis again.
    pub(crate) const REDIS_RETRY_MS: &str = "REDIS_RETRY_MS";
    pub(crate) const BIND_ADDR: &str = "BIND_ADDR";
    /// `json` for one JSON object per log line; anything else is human-readable.
    pub(crate) const LOG_FORMAT: &str = "LOG_FORMAT";
    /// `1` lets the fault-injection header of the conformance harness through (tests only).
    pub(crate) const FAULT_INJECTION: &str = "GATEWAY_FAULT_INJECTION";
    /// Connection edge (`edge::serve`): see [`super::ServerLimits`].
    pub(crate) const HEADER_READ_TIMEOUT_SECS: &str = "HEADER_READ_TIMEOUT_SECS";
    pub(crate) const IDLE_TIMEOUT_SECS: &str = "IDLE_TIMEOUT_SECS";
    pub(crate) const BODY_READ_TIMEOUT_SECS: &str = "BODY_READ_TIMEOUT_SECS";
    pub(crate) const SEND_TIMEOUT_SECS: &str = "SEND_TIMEOUT_SECS";
    pub(crate) const LINGER_SECS: &str = "LINGER_SECS";
    pub(crate) const MAX_CONNECTIONS: &str = "MAX_CONNECTIONS";
    pub(crate) const MAX_CONNECTIONS_PER_IP: &str = "MAX_CONNECTIONS_PER_IP";
    pub(crate) const MAX_HEADER_BYTES: &str = "MAX_HEADER_BYTES";
    pub(crate) const MAX_IN_FLIGHT: &str = "MAX_IN_FLIGHT";
    pub(crate) const SHUTDOWN_GRACE_SECS: &str = "SHUTDOWN_GRACE_SECS";
    pub(crate) const READYZ_CACHE_SECS: &str = "READYZ_CACHE_SECS";
    pub(crate) const METRICS_BIND_ADDR: &str = "METRICS_BIND_ADDR";
    /// Connection worker threads, each its own single-threaded runtime; 0 = tokio's pool.
    pub(crate) const WORKER_THREADS: &str = "WORKER_THREADS";
    /// `1`/`true`: also accept the token in `X-API-Key` (seed 002's clients); default off.
    pub(crate) const ACCEPT_X_API_KEY: &str = "ACCEPT_X_API_KEY";
    /// Bytes read of an upstream's successful (non-streamed) answer before it is refused.
    pub(crate) const UPSTREAM_MAX_BODY_BYTES: &str = "UPSTREAM_MAX_BODY_BYTES";
    /// Bytes read of an upstream's error answer; the rest is never read.
    pub(crate) const UPSTREAM_MAX_ERROR_BYTES: &str = "UPSTREAM_MAX_ERROR_BYTES";
    /// Bytes of one upstream SSE line (an event's `data:`) before the stream fails.
    pub(crate) const SSE_MAX_LINE_BYTES: &str = "SSE_MAX_LINE_BYTES";
    /// Bytes read of an HTTP tool's answer.
    pub(crate) const TOOL_MAX_ANSWER_BYTES: &str = "TOOL_MAX_ANSWER_BYTES";
    /// Bytes of stored /c1 history sent upstream; older turns beyond it are dropped.
    pub(crate) const C1_MAX_HISTORY_BYTES: &str = "C1_MAX_HISTORY_BYTES";
    /// Bytes of already-arrived SSE events the relay joins into one body frame (one write).
    pub(crate) const RELAY_COALESCE_BYTES: &str = "RELAY_COALESCE_BYTES";
    /// Bytes all request bodies in flight may hold together, raw and parsed.
    pub(crate) const MAX_BODY_MEMORY_BYTES: &str = "MAX_BODY_MEMORY_BYTES";
    /// Bytes all upstream and tool answers in flight may hold together, raw, parsed and
    /// until sent.
    pub(crate) const MAX_ANSWER_MEMORY_BYTES: &str = "MAX_ANSWER_MEMORY_BYTES";
    pub(crate) const ALL: &[&str] = &[
        RUST_API_BEARER,
        TOKENS_FILE,
        GATEWAY_CONFIG,
        RATE_LIMIT_RPS,
        RATE_LIMIT_BURST,
        MAX_BODY_BYTES,
        HTTP_TOTAL_TIMEOUT_SECS,
        MAX_TOOL_ITERATIONS,
        SQLITE_PATH,
        REDIS_URL,
        REDIS_FAIL_MODE,
        REDIS_TIMEOUT_MS,
        REDIS_RETRY_MS,
        BIND_ADDR,
        LOG_FORMAT,
        FAULT_INJECTION,
        HEADER_READ_TIMEOUT_SECS,
        IDLE_TIMEOUT_SECS,
        BODY_READ_TIMEOUT_SECS,
        SEND_TIMEOUT_SECS,
        LINGER_SECS,
        MAX_CONNECTIONS,
        MAX_CONNECTIONS_PER_IP,
        MAX_HEADER_BYTES,
        MAX_IN_FLIGHT,
        SHUTDOWN_GRACE_SECS,
        READYZ_CACHE_SECS,
        METRICS_BIND_ADDR,
        WORKER_THREADS,
        ACCEPT_X_API_KEY,
        UPSTREAM_MAX_BODY_BYTES,
        UPSTREAM_MAX_ERROR_BYTES,
        SSE_MAX_LINE_BYTES,
        TOOL_MAX_ANSWER_BYTES,
        C1_MAX_HISTORY_BYTES,
        RELAY_COALESCE_BYTES,
        MAX_BODY_MEMORY_BYTES,
        MAX_ANSWER_MEMORY_BYTES,
    ];
}

pub(crate) const DEFAULT_BIND: &str = "127.0.0.1:8080";
pub(crate) const DEFAULT_TOKENS_FILE: &str = "tokens.yaml";
pub(crate) const DEFAULT_SQLITE_PATH: &str = "gateway.sqlite3";
/// Log lines below `warn` held in memory before one write to stderr ([`crate::logging`]).
pub const LOG_BUFFER_BYTES: usize = 64 * 1024;
/// The longest an `info` line waits in that buffer.
pub const LOG_FLUSH_INTERVAL: Duration = Duration::from_millis(100);

/// Byte bounds on what the gateway reads from upstreams, tools and its own store (issue 15):
/// every buffer filled from outside has one of these as its ceiling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub upstream_max_body_bytes: usize,
    pub upstream_max_error_bytes: usize,
    pub sse_max_line_bytes: usize,
    pub tool_max_answer_bytes: usize,
    pub c1_max_history_bytes: usize,
    /// Not a read cap but a write buffer: the most the relay holds back to join events.
    pub relay_coalesce_bytes: usize,
    /// Request bodies in flight, together: raw bytes plus the cost of their parsed tree
    /// (`checks::memory`). At least 3 × MAX_BODY_BYTES.
    pub max_body_memory_bytes: usize,
    /// Upstream answers, tool answers and what the tool loop builds from them, together: raw
    /// bytes, the cost of their parsed tree, and the answer until it was written
    /// (`checks::memory`, second budget). At least 2 × UPSTREAM_MAX_BODY_BYTES.
    pub max_answer_memory_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            upstream_max_body_bytes: 16 * 1024 * 1024,
            upstream_max_error_bytes: 64 * 1024,
            sse_max_line_bytes: 1024 * 1024,
            tool_max_answer_bytes: 1024 * 1024,
            c1_max_history_bytes: 8 * 1024 * 1024,
            relay_coalesce_bytes: 64 * 1024,
            max_body_memory_bytes: 256 * 1024 * 1024,
            max_answer_memory_bytes: 256 * 1024 * 1024,
        }
    }
}

/// Start-up failure: one line naming where and what.
#[derive(Debug, thiserror::Error)]
#[error("{source_name}: {path}: {problem}")]
pub struct ConfigError {
    pub source_name: String,
    pub path: String,
    pub problem: String,
}

impl ConfigError {
    fn new(source: impl Into<String>, path: impl Into<String>, problem: impl Into<String>) -> Self {
        ConfigError {
            source_name: source.into(),
            path: path.into(),
            problem: problem.into(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    pub rps: f64,
    pub burst: u32,
}

#[derive(Clone, Debug, Default)]
pub enum Allowed {
    #[default]
    All,
    Only(HashSet<String>),
}

impl Allowed {
    pub fn permits(&self, alias: &str) -> bool {
        match self {
            Allowed::All => true,
            Allowed::Only(set) => set.contains(alias),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Budget {
    /// An alias, or `*` for every model of the tenant.
    pub model: String,
    pub requests_per_day: Option<u64>,
    pub tokens_per_day: Option<u64>,
}

/// Per-token rules of tokens.yaml; `Tenant::token_rules[i]` belongs to `token_hashes[i]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TokenRule {
    /// Unix seconds after which the token answers `key_expired`.
    pub expires_at: Option<u64>,
    /// Requests (streams until they end) this token may have in flight at once.
    pub max_concurrent: Option<u32>,
}

#[derive(Clone, Debug, Default)]
pub struct Tenant {
    pub id: String,
    pub token_hashes: Vec<[u8; 32]>,
    /// Same length and order as `token_hashes` (missing entries mean "no rule").
    pub token_rules: Vec<TokenRule>,
    pub allowed: Allowed,
    /// The per-token bucket override (each token of the tenant gets its own bucket).
    pub rate_limit: Option<RateLimit>,
    /// One bucket shared by all the tenant's tokens (`tenant_rate_limit_exceeded`).
    pub tenant_rate_limit: Option<RateLimit>,
    /// A suspended tenant: every token answers `tenant_disabled`.
    pub disabled: bool,
    pub budgets: Vec<Budget>,
}

impl Tenant {
    pub fn token_rule(&self, index: usize) -> TokenRule {
        self.token_rules.get(index).copied().unwrap_or_default()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamKind {
    Litellm,
    Openrouter,
    Vllm,
    Openai,
}

impl UpstreamKind {
    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamKind::Litellm => "litellm",
            UpstreamKind::Openrouter => "openrouter",
            UpstreamKind::Vllm => "vllm",
            UpstreamKind::Openai => "openai",
        }
    }

    /// The readiness probe of each server kind, relative to the server's origin.
    fn default_health_path(self) -> &'static str {
        match self {
            UpstreamKind::Vllm => "/health",
            UpstreamKind::Litellm => "/health/liveliness",
            // Neither has an unauthenticated health route; the model list is cheap.
            UpstreamKind::Openrouter => "/api/v1/models",
            UpstreamKind::Openai => "/v1/models",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Upstream {
    pub name: String,
    pub kind: UpstreamKind,
    /// The OpenAI-style API base (`http://host:8000/v1`, `https://openrouter.ai/api/v1`).
    pub base_url: String,
    pub chat_url: String,
    pub health_url: String,
    pub api_key: Option<String>,
    /// Host of `base_url`, scrubbed from every message a client sees.
    pub host: String,
    /// Requests this upstream may have in flight from this gateway (None: unlimited).
    pub max_in_flight: Option<u32>,
    /// How long a request waits for a free in-flight slot before `upstream_overloaded`.
    pub queue_wait: Duration,
}

/// Default bounded wait for an in-flight slot of a capped upstream.
pub(crate) const DEFAULT_QUEUE_WAIT_MS: u64 = 100;

/// What a model can do; a request asking for more is refused before it is forwarded.
#[derive(Clone, Copy, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Capabilities {
    pub tools: bool,
    pub vision: bool,
    pub streaming: bool,
}

impl Default for Capabilities {
    fn default() -> Self {
        Capabilities {
            tools: true,
            vision: true,
            streaming: true,
        }
    }
}

#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Constraints {
    pub min_max_tokens: u32,
    pub max_output_tokens: Option<u32>,
    pub context_window: Option<u32>,
    pub accepts_image_url: bool,
    pub typical_response_seconds: Option<u32>,
}

#[derive(Clone, Debug)]
pub struct Model {
    pub alias: String,
    pub upstream: usize,
    pub upstream_model: String,
    pub constraints: Constraints,
    pub capabilities: Capabilities,
    pub fallbacks: Vec<String>,
}

#[derive(Clone, Debug)]
pub enum Executor {
    /// A deterministic tool implemented in the gateway (`toolloop::tools`).
    Builtin(Builtin),
    Http {
        url: String,
        timeout: Duration,
    },
}

/// The built-in tools, typed: the config file names one, the tool loop runs it by this value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Builtin {
    LookupWeather,
    Echo,
    Add,
}

impl Builtin {
    pub const ALL: [Builtin; 3] = [Builtin::LookupWeather, Builtin::Echo, Builtin::Add];

    /// The name used in `executor: { kind: builtin, name: … }`.
    pub fn name(self) -> &'static str {
        match self {
            Builtin::LookupWeather => "lookup_weather",
            Builtin::Echo => "echo",
            Builtin::Add => "add",
        }
    }

    pub fn from_name(name: &str) -> Option<Builtin> {
        Builtin::ALL.into_iter().find(|b| b.name() == name)
    }
}

#[derive(Clone, Debug)]
pub struct Tool {
    pub name: String,
    pub description: String,
    pub parameters: serde_json::Value,
    pub executor: Executor,
}

/// Bounds of the connection edge (`edge::serve`), each one environment variable.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerLimits {
    /// A request head must arrive whole within this (hyper's timer; also runs while a
    /// keep-alive connection waits for its next request).
    pub header_read_timeout: Duration,
    /// A connection with no request in flight and no bytes moving is closed after this.
    pub idle_timeout: Duration,
    /// Longest pause between two reads of a request body.
    pub body_read_timeout: Duration,
    /// Longest a write to the caller may stay blocked (a caller that stopped reading).
    pub send_timeout: Duration,
    /// After answering a request whose body it did not read to the end (refused early: 401,
    /// 413, 429 …), the connection keeps reading and discarding what the caller still sends,
    /// for at most this long, before it closes: closing a socket with unread bytes makes the
    /// kernel send a reset, and a caller still writing its body then loses the answer
    /// (nginx's lingering close).
    pub linger: Duration,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    /// Request line plus headers; past it hyper answers 431 (with the envelope).
    pub max_header_bytes: usize,
    /// Requests being handled at once (all routes but /healthz); past it an immediate 503.
    pub max_in_flight: usize,
    /// After SIGTERM/SIGINT: open streams end with `event: error`, and the process exits
    /// at the latest after this.
    pub shutdown_grace: Duration,
    /// How long one `/readyz` result is reused.
    pub readyz_cache: Duration,
    /// When set, `/metrics` is served here and not on the main address.
    pub metrics_bind: Option<SocketAddr>,
    /// Connection workers ([`crate::edge::workers`]): each accepted connection is served
    /// whole by one of these threads, each a single-threaded runtime with its own upstream
    /// connection pool, so a request never wakes another thread. 0: connections are served
    /// on the caller's runtime (tokio's work-stealing pool). Default: one per core.
    pub workers: usize,
}

/// The most connection workers `WORKER_THREADS` accepts.
pub const MAX_WORKER_THREADS: usize = 256;

/// One connection worker per core (the thread-per-core shape of nginx's workers).
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_WORKER_THREADS))
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            body_read_timeout: Duration::from_secs(30),
            send_timeout: Duration::from_secs(30),
            linger: Duration::from_secs(5),
            max_connections: 768,
            max_connections_per_ip: 256,
            max_header_bytes: 65_536,
            max_in_flight: 256,
            shutdown_grace: Duration::from_secs(10),
            readyz_cache: Duration::from_secs(2),
            metrics_bind: None,
            workers: default_workers(),
        }
    }
}

/// Bounds of the Redis paths (`admission::redis`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RedisLimits {
    /// One call, or one connect; past it the call fails and the breaker opens.
    pub timeout: Duration,
    /// Breaker open: calls fail at once; a background probe tries Redis this often.
    pub retry: Duration,
}

impl Default for RedisLimits {
    fn default() -> Self {
        RedisLimits {
            timeout: Duration::from_millis(500),
            retry: Duration::from_secs(1),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    pub bind: SocketAddr,
    pub limits: ServerLimits,
    pub max_body_bytes: usize,
    pub http_total_timeout: Duration,
    pub max_tool_iterations: u32,
    pub rate_limit: RateLimit,
    pub sqlite_path: PathBuf,
    pub redis_url: Option<String>,
    pub redis_fail_closed: bool,
    pub redis_limits: RedisLimits,
    pub log_json: bool,
    pub fault_injection: bool,
    /// Accept the token in `X-API-Key` too (ACCEPT_X_API_KEY, default off).
    pub accept_x_api_key: bool,
    pub tenants: Vec<Tenant>,
    pub upstreams: Vec<Upstream>,
    pub models: Vec<Model>,
    pub tools: Vec<Tool>,
    /// Byte caps on upstream, SSE, tool and /c1 history reads.
    pub reads: Limits,
    /// Demo mode: the only token is [`DEMO_TOKEN`] (unless one is configured) and the
    /// upstream is an in-process mock.
    pub demo: bool,
}

pub const DEMO_TOKEN: &str = "demo-token";
pub const DEMO_MODEL: &str = "demo";

/// An RFC 3339 UTC instant (`2026-12-31T23:59:59Z`) as Unix seconds.
pub fn unix_seconds(at: &str) -> Option<u64> {
    humantime::parse_rfc3339(at.trim())
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

pub fn sha256(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

mod env;
mod files;

#[cfg(test)]
mod tests;
