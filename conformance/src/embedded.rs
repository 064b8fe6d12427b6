//! The embedded target: the reference gateway and three mock upstreams in-process on
//! ephemeral loopback ports, with the test configuration that STEPS.md describes.
//!
//! Roles → aliases (provider-neutral names, so that an alias in an error message can never
//! look like a leaked provider name):
//!
//! | role | alias | upstream | notes |
//! |---|---|---|---|
//! | default | chat-default | vLLM mock | min_max_tokens 16, accepts_image_url false |
//! | litellm | chat-proxy | LiteLLM mock | |
//! | openrouter | chat-pinned | OpenRouter mock | fallbacks chat-default, chat-proxy; upstream key |
//! | vision_url | chat-vision | vLLM mock | accepts_image_url true |
//! | reasoning | chat-reasoning | vLLM mock | min_max_tokens 200 |
//! | unreachable | chat-offline | closed loopback port | |
//! | budget | chat-budget | vLLM mock | primary tenant: 2 requests/day |
//! | forbidden | chat-forbidden | vLLM mock | not in the primary tenant's allowed_models |
//! | text_only | chat-text-only | vLLM mock | capabilities: tools false, vision false |
//! | small_window | chat-small-window | vLLM mock | context_window 512 |
//! | capped | chat-capped | vLLM mock via `up-capped` | max_in_flight 1, queue_wait_ms 50 |
//! | token_budget | chat-tokens | vLLM mock | primary, second and fresh tenant: 50 tokens/day each (one budget per scenario that spends one; the fresh tenant's only sees refusals) |
//!
//! Token roles of issue 11 (`ROLE_POOL` = 12 tokens each): `expired` (expires_at 2020), `disabled tenant`,
//! `single-slot` (max_concurrent 1), `tenant-bucket` (one tenant, tenant_rate_limit burst 2),
//! `minute-bucket` (each token its own bucket of rps 0.05, burst 3: full again a minute after three),
//! `tool-loop budget` (a tenant per token, 200 tokens a day on `token_budget`).
//!
//! The storage-fault scenarios run against this ONE gateway: `x-gateway-fault: storage` fails
//! the store calls of that request only (GATEWAY_FAULT_INJECTION is on).
//!
//! [`start_variant`] with [`Variant::NoServerTools`] boots a second, otherwise identical gateway whose
//! configuration has no `tools:` ([`NAME_NO_SERVER_TOOLS`]): a gateway without server-side
//! tools relays the upstream's answer as bytes (only `model` is rewritten) and its stream
//! chunk by chunk, a path the first gateway never takes; the runner runs the features that
//! need no server-side tool against it too (runner::NO_SERVER_TOOLS_TAGS).
//!
//! [`Variant::TightMemory`] boots a third one whose memory budgets are tight
//! (`MAX_BODY_MEMORY_BYTES` = [`TIGHT_BODY_MEMORY_BYTES`], 4 × `MAX_BODY_BYTES`;
//! `MAX_ANSWER_MEMORY_BYTES` = [`TIGHT_ANSWER_MEMORY_BYTES`] with `UPSTREAM_MAX_BODY_BYTES` =
//! 1 MiB; [`NAME_TIGHT_MEMORY`]): budgets the ordinary scenarios, dozens at once, would fill, so the
//! runner runs only the `@needs-tight-memory` scenarios against it, one at a time
//! (runner::TIGHT_MEMORY_TAGS).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use mocks::{MockServer, Personality};
use sha2::{Digest, Sha256};

use crate::mock::MockHandle;
use crate::schemas::Schemas;
use crate::target::{host_forms, Capabilities, Target, TargetParts};

