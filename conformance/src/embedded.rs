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
//! | token_budget | chat-tokens | vLLM mock | primary tenant: 5 tokens/day (one answer uses it up) |
//!
//! A second gateway instance shares the configuration but has its own SQLite file, and its
//! store is switched to failing writes once at start-up, so that the storage-fault scenarios
//! never disturb the conversations of the others.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use mocks::{MockServer, Personality};
use sha2::{Digest, Sha256};

use crate::mock::MockHandle;
use crate::schemas::Schemas;
use crate::target::{host_forms, Capabilities, Target, TargetParts};

/// Size of each pool of single-use tokens; more than the scenarios that take one.
const POOL: usize = 64;
/// How many loopback source addresses the World's clients rotate through.
const SOURCES: u8 = 32;
/// The secret the OpenRouter upstream is configured with; it must never reach a caller.
const OPENROUTER_KEY: &str = "sk-or-v1-conformance-0f1e2d3c4b5a69788796a5b4c3d2e1f0";
const OPENROUTER_KEY_ENV: &str = "CONFORMANCE_OPENROUTER_KEY";

/// Servers and files the embedded target owns; dropping it stops them.
pub struct Embedded {
    _gateway: gateway::Running,
    _faulty: gateway::Running,
    _mocks: Vec<Arc<MockServer>>,
    blackhole: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Drop for Embedded {
    fn drop(&mut self) {
        self.blackhole.abort();
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
}

fn gateway_yaml(
    vllm: &str,
    litellm: &str,
    openrouter: &str,
    offline: u16,
    tool: SocketAddr,
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
    y.push_str(&model("chat-tokens", "up-a", 1, false, ""));
    y.push_str("tools:\n");
    y.push_str(
        "  - name: lookup_weather\n    description: Current weather for a city (deterministic).\n    parameters: { type: object, properties: { city: { type: string }, unit: { type: string } } }\n    executor: { kind: builtin, name: lookup_weather }\n",
    );
    let _ = writeln!(
        y,
        "  - name: slow_http_tool\n    description: A status service that never answers in time.\n    parameters: {{ type: object, properties: {{ query: {{ type: string }} }} }}\n    executor: {{ kind: http, url: 'http://{tool}/', timeout_ms: 300 }}"
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
    let allowed = "[chat-default, chat-proxy, chat-pinned, chat-vision, chat-reasoning, chat-offline, chat-budget, chat-tokens]";
    format!(
        "tenants:\n\
         \x20 - id: {primary_id}\n    tokens: [{}]\n    allowed_models: {allowed}\n    rate_limit: {{ rps: 1000, burst: 100000 }}\n    budgets: [{{ model: chat-budget, requests_per_day: 2 }}, {{ model: chat-tokens, tokens_per_day: 5 }}]\n\
         \x20 - id: {second_id}\n    tokens: [{}]\n    allowed_models: ['*']\n    rate_limit: {{ rps: 1000, burst: 100000 }}\n\
         \x20 - id: tenant-limited\n    tokens: [{}]\n    allowed_models: {allowed}\n    rate_limit: {{ rps: 1, burst: 3 }}\n\
         \x20 - id: tenant-fresh\n    tokens: [{}]\n    allowed_models: {allowed}\n",
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
) -> Result<gateway::Running, String> {
    let vars: HashMap<String, String> = [
        ("GATEWAY_CONFIG", gateway_file.to_owned()),
        ("TOKENS_FILE", tokens_file.to_owned()),
        ("MAX_BODY_BYTES", "1048576".to_owned()),
        ("HTTP_TOTAL_TIMEOUT_SECS", "2".to_owned()),
        ("MAX_TOOL_ITERATIONS", "10".to_owned()),
        ("SQLITE_PATH", dir.join(sqlite).display().to_string()),
        ("GATEWAY_FAULT_INJECTION", "1".to_owned()),
        ("BIND_ADDR", "127.0.0.1:0".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let secret = |name: &str| (name == OPENROUTER_KEY_ENV).then(|| OPENROUTER_KEY.to_owned());
    let cfg = gateway::Config::from_vars(&vars, &secret)
        .map_err(|e| format!("the embedded test configuration is invalid: {e}"))?;
    let state = gateway::AppState::new(cfg)
        .map_err(|e| format!("the embedded gateway cannot start: {e}"))?;
    gateway::spawn(state, SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .map_err(|e| format!("the embedded gateway cannot bind: {e}"))
}

/// Switches the faulty instance's store to failing writes (the gateway's own test hook) and
/// checks that it took.
async fn arm_storage_fault(base_url: &str, token: &str) -> Result<(), String> {
    let http = crate::target::client(None)?;
    let resp = http
        .post(format!("{base_url}/c1/chat/completions"))
        .bearer_auth(token)
        .header("x-gateway-fault", "storage")
        .json(&serde_json::json!({
            "model": "chat-default",
            "user_id": "cf-arm-storage-fault",
            "messages": [{"role": "user", "content": "mock:cf-arm-storage-fault arm"}],
        }))
        .send()
        .await
        .map_err(|e| format!("arming the storage fault failed: {e}"))?;
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    if body.contains("\"storage_error\"") {
        Ok(())
    } else {
        Err(format!(
            "arming the storage fault did not answer storage_error: {status} {body}"
        ))
    }
}

/// Boots mocks and gateways and describes them as a [`Target`].
pub async fn start(schemas: Arc<Schemas>) -> Result<Target, String> {
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

    let dir = tempfile::tempdir().map_err(|e| format!("cannot create a temp dir: {e}"))?;
    let tokens = Tokens {
        primary: token("primary"),
        second: token("second"),
        fresh: (0..POOL).map(|i| token(&format!("fresh{i}"))).collect(),
        limited: (0..POOL).map(|i| token(&format!("limited{i}"))).collect(),
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
    )
    .await?;
    let faulty = start_gateway(dir.path(), &gateway_file, &tokens_file, "faulty.sqlite3").await?;
    arm_storage_fault(&faulty.base_url(), &tokens.primary).await?;

    let roles: [(&str, &str, &Arc<MockServer>); 9] = [
        ("default", "chat-default", &vllm),
        ("litellm", "chat-proxy", &litellm),
        ("openrouter", "chat-pinned", &openrouter),
        ("vision_url", "chat-vision", &vllm),
        ("reasoning", "chat-reasoning", &vllm),
        ("unreachable", "chat-offline", &vllm),
        ("budget", "chat-budget", &vllm),
        ("forbidden", "chat-forbidden", &vllm),
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
    let storage_fault_url = Some(faulty.base_url());
    let embedded = Embedded {
        _gateway: gw,
        _faulty: faulty,
        _mocks: vec![vllm, litellm, openrouter],
        blackhole,
        _dir: dir,
    };
    Target::assemble(TargetParts {
        name: "embedded reference gateway".into(),
        base_url,
        storage_fault_url,
        primary_token: tokens.primary,
        second_token: Some(tokens.second),
        fresh: tokens.fresh,
        fresh_limited: tokens.limited,
        tenants,
        models,
        mocks,
        caps: Capabilities {
            mock: true,
            config: true,
            fault_injection: true,
        },
        server_side_tools: vec!["lookup_weather".into(), "slow_http_tool".into()],
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
