//! Shared fixtures for the gateway benches: request bodies, image data URIs of a chosen
//! size, an upstream SSE body, and a gateway configuration with a rate limit no bench hits.

use gateway::config::RateLimit;
use gateway::testing::samples::PNG_1X1;
use gateway::Config;
use serde_json::json;

/// The bearer every bench request carries (tenant `primary` of the test fixture).
pub const TOKEN: &str = gateway::testing::TOKEN;

/// A limit no bench or load run reaches: every check is admitted.
pub const UNLIMITED: RateLimit = RateLimit {
    rps: 1.0e9,
    burst: 1_000_000,
};

/// `gateway::testing::config_with_upstream` with an unreachable rate limit.
pub fn config(api_base: &str) -> Config {
    let mut cfg = gateway::testing::config_with_upstream(api_base);
    cfg.rate_limit = UNLIMITED;
    cfg
}

/// A typical chat body: system prompt, two turns of history, a question, common options.
pub fn typical_chat_body(stream: bool) -> Vec<u8> {
    json!({
        "model": "small",
        "messages": [
            {"role": "system", "content": "You are a concise assistant. Answer in English."},
            {"role": "user", "content": "What is the capital of Switzerland?"},
            {"role": "assistant", "content": "Bern is the federal city of Switzerland."},
            {"role": "user", "content": "And how many people live there? Give a rough number."}
        ],
        "temperature": 0.7,
        "top_p": 0.95,
        "max_tokens": 256,
        "stream": stream,
        "user": "bench-user-1"
    })
    .to_string()
    .into_bytes()
}

/// A valid `data:image/png;base64,…` URI whose payload is `payload_len` characters (rounded
/// down to a multiple of 4): a real PNG header followed by zero bytes.
pub fn png_data_uri(payload_len: usize) -> String {
    let mut payload = PNG_1X1.trim_end_matches('=').to_owned();
    payload.truncate(payload.len() / 4 * 4);
    let fill = payload_len.saturating_sub(payload.len()) / 4 * 4;
    payload.push_str(&"A".repeat(fill));
    format!("data:image/png;base64,{payload}")
}

/// A chat body carrying `uri` as an image part.
pub fn image_chat_body(uri: &str) -> Vec<u8> {
    json!({
        "model": "small",
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is in this picture?"},
            {"type": "image_url", "image_url": {"url": uri}}
        ]}]
    })
    .to_string()
    .into_bytes()
}

/// The events of a vLLM-style stream with `content_chunks` content deltas, one `Bytes` per
/// SSE event as they come off the wire (role chunk, content, finish, usage, `[DONE]`).
pub fn upstream_sse_events(content_chunks: usize) -> Vec<bytes::Bytes> {
    let chunk = |delta: serde_json::Value, finish: serde_json::Value| {
        json!({
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": "upstream-small",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]
        })
    };
    let mut events = vec![chunk(
        json!({"role": "assistant", "content": ""}),
        json!(null),
    )];
    for i in 0..content_chunks {
        events.push(chunk(
            json!({"content": format!("token-{i} ")}),
            json!(null),
        ));
    }
    events.push(chunk(json!({}), json!("stop")));
    events.push(json!({
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": "upstream-small",
        "choices": [],
        "usage": {"prompt_tokens": 12, "completion_tokens": content_chunks, "total_tokens": 12 + content_chunks}
    }));
    let mut out: Vec<bytes::Bytes> = events
        .iter()
        .map(|e| gateway::testing::sse_data(&e.to_string()))
        .collect();
    out.push(gateway::testing::done());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixtures_are_valid_requests() {
        let cfg = config("http://127.0.0.1:9/v1");
        for body in [
            typical_chat_body(false),
            image_chat_body(&png_data_uri(4096)),
        ] {
            let mut obj = gateway::testing::parse_object(&body).unwrap();
            gateway::testing::check_chat(
                &mut obj,
                &cfg,
                &cfg.tenants[0],
                gateway::testing::Api::V1,
            )
            .unwrap();
        }
        let uri = png_data_uri(1 << 20);
        assert!(uri.len() > 1 << 20);
        gateway::testing::check_data_uri(&uri).unwrap();
    }
}
