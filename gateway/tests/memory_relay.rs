//! The answer memory budget on the /v1 streamed relay's byte path (`upstream/sse_splice.rs`):
//! an ordinary chunk forwarded as the upstream's bytes is paid for from MAX_ANSWER_MEMORY_BYTES
//! exactly as a rebuilt one, so a large plain chunk is refused with the same errors (before the
//! 200: a catalog error; after it: `event: error`), and every share is given back.
//!
//! That these streams take the byte path is checked, not assumed: a rebuilt chunk comes out
//! with its keys sorted (`{"choices":…`), a relayed one in the upstream's order (`{"id":…`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use gateway::testing::{self, TOKEN};
use gateway::AppState;
use mocks::{MockServer, Personality, Step};

/// Small enough that one 300 KiB chunk (text × 2 plus its tree: about 900 KiB) never fits.
const BUDGET: usize = 512 * 1024;

struct Rig {
    mock: MockServer,
    state: AppState,
    gw: gateway::Running,
    http: reqwest::Client,
}

async fn rig(budget: usize) -> Rig {
    let mock = MockServer::start(Personality::Vllm).await.unwrap();
    let mut cfg = testing::config_with_upstream(&mock.api_base());
    cfg.reads.max_answer_memory_bytes = budget;
    let state = AppState::new(cfg).unwrap();
    let gw = gateway::spawn(state.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    Rig {
        mock,
        state,
        gw,
        http: reqwest::Client::new(),
    }
}

impl Rig {
    async fn stream(&self, marker: &str) -> reqwest::Response {
        let body = serde_json::json!({"model": "small", "stream": true,
            "messages": [{"role": "user", "content": format!("hi mock:{marker}")}]});
        self.http
            .post(format!("{}/v1/chat/completions", self.gw.base_url()))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Every share is given back once the stream's frames are gone: the server drops them
    /// on its tasks, which run on this test's (single) thread, so yielding lets them finish.
    async fn all_given_back(&self) {
        let until = Instant::now() + Duration::from_secs(5);
        while self.state.answer_memory.used() != 0 && Instant::now() < until {
            tokio::task::yield_now().await;
        }
        assert_eq!(self.state.answer_memory.used(), 0, "every share given back");
    }
}

fn error_of(v: &serde_json::Value) -> (&str, &str) {
    (
        v["error"]["code"].as_str().unwrap(),
        v["error"]["message"].as_str().unwrap(),
    )
}

#[tokio::test]
async fn plain_chunks_within_the_budget_are_relayed_as_bytes_and_paid_back() {
    let rig = rig(BUDGET).await;
    let pieces: Vec<String> = (0..64).map(|i| format!("{i:04}").repeat(256)).collect();
    rig.mock.script("fits", vec![Step::stream(pieces, 0)]);
    let resp = rig.stream("fits").await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert!(
        text.starts_with("data: {\"id\":"),
        "byte path: {}",
        &text[..80]
    );
    assert!(text.ends_with("data: [DONE]\n\n"));
    let events = text.matches("data: {").count();
    assert!(events >= 64, "{events} events");
    assert_eq!(
        text.matches("\"model\":\"small\"").count(),
        events,
        "alias spliced into each"
    );
    rig.all_given_back().await;
}

#[tokio::test]
async fn a_large_plain_chunk_after_the_200_ends_the_stream_with_upstream_error() {
    let rig = rig(BUDGET).await;
    let big = "z".repeat(300 * 1024);
    rig.mock
        .script("late", vec![Step::stream(vec!["a".to_owned(), big], 0)]);
    let resp = rig.stream("late").await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert!(
        text.starts_with("data: {\"id\":"),
        "byte path: {}",
        &text[..80]
    );
    assert!(!text.contains("zzzz"), "the refused chunk is not relayed");
    assert!(!text.contains("[DONE]"));
    let tail = text.rsplit("event: error\ndata: ").next().unwrap();
    let v: serde_json::Value = serde_json::from_str(tail.trim()).unwrap();
    let (code, message) = error_of(&v);
    assert_eq!(code, "upstream_error", "{v}");
    assert!(message.contains("MAX_ANSWER_MEMORY_BYTES"), "{v}");
    rig.all_given_back().await;
}

#[tokio::test]
async fn a_first_chunk_that_never_fits_is_a_502_and_a_busy_budget_a_503() {
    // The mock's first chunk is the role delta (a few KiB with its tree): over a 1 KiB budget.
    let tiny = rig(1024).await;
    tiny.mock
        .script("first", vec![Step::stream(vec!["z".to_owned()], 0)]);
    let resp = tiny.stream("first").await;
    assert_eq!(resp.status(), 502);
    let v: serde_json::Value = resp.json().await.unwrap();
    let (code, message) = error_of(&v);
    assert_eq!(code, "upstream_error", "{v}");
    assert!(message.contains("MAX_ANSWER_MEMORY_BYTES"), "{v}");
    tiny.all_given_back().await;

    let rig = rig(BUDGET).await;
    // The budget held by others: an ordinary small chunk does not fit now, it would later.
    let mut others = rig.state.answer_memory.hold();
    others.grow(BUDGET - 100).unwrap();
    rig.mock
        .script("busy", vec![Step::stream(vec!["small".to_owned()], 0)]);
    let resp = rig.stream("busy").await;
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(error_of(&v).0, "upstream_overloaded", "{v}");
    drop(others);
    rig.all_given_back().await;
}
