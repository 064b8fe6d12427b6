//! Every step kind, over real loopback sockets, in both request modes where both apply.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures_util::StreamExt;
use mocks::{MockServer, Outcome, Personality, Step, ToolCallSpec};
use serde_json::Value;

async fn vllm() -> MockServer {
    MockServer::start(Personality::Vllm).await.unwrap()
}

#[tokio::test]
async fn reply_in_both_modes_then_default() {
    let mock = vllm().await;
    mock.script(
        "r",
        vec![
            Step::reply("scripted answer one"),
            Step::reply("scripted answer two"),
        ],
    );
    let body: Value = post(&mock, &chat("r", false)).await.json().await.unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "scripted answer one"
    );
    let (data, _) = sse_data(post(&mock, &chat("r", true)).await).await;
    let chunks = chunks(&data);
    assert_eq!(content(&chunks), "scripted answer two");
    let content_deltas = chunks
        .iter()
        .filter(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .is_some_and(|s| !s.is_empty())
        })
        .count();
    assert!(content_deltas >= 3, "reply streamed in several deltas");
    // Steps exhausted: the default reply.
    let body: Value = post(&mock, &chat("r", false)).await.json().await.unwrap();
    assert!(body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .starts_with("Mock vllm reply: "));
    assert_eq!(mock.records("r").len(), 3);
}

#[tokio::test]
async fn stream_chunks_at_interval_or_joined() {
    let mock = vllm().await;
    mock.script(
        "s",
        vec![
            Step::stream(["a", "b", "c"], 40),
            Step::stream(["x", "y"], 0),
        ],
    );
    let started = Instant::now();
    let (data, _) = sse_data(post(&mock, &chat("s", true)).await).await;
    assert!(started.elapsed() >= Duration::from_millis(80));
    let chunks = chunks(&data);
    let deltas: Vec<&str> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .filter(|s| !s.is_empty())
        .collect();
    assert_eq!(deltas, ["a", "b", "c"]);
    let body: Value = post(&mock, &chat("s", false)).await.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "xy");
}

#[tokio::test]
async fn tool_calls_streamed_split_and_reassembled() {
    for p in Personality::UPSTREAMS {
        let mock = MockServer::start(p).await.unwrap();
        let args = r#"{"city":"Zürich","days":[1,2,3],"unit":"celsius"}"#;
        mock.script(
            "t",
            vec![
                Step::tool_calls(vec![
                    ToolCallSpec::new("get_weather", args).with_id("call_fixed"),
                    ToolCallSpec::new("noop", "{}"),
                ])
                .with_arg_splits(4),
                Step::tool_call("get_weather", args),
            ],
        );
        let (data, err) = sse_data(post(&mock, &chat("t", true)).await).await;
        assert!(err.is_none());
        let chunks = chunks(&data);
        let calls = tool_calls(&chunks);
        assert_eq!(calls.len(), 2, "{p}");
        assert_eq!(
            calls[0],
            ("call_fixed".into(), "get_weather".into(), args.into())
        );
        assert_eq!(calls[1].1, "noop");
        assert_eq!(calls[1].2, "{}");
        assert!(!calls[1].0.is_empty(), "generated id");
        serde_json::from_str::<Value>(&calls[0].2).unwrap();
        assert_eq!(finish_reason(&chunks).as_deref(), Some("tool_calls"));
        // The first delta of a call carries id, type, name and empty arguments; later deltas
        // carry only the index and an argument fragment.
        let deltas: Vec<&Value> = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0))
            .filter(|d| d["index"] == 0)
            .collect();
        assert_eq!(deltas.len(), 1 + 4, "{p}: head + 4 fragments");
        assert_eq!(deltas[0]["type"], "function");
        assert_eq!(deltas[0]["function"]["arguments"], "");
        for d in &deltas[1..] {
            assert!(d.get("id").is_none() && d["function"].get("name").is_none());
        }

        let body: Value = post(&mock, &chat("t", false)).await.json().await.unwrap();
        let choice = &body["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls", "{p}");
        let call = &choice["message"]["tool_calls"][0];
        assert_eq!(call["type"], "function");
        assert_eq!(call["function"]["name"], "get_weather");
        assert_eq!(call["function"]["arguments"], args);
    }
}

#[tokio::test]
async fn error_with_headers_and_type() {
    let mock = vllm().await;
    let mut step = Step::error_with_headers(429, "slow down", [("retry-after", "7")]);
    if let mocks::Action::Error { error_type, .. } = &mut step.action {
        *error_type = Some("RateLimitError".into());
    }
    mock.script("e", vec![step]);
    let resp = post(&mock, &chat("e", true)).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "7");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["type"], "RateLimitError");
    assert_eq!(body["error"]["message"], "slow down");
    assert_eq!(mock.records("e")[0].outcome, Outcome::Completed);
}

