//! Issue 15 bounds, end to end over loopback: no redirects followed, byte caps on every
//! upstream read (success body, error body, one SSE line), the gateway's own revoked key.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use gateway::config::{Builtin, Executor, Limits, Tool};
use gateway::testing::{self, TOKEN};
use gateway::AppState;
use mocks::{MockServer, Personality, Step};
use serde_json::{json, Value};

struct Rig {
    mock: MockServer,
    gw: gateway::Running,
    http: reqwest::Client,
}

async fn rig(limits: Limits) -> Rig {
    rig_with(limits, Vec::new()).await
}

async fn rig_with(limits: Limits, tools: Vec<Tool>) -> Rig {
    let mock = MockServer::start(Personality::Vllm).await.unwrap();
    let mut cfg = testing::config_with_upstream(&mock.api_base());
    cfg.reads = limits;
    cfg.tools = tools;
    let gw = gateway::spawn(AppState::new(cfg).unwrap(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    Rig {
        mock,
        gw,
        http: reqwest::Client::new(),
    }
}

impl Rig {
    async fn post(&self, marker: &str, stream: bool) -> (u16, Value) {
        let body = json!({"model": "small", "stream": stream,
            "messages": [{"role": "user", "content": format!("hi mock:{marker}")}]});
        let resp = self
            .http
            .post(format!("{}/v1/chat/completions", self.gw.base_url()))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}

fn small_caps() -> Limits {
    Limits {
        upstream_max_body_bytes: 256 * 1024,
        upstream_max_error_bytes: 8 * 1024,
        sse_max_line_bytes: 64 * 1024,
        ..Limits::default()
    }
}

#[tokio::test]
async fn an_upstream_307_is_an_upstream_error_and_is_not_followed() {
    let r = rig(Limits::default()).await;
    // Following it would re-POST the prompt (same marker) to the location: a second record.
    r.mock.script(
        "redir",
        vec![Step::error_with_headers(
            307,
            "moved",
            [("location", r.mock.chat_url())],
        )],
    );
    let (status, v) = r.post("redir", false).await;
    assert_eq!(status, 502, "{v}");
    assert_eq!(v["error"]["code"], "upstream_error");
    assert_eq!(
        r.mock.records("redir").len(),
        1,
        "the redirect was followed"
    );
}

#[tokio::test]
async fn an_upstream_401_or_403_is_upstream_error_502_for_the_operator() {
    let r = rig(Limits::default()).await;
    for status in [401u16, 403] {
        let marker = format!("auth{status}");
        r.mock.script(
            &marker,
            vec![Step::error(status, "Invalid API key provided")],
        );
        let (got, v) = r.post(&marker, false).await;
        assert_eq!(got, 502, "{v}");
        assert_eq!(v["error"]["code"], "upstream_error");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains("operator") && msg.contains("not a problem with your token"),
            "{msg}"
        );
    }
}

#[tokio::test]
async fn a_huge_success_body_is_refused_at_the_cap() {
    let r = rig(small_caps()).await;
    r.mock.script("big", vec![Step::reply("x".repeat(2 << 20))]);
    let (status, v) = r.post("big", false).await;
    assert_eq!(status, 502, "{v}");
    assert_eq!(v["error"]["code"], "upstream_error");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("UPSTREAM_MAX_BODY_BYTES"),
        "{v}"
    );
    // Within the cap the same answer passes.
    r.mock
        .script("fits", vec![Step::reply("x".repeat(100 * 1024))]);
    let (status, v) = r.post("fits", false).await;
    assert_eq!(status, 200, "{v}");
}

#[tokio::test]
async fn a_huge_error_body_is_read_only_to_the_cap() {
    let r = rig(small_caps()).await;
    let mut message = "the engine failed; ".to_owned();
    message.push_str(&"y".repeat(4 << 20));
    r.mock.script("bigerr", vec![Step::error(500, message)]);
    let (status, v) = r.post("bigerr", false).await;
    assert_eq!(status, 502, "{v}");
    assert_eq!(v["error"]["code"], "upstream_error");
    let msg = v["error"]["message"].as_str().unwrap();
    // 8 KiB read of a JSON body cut mid-string is not JSON: its text is shown, bounded.
    assert!(msg.len() < 1024, "{}", msg.len());
}

/// Item 16 with server-side tools configured: a /v1 stream goes through the tool loop's
/// driver, which kept the whole text of every round (the audit's re-attack: a 256 MiB stream
/// peaked at 534 MiB RSS). Now it keeps at most UPSTREAM_MAX_BODY_BYTES of it (what a tool
/// round would send upstream again), and the caller still gets every byte.
#[tokio::test]
async fn a_v1_stream_through_the_tool_loop_is_relayed_whole_past_the_body_cap() {
    let weather = Tool {
        name: "lookup_weather".into(),
        description: "weather of a city".into(),
        parameters: json!({"type": "object"}),
        executor: Executor::Builtin(Builtin::LookupWeather),
    };
    let r = rig_with(small_caps(), vec![weather]).await;
    // 1 MiB of content in 64 KiB - 1 KiB chunks (each under SSE_MAX_LINE_BYTES), 4 × the cap.
    let piece = "v".repeat(63 * 1024);
    let chunks: Vec<String> = (0..17).map(|_| piece.clone()).collect();
    r.mock.script("fatstream", vec![Step::stream(chunks, 0)]);
    let resp = r
        .http
        .post(format!("{}/v1/chat/completions", r.gw.base_url()))
        .bearer_auth(TOKEN)
        .json(&json!({"model": "small", "stream": true,
            "messages": [{"role": "user", "content": "hi mock:fatstream"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert!(
        text.ends_with("data: [DONE]\n\n"),
        "{}",
        &text[text.len().saturating_sub(300)..]
    );
    let content: usize = text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| {
            v.pointer("/choices/0/delta/content")
                .and_then(Value::as_str)
                .map(str::len)
        })
        .sum();
    assert_eq!(content, 17 * 63 * 1024);
}

#[tokio::test]
async fn one_huge_sse_line_fails_the_stream_at_the_cap() {
    let r = rig(small_caps()).await;
    r.mock
        .script("longline", vec![Step::stream(["z".repeat(1 << 20)], 0)]);
    let resp = r
        .http
        .post(format!("{}/v1/chat/completions", r.gw.base_url()))
        .bearer_auth(TOKEN)
        .json(&json!({"model": "small", "stream": true,
            "messages": [{"role": "user", "content": "hi mock:longline"}]}))
        .send()
        .await
        .unwrap();
    // The mock's role chunk comes first, so the failure is an `event: error` after the 200.
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    let tail = text.rsplit("event: error\ndata: ").next().unwrap();
    let v: Value = serde_json::from_str(tail.trim()).unwrap();
    assert_eq!(v["error"]["code"], "upstream_error");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("SSE_MAX_LINE_BYTES"),
        "{v}"
    );
    assert!(!text.contains("[DONE]"));
    r.mock
        .script("okline", vec![Step::stream(["z".repeat(16 * 1024)], 0)]);
    let resp = r
        .http
        .post(format!("{}/v1/chat/completions", r.gw.base_url()))
        .bearer_auth(TOKEN)
        .json(&json!({"model": "small", "stream": true,
            "messages": [{"role": "user", "content": "hi mock:okline"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert!(
        text.ends_with("data: [DONE]\n\n"),
        "{}",
        &text[text.len() - 200..]
    );
}

#[tokio::test]
async fn get_finds_a_conversation_of_a_user_with_over_1000() {
    let store = gateway::testing::Store::open(std::path::Path::new(":memory:")).unwrap();
    let msg = |role: &str, text: &str| json!({"role": role, "content": text});
    for i in 0..1002 {
        store
            .append(
                "t",
                "u",
                &format!("conv-{i:04}"),
                "small",
                vec![msg("user", "q"), msg("assistant", "a")],
            )
            .await
            .unwrap();
    }
    // The oldest is outside any 1,000-row list; the lookup is direct.
    let c = store.get("t", "u", "conv-0000").await.unwrap();
    assert!(c.is_some(), "conversation 1 of 1,002 answered 404");
    assert!(store
        .get("t", "other", "conv-0000")
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn stored_history_sent_upstream_keeps_the_newest_turns_within_the_cap() {
    let store = gateway::testing::Store::open(std::path::Path::new(":memory:")).unwrap();
    let big = "x".repeat(1000);
    for turn in 0..5 {
        store
            .append(
                "t",
                "u",
                "c",
                "small",
                vec![
                    json!({"role": "user", "content": format!("q{turn} {big}")}),
                    json!({"role": "assistant", "content": format!("a{turn} {big}")}),
                ],
            )
            .await
            .unwrap();
    }
    let all = store.history("t", "u", "c").await.unwrap().unwrap();
    assert_eq!(all.len(), 10);
    // ~1,040 bytes a message: 4,500 bytes hold the newest 4 messages, which start at a user turn.
    let kept = store
        .recent_history("t", "u", "c", 4500)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kept.len(), 4, "{kept:?}");
    assert!(kept[0]["content"].as_str().unwrap().starts_with("q3"));
    // 3,300 bytes hold 3 messages; the oldest of them (an answer) is dropped too.
    let kept = store
        .recent_history("t", "u", "c", 3300)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kept.len(), 2);
    assert_eq!(kept[0]["role"], "user");
}

#[tokio::test]
async fn the_conversation_list_pages_with_a_cursor() {
    let store = gateway::testing::Store::open(std::path::Path::new(":memory:")).unwrap();
    for i in 0..5 {
        let id = format!("00000000-0000-0000-0000-00000000000{i}");
        store
            .append(
                "t",
                "u",
                &id,
                "small",
                vec![json!({"role": "user", "content": "q"})],
            )
            .await
            .unwrap();
    }
    let first = store.list_page("t", "u", 2, None).await.unwrap();
    let second = store
        .list_page("t", "u", 2, Some(first[1].id.clone()))
        .await
        .unwrap();
    let third = store
        .list_page("t", "u", 2, Some(second[1].id.clone()))
        .await
        .unwrap();
    let mut seen: Vec<String> = [first, second, third]
        .into_iter()
        .flatten()
        .map(|s| s.id)
        .collect();
    assert_eq!(seen.len(), 5);
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 5, "pages overlap");
}

#[tokio::test]
async fn another_users_conversation_is_no_cursor() {
    let store = gateway::testing::Store::open(std::path::Path::new(":memory:")).unwrap();
    let msg = || vec![json!({"role": "user", "content": "q"})];
    let mine = "00000000-0000-0000-0000-000000000001";
    let theirs = "00000000-0000-0000-0000-000000000002";
    store.append("t", "u", mine, "small", msg()).await.unwrap();
    store
        .append("t", "other", theirs, "small", msg())
        .await
        .unwrap();
    // The other user's newer conversation would sit before mine: as a position it would
    // page to mine, telling that the id exists. It must answer like an unknown id.
    let page = store
        .list_page("t", "u", 10, Some(theirs.to_owned()))
        .await
        .unwrap();
    assert!(page.is_empty(), "{page:?}");
    let unknown = store
        .list_page("t", "u", 10, Some("no-such-id".to_owned()))
        .await
        .unwrap();
    assert!(unknown.is_empty());
    assert_eq!(store.list_page("t", "u", 10, None).await.unwrap().len(), 1);
}
