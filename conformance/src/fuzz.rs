//! Property-based malformed bodies: proptest generates request bodies that are never a
//! valid chat request (bytes, non-object JSON, truncated JSON, chat requests with one bad
//! field), and [`check`] holds the target to the property: never a 5xx, never a success,
//! always an error object valid for the profile (for `dgx`: the envelope with a code from
//! the target's catalog).
//!
//! Generation is seeded and separate from sending, so a failing body is replayed exactly
//! with `CONFORMANCE_PROPTEST_SEED=<hex>`.

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{json, Value};

use crate::schemas;
use crate::target::Target;

/// Replays a run: 64 hex digits.
pub const SEED_VAR: &str = "CONFORMANCE_PROPTEST_SEED";
/// How many bodies (default 200).
pub const CASES_VAR: &str = "CONFORMANCE_PROPTEST_CASES";

fn text() -> impl Strategy<Value = String> {
    proptest::collection::vec(any::<char>(), 0..12).prop_map(String::from_iter)
}

fn non_object() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        text().prop_map(Value::String),
        proptest::collection::vec(any::<i32>().prop_map(Value::from), 0..4).prop_map(Value::Array),
    ]
}

/// A field of the chat request and a value that is wrong for it (type, range or enum).
fn bad_field() -> impl Strategy<Value = (&'static str, Value)> {
    prop_oneof![
        (
            Just("/temperature"),
            prop_oneof![
                text().prop_map(Value::String),
                (2.01f64..1e6).prop_map(Value::from),
                (-1e6f64..-0.01).prop_map(Value::from)
            ]
        ),
        (
            Just("/top_p"),
            prop_oneof![
                text().prop_map(Value::String),
                (1.01f64..1e6).prop_map(Value::from)
            ]
        ),
        (
            Just("/max_tokens"),
            prop_oneof![
                (i64::MIN..=0).prop_map(Value::from),
                text().prop_map(Value::String),
                Just(json!(1.5))
            ]
        ),
        (
            Just("/messages"),
            prop_oneof![
                Just(json!([])),
                text().prop_map(Value::String),
                any::<i64>().prop_map(Value::from)
            ]
        ),
        (
            Just("/messages/0/role"),
            prop_oneof![
                any::<i64>().prop_map(Value::from),
                text()
                    .prop_filter("not a role", |s| ![
                        "user",
                        "assistant",
                        "system",
                        "tool",
                        "developer"
                    ]
                    .contains(&s.as_str()))
                    .prop_map(Value::String)
            ]
        ),
        (
            Just("/messages/0/content"),
            prop_oneof![
                any::<i64>().prop_map(Value::from),
                Just(json!({"text": "hi"}))
            ]
        ),
        (
            Just("/model"),
            prop_oneof![
                any::<i64>().prop_map(Value::from),
                text().prop_map(|s| Value::String(format!("no-such-model-{s}")))
            ]
        ),
        (Just("/stream"), text().prop_map(Value::String)),
        (Just("/tools"), text().prop_map(Value::String)),
        (
            Just("/presence_penalty"),
            prop_oneof![
                (2.01f64..1e6).prop_map(Value::from),
                (-1e6f64..-2.01).prop_map(Value::from)
            ]
        ),
    ]
}

/// Bodies that no gateway may accept, for `model`.
pub fn malformed_body(model: String) -> impl Strategy<Value = Vec<u8>> {
    let chat = move |pointer: &str, value: Value| {
        let mut body = json!({"model": model, "messages": [{"role": "user", "content": "fuzz"}]});
        if let Some(slot) = body.pointer_mut(pointer) {
            *slot = value;
        } else if let Some(key) = pointer.strip_prefix('/') {
            body[key] = value;
        }
        serde_json::to_vec(&body).unwrap_or_default()
    };
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200).prop_filter("not a JSON object", |b| {
            !matches!(serde_json::from_slice::<Value>(b), Ok(Value::Object(_)))
        }),
        non_object().prop_map(|v| serde_json::to_vec(&v).unwrap_or_default()),
        (1usize..40).prop_map(|cut| {
            let full = br#"{"model": "m", "messages": [{"role": "user", "content": "hello"}]}"#;
            full[..cut.min(full.len() - 1)].to_vec()
        }),
        bad_field().prop_map(move |(p, v)| chat(p, v)),
    ]
}

/// The seed of this run: from [`SEED_VAR`], else fresh.
pub fn seed() -> Result<[u8; 32], String> {
    match std::env::var(SEED_VAR) {
        Ok(hex_seed) => {
            let bytes = hex::decode(hex_seed.trim()).map_err(|e| format!("{SEED_VAR}: {e}"))?;
            <[u8; 32]>::try_from(bytes).map_err(|_| format!("{SEED_VAR} must be 64 hex digits"))
        }
        Err(_) => Ok(*uuid::Uuid::new_v4().as_bytes()).map(|a: [u8; 16]| {
            let mut s = [0u8; 32];
            s[..16].copy_from_slice(&a);
            s[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
            s
        }),
    }
}

pub fn cases() -> usize {
    std::env::var(CASES_VAR)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

/// `count` bodies from `seed`, always the same for the same seed.
pub fn generate(seed: [u8; 32], count: usize, model: &str) -> Result<Vec<Vec<u8>>, String> {
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    let strategy = malformed_body(model.to_owned());
    (0..count)
        .map(|_| {
            strategy
                .new_tree(&mut runner)
                .map(|t| t.current())
                .map_err(|e| format!("cannot generate a body: {e}"))
        })
        .collect()
}

/// Sends one body as the primary token and checks the property: the answer is a 4xx (never
/// a 5xx, never a success) with an error object valid for the profile (its `error_body`
/// schema: the closed DGX envelope for `dgx`, the open OpenAI error object for `openai`);
/// when that schema is the DGX envelope, the code must also be one of the target's catalog
/// with its catalog status.
pub async fn check(target: &Target, http: &reqwest::Client, body: &[u8]) -> Result<(), String> {
    let shown = String::from_utf8_lossy(body).into_owned();
    let mut rb = http
        .post(format!("{}/v1/chat/completions", target.base_url))
        .header("content-type", "application/json")
        .body(body.to_vec());
    for (n, v) in target.request_headers(Some(&target.primary_token)) {
        rb = rb.header(n, v);
    }
    let resp = rb
        .send()
        .await
        .map_err(|e| format!("body {shown:?}: the request failed: {e}"))?;
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    if status >= 500 {
        return Err(format!(
            "body {shown:?}: a malformed body got a server error, HTTP {status}: {text}"
        ));
    }
    if !(400..500).contains(&status) {
        return Err(format!(
            "body {shown:?}: expected a 4xx error, got HTTP {status}: {text}"
        ));
    }
    let schema = target.profile.error_body.as_str();
    if schema == "none" {
        return Ok(());
    }
    let json: Value = serde_json::from_str(&text)
        .map_err(|_| format!("body {shown:?}: HTTP {status} is not JSON: {text}"))?;
    target.schemas.check(schema, &json).map_err(|e| {
        format!(
            "body {shown:?}: the error (profile `{}`) {e}",
            target.profile.name
        )
    })?;
    if schema != schemas::ENVELOPE {
        return Ok(());
    }
    let code = json
        .pointer("/error/code")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let entry = target
        .catalog_entry(code)
        .await
        .map_err(|e| format!("body {shown:?}: {e}"))?;
    if code != "upstream_bad_request" && entry.http_status != status {
        return Err(format!(
            "body {shown:?}: `{code}` is HTTP {} in the catalog but came with {status}",
            entry.http_status
        ));
    }
    Ok(())
}
