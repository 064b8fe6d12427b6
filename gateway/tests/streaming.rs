//! Streaming relay and the server-side tool loop, end to end over loopback sockets: a real
//! gateway (`gateway::spawn`) in front of the `mocks` upstreams.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use gateway::config::{Builtin, Executor, Tool};
use gateway::testing::{self, TOKEN};
use gateway::AppState;
use mocks::{MockServer, Outcome, Personality, Step, ToolCallSpec};
use serde_json::{json, Value};

struct Rig {
    mock: MockServer,
    gw: gateway::Running,
    http: reqwest::Client,
}

async fn rig(tools: bool, timeout: Duration) -> Rig {
    let mock = MockServer::start(Personality::Vllm).await.unwrap();
    let mut cfg = testing::config_with_upstream(&mock.api_base());
    cfg.http_total_timeout = timeout;
    if tools {
        cfg.tools = vec![Tool {
            name: "lookup_weather".into(),
            description: "weather of a city".into(),
            parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}}),
            executor: Executor::Builtin(Builtin::LookupWeather),
        }];
    }
    let gw = gateway::spawn(AppState::new(cfg).unwrap(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    Rig {
        mock,
        gw,
        http: reqwest::Client::new(),
    }
}

impl Rig {
    async fn post(&self, marker: &str, extra: Value) -> reqwest::Response {
        let mut body = json!({"model": "small", "messages": [{"role": "user", "content": format!("weather please mock:{marker}")}]});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        self.http
            .post(format!("{}/v1/chat/completions", self.gw.base_url()))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap()
    }
}

/// (event name, data) pairs of a whole SSE body.
async fn events(resp: reqwest::Response) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut s = resp.bytes_stream().eventsource();
    while let Some(e) = s.next().await {
        let e = e.unwrap();
        out.push((e.event, e.data));
    }
    out
}

fn content_of(evts: &[(String, String)]) -> String {
    evts.iter()
        .filter(|(n, d)| n == "message" && d != "[DONE]")
        .filter_map(|(_, d)| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| {
            v.pointer("/choices/0/delta/content")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .collect()
}

#[tokio::test]
async fn chunks_are_forwarded_as_they_arrive() {
    let r = rig(false, Duration::from_secs(10)).await;
    r.mock
        .script("timing", vec![Step::stream(["one ", "two ", "three"], 400)]);
    let resp = r.post("timing", json!({"stream": true})).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut s = resp.bytes_stream().eventsource();
    let mut arrivals = Vec::new();
    let start = Instant::now();
    let mut text = String::new();
    while let Some(e) = s.next().await {
        let e = e.unwrap();
        if e.data == "[DONE]" {
            break;
        }
        let v: Value = serde_json::from_str(&e.data).unwrap();
        if let Some(c) = v
            .pointer("/choices/0/delta/content")
            .and_then(Value::as_str)
            .filter(|c| !c.is_empty())
        {
            arrivals.push(start.elapsed());
            text.push_str(c);
        }
    }
    assert_eq!(text, "one two three");
    // Not buffered: the first chunk reached us well before the upstream sent the second.
    assert!(
        arrivals[1] - arrivals[0] >= Duration::from_millis(300),
        "{arrivals:?}"
    );
}

#[tokio::test]
async fn failures_before_the_first_chunk_are_plain_errors() {
    let r = rig(false, Duration::from_millis(800)).await;
    r.mock.script("e400", vec![Step::error(400, "bad thing")]);
    let resp = r.post("e400", json!({"stream": true})).await;
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "upstream_bad_request");
    r.mock.script(
        "inband",
        vec![Step::stream_error(0, 500, "engine overloaded")],
    );
    let resp = r.post("inband", json!({"stream": true})).await;
    // "overloaded" in the upstream's words is upstream_overloaded (503 with Retry-After).
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().get("retry-after").is_some());
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "upstream_overloaded");
    r.mock.script("hang", vec![Step::hang()]);
    let resp = r.post("hang", json!({"stream": true})).await;
    assert_eq!(resp.status(), 504);
    // Only a usage chunk (empty `choices`), then [DONE]: no answer, an error before the 200.
    for include_usage in [false, true] {
        r.mock
            .script("nochoice", vec![Step::empty_choices().with_usage(11, 3)]);
        let body = json!({"stream": true, "stream_options": {"include_usage": include_usage}});
        let resp = r.post("nochoice", body).await;
        assert_eq!(resp.status(), 502, "include_usage {include_usage}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["error"]["code"], "upstream_error");
    }
}

