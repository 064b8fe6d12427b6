//! Whole requests through the gateway's router, in process (`gateway::app(state).oneshot`),
//! with a `mocks::MockServer` on loopback as the upstream (the gateway calls upstreams with
//! reqwest, so the upstream hop is real TCP). The same requests straight into the mock's
//! router, and gateway-only paths that never reach the upstream, split the cost.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "bench setup: a fixture that does not build is a bug to see at once"
)]

use std::hint::black_box;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use bench::{typical_chat_body, TOKEN};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use http_body_util::BodyExt;
use mocks::{MockConfig, MockServer, MockState, Personality};
use tower::ServiceExt;

fn post(path: &str, body: &[u8], bearer: bool) -> Request<Body> {
    let mut b = Request::post(path).header(header::CONTENT_TYPE, "application/json");
    if bearer {
        b = b.header(header::AUTHORIZATION, format!("Bearer {TOKEN}"));
    }
    b.body(Body::from(body.to_vec())).unwrap()
}

async fn call(app: &Router, req: Request<Body>, want: StatusCode) -> usize {
    let resp = app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), want);
    resp.into_body().collect().await.unwrap().to_bytes().len()
}

fn whole_request(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mock_cfg = MockConfig {
        personality: Personality::Vllm,
        ..MockConfig::default()
    };
    let mock = rt
        .block_on(MockServer::start_with(
            mock_cfg.clone(),
            ([127, 0, 0, 1], 0).into(),
        ))
        .unwrap();
    let state = gateway::AppState::new(bench::config(&mock.api_base())).unwrap();
    let gw = gateway::app(state);
    let mock_router = mocks::router(MockState::new(mock_cfg));

    let plain = typical_chat_body(false);
    let streamed = typical_chat_body(true);
    let mut bad = serde_json::from_slice::<serde_json::Value>(&plain).unwrap();
    bad["temperature"] = serde_json::json!(7);
    let bad = bad.to_string().into_bytes();

    let mut g = c.benchmark_group("request");
    g.throughput(Throughput::Elements(1));
    g.bench_function("gateway_chat_via_loopback_mock", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(
                call(
                    &gw,
                    post("/v1/chat/completions", &plain, true),
                    StatusCode::OK,
                )
                .await,
            )
        })
    });
    g.bench_function("gateway_stream_via_loopback_mock", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(
                call(
                    &gw,
                    post("/v1/chat/completions", &streamed, true),
                    StatusCode::OK,
                )
                .await,
            )
        })
    });
    g.bench_function("mock_router_chat_direct", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(
                call(
                    &mock_router,
                    post("/v1/chat/completions", &plain, false),
                    StatusCode::OK,
                )
                .await,
            )
        })
    });
    g.bench_function("mock_router_stream_direct", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(
                call(
                    &mock_router,
                    post("/v1/chat/completions", &streamed, false),
                    StatusCode::OK,
                )
                .await,
            )
        })
    });
    // Gateway-only paths: edge + auth + limiter + body read + validation + envelope.
    g.bench_function("gateway_invalid_field_400", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(
                call(
                    &gw,
                    post("/v1/chat/completions", &bad, true),
                    StatusCode::BAD_REQUEST,
                )
                .await,
            )
        })
    });
    g.bench_function("gateway_missing_auth_401", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(
                call(
                    &gw,
                    post("/v1/chat/completions", &plain, false),
                    StatusCode::UNAUTHORIZED,
                )
                .await,
            )
        })
    });
    g.bench_function("gateway_models_list", |b| {
        b.to_async(&rt).iter(|| async {
            let req = Request::get("/v1/models")
                .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
                .body(Body::empty())
                .unwrap();
            black_box(call(&gw, req, StatusCode::OK).await)
        })
    });
    g.finish();
    rt.block_on(mock.shutdown());
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20);
    targets = whole_request
}
criterion_main!(benches);
