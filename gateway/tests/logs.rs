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