/// The embedded target's name in reports, the history and the matrix.
pub const NAME: &str = "embedded reference gateway";
/// The second embedded target: the same gateway and mocks, configured without `tools:`.
pub const NAME_NO_SERVER_TOOLS: &str = "embedded reference gateway without server-side tools";
/// The third embedded target: the same, with a body memory budget of 4 MiB.
pub const NAME_TIGHT_MEMORY: &str = "embedded reference gateway with 4 MiB memory budgets";
/// `MAX_BODY_MEMORY_BYTES` of [`NAME_TIGHT_MEMORY`] (4 × the embedded `MAX_BODY_BYTES`).
pub const TIGHT_BODY_MEMORY_BYTES: usize = 4 * 1024 * 1024;
/// `MAX_ANSWER_MEMORY_BYTES` of [`NAME_TIGHT_MEMORY`].
pub const TIGHT_ANSWER_MEMORY_BYTES: usize = 4 * 1024 * 1024;
/// `UPSTREAM_MAX_BODY_BYTES` of [`NAME_TIGHT_MEMORY`] (the others read 256 KiB).
pub const TIGHT_UPSTREAM_MAX_BODY_BYTES: usize = 1024 * 1024;
/// Size of each pool of single-use tokens; more than the scenarios that take one.
const POOL: usize = 64;
/// Tokens per condition role (`tool-loop budget` spends one per scenario row: nine so far).
const ROLE_POOL: usize = 12;
/// How many loopback source addresses the World's clients rotate through.
const SOURCES: u8 = 32;
/// The secret the OpenRouter upstream is configured with; it must never reach a caller.
const OPENROUTER_KEY: &str = "sk-or-v1-conformance-0f1e2d3c4b5a69788796a5b4c3d2e1f0";
const OPENROUTER_KEY_ENV: &str = "CONFORMANCE_OPENROUTER_KEY";

/// Servers and files the embedded target owns; dropping it stops them.
pub struct Embedded {
    _gateway: gateway::Running,
    _mocks: Vec<Arc<MockServer>>,
    blackhole: tokio::task::JoinHandle<()>,
    status_tool: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Drop for Embedded {
    fn drop(&mut self) {
        self.blackhole.abort();
        self.status_tool.abort();
    }
}

fn sha_hex(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn token(label: &str) -> String {
    format!("cf-{label}-{}", uuid::Uuid::new_v4().simple())
}

/// A loopback port that refuses connections: bound once to learn a free port, then closed.
fn closed_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let port = l.local_addr().map_err(|e| e.to_string())?.port();
    drop(l);
    Ok(port)
}

/// A listener that accepts connections and never answers: the slow HTTP tool's endpoint.
async fn blackhole() -> Result<(SocketAddr, tokio::task::JoinHandle<()>), String> {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let addr = l.local_addr().map_err(|e| e.to_string())?;
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = l.accept().await {
            // Keep the socket open and silent until the harness ends.
            held.push(sock);
        }
    });
    Ok((addr, task))
}

/// What the answering HTTP tool reports, before the arguments it was sent.
pub const STATUS_TOOL_ANSWER: &str = "all systems operational";
/// Bound on one request the answering HTTP tool reads (the gateway sends small JSON).
const STATUS_TOOL_MAX_REQUEST: usize = 64 * 1024;

/// The answering HTTP tool (`status_http_tool`): one JSON answer per connection, 200 with
/// `{"status": STATUS_TOOL_ANSWER, "asked": <the arguments it was sent>}`.
async fn status_tool() -> Result<(SocketAddr, tokio::task::JoinHandle<()>), String> {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let addr = l.local_addr().map_err(|e| e.to_string())?;
    let task = tokio::spawn(async move {
        while let Ok((sock, _)) = l.accept().await {
            tokio::spawn(answer_status(sock));
        }
    });
    Ok((addr, task))
}

