//! The connection edge over real loopback sockets (issue 15): header, idle and body-read
//! timeouts, connection caps (global and per IP), the in-flight cap, hyper's own 400/431 in
//! the envelope, a caller that stops reading, `/metrics` on its own address, `/readyz`
//! cached, a stalled Redis behind the breaker, and SIGTERM on the real binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{wait_for_line, Proc};
use futures_util::StreamExt;
use gateway::config::ServerLimits;
use gateway::testing::{self, TOKEN};
use gateway::AppState;
use mocks::{MockServer, Outcome, Personality, Step};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

async fn gw_with(limits: ServerLimits, api_base: &str) -> gateway::Running {
    let mut cfg = testing::config_with_upstream(api_base);
    cfg.limits = limits;
    gateway::spawn(AppState::new(cfg).unwrap(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

async fn gw(limits: ServerLimits) -> gateway::Running {
    gw_with(limits, "http://127.0.0.1:9/v1").await
}

/// Reads until the server closes; returns what arrived and how long it took.
async fn read_to_close(s: &mut TcpStream, bound: Duration) -> (Vec<u8>, Duration) {
    let t = Instant::now();
    let mut out = Vec::new();
    let r = tokio::time::timeout(bound, async {
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        r.is_ok(),
        "still open after {bound:?}; got {:?}",
        String::from_utf8_lossy(&out)
    );
    (out, t.elapsed())
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

#[tokio::test]
async fn a_silent_socket_and_a_dripped_header_are_cut_at_the_header_timeout() {
    let g = gw(ServerLimits {
        header_read_timeout: secs(1.0),
        ..ServerLimits::default()
    })
    .await;
    let mut silent = TcpStream::connect(g.addr).await.unwrap();
    let (_, took) = read_to_close(&mut silent, secs(5.0)).await;
    assert!(took >= secs(0.9), "cut too early: {took:?}");

    let mut drip = TcpStream::connect(g.addr).await.unwrap();
    let started = Instant::now();
    let closed = async {
        for b in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaa" {
            if drip.write_all(&[*b]).await.is_err() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    };
    // The drip takes ~6 s in full; the timeout must end it after ~1 s.
    let cut = tokio::time::timeout(secs(5.0), closed)
        .await
        .unwrap_or(false)
        || {
            let (_, _) = read_to_close(&mut drip, secs(5.0)).await;
            true
        };
    assert!(cut);
    let took = started.elapsed();
    assert!(took < secs(5.0), "dripped header held {took:?}");
    g.shutdown().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let g = gw(ServerLimits {
        idle_timeout: secs(0.5),
        ..ServerLimits::default()
    })
    .await;
    let mut s = TcpStream::connect(g.addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (got, took) = read_to_close(&mut s, secs(5.0)).await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        took >= secs(0.4),
        "closed before the idle timeout: {took:?}"
    );
    g.shutdown().await;
}

#[tokio::test]
async fn a_pause_inside_the_body_is_cut_at_the_body_read_timeout() {
    let g = gw(ServerLimits {
        body_read_timeout: secs(0.5),
        ..ServerLimits::default()
    })
    .await;
    let mut s = TcpStream::connect(g.addr).await.unwrap();
    let head = format!("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"model\":");
    s.write_all(head.as_bytes()).await.unwrap();
    let t = Instant::now();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(secs(5.0), s.read(&mut buf))
        .await
        .expect("no answer after the body pause")
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(text.contains("\"code\":\"invalid_json\""), "{text}");
    assert!(t.elapsed() >= secs(0.4), "{:?}", t.elapsed());
    g.shutdown().await;
}

async fn connect_from(ip: &str, to: SocketAddr) -> TcpStream {
    let sock = TcpSocket::new_v4().unwrap();
    sock.bind(format!("{ip}:0").parse().unwrap()).unwrap();
    sock.connect(to).await.unwrap()
}

/// The chaos run of the issue at test size: 200 idle sockets from one address against a
/// per-IP cap of 50; the ones past the cap are closed at once and another address is served.
#[tokio::test]
async fn idle_sockets_past_the_per_ip_cap_are_refused_while_another_client_is_served() {
    let (cap, n) = (50, 200);
    let g = gw(ServerLimits {
        max_connections_per_ip: cap,
        header_read_timeout: secs(120.0),
        idle_timeout: secs(120.0),
        ..ServerLimits::default()
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..n {
        held.push(connect_from("127.0.0.1", g.addr).await);
    }
    let mut refused = 0;
    for s in held.iter_mut() {
        let mut b = [0u8; 1];
        // A refused socket is closed by the server at once; a kept one stays silent.
        if let Ok(Ok(0)) = tokio::time::timeout(Duration::from_millis(200), s.read(&mut b)).await {
            refused += 1;
        }
    }
    assert_eq!(refused, n - cap, "sockets refused past the per-IP cap");
    let mut other = connect_from("127.0.0.2", g.addr).await;
    let t = Instant::now();
    other
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (got, _) = read_to_close(&mut other, secs(5.0)).await;
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"));
    println!(
        "per-IP cap {cap}: {n} idle sockets, {refused} refused, /healthz from another address in {:?}",
        t.elapsed()
    );
    g.shutdown().await;
}

#[tokio::test]
async fn sockets_past_the_global_cap_are_refused() {
    let g = gw(ServerLimits {
        max_connections: 3,
        ..ServerLimits::default()
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(g.addr).await.unwrap());
    }
    let mut extra = connect_from("127.0.0.3", g.addr).await;
    let (got, _) = read_to_close(&mut extra, secs(5.0)).await;
    assert!(got.is_empty());
    drop(held);
    g.shutdown().await;
}

fn head_and_body(raw: &[u8]) -> (String, Value) {
    let text = String::from_utf8_lossy(raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (
        head.to_ascii_lowercase(),
        serde_json::from_str(body).unwrap(),
    )
}

#[tokio::test]
async fn hyper_400_and_431_carry_the_envelope_and_a_request_id() {
    let g = gw(ServerLimits::default()).await;
    let mut s = TcpStream::connect(g.addr).await.unwrap();
    s.write_all(b"NOT A REQUEST LINE\r\n\r\n").await.unwrap();
    let (raw, _) = read_to_close(&mut s, secs(5.0)).await;
    let (head, body) = head_and_body(&raw);
    assert!(head.starts_with("http/1.1 400"), "{head}");
    assert!(head.contains("\r\nx-request-id: "), "{head}");
    assert_eq!(body["error"]["code"], "invalid_field");
    assert_eq!(body["error"]["type"], "invalid_request_error");

    let mut s = TcpStream::connect(g.addr).await.unwrap();
    let big = "a".repeat(80_000);
    let req = format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n");
    let _ = s.write_all(req.as_bytes()).await;
    let (raw, _) = read_to_close(&mut s, secs(5.0)).await;
    let (head, body) = head_and_body(&raw);
    assert!(head.starts_with("http/1.1 431"), "{head}");
    assert!(head.contains("\r\nx-request-id: "), "{head}");
    assert_eq!(body["error"]["code"], "body_too_large");
    g.shutdown().await;
}

#[tokio::test]
async fn an_answer_before_the_body_was_read_says_connection_close() {
    let g = gw(ServerLimits::default()).await;
    // No credentials and a body that has not all arrived: the 401 does not wait for it, and
    // the connection is not reused, so the answer must say so (RFC 9112 §9.6), or a client
    // pools the connection and its next request there meets the close.
    let mut s = TcpStream::connect(g.addr).await.unwrap();
    s.write_all(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"model\":",
    )
    .await
    .unwrap();
    let (raw, _) = read_to_close(&mut s, secs(5.0)).await;
    let (head, body) = head_and_body(&raw);
    assert!(head.starts_with("http/1.1 401"), "{head}");
    assert!(head.contains("\r\nconnection: close"), "{head}");
    assert_eq!(body["error"]["code"], "missing_authorization");

    // A body the gateway read to its end (authenticated, then refused as bad JSON) keeps
    // the connection: two answers on one socket, the first without `connection: close`.
    let mut s = TcpStream::connect(g.addr).await.unwrap();
    let body = r#"{"model":"#;
    let req = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len(),
    );
    let last = req.replacen("HTTP/1.1\r\n", "HTTP/1.1\r\nConnection: close\r\n", 1);
    s.write_all(format!("{req}{last}").as_bytes())
        .await
        .unwrap();
    let (raw, _) = read_to_close(&mut s, secs(5.0)).await;
    let text = String::from_utf8_lossy(&raw).to_ascii_lowercase();
    assert_eq!(text.matches("http/1.1 400").count(), 2, "{text}");
    let first = &text[..text.rfind("http/1.1 400").unwrap()];
    assert!(!first.contains("connection: close"), "{first}");
    g.shutdown().await;
}

/// Writes `head` and then `body_len` bytes of body, whole, and only then reads the answer
/// (what a simple client does: curl, `requests`, the OpenAI SDK over httpx).
async fn send_whole_then_read(addr: SocketAddr, head: String, body_len: usize) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    let piece = vec![b' '; 64 * 1024];
    let mut sent = 0;
    while sent < body_len {
        let n = piece.len().min(body_len - sent);
        s.write_all(&piece[..n])
            .await
            .unwrap_or_else(|e| panic!("writing the body after {sent} bytes: {e}"));
        sent += n;
    }
    read_to_close(&mut s, secs(10.0)).await.0
}

#[tokio::test]
async fn a_caller_still_sending_a_refused_body_reads_the_answer_not_a_reset() {
    let g = gw(ServerLimits::default()).await;
    // 8 MiB, over MAX_BODY_BYTES (1 MiB here) and over what the kernel buffers of a loopback
    // socket hold, so the caller is still writing when the gateway has answered.
    let big = 8 * 1024 * 1024;
    let declared = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {big}\r\n\r\n"
    );
    let raw = send_whole_then_read(g.addr, declared, big).await;
    let (head, body) = head_and_body(&raw);
    assert!(head.starts_with("http/1.1 413"), "{head}");
    assert_eq!(body["error"]["code"], "body_too_large");

    // Chunked: refused while reading, the rest still unread.
    let chunked = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n",
        big
    );
    let raw = send_whole_then_read(g.addr, chunked, big).await;
    let (head, body) = head_and_body(&raw);
    assert!(head.starts_with("http/1.1 413"), "{head}");
    assert_eq!(body["error"]["code"], "body_too_large");

    // Refused before the body (no credentials): the same.
    let anonymous = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {big}\r\n\r\n"
    );
    let raw = send_whole_then_read(g.addr, anonymous, big).await;
    let (head, body) = head_and_body(&raw);
    assert!(head.starts_with("http/1.1 401"), "{head}");
    assert_eq!(body["error"]["code"], "missing_authorization");
    g.shutdown().await;
}

#[tokio::test]
async fn a_lingering_close_ends_at_linger_secs_however_long_the_caller_sends() {
    let g = gw(ServerLimits {
        linger: secs(0.5),
        ..ServerLimits::default()
    })
    .await;
    // Declares 1 GiB and sends for ever: the gateway answers, reads and discards for
    // LINGER_SECS, then closes.
    let mut s = TcpStream::connect(g.addr).await.unwrap();
    s.write_all(
        format!("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: {}\r\n\r\n", 1u64 << 30).as_bytes(),
    )
    .await
    .unwrap();
    let t = Instant::now();
    let piece = vec![b' '; 64 * 1024];
    let ended = tokio::time::timeout(secs(10.0), async {
        while s.write_all(&piece).await.is_ok() {}
    })
    .await;
    assert!(ended.is_ok(), "still accepting bytes after 10 s");
    let took = t.elapsed();
    assert!(
        took >= secs(0.4),
        "closed after {took:?}, before LINGER_SECS"
    );
    g.shutdown().await;
}

#[tokio::test]
async fn past_the_in_flight_cap_an_immediate_503_with_retry_after() {
    let mock = MockServer::start(Personality::Vllm).await.unwrap();
    mock.script("hold", vec![Step::hang()]);
    let g = gw_with(
        ServerLimits {
            max_in_flight: 1,
            ..ServerLimits::default()
        },
        &mock.api_base(),
    )
    .await;
    let http = reqwest::Client::new();
    let url = format!("{}/v1/chat/completions", g.base_url());
    let body = json!({"model": "small", "messages": [{"role": "user", "content": "mock:hold"}]});
    let busy = tokio::spawn(http.post(&url).bearer_auth(TOKEN).json(&body).send());
    // The held request is in flight once the upstream has it (not before: a probe sent
    // first would take the one slot and the held request would be the one refused).
    let deadline = Instant::now() + secs(5.0);
    while mock.records("hold").is_empty() {
        assert!(
            Instant::now() < deadline,
            "the held request never reached the upstream"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let models = format!("{}/v1/models", g.base_url());
    let refused = loop {
        let r = http.get(&models).bearer_auth(TOKEN).send().await.unwrap();
        if r.status() == 503 {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "the held request never filled the cap"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(refused.headers()["retry-after"], "1");
    assert!(refused.headers().contains_key("x-request-id"));
    let v: Value = refused.json().await.unwrap();
    assert_eq!(v["error"]["code"], "upstream_overloaded");
    let h = http
        .get(format!("{}/healthz", g.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(h.status(), 200, "/healthz is outside the cap");
    busy.abort();
    g.shutdown().await;
}

#[tokio::test]
async fn a_caller_that_stops_reading_releases_the_upstream_at_the_send_timeout() {
    let mock = MockServer::start(Personality::Vllm).await.unwrap();
    let chunk = "x".repeat(32 * 1024);
    mock.script(
        "flood",
        vec![Step::stream((0..2000).map(|_| chunk.clone()), 0)],
    );
    let g = gw_with(
        ServerLimits {
            send_timeout: secs(0.5),
            ..ServerLimits::default()
        },
        &mock.api_base(),
    )
    .await;
    let body = json!({"model": "small", "stream": true, "messages": [{"role": "user", "content": "mock:flood"}]}).to_string();
    let mut s = TcpStream::connect(g.addr).await.unwrap();
    let req = format!("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len());
    s.write_all(req.as_bytes()).await.unwrap();
    // Never read: the gateway's writes block, and the send timeout must drop the relay. The
    // stream (64 MiB) is far more than loopback's socket buffers, the relay channel and hyper
    // can hold together (~10-15 MiB), so the mock cannot finish before the gateway stops reading.
    let deadline = Instant::now() + secs(10.0);
    loop {
        let rec = mock.records("flood");
        if rec
            .first()
            .is_some_and(|x| x.outcome == Outcome::ClientDisconnected)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "upstream still held: {:?}",
            rec.first().map(|x| &x.outcome)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(s);
    g.shutdown().await;
}

#[tokio::test]
async fn metrics_on_their_own_address_only_and_readyz_is_cached() {
    let upstream = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::path("/v1/health"))
        .respond_with(wiremock::ResponseTemplate::new(200))
        .mount(&upstream)
        .await;
    let g = gw_with(
        ServerLimits {
            metrics_bind: Some("127.0.0.1:0".parse().unwrap()),
            readyz_cache: secs(30.0),
            ..ServerLimits::default()
        },
        &format!("{}/v1", upstream.uri()),
    )
    .await;
    let main = reqwest::get(format!("{}/metrics", g.base_url()))
        .await
        .unwrap();
    assert_eq!(main.status(), 404);
    let m = g.metrics_addr.unwrap();
    let sep = reqwest::get(format!("http://{m}/metrics")).await.unwrap();
    assert_eq!(sep.status(), 200);
    assert!(sep.text().await.unwrap().contains("gateway_"));
    for _ in 0..10 {
        let r = reqwest::get(format!("{}/readyz", g.base_url()))
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["checks"]["sqlite"]["ok"], true);
    }
    let probes = upstream.received_requests().await.unwrap().len();
    assert_eq!(
        probes, 1,
        "10 /readyz calls inside READYZ_CACHE_SECS probe the upstream once"
    );
    g.shutdown().await;
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_open_streams_with_an_error_event_and_exits_within_the_grace() {
    let mock = MockServer::start(Personality::Vllm).await.unwrap();
    mock.script(
        "long",
        vec![Step::stream((0..300).map(|i| format!("c{i} ")), 100)],
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("gateway.yaml");
    std::fs::write(
        &cfg,
        format!("upstreams:\n  - {{ name: local, kind: vllm, base_url: '{}' }}\nmodels:\n  - {{ alias: small, upstream: local, upstream_model: m }}\n", mock.api_base()),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .env_clear()
        .env("GATEWAY_CONFIG", &cfg)
        .env("RUST_API_BEARER", TOKEN)
        .env("BIND_ADDR", "127.0.0.1:0")
        .env("SHUTDOWN_GRACE_SECS", "5")
        .env("SQLITE_PATH", dir.path().join("g.sqlite3"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut p = Proc(child);
    let line = wait_for_line(&mut p.0, "listening on ");
    let base = line.rsplit(' ').next().unwrap().to_owned();
    let resp = reqwest::Client::new()
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(TOKEN)
        .json(&json!({"model": "small", "stream": true, "messages": [{"role": "user", "content": "mock:long"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut s = resp.bytes_stream();
    let mut text = String::from_utf8_lossy(&s.next().await.unwrap().unwrap()).into_owned();
    let t = Instant::now();
    signal(p.0.id(), "-TERM");
    while let Some(Ok(b)) = tokio::time::timeout(secs(10.0), s.next()).await.unwrap() {
        text.push_str(&String::from_utf8_lossy(&b));
    }
    assert!(text.contains("event: error"), "{text}");
    assert!(text.contains("\"code\":\"upstream_unavailable\""), "{text}");
    assert!(!text.contains("[DONE]"));
    let exit = loop {
        if let Some(st) = p.0.try_wait().unwrap() {
            break st;
        }
        assert!(
            t.elapsed() < secs(8.0),
            "still running after SIGTERM + grace"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "{exit:?}");
    println!(
        "SIGTERM: stream ended with event: error, process exited after {:?}",
        t.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_redis_trips_the_breaker_instead_of_slowing_every_request() {
    let dir = tempfile::tempdir().unwrap();
    let (redis, redis_url) = common::start_redis(dir.path());
    let mut cfg = testing::config();
    cfg.redis_url = Some(redis_url);
    let g = gateway::spawn(AppState::new(cfg).unwrap(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let url = format!("{}/v1/models", g.base_url());
    assert_eq!(
        http.get(&url)
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    signal(redis.0.id(), "-STOP");
    let (n, mut slow) = (20, 0);
    let t = Instant::now();
    for _ in 0..n {
        let one = Instant::now();
        let r = http.get(&url).bearer_auth(TOKEN).send().await.unwrap();
        assert_eq!(r.status(), 200, "fail-open serves with local limits");
        if one.elapsed() >= Duration::from_millis(400) {
            slow += 1;
        }
    }
    let total = t.elapsed();
    signal(redis.0.id(), "-CONT");
    // One OP_TIMEOUT per RECONNECT_AFTER window at most, not one per request.
    let windows = total.as_secs_f64().ceil() as usize + 1;
    assert!(
        slow <= windows,
        "{slow} of {n} requests waited on the stalled Redis"
    );
    println!("stalled Redis: {n} requests in {total:?}, {slow} waited for the 500 ms timeout");
    g.shutdown().await;
}

#[tokio::test]
async fn delete_of_a_busy_conversation_waits_with_a_bound() {
    let mut cfg = testing::config();
    cfg.http_total_timeout = secs(0.5);
    let state = AppState::new(cfg).unwrap();
    let id = uuid::Uuid::new_v4().to_string();
    // An exchange that never finishes holds the conversation's lock.
    let held = state.store.lock(&id).await;
    let g = gateway::spawn(state, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let t = Instant::now();
    let r = reqwest::Client::new()
        .delete(format!("{}/c1/conversations/{id}?user_id=u1", g.base_url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 500);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "storage_error");
    assert!(t.elapsed() < secs(5.0), "{:?}", t.elapsed());
    drop(held);
    g.shutdown().await;
}
