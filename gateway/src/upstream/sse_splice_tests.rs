//! The fast path against the `Value` path: same output JSON, same decisions, and every
//! unusual event handed back to the `Value` path.

use super::*;
use crate::upstream::sse::{
    delta_bytes as value_delta_bytes, is_usage_only, Hooks, Piece, Relayed, UpstreamEvents,
};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

const ALIAS: &str = "small";

/// What one relay path made of one event: the SSE bytes and the decisions.
#[derive(Debug, PartialEq)]
struct Forwarded {
    json: Value,
    usage: Option<Usage>,
    usage_only: bool,
    has_choice: bool,
    delta_bytes: u64,
}

fn event_json(sse: &[u8]) -> Value {
    let text = std::str::from_utf8(sse).unwrap();
    let body = text
        .strip_prefix("data: ")
        .unwrap()
        .strip_suffix("\n\n")
        .unwrap();
    assert!(!body.contains('\n') && !body.contains('\r'), "{text:?}");
    serde_json::from_str(body).unwrap()
}

fn via_raw(c: &RawChunk) -> Forwarded {
    let mut out = BytesMut::new();
    c.write_sse(&serde_json::to_string(ALIAS).unwrap(), &mut out);
    Forwarded {
        json: event_json(&out),
        usage: c.usage,
        usage_only: c.usage_only,
        has_choice: c.has_choice,
        delta_bytes: c.delta_bytes,
    }
}

fn via_value(mut c: Map<String, Value>) -> Forwarded {
    let usage = c
        .get("usage")
        .filter(|u| u.is_object())
        .map(|u| Usage::from_json(Some(u)));
    let usage_only = is_usage_only(&c);
    let has_choice = crate::upstream::sse::has_choice(&c);
    let delta_bytes = value_delta_bytes(&c);
    let bytes = Hooks::default().chunk_bytes(&mut c).unwrap();
    Forwarded {
        json: event_json(&bytes),
        usage,
        usage_only,
        has_choice,
        delta_bytes,
    }
}

/// Both paths over the same upstream body: `next` (the `Value` path) and `next_relayed`
/// after `relay_as_bytes`. Returns how many events the fast path took.
fn both_paths(events: &[String]) -> usize {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let state = crate::testing::state_at(1_778_943_600);
        let model = &state.config.models[0];
        assert_eq!(model.alias, ALIAS);
        let open = |as_bytes: bool| {
            let body: String = events.iter().map(|e| format!("data: {e}\n\n")).collect();
            let resp = axum::http::Response::builder()
                .header("content-type", "text/event-stream")
                .body(reqwest::Body::from(body))
                .unwrap();
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
            let up = UpstreamEvents::new(resp, deadline, &state, model, &Map::new());
            if as_bytes {
                up.relay_as_bytes()
            } else {
                up
            }
        };
        let (mut slow, mut fast) = (open(false), open(true));
        let mut raw_count = 0;
        for i in 0..=events.len() {
            let (a, b) = (slow.next().await, fast.next_relayed().await);
            match (a, b) {
                (Piece::Chunk(a), Relayed::Raw(b)) => {
                    raw_count += 1;
                    assert_eq!(via_value(a), via_raw(&b), "event {i}: {:?}", events.get(i));
                }
                (Piece::Chunk(a), Relayed::Chunk(b)) => assert_eq!(a, b),
                (Piece::Done, Relayed::Done) => break,
                (Piece::Failed(a), Relayed::Failed(b)) => {
                    assert_eq!(a.body_json(), b.body_json());
                    assert_eq!(a.status_code(), b.status_code());
                    break;
                }
                (a, b) => panic!("event {i}: value path {a:?}, fast path {b:?}"),
            }
        }
        raw_count
    })
}

fn chunk(delta: Value, finish: Value) -> Value {
    json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1_700_000_000,
           "model": "upstream-small",
           "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]})
}

