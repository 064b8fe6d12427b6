//! Exact admission: N ≫ B simultaneous requests admit exactly B; over an interval admitted =
//! B + elapsed × rate (±1); and two gateway PROCESSES sharing one real redis-server admit
//! together what one would alone.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gateway::config::RateLimit;
use gateway::testing::{self, TOKEN};
use gateway::AppState;

async fn count_admitted(base: &str, token: &str, n: usize) -> u32 {
    let client = reqwest::Client::new();
    let ok = Arc::new(AtomicU32::new(0));
    let mut tasks = Vec::new();
    for _ in 0..n {
        let (client, ok, url) = (client.clone(), ok.clone(), format!("{base}/v1/models"));
        let token = token.to_owned();
        tasks.push(tokio::spawn(async move {
            let r = client.get(url).bearer_auth(token).send().await.unwrap();
            match r.status().as_u16() {
                200 => {
                    ok.fetch_add(1, Ordering::Relaxed);
                }
                429 => assert!(r.headers().get("retry-after").is_some()),
                s => panic!("unexpected status {s}"),
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    ok.load(Ordering::Relaxed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_requests_admit_exactly_the_burst() {
    let mut cfg = testing::config();
    cfg.rate_limit = RateLimit {
        rps: 0.001,
        burst: 30,
    };
    // 300 simultaneous connections from one address: above the default per-IP cap (256),
    // which would refuse some before the limiter is reached. This test is about the limiter.
    cfg.limits.max_connections_per_ip = 1024;
    cfg.limits.max_connections = cfg.limits.max_connections.max(1024);
    let gw = gateway::spawn(AppState::new(cfg).unwrap(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(count_admitted(&gw.base_url(), TOKEN, 300).await, 30);
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admitted_is_burst_plus_elapsed_times_rate() {
    let mut cfg = testing::config();
    let (rps, burst) = (20.0, 5);
    cfg.rate_limit = RateLimit { rps, burst };
    let gw = gateway::spawn(AppState::new(cfg).unwrap(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let client = reqwest::Client::new();
    let url = format!("{}/v1/models", gw.base_url());
    let start = Instant::now();
    let mut admitted = 0u32;
    while start.elapsed() < Duration::from_millis(1500) {
        let r = client.get(&url).bearer_auth(TOKEN).send().await.unwrap();
        if r.status() == 200 {
            admitted += 1;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let expected = f64::from(burst) + elapsed * rps;
    assert!(
        (f64::from(admitted) - expected).abs() <= 1.0 + rps * 0.01,
        "admitted {admitted}, expected {expected:.1} over {elapsed:.3}s"
    );
    gw.shutdown().await;
}

fn start_gateway(dir: &std::path::Path, redis_url: &str) -> (common::Proc, String) {
    let cfg = dir.join("gateway.yaml");
    std::fs::write(
        &cfg,
        "upstreams:\n  - { name: local, kind: vllm, base_url: 'http://127.0.0.1:9/v1' }\nmodels:\n  - { alias: small, upstream: local, upstream_model: m }\n",
    )
    .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gateway"));
    cmd.env_clear()
        .env("GATEWAY_CONFIG", &cfg)
        .env("RUST_API_BEARER", TOKEN)
        .env("RATE_LIMIT_BURST", "10")
        .env("RATE_LIMIT_RPS", "0.001")
        .env("REDIS_URL", redis_url);
    common::spawn_gateway(cmd, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_sharing_redis_admit_what_one_would() {
    let dir = tempfile::tempdir().unwrap();
    let (_redis, url) = common::start_redis(dir.path());
    let (_a, a) = start_gateway(dir.path(), &url);
    let (_b, b) = start_gateway(dir.path(), &url);
    let (x, y) = tokio::join!(count_admitted(&a, TOKEN, 40), count_admitted(&b, TOKEN, 40));
    assert_eq!(x + y, 10, "replica A admitted {x}, replica B {y}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_fails_open_to_local_limits_and_readyz_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("redis+unix://{}", dir.path().join("nobody.sock").display());
    let (_g, base) = start_gateway(dir.path(), &url);
    // Fail-open: the process still limits on its own (burst 10).
    assert_eq!(count_admitted(&base, TOKEN, 30).await, 10);
    let r: serde_json::Value = reqwest::get(format!("{base}/readyz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["checks"]["redis"]["ok"], false);
    assert_eq!(r["checks"]["redis"]["fail_mode"], "open");
    let m = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        m.lines()
            .any(|l| l.starts_with("gateway_redis_errors_total") && !l.ends_with(" 0")),
        "{m}"
    );
}
