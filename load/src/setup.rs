//! The local test bed: mocks and gateways in this process on loopback, and (for the shared
//! rate limit) a private `redis-server` on a Unix socket with two gateway replicas.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
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
/// A limit the chat and stream scenarios never reach.
pub const UNLIMITED: RateLimit = RateLimit {
    rps: 1.0e9,
    burst: 1_000_000,
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
    // Up to 512 users from one loopback address: the edge caps must not be what is measured.
    cfg.limits.max_connections = 2048;
    cfg.limits.max_connections_per_ip = 1024;
    cfg.limits.max_in_flight = 1024;
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
    let state = AppState::new(cfg)?;
    Ok(gateway::spawn(state, SocketAddr::from(LOOPBACK)).await?)
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
        let dir = std::env::temp_dir().join(format!("load-redis-{}", std::process::id()));
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
