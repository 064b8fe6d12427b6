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
