//! In-process tests of the whole HTTP surface through `app().oneshot()`, with upstreams on
//! real loopback sockets (wiremock) where the mapping of upstream answers is under test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use gateway::catalog::Code;
use gateway::config::{sha256, Allowed, Budget, Tenant, UpstreamKind};
use gateway::testing::{self, FixedClock, OTHER_TOKEN, TOKEN};
use gateway::{app, AppState, Config};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
    text: String,
}

impl Reply {
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("<none>")
    }
    fn param(&self) -> Option<&str> {
        self.body["error"]["param"].as_str()
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    /// Status and type come from the catalog row of the code.
    fn assert_error(&self, code: Code) {
        let e = code.entry();
        assert_eq!(self.code(), e.code, "body: {}", self.text);
        assert_eq!(self.body["error"]["type"], e.error_type.as_str());
        if code != Code::UpstreamBadRequest {
            assert_eq!(self.status.as_u16(), e.http_status, "body: {}", self.text);
        }
        assert!(self.body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
        assert!(self.body["error"]
            .as_object()
            .unwrap()
            .contains_key("param"));
        assert!(self.header("x-request-id").is_some());
    }
}

async fn send(state: &AppState, req: Request<Body>) -> Reply {
    let resp = app(state.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        body,
        text,
    }
}

fn chat(token: Option<&str>, body: Value) -> Request<Body> {
    let mut b = Request::post("/v1/chat/completions").header("content-type", "application/json");
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    b.body(Body::from(body.to_string())).unwrap()
}

fn get(path: &str, token: Option<&str>) -> Request<Body> {
    let mut b = Request::get(path);
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    b.body(Body::empty()).unwrap()
}

fn hello() -> Value {
    json!({"model": "small", "messages": [{"role": "user", "content": "hi"}]})
}

fn state_with(cfg: Config) -> AppState {
    AppState::with_clock(cfg, Arc::new(FixedClock(1_778_943_600))).unwrap()
}

fn offline() -> AppState {
    state_with(testing::config())
}

fn completion() -> Value {
    json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "upstream-small",
           "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"}, "finish_reason": "stop"}],
           "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}})
}

async fn upstream_answering(status: u16, body: Value) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(status).set_body_json(body))
        .mount(&server)
        .await;
    server
}

fn online(server: &MockServer) -> AppState {
    state_with(testing::config_with_upstream(&format!(
        "{}/v1",
        server.uri()
    )))
}

#[tokio::test]
async fn auth_errors() {
    let s = offline();
    send(&s, chat(None, hello()))
        .await
        .assert_error(Code::MissingAuthorization);
    let r = send(&s, chat(Some("wrong"), hello())).await;
    r.assert_error(Code::InvalidAuthorization);
    assert_eq!(r.param(), Some("headers.authorization"));
    let mut req = chat(Some(TOKEN), hello());
    req.headers_mut()
        .insert("x-tenant-id", "other".parse().unwrap());
    send(&s, req).await.assert_error(Code::InvalidAuthorization);
    // check order: auth before body checks
    let req = Request::post("/v1/chat/completions")
        .body(Body::from("{not json"))
        .unwrap();
    send(&s, req).await.assert_error(Code::MissingAuthorization);
}

#[tokio::test]
async fn unknown_routes_and_methods_before_auth() {
    let s = offline();
    send(&s, get("/v2/nothing", None))
        .await
        .assert_error(Code::RouteNotFound);
    send(&s, get("/v1/chat/completions", None))
        .await
        .assert_error(Code::RouteNotFound);
    let del = Request::delete("/errors").body(Body::empty()).unwrap();
    send(&s, del).await.assert_error(Code::RouteNotFound);
}

