//! The local test bed: mocks and gateways in this process on loopback, and (for the shared
//! rate limit) a private `redis-server` on a Unix socket with two gateway replicas.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::serve::ListenerExt;
use gateway::config::{sha256, Allowed, RateLimit, Tenant, UpstreamKind};
use gateway::testing::{model, upstream};
use gateway::{AppState, Config, Running};
use mocks::{MockConfig, MockState, Personality};

/// The bearer of the tenant with the known small limit (rate-limit scenario).
pub const LIMITED_TOKEN: &str = "tok-limited";
/// Its limit: `burst` at once, then `rps` per second.
pub const LIMITED: RateLimit = RateLimit {
    rps: 50.0,
    burst: 20,
};
/// A limit the chat and stream scenarios never reach. The burst is what matters: GCRA's
/// tolerance is burst / rps, and at 1e9/s with a burst of 1e6 it was 1 ms: one of 200
/// simultaneous callers on 2 cores got `rate_limit_exceeded` (most likely a check whose
/// clock reading was over 1 ms old when it updated the bucket, its thread preempted between).
/// Here the tolerance is 1000 s.
pub const UNLIMITED: RateLimit = RateLimit {
    rps: 1.0e6,
    burst: 1_000_000_000,
};

pub const LOOPBACK: ([u8; 4], u16) = ([127, 0, 0, 1], 0);

/// Timing of the streaming mock.
#[derive(Clone, Copy, Debug)]
pub struct StreamTiming {
    pub ttft_ms: u64,
    pub inter_chunk_ms: u64,
    pub chunks: usize,
}

/// A mock upstream (`mocks::router`) served here with TCP_NODELAY on every accepted socket.
///
/// `mocks::MockServer` serves with Nagle's algorithm on: a streamed answer's small writes
/// then wait for the client's delayed ACK (~40 ms on Linux), which would put 40 ms stalls
/// into every TTFT and chunk gap measured through it.
#[derive(Debug)]
pub struct Mock {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Mock {
    pub fn api_base(&self) -> String {
        format!("http://{}{}", self.addr, Personality::Vllm.api_prefix())
    }

    pub fn chat_url(&self) -> String {
        format!("http://{}{}", self.addr, Personality::Vllm.chat_path())
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn start_mock(t: Option<StreamTiming>) -> std::io::Result<Mock> {
    let mut cfg = MockConfig {
        personality: Personality::Vllm,
        seed: 7,
        ..MockConfig::default()
    };
    if let Some(t) = t {
        cfg.ttft_ms = t.ttft_ms;
        cfg.inter_chunk_ms = t.inter_chunk_ms;
        cfg.default_chunks = t.chunks;
    }
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(LOOPBACK)).await?;
    let addr = listener.local_addr()?;
    let app = mocks::router(MockState::new(cfg));
    let task = tokio::spawn(async move {
        let listener = listener.tap_io(|s| {
            let _ = s.set_nodelay(true);
        });
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("mock stopped: {e}");
        }
    });
    Ok(Mock { addr, task })
}

/// The gateway configuration of every local run: alias `small` → `chat_api`, alias
/// `streamy` → `stream_api`; the fixture's token unlimited, [`LIMITED_TOKEN`] at [`LIMITED`].
pub fn gateway_config(chat_api: &str, stream_api: &str, redis_url: Option<String>) -> Config {
    let mut cfg = gateway::testing::config_with_upstream(chat_api);
    cfg.rate_limit = UNLIMITED;
    cfg.http_total_timeout = Duration::from_secs(120);
    // Up to 512 users, and the `streams` scenario's up to 10,000 open streams, from one
    // loopback address: the edge caps must not be what is measured (at 1,024 the 5,000-stream
    // run opened 1,024 and the rest were refused).
    cfg.limits.max_connections = 12_000;
    cfg.limits.max_connections_per_ip = 12_000;
    cfg.limits.max_in_flight = 12_000;
    cfg.upstreams
        .push(upstream("stream", UpstreamKind::Vllm, stream_api));
    cfg.models.push(model("streamy", 1, 16));
    cfg.tenants.push(Tenant {
        id: "limited".into(),
        token_hashes: vec![sha256(LIMITED_TOKEN)],
        allowed: Allowed::All,
        rate_limit: Some(LIMITED),
        budgets: vec![],
        ..Default::default()
    });
    cfg.redis_url = redis_url;
    cfg
}

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("cannot start: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot build the gateway state: {0}")]
    State(#[from] gateway::StartError),
    #[error("{0}")]
    Other(String),
}

