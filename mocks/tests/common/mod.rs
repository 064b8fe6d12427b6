//! Helpers shared by the integration tests: request bodies, SSE parsing, reassembly.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use mocks::{MockServer, Outcome};
use serde_json::{json, Value};

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// A chat body whose user message carries `mock:<marker>` (or no marker when empty).
pub fn chat(marker: &str, stream: bool) -> Value {
    let content = if marker.is_empty() {
        "Hello there, how are you today?".to_owned()
    } else {
        format!("Hello there mock:{marker} how are you?")
    };
    json!({
        "model": "mock-model",
        "stream": stream,
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": content},
        ],
    })
}

pub fn with_usage(mut body: Value) -> Value {
    body["stream_options"] = json!({"include_usage": true});
    body
}

pub async fn post(mock: &MockServer, body: &Value) -> reqwest::Response {
    client()
        .post(mock.chat_url())
        .json(body)
        .send()
        .await
        .unwrap()
}

/// The `data` of every SSE event, parsed with eventsource-stream; an error ends the list and
/// is returned beside it.
pub async fn sse_data(resp: reqwest::Response) -> (Vec<String>, Option<String>) {
    let mut events = resp.bytes_stream().eventsource();
    let mut out = Vec::new();
    while let Some(event) = events.next().await {
        match event {
            Ok(event) => out.push(event.data),
            Err(e) => return (out, Some(e.to_string())),
        }
    }
    (out, None)
}

/// Chunks parsed as JSON (skipping `[DONE]`).
pub fn chunks(data: &[String]) -> Vec<Value> {
    data.iter()
        .filter(|d| d.as_str() != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap_or_else(|e| panic!("bad chunk {d}: {e}")))
        .collect()
}

/// The concatenated `delta.content` of chunks.
pub fn content(chunks: &[Value]) -> String {
    chunks
        .iter()
        .filter_map(|c| c["choices"].get(0))
        .filter_map(|c| c["delta"]["content"].as_str())
        .collect()
}

/// The finish_reason of the chunk that has one.
pub fn finish_reason(chunks: &[Value]) -> Option<String> {
    chunks
        .iter()
        .filter_map(|c| c["choices"].get(0))
        .find_map(|c| c["finish_reason"].as_str().map(str::to_owned))
}

/// Tool calls reassembled from streamed deltas: (id, name, arguments) per index.
pub fn tool_calls(chunks: &[Value]) -> Vec<(String, String, String)> {
    let mut calls: Vec<(String, String, String)> = Vec::new();
    for chunk in chunks {
        let Some(deltas) = chunk["choices"]
            .get(0)
            .and_then(|c| c["delta"]["tool_calls"].as_array())
        else {
            continue;
        };
        for d in deltas {
            let index = d["index"].as_u64().unwrap() as usize;
            if index == calls.len() {
                calls.push(Default::default());
            }
            let call = &mut calls[index];
            if let Some(id) = d["id"].as_str() {
                call.0 = id.to_owned();
            }
            if let Some(name) = d["function"]["name"].as_str() {
                call.1 = name.to_owned();
            }
            if let Some(args) = d["function"]["arguments"].as_str() {
                call.2.push_str(args);
            }
        }
    }
    calls
}

/// Wait (bounded) until the marker's record `index` reaches `want`; the outcome is settled by
/// the server after the client has already seen the end of the exchange.
pub async fn wait_outcome(mock: &MockServer, marker: &str, index: usize, want: Outcome) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let records = mock.records(marker);
        if records.get(index).map(|r| r.outcome) == Some(want) {
            return;
        }
        if Instant::now() > deadline {
            panic!("record {index} of {marker} never became {want:?}: {records:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