#[tokio::test]
async fn rate_limit_with_retry_after_and_openai_headers() {
    let s = offline(); // tenant "other": burst 2, 1 rps
    for _ in 0..2 {
        let r = send(&s, get("/v1/models", Some(OTHER_TOKEN))).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-ratelimit-limit-requests"), Some("2"));
    }
    let r = send(&s, get("/v1/models", Some(OTHER_TOKEN))).await;
    r.assert_error(Code::RateLimitExceeded);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(r.header("x-ratelimit-remaining-requests"), Some("0"));
    assert!(r.header("x-ratelimit-reset-requests").is_some());
    // the primary token has its own bucket
    assert_eq!(send(&s, get("/v1/models", Some(TOKEN))).await.status, 200);
}

#[tokio::test]
async fn body_cap_is_enforced_while_reading() {
    let s = offline(); // MAX 1 MiB
    let big = "x".repeat(1024 * 1024 + 10);
    let r = send(
        &s,
        chat(
            Some(TOKEN),
            json!({"model": "small", "messages": [{"role": "user", "content": big}]}),
        ),
    )
    .await;
    r.assert_error(Code::BodyTooLarge);
    // no Content-Length: a chunked body is cut off as it streams in
    let chunks = futures_util::stream::iter(
        (0..200).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b' '; 64 * 1024]))),
    );
    let req = Request::post("/v1/chat/completions")
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Body::from_stream(chunks))
        .unwrap();
    send(&s, req).await.assert_error(Code::BodyTooLarge);
}

#[tokio::test]
async fn request_checks_in_spec_order() {
    let s = offline();
    let raw = |b: &str| {
        Request::post("/v1/chat/completions")
            .header("authorization", format!("Bearer {TOKEN}"))
            .body(Body::from(b.to_owned()))
            .unwrap()
    };
    send(&s, raw("{not json"))
        .await
        .assert_error(Code::InvalidJson);
    send(&s, raw("[1,2]")).await.assert_error(Code::InvalidJson);
    let r = send(&s, chat(Some(TOKEN), json!({"messages": []}))).await;
    r.assert_error(Code::MissingField);
    assert_eq!(r.param(), Some("/model"));
    let r = send(&s, chat(Some(TOKEN), json!({"model": "small", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"}))).await;
    r.assert_error(Code::InvalidField);
    assert_eq!(r.param(), Some("/temperature"));
    let r = send(
        &s,
        chat(
            Some(TOKEN),
            json!({"model": "gpt-nope", "messages": [{"role": "user", "content": "x"}]}),
        ),
    )
    .await;
    r.assert_error(Code::ModelNotInAllowlist);
    // allowed nowhere for tenant "other"
    send(&s, chat(Some(OTHER_TOKEN), hello()))
        .await
        .assert_error(Code::ModelNotInAllowlist);
}

fn image(url: &str) -> Value {
    json!({"model": "small", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "describe"}, {"type": "image_url", "image_url": {"url": url}}]}]})
}

#[tokio::test]
async fn image_checks() {
    let s = offline();
    let r = send(&s, chat(Some(TOKEN), image("https://example.com/cat.png"))).await;
    r.assert_error(Code::ImageUrlNotSupported);
    assert_eq!(r.param(), Some("/messages/0/content/1/image_url/url"));
    send(&s, chat(Some(TOKEN), image("data:image/png;base64,ab=c")))
        .await
        .assert_error(Code::ImageBase64Invalid);
    send(&s, chat(Some(TOKEN), image("data:image/bmp;base64,AAAA")))
        .await
        .assert_error(Code::ImageDecodeError);
    let png_as_jpeg = format!(
        "data:image/jpeg;base64,{}",
        gateway::testing::samples::PNG_1X1
    );
    send(&s, chat(Some(TOKEN), image(&png_as_jpeg)))
        .await
        .assert_error(Code::ImageDecodeError);
}

#[tokio::test]
async fn tool_arguments_are_checked() {
    let s = offline();
    let r = send(&s, chat(Some(TOKEN), json!({"model": "small", "messages": [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{\"a\":"}}]},
        {"role": "tool", "tool_call_id": "c", "content": "r"}]}))).await;
    r.assert_error(Code::ToolCallArgumentsInvalid);
    assert_eq!(
        r.param(),
        Some("/messages/1/tool_calls/0/function/arguments")
    );
}

