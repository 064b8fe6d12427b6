//! Configuration: the environment names of SPEC §6, `tokens.yaml` and the gateway file.
//!
//! This is the only module that reads the environment. Files are read raw (unknown fields
//! rejected), then validated into typed [`Config`]; any problem stops start-up with ONE
//! message naming the file, the field path and the problem.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Every environment variable the gateway reads, in one place.
pub mod vars {
    pub const RUST_API_BEARER: &str = "RUST_API_BEARER";
    pub const TOKENS_FILE: &str = "TOKENS_FILE";
    pub const GATEWAY_CONFIG: &str = "GATEWAY_CONFIG";
    pub const RATE_LIMIT_RPS: &str = "RATE_LIMIT_RPS";
    pub const RATE_LIMIT_BURST: &str = "RATE_LIMIT_BURST";
    pub const MAX_BODY_BYTES: &str = "MAX_BODY_BYTES";
    pub const HTTP_TOTAL_TIMEOUT_SECS: &str = "HTTP_TOTAL_TIMEOUT_SECS";
    pub const MAX_TOOL_ITERATIONS: &str = "MAX_TOOL_ITERATIONS";
    pub const SQLITE_PATH: &str = "SQLITE_PATH";
    pub const REDIS_URL: &str = "REDIS_URL";
    /// `open` (default): when Redis fails, fall back to per-process limits; `closed`: refuse.
    pub const REDIS_FAIL_MODE: &str = "REDIS_FAIL_MODE";
    pub const BIND_ADDR: &str = "BIND_ADDR";
    /// `json` for one JSON object per log line; anything else is human-readable.
    pub const LOG_FORMAT: &str = "LOG_FORMAT";
    /// `1` lets the fault-injection header of the conformance harness through (tests only).
    pub const FAULT_INJECTION: &str = "GATEWAY_FAULT_INJECTION";
    pub const ALL: &[&str] = &[
        RUST_API_BEARER,
        TOKENS_FILE,
        GATEWAY_CONFIG,
        RATE_LIMIT_RPS,
        RATE_LIMIT_BURST,
        MAX_BODY_BYTES,
        HTTP_TOTAL_TIMEOUT_SECS,
        MAX_TOOL_ITERATIONS,
        SQLITE_PATH,
        REDIS_URL,
        REDIS_FAIL_MODE,
        BIND_ADDR,
        LOG_FORMAT,
        FAULT_INJECTION,
    ];
}

pub const DEFAULT_BIND: &str = "127.0.0.1:8080";
pub const DEFAULT_TOKENS_FILE: &str = "tokens.yaml";
pub const DEFAULT_MAX_BODY_BYTES: usize = 33_554_432;
pub const DEFAULT_TIMEOUT_SECS: u64 = 600;
pub const DEFAULT_MAX_TOOL_ITERATIONS: u32 = 10;
pub const DEFAULT_RPS: f64 = 1.0;
pub const DEFAULT_BURST: u32 = 30;
pub const DEFAULT_SQLITE_PATH: &str = "gateway.sqlite3";

/// Start-up failure: one line naming where and what.
#[derive(Debug, thiserror::Error)]
#[error("{source_name}: {path}: {problem}")]
pub struct ConfigError {
    pub source_name: String,
    pub path: String,
    pub problem: String,
}

