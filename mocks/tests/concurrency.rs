//! Many scenarios share one mock at once; each gets only its own steps.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use mocks::{MockServer, Outcome, Personality, Step};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_scenarios() {
    let mock = MockServer::start(Personality::OpenRouter).await.unwrap();
    let http = client();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let marker = format!("conc-{i}");
        mock.script(
            &marker,
            vec![
                Step::reply(format!("first {i}")),
                Step::stream(["second ".to_owned(), format!("{i}")], 1),
                Step::error(500 + (i % 4) as u16, format!("third {i}")),
            ],
        );
        let http = http.clone();
        let url = mock.chat_url();
        tasks.push(tokio::spawn(async move {
            let one: Value = http
                .post(&url)
                .json(&chat(&marker, false))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(
                one["choices"][0]["message"]["content"],
                format!("first {i}")
            );
            let resp = http
                .post(&url)
                .json(&chat(&marker, true))
                .send()
                .await
                .unwrap();
            let (data, err) = sse_data(resp).await;
            assert!(err.is_none());
            assert_eq!(content(&chunks(&data)), format!("second {i}"));
            let three = http
                .post(&url)
                .json(&chat(&marker, false))
                .send()
                .await
                .unwrap();
            assert_eq!(three.status().as_u16(), 500 + (i % 4) as u16);
            let body: Value = three.json().await.unwrap();
            assert_eq!(body["error"]["message"], format!("third {i}"));
            // Played out: default reply.
            let four: Value = http
                .post(&url)
                .json(&chat(&marker, false))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert!(four["choices"][0]["message"]["content"]
                .as_str()
                .unwrap()
                .starts_with("Mock openrouter reply: "));
            marker
        }));
    }
    for task in tasks {
        let marker = task.await.unwrap();
        wait_outcome(&mock, &marker, 3, Outcome::Completed).await;
        let records = mock.records(&marker);
        assert_eq!(records.len(), 4, "{marker}");
        for r in &records {
            let content = r.body["messages"][1]["content"].as_str().unwrap();
            assert!(content.contains(&format!("mock:{marker} ")));
        }
    }
}