#[tokio::test]
async fn success_with_silent_floor_and_alias_model() {
    let server = upstream_answering(200, completion()).await;
    let s = online(&server);
    let mut body = hello();
    body["max_tokens"] = json!(5);
    let r = send(&s, chat(Some(TOKEN), body)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("spass-applied"), Some("max_tokens_floored=16"));
    assert_eq!(
        r.header("x-rust-api-applied"),
        Some("max_tokens_floored=16")
    );
    assert_eq!(r.body["model"], "small");
    let got: Value =
        serde_json::from_slice(&server.received_requests().await.unwrap()[0].body).unwrap();
    assert_eq!(got["max_tokens"], 16);
    assert_eq!(got["model"], "upstream-small");
}

#[tokio::test]
async fn upstream_statuses_map_onto_the_catalog() {
    let vllm_err = |code: u16, msg: &str| json!({"object": "error", "message": msg, "type": "BadRequestError", "param": null, "code": code});
    for (status, body, want, want_status) in [
        (400, vllm_err(400, "This model's maximum context length is 8192 tokens. However, you requested 9000 tokens"), Code::ContextLengthExceeded, 400),
        (422, vllm_err(422, "unprocessable"), Code::UpstreamBadRequest, 422),
        (500, vllm_err(500, "engine dead at http://10.0.0.7:8000/v1"), Code::UpstreamError, 502),
        (429, vllm_err(429, "rate limited"), Code::ModelQuotaExhausted, 429),
    ] {
        let server = upstream_answering(status, body).await;
        let r = send(&online(&server), chat(Some(TOKEN), hello())).await;
        r.assert_error(want);
        assert_eq!(r.status.as_u16(), want_status);
        assert!(!r.text.contains("10.0.0.7") && !r.text.contains("127.0.0.1"), "{}", r.text);
        if want == Code::ModelQuotaExhausted {
            assert!(r.header("retry-after").is_some());
        }
    }
    let server = upstream_answering(
        400,
        vllm_err(400, "max_tokens must be at least 32, got 16."),
    )
    .await;
    let mut body = hello();
    body["max_tokens"] = json!(1);
    let r = send(&online(&server), chat(Some(TOKEN), body)).await;
    r.assert_error(Code::MaxTokensBelowMinimum);
    assert_eq!(r.param(), Some("/max_tokens"));
}

#[tokio::test]
async fn refused_port_is_unavailable_and_slow_upstream_times_out() {
    // port 9 (discard) is closed on loopback: connection refused
    send(&offline(), chat(Some(TOKEN), hello()))
        .await
        .assert_error(Code::UpstreamUnavailable);
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(completion())
                .set_delay(Duration::from_secs(5)),
        )
        .mount(&server)
        .await;
    let mut cfg = testing::config_with_upstream(&format!("{}/v1", server.uri()));
    cfg.http_total_timeout = Duration::from_millis(300);
    send(&state_with(cfg), chat(Some(TOKEN), hello()))
        .await
        .assert_error(Code::UpstreamTimeout);
}

#[tokio::test]
async fn openrouter_daily_limit_carries_fallbacks() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(429).set_body_json(json!({"error": {"code": 429, "message": "Rate limit exceeded: free-models-per-day. Add 10 credits to unlock 1000 free model requests per day", "metadata": {}}})))
        .mount(&server)
        .await;
    let mut cfg = testing::config();
    cfg.upstreams.push(testing::upstream(
        "or",
        UpstreamKind::Openrouter,
        &format!("{}/api/v1", server.uri()),
    ));
    let mut m = testing::model("gpt-pinned", 1, 1);
    m.fallbacks = vec!["small".into()];
    cfg.models.push(m);
    let r = send(
        &state_with(cfg),
        chat(
            Some(TOKEN),
            json!({"model": "gpt-pinned", "messages": [{"role": "user", "content": "hi"}]}),
        ),
    )
    .await;
    r.assert_error(Code::OpenrouterDailyQuotaExhausted);
    assert_eq!(r.header("retry-after"), Some("32400"));
    assert_eq!(r.body["dgx_code"], "openrouter_daily_quota_exhausted");
    assert_eq!(r.body["available_fallbacks"], json!(["small"]));
}

