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