#[tokio::test]
async fn delay_before_headers() {
    let mock = vllm().await;
    mock.script("d", vec![Step::reply("late").with_delay(150)]);
    let started = Instant::now();
    let resp = post(&mock, &chat("d", false)).await;
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn drop_aborts_the_connection() {
    let mock = vllm().await;
    mock.script("x", vec![Step::drop_after(2, 10), Step::drop_after(1, 0)]);
    let (data, err) = sse_data(post(&mock, &chat("x", true)).await).await;
    assert!(
        err.is_some(),
        "the body ends in an error, not a clean close"
    );
    assert!(!data.iter().any(|d| d == "[DONE]"));
    let chunks = chunks(&data);
    assert_eq!(content(&chunks), "chunk-0 chunk-1 ");
    assert_eq!(finish_reason(&chunks), None);
    wait_outcome(&mock, "x", 0, Outcome::DroppedByMock).await;

    // Non-streaming: headers, then half a body, then the cut.
    let resp = post(&mock, &chat("x", false)).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.bytes().await.is_err());
    wait_outcome(&mock, "x", 1, Outcome::DroppedByMock).await;
}

#[tokio::test]
async fn malformed_chunk_then_the_rest() {
    let mock = vllm().await;
    mock.script("m", vec![Step::malformed(2), Step::malformed(0)]);
    let (data, err) = sse_data(post(&mock, &chat("m", true)).await).await;
    assert!(err.is_none());
    let bad = data.iter().position(|d| d == "{not json").unwrap();
    let good: Vec<Value> = data[..bad]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(content(&good), "chunk-0 chunk-1 ");
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let body = post(&mock, &chat("m", false)).await.text().await.unwrap();
    assert_eq!(body, "{not json");
}

#[tokio::test]
async fn stream_error_inside_200_stream() {
    for p in Personality::UPSTREAMS {
        let mock = MockServer::start(p).await.unwrap();
        mock.script(
            "se",
            vec![
                Step::stream_error(0, 500, "engine died"),
                Step::stream_error(2, 503, "late failure"),
                Step::stream_error(1, 500, "non-stream"),
            ],
        );
        // after = 0: the error is the first data event.
        let resp = post(&mock, &chat("se", true)).await;
        assert_eq!(resp.status(), 200);
        let (data, _) = sse_data(resp).await;
        // LiteLLM stops after the error object, no [DONE] (peers/WIRE_FACTS.md L18).
        let done = p != Personality::Litellm;
        assert_eq!(data.len(), 1 + usize::from(done), "{p}: error, [DONE]");
        let first: Value = serde_json::from_str(&data[0]).unwrap();
        if done {
            assert_eq!(data[1], "[DONE]");
        }
        match p {
            // vLLM: `data: {"error": {"message","type","param","code": int}}` [vllm-serving].
            Personality::Vllm => {
                assert_eq!(first["error"]["message"], "engine died");
                assert_eq!(first["error"]["code"], 500);
                assert_eq!(first["error"]["type"], "InternalServerError");
            }
            Personality::Litellm => {
                assert_eq!(
                    first["error"]["message"],
                    "litellm.APIConnectionError: APIConnectionError: OpenAIException - engine died"
                );
                assert_eq!(first["error"]["code"], "500");
            }
            Personality::OpenRouter => {
                assert_eq!(first["error"]["code"], 500);
                assert_eq!(first["choices"][0]["finish_reason"], "error");
            }
            Personality::LlmGatewayApi | Personality::OwnLlm => unreachable!("not an upstream"),
        }

        let (data, _) = sse_data(post(&mock, &chat("se", true)).await).await;
        let err_at = data
            .iter()
            .position(|d| d.contains("late failure"))
            .unwrap();
        let before: Vec<Value> = data[..err_at]
            .iter()
            .map(|d| serde_json::from_str(d).unwrap())
            .collect();
        assert_eq!(content(&before), "chunk-0 chunk-1 ");
        assert_eq!(
            data.last().map(String::as_str) == Some("[DONE]"),
            done,
            "{p}"
        );

        // A non-streaming request gets the error as an ordinary error response.
        let resp = post(&mock, &chat("se", false)).await;
        assert_eq!(resp.status(), 500);
    }
}

#[tokio::test]
async fn no_done_closes_without_done() {
    let mock = vllm().await;
    mock.script("n", vec![Step::no_done(3)]);
    let (data, err) = sse_data(post(&mock, &chat("n", true)).await).await;
    assert!(err.is_none(), "a clean close");
    assert!(!data.iter().any(|d| d == "[DONE]"));
    let chunks = chunks(&data);
    assert_eq!(content(&chunks), "chunk-0 chunk-1 chunk-2 ");
    assert_eq!(finish_reason(&chunks).as_deref(), Some("stop"));
    wait_outcome(&mock, "n", 0, Outcome::Completed).await;
}

#[tokio::test]
async fn stall_pauses_then_continues() {
    let mock = vllm().await;
    mock.script("st", vec![Step::stall(1, 300)]);
    let resp = post(&mock, &chat("st", true)).await;
    let mut stream = resp.bytes_stream();
    let mut text = String::new();
    let mut gap = Duration::ZERO;
    let mut last = Instant::now();
    while let Some(bytes) = stream.next().await {
        let now = Instant::now();
        gap = gap.max(now - last);
        last = now;
        text.push_str(std::str::from_utf8(&bytes.unwrap()).unwrap());
    }
    assert!(gap >= Duration::from_millis(250), "gap {gap:?}");
    assert!(text.contains("chunk-0") && text.contains("chunk-2"));
    assert!(text.ends_with("data: [DONE]\n\n"));
}

