//! The bounded SSE reader (framing rules, the line cap) and the answer-budget share of each
//! event, on the `Value` path and the raw one alike.

use super::*;
use crate::upstream::sse_reader::SseReader;

fn reader(chunks: &[&str], max: usize) -> SseReader {
    let owned: Vec<Result<Bytes, reqwest::Error>> = chunks
        .iter()
        .map(|c| Ok(Bytes::from(c.to_string())))
        .collect();
    SseReader::new(Box::pin(futures_util::stream::iter(owned)), max)
}

async fn all(mut r: SseReader) -> Vec<Result<String, String>> {
    let mut out = Vec::new();
    while let Some(x) = r.next_data().await {
        let stop = x.is_err();
        out.push(x.map_err(|e| format!("{e:?}")));
        if stop {
            break;
        }
    }
    out
}

#[tokio::test]
async fn frames_events_across_chunks_crlf_comments_and_multi_line_data() {
    let r = reader(
        &[
            ": OPENROUTER PROCESSING\n\nda",
            "ta: {\"a\":1}\r\n\r\nevent: x\ndata: one\ndata:two\n\n",
            "data: [DONE]\n\ndata: unfinished",
        ],
        1024,
    );
    let got = all(r).await;
    assert_eq!(
        got,
        vec![
            Ok("{\"a\":1}".to_owned()),
            Ok("one\ntwo".to_owned()),
            Ok("[DONE]".to_owned()),
        ]
    );
}

#[tokio::test]
async fn a_line_over_the_cap_fails_before_more_is_buffered() {
    let long = "x".repeat(600);
    let r = reader(&["data: ", &long, &long, "\n\n"], 1000);
    let got = all(r).await;
    assert_eq!(got, vec![Err("TooLong".to_owned())]);
    // Many data lines of one event count together.
    let line = format!("data: {}\n", "y".repeat(400));
    let r = reader(&[&line, &line, &line, "\n"], 1000);
    assert_eq!(all(r).await, vec![Err("TooLong".to_owned())]);
}

/// Events over `text` on a state whose answer budget is `budget` bytes.
fn events(text: &str, budget: usize) -> (AppState, UpstreamEvents) {
    let mut cfg = crate::testing::config();
    cfg.reads.max_answer_memory_bytes = budget;
    let state = AppState::new(cfg).unwrap();
    let model = state.config.models[0].clone();
    let resp = axum::http::Response::new(reqwest::Body::from(text.to_owned()));
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    let ev = UpstreamEvents::new(resp, deadline, &state, &model, &Map::new());
    (state, ev)
}

const CHUNK: &str = r#"{"choices":[{"index":0,"delta":{"content":"x"}}]}"#;

#[tokio::test]
async fn each_event_is_paid_for_until_its_share_is_handed_on_and_dropped() {
    let text = format!("data: {CHUNK}\n\ndata: {CHUNK}\n\ndata: [DONE]\n\n");
    let (state, mut ev) = events(&text, 1 << 20);
    assert!(matches!(ev.next().await, Piece::Chunk(_)));
    let one = state.answer_memory.used();
    assert!(one > 2 * CHUNK.len(), "text × 2 and the tree: {one}");
    assert!(matches!(ev.next().await, Piece::Chunk(_)));
    assert_eq!(
        state.answer_memory.used(),
        2 * one,
        "not handed on yet: both held"
    );
    let share = ev.take_share();
    assert_eq!(share.bytes(), 2 * one);
    let frame = share.attach(Bytes::from_static(b"frame"));
    assert!(matches!(ev.next().await, Piece::Done));
    assert_eq!(
        state.answer_memory.used(),
        5,
        "shrunk to the frame, which is not written yet"
    );
    drop(frame);
    assert_eq!(state.answer_memory.used(), 0);
}

#[tokio::test]
async fn an_event_the_budget_cannot_take_fails_the_stream() {
    // 20,000 elements: a tree of over 1 MB from a 40 KB line.
    let big = format!(
        r#"{{"choices":[{{"index":0,"delta":{{"content":"x"}}}}],"junk":[{}0]}}"#,
        "0,".repeat(20_000)
    );
    let (state, mut ev) = events(&format!("data: {big}\n\n"), 1 << 20);
    match ev.next().await {
        Piece::Failed(e) => assert_eq!(e.code, crate::catalog::Code::UpstreamError),
        other => panic!("{other:?}"),
    }
    assert_eq!(state.answer_memory.used(), 0);
    let (state, mut ev) = events(&format!("data: {CHUNK}\n\n"), 1 << 20);
    let mut others = state.answer_memory.hold();
    others.grow((1 << 20) - 10).unwrap();
    match ev.next().await {
        Piece::Failed(e) => {
            assert_eq!(e.code, crate::catalog::Code::UpstreamOverloaded);
            assert_eq!(e.retry_after, Some(1));
        }
        other => panic!("{other:?}"),
    }
}

