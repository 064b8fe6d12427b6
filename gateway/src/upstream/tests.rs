//! Unit tests of `upstream`.
use super::*;
use crate::testing;

fn upstream(kind: UpstreamKind) -> Upstream {
    Upstream {
        name: "u".into(),
        kind,
        base_url: "http://llm.internal.example:8000/v1".into(),
        chat_url: String::new(),
        health_url: String::new(),
        api_key: Some("sk-secret-123".into()),
        host: "llm.internal.example".into(),
        max_in_flight: None,
        queue_wait: std::time::Duration::from_millis(100),
    }
}

fn map(kind: UpstreamKind, status: u16, body: &str, with_max: bool) -> ApiError {
    let state = testing::state_at(1_778_943_600);
    let mut model = state.config.models[0].clone();
    model.fallbacks = vec!["b".into(), "c".into()];
    let mut req = Map::new();
    if with_max {
        req.insert("max_tokens".into(), Value::from(16));
    }
    map_status(
        &state,
        &model,
        &upstream(kind),
        limit_param(&req),
        StatusCode::from_u16(status).unwrap(),
        &HeaderMap::new(),
        body,
    )
}

#[test]
fn four_xx_keeps_its_status_and_five_xx_is_502() {
    let e = map(
        UpstreamKind::Vllm,
        422,
        r#"{"object":"error","message":"bad schema","type":"BadRequestError","param":null,"code":422}"#,
        false,
    );
    assert_eq!(
        (e.code, e.status_code().as_u16()),
        (Code::UpstreamBadRequest, 422)
    );
    assert!(e.message.contains("bad schema"));
    let e = map(
        UpstreamKind::Litellm,
        500,
        r#"{"error":{"message":"boom at http://llm.internal.example:8000/x key sk-secret-123","type":"None","param":"None","code":"500"}}"#,
        false,
    );
    assert_eq!(
        (e.code, e.status_code().as_u16()),
        (Code::UpstreamError, 502)
    );
    assert!(
        !e.message.contains("llm.internal.example") && !e.message.contains("sk-secret"),
        "{}",
        e.message
    );
}

#[test]
fn quota_answers_become_provider_agnostic_429() {
    let e = map(
        UpstreamKind::Litellm,
        400,
        r#"{"error":{"message":"Budget has been exceeded! Current cost: 1.2, Max budget: 1.0","type":"budget_exceeded","param":null,"code":"400"}}"#,
        false,
    );
    assert_eq!(e.code, Code::ModelQuotaExhausted);
    assert!(!e.message.to_lowercase().contains("litellm") && !e.message.contains("1.2"));
    assert_eq!(e.retry_after, Some(60));
}

#[test]
fn openrouter_daily_limit_names_fallbacks_and_midnight() {
    let e = map(
        UpstreamKind::Openrouter,
        429,
        r#"{"error":{"code":429,"message":"Rate limit exceeded: free-models-per-day","metadata":{}}}"#,
        false,
    );
    assert_eq!(e.code, Code::OpenrouterDailyQuotaExhausted);
    assert_eq!(e.retry_after, Some(32_400));
    assert_eq!(
        e.fallbacks.as_deref(),
        Some(&["b".to_owned(), "c".to_owned()][..])
    );
    let e = map(
        UpstreamKind::Openrouter,
        402,
        r#"{"error":{"code":402,"message":"Insufficient credits"}}"#,
        false,
    );
    // SPEC: credit exhaustion is the provider-agnostic code, even on a pinned alias.
    assert_eq!(e.code, Code::ModelQuotaExhausted);
}

#[test]
fn max_tokens_rejection_after_the_floor() {
    let body = r#"{"object":"error","message":"max_tokens must be at least 50, got 16.","type":"BadRequestError","param":null,"code":400}"#;
    let e = map(UpstreamKind::Vllm, 400, body, true);
    assert_eq!(
        (e.code, e.param.as_deref()),
        (Code::MaxTokensBelowMinimum, Some("/max_tokens"))
    );
    // without a max_tokens in the request it is an ordinary upstream 400
    assert_eq!(
        map(UpstreamKind::Vllm, 400, body, false).code,
        Code::UpstreamBadRequest
    );
}

