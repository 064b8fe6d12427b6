//! The Redis paths of the production conditions (issue 11) against a live redis-server: the
//! concurrency-slot script (up to the cap, refused past it, a release frees, a dead holder's
//! slot frees after its TTL), `max_concurrent` across two gateway processes (and what a
//! killed replica leaves behind), and the tenant-wide bucket across two tokens of one tenant
//! served by two processes sharing one Redis.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use gateway::config::sha256;
use gateway::testing::RedisShared;
use mocks::{MockServer, Personality, Step};

/// Every poll below gives up after this (a bound, not a sleep).
const POLL_BOUND: Duration = Duration::from_secs(5);
const HTTP_TOTAL_TIMEOUT_SECS: u64 = 30;

const CC_TOKEN: &str = "tok-two-slots";
const T1: &str = "tok-shared-one";
const T2: &str = "tok-shared-two";
const OTHER: &str = "tok-other-tenant";

fn hex(token: &str) -> String {
    hex::encode(sha256(token))
}

/// The gateway's key of a token's slots (`admission/redis.rs::slot_key`).
fn slot_key(token: &str) -> String {
    format!("gw:cc:{}", hex::encode(&sha256(token)[..16]))
}

async fn redis_conn(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slot_script_caps_refuses_releases_and_drops_a_dead_holder_after_its_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let (_redis, url) = common::start_redis(dir.path());
    let shared = RedisShared::new(&url, false).unwrap();
    let long = Duration::from_secs(60);

    // 40 simultaneous acquires against a cap of 3: the script is atomic, exactly 3 win.
    let key = [1u8; 32];
    let names: Vec<String> = (0..40).map(|i| format!("m{i}")).collect();
    let tries = names.iter().map(|m| shared.acquire_slot(&key, 3, m, long));
    let won: Vec<&String> = futures_util::future::join_all(tries)
        .await
        .into_iter()
        .zip(&names)
        .filter_map(|(r, m)| r.unwrap().then_some(m))
        .collect();
    assert_eq!(won.len(), 3, "winners: {won:?}");
    assert!(!shared.acquire_slot(&key, 3, "late", long).await.unwrap());
    // A release frees exactly one slot.
    shared.release_slot(&key, won[0]).await.unwrap();
    assert!(shared.acquire_slot(&key, 3, "late", long).await.unwrap());
    assert!(!shared.acquire_slot(&key, 3, "later", long).await.unwrap());
    // Another token has its own slots.
    assert!(shared.acquire_slot(&[2u8; 32], 3, "x", long).await.unwrap());

    // A holder that died (never released) with a short TTL, next to a live one: the dead
    // slot is dropped by its expiry score once the TTL has passed, the live one stays.
    let key = [3u8; 32];
    let ttl = Duration::from_millis(300);
    let t0 = Instant::now();
    assert!(shared.acquire_slot(&key, 2, "dead", ttl).await.unwrap());
    assert!(shared.acquire_slot(&key, 2, "alive", long).await.unwrap());
    assert!(!shared.acquire_slot(&key, 2, "next", long).await.unwrap());
    let freed_after = loop {
        if shared.acquire_slot(&key, 2, "next", long).await.unwrap() {
            break t0.elapsed();
        }
        assert!(t0.elapsed() < POLL_BOUND, "the dead slot never expired");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    // Redis' clock and ours differ by the round trip; 50 ms of slack for it.
    assert!(
        freed_after >= ttl - Duration::from_millis(50),
        "freed after {freed_after:?}, before its TTL of {ttl:?}"
    );
    assert!(
        !shared
            .acquire_slot(&key, 2, "one-more", long)
            .await
            .unwrap(),
        "only the dead slot expired: `alive` and `next` hold both"
    );
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acquire_that_timed_out_but_ran_later_leaves_no_slot_behind() {
    let dir = tempfile::tempdir().unwrap();
    let (redis, url) = common::start_redis(dir.path());
    let shared = RedisShared::new(&url, false).unwrap();
    let (key, long) = ([5u8; 32], Duration::from_secs(60));
    // Connected, and the script cached in Redis.
    assert!(shared.acquire_slot(&key, 1, "warm", long).await.unwrap());
    shared.release_slot(&key, "warm").await.unwrap();
    // A stalled Redis: the acquire is written, times out here, and runs once Redis resumes.
    signal(redis.0.id(), "-STOP");
    let timed_out = shared.acquire_slot(&key, 1, "ghost", long).await;
    signal(redis.0.id(), "-CONT");
    assert!(timed_out.is_err(), "{timed_out:?}");
    // The timeout opened the breaker; once the probe has closed it, the undo has run.
    until_answering(&shared).await;
    // Nobody holds the ghost's slot, so the only slot must come free (bounded poll); without
    // the clean-up it stays taken until the ghost's TTL (60 s).
    let t0 = Instant::now();
    while !shared.acquire_slot(&key, 1, "real", long).await.unwrap() {
        assert!(
            t0.elapsed() < POLL_BOUND,
            "the timed-out acquire left its slot taken"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A gateway process on `redis_url` with these config files; returns it and its base URL.
fn start_gateway(
    dir: &std::path::Path,
    redis_url: &str,
    upstream: &str,
    tokens_yaml: &str,
) -> (common::Proc, String) {
    let cfg = dir.join("gateway.yaml");
    std::fs::write(
        &cfg,
        format!("upstreams:\n  - {{ name: local, kind: vllm, base_url: '{upstream}' }}\nmodels:\n  - {{ alias: small, upstream: local, upstream_model: m }}\n"),
    )
    .unwrap();
    let tokens = dir.join("tokens.yaml");
    std::fs::write(&tokens, tokens_yaml).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gateway"));
    cmd.env_clear()
        .env("GATEWAY_CONFIG", &cfg)
        .env("TOKENS_FILE", &tokens)
        .env("REDIS_URL", redis_url)
        .env(
            "HTTP_TOTAL_TIMEOUT_SECS",
            HTTP_TOTAL_TIMEOUT_SECS.to_string(),
        );
    common::spawn_gateway(cmd, dir)
}

/// A stream's body; dropping it disconnects mid-stream.
type Body =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>;

/// An open stream (its first chunk read), or the refusal's status, code and Retry-After.
enum Try {
    Open(#[allow(dead_code, reason = "held, never read: dropping it disconnects")] Body),
    Refused(u16, String, Option<String>),
}

async fn open_stream(client: &reqwest::Client, base: &str) -> Try {
    let r = client
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(CC_TOKEN)
        .json(&serde_json::json!({
            "model": "small",
            "max_tokens": 32,
            "stream": true,
            "messages": [{"role": "user", "content": "hold mock:hold"}],
        }))
        .send()
        .await
        .unwrap();
    if r.status() == 200 {
        let mut s: Body = Box::pin(r.bytes_stream());
        assert!(matches!(s.next().await, Some(Ok(_))), "no first chunk");
        return Try::Open(s);
    }
    let status = r.status().as_u16();
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let v: serde_json::Value = r.json().await.unwrap();
    Try::Refused(
        status,
        v["error"]["code"].as_str().unwrap().to_owned(),
        retry,
    )
}

/// Opens a stream on `base`, retrying (bounded) while the cap refuses it.
async fn open_when_free(client: &reqwest::Client, base: &str) -> Try {
    let t0 = Instant::now();
    loop {
        match open_stream(client, base).await {
            t @ Try::Open(_) => return t,
            Try::Refused(..) => {
                assert!(t0.elapsed() < POLL_BOUND, "no slot came free on {base}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

fn assert_refused(t: &Try) {
    match t {
        Try::Refused(status, code, retry) => {
            assert_eq!(
                (*status, code.as_str()),
                (429, "concurrency_limit_exceeded")
            );
            assert!(retry
                .as_deref()
                .is_some_and(|r| r.parse::<u64>().unwrap() >= 1));
        }
        Try::Open(_) => panic!("admitted past the cap"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_concurrent_is_one_count_across_two_processes_and_a_killed_replica_leaves_its_slot_to_the_ttl(
) {
    let dir = tempfile::tempdir().unwrap();
    let (_redis, url) = common::start_redis(dir.path());
    let mock = MockServer::start(Personality::Vllm).await.unwrap();
    // Each admitted stream: a chunk every 50 ms for 20 s, longer than the test.
    mock.script("hold", vec![Step::stream(vec!["tick "; 400], 50); 20]);
    // The token's own bucket is large: polling for a free slot must not exhaust it.
    let tokens = format!(
        "tenants:\n  - id: cc\n    tokens:\n      - {{ sha256: {}, max_concurrent: 2 }}\n    allowed_models: ['*']\n    rate_limit: {{ rps: 1000, burst: 1000 }}\n",
        hex(CC_TOKEN)
    );
    let (mut proc_a, a) = start_gateway(dir.path(), &url, &mock.api_base(), &tokens);
    let (_proc_b, b) = start_gateway(dir.path(), &url, &mock.api_base(), &tokens);
    let client = reqwest::Client::new();

    // Six at once, three on each replica: two admitted in all, four refused.
    let tries = (0..6).map(|i| open_stream(&client, if i % 2 == 0 { &a } else { &b }));
    let (open, refused): (Vec<Try>, Vec<Try>) = futures_util::future::join_all(tries)
        .await
        .into_iter()
        .partition(|t| matches!(t, Try::Open(_)));
    assert_eq!((open.len(), refused.len()), (2, 4));
    refused.iter().for_each(assert_refused);

    // Disconnecting mid-stream frees both slots; one stream on each replica fills the cap.
    drop(open);
    let on_a = open_when_free(&client, &a).await;
    let on_b = open_when_free(&client, &b).await;
    assert_refused(&open_stream(&client, &b).await);

    // Replica A dies holding a slot (SIGKILL: no release). Its slot stays taken: when B's
    // own stream ends, B gets that one slot back and no more.
    proc_a.0.kill().unwrap();
    proc_a.0.wait().unwrap();
    drop(on_a);
    drop(on_b);
    let _again = open_when_free(&client, &b).await;
    assert_refused(&open_stream(&client, &b).await);

    // The dead replica's slot carries its expiry (HTTP_TOTAL_TIMEOUT_SECS + 60 s from when it
    // was taken), which the script honours (the test above): it frees itself by then.
    let mut c = redis_conn(&url).await;
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(&mut c).await.unwrap();
    let now_ms = secs * 1000 + micros / 1000;
    let slots: Vec<(String, f64)> = redis::cmd("ZRANGE")
        .arg(slot_key(CC_TOKEN))
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(slots.len(), 2, "{slots:?}");
    let ttl_ms = (HTTP_TOTAL_TIMEOUT_SECS + 60) * 1000;
    for (member, expiry) in &slots {
        let left = (*expiry as u64).saturating_sub(now_ms);
        assert!(
            left <= ttl_ms && left > ttl_ms - 30_000,
            "slot {member} expires in {left} ms, expected at most {ttl_ms}"
        );
    }
}

async fn status_and_code(client: &reqwest::Client, base: &str, token: &str) -> (u16, String) {
    let r = client
        .get(format!("{base}/v1/models"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    if status == 200 {
        return (200, String::new());
    }
    assert!(
        r.headers()
            .get("retry-after")
            .is_some_and(|v| v.to_str().unwrap().parse::<u64>().unwrap() >= 1),
        "a {status} without Retry-After"
    );
    let v: serde_json::Value = r.json().await.unwrap();
    (status, v["error"]["code"].as_str().unwrap().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tenant_bucket_is_shared_by_its_tokens_across_two_processes() {
    let dir = tempfile::tempdir().unwrap();
    let (_redis, url) = common::start_redis(dir.path());
    // Burst 6 for the whole tenant; each token's own bucket is far larger, so only the
    // tenant's can refuse.
    let tokens = format!(
        "tenants:\n  - id: shared\n    tokens:\n      - {{ sha256: {} }}\n      - {{ sha256: {} }}\n    allowed_models: ['*']\n    rate_limit: {{ rps: 1000, burst: 1000 }}\n    tenant_rate_limit: {{ rps: 0.001, burst: 6 }}\n  - id: other\n    tokens:\n      - {{ sha256: {} }}\n    allowed_models: ['*']\n",
        hex(T1),
        hex(T2),
        hex(OTHER)
    );
    let upstream = "http://127.0.0.1:9/v1";
    let (_a_proc, a) = start_gateway(dir.path(), &url, upstream, &tokens);
    let (_b_proc, b) = start_gateway(dir.path(), &url, upstream, &tokens);
    let client = reqwest::Client::new();

    // Token 1 on replica A takes 3 of the 6.
    for _ in 0..3 {
        assert_eq!(status_and_code(&client, &a, T1).await.0, 200);
    }
    // Token 2 on replica B, 20 at once: exactly the 3 left.
    let answers =
        futures_util::future::join_all((0..20).map(|_| status_and_code(&client, &b, T2))).await;
    let ok = answers.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(ok, 3, "{answers:?}");
    for (s, code) in answers.iter().filter(|(s, _)| *s != 200) {
        assert_eq!((*s, code.as_str()), (429, "tenant_rate_limit_exceeded"));
    }
    // Now token 1 is refused too, on either replica; another tenant is not.
    assert_eq!(
        status_and_code(&client, &a, T1).await,
        (429, "tenant_rate_limit_exceeded".into())
    );
    assert_eq!(status_and_code(&client, &b, OTHER).await.0, 200);
}

/// Calls of Lua scripts Redis has run so far (`INFO commandstats`), read on a connection of
/// its own: the proof that a call that timed out at the gateway did run in Redis later.
async fn scripts_run(url: &str) -> u64 {
    let mut c = redis_conn(url).await;
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut c)
        .await
        .unwrap();
    info.lines()
        .filter(|l| l.starts_with("cmdstat_evalsha:") || l.starts_with("cmdstat_eval:"))
        .filter_map(|l| {
            l.split("calls=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

/// Waits (bounded) until `shared` reaches Redis again. Its commands share one connection, so
/// once this returns, everything it wrote before (a late script, its undo) has run.
async fn until_answering(shared: &RedisShared) {
    let t0 = Instant::now();
    while shared.ping().await.is_err() {
        assert!(t0.elapsed() < POLL_BOUND, "Redis never answered again");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One call made while `redis` is stopped: it is written, times out at the gateway, and runs
/// in Redis once it resumes. Returns the call's result after Redis answers again, having
/// checked that the script did run late.
async fn stalled<T>(
    redis: &common::Proc,
    url: &str,
    shared: &RedisShared,
    call: impl std::future::Future<Output = T>,
) -> T {
    let before = scripts_run(url).await;
    signal(redis.0.id(), "-STOP");
    let out = call.await;
    signal(redis.0.id(), "-CONT");
    until_answering(shared).await;
    assert!(
        scripts_run(url).await > before,
        "the timed-out script never ran in Redis: the test shows nothing"
    );
    out
}

fn budget_tenant(requests: u64, tokens: u64) -> gateway::config::Tenant {
    gateway::config::Tenant {
        id: "late".into(),
        budgets: vec![gateway::config::Budget {
            model: "*".into(),
            requests_per_day: Some(requests),
            tokens_per_day: Some(tokens),
        }],
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_check_that_timed_out_but_ran_later_consumes_no_burst() {
    let dir = tempfile::tempdir().unwrap();
    let (redis, url) = common::start_redis(dir.path());
    let shared = RedisShared::new(&url, true).unwrap();
    // Burst 2 that does not refill within the test.
    let rate = gateway::config::RateLimit {
        rps: 0.001,
        burst: 2,
    };
    let key = [6u8; 32];
    // Connected, and the script cached, on another bucket.
    assert!(shared.check(&[7u8; 32], rate).await.unwrap().allowed);
    let late = stalled(&redis, &url, &shared, shared.check(&key, rate)).await;
    assert!(late.is_err(), "{late:?}");
    // The timed-out check was refused here (REDIS_FAIL_MODE=closed): it must not have taken
    // one of the two. Without the undo the second check below is refused.
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(shared.check(&key, rate).await.unwrap().allowed);
    }
    assert_eq!(got, [true, true, false]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_that_timed_out_but_ran_later_leaves_nothing_reserved() {
    let dir = tempfile::tempdir().unwrap();
    let (redis, url) = common::start_redis(dir.path());
    let shared = RedisShared::new(&url, false).unwrap();
    let (tenant, now) = (budget_tenant(5, 1_000), 10 * 86_400 + 5);
    // Connected, and the script cached, on another tenant.
    let warm = budget_tenant(5, 1_000);
    let warm = gateway::config::Tenant {
        id: "warm".into(),
        ..warm
    };
    assert!(shared.reserve(&warm, "m", 1, now).await.unwrap().is_some());
    let late = stalled(
        &redis,
        &url,
        &shared,
        shared.reserve(&tenant, "m", 600, now),
    )
    .await;
    assert!(late.is_err(), "{late:?}");
    // The request fell back to the local ledger; Redis must hold nothing for it. Without the
    // undo 600 of 1,000 stay reserved until the day ends and the next 600 is refused.
    let key = gateway::testing::budget_key("late", "*", now / 86_400);
    let mut c = redis_conn(&url).await;
    let counts: (Option<u64>, Option<u64>) = redis::pipe()
        .get(format!("{key}:req"))
        .get(format!("{key}:tok"))
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(
        counts,
        (Some(0), Some(0)),
        "requests, tokens still reserved"
    );
    let holds = shared.reserve(&tenant, "m", 600, now).await.unwrap();
    assert!(holds.is_some(), "refused: the late reservation leaked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settlement_while_redis_is_stalled_lands_when_it_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let (redis, url) = common::start_redis(dir.path());
    let shared = RedisShared::new(&url, false).unwrap();
    let (tenant, now) = (budget_tenant(5, 1_000), 10 * 86_400 + 5);
    let holds = shared
        .reserve(&tenant, "m", 900, now)
        .await
        .unwrap()
        .unwrap();
    // Redis stalls while the request runs: a rate check times out (the breaker opens), then
    // the request ends and settles 100 of its 900.
    signal(redis.0.id(), "-STOP");
    let rate = gateway::config::RateLimit { rps: 1.0, burst: 5 };
    assert!(shared.check(&[1u8; 32], rate).await.is_err());
    let t0 = Instant::now();
    let settled = shared.settle(&holds, 100).await;
    let took = t0.elapsed();
    signal(redis.0.id(), "-CONT");
    assert!(settled.is_ok(), "{settled:?}");
    assert!(
        took < Duration::from_millis(100),
        "the settlement waited {took:?} on the stalled Redis"
    );
    until_answering(&shared).await;
    // Without it the 900 stay reserved until the day ends and the next 900 is refused.
    let key = gateway::testing::budget_key("late", "*", now / 86_400);
    let mut c = redis_conn(&url).await;
    let tok: u64 = redis::cmd("GET")
        .arg(format!("{key}:tok"))
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(tok, 100);
    assert!(shared
        .reserve(&tenant, "m", 900, now)
        .await
        .unwrap()
        .is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_redis_costs_one_timeout_then_fails_fast_until_it_answers_again() {
    let dir = tempfile::tempdir().unwrap();
    let (redis, url) = common::start_redis(dir.path());
    let shared = RedisShared::new(&url, false).unwrap();
    let rate = gateway::config::RateLimit {
        rps: 1000.0,
        burst: 1000,
    };
    assert!(shared.check(&[1u8; 32], rate).await.unwrap().allowed);
    signal(redis.0.id(), "-STOP");
    // 3 s of calls, several breaker retry intervals: only the first may wait for the
    // timeout; every later one fails at once (the retry is a background probe).
    let t0 = Instant::now();
    let (mut calls, mut slow) = (0, Vec::new());
    while t0.elapsed() < Duration::from_secs(3) {
        let one = Instant::now();
        assert!(shared.check(&[1u8; 32], rate).await.is_err());
        if one.elapsed() >= Duration::from_millis(100) {
            slow.push((calls, one.elapsed()));
        }
        calls += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    signal(redis.0.id(), "-CONT");
    assert!(
        slow.len() == 1 && slow[0].0 == 0,
        "calls that waited on the stalled Redis (index, time): {slow:?} of {calls}"
    );
    // Once Redis answers, the probe closes the breaker (bounded poll).
    let t1 = Instant::now();
    while shared.check(&[1u8; 32], rate).await.is_err() {
        assert!(t1.elapsed() < POLL_BOUND, "the breaker never closed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!(
        "stalled Redis: {calls} calls in 3 s, {} waited ({:?}); Redis used again {:?} after it resumed",
        slow.len(),
        slow.first().map(|s| s.1),
        t1.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undo_that_runs_before_its_acquire_leaves_a_tombstone_the_acquire_honours() {
    let dir = tempfile::tempdir().unwrap();
    let (_redis, url) = common::start_redis(dir.path());
    let shared = RedisShared::new(&url, false).unwrap();
    let (key, long) = ([8u8; 32], Duration::from_secs(60));
    assert!(shared.acquire_slot(&key, 1, "warm", long).await.unwrap());
    shared.release_slot(&key, "warm").await.unwrap();
    // The order a reconnect can produce: the undo lands first, the acquire after it.
    shared.cancel_slot(&key, "ghost").await.unwrap();
    assert!(
        !shared.acquire_slot(&key, 1, "ghost", long).await.unwrap(),
        "the acquire ran after its own undo and took the slot"
    );
    assert!(shared.acquire_slot(&key, 1, "real", long).await.unwrap());
    // An undo after a taken slot frees it, and is idempotent.
    shared.cancel_slot(&key, "real").await.unwrap();
    shared.cancel_slot(&key, "real").await.unwrap();
    assert!(shared.acquire_slot(&key, 1, "next", long).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_released_while_redis_is_stalled_is_free_when_it_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let (redis, url) = common::start_redis(dir.path());
    let shared = RedisShared::new(&url, false).unwrap();
    let (key, long) = ([9u8; 32], Duration::from_secs(60));
    assert!(shared.acquire_slot(&key, 1, "held", long).await.unwrap());
    // Redis stalls while the stream runs: another call times out (the breaker opens), then
    // the stream ends and its slot is released.
    signal(redis.0.id(), "-STOP");
    let rate = gateway::config::RateLimit { rps: 1.0, burst: 5 };
    assert!(shared.check(&[1u8; 32], rate).await.is_err());
    // Written to the connection; unanswered until Redis resumes.
    let released = shared.release_slot(&key, "held").await;
    signal(redis.0.id(), "-CONT");
    assert!(released.is_err(), "{released:?}");
    until_answering(&shared).await;
    // Dropped by the breaker, the release would leave the slot taken for its 60 s TTL.
    assert!(shared.acquire_slot(&key, 1, "next", long).await.unwrap());
}
