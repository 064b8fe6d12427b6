//! Wire formats per personality: paths, success bodies, SSE framing, error bodies.
//!
//! Each test names the fact it pins and where the fact came from. Sources (public):
//! - [vllm-protocol] vllm-project/vllm `vllm/entrypoints/openai/protocol.py` (and the later
//!   `engine/protocol.py`): `class ErrorInfo(message, type, param=None, code: int)`,
//!   `class ErrorResponse(error: ErrorInfo)`; before that (≤0.10.0) ErrorResponse was flat:
//!   `object="error", message, type, param, code`.
//! - [vllm-serving] vllm `serving_engine.py` `create_error_response(... code=status_code.value)`
//!   and `create_streaming_error_response` → `json.dumps(ErrorResponse.model_dump())`, i.e. a
//!   `data: {"error": {...}}` event inside the 200 stream (older versions wrapped the flat
//!   object in `{"error": ...}` by hand), followed by `data: [DONE]`.
//! - [vllm-ctx] vLLM's context-length ValueError: "This model's maximum context length is N
//!   tokens. However, you requested M tokens (P in the messages, C in the completion). ...";
//!   also quoted by seed 004 (a vLLM-backed endpoint's docs).
//! - [vllm-auth] vLLM `--api-key` middleware: 401 `{"error": "Unauthorized"}`.
//! - [litellm-rl] BerriAI/litellm docs `proxy/users.md`, "Expected Response" of a rate-limited
//!   key: `{"error":{"message":"LiteLLM Rate Limit Handler for rate limit type = key. Crossed TPM
//!   / RPM / Max Parallel Request Limit. ...","type":"None","param":"None","code":"429"}}` —
//!   `code` is the status as a string.
//! - [litellm-budget] litellm `BudgetExceededError`: "Budget has been exceeded! Current cost:
//!   X, Max budget: Y" (status 400, ProxyErrorTypes.budget_exceeded); the wording is quoted
//!   verbatim by many client classifiers in public code.
//! - [or-errors] openrouter.ai/docs/errors: `type ErrorResponse = { error: { code: number;
//!   message: string; metadata?: Record<string, unknown> } }`, HTTP status == error.code,
//!   402 = insufficient credits.
//! - [or-402] OpenRouter SDK docs PaymentRequiredResponseError example: code 402, "Insufficient
//!   credits. Add more using https://openrouter.ai/credits".
//! - [or-daily] GitHub issue Gitlawb/openclaude#936 (a captured OpenRouter answer): 429
//!   `{"error":{"message":"Rate limit exceeded: free-models-per-day. Add 10 credits to unlock
//!   1000 free model requests per day","code":429,"metadata":{"headers":{"X-RateLimit-Limit":
//!   "50","X-RateLimit-Remaining":"0",...}}}}`.
//! - [peers] the real LiteLLM proxy 1.106.2 (`num_retries: 0`) in front of this mock's vLLM
//!   personality, captured by `peers/capture.py`: `peers/fixtures/litellm-1.106.2-num_retries-0/
//!   <case>.http`; facts `L<n>` of `peers/WIRE_FACTS.md`, each with its LiteLLM source line.
//! - [or-sse] OpenRouter streaming docs: SSE comment lines `: OPENROUTER PROCESSING` are sent
//!   as keep-alives; ids are `gen-…`; bodies carry `provider`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use mocks::{MockConfig, MockServer, Personality, Step};
use serde_json::{json, Value};

async fn start(p: Personality) -> MockServer {
    MockServer::start(p).await.unwrap()
}

async fn get(mock: &MockServer, path: &str) -> reqwest::Response {
    client()
        .get(format!("{}{}", mock.base_url(), path))
        .send()
        .await
        .unwrap()
}

