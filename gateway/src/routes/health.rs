//! Liveness, readiness (each upstream probed, bounded, the answer reused for
//! READYZ_CACHE_SECS) and the Prometheus endpoint.

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use crate::state::AppState;

pub(crate) async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// One probe round per READYZ_CACHE_SECS whatever the number of callers: the lock makes
/// concurrent callers wait for the round in progress (bounded by the probe timeouts) instead
/// of each fanning out to every upstream with its key.
pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    let mut cache = state.edge.ready_cache.lock().await;
    let fresh = cache
        .as_ref()
        .filter(|(at, _, _)| at.elapsed() < state.config.limits.readyz_cache);
    let (status, body) = match fresh {
        Some((_, status, body)) => (*status, body.clone()),
        None => {
            let (status, body) = probe(&state).await;
            *cache = Some((std::time::Instant::now(), status, body.clone()));
            (status, body)
        }
    };
    drop(cache);
    (status, Json(body)).into_response()
}

async fn probe(state: &AppState) -> (StatusCode, Value) {
    let probes = state.config.upstreams.iter().map(|u| {
        let http = state.http().clone();
        async move {
            let mut req = http.get(&u.health_url).timeout(PROBE_TIMEOUT);
            if let Some(k) = &u.api_key {
                req = req.bearer_auth(k);
            }
            let detail = match req.send().await {
                Ok(r) if !r.status().is_server_error() => Ok(r.status().as_u16()),
                Ok(r) => Err(format!("answered {}", r.status().as_u16())),
                Err(e) if e.is_timeout() => Err("timed out".to_owned()),
                Err(e) if e.is_connect() => Err("connection refused or unreachable".to_owned()),
                Err(_) => Err("request failed".to_owned()),
            };
            (u.name.clone(), detail)
        }
    });
    let results = futures_util::future::join_all(probes).await;
    let mut checks = Map::new();
    let mut ready = true;
    let sqlite = tokio::time::timeout(PROBE_TIMEOUT, state.store.check_writable()).await;
    let sqlite_ok = matches!(sqlite, Ok(Ok(())));
    ready &= sqlite_ok;
    checks.insert(
        "sqlite".into(),
        if sqlite_ok {
            json!({"ok": true})
        } else {
            json!({"ok": false, "detail": "not writable"})
        },
    );
    if let Some(redis) = &state.redis {
        let r = redis.ping().await;
        if r.is_err() {
            state.metrics.redis_error();
        }
        // In fail-open mode the gateway still serves (with per-process limits), so it stays
        // ready; the check says so.
        ready &= r.is_ok() || !redis.fail_closed;
        checks.insert(
            "redis".into(),
            match r {
                Ok(()) => json!({"ok": true}),
                Err(e) => json!({"ok": false, "detail": e.to_string(), "fail_mode": if redis.fail_closed { "closed" } else { "open" }}),
            },
        );
    }
    for (name, r) in results {
        let v = match r {
            Ok(status) => json!({"ok": true, "status": status}),
            Err(detail) => {
                ready = false;
                json!({"ok": false, "detail": detail})
            }
        };
        checks.insert(format!("upstream:{name}"), v);
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({"status": if ready { "ready" } else { "not_ready" }, "checks": checks});
    (status, body)
}

pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    // The budgets are atomics of their own: their gauges are read at the moment of asking.
    state.metrics.memory_held("body", state.body_memory.used());
    state
        .metrics
        .memory_held("answer", state.answer_memory.used());
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}