#[tokio::test]
async fn failures_after_the_200_are_error_events() {
    let r = rig(false, Duration::from_millis(1500)).await;
    for (marker, step) in [
        ("drop", Step::drop_after(2, 10)),
        ("malformed", Step::malformed(1)),
        ("nodone", Step::no_done(2)),
        ("stall", Step::stall(1, 5_000)),
    ] {
        r.mock.script(marker, vec![step]);
        let resp = r.post(marker, json!({"stream": true})).await;
        assert_eq!(resp.status(), 200, "{marker}");
        let evts = events(resp).await;
        let last = evts.last().unwrap();
        assert_eq!(last.0, "error", "{marker}: {evts:?}");
        let v: Value = serde_json::from_str(&last.1).unwrap();
        let code = v["error"]["code"].as_str().unwrap();
        let want = if marker == "stall" {
            "upstream_timeout"
        } else {
            "upstream_error"
        };
        assert_eq!(code, want, "{marker}");
        assert!(!evts.iter().any(|(_, d)| d == "[DONE]"), "{marker}");
    }
}

#[tokio::test]
async fn a_client_that_leaves_cancels_the_upstream() {
    let r = rig(false, Duration::from_secs(30)).await;
    r.mock.script(
        "leave",
        vec![Step::stream((0..50).map(|i| format!("c{i} ")), 200)],
    );
    let resp = r.post("leave", json!({"stream": true})).await;
    let mut s = resp.bytes_stream();
    s.next().await.unwrap().unwrap();
    drop(s);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let rec = r.mock.records("leave");
        if rec
            .first()
            .is_some_and(|x| x.outcome == Outcome::ClientDisconnected)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "upstream not cancelled: {:?}",
            rec.first().map(|x| &x.outcome)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn cap_at_exactly_max_iterations_then_synthesis_without_tools() {
    let r = rig(true, Duration::from_secs(10)).await;
    let mut steps: Vec<Step> = (0..10)
        .map(|i| Step::tool_call("lookup_weather", format!("{{\"city\":\"c{i}\"}}")))
        .collect();
    steps.push(Step::reply("Here is the summary."));
    r.mock.script("cap", steps);
    let resp = r.post("cap", json!({})).await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["dgx_code"], "tool_loop_max_iterations");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Here is the summary."
    );
    assert!(v["choices"][0]["message"].get("tool_calls").is_none());
    let rec = r.mock.records("cap");
    assert_eq!(rec.len(), 11, "10 tool rounds + 1 synthesis call");
    assert_eq!(rec[10].body["tools"], json!([]));
    assert!(rec[9].body["tools"].as_array().unwrap().len() == 1);
    // the synthesis prompt holds the collected results
    let last_msg = rec[10].body["messages"].as_array().unwrap().last().unwrap()["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(last_msg.contains("c9"), "{last_msg}");
    // usage is summed over all 11 calls
    let one = rec.len() as u64;
    assert!(v["usage"]["total_tokens"].as_u64().unwrap() >= one);
}

