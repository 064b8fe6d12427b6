//! Criterion benches of the gateway's hot paths: rate-limit checks, request validation
//! (typical body, 1 MiB and 32 MiB image data URIs), the per-chunk SSE relay work, and
//! rendering the error envelope.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "bench setup: a fixture that does not build is a bug to see at once"
)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::response::IntoResponse;
use bench::{image_chat_body, png_data_uri, typical_chat_body, upstream_sse_events, UNLIMITED};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use gateway::catalog::Code;
use gateway::testing::{
    check_chat, parse_object, Api, ApiError, Hooks, LocalLimiters, Piece, RawChunk, Relayed,
    UpstreamEvents,
};

fn limiter(c: &mut Criterion) {
    let mut g = c.benchmark_group("limiter");
    g.throughput(Throughput::Elements(1));
    let l = LocalLimiters::new(UNLIMITED, []);
    let key = [7u8; 32];
    g.bench_function("one_key", |b| {
        b.iter(|| black_box(l.check(black_box(&key), UNLIMITED)))
    });

    let keys: Vec<[u8; 32]> = (0..10_000u32)
        .map(|i| gateway::config::sha256(&format!("token-{i}")))
        .collect();
    for k in &keys {
        l.check(k, UNLIMITED);
    }
    let mut i = 0usize;
    g.bench_function("10k_keys", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            black_box(l.check(&keys[i], UNLIMITED))
        })
    });

    // Both cores on one key: the cost of the shared atomic under contention.
    let shared = Arc::new(LocalLimiters::new(UNLIMITED, []));
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    g.bench_function(format!("contended_one_key_{threads}_threads"), |b| {
        b.iter_custom(|iters| {
            let per = iters.div_ceil(threads as u64);
            let started = Instant::now();
            std::thread::scope(|s| {
                for _ in 0..threads {
                    let l = shared.clone();
                    s.spawn(move || {
                        for _ in 0..per {
                            black_box(l.check(&key, UNLIMITED));
                        }
                    });
                }
            });
            started.elapsed()
        })
    });
    g.finish();
}

fn validation(c: &mut Criterion) {
    let cfg = bench::config("http://127.0.0.1:9/v1");
    let tenant = &cfg.tenants[0];
    let mut g = c.benchmark_group("validate");

    let body = typical_chat_body(false);
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("typical_chat_body", |b| {
        b.iter(|| {
            let mut obj = parse_object(black_box(&body)).unwrap();
            black_box(check_chat(&mut obj, &cfg, tenant, Api::V1).is_ok())
        })
    });

    for (name, len) in [("1MiB", 1usize << 20), ("32MiB", 32 << 20)] {
        let uri = png_data_uri(len);
        g.throughput(Throughput::Bytes(uri.len() as u64));
        if len > 1 << 20 {
            g.sample_size(10);
        }
        g.bench_function(format!("image_data_uri_{name}"), |b| {
            b.iter(|| black_box(gateway::testing::check_data_uri(black_box(&uri)).is_ok()))
        });
        // The whole body path: JSON parse of the body (the URI is one string) + all checks.
        let body = image_chat_body(&uri);
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_function(format!("image_chat_body_{name}"), |b| {
            b.iter(|| {
                let mut obj = parse_object(black_box(&body)).unwrap();
                black_box(check_chat(&mut obj, &cfg, tenant, Api::V1).is_ok())
            })
        });
    }
    g.finish();
}