#[tokio::test]
async fn tenant_budget_is_exact() {
    let server = upstream_answering(200, completion()).await;
    let mut cfg = testing::config_with_upstream(&format!("{}/v1", server.uri()));
    cfg.tenants[0].budgets = vec![Budget {
        model: "small".into(),
        requests_per_day: Some(2),
        tokens_per_day: None,
    }];
    let s = state_with(cfg);
    assert_eq!(send(&s, chat(Some(TOKEN), hello())).await.status, 200);
    assert_eq!(send(&s, chat(Some(TOKEN), hello())).await.status, 200);
    let r = send(&s, chat(Some(TOKEN), hello())).await;
    r.assert_error(Code::ModelQuotaExhausted);
    assert_eq!(r.header("retry-after"), Some("32400"));
    assert!(!r.text.contains("vllm") && !r.text.contains("token count"));
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        2,
        "a refused request makes no upstream call"
    );
}

#[tokio::test]
async fn panics_become_internal_error_with_the_request_id() {
    let s = offline();
    let mut req = chat(Some(TOKEN), hello());
    req.headers_mut()
        .insert("x-gateway-fault", "panic".parse().unwrap());
    req.headers_mut()
        .insert("x-request-id", "trace-123".parse().unwrap());
    let r = send(&s, req).await;
    r.assert_error(Code::InternalError);
    assert_eq!(r.header("x-request-id"), Some("trace-123"));
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("trace-123"));
}

#[tokio::test]
async fn request_ids_are_kept_when_sane_and_minted_otherwise() {
    let s = offline();
    let r = send(&s, get("/healthz", None)).await;
    assert_eq!(r.header("x-request-id").unwrap().len(), 36);
    let req = Request::get("/healthz")
        .header("x-request-id", "bad id with spaces")
        .body(Body::empty())
        .unwrap();
    assert_ne!(
        send(&s, req).await.header("x-request-id"),
        Some("bad id with spaces")
    );
}

#[tokio::test]
async fn discovery_routes() {
    let s = offline();
    let r = send(&s, get("/errors", None)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["entries"][0]["code"], "missing_authorization");
    assert_eq!(r.body["entries"].as_array().unwrap().len(), 34);
    let r = send(&s, get("/docs/errors", None)).await;
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    assert!(r.text.contains("id=\"image_base64_invalid\""));
    let r = send(&s, get("/openapi.json", None)).await;
    assert_eq!(
        r.body["openapi"].as_str().map(|v| v.starts_with("3.1")),
        Some(true)
    );
    let r = send(&s, get("/v1/models", Some(TOKEN))).await;
    assert_eq!(r.body["data"][0]["id"], "small");
    let r = send(&s, get("/v1/info", Some(TOKEN))).await;
    assert_eq!(r.body["models"][0]["constraints"]["min_max_tokens"], 16);
    assert_eq!(r.body["max_body_bytes"], 1024 * 1024);
    assert_eq!(r.body["max_tool_iterations"], 10);
    let r = send(&s, get("/metrics", None)).await;
    assert!(r.text.contains("gateway_http_requests_total"), "{}", r.text);
}

