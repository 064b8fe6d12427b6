//! The bounded SSE reader: framing rules and the line cap.

use super::*;

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