// Pins: each server's paths — vLLM /v1/chat/completions, /v1/models, /health (200, empty);
// LiteLLM also /chat/completions, /health/liveliness ("I'm alive!"), /health/readiness (JSON);
// OpenRouter /api/v1/chat/completions and /api/v1/models. Source: each project's docs.
#[tokio::test]
async fn paths_per_personality() {
    let vllm = start(Personality::Vllm).await;
    let r = get(&vllm, "/health").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "");
    let models: Value = get(&vllm, "/v1/models").await.json().await.unwrap();
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][0]["owned_by"], "vllm");
    assert_eq!(vllm.api_base(), format!("{}/v1", vllm.base_url()));

    let litellm = start(Personality::Litellm).await;
    let alive: Value = get(&litellm, "/health/liveliness")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(alive, json!("I'm alive!"));
    let ready: Value = get(&litellm, "/health/readiness")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "healthy");
    let models: Value = get(&litellm, "/v1/models").await.json().await.unwrap();
    assert_eq!(models["data"][0]["object"], "model");
    let r = client()
        .post(format!("{}/chat/completions", litellm.base_url()))
        .json(&chat("", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let or = start(Personality::OpenRouter).await;
    assert_eq!(or.api_base(), format!("{}/api/v1", or.base_url()));
    let models: Value = get(&or, "/api/v1/models").await.json().await.unwrap();
    assert!(models["data"][0]["context_length"].is_u64());
    assert_eq!(
        get(&or, Personality::OpenRouter.health_path())
            .await
            .status(),
        200
    );
    let r = client()
        .post(format!("{}/v1/chat/completions", or.base_url()))
        .json(&chat("", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    for p in Personality::UPSTREAMS {
        let mock = start(p).await;
        assert_eq!(get(&mock, p.health_path()).await.status(), 200, "{p}");
        assert_eq!(p.to_string().parse::<Personality>().unwrap(), p);
    }
}

// Pins: non-streaming `chat.completion` with usage; vLLM/LiteLLM ids `chatcmpl-…`, OpenRouter
// `gen-…` plus `provider` [or-sse]; the unscripted default reply echoes the user message.
#[tokio::test]
async fn non_streaming_success_bodies() {
    for p in Personality::UPSTREAMS {
        let mock = start(p).await;
        let body: Value = post(&mock, &chat("", false)).await.json().await.unwrap();
        assert_eq!(body["object"], "chat.completion", "{p}");
        assert_eq!(body["model"], "mock-model");
        let choice = &body["choices"][0];
        assert_eq!(choice["finish_reason"], "stop");
        assert_eq!(choice["message"]["role"], "assistant");
        assert_eq!(
            choice["message"]["content"],
            format!("Mock {p} reply: Hello there, how are you today?")
        );
        let usage = &body["usage"];
        assert_eq!(
            usage["total_tokens"].as_u64().unwrap(),
            usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
        );
        let id = body["id"].as_str().unwrap();
        match p {
            Personality::OpenRouter => {
                assert!(id.starts_with("gen-"), "{id}");
                assert!(body["provider"].is_string());
                assert_eq!(choice["native_finish_reason"], "stop");
            }
            _ => assert!(id.starts_with("chatcmpl-"), "{id}"),
        }
        if p == Personality::Litellm {
            // [peers] success.http of peers/fixtures/litellm-1.106.2/: the message's members.
            let mut keys: Vec<&str> = choice["message"]
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            keys.sort_unstable();
            assert_eq!(keys, ["content", "provider_specific_fields", "role"]);
            assert!(body.get("system_fingerprint").is_none());
            assert_eq!(
                choice["provider_specific_fields"],
                json!({"stop_reason": null})
            );
        }
    }
}

// Pins: SSE framing — role delta first, content deltas, a finish chunk, a usage chunk with
// empty `choices` when stream_options.include_usage, then `data: [DONE]`; OpenRouter opens
// with the `: OPENROUTER PROCESSING` comment [or-sse].
#[tokio::test]
async fn streaming_framing() {
    for p in Personality::UPSTREAMS {
        let mock = start(p).await;
        let resp = post(&mock, &with_usage(chat("", true))).await;
        assert_eq!(resp.status(), 200);
        let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(ct.starts_with("text/event-stream"), "{ct}");
        let (data, err) = sse_data(resp).await;
        assert!(err.is_none(), "{err:?}");
        assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{p}");
        let chunks = chunks(&data);
        assert!(chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk"));
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        assert!(chunks.len() >= 4 + 3, "{p}: several content deltas");
        assert_eq!(
            content(&chunks),
            format!("Mock {p} reply: Hello there, how are you today?")
        );
        assert_eq!(finish_reason(&chunks).as_deref(), Some("stop"));
        let usage = chunks.last().unwrap();
        assert_eq!(usage["choices"], json!([]));
        assert!(usage["usage"]["completion_tokens"].as_u64().unwrap() > 0);
        // Every chunk of one response shares its id.
        assert!(chunks.iter().all(|c| c["id"] == chunks[0]["id"]));

        // Without include_usage there is no usage chunk.
        let (data, _) = sse_data(post(&mock, &chat("", true)).await).await;
        assert!(chunks_without_usage(&data));

        let raw = post(&mock, &chat("", true)).await.text().await.unwrap();
        assert_eq!(
            raw.starts_with(": OPENROUTER PROCESSING\n\n"),
            p == Personality::OpenRouter,
            "{p}: {raw}"
        );
        assert!(raw.ends_with("data: [DONE]\n\n"));
    }
}

fn chunks_without_usage(data: &[String]) -> bool {
    chunks(data)
        .iter()
        .all(|c| c.get("usage").is_none_or(Value::is_null))
}

async fn error_of(p: Personality, step: Step) -> (u16, reqwest::header::HeaderMap, Value) {
    let mock = start(p).await;
    mock.script("e", vec![step]);
    let resp = post(&mock, &chat("e", false)).await;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.json().await.unwrap())
}

// Pins: the three error envelopes. vLLM current: {"error":{"message","type","param","code":int}}
// [vllm-protocol]; vLLM legacy flat {"object":"error",...,"code":int} (seed 004, SPEC §7);
// LiteLLM {"error":{"message","type","param","code":"<status string>"}} [litellm-rl];
// OpenRouter {"error":{"code":int,"message","metadata":{}}} [or-errors].
#[tokio::test]
async fn error_envelopes() {
    let (status, _, body) = error_of(Personality::Vllm, Step::error(503, "engine down")).await;
    assert_eq!(status, 503);
    assert_eq!(
        body,
        json!({"error": {"message": "engine down", "type": "Service Unavailable", "param": null, "code": 503}})
    );
    let (_, _, body) = error_of(Personality::Vllm, Step::error(400, "bad")).await;
    assert_eq!(body["error"]["type"], "BadRequestError");

    let mock = start(Personality::Vllm).await;
    mock.set_vllm_legacy_errors(true);
    mock.script("e", vec![Step::error(400, "bad")]);
    let body: Value = post(&mock, &chat("e", false)).await.json().await.unwrap();
    assert_eq!(
        body,
        json!({"object": "error", "message": "bad", "type": "BadRequestError", "param": null, "code": 400})
    );

    let (status, _, body) = error_of(Personality::Litellm, Step::error(500, "boom")).await;
    assert_eq!(status, 500);
    // The upstream's sentence inside LiteLLM's relay text: `litellm_relays_like_the_real_proxy`.
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains(" - boom\n\n"));
    assert_eq!(body["error"]["code"], "500");
    assert!(body["error"].get("type").is_some() && body["error"].get("param").is_some());

    let (status, _, body) = error_of(Personality::OpenRouter, Step::error(502, "upstream")).await;
    assert_eq!(status, 502);
    assert_eq!(body["error"]["code"], 502);
    assert_eq!(body["error"]["message"], "upstream");
    assert!(body["error"]["metadata"].is_object());
}

// Pins: quota/credit exhaustion in each server's words. LiteLLM 400 "Budget has been
// exceeded! Current cost: …, Max budget: …" type budget_exceeded [litellm-budget]; OpenRouter
// 402 "Insufficient credits…" [or-402]; vLLM has no budgets: plain 429.
#[tokio::test]
async fn quota_exhausted_wording() {
    let (status, _, body) = error_of(Personality::Litellm, Step::quota_exhausted()).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["type"], "budget_exceeded");
    assert_eq!(body["error"]["code"], "400");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(
        msg.starts_with("Budget has been exceeded! Current cost: "),
        "{msg}"
    );
    assert!(msg.contains(", Max budget: "));

    let (status, _, body) = error_of(Personality::OpenRouter, Step::quota_exhausted()).await;
    assert_eq!(status, 402);
    assert_eq!(body["error"]["code"], 402);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("Insufficient credits"));

    let (status, _, body) = error_of(Personality::Vllm, Step::quota_exhausted()).await;
    assert_eq!(status, 429);
    assert_eq!(body["error"]["code"], 429);
}