#[tokio::test]
async fn hang_until_the_client_leaves() {
    let mock = vllm().await;
    mock.script("h", vec![Step::hang()]);
    let result = reqwest::Client::new()
        .post(mock.chat_url())
        .timeout(Duration::from_millis(300))
        .json(&chat("h", false))
        .send()
        .await;
    assert!(result.unwrap_err().is_timeout());
    wait_outcome(&mock, "h", 0, Outcome::ClientDisconnected).await;
    // Shutdown is not held up by a hanging request.
    let mock2 = vllm().await;
    mock2.script("h", vec![Step::hang()]);
    let url = mock2.chat_url();
    let pending = tokio::spawn(async move {
        reqwest::Client::new()
            .post(url)
            .json(&chat("h", false))
            .send()
            .await
    });
    while mock2.records("h").is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::timeout(Duration::from_secs(3), mock2.shutdown())
        .await
        .unwrap();
    let _ = pending.await;
}

#[tokio::test]
async fn client_disconnect_mid_stream_is_recorded() {
    let mock = vllm().await;
    mock.script(
        "cd",
        vec![Step::stream(["one", "two", "three", "four"], 300)],
    );
    let resp = post(&mock, &chat("cd", true)).await;
    let mut stream = resp.bytes_stream();
    let first = stream.next().await.unwrap().unwrap();
    assert!(!first.is_empty());
    assert_eq!(mock.records("cd")[0].outcome, Outcome::Pending);
    drop(stream);
    wait_outcome(&mock, "cd", 0, Outcome::ClientDisconnected).await;
}

#[tokio::test]
async fn records_carry_path_headers_body() {
    let mock = MockServer::start(Personality::OpenRouter).await.unwrap();
    let mut body = chat("rec", false);
    body["tools"] = serde_json::json!([]);
    let resp = client()
        .post(mock.chat_url())
        .header("X-Custom-Thing", "Value-1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    wait_outcome(&mock, "rec", 0, Outcome::Completed).await;
    let rec = &mock.records("rec")[0];
    assert_eq!(rec.path, "/api/v1/chat/completions");
    assert_eq!(rec.header("x-custom-thing"), Some("Value-1"));
    assert_eq!(rec.body["tools"], serde_json::json!([]));
    assert_eq!(rec.body, body);
    // No marker, no record; a marker in a text part counts.
    assert!(mock.records("nothing").is_empty());
    let parts = serde_json::json!({
        "model": "m",
        "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:x"}},
            {"type": "text", "text": "see mock:parts-1 here"},
        ]}],
    });
    post(&mock, &parts).await;
    assert_eq!(mock.records("parts-1").len(), 1);
}

#[tokio::test]
async fn timing_knobs_apply_to_default_reply() {
    let config = mocks::MockConfig {
        personality: Personality::Litellm,
        ttft_ms: 100,
        inter_chunk_ms: 30,
        jitter_ms: 5,
        seed: 7,
        default_chunks: 5,
        api_key: None,
        ..mocks::MockConfig::default()
    };
    let mock = MockServer::start_with(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let started = Instant::now();
    let (data, _) = sse_data(post(&mock, &chat("", true)).await).await;
    assert!(started.elapsed() >= Duration::from_millis(100 + 4 * 30));
    let chunks = chunks(&data);
    let deltas = chunks
        .iter()
        .filter(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .is_some_and(|s| !s.is_empty())
        })
        .count();
    assert_eq!(deltas, 5);
}

#[tokio::test]
async fn sized_reply_is_exactly_that_long_whole_or_in_pieces() {
    for p in Personality::UPSTREAMS {
        let mock = MockServer::start(p).await.unwrap();
        let torn = Step::sized(5000).with_tear(mocks::Tear {
            pieces: 7,
            piece_ms: 0,
            two_data_lines: false,
        });
        mock.script("z", vec![Step::sized(5000), torn, Step::sized(5000)]);
        let resp = post(&mock, &chat("z", false)).await;
        assert_eq!(resp.content_length(), Some(5000), "{p:?}");
        let bytes = resp.bytes().await.unwrap();
        assert_eq!(bytes.len(), 5000, "{p:?}");
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        let text = body["choices"][0]["message"]["content"].as_str().unwrap();
        assert!(
            text.len() > 4000 && text.bytes().all(|b| b == b'a'),
            "{p:?}"
        );
        // Torn: chunked, no length, the same bytes.
        let resp = post(&mock, &chat("z", false)).await;
        assert_eq!(resp.content_length(), None, "{p:?}");
        assert_eq!(resp.bytes().await.unwrap().len(), 5000, "{p:?}");
        // Streamed: the same text in one delta.
        let (data, _) = sse_data(post(&mock, &chat("z", true)).await).await;
        assert_eq!(content(&chunks(&data)), text, "{p:?}");
    }
}
