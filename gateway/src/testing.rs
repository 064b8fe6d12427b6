//! Fixtures for tests, benches and the conformance harness: a small valid configuration
//! that callers point at their own upstream.

use std::sync::Arc;

use crate::config::{
    sha256, Allowed, Config, Constraints, Model, RateLimit, Tenant, Upstream, UpstreamKind,
};
use crate::state::AppState;

// The internals that the integration tests and bench/ drive directly, re-exported here so
// that the stage modules stay private in a production build.
pub use crate::admission::budget::{budget_key, prompt_estimate, DAY};
pub use crate::admission::rate::LocalLimiters;
pub use crate::admission::redis::RedisShared;
pub use crate::checks::images::{check_data_uri, samples};
pub use crate::checks::{check_chat, parse_object, Api};
pub use crate::edge::routes::routes;
pub use crate::error::ApiError;
pub use crate::routes::discovery::{docs_html, errors_json};
pub use crate::state::FixedClock;
pub use crate::store::Store;
pub use crate::upstream::sse::{done, sse_data, Hooks, Piece, Relayed, UpstreamEvents};
pub use crate::upstream::sse_splice::RawChunk;

pub const TOKEN: &str = "tok-primary";
pub const OTHER_TOKEN: &str = "tok-other";

pub fn upstream(name: &str, kind: UpstreamKind, api_base: &str) -> Upstream {
    Upstream {
        name: name.into(),
        kind,
        base_url: api_base.into(),
        chat_url: format!("{api_base}/chat/completions"),
        health_url: format!("{api_base}/health"),
        api_key: None,
        host: "127.0.0.1".into(),
        max_in_flight: None,
        queue_wait: std::time::Duration::from_millis(crate::config::DEFAULT_QUEUE_WAIT_MS),
    }
}

pub fn model(alias: &str, upstream: usize, min: u32) -> Model {
    Model {
        alias: alias.into(),
        upstream,
        upstream_model: format!("upstream-{alias}"),
        constraints: Constraints {
            min_max_tokens: min,
            max_output_tokens: Some(4096),
            context_window: Some(8192),
            accepts_image_url: false,
            typical_response_seconds: Some(1),
        },
        capabilities: Default::default(),
        fallbacks: vec![],
    }
}

/// One vLLM upstream on a closed port, alias `small` (floor 16) for tenant `primary`; tenant
/// `other` may use nothing.
pub fn config() -> Config {
    config_with_upstream("http://127.0.0.1:9/v1")
}

pub fn config_with_upstream(api_base: &str) -> Config {
    Config {
        bind: "127.0.0.1:0".parse().unwrap_or_else(|_| unreachable!()),
        limits: Default::default(),
        max_body_bytes: 1024 * 1024,
        http_total_timeout: std::time::Duration::from_secs(5),
        max_tool_iterations: 10,
        rate_limit: RateLimit {
            rps: 1.0,
            burst: 30,
        },
        sqlite_path: ":memory:".into(),
        redis_url: None,
        redis_fail_closed: false,
        redis_limits: Default::default(),
        log_json: false,
        fault_injection: true,
        accept_x_api_key: false,
        tenants: vec![
            Tenant {
                id: "primary".into(),
                token_hashes: vec![sha256(TOKEN)],
                allowed: Allowed::All,
                rate_limit: None,
                budgets: vec![],
                ..Tenant::default()
            },
            Tenant {
                id: "other".into(),
                token_hashes: vec![sha256(OTHER_TOKEN)],
                allowed: Allowed::Only(Default::default()),
                rate_limit: Some(RateLimit { rps: 1.0, burst: 2 }),
                budgets: vec![],
                ..Tenant::default()
            },
        ],
        upstreams: vec![upstream("local", UpstreamKind::Vllm, api_base)],
        models: vec![model("small", 0, 16)],
        tools: vec![],
        reads: Default::default(),
        demo: false,
    }
}

pub fn state_at(now_unix: u64) -> AppState {
    AppState::with_clock(config(), Arc::new(FixedClock(now_unix))).unwrap_or_else(|e| panic!("{e}"))
}