impl ConfigError {
    fn new(source: impl Into<String>, path: impl Into<String>, problem: impl Into<String>) -> Self {
        ConfigError {
            source_name: source.into(),
            path: path.into(),
            problem: problem.into(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    pub rps: f64,
    pub burst: u32,
}

#[derive(Clone, Debug)]
pub enum Allowed {
    All,
    Only(HashSet<String>),
}

impl Allowed {
    pub fn permits(&self, alias: &str) -> bool {
        match self {
            Allowed::All => true,
            Allowed::Only(set) => set.contains(alias),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Budget {
    /// An alias, or `*` for every model of the tenant.
    pub model: String,
    pub requests_per_day: Option<u64>,
    pub tokens_per_day: Option<u64>,
}

#[derive(Clone, Debug)]
pub struct Tenant {
    pub id: String,
    pub token_hashes: Vec<[u8; 32]>,
    pub allowed: Allowed,
    pub rate_limit: Option<RateLimit>,
    pub budgets: Vec<Budget>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamKind {
    Litellm,
    Openrouter,
    Vllm,
    Openai,
}

impl UpstreamKind {
    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamKind::Litellm => "litellm",
            UpstreamKind::Openrouter => "openrouter",
            UpstreamKind::Vllm => "vllm",
            UpstreamKind::Openai => "openai",
        }
    }

    /// The readiness probe of each server kind, relative to the server's origin.
    fn default_health_path(self) -> &'static str {
        match self {
            UpstreamKind::Vllm => "/health",
            UpstreamKind::Litellm => "/health/liveliness",
            // Neither has an unauthenticated health route; the model list is cheap.
            UpstreamKind::Openrouter => "/api/v1/models",
            UpstreamKind::Openai => "/v1/models",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Upstream {
    pub name: String,
    pub kind: UpstreamKind,
    /// The OpenAI-style API base (`http://host:8000/v1`, `https://openrouter.ai/api/v1`).
    pub base_url: String,
    pub chat_url: String,
    pub health_url: String,
    pub api_key: Option<String>,
    /// Host of `base_url`, scrubbed from every message a client sees.
    pub host: String,
}

#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Constraints {
    pub min_max_tokens: u32,
    pub max_output_tokens: Option<u32>,
    pub context_window: Option<u32>,
    pub accepts_image_url: bool,
    pub typical_response_seconds: Option<u32>,
}

#[derive(Clone, Debug)]
pub struct Model {
    pub alias: String,
    pub upstream: usize,
    pub upstream_model: String,
    pub constraints: Constraints,
    pub fallbacks: Vec<String>,
}

#[derive(Clone, Debug)]
pub enum Executor {
    /// A deterministic tool implemented in the gateway (see `tools.rs`).
    Builtin(String),
    Http {
        url: String,
        timeout: Duration,
    },
}

#[derive(Clone, Debug)]
pub struct Tool {
    pub name: String,
    pub description: String,
    pub parameters: serde_json::Value,
    pub executor: Executor,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub bind: SocketAddr,
    pub max_body_bytes: usize,
    pub http_total_timeout: Duration,
    pub max_tool_iterations: u32,
    pub rate_limit: RateLimit,
    pub sqlite_path: PathBuf,
    pub redis_url: Option<String>,
    pub redis_fail_closed: bool,
    pub log_json: bool,
    pub fault_injection: bool,
    pub tenants: Vec<Tenant>,
    pub upstreams: Vec<Upstream>,
    pub models: Vec<Model>,
    pub tools: Vec<Tool>,
    /// Demo mode: the only token is [`DEMO_TOKEN`] (unless one is configured) and the
    /// upstream is an in-process mock.
    pub demo: bool,
}

pub const DEMO_TOKEN: &str = "demo-token";
pub const DEMO_MODEL: &str = "demo";

pub fn sha256(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Config {
    /// Reads the process environment (the only place that does).
    pub fn from_env() -> Result<Config, ConfigError> {
        let env: HashMap<String, String> = vars::ALL
            .iter()
            .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
            .collect();
        Self::from_vars(&env, &|name| std::env::var(name).ok())
    }

    /// Whether the environment asks for demo mode: no gateway file configured.
    pub fn demo_requested(env: &HashMap<String, String>) -> bool {
        !env.contains_key(vars::GATEWAY_CONFIG)
    }

    /// Builds the configuration from a variable map. `secret` resolves the `api_key_env`
    /// names of the gateway file (the process environment in production, a map in tests).
    pub fn from_vars(
        env: &HashMap<String, String>,
        secret: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let get = |k: &str| env.get(k).map(|s| s.trim()).filter(|s| !s.is_empty());
        let bind: SocketAddr = parse_var(get(vars::BIND_ADDR), vars::BIND_ADDR, DEFAULT_BIND)?;
        let max_body_bytes: usize =
            parse_var(get(vars::MAX_BODY_BYTES), vars::MAX_BODY_BYTES, "33554432")?;
        let timeout_secs: f64 = parse_var(
            get(vars::HTTP_TOTAL_TIMEOUT_SECS),
            vars::HTTP_TOTAL_TIMEOUT_SECS,
            "600",
        )?;
        if !(timeout_secs > 0.0 && timeout_secs.is_finite()) {
            return Err(ConfigError::new(
                "environment",
                vars::HTTP_TOTAL_TIMEOUT_SECS,
                "must be a positive number of seconds",
            ));
        }
        let max_tool_iterations: u32 = parse_var(
            get(vars::MAX_TOOL_ITERATIONS),
            vars::MAX_TOOL_ITERATIONS,
            "10",
        )?;
        let rps: f64 = parse_var(get(vars::RATE_LIMIT_RPS), vars::RATE_LIMIT_RPS, "1")?;
        let burst: u32 = parse_var(get(vars::RATE_LIMIT_BURST), vars::RATE_LIMIT_BURST, "30")?;
        let rate_limit = RateLimit { rps, burst };
        check_rate(&rate_limit, "environment", "RATE_LIMIT_*")?;
        if max_body_bytes == 0 {
            return Err(ConfigError::new(
                "environment",
                vars::MAX_BODY_BYTES,
                "must be > 0",
            ));
        }

        let demo = Self::demo_requested(env);
        let (upstreams, models, tools) = match get(vars::GATEWAY_CONFIG) {
            Some(path) => load_gateway_file(Path::new(path), secret)?,
            // Demo mode: main() swaps in the embedded mock upstream before serving.
            None => (Vec::new(), Vec::new(), Vec::new()),
        };

        let tenants = if let Some(token) = get(vars::RUST_API_BEARER) {
            vec![Tenant {
                id: "default".into(),
                token_hashes: vec![sha256(token)],
                allowed: Allowed::All,
                rate_limit: None,
                budgets: Vec::new(),
            }]
        } else {
            let explicit = get(vars::TOKENS_FILE);
            let path = Path::new(explicit.unwrap_or(DEFAULT_TOKENS_FILE));
            if explicit.is_none() && !path.exists() {
                if !demo {
                    return Err(ConfigError::new(
                        "environment",
                        "RUST_API_BEARER / TOKENS_FILE",
                        "no token configured: set RUST_API_BEARER or provide tokens.yaml",
                    ));
                }
                vec![Tenant {
                    id: "demo".into(),
                    token_hashes: vec![sha256(DEMO_TOKEN)],
                    allowed: Allowed::All,
                    rate_limit: None,
                    budgets: Vec::new(),
                }]
            } else {
                load_tokens_file(path, &models)?
            }
        };

        Ok(Config {
            bind,
            max_body_bytes,
            http_total_timeout: Duration::from_secs_f64(timeout_secs),
            max_tool_iterations,
            rate_limit,
            sqlite_path: PathBuf::from(get(vars::SQLITE_PATH).unwrap_or(DEFAULT_SQLITE_PATH)),
            redis_url: get(vars::REDIS_URL).map(str::to_owned),
            redis_fail_closed: match get(vars::REDIS_FAIL_MODE) {
                None | Some("open") => false,
                Some("closed") => true,
                Some(other) => {
                    return Err(ConfigError::new(
                        "environment",
                        vars::REDIS_FAIL_MODE,
                        format!("`{other}`: must be `open` or `closed`"),
                    ))
                }
            },
            log_json: get(vars::LOG_FORMAT) == Some("json"),
            fault_injection: get(vars::FAULT_INJECTION) == Some("1"),
            tenants,
            upstreams,
            models,
            tools,
            demo,
        })
    }

    /// Points demo mode at an embedded mock upstream (vLLM personality).
    pub fn attach_demo_upstream(&mut self, api_base: &str) -> Result<(), ConfigError> {
        let upstream = build_upstream(
            "demo-mock".into(),
            UpstreamKind::Vllm,
            api_base,
            None,
            None,
            "demo",
        )?;
        self.upstreams = vec![upstream];
        self.models = vec![Model {
            alias: DEMO_MODEL.into(),
            upstream: 0,
            upstream_model: "mock-llama".into(),
            constraints: Constraints {
                min_max_tokens: 16,
                max_output_tokens: Some(4096),
                context_window: Some(32768),
                accepts_image_url: false,
                typical_response_seconds: Some(1),
            },
            fallbacks: Vec::new(),
        }];
        Ok(())
    }

    pub fn model(&self, alias: &str) -> Option<&Model> {
        self.models.iter().find(|m| m.alias == alias)
    }
}

fn parse_var<T: std::str::FromStr>(
    value: Option<&str>,
    name: &str,
    default: &str,
) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    let raw = value.unwrap_or(default);
    raw.parse::<T>()
        .map_err(|e| ConfigError::new("environment", name, format!("`{raw}`: {e}")))
}

fn check_rate(rate: &RateLimit, source: &str, path: &str) -> Result<(), ConfigError> {
    if !(rate.rps > 0.0 && rate.rps.is_finite()) || rate.burst == 0 {
        return Err(ConfigError::new(
            source,
            path,
            "rps must be a positive number and burst at least 1",
        ));
    }
    Ok(())
}

// ---- raw file shapes: exactly what the YAML may contain ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTokensFile {
    tenants: Vec<RawTenant>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTenant {
    id: String,
    tokens: Vec<RawToken>,
    allowed_models: Vec<String>,
    #[serde(default)]
    rate_limit: Option<RawRate>,
    #[serde(default)]
    budgets: Vec<RawBudget>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawToken {
    sha256: String,
    #[serde(default)]
    #[allow(dead_code)]
    label: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRate {
    rps: f64,
    burst: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBudget {
    model: String,
    #[serde(default)]
    requests_per_day: Option<u64>,
    #[serde(default)]
    tokens_per_day: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGatewayFile {
    upstreams: Vec<RawUpstream>,
    models: Vec<RawModel>,
    #[serde(default)]
    tools: Vec<RawTool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstream {
    name: String,
    kind: UpstreamKind,
    base_url: String,
    #[serde(default)]
    api_key_env: Option<String>,
    #[serde(default)]
    health_url: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModel {
    alias: String,
    upstream: String,
    upstream_model: String,
    #[serde(default)]
    constraints: RawConstraints,
    #[serde(default)]
    fallbacks: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawConstraints {
    min_max_tokens: u32,
    max_output_tokens: Option<u32>,
    context_window: Option<u32>,
    accepts_image_url: bool,
    typical_response_seconds: Option<u32>,
}

impl Default for RawConstraints {
    fn default() -> Self {
        RawConstraints {
            min_max_tokens: 1,
            max_output_tokens: None,
            context_window: None,
            accepts_image_url: false,
            typical_response_seconds: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTool {
    name: String,
    description: String,
    parameters: serde_json::Value,
    executor: RawExecutor,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "lowercase")]
enum RawExecutor {
    Builtin {
        name: String,
    },
    Http {
        url: String,
        #[serde(default = "default_tool_timeout_ms")]
        timeout_ms: u64,
    },
}

fn default_tool_timeout_ms() -> u64 {
    5000
}

fn read_yaml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new(&name, "(file)", format!("cannot read: {e}")))?;
    let de = serde_norway::Deserializer::from_str(&text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." {
            "(root)".to_owned()
        } else {
            path
        };
        ConfigError::new(&name, path, e.into_inner().to_string())
    })
}

fn load_tokens_file(path: &Path, models: &[Model]) -> Result<Vec<Tenant>, ConfigError> {
    let raw: RawTokensFile = read_yaml(path)?;
    let file = path.display().to_string();
    let err = |p: String, m: &str| ConfigError::new(&file, p, m);
    let known = |alias: &str| alias == "*" || models.iter().any(|m| m.alias == alias);
    let mut ids = HashSet::new();
    let mut hashes = HashSet::new();
    let mut tenants = Vec::with_capacity(raw.tenants.len());
    for (i, t) in raw.tenants.into_iter().enumerate() {
        if t.id.trim().is_empty() || !ids.insert(t.id.clone()) {
            return Err(err(
                format!("tenants[{i}].id"),
                "must be non-empty and unique",
            ));
        }
        if t.tokens.is_empty() {
            return Err(err(
                format!("tenants[{i}].tokens"),
                "needs at least one token",
            ));
        }
        let mut token_hashes = Vec::new();
        for (j, tok) in t.tokens.iter().enumerate() {
            let p = format!("tenants[{i}].tokens[{j}].sha256");
            let bytes = hex::decode(tok.sha256.trim())
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .ok_or_else(|| err(p.clone(), "must be the 64-hex-digit SHA-256 of the token"))?;
            if !hashes.insert(bytes) {
                return Err(err(p, "the same token is listed twice"));
            }
            token_hashes.push(bytes);
        }
        for (j, m) in t.allowed_models.iter().enumerate() {
            if !models.is_empty() && !known(m) {
                return Err(err(
                    format!("tenants[{i}].allowed_models[{j}]"),
                    "names no configured model alias",
                ));
            }
        }
        let allowed = if t.allowed_models.iter().any(|m| m == "*") {
            Allowed::All
        } else {
            Allowed::Only(t.allowed_models.into_iter().collect())
        };
        let rate_limit = match t.rate_limit {
            Some(r) => {
                let rl = RateLimit {
                    rps: r.rps,
                    burst: r.burst,
                };
                check_rate(&rl, &file, &format!("tenants[{i}].rate_limit"))?;
                Some(rl)
            }
            None => None,
        };
        let mut budgets = Vec::new();
        for (j, b) in t.budgets.into_iter().enumerate() {
            if !models.is_empty() && !known(&b.model) {
                return Err(err(
                    format!("tenants[{i}].budgets[{j}].model"),
                    "names no configured model alias",
                ));
            }
            if b.requests_per_day.is_none() && b.tokens_per_day.is_none() {
                return Err(err(
                    format!("tenants[{i}].budgets[{j}]"),
                    "set requests_per_day, tokens_per_day or both",
                ));
            }
            budgets.push(Budget {
                model: b.model,
                requests_per_day: b.requests_per_day,
                tokens_per_day: b.tokens_per_day,
            });
        }
        tenants.push(Tenant {
            id: t.id,
            token_hashes,
            allowed,
            rate_limit,
            budgets,
        });
    }
    if tenants.is_empty() {
        return Err(err("tenants".into(), "needs at least one tenant"));
    }
    Ok(tenants)
}

type GatewayParts = (Vec<Upstream>, Vec<Model>, Vec<Tool>);

fn load_gateway_file(
    path: &Path,
    secret: &dyn Fn(&str) -> Option<String>,
) -> Result<GatewayParts, ConfigError> {
    let raw: RawGatewayFile = read_yaml(path)?;
    let file = path.display().to_string();
    let err = |p: String, m: &str| ConfigError::new(&file, p, m);

    let mut upstreams = Vec::new();
    for (i, u) in raw.upstreams.into_iter().enumerate() {
        if upstreams.iter().any(|x: &Upstream| x.name == u.name) {
            return Err(err(format!("upstreams[{i}].name"), "must be unique"));
        }
        let api_key = match &u.api_key_env {
            Some(var) => Some(secret(var).ok_or_else(|| {
                err(
                    format!("upstreams[{i}].api_key_env"),
                    "names an environment variable that is not set",
                )
            })?),
            None => None,
        };
        upstreams.push(build_upstream(
            u.name,
            u.kind,
            &u.base_url,
            u.health_url.as_deref(),
            api_key,
            &format!("{file}: upstreams[{i}]"),
        )?);
    }
    if upstreams.is_empty() {
        return Err(err("upstreams".into(), "needs at least one upstream"));
    }

    let mut models: Vec<Model> = Vec::new();
    for (i, m) in raw.models.iter().enumerate() {
        if m.alias.trim().is_empty() || models.iter().any(|x| x.alias == m.alias) {
            return Err(err(
                format!("models[{i}].alias"),
                "must be non-empty and unique",
            ));
        }
        let upstream = upstreams
            .iter()
            .position(|u| u.name == m.upstream)
            .ok_or_else(|| {
                err(
                    format!("models[{i}].upstream"),
                    "names no configured upstream",
                )
            })?;
        let c = &m.constraints;
        if c.min_max_tokens == 0 || c.max_output_tokens.is_some_and(|x| x < c.min_max_tokens) {
            return Err(err(
                format!("models[{i}].constraints"),
                "min_max_tokens must be >= 1 and <= max_output_tokens",
            ));
        }
        models.push(Model {
            alias: m.alias.clone(),
            upstream,
            upstream_model: m.upstream_model.clone(),
            constraints: Constraints {
                min_max_tokens: c.min_max_tokens,
                max_output_tokens: c.max_output_tokens,
                context_window: c.context_window,
                accepts_image_url: c.accepts_image_url,
                typical_response_seconds: c.typical_response_seconds,
            },
            fallbacks: m.fallbacks.clone(),
        });
    }
    for (i, m) in raw.models.iter().enumerate() {
        for (j, f) in m.fallbacks.iter().enumerate() {
            if f == &m.alias || !models.iter().any(|x| &x.alias == f) {
                return Err(err(
                    format!("models[{i}].fallbacks[{j}]"),
                    "must name another configured alias",
                ));
            }
        }
    }

    let mut tools: Vec<Tool> = Vec::new();
    for (i, t) in raw.tools.into_iter().enumerate() {
        let valid_name = !t.name.is_empty()
            && t.name.len() <= 64
            && t.name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid_name || tools.iter().any(|x| x.name == t.name) {
            return Err(err(
                format!("tools[{i}].name"),
                "must be unique, 1-64 chars of [A-Za-z0-9_-]",
            ));
        }
        if !t.parameters.is_object() {
            return Err(err(
                format!("tools[{i}].parameters"),
                "must be a JSON-schema object",
            ));
        }
        let executor = match t.executor {
            RawExecutor::Builtin { name } => {
                if !crate::tools::BUILTINS.contains(&name.as_str()) {
                    return Err(err(
                        format!("tools[{i}].executor.name"),
                        "is not a built-in tool of this gateway",
                    ));
                }
                Executor::Builtin(name)
            }
            RawExecutor::Http { url, timeout_ms } => {
                let ok =
                    reqwest::Url::parse(&url).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
                if !ok || timeout_ms == 0 {
                    return Err(err(
                        format!("tools[{i}].executor"),
                        "needs an http(s) url and timeout_ms > 0",
                    ));
                }
                Executor::Http {
                    url,
                    timeout: Duration::from_millis(timeout_ms),
                }
            }
        };
        tools.push(Tool {
            name: t.name,
            description: t.description,
            parameters: t.parameters,
            executor,
        });
    }
    Ok((upstreams, models, tools))
}

fn build_upstream(
    name: String,
    kind: UpstreamKind,
    base_url: &str,
    health_url: Option<&str>,
    api_key: Option<String>,
    at: &str,
) -> Result<Upstream, ConfigError> {
    let url = reqwest::Url::parse(base_url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
        .ok_or_else(|| ConfigError::new(at, "base_url", "must be an absolute http(s) URL"))?;
    let host = url.host_str().unwrap_or_default().to_owned();
    let base = base_url.trim_end_matches('/').to_owned();
    let origin = url.origin().ascii_serialization();
    Ok(Upstream {
        name,
        kind,
        chat_url: format!("{base}/chat/completions"),
        health_url: health_url
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{origin}{}", kind.default_health_path())),
        base_url: base,
        api_key,
        host,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
        let p = dir.path().join(name);
        let mut f = std::fs::File::create(&p).unwrap();
        f.write_all(text.as_bytes()).unwrap();
        p.display().to_string()
    }

    const GATEWAY: &str = "upstreams:\n  - name: local\n    kind: vllm\n    base_url: http://127.0.0.1:9/v1\nmodels:\n  - alias: small\n    upstream: local\n    upstream_model: m\n    constraints: { min_max_tokens: 16 }\n";

    fn env(pairs: &[(&str, String)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn defaults_follow_the_spec() {
        let dir = tempfile::tempdir().unwrap();
        let g = write(&dir, "g.yaml", GATEWAY);
        let cfg = Config::from_vars(
            &env(&[
                (vars::GATEWAY_CONFIG, g),
                (vars::RUST_API_BEARER, "t".into()),
            ]),
            &|_| None,
        )
        .unwrap();
        assert_eq!(
            cfg.rate_limit,
            RateLimit {
                rps: 1.0,
                burst: 30
            }
        );
        assert_eq!(cfg.max_body_bytes, 33_554_432);
        assert_eq!(cfg.http_total_timeout, Duration::from_secs(600));
        assert_eq!(cfg.max_tool_iterations, 10);
        assert_eq!(
            cfg.upstreams[0].chat_url,
            "http://127.0.0.1:9/v1/chat/completions"
        );
        assert_eq!(cfg.upstreams[0].health_url, "http://127.0.0.1:9/health");
        assert!(!cfg.demo);
    }

    #[test]
    fn unknown_field_names_file_path_and_problem() {
        let dir = tempfile::tempdir().unwrap();
        let g = write(&dir, "g.yaml", GATEWAY);
        let t = write(
            &dir,
            "tokens.yaml",
            "tenants:\n  - id: a\n    tokens: [{ sha256: x }]\n    allowed_models: ['*']\n    colour: red\n",
        );
        let e = Config::from_vars(
            &env(&[(vars::GATEWAY_CONFIG, g), (vars::TOKENS_FILE, t)]),
            &|_| None,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("tokens.yaml"), "{e}");
        assert!(e.contains("tenants[0]"), "{e}");
        assert!(e.contains("colour"), "{e}");
    }

    #[test]
    fn bad_hash_and_unknown_alias_are_rejected_with_their_path() {
        let dir = tempfile::tempdir().unwrap();
        let g = write(&dir, "g.yaml", GATEWAY);
        let t = write(
            &dir,
            "tokens.yaml",
            "tenants:\n  - id: a\n    tokens: [{ sha256: abc }]\n    allowed_models: ['*']\n",
        );
        let e = Config::from_vars(
            &env(&[(vars::GATEWAY_CONFIG, g.clone()), (vars::TOKENS_FILE, t)]),
            &|_| None,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("tenants[0].tokens[0].sha256"), "{e}");
        let h = hex::encode(sha256("x"));
        let t = write(
            &dir,
            "tokens2.yaml",
            &format!("tenants:\n  - id: a\n    tokens: [{{ sha256: {h} }}]\n    allowed_models: [nope]\n"),
        );
        let e = Config::from_vars(
            &env(&[(vars::GATEWAY_CONFIG, g), (vars::TOKENS_FILE, t)]),
            &|_| None,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("tenants[0].allowed_models[0]"), "{e}");
    }

    #[test]
    fn missing_api_key_env_and_bad_numbers_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let g = write(
            &dir,
            "g.yaml",
            "upstreams:\n  - { name: u, kind: openrouter, base_url: 'https://openrouter.ai/api/v1', api_key_env: OR_KEY }\nmodels: []\n",
        );
        let e = Config::from_vars(
            &env(&[
                (vars::GATEWAY_CONFIG, g),
                (vars::RUST_API_BEARER, "t".into()),
            ]),
            &|_| None,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("upstreams[0].api_key_env"), "{e}");
        let e = Config::from_vars(&env(&[(vars::RATE_LIMIT_BURST, "lots".into())]), &|_| None)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("environment: RATE_LIMIT_BURST"), "{e}");
    }

    #[test]
    fn no_gateway_file_means_demo_mode() {
        let cfg = Config::from_vars(&HashMap::new(), &|_| None);
        // The demo token only exists when there is no tokens.yaml in the working directory.
        if !Path::new(DEFAULT_TOKENS_FILE).exists() {
            let cfg = cfg.unwrap();
            assert!(cfg.demo);
            assert_eq!(cfg.tenants[0].token_hashes[0], sha256(DEMO_TOKEN));
        }
    }

    #[test]
    fn the_shipped_examples_are_valid() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
        let cfg = Config::from_vars(
            &env(&[
                (
                    vars::GATEWAY_CONFIG,
                    root.join("gateway.yaml").display().to_string(),
                ),
                (
                    vars::TOKENS_FILE,
                    root.join("tokens.yaml").display().to_string(),
                ),
            ]),
            &|name| Some(format!("key-of-{name}")),
        )
        .unwrap();
        assert_eq!(cfg.tenants.len(), 2);
        assert_eq!(cfg.model("gpt-premium").unwrap().fallbacks.len(), 2);
        assert_eq!(
            cfg.upstreams[2].chat_url,
            "https://openrouter.ai/api/v1/chat/completions"
        );
        assert!(cfg.tenants[0].token_hashes[0] == sha256("change-me-acme"));
    }
}