#[tokio::test]
async fn anti_loop_on_the_second_identical_call_only() {
    let r = rig(true, Duration::from_secs(10)).await;
    r.mock.script(
        "same",
        vec![
            Step::tool_call("lookup_weather", r#"{"city":"Oslo"}"#),
            Step::tool_call("lookup_weather", r#"{ "city" : "Oslo" }"#),
            Step::reply("Oslo is fine."),
        ],
    );
    let v: Value = r.post("same", json!({})).await.json().await.unwrap();
    assert_eq!(v["dgx_code"], "tool_loop_anti_loop_synthesised");
    assert_eq!(r.mock.records("same").len(), 3);
    assert_eq!(r.mock.records("same")[2].body["tools"], json!([]));

    r.mock.script(
        "diff",
        vec![
            Step::tool_call("lookup_weather", r#"{"city":"Oslo"}"#),
            Step::tool_call("lookup_weather", r#"{"city":"Bergen"}"#),
            Step::reply("Both fine."),
        ],
    );
    let v: Value = r.post("diff", json!({})).await.json().await.unwrap();
    assert!(v.get("dgx_code").is_none(), "{v}");
    assert_eq!(v["choices"][0]["message"]["content"], "Both fine.");
    let rec = r.mock.records("diff");
    assert_eq!(rec.len(), 3);
    // the executed tool's result went back to the model as a tool message
    let msgs = rec[1].body["messages"].as_array().unwrap();
    assert_eq!(msgs.last().unwrap()["role"], "tool");
    assert!(msgs.last().unwrap()["content"]
        .as_str()
        .unwrap()
        .contains("Oslo"));
}

#[tokio::test]
async fn named_events_precede_the_final_content_when_streaming() {
    let r = rig(true, Duration::from_secs(10)).await;
    r.mock.script("scap", {
        let mut s: Vec<Step> = (0..10)
            .map(|i| Step::tool_call("lookup_weather", format!("{{\"city\":\"c{i}\"}}")))
            .collect();
        s.push(Step::reply("capped answer"));
        s
    });
    let evts = events(r.post("scap", json!({"stream": true})).await).await;
    let at = evts
        .iter()
        .position(|(n, _)| n == "spass.tool-cap")
        .expect("tool-cap event");
    let payload: Value = serde_json::from_str(&evts[at].1).unwrap();
    assert_eq!(
        payload,
        json!({"code": "tool_loop_max_iterations", "iterations": 10, "synth_called": true})
    );
    assert_eq!(content_of(&evts[at..]), "capped answer");
    assert_eq!(content_of(&evts[..at]), "");
    assert_eq!(evts.last().unwrap().1, "[DONE]");

    r.mock.script(
        "sloop",
        vec![
            Step::tool_call("lookup_weather", r#"{"city":"Oslo"}"#).with_arg_splits(4),
            Step::tool_call("lookup_weather", r#"{"city":"Oslo"}"#).with_arg_splits(5),
            Step::reply("looped answer"),
        ],
    );
    let evts = events(r.post("sloop", json!({"stream": true})).await).await;
    let at = evts
        .iter()
        .position(|(n, _)| n == "spass.tool-anti-loop")
        .expect("anti-loop event");
    let payload: Value = serde_json::from_str(&evts[at].1).unwrap();
    assert_eq!(payload["iterations"], 1);
    assert_eq!(content_of(&evts), "looped answer");
    // the split arguments were reassembled before execution: the tool saw valid JSON
    let msgs = r.mock.records("sloop")[1].body["messages"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(
        msgs[1]["tool_calls"][0]["function"]["arguments"],
        r#"{"city":"Oslo"}"#
    );
    assert!(
        !msgs[2]["content"].as_str().unwrap().contains("error"),
        "{}",
        msgs[2]
    );
}

#[tokio::test]
async fn caller_defined_tools_come_back_untouched() {
    let r = rig(true, Duration::from_secs(10)).await;
    let mine = json!([{"type": "function", "function": {"name": "my_tool", "parameters": {"type": "object"}}}]);
    r.mock.script(
        "mine",
        vec![Step::tool_calls(vec![ToolCallSpec::new(
            "my_tool",
            r#"{"x":1}"#,
        )
        .with_id("call_abc")])],
    );
    let v: Value = r
        .post("mine", json!({"tools": mine}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(
        v["choices"][0]["message"]["tool_calls"][0]["id"],
        "call_abc"
    );
    assert_eq!(
        v["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
        r#"{"x":1}"#
    );
    assert_eq!(r.mock.records("mine").len(), 1);

    r.mock.script(
        "mine-s",
        vec![Step::tool_calls(vec![ToolCallSpec::new("my_tool", r#"{"x":2}"#)]).with_arg_splits(3)],
    );
    let evts = events(
        r.post("mine-s", json!({"tools": mine, "stream": true}))
            .await,
    )
    .await;
    let args: String = evts
        .iter()
        .filter_map(|(_, d)| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| {
            v.pointer("/choices/0/delta/tool_calls/0/function/arguments")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(args, r#"{"x":2}"#);
    assert_eq!(evts.last().unwrap().1, "[DONE]");
}

#[tokio::test]
async fn usage_chunk_only_when_asked_and_summed() {
    let r = rig(false, Duration::from_secs(10)).await;
    r.mock.script("u1", vec![Step::reply("hi there")]);
    let evts = events(r.post("u1", json!({"stream": true})).await).await;
    assert!(
        !evts.iter().any(|(_, d)| d.contains("\"usage\":{")),
        "{evts:?}"
    );
    r.mock.script("u2", vec![Step::reply("hi there")]);
    let evts = events(
        r.post(
            "u2",
            json!({"stream": true, "stream_options": {"include_usage": true}}),
        )
        .await,
    )
    .await;
    assert!(
        evts.iter().any(|(_, d)| d.contains("\"usage\":{")),
        "{evts:?}"
    );
    // the gateway always asked the upstream for usage (budgets count it)
    assert_eq!(
        r.mock.records("u1")[0].body["stream_options"]["include_usage"],
        true
    );
}

#[tokio::test]
async fn mixed_rounds_return_only_the_callers_calls_and_answers_are_never_empty() {
    let r = rig(true, Duration::from_secs(10)).await;
    let mine = json!([{"type": "function", "function": {"name": "my_tool", "parameters": {"type": "object"}}}]);
    r.mock.script(
        "mixed",
        vec![Step::tool_calls(vec![
            ToolCallSpec::new("lookup_weather", r#"{"city":"Oslo"}"#),
            ToolCallSpec::new("my_tool", r#"{"x":1}"#),
        ])],
    );
    let v: Value = r
        .post("mixed", json!({"tools": mine}))
        .await
        .json()
        .await
        .unwrap();
    let calls = v["choices"][0]["message"]["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1, "{v}");
    assert_eq!(calls[0]["function"]["name"], "my_tool");

    r.mock.script(
        "mixed-s",
        vec![Step::tool_calls(vec![
            ToolCallSpec::new("lookup_weather", r#"{"city":"Oslo"}"#),
            ToolCallSpec::new("my_tool", r#"{"x":1}"#),
        ])],
    );
    let evts = events(
        r.post("mixed-s", json!({"tools": mine, "stream": true}))
            .await,
    )
    .await;
    assert!(
        !evts.iter().any(|(_, d)| d.contains("lookup_weather")),
        "{evts:?}"
    );
    assert!(evts.iter().any(|(_, d)| d.contains("my_tool")), "{evts:?}");

    r.mock.script(
        "empty",
        vec![
            Step::tool_call("lookup_weather", r#"{"city":"Oslo"}"#),
            Step::reply(""),
        ],
    );
    let v: Value = r.post("empty", json!({})).await.json().await.unwrap();
    let text = v["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(text.contains("Oslo"), "{v}");
}

#[tokio::test]
async fn in_stream_errors_are_mapped_like_any_upstream_error() {
    let r = rig(false, Duration::from_secs(5)).await;
    r.mock.script(
        "q429",
        vec![Step::stream_error(
            0,
            429,
            "litellm.RateLimitError: http://10.1.2.3:4000 over",
        )],
    );
    let resp = r.post("q429", json!({"stream": true})).await;
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().get("retry-after").is_some());
    let text = resp.text().await.unwrap();
    assert!(
        text.contains("model_quota_exhausted")
            && !text.contains("10.1.2.3")
            && !text.contains("litellm"),
        "{text}"
    );
}

#[tokio::test]
async fn the_whole_tool_loop_is_bounded_by_the_deadline() {
    let r = rig(true, Duration::from_millis(900)).await;
    r.mock.script(
        "slow",
        (0..10)
            .map(|i| {
                Step::tool_call("lookup_weather", format!("{{\"city\":\"c{i}\"}}")).with_delay(300)
            })
            .collect(),
    );
    let resp = r.post("slow", json!({})).await;
    assert_eq!(resp.status(), 504);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "upstream_timeout");
    assert!(r.mock.records("slow").len() <= 4);
}
