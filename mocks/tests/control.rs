//! The `/__mock` control API over HTTP, as an external harness would use it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use mocks::{MockServer, Outcome, Personality};
use serde_json::{json, Value};

#[tokio::test]
async fn script_over_http_then_records_delete_reset() {
    let mock = MockServer::start(Personality::Litellm).await.unwrap();
    let base = mock.base_url();
    let http = client();

    let script = json!({"steps": [
        {"kind": "error", "status": 429, "message": "slow", "headers": {"retry-after": "7"}},
        {"kind": "reply", "content": "fine now", "delay_ms": 5},
    ]});
    let r = http
        .put(format!("{base}/__mock/scripts/ctl-1"))
        .json(&script)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);

    let first = post(&mock, &chat("ctl-1", false)).await;
    assert_eq!(first.status(), 429);
    // A LiteLLM proxy forwards the upstream's header renamed (peers/WIRE_FACTS.md L1).
    assert_eq!(first.headers()["llm_provider-retry-after"], "7");
    let second: Value = post(&mock, &chat("ctl-1", false))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(second["choices"][0]["message"]["content"], "fine now");
    wait_outcome(&mock, "ctl-1", 1, Outcome::Completed).await;

    let records: Value = http
        .get(format!("{base}/__mock/records/ctl-1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let records = records["records"].as_array().unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["path"], "/v1/chat/completions");
    assert_eq!(records[0]["outcome"], "completed");
    assert_eq!(records[0]["body"]["model"], "mock-model");
    assert!(records[0]["headers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|h| h[0] == "content-type"));

    // DELETE: the script is gone, the default reply answers.
    http.put(format!("{base}/__mock/scripts/ctl-2"))
        .json(&json!({"steps": [{"kind": "quota_exhausted"}]}))
        .send()
        .await
        .unwrap();
    let r = http
        .delete(format!("{base}/__mock/scripts/ctl-2"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(post(&mock, &chat("ctl-2", false)).await.status(), 200);

    // Reset forgets records and scripts.
    http.put(format!("{base}/__mock/scripts/ctl-3"))
        .json(&json!({"steps": [{"kind": "daily_limit"}]}))
        .send()
        .await
        .unwrap();
    let r = http
        .post(format!("{base}/__mock/reset"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert!(mock.records("ctl-1").is_empty());
    assert_eq!(post(&mock, &chat("ctl-3", false)).await.status(), 200);
}

#[tokio::test]
async fn malformed_script_is_a_400_naming_the_problem() {
    let mock = MockServer::start(Personality::Vllm).await.unwrap();
    let base = mock.base_url();
    let http = client();
    let cases = [
        (
            json!({"steps": [{"kind": "reply", "content": "ok"}, {"kind": "explode"}]}),
            vec!["steps[1]", "unknown variant `explode`"],
        ),
        (
            json!({"steps": [{"kind": "error", "message": "no status"}]}),
            vec!["steps[0]", "missing field `status`"],
        ),
        (json!({"steps": "nope"}), vec!["steps", "invalid type"]),
        (json!({}), vec!["missing field `steps`"]),
    ];
    for (body, needles) in cases {
        let r = http
            .put(format!("{base}/__mock/scripts/bad"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{body}");
        let err: Value = r.json().await.unwrap();
        let msg = err["error"].as_str().unwrap();
        for needle in needles {
            assert!(msg.contains(needle), "{msg:?} should contain {needle:?}");
        }
    }
    let r = http
        .put(format!("{base}/__mock/scripts/bad"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // An invalid marker name is refused.
    let r = http
        .put(format!("{base}/__mock/scripts/bad%20marker"))
        .json(&json!({"steps": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Nothing was scripted under "bad".
    assert_eq!(post(&mock, &chat("bad", false)).await.status(), 200);
}

#[tokio::test]
async fn every_kind_parses_from_json() {
    let text = r#"{"steps": [
        {"kind": "reply", "content": "x"},
        {"kind": "stream", "chunks": ["a", "b"], "interval_ms": 5},
        {"kind": "tool_calls", "calls": [{"name": "f", "arguments": "{}"}]},
        {"kind": "error", "status": 500, "message": "m", "error_type": "T"},
        {"kind": "quota_exhausted"},
        {"kind": "daily_limit"},
        {"kind": "context_length", "max": 10, "requested": 20},
        {"kind": "drop", "chunks": 2},
        {"kind": "malformed", "after": 1},
        {"kind": "stream_error", "after": 0, "message": "m"},
        {"kind": "no_done", "chunks": 1},
        {"kind": "stall", "after": 1, "ms": 5},
        {"kind": "hang", "delay_ms": 1}
    ]}"#;
    let script = mocks::parse_script(text.as_bytes()).unwrap();
    assert_eq!(script.steps.len(), 13);
    assert_eq!(script.steps[12].delay_ms, 1);
    // Serialising gives the same JSON shape back.
    let again = serde_json::to_value(&script).unwrap();
    let back = mocks::parse_script(again.to_string().as_bytes()).unwrap();
    assert_eq!(back.steps, script.steps);
}