/// The raw path's charge per event, against the `Value` path's over the same text.
async fn charges(text: &str, raw: bool) -> (Vec<&'static str>, Vec<usize>) {
    let (state, ev) = events(text, 1 << 20);
    let mut ev = if raw { ev.relay_as_bytes() } else { ev };
    let (mut kinds, mut used) = (Vec::new(), Vec::new());
    loop {
        let kind = match ev.next_relayed().await {
            Relayed::Raw(_) => "raw",
            Relayed::Chunk(_) => "value",
            Relayed::Done => break,
            Relayed::Failed(e) => panic!("{e:?}"),
        };
        kinds.push(kind);
        used.push(state.answer_memory.used());
    }
    drop(ev.take_share());
    assert_eq!(state.answer_memory.used(), 0, "every share given back");
    (kinds, used)
}

#[tokio::test]
async fn a_raw_event_is_charged_exactly_as_the_value_path_charges_it() {
    // An ordinary chunk (raw), an escaped key (the `Value` path decides after the raw path
    // paid: charged once, not twice), a usage report (raw).
    let escaped = r#"{"choices":[{"index":0,"delta":{"content":"y"}}],"j\u0075nk":[1,2,3]}"#;
    let usage = r#"{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}}"#;
    let text = format!("data: {CHUNK}\n\ndata: {escaped}\n\ndata: {usage}\n\ndata: [DONE]\n\n");
    let (kinds, raw) = charges(&text, true).await;
    assert_eq!(kinds, ["raw", "value", "raw"]);
    let (kinds, value) = charges(&text, false).await;
    assert_eq!(kinds, ["value", "value", "value"]);
    assert_eq!(raw, value, "the same share after every event");
    let cost = crate::checks::lazy::json_cost(CHUNK.as_bytes()).unwrap() as usize;
    assert_eq!(raw[0], cost + 2 * CHUNK.len());
}

#[tokio::test]
async fn a_raw_event_the_budget_cannot_take_fails_the_stream_as_on_the_value_path() {
    // Never fits (a tree over the whole budget): upstream_error, nothing held.
    let big = format!(
        r#"{{"choices":[{{"index":0,"delta":{{"content":"x"}}}}],"junk":[{}0]}}"#,
        "0,".repeat(20_000)
    );
    let (state, ev) = events(&format!("data: {big}\n\ndata: {CHUNK}\n\n"), 1 << 20);
    let mut ev = ev.relay_as_bytes();
    match ev.next_relayed().await {
        Relayed::Failed(e) => {
            assert_eq!(e.code, crate::catalog::Code::UpstreamError);
            assert!(
                e.message.contains("MAX_ANSWER_MEMORY_BYTES"),
                "{}",
                e.message
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(ev.next_relayed().await, Relayed::Done), "ended");
    assert_eq!(state.answer_memory.used(), 0);
    // Busy (the rest of the budget is held by others): upstream_overloaded, Retry-After 1.
    let (state, ev) = events(&format!("data: {CHUNK}\n\n"), 1 << 20);
    let mut ev = ev.relay_as_bytes();
    let mut others = state.answer_memory.hold();
    others.grow((1 << 20) - 10).unwrap();
    match ev.next_relayed().await {
        Relayed::Failed(e) => {
            assert_eq!(e.code, crate::catalog::Code::UpstreamOverloaded);
            assert_eq!(e.retry_after, Some(1));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_raw_events_share_is_carried_until_its_frame_is_dropped() {
    let text = format!("data: {CHUNK}\n\ndata: [DONE]\n\n");
    let (state, ev) = events(&text, 1 << 20);
    let mut ev = ev.relay_as_bytes();
    assert!(matches!(ev.next_relayed().await, Relayed::Raw(_)));
    let one = state.answer_memory.used();
    assert!(one > 2 * CHUNK.len(), "{one}");
    let frame = ev.take_share().attach(Bytes::from_static(b"frame"));
    assert!(matches!(ev.next_relayed().await, Relayed::Done));
    assert_eq!(state.answer_memory.used(), 5, "shrunk to the frame");
    drop(frame);
    assert_eq!(state.answer_memory.used(), 0);
}

#[tokio::test]
async fn events_without_a_choice_do_not_answer_on_either_path() {
    // `{}` and a usage report carry no choice: `[DONE]` after only them answered nothing.
    let usage =
        r#"{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":0,"total_tokens":1}}"#;
    let text = format!("data: {{}}\n\ndata: {usage}\n\ndata: [DONE]\n\n");
    for as_bytes in [false, true] {
        let (_state, ev) = events(&text, 1 << 20);
        let mut ev = if as_bytes { ev.relay_as_bytes() } else { ev };
        let mut seen = 0;
        loop {
            match ev.next_relayed().await {
                Relayed::Raw(_) | Relayed::Chunk(_) => seen += 1,
                Relayed::Failed(e) => {
                    assert_eq!(e.code, crate::catalog::Code::UpstreamError, "{e:?}");
                    break;
                }
                Relayed::Done => panic!("a stream of no choice ended as an answer ({as_bytes})"),
            }
        }
        assert_eq!(
            seen, 2,
            "both events relayed before the failure ({as_bytes})"
        );
    }
    // One choice, even only the role, is an answer.
    let text = format!("data: {{}}\n\ndata: {CHUNK}\n\ndata: [DONE]\n\n");
    let (_state, ev) = events(&text, 1 << 20);
    let mut ev = ev.relay_as_bytes();
    assert!(matches!(ev.next_relayed().await, Relayed::Raw(_)));
    assert!(matches!(ev.next_relayed().await, Relayed::Raw(_)));
    assert!(matches!(ev.next_relayed().await, Relayed::Done));
}