/// The relay's work per upstream event: SSE parse, then (as the /v1 relay does now) the fast
/// path's validating read, raw members, `model` spliced into the upstream's bytes; and, for
/// comparison, the `Value` path (JSON parse, alias swap, re-serialise) that /c1, the tool
/// loop and every unusual event take.
fn sse_relay(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let events = upstream_sse_events(64);
    let n = events.len() as u64;
    let bytes: u64 = events.iter().map(|e| e.len() as u64).sum();
    let state = &gateway::AppState::new(gateway::testing::config()).unwrap();
    let model = &state.config.models[0];
    let alias_json = serde_json::to_string(&model.alias).unwrap();
    let alias = alias_json.as_str();
    let request = &serde_json::Map::new();
    let response = || {
        let body =
            futures_util::stream::iter(events.clone().into_iter().map(Ok::<_, std::io::Error>));
        // The gateway's own answer type: what its hyper client hands on.
        axum::http::Response::builder()
            .header("content-type", "text/event-stream")
            .body(reqwest::Body::wrap_stream(body))
            .unwrap()
    };
    let mut g = c.benchmark_group("sse_relay");
    g.throughput(Throughput::Elements(n));
    g.bench_function(format!("{n}_events"), |b| {
        b.to_async(&rt).iter_batched(
            response,
            |resp| async move {
                let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
                let mut up =
                    UpstreamEvents::new(resp, deadline, state, model, request).relay_as_bytes();
                let hooks = Hooks::default();
                let mut out = bytes::BytesMut::new();
                loop {
                    match up.next_relayed().await {
                        Relayed::Raw(c) => c.write_sse(alias, &mut out),
                        Relayed::Chunk(mut c) => {
                            out.extend_from_slice(&hooks.chunk_bytes(&mut c).unwrap())
                        }
                        Relayed::Done => break,
                        Relayed::Failed(e) => panic!("relay failed: {e}"),
                    }
                }
                black_box(out.len())
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function(format!("{n}_events_value"), |b| {
        b.to_async(&rt).iter_batched(
            response,
            |resp| async move {
                let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
                let mut up = UpstreamEvents::new(resp, deadline, state, model, request);
                let hooks = Hooks::default();
                let mut out = 0usize;
                loop {
                    match up.next().await {
                        Piece::Chunk(mut c) => {
                            out += hooks.chunk_bytes(&mut c).map_or(0, |b| b.len());
                        }
                        Piece::Done => break,
                        Piece::Failed(e) => panic!("relay failed: {e}"),
                    }
                }
                black_box(out)
            },
            BatchSize::SmallInput,
        )
    });
    g.throughput(Throughput::Bytes(bytes));
    let datas: Vec<String> = events
        .iter()
        .map(|e| std::str::from_utf8(&e[6..e.len() - 2]).unwrap().to_owned())
        .filter(|d| d != "[DONE]")
        .collect();
    g.bench_function(format!("{n}_events_bytes"), |b| {
        b.iter(|| {
            // Value parse + re-serialise only (no stream machinery), to split the cost.
            let mut out = 0usize;
            for data in &datas {
                if let Ok(serde_json::Value::Object(mut m)) = serde_json::from_str(data) {
                    m.insert("model".into(), serde_json::Value::String("small".into()));
                    out += gateway::testing::sse_data(&serde_json::to_string(&m).unwrap()).len();
                }
            }
            black_box(out)
        })
    });
    g.bench_function(format!("{n}_events_splice"), |b| {
        b.iter_batched(
            || datas.clone(),
            |datas| {
                // The fast path's read + splice only, the same split.
                let mut out = bytes::BytesMut::new();
                for data in datas {
                    if let Ok(c) = RawChunk::parse(data) {
                        c.write_sse(alias, &mut out);
                    }
                }
                black_box(out.len())
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn error_envelope(c: &mut Criterion) {
    let mut g = c.benchmark_group("error_envelope");
    g.throughput(Throughput::Elements(1));
    let e = ApiError::missing_field("/messages/3/content");
    g.bench_function("body_json", |b| b.iter(|| black_box(e.body_json())));
    g.bench_function("into_response_invalid_field", |b| {
        b.iter(|| {
            black_box(
                ApiError::invalid_field("/temperature", "must be between 0 and 2").into_response(),
            )
        })
    });
    let l = LocalLimiters::new(gateway::config::RateLimit { rps: 1.0, burst: 1 }, []);
    let key = [1u8; 32];
    l.check(&key, gateway::config::RateLimit { rps: 1.0, burst: 1 });
    let refused = l.check(&key, gateway::config::RateLimit { rps: 1.0, burst: 1 });
    assert!(!refused.allowed);
    g.bench_function("into_response_rate_limited_429", |b| {
        b.iter(|| black_box(refused.into_error().into_response()))
    });
    let mut quota = ApiError::new(Code::OpenrouterDailyQuotaExhausted, "daily limit reached");
    quota.fallbacks = Some(vec!["small".into(), "large".into()]);
    g.bench_function("body_json_with_fallbacks", |b| {
        b.iter(|| black_box(quota.body_json()))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20);
    targets = limiter, validation, sse_relay, error_envelope
}
criterion_main!(benches);
