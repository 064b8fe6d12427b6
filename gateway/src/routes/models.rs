//! `GET /v1/models` (OpenAI list format) and `GET /v1/info` (constraints and limits).

use axum::extract::State;
use axum::{Extension, Json};
use serde_json::{json, Value};

use crate::admission::Principal;
use crate::state::AppState;

pub(crate) async fn list(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
) -> Json<Value> {
    let tenant = &state.config.tenants[p.tenant];
    let data: Vec<Value> = state
        .config
        .models
        .iter()
        .filter(|m| tenant.allowed.permits(&m.alias))
        .map(|m| json!({"id": m.alias, "object": "model", "created": 0, "owned_by": "gateway"}))
        .collect();
    Json(json!({"object": "list", "data": data}))
}

/// How many upstream calls each path of a request makes (also in README and ARCHITECTURE).
pub(crate) const UPSTREAM_CALLS: &str = "A request without server-side tool calls makes 1 upstream call. Each round in which the model calls server-side tools adds 1 call (the tools run in the gateway, then the model is called again). Reaching max_tool_iterations rounds without a final answer adds exactly 1 synthesis call (tools: []): at most max_tool_iterations + 1 calls. Two identical consecutive tool-call rounds stop the loop at once with 1 synthesis call. Quota and rate-limit refusals make 0 calls.";

pub(crate) async fn info(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
) -> Json<Value> {
    let cfg = &state.config;
    let tenant = &cfg.tenants[p.tenant];
    let rate = tenant.rate_limit.unwrap_or(cfg.rate_limit);
    let tools: Vec<&str> = cfg.tools.iter().map(|t| t.name.as_str()).collect();
    let models: Vec<Value> = cfg
        .models
        .iter()
        .filter(|m| tenant.allowed.permits(&m.alias))
        .map(|m| {
            let up = &cfg.upstreams[m.upstream];
            json!({
                "alias": m.alias,
                "capabilities": {
                    "chat": true,
                    "streaming": m.capabilities.streaming,
                    "tools": m.capabilities.tools,
                    "vision": m.capabilities.vision,
                    "server_side_tools": tools,
                    "image_input": m.capabilities.vision,
                    "image_url": m.constraints.accepts_image_url,
                },
                "constraints": m.constraints,
                "upstream": {"max_in_flight": up.max_in_flight, "queue_wait_ms": up.queue_wait.as_millis() as u64},
                "fallbacks": m.fallbacks,
            })
        })
        .collect();
    let budgets: Vec<Value> = tenant
        .budgets
        .iter()
        .map(|b| json!({"model": b.model, "requests_per_day": b.requests_per_day, "tokens_per_day": b.tokens_per_day}))
        .collect();
    Json(json!({
        "gateway": {"name": "dgx-reference-gateway", "version": env!("CARGO_PKG_VERSION"), "catalog_cut": "2.32"},
        "tenant": tenant.id,
        "models": models,
        "limits": {
            "rate_limit": {"requests_per_second": rate.rps, "burst": rate.burst, "key": "sha256(bearer)"},
            "budgets": budgets,
            "tenant_rate_limit": tenant.tenant_rate_limit.map(|r| json!({"requests_per_second": r.rps, "burst": r.burst})),
            "max_concurrent": tenant.token_rule(p.token).max_concurrent,
            "expires_at": tenant.token_rule(p.token).expires_at,
        },
        "max_body_bytes": cfg.max_body_bytes,
        "max_tool_iterations": cfg.max_tool_iterations,
        "http_total_timeout_secs": cfg.http_total_timeout.as_secs_f64(),
        "tool_loop": {"upstream_calls": UPSTREAM_CALLS},
    }))
}