#[tokio::test]
async fn openapi_documents_the_conversation_list_pagination() {
    let r = send(&offline(), get("/openapi.json", None)).await;
    let op = &r.body["paths"]["/c1/conversations"]["get"];
    let params: Vec<(&str, &str)> = op["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap(), p["in"].as_str().unwrap()))
        .collect();
    for want in [("user_id", "query"), ("limit", "query"), ("after", "query")] {
        assert!(params.contains(&want), "{want:?} in {params:?}");
    }
    let limit = op["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .unwrap();
    // The bounds `routes::conversations::page` enforces.
    assert_eq!(limit["schema"]["minimum"], 1);
    assert_eq!(limit["schema"]["maximum"], 1000);
    assert_eq!(limit["schema"]["default"], 100);
    assert_eq!(
        op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ConversationList"
    );
    let list = &r.body["components"]["schemas"]["ConversationList"];
    for field in ["object", "data", "has_more", "last_id"] {
        assert!(list["properties"][field].is_object(), "{field}: {list}");
    }
    // Only the list is paged.
    let get_one = &r.body["paths"]["/c1/conversations/{id}"]["get"]["parameters"];
    assert!(!get_one.to_string().contains("\"after\""), "{get_one}");
}

#[tokio::test]
async fn readiness_reports_each_upstream() {
    let r = send(&offline(), get("/readyz", None)).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.body["checks"]["upstream:local"]["ok"], false);
    assert_eq!(r.body["checks"]["sqlite"]["ok"], true);
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/health"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let r = send(&online(&server), get("/readyz", None)).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

fn c1(body: Value, token: &str) -> Request<Body> {
    Request::post("/c1/chat/completions")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::from(body.to_string()))
        .unwrap()
}

#[tokio::test]
async fn conversations_are_stored_scoped_and_deletable() {
    let server = upstream_answering(200, completion()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = testing::config_with_upstream(&format!("{}/v1", server.uri()));
    cfg.sqlite_path = dir.path().join("c.sqlite3");
    cfg.tenants[1].allowed = Allowed::All;
    cfg.tenants.push(Tenant {
        id: "third".into(),
        token_hashes: vec![sha256("tok-third")],
        allowed: Allowed::All,
        rate_limit: None,
        budgets: vec![],
        ..Default::default()
    });
    let s = state_with(cfg);
    let r = send(
        &s,
        c1(
            json!({"model": "small", "messages": [{"role": "user", "content": "one"}]}),
            TOKEN,
        ),
    )
    .await;
    r.assert_error(Code::MissingField);
    assert_eq!(r.param(), Some("/user_id"));
    let r = send(&s, c1(json!({"model": "small", "user_id": "alice", "messages": [{"role": "user", "content": "one"}]}), TOKEN)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let id = r.body["conversation_id"].as_str().unwrap().to_owned();
    let r = send(&s, c1(json!({"model": "small", "user_id": "alice", "conversation_id": id, "messages": [{"role": "user", "content": "two"}]}), TOKEN)).await;
    assert_eq!(r.status, 200);
    // the second upstream call carried the history
    let second: Value =
        serde_json::from_slice(&server.received_requests().await.unwrap()[1].body).unwrap();
    assert_eq!(second["messages"].as_array().unwrap().len(), 3);
    assert!(second.get("user_id").is_none() && second.get("conversation_id").is_none());
    let r = send(
        &s,
        get(
            &format!("/c1/conversations/{id}?user_id=alice"),
            Some(TOKEN),
        ),
    )
    .await;
    let contents: Vec<_> = r.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(contents, ["one", "hello", "two", "hello"]);
    let r = send(&s, get("/c1/conversations?user_id=alice", Some(TOKEN))).await;
    assert_eq!(r.body["data"][0]["id"], id.as_str());
    // other user, other tenant, unknown id, hostile id
    send(
        &s,
        get(&format!("/c1/conversations/{id}?user_id=bob"), Some(TOKEN)),
    )
    .await
    .assert_error(Code::ConversationNotFound);
    send(
        &s,
        get(
            &format!("/c1/conversations/{id}?user_id=alice"),
            Some("tok-third"),
        ),
    )
    .await
    .assert_error(Code::ConversationNotFound);
    let r = send(&s, c1(json!({"model": "small", "user_id": "alice", "conversation_id": id, "messages": [{"role": "user", "content": "x"}]}), "tok-third")).await;
    r.assert_error(Code::ConversationNotFound);
    send(
        &s,
        get(
            "/c1/conversations/00000000-0000-0000-0000-000000000000?user_id=alice",
            Some(TOKEN),
        ),
    )
    .await
    .assert_error(Code::ConversationNotFound);
    send(
        &s,
        get(
            &format!("/c1/conversations/{}?user_id=alice", "a".repeat(500)),
            Some(TOKEN),
        ),
    )
    .await
    .assert_error(Code::InvalidField);
    send(&s, get("/c1/conversations", Some(TOKEN)))
        .await
        .assert_error(Code::MissingField);
    let del = Request::delete(format!("/c1/conversations/{id}?user_id=alice"))
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&s, del).await.status, 204);
    send(
        &s,
        get(
            &format!("/c1/conversations/{id}?user_id=alice"),
            Some(TOKEN),
        ),
    )
    .await
    .assert_error(Code::ConversationNotFound);
}

#[tokio::test]
async fn storage_failure_is_storage_error_and_nothing_half_written() {
    let server = upstream_answering(200, completion()).await;
    let s = online(&server);
    let mut req = c1(
        json!({"model": "small", "user_id": "alice", "messages": [{"role": "user", "content": "x"}]}),
        TOKEN,
    );
    req.headers_mut()
        .insert("x-gateway-fault", "storage".parse().unwrap());
    send(&s, req).await.assert_error(Code::StorageError);
    // A read under the fault fails too …
    let mut list = get("/c1/conversations?user_id=alice", Some(TOKEN));
    list.headers_mut()
        .insert("x-gateway-fault", "storage".parse().unwrap());
    send(&s, list).await.assert_error(Code::StorageError);
    // … the fault was that request's only: the next one reads the healthy store, and nothing
    // of the failed exchange is there.
    let r = send(&s, get("/c1/conversations?user_id=alice", Some(TOKEN))).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["data"], json!([]));
}