// Pins: OpenRouter daily free-model limit: 429, "Rate limit exceeded: free-models-per-day",
// metadata.headers X-RateLimit-* and the same as HTTP headers, reset at next 00:00 UTC in ms
// [or-daily]; LiteLLM's rate-limit 429 wording with code "429" [litellm-rl].
#[tokio::test]
async fn daily_limit_wording() {
    let (status, headers, body) = error_of(Personality::OpenRouter, Step::daily_limit()).await;
    assert_eq!(status, 429);
    assert_eq!(body["error"]["code"], 429);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("Rate limit exceeded: free-models-per-day"));
    let meta = &body["error"]["metadata"]["headers"];
    assert_eq!(meta["X-RateLimit-Remaining"], "0");
    assert_eq!(headers["x-ratelimit-limit"], "50");
    assert_eq!(headers["x-ratelimit-remaining"], "0");
    let reset: u64 = headers["x-ratelimit-reset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(reset % 86_400_000, 0, "next UTC midnight in ms");
    assert_eq!(meta["X-RateLimit-Reset"], reset.to_string());

    let (status, _, body) = error_of(Personality::Litellm, Step::daily_limit()).await;
    assert_eq!(status, 429);
    assert_eq!(body["error"]["code"], "429");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Crossed TPM / RPM / Max Parallel Request Limit"));

    let (status, _, body) = error_of(Personality::Vllm, Step::daily_limit()).await;
    assert_eq!(status, 429);
    assert_eq!(body["error"]["type"], "Too Many Requests");
}

