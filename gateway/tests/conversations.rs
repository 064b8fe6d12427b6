//! /c1 over real sockets: streaming exchanges are stored before `[DONE]`, concurrent
//! exchanges of one conversation stay in order, and each personality's quota answer maps to
//! the right catalog code.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use gateway::config::UpstreamKind;
use gateway::testing::{self, TOKEN};
use gateway::AppState;
use mocks::{MockServer, Personality, Step};
use serde_json::{json, Value};

async fn gateway_on(mock: &MockServer, dir: &tempfile::TempDir) -> gateway::Running {
    let mut cfg = testing::config_with_upstream(&mock.api_base());
    cfg.sqlite_path = dir.path().join("c.sqlite3");
    cfg.rate_limit = gateway::config::RateLimit {
        rps: 1000.0,
        burst: 1000,
    };
    gateway::spawn(AppState::new(cfg).unwrap(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_streamed_exchange_is_stored_before_done() {
    let mock = MockServer::start(Personality::Vllm).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway_on(&mock, &dir).await;
    mock.script("c1s", vec![Step::stream(["streamed ", "answer"], 5)]);
    let http = reqwest::Client::new();
    let resp = http
        .post(format!("{}/c1/chat/completions", gw.base_url()))
        .bearer_auth(TOKEN)
        .json(&json!({"model": "small", "user_id": "u1", "stream": true, "messages": [{"role": "user", "content": "hi mock:c1s"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let id = resp.headers()["x-conversation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let mut s = resp.bytes_stream().eventsource();
    let mut saw_done = false;
    while let Some(e) = s.next().await {
        let e = e.unwrap();
        if e.data == "[DONE]" {
            saw_done = true;
            // At [DONE] the exchange must already be on disk.
            let conv: Value = http
                .get(format!(
                    "{}/c1/conversations/{id}?user_id=u1",
                    gw.base_url()
                ))
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(conv["messages"][1]["content"], "streamed answer", "{conv}");
        } else {
            let v: Value = serde_json::from_str(&e.data).unwrap();
            assert_eq!(v["conversation_id"], id.as_str());
        }
    }
    assert!(saw_done);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_exchanges_of_one_conversation_stay_in_order() {
    let mock = MockServer::start(Personality::Vllm).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway_on(&mock, &dir).await;
    let http = reqwest::Client::new();
    let url = format!("{}/c1/chat/completions", gw.base_url());
    let first: Value = http
        .post(&url)
        .bearer_auth(TOKEN)
        .json(&json!({"model": "small", "user_id": "u", "messages": [{"role": "user", "content": "q0"}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = first["conversation_id"].as_str().unwrap().to_owned();
    let tasks: Vec<_> = (1..=12)
        .map(|i| {
            let (http, url, id) = (http.clone(), url.clone(), id.clone());
            tokio::spawn(async move {
                let r = http
                    .post(url)
                    .bearer_auth(TOKEN)
                    .json(&json!({"model": "small", "user_id": "u", "conversation_id": id, "messages": [{"role": "user", "content": format!("q{i}")}]}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let conv: Value = http
        .get(format!("{}/c1/conversations/{id}?user_id=u", gw.base_url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let msgs = conv["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 26);
    for pair in msgs.chunks(2) {
        assert_eq!(pair[0]["role"], "user");
        assert_eq!(pair[1]["role"], "assistant");
        // the mock echoes the last user message: each answer follows its own question
        let q = pair[0]["content"].as_str().unwrap();
        assert!(pair[1]["content"].as_str().unwrap().contains(q), "{pair:?}");
    }
}

#[tokio::test]
async fn each_personality_quota_answer_maps_to_the_catalog() {
    for (personality, kind, step, want) in [
        (
            Personality::Litellm,
            UpstreamKind::Litellm,
            Step::quota_exhausted(),
            "model_quota_exhausted",
        ),
        (
            Personality::Vllm,
            UpstreamKind::Vllm,
            Step::quota_exhausted(),
            "model_quota_exhausted",
        ),
        (
            Personality::OpenRouter,
            UpstreamKind::Openrouter,
            Step::daily_limit(),
            "openrouter_daily_quota_exhausted",
        ),
        (
            Personality::OpenRouter,
            UpstreamKind::Openrouter,
            Step::quota_exhausted(),
            // credit exhaustion (402) is provider-agnostic; only the daily limit names OpenRouter
            "model_quota_exhausted",
        ),
        (
            Personality::Litellm,
            UpstreamKind::Litellm,
            Step::context_length(8192, 9000),
            "context_length_exceeded",
        ),
        (
            Personality::OpenRouter,
            UpstreamKind::Openrouter,
            Step::error(503, "provider down"),
            "upstream_error",
        ),
    ] {
        let mock = MockServer::start(personality).await.unwrap();
        let mut cfg = testing::config();
        cfg.upstreams = vec![testing::upstream("u", kind, &mock.api_base())];
        let gw = gateway::spawn(AppState::new(cfg).unwrap(), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        mock.script("q", vec![step]);
        let r = reqwest::Client::new()
            .post(format!("{}/v1/chat/completions", gw.base_url()))
            .bearer_auth(TOKEN)
            .json(
                &json!({"model": "small", "messages": [{"role": "user", "content": "hi mock:q"}]}),
            )
            .send()
            .await
            .unwrap();
        let retry = r.headers().get("retry-after").is_some();
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], want, "{personality:?}: {v}");
        if want.contains("quota") {
            assert!(retry);
            let msg = v["error"]["message"].as_str().unwrap().to_lowercase();
            assert!(
                !msg.contains("http") && !msg.contains("budget:") && !msg.contains("litellm"),
                "{msg}"
            );
        }
    }
}

#[tokio::test]
async fn a_streamed_tool_call_answer_is_stored_whole() {
    let mock = MockServer::start(Personality::Vllm).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway_on(&mock, &dir).await;
    mock.script(
        "c1t",
        vec![Step::tool_calls(vec![
            mocks::ToolCallSpec::new("my_tool", r#"{"q":"x"}"#).with_id("call_7")
        ])
        .with_arg_splits(3)],
    );
    let http = reqwest::Client::new();
    let tools = json!([{"type": "function", "function": {"name": "my_tool", "parameters": {"type": "object"}}}]);
    let resp = http
        .post(format!("{}/c1/chat/completions", gw.base_url()))
        .bearer_auth(TOKEN)
        .json(&json!({"model": "small", "user_id": "u2", "stream": true, "tools": tools, "messages": [{"role": "user", "content": "go mock:c1t"}]}))
        .send()
        .await
        .unwrap();
    let id = resp.headers()["x-conversation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let _ = resp.text().await.unwrap();
    let conv: Value = http
        .get(format!(
            "{}/c1/conversations/{id}?user_id=u2",
            gw.base_url()
        ))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let stored = &conv["messages"][1];
    assert_eq!(stored["tool_calls"][0]["id"], "call_7", "{conv}");
    assert_eq!(
        stored["tool_calls"][0]["function"]["arguments"],
        r#"{"q":"x"}"#
    );
}

/// The storage fault belongs to one request (issue 10's bug: it used to set a process-wide
/// flag that was never reset). The storage-fault scenarios of features/conversations.feature
/// — saving to and listing from a failing store — run against ONE gateway in both orders,
/// each followed by healthy exchanges that must not notice them.
#[tokio::test]
async fn storage_faults_hit_only_their_own_request_in_any_order() {
    let mock = MockServer::start(Personality::Vllm).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway_on(&mock, &dir).await;
    let http = reqwest::Client::new();
    let base = gw.base_url();
    let save = |user: &str, fault: bool| {
        let mut req = http
            .post(format!("{base}/c1/chat/completions"))
            .bearer_auth(TOKEN)
            .json(&json!({"model": "small", "user_id": user, "messages": [{"role": "user", "content": "this will not be saved"}]}));
        if fault {
            req = req.header("x-gateway-fault", "storage");
        }
        req.send()
    };
    let list = |user: &str, fault: bool| {
        let mut req = http
            .get(format!("{base}/c1/conversations?user_id={user}"))
            .bearer_auth(TOKEN);
        if fault {
            req = req.header("x-gateway-fault", "storage");
        }
        req.send()
    };
    async fn code(resp: reqwest::Response) -> (u16, Value) {
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap())
    }
    for (round, listing_first) in [(0, true), (1, false), (2, true)] {
        let user = format!("alice{round}");
        let faulted = if listing_first {
            [
                code(list(&user, true).await.unwrap()).await,
                code(save(&user, true).await.unwrap()).await,
            ]
        } else {
            [
                code(save(&user, true).await.unwrap()).await,
                code(list(&user, true).await.unwrap()).await,
            ]
        };
        for (status, body) in faulted {
            assert_eq!(status, 500, "round {round}: {body}");
            assert_eq!(body["error"]["code"], "storage_error", "round {round}");
        }
        // Right after, without the header: the store is healthy and nothing was half-written.
        let (status, body) = code(list(&user, false).await.unwrap()).await;
        assert_eq!((status, &body["data"]), (200, &json!([])), "round {round}");
        let (status, body) = code(save(&user, false).await.unwrap()).await;
        assert_eq!(status, 200, "round {round}: {body}");
        let (_, body) = code(list(&user, false).await.unwrap()).await;
        assert_eq!(
            body["data"].as_array().map(Vec::len),
            Some(1),
            "round {round}"
        );
    }
}
