//! Mock LLM upstreams with the wire formats of vLLM, LiteLLM and OpenRouter, scriptable per
//! test scenario, so many scenarios can share one mock at once.
//!
//! A scenario puts a marker (`mock:<name>`, `<name>` from `[A-Za-z0-9_.-]+`) in its message
//! content; every gateway forwards content. The mock plays the marker's script, one step per
//! matching request, records each request under the marker, and answers everything else with
//! a deterministic default reply.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use mocks::{MockServer, Personality, Step};
//! let mock = MockServer::start(Personality::Litellm).await?;
//! mock.script("quota-1", vec![Step::quota_exhausted(), Step::reply("ok")]);
//! // ... send `{"messages":[{"role":"user","content":"hi mock:quota-1"}], ...}` via the gateway
//! let records = mock.records("quota-1");
//! # drop(records); Ok(()) }
//! ```
//!
//! # Layout
//! - `personality/` — one file per upstream dialect (`vllm.rs`, `litellm.rs`, `openrouter.rs`)
//!   behind the one `Dialect` trait (`mod.rs`): routes, ids, chunk framing, bodies, every error
//!   and its wording; `wire.rs` frames chunks by asking the dialect. A new upstream is one file
//!   there plus one registry line.
//! - `script.rs` — `Step` / `Action` (public JSON), the script store, marker parsing.
//! - `server.rs` — `MockState`, the dialect's routes, picking the step for a request.
//! - `exchange.rs` — turning a step into a response (frames or a body).
//! - `stream.rs` — playing a planned response frame by frame (delays, aborts).
//! - `gateway.rs` — the gateway stage of a double (`MockConfig::gateway`): field types, known
//!   models, token buckets; seed 002 and 003 are dialects in `personality/`.
//! - `control.rs` — the `/__mock` control API.
//! - `record.rs` — recorded requests and their outcome.
//! - `main.rs` — the `mocks` binary.
//!
//! Invariant: no global state. Two `MockServer`s in one process share nothing.

// `pub` inside the private modules only for what is re-exported below, so dead code shows.
#![warn(unreachable_pub)]

mod control;
mod exchange;
mod gateway;
mod personality;
mod record;
mod request;
mod script;
mod server;
mod stream;
mod tool_call;

use std::net::SocketAddr;
use std::time::Duration;

pub use control::parse_script;
pub use personality::{Personality, UnknownPersonality};
pub use record::{Outcome, Recorded};
pub use script::{
    find_marker, find_marker_in, is_marker_name, Action, ScriptBody, Shape, Step, StepUsage, Tear,
    ToolCallSpec,
};
pub use server::{router, MockState};

/// How the mock behaves beyond scripts: timing knobs for load tests, and auth.
#[derive(Clone, Debug, Default)]
pub struct MockConfig {
    pub personality: Personality,
    /// Delay before the first chunk (and before a non-streaming answer).
    pub ttft_ms: u64,
    /// Delay between content chunks of default and `reply` answers.
    pub inter_chunk_ms: u64,
    /// Up to this much random extra delay per chunk.
    pub jitter_ms: u64,
    /// Seeds ids and jitter, so runs are repeatable.
    pub seed: u64,
    /// Content chunks of the default streamed reply; 0 means 4.
    pub default_chunks: usize,
    /// When set, requests without `Authorization: Bearer <key>` get the personality's 401.
    pub api_key: Option<String>,
    /// Answer as a gateway double of the personality's seed system instead of as an
    /// upstream: credentials in the dialect's header, field types and models checked, a
    /// token bucket per limited key, and a scripted upstream error answered in the double's
    /// own words (never relaying the upstream's message).
    pub gateway: bool,
    /// Further accepted keys (besides `api_key`), not rate limited.
    pub keys: Vec<String>,
    /// Accepted keys with a small bucket (burst 3, 1 request/s), for rate-limit tests.
    pub limited_keys: Vec<String>,
    /// The body cap in bytes (`None`: 64 MiB); a double answers over it with its own 4xx.
    pub max_body_bytes: Option<usize>,
    /// Validate like the real server even as an upstream: a field of the wrong type and a
    /// model it does not serve get the dialect's 4xx (vLLM: 400, and 404 "The model `x`
    /// does not exist."), as a real vLLM behind a gateway under test would answer them.
    pub strict: bool,
    /// The model names served (`strict` and `gateway`); empty = the dialect's model list.
    pub served_models: Vec<String>,
}

/// A mock upstream serving on a local socket until shut down or dropped.
#[derive(Debug)]
pub struct MockServer {
    addr: SocketAddr,
    state: MockState,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl MockServer {
    /// A mock with default timing on an ephemeral loopback port.
    pub async fn start(personality: Personality) -> std::io::Result<MockServer> {
        let config = MockConfig {
            personality,
            ..MockConfig::default()
        };
        MockServer::start_with(config, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    pub async fn start_with(config: MockConfig, bind: SocketAddr) -> std::io::Result<MockServer> {
        let listener = tokio::net::TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let state = MockState::new(config);
        let app = router(state.clone());
        let shutdown = state.shutdown_signal();
        // Without TCP_NODELAY each small SSE write waits for the client's delayed ACK (~40 ms).
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::warn!(error = %e, "mock server stopped with an error");
            }
        });
        Ok(MockServer {
            addr,
            state,
            task: Some(task),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `base_url` plus the personality's API prefix: what an OpenAI SDK takes as `base_url`.
    pub fn api_base(&self) -> String {
        format!("{}{}", self.base_url(), self.personality().api_prefix())
    }

    /// The full chat completions URL.
    pub fn chat_url(&self) -> String {
        format!("{}{}", self.base_url(), self.personality().chat_path())
    }

    pub fn personality(&self) -> Personality {
        self.state.personality()
    }

    pub fn state(&self) -> &MockState {
        &self.state
    }

    /// Replace the script for `marker`.
    pub fn script(&self, marker: &str, steps: Vec<Step>) {
        self.state.script(marker, steps);
    }

    pub fn records(&self, marker: &str) -> Vec<Recorded> {
        self.state.records(marker)
    }

    /// Forget every script and record.
    pub fn reset(&self) {
        self.state.reset();
    }

    /// See [`MockState::set_vllm_legacy_errors`].
    pub fn set_vllm_legacy_errors(&self, legacy: bool) {
        self.state.set_vllm_legacy_errors(legacy);
    }

    /// Stop accepting, end hanging requests, and wait (briefly) for open exchanges to finish.
    pub async fn shutdown(mut self) {
        self.state.trigger_shutdown();
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.state.trigger_shutdown();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