#[test]
fn ordinary_chunks_take_the_fast_path_with_the_same_output_and_decisions() {
    let events: Vec<String> = vec![
        chunk(json!({"role": "assistant", "content": ""}), Value::Null).to_string(),
        chunk(json!({"content": "hé \"quoted\" \\ \u{1F600} <tag>"}), Value::Null).to_string(),
        // Escapes the upstream chose (a valid surrogate pair included) and spacing.
        r#"{ "id" : "x", "model" : "m\u00e9", "choices" : [ { "delta" : { "content" : "a\u00e9\ud83d\ude00\n" } } ] }"#.into(),
        // Caller-defined tool calls on /v1, `null` counted as the `Value` path counts it.
        chunk(json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                     "function": {"name": "f", "arguments": "{\"a\": 1}"}}]}), Value::Null)
            .to_string(),
        chunk(json!({"content": null, "tool_calls": null}), Value::Null).to_string(),
        // Numbers the `Value` path rewrites (1e20, 1.50) stay the same numbers.
        r#"{"model":"m","created":100000000000000000000,"x":1.50,"choices":[{"delta":{}}]}"#.into(),
        // No `model`: none is added. `choices` absent: forwarded, not usage only.
        r#"{"choices":[{"delta":{"content":"no model"}}]}"#.into(),
        r#"{"model":"m","object":"chat.completion.chunk"}"#.into(),
        // A non-object choice or delta counts nothing.
        r#"{"model":"m","choices":[7,{"delta":{"content":"second"}}]}"#.into(),
        r#"{"model":"m","choices":[{"delta":"text"}]}"#.into(),
        r#"{"model":"m","choices":[{"delta":{"content":["a"],"tool_calls":{"x":1}}}]}"#.into(),
        chunk(json!({}), json!("stop")).to_string(),
        json!({"id": "chatcmpl-1", "model": "upstream-small", "choices": [],
               "usage": {"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16}})
        .to_string(),
        r#"{"model":"m","usage":{"prompt_tokens":3,"completion_tokens":4}}"#.into(),
        r#"{"model":"m","usage":null,"choices":[]}"#.into(),
        "[DONE]".into(),
    ];
    assert_eq!(both_paths(&events), events.len() - 1);
}

#[test]
fn the_decisions_read_from_raw_values() {
    let c = RawChunk::parse(
        json!({"model": "m", "choices": [], "usage": {"prompt_tokens": 2, "completion_tokens": 3}})
            .to_string(),
    )
    .unwrap();
    assert!(c.usage_only);
    assert_eq!(c.usage.map(|u| u.total_tokens), Some(5));
    let c = RawChunk::parse(
        chunk(
            json!({"content": "héllo", "tool_calls": [1, 2]}),
            Value::Null,
        )
        .to_string(),
    )
    .unwrap();
    assert!(!c.usage_only && c.usage.is_none());
    assert_eq!(c.delta_bytes, "héllo".len() as u64 + "[1,2]".len() as u64);
    let c = RawChunk::parse(r#"{"model":"m","choices":[{"delta":{"tool_calls":null}}]}"#.into())
        .unwrap();
    assert_eq!(c.delta_bytes, 4);
    let mut out = BytesMut::new();
    c.write_sse("\"alias\"", &mut out);
    assert_eq!(
        &out[..],
        br#"data: {"model":"alias","choices":[{"delta":{"tool_calls":null}}]}

"#
    );
}

#[test]
fn a_repeated_content_or_tool_calls_counts_the_last_as_the_tree_keeps_it() {
    let first = chunk(json!({"content": "x"}), Value::Null).to_string();
    for data in [
        r#"{"model":"m","choices":[{"delta":{"content":"abc","content":"b"}}]}"#,
        r#"{"model":"m","choices":[{"delta":{"content":"abc","content":7}}]}"#,
        r#"{"model":"m","choices":[{"delta":{"tool_calls":[1,2,3],"tool_calls":null}}]}"#,
    ] {
        let c = RawChunk::parse(data.into()).unwrap();
        let tree: Map<String, Value> = serde_json::from_str(data).unwrap();
        assert_eq!(c.delta_bytes, value_delta_bytes(&tree), "{data}");
        assert_eq!(
            both_paths(&[first.clone(), data.into(), "[DONE]".into()]),
            2
        );
    }
}

#[test]
fn anything_unusual_goes_back_to_the_value_path() {
    let deep = format!(
        "{{\"model\":\"m\",\"x\":{}{}}}",
        "[".repeat(200),
        "]".repeat(200)
    );
    let cases: Vec<String> = vec![
        r#"{"error":{"message":"overloaded","code":503}}"#.into(),
        r#"{"model":"m","error":null,"choices":[]}"#.into(),
        r#"{"model":"a","model":"b","choices":[]}"#.into(),
        r#"{"mod\u0065l":"a","choices":[]}"#.into(),
        r#"{"model":"m","choices":{"0":{"delta":{"content":"x"}}}}"#.into(),
        "{\"model\":\"m\",\n\"choices\":[]}".into(),
        "{\"model\":\"m\",\r\"choices\":[]}".into(),
        r#"{"model":"m","choices":[{"delta":{"content":"\ud800"}}]}"#.into(),
        r#"{"model":"m","n":1e400,"choices":[]}"#.into(),
        r#"{"model":"m","x":{"$serde_json::private::RawValue":"[1]"}}"#.into(),
        r#"{"model":"m","choices":[{"delta":{"content":"a"},"delta":null}]}"#.into(),
        deep,
        "[1,2]".into(),
        "\"text\"".into(),
        "{\"model\":".into(),
        "[DONE]".into(),
    ];
    for data in &cases {
        assert_eq!(RawChunk::parse(data.clone()).unwrap_err(), *data);
    }
    // Through the stream, each decides as the `Value` path does (an error ends the stream,
    // so each case runs alone after one ordinary chunk).
    let first = chunk(json!({"content": "x"}), Value::Null).to_string();
    for data in cases {
        assert_eq!(both_paths(&[first.clone(), data, "[DONE]".into()]), 1);
    }
}

#[test]
fn done_before_any_choice_fails_on_both_paths() {
    let usage = r#"{"model":"m","choices":[],"usage":{"prompt_tokens":1}}"#.to_string();
    assert_eq!(both_paths(&[usage, "[DONE]".into()]), 1);
}

/// Small JSON values of every kind, keys from a set that includes the ones the relay reads.
fn any_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        // Eighths print and parse exactly (any float would test serde_json's float round trip).
        (-8_000_000i64..8_000_000).prop_map(|n| json!(n as f64 / 8.0)),
        "[ -~é\u{1F600}\\\\\"\n]{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("content".to_owned()),
        Just("tool_calls".to_owned()),
        Just("delta".to_owned()),
        Just("prompt_tokens".to_owned()),
        "[a-z]{1,3}",
    ]
}