// Pins: the per-minute rate window and the max_tokens floor, each in its server's words and
// envelope. These wordings were scripted by hand in conformance/src/world.rs before the mock
// owned them (no public capture cited there): OpenRouter 429 "Rate limit exceeded:
// free-models-per-min. " with Retry-After 20 in its envelope [or-errors]; LiteLLM and vLLM
// answer their rate-limit 429 (the daily_limit step); max_tokens below 256 is a 400.
#[tokio::test]
async fn rate_window_and_max_tokens_wording() {
    let (status, headers, body) = error_of(Personality::OpenRouter, Step::rate_window()).await;
    assert_eq!(status, 429);
    assert_eq!(headers["retry-after"], "20");
    assert_eq!(body["error"]["code"], 429);
    assert_eq!(
        body["error"]["message"],
        "Rate limit exceeded: free-models-per-min. "
    );
    let (status, _, body) = error_of(Personality::Litellm, Step::rate_window()).await;
    assert_eq!(status, 429);
    assert_eq!(body["error"]["code"], "429");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Crossed TPM / RPM / Max Parallel Request Limit"));
    let (status, _, body) = error_of(Personality::Vllm, Step::rate_window()).await;
    assert_eq!(status, 429);
    assert_eq!(body["error"]["type"], "Too Many Requests");

    let (status, _, body) = error_of(Personality::Vllm, Step::max_tokens(256)).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["type"], "BadRequestError");
    assert_eq!(
        body["error"]["message"],
        "max_tokens must be at least 256 for this model."
    );
    let (status, _, body) = error_of(Personality::Litellm, Step::max_tokens(256)).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "400");
    assert_eq!(
        body["error"]["message"],
        "litellm.BadRequestError: OpenAIException - Invalid 'max_tokens': integer below minimum value. Expected a value >= 256."
    );
    let (status, _, body) = error_of(Personality::OpenRouter, Step::max_tokens(256)).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], 400);
    assert_eq!(
        body["error"]["message"],
        "max_tokens must be at least 256 for this model"
    );
}