/// Context-window refusals, each wording pinned with its source.
#[test]
fn context_window_refusals_become_context_length_exceeded() {
    let cases = [
        // vLLM (seed 004 quotes it; vLLM serving_engine's "This model's maximum context length is")
        (
            UpstreamKind::Vllm,
            r#"{"object":"error","message":"This model's maximum context length is 8192 tokens. However, you requested 9000 tokens (9000 in the messages, 0 in the completion). Please reduce the length of the messages or completion.","type":"BadRequestError","param":null,"code":400}"#,
        ),
        // OpenAI: the error object's `code` is `context_length_exceeded`
        (
            UpstreamKind::Openai,
            r#"{"error":{"message":"This model's maximum context length is 4097 tokens. However, your messages resulted in 5000 tokens. Please reduce the length of the messages.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#,
        ),
        // LiteLLM 1.106.2, captured: peers/fixtures/litellm-1.106.2-num_retries-0/upstream-context-length.http (WIRE_FACTS L7, L8)
        (
            UpstreamKind::Litellm,
            r#"{"error":{"message":"litellm.ContextWindowExceededError: litellm.BadRequestError: ContextWindowExceededError: OpenAIException - This model's maximum context length is 8192 tokens. However, you requested 9000 tokens (9000 in the messages, 0 in the completion). Please reduce the length of the messages or completion.\nmodel=scout. context_window_fallbacks=None. fallbacks=None.\n\nSet 'context_window_fallback' - https://docs.litellm.ai/docs/routing#fallbacks\n\nLiteLLM: model group 'scout' failed with the error above. No fallback was attempted.","type":"invalid_request_error","param":null,"code":"400"}}"#,
        ),
        // OpenRouter's sentence (the mock's openrouter dialect)
        (
            UpstreamKind::Openrouter,
            r#"{"error":{"code":400,"message":"This endpoint's maximum context length is 8192 tokens. However, you requested about 9000 tokens (9000 of text input, 0 in the output)."}}"#,
        ),
    ];
    for (kind, body) in cases {
        let e = map(kind, 400, body, true);
        assert_eq!(e.code, Code::ContextLengthExceeded, "{body}");
        assert_eq!(e.param.as_deref(), Some("/messages"));
        assert_eq!(e.status_code().as_u16(), 400);
        assert!(
            !e.message.contains("litellm") && !e.message.contains("http"),
            "{}",
            e.message
        );
    }
}

