//! Logs are structured and never contain a bearer. Its own test binary: `tracing` caches
//! per-callsite interest process-wide, so a thread-local subscriber only sees every event
//! when no other test in the process ran first without one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use gateway::testing::{self, TOKEN};
use gateway::{app, AppState};
use serde_json::{json, Value};
use tower::ServiceExt;

async fn send(state: &AppState, token: &str) {
    let req = Request::post("/v1/chat/completions")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::from(
            json!({"model": "small", "messages": [{"role": "user", "content": "hi"}]}).to_string(),
        ))
        .unwrap();
    app(state.clone()).oneshot(req).await.unwrap();
}

/// A log sink for one test.
#[derive(Clone, Default)]
struct Sink(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn logs_are_structured_and_never_contain_the_bearer() {
    let sink = Sink::default();
    let writer = sink.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let s = AppState::new(testing::config()).unwrap();
    send(&s, TOKEN).await; // upstream refused: a warn line too
    send(&s, "sk-not-a-real-token-123").await;
    let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("\"code\":\"upstream_unavailable\""), "{text}");
    assert!(
        text.contains("\"code\":\"invalid_authorization\""),
        "{text}"
    );
    assert!(
        !text.contains(TOKEN) && !text.contains("sk-not-a-real-token-123"),
        "{text}"
    );
    for line in text.lines() {
        serde_json::from_str::<Value>(line).unwrap();
    }
}

/// An error keeps its cause: the storage failure's response body has no cause text, and the
/// edge's access log line has it, once, with the request id.
#[tokio::test]
async fn an_error_cause_is_logged_once_at_the_edge_and_never_sent() {
    let sink = Sink::default();
    let writer = sink.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let s = AppState::new(testing::config()).unwrap();
    let req = Request::get("/c1/conversations?user_id=alice")
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("x-request-id", "req-cause-1")
        .header("x-gateway-fault", "storage")
        .body(Body::empty())
        .unwrap();
    let resp = app(s.clone()).oneshot(req).await.unwrap();
    assert_eq!(resp.status(), 500);
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    let body = String::from_utf8(body.to_vec()).unwrap();
    assert!(body.contains("\"storage_error\""), "{body}");
    let cause = "injected storage failure";
    assert!(
        !body.contains(cause),
        "the cause leaked into the body: {body}"
    );
    let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
    let with_cause: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v.to_string().contains(cause))
        .collect();
    assert_eq!(
        with_cause.len(),
        1,
        "the cause is logged exactly once: {text}"
    );
    let fields = &with_cause[0]["fields"];
    assert_eq!(fields["request_id"], "req-cause-1", "{text}");
    assert_eq!(fields["code"], "storage_error", "{text}");
    assert_eq!(fields["message"], "request", "the access log line: {text}");
}