// Pins: context-length 400 wording, vLLM "This model's maximum context length is N tokens.
// However, you requested M tokens …" [vllm-ctx], in each personality's envelope.
#[tokio::test]
async fn context_length_wording() {
    let (status, _, body) = error_of(Personality::Vllm, Step::context_length(4096, 5000)).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["type"], "BadRequestError");
    assert!(body["error"]["message"].as_str().unwrap().starts_with(
        "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens"
    ));
    let (status, _, body) = error_of(Personality::Litellm, Step::context_length(4096, 5000)).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "400");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("maximum context length is 4096"));
    let (status, _, body) =
        error_of(Personality::OpenRouter, Step::context_length(4096, 5000)).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], 400);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("maximum context length is 4096"));
}

// Pins: 401 bodies when an API key is configured: vLLM {"error":"Unauthorized"} [vllm-auth];
// LiteLLM auth_error with code "401"; OpenRouter {"error":{"message","code":401}}.
#[tokio::test]
async fn unauthorized_bodies() {
    for p in Personality::UPSTREAMS {
        let config = MockConfig {
            personality: p,
            api_key: Some("sk-mock".into()),
            ..MockConfig::default()
        };
        let mock = MockServer::start_with(config, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let resp = post(&mock, &chat("auth", false)).await;
        assert_eq!(resp.status(), 401, "{p}");
        let body: Value = resp.json().await.unwrap();
        match p {
            Personality::Vllm => assert_eq!(body, json!({"error": "Unauthorized"})),
            Personality::Litellm => {
                assert_eq!(body["error"]["type"], "auth_error");
                assert_eq!(body["error"]["code"], "401");
            }
            Personality::OpenRouter => assert_eq!(body["error"]["code"], 401),
            Personality::LlmGatewayApi | Personality::OwnLlm => unreachable!("not an upstream"),
        }
        let ok = client()
            .post(mock.chat_url())
            .bearer_auth("sk-mock")
            .json(&chat("auth", false))
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status(), 200);
        let records = mock.records("auth");
        assert_eq!(records.len(), 2, "both recorded");
        assert_eq!(records[1].header("authorization"), Some("Bearer sk-mock"));
    }
}

// Pins: a request the server cannot take (not JSON, no messages, no model) gets a 400 in the
// personality's own envelope, never a panic or a 5xx.
#[tokio::test]
async fn bad_input_gets_personality_400() {
    for p in Personality::UPSTREAMS {
        let mock = start(p).await;
        let bodies: [(&str, Vec<u8>); 4] = [
            ("not json", b"{not json".to_vec()),
            ("array", b"[1,2]".to_vec()),
            ("no messages", br#"{"model":"m"}"#.to_vec()),
            (
                "no model",
                br#"{"messages":[{"role":"user","content":"hi"}]}"#.to_vec(),
            ),
        ];
        for (what, bytes) in bodies {
            let resp = client()
                .post(mock.chat_url())
                .header("content-type", "application/json")
                .body(bytes)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 400, "{p} {what}");
            let body: Value = resp.json().await.unwrap();
            match p {
                Personality::Vllm => assert_eq!(body["error"]["code"], 400, "{what}"),
                Personality::Litellm => assert_eq!(body["error"]["code"], "400", "{what}"),
                Personality::OpenRouter => assert_eq!(body["error"]["code"], 400, "{what}"),
                Personality::LlmGatewayApi | Personality::OwnLlm => {
                    unreachable!("not an upstream")
                }
            }
        }
    }
}

