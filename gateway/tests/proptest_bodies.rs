//! Property test: mutated chat bodies never get a 5xx, always the envelope with a catalog code.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use gateway::catalog::Code;
use gateway::config::RateLimit;
use gateway::testing::{self, FixedClock, TOKEN};
use gateway::{app, AppState};
use http_body_util::BodyExt;
use proptest::prelude::*;
use serde_json::{json, Value};
use tower::ServiceExt;

fn base() -> Value {
    json!({"model": "small", "max_tokens": 20, "temperature": 0.5, "stream": false,
           "messages": [{"role": "system", "content": "be brief"},
                        {"role": "user", "content": [{"type": "text", "text": "hi"},
                          {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{}", gateway::testing::samples::PNG_1X1)}}]},
                        {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]},
                        {"role": "tool", "tool_call_id": "c1", "content": "ok"}]})
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        (-1e9f64..1e9).prop_map(|f| json!(f)),
        ".{0,20}".prop_map(Value::String),
        Just(json!("data:image/png;base64,@@@")),
        Just(json!("https://example.com/x.png")),
        Just(json!("{\"broken\":")),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// All JSON pointers of a value.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, c) in m {
                let p = format!("{at}/{k}");
                out.push(p.clone());
                pointers(c, p, out);
            }
        }
        Value::Array(a) => {
            for (i, c) in a.iter().enumerate() {
                let p = format!("{at}/{i}");
                out.push(p.clone());
                pointers(c, p, out);
            }
        }
        _ => {}
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Replace(usize, Value),
    Remove(usize),
    Truncate(usize),
    Garbage(Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), any_json()).prop_map(|(i, v)| Mutation::Replace(i, v)),
        3 => any::<usize>().prop_map(Mutation::Remove),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        1 => prop::collection::vec(any::<u8>(), 0..64).prop_map(Mutation::Garbage),
    ]
}

fn apply(muts: &[Mutation]) -> Vec<u8> {
    let mut v = base();
    for m in muts {
        let mut ptrs = Vec::new();
        pointers(&v, String::new(), &mut ptrs);
        match m {
            Mutation::Replace(i, new) if !ptrs.is_empty() => {
                if let Some(slot) = v.pointer_mut(&ptrs[i % ptrs.len()]) {
                    *slot = new.clone();
                }
            }
            Mutation::Remove(i) if !ptrs.is_empty() => {
                let p = &ptrs[i % ptrs.len()];
                let (parent, key) = p.rsplit_once('/').unwrap();
                match v.pointer_mut(parent) {
                    Some(Value::Object(o)) => {
                        o.remove(key);
                    }
                    Some(Value::Array(a)) => {
                        let idx: usize = key.parse().unwrap();
                        if idx < a.len() {
                            a.remove(idx);
                        }
                    }
                    _ => {}
                }
            }
            Mutation::Truncate(i) => {
                let s = v.to_string().into_bytes();
                return s[..i % (s.len() + 1)].to_vec();
            }
            Mutation::Garbage(g) => return g.clone(),
            _ => {}
        }
    }
    v.to_string().into_bytes()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_bodies_get_one_catalog_error_never_a_5xx(muts in prop::collection::vec(mutation(), 1..4)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            // An upstream that answers every request well: any 5xx would be the gateway's own.
            let server = wiremock::MockServer::start().await;
            wiremock::Mock::given(wiremock::matchers::any())
                .respond_with(wiremock::ResponseTemplate::new(200).set_body_json(json!({
                    "id": "x", "object": "chat.completion", "created": 1, "model": "m",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]})))
                .mount(&server).await;
            let mut cfg = testing::config_with_upstream(&format!("{}/v1", server.uri()));
            cfg.rate_limit = RateLimit { rps: 1000.0, burst: 100_000 };
            let state = AppState::with_clock(cfg, Arc::new(FixedClock(0))).unwrap();
            let body = apply(&muts);
            let req = Request::post("/v1/chat/completions")
                .header("authorization", format!("Bearer {TOKEN}"))
                .body(Body::from(body.clone()))
                .unwrap();
            let resp = app(state).oneshot(req).await.unwrap();
            let status = resp.status();
            let bytes = resp.into_body().collect().await.unwrap().to_bytes();
            assert!(status.as_u16() < 500, "{status} for {}: {}", String::from_utf8_lossy(&body), String::from_utf8_lossy(&bytes));
            if status != 200 {
                let v: Value = serde_json::from_slice(&bytes).unwrap();
                let code = v["error"]["code"].as_str().unwrap();
                let c = Code::from_code(code).unwrap_or_else(|| panic!("unknown code {code}"));
                assert_eq!(c.entry().http_status, status.as_u16());
                assert_eq!(v["error"]["type"], c.entry().error_type.as_str());
                assert_eq!(v["error"].as_object().unwrap().len(), 4);
            }
        });
    }
}
