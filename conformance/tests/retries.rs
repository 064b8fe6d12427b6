//! A gateway that retries upstream failures (as LiteLLM does by default) is judged fairly:
//! with `retries` in the target, the scripted failure repeats for every attempt and the
//! 5xx reaches the caller; without it, the verdict says how many upstream attempts the
//! gateway made. The "gateway" is a test double: a loopback proxy in front of the mock that
//! retries a 5xx once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use conformance::report::Grade;
use conformance::schemas::Schemas;
use conformance::target::{ExternalSpec, Target};
use conformance::RunOptions;

struct Proxy {
    upstream: String,
    http: reqwest::Client,
}

async fn chat(State(p): State<Arc<Proxy>>, body: Bytes) -> Response {
    let mut last = None;
    for _attempt in 0..2 {
        let sent = p
            .http
            .post(format!("{}/v1/chat/completions", p.upstream))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await;
        let Ok(resp) = sent else {
            return (
                StatusCode::BAD_GATEWAY,
                "{\"error\":{\"message\":\"down\",\"type\":\"x\"}}",
            )
                .into_response();
        };
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        last = Some((status, text));
        if status < 500 {
            break;
        }
    }
    let (status, text) = last.unwrap();
    let mut headers = HeaderMap::new();
    headers.insert("content-type", "application/json".parse().unwrap());
    (StatusCode::from_u16(status).unwrap(), headers, text).into_response()
}

async fn run_with(retries: usize) -> conformance::RunReport {
    let mock = Arc::new(
        mocks::MockServer::start(mocks::Personality::Litellm)
            .await
            .unwrap(),
    );
    let proxy = Arc::new(Proxy {
        upstream: mock.base_url(),
        http: reqwest::Client::new(),
    });
    let app = axum::Router::new()
        .route("/v1/chat/completions", post(chat))
        .with_state(proxy);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let mut opts = RunOptions::from_env();
    let reports = tempfile::tempdir().unwrap();
    opts.reports = reports.path().to_path_buf();
    opts.tags = Some("@baseline".into());
    opts.name = Some("An upstream 5xx becomes a 5xx".into());
    opts.console = false;
    let schemas = Arc::new(Schemas::load(&opts.schemas_dir()).unwrap());
    let profile = conformance::profile::Profile::load(&opts.features, "openai", &schemas).unwrap();
    let mut roles = std::collections::HashMap::new();
    roles.insert(
        "default".to_owned(),
        conformance::mock::MockHandle::Local(Arc::clone(&mock)),
    );
    let spec = ExternalSpec {
        url,
        bearer: "any".into(),
        mocks: roles,
        models: [("default".to_owned(), "mock-model".to_owned())].into(),
        profile: Some(Arc::new(profile)),
        retries,
        ..ExternalSpec::default()
    };
    let target = Arc::new(Target::external(spec, schemas).await.unwrap());
    conformance::run(target, &opts).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn conformance_a_retrying_gateway_meets_the_failure_on_every_attempt() {
    let report = run_with(1).await;
    assert_eq!(report.scenarios.len(), 1, "{}", report.summary_line());
    let s = &report.scenarios[0];
    assert_eq!(s.grade(), Grade::Conformant, "{:?}", s.failure());
    assert_eq!(s.verdict.upstream_attempts, Some(2));
}

#[tokio::test(flavor = "multi_thread")]
async fn conformance_an_undeclared_retry_is_named_in_the_verdict() {
    let report = run_with(0).await;
    let s = &report.scenarios[0];
    assert_eq!(s.grade(), Grade::Failed);
    let m = s.failure().unwrap_or_default();
    assert!(
        m.contains("answered HTTP 200") && m.contains("2 upstream attempt(s)"),
        "{m}"
    );
    assert_eq!(s.verdict.upstream_attempts, Some(2));
}