async fn answer_status(mut sock: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = Vec::new();
    let mut piece = [0u8; 4096];
    // Read the head, then as many body bytes as Content-Length says (bounded).
    let (head_end, want) = loop {
        let Ok(n) = sock.read(&mut piece).await else {
            return;
        };
        if n == 0 || buf.len() + n > STATUS_TOOL_MAX_REQUEST {
            return;
        }
        buf.extend_from_slice(&piece[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            break (end + 4, len);
        }
    };
    while buf.len() < head_end + want {
        match sock.read(&mut piece).await {
            Ok(n) if n > 0 && buf.len() + n <= STATUS_TOOL_MAX_REQUEST => {
                buf.extend_from_slice(&piece[..n]);
            }
            _ => return,
        }
    }
    let asked: serde_json::Value =
        serde_json::from_slice(&buf[head_end..head_end + want]).unwrap_or_default();
    let body = serde_json::json!({"status": STATUS_TOOL_ANSWER, "asked": asked}).to_string();
    let reply = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = sock.write_all(reply.as_bytes()).await;
    let _ = sock.shutdown().await;
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> Result<String, String> {
    let p = dir.join(name);
    std::fs::write(&p, text).map_err(|e| format!("cannot write {}: {e}", p.display()))?;
    Ok(p.display().to_string())
}

struct Tokens {
    primary: String,
    second: String,
    fresh: Vec<String>,
    limited: Vec<String>,
    /// Production-condition roles (issue 11): role → tokens, each in tokens.yaml below.
    roles: Vec<(&'static str, Vec<String>)>,
}

/// Roles of the production-condition scenarios and the tokens.yaml rules behind them.
const CONDITION_ROLES: [&str; 6] = [
    "expired",
    "disabled tenant",
    "single-slot",
    "tenant-bucket",
    "tool-loop budget",
    "minute-bucket",
];

fn gateway_yaml(
    vllm: &str,
    litellm: &str,
    openrouter: &str,
    offline: u16,
    tool: SocketAddr,
    status_tool: SocketAddr,
    server_tools: bool,
) -> String {
    let model = |alias: &str, upstream: &str, min: u32, image: bool, fallbacks: &str| {
        format!(
            "  - alias: {alias}\n    upstream: {upstream}\n    upstream_model: mock-{alias}\n    constraints: {{ min_max_tokens: {min}, max_output_tokens: 8192, context_window: 8192, accepts_image_url: {image}, typical_response_seconds: 1 }}\n    fallbacks: [{fallbacks}]\n"
        )
    };
    let mut y = String::new();
    y.push_str("upstreams:\n");
    let _ = writeln!(y, "  - {{ name: up-a, kind: vllm, base_url: '{vllm}' }}");
    let _ = writeln!(
        y,
        "  - {{ name: up-b, kind: litellm, base_url: '{litellm}' }}"
    );
    let _ = writeln!(
        y,
        "  - {{ name: up-c, kind: openrouter, base_url: '{openrouter}', api_key_env: {OPENROUTER_KEY_ENV} }}"
    );
    let _ = writeln!(
        y,
        "  - {{ name: up-d, kind: vllm, base_url: 'http://127.0.0.1:{offline}/v1' }}"
    );
    let _ = writeln!(
        y,
        "  - {{ name: up-capped, kind: vllm, base_url: '{vllm}', max_in_flight: 1, queue_wait_ms: 50 }}"
    );
    y.push_str("models:\n");
    y.push_str(&model("chat-default", "up-a", 16, false, ""));
    y.push_str(&model("chat-proxy", "up-b", 1, false, ""));
    y.push_str(&model(
        "chat-pinned",
        "up-c",
        1,
        false,
        "chat-default, chat-proxy",
    ));
    y.push_str(&model("chat-vision", "up-a", 1, true, ""));
    y.push_str(&model("chat-reasoning", "up-a", 200, false, ""));
    y.push_str(&model("chat-offline", "up-d", 1, false, ""));
    y.push_str(&model("chat-budget", "up-a", 1, false, ""));
    y.push_str(&model("chat-forbidden", "up-a", 1, false, ""));
    // Production conditions (issue 11): a text-only model without tools, a small context
    // window, and a model on an upstream entry capped at one request in flight.
    y.push_str("  - alias: chat-text-only\n    upstream: up-a\n    upstream_model: mock-text-only\n    capabilities: { tools: false, vision: false, streaming: true }\n");
    y.push_str("  - alias: chat-small-window\n    upstream: up-a\n    upstream_model: mock-small-window\n    constraints: { min_max_tokens: 1, context_window: 512 }\n");
    y.push_str(
        "  - alias: chat-capped\n    upstream: up-capped\n    upstream_model: mock-capped\n",
    );
    y.push_str(&model("chat-tokens", "up-a", 1, false, ""));
    if !server_tools {
        return y;
    }
    y.push_str("tools:\n");
    y.push_str(
        "  - name: lookup_weather\n    description: Current weather for a city (deterministic).\n    parameters: { type: object, properties: { city: { type: string }, unit: { type: string } } }\n    executor: { kind: builtin, name: lookup_weather }\n",
    );
    let _ = writeln!(
        y,
        "  - name: slow_http_tool\n    description: A status service that never answers in time.\n    parameters: {{ type: object, properties: {{ query: {{ type: string }} }} }}\n    executor: {{ kind: http, url: 'http://{tool}/', timeout_ms: 300 }}"
    );
    let _ = writeln!(
        y,
        "  - name: status_http_tool\n    description: A status service that answers.\n    parameters: {{ type: object, properties: {{ query: {{ type: string }} }} }}\n    executor: {{ kind: http, url: 'http://{status_tool}/status', timeout_ms: 2000 }}"
    );
    y
}

fn tokens_yaml(t: &Tokens, primary_id: &str, second_id: &str) -> String {
    let list = |tokens: &[String]| {
        tokens
            .iter()
            .map(|t| format!("{{ sha256: {} }}", sha_hex(t)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let allowed = "[chat-default, chat-proxy, chat-pinned, chat-vision, chat-reasoning, chat-offline, chat-budget, chat-text-only, chat-small-window, chat-capped, chat-tokens]";
    let role = |name: &str| {
        t.roles
            .iter()
            .find(|(r, _)| *r == name)
            .map(|(_, v)| v.as_slice())
            .unwrap_or_default()
    };
    let with = |tokens: &[String], rule: &str| {
        tokens
            .iter()
            .map(|t| format!("{{ sha256: {}{rule} }}", sha_hex(t)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let generous = "rate_limit: { rps: 1000, burst: 100000 }";
    // One tenant per `tool-loop budget` token: each scenario that spends the budget has its own.
    let loop_budgets: String = role("tool-loop budget")
        .iter()
        .enumerate()
        .map(|(i, t)| {
            format!(
                "\x20 - id: tenant-loop-budget-{i}\n    tokens: [{{ sha256: {} }}]\n    allowed_models: ['*']\n    {generous}\n    budgets: [{{ model: chat-tokens, tokens_per_day: 200 }}]\n",
                sha_hex(t)
            )
        })
        .collect();
    let conditions = format!(
        "\x20 - id: tenant-expired\n    tokens: [{}]\n    allowed_models: ['*']\n    {generous}\n\
         \x20 - id: tenant-suspended\n    disabled: true\n    tokens: [{}]\n    allowed_models: ['*']\n    {generous}\n\
         \x20 - id: tenant-single-slot\n    tokens: [{}]\n    allowed_models: ['*']\n    {generous}\n\
         \x20 - id: tenant-bucket\n    tokens: [{}]\n    allowed_models: ['*']\n    {generous}\n    tenant_rate_limit: {{ rps: 0.01, burst: 2 }}\n\
         \x20 - id: tenant-minute-bucket\n    tokens: [{}]\n    allowed_models: ['*']\n    rate_limit: {{ rps: 0.05, burst: 3 }}\n{}",
        with(role("expired"), ", expires_at: '2020-01-01T00:00:00Z'"),
        with(role("disabled tenant"), ""),
        with(role("single-slot"), ", max_concurrent: 1"),
        with(role("tenant-bucket"), ""),
        with(role("minute-bucket"), ""),
        loop_budgets,
    );
    format!(
        "tenants:\n\
         \x20 - id: {primary_id}\n    tokens: [{}]\n    allowed_models: {allowed}\n    rate_limit: {{ rps: 1000, burst: 100000 }}\n    budgets: [{{ model: chat-budget, requests_per_day: 2 }}, {{ model: chat-tokens, tokens_per_day: 50 }}]\n\
         \x20 - id: {second_id}\n    tokens: [{}]\n    allowed_models: ['*']\n    rate_limit: {{ rps: 1000, burst: 100000 }}\n    budgets: [{{ model: chat-tokens, tokens_per_day: 50 }}]\n\
         \x20 - id: tenant-limited\n    tokens: [{}]\n    allowed_models: {allowed}\n    rate_limit: {{ rps: 1, burst: 3 }}\n\
         \x20 - id: tenant-fresh\n    tokens: [{}]\n    allowed_models: {allowed}\n    budgets: [{{ model: chat-tokens, tokens_per_day: 50 }}]\n{conditions}",
        list(std::slice::from_ref(&t.primary)),
        list(std::slice::from_ref(&t.second)),
        list(&t.limited),
        list(&t.fresh),
    )
}

async fn start_gateway(
    dir: &std::path::Path,
    gateway_file: &str,
    tokens_file: &str,
    sqlite: &str,
    variant: Variant,
) -> Result<gateway::Running, String> {
    let mut vars: HashMap<String, String> = [
        ("GATEWAY_CONFIG", gateway_file.to_owned()),
        ("TOKENS_FILE", tokens_file.to_owned()),
        ("MAX_BODY_BYTES", "1048576".to_owned()),
        ("UPSTREAM_MAX_BODY_BYTES", "262144".to_owned()),
        ("HTTP_TOTAL_TIMEOUT_SECS", "2".to_owned()),
        ("MAX_TOOL_ITERATIONS", "10".to_owned()),
        ("SQLITE_PATH", dir.join(sqlite).display().to_string()),
        ("GATEWAY_FAULT_INJECTION", "1".to_owned()),
        ("BIND_ADDR", "127.0.0.1:0".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    if variant == Variant::TightMemory {
        vars.insert(
            "MAX_BODY_MEMORY_BYTES".to_owned(),
            TIGHT_BODY_MEMORY_BYTES.to_string(),
        );
        vars.insert(
            "MAX_ANSWER_MEMORY_BYTES".to_owned(),
            TIGHT_ANSWER_MEMORY_BYTES.to_string(),
        );
        // An answer of a megabyte may arrive, so that one whose tree cannot fit the answer
        // budget is within the read cap.
        vars.insert(
            "UPSTREAM_MAX_BODY_BYTES".to_owned(),
            TIGHT_UPSTREAM_MAX_BODY_BYTES.to_string(),
        );
    }
    let secret = |name: &str| (name == OPENROUTER_KEY_ENV).then(|| OPENROUTER_KEY.to_owned());
    let cfg = gateway::Config::from_vars(&vars, &secret)
        .map_err(|e| format!("the embedded test configuration is invalid: {e}"))?;
    let state = gateway::AppState::new(cfg)
        .map_err(|e| format!("the embedded gateway cannot start: {e}"))?;
    gateway::spawn(state, SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .map_err(|e| format!("the embedded gateway cannot bind: {e}"))
}

/// Which of the embedded gateways to boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// [`NAME`]: server-side tools configured.
    Main,
    /// [`NAME_NO_SERVER_TOOLS`]: the same without `tools:`.
    NoServerTools,
    /// [`NAME_TIGHT_MEMORY`]: the same with 4 MiB memory budgets.
    TightMemory,
}

/// Boots the mocks and the gateway and describes them as a [`Target`].
pub async fn start(schemas: Arc<Schemas>) -> Result<Target, String> {
    start_with(schemas, Variant::Main).await
}

/// Boots the mocks and the gateway of `variant` and describes them as a [`Target`].
pub async fn start_variant(schemas: Arc<Schemas>, variant: Variant) -> Result<Target, String> {
    start_with(schemas, variant).await
}

async fn start_with(schemas: Arc<Schemas>, variant: Variant) -> Result<Target, String> {
    let server_tools = variant != Variant::NoServerTools;
    let io = |e: std::io::Error| format!("cannot start a mock upstream: {e}");
    let vllm = Arc::new(MockServer::start(Personality::Vllm).await.map_err(io)?);
    let litellm = Arc::new(MockServer::start(Personality::Litellm).await.map_err(io)?);
    let openrouter = Arc::new(
        MockServer::start(Personality::OpenRouter)
            .await
            .map_err(io)?,
    );
    let offline = closed_port()?;
    let (tool_addr, blackhole) = blackhole().await?;
    let (status_addr, status_task) = status_tool().await?;

    let dir = tempfile::tempdir().map_err(|e| format!("cannot create a temp dir: {e}"))?;
    let tokens = Tokens {
        primary: token("primary"),
        second: token("second"),
        fresh: (0..POOL).map(|i| token(&format!("fresh{i}"))).collect(),
        limited: (0..POOL).map(|i| token(&format!("limited{i}"))).collect(),
        roles: CONDITION_ROLES
            .iter()
            .map(|r| {
                (
                    *r,
                    (0..ROLE_POOL).map(|i| token(&format!("cond{i}"))).collect(),
                )
            })
            .collect(),
    };
    let primary_id = "tenant-primary";
    let second_id = "tenant-second";
    let gateway_file = write(
        dir.path(),
        "gateway.yaml",
        &gateway_yaml(
            &vllm.api_base(),
            &litellm.api_base(),
            &openrouter.api_base(),
            offline,
            tool_addr,
            status_addr,
            server_tools,
        ),
    )?;
    let tokens_file = write(
        dir.path(),
        "tokens.yaml",
        &tokens_yaml(&tokens, primary_id, second_id),
    )?;
    let gw = start_gateway(
        dir.path(),
        &gateway_file,
        &tokens_file,
        "conformance.sqlite3",
        variant,
    )
    .await?;

    let roles: [(&str, &str, &Arc<MockServer>); 12] = [
        ("default", "chat-default", &vllm),
        ("litellm", "chat-proxy", &litellm),
        ("openrouter", "chat-pinned", &openrouter),
        ("vision_url", "chat-vision", &vllm),
        ("reasoning", "chat-reasoning", &vllm),
        ("unreachable", "chat-offline", &vllm),
        ("budget", "chat-budget", &vllm),
        ("forbidden", "chat-forbidden", &vllm),
        ("text_only", "chat-text-only", &vllm),
        ("small_window", "chat-small-window", &vllm),
        ("capped", "chat-capped", &vllm),
        ("token_budget", "chat-tokens", &vllm),
    ];
    let models = roles
        .iter()
        .map(|(r, a, _)| (r.to_string(), a.to_string()))
        .collect();
    let mocks = roles
        .iter()
        .map(|(r, _, m)| (r.to_string(), MockHandle::Local(Arc::clone(m))))
        .collect();
    let mut upstream_hosts: Vec<String> = [&vllm, &litellm, &openrouter]
        .iter()
        .flat_map(|m| host_forms(&m.base_url()))
        .collect();
    upstream_hosts.extend(host_forms(&format!("http://127.0.0.1:{offline}")));
    upstream_hosts.sort();
    upstream_hosts.dedup();
    let tenants = [("primary", primary_id), ("second", second_id)]
        .iter()
        .map(|(r, id)| (r.to_string(), id.to_string()))
        .collect();
    let base_url = gw.base_url();
    let embedded = Embedded {
        _gateway: gw,
        _mocks: vec![vllm, litellm, openrouter],
        blackhole,
        status_tool: status_task,
        _dir: dir,
    };
    Target::assemble(TargetParts {
        name: match variant {
            Variant::Main => NAME,
            Variant::NoServerTools => NAME_NO_SERVER_TOOLS,
            Variant::TightMemory => NAME_TIGHT_MEMORY,
        }
        .into(),
        base_url,
        primary_token: tokens.primary,
        second_token: Some(tokens.second),
        fresh: tokens.fresh,
        fresh_limited: tokens.limited.clone(),
        role_tokens: tokens
            .roles
            .iter()
            .map(|(r, v)| (r.to_string(), v.clone()))
            .collect(),
        tenants,
        models,
        mocks,
        caps: Capabilities {
            mock: true,
            config: true,
            fault_injection: true,
        },
        server_side_tools: if server_tools {
            vec![
                "lookup_weather".into(),
                "slow_http_tool".into(),
                "status_http_tool".into(),
            ]
        } else {
            Vec::new()
        },
        upstream_secrets: vec![OPENROUTER_KEY.into()],
        upstream_hosts,
        source_addrs: (2..2 + SOURCES)
            .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, i)))
            .collect(),
        schemas,
        embedded: Some(embedded),
        profile: None,
        credential_header: "authorization".into(),
        credential_scheme: "Bearer".into(),
        extra_headers: Vec::new(),
        retries: 0,
        max_body_bytes: Some(1_048_576),
    })
}
