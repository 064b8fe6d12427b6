//! The gateway doubles of seeds 002 and 003 (`MockConfig::gateway`), pinned to their seed
//! sections: credential header and wording, body shapes, codes, `Retry-After`, buckets per
//! key, and a scripted upstream failure answered without the upstream's message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use mocks::{MockConfig, MockServer, Personality, Step};
use serde_json::{json, Value};

async fn double(p: Personality, key: &str, limited: &str) -> MockServer {
    let config = MockConfig {
        personality: p,
        api_key: Some(key.into()),
        limited_keys: vec![limited.into()],
        gateway: true,
        max_body_bytes: Some(1024),
        ..MockConfig::default()
    };
    MockServer::start_with(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

async fn send(
    mock: &MockServer,
    header: (&str, &str),
    body: impl Into<reqwest::Body>,
) -> (u16, Option<String>, Value) {
    let mut req = reqwest::Client::new()
        .post(mock.chat_url())
        .header("content-type", "application/json");
    if !header.0.is_empty() {
        req = req.header(header.0, header.1);
    }
    let resp = req.body(body).send().await.unwrap();
    let status = resp.status().as_u16();
    let retry = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, retry, body)
}

fn chat(text: &str) -> String {
    json!({"model": "mock-model", "messages": [{"role": "user", "content": text}]}).to_string()
}

// Seed 002 § 401, § Error Response From Source (Authentication Check, Rate Limit Check), § 500.
#[tokio::test]
async fn llm_gateway_api_speaks_seed_002() {
    let m = double(Personality::LlmGatewayApi, "k1", "k-limited").await;
    let detail = |b: &Value| b["detail"].as_str().unwrap_or_default().to_owned();
    let (s, _, b) = send(&m, ("", ""), chat("hi")).await;
    assert_eq!(
        (s, detail(&b).as_str()),
        (401, "Invalid or missing API Key")
    );
    let (s, _, b) = send(&m, ("authorization", "Bearer k1"), chat("hi")).await;
    assert_eq!(
        (s, detail(&b).as_str()),
        (401, "Invalid or missing API Key")
    );
    let (s, _, _) = send(&m, ("x-api-key", "k1"), chat("hi")).await;
    assert_eq!(s, 200);
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(send(&m, ("x-api-key", "k-limited"), chat("hi")).await.0);
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    let (_, _, b) = send(&m, ("x-api-key", "k-limited"), chat("hi")).await;
    assert_eq!(
        detail(&b),
        "Too many requests. Please wait before trying again."
    );
    m.script(
        "up5",
        vec![Step::error(500, "http://10.1.2.3:8000 sk-live-1 exploded")],
    );
    let (s, _, b) = send(&m, ("x-api-key", "k1"), chat("mock:up5")).await;
    assert_eq!(s, 500);
    assert_eq!(
        detail(&b),
        "Internal server error occurred while processing your request"
    );
    let (s, _, b) = send(&m, ("x-api-key", "k1"), "{not json").await;
    assert!(s == 400 && b["detail"].is_string(), "{s} {b}");
    let (s, _, b) = send(&m, ("x-api-key", "k1"), "x".repeat(4096)).await;
    assert!(s == 413 && b["detail"].is_string(), "{s} {b}");
}

// Seed 003 § 401 (key_malformed, key_invalid), § 400, § 403, § 429 (Retry-After), § 500/503.
#[tokio::test]
async fn ownllm_speaks_seed_003() {
    let m = double(Personality::OwnLlm, "sk-ownllm-1", "sk-ownllm-limited").await;
    let code = |b: &Value| {
        (
            b["error"]["type"].as_str().unwrap_or_default().to_owned(),
            b["error"]["code"].as_str().unwrap_or_default().to_owned(),
        )
    };
    let auth = |k: &'static str| ("authorization", k);
    for header in [("", ""), auth("Bearer cf-not-a-key"), auth("sk-ownllm-1")] {
        let (s, _, b) = send(&m, header, chat("hi")).await;
        assert_eq!(s, 401, "{header:?}");
        assert_eq!(
            code(&b),
            ("authentication_error".into(), "key_malformed".into())
        );
    }
    let (s, _, b) = send(&m, auth("Bearer sk-ownllm-revoked"), chat("hi")).await;
    assert_eq!((s, code(&b).1.as_str()), (401, "key_invalid"));
    let ok = auth("Bearer sk-ownllm-1");
    let no_model = json!({"messages": [{"role": "user", "content": "hi"}]}).to_string();
    let (s, _, b) = send(&m, ok, no_model).await;
    assert_eq!((s, code(&b).1.as_str()), (400, "model_required"));
    let unknown = json!({"model": "nope", "messages": []}).to_string();
    let (s, _, b) = send(&m, ok, unknown).await;
    assert_eq!(
        code(&b),
        ("permission_error".into(), "scope_required".into())
    );
    assert_eq!(s, 403);
    m.script("ctx", vec![Step::context_length(8192, 9000)]);
    let (s, _, b) = send(&m, ok, chat("mock:ctx")).await;
    assert_eq!((s, code(&b).1.as_str()), (400, "context_length_exceeded"));
    let limited = auth("Bearer sk-ownllm-limited");
    for _ in 0..3 {
        assert_eq!(send(&m, limited, chat("hi")).await.0, 200);
    }
    let (s, retry, b) = send(&m, limited, chat("hi")).await;
    assert_eq!((s, retry.as_deref()), (429, Some("1")));
    assert_eq!(code(&b).0, "rate_limit_exceeded");
    m.script(
        "up",
        vec![
            Step::error(502, "http://10.1.2.3:8000 sk-live-1"),
            Step::error(500, "sk-live-1"),
        ],
    );
    let (s, _, b) = send(&m, ok, chat("mock:up")).await;
    assert_eq!((s, code(&b).0.as_str()), (503, "agent_unavailable"));
    assert!(!b.to_string().contains("sk-live-1"), "{b}");
    let (s, _, b) = send(&m, ok, chat("mock:up")).await;
    assert_eq!((s, code(&b).1.as_str()), (500, "internal_error"));
}