// Pins [peers]: what the real LiteLLM proxy 1.106.2 makes of an upstream error, found by the
// chain run (scripts/chain) and captured in peers/fixtures/litellm-1.106.2-num_retries-0/.
// The request names the model `mock-model`, so that is the router's model group (L5).
#[tokio::test]
async fn litellm_relays_like_the_real_proxy() {
    const CHATTER: &str =
        "\n\nLiteLLM: model group 'mock-model' failed with the error above. No fallback was attempted.";
    // L4, L5, L10 — upstream-400-policy.http: class prefix, `OpenAIException - `, the
    // upstream's sentence, router text; type BadRequestError, code "400".
    let (status, _, body) = error_of(
        Personality::Litellm,
        Step::error(400, "the prompt was rejected by policy"),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"error": {
            "message": format!("litellm.BadRequestError: OpenAIException - the prompt was rejected by policy{CHATTER}"),
            "type": "BadRequestError", "param": null, "code": "400",
        }})
    );
    // L1, L4, L10 — upstream-429-retry-after.http: `retry-after: 7` arrives as
    // `llm_provider-retry-after: 7` and there is no `retry-after`; type throttling_error.
    let (status, headers, body) = error_of(
        Personality::Litellm,
        Step::error_with_headers(429, "slow down", [("retry-after", "7")]),
    )
    .await;
    assert_eq!(status, 429);
    assert_eq!(headers["llm_provider-retry-after"], "7");
    assert!(headers.get("retry-after").is_none());
    assert_eq!(
        body["error"]["message"],
        format!("litellm.RateLimitError: RateLimitError: OpenAIException - slow down{CHATTER}")
    );
    assert_eq!(body["error"]["type"], "throttling_error");
    // L4, L9 — upstream-500-always.http, upstream-503-loading.http: 5xx keep their status,
    // type internal_server_error.
    for (code, class) in [
        (500, "InternalServerError"),
        (503, "ServiceUnavailableError"),
    ] {
        let (status, _, body) =
            error_of(Personality::Litellm, Step::error(code, "model is loading")).await;
        assert_eq!(status, code);
        assert_eq!(
            body["error"]["message"],
            format!("litellm.{class}: {class}: OpenAIException - model is loading{CHATTER}")
        );
        assert_eq!(body["error"]["type"], "internal_server_error");
        assert_eq!(body["error"]["code"], code.to_string());
    }
    // L7, L8 — upstream-context-length.http: ContextWindowExceededError, the router's
    // context-window note with a docs URL, then the usual text; type invalid_request_error.
    let (status, _, body) = error_of(Personality::Litellm, Step::context_length(8192, 9000)).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error"]["message"],
        format!("litellm.ContextWindowExceededError: litellm.BadRequestError: ContextWindowExceededError: OpenAIException - This model's maximum context length is 8192 tokens. However, you requested 9000 tokens (9000 in the messages, 0 in the completion). Please reduce the length of the messages or completion.\nmodel=mock-model. context_window_fallbacks=None. fallbacks=None.\n\nSet 'context_window_fallback' - https://docs.litellm.ai/docs/routing#fallbacks{CHATTER}")
    );
    assert_eq!(body["error"]["type"], "invalid_request_error");
}

// Pins [peers] L18 — stream-drop.http, stream-error-object.http, stream-malformed-chunk.http: a
// broken upstream stream keeps the 200 and ends with ONE `data: {"error": …}` (type null,
// code "500", no router text) and no `data: [DONE]`.
#[tokio::test]
async fn litellm_ends_broken_streams_with_an_error_object() {
    let head = "litellm.APIConnectionError: APIConnectionError: OpenAIException - ";
    let cases = [
        (
            Step::drop_after(2, 0),
            "Response payload is not completed: <TransferEncodingError: 400, message='Not enough data to satisfy transfer length header.'>",
        ),
        (
            Step::stream_error(2, 500, "upstream failed mid-stream"),
            "upstream failed mid-stream",
        ),
        (
            Step::malformed(2),
            "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
        ),
    ];
    for (i, (step, sentence)) in cases.into_iter().enumerate() {
        let mock = start(Personality::Litellm).await;
        let marker = format!("brk-{i}");
        mock.script(&marker, vec![step]);
        let resp = post(&mock, &chat(&marker, true)).await;
        assert_eq!(resp.status(), 200);
        let (data, err) = sse_data(resp).await;
        assert!(err.is_none(), "{err:?}");
        assert!(!data.iter().any(|d| d == "[DONE]"), "{data:?}");
        let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
        assert_eq!(
            last,
            json!({"error": {"message": format!("{head}{sentence}"), "type": null, "param": null, "code": "500"}}),
            "case {i}"
        );
    }
}