pub async fn start_gateway(cfg: Config) -> Result<Running, SetupError> {
    Ok(start_gateway_keeping_state(cfg).await?.0)
}

/// A gateway and a handle on its state, so a run can read what the gateway itself holds
/// (its concurrency slots, its upstream in-flight permits) rather than infer it.
pub async fn start_gateway_keeping_state(cfg: Config) -> Result<(Running, AppState), SetupError> {
    let state = AppState::new(cfg)?;
    let running = gateway::spawn(state.clone(), SocketAddr::from(LOOPBACK)).await?;
    Ok((running, state))
}

/// The mock's own count of chat requests in flight (a streamed answer counts until its body
/// is done or dropped) and the highest it reached since the last [`Gauge::reset_peak`].
#[derive(Debug, Default)]
pub struct Gauge {
    now: AtomicUsize,
    peak: AtomicUsize,
}

impl Gauge {
    pub fn in_flight(&self) -> usize {
        self.now.load(Ordering::SeqCst)
    }

    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }

    pub fn reset_peak(&self) {
        self.peak.store(self.in_flight(), Ordering::SeqCst);
    }

    fn enter(self: &Arc<Self>) -> GaugeHeld {
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(n, Ordering::SeqCst);
        GaugeHeld(self.clone())
    }
}

struct GaugeHeld(Arc<Gauge>);

impl Drop for GaugeHeld {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A scriptable mock (vLLM personality) whose chat requests are counted by a [`Gauge`] in
/// its own server, from the moment a request arrives until its body has been sent or
/// dropped (the client went away).
#[derive(Debug)]
pub struct CountedMock {
    pub mock: Mock,
    pub state: MockState,
    pub gauge: Arc<Gauge>,
}

pub async fn start_counted_mock() -> std::io::Result<CountedMock> {
    use axum::extract::Request;
    use axum::middleware::Next;
    use futures_util::StreamExt;
    let state = MockState::new(MockConfig {
        personality: Personality::Vllm,
        seed: 7,
        ..MockConfig::default()
    });
    let gauge = Arc::new(Gauge::default());
    let g = gauge.clone();
    let app = mocks::router(state.clone()).layer(axum::middleware::from_fn(
        move |req: Request, next: Next| {
            let g = g.clone();
            async move {
                if !req.uri().path().ends_with("/chat/completions") {
                    return next.run(req).await;
                }
                let held = g.enter();
                let (parts, body) = next.run(req).await.into_parts();
                let body = body.into_data_stream().map(move |chunk| {
                    let _held = &held;
                    chunk
                });
                axum::response::Response::from_parts(parts, axum::body::Body::from_stream(body))
            }
        },
    ));
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(LOOPBACK)).await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let listener = listener.tap_io(|s| {
            let _ = s.set_nodelay(true);
        });
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("mock stopped: {e}");
        }
    });
    Ok(CountedMock {
        mock: Mock { addr, task },
        state,
        gauge,
    })
}

/// A `redis-server` of our own: no TCP port, a Unix socket in a private directory, no
/// persistence. Killed (by its pid) and cleaned up on drop.
#[derive(Debug)]
pub struct Redis {
    child: Child,
    dir: PathBuf,
    pub socket: PathBuf,
}

impl Redis {
    /// `Ok(None)` when `redis-server` is not installed.
    pub async fn start() -> Result<Option<Redis>, SetupError> {
        // One directory per server: a run may start more than one (rate-limit, concurrency).
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "load-redis-{}-{}",
            std::process::id(),
            STARTED.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)?;
        let socket = dir.join("r.sock");
        let spawned = Command::new("redis-server")
            .args(["--port", "0", "--unixsocket"])
            .arg(&socket)
            .args([
                "--unixsocketperm",
                "700",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match spawned {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let _ = std::fs::remove_dir_all(&dir);
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        };
        let redis = Redis { child, dir, socket };
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(5) {
            if tokio::net::UnixStream::connect(&redis.socket).await.is_ok() {
                return Ok(Some(redis));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(SetupError::Other(
            "redis-server did not open its socket within 5 s".into(),
        ))
    }

    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.socket.display())
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Resident set size of this process, from /proc/self/status (Linux), in KiB.
pub fn rss_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim_start_matches(':').split_whitespace().next())
        .and_then(|v| v.parse().ok())
}