#[tokio::test]
async fn undecodable_path_ids_get_the_envelope() {
    let req = Request::get("/c1/conversations/%FF?user_id=u")
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .unwrap();
    send(&offline(), req).await.assert_error(Code::InvalidField);
}

#[tokio::test]
async fn a_request_abandoned_mid_flight_releases_its_token_reservation() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(completion())
                .set_delay(Duration::from_secs(30)),
        )
        .mount(&server)
        .await;
    let mut cfg = testing::config_with_upstream(&format!("{}/v1", server.uri()));
    cfg.tenants[0].budgets = vec![Budget {
        model: "small".into(),
        requests_per_day: None,
        tokens_per_day: Some(100),
    }];
    let s = state_with(cfg);
    let mut body = hello();
    // 40 + the prompt estimate is reserved; abandoned, only the prompt estimate is charged,
    // so a second request of the same size fits the 100 again.
    body["max_tokens"] = json!(40);
    let first = tokio::spawn({
        let s = s.clone();
        let body = body.clone();
        async move { send(&s, chat(Some(TOKEN), body)).await }
    });
    // wait until the first request is at the upstream, then abandon it
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while server.received_requests().await.unwrap().is_empty() {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    first.abort();
    let _ = first.await;
    // its reserved output tokens come back: a new request is admitted (not model_quota_exhausted)
    let mut admitted = false;
    while std::time::Instant::now() < deadline {
        let mut req = chat(Some(TOKEN), body.clone());
        req.headers_mut()
            .insert("x-request-id", "probe".parse().unwrap());
        let probe = tokio::time::timeout(Duration::from_millis(200), send(&s, req)).await;
        if probe.is_err() {
            admitted = true; // it reached the (slow) upstream instead of being refused
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        admitted,
        "the abandoned request's reservation was never released"
    );
}

#[tokio::test]
async fn every_documented_route_is_served() {
    let s = offline();
    for (method, path) in gateway::testing::routes() {
        let path = path.replace("{id}", "00000000-0000-0000-0000-000000000000");
        let req = Request::builder()
            .method(method.to_uppercase().as_str())
            .uri(path.as_str())
            .header("authorization", format!("Bearer {TOKEN}"))
            .body(Body::empty())
            .unwrap();
        let r = send(&s, req).await;
        assert_ne!(
            r.code(),
            "route_not_found",
            "{method} {path} is documented but not served"
        );
    }
}