/// A chunk-shaped event whose members are arbitrary values.
fn any_event() -> impl Strategy<Value = String> {
    (
        prop::option::of(any_value()),
        prop::option::of(prop::collection::vec(any_value(), 0..3)),
        prop::option::of(any_value()),
        prop::option::of(prop::collection::vec(any_value(), 0..2)),
        any::<bool>(),
    )
        .prop_map(|(model, choices, usage, deltas, spaced)| {
            let mut m = Map::new();
            if let Some(v) = model {
                m.insert("model".into(), v);
            }
            if let Some(mut c) = choices {
                for (i, d) in deltas.into_iter().flatten().enumerate() {
                    c.insert(i.min(c.len()), json!({ "delta": d }));
                }
                m.insert("choices".into(), Value::Array(c));
            }
            if let Some(u) = usage {
                m.insert("usage".into(), u);
            }
            let v = Value::Object(m);
            if spaced {
                serde_json::to_string_pretty(&v).unwrap().replace('\n', " ")
            } else {
                v.to_string()
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn fast_and_value_paths_agree_on_any_event(events in prop::collection::vec(any_event(), 1..4)) {
        let mut events = events;
        events.push("[DONE]".into());
        // Every event here is an object with unique, unescaped keys: the fast path takes it.
        prop_assert_eq!(both_paths(&events), events.len() - 1);
    }
}