/// "Not ready yet" and "full" answers, each wording pinned with its source; all 503 with
/// Retry-After.
#[test]
fn loading_and_overloaded_answers() {
    let loading = [
        // LiteLLM 1.106.2, captured: peers/fixtures/litellm-1.106.2-num_retries-0/upstream-503-loading.http (WIRE_FACTS L9)
        (
            UpstreamKind::Litellm,
            503,
            r#"{"error":{"message":"litellm.ServiceUnavailableError: ServiceUnavailableError: OpenAIException - model is loading\n\nLiteLLM: model group 'scout' failed with the error above. No fallback was attempted.","type":"internal_server_error","param":null,"code":"503"}}"#,
            5,
        ),
        // Hugging Face TGI / Inference API (huggingface/transformers#32665): estimated_time → Retry-After
        (
            UpstreamKind::Openai,
            503,
            r#"{"error":"Model meta-llama/Llama-2-13b-chat is currently loading","estimated_time":20.0}"#,
            20,
        ),
        // llama.cpp server while loading (canonical/inference-snaps#234)
        (
            UpstreamKind::Vllm,
            503,
            r#"{"message":"Loading model","type":"unavailable_error","code":503}"#,
            5,
        ),
    ];
    for (kind, status, body, retry) in loading {
        let e = map(kind, status, body, false);
        assert_eq!(e.code, Code::ModelLoading, "{body}");
        assert_eq!(e.status_code().as_u16(), 503);
        assert_eq!(e.retry_after, Some(retry), "{body}");
    }
    let overloaded = [
        // Ollama server/sched.go ErrMaxQueue
        (
            503,
            r#"{"error":"server busy, please try again.  maximum pending requests exceeded"}"#,
        ),
        // OpenAI 503
        (
            503,
            r#"{"error":{"message":"The engine is currently overloaded, please try again later","type":"server_error","param":null,"code":null}}"#,
        ),
        // TGI router's queue-full answer (429 OverloadedError)
        (
            429,
            r#"{"error":"Model is overloaded","error_type":"overloaded"}"#,
        ),
        // Anthropic-style 529
        (
            529,
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        ),
    ];
    for (status, body) in overloaded {
        let e = map(UpstreamKind::Openai, status, body, false);
        assert_eq!(e.code, Code::UpstreamOverloaded, "{body}");
        assert_eq!(e.status_code().as_u16(), 503);
        assert_eq!(e.retry_after, Some(1));
    }
    // A plain 503 stays upstream_error
    assert_eq!(
        map(UpstreamKind::Vllm, 503, r#"{"message":"boom"}"#, false).code,
        Code::UpstreamError
    );
}

/// A loopback upstream answering every chat call with `body`; the state's answer budget is
/// `budget` bytes.
async fn answering(body: String, budget: usize) -> AppState {
    use axum::routing::post;
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        post(move || async move { ([("content-type", "application/json")], body) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let mut cfg = testing::config_with_upstream(&format!("http://{addr}/v1"));
    cfg.reads.max_answer_memory_bytes = budget;
    AppState::new(cfg).unwrap()
}

fn small_request(state: &AppState) -> ChatBody {
    let alias = &state.config.models[0].alias;
    crate::checks::parse_object(
        format!(r#"{{"model":"{alias}","messages":[{{"role":"user","content":"hi"}}]}}"#)
            .as_bytes(),
    )
    .unwrap()
}

const CHOICE: &str = r#"{"id":"c","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"#;

#[tokio::test]
async fn an_answer_holds_twice_its_bytes_until_the_callers_copy_is_dropped() {
    let answer = format!(r#"{CHOICE}"junk":[{}0]}}"#, "0,".repeat(50_000));
    let n = answer.len();
    let state = answering(answer, 1 << 20).await;
    let model = state.config.models[0].clone();
    let body = small_request(&state);
    let mut hold = state.answer_memory.hold();
    let (out, _) = chat_bytes(&state, &model, &body, &mut hold).await.unwrap();
    assert_eq!(hold.bytes(), 2 * n, "raw bytes and the caller's copy");
    assert_eq!(state.answer_memory.used(), 2 * n);
    let bytes = hold.into_bytes(out);
    assert_eq!(
        state.answer_memory.used(),
        bytes.len(),
        "only the copy stays"
    );
    drop(bytes);
    assert_eq!(state.answer_memory.used(), 0);
}

#[tokio::test]
async fn an_answer_the_budget_cannot_take_now_is_a_retryable_overload() {
    let answer = format!(r#"{CHOICE}"junk":[{}0]}}"#, "0,".repeat(50_000));
    let state = answering(answer, 1 << 20).await;
    let model = state.config.models[0].clone();
    let body = small_request(&state);
    let mut others = state.answer_memory.hold();
    others.grow(1_000_000).unwrap();
    let mut hold = state.answer_memory.hold();
    let e = chat_bytes(&state, &model, &body, &mut hold)
        .await
        .unwrap_err();
    assert_eq!(e.code, Code::UpstreamOverloaded, "{}", e.message);
    assert_eq!(e.retry_after, Some(1));
    drop(hold);
    assert_eq!(
        state.answer_memory.used(),
        1_000_000,
        "a refused read holds nothing"
    );
}

#[tokio::test]
async fn an_answer_whose_tree_could_never_fit_is_an_upstream_error_before_it_is_parsed() {
    // An escaped key: not the bytes path, so the answer would be parsed into a tree of
    // 100,000 elements (over 6 MB) — more than the whole 1 MiB budget.
    let answer = format!(r#"{CHOICE}"j\u0075nk":[{}0]}}"#, "0,".repeat(100_000));
    let state = answering(answer, 1 << 20).await;
    let model = state.config.models[0].clone();
    let body = small_request(&state);
    let mut hold = state.answer_memory.hold();
    let e = chat(&state, &model, &body, &mut hold).await.unwrap_err();
    assert_eq!(e.code, Code::UpstreamError);
    assert!(
        e.message.contains("MAX_ANSWER_MEMORY_BYTES"),
        "{}",
        e.message
    );
    drop(hold);
    let mut hold = state.answer_memory.hold();
    let e = chat_bytes(&state, &model, &body, &mut hold)
        .await
        .unwrap_err();
    assert_eq!(
        e.code,
        Code::UpstreamError,
        "the bytes path falls back alike"
    );
    drop(hold);
    assert_eq!(state.answer_memory.used(), 0);
    // The same answer within a budget that holds its tree is served.
    let answer = format!(r#"{CHOICE}"j\u0075nk":[{}0]}}"#, "0,".repeat(100_000));
    let state = answering(answer, 32 << 20).await;
    let mut hold = state.answer_memory.hold();
    let (obj, _) = chat(&state, &model, &small_request(&state), &mut hold)
        .await
        .unwrap();
    assert_eq!(obj["junk"].as_array().map(Vec::len), Some(100_001));
    assert!(
        hold.bytes() > 100_000 * 64,
        "the tree is paid for: {}",
        hold.bytes()
    );
}
